//! Running real pyzmq peers (tests/interop/peer.py) beside a reactor. Tests fail, never skip,
//! when python3 or pyzmq is missing.

#![allow(dead_code)]

use std::io::Read;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ezarch::reactor::{Reactor, SocketId};
use ezarch::socket::{SocketOptions, SocketType};

pub struct Peer {
    name: String,
    child: Child,
    pub output: Option<(bool, String)>,
}

/// Starts `peer.py SCENARIO ENDPOINT ARGS...`.
pub fn spawn(scenario: &str, endpoint: &str, args: &[&str]) -> Peer {
    let mut all = vec![scenario, endpoint];
    all.extend_from_slice(args);
    spawn_script("peer.py", &all)
}

/// Starts `python3 tests/interop/SCRIPT ARGS...`.
pub fn spawn_script(script: &str, args: &[&str]) -> Peer {
    let path = format!("{}/tests/interop/{script}", env!("CARGO_MANIFEST_DIR"));
    let child = Command::new("python3")
        .arg(path)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is required for the interop tests");
    Peer { name: format!("{script} {}", args.join(" ")), child, output: None }
}

/// Waits for every peer to exit, without a reactor (the system under test is another process).
pub fn wait(peers: &mut [&mut Peer], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !peers.iter_mut().all(|p| p.poll_done()) {
        if Instant::now() > deadline {
            for p in peers.iter_mut() {
                p.kill();
            }
            panic!("peers did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Peer {
    /// Collects the exit status once the peer has ended; true when it has.
    pub fn poll_done(&mut self) -> bool {
        if self.output.is_some() {
            return true;
        }
        match self.child.try_wait() {
            Ok(Some(status)) => {
                let mut text = String::new();
                let _ = self.child.stdout.take().map(|mut o| o.read_to_string(&mut text));
                let _ = self.child.stderr.take().map(|mut e| e.read_to_string(&mut text));
                self.output = Some((status.success(), text));
                true
            }
            _ => false,
        }
    }

    /// The peer's `OK ...` line; panics with its output if it failed.
    pub fn ok_line(&self) -> String {
        let (success, text) = self.output.as_ref().expect("peer still running");
        assert!(*success, "pyzmq peer `{}` failed:\n{text}", self.name);
        text.lines().find(|l| l.starts_with("OK")).unwrap_or_default().to_string()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if self.output.is_none() {
            self.kill();
        }
    }
}

/// Polls the reactor, calling `each` after every turn, until every peer has exited.
pub fn drive(
    reactor: &mut Reactor,
    peers: &mut [&mut Peer],
    timeout: Duration,
    mut each: impl FnMut(&mut Reactor),
) {
    let deadline = Instant::now() + timeout;
    loop {
        reactor.poll(Some(Duration::from_millis(5))).unwrap();
        each(reactor);
        if peers.iter_mut().all(|p| p.poll_done()) {
            return;
        }
        if Instant::now() > deadline {
            for p in peers.iter_mut() {
                p.kill();
            }
            panic!("pyzmq peers did not finish within {timeout:?}");
        }
    }
}

/// Polls the reactor for `time`, calling `each` after every turn.
pub fn spin(reactor: &mut Reactor, time: Duration, mut each: impl FnMut(&mut Reactor)) {
    let deadline = Instant::now() + time;
    while Instant::now() < deadline {
        reactor.poll(Some(Duration::from_millis(5))).unwrap();
        each(reactor);
    }
}

/// A loopback TCP port that was free a moment ago, for pyzmq to bind.
pub fn free_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    format!("tcp://127.0.0.1:{}", listener.local_addr().unwrap().port())
}

/// A socket bound to a free loopback port, and its endpoint.
pub fn bound(reactor: &mut Reactor, socket_type: SocketType, options: SocketOptions) -> (SocketId, String) {
    let socket = reactor.socket(socket_type, options).unwrap();
    let addr = reactor.bind(socket, "tcp://127.0.0.1:0").unwrap();
    (socket, format!("tcp://{addr}"))
}

/// Sends every received message straight back (ROUTER: to its sender).
pub fn echo(reactor: &mut Reactor, socket: SocketId) {
    while let Some(message) = reactor.recv(socket) {
        let _ = reactor.send(socket, message);
    }
}

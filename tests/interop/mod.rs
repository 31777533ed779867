//! Running real pyzmq peers (tests/interop/peer.py) beside a reactor. Tests fail, never skip,
//! when python3 or pyzmq is missing.

#![allow(dead_code)]

use std::io::Read;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub mod keys;
pub mod node;

use ezarch::reactor::{Reactor, SocketId};
use ezarch::socket::{SocketOptions, SocketType};

pub struct Peer {
    name: String,
    child: Child,
    /// What the peer printed so far (stdout, then stderr at exit), read as it arrives.
    stdout: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<String>>,
    pub output: Option<(bool, String)>,
}

/// Reads a child's pipe to its end on a thread, appending to `into` as text arrives.
fn collect(mut pipe: impl Read + Send + 'static, into: Arc<Mutex<String>>) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n @ 1..) = pipe.read(&mut chunk) {
            into.lock().unwrap().push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
        into.lock().unwrap().clone()
    })
}

/// Starts `peer.py SCENARIO ENDPOINT ARGS...`.
pub fn spawn(scenario: &str, endpoint: &str, args: &[&str]) -> Peer {
    let mut all = vec![scenario, endpoint];
    all.extend_from_slice(args);
    spawn_script("peer.py", &all)
}

/// The Python that runs the pyzmq peers: `$EZARCH_PYTHON`, else the project's `.venv` (made by
/// the README's test command), else `python3` on the PATH.
pub fn python() -> String {
    if let Ok(python) = std::env::var("EZARCH_PYTHON") {
        return python;
    }
    let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python3");
    if std::path::Path::new(venv).exists() {
        venv.to_string()
    } else {
        "python3".to_string()
    }
}

/// Waits until something accepts TCP connections at `tcp://HOST:PORT`.
pub fn wait_listening(endpoint: &str, timeout: Duration) {
    let addr = endpoint.trim_start_matches("tcp://");
    let deadline = Instant::now() + timeout;
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "nothing listens at {endpoint} after {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts `python3 tests/interop/SCRIPT ARGS...`.
pub fn spawn_script(script: &str, args: &[&str]) -> Peer {
    let path = format!("{}/tests/interop/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new(python())
        .arg(path)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is required for the interop tests");
    let stdout = Arc::new(Mutex::new(String::new()));
    let readers = vec![
        collect(child.stdout.take().unwrap(), stdout.clone()),
        collect(child.stderr.take().unwrap(), Arc::new(Mutex::new(String::new()))),
    ];
    Peer { name: format!("{script} {}", args.join(" ")), child, stdout, readers, output: None }
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
                let text: String = self.readers.drain(..).map(|r| r.join().unwrap_or_default()).collect();
                self.output = Some((status.success(), text));
                true
            }
            _ => false,
        }
    }

    /// Waits until the peer has printed a line starting with `prefix` (it is still running).
    pub fn wait_line(&mut self, prefix: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.stdout.lock().unwrap().lines().any(|l| l.starts_with(prefix)) {
            if self.poll_done() || Instant::now() > deadline {
                self.kill();
                panic!("peer `{}` never printed {prefix:?}: {:?}", self.name, self.output);
            }
            std::thread::sleep(Duration::from_millis(10));
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

/// Drives the reactor while `peer` runs, then until `count` messages in all have arrived on
/// `socket` (within `settle`); returns them in order.
pub fn receive_while_peer_runs(
    reactor: &mut Reactor,
    socket: SocketId,
    peer: &mut Peer,
    count: usize,
    settle: Duration,
) -> Vec<Vec<bytes::Bytes>> {
    let mut got = Vec::new();
    drive(reactor, &mut [peer], Duration::from_secs(60), |r| {
        while let Some(message) = r.recv(socket) {
            got.push(message);
        }
    });
    reactor
        .run_until(settle, |r| {
            while let Some(message) = r.recv(socket) {
                got.push(message);
            }
            got.len() == count
        })
        .unwrap();
    got
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

/// Waits until process `pid` has a handler for `signal` (its bit in /proc's SigCgt mask).
pub fn wait_handles(pid: u32, signal: u32, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let caught = status
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
            .unwrap_or(0);
        if caught & (1 << (signal - 1)) != 0 {
            return;
        }
        assert!(Instant::now() < deadline, "process {pid} never handled signal {signal}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A background process (an `ezarch` node, say) whose stderr log is read as it arrives, so a
/// test can wait for the line that says what it needs. Killed when dropped.
pub struct Logged {
    child: Child,
    log: Arc<Mutex<String>>,
    reader: Option<JoinHandle<String>>,
}

impl Logged {
    /// Starts `command` with stderr captured (stdout and stdin are not used).
    pub fn spawn(command: &mut Command) -> Self {
        let mut child =
            command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let reader = Some(collect(child.stderr.take().unwrap(), log.clone()));
        Self { child, log, reader }
    }

    /// Lines logged so far that contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.log.lock().unwrap().lines().filter(|l| l.contains(needle)).count()
    }

    /// Waits until `count` lines containing `needle` have been logged.
    pub fn wait_log(&self, needle: &str, count: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.count(needle) < count {
            assert!(
                Instant::now() < deadline,
                "{count} lines with {needle:?} not logged within {timeout:?}:\n{}",
                self.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (e.g. "TERM", "INT") without waiting for anything.
    pub fn signal(&self, signal: &str) {
        let _ = Command::new("kill").args([&format!("-{signal}"), &self.child.id().to_string()]).status();
    }

    /// Waits until the process has installed its handler for `signal` (a number: 2 for SIGINT,
    /// 15 for SIGTERM), read from /proc.
    pub fn wait_handles(&self, signal: u32, timeout: Duration) {
        wait_handles(self.child.id(), signal, timeout);
    }

    /// Waits for the process to exit by itself; its status and log.
    pub fn wait_exit(mut self, timeout: Duration) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "the process did not exit within {timeout:?}");
            std::thread::sleep(Duration::from_millis(10));
        };
        let log = self.reader.take().map(|r| r.join().unwrap_or_default()).unwrap_or_default();
        (status, log)
    }

    /// SIGTERM, then the exit status and the whole log.
    pub fn stop(mut self) -> (std::process::ExitStatus, String) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "the process did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        };
        let log = self.reader.take().map(|r| r.join().unwrap_or_default()).unwrap_or_default();
        (status, log)
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! End to end: `ezarch up` (and `ezarch broker`) processes with real pyzmq clients and workers
//! written from PROTOCOL.md generation 1 (tests/interop/ez.py), and the `ezarch` commands.

mod interop;

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ezarch::config::PORT_SETTINGS;
use interop::{spawn_script, wait, Peer};

/// Settings shared by every process of one test: free ports and fast timers.
struct Settings {
    flags: Vec<String>,
    ports: Vec<u16>,
}

impl Settings {
    fn new(extra: &[&str]) -> Self {
        let listeners: Vec<TcpListener> = (0..6).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
        let ports: Vec<u16> = listeners.iter().map(|l| l.local_addr().unwrap().port()).collect();
        let mut flags = vec!["--env".to_string(), "/dev/null".to_string()];
        for (name, port) in PORT_SETTINGS.iter().zip(&ports) {
            flags.extend(["--set".to_string(), format!("{name}={port}")]);
        }
        // NO_SERVICE_MS is long so a request that races a worker's first heartbeat is held, not
        // refused, on a loaded machine; the NO_SERVICE test sets its own.
        for setting in ["POLL_INTERVAL_MS=500", "WORKER_LIFETIME_S=2", "NO_SERVICE_MS=3000", "LOG_LEVEL=info"]
            .iter()
            .chain(extra)
        {
            flags.extend(["--set".to_string(), setting.to_string()]);
        }
        Self { flags, ports }
    }

    fn endpoint(&self, name: &str) -> String {
        let i = PORT_SETTINGS.iter().position(|p| *p == name).unwrap();
        format!("tcp://127.0.0.1:{}", self.ports[i])
    }

    fn ezarch(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ezarch"));
        command.args(&self.flags).args(args).stdin(Stdio::null());
        command
    }

    /// Starts `ezarch ARGS` in the background and waits until the in pipe accepts connections.
    fn start(&self, args: &[&str]) -> Process {
        let child = self.ezarch(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let process = Process(child);
        if args == ["up"] {
            let addr = &self.endpoint("IN_PIPE_PORT_A")["tcp://".len()..];
            let deadline = Instant::now() + Duration::from_secs(10);
            while TcpStream::connect(addr).is_err() {
                assert!(Instant::now() < deadline, "ezarch up did not start");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        process
    }

    fn py(&self, role: &str, args: &[&str]) -> Peer {
        let mut all = vec![role];
        all.extend_from_slice(args);
        spawn_script("ez.py", &all)
    }
}

/// A background `ezarch` process, stopped with SIGTERM when dropped or finished.
struct Process(Child);

impl Process {
    /// SIGTERM, then the exit status and the log.
    fn stop(mut self) -> Output {
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.0.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "ezarch did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
        let child = std::mem::replace(&mut self.0, Command::new("true").spawn().unwrap());
        child.wait_with_output().unwrap()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn served(peer: &Peer) -> usize {
    peer.ok_line().rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn request_reply_with_multi_frame_bodies_and_a_clean_sigterm() {
    let s = Settings::new(&[]);
    let node = s.start(&["up"]);
    let mut worker = s.py("worker", &[&s.endpoint("WORKER_PIPE_PORT_A"), "echo", "500", "0", "4"]);
    std::thread::sleep(Duration::from_millis(700));
    let mut client = s.py("client", &[&s.endpoint("IN_PIPE_PORT_A"), "echo", "30", "5"]);
    wait(&mut [&mut client, &mut worker], Duration::from_secs(30));
    client.ok_line();
    assert_eq!(served(&worker), 30);
    let output = node.stop();
    assert!(output.status.success(), "exit status {:?}", output.status);
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(log.contains("ezarch up:") && log.contains("IN_PIPE_PORT_A=tcp://127.0.0.1:"), "{log}");
}

#[test]
fn many_clients_many_workers_several_services() {
    let s = Settings::new(&[]);
    let _node = s.start(&["up"]);
    let workers_ep = s.endpoint("WORKER_PIPE_PORT_A");
    let mut workers: Vec<Peer> = ["a", "a", "b", "b", "c", "c"]
        .iter()
        .map(|svc| s.py("worker", &[&workers_ep, svc, "500", "0", "8"]))
        .collect();
    std::thread::sleep(Duration::from_millis(800));
    let in_ep = s.endpoint("IN_PIPE_PORT_A");
    let mut clients: Vec<Peer> = (0..4).map(|_| s.py("client", &[&in_ep, "a,b,c", "60", "2"])).collect();
    let mut all: Vec<&mut Peer> = clients.iter_mut().chain(workers.iter_mut()).collect();
    wait(&mut all, Duration::from_secs(40));
    for c in &clients {
        c.ok_line();
    }
    let counts: Vec<usize> = workers.iter().map(served).collect();
    assert_eq!(counts.iter().sum::<usize>(), 240, "{counts:?}");
    assert!(counts.iter().all(|&n| n >= 20), "work was not spread: {counts:?}");
}

#[test]
fn a_slow_worker_receives_fewer_requests_than_a_fast_one() {
    let s = Settings::new(&[]);
    let _node = s.start(&["up"]);
    let ep = s.endpoint("WORKER_PIPE_PORT_A");
    let mut slow = s.py("worker", &[&ep, "svc", "500", "100", "8"]);
    let mut fast = s.py("worker", &[&ep, "svc", "500", "0", "8"]);
    std::thread::sleep(Duration::from_millis(800));
    let mut burst = s.py("burst", &[&s.endpoint("IN_PIPE_PORT_A"), "svc", "60", "4"]);
    wait(&mut [&mut burst, &mut slow, &mut fast], Duration::from_secs(30));
    burst.ok_line();
    let (slow_n, fast_n) = (served(&slow), served(&fast));
    assert_eq!(slow_n + fast_n, 60);
    assert!(fast_n > slow_n * 2, "fast {fast_n} vs slow {slow_n}");
}

#[test]
fn a_killed_worker_gets_no_new_work_after_expiry() {
    let s = Settings::new(&[]);
    let _node = s.start(&["up"]);
    let ep = s.endpoint("WORKER_PIPE_PORT_A");
    let mut doomed = s.py("worker", &[&ep, "svc", "500", "0", "30"]);
    let mut alive = s.py("worker", &[&ep, "svc", "500", "0", "8"]);
    std::thread::sleep(Duration::from_millis(800));
    doomed.kill();
    std::thread::sleep(Duration::from_millis(2600)); // WORKER_LIFETIME_S=2
                                                     // One attempt each: a request sent to the dead worker would fail the client.
    let mut client = s.py("client", &[&s.endpoint("IN_PIPE_PORT_A"), "svc", "20", "1", "1"]);
    wait(&mut [&mut client, &mut alive], Duration::from_secs(30));
    client.ok_line();
    assert_eq!(served(&alive), 20);
}

#[test]
fn two_brokers_share_worker_state_and_route_each_others_replies() {
    let s = Settings::new(&[]);
    let node = s.start(&["up"]);
    let second = s.start(&["broker"]);
    std::thread::sleep(Duration::from_millis(500));
    let mut worker = s.py("worker", &[&s.endpoint("WORKER_PIPE_PORT_A"), "svc", "500", "0", "8"]);
    std::thread::sleep(Duration::from_millis(1200));
    let mut client = s.py("client", &[&s.endpoint("IN_PIPE_PORT_A"), "svc", "60", "1"]);
    wait(&mut [&mut client, &mut worker], Duration::from_secs(30));
    client.ok_line();
    assert_eq!(served(&worker), 60);
    let second_log = String::from_utf8_lossy(&second.stop().stderr).to_string();
    let first_log = String::from_utf8_lossy(&node.stop().stderr).to_string();
    for log in [&first_log, &second_log] {
        let line = log.lines().find(|l| l.contains("broker stats:")).unwrap_or_else(|| panic!("{log}"));
        // Each broker took client requests and routed worker replies (both pipes round-robin).
        assert!(!line.contains("requests=0") && !line.contains("replies=0"), "{line}");
    }
}

#[test]
fn no_service_is_answered_within_bounded_time() {
    let s = Settings::new(&["NO_SERVICE_MS=500"]);
    let _node = s.start(&["up"]);
    std::thread::sleep(Duration::from_millis(1100)); // past the startup grace (interval + 500 ms)
    let mut client = s.py("no_service", &[&s.endpoint("IN_PIPE_PORT_A"), "nobody", "3000"]);
    wait(&mut [&mut client], Duration::from_secs(20));
    let line = client.ok_line();
    let ms: f64 = line.split(' ').nth(2).unwrap().parse().unwrap();
    assert!((400.0..2500.0).contains(&ms), "{line}");
}

#[test]
fn malformed_client_worker_and_state_messages_leave_service_running() {
    let s = Settings::new(&[]);
    let _node = s.start(&["up"]);
    let mut worker = s.py("worker", &[&s.endpoint("WORKER_PIPE_PORT_A"), "svc", "500", "0", "6"]);
    let mut junk = s.py(
        "garbage",
        &[
            &s.endpoint("IN_PIPE_PORT_A"),
            &s.endpoint("WORKER_PIPE_PORT_A"),
            &s.endpoint("BROKER_PIPE_PORT_A"),
        ],
    );
    wait(&mut [&mut junk], Duration::from_secs(20));
    junk.ok_line();
    let mut client = s.py("client", &[&s.endpoint("IN_PIPE_PORT_A"), "svc", "10", "2"]);
    wait(&mut [&mut client, &mut worker], Duration::from_secs(30));
    client.ok_line();
}

#[test]
fn up_worker_and_call_from_the_command_line() {
    let s = Settings::new(&[]);
    let _node = s.start(&["up"]);
    let _worker = s.start(&["worker", "echo"]);
    std::thread::sleep(Duration::from_millis(800));
    let out = s.ezarch(&["call", "echo", "/echo", "hello", "world"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "OK\nhello\nworld\n");
    let out = s.ezarch(&["call", "echo", "/req_count"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "OK\n2\n");
    let out = s.ezarch(&["call", "echo", "/missing"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ERR\n/missing not found\n");
    let out = s.ezarch(&["call", "nobody", "/echo"]).output().unwrap();
    assert!(!out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "EZ_ERR\nNO_SERVICE\n");
    let out = s
        .ezarch(&[
            "call",
            "echo",
            "/echo",
            "--timeout",
            "300",
            "--attempts",
            "1",
            "--set",
            "IN_PIPE_PORT_A=1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success(), "a call that cannot connect must fail");
}

#[test]
fn call_retries_with_the_same_request_id() {
    let s = Settings::new(&[]);
    let mut in_pipe = s.py("in_pipe_retry", &[&s.endpoint("IN_PIPE_PORT_A")]);
    std::thread::sleep(Duration::from_millis(300));
    let out =
        s.ezarch(&["call", "svc", "/echo", "x", "--timeout", "700", "--attempts", "2"]).output().unwrap();
    wait(&mut [&mut in_pipe], Duration::from_secs(20));
    in_pipe.ok_line();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "OK\nsecond attempt\n");
}

#[test]
fn invalid_configuration_is_one_clear_line_and_exit_code_2() {
    let s = Settings::new(&[]);
    let out = s.ezarch(&["--set", "IN_PIPE_PORT_A=ninety", "up"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("IN_PIPE_PORT_A") && err.contains("ninety"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_ezarch"))
        .args(["--env", "/dev/null", "settings"])
        .env("LOG_LEVEL", "loud")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("LOG_LEVEL"));
}

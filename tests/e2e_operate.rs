//! Operating a node, as an operator would: the management services (`ez.*`) from a pyzmq
//! client and from `ezarch services / stats / ping`, the HTTP endpoint from urllib (with
//! `/metrics` parsed by prometheus_client's parser) and from raw sockets, the log lines, bind
//! errors, `ezarch settings` and `ezarch call` with stdin and `--hex`.

mod interop;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use interop::node::{Settings, LOG_WAIT};
use interop::{spawn_script, wait, wait_listening, Peer};

fn operate(role: &str, args: &[&str]) -> Peer {
    let mut all = vec![role];
    all.extend_from_slice(args);
    spawn_script("operate.py", &all)
}

fn monitor_url(s: &Settings) -> String {
    s.endpoint("MONITOR_PORT").replace("tcp://", "http://")
}

fn run(command: &mut Command) -> (bool, String, String) {
    let out = command.output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn management_services_answer_pyzmq_clients_and_the_command_line() {
    let s = Settings::new(&[]);
    let node = s.start(&["up"]);
    let mut worker = s.worker("echo", "0", "15");
    node.wait_log("joined service echo", 1, LOG_WAIT);
    let mut client = s.py("client", &[&s.endpoint("IN_PIPE_PORT_A"), "echo", "10", "2"]);
    wait(&mut [&mut client], Duration::from_secs(30));
    let mut admin = operate("management", &[&s.endpoint("IN_PIPE_PORT_A"), "echo"]);
    wait(&mut [&mut admin], Duration::from_secs(30));
    assert!(admin.ok_line().contains("echo served 10"), "{}", admin.ok_line());

    let (ok, table, err) = run(&mut s.ezarch(&["services"]));
    assert!(ok, "{err}");
    let echo: Vec<&str> =
        table.lines().find(|l| l.starts_with("echo ")).expect(&table).split_whitespace().collect();
    assert_eq!(&echo[..6], ["echo", "1", "0", "0", "10", "10"], "{table}");
    let (ok, json, err) = run(&mut s.ezarch(&["services", "--json"]));
    assert!(ok && json.starts_with("{\"services\":[{\"name\":\"echo\",\"live_workers\":1"), "{json}{err}");
    let (ok, stats, err) = run(&mut s.ezarch(&["stats"]));
    assert!(ok, "{err}");
    let requests = stats.lines().find(|l| l.starts_with("requests ")).expect(&stats);
    assert_eq!(requests.split_whitespace().nth(1), Some("10"), "{stats}");
    let (ok, pings, err) = run(&mut s.ezarch(&["ping", "--count", "3"]));
    assert!(ok && pings.contains("3 answered: min "), "{pings}{err}");
    wait(&mut [&mut worker], Duration::from_secs(30));
}

#[test]
fn metrics_parse_as_prometheus_text_with_real_figures() {
    let s = Settings::new(&["NO_SERVICE_MS=100"]);
    let node = s.start(&["up"]);
    wait_listening(&s.endpoint("MONITOR_PORT"), Duration::from_secs(10));
    let mut worker = s.worker("echo", "0", "15");
    node.wait_log("joined service echo", 1, LOG_WAIT);
    let mut client = s.py("client", &[&s.endpoint("IN_PIPE_PORT_A"), "echo", "25", "2"]);
    let mut refused = s.py("expect_err", &[&s.endpoint("IN_PIPE_PORT_A"), "nobody", "NO_SERVICE"]);
    wait(&mut [&mut client, &mut refused], Duration::from_secs(30));
    node.wait_log("NO_SERVICE for nobody", 1, LOG_WAIT);
    let mut metrics = operate("metrics", &[&monitor_url(&s), "echo", "25"]);
    wait(&mut [&mut metrics], Duration::from_secs(30));
    metrics.ok_line();
    wait(&mut [&mut worker], Duration::from_secs(30));
}

#[test]
fn healthz_says_200_while_serving_and_503_while_draining() {
    let s = Settings::new(&["SHUTDOWN_GRACE_MS=8000", "WORKER_LIFETIME_S=10"]);
    let node = s.start(&["up"]);
    let url = monitor_url(&s);
    let mut serving = operate("healthz", &[&url, "200"]);
    wait(&mut [&mut serving], Duration::from_secs(30));
    // A request held by a slow worker keeps the node draining for a while after SIGTERM.
    let mut worker = s.worker("slow", "3000", "20");
    node.wait_log("joined service slow", 1, LOG_WAIT);
    let mut client = s.py("client", &[&s.endpoint("IN_PIPE_PORT_A"), "slow", "1", "1", "1", "10000"]);
    wait_for_in_flight(&s);
    node.signal("TERM");
    let mut draining = operate("healthz", &[&url, "503"]);
    wait(&mut [&mut draining], Duration::from_secs(30));
    wait(&mut [&mut client], Duration::from_secs(30));
    client.ok_line();
    let (status, log) = node.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "{log}");
    worker.kill();
}

/// Waits until the node has one request in flight (asked with `ezarch stats --json`).
fn wait_for_in_flight(s: &Settings) {
    let deadline = std::time::Instant::now() + LOG_WAIT;
    loop {
        let (_, json, _) = run(&mut s.ezarch(&["stats", "--json"]));
        if json.contains("\"requests_in_flight\":1") {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "no request in flight: {json}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn bad_http_is_answered_and_closed_and_idle_crowds_are_bounded() {
    let s = Settings::new(&[]);
    let node = s.start(&["up"]);
    wait_listening(&s.endpoint("MONITOR_PORT"), Duration::from_secs(10));
    let mut bad = operate("bad_http", &[&monitor_url(&s)]);
    wait(&mut [&mut bad], Duration::from_secs(60));
    bad.ok_line();
    let (status, log) = node.stop();
    assert!(status.success(), "{log}");
    assert!(!log.contains("panick"), "{log}");
}

#[test]
fn log_lines_have_utc_time_stamps_and_the_events_operators_need() {
    let s = Settings::new(&["NO_SERVICE_MS=100", "WORKER_LIFETIME_S=1"]);
    let node = s.start(&["up"]);
    let mut worker = s.worker("echo", "0", "2");
    node.wait_log("joined service echo", 1, LOG_WAIT);
    let mut refused = s.py("expect_err", &[&s.endpoint("IN_PIPE_PORT_A"), "nobody", "NO_SERVICE"]);
    wait(&mut [&mut refused, &mut worker], Duration::from_secs(30));
    node.wait_log("left service echo", 1, LOG_WAIT);
    let (_, log) = node.stop();
    for line in log.lines() {
        let stamp = line.split(' ').next().unwrap_or_default();
        let b = stamp.as_bytes();
        let shape = b.len() == 24 && b[4] == b'-' && b[10] == b'T' && b[19] == b'.' && b[23] == b'Z';
        assert!(shape && stamp[..4].parse::<u32>().is_ok(), "not an RFC 3339 UTC time stamp: {line}");
    }
    let info = |needle: &str| log.lines().any(|l| l.contains(" INFO ") && l.contains(needle));
    assert!(info("joined service echo") && info("left service echo"), "{log}");
    assert!(info("NO_SERVICE for nobody"), "{log}");
    let start = log.lines().find(|l| l.contains(" up: clients ")).expect(&log);
    assert!(start.len() < 250, "the start-up line does not fit a screen: {start}");
    assert!(!log.contains("Some("), "peer addresses are printed as ip:port: {log}");
}

#[test]
fn a_port_in_use_is_named_with_its_setting_and_endpoint() {
    // The port is taken first and then given to the node: a port merely found free could be
    // taken by a test running alongside before this one binds it.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let s = Settings::new(&[&format!("IN_PIPE_PORT_A={port}")]);
    let endpoint = format!("tcp://127.0.0.1:{port}");
    let (ok, _, err) = run(&mut s.ezarch(&["up"]));
    assert!(!ok);
    assert!(err.contains(&format!("IN_PIPE_PORT_A {endpoint}: address already in use")), "{err}");
}

#[test]
fn settings_say_where_each_value_came_from() {
    let s = Settings::new(&[]);
    // `--set` before the subcommand (the test's ports) and after it both count.
    let mut command = s.ezarch(&["settings", "--set", "NO_SERVICE_MS=77"]);
    command.env("TASK_TIMEOUT_MS", "1234");
    let (ok, out, err) = run(&mut command);
    assert!(ok, "{err}");
    let line = |name: &str| out.lines().find(|l| l.starts_with(name)).unwrap_or_default().to_string();
    assert!(line("IN_PIPE_PORT_A=").contains("# from flag:"), "{out}");
    assert!(line("TASK_TIMEOUT_MS=\"1234\"").contains("# from environment:"), "{out}");
    assert!(line("SHUTDOWN_GRACE_MS=\"5000\"").contains("# from default:"), "{out}");
    assert!(line("NO_SERVICE_MS=\"77\"").contains("# from flag:"), "{out}");
}

#[test]
fn call_reads_a_binary_frame_from_stdin_and_prints_hex() {
    let s = Settings::new(&[]);
    let node = s.start(&["up"]);
    let mut worker = s.worker("echo", "0", "15");
    node.wait_log("joined service echo", 1, LOG_WAIT);
    // 200 KiB of every byte value: more than a command line comfortably takes.
    let body: Vec<u8> = (0..200 * 1024).map(|i| (i % 251) as u8).collect();
    let mut child = s
        .ezarch(&["call", "--hex", "echo", "/echo", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&body).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<String> = String::from_utf8(out.stdout).unwrap().lines().map(String::from).collect();
    let hex: String = body.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0], "4f4b"); // "OK"
    assert!(lines[1] == hex, "the body came back changed");
    for bad in [["--timeout", "0"], ["--attempts", "0"]] {
        let (ok, _, err) = run(&mut s.ezarch(&["call", "echo", bad[0], bad[1]]));
        assert!(!ok && err.contains("not in 1.."), "{err}");
    }
    wait(&mut [&mut worker], Duration::from_secs(30));
}

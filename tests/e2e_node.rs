//! End to end: `ezarch up` (and `ezarch broker`) processes with real pyzmq clients and workers
//! written from PROTOCOL.md generation 1 (tests/interop/ez.py), and the `ezarch` commands.
//! Every wait is for a condition (a log line of the node, a line a peer prints, a port that
//! accepts) with a deadline, never a fixed sleep.

mod interop;

use std::process::Command;
use std::time::Duration;

use interop::node::{cpu_seconds, served, Settings, LOG_WAIT};
use interop::{wait, Peer};

#[test]
fn request_reply_with_multi_frame_bodies_and_a_clean_sigterm() {
    let s = Settings::new(&[]);
    let node = s.start(&["up"]);
    let mut worker = s.worker("echo", "0", "4");
    node.wait_log("joined service echo", 1, LOG_WAIT);
    let mut client = s.py("client", &[&s.endpoint("IN_PIPE_PORT_A"), "echo", "30", "5"]);
    wait(&mut [&mut client, &mut worker], Duration::from_secs(30));
    client.ok_line();
    assert_eq!(served(&worker), 30);
    let (status, log) = node.stop();
    assert!(status.success(), "exit status {status:?}");
    let clients = format!("up: clients {}", s.endpoint("IN_PIPE_PORT_A"));
    assert!(log.contains(&clients), "{log}");
}

#[test]
fn many_clients_many_workers_several_services() {
    let s = Settings::new(&[]);
    let node = s.start(&["up"]);
    let mut workers: Vec<Peer> =
        ["a", "a", "b", "b", "c", "c"].iter().map(|svc| s.worker(svc, "0", "8")).collect();
    node.wait_log("joined service", 6, LOG_WAIT);
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
    let node = s.start(&["up"]);
    let mut slow = s.worker("svc", "100", "8");
    let mut fast = s.worker("svc", "0", "8");
    node.wait_log("joined service svc", 2, LOG_WAIT);
    let mut burst = s.py("burst", &[&s.endpoint("IN_PIPE_PORT_A"), "svc", "60", "4"]);
    wait(&mut [&mut burst, &mut slow, &mut fast], Duration::from_secs(30));
    burst.ok_line();
    let (slow_n, fast_n) = (served(&slow), served(&fast));
    assert_eq!(slow_n + fast_n, 60);
    assert!(fast_n > slow_n * 2, "fast {fast_n} vs slow {slow_n}");
}

#[test]
fn a_killed_worker_gets_no_new_work() {
    let s = Settings::new(&[]);
    let node = s.start(&["up"]);
    let mut doomed = s.worker("svc", "0", "30");
    let mut alive = s.worker("svc", "0", "8");
    node.wait_log("joined service svc", 2, LOG_WAIT);
    doomed.kill();
    // The worker pipe shares the broker's process: the closed connection is seen at once.
    node.wait_log("left service svc", 1, LOG_WAIT);
    // One attempt each: a request sent to the dead worker would fail the client.
    let mut client = s.py("client", &[&s.endpoint("IN_PIPE_PORT_A"), "svc", "20", "1", "1"]);
    wait(&mut [&mut client, &mut alive], Duration::from_secs(30));
    client.ok_line();
    assert_eq!(served(&alive), 20);
}

#[test]
fn two_brokers_share_worker_state_and_each_gets_the_replies_to_its_dispatches() {
    let s = Settings::new(&["TASK_TIMEOUT_MS=2000"]);
    let node = s.start(&["up"]);
    let second = s.start(&["broker"]);
    second.wait_log("broker attached to", 4, LOG_WAIT);
    let mut worker = s.worker("svc", "50", "12");
    node.wait_log("joined service svc", 1, LOG_WAIT);
    second.wait_log("joined service svc", 1, LOG_WAIT);
    // 60 requests at 50 ms each: longer than TASK_TIMEOUT_MS, so a reply routed to the broker
    // that did not dispatch it would have its request answered TIMEOUT by the other.
    let mut client = s.py("client", &[&s.endpoint("IN_PIPE_PORT_A"), "svc", "60", "1"]);
    wait(&mut [&mut client, &mut worker], Duration::from_secs(30));
    client.ok_line();
    assert_eq!(served(&worker), 60);
    let (_, second_log) = second.stop();
    let (_, first_log) = node.stop();
    for log in [&first_log, &second_log] {
        let line = log.lines().find(|l| l.contains("broker stats:")).unwrap_or_else(|| panic!("{log}"));
        // Each broker took client requests (the in pipe round-robins) and got the replies to
        // exactly its own dispatches (the worker pipe sends each reply to its dispatcher).
        let stat = |name: &str| line.split(' ').find_map(|f| f.strip_prefix(name)).unwrap_or("-").to_string();
        assert_ne!(stat("requests="), "0", "{line}");
        assert_eq!(stat("replies="), stat("dispatched="), "{line}");
        assert_eq!((stat("timeouts="), stat("late_replies=")), ("0".into(), "0".into()), "{line}");
    }
}

#[test]
fn no_service_is_answered_within_bounded_time() {
    // The request may arrive within the startup grace (interval + 500 ms = 1 s), when it waits
    // for workers to heartbeat first; either way it is answered within the bounds below.
    let s = Settings::new(&["NO_SERVICE_MS=500"]);
    let _node = s.start(&["up"]);
    let mut client = s.py("expect_err", &[&s.endpoint("IN_PIPE_PORT_A"), "nobody", "NO_SERVICE", "3000"]);
    wait(&mut [&mut client], Duration::from_secs(20));
    let line = client.ok_line();
    let ms: f64 = line.split(' ').nth(2).unwrap().parse().unwrap();
    assert!((400.0..2500.0).contains(&ms), "{line}");
}

#[test]
fn the_node_sleeps_between_deadlines_at_low_rate_and_when_idle() {
    let s = Settings::new(&["NO_SERVICE_MS=200"]);
    let node = s.start(&["up"]);
    let mut worker = s.worker("svc", "0", "30");
    node.wait_log("joined service svc", 1, LOG_WAIT);
    // 30 NO_SERVICE requests a second for 3 s: each is held 200 ms, so a deadline is always
    // near. A loop that polls without sleeping until then burns a core (about 0.9 s here).
    let before = cpu_seconds(node.pid());
    let mut client = s.py("no_service_rate", &[&s.endpoint("IN_PIPE_PORT_A"), "nobody", "30", "3"]);
    wait(&mut [&mut client], Duration::from_secs(30));
    client.ok_line();
    let busy = cpu_seconds(node.pid()) - before;
    assert!(busy < 0.3, "{busy:.2} s of CPU for 90 NO_SERVICE requests in 3 s");
    // Idle but for one worker's heartbeats (every 500 ms): CPU stays near zero. The 2 s are a
    // measurement window, not a wait for a condition: CPU used in it does not depend on how
    // busy the machine is.
    let before = cpu_seconds(node.pid());
    std::thread::sleep(Duration::from_secs(2));
    let idle = cpu_seconds(node.pid()) - before;
    assert!(idle < 0.1, "{idle:.2} s of CPU over 2 s idle");
    worker.kill();
}

#[test]
fn malformed_client_worker_and_state_messages_leave_service_running() {
    let s = Settings::new(&[]);
    let node = s.start(&["up"]);
    let mut worker = s.worker("svc", "0", "6");
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
    node.wait_log("joined service svc", 1, LOG_WAIT);
    let mut client = s.py("client", &[&s.endpoint("IN_PIPE_PORT_A"), "svc", "10", "2"]);
    wait(&mut [&mut client, &mut worker], Duration::from_secs(30));
    client.ok_line();
}

#[test]
fn up_worker_and_call_from_the_command_line() {
    let s = Settings::new(&[]);
    let node = s.start(&["up"]);
    let _worker = s.start(&["worker", "echo"]);
    node.wait_log("joined service echo", 1, LOG_WAIT);
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
    in_pipe.wait_line("READY", Duration::from_secs(20));
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
    // A setting that once panicked the first heartbeat is refused at start.
    let out = s.ezarch(&["--set", "WORKER_LIFETIME_S=10000000000000000000", "up"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("WORKER_LIFETIME_S"));
}

#[test]
fn the_original_env_files_work_and_an_unreadable_env_is_named() {
    let dir = std::env::temp_dir().join(format!("ezarch-e2e-env-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("original.env");
    std::fs::write(&file, "export LOG_LEVEL=\"WARNING\"  # Python's name\nexport WORKER_LIFETIME_S=\"9\"\n")
        .unwrap();
    for level in ["WARNING", "CRITICAL"] {
        let out = Command::new(env!("CARGO_BIN_EXE_ezarch"))
            .arg("--env")
            .arg(&file)
            .args(["settings"])
            .env("LOG_LEVEL", level)
            .output()
            .unwrap();
        assert!(out.status.success(), "{level}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("LOG_LEVEL=\"{level}\"")));
    }
    // ./env that exists but cannot be read (a directory here) is an error, not skipped.
    std::fs::create_dir_all(dir.join("env")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ezarch")).current_dir(&dir).arg("settings").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("env file env"), "{out:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_original_python_broker_works_beside_ours() {
    let s = Settings::new(&[]);
    let node = s.start(&["up"]);
    let endpoints = ["IN_PIPE_PORT_B", "WORKER_PIPE_PORT_B", "BROKER_PIPE_PORT_A", "BROKER_BROADCAST_PORT"];
    let endpoints: Vec<String> = endpoints.iter().map(|e| s.endpoint(e)).collect();
    let mut args: Vec<&str> = endpoints.iter().map(String::as_str).collect();
    args.push("12");
    let mut original = s.py("orig_broker", &args);
    let mut worker = s.worker("svc", "20", "12");
    node.wait_log("joined service svc", 1, LOG_WAIT);
    // Requests go round-robin to both brokers; the original drops what comes before it has
    // seen the worker, so the client retries (as the original client does).
    let mut client = s.py("client", &[&s.endpoint("IN_PIPE_PORT_A"), "svc", "40", "1", "3"]);
    wait(&mut [&mut client, &mut original, &mut worker], Duration::from_secs(40));
    client.ok_line();
    let line = original.ok_line();
    let number = |after: &str| {
        line.split(after).nth(1).and_then(|r| r.split(' ').next()).unwrap().parse::<u32>().unwrap()
    };
    assert!(number("served ") > 0, "the original took requests: {line}");
    assert!(number("state_from_others ") > 0, "and understood ours: {line}");
}

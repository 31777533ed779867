//! Every request gets exactly one answer, end to end: `ezarch up` with real pyzmq workers and
//! clients (tests/interop/ez.py) while workers die, hang, or clients retry.

mod interop;

use std::time::Duration;

use interop::node::{served, Settings, LOG_WAIT};
use interop::wait;

#[test]
fn a_worker_killed_with_requests_in_flight_loses_none_of_them() {
    let s = Settings::new(&[]);
    let node = s.start(&["up"]);
    let mut doomed = s.worker("svc", "200", "60");
    let mut survivor = s.worker("svc", "200", "20");
    node.wait_log("joined service svc", 2, LOG_WAIT);
    // 20 in flight, one attempt each: no client retry hides a loss.
    let mut client = s.py("inflight", &[&s.endpoint("IN_PIPE_PORT_A"), "svc", "60", "20", "5000"]);
    client.wait_line("READY", Duration::from_secs(20));
    doomed.kill(); // SIGKILL, with about half of the window queued at it
    node.wait_log("left service svc", 1, LOG_WAIT);
    wait(&mut [&mut client, &mut survivor], Duration::from_secs(60));
    let line = client.ok_line();
    assert!(line.contains("(b'OK', b'x'): 60"), "every answer is the worker's: {line}");
    assert!(served(&survivor) >= 30, "the survivor took the lost requests: {}", served(&survivor));
}

#[test]
fn a_hung_workers_request_is_answered_timeout_at_the_deadline() {
    let s = Settings::new(&["TASK_TIMEOUT_MS=1000"]);
    let node = s.start(&["up"]);
    let _hung = s.worker("svc", "20000", "30");
    node.wait_log("joined service svc", 1, LOG_WAIT);
    let mut client = s.py("expect_err", &[&s.endpoint("IN_PIPE_PORT_A"), "svc", "TIMEOUT", "5000"]);
    wait(&mut [&mut client], Duration::from_secs(20));
    let line = client.ok_line();
    let ms: f64 = line.split(' ').nth(2).unwrap().parse().unwrap();
    assert!((900.0..2500.0).contains(&ms), "{line}");
}

#[test]
fn a_retried_request_id_runs_once() {
    let s = Settings::new(&[]);
    let node = s.start(&["up"]);
    let mut worker = s.worker("svc", "2500", "8");
    node.wait_log("joined service svc", 1, LOG_WAIT);
    let mut client = s.py("retry_once", &[&s.endpoint("IN_PIPE_PORT_A"), "svc", "1000"]);
    wait(&mut [&mut client, &mut worker], Duration::from_secs(30));
    client.ok_line();
    assert_eq!(served(&worker), 1, "the retry was not executed again");
}

#[test]
fn sigterm_to_up_answers_every_request_in_flight_before_exit() {
    let s = Settings::new(&["SHUTDOWN_GRACE_MS=10000", "NO_SERVICE_MS=200"]);
    let node = s.start(&["up"]);
    let _worker = s.worker("svc", "200", "30");
    node.wait_log("joined service svc", 1, LOG_WAIT);
    let flag = std::env::temp_dir().join(format!("ezarch-sigterm-up-{}", std::process::id()));
    let _ = std::fs::remove_file(&flag);
    let mut late = s.py("after_signal", &[&s.endpoint("IN_PIPE_PORT_A"), "svc", flag.to_str().unwrap()]);
    late.wait_line("READY", Duration::from_secs(20));
    // 20 requests in flight at one worker (200 ms each, about 4 s of work), one attempt each.
    let mut client = s.py("inflight", &[&s.endpoint("IN_PIPE_PORT_A"), "svc", "20", "20", "15000"]);
    client.wait_line("READY", Duration::from_secs(20));
    node.wait_handles(15, LOG_WAIT);
    node.signal("TERM");
    std::fs::write(&flag, b"").unwrap(); // a request after the signal: SHUTTING_DOWN
    let (status, log) = node.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status:?}\n{log}");
    wait(&mut [&mut client, &mut late], Duration::from_secs(30));
    let line = client.ok_line();
    assert!(line.contains("(b'OK', b'x'): 20"), "every request in flight got its reply: {line}");
    late.ok_line();
    let _ = std::fs::remove_file(&flag);
}

#[test]
fn sigterm_to_a_worker_under_load_loses_nothing() {
    let s = Settings::new(&[]);
    let node = s.start(&["up"]);
    let stopping = s.start(&["worker", "svc", "--delay", "100"]);
    let _staying = s.start(&["worker", "svc", "--delay", "100"]);
    node.wait_log("joined service svc", 2, LOG_WAIT);
    let mut client = s.py("inflight", &[&s.endpoint("IN_PIPE_PORT_A"), "svc", "60", "10", "10000"]);
    client.wait_line("READY", Duration::from_secs(20));
    stopping.wait_handles(15, LOG_WAIT);
    stopping.signal("TERM");
    let (status, log) = stopping.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "{status:?}\n{log}");
    assert!(log.contains("replies delivered: true"), "{log}");
    wait(&mut [&mut client], Duration::from_secs(30));
    let line = client.ok_line();
    assert!(line.contains("(b'OK', b'x'): 60"), "{line}");
}

#[test]
fn ctrl_c_stops_a_waiting_call_at_once() {
    let s = Settings::new(&[]);
    let node = s.start(&["up"]);
    let _hung = s.worker("svc", "30000", "40");
    node.wait_log("joined service svc", 1, LOG_WAIT);
    let call = interop::Logged::spawn(&mut s.ezarch(&["call", "svc", "/echo", "--timeout", "30000"]));
    call.wait_handles(2, LOG_WAIT);
    let signalled = std::time::Instant::now();
    call.signal("INT");
    let (status, _) = call.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(130), "{status:?}");
    assert!(signalled.elapsed() < Duration::from_secs(2), "{:?}", signalled.elapsed());
}

#[test]
fn workers_killed_and_restarted_every_second_under_load_leave_nothing_unanswered() {
    let s = Settings::new(&[]);
    let node = s.start(&["up"]);
    let mut slots = [s.worker("svc", "5", "60"), s.worker("svc", "5", "60")];
    node.wait_log("joined service svc", 2, LOG_WAIT);
    // 50 requests a second for 15 s, one attempt each, every answer within 5 s.
    let mut client = s.py("rate_client", &[&s.endpoint("IN_PIPE_PORT_A"), "svc", "50", "15", "5000"]);
    for second in 0..15 {
        std::thread::sleep(Duration::from_secs(1)); // the scenario's pace, not a wait to assert
        let slot = &mut slots[second % 2];
        slot.kill(); // SIGKILL, whatever it holds
        *slot = s.worker("svc", "5", "60");
    }
    wait(&mut [&mut client], Duration::from_secs(30));
    let line = client.ok_line();
    eprintln!("{line}");
    assert!(line.contains("b'OK'"), "{line}");
    assert!(node.count("left service svc") >= 10, "the losses were seen: {}", node.count("left service svc"));
}

//! Generation-2 workers (PROTOCOL.md §3) on GEN2_WORKER_PORT of `ezarch up`: the author's
//! published package pyez 0.1.1, unmodified, as worker and client, beside generation-1 peers.

mod interop;

use std::time::Duration;

use interop::node::{served, Settings, LOG_WAIT};
use interop::{spawn_script, wait, Peer};

fn gen2(role: &str, args: &[&str]) -> Peer {
    let mut all = vec![role];
    all.extend_from_slice(args);
    spawn_script("gen2.py", &all)
}

#[test]
fn a_pyez_worker_serves_pyez_and_generation_1_clients() {
    let s = Settings::new(&[]);
    let node = s.start(&["up"]);
    let mut worker = gen2("pyez_worker", &[&s.endpoint("GEN2_WORKER_PORT"), "svc", "15"]);
    node.wait_log("joined service svc", 1, LOG_WAIT);
    let mut pyez = gen2("pyez_client", &[&s.endpoint("IN_PIPE_PORT_A"), "svc", "10"]);
    let mut gen1 = s.py("client", &[&s.endpoint("IN_PIPE_PORT_A"), "svc", "10", "2", "1"]);
    wait(&mut [&mut pyez, &mut gen1], Duration::from_secs(30));
    pyez.ok_line();
    gen1.ok_line();
    // A worker's ERR reaches a generation-2 client as SERVICE_ERR.
    let mut failing =
        gen2("pyez_client", &[&s.endpoint("IN_PIPE_PORT_A"), "svc", "1", "/fail", "SERVICE_ERR"]);
    wait(&mut [&mut failing], Duration::from_secs(30));
    assert!(failing.ok_line().contains("b'boom'"), "{}", failing.ok_line());
    wait(&mut [&mut worker], Duration::from_secs(30));
    assert_eq!(served(&worker), 21);
}

#[test]
fn both_generations_serve_one_service() {
    let s = Settings::new(&[]);
    let node = s.start(&["up"]);
    let mut new = gen2("pyez_worker", &[&s.endpoint("GEN2_WORKER_PORT"), "svc", "15", "20"]);
    let mut old = s.worker("svc", "20", "15");
    node.wait_log("joined service svc", 2, LOG_WAIT);
    let mut client = s.py("inflight", &[&s.endpoint("IN_PIPE_PORT_A"), "svc", "60", "6", "10000"]);
    wait(&mut [&mut client], Duration::from_secs(30));
    assert!(client.ok_line().contains("(b'OK', b'x'): 60"), "{}", client.ok_line());
    wait(&mut [&mut new, &mut old], Duration::from_secs(30));
    let (n, o) = (served(&new), served(&old));
    assert_eq!(n + o, 60);
    assert!(n >= 10 && o >= 10, "work was not shared: generation 2 {n}, generation 1 {o}");
}

#[test]
fn a_request_not_acked_in_time_goes_to_another_worker() {
    let s = Settings::new(&[]);
    let node = s.start(&["up"]);
    let mut silent = gen2("silent_gen2_worker", &[&s.endpoint("GEN2_WORKER_PORT"), "svc", "15"]);
    node.wait_log("joined service svc", 1, LOG_WAIT);
    // The request goes to the only worker, the silent one; then a good one joins.
    let mut client = gen2("pyez_client", &[&s.endpoint("IN_PIPE_PORT_A"), "svc", "1"]);
    silent.wait_line("GOT 1", Duration::from_secs(20));
    let mut good = gen2("pyez_worker", &[&s.endpoint("GEN2_WORKER_PORT"), "svc", "15"]);
    // No ACK within 1 s: the request is sent again, to the good worker, and answered.
    wait(&mut [&mut client], Duration::from_secs(30));
    client.ok_line();
    wait(&mut [&mut silent, &mut good], Duration::from_secs(30));
    assert!(silent.ok_line().ends_with("received 1"), "{}", silent.ok_line());
    assert_eq!(served(&good), 1);
}

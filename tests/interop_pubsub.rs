//! Our PUB and SUB against real pyzmq SUB, XSUB and PUB peers (ZMTP.md §5 cases 1, 20, 21, 23,
//! 24, 25).

mod interop;

use std::time::Duration;

use bytes::Bytes;
use ezarch::reactor::{Reactor, SocketId};
use ezarch::socket::{SocketOptions, SocketType};
use interop::{drive, free_endpoint, spawn};

fn publisher(reactor: &mut Reactor) -> (SocketId, String) {
    let socket = reactor.socket(SocketType::Pub, SocketOptions::default()).unwrap();
    let addr = reactor.bind(socket, "tcp://127.0.0.1:0").unwrap();
    (socket, format!("tcp://{addr}"))
}

fn msg(frames: &[&str]) -> Vec<Bytes> {
    frames.iter().map(|f| Bytes::copy_from_slice(f.as_bytes())).collect()
}

fn wait_for_subscriptions(reactor: &mut Reactor, socket: SocketId, count: usize) {
    let ok = reactor.run_until(Duration::from_secs(10), |r| r.subscription_count(socket) >= count).unwrap();
    assert!(ok, "subscriptions did not arrive ({} of {count})", reactor.subscription_count(socket));
}

#[test]
fn publisher_matches_prefixes_on_the_first_frame() {
    let mut reactor = Reactor::new().unwrap();
    let (publisher, endpoint) = publisher(&mut reactor);
    let mut prefix = spawn("sub_check", &endpoint, &["A", "A,AB,A|tail"]);
    let mut all = spawn("sub_check", &endpoint, &["*", "A,AB,BA,A|tail,C"]);
    wait_for_subscriptions(&mut reactor, publisher, 4);
    for m in [&["A"][..], &["AB"], &["BA"], &["A", "tail"], &["C"], &["STOP"]] {
        reactor.send(publisher, msg(m)).unwrap();
    }
    drive(&mut reactor, &mut [&mut prefix, &mut all], Duration::from_secs(20), |_| {});
    prefix.ok_line();
    all.ok_line();
}

#[test]
fn publisher_counts_subscriptions_in_both_forms() {
    let mut reactor = Reactor::new().unwrap();
    let (publisher, endpoint) = publisher(&mut reactor);
    let mut xsub = spawn("raw_sub_counting", &endpoint, &[]);
    // "A" twice (command + message), then "CTL", in one write: once CTL is held (two distinct
    // topics), both A's before it on the same connection have been counted too.
    wait_for_subscriptions(&mut reactor, publisher, 2);
    reactor.send(publisher, msg(&["A1"])).unwrap();
    reactor.send(publisher, msg(&["CTL-cancel-once"])).unwrap();
    // After one cancel "A" is still held once; the XSUB then subscribes CTL2.
    wait_for_subscriptions(&mut reactor, publisher, 3);
    reactor.send(publisher, msg(&["A2"])).unwrap();
    reactor.send(publisher, msg(&["CTL2-cancel-again"])).unwrap();
    // The second cancel removes "A"; CTL3 and CTL4 follow it, so 4 topics means it was applied.
    wait_for_subscriptions(&mut reactor, publisher, 4);
    reactor.send(publisher, msg(&["A3-must-not-arrive"])).unwrap();
    reactor.send(publisher, msg(&["CTL3-stop"])).unwrap();
    drive(&mut reactor, &mut [&mut xsub], Duration::from_secs(20), |_| {});
    xsub.ok_line();
}

#[test]
fn a_slow_subscriber_is_dropped_for_at_its_hwm_without_slowing_the_fast_one() {
    let mut reactor = Reactor::new().unwrap();
    let options = SocketOptions { send_hwm: 100, write_budget: 64 << 10, ..SocketOptions::default() };
    let publisher = reactor.socket(SocketType::Pub, options).unwrap();
    let endpoint = format!("tcp://{}", reactor.bind(publisher, "tcp://127.0.0.1:0").unwrap());
    let mut fast = spawn("sub_slow", &endpoint, &["1"]);
    let mut slow = spawn("sub_slow", &endpoint, &["0"]);
    wait_for_subscriptions(&mut reactor, publisher, 2);
    let total = 20_000;
    let body = Bytes::from(vec![b'x'; 1000]);
    for i in 0..total {
        reactor.send(publisher, vec![Bytes::from(format!("m{i}")), body.clone()]).unwrap();
        if i % 50 == 0 {
            reactor.poll(Some(Duration::from_millis(1))).unwrap();
        }
    }
    reactor.send(publisher, msg(&["STOP"])).unwrap();
    drive(&mut reactor, &mut [&mut fast, &mut slow], Duration::from_secs(30), |_| {});
    let fast_count: usize = fast.ok_line().rsplit(' ').next().unwrap().parse().unwrap();
    let slow_count: usize = slow.ok_line().rsplit(' ').next().unwrap().parse().unwrap();
    let dropped = reactor.stats(publisher).unwrap().dropped_hwm;
    assert!(slow_count < total / 2, "slow subscriber got {slow_count} of {total}");
    assert!(dropped as usize >= total / 2, "only {dropped} drops counted");
    assert!(fast_count * 5 >= total * 4, "fast subscriber got {fast_count} of {total}");
}

#[test]
fn subscriber_gets_only_its_topics_and_resubscribes_after_a_publisher_restart() {
    let mut reactor = Reactor::new().unwrap();
    let endpoint = free_endpoint();
    let sub = reactor.socket(SocketType::Sub, SocketOptions::default()).unwrap();
    reactor.subscribe(sub, b"A").unwrap();
    reactor.connect(sub, &endpoint).unwrap();
    for round in 0..2 {
        let mut publisher = spawn("pub_server", &endpoint, &["100"]);
        let mut got = Vec::new();
        drive(&mut reactor, &mut [&mut publisher], Duration::from_secs(30), |r| {
            while let Some(m) = r.recv(sub) {
                got.push(m);
            }
        });
        publisher.ok_line();
        assert!(got.len() > 20, "round {round}: only {} messages", got.len());
        assert!(got.iter().all(|m| &m[0][..] == b"A"), "round {round}: a B message slipped through");
    }
}

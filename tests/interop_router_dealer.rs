//! Our ROUTER and DEALER against real pyzmq DEALER and ROUTER peers, in both bind and connect
//! roles (ZMTP.md §5 cases 1, 7, 8, 12, 14, 16, 17, 36, 37).

mod interop;

use std::time::Duration;

use bytes::Bytes;
use ezarch::reactor::Reactor;
use ezarch::socket::{SocketOptions, SocketType};
use interop::{bound, drive, echo, free_endpoint, receive_while_peer_runs, spawn};

#[test]
fn router_echoes_for_pyzmq_dealers_with_and_without_identity() {
    let mut reactor = Reactor::new().unwrap();
    let (router, endpoint) = bound(&mut reactor, SocketType::Router, SocketOptions::default());
    let mut named = spawn("dealer_echo", &endpoint, &["named-peer", "5"]);
    let mut anonymous = spawn("dealer_echo", &endpoint, &["", "5"]);
    drive(&mut reactor, &mut [&mut named, &mut anonymous], Duration::from_secs(30), |r| echo(r, router));
    named.ok_line();
    anonymous.ok_line();
}

#[test]
fn router_gives_anonymous_dealers_unique_5_byte_identities() {
    let mut reactor = Reactor::new().unwrap();
    let (router, endpoint) = bound(&mut reactor, SocketType::Router, SocketOptions::default());
    let mut peer = spawn("dealer_identity_report", &endpoint, &["4"]);
    drive(&mut reactor, &mut [&mut peer], Duration::from_secs(30), |r| {
        while let Some(message) = r.recv(router) {
            let id = message[0].clone();
            r.send(router, vec![id.clone(), id]).unwrap();
        }
    });
    peer.ok_line();
}

#[test]
fn dealer_connects_to_a_pyzmq_router_and_gets_echoes() {
    let mut reactor = Reactor::new().unwrap();
    let endpoint = free_endpoint();
    let mut peer = spawn("router_echo", &endpoint, &["1"]);
    let dealer = reactor.socket(SocketType::Dealer, SocketOptions::default()).unwrap();
    reactor.connect(dealer, &endpoint).unwrap();
    let sizes = [0usize, 1, 255, 256, 65536, 16 << 20];
    for (i, &size) in sizes.iter().enumerate() {
        let body = Bytes::from(vec![i as u8; size]);
        reactor.send(dealer, vec![Bytes::from(format!("part-{i}")), body]).unwrap();
    }
    reactor.send(dealer, vec![Bytes::from_static(b"STOP")]).unwrap();
    let got =
        receive_while_peer_runs(&mut reactor, dealer, &mut peer, sizes.len() + 1, Duration::from_secs(5));
    peer.ok_line();
    assert_eq!(got.len(), sizes.len() + 1);
    for (i, &size) in sizes.iter().enumerate() {
        assert_eq!(got[i][1].len(), size);
        assert!(got[i][1].iter().all(|&b| b == i as u8));
    }
}

#[test]
fn roles_reversed_our_dealer_binds_and_a_pyzmq_router_connects() {
    let mut reactor = Reactor::new().unwrap();
    let (dealer, endpoint) = bound(&mut reactor, SocketType::Dealer, SocketOptions::default());
    let mut peer = spawn("router_echo", &endpoint, &["0", "3"]);
    let parts: Vec<Bytes> =
        (0..10).map(|i| Bytes::from(vec![i as u8; [0, 1, 255, 256, 9000][i % 5]])).collect();
    for _ in 0..3 {
        reactor.send(dealer, parts.clone()).unwrap();
    }
    let mut got = Vec::new();
    drive(&mut reactor, &mut [&mut peer], Duration::from_secs(30), |r| {
        got.extend(std::iter::from_fn(|| r.recv(dealer)))
    });
    reactor
        .run_until(Duration::from_secs(5), |r| {
            got.extend(std::iter::from_fn(|| r.recv(dealer)));
            got.len() == 3
        })
        .unwrap();
    peer.ok_line();
    assert_eq!(got, vec![parts.clone(), parts.clone(), parts], "10-part messages came back intact");
}

#[test]
fn hundred_thousand_messages_arrive_in_order() {
    let mut reactor = Reactor::new().unwrap();
    // The peer reads only after sending all 100,000, so our queue to it must hold them all:
    // at the default HWM of 1000 a ROUTER drops, as libzmq's does.
    let options = SocketOptions { send_hwm: 200_000, ..SocketOptions::default() };
    let (router, endpoint) = bound(&mut reactor, SocketType::Router, options);
    let mut peer = spawn("dealer_stream", &endpoint, &["100000"]);
    drive(&mut reactor, &mut [&mut peer], Duration::from_secs(60), |r| echo(r, router));
    peer.ok_line();
    let stats = reactor.stats(router).unwrap();
    assert_eq!((stats.received, stats.sent, stats.dropped_hwm), (100_000, 100_000, 0));
}

#[test]
fn pyzmq_metadata_properties_are_visible() {
    let mut reactor = Reactor::new().unwrap();
    let (router, endpoint) = bound(&mut reactor, SocketType::Router, SocketOptions::default());
    let mut peer = spawn("dealer_metadata", &endpoint, &[]);
    drive(&mut reactor, &mut [&mut peer], Duration::from_secs(30), |r| {
        while let Some(message) = r.recv(router) {
            let value = r.peer_metadata(router, &message[0], "X-hello").unwrap_or_default();
            r.send(router, vec![message[0].clone(), value]).unwrap();
        }
    });
    peer.ok_line();
}

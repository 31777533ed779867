//! Hostile, stalled and odd peers against the reactor, next to good pyzmq peers that must not
//! notice (ZMTP.md §5 cases 6, 10, 12, 14, 17, 18, 26, 27, 29, 32, 33, 34, 37; §6).

mod interop;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use bytes::Bytes;
use ezarch::reactor::{CloseReason, PeerEvent, Reactor};
use ezarch::socket::{SocketOptions, SocketType};
use ezarch::zmtp;
use interop::{bound, drive, echo, free_endpoint, spawn, spin};

#[test]
fn a_pub_peer_is_refused_by_our_router_and_delivers_nothing() {
    let mut reactor = Reactor::new().unwrap();
    let (router, endpoint) = bound(&mut reactor, SocketType::Router, SocketOptions::default());
    // libzmq's PUB sees our READY first and hangs up; a raw peer waits for our verdict.
    let mut publisher = spawn("pub_connect", &endpoint, &[]);
    let mut raw = spawn("raw_wrong_type", &endpoint, &[]);
    let mut attached = 0;
    drive(&mut reactor, &mut [&mut publisher, &mut raw], Duration::from_secs(20), |r| {
        while let Some(event) = r.poll_peer_event() {
            attached += usize::from(matches!(event, PeerEvent::Connected { .. }));
        }
    });
    publisher.ok_line();
    raw.ok_line();
    let stats = reactor.stats(router).unwrap();
    assert_eq!((stats.received, attached), (0, 0));
    assert!(stats.peers_failed >= 1, "{stats:?}");
    assert!(reactor.recv(router).is_none());
}

#[test]
fn a_peer_killed_mid_multipart_delivers_nothing_partial() {
    let mut reactor = Reactor::new().unwrap();
    let (router, endpoint) = bound(&mut reactor, SocketType::Router, SocketOptions::default());
    let mut half = spawn("dealer_half_multipart", &endpoint, &[]);
    drive(&mut reactor, &mut [&mut half], Duration::from_secs(20), |_| {});
    half.ok_line();
    // Once its connection is closed, everything it sent has been read.
    assert!(reactor.run_until(Duration::from_secs(10), |r| r.connection_count() == 0).unwrap());
    assert!(reactor.recv(router).is_none(), "a partial message was delivered");
    let mut good = spawn("dealer_echo", &endpoint, &["", "3", "10,1000"]);
    drive(&mut reactor, &mut [&mut good], Duration::from_secs(20), |r| echo(r, router));
    good.ok_line();
}

#[test]
fn a_huge_declared_frame_closes_only_that_peer() {
    let mut reactor = Reactor::new().unwrap();
    let (router, endpoint) = bound(&mut reactor, SocketType::Router, SocketOptions::default());
    let mut hostile = spawn("raw_huge_frame", &endpoint, &[]);
    let mut good = spawn("dealer_echo", &endpoint, &["good", "20", "16,4096"]);
    drive(&mut reactor, &mut [&mut hostile, &mut good], Duration::from_secs(20), |r| echo(r, router));
    hostile.ok_line();
    good.ok_line();
    assert!(reactor.stats(router).unwrap().peers_failed >= 1);
}

#[test]
fn silent_and_half_greeting_peers_are_closed_after_the_handshake_timeout() {
    let mut reactor = Reactor::new().unwrap();
    let options = SocketOptions { handshake_timeout: Duration::from_millis(700), ..SocketOptions::default() };
    let (router, endpoint) = bound(&mut reactor, SocketType::Router, options);
    let mut silent = spawn("raw_silent", &endpoint, &["3"]);
    let mut good = spawn("dealer_echo", &endpoint, &["good", "5"]);
    drive(&mut reactor, &mut [&mut silent, &mut good], Duration::from_secs(20), |r| echo(r, router));
    silent.ok_line();
    good.ok_line();
}

#[test]
fn the_ttl_in_a_peers_ping_is_honoured_and_the_pong_echoes_its_context() {
    let mut reactor = Reactor::new().unwrap();
    let (_router, endpoint) = bound(&mut reactor, SocketType::Router, SocketOptions::default());
    let mut peer = spawn("raw_ping_ttl", &endpoint, &[]);
    drive(&mut reactor, &mut [&mut peer], Duration::from_secs(20), |_| {});
    peer.ok_line();
}

#[test]
fn our_heartbeat_closes_a_peer_that_stops_answering() {
    let mut reactor = Reactor::new().unwrap();
    let heartbeat = zmtp::Heartbeat {
        interval: Some(Duration::from_millis(100)),
        timeout: Some(Duration::from_millis(300)),
        ttl: Some(Duration::from_secs(1)),
    };
    let options = SocketOptions { heartbeat, ..SocketOptions::default() };
    let dealer = reactor.socket(SocketType::Dealer, options).unwrap();
    let endpoint = free_endpoint();
    let mut mute = spawn("raw_mute_server", &endpoint, &[]);
    // No wait for the bind: the DEALER retries until the server listens.
    reactor.connect(dealer, &endpoint).unwrap();
    drive(&mut reactor, &mut [&mut mute], Duration::from_secs(20), |_| {});
    mute.ok_line();
    assert!(reactor.stats(dealer).unwrap().peers_failed >= 1);
}

#[test]
fn pyzmq_heartbeats_keep_an_idle_link_alive() {
    let mut reactor = Reactor::new().unwrap();
    let (router, endpoint) = bound(&mut reactor, SocketType::Router, SocketOptions::default());
    let mut peer = spawn("dealer_heartbeat", &endpoint, &["2"]);
    drive(&mut reactor, &mut [&mut peer], Duration::from_secs(20), |r| echo(r, router));
    peer.ok_line();
}

#[test]
fn a_thousand_half_open_connections_do_not_delay_routing_or_fan_out() {
    let mut reactor = Reactor::new().unwrap();
    let (router, router_endpoint) = bound(&mut reactor, SocketType::Router, SocketOptions::default());
    let (publisher, pub_endpoint) = bound(&mut reactor, SocketType::Pub, SocketOptions::default());
    let mut idle = Vec::new();
    for i in 0..1000 {
        let endpoint = if i % 2 == 0 { &router_endpoint } else { &pub_endpoint };
        idle.push(TcpStream::connect(&endpoint["tcp://".len()..]).unwrap());
    }
    let mut good = spawn("dealer_echo", &router_endpoint, &["good", "50", "16"]);
    let mut sub = spawn("sub_hello", &pub_endpoint, &[]);
    drive(&mut reactor, &mut [&mut good, &mut sub], Duration::from_secs(30), |r| {
        echo(r, router);
        let _ = r.send(publisher, vec![Bytes::from_static(b"HELLO"), Bytes::from_static(b"world")]);
    });
    good.ok_line();
    sub.ok_line();
    assert!(reactor.connection_count() >= 1000, "half-open connections were closed early");
    drop(idle);
}

#[test]
fn junk_from_fuzzed_peers_leaves_a_good_subscriber_served() {
    let mut reactor = Reactor::new().unwrap();
    let (publisher, endpoint) = bound(&mut reactor, SocketType::Pub, SocketOptions::default());
    let mut sub = spawn("sub_hello", &endpoint, &[]);
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut junk = Vec::new();
    for i in 0..200 {
        let mut bytes = Vec::new();
        if i % 2 == 0 {
            // A valid greeting prefix, so the junk reaches the frame decoder too.
            bytes.extend_from_slice(b"\xff\0\0\0\0\0\0\0\0\x7f\x03\x01NULL");
            bytes.resize(64, 0);
        }
        for _ in 0..(64 + i * 7) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            bytes.push(seed as u8);
        }
        let mut stream = TcpStream::connect(&endpoint["tcp://".len()..]).unwrap();
        let _ = stream.write_all(&bytes);
        junk.push(stream);
        reactor.poll(Some(Duration::from_millis(1))).unwrap();
    }
    drive(&mut reactor, &mut [&mut sub], Duration::from_secs(30), |r| {
        let _ = r.send(publisher, vec![Bytes::from_static(b"HELLO"), Bytes::from_static(b"world")]);
    });
    sub.ok_line();
    assert!(reactor.stats(publisher).unwrap().peers_failed >= 50);
}

#[test]
fn router_to_router_with_a_named_pyzmq_router() {
    let mut reactor = Reactor::new().unwrap();
    let options =
        SocketOptions { identity: Bytes::from_static(b"ezarch-router"), ..SocketOptions::default() };
    let (router, endpoint) = bound(&mut reactor, SocketType::Router, options);
    let mut peer = spawn("router_named", &endpoint, &["py-router"]);
    drive(&mut reactor, &mut [&mut peer], Duration::from_secs(20), |r| {
        while let Some(message) = r.recv(router) {
            assert_eq!(&message[0][..], b"py-router");
            r.send(router, vec![message[0].clone(), Bytes::from_static(b"reply to py-router")]).unwrap();
        }
    });
    peer.ok_line();
}

#[test]
fn dealer_round_robins_across_pyzmq_routers() {
    let mut reactor = Reactor::new().unwrap();
    let dealer = reactor.socket(SocketType::Dealer, SocketOptions::default()).unwrap();
    let mut peers = Vec::new();
    for tag in ["r0", "r1", "r2"] {
        let endpoint = free_endpoint();
        peers.push(spawn("router_count", &endpoint, &["10", tag]));
        reactor.connect(dealer, &endpoint).unwrap();
    }
    reactor.run_until(Duration::from_secs(10), |r| r.peer_count(dealer) == 3).unwrap();
    for i in 0..30 {
        reactor.send(dealer, vec![Bytes::from(format!("job-{i}"))]).unwrap();
    }
    let mut tags = Vec::new();
    let mut refs: Vec<&mut interop::Peer> = peers.iter_mut().collect();
    drive(&mut reactor, &mut refs, Duration::from_secs(20), |r| {
        while let Some(m) = r.recv(dealer) {
            tags.push(m[0].clone());
        }
    });
    reactor
        .run_until(Duration::from_secs(2), |r| {
            while let Some(m) = r.recv(dealer) {
                tags.push(m[0].clone());
            }
            tags.len() == 30
        })
        .unwrap();
    for peer in &peers {
        peer.ok_line();
    }
    for tag in ["r0", "r1", "r2"] {
        assert_eq!(tags.iter().filter(|t| &t[..] == tag.as_bytes()).count(), 10, "{tag}");
    }
}

#[test]
fn dealer_queues_before_connect_and_across_a_peer_restart() {
    let mut reactor = Reactor::new().unwrap();
    let endpoint = free_endpoint();
    let dealer = reactor.socket(SocketType::Dealer, SocketOptions::default()).unwrap();
    reactor.connect(dealer, &endpoint).unwrap();
    for i in 0..3 {
        reactor.send(dealer, vec![Bytes::from(format!("early-{i}"))]).unwrap();
    }
    // Nobody listens yet: let the connector fail and retry for a while (a step of the scenario,
    // not a wait for something to assert).
    spin(&mut reactor, Duration::from_millis(300), |_| {});
    let mut first = spawn("dealer_restartable", &endpoint, &["first"]);
    reactor.run_until(Duration::from_secs(10), |r| r.peer_count(dealer) == 1).unwrap();
    reactor.send(dealer, vec![Bytes::from_static(b"END")]).unwrap();
    let mut replies = Vec::new();
    drive(&mut reactor, &mut [&mut first], Duration::from_secs(20), |r| {
        while let Some(m) = r.recv(dealer) {
            replies.push(m);
        }
    });
    assert!(first.ok_line().ends_with("early-0,early-1,early-2"), "{}", first.ok_line());
    let gone = reactor.run_until(Duration::from_secs(10), |r| r.peer_count(dealer) == 0).unwrap();
    assert!(gone, "the first peer exited but its connection is still counted");
    // The peer is gone: what we send now waits on the connecting side's pipe.
    for i in 0..3 {
        reactor.send(dealer, vec![Bytes::from(format!("outage-{i}"))]).unwrap();
    }
    spin(&mut reactor, Duration::from_millis(300), |_| {}); // reconnecting to nobody, as above
    reactor.send(dealer, vec![Bytes::from_static(b"END")]).unwrap();
    let mut second = spawn("dealer_restartable", &endpoint, &["second"]);
    drive(&mut reactor, &mut [&mut second], Duration::from_secs(20), |_| {});
    assert!(second.ok_line().ends_with("outage-0,outage-1,outage-2"), "{}", second.ok_line());
}

#[test]
fn duplicate_identity_keeps_the_first_peer_unless_handover_is_on() {
    for handover in [false, true] {
        let mut reactor = Reactor::new().unwrap();
        let options = SocketOptions { router_handover: handover, ..SocketOptions::default() };
        let (router, endpoint) = bound(&mut reactor, SocketType::Router, options);
        let mut first = spawn("dealer_duplicate", &endpoint, &["twin", "first", "4"]);
        reactor.run_until(Duration::from_secs(10), |r| r.peer_count(router) == 1).unwrap();
        let mut heard = Vec::new();
        reactor
            .run_until(Duration::from_secs(10), |r| {
                while let Some(m) = r.recv(router) {
                    heard.push(m[1].clone());
                }
                !heard.is_empty()
            })
            .unwrap();
        let mut second = spawn("dealer_duplicate", &endpoint, &["twin", "second", "2"]);
        let mut evicted = false;
        drive(&mut reactor, &mut [&mut first, &mut second], Duration::from_secs(20), |r| {
            while let Some(m) = r.recv(router) {
                heard.push(m[1].clone());
            }
            while let Some(event) = r.poll_peer_event() {
                evicted |= matches!(event, PeerEvent::Disconnected { reason: CloseReason::Evicted, .. });
            }
        });
        first.ok_line();
        second.ok_line();
        let heard_second = heard.iter().any(|m| &m[..] == b"second");
        assert_eq!(heard_second, handover, "handover={handover}: heard {heard:?}");
        assert_eq!(evicted, handover, "handover={handover}");
        if !handover {
            assert!(reactor.stats(router).unwrap().dropped_ignored_peer >= 1);
        }
    }
}

#[test]
fn router_at_hwm_drops_by_default_and_refuses_with_mandatory() {
    for mandatory in [false, true] {
        let mut reactor = Reactor::new().unwrap();
        let options = SocketOptions {
            send_hwm: 10,
            write_budget: 16 << 10,
            router_mandatory: mandatory,
            ..SocketOptions::default()
        };
        let (router, endpoint) = bound(&mut reactor, SocketType::Router, options);
        let done = std::env::temp_dir().join(format!("ezarch-router-hwm-{}-{mandatory}", std::process::id()));
        let _ = std::fs::remove_file(&done);
        let mut sleepy = spawn("router_hwm", &endpoint, &[done.to_str().unwrap()]);
        reactor.run_until(Duration::from_secs(10), |r| r.recv(router).is_some()).unwrap();
        let body = Bytes::from(vec![0u8; 64 << 10]);
        let mut refused = 0;
        for _ in 0..200 {
            if reactor.send(router, vec![Bytes::from_static(b"sleepy"), body.clone()]).is_err() {
                refused += 1;
            }
            reactor.poll(Some(Duration::ZERO)).unwrap();
        }
        let unroutable = reactor.send(router, vec![Bytes::from_static(b"nobody"), body.clone()]);
        let stats = reactor.stats(router).unwrap();
        assert!(stats.dropped_hwm > 0, "mandatory={mandatory}: {stats:?}");
        assert_eq!(refused > 0, mandatory, "mandatory={mandatory}: {refused} refused");
        assert_eq!(unroutable.is_err(), mandatory);
        assert_eq!(stats.dropped_unroutable, 1);
        std::fs::write(&done, b"").unwrap(); // the peer stays connected until now
        drive(&mut reactor, &mut [&mut sleepy], Duration::from_secs(20), |_| {});
        sleepy.ok_line();
        let _ = std::fs::remove_file(&done);
    }
}

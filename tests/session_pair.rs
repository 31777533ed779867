//! Two sessions wired back to back with a clock the test steps (quinn-proto's `Pair` style):
//! handshake, messages both ways, subscriptions, and heartbeats including their timeouts.

mod common;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::*;
use zmtp::{Config, Error, Event, Heartbeat, SocketType};

fn config(socket_type: SocketType, identity: &'static [u8]) -> Config {
    let mut config = Config::new(socket_type);
    config.identity = Bytes::from_static(identity);
    config
}

#[test]
fn dealer_and_router_handshake_and_exchange_messages() {
    let mut server_config = config(SocketType::Router, b"");
    server_config.metadata.push("X-Service", "echo");
    let mut pair = Pair::new(config(SocketType::Dealer, b"client-1"), server_config);
    pair.drive().unwrap();
    let [Event::HandshakeComplete(peer)] = &pair.server_events[..] else {
        panic!("{:?}", pair.server_events)
    };
    assert_eq!((peer.socket_type, &peer.identity[..]), (SocketType::Dealer, &b"client-1"[..]));
    let [Event::HandshakeComplete(peer)] = &pair.client_events[..] else {
        panic!("{:?}", pair.client_events)
    };
    assert_eq!(peer.socket_type, SocketType::Router);
    assert_eq!(peer.metadata.get("X-Service"), Some(&b(b"echo")));

    let request = vec![b(b""), b(b"\x02"), b(b"req-1"), b(b"svc"), Bytes::from(vec![9u8; 100_000])];
    pair.client.send(&request).unwrap();
    pair.server.send(&[b(b"reply")]).unwrap();
    pair.drive().unwrap();
    assert_eq!(pair.server_events.last(), Some(&Event::Message(request)));
    assert_eq!(pair.client_events.last(), Some(&Event::Message(vec![b(b"reply")])));
}

#[test]
fn subscriptions_flow_from_sub_to_pub_and_messages_back() {
    let mut pair = Pair::new(config(SocketType::Sub, b""), config(SocketType::Pub, b""));
    pair.drive().unwrap();
    pair.client.subscribe(&b(b"weather")).unwrap();
    pair.client.cancel(&b(b"weather")).unwrap();
    pair.drive().unwrap();
    assert_eq!(pair.server_events[1..], [Event::Subscribe(b(b"weather")), Event::Cancel(b(b"weather"))]);
    pair.server.send(&[b(b"weather"), b(b"sunny")]).unwrap();
    pair.drive().unwrap();
    assert_eq!(pair.client_events.last(), Some(&Event::Message(vec![b(b"weather"), b(b"sunny")])));
}

#[test]
fn heartbeats_keep_a_live_link_and_carry_the_ttl() {
    let mut client = config(SocketType::Dealer, b"");
    let ttl = Duration::from_secs(10);
    client.heartbeat = Heartbeat {
        interval: Some(Duration::from_secs(1)),
        timeout: Some(Duration::from_secs(3)),
        ttl: Some(ttl),
    };
    let mut pair = Pair::new(client, config(SocketType::Router, b""));
    pair.drive().unwrap();
    assert_eq!(pair.client.poll_timeout(), Some(pair.now + Duration::from_secs(1)));
    for _ in 0..10 {
        let (c, s) = pair.advance(Duration::from_secs(1));
        c.unwrap();
        s.unwrap();
        pair.drive().unwrap();
    }
    let pings =
        pair.server_events.iter().filter(|e| matches!(e, Event::Ping { ttl: t, .. } if *t == ttl)).count();
    let pongs = pair.client_events.iter().filter(|e| matches!(e, Event::Pong { .. })).count();
    assert_eq!((pings, pongs), (10, 10));
}

#[test]
fn a_silent_peer_hits_our_heartbeat_timeout() {
    let mut client = config(SocketType::Dealer, b"");
    client.heartbeat = Heartbeat {
        interval: Some(Duration::from_secs(1)),
        timeout: Some(Duration::from_millis(2500)),
        ttl: None,
    };
    let mut pair = Pair::new(client, config(SocketType::Router, b""));
    pair.drive().unwrap();
    // From now on the server's bytes are lost: our PINGs go unanswered.
    let ping_sent_at = pair.now + Duration::from_secs(1);
    pair.advance(Duration::from_secs(1)).0.unwrap();
    output(&mut pair.client);
    assert_eq!(pair.client.poll_timeout(), Some(ping_sent_at + Duration::from_secs(1)));
    pair.advance(Duration::from_secs(1)).0.unwrap();
    pair.advance(Duration::from_millis(1000)).0.unwrap();
    assert_eq!(pair.client.poll_timeout(), Some(ping_sent_at + Duration::from_millis(2500)));
    pair.now = ping_sent_at + Duration::from_millis(2500);
    assert_eq!(pair.client.handle_timeout(pair.now), Err(Error::HeartbeatTimeout));
}

#[test]
fn any_bytes_from_the_peer_cancel_the_heartbeat_timeout() {
    let mut client = config(SocketType::Dealer, b"");
    client.heartbeat = Heartbeat {
        interval: Some(Duration::from_secs(10)),
        timeout: Some(Duration::from_secs(2)),
        ttl: None,
    };
    let mut pair = Pair::new(client, config(SocketType::Router, b""));
    pair.drive().unwrap();
    pair.advance(Duration::from_secs(10)).0.unwrap();
    output(&mut pair.client); // PING lost
    pair.now += Duration::from_secs(1);
    pair.server.send(&[b(b"data, not a PONG")]).unwrap();
    let bytes = output(&mut pair.server);
    pair.client.handle_input(&mut BytesMut::from(&bytes[..]), pair.now).unwrap();
    pair.advance(Duration::from_millis(1500)).0.unwrap();
}

#[test]
fn the_peers_ping_ttl_closes_the_link_when_it_falls_silent() {
    let mut client = config(SocketType::Dealer, b"");
    client.heartbeat = Heartbeat {
        interval: Some(Duration::from_secs(1)),
        timeout: None,
        ttl: Some(Duration::from_secs(3)),
    };
    let mut pair = Pair::new(client, config(SocketType::Router, b""));
    pair.drive().unwrap();
    pair.advance(Duration::from_secs(1)).0.unwrap();
    pair.drive().unwrap(); // the server got a PING with TTL 3 s
    let ping_at = pair.now;
    // The client vanishes: the server hears nothing more.
    assert_eq!(pair.server.poll_timeout(), Some(ping_at + Duration::from_secs(3)));
    pair.now = ping_at + Duration::from_millis(2999);
    assert_eq!(pair.server.handle_timeout(pair.now), Ok(()));
    pair.now = ping_at + Duration::from_secs(3);
    assert_eq!(pair.server.handle_timeout(pair.now), Err(Error::HeartbeatTimeout));
}

#[test]
fn we_never_send_a_ttl_above_655_deciseconds() {
    let mut client = config(SocketType::Dealer, b"");
    client.heartbeat = Heartbeat {
        interval: Some(Duration::from_secs(1)),
        timeout: None,
        ttl: Some(Duration::from_secs(70)),
    };
    let mut pair = Pair::new(client, config(SocketType::Router, b""));
    pair.drive().unwrap();
    pair.advance(Duration::from_secs(1)).0.unwrap();
    let ping = output(&mut pair.client);
    assert_eq!(ping, command(b"PING", &655u16.to_be_bytes()));
}

#[test]
fn a_zero_heartbeat_interval_is_off_not_a_ping_due_forever() {
    let mut client = config(SocketType::Dealer, b"");
    client.heartbeat = Heartbeat { interval: Some(Duration::ZERO), timeout: None, ttl: None };
    let mut pair = Pair::new(client, config(SocketType::Router, b""));
    pair.drive().unwrap();
    assert_eq!(pair.client.poll_timeout(), None, "no PING deadline at all");
    assert_eq!(pair.client.handle_timeout(pair.now), Ok(()));
    assert!(output(&mut pair.client).is_empty());
}

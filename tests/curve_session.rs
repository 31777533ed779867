//! CURVE sessions back to back, no network: the handshake, every kind of frame sealed both ways
//! (multipart, 1 MiB, subscriptions, heartbeats), and each malformed case closing only the
//! session that received it.

mod common;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::*;
use zmtp::curve::{Authorizer, Curve, KeyPair};
use zmtp::{Config, CurveError, Error, Event, GreetingError, Heartbeat, SocketType};

struct Keys {
    server: KeyPair,
    client: KeyPair,
}

fn keys() -> Keys {
    Keys {
        server: ezarch::sodium::generate_keys().unwrap(),
        client: ezarch::sodium::generate_keys().unwrap(),
    }
}

fn server_config(socket_type: SocketType, keys: &Keys, authorizer: Authorizer) -> Config {
    let mut config = Config::new(socket_type);
    let provider = ezarch::sodium::provider().unwrap();
    config.curve = Some(Curve::Server { keys: keys.server.clone(), authorizer, provider });
    config
}

fn client_config(socket_type: SocketType, keys: &Keys) -> Config {
    let mut config = Config::new(socket_type);
    let provider = ezarch::sodium::provider().unwrap();
    config.curve = Some(Curve::Client { keys: keys.client.clone(), server: *keys.server.public(), provider });
    config
}

fn curve_pair(client: SocketType, server: SocketType) -> (Pair, Keys) {
    let keys = keys();
    let pair = Pair::new(client_config(client, &keys), server_config(server, &keys, Authorizer::any()));
    (pair, keys)
}

#[test]
fn a_curve_handshake_carries_metadata_and_the_clients_key_then_messages_flow_sealed() {
    let (mut pair, keys) = curve_pair(SocketType::Dealer, SocketType::Router);
    pair.drive().unwrap();
    let [Event::HandshakeComplete(peer)] = &pair.server_events[..] else {
        panic!("{:?}", pair.server_events)
    };
    assert_eq!((peer.socket_type, peer.curve_key), (SocketType::Dealer, Some(*keys.client.public())));
    let [Event::HandshakeComplete(peer)] = &pair.client_events[..] else {
        panic!("{:?}", pair.client_events)
    };
    assert_eq!((peer.socket_type, peer.curve_key), (SocketType::Router, Some(*keys.server.public())));
    let big = Bytes::from(vec![7u8; 1 << 20]);
    let request = vec![b(b""), b(b"\x02"), b(b"req-1"), big.clone()];
    pair.client.send(&request).unwrap();
    let wire: Vec<u8> = pair.client.encoder().chunks().flatten().copied().collect();
    assert!(!wire.windows(6).any(|w| w == b"req-1\x00"[..6].as_ref()), "a request id went out in clear");
    assert!(!wire.windows(64).any(|w| w.iter().all(|&x| x == 7)), "the body went out in clear");
    pair.server.send(&[b(b"reply")]).unwrap();
    pair.drive().unwrap();
    assert_eq!(pair.server_events.last(), Some(&Event::Message(request)));
    assert_eq!(pair.client_events.last(), Some(&Event::Message(vec![b(b"reply")])));
}

#[test]
fn subscriptions_and_heartbeats_travel_sealed_too() {
    let keys = keys();
    let mut client = client_config(SocketType::Sub, &keys);
    client.heartbeat = Heartbeat { interval: Some(Duration::from_secs(1)), timeout: None, ttl: None };
    let mut pair = Pair::new(client, server_config(SocketType::Pub, &keys, Authorizer::any()));
    pair.drive().unwrap();
    pair.client.subscribe(&b(b"weather")).unwrap();
    pair.drive().unwrap();
    assert_eq!(pair.server_events.last(), Some(&Event::Subscribe(b(b"weather"))));
    for _ in 0..3 {
        let (c, s) = pair.advance(Duration::from_secs(1));
        c.unwrap();
        s.unwrap();
        pair.drive().unwrap();
    }
    let pings = pair.server_events.iter().filter(|e| matches!(e, Event::Ping { .. })).count();
    let pongs = pair.client_events.iter().filter(|e| matches!(e, Event::Pong { .. })).count();
    assert_eq!((pings, pongs), (3, 3));
}

#[test]
fn a_client_key_not_allowed_gets_an_error_and_the_server_closes() {
    let keys = keys();
    let only = *ezarch::sodium::generate_keys().unwrap().public();
    let server = server_config(SocketType::Router, &keys, Authorizer::new(move |k| *k == only));
    let mut pair = Pair::new(client_config(SocketType::Dealer, &keys), server);
    let err = pair.drive().unwrap_err();
    assert_eq!(err, Error::Curve(CurveError::Unauthorized { key: *keys.client.public() }));
    // The ERROR the server queued reaches the client, which ends with the server's reason.
    let to_client: Vec<u8> = pair.server.encoder().chunks().flatten().copied().collect();
    let got = pair.client.handle_input(&mut BytesMut::from(&to_client[..]), pair.now).unwrap_err();
    assert_eq!(got, Error::PeerError { reason: b(b"400") });
}

#[test]
fn null_against_curve_is_a_mechanism_mismatch() {
    let keys = keys();
    let mut pair = Pair::new(
        Config::new(SocketType::Dealer),
        server_config(SocketType::Router, &keys, Authorizer::any()),
    );
    let err = pair.drive().unwrap_err();
    assert!(matches!(err, Error::Greeting(GreetingError::MechanismMismatch { .. })), "{err:?}");
}

/// The bytes of one sealed frame from the client, after a completed handshake.
fn sealed_frame(pair: &mut Pair) -> Vec<u8> {
    pair.client.send(&[b(b"secret")]).unwrap();
    let bytes: Vec<u8> = pair.client.encoder().chunks().flatten().copied().collect();
    let n = bytes.len();
    pair.client.encoder().consume(n);
    bytes
}

#[test]
fn a_replayed_or_altered_message_closes_the_receiving_session() {
    let (mut pair, _) = curve_pair(SocketType::Dealer, SocketType::Router);
    pair.drive().unwrap();
    let frame = sealed_frame(&mut pair);
    pair.server.handle_input(&mut BytesMut::from(&frame[..]), pair.now).unwrap();
    let replay = pair.server.handle_input(&mut BytesMut::from(&frame[..]), pair.now).unwrap_err();
    assert!(matches!(replay, Error::Curve(CurveError::NonceNotIncreasing { .. })), "{replay:?}");

    let (mut pair, _) = curve_pair(SocketType::Dealer, SocketType::Router);
    pair.drive().unwrap();
    let mut frame = sealed_frame(&mut pair);
    let last = frame.len() - 1;
    frame[last] ^= 0x80;
    let altered = pair.server.handle_input(&mut BytesMut::from(&frame[..]), pair.now).unwrap_err();
    assert_eq!(altered, Error::Curve(CurveError::BadBox { command: "MESSAGE" }));

    let (mut pair, _) = curve_pair(SocketType::Dealer, SocketType::Router);
    pair.drive().unwrap();
    // A plain (unsealed) frame after the handshake.
    let plain = pair.server.handle_input(&mut BytesMut::from(&b"\x00\x05hello"[..]), pair.now).unwrap_err();
    assert_eq!(plain, Error::Curve(CurveError::NotAMessage));
}

#[test]
fn a_short_or_garbled_hello_closes_the_server_session_at_once() {
    let keys = keys();
    let mut pair = Pair::new(client_config(SocketType::Dealer, &keys), server_config_for(&keys));
    let mut hello: Vec<u8> = pair.client.encoder().chunks().flatten().copied().collect();
    // Greeting (64 bytes), then the HELLO command frame: flags, size 200, body.
    hello[64 + 2 + 130] ^= 0xff;
    let err = pair.server.handle_input(&mut BytesMut::from(&hello[..]), pair.now).unwrap_err();
    assert_eq!(err, Error::Curve(CurveError::BadBox { command: "HELLO" }));
    let mut pair = Pair::new(client_config(SocketType::Dealer, &keys), server_config_for(&keys));
    let hello: Vec<u8> = pair.client.encoder().chunks().flatten().copied().collect();
    let mut short = hello[..64].to_vec();
    short.extend_from_slice(&[0x04, 0x06, 0x05, b'H', b'E', b'L', b'L', b'O']);
    let err = pair.server.handle_input(&mut BytesMut::from(&short[..]), pair.now).unwrap_err();
    assert_eq!(err, Error::Curve(CurveError::Malformed { command: "HELLO" }));
}

fn server_config_for(keys: &Keys) -> Config {
    server_config(SocketType::Router, keys, Authorizer::any())
}

#[test]
fn oversized_frames_inside_messages_are_refused_after_opening() {
    let keys = keys();
    let mut server = server_config(SocketType::Router, &keys, Authorizer::any());
    server.limits.max_frame_size = 1000;
    let mut client = client_config(SocketType::Dealer, &keys);
    client.limits.max_frame_size = 1 << 20;
    let mut pair = Pair::new(client, server);
    pair.drive().unwrap();
    pair.client.send(&[Bytes::from(vec![1u8; 1001])]).unwrap();
    let err = pair.drive().unwrap_err();
    assert!(matches!(err, Error::Frame(_)), "{err:?}");
}

#[test]
fn a_socket_type_the_server_cannot_talk_to_gets_an_error_instead_of_ready() {
    let keys = keys();
    let mut pair = Pair::new(client_config(SocketType::Pub, &keys), server_config_for(&keys));
    let err = pair.drive().unwrap_err();
    assert!(matches!(err, Error::IncompatibleSocketType { .. }), "{err:?}");
    let to_client: Vec<u8> = pair.server.encoder().chunks().flatten().copied().collect();
    assert!(!to_client.windows(6).any(|w| w == b"\x05READY"), "READY went to a refused peer");
    let got = pair.client.handle_input(&mut BytesMut::from(&to_client[..]), pair.now).unwrap_err();
    assert_eq!(got, Error::PeerError { reason: b(b"Invalid socket type") });
}

#[test]
fn a_sealed_command_over_the_command_limit_is_refused() {
    let keys = keys();
    let mut server = server_config(SocketType::Pub, &keys, Authorizer::any());
    server.limits.max_command_size = 1024;
    let mut pair = Pair::new(client_config(SocketType::Sub, &keys), server);
    pair.drive().unwrap();
    pair.client.subscribe(&Bytes::from(vec![b't'; 4096])).unwrap();
    let err = pair.drive().unwrap_err();
    assert!(matches!(err, Error::Frame(zmtp::FrameError::CommandTooLarge { .. })), "{err:?}");
}

//! The codec against bytes captured from real pyzmq 27 / libzmq 4.3.5 (tests/capture_vectors.py):
//! we decode what libzmq sends, and what we encode equals what libzmq sends for the same thing.

mod common;

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::*;
use zmtp::{Config, Event, FrameDecoder, Limits, Session, SocketType};

/// (vector, the socket type we play against it, the peer type it declares, identity)
const HANDSHAKES: &[(&str, SocketType, SocketType, &[u8])] = &[
    ("handshake_dealer.bin", SocketType::Router, SocketType::Dealer, b""),
    ("handshake_dealer_id.bin", SocketType::Router, SocketType::Dealer, b"abc"),
    ("handshake_router.bin", SocketType::Dealer, SocketType::Router, b""),
    ("handshake_router_id.bin", SocketType::Dealer, SocketType::Router, b"abc"),
    ("handshake_pub.bin", SocketType::Sub, SocketType::Pub, b""),
    ("handshake_pub_id.bin", SocketType::Sub, SocketType::Pub, b""),
    ("handshake_sub.bin", SocketType::Pub, SocketType::Sub, b""),
    ("handshake_sub_id.bin", SocketType::Pub, SocketType::Sub, b""),
];

fn handshake_event(events: &[Event]) -> &zmtp::PeerInfo {
    match events {
        [Event::HandshakeComplete(info)] => info,
        other => panic!("expected one HandshakeComplete, got {other:?}"),
    }
}

#[test]
fn pyzmq_handshakes_decode_in_one_piece() {
    let now = Instant::now();
    for &(file, ours, theirs, identity) in HANDSHAKES {
        let mut session = Session::new(Config::new(ours), now);
        let events = feed(&mut session, &vector(file), now).unwrap_or_else(|e| panic!("{file}: {e}"));
        let info = handshake_event(&events);
        assert_eq!(info.socket_type, theirs, "{file}");
        assert_eq!(&info.identity[..], identity, "{file}");
        assert_eq!((info.major, info.minor), (3, 1), "{file}");
    }
}

#[test]
fn pyzmq_handshakes_decode_byte_by_byte_and_in_libzmq_steps() {
    let now = Instant::now();
    for &(file, ours, theirs, _) in HANDSHAKES {
        let bytes = vector(file);
        // libzmq's own pacing (10 + 1 + 53 + READY), then one byte at a time.
        for splits in [vec![10, 11, 64], (1..bytes.len()).collect::<Vec<_>>()] {
            let mut session = Session::new(Config::new(ours), now);
            let mut buf = BytesMut::new();
            let mut start = 0;
            for end in splits.into_iter().chain([bytes.len()]) {
                buf.extend_from_slice(&bytes[start..end]);
                session.handle_input(&mut buf, now).unwrap();
                start = end;
            }
            assert_eq!(handshake_event(&events(&mut session)).socket_type, theirs, "{file}");
        }
    }
}

/// Our greeting + READY equal pyzmq's for the same type and identity, except the 8 padding
/// bytes, where libzmq writes identity length + 1 and RFC 23 says to send zeros.
#[test]
fn our_handshake_bytes_equal_pyzmq_for_the_same_type_and_identity() {
    let cases: &[(&str, SocketType, &[u8])] = &[
        ("handshake_dealer.bin", SocketType::Dealer, b""),
        ("handshake_dealer_id.bin", SocketType::Dealer, b"abc"),
        ("handshake_router.bin", SocketType::Router, b""),
        ("handshake_router_id.bin", SocketType::Router, b"abc"),
        ("handshake_pub.bin", SocketType::Pub, b""),
        ("handshake_sub.bin", SocketType::Sub, b""),
    ];
    for &(file, ours, identity) in cases {
        let mut config = Config::new(ours);
        config.identity = Bytes::copy_from_slice(identity);
        let ours_bytes = output(&mut Session::new(config, Instant::now()));
        let theirs = vector(file);
        assert_eq!(ours_bytes.len(), theirs.len(), "{file}");
        assert_eq!(ours_bytes[0], theirs[0], "{file}");
        assert_eq!(&ours_bytes[1..9], &[0u8; 8], "{file}: we send zero padding");
        assert_eq!(&ours_bytes[9..], &theirs[9..], "{file}");
    }
}

#[test]
fn pyzmq_frames_decode_and_our_encoding_matches() {
    for size in [0usize, 1, 255, 256, 65536] {
        let bytes = vector(&format!("frame_{size}.bin"));
        let expected: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let mut decoder = FrameDecoder::new(Limits::default());
        let mut buf = BytesMut::from(&bytes[..]);
        let frame = decoder.decode(&mut buf).unwrap().expect("a whole frame");
        assert_eq!(frame.body, expected, "size {size}");
        assert!(!frame.more() && !frame.is_command());
        assert!(buf.is_empty());

        let mut encoder = zmtp::Encoder::new();
        encoder.push_frame(&Bytes::from(expected), false);
        let ours: Vec<u8> = encoder.chunks().flatten().copied().collect();
        assert_eq!(ours, bytes, "size {size}");
    }
    // ZMTP.md §5.16: last-frame headers as libzmq writes them.
    assert_eq!(&vector("frame_255.bin")[..2], &[0x00, 0xff]);
    assert_eq!(&vector("frame_256.bin")[..9], &[0x02, 0, 0, 0, 0, 0, 0, 1, 0]);
}

#[test]
fn pyzmq_multipart_decodes_to_one_message() {
    let now = Instant::now();
    let mut session = active_session(SocketType::Router, b"DEALER", 1, now);
    let events = feed(&mut session, &vector("multipart.bin"), now).unwrap();
    let long = Bytes::from(vec![b'x'; 300]);
    let expected = vec![b(b""), b(b"\x02"), b(b"req-1"), b(b"svc"), long];
    assert_eq!(events, vec![Event::Message(expected.clone())]);
    session.send(&expected).unwrap();
    assert_eq!(output(&mut session), vector("multipart.bin"));
}

#[test]
fn subscriptions_as_commands_match_pyzmq_both_ways() {
    let now = Instant::now();
    let mut publisher = active_session(SocketType::Pub, b"SUB", 1, now);
    let events = feed(&mut publisher, &vector("subscribe_command.bin"), now).unwrap();
    assert_eq!(events, vec![Event::Subscribe(b(b"topic"))]);
    let events = feed(&mut publisher, &vector("cancel_command.bin"), now).unwrap();
    assert_eq!(events, vec![Event::Cancel(b(b"topic"))]);

    let mut subscriber = active_session(SocketType::Sub, b"PUB", 1, now);
    subscriber.subscribe(&b(b"topic")).unwrap();
    assert_eq!(output(&mut subscriber), vector("subscribe_command.bin"));
    subscriber.cancel(&b(b"topic")).unwrap();
    assert_eq!(output(&mut subscriber), vector("cancel_command.bin"));
}

#[test]
fn subscriptions_as_messages_match_pyzmq_for_zmtp_3_0_peers() {
    let now = Instant::now();
    let mut publisher = active_session(SocketType::Pub, b"SUB", 0, now);
    let events = feed(&mut publisher, &vector("subscribe_message.bin"), now).unwrap();
    assert_eq!(events, vec![Event::Subscribe(b(b"topic"))]);
    let events = feed(&mut publisher, &vector("cancel_message.bin"), now).unwrap();
    assert_eq!(events, vec![Event::Cancel(b(b"topic"))]);

    let mut subscriber = active_session(SocketType::Sub, b"PUB", 0, now);
    subscriber.subscribe(&b(b"topic")).unwrap();
    assert_eq!(output(&mut subscriber), vector("subscribe_message.bin"));
    subscriber.cancel(&b(b"topic")).unwrap();
    assert_eq!(output(&mut subscriber), vector("cancel_message.bin"));
}

#[test]
fn pyzmq_ping_decodes_and_our_pong_matches_pyzmqs() {
    let now = Instant::now();
    let mut session = active_session(SocketType::Router, b"DEALER", 1, now);
    let events = feed(&mut session, &vector("ping.bin"), now).unwrap();
    // pyzmq HEARTBEAT_TTL=2500 ms travels as 25 deciseconds.
    assert_eq!(events, vec![Event::Ping { ttl: Duration::from_millis(2500), context: Bytes::new() }]);
    assert_eq!(output(&mut session), command(b"PONG", b""));

    let ping = command(b"PING", b"\x00\x000123456789abcdef");
    feed(&mut session, &ping, now).unwrap();
    assert_eq!(output(&mut session), vector("pong.bin"));
}

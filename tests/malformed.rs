//! One test per malformed input (ZMTP.md §1 and §6): each yields a typed error, never a panic,
//! and nothing is allocated for a declared length over the limits. Also the inputs that look odd
//! but that libzmq tolerates, which we must tolerate too.

mod common;

use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::*;
use zmtp::error::{CommandError, Error, FrameError, GreetingError, UnexpectedFrame};
use zmtp::{Config, Event, FrameDecoder, Limits, Mechanism, Session, SocketType};

fn fresh(ours: SocketType) -> Session {
    Session::new(Config::new(ours), Instant::now())
}

fn feed_err(session: &mut Session, bytes: &[u8]) -> Error {
    feed(session, bytes, Instant::now()).expect_err("input must be refused")
}

/// A long data frame header declaring `size` bytes, with a few body bytes after it.
fn long_header(flags: u8, size: u64) -> Vec<u8> {
    let mut out = vec![flags | 0x02];
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(b"tail");
    out
}

// ---- declared sizes (CVE-2019-6250, libzmq#1488, rzmq#9) ----

#[test]
fn huge_declared_data_frame_sizes_are_refused_before_allocation() {
    let k_values = (0..8).map(|k| usize::MAX as u64 - k);
    let sizes = [i64::MAX as u64, u64::MAX, (1 << 32) + 1].into_iter().chain(k_values);
    for size in sizes {
        let mut decoder = FrameDecoder::new(Limits::default());
        let mut buf = BytesMut::from(&long_header(0, size)[..]);
        let err = decoder.decode(&mut buf).expect_err("refused");
        assert_eq!(
            err,
            FrameError::FrameTooLarge { declared: size, limit: Limits::default().max_frame_size }
        );
        assert!(buf.capacity() < 1024, "nothing reserved for {size}");
    }
}

#[test]
fn huge_declared_command_sizes_are_refused() {
    for size in [i64::MAX as u64, u64::MAX, usize::MAX as u64 - 1] {
        let mut decoder = FrameDecoder::new(Limits::default());
        let mut buf = BytesMut::from(&long_header(0x04, size)[..]);
        let err = decoder.decode(&mut buf).unwrap_err();
        assert!(matches!(err, FrameError::CommandTooLarge { declared, .. } if declared == size));
    }
}

#[test]
fn huge_sizes_close_a_live_session_with_a_typed_error() {
    let now = Instant::now();
    for size in [i64::MAX as u64, u64::MAX] {
        let mut session = active_session(SocketType::Router, b"DEALER", 1, now);
        let err = feed_err(&mut session, &long_header(0, size));
        assert!(matches!(err, Error::Frame(FrameError::FrameTooLarge { .. })), "{err:?}");
        // The session stays closed.
        assert_eq!(feed(&mut session, b"\x00\x00", now).unwrap_err(), err);
    }
}

#[test]
fn declared_size_one_past_the_remaining_bytes_waits_for_more() {
    for body_len in [0usize, 1, 100, 255, 300, 9000] {
        let body = vec![7u8; body_len];
        let mut wire = frame(0, &body);
        wire.pop(); // "remaining + 1": the header promises one byte more than we have.
        if body_len == 0 {
            wire = vec![0x00, 0x01];
        }
        let mut decoder = FrameDecoder::new(Limits::default());
        let mut buf = BytesMut::from(&wire[..]);
        assert_eq!(decoder.decode(&mut buf), Ok(None), "len {body_len}");
        assert_eq!(decoder.needed(&buf), 1);
        buf.extend_from_slice(&[7]);
        let got = decoder.decode(&mut buf).unwrap().unwrap();
        assert_eq!(got.body.len(), body_len.max(1));
    }
}

#[test]
fn frame_over_the_configured_limit_is_refused_at_the_header() {
    let limits = Limits { max_frame_size: 1000, ..Limits::default() };
    let mut decoder = FrameDecoder::new(limits);
    let mut buf = BytesMut::from(&frame(0, &[0u8; 1001])[..9]);
    assert_eq!(decoder.decode(&mut buf), Err(FrameError::FrameTooLarge { declared: 1001, limit: 1000 }));
    let mut buf = BytesMut::from(&frame(0, &[0u8; 1000])[..]);
    assert_eq!(decoder.decode(&mut buf).unwrap().unwrap().body.len(), 1000);
}

#[test]
fn message_over_the_total_limit_is_refused_at_the_header_that_crosses_it() {
    let limits = Limits { max_frame_size: 100, max_message_size: 250, ..Limits::default() };
    let mut decoder = FrameDecoder::new(limits);
    let mut wire = frame(0x01, &[1; 100]);
    wire.extend(frame(0x01, &[2; 100]));
    wire.extend(frame(0x00, &[3; 51]));
    let mut buf = BytesMut::from(&wire[..]);
    assert!(decoder.decode(&mut buf).unwrap().is_some());
    assert!(decoder.decode(&mut buf).unwrap().is_some());
    assert_eq!(decoder.decode(&mut buf), Err(FrameError::MessageTooLarge { declared: 251, limit: 250 }));
}

#[test]
fn message_size_counts_restart_after_the_last_frame() {
    let limits = Limits { max_frame_size: 100, max_message_size: 150, ..Limits::default() };
    let mut decoder = FrameDecoder::new(limits);
    let mut wire = Vec::new();
    for _ in 0..10 {
        wire.extend(frame(0x01, &[1; 75]));
        wire.extend(frame(0x00, &[1; 75]));
    }
    let mut buf = BytesMut::from(&wire[..]);
    for _ in 0..20 {
        assert!(decoder.decode(&mut buf).unwrap().is_some());
    }
}

#[test]
fn too_many_frames_in_one_message_is_refused() {
    let limits = Limits { max_frames: 4, ..Limits::default() };
    let mut decoder = FrameDecoder::new(limits);
    let wire: Vec<u8> = (0..5).flat_map(|_| frame(0x01, b"x")).collect();
    let mut buf = BytesMut::from(&wire[..]);
    for _ in 0..4 {
        assert!(decoder.decode(&mut buf).unwrap().is_some());
    }
    assert_eq!(decoder.decode(&mut buf), Err(FrameError::TooManyFrames { limit: 4 }));
}

// ---- greetings ----

#[test]
fn zmtp_1_0_greeting_is_refused_at_its_first_byte() {
    // ZMTP 1.0 starts with a short frame: length, flags, identity.
    let err = feed_err(&mut fresh(SocketType::Router), &[0x01, 0x00]);
    assert_eq!(err, Error::Greeting(GreetingError::BadSignature { byte: 0x01 }));
}

#[test]
fn zmtp_1_0_long_form_greeting_is_refused_at_byte_nine() {
    let mut g = greeting(3, 1, b"NULL");
    g[9] = 0x7E;
    let err = feed_err(&mut fresh(SocketType::Router), &g[..10]);
    assert_eq!(err, Error::Greeting(GreetingError::Zmtp10));
}

#[test]
fn zmtp_2_0_and_older_revisions_are_refused() {
    for major in [0u8, 1, 2] {
        let err = feed_err(&mut fresh(SocketType::Router), &greeting(major, 0, b"NULL")[..12]);
        assert_eq!(err, Error::Greeting(GreetingError::UnsupportedVersion { major, minor: 0 }));
    }
}

#[test]
fn an_http_request_is_not_a_greeting() {
    let err = feed_err(&mut fresh(SocketType::Router), b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(err, Error::Greeting(GreetingError::BadSignature { byte: b'G' }));
}

#[test]
fn a_mechanism_we_were_not_configured_for_is_refused() {
    for (name, expected) in [(&b"PLAIN"[..], Mechanism::Plain), (b"CURVE", Mechanism::Curve)] {
        let err = feed_err(&mut fresh(SocketType::Router), &greeting(3, 1, name));
        let mismatch = GreetingError::MechanismMismatch { ours: Mechanism::Null, theirs: expected };
        assert_eq!(err, Error::Greeting(mismatch));
    }
    let err = feed_err(&mut fresh(SocketType::Router), &greeting(3, 1, b"NULL\0\0junk"));
    assert!(matches!(
        err,
        Error::Greeting(GreetingError::MechanismMismatch { theirs: Mechanism::Other(_), .. })
    ));
}

#[test]
fn odd_but_valid_greetings_are_accepted_as_libzmq_accepts_them() {
    let now = Instant::now();
    for (major, minor) in [(3u8, 0u8), (3, 1), (3, 7), (4, 0)] {
        let mut hello = greeting(major, minor, b"NULL");
        hello[1..9].copy_from_slice(&[0, 0, 0, 0, 0, 0, 0, 4]); // libzmq's identity-length padding
        hello[32] = 0x55; // as-server junk
        hello[33..].fill(0xAB); // filler junk
        hello.extend(ready(b"DEALER", Some(b"peer")));
        let mut session = fresh(SocketType::Router);
        let events = feed(&mut session, &hello, now).unwrap();
        assert!(matches!(&events[..], [Event::HandshakeComplete(p)] if p.major == major && p.minor == minor));
    }
}

// ---- READY and its properties ----

fn hello_with_ready_body(props: &[u8]) -> Vec<u8> {
    let mut out = greeting(3, 1, b"NULL");
    out.extend(command(b"READY", props));
    out
}

#[test]
fn truncated_property_name_is_refused() {
    let err = feed_err(&mut fresh(SocketType::Router), &hello_with_ready_body(b"\x0bSocket"));
    assert_eq!(err, Error::Command(CommandError::TruncatedPropertyName { name_len: 11, available: 6 }));
}

#[test]
fn property_missing_its_value_length_is_refused() {
    let err = feed_err(&mut fresh(SocketType::Router), &hello_with_ready_body(b"\x0bSocket-Type\0\0"));
    assert_eq!(err, Error::Command(CommandError::TruncatedPropertyValue { value_len: 0, available: 2 }));
}

#[test]
fn property_value_shorter_than_declared_is_refused() {
    let mut props = property(b"Socket-Type", b"DEALER");
    props.pop();
    let err = feed_err(&mut fresh(SocketType::Router), &hello_with_ready_body(&props));
    assert_eq!(err, Error::Command(CommandError::TruncatedPropertyValue { value_len: 6, available: 5 }));
}

#[test]
fn property_length_2_pow_31_minus_1_with_a_short_body_is_refused() {
    let mut props = b"\x0bSocket-Type".to_vec();
    props.extend_from_slice(&(i32::MAX as u32).to_be_bytes());
    props.extend_from_slice(b"DEALER");
    let err = feed_err(&mut fresh(SocketType::Router), &hello_with_ready_body(&props));
    let expected = CommandError::TruncatedPropertyValue { value_len: i32::MAX as u64, available: 6 };
    assert_eq!(err, Error::Command(expected));
}

#[test]
fn property_length_u32_max_is_refused() {
    let mut props = b"\x08Identity".to_vec();
    props.extend_from_slice(&u32::MAX.to_be_bytes());
    let err = feed_err(&mut fresh(SocketType::Router), &hello_with_ready_body(&props));
    assert!(
        matches!(err, Error::Command(CommandError::TruncatedPropertyValue { value_len, .. }) if value_len == u64::from(u32::MAX))
    );
}

#[test]
fn empty_property_name_is_refused() {
    let mut props = property(b"Socket-Type", b"DEALER");
    props.extend_from_slice(b"\x00\0\0\0\0");
    let err = feed_err(&mut fresh(SocketType::Router), &hello_with_ready_body(&props));
    assert_eq!(err, Error::Command(CommandError::EmptyPropertyName));
}

#[test]
fn ready_with_64_kib_of_metadata_is_refused() {
    let mut props = property(b"Socket-Type", b"DEALER");
    props.extend(property(b"X-Big", &vec![b'm'; 65 << 10]));
    let err = feed_err(&mut fresh(SocketType::Router), &hello_with_ready_body(&props));
    assert!(matches!(err, Error::Frame(FrameError::CommandTooLarge { .. })), "{err:?}");
}

#[test]
fn ready_over_the_metadata_limit_is_refused() {
    // Over the limit by its frame size: refused at the header, before the body is buffered.
    let mut props = property(b"Socket-Type", b"DEALER");
    props.extend(property(b"X-Big", &vec![b'm'; 20 << 10]));
    let err = feed_err(&mut fresh(SocketType::Router), &hello_with_ready_body(&props));
    assert!(matches!(err, Error::Frame(FrameError::CommandTooLarge { .. })), "{err:?}");
    // Over it by the properties alone (a frame that fits the cap with the name): refused on parse.
    let mut props = property(b"Socket-Type", b"DEALER");
    props.extend(property(b"X-Big", &vec![b'm'; (16 << 10) - props.len() - 10]));
    props.push(0);
    let err = feed_err(&mut fresh(SocketType::Router), &hello_with_ready_body(&props));
    assert!(matches!(err, Error::Command(CommandError::MetadataTooLarge { .. })), "{err:?}");
}

#[test]
fn unknown_socket_type_is_refused_and_told_with_error() {
    for value in [&b"FOO"[..], b"dealer", b""] {
        let mut session = fresh(SocketType::Router);
        output(&mut session);
        let err = feed_err(&mut session, &hello_with_ready_body(&property(b"Socket-Type", value)));
        assert_eq!(err, Error::UnknownSocketType { value: bytes::Bytes::copy_from_slice(value) });
        assert_eq!(output(&mut session), command(b"ERROR", b"\x13Invalid socket type"));
    }
}

#[test]
fn incompatible_socket_types_are_refused() {
    let cases = [
        (SocketType::Router, &b"PUB"[..], SocketType::Pub),
        (SocketType::Dealer, b"SUB", SocketType::Sub),
        (SocketType::Pub, b"DEALER", SocketType::Dealer),
        (SocketType::Sub, b"SUB", SocketType::Sub),
    ];
    for (ours, value, theirs) in cases {
        let err = feed_err(&mut fresh(ours), &hello_with_ready_body(&property(b"Socket-Type", value)));
        assert_eq!(err, Error::IncompatibleSocketType { ours, theirs });
    }
}

#[test]
fn missing_socket_type_is_refused() {
    let err = feed_err(&mut fresh(SocketType::Router), &hello_with_ready_body(&property(b"Identity", b"x")));
    assert_eq!(err, Error::MissingSocketType);
}

#[test]
fn property_names_are_case_insensitive_duplicates_last_wins_and_extras_are_kept() {
    let mut props = property(b"identity", b"first");
    props.extend(property(b"X-Hello", b"world"));
    props.extend(property(b"SOCKET-TYPE", b"DEALER"));
    props.extend(property(b"IDENTITY", b"second"));
    let mut session = fresh(SocketType::Router);
    let events = feed(&mut session, &hello_with_ready_body(&props), Instant::now()).unwrap();
    let [Event::HandshakeComplete(peer)] = &events[..] else { panic!("{events:?}") };
    assert_eq!(peer.socket_type, SocketType::Dealer);
    assert_eq!(&peer.identity[..], b"second");
    assert_eq!(peer.metadata.get("x-hello").map(|v| &v[..]), Some(&b"world"[..]));
    assert_eq!(peer.metadata.len(), 4);
}

// ---- the handshake's order ----

#[test]
fn a_message_before_ready_is_refused() {
    let mut hello = greeting(3, 1, b"NULL");
    hello.extend(frame(0, b"early"));
    let err = feed_err(&mut fresh(SocketType::Router), &hello);
    assert_eq!(err, Error::Frame(FrameError::MessageBeforeHandshake { declared: 5 }));
}

#[test]
fn a_big_data_frame_before_ready_is_refused_at_its_header() {
    // Only the 9-byte header of a 16 MiB frame: refused before any body byte is waited for.
    let mut hello = greeting(3, 1, b"NULL");
    hello.extend(&long_header(0, 16 << 20)[..9]);
    let err = feed_err(&mut fresh(SocketType::Router), &hello);
    assert_eq!(err, Error::Frame(FrameError::MessageBeforeHandshake { declared: 16 << 20 }));
}

#[test]
fn commands_before_ready_are_capped_at_the_largest_ready() {
    let limits = Limits::default();
    let limit = limits.max_metadata_size + 7;
    let mut hello = greeting(3, 1, b"NULL");
    hello.extend(&long_header(0x04, 60_000)[..9]);
    let err = feed_err(&mut fresh(SocketType::Router), &hello);
    assert_eq!(err, Error::Frame(FrameError::CommandTooLarge { declared: 60_000, limit }));
    // The same command after the handshake is within the command limit.
    let mut session = active_session(SocketType::Router, b"DEALER", 1, Instant::now());
    let mut buf = BytesMut::from(&long_header(0x04, 60_000)[..9]);
    session.handle_input(&mut buf, Instant::now()).expect("a 60,000-byte command is allowed now");
}

#[test]
fn another_command_before_ready_is_refused() {
    let mut hello = greeting(3, 1, b"NULL");
    hello.extend(command(b"PING", b"\0\0"));
    let err = feed_err(&mut fresh(SocketType::Router), &hello);
    assert_eq!(err, Error::ExpectedReady { got: UnexpectedFrame::Command });
}

#[test]
fn error_during_the_handshake_ends_it_with_the_reason() {
    let mut hello = greeting(3, 1, b"NULL");
    hello.extend(command(b"ERROR", b"\x03400"));
    let err = feed_err(&mut fresh(SocketType::Router), &hello);
    assert_eq!(err, Error::PeerError { reason: b(b"400") });
}

#[test]
fn truncated_error_command_is_refused() {
    let mut hello = greeting(3, 1, b"NULL");
    hello.extend(command(b"ERROR", b"\x10short"));
    let err = feed_err(&mut fresh(SocketType::Router), &hello);
    assert_eq!(err, Error::Command(CommandError::TruncatedError { reason_len: 16, available: 5 }));
}

// ---- commands after the handshake ----

#[test]
fn empty_command_frame_is_refused() {
    let mut session = active_session(SocketType::Router, b"DEALER", 1, Instant::now());
    assert_eq!(feed_err(&mut session, &[0x04, 0x00]), Error::Command(CommandError::Empty));
}

#[test]
fn command_name_longer_than_the_frame_is_refused() {
    let mut session = active_session(SocketType::Router, b"DEALER", 1, Instant::now());
    let err = feed_err(&mut session, &[0x04, 0x03, 0x09, b'P', b'I']);
    assert_eq!(err, Error::Command(CommandError::TruncatedName { name_len: 9, available: 2 }));
}

#[test]
fn ping_without_a_ttl_is_refused() {
    let mut session = active_session(SocketType::Router, b"DEALER", 1, Instant::now());
    let err = feed_err(&mut session, &command(b"PING", b"\x01"));
    assert_eq!(err, Error::Command(CommandError::TruncatedPing { available: 1 }));
}

#[test]
fn ping_context_over_16_bytes_is_truncated_in_the_pong_as_libzmq_does() {
    let now = Instant::now();
    let mut session = active_session(SocketType::Router, b"DEALER", 1, now);
    feed(&mut session, &command(b"PING", b"\x00\x0a0123456789abcdefWXYZ"), now).unwrap();
    assert_eq!(output(&mut session), command(b"PONG", b"0123456789abcdef"));
}

#[test]
fn tolerated_oddities_match_libzmq() {
    let now = Instant::now();
    let mut session = active_session(SocketType::Router, b"DEALER", 1, now);
    let mut wire = Vec::new();
    wire.extend(command(b"HELLO", b"unknown command")); // ignored
    wire.extend(frame(0x04 | 0x01, &[4, b'P', b'O', b'N', b'G'])); // MORE on a command: ignored
    wire.extend(frame(0xF0 | 0x01, b"reserved bits")); // reserved bits: ignored
    wire.extend([0x02, 0, 0, 0, 0, 0, 0, 0, 3, b'a', b'b', b'c']); // long form for 3 bytes
    wire.extend(command(b"READY", &property(b"Socket-Type", b"DEALER"))); // late READY: ignored
    let events = feed(&mut session, &wire, now).unwrap();
    let expected =
        vec![Event::Pong { context: b(b"") }, Event::Message(vec![b(b"reserved bits"), b(b"abc")])];
    assert_eq!(events, expected);
    // Long-form size 0 (JeroMQ rejects it; libzmq accepts it).
    let events = feed(&mut session, &[0x02, 0, 0, 0, 0, 0, 0, 0, 0], now).unwrap();
    assert_eq!(events, vec![Event::Message(vec![b(b"")])]);
}

#[test]
fn publisher_treats_subscription_messages_as_subscriptions_from_any_version() {
    let now = Instant::now();
    let mut session = active_session(SocketType::Pub, b"SUB", 1, now);
    let mut wire = frame(0, b"\x01A");
    wire.extend(frame(0, b"\x00A"));
    wire.extend(frame(0, b"user data"));
    let events = feed(&mut session, &wire, now).unwrap();
    let expected =
        vec![Event::Subscribe(b(b"A")), Event::Cancel(b(b"A")), Event::Message(vec![b(b"user data")])];
    assert_eq!(events, expected);
}

#[test]
fn send_before_the_handshake_is_refused() {
    let mut session = fresh(SocketType::Dealer);
    assert_eq!(session.send(&[b(b"x")]), Err(zmtp::NotReady));
    assert_eq!(session.subscribe(&b(b"x")), Err(zmtp::NotReady));
}

#[test]
fn silent_peer_hits_the_handshake_timeout() {
    let start = Instant::now();
    let mut config = Config::new(SocketType::Router);
    config.handshake_timeout = Duration::from_secs(5);
    let mut session = Session::new(config, start);
    feed(&mut session, &greeting(3, 1, b"NULL")[..30], start).unwrap();
    assert_eq!(session.poll_timeout(), Some(start + Duration::from_secs(5)));
    assert_eq!(session.handle_timeout(start + Duration::from_secs(4)), Ok(()));
    assert_eq!(session.handle_timeout(start + Duration::from_secs(5)), Err(Error::HandshakeTimeout));
    assert_eq!(session.poll_timeout(), None);
}

#[test]
fn a_peer_that_pings_but_never_reads_cannot_grow_our_output_without_bound() {
    let now = Instant::now();
    let mut session = active_session(SocketType::Router, b"DEALER", 1, now);
    session.send(&[bytes::Bytes::from(vec![0u8; zmtp::session::MAX_PENDING_FOR_PONG])]).unwrap();
    let before = session.encoder().pending();
    let pings: Vec<u8> = (0..1000).flat_map(|_| command(b"PING", b"\x00\x00ctx")).collect();
    let events = feed(&mut session, &pings, now).unwrap();
    assert_eq!(events.len(), 1000, "every PING is still reported");
    assert_eq!(session.encoder().pending(), before, "no PONG queued behind 4 MiB of unread output");
}

//! Property tests: splitting a valid stream anywhere changes nothing, and encode -> decode returns
//! every message exactly.

mod common;

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use common::*;
use proptest::prelude::*;
use zmtp::{Config, Encoder, Event, Session, SocketType};

/// One thing a DEALER peer may send after the handshake.
#[derive(Debug, Clone)]
enum Item {
    Message(Vec<Vec<u8>>),
    Ping(u16, Vec<u8>),
    Unknown(Vec<u8>),
}

fn frame_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..40),
        2 => proptest::collection::vec(any::<u8>(), 250..270),
        1 => proptest::collection::vec(any::<u8>(), 9000..9300),
    ]
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        6 => proptest::collection::vec(frame_body(), 1..6).prop_map(Item::Message),
        1 => (any::<u16>(), proptest::collection::vec(any::<u8>(), 0..16)).prop_map(|(t, c)| Item::Ping(t, c)),
        1 => proptest::collection::vec(any::<u8>(), 0..20).prop_map(Item::Unknown),
    ]
}

fn wire(items: &[Item]) -> Vec<u8> {
    let mut out = greeting(3, 1, b"NULL");
    out.extend(ready(b"DEALER", Some(b"peer-id")));
    for item in items {
        match item {
            Item::Message(frames) => {
                for (i, body) in frames.iter().enumerate() {
                    out.extend(frame(u8::from(i + 1 < frames.len()), body));
                }
            }
            Item::Ping(ttl, context) => {
                let mut data = ttl.to_be_bytes().to_vec();
                data.extend(context);
                out.extend(command(b"PING", &data));
            }
            Item::Unknown(data) => out.extend(command(b"X-UNKNOWN", data)),
        }
    }
    out
}

/// Feeds `bytes` cut at `cuts` (sorted offsets) and returns all events.
fn events_when_split(bytes: &[u8], cuts: &[usize]) -> Vec<Event> {
    let now = Instant::now();
    let mut session = Session::new(Config::new(SocketType::Router), now);
    let mut buf = BytesMut::new();
    let mut all = Vec::new();
    let mut start = 0;
    for &end in cuts.iter().chain([&bytes.len()]) {
        buf.extend_from_slice(&bytes[start..end]);
        session.handle_input(&mut buf, now).expect("valid stream");
        all.extend(events(&mut session));
        start = end;
    }
    all
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn a_valid_stream_split_anywhere_decodes_to_the_same_events(
        items in proptest::collection::vec(item(), 0..12),
        cut_seeds in proptest::collection::vec(any::<prop::sample::Index>(), 0..40),
    ) {
        let bytes = wire(&items);
        let whole = events_when_split(&bytes, &[]);
        let mut cuts: Vec<usize> = cut_seeds.iter().map(|i| i.index(bytes.len())).collect();
        cuts.sort_unstable();
        prop_assert_eq!(&events_when_split(&bytes, &cuts), &whole);

        let expected_messages: Vec<Vec<Bytes>> = items.iter().filter_map(|item| match item {
            Item::Message(frames) => Some(frames.iter().cloned().map(Bytes::from).collect()),
            _ => None,
        }).collect();
        let got_messages: Vec<Vec<Bytes>> = whole.iter().filter_map(|e| match e {
            Event::Message(m) => Some(m.clone()),
            _ => None,
        }).collect();
        prop_assert_eq!(got_messages, expected_messages);
        let pings = items.iter().filter(|i| matches!(i, Item::Ping(..))).count();
        prop_assert_eq!(whole.iter().filter(|e| matches!(e, Event::Ping { .. })).count(), pings);
    }

    #[test]
    fn a_stream_fed_one_byte_at_a_time_decodes_the_same(items in proptest::collection::vec(item(), 0..4)) {
        let bytes = wire(&items);
        let cuts: Vec<usize> = (1..bytes.len()).collect();
        prop_assert_eq!(events_when_split(&bytes, &cuts), events_when_split(&bytes, &[]));
    }

    #[test]
    fn encode_then_decode_round_trips_any_message(
        messages in proptest::collection::vec(proptest::collection::vec(frame_body(), 1..8), 1..8),
    ) {
        let now = Instant::now();
        let mut receiver = active_session(SocketType::Router, b"DEALER", 1, now);
        let mut encoder = Encoder::new();
        let messages: Vec<Vec<Bytes>> =
            messages.into_iter().map(|m| m.into_iter().map(Bytes::from).collect()).collect();
        for message in &messages {
            encoder.push_message(message);
        }
        let bytes: Vec<u8> = encoder.chunks().flatten().copied().collect();
        prop_assert_eq!(bytes.len(), encoder.pending());
        let got = feed(&mut receiver, &bytes, now).unwrap();
        let expected: Vec<Event> = messages.into_iter().map(Event::Message).collect();
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn any_ping_pong_or_subscription_command_round_trips(
        ttl in any::<u16>(),
        data in proptest::collection::vec(any::<u8>(), 0..16),
        long_context in proptest::collection::vec(any::<u8>(), 17..40),
    ) {
        // Found by the `command` fuzz target: encode clamped PING's TTL, and a PONG context over
        // 16 bytes was kept on parse but cut on encode; neither round-tripped.
        let mut wire = b"\x04PONG".to_vec();
        wire.extend(&long_context);
        let parsed = zmtp::Command::parse(Bytes::from(wire), 1024).unwrap();
        prop_assert_eq!(parsed, zmtp::Command::Pong { context: Bytes::copy_from_slice(&long_context[..16]) });
        let data = Bytes::from(data);
        let commands = [
            zmtp::Command::Ping { ttl_deciseconds: ttl, context: data.clone() },
            zmtp::Command::Pong { context: data.clone() },
            zmtp::Command::Subscribe { topic: data.clone() },
            zmtp::Command::Cancel { topic: data },
        ];
        for command in commands {
            let mut out = BytesMut::new();
            command.encode(&mut out);
            let frame = zmtp::FrameDecoder::new(zmtp::Limits::default()).decode(&mut out).unwrap().unwrap();
            prop_assert_eq!(zmtp::Command::parse(frame.body, 1024).unwrap(), command);
        }
    }

    #[test]
    fn partial_writes_drain_the_encoder_in_order(
        message in proptest::collection::vec(frame_body(), 1..8),
        write_sizes in proptest::collection::vec(1usize..5000, 1..50),
    ) {
        let message: Vec<Bytes> = message.into_iter().map(Bytes::from).collect();
        let mut encoder = Encoder::new();
        encoder.push_message(&message);
        let whole: Vec<u8> = encoder.chunks().flatten().copied().collect();
        let mut written = Vec::new();
        for size in write_sizes.iter().cycle() {
            if encoder.is_empty() {
                break;
            }
            let chunk: Vec<u8> = encoder.chunks().flatten().copied().take(*size).collect();
            encoder.consume(chunk.len());
            written.extend(chunk);
        }
        prop_assert_eq!(written, whole);
    }
}

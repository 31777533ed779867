//! Entry points for the cargo-fuzz targets in `fuzz/`: each target is a one-line call to one of
//! these. They must never panic on any input; the invariants they assert are the crate's promises.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::command::Command;
use crate::frame::{FrameDecoder, Limits};
use crate::greeting::GreetingReader;
use crate::session::{Config, Session};
use crate::socket_type::SocketType;

/// Splits `data` into chunks whose sizes come from `data` itself: the first byte seeds the sizes.
/// Every target's input therefore starts with that seed byte.
fn chunks(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let (seed, mut rest) = data.split_first().map_or((1, data), |(s, r)| (*s, r));
    let mut step = usize::from(seed).max(1);
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let take = step.min(rest.len());
        let (head, tail) = rest.split_at(take);
        rest = tail;
        step = (step * 7 + 3) % 97 + 1;
        Some(head)
    })
}

/// Frame decoder over arbitrary bytes, fed in arbitrary chunks, with small limits.
pub fn frame_decoder(data: &[u8]) {
    let limits =
        Limits { max_frame_size: 4096, max_message_size: 16384, max_frames: 16, ..Limits::default() };
    let mut decoder = FrameDecoder::new(limits);
    let mut buf = BytesMut::new();
    for chunk in chunks(data) {
        buf.extend_from_slice(chunk);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => assert!(frame.body.len() <= limits.max_command_size),
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
}

/// Greeting reader over arbitrary bytes in arbitrary chunks.
pub fn greeting(data: &[u8]) {
    let mut reader = GreetingReader::default();
    for chunk in chunks(data) {
        match reader.feed(chunk) {
            Ok((taken, done)) => {
                assert!(taken <= chunk.len());
                if done.is_some() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

/// Command parser; whatever parses must encode and parse back to the same command.
pub fn command(data: &[u8]) {
    let Ok(command) = Command::parse(Bytes::copy_from_slice(data), 1 << 16) else { return };
    let mut out = BytesMut::new();
    command.encode(&mut out);
    let mut decoder = FrameDecoder::new(Limits { max_command_size: 1 << 20, ..Limits::default() });
    let frame = decoder.decode(&mut out).ok().flatten().filter(|f| f.is_command());
    let again = frame.and_then(|f| Command::parse(f.body, 1 << 16).ok());
    assert_eq!(again.as_ref(), Some(&command), "encode/parse round trip");
}

/// A whole session fed arbitrary bytes in arbitrary chunks, with time moving forward from
/// `start` (the caller reads the clock; this crate never does). The first byte picks our socket
/// type (ROUTER, DEALER, PUB, SUB), the second seeds the chunk sizes.
pub fn session(data: &[u8], start: Instant) {
    let types = [SocketType::Router, SocketType::Dealer, SocketType::Pub, SocketType::Sub];
    let Some((&selector, data)) = data.split_first() else { return };
    let socket_type = types[usize::from(selector) % types.len()];
    let mut now = start;
    let mut session = Session::new(Config::new(socket_type), now);
    let mut buf = BytesMut::new();
    for chunk in chunks(data) {
        buf.extend_from_slice(chunk);
        let failed = session.handle_input(&mut buf, now).is_err();
        while session.poll_event().is_some() {}
        if session.is_ready() {
            let _ = session.send(&[Bytes::from_static(b"reply")]);
        }
        let pending = session.encoder().pending();
        session.encoder().consume(pending);
        now += Duration::from_millis(chunk.len() as u64);
        if failed || session.handle_timeout(now).is_err() {
            return;
        }
    }
}

/// A CURVE server session fed a CURVE client's greeting and then arbitrary bytes: the HELLO,
/// INITIATE and MESSAGE parsers see any command a peer could send before a box opens.
#[cfg(feature = "curve")]
pub fn curve_handshake(data: &[u8], start: Instant) {
    use crate::curve::{Authorizer, Curve, KeyPair};
    use crate::greeting::{Greeting, Mechanism};
    let mut config = Config::new(SocketType::Router);
    config.curve = Some(Curve::Server { keys: KeyPair::from_secret([7; 32]), authorizer: Authorizer::any() });
    let mut session = Session::new(config, start);
    let mut buf = BytesMut::from(&Greeting::ours(Mechanism::Curve, false).encode()[..]);
    buf.extend_from_slice(data);
    let _ = session.handle_input(&mut buf, start);
    while session.poll_event().is_some() {}
}

/// A completed CURVE handshake, then arbitrary input to the server: with the first byte even,
/// the rest is raw bytes after the handshake (unsealed frames, forged MESSAGEs); odd, the rest
/// is split into frame bodies that the client seals properly, so what a MESSAGE holds (flags,
/// commands, multipart messages, limits) is fuzzed past the box.
#[cfg(feature = "curve")]
pub fn curve_message(data: &[u8], start: Instant) {
    use crate::curve::{Authorizer, Curve, KeyPair};
    let Some((&mode, data)) = data.split_first() else { return };
    let server_keys = KeyPair::from_secret([7; 32]);
    let mut server_config = Config::new(SocketType::Router);
    server_config.limits.max_frames = 8;
    server_config.limits.max_message_size = 4096;
    server_config.curve = Some(Curve::Server { keys: server_keys.clone(), authorizer: Authorizer::any() });
    let mut client_config = Config::new(SocketType::Dealer);
    client_config.curve =
        Some(Curve::Client { keys: KeyPair::from_secret([9; 32]), server: *server_keys.public() });
    let mut server = Session::new(server_config, start);
    let mut client = Session::new(client_config, start);
    for _ in 0..4 {
        let to_server: Vec<u8> = client.encoder().chunks().flatten().copied().collect();
        client.encoder().consume(to_server.len());
        let to_client: Vec<u8> = server.encoder().chunks().flatten().copied().collect();
        server.encoder().consume(to_client.len());
        let (a, b) = (
            server.handle_input(&mut BytesMut::from(&to_server[..]), start),
            client.handle_input(&mut BytesMut::from(&to_client[..]), start),
        );
        assert!(a.is_ok() && b.is_ok(), "the handshake between two good peers must succeed");
    }
    assert!(server.is_ready() && client.is_ready());
    let mut input = BytesMut::new();
    if mode % 2 == 0 {
        input.extend_from_slice(data);
    } else {
        let frames: Vec<Bytes> = data.split(|&b| b == 0xff).map(Bytes::copy_from_slice).collect();
        let _ = client.send(&frames);
        input.extend(client.encoder().chunks().flatten().copied());
    }
    let _ = server.handle_input(&mut input, start);
    while server.poll_event().is_some() {}
}

/// Our XSalsa20-Poly1305 boxes against a reference, for the differential target `curve_box`:
/// `data` is a 32-byte key, a 24-byte nonce, then the plaintext. `reference_seal` is another
/// implementation's NaCl secretbox (tag, then ciphertext). Asserts that both seal alike, that
/// our box opens the reference's, that a changed byte makes it unopenable, and that the
/// MESSAGE path (`CounterBox`, nonce = 16-byte prefix + counter) seals alike too.
#[cfg(feature = "curve")]
pub fn curve_box(data: &[u8], reference_seal: impl Fn(&[u8; 32], &[u8; 24], &[u8]) -> Vec<u8>) {
    use crate::curve::crypto::{CounterBox, NaclBox, TAG};
    if data.len() < 56 {
        return;
    }
    let (key, rest) = data.split_at(32);
    let (nonce, plain) = rest.split_at(24);
    let key: [u8; 32] = key.try_into().unwrap_or([0; 32]);
    let nonce: [u8; 24] = nonce.try_into().unwrap_or([0; 24]);
    let ours = NaclBox::with_key(&key);
    let mut sealed = Vec::new();
    ours.seal_into(&nonce, plain, &mut sealed);
    let expected = reference_seal(&key, &nonce, plain);
    assert!(sealed == expected, "our box differs from the reference");
    assert_eq!(ours.open(&nonce, &expected).as_deref(), Some(plain), "the reference box does not open");
    let mut forged = expected.clone();
    let at = usize::from(plain.first().copied().unwrap_or(0)) % forged.len();
    forged[at] ^= 0x01;
    assert_eq!(ours.open(&nonce, &forged), None, "a changed byte still opened");
    let mut prefix = [0u8; 16];
    prefix.copy_from_slice(&nonce[..16]);
    let mut counter_bytes = [0u8; 8];
    counter_bytes.copy_from_slice(&nonce[16..]);
    let mut by_counter = vec![0u8; TAG];
    by_counter.extend_from_slice(plain);
    let mut boxes = CounterBox::new(&ours, &prefix);
    let counter = u64::from_be_bytes(counter_bytes);
    boxes.seal_in_place(counter, &mut by_counter);
    assert!(by_counter == expected, "the MESSAGE path differs from the reference");
    let mut text = expected[TAG..].to_vec();
    assert!(boxes.open_in_place(counter, &expected[..TAG], &mut text), "the MESSAGE path does not open it");
    assert!(text == plain, "the MESSAGE path opened something else");
    let mut text = forged[TAG..].to_vec();
    assert!(!boxes.open_in_place(counter, &forged[..TAG], &mut text), "the MESSAGE path opened a forgery");
}

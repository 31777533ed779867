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

/// The seeded providers of the golden transcripts (`curve::transcript`): server, client.
#[cfg(feature = "rustcrypto")]
fn seeded_providers() -> (crate::curve::Provider, crate::curve::Provider) {
    use crate::curve::{provider, rustcrypto::RustCrypto, transcript};
    (
        provider(RustCrypto::seeded(transcript::SERVER_SEED)),
        provider(RustCrypto::seeded(transcript::CLIENT_SEED)),
    )
}

/// Feeds `data` to `session` in chunks whose sizes come from the first byte (see `chunks`);
/// stops at the first error. Takes every event.
#[cfg(feature = "rustcrypto")]
fn feed(session: &mut Session, data: &[u8], now: Instant) {
    let mut buf = BytesMut::new();
    for chunk in chunks(data) {
        buf.extend_from_slice(chunk);
        let result = session.handle_input(&mut buf, now);
        while session.poll_event().is_some() {}
        if result.is_err() {
            return;
        }
    }
}

/// A seeded CURVE server (the golden transcript's) fed any bytes as its client's: the corpus
/// starts from the golden client bytes (greeting, HELLO, INITIATE, MESSAGE), and since the
/// server's randomness is the transcript's, a mutated INITIATE still carries the cookie it
/// expects, so the fuzzer reaches INITIATE's vouch and metadata and the MESSAGEs after it.
/// The first byte seeds the chunk sizes.
#[cfg(feature = "rustcrypto")]
pub fn curve_server(data: &[u8], start: Instant) {
    let (server, _) = seeded_providers();
    let mut session = Session::new(crate::curve::transcript::server_config(&server), start);
    feed(&mut session, data, start);
}

/// A seeded CURVE client (the golden transcript's) fed any bytes as its server's: WELCOME,
/// READY and ERROR from a hostile server. Its HELLO is the transcript's, so a mutated golden
/// WELCOME opens and the fuzzer reaches INITIATE's making, READY and the MESSAGEs after it.
/// The first byte seeds the chunk sizes.
#[cfg(feature = "rustcrypto")]
pub fn curve_client(data: &[u8], start: Instant) {
    let (server, client) = seeded_providers();
    let config = crate::curve::transcript::client_config(&client, &server);
    let mut session = Session::new(config, start);
    feed(&mut session, data, start);
}

/// A completed CURVE handshake, then arbitrary input to the server: with the first byte even,
/// the rest is raw bytes after the handshake (unsealed frames, forged MESSAGEs); odd, the rest
/// is split into frame bodies that the client seals properly, so what a MESSAGE holds (flags,
/// commands, multipart messages, limits) is fuzzed past the box.
#[cfg(feature = "rustcrypto")]
pub fn curve_message(data: &[u8], start: Instant) {
    use crate::curve::transcript;
    let Some((&mode, data)) = data.split_first() else { return };
    let (server_provider, client_provider) = seeded_providers();
    let mut server_config = transcript::server_config(&server_provider);
    server_config.limits.max_frames = 8;
    server_config.limits.max_message_size = 4096;
    let client_config = transcript::client_config(&client_provider, &server_provider);
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

/// Differential, for the target `curve_box`: the XSalsa20-Poly1305 boxes built on the
/// `rustcrypto` provider and on `other` (libsodium, in ezarch), and RustCrypto's own
/// `crypto_secretbox` (`reference_seal`: tag, then ciphertext), on `data` = a 32-byte key, a
/// 24-byte nonce, then the plaintext. Asserts that all three seal alike, that each provider's
/// box opens the reference's and not a changed byte of it, and that the MESSAGE path
/// (`CounterBox`, nonce = 16-byte prefix + counter) agrees.
#[cfg(feature = "rustcrypto")]
pub fn curve_box(
    data: &[u8],
    other: &crate::curve::Provider,
    reference_seal: impl Fn(&[u8; 32], &[u8; 24], &[u8]) -> Vec<u8>,
) {
    use crate::curve::crypto::{CounterBox, NaclBox, TAG};
    if data.len() < 56 {
        return;
    }
    let (key, rest) = data.split_at(32);
    let (nonce, plain) = rest.split_at(24);
    let key: [u8; 32] = key.try_into().unwrap_or([0; 32]);
    let nonce: [u8; 24] = nonce.try_into().unwrap_or([0; 24]);
    let expected = reference_seal(&key, &nonce, plain);
    let mut forged = expected.clone();
    let at = usize::from(plain.first().copied().unwrap_or(0)) % forged.len();
    forged[at] ^= 0x01;
    let (ours, _) = seeded_providers();
    for provider in [&ours, other] {
        let boxed = NaclBox::with_key(provider, &key);
        let mut sealed = Vec::new();
        boxed.seal_into(&nonce, plain, &mut sealed);
        assert!(sealed == expected, "a provider's box differs from the reference");
        assert_eq!(
            boxed.open(&nonce, &expected).as_deref().map(|v| &v[..]),
            Some(plain),
            "the reference box does not open"
        );
        assert!(boxed.open(&nonce, &forged).is_none(), "a changed byte still opened");
        let prefix: [u8; 16] = nonce[..16].try_into().unwrap_or([0; 16]);
        let counter = u64::from_be_bytes(nonce[16..].try_into().unwrap_or([0; 8]));
        let mut by_counter = vec![0u8; TAG];
        by_counter.extend_from_slice(plain);
        let mut boxes = CounterBox::new(&boxed, &prefix);
        boxes.seal_in_place(counter, &mut by_counter);
        assert!(by_counter == expected, "the MESSAGE path differs from the reference");
        let mut text = expected[TAG..].to_vec();
        assert!(
            boxes.open_in_place(counter, &expected[..TAG], &mut text),
            "the MESSAGE path does not open it"
        );
        assert!(text == plain, "the MESSAGE path opened something else");
        let mut text = forged[TAG..].to_vec();
        assert!(
            !boxes.open_in_place(counter, &forged[..TAG], &mut text),
            "the MESSAGE path opened a forgery"
        );
    }
}

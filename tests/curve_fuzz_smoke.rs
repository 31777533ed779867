//! The CURVE fuzz entry points (`zmtp::fuzz::curve_*`, run by cargo-fuzz in `fuzz/`) on a few
//! thousand pseudo-random and hand-shaped inputs, and on the golden transcripts with single
//! bytes changed (so the server and client parsers past the first box see them), so CI catches
//! a panic without nightly. The differential target runs on ezarch's libsodium provider.

use std::time::Instant;

/// The golden transcripts (zmtp/tests/vectors): what the seeded client and server wrote.
const TO_SERVER: &[u8] = include_bytes!("../zmtp/tests/vectors/curve_to_server.bin");
const TO_CLIENT: &[u8] = include_bytes!("../zmtp/tests/vectors/curve_to_client.bin");

/// xorshift64*, seeded: the same inputs every run.
fn inputs(count: usize) -> Vec<Vec<u8>> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    (0..count)
        .map(|i| {
            let len = (next() % 600) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Shape some like commands: a command frame with a CURVE name.
            if i % 3 == 0 && bytes.len() > 10 {
                let names: [&[u8]; 4] = [b"\x05HELLO", b"\x08INITIATE", b"\x07MESSAGE", b"\x05ERROR"];
                let name = names[i % 4];
                bytes[0] = 0x04;
                bytes[1] = (bytes.len() - 2).min(255) as u8;
                let end = (2 + name.len()).min(bytes.len());
                bytes[2..end].copy_from_slice(&name[..end - 2]);
            }
            bytes
        })
        .collect()
}

/// `transcript` whole (one chunk: seed byte 255), then with one byte changed at every position
/// in turn, each with a chunking seed of its own.
fn mutations(transcript: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    let whole = std::iter::once([&[255u8][..], transcript].concat());
    whole.chain((0..transcript.len()).map(move |at| {
        let mut bytes = [&[(at % 200) as u8 + 1][..], transcript].concat();
        bytes[1 + at] ^= 0x5a;
        bytes
    }))
}

#[test]
fn a_seeded_server_survives_arbitrary_and_mutated_client_bytes() {
    for input in inputs(600).into_iter().chain(mutations(TO_SERVER)) {
        zmtp::fuzz::curve_server(&input, Instant::now());
    }
}

#[test]
fn a_seeded_client_survives_arbitrary_and_mutated_server_bytes() {
    for input in inputs(600).into_iter().chain(mutations(TO_CLIENT)) {
        zmtp::fuzz::curve_client(&input, Instant::now());
    }
}

#[test]
fn sealed_and_forged_messages_after_a_handshake_never_panic() {
    for (i, mut input) in inputs(60).into_iter().enumerate() {
        input.insert(0, i as u8);
        zmtp::fuzz::curve_message(&input, Instant::now());
    }
}

#[test]
fn boxes_on_libsodium_and_rustcrypto_match_secretbox_on_arbitrary_keys_nonces_and_messages() {
    use crypto_secretbox::aead::{Aead, KeyInit};
    let sodium = ezarch::sodium::provider().expect("libsodium initialises");
    for input in inputs(1000) {
        zmtp::fuzz::curve_box(&input, &sodium, |key: &[u8; 32], nonce: &[u8; 24], plain: &[u8]| {
            let reference = crypto_secretbox::XSalsa20Poly1305::new(key.into());
            reference.encrypt(nonce.into(), plain).unwrap_or_default()
        });
    }
}

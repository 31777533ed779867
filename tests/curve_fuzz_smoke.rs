//! The CURVE fuzz entry points (`zmtp::fuzz::curve_*`, run by cargo-fuzz in `fuzz/`) on a few
//! thousand pseudo-random and hand-shaped inputs, so CI catches a panic without nightly.

use std::time::Instant;

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

#[test]
fn the_curve_handshake_parser_survives_arbitrary_commands() {
    for input in inputs(1000) {
        zmtp::fuzz::curve_handshake(&input, Instant::now());
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
fn our_boxes_match_rustcrypto_secretbox_on_arbitrary_keys_nonces_and_messages() {
    use crypto_secretbox::aead::{Aead, KeyInit};
    for input in inputs(1000) {
        zmtp::fuzz::curve_box(&input, |key, nonce, plain| {
            let reference = crypto_secretbox::XSalsa20Poly1305::new(key.into());
            reference.encrypt(nonce.into(), plain).unwrap_or_default()
        });
    }
}

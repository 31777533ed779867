#![no_main]
//! Differential: zmtp's XSalsa20-Poly1305 box against RustCrypto's crypto_secretbox.
use crypto_secretbox::aead::{Aead, KeyInit};

libfuzzer_sys::fuzz_target!(|data: &[u8]| zmtp::fuzz::curve_box(data, |key, nonce, plain| {
    let reference = crypto_secretbox::XSalsa20Poly1305::new(key.into());
    reference.encrypt(nonce.into(), plain).unwrap_or_default()
}));

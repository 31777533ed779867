#![no_main]
//! Differential: zmtp's XSalsa20-Poly1305 boxes on ezarch's libsodium provider and on the
//! RustCrypto test provider, against RustCrypto's crypto_secretbox.
use crypto_secretbox::aead::{Aead, KeyInit};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some(sodium) = ezarch::sodium::provider() else { return };
    zmtp::fuzz::curve_box(data, &sodium, |key: &[u8; 32], nonce: &[u8; 24], plain: &[u8]| {
        let reference = crypto_secretbox::XSalsa20Poly1305::new(key.into());
        reference.encrypt(nonce.into(), plain).unwrap_or_default()
    })
});

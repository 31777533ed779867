//! A second `CryptoProvider`, from RustCrypto's crates (`curve25519-dalek`, `salsa20`,
//! `poly1305`), for tests and fuzzing only (feature `rustcrypto`): the differential tests and
//! the `curve_box` target hold it against the production provider (libsodium, in ezarch), and
//! its randomness is a Salsa20 keystream from a seed, so whole handshakes replay byte for byte
//! (the golden transcripts in `zmtp/tests`). Never for production: its keys are as secret as
//! its seed.

use std::sync::Mutex;

use curve25519_dalek::montgomery::MontgomeryPoint;
use poly1305::universal_hash::KeyInit;
use poly1305::Poly1305;
use salsa20::cipher::consts::U10;
use salsa20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use salsa20::Salsa20;

use super::provider::CryptoProvider;
use crate::error::CurveError;

/// RustCrypto's primitives, with a seeded random source.
pub struct RustCrypto {
    random: Mutex<Salsa20>,
    /// Set by `fail_random`: the random source then fails, for tests of that path.
    broken: std::sync::atomic::AtomicBool,
}

impl RustCrypto {
    /// A provider whose random bytes are the Salsa20 keystream of `seed`: the same seed, the
    /// same keys and nonces.
    pub fn seeded(seed: u64) -> Self {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&seed.to_le_bytes());
        let random = Salsa20::new(&key.into(), &(*b"zmtptest").into());
        Self { random: Mutex::new(random), broken: false.into() }
    }

    /// From now on every `fill_random` fails (a broken random source).
    pub fn fail_random(&self) {
        self.broken.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl CryptoProvider for RustCrypto {
    fn fill_random(&self, out: &mut [u8]) -> Result<(), CurveError> {
        if self.broken.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(CurveError::NoRandomness);
        }
        let mut random = self.random.lock().map_err(|_| CurveError::NoRandomness)?;
        out.fill(0);
        random.apply_keystream(out);
        Ok(())
    }

    fn x25519_public(&self, secret: &[u8; 32]) -> [u8; 32] {
        MontgomeryPoint::mul_base_clamped(*secret).to_bytes()
    }

    fn x25519(&self, secret: &[u8; 32], public: &[u8; 32]) -> Option<[u8; 32]> {
        let shared = MontgomeryPoint(*public).mul_clamped(*secret).to_bytes();
        (shared != [0u8; 32]).then_some(shared)
    }

    fn hsalsa20(&self, key: &[u8; 32], input: &[u8; 16]) -> [u8; 32] {
        salsa20::hsalsa::<U10>(key.into(), input.into()).into()
    }

    fn salsa20_xor(&self, key: &[u8; 32], nonce: &[u8; 8], block: u64, data: &mut [u8]) {
        let mut cipher = Salsa20::new(key.into(), nonce.into());
        cipher.seek(block.saturating_mul(64));
        cipher.apply_keystream(data);
    }

    fn poly1305(&self, key: &[u8; 32], message: &[u8]) -> [u8; 16] {
        Poly1305::new(key.into()).compute_unpadded(message).into()
    }

    fn verify16(&self, a: &[u8; 16], b: &[u8; 16]) -> bool {
        let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
        std::hint::black_box(difference) == 0
    }

    fn name(&self) -> String {
        "RustCrypto (tests only: seeded randomness)".into()
    }
}

//! What CURVE needs that is not protocol logic, taken from the caller, as rustls takes its
//! `CryptoProvider`: X25519, HSalsa20, the Salsa20 stream, Poly1305, a constant-time compare
//! and random bytes. zmtp builds NaCl's boxes from these (`crypto`) and implements no cipher,
//! MAC or key exchange itself. ezarch's provider is libsodium (the library libzmq uses);
//! `rustcrypto::RustCrypto` (feature `rustcrypto`) is a second one, for tests and fuzzing.

use std::sync::Arc;

use crate::error::CurveError;

/// The primitives CURVE is built from. Every method is called with inputs of the sizes its
/// types say; none may panic.
pub trait CryptoProvider: Send + Sync {
    /// Fills `out` with bytes from a random source fit for keys; `NoRandomness` when the source
    /// fails (the one connection that needed them closes).
    fn fill_random(&self, out: &mut [u8]) -> Result<(), CurveError>;

    /// X25519's public key for `secret` (the base point times the clamped secret).
    fn x25519_public(&self, secret: &[u8; 32]) -> [u8; 32];

    /// X25519 of `secret` and `public`; `None` when `public` is of low order (the result would
    /// be all zeros, a key anyone can compute).
    fn x25519(&self, secret: &[u8; 32], public: &[u8; 32]) -> Option<[u8; 32]>;

    /// HSalsa20: 32 bytes from a 32-byte key and a 16-byte input (NaCl's `crypto_core_hsalsa20`).
    fn hsalsa20(&self, key: &[u8; 32], input: &[u8; 16]) -> [u8; 32];

    /// XORs Salsa20's keystream for `key` and the 8-byte `nonce`, starting at 64-byte block
    /// `block`, over `data` (NaCl's `crypto_stream_salsa20_xor_ic`).
    fn salsa20_xor(&self, key: &[u8; 32], nonce: &[u8; 8], block: u64, data: &mut [u8]);

    /// Poly1305's tag of `message` under the one-time `key`.
    fn poly1305(&self, key: &[u8; 32], message: &[u8]) -> [u8; 16];

    /// Whether `a` and `b` are equal, in time that does not depend on where they differ.
    fn verify16(&self, a: &[u8; 16], b: &[u8; 16]) -> bool;

    /// The provider's name and version, for logs.
    fn name(&self) -> String;
}

/// A provider shared by every connection that uses it.
pub type Provider = Arc<dyn CryptoProvider>;

/// Whether two 32-byte values are equal, in constant time (two `verify16`).
pub fn verify32(provider: &dyn CryptoProvider, a: &[u8], b: &[u8]) -> bool {
    let halves = |x: &[u8]| -> Option<([u8; 16], [u8; 16])> {
        Some((x.get(..16)?.try_into().ok()?, x.get(16..32)?.try_into().ok()?))
    };
    match (halves(a), halves(b)) {
        (Some((a1, a2)), Some((b1, b2))) if a.len() == 32 && b.len() == 32 => {
            // Both halves are compared whatever the first says.
            let first = provider.verify16(&a1, &b1);
            let second = provider.verify16(&a2, &b2);
            first & second
        }
        _ => false,
    }
}

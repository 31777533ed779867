//! The boxes CurveZMQ is built from, in NaCl's layout (a 16-byte Poly1305 tag, then the
//! ciphertext), over RustCrypto: `crypto_box` (X25519 + XSalsa20-Poly1305, a "box" from one key
//! pair to another) and `crypto_secretbox` (the same cipher under one symmetric key, for the
//! server's cookie). Nonces are 24 bytes: a protocol prefix and a short (8-byte, big-endian
//! counter) or long (16 random bytes) part.

use crypto_box::aead::consts::{U16, U24};
use crypto_box::aead::generic_array::GenericArray;
use crypto_box::aead::rand_core::RngCore;
use crypto_box::aead::{AeadInPlace, KeyInit, OsRng};
use crypto_box::{PublicKey, SalsaBox, SecretKey};
use crypto_secretbox::XSalsa20Poly1305;

/// Bytes a box adds to what it holds.
pub const TAG: usize = 16;

/// A 24-byte nonce: a 16-byte prefix and a big-endian counter.
pub fn short_nonce(prefix: &[u8; 16], counter: u64) -> [u8; 24] {
    let mut nonce = [0u8; 24];
    nonce[..16].copy_from_slice(prefix);
    nonce[16..].copy_from_slice(&counter.to_be_bytes());
    nonce
}

/// A 24-byte nonce: an 8-byte prefix and 16 bytes from the message.
pub fn long_nonce(prefix: &[u8; 8], long: &[u8]) -> [u8; 24] {
    let mut nonce = [0u8; 24];
    nonce[..8].copy_from_slice(prefix);
    nonce[8..].copy_from_slice(&long[..16]);
    nonce
}

/// 16 random bytes, for a long nonce.
pub fn random_long() -> [u8; 16] {
    let mut long = [0u8; 16];
    OsRng.fill_bytes(&mut long);
    long
}

/// A fresh key pair (transient keys, the cookie key).
pub fn generate_secret() -> SecretKey {
    SecretKey::generate(&mut OsRng)
}

/// 32 random bytes (the cookie key).
pub fn random_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    OsRng.fill_bytes(&mut key);
    key
}

/// A box in NaCl's layout over either cipher: `Boxer` (between two key pairs) or `CookieBox`
/// (under one symmetric key).
pub struct NaclBox<A>(A);

/// The precomputed box between two key pairs (NaCl's `crypto_box_beforenm`).
pub type Boxer = NaclBox<SalsaBox>;

/// The symmetric box the server's cookie is sealed with.
pub type CookieBox = NaclBox<XSalsa20Poly1305>;

impl<A> std::fmt::Debug for NaclBox<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NaclBox(..)")
    }
}

impl NaclBox<SalsaBox> {
    pub fn new(their_public: &[u8; 32], our_secret: &SecretKey) -> Self {
        Self(SalsaBox::new(&PublicKey::from(*their_public), our_secret))
    }
}

impl NaclBox<XSalsa20Poly1305> {
    pub fn new(key: &[u8; 32]) -> Self {
        Self(XSalsa20Poly1305::new(GenericArray::from_slice(key)))
    }
}

impl<A: AeadInPlace<NonceSize = U24, TagSize = U16>> NaclBox<A> {
    /// Appends the box of `plaintext` (tag, then ciphertext) to `out`.
    pub fn seal_into(&self, nonce: &[u8; 24], plaintext: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0u8; TAG]);
        out.extend_from_slice(plaintext);
        self.seal_in_place(nonce, &mut out[start..]);
    }

    /// `boxed` is TAG zero bytes then the plaintext: encrypts the plaintext in place and writes
    /// the tag in front of it.
    pub fn seal_in_place(&self, nonce: &[u8; 24], boxed: &mut [u8]) {
        let (tag, text) = boxed.split_at_mut(TAG);
        // Encryption with XSalsa20-Poly1305 cannot fail for lengths below 2^38 bytes.
        if let Ok(t) = self.0.encrypt_in_place_detached(GenericArray::from_slice(nonce), b"", text) {
            tag.copy_from_slice(&t);
        }
    }

    /// The plaintext of `boxed`, or `None` when it is not a box for these keys and nonce.
    pub fn open(&self, nonce: &[u8; 24], boxed: &[u8]) -> Option<Vec<u8>> {
        let tag = boxed.get(..TAG)?;
        let mut text = boxed[TAG..].to_vec();
        let tag = GenericArray::from_slice(tag);
        self.0.decrypt_in_place_detached(GenericArray::from_slice(nonce), b"", &mut text, tag).ok()?;
        Some(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NaCl's own `crypto_box` test vector (tests/box.c in NaCl, and libsodium's box test):
    /// Alice's secret key, Bob's public key, the nonce, and the first bytes of the box.
    #[test]
    fn a_box_matches_nacl_byte_for_byte() {
        let alice_secret = [
            0x77, 0x07, 0x6d, 0x0a, 0x73, 0x18, 0xa5, 0x7d, 0x3c, 0x16, 0xc1, 0x72, 0x51, 0xb2, 0x66, 0x45,
            0xdf, 0x4c, 0x2f, 0x87, 0xeb, 0xc0, 0x99, 0x2a, 0xb1, 0x77, 0xfb, 0xa5, 0x1d, 0xb9, 0x2c, 0x2a,
        ];
        let bob_public = [
            0xde, 0x9e, 0xdb, 0x7d, 0x7b, 0x7d, 0xc1, 0xb4, 0xd3, 0x5b, 0x61, 0xc2, 0xec, 0xe4, 0x35, 0x37,
            0x3f, 0x83, 0x43, 0xc8, 0x5b, 0x78, 0x67, 0x4d, 0xad, 0xfc, 0x7e, 0x14, 0x6f, 0x88, 0x2b, 0x4f,
        ];
        let nonce = [
            0x69, 0x69, 0x6e, 0xe9, 0x55, 0xb6, 0x2b, 0x73, 0xcd, 0x62, 0xbd, 0xa8, 0x75, 0xfc, 0x73, 0xd6,
            0x82, 0x19, 0xe0, 0x03, 0x6b, 0x7a, 0x0b, 0x37,
        ];
        let message = [
            0xbe, 0x07, 0x5f, 0xc5, 0x3c, 0x81, 0xf2, 0xd5, 0xcf, 0x14, 0x13, 0x16, 0xeb, 0xeb, 0x0c, 0x7b,
            0x52, 0x28, 0xc5, 0x2a, 0x4c, 0x62, 0xcb, 0xd4, 0x4b, 0x66, 0x84, 0x9b, 0x64, 0x24, 0x4f, 0xfc,
        ];
        let boxer = Boxer::new(&bob_public, &SecretKey::from(alice_secret));
        let mut out = Vec::new();
        boxer.seal_into(&nonce, &message, &mut out);
        // The ciphertext after the 16-byte tag, as NaCl prints it: the shared key, the nonce
        // and the stream match. (NaCl's tag covers its whole 131-byte message, not this prefix.)
        assert_eq!(out.len(), TAG + 32);
        assert_eq!(out[TAG..TAG + 8], [0x8e, 0x99, 0x3b, 0x9f, 0x48, 0x68, 0x12, 0x73]);
    }

    #[test]
    fn a_box_opens_only_with_its_keys_and_nonce() {
        let (a, b) = (generate_secret(), generate_secret());
        let to_b = Boxer::new(b.public_key().as_bytes(), &a);
        let from_a = Boxer::new(a.public_key().as_bytes(), &b);
        let nonce = short_nonce(b"CurveZMQMESSAGEC", 7);
        let mut sealed = Vec::new();
        to_b.seal_into(&nonce, b"hello", &mut sealed);
        assert_eq!(sealed.len(), 5 + TAG);
        assert_eq!(from_a.open(&nonce, &sealed).as_deref(), Some(&b"hello"[..]));
        assert_eq!(from_a.open(&short_nonce(b"CurveZMQMESSAGEC", 8), &sealed), None);
        sealed[TAG] ^= 1;
        assert_eq!(from_a.open(&nonce, &sealed), None);
        assert_eq!(from_a.open(&nonce, &[0u8; 3]), None, "shorter than a tag");
        let cookie = CookieBox::new(&random_key());
        let long = random_long();
        let mut sealed = Vec::new();
        cookie.seal_into(&long_nonce(b"COOKIE--", &long), b"secret", &mut sealed);
        assert_eq!(cookie.open(&long_nonce(b"COOKIE--", &long), &sealed).as_deref(), Some(&b"secret"[..]));
    }
}

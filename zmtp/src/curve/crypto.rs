//! The boxes CurveZMQ is built from, in NaCl's layout (a 16-byte Poly1305 tag, then the
//! ciphertext): XSalsa20-Poly1305 under a key that is either precomputed from two key pairs
//! (X25519, then HSalsa20: NaCl's `crypto_box_beforenm`) or a symmetric one (the server's
//! cookie, NaCl's `crypto_secretbox`). Nonces are 24 bytes: a protocol prefix and a short
//! (8-byte, big-endian counter) or long (16 random bytes) part.
//!
//! X25519 comes from `curve25519-dalek` and randomness from the OS (`getrandom`); Salsa20 and
//! Poly1305 are this crate's own, for speed (see `salsa20` and `poly1305`). The tests check
//! every box against RustCrypto's `crypto_box` and `crypto_secretbox` byte for byte.

use curve25519_dalek::montgomery::MontgomeryPoint;
use zeroize::Zeroizing;

use super::{poly1305, salsa20};
use crate::error::CurveError;

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

/// `N` bytes from the operating system's random source.
fn random<const N: usize>() -> Result<[u8; N], CurveError> {
    let mut bytes = [0u8; N];
    getrandom::getrandom(&mut bytes).map_err(|_| CurveError::NoRandomness)?;
    Ok(bytes)
}

/// 16 random bytes, for a long nonce.
pub fn random_long() -> Result<[u8; 16], CurveError> {
    random()
}

/// 32 random bytes (a secret key, the cookie key).
pub fn random_key() -> Result<[u8; 32], CurveError> {
    random()
}

/// An X25519 secret key; its bytes are wiped when it is dropped.
#[derive(Clone)]
pub struct SecretKey(Zeroizing<[u8; 32]>);

impl SecretKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        *self.0
    }

    /// The public key: the base point times the clamped secret.
    pub fn public_key(&self) -> [u8; 32] {
        MontgomeryPoint::mul_base_clamped(*self.0).to_bytes()
    }

    /// The key two parties share: X25519, then HSalsa20 (NaCl's `crypto_box_beforenm`). A
    /// low-order public key makes the X25519 result all zeros, a key anyone can compute;
    /// libsodium refuses such keys, and here the box gets a random key instead (or, should the
    /// random source fail, one derived from our secret), so nothing sealed for it opens and the
    /// handshake fails on its first box.
    fn shared_key(&self, their_public: &[u8; 32]) -> Zeroizing<[u8; 32]> {
        let point = Zeroizing::new(MontgomeryPoint(*their_public).mul_clamped(*self.0).to_bytes());
        if point.iter().all(|&b| b == 0) {
            let key = random_key().unwrap_or_else(|_| salsa20::hsalsa20(&self.0, b"low-order peer!!"));
            return Zeroizing::new(key);
        }
        Zeroizing::new(salsa20::hsalsa20(&point, &[0u8; 16]))
    }
}

/// An XSalsa20-Poly1305 box under one 32-byte key.
pub struct NaclBox {
    key: Zeroizing<[u8; 32]>,
}

/// The precomputed box between two key pairs.
pub type Boxer = NaclBox;

/// The symmetric box the server's cookie is sealed with.
pub type CookieBox = NaclBox;

impl std::fmt::Debug for NaclBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NaclBox(..)")
    }
}

impl NaclBox {
    /// The box from `our_secret` to the holder of `their_public` (and back).
    pub fn new(their_public: &[u8; 32], our_secret: &SecretKey) -> Self {
        Self::with_key(&our_secret.shared_key(their_public))
    }

    /// The box under a symmetric key.
    pub fn with_key(key: &[u8; 32]) -> Self {
        Self { key: Zeroizing::new(*key) }
    }

    /// XSalsa20's subkey for nonces starting with `head`.
    fn subkey(&self, head: &[u8]) -> Zeroizing<salsa20::Key> {
        let mut input = [0u8; 16];
        input.copy_from_slice(&head[..16]);
        let bytes = Zeroizing::new(salsa20::hsalsa20(&self.key, &input));
        Zeroizing::new(salsa20::key_words(&bytes))
    }

    /// Runs `f` over the XSalsa20 stream for `nonce`.
    fn with_stream<T>(&self, nonce: &[u8; 24], f: impl FnOnce(Stream<'_>) -> T) -> T {
        let subkey = self.subkey(&nonce[..16]);
        let mut tail = [0u8; 8];
        tail.copy_from_slice(&nonce[16..]);
        let nonce = salsa20::nonce_words(&tail);
        let first = Zeroizing::new(salsa20::block(&subkey, nonce, 0));
        f(Stream { subkey: &subkey, nonce, first: &first })
    }

    /// Appends the box of `plaintext` (tag, then ciphertext) to `out`.
    pub fn seal_into(&self, nonce: &[u8; 24], plaintext: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0u8; TAG]);
        out.extend_from_slice(plaintext);
        self.with_stream(nonce, |stream| stream.seal_in_place(&mut out[start..]));
    }

    /// The plaintext of `boxed`, or `None` when it is not a box for this key and nonce.
    pub fn open(&self, nonce: &[u8; 24], boxed: &[u8]) -> Option<Vec<u8>> {
        let tag = boxed.get(..TAG)?;
        let mut text = boxed[TAG..].to_vec();
        self.with_stream(nonce, |stream| stream.open_in_place(tag, &mut text)).then_some(text)
    }
}

/// One box's XSalsa20 stream: the subkey, the 8-byte stream nonce (as state words) and keystream
/// block 0, whose first half is the Poly1305 key and whose second half covers the first 32
/// bytes of the message.
struct Stream<'a> {
    subkey: &'a salsa20::Key,
    nonce: [u32; 2],
    first: &'a [u8; 64],
}

impl Stream<'_> {
    /// XORs the message keystream (from byte 32 of block 0 on) over `text`.
    fn crypt(&self, text: &mut [u8]) {
        let (head, rest) = text.split_at_mut(text.len().min(32));
        for (byte, k) in head.iter_mut().zip(&self.first[32..]) {
            *byte ^= k;
        }
        salsa20::xor_keystream(self.subkey, self.nonce, 1, rest);
    }

    fn tag(&self, text: &[u8]) -> [u8; 16] {
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&self.first[..32]);
        poly1305::tag(&key, text)
    }

    /// `boxed` is TAG bytes (any) then the plaintext: encrypts the plaintext in place and
    /// writes the tag in front of it.
    fn seal_in_place(&self, boxed: &mut [u8]) {
        let (tag, text) = boxed.split_at_mut(TAG);
        self.crypt(text);
        tag.copy_from_slice(&self.tag(text));
    }

    /// Checks `tag` against the ciphertext `text`, then decrypts `text` in place; `false` (and
    /// `text` untouched) when the tag is wrong.
    fn open_in_place(&self, tag: &[u8], text: &mut [u8]) -> bool {
        if !equal_in_constant_time(&self.tag(text), tag) {
            return false;
        }
        self.crypt(text);
        true
    }
}

/// The boxes of one direction of MESSAGE traffic, whose nonces are a fixed 16-byte prefix and
/// a counter: XSalsa20's subkey depends only on the prefix, so it is computed once, and the
/// first keystream blocks (each message's Poly1305 key) are computed eight counters at a time.
pub struct CounterBox {
    subkey: Zeroizing<salsa20::Key>,
    /// Keystream block 0 for counters `base..base + 8`, when `filled`.
    firsts: Box<Zeroizing<[[u8; 64]; 8]>>,
    base: u64,
    filled: bool,
}

impl std::fmt::Debug for CounterBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CounterBox(..)")
    }
}

impl CounterBox {
    /// The boxes under `shared` with nonces `prefix` + an 8-byte big-endian counter.
    pub fn new(shared: &NaclBox, prefix: &[u8; 16]) -> Self {
        let firsts = Box::new(Zeroizing::new([[0; 64]; 8]));
        Self { subkey: shared.subkey(prefix), firsts, base: 0, filled: false }
    }

    /// The stream for `counter`, from the precomputed blocks (refilled from `counter` when it
    /// falls outside them).
    fn stream(&mut self, counter: u64) -> Stream<'_> {
        let offset = counter.wrapping_sub(self.base);
        if !self.filled || offset >= 8 {
            let nonces =
                std::array::from_fn(|i| salsa20::nonce_words(&counter.wrapping_add(i as u64).to_be_bytes()));
            salsa20::first_blocks(&self.subkey, &nonces, &mut self.firsts);
            (self.base, self.filled) = (counter, true);
        }
        let first = &self.firsts[counter.wrapping_sub(self.base) as usize];
        Stream { subkey: &self.subkey, nonce: salsa20::nonce_words(&counter.to_be_bytes()), first }
    }

    /// `boxed` is TAG bytes (any) then the plaintext: seals it in place for nonce `counter`.
    pub fn seal_in_place(&mut self, counter: u64, boxed: &mut [u8]) {
        self.stream(counter).seal_in_place(boxed);
    }

    /// Opens the ciphertext `text` in place when `tag` is its tag for nonce `counter`; `false`
    /// when it is not.
    pub fn open_in_place(&mut self, counter: u64, tag: &[u8], text: &mut [u8]) -> bool {
        self.stream(counter).open_in_place(tag, text)
    }
}

/// Whether two tags are equal, in time that does not depend on where they differ.
fn equal_in_constant_time(a: &[u8; 16], b: &[u8]) -> bool {
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0 && b.len() == 16
}

#[cfg(test)]
mod tests {
    use super::*;

    // The tests' randomness: the OS source, which does not fail here.
    fn random<const N: usize>() -> [u8; N] {
        super::random().unwrap()
    }
    fn random_key() -> [u8; 32] {
        random()
    }
    fn random_long() -> [u8; 16] {
        random()
    }
    use crypto_box::aead::generic_array::GenericArray;
    use crypto_box::aead::{Aead, KeyInit};

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
        let boxer = Boxer::new(&bob_public, &SecretKey::from_bytes(alice_secret));
        let mut out = Vec::new();
        boxer.seal_into(&nonce, &message, &mut out);
        // The ciphertext after the 16-byte tag, as NaCl prints it: the shared key, the nonce
        // and the stream match. (NaCl's tag covers its whole 131-byte message, not this prefix.)
        assert_eq!(out.len(), TAG + 32);
        assert_eq!(out[TAG..TAG + 8], [0x8e, 0x99, 0x3b, 0x9f, 0x48, 0x68, 0x12, 0x73]);
    }

    #[test]
    fn a_box_opens_only_with_its_keys_and_nonce() {
        let (a, b) = (SecretKey::from_bytes(random_key()), SecretKey::from_bytes(random_key()));
        let to_b = Boxer::new(&b.public_key(), &a);
        let from_a = Boxer::new(&a.public_key(), &b);
        let nonce = short_nonce(b"CurveZMQMESSAGEC", 7);
        let mut sealed = Vec::new();
        to_b.seal_into(&nonce, b"hello", &mut sealed);
        assert_eq!(sealed.len(), 5 + TAG);
        assert_eq!(from_a.open(&nonce, &sealed).as_deref(), Some(&b"hello"[..]));
        assert_eq!(from_a.open(&short_nonce(b"CurveZMQMESSAGEC", 8), &sealed), None);
        let mut bad_tag = sealed.clone();
        bad_tag[3] ^= 0x80;
        assert_eq!(from_a.open(&nonce, &bad_tag), None);
        sealed[TAG] ^= 1;
        assert_eq!(from_a.open(&nonce, &sealed), None);
        assert_eq!(from_a.open(&nonce, &[0u8; 3]), None, "shorter than a tag");
        let cookie = CookieBox::with_key(&random_key());
        let long = random_long();
        let mut sealed = Vec::new();
        cookie.seal_into(&long_nonce(b"COOKIE--", &long), b"secret", &mut sealed);
        assert_eq!(cookie.open(&long_nonce(b"COOKIE--", &long), &sealed).as_deref(), Some(&b"secret"[..]));
    }

    /// Every length from empty to past the SIMD block sizes, and the sizes the benchmarks use:
    /// our boxes are RustCrypto's boxes, byte for byte, both ways.
    #[test]
    fn boxes_match_rustcrypto_crypto_box_and_secretbox() {
        let lengths = (0..600).chain([1023, 1024, 1025, 8191, 8192, 8193, 65_536, (1 << 20) + 17]);
        for (round, len) in lengths.enumerate() {
            let (ours, theirs) = (random_key(), random_key());
            let nonce: [u8; 24] = random();
            let plain: Vec<u8> = (0..len).map(|i| (i * 131 + round) as u8).collect();
            let reference = crypto_box::SalsaBox::new(
                &crypto_box::PublicKey::from(SecretKey::from_bytes(theirs).public_key()),
                &crypto_box::SecretKey::from(ours),
            );
            let expected = reference.encrypt(GenericArray::from_slice(&nonce), &plain[..]).unwrap();
            let boxer = Boxer::new(&SecretKey::from_bytes(theirs).public_key(), &SecretKey::from_bytes(ours));
            let mut sealed = Vec::new();
            boxer.seal_into(&nonce, &plain, &mut sealed);
            // RustCrypto puts the tag first too (NaCl's layout without the zero padding).
            assert!(sealed == expected, "crypto_box, length {len}");
            assert_eq!(boxer.open(&nonce, &expected).as_deref(), Some(&plain[..]), "open, length {len}");
            let symmetric = crypto_secretbox::XSalsa20Poly1305::new(GenericArray::from_slice(&ours));
            let expected = symmetric.encrypt(GenericArray::from_slice(&nonce), &plain[..]).unwrap();
            let mut sealed = Vec::new();
            CookieBox::with_key(&ours).seal_into(&nonce, &plain, &mut sealed);
            assert!(sealed == expected, "secretbox, length {len}");
        }
    }

    fn open_by_counter(boxes: &mut CounterBox, counter: u64, sealed: &[u8]) -> Option<Vec<u8>> {
        let mut text = sealed[TAG..].to_vec();
        boxes.open_in_place(counter, &sealed[..TAG], &mut text).then_some(text)
    }

    #[test]
    fn counter_boxes_match_the_plain_box_in_any_counter_order() {
        let shared = NaclBox::with_key(&random_key());
        let prefix = b"CurveZMQMESSAGEC";
        let mut counter_box = CounterBox::new(&shared, prefix);
        // In order, skipping ahead, going back (a refill), across the 8-counter batches.
        for counter in [1u64, 2, 3, 9, 10, 4, 100, 107, 108, 5, u64::MAX - 1, u64::MAX] {
            let plain: Vec<u8> = (0..counter % 300 + 1).map(|i| i as u8).collect();
            let mut expected = Vec::new();
            shared.seal_into(&short_nonce(prefix, counter), &plain, &mut expected);
            let mut sealed = vec![0u8; TAG];
            sealed.extend_from_slice(&plain);
            counter_box.seal_in_place(counter, &mut sealed);
            assert_eq!(sealed, expected, "counter {counter}");
            assert_eq!(open_by_counter(&mut counter_box, counter, &sealed), Some(plain), "counter {counter}");
            let next = counter.wrapping_add(1);
            assert_eq!(open_by_counter(&mut counter_box, next, &sealed), None, "counter {counter} + 1");
        }
    }

    #[test]
    fn a_low_order_public_key_gives_a_box_nobody_can_open() {
        // The all-zero point: X25519 with it is all zeros whatever the secret.
        let ours = SecretKey::from_bytes(random_key());
        let (a, b) = (NaclBox::new(&[0; 32], &ours), NaclBox::new(&[0; 32], &ours));
        let zero_key = NaclBox::with_key(&salsa20::hsalsa20(&[0; 32], &[0; 16]));
        let nonce = short_nonce(b"CurveZMQHELLO---", 1);
        let mut forged = Vec::new();
        zero_key.seal_into(&nonce, b"anyone could seal this", &mut forged);
        assert_eq!(a.open(&nonce, &forged), None, "a box under the all-zero key opened");
        let mut sealed = Vec::new();
        a.seal_into(&nonce, b"x", &mut sealed);
        assert_eq!(b.open(&nonce, &sealed), None, "two such boxes share a key");
    }

    #[test]
    fn public_keys_match_crypto_box() {
        let secret = random_key();
        let theirs = crypto_box::SecretKey::from(secret).public_key();
        assert_eq!(&SecretKey::from_bytes(secret).public_key(), theirs.as_bytes());
    }
}

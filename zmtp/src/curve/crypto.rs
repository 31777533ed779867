//! The boxes CurveZMQ is built from, in NaCl's layout (a 16-byte Poly1305 tag, then the
//! ciphertext): XSalsa20-Poly1305 under a key that is either precomputed from two key pairs
//! (X25519, then HSalsa20: NaCl's `crypto_box_beforenm`) or a symmetric one (the server's
//! cookie, NaCl's `crypto_secretbox`). Nonces are 24 bytes: a protocol prefix and a short
//! (8-byte, big-endian counter) or long (16 random bytes) part.
//!
//! Every primitive comes from the caller's `CryptoProvider`; this module only arranges them as
//! NaCl does: XSalsa20's subkey is HSalsa20 of the key and the nonce's first 16 bytes, the
//! stream's first 32 bytes are the Poly1305 key, the rest encrypts the message. For MESSAGE
//! traffic, whose nonce prefix never changes, `CounterBox` computes the subkey once per
//! direction. Keys, subkeys and keystream are wiped when dropped.

use zeroize::{Zeroize, Zeroizing};

use super::provider::{CryptoProvider, Provider};
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

/// `N` random bytes from the provider.
pub fn random<const N: usize>(provider: &dyn CryptoProvider) -> Result<[u8; N], CurveError> {
    let mut bytes = [0u8; N];
    provider.fill_random(&mut bytes)?;
    Ok(bytes)
}

/// An X25519 secret key; its bytes are wiped when it is dropped.
#[derive(Clone)]
pub struct SecretKey(Zeroizing<[u8; 32]>);

impl SecretKey {
    /// The key with these bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// A copy of its bytes, wiped when dropped.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        self.0.clone()
    }

    /// Its bytes.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// XSalsa20-Poly1305 under one 32-byte key.
pub struct NaclBox {
    key: Zeroizing<[u8; 32]>,
    provider: Provider,
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
    /// The box from `our_secret` to the holder of `their_public` (and back); `None` when
    /// `their_public` is of low order (anyone could compute the key).
    pub fn new(provider: &Provider, their_public: &[u8; 32], our_secret: &SecretKey) -> Option<Self> {
        let shared = Zeroizing::new(provider.x25519(our_secret.bytes(), their_public)?);
        Some(Self::with_key(provider, &provider.hsalsa20(&shared, &[0u8; 16])))
    }

    /// The box under a symmetric key.
    pub fn with_key(provider: &Provider, key: &[u8; 32]) -> Self {
        Self { key: Zeroizing::new(*key), provider: provider.clone() }
    }

    /// XSalsa20's subkey for nonces starting with `head`.
    fn subkey(&self, head: &[u8; 16]) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.provider.hsalsa20(&self.key, head))
    }

    /// The subkey and the 8-byte stream nonce for `nonce`.
    fn stream_for(&self, nonce: &[u8; 24]) -> (Zeroizing<[u8; 32]>, [u8; 8]) {
        let (head, tail) = nonce.split_at(16);
        let head: &[u8; 16] = head.try_into().unwrap_or(&[0; 16]);
        (self.subkey(head), tail.try_into().unwrap_or([0; 8]))
    }

    /// Appends the box of `plaintext` (tag, then ciphertext) to `out`.
    pub fn seal_into(&self, nonce: &[u8; 24], plaintext: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0u8; TAG]);
        out.extend_from_slice(plaintext);
        let (subkey, tail) = self.stream_for(nonce);
        Stream { provider: &*self.provider, key: &subkey, nonce: tail }.seal_in_place(&mut out[start..]);
    }

    /// The plaintext of `boxed` (wiped when dropped), or `None` when it is not a box for this
    /// key and nonce.
    pub fn open(&self, nonce: &[u8; 24], boxed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let tag: &[u8; TAG] = boxed.get(..TAG)?.try_into().ok()?;
        let mut text = Zeroizing::new(boxed[TAG..].to_vec());
        let (subkey, tail) = self.stream_for(nonce);
        let stream = Stream { provider: &*self.provider, key: &subkey, nonce: tail };
        stream.open_in_place(tag, &mut text).then_some(text)
    }
}

/// One box's XSalsa20 stream: the subkey and the 8-byte stream nonce. The stream's first 32
/// bytes are the Poly1305 key, the rest covers the message.
///
/// Keystream is asked of the provider in the sizes its Salsa20 is quickest at: libsodium's
/// vector code works in groups of 4 and 8 blocks, so one call for 256 or 512 bytes costs about
/// what 1 or 2 single blocks do. The stream's head (Poly1305 key and the message's first bytes)
/// comes as one such group into a scratch buffer, the message's middle is XORed in place in
/// 512-byte steps, and its tail comes as one more group.
struct Stream<'a> {
    provider: &'a dyn CryptoProvider,
    key: &'a [u8; 32],
    nonce: [u8; 8],
}

/// Bytes of keystream worth asking for at once: one block, or a group of 4 or 8.
fn group_for(bytes: usize) -> usize {
    match bytes {
        0..=64 => 64,
        65..=256 => 256,
        _ => 512,
    }
}

/// Up to 512 bytes of keystream; what was filled is wiped when dropped.
struct Keystream {
    bytes: [u8; 512],
    len: usize,
}

impl Drop for Keystream {
    fn drop(&mut self) {
        self.bytes[..self.len].zeroize();
    }
}

/// XORs `keystream` over `data` (as long as the shorter).
fn xor(data: &mut [u8], keystream: &[u8]) {
    for (byte, k) in data.iter_mut().zip(keystream) {
        *byte ^= k;
    }
}

impl Stream<'_> {
    /// The keystream from block `block` on, `len` bytes of it (at most 512), wiped when dropped.
    fn keystream(&self, block: u64, len: usize) -> Keystream {
        let mut keystream = Keystream { bytes: [0u8; 512], len };
        self.provider.salsa20_xor(self.key, &self.nonce, block, &mut keystream.bytes[..len]);
        keystream
    }

    /// The stream's head: its first bytes, enough for the Poly1305 key and up to 480 bytes of
    /// a message of `len` bytes.
    fn head(&self, len: usize) -> Keystream {
        self.keystream(0, group_for(32 + len))
    }

    /// XORs the message keystream over `text`, whose first bytes `head` covers from byte 32.
    fn crypt(&self, head: &Keystream, text: &mut [u8]) {
        let (first, rest) = text.split_at_mut(text.len().min(480));
        xor(first, &head.bytes[32..head.len]);
        // The rest starts at block 8; its whole 512-byte steps in place, its tail as a group.
        let whole = rest.len() / 512 * 512;
        let (middle, tail) = rest.split_at_mut(whole);
        if !middle.is_empty() {
            self.provider.salsa20_xor(self.key, &self.nonce, 8, middle);
        }
        if !tail.is_empty() {
            let block = 8 + (whole / 64) as u64;
            let keystream = self.keystream(block, group_for(tail.len()));
            xor(tail, &keystream.bytes[..keystream.len]);
        }
    }

    /// Poly1305 of `text` under the stream's first 32 bytes (which `head` wipes when dropped).
    fn tag(&self, head: &Keystream, text: &[u8]) -> [u8; 16] {
        let (key, _) = head.bytes.split_first_chunk::<32>().unwrap_or((&[0; 32], &[]));
        self.provider.poly1305(key, text)
    }

    /// `boxed` is TAG bytes (any) then the plaintext: encrypts the plaintext in place and
    /// writes the tag in front of it.
    fn seal_in_place(&self, boxed: &mut [u8]) {
        let (tag, text) = boxed.split_at_mut(TAG);
        let head = self.head(text.len());
        self.crypt(&head, text);
        tag.copy_from_slice(&self.tag(&head, text));
    }

    /// Checks `tag` against the ciphertext `text`, then decrypts `text` in place; `false` (and
    /// `text` untouched) when the tag is wrong.
    fn open_in_place(&self, tag: &[u8; TAG], text: &mut [u8]) -> bool {
        let head = self.head(text.len());
        let mut expected = self.tag(&head, text);
        let matches = self.provider.verify16(&expected, tag);
        expected.zeroize();
        if matches {
            self.crypt(&head, text);
        }
        matches
    }
}

/// The boxes of one direction of MESSAGE traffic, whose nonces are a fixed 16-byte prefix and
/// a counter: XSalsa20's subkey depends only on the prefix, so it is computed once.
pub struct CounterBox {
    subkey: Zeroizing<[u8; 32]>,
    provider: Provider,
}

impl std::fmt::Debug for CounterBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CounterBox(..)")
    }
}

impl CounterBox {
    /// The boxes under `shared` with nonces `prefix` + an 8-byte big-endian counter.
    pub fn new(shared: &NaclBox, prefix: &[u8; 16]) -> Self {
        Self { subkey: shared.subkey(prefix), provider: shared.provider.clone() }
    }

    fn stream(&self, counter: u64) -> Stream<'_> {
        Stream { provider: &*self.provider, key: &self.subkey, nonce: counter.to_be_bytes() }
    }

    /// `boxed` is TAG bytes (any) then the plaintext: seals it in place for nonce `counter`.
    pub fn seal_in_place(&mut self, counter: u64, boxed: &mut [u8]) {
        self.stream(counter).seal_in_place(boxed);
    }

    /// Opens the ciphertext `text` in place when `tag` is its tag for nonce `counter`; `false`
    /// when it is not.
    pub fn open_in_place(&mut self, counter: u64, tag: &[u8], text: &mut [u8]) -> bool {
        let Ok(tag) = <&[u8; TAG]>::try_from(tag) else { return false };
        self.stream(counter).open_in_place(tag, text)
    }
}

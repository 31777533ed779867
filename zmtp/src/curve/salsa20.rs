//! Salsa20/20 (D. J. Bernstein), the stream cipher inside NaCl's box: HSalsa20 to derive a
//! key, and the keystream XORed over a buffer from a given block counter.
//!
//! Written here rather than taken from the `salsa20` crate for speed: that crate computes one
//! block at a time (about 2 ns a byte on the project machine), while on x86-64 the keystream
//! below computes 4 blocks at once with SSE2, or 8 with AVX2 when the CPU has it
//! (`salsa20_simd`), which is what libsodium, and so libzmq, does. The tests check every path
//! byte for byte against the `salsa20` crate.

use zeroize::Zeroize;

/// "expand 32-byte k", the four constant words of the Salsa20 state.
const SIGMA: [u32; 4] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574];

/// A 256-bit key as the eight little-endian words the state holds.
pub type Key = [u32; 8];

/// The key's bytes as words.
pub fn key_words(key: &[u8; 32]) -> Key {
    std::array::from_fn(|i| le_word(&key[4 * i..]))
}

fn le_word(bytes: &[u8]) -> u32 {
    u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// The initial state for `key`, an 8-byte nonce (two words) and a block counter.
pub(super) fn initial_state(key: &Key, nonce: [u32; 2], counter: u64) -> [u32; 16] {
    let [k0, k1, k2, k3, k4, k5, k6, k7] = *key;
    let (low, high) = (counter as u32, (counter >> 32) as u32);
    [SIGMA[0], k0, k1, k2, k3, SIGMA[1], nonce[0], nonce[1], low, high, SIGMA[2], k4, k5, k6, k7, SIGMA[3]]
}

/// The quarter-round positions: columns, then rows (each `a, b, c, d`, the order the
/// quarter-round updates them in).
pub(super) const QUARTERS: [[usize; 4]; 8] = [
    [0, 4, 8, 12],
    [5, 9, 13, 1],
    [10, 14, 2, 6],
    [15, 3, 7, 11],
    [0, 1, 2, 3],
    [5, 6, 7, 4],
    [10, 11, 8, 9],
    [15, 12, 13, 14],
];

/// One quarter-round: `b`, `c`, `d`, `a` updated in turn.
#[inline(always)]
fn quarter(x: &mut [u32; 16], [a, b, c, d]: [usize; 4]) {
    x[b] ^= x[a].wrapping_add(x[d]).rotate_left(7);
    x[c] ^= x[b].wrapping_add(x[a]).rotate_left(9);
    x[d] ^= x[c].wrapping_add(x[b]).rotate_left(13);
    x[a] ^= x[d].wrapping_add(x[c]).rotate_left(18);
}

/// The 20 rounds over one block's state (no final addition), unrolled so the state stays in
/// registers.
fn rounds(x: &mut [u32; 16]) {
    for _ in 0..10 {
        let [q0, q1, q2, q3, q4, q5, q6, q7] = QUARTERS;
        quarter(x, q0);
        quarter(x, q1);
        quarter(x, q2);
        quarter(x, q3);
        quarter(x, q4);
        quarter(x, q5);
        quarter(x, q6);
        quarter(x, q7);
    }
}

/// One 64-byte keystream block.
pub fn block(key: &Key, nonce: [u32; 2], counter: u64) -> [u8; 64] {
    let mut input = initial_state(key, nonce, counter);
    let mut x = input;
    rounds(&mut x);
    let mut out = [0u8; 64];
    for (i, chunk) in out.chunks_exact_mut(4).enumerate() {
        chunk.copy_from_slice(&x[i].wrapping_add(input[i]).to_le_bytes());
    }
    // Both hold the key (the rounds can be undone).
    input.zeroize();
    x.zeroize();
    out
}

/// HSalsa20: a 256-bit key derived from `key` and 16 bytes of input (XSalsa20's first step,
/// and NaCl's `crypto_box_beforenm` over the X25519 shared secret).
pub fn hsalsa20(key: &[u8; 32], input: &[u8; 16]) -> [u8; 32] {
    let mut words = key_words(key);
    let nonce = [le_word(&input[0..]), le_word(&input[4..])];
    let counter = u64::from(le_word(&input[8..])) | u64::from(le_word(&input[12..])) << 32;
    let mut x = initial_state(&words, nonce, counter);
    rounds(&mut x);
    let mut out = [0u8; 32];
    for (chunk, i) in out.chunks_exact_mut(4).zip([0, 5, 10, 15, 6, 7, 8, 9]) {
        chunk.copy_from_slice(&x[i].to_le_bytes());
    }
    // Both hold the key (the rounds can be undone), here often the X25519 shared secret.
    words.zeroize();
    x.zeroize();
    out
}

/// The 8-byte nonce as the state's two words.
pub fn nonce_words(nonce: &[u8; 8]) -> [u32; 2] {
    [le_word(&nonce[0..]), le_word(&nonce[4..])]
}

/// XORs the keystream from block `counter` on over `data`.
pub fn xor_keystream(key: &Key, nonce: [u32; 2], counter: u64, data: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    super::salsa20_simd::xor_keystream(key, nonce, counter, data);
    #[cfg(not(target_arch = "x86_64"))]
    xor_keystream_portable(key, nonce, counter, data);
}

/// Block 0 of the keystream for each of 8 nonces, one after another (512 bytes): computed
/// side by side, as a CURVE channel needs one for each coming message.
pub fn first_blocks(key: &Key, nonces: &[[u32; 2]; 8], out: &mut [[u8; 64]; 8]) {
    #[cfg(target_arch = "x86_64")]
    {
        let bytes = out.as_flattened_mut();
        bytes.fill(0);
        super::salsa20_simd::xor_first_blocks(key, nonces, bytes);
    }
    #[cfg(not(target_arch = "x86_64"))]
    for (first, nonce) in out.iter_mut().zip(nonces) {
        *first = block(key, *nonce, 0);
    }
}

/// The keystream one block at a time (other architectures, and the SIMD paths' tail).
pub fn xor_keystream_portable(key: &Key, nonce: [u32; 2], mut counter: u64, data: &mut [u8]) {
    for chunk in data.chunks_mut(64) {
        for (byte, k) in chunk.iter_mut().zip(block(key, nonce, counter)) {
            *byte ^= k;
        }
        counter = counter.wrapping_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::salsa20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};

    fn reference(key: &[u8; 32], nonce: &[u8; 8], counter: u64, data: &mut [u8]) {
        let mut cipher = ::salsa20::Salsa20::new(key.into(), nonce.into());
        cipher.seek(counter * 64);
        cipher.apply_keystream(data);
    }

    #[test]
    fn the_keystream_matches_the_salsa20_crate_at_every_length_and_counter() {
        let key: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(29).wrapping_add(3));
        let nonce = *b"\x01\x23\x45\x67\x89\xab\xcd\xef";
        for counter in [0u64, 1, 7, u32::MAX as u64 - 2] {
            for len in (0..1100).chain([4095, 4096, 4097, 65_537]) {
                let mut ours: Vec<u8> = (0..len).map(|i| i as u8).collect();
                let mut theirs = ours.clone();
                let mut portable = ours.clone();
                xor_keystream(&key_words(&key), nonce_words(&nonce), counter, &mut ours);
                xor_keystream_portable(&key_words(&key), nonce_words(&nonce), counter, &mut portable);
                reference(&key, &nonce, counter, &mut theirs);
                assert!(ours == theirs, "length {len}, counter {counter}");
                assert!(portable == theirs, "portable, length {len}, counter {counter}");
            }
        }
    }

    #[test]
    fn first_blocks_side_by_side_match_one_at_a_time() {
        let key = key_words(&[0x42; 32]);
        let nonces: [[u32; 2]; 8] =
            std::array::from_fn(|i| nonce_words(&(1000 + i as u64 * 77).to_be_bytes()));
        let mut blocks = [[0u8; 64]; 8];
        first_blocks(&key, &nonces, &mut blocks);
        for (first, nonce) in blocks.iter().zip(nonces) {
            assert_eq!(*first, block(&key, nonce, 0));
        }
    }

    #[test]
    fn hsalsa20_matches_the_salsa20_crate() {
        use ::salsa20::cipher::consts::U10;
        let key: [u8; 32] = std::array::from_fn(|i| i as u8 ^ 0x5c);
        let input: [u8; 16] = std::array::from_fn(|i| 0xf0 - i as u8);
        let theirs = ::salsa20::hsalsa::<U10>(&key.into(), &input.into());
        assert_eq!(hsalsa20(&key, &input), theirs.as_slice());
    }
}

//! Poly1305 (D. J. Bernstein), the one-time authenticator inside NaCl's box, over 64-bit limbs
//! (three limbs of 44, 44 and 42 bits, products in `u128`, as poly1305-donna's 64-bit code).
//!
//! Written here for speed: the `poly1305` crate's AVX2 path spends about 1.5 µs setting up
//! each key, longer than a whole 16-byte CURVE message takes to seal, and its portable path
//! runs one block at a time. Taking blocks two at a time (see `tag`) matches that crate's AVX2
//! speed on 1 MiB on the project machine. The tests check it against RFC 8439's test vector
//! and against the crate at every length up to several blocks.

const MASK_44: u64 = (1 << 44) - 1;
const MASK_42: u64 = (1 << 42) - 1;

fn le_u64(bytes: &[u8]) -> u64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(raw)
}

/// Splits a 128-bit little-endian number into limbs of 44, 44 and 42 bits.
fn limbs(low: u64, high: u64) -> [u64; 3] {
    [low & MASK_44, ((low >> 44) | (high << 20)) & MASK_44, (high >> 24) & MASK_42]
}

/// A number mod 2^130-5 as limbs of 44, 44 and 42 bits (each may run a little over).
pub(super) type Limbs = [u64; 3];

/// The product `a * b` before carrying, with 2^130 folded back as 5 (`b`'s top limbs times
/// 5 * 4, as the limbs sit at bits 0, 44 and 88).
pub(super) fn multiply(a: Limbs, b: Limbs) -> [u128; 3] {
    let wide = |x: u64, y: u64| u128::from(x) * u128::from(y);
    let (s1, s2) = (b[1] * 20, b[2] * 20);
    [
        wide(a[0], b[0]) + wide(a[1], s2) + wide(a[2], s1),
        wide(a[0], b[1]) + wide(a[1], b[0]) + wide(a[2], s2),
        wide(a[0], b[2]) + wide(a[1], b[1]) + wide(a[2], b[0]),
    ]
}

/// Carries a product back into limbs (partly reduced).
pub(super) fn carry([d0, mut d1, mut d2]: [u128; 3]) -> Limbs {
    d1 += d0 >> 44;
    d2 += d1 >> 44;
    let mut h = [(d0 as u64 & MASK_44) + (d2 >> 42) as u64 * 5, d1 as u64 & MASK_44, d2 as u64 & MASK_42];
    h[1] += h[0] >> 44;
    h[0] &= MASK_44;
    h
}

fn add(a: Limbs, b: Limbs) -> Limbs {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

/// A full 16-byte block as limbs, with the 2^128 bit every full block carries.
fn block_limbs(block: &[u8]) -> Limbs {
    let mut m = limbs(le_u64(block), le_u64(&block[8..]));
    m[2] |= 1 << 40;
    m
}

/// The 16-byte authenticator of `message` under a one-time 32-byte key. Blocks go two at a time as
/// `h = (h + m1) * r^2 + m2 * r`: the two products are independent, which halves the chain of
/// dependent multiplications per block.
pub fn tag(key: &[u8; 32], message: &[u8]) -> [u8; 16] {
    tag_with(key, message, true)
}

/// `tag`, with or without the vector path for long messages (`simd`; the tests run both).
fn tag_with(key: &[u8; 32], message: &[u8], simd: bool) -> [u8; 16] {
    // r, clamped as the algorithm requires.
    let r = limbs(le_u64(&key[0..]) & 0x0fff_fffc_0fff_ffff, le_u64(&key[8..]) & 0x0fff_fffc_0fff_fffc);
    #[cfg(target_arch = "x86_64")]
    let vector = if simd { super::poly1305_simd::absorb_groups(r, message) } else { None };
    #[cfg(not(target_arch = "x86_64"))]
    let vector: Option<(Limbs, usize)> = {
        let _ = simd;
        None
    };
    let (mut h, done) = vector.unwrap_or(([0; 3], 0));
    let mut pairs = message[done..].chunks_exact(32);
    if pairs.len() > 0 {
        let r2 = carry(multiply(r, r));
        for pair in &mut pairs {
            let (m1, m2) = (block_limbs(pair), block_limbs(&pair[16..]));
            let [a0, a1, a2] = multiply(add(h, m1), r2);
            let [b0, b1, b2] = multiply(m2, r);
            h = carry([a0 + b0, a1 + b1, a2 + b2]);
        }
    }
    let mut blocks = pairs.remainder().chunks_exact(16);
    if let Some(block) = blocks.next() {
        h = carry(multiply(add(h, block_limbs(block)), r));
    }
    let rest = blocks.remainder();
    if !rest.is_empty() {
        // The last partial block: its bytes, a 1, then zeros (no 2^128 bit).
        let mut last = [0u8; 16];
        last[..rest.len()].copy_from_slice(rest);
        last[rest.len()] = 1;
        h = carry(multiply(add(h, limbs(le_u64(&last), le_u64(&last[8..]))), r));
    }
    finish(h, le_u64(&key[16..]), le_u64(&key[24..]))
}

/// Reduces `h` fully mod 2^130-5 and adds the key's second half `s` mod 2^128.
fn finish(mut h: [u64; 3], s_low: u64, s_high: u64) -> [u8; 16] {
    for _ in 0..2 {
        h[2] += h[1] >> 44;
        h[1] &= MASK_44;
        h[0] += (h[2] >> 42) * 5;
        h[2] &= MASK_42;
        h[1] += h[0] >> 44;
        h[0] &= MASK_44;
    }
    // g = h + 5 - 2^130: if it does not borrow, h >= p and g is h mod p. Chosen without a branch.
    let mut g0 = h[0] + 5;
    let mut g1 = h[1] + (g0 >> 44);
    g0 &= MASK_44;
    let g2 = (h[2] + (g1 >> 44)).wrapping_sub(1 << 42);
    g1 &= MASK_44;
    let take_g = (g2 >> 63).wrapping_sub(1);
    let h0 = (h[0] & !take_g) | (g0 & take_g);
    let h1 = (h[1] & !take_g) | (g1 & take_g);
    let h2 = (h[2] & !take_g) | (g2 & take_g & MASK_42);
    let low = u128::from(h0).wrapping_add(u128::from(h1) << 44).wrapping_add(u128::from(h2) << 88);
    let s = u128::from(s_low) | u128::from(s_high) << 64;
    low.wrapping_add(s).to_le_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_8439_test_vector() {
        // RFC 8439, 2.5.2.
        let key: [u8; 32] = [
            0x85, 0xd6, 0xbe, 0x78, 0x57, 0x55, 0x6d, 0x33, 0x7f, 0x44, 0x52, 0xfe, 0x42, 0xd5, 0x06, 0xa8,
            0x01, 0x03, 0x80, 0x8a, 0xfb, 0x0d, 0xb2, 0xfd, 0x4a, 0xbf, 0xf6, 0xaf, 0x41, 0x49, 0xf5, 0x1b,
        ];
        let expected =
            [0xa8, 0x06, 0x1d, 0xc1, 0x30, 0x51, 0x36, 0xc6, 0xc2, 0x2b, 0x8b, 0xaf, 0x0c, 0x01, 0x27, 0xa9];
        assert_eq!(tag(&key, b"Cryptographic Forum Research Group"), expected);
    }

    #[test]
    fn matches_the_poly1305_crate_at_every_length() {
        use ::poly1305::universal_hash::KeyInit;
        let mut key = [0u8; 32];
        let message: Vec<u8> = (0..20_000u32).map(|i| ((i * 7919) >> 3) as u8).collect();
        for (round, len) in (0..300).chain([1023, 1024, 8191, 8192, 8193, 20_000]).enumerate() {
            key.iter_mut().enumerate().for_each(|(i, k)| *k = (i * 31 + round * 17) as u8);
            let theirs: [u8; 16] =
                ::poly1305::Poly1305::new(&key.into()).compute_unpadded(&message[..len]).into();
            assert_eq!(tag(&key, &message[..len]), theirs, "length {len}");
            assert_eq!(tag_with(&key, &message[..len], false), theirs, "scalar only, length {len}");
        }
        // Limbs at their largest: all-ones key halves and message bytes.
        let ones = [0xffu8; 1000];
        for len in [0, 15, 16, 17, 1000] {
            let theirs: [u8; 16] =
                ::poly1305::Poly1305::new(&[0xff; 32].into()).compute_unpadded(&ones[..len]).into();
            assert_eq!(tag(&[0xff; 32], &ones[..len]), theirs, "all ones, length {len}");
        }
    }
}

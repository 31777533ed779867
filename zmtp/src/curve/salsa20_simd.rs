//! The Salsa20 keystream on x86-64, several blocks at once: each SIMD register holds one state
//! word of 4 blocks (SSE2, which every x86-64 CPU has), 8 blocks (AVX2) or 16 blocks (AVX-512,
//! whose rotate instruction also saves two of every five operations), the widest the CPU
//! reports; the blocks differ only in their nonce and counter words. After the rounds a 4x4
//! transpose within each 128-bit lane turns the word-per-register layout back into each
//! block's bytes.
//!
//! The only `unsafe` here is calling an AVX2 or AVX-512 function once the CPU said it has
//! that, and the unaligned 16-byte loads and stores, each within a slice whose length was
//! checked.

use std::arch::x86_64::*;

use super::salsa20::{initial_state, xor_keystream_portable, Key};

/// XORs the keystream from block `counter` on over `data`.
pub fn xor_keystream(key: &Key, nonce: [u32; 2], counter: u64, data: &mut [u8]) {
    if data.len() <= 64 {
        xor_keystream_portable(key, nonce, counter, data);
    } else if data.len() > 512 && std::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F, all `keystream_avx512` needs beyond the baseline.
        unsafe { keystream_avx512(key, nonce, counter, data) }
    } else if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, all `keystream_avx2` needs beyond the baseline.
        unsafe { keystream_avx2(key, nonce, counter, data) }
    } else {
        // SAFETY: SSE2 is part of the x86-64 baseline.
        unsafe { keystream_sse2(key, nonce, counter, data) }
    }
}

/// Runs `$kernel` (blocks of `$lanes` at a time) over `$data` from block `$counter`: whole
/// groups, then the rest through a zero-padded group, or one block at a time when it is one
/// block or less.
macro_rules! keystream_with {
    ($kernel:ident, $lanes:literal, $key:ident, $nonce:ident, $counter:ident, $data:ident) => {{
        let mut counter = $counter;
        let mut groups = $data.chunks_exact_mut($lanes * 64);
        for group in &mut groups {
            $kernel($key, counter_lanes($nonce, counter), group);
            counter = counter.wrapping_add($lanes);
        }
        let rest = groups.into_remainder();
        if rest.len() <= 64 {
            xor_keystream_portable($key, $nonce, counter, rest);
        } else {
            let mut padded = [0u8; $lanes * 64];
            padded[..rest.len()].copy_from_slice(rest);
            $kernel($key, counter_lanes($nonce, counter), &mut padded);
            let n = rest.len();
            rest.copy_from_slice(&padded[..n]);
        }
    }};
}

/// Block 0 of the keystream for each of 8 nonces, XORed into `out` (8 blocks of 64 bytes).
pub fn xor_first_blocks(key: &Key, nonces: &[[u32; 2]; 8], out: &mut [u8]) {
    let lanes = |word: usize| -> [i32; 8] { std::array::from_fn(|j| nonces[j][word] as i32) };
    let varying = [lanes(0), lanes(1), [0; 8], [0; 8]];
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, which is all `xor_8_lanes` needs beyond the baseline.
        unsafe { xor_8_lanes(key, varying, out) }
    } else {
        xor_first_blocks_sse2(key, varying, out);
    }
}

/// `xor_first_blocks` without AVX2: two groups of 4 with SSE2.
fn xor_first_blocks_sse2(key: &Key, varying: [[i32; 8]; 4], out: &mut [u8]) {
    for half in 0..2 {
        let quarter = varying.map(|w| std::array::from_fn(|j| w[4 * half + j]));
        // SAFETY: SSE2 is part of the x86-64 baseline.
        unsafe { xor_4_lanes(key, quarter, &mut out[256 * half..256 * (half + 1)]) }
    }
}

/// State words 6-9 (nonce, then block counter) of `N` consecutive blocks of one stream.
fn counter_lanes<const N: usize>(nonce: [u32; 2], counter: u64) -> [[i32; N]; 4] {
    let blocks: [u64; N] = std::array::from_fn(|j| counter.wrapping_add(j as u64));
    [
        [nonce[0] as i32; N],
        [nonce[1] as i32; N],
        blocks.map(|c| c as u32 as i32),
        blocks.map(|c| (c >> 32) as u32 as i32),
    ]
}

/// 20 rounds over states held one word per register (`$x: [vector; 16]`), with the
/// instruction set's add, xor and shifts.
macro_rules! salsa_rounds {
    ($x:ident, $add:ident, $xor:ident, $shl:ident, $shr:ident) => {
        macro_rules! step {
            ($t:literal, $p:literal, $q:literal, $r:literal) => {
                let sum = $add($x[$p], $x[$q]);
                $x[$t] = $xor($x[$t], $xor($shl::<$r>(sum), $shr::<{ 32 - $r }>(sum)));
            };
        }
        salsa_rounds!(@quarters $x);
    };
    // With a rotate instruction.
    ($x:ident, $add:ident, $xor:ident, $rotate:ident) => {
        macro_rules! step {
            ($t:literal, $p:literal, $q:literal, $r:literal) => {
                $x[$t] = $xor($x[$t], $rotate::<$r>($add($x[$p], $x[$q])));
            };
        }
        salsa_rounds!(@quarters $x);
    };
    (@quarters $x:ident) => {
        macro_rules! quarter {
            ($a:literal, $b:literal, $c:literal, $d:literal) => {
                step!($b, $a, $d, 7);
                step!($c, $b, $a, 9);
                step!($d, $c, $b, 13);
                step!($a, $d, $c, 18);
            };
        }
        for _ in 0..10 {
            // The same positions as `salsa20::QUARTERS`: columns, then rows.
            quarter!(0, 4, 8, 12);
            quarter!(5, 9, 13, 1);
            quarter!(10, 14, 2, 6);
            quarter!(15, 3, 7, 11);
            quarter!(0, 1, 2, 3);
            quarter!(5, 6, 7, 4);
            quarter!(10, 11, 8, 9);
            quarter!(15, 12, 13, 14);
        }
    };
}

/// The initial state's words for `$key`, each splat across a register by `$splat` (nonce and
/// counter words left zero, for the caller to fill). A plain loop: closures passed to `map`
/// are not inlined into it, since `map` lacks the caller's target features.
macro_rules! splat_state {
    ($key:ident, $splat:ident) => {{
        let words = initial_state($key, [0, 0], 0);
        let mut out = [$splat(0); 16];
        for (v, w) in out.iter_mut().zip(words) {
            *v = $splat(w as i32);
        }
        out
    }};
}

/// XORs 16 keystream bytes into `data[at..at + 16]`.
#[inline(always)]
fn xor_16(data: &mut [u8], at: usize, keystream: __m128i) {
    let chunk = &mut data[at..at + 16];
    let p = chunk.as_mut_ptr() as *mut __m128i;
    // SAFETY: `chunk` is 16 bytes long; the loads and stores are unaligned ones; SSE2 is part
    // of the x86-64 baseline.
    unsafe { _mm_storeu_si128(p, _mm_xor_si128(_mm_loadu_si128(p), keystream)) }
}

#[target_feature(enable = "sse2")]
fn keystream_sse2(key: &Key, nonce: [u32; 2], counter: u64, data: &mut [u8]) {
    keystream_with!(xor_4_lanes, 4, key, nonce, counter, data)
}

/// 4 blocks (256 bytes of `data`) with SSE2; `varying` holds state words 6-9 (nonce and
/// counter) of each block, the rest comes from `key`.
#[target_feature(enable = "sse2")]
fn xor_4_lanes(key: &Key, varying: [[i32; 4]; 4], data: &mut [u8]) {
    let mut start = splat_state!(key, _mm_set1_epi32);
    for (word, lanes) in start[6..10].iter_mut().zip(varying) {
        *word = _mm_setr_epi32(lanes[0], lanes[1], lanes[2], lanes[3]);
    }
    let mut x = start;
    salsa_rounds!(x, _mm_add_epi32, _mm_xor_si128, _mm_slli_epi32, _mm_srli_epi32);
    for (word, first) in x.iter_mut().zip(start) {
        *word = _mm_add_epi32(*word, first);
    }
    for group in 0..4 {
        let [a, b, c, d] = [x[4 * group], x[4 * group + 1], x[4 * group + 2], x[4 * group + 3]];
        let (ab_low, ab_high) = (_mm_unpacklo_epi32(a, b), _mm_unpackhi_epi32(a, b));
        let (cd_low, cd_high) = (_mm_unpacklo_epi32(c, d), _mm_unpackhi_epi32(c, d));
        let blocks = [
            _mm_unpacklo_epi64(ab_low, cd_low),
            _mm_unpackhi_epi64(ab_low, cd_low),
            _mm_unpacklo_epi64(ab_high, cd_high),
            _mm_unpackhi_epi64(ab_high, cd_high),
        ];
        for (block, keystream) in blocks.into_iter().enumerate() {
            xor_16(data, block * 64 + group * 16, keystream);
        }
    }
}

#[target_feature(enable = "avx2")]
fn keystream_avx2(key: &Key, nonce: [u32; 2], counter: u64, data: &mut [u8]) {
    keystream_with!(xor_8_lanes, 8, key, nonce, counter, data)
}

/// 8 blocks (512 bytes of `data`) with AVX2, `varying` as for `xor_4_lanes`: the low 128-bit
/// half of each register holds blocks 0-3, the high half blocks 4-7, so the SSE2 transpose
/// works on both halves at once.
#[target_feature(enable = "avx2")]
fn xor_8_lanes(key: &Key, varying: [[i32; 8]; 4], data: &mut [u8]) {
    let mut start = splat_state!(key, _mm256_set1_epi32);
    for (word, l) in start[6..10].iter_mut().zip(varying) {
        *word = _mm256_setr_epi32(l[0], l[1], l[2], l[3], l[4], l[5], l[6], l[7]);
    }
    let mut x = start;
    salsa_rounds!(x, _mm256_add_epi32, _mm256_xor_si256, _mm256_slli_epi32, _mm256_srli_epi32);
    for (word, first) in x.iter_mut().zip(start) {
        *word = _mm256_add_epi32(*word, first);
    }
    for group in 0..4 {
        let [a, b, c, d] = [x[4 * group], x[4 * group + 1], x[4 * group + 2], x[4 * group + 3]];
        let (ab_low, ab_high) = (_mm256_unpacklo_epi32(a, b), _mm256_unpackhi_epi32(a, b));
        let (cd_low, cd_high) = (_mm256_unpacklo_epi32(c, d), _mm256_unpackhi_epi32(c, d));
        let blocks = [
            _mm256_unpacklo_epi64(ab_low, cd_low),
            _mm256_unpackhi_epi64(ab_low, cd_low),
            _mm256_unpacklo_epi64(ab_high, cd_high),
            _mm256_unpackhi_epi64(ab_high, cd_high),
        ];
        for (block, keystream) in blocks.into_iter().enumerate() {
            xor_16(data, block * 64 + group * 16, _mm256_castsi256_si128(keystream));
            xor_16(data, (block + 4) * 64 + group * 16, _mm256_extracti128_si256::<1>(keystream));
        }
    }
}

#[target_feature(enable = "avx512f")]
fn keystream_avx512(key: &Key, nonce: [u32; 2], counter: u64, data: &mut [u8]) {
    keystream_with!(xor_16_lanes, 16, key, nonce, counter, data)
}

/// 16 blocks (1024 bytes of `data`) with AVX-512, `varying` as for `xor_4_lanes`: 128-bit
/// lane `k` of each register holds blocks `4k..4k + 4`.
#[target_feature(enable = "avx512f")]
fn xor_16_lanes(key: &Key, varying: [[i32; 16]; 4], data: &mut [u8]) {
    let mut start = splat_state!(key, _mm512_set1_epi32);
    for (word, l) in start[6..10].iter_mut().zip(varying) {
        *word = _mm512_setr_epi32(
            l[0], l[1], l[2], l[3], l[4], l[5], l[6], l[7], l[8], l[9], l[10], l[11], l[12], l[13], l[14],
            l[15],
        );
    }
    let mut x = start;
    salsa_rounds!(x, _mm512_add_epi32, _mm512_xor_si512, _mm512_rol_epi32);
    for (word, first) in x.iter_mut().zip(start) {
        *word = _mm512_add_epi32(*word, first);
    }
    for group in 0..4 {
        let [a, b, c, d] = [x[4 * group], x[4 * group + 1], x[4 * group + 2], x[4 * group + 3]];
        let (ab_low, ab_high) = (_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
        let (cd_low, cd_high) = (_mm512_unpacklo_epi32(c, d), _mm512_unpackhi_epi32(c, d));
        let blocks = [
            _mm512_unpacklo_epi64(ab_low, cd_low),
            _mm512_unpackhi_epi64(ab_low, cd_low),
            _mm512_unpacklo_epi64(ab_high, cd_high),
            _mm512_unpackhi_epi64(ab_high, cd_high),
        ];
        for (block, keystream) in blocks.into_iter().enumerate() {
            let at = |lane: usize| (block + 4 * lane) * 64 + group * 16;
            xor_16(data, at(0), _mm512_extracti32x4_epi32::<0>(keystream));
            xor_16(data, at(1), _mm512_extracti32x4_epi32::<1>(keystream));
            xor_16(data, at(2), _mm512_extracti32x4_epi32::<2>(keystream));
            xor_16(data, at(3), _mm512_extracti32x4_epi32::<3>(keystream));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_blocks_match_the_scalar_block_with_sse2_alone() {
        let key: Key = std::array::from_fn(|i| 0x9e37_79b9u32.wrapping_mul(i as u32 + 1));
        let nonces: [[u32; 2]; 8] = std::array::from_fn(|i| [i as u32 * 3, u32::MAX - i as u32]);
        let lanes = |word: usize| -> [i32; 8] { std::array::from_fn(|j| nonces[j][word] as i32) };
        let mut out = [0u8; 512];
        xor_first_blocks_sse2(&key, [lanes(0), lanes(1), [0; 8], [0; 8]], &mut out);
        for (chunk, nonce) in out.chunks_exact(64).zip(nonces) {
            assert_eq!(chunk, super::super::salsa20::block(&key, nonce, 0));
        }
    }

    /// Each instruction set's path on its own (the dispatcher picks only the widest), against
    /// the portable keystream.
    #[test]
    fn every_width_matches_the_portable_keystream() {
        let key: Key = std::array::from_fn(|i| 0x0101_0101 * i as u32 + 7);
        let nonce = [0xdead_beef, 0x0bad_f00d];
        for counter in [0u64, 3, u32::MAX as u64 - 5] {
            for len in (0..2200).step_by(37).chain([64, 65, 256, 512, 1024, 1025, 4096]) {
                let mut expected = vec![0x3cu8; len];
                xor_keystream_portable(&key, nonce, counter, &mut expected);
                let mut sse2 = vec![0x3cu8; len];
                // SAFETY: SSE2 is part of the x86-64 baseline.
                unsafe { keystream_sse2(&key, nonce, counter, &mut sse2) };
                assert!(sse2 == expected, "SSE2, length {len}, counter {counter}");
                if std::is_x86_feature_detected!("avx2") {
                    let mut avx2 = vec![0x3cu8; len];
                    // SAFETY: the CPU has AVX2.
                    unsafe { keystream_avx2(&key, nonce, counter, &mut avx2) };
                    assert!(avx2 == expected, "AVX2, length {len}, counter {counter}");
                }
                if std::is_x86_feature_detected!("avx512f") {
                    let mut avx512 = vec![0x3cu8; len];
                    // SAFETY: the CPU has AVX-512F.
                    unsafe { keystream_avx512(&key, nonce, counter, &mut avx512) };
                    assert!(avx512 == expected, "AVX-512, length {len}, counter {counter}");
                }
            }
        }
    }
}

//! Poly1305's long-message path on x86-64 with AVX2: four accumulators, one per 64-bit lane,
//! each taking every fourth 16-byte block, numbers held as five 26-bit limbs so that AVX2's
//! 32x32->64-bit multiply does the work. Each step is `A = A * r^4 + m` in every lane; at the
//! end the lanes are weighted by `r^4, r^3, r^2, r` (the powers their last blocks are owed)
//! and summed, which gives the same polynomial the one-block-at-a-time definition does.
//!
//! The only `unsafe` here is calling the AVX2 function once the CPU said it has AVX2, and the
//! unaligned 32-byte loads, each within a 64-byte group of the message.

use std::arch::x86_64::*;

use super::poly1305::{carry, multiply, Limbs};

const MASK_26: u64 = (1 << 26) - 1;

/// Five 26-bit limbs (each may run a little over).
type Limbs26 = [u64; 5];

/// The 44/44/42-bit limbs of the scalar code as 26-bit limbs.
fn to_26([h0, h1, h2]: Limbs) -> Limbs26 {
    [
        h0 & MASK_26,
        (h0 >> 26) + ((h1 & 0xff) << 18),
        (h1 >> 8) & MASK_26,
        (h1 >> 34) + ((h2 & 0xffff) << 10),
        h2 >> 16,
    ]
}

/// 26-bit limbs back as 44/44/42-bit ones (partly reduced, as the scalar code keeps them).
fn from_26([l0, l1, l2, l3, l4]: Limbs26) -> Limbs {
    let low = l0 + (l1 << 26);
    let middle = (low >> 44) + (l2 << 8) + (l3 << 34);
    let high = (middle >> 44) + (l4 << 16);
    [low & ((1 << 44) - 1), middle & ((1 << 44) - 1), high]
}

/// Carries 26-bit limbs, folding what passes 2^130 back in as 5.
fn carry_26(mut d: Limbs26) -> Limbs26 {
    for i in 0..4 {
        d[i + 1] += d[i] >> 26;
        d[i] &= MASK_26;
    }
    d[0] += (d[4] >> 26) * 5;
    d[4] &= MASK_26;
    d[1] += d[0] >> 26;
    d[0] &= MASK_26;
    d
}

/// The accumulator after the message's whole 64-byte groups, and how many bytes that was;
/// `None` without AVX2 or when the message is too short for it to pay.
pub fn absorb_groups(r: Limbs, message: &[u8]) -> Option<(Limbs, usize)> {
    if message.len() < 512 || !std::is_x86_feature_detected!("avx2") {
        return None;
    }
    let r2 = carry(multiply(r, r));
    let (r3, r4) = (carry(multiply(r2, r)), carry(multiply(r2, r2)));
    let len = message.len() / 64 * 64;
    // SAFETY: the CPU has AVX2, all `groups_avx2` needs beyond the baseline.
    let h = unsafe { groups_avx2([r4, r3, r2, r].map(to_26), &message[..len]) };
    Some((from_26(carry_26(h)), len))
}

/// Splats each limb of `limbs` across a register (lane `j` from `per_lane[j]`).
#[target_feature(enable = "avx2")]
fn limb_vectors(per_lane: [Limbs26; 4]) -> [__m256i; 5] {
    let mut out = [_mm256_setzero_si256(); 5];
    for (i, v) in out.iter_mut().enumerate() {
        let lane = |j: usize| per_lane[j][i] as i64;
        *v = _mm256_setr_epi64x(lane(0), lane(1), lane(2), lane(3));
    }
    out
}

/// `a * b` mod 2^130-5 in every lane, before carrying (`b5` is `b` times 5).
#[target_feature(enable = "avx2")]
#[inline]
fn multiply_lanes(a: &[__m256i; 5], b: &[__m256i; 5], b5: &[__m256i; 5]) -> [__m256i; 5] {
    // Copies each lane's low half into its high half: `_mm256_mul_epu32` reads only the low
    // halves, but without this LLVM drops the high-half masking it implies (it knows these
    // numbers fit in 32 bits) and then, having lost that across the loop, emulates a full
    // 64-bit multiply with three instructions instead of one.
    // (Loops rather than `map`: a closure is not inlined into `map`, which lacks AVX2.)
    let (mut a, mut b, mut b5) = (*a, *b, *b5);
    for i in 0..5 {
        a[i] = _mm256_shuffle_epi32::<0b10_10_00_00>(a[i]);
        b[i] = _mm256_shuffle_epi32::<0b10_10_00_00>(b[i]);
        b5[i] = _mm256_shuffle_epi32::<0b10_10_00_00>(b5[i]);
    }
    let mut out = [_mm256_setzero_si256(); 5];
    for (k, limb) in out.iter_mut().enumerate() {
        // Limb k of the product: a_i * b_(k-i), the terms past limb 4 wrapped round times 5.
        let mut sum = _mm256_mul_epu32(a[0], b[k]);
        for i in 1..5 {
            let term =
                if i <= k { _mm256_mul_epu32(a[i], b[k - i]) } else { _mm256_mul_epu32(a[i], b5[k + 5 - i]) };
            sum = _mm256_add_epi64(sum, term);
        }
        *limb = sum;
    }
    out
}

/// Carries every lane's limbs (as `carry_26`).
#[target_feature(enable = "avx2")]
#[inline]
fn carry_lanes(mut d: [__m256i; 5]) -> [__m256i; 5] {
    let mask = _mm256_set1_epi64x(MASK_26 as i64);
    for i in 0..4 {
        d[i + 1] = _mm256_add_epi64(d[i + 1], _mm256_srli_epi64::<26>(d[i]));
        d[i] = _mm256_and_si256(d[i], mask);
    }
    let over = _mm256_srli_epi64::<26>(d[4]);
    d[4] = _mm256_and_si256(d[4], mask);
    d[0] = _mm256_add_epi64(d[0], _mm256_add_epi64(over, _mm256_slli_epi64::<2>(over)));
    d[1] = _mm256_add_epi64(d[1], _mm256_srli_epi64::<26>(d[0]));
    d[0] = _mm256_and_si256(d[0], mask);
    d
}

/// Four blocks (one 64-byte group) as 26-bit limbs, lane `j` holding block `[0, 2, 1, 3][j]`
/// with its 2^128 bit.
#[target_feature(enable = "avx2")]
#[inline]
fn group_limbs(group: &[u8]) -> [__m256i; 5] {
    let group = &group[..64];
    // SAFETY: `group` is 64 bytes long; the loads are unaligned ones.
    let (a, b) = unsafe {
        (
            _mm256_loadu_si256(group.as_ptr() as *const __m256i),
            _mm256_loadu_si256(group[32..].as_ptr() as *const __m256i),
        )
    };
    let (low, high) = (_mm256_unpacklo_epi64(a, b), _mm256_unpackhi_epi64(a, b));
    let mask = _mm256_set1_epi64x(MASK_26 as i64);
    [
        _mm256_and_si256(low, mask),
        _mm256_and_si256(_mm256_srli_epi64::<26>(low), mask),
        _mm256_and_si256(_mm256_or_si256(_mm256_srli_epi64::<52>(low), _mm256_slli_epi64::<12>(high)), mask),
        _mm256_and_si256(_mm256_srli_epi64::<14>(high), mask),
        _mm256_or_si256(_mm256_srli_epi64::<40>(high), _mm256_set1_epi64x(1 << 24)),
    ]
}

/// The polynomial of `message` (whole 64-byte groups) given `powers` = r^4, r^3, r^2, r; the
/// result is summed over the lanes but not yet carried.
#[target_feature(enable = "avx2")]
fn groups_avx2(powers: [Limbs26; 4], message: &[u8]) -> Limbs26 {
    let [r4, r3, r2, r1] = powers;
    let times_5 = |l: Limbs26| l.map(|x| x * 5);
    let (step, step5) = (limb_vectors([r4; 4]), limb_vectors([times_5(r4); 4]));
    let mut acc = [_mm256_setzero_si256(); 5];
    for group in message.chunks_exact(64) {
        let product = carry_lanes(multiply_lanes(&acc, &step, &step5));
        let m = group_limbs(group);
        for i in 0..5 {
            acc[i] = _mm256_add_epi64(product[i], m[i]);
        }
    }
    // Lanes hold blocks 0, 2, 1, 3 of each group: the last group's blocks are owed r^4, r^2,
    // r^3 and r.
    let last = [r4, r2, r3, r1];
    let weighted = multiply_lanes(&acc, &limb_vectors(last), &limb_vectors(last.map(times_5)));
    let mut sums = [0u64; 5];
    for (sum, v) in sums.iter_mut().zip(weighted) {
        let mut lanes = [0u64; 4];
        // SAFETY: `lanes` is 32 bytes; the store is an unaligned one.
        unsafe { _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, v) };
        *sum = lanes.iter().sum();
    }
    sums
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limb_conversions_keep_the_number() {
        for h in [[0, 0, 0], [(1 << 44) - 1, (1 << 44) - 1, (1 << 40) - 1], [123, 1 << 44, 3 << 38]] {
            let back = from_26(to_26(h));
            let value = |l: Limbs| u128::from(l[0]) + (u128::from(l[1]) << 44) + (u128::from(l[2]) << 88);
            assert_eq!(value(back), value(h), "{h:?}");
        }
    }
}

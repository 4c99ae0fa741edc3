//! AVX2 dot products of the 2- and 3-bit K-quants (Q2_K, Q3_K) against Q8_K activation
//! blocks, in the frame of the other K-quants' kernels ([`super::blocks`]): per super-block
//! the exact integer sums as eight `i32` lanes (`maddubs` pairs that cannot saturate, widened
//! by `madd` with the sub-block scales), then the reference's term, so bit-identical to
//! [`crate::quant::q2_k::dot_q8_k`] and [`crate::quant::q3_k::dot_q8_k`].

use core::arch::x86_64::*;

use super::blocks::{act32, bsums, dot_super, SCALE_PAIRS};
use crate::quant::q2_k::{self, BlockQ2K};
use crate::quant::q3_k::{self, BlockQ3K};
use crate::quant::q8_k::BlockQ8K;

/// Sub-block scales `8 n .. 8 n + 8` of `sc16` (16 `i16` scales) in both halves.
///
/// # Safety
/// AVX2.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn scale_halves(sc16: __m256i) -> [__m256i; 2] {
    [
        _mm256_broadcastsi128_si256(_mm256_castsi256_si128(sc16)),
        _mm256_broadcastsi128_si256(_mm256_extracti128_si256::<1>(sc16)),
    ]
}

/// `Σ_j sc_j Σ u·y` over the four 32-value runs `u[k]` (values `128 n + 32 k ..`), each run's
/// two 16-value sub-blocks scaled by `half`'s scales `2k` and `2k + 1`, as 8 `i32` lanes.
///
/// # Safety
/// AVX2; every `u` byte is at most 7 (pairs `<= 2 · 7 · 127`, no saturation).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn scaled_runs(u: [__m256i; 4], half: __m256i, ab: &BlockQ8K, n: usize) -> __m256i {
    let mut acc = _mm256_setzero_si256();
    for (k, u) in u.into_iter().enumerate() {
        let p = _mm256_maddubs_epi16(u, act32(ab, 128 * n + 32 * k));
        // SAFETY: SCALE_PAIRS has 4 rows of 32 bytes and k < 4.
        let mask = _mm256_loadu_si256(SCALE_PAIRS.as_ptr().add(k).cast());
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_shuffle_epi8(half, mask)));
    }
    acc
}

/// `(sumi, summins)` lanes of one Q2_K × Q8_K super-block.
///
/// # Safety
/// AVX2.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn q2_k_lanes(wb: &BlockQ2K, ab: &BlockQ8K) -> (__m256i, __m256i) {
    let (low4, three) = (_mm_set1_epi8(0x0f), _mm256_set1_epi8(3));
    // SAFETY: the 16 scale bytes (scale low, min high) are bytes 0..16 of the 84-byte block.
    let packed = _mm_loadu_si128(wb.as_ptr().cast());
    let sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(packed, low4));
    let m16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16::<4>(packed), low4));
    let mut acc = _mm256_setzero_si256();
    for (n, half) in scale_halves(sc16).into_iter().enumerate() {
        // SAFETY: qs is bytes 16..80 of the block; n < 2.
        let q = _mm256_loadu_si256(wb.as_ptr().add(16 + 32 * n).cast());
        // Run k: bit pair k of every byte (16-bit shifts: the masks keep each byte's bits).
        let u = [
            _mm256_and_si256(q, three),
            _mm256_and_si256(_mm256_srli_epi16::<2>(q), three),
            _mm256_and_si256(_mm256_srli_epi16::<4>(q), three),
            _mm256_and_si256(_mm256_srli_epi16::<6>(q), three),
        ];
        acc = _mm256_add_epi32(acc, scaled_runs(u, half, ab, n));
    }
    (acc, _mm256_madd_epi16(m16, bsums(ab)))
}

/// The 16 signed scales of a Q3_K block (6 bits, minus 32) as `i16`, decoded as
/// [`crate::quant::q3_k`] decodes them: low nibbles from bytes 0..8 (both nibbles), high bit
/// pairs from bytes 8..12.
///
/// # Safety
/// AVX2.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn q3_k_scales(wb: &BlockQ3K) -> __m256i {
    let low4 = _mm_set1_epi8(0x0f);
    // SAFETY: the 12 scale bytes are bytes 96..108 of the 110-byte block.
    let s = wb.as_ptr().add(q3_k::SCALES);
    let s8 = _mm_loadl_epi64(s.cast());
    let lows =
        _mm_unpacklo_epi64(_mm_and_si128(s8, low4), _mm_and_si128(_mm_srli_epi16::<4>(s8), low4));
    // Scale j's high pair: bits 2 (j / 4) of byte 8 + j % 4; dword g of the broadcast shifted by
    // 2 g, then the low two bits of each byte.
    let h32 = i32::from_le_bytes(s.add(8).cast::<[u8; 4]>().read_unaligned());
    let shifted = _mm_srlv_epi32(_mm_set1_epi32(h32), _mm_setr_epi32(0, 2, 4, 6));
    let highs = _mm_and_si128(shifted, _mm_set1_epi8(3));
    let six = _mm_or_si128(lows, _mm_slli_epi16::<4>(highs));
    _mm256_cvtepi8_epi16(_mm_sub_epi8(six, _mm_set1_epi8(32)))
}

/// `(sumi, 0)` lanes of one Q3_K × Q8_K super-block: the values as `u = q + 4 h` (in
/// `0..=7`), the `− 4` applied through the activation's 16-value sums.
///
/// # Safety
/// AVX2.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn q3_k_lanes(wb: &BlockQ3K, ab: &BlockQ8K) -> (__m256i, __m256i) {
    let (three, one) = (_mm256_set1_epi8(3), _mm256_set1_epi8(1));
    let sc16 = q3_k_scales(wb);
    // SAFETY: hmask is bytes 0..32 and qs bytes 32..96 of the 110-byte block.
    let hmask = _mm256_loadu_si256(wb.as_ptr().cast());
    let mut acc = _mm256_setzero_si256();
    for (n, half) in scale_halves(sc16).into_iter().enumerate() {
        // SAFETY: as above; n < 2.
        let q = _mm256_loadu_si256(wb.as_ptr().add(32 + 32 * n).cast());
        let low =
            [q, _mm256_srli_epi16::<2>(q), _mm256_srli_epi16::<4>(q), _mm256_srli_epi16::<6>(q)];
        let mut u = [_mm256_setzero_si256(); 4];
        for (k, (u, low)) in u.iter_mut().zip(low).enumerate() {
            // Bit 4n + k of every hmask byte (a 16-bit shift of at most 7: the mask keeps it).
            let count = _mm_cvtsi32_si128(i32::try_from(4 * n + k).unwrap_or(0));
            let h = _mm256_and_si256(_mm256_srl_epi16(hmask, count), one);
            *u = _mm256_or_si256(_mm256_and_si256(low, three), _mm256_slli_epi16::<2>(h));
        }
        acc = _mm256_add_epi32(acc, scaled_runs(u, half, ab, n));
    }
    let offset = _mm256_slli_epi32::<2>(_mm256_madd_epi16(sc16, bsums(ab)));
    (_mm256_sub_epi32(acc, offset), _mm256_setzero_si256())
}

/// # Safety
/// AVX2, F16C.
#[target_feature(enable = "avx2,f16c")]
pub(super) unsafe fn dot_q2_k_avx2(w: &[BlockQ2K], a: &[BlockQ8K]) -> f32 {
    dot_super::<{ q2_k::BLOCK_BYTES }, true>(w, a, q2_k::D, q2_k::D + 2, q2_k_lanes)
}

/// # Safety
/// AVX2, F16C.
#[target_feature(enable = "avx2,f16c")]
pub(super) unsafe fn dot_q3_k_avx2(w: &[BlockQ3K], a: &[BlockQ8K]) -> f32 {
    dot_super::<{ q3_k::BLOCK_BYTES }, false>(w, a, q3_k::D, q3_k::D, q3_k_lanes)
}

//! AVX2 dot products of the other block formats: the K-quants and IQ4_XS against Q8_K
//! activation blocks, Q5_0 / IQ4_NL / Q4_1 / Q5_1 against Q8_0 blocks. Each keeps its
//! reference's exact integer sums (`maddubs` pairs that cannot saturate, widened by `madd`
//! with the sub-block scales, reduced once per super-block) and rounds each super-block's
//! term with the same [`super_term`] / [`super_term_no_min`] in the same order, so it is
//! bit-identical to the reference in [`crate::quant`].

use core::arch::x86_64::*;

use super::{dot_blocks, hsum_epi32, GROUP_TILE};
use crate::quant::group8::Group8;
use crate::quant::iq4_nl::BlockIq4Nl;
use crate::quant::iq4_xs::BlockIq4Xs;
use crate::quant::q4_1::BlockQ4_1;
use crate::quant::q4_k::{scales_mins, BlockQ4K};
use crate::quant::q5_0::BlockQ5_0;
use crate::quant::q5_1::BlockQ5_1;
use crate::quant::q5_k::BlockQ5K;
use crate::quant::q6_k::BlockQ6K;
use crate::quant::q8_0::BlockQ8_0;
use crate::quant::q8_k::{self, BlockQ8K};
use crate::quant::{f16_at, min_block_term, super_term, super_term_no_min, IQ4_VALUES};

/// 32 activation values at `a[at..at + 32]`.
///
/// # Safety
/// AVX2; `at + 32 <= 256`.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn act32(a: &BlockQ8K, at: usize) -> __m256i {
    // SAFETY: the values are bytes 4..260 of the 292-byte block and at + 32 <= 256.
    _mm256_loadu_si256(a.as_ptr().add(q8_k::QS + at).cast())
}

/// Byte shuffles that broadcast `i16` lane `j` of a 128-bit half to all 16 lanes of a 256-bit
/// vector whose halves are equal.
#[rustfmt::skip]
const BROADCAST_I16: [[u8; 32]; 8] = [
    [0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1],
    [2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3],
    [4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5],
    [6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7],
    [8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9],
    [10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11],
    [12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13],
    [14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15],
];

/// Byte shuffles that put `i16` lane `2 k` of the low half in every lane of the low half and
/// lane `2 k + 1` of the high half in every lane of the high half (halves equal).
#[rustfmt::skip]
pub(super) const SCALE_PAIRS: [[u8; 32]; 4] = [
    [0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3],
    [4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7],
    [8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11],
    [12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15],
];

/// `i16` lane `j` of `v` (halves equal) in every lane.
///
/// # Safety
/// AVX2; `j < 8`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn broadcast_i16(v: __m256i, j: usize) -> __m256i {
    // SAFETY: BROADCAST_I16 has 8 rows of 32 bytes and j < 8.
    _mm256_shuffle_epi8(v, _mm256_loadu_si256(BROADCAST_I16.as_ptr().add(j).cast()))
}

/// Eight super-blocks at a time: `lanes(w, a)` gives a block's `(sumi, summins)` as two
/// vectors of 8 `i32` lanes summing to them; eight blocks' sums are reduced together, their
/// terms computed in one vector exactly as [`super_term`] computes each (no fused rounding),
/// and added to the running sum in block order. The last `len % 8` blocks go one by one.
///
/// # Safety
/// AVX2 and F16C; `d_at` (and `dmin_at`) are byte offsets of f16 fields inside `B`.
#[inline]
#[target_feature(enable = "avx2,f16c")]
pub(super) unsafe fn dot_super<const B: usize, const MIN: bool>(
    w: &[[u8; B]],
    a: &[BlockQ8K],
    d_at: usize,
    dmin_at: usize,
    lanes: unsafe fn(&[u8; B], &BlockQ8K) -> (__m256i, __m256i),
) -> f32 {
    let n = w.len().min(a.len());
    let (w8, w_tail) = w.get(..n).unwrap_or(&[]).as_chunks::<8>();
    let (a8, a_tail) = a.get(..n).unwrap_or(&[]).as_chunks::<8>();
    let mut sum = 0.0f32;
    for (wc, ac) in w8.iter().zip(a8) {
        super::prefetch_ahead::<B>(wc.as_ptr().cast::<u8>());
        let mut sumi = [_mm256_setzero_si256(); 8];
        let mut mins = [_mm256_setzero_si256(); 8];
        for (((s, m), wb), ab) in sumi.iter_mut().zip(mins.iter_mut()).zip(wc).zip(ac) {
            (*s, *m) = lanes(wb, ab);
        }
        let da = scales8_k(ac);
        let si = _mm256_cvtepi32_ps(super::hsum8_epi32(sumi));
        let mut terms = _mm256_mul_ps(_mm256_mul_ps(da, f16x8(wc, d_at)), si);
        if MIN {
            let sm = _mm256_cvtepi32_ps(super::hsum8_epi32(mins));
            let t_min = _mm256_mul_ps(_mm256_mul_ps(da, f16x8(wc, dmin_at)), sm);
            terms = _mm256_sub_ps(terms, t_min);
        }
        sum = super::add_lanes_in_order(sum, terms);
    }
    for (wb, ab) in w_tail.iter().zip(a_tail) {
        let (s, m) = lanes(wb, ab);
        let (sumi, summins) = (hsum_epi32(s), hsum_epi32(m));
        sum += if MIN {
            super_term(q8_k::scale(ab), f16_at(wb, d_at), f16_at(wb, dmin_at), sumi, summins)
        } else {
            super_term_no_min(q8_k::scale(ab), f16_at(wb, d_at), sumi)
        };
    }
    sum
}

/// The scales of eight Q8_K blocks, block `j` in lane `j`.
///
/// # Safety
/// AVX.
#[inline]
#[target_feature(enable = "avx")]
pub(super) unsafe fn scales8_k(ac: &[BlockQ8K; 8]) -> __m256 {
    let [a0, a1, a2, a3, a4, a5, a6, a7] = ac;
    _mm256_setr_ps(
        q8_k::scale(a0),
        q8_k::scale(a1),
        q8_k::scale(a2),
        q8_k::scale(a3),
        q8_k::scale(a4),
        q8_k::scale(a5),
        q8_k::scale(a6),
        q8_k::scale(a7),
    )
}

/// The f16 at byte `at` of each of eight blocks, as eight `f32` lanes.
///
/// # Safety
/// AVX2 and F16C.
#[inline]
#[target_feature(enable = "avx2,f16c")]
pub(super) unsafe fn f16x8<const B: usize>(blocks: &[[u8; B]; 8], at: usize) -> __m256 {
    let mut h = [0u16; 8];
    for (h, b) in h.iter_mut().zip(blocks) {
        *h = b.get(at..).and_then(<[u8]>::first_chunk::<2>).map_or(0, |b| u16::from_le_bytes(*b));
    }
    // SAFETY: `h` is 16 bytes.
    _mm256_cvtph_ps(_mm_loadu_si128(h.as_ptr().cast()))
}

/// A Q4_K / Q5_K super-block's eight scales and eight mins as 16 `i16` lanes of one 128-bit
/// vector each (`[sc0 .. sc7]` in both halves of the first, `[m0, m0, m1, m1, …]` as the
/// second, next to the activations' 16-value sums).
///
/// # Safety
/// AVX2.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn k4_scales(block: &[u8]) -> (__m256i, __m256i) {
    let packed = block.get(4..).and_then(<[u8]>::first_chunk::<12>).copied().unwrap_or([0; 12]);
    let (sc, m) = scales_mins(&packed);
    let sc16 = _mm_cvtepu8_epi16(_mm_set_epi64x(0, i64::from_le_bytes(sc)));
    let m16 = _mm_cvtepu8_epi16(_mm_set_epi64x(0, i64::from_le_bytes(m)));
    let m_pairs = _mm256_set_m128i(_mm_unpackhi_epi16(m16, m16), _mm_unpacklo_epi16(m16, m16));
    (_mm256_broadcastsi128_si256(sc16), m_pairs)
}

/// The activations' sixteen 16-value sums.
///
/// # Safety
/// AVX2.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn bsums(a: &BlockQ8K) -> __m256i {
    // SAFETY: the 16 sums are bytes 260..292 of the 292-byte block.
    _mm256_loadu_si256(a.as_ptr().add(q8_k::BSUMS_AT).cast())
}

/// `(sumi, summins)` lanes of one Q4_K × Q8_K super-block.
///
/// # Safety
/// AVX2.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn q4_k_lanes(wb: &BlockQ4K, ab: &BlockQ8K) -> (__m256i, __m256i) {
    let (sc, m_pairs) = k4_scales(wb);
    let low4 = _mm256_set1_epi8(0x0f);
    let mut acc = _mm256_setzero_si256();
    for i in 0..4 {
        // SAFETY: bytes 16 + 32 i .. 48 + 32 i of the 144-byte block, i < 4.
        let q = _mm256_loadu_si256(wb.as_ptr().add(16 + 32 * i).cast());
        let lo = _mm256_and_si256(q, low4);
        let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(q), low4);
        // |pair| <= 2 · 15 · 127: no saturation.
        let p_lo = _mm256_maddubs_epi16(lo, act32(ab, 64 * i));
        let p_hi = _mm256_maddubs_epi16(hi, act32(ab, 64 * i + 32));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p_lo, broadcast_i16(sc, 2 * i)));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p_hi, broadcast_i16(sc, 2 * i + 1)));
    }
    (acc, _mm256_madd_epi16(bsums(ab), m_pairs))
}

/// `(sumi, summins)` lanes of one Q5_K × Q8_K super-block.
///
/// # Safety
/// AVX2.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn q5_k_lanes(wb: &BlockQ5K, ab: &BlockQ8K) -> (__m256i, __m256i) {
    let (sc, m_pairs) = k4_scales(wb);
    let low4 = _mm256_set1_epi8(0x0f);
    let sixteen = _mm256_set1_epi8(0x10);
    // SAFETY: qh is bytes 16..48 of the 176-byte block.
    let mut qh = _mm256_loadu_si256(wb.as_ptr().add(16).cast());
    let mut acc = _mm256_setzero_si256();
    for i in 0..4 {
        // SAFETY: bytes 48 + 32 i .. 80 + 32 i of the 176-byte block, i < 4.
        let q = _mm256_loadu_si256(wb.as_ptr().add(48 + 32 * i).cast());
        // Bits 2 i and 2 i + 1 of every qh byte, moved to bit 4 (qh is shifted right by two
        // per pair; a 16-bit shift by at most 4 keeps each byte's own bits at bit 4).
        let h_lo = _mm256_and_si256(_mm256_slli_epi16::<4>(qh), sixteen);
        let h_hi = _mm256_and_si256(_mm256_slli_epi16::<3>(qh), sixteen);
        qh = _mm256_srli_epi16::<2>(qh);
        let lo = _mm256_or_si256(_mm256_and_si256(q, low4), h_lo);
        let hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16::<4>(q), low4), h_hi);
        // |pair| <= 2 · 31 · 127: no saturation.
        let p_lo = _mm256_maddubs_epi16(lo, act32(ab, 64 * i));
        let p_hi = _mm256_maddubs_epi16(hi, act32(ab, 64 * i + 32));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p_lo, broadcast_i16(sc, 2 * i)));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p_hi, broadcast_i16(sc, 2 * i + 1)));
    }
    (acc, _mm256_madd_epi16(bsums(ab), m_pairs))
}

/// `(sumi, 0)` lanes of one Q6_K × Q8_K super-block: unsigned `q` against the activations,
/// then `32 · Σ_j sc_j · bsum_j` off for the `q − 32`.
///
/// # Safety
/// AVX2.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn q6_k_lanes(wb: &BlockQ6K, ab: &BlockQ8K) -> (__m256i, __m256i) {
    let low4 = _mm256_set1_epi8(0x0f);
    let three0 = _mm256_set1_epi8(0x30);
    // SAFETY: the 16 scales are bytes 192..208 of the 210-byte block.
    let sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(wb.as_ptr().add(192).cast()));
    // Scales 0..8 in both halves, and 8..16 in both halves.
    let halves = [
        _mm256_broadcastsi128_si256(_mm256_castsi256_si128(sc16)),
        _mm256_broadcastsi128_si256(_mm256_extracti128_si256::<1>(sc16)),
    ];
    let mut acc = _mm256_setzero_si256();
    for (n, half) in halves.into_iter().enumerate() {
        // SAFETY: ql is bytes 0..128 and qh 128..192 of the 210-byte block; n < 2.
        let ql0 = _mm256_loadu_si256(wb.as_ptr().add(64 * n).cast());
        let ql1 = _mm256_loadu_si256(wb.as_ptr().add(64 * n + 32).cast());
        let qh = _mm256_loadu_si256(wb.as_ptr().add(128 + 32 * n).cast());
        // Bit pair k of every qh byte at bits 4..6 (16-bit shifts of at most 4 keep each
        // byte's own bits there).
        let h = [
            _mm256_and_si256(_mm256_slli_epi16::<4>(qh), three0),
            _mm256_and_si256(_mm256_slli_epi16::<2>(qh), three0),
            _mm256_and_si256(qh, three0),
            _mm256_and_si256(_mm256_srli_epi16::<2>(qh), three0),
        ];
        let q = [
            _mm256_or_si256(_mm256_and_si256(ql0, low4), h[0]),
            _mm256_or_si256(_mm256_and_si256(ql1, low4), h[1]),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16::<4>(ql0), low4), h[2]),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16::<4>(ql1), low4), h[3]),
        ];
        for (k, q) in q.into_iter().enumerate() {
            // |pair| <= 2 · 63 · 127: no saturation.
            let p = _mm256_maddubs_epi16(q, act32(ab, 128 * n + 32 * k));
            // Scales of sub-blocks 8 n + 2 k (the low half's pairs) and 8 n + 2 k + 1.
            // SAFETY: SCALE_PAIRS has 4 rows of 32 bytes and k < 4.
            let mask = _mm256_loadu_si256(SCALE_PAIRS.as_ptr().add(k).cast());
            let s = _mm256_shuffle_epi8(half, mask);
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, s));
        }
    }
    let offset = _mm256_slli_epi32::<5>(_mm256_madd_epi16(sc16, bsums(ab)));
    (_mm256_sub_epi32(acc, offset), _mm256_setzero_si256())
}
/// `(sumi, 0)` lanes of one IQ4_XS × Q8_K super-block.
///
/// # Safety
/// AVX2.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn iq4_xs_lanes(wb: &BlockIq4Xs, ab: &BlockQ8K) -> (__m256i, __m256i) {
    let low4 = _mm_set1_epi8(0x0f);
    // SAFETY: IQ4_VALUES is 16 bytes.
    let grid = _mm_loadu_si128(IQ4_VALUES.as_ptr().cast());
    let high = wb.get(2..).and_then(<[u8]>::first_chunk::<2>).map_or(0, |h| u16::from_le_bytes(*h));
    let mut acc = _mm256_setzero_si256();
    for j in 0..8 {
        let low = wb.get(4 + j / 2).map_or(0, |b| (b >> (4 * (j % 2))) & 15);
        let top = u8::try_from((high >> (2 * j)) & 3).unwrap_or(0);
        let ls = i16::from(low | (top << 4)) - 32;
        // SAFETY: sub-block j's nibbles are bytes 8 + 16 j .. 24 + 16 j of the 136-byte block.
        let nib = _mm_loadu_si128(wb.as_ptr().add(8 + 16 * j).cast());
        let lo = _mm_shuffle_epi8(grid, _mm_and_si128(nib, low4));
        let hi = _mm_shuffle_epi8(grid, _mm_and_si128(_mm_srli_epi16::<4>(nib), low4));
        let q = _mm256_set_m128i(hi, lo);
        let y = act32(ab, 32 * j);
        // |q| · sign(q)·y = q·y; |pair| <= 2 · 127 · 127 < 2^15.
        let p = _mm256_maddubs_epi16(_mm256_abs_epi8(q), _mm256_sign_epi8(y, q));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(ls)));
    }
    (acc, _mm256_setzero_si256())
}

/// # Safety
/// AVX2, F16C.
#[target_feature(enable = "avx2,f16c")]
pub(super) unsafe fn dot_q4_k_avx2(w: &[BlockQ4K], a: &[BlockQ8K]) -> f32 {
    dot_super::<144, true>(w, a, 0, 2, q4_k_lanes)
}

/// # Safety
/// AVX2, F16C.
#[target_feature(enable = "avx2,f16c")]
pub(super) unsafe fn dot_q5_k_avx2(w: &[BlockQ5K], a: &[BlockQ8K]) -> f32 {
    dot_super::<176, true>(w, a, 0, 2, q5_k_lanes)
}

/// # Safety
/// AVX2, F16C.
#[target_feature(enable = "avx2,f16c")]
pub(super) unsafe fn dot_q6_k_avx2(w: &[BlockQ6K], a: &[BlockQ8K]) -> f32 {
    dot_super::<210, false>(w, a, 208, 208, q6_k_lanes)
}

/// # Safety
/// AVX2, F16C.
#[target_feature(enable = "avx2,f16c")]
pub(super) unsafe fn dot_iq4_xs_avx2(w: &[BlockIq4Xs], a: &[BlockQ8K]) -> f32 {
    dot_super::<136, false>(w, a, 0, 0, iq4_xs_lanes)
}

/// The 32 bits of `qh` (a Q5 block's fifth bits, bit `j` for element `j`) as 32 bytes, byte `j`
/// `0x10` where bit `j` is set and 0 where not.
///
/// # Safety
/// AVX2.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn fifth_bits(qh: u32) -> __m256i {
    // Byte j of the result starts as byte j / 8 of qh.
    let spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32(i32::from_le_bytes(qh.to_le_bytes())),
        _mm256_set_epi64x(0x0303_0303_0303_0303, 0x0202_0202_0202_0202, 0x0101_0101_0101_0101, 0),
    );
    // Byte j keeps bit j % 8: OR in every other bit, and the byte is all ones iff it was set.
    let others = _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe);
    let set = _mm256_cmpeq_epi8(_mm256_or_si256(spread, others), _mm256_set1_epi8(-1));
    _mm256_and_si256(set, _mm256_set1_epi8(0x10))
}

/// 16 bytes of nibbles as 32 bytes in element order (low nibbles, then high nibbles).
///
/// # Safety
/// AVX2; `p` points at 16 readable bytes.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn nibbles(p: *const u8) -> __m256i {
    // SAFETY: the caller's 16 bytes.
    let nib = _mm_loadu_si128(p.cast());
    let spread = _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(nib), _mm_srli_epi16(nib, 4));
    _mm256_and_si256(spread, _mm256_set1_epi8(0x0f))
}

/// The unsigned 5-bit values of a `qh[4]`, `qs[16]` pair at `p` (Q5_0, Q5_1).
///
/// # Safety
/// AVX2; `p` points at 20 readable bytes.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn five_bit_values(p: *const u8) -> __m256i {
    // SAFETY: the caller's 20 bytes: qh at 0..4, the nibbles at 4..20.
    let qh = u32::from_le_bytes(core::ptr::read_unaligned(p.cast::<[u8; 4]>()));
    _mm256_or_si256(nibbles(p.add(4)), fifth_bits(qh))
}

/// The Q8_0 activation values of a block.
///
/// # Safety
/// AVX2.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn act_q8_0(ab: &BlockQ8_0) -> __m256i {
    // SAFETY: a Q8_0 block is 34 bytes, the values at 2..34.
    _mm256_loadu_si256(ab.as_ptr().add(2).cast())
}

/// One Q5_0 × Q8_0 block as 8 `i32` lanes summing to `Σ (q − 16)·y`: `maddubs(q, y) −
/// maddubs(16, y)` per pair (|pair| <= 2 · 31 · 128, no saturation).
///
/// # Safety
/// AVX2.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn q5_0_lanes(wb: &BlockQ5_0, ab: &BlockQ8_0) -> __m256i {
    // SAFETY: a Q5_0 block is 22 bytes: qh at 2..6, the nibbles at 6..22.
    let q = five_bit_values(wb.as_ptr().add(2));
    let y = act_q8_0(ab);
    let pairs =
        _mm256_sub_epi16(_mm256_maddubs_epi16(q, y), _mm256_maddubs_epi16(_mm256_set1_epi8(16), y));
    _mm256_madd_epi16(pairs, _mm256_set1_epi16(1))
}

/// One IQ4_NL × Q8_0 block as 8 `i32` lanes summing to `Σ grid(q)·y` (grid values by byte
/// shuffle; `|g| · sign(g)·y = g·y`, |pair| <= 2 · 127 · 127).
///
/// # Safety
/// AVX2.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn iq4_nl_lanes(wb: &BlockIq4Nl, ab: &BlockQ8_0) -> __m256i {
    // SAFETY: IQ4_VALUES is 16 bytes; an IQ4_NL block is 18 bytes, the nibbles at 2..18.
    let grid = _mm256_broadcastsi128_si256(_mm_loadu_si128(IQ4_VALUES.as_ptr().cast()));
    let g = _mm256_shuffle_epi8(grid, nibbles(wb.as_ptr().add(2)));
    let y = act_q8_0(ab);
    let pairs = _mm256_maddubs_epi16(_mm256_abs_epi8(g), _mm256_sign_epi8(y, g));
    _mm256_madd_epi16(pairs, _mm256_set1_epi16(1))
}

/// # Safety
/// AVX2, F16C.
#[target_feature(enable = "avx2,f16c")]
pub(super) unsafe fn dot_q5_0_avx2(w: &[BlockQ5_0], a: &[BlockQ8_0]) -> f32 {
    dot_blocks(0.0, w, a, None, q5_0_lanes)
}

/// # Safety
/// AVX2, F16C.
#[target_feature(enable = "avx2,f16c")]
pub(super) unsafe fn dot_iq4_nl_avx2(w: &[BlockIq4Nl], a: &[BlockQ8_0]) -> f32 {
    dot_blocks(0.0, w, a, None, iq4_nl_lanes)
}

/// [`crate::quant::group8::pack_q5_0`], byte for byte (finite scales): each block's values
/// `q − 16` as [`q5_0_lanes`] makes them, then the group transpose.
///
/// # Safety
/// AVX2, F16C.
#[target_feature(enable = "avx2,f16c")]
pub(super) unsafe fn pack_q5_0_avx2(blocks: &[BlockQ5_0; 8], out: &mut Group8) {
    // SAFETY: a Q5_0 block is 22 bytes: qh at 2..6, the nibbles at 6..22.
    let rows = blocks
        .each_ref()
        .map(|b| _mm256_sub_epi8(five_bit_values(b.as_ptr().add(2)), _mm256_set1_epi8(16)));
    super::groups::store_group(rows, super::scales8(blocks), out);
}

/// [`crate::quant::group8::pack_iq4_nl`], byte for byte (finite scales): each block's grid
/// values by byte shuffle, as [`iq4_nl_lanes`] makes them, then the group transpose.
///
/// # Safety
/// AVX2, F16C.
#[target_feature(enable = "avx2,f16c")]
pub(super) unsafe fn pack_iq4_nl_avx2(blocks: &[BlockIq4Nl; 8], out: &mut Group8) {
    // SAFETY: IQ4_VALUES is 16 bytes; an IQ4_NL block is 18 bytes, the nibbles at 2..18.
    let grid = _mm256_broadcastsi128_si256(_mm_loadu_si128(IQ4_VALUES.as_ptr().cast()));
    let rows = blocks.each_ref().map(|b| _mm256_shuffle_epi8(grid, nibbles(b.as_ptr().add(2))));
    super::groups::store_group(rows, super::scales8(blocks), out);
}

/// [`super::dot_blocks_tile`] of Q5_0 rows: bit-identical to `q5_0::dot_q8_0_from` per vector.
///
/// # Safety
/// AVX2, F16C; every `a[t]` holds at least `w.len()` blocks.
#[target_feature(enable = "avx2,f16c")]
pub(super) unsafe fn dot_q5_0_tile_avx2(
    sums: [f32; GROUP_TILE],
    w: &[BlockQ5_0],
    a: &[&[BlockQ8_0]; GROUP_TILE],
) -> [f32; GROUP_TILE] {
    super::dot_blocks_tile(sums, w, a, q5_0_lanes)
}

/// [`super::dot_blocks_tile`] of IQ4_NL rows: bit-identical to `iq4_nl::dot_q8_0_from` per
/// vector.
///
/// # Safety
/// AVX2, F16C; every `a[t]` holds at least `w.len()` blocks.
#[target_feature(enable = "avx2,f16c")]
pub(super) unsafe fn dot_iq4_nl_tile_avx2(
    sums: [f32; GROUP_TILE],
    w: &[BlockIq4Nl],
    a: &[&[BlockQ8_0]; GROUP_TILE],
) -> [f32; GROUP_TILE] {
    super::dot_blocks_tile(sums, w, a, iq4_nl_lanes)
}

/// `Σ w·a` for the formats with a min (`x = d · q + m`, unsigned `q` from `values`): per
/// block the exact `Σ q·y` and `Σ y`, then [`min_block_term`].
///
/// # Safety
/// AVX2.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn dot_with_min<const B: usize>(
    w: &[[u8; B]],
    a: &[BlockQ8_0],
    values: unsafe fn(&[u8; B]) -> __m256i,
) -> f32 {
    let mut sum = 0.0f32;
    let ones8 = _mm256_set1_epi8(1);
    let ones16 = _mm256_set1_epi16(1);
    for (wb, ab) in w.iter().zip(a) {
        let y = act_q8_0(ab);
        let isum = hsum_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(values(wb), y), ones16));
        let asum = hsum_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(ones8, y), ones16));
        sum += min_block_term(f16_at(wb, 0), f16_at(wb, 2), ab, isum, asum);
    }
    sum
}

/// # Safety
/// AVX2.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn q4_1_values(wb: &BlockQ4_1) -> __m256i {
    // SAFETY: a Q4_1 block is 20 bytes, the nibbles at 4..20.
    nibbles(wb.as_ptr().add(4))
}

/// # Safety
/// AVX2.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn q5_1_values(wb: &BlockQ5_1) -> __m256i {
    // SAFETY: a Q5_1 block is 24 bytes: qh at 4..8, the nibbles at 8..24.
    five_bit_values(wb.as_ptr().add(4))
}

/// # Safety
/// AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn dot_q4_1_avx2(w: &[BlockQ4_1], a: &[BlockQ8_0]) -> f32 {
    dot_with_min(w, a, q4_1_values)
}

/// # Safety
/// AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn dot_q5_1_avx2(w: &[BlockQ5_1], a: &[BlockQ8_0]) -> f32 {
    dot_with_min(w, a, q5_1_values)
}

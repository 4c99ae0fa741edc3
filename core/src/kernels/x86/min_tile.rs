//! AVX2 tile kernels of the 32-weight formats with a min (Q4_1, Q5_1, `x = d · q + m`): one
//! weight row against [`GROUP_TILE`] activation vectors, each weight block unpacked once for
//! all of them. Per block, the eight vectors' exact `Σ q·y` and `Σ y` are one horizontal
//! reduction each, and their eight terms are rounded as [`crate::quant::min_block_term`]
//! rounds them and added to the running sums in block order: bit-identical to the references'
//! `dot_q8_0_from` per vector.

use core::arch::x86_64::*;

use super::blocks::{act_q8_0, q4_1_values, q5_1_values};
use super::{act_scales8, hsum8_epi32, GROUP_TILE};
use crate::quant::q4_1::BlockQ4_1;
use crate::quant::q5_1::BlockQ5_1;
use crate::quant::q8_0::BlockQ8_0;

/// The tile over plain blocks whose unsigned levels `values` gives.
///
/// # Safety
/// AVX2 and F16C, and whatever `values` needs; every `a[t]` holds at least `w.len()` blocks.
#[inline(always)]
unsafe fn min_tile<const B: usize>(
    sums: [f32; GROUP_TILE],
    w: &[[u8; B]],
    a: &[&[BlockQ8_0]; GROUP_TILE],
    values: unsafe fn(&[u8; B]) -> __m256i,
) -> [f32; GROUP_TILE] {
    const _: () = assert!(GROUP_TILE == 8, "one f32 lane per vector of the tile");
    let (ones8, ones16) = (_mm256_set1_epi8(1), _mm256_set1_epi16(1));
    let mut acc = _mm256_loadu_ps(sums.as_ptr());
    let bases: [*const BlockQ8_0; GROUP_TILE] = a.map(<[BlockQ8_0]>::as_ptr);
    let f16_bits = |x: &[u8], at: usize| {
        x.get(at..at + 2).and_then(|h| h.first_chunk::<2>()).map_or(0, |h| u16::from_le_bytes(*h))
    };
    for (b, wb) in w.iter().enumerate() {
        // SAFETY: `b < w.len() <= a[t].len()` (the caller's contract).
        let ab: [&BlockQ8_0; GROUP_TILE] = bases.map(|p| &*p.add(b));
        let q = values(wb);
        // Pairs of q·y (|.| <= 2 · 31 · 127) and of y: exact, no saturation. Plain loops, not
        // closures, so the intrinsics inline into this target-feature context.
        let (mut qy, mut yy) =
            ([_mm256_setzero_si256(); GROUP_TILE], [_mm256_setzero_si256(); GROUP_TILE]);
        for ((qy, yy), x) in qy.iter_mut().zip(&mut yy).zip(ab) {
            let y = act_q8_0(x);
            *qy = _mm256_madd_epi16(_mm256_maddubs_epi16(q, y), ones16);
            *yy = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, y), ones16);
        }
        let isum = _mm256_cvtepi32_ps(hsum8_epi32(qy));
        let asum = _mm256_cvtepi32_ps(hsum8_epi32(yy));
        let da = act_scales8(ab);
        #[allow(clippy::cast_possible_wrap)] // bit patterns
        let (dw, mw) = (
            _mm256_cvtph_ps(_mm_set1_epi16(f16_bits(wb, 0) as i16)),
            _mm256_cvtph_ps(_mm_set1_epi16(f16_bits(wb, 2) as i16)),
        );
        // (d · d_a) · isum + (m · d_a) · asum, then added to the running sum.
        let term = _mm256_add_ps(
            _mm256_mul_ps(_mm256_mul_ps(dw, da), isum),
            _mm256_mul_ps(_mm256_mul_ps(mw, da), asum),
        );
        acc = _mm256_add_ps(acc, term);
    }
    let mut out = [0.0f32; GROUP_TILE];
    // SAFETY: `out` holds eight f32; the store is unaligned.
    _mm256_storeu_ps(out.as_mut_ptr(), acc);
    out
}

/// [`min_tile`] of Q4_1 rows.
///
/// # Safety
/// AVX2, F16C; every `a[t]` holds at least `w.len()` blocks.
#[target_feature(enable = "avx2,f16c")]
pub(super) unsafe fn dot_q4_1_tile_avx2(
    sums: [f32; GROUP_TILE],
    w: &[BlockQ4_1],
    a: &[&[BlockQ8_0]; GROUP_TILE],
) -> [f32; GROUP_TILE] {
    min_tile(sums, w, a, q4_1_values)
}

/// [`min_tile`] of Q5_1 rows.
///
/// # Safety
/// AVX2, F16C; every `a[t]` holds at least `w.len()` blocks.
#[target_feature(enable = "avx2,f16c")]
pub(super) unsafe fn dot_q5_1_tile_avx2(
    sums: [f32; GROUP_TILE],
    w: &[BlockQ5_1],
    a: &[&[BlockQ8_0]; GROUP_TILE],
) -> [f32; GROUP_TILE] {
    min_tile(sums, w, a, q5_1_values)
}

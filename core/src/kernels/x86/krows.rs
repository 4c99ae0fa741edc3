//! Decode's K-quant products on AVX2: four rows against one Q8_K vector per pass, as the
//! Q8_0 rows kernel ([`super::rows`]) does for Q8_0: the four rows' running sums side by side
//! in one register, each activation super-block read for the four from L1, and each row
//! prefetching into L2 the super-blocks of the row one pass later. Each row's super-block
//! terms are [`super::blocks::dot_super`]'s (eight at a time, then one by one), added in the
//! same order: bit-identical to the format's `dot_q8_k`.
#![allow(unsafe_code)]

use core::arch::x86_64::*;

use super::blocks::{dot_super, f16x8, q4_k_lanes, q5_k_lanes, q6_k_lanes, scales8_k};
use super::rows::add_columns_in_order;
use super::{hsum8_epi32, hsum_epi32};
use crate::quant::format::BlockFormat;
use crate::quant::q8_k::{self, BlockQ8K};
use crate::quant::{f16_at, super_term, super_term_no_min};

/// Rows per pass.
pub(in crate::kernels) const ROWS4: usize = 4;

/// Asks for `bytes` bytes from `p` (never faults: a hint).
///
/// # Safety
/// The CPU supports SSE (every x86_64 does).
#[inline(always)]
unsafe fn prefetch(p: *const u8, bytes: usize) {
    let mut off = 0;
    while off < bytes {
        _mm_prefetch::<_MM_HINT_T1>(p.wrapping_add(off).cast::<i8>());
        off += 64;
    }
}

/// `[dot_super(w[r], a); 4]` with each row's groups of eight super-blocks side by side.
/// Every row holds `a.len()` blocks (else the caller runs `dot_super` per row).
///
/// # Safety
/// AVX2 and F16C; `d_at` (and `dmin_at`) are byte offsets of f16 fields inside `B`.
#[inline(always)]
unsafe fn rows4<const B: usize, const MIN: bool>(
    w: [&[[u8; B]]; ROWS4],
    a: &[BlockQ8K],
    (d_at, dmin_at): (usize, usize),
    ahead: usize,
    lanes: unsafe fn(&[u8; B], &BlockQ8K) -> (__m256i, __m256i),
) -> [f32; ROWS4] {
    let n = a.len();
    let (a8, a_tail) = a.as_chunks::<8>();
    let mut sums = _mm_setzero_ps();
    for (g, ac) in a8.iter().enumerate() {
        let da = scales8_k(ac);
        let mut t = [_mm256_setzero_ps(); ROWS4];
        for (ti, wr) in t.iter_mut().zip(w) {
            let Some(wc) = wr.get(8 * g..).and_then(<[[u8; B]]>::first_chunk::<8>) else {
                continue;
            };
            prefetch(wc.as_ptr().cast::<u8>().wrapping_add(ahead), 8 * B);
            let mut sumi = [_mm256_setzero_si256(); 8];
            let mut mins = [_mm256_setzero_si256(); 8];
            for (((s, m), wb), ab) in sumi.iter_mut().zip(mins.iter_mut()).zip(wc).zip(ac) {
                (*s, *m) = lanes(wb, ab);
            }
            let si = _mm256_cvtepi32_ps(hsum8_epi32(sumi));
            let mut terms = _mm256_mul_ps(_mm256_mul_ps(da, f16x8(wc, d_at)), si);
            if MIN {
                let sm = _mm256_cvtepi32_ps(hsum8_epi32(mins));
                let t_min = _mm256_mul_ps(_mm256_mul_ps(da, f16x8(wc, dmin_at)), sm);
                terms = _mm256_sub_ps(terms, t_min);
            }
            *ti = terms;
        }
        sums = add_columns_in_order(sums, t);
    }
    let mut out = [0.0f32; ROWS4];
    // SAFETY: `out` holds four f32; the store is unaligned.
    _mm_storeu_ps(out.as_mut_ptr(), sums);
    let from = n - a_tail.len();
    for (o, wr) in out.iter_mut().zip(w) {
        for (wb, ab) in wr.get(from..n).unwrap_or(&[]).iter().zip(a_tail) {
            let (s, m) = lanes(wb, ab);
            let (sumi, summins) = (hsum_epi32(s), hsum_epi32(m));
            *o += if MIN {
                super_term(q8_k::scale(ab), f16_at(wb, d_at), f16_at(wb, dmin_at), sumi, summins)
            } else {
                super_term_no_min(q8_k::scale(ab), f16_at(wb, d_at), sumi)
            };
        }
    }
    out
}

/// [`rows4`] for one format, or `dot_super` per row where a row is shorter than `a`.
///
/// # Safety
/// AVX2 and F16C.
#[inline(always)]
unsafe fn rows4_or_each<const B: usize, const MIN: bool>(
    rows: &[&[u8]; ROWS4],
    a: &[BlockQ8K],
    fields: (usize, usize),
    ahead: usize,
    lanes: unsafe fn(&[u8; B], &BlockQ8K) -> (__m256i, __m256i),
) -> [f32; ROWS4] {
    let w = rows.map(|r| r.as_chunks::<B>().0);
    if w.iter().all(|r| r.len() >= a.len()) {
        return rows4::<B, MIN>(w, a, fields, ahead, lanes);
    }
    let mut out = [0.0f32; ROWS4];
    for (o, r) in out.iter_mut().zip(w) {
        *o = dot_super::<B, MIN>(r, a, fields.0, fields.1, lanes);
    }
    out
}

/// `out[r] = f.dot_q8_k(rows[r], a)` for Q4_K, Q5_K and Q6_K rows, bit for bit, prefetching
/// `ahead` bytes past each row's blocks; false (and `out` untouched) for other formats.
///
/// # Safety
/// AVX2 and F16C.
#[target_feature(enable = "avx2,f16c")]
unsafe fn super_rows4_avx2(
    f: BlockFormat,
    rows: &[&[u8]; ROWS4],
    a: &[BlockQ8K],
    ahead: usize,
    out: &mut [f32; ROWS4],
) -> bool {
    *out = match f {
        BlockFormat::Q4K => rows4_or_each::<144, true>(rows, a, (0, 2), ahead, q4_k_lanes),
        BlockFormat::Q5K => rows4_or_each::<176, true>(rows, a, (0, 2), ahead, q5_k_lanes),
        BlockFormat::Q6K => rows4_or_each::<210, false>(rows, a, (208, 208), ahead, q6_k_lanes),
        _ => return false,
    };
    true
}

/// The safe entry point, installed in the AVX2 table (and so in the tables built on it).
pub(in crate::kernels) mod entry {
    use super::{BlockFormat, BlockQ8K, ROWS4};

    pub(in crate::kernels) fn super_rows4(
        f: BlockFormat,
        rows: &[&[u8]; ROWS4],
        a: &[BlockQ8K],
        ahead: usize,
        out: &mut [f32; ROWS4],
    ) -> bool {
        // SAFETY: reachable only through tables built after detecting AVX2 and F16C
        // (`Kernels::x86_avx2` and the tables built on it).
        unsafe { super::super_rows4_avx2(f, rows, a, ahead, out) }
    }
}

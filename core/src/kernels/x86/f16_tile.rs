//! f16 and bf16 weight rows times f32 vectors, a tile at a time, for batched products over
//! F16 / BF16 weights on AVX-512 VL (32 vector registers hold the tile's accumulators).
//!
//! Each (row, vector) result is summed exactly as [`super::floats::dot_f16_le_avx2`] (or
//! [`super::floats::dot_bf16_le_avx2`]) sums it:
//! four 8-lane accumulators over 32-value steps, the first one alone over the 8-value steps
//! after, the same reduction, then the scalar tail. So every result is bit-identical to the
//! one-vector kernel of the table (the AVX2 one), while each converted weight vector serves
//! [`F16_TILE_VECTORS`] vectors and each loaded activation [`F16_TILE_ROWS`] rows.

use core::arch::x86_64::*;

use super::hsum_ps;
use crate::kernels::scalar::{bf16_to_f32, f16_to_f32};

use crate::kernels::{F16Tile, F16_TILE_ROWS, F16_TILE_VECTORS};

/// `out[r][v] = Σ_i f16(rows[r])[i] · xs[v][i]` as `dot_f16_le_avx2(rows[r], xs[v])` computes
/// it, or `None` unless every row holds `2 n` bytes and every vector `n` values for one `n`.
pub(in crate::kernels) fn dot_f16_tile(
    rows: &[&[u8]; F16_TILE_ROWS],
    xs: &[&[f32]; F16_TILE_VECTORS],
) -> Option<F16Tile> {
    checked_tile::<false>(rows, xs)
}

/// [`dot_f16_tile`] for bf16 rows, as `dot_bf16_le_avx2` computes each result.
pub(in crate::kernels) fn dot_bf16_tile(
    rows: &[&[u8]; F16_TILE_ROWS],
    xs: &[&[f32]; F16_TILE_VECTORS],
) -> Option<F16Tile> {
    checked_tile::<true>(rows, xs)
}

/// The tile kernel for either width once the lengths are checked (`None` if they differ).
fn checked_tile<const BF16: bool>(
    rows: &[&[u8]; F16_TILE_ROWS],
    xs: &[&[f32]; F16_TILE_VECTORS],
) -> Option<F16Tile> {
    let n = xs.first().map_or(0, |x| x.len());
    let same = rows.iter().all(|r| r.len() == 2 * n) && xs.iter().all(|x| x.len() == n);
    // SAFETY: only reachable through the `avx512vnni` table, built after detecting
    // avx512f + avx512vl (and avx2, fma, f16c); the lengths were checked just above.
    same.then(|| unsafe { dot_f16_tile_vl::<BF16>(rows, xs, n) })
}

/// Sixteen halves at `p` widened exactly to `f32`: bf16 (`BF16`) by a 16-bit shift, f16 by
/// `vcvtph2ps`.
///
/// # Safety
/// The CPU supports AVX-512 F; 32 bytes at `p` are readable.
#[inline]
#[target_feature(enable = "avx512f,avx2,f16c")]
unsafe fn widen16<const BF16: bool>(p: *const u8) -> __m512 {
    // SAFETY: the caller's 32 bytes.
    let h = unsafe { _mm256_loadu_si256(p.cast::<__m256i>()) };
    if BF16 {
        _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
    } else {
        _mm512_cvtph_ps(h)
    }
}

/// Eight halves at `p` widened exactly to `f32` (as [`widen16`]).
///
/// # Safety
/// The CPU supports AVX2 and F16C; 16 bytes at `p` are readable.
#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn widen8<const BF16: bool>(p: *const u8) -> __m256 {
    // SAFETY: the caller's 16 bytes.
    let h = unsafe { _mm_loadu_si128(p.cast::<__m128i>()) };
    if BF16 {
        _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h)))
    } else {
        _mm256_cvtph_ps(h)
    }
}

/// [`dot_f16_tile`] (or, with `BF16`, [`dot_bf16_tile`]) once the lengths are checked.
///
/// # Safety
/// The CPU supports AVX-512 F + VL, AVX2, FMA and F16C; every row holds `2 n` bytes and every
/// vector `n` values.
#[target_feature(enable = "avx512f,avx512vl,avx2,fma,f16c")]
unsafe fn dot_f16_tile_vl<const BF16: bool>(
    rows: &[&[u8]; F16_TILE_ROWS],
    xs: &[&[f32]; F16_TILE_VECTORS],
    n: usize,
) -> F16Tile {
    let [row0, row1] = *rows;
    let (w0p, w1p) = (row0.as_ptr(), row1.as_ptr());
    let [x0, x1, x2] = *xs;
    let xp: [*const f32; F16_TILE_VECTORS] = [x0.as_ptr(), x1.as_ptr(), x2.as_ptr()];
    let zero = _mm256_setzero_ps();
    // Over 32-value steps, accumulators `2h` and `2h + 1` of each (row, vector) sit side by
    // side in one 16-lane register (`wide[h]`): the lanes are independent, so each 16-lane
    // multiply-add is the very arithmetic of the two 8-lane ones it stands for.
    let zero512 = _mm512_setzero_ps();
    let mut wide0 = [[zero512; F16_TILE_VECTORS]; 2];
    let mut wide1 = [[zero512; F16_TILE_VECTORS]; 2];
    let mut i = 0;
    // SAFETY (all loads): i + 16 <= n (or i + 8 <= n below), so 32 (16) bytes of each row and
    // 16 (8) floats of each vector from `i` on are in bounds; loads are unaligned.
    while i + 32 <= n {
        for (h, (a0, a1)) in wide0.iter_mut().zip(wide1.iter_mut()).enumerate() {
            let j = i + 16 * h;
            let w0 = widen16::<BF16>(w0p.add(2 * j));
            let w1 = widen16::<BF16>(w1p.add(2 * j));
            for ((s0, s1), x) in a0.iter_mut().zip(a1.iter_mut()).zip(xp) {
                let xv = _mm512_loadu_ps(x.add(j));
                *s0 = _mm512_fmadd_ps(w0, xv, *s0);
                *s1 = _mm512_fmadd_ps(w1, xv, *s1);
            }
        }
        i += 32;
    }
    // Accumulator `k` of each vector, per row: `acc0[k][v]` for row 0, `acc1[k][v]` for row 1.
    let mut acc0 = narrow(wide0);
    let mut acc1 = narrow(wide1);
    if let (Some(a0), Some(a1)) = (acc0.first_mut(), acc1.first_mut()) {
        while i + 8 <= n {
            let w0 = widen8::<BF16>(w0p.add(2 * i));
            let w1 = widen8::<BF16>(w1p.add(2 * i));
            for ((s0, s1), x) in a0.iter_mut().zip(a1.iter_mut()).zip(xp) {
                let xv = _mm256_loadu_ps(x.add(i));
                *s0 = _mm256_fmadd_ps(w0, xv, *s0);
                *s1 = _mm256_fmadd_ps(w1, xv, *s1);
            }
            i += 8;
        }
    }
    let mut out = [[0.0f32; F16_TILE_VECTORS]; F16_TILE_ROWS];
    for ((o_r, acc), row) in out.iter_mut().zip([&acc0, &acc1]).zip(rows) {
        let (w_tail, _) = row.get(2 * i..2 * n).unwrap_or(&[]).as_chunks::<2>();
        for (v, (o, x)) in o_r.iter_mut().zip(xs).enumerate() {
            let lane = |k: usize| acc.get(k).and_then(|a| a.get(v)).copied().unwrap_or(zero);
            let halves = (_mm256_add_ps(lane(0), lane(1)), _mm256_add_ps(lane(2), lane(3)));
            let mut sum = hsum_ps(_mm256_add_ps(halves.0, halves.1));
            for (b, xi) in w_tail.iter().zip(x.get(i..n).unwrap_or(&[])) {
                sum += if BF16 { bf16_to_f32(*b) } else { f16_to_f32(*b) } * xi;
            }
            *o = sum;
        }
    }
    out
}

/// The four 8-lane accumulators per vector that two 16-lane ones hold side by side
/// (`wide[h]` = accumulators `2h` | `2h + 1`), as `[k][vector]`.
#[inline]
#[target_feature(enable = "avx512f")]
fn narrow(wide: [[__m512; F16_TILE_VECTORS]; 2]) -> [[__m256; F16_TILE_VECTORS]; 4] {
    let halves = |z: __m512| {
        let low = _mm512_castps512_ps256(z);
        let high = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(z)));
        (low, high)
    };
    let [[a, b, c], [d, e, f]] = wide;
    let ((a0, a1), (b0, b1), (c0, c1)) = (halves(a), halves(b), halves(c));
    let ((d0, d1), (e0, e1), (f0, f1)) = (halves(d), halves(e), halves(f));
    [[a0, b0, c0], [a1, b1, c1], [d0, e0, f0], [d1, e1, f1]]
}

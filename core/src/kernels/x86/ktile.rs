//! AVX-512 VNNI row tiles of the K-quants: [`SUPER_ROWS`] weight rows against many activation
//! vectors (a batched product), each super-block of the eight rows repacked once and then
//! multiplied with every vector.
//!
//! The one-vector kernels sum each 32-value sub-block horizontally and scale it: per row and
//! vector as much work as the products. Here the eight rows' values of a sub-block are
//! interleaved eight bytes at a time (`levels[j][q]`: qword `r` holds row `r`'s values
//! `8q .. 8q + 8` of sub-block `j`), so one `vpdpbusd` against eight broadcast activation
//! bytes feeds all eight rows, lanes `2r` and `2r + 1` belonging to row `r`. Four of them sum a
//! sub-block's 32 products per row in two lanes, small enough for `i16` (Q4_K: `16 · 15 · 127
//! < 2^15`), so one `vpdpwssd` against the rows' scales (`i16` pairs `(sc, 0)`) adds
//! `sc · Σ` to the super-block sum: no reduction until the super-block's end, where each lane
//! pair is added once. The mins' term is two `vpdpwssd` of the rows' mins against the
//! activation's 32-value sums. Every integer sum is exact, and each super-block's term is
//! rounded as [`crate::quant::super_term`] rounds it and added to the running sum in block
//! order: bit-identical to the reference per row and vector.
#![allow(unsafe_code)]

use core::arch::x86_64::*;

use crate::kernels::SUPER_ROWS;
use crate::quant::q4_k::{self, BlockQ4K};
use crate::quant::q5_k::{self, BlockQ5K};
use crate::quant::q6_k::{self, BlockQ6K};
use crate::quant::q8_k::BlockQ8K;
use crate::quant::QK_K;

mod q4_k_tile;
mod q6_k_tile;

use q4_k_tile::{q4_k_rows_512, q5_k_rows_512};
use q6_k_tile::q6_k_rows_512;

const _: () = assert!(SUPER_ROWS == 8, "one qword per row in a 512-bit register");

/// Vectors multiplied per pass over a repacked super-block (each weight register loaded once
/// for all of them).
pub(super) const PASS: usize = 4;

/// The `f16` at byte `at` of each of the eight blocks, as `f32`: one F16C conversion (exact,
/// as [`crate::quant::f16_at`] is; the software conversion's multiply takes a slow microcode assist on the
/// subnormal `f16` scales that K-quant files often hold).
///
/// # Safety
/// AVX and F16C; `at + 2` bytes are inside every block.
#[inline]
#[target_feature(enable = "avx,f16c")]
pub(super) unsafe fn f16x8(
    blocks: &[*const u8; SUPER_ROWS],
    at: usize,
    out: &mut [f32; SUPER_ROWS],
) {
    // SAFETY: the caller's contract; unaligned reads.
    let bits = blocks.map(|b| b.add(at).cast::<u16>().read_unaligned());
    // SAFETY: `bits` is 16 bytes and `out` 32; unaligned load and store.
    let v = _mm256_cvtph_ps(_mm_loadu_si128(bits.as_ptr().cast()));
    _mm256_storeu_ps(out.as_mut_ptr(), v);
}

/// Eight rows' 16-byte loads (`x[r]`: dwords 0..4) transposed: register `k` holds dword `k`
/// of row `r` in lane `r`.
///
/// # Safety
/// AVX2.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn transpose_dwords(x: [__m128i; SUPER_ROWS]) -> [__m256i; 4] {
    let [x0, x1, x2, x3, x4, x5, x6, x7] = x;
    let (a, b) = (_mm256_set_m128i(x4, x0), _mm256_set_m128i(x5, x1));
    let (c, d) = (_mm256_set_m128i(x6, x2), _mm256_set_m128i(x7, x3));
    // Per half: (r0 k0, r1 k0, r0 k1, r1 k1) and (r0 k2, r1 k2, r0 k3, r1 k3); the same for
    // rows 2 and 3 (rows 4..8 in the high half).
    let (t0, t1) = (_mm256_unpacklo_epi32(a, b), _mm256_unpackhi_epi32(a, b));
    let (t2, t3) = (_mm256_unpacklo_epi32(c, d), _mm256_unpackhi_epi32(c, d));
    [
        _mm256_unpacklo_epi64(t0, t2),
        _mm256_unpackhi_epi64(t0, t2),
        _mm256_unpacklo_epi64(t1, t3),
        _mm256_unpackhi_epi64(t1, t3),
    ]
}

/// Eight rows' 32-byte runs (`runs[r]`: qwords 0..4) to four registers by qword: register
/// `q` holds qword `q` of row `r` in qword lane `r` (two rows per register, then `vpermt2q`
/// and `vshufi64x2`).
///
/// # Safety
/// AVX-512 F.
#[inline]
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn transpose8(runs: [__m256i; SUPER_ROWS]) -> [__m512i; 4] {
    let [r0, r1, r2, r3, r4, r5, r6, r7] = runs;
    let pair = |x: __m256i, y: __m256i| _mm512_inserti64x4::<1>(_mm512_castsi256_si512(x), y);
    let (z0, z1, z2, z3) = (pair(r0, r1), pair(r2, r3), pair(r4, r5), pair(r6, r7));
    // (r0, r1, r2, r3) of qwords q and q + 1, from two row pairs.
    let even = _mm512_setr_epi64(0, 4, 8, 12, 1, 5, 9, 13);
    let odd = _mm512_setr_epi64(2, 6, 10, 14, 3, 7, 11, 15);
    let (t01, t01b) =
        (_mm512_permutex2var_epi64(z0, even, z1), _mm512_permutex2var_epi64(z0, odd, z1));
    let (t23, t23b) =
        (_mm512_permutex2var_epi64(z2, even, z3), _mm512_permutex2var_epi64(z2, odd, z3));
    [
        _mm512_shuffle_i64x2::<0x44>(t01, t23),
        _mm512_shuffle_i64x2::<0xee>(t01, t23),
        _mm512_shuffle_i64x2::<0x44>(t01b, t23b),
        _mm512_shuffle_i64x2::<0xee>(t01b, t23b),
    ]
}

/// Lane pairs `(2r, 2r + 1)` of `v` added: row `r`'s sum in lane `r` (exact).
///
/// # Safety
/// AVX-512 F.
#[inline]
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn pair_sums(v: __m512i) -> __m256i {
    _mm512_cvtepi64_epi32(_mm512_add_epi32(v, _mm512_srli_epi64::<32>(v)))
}

/// `out[t][r] = Σ_b terms(tile of block b, a[t][b])` for every vector `t`, the terms added in
/// block order from 0.0 (as the references add them), each super-block repacked once and
/// multiplied with [`PASS`] vectors per pass (`terms` takes that many).
///
/// # Safety
/// What `repack` and `terms` need; every row and every `a[t]` holds `n_blocks` blocks;
/// `out.len() >= a.len()`.
#[inline(always)]
pub(super) unsafe fn rows_by_tile<W, T>(
    rows: &[&[W]; SUPER_ROWS],
    (n_blocks, a): (usize, &[&[BlockQ8K]]),
    out: &mut [[f32; SUPER_ROWS]],
    tile: &mut T,
    repack: unsafe fn(&[&[W]; SUPER_ROWS], usize, &mut T),
    terms: unsafe fn(&T, [&BlockQ8K; PASS]) -> [__m256; PASS],
) {
    for o in out.iter_mut() {
        *o = [0.0; SUPER_ROWS];
    }
    for b in 0..n_blocks {
        repack(rows, b, tile);
        let add = |o: &mut [f32; SUPER_ROWS], term: __m256| {
            _mm256_storeu_ps(o.as_mut_ptr(), _mm256_add_ps(_mm256_loadu_ps(o.as_ptr()), term));
        };
        // SAFETY (both): `b < n_blocks <= at.len()`.
        let block = |at: &&[BlockQ8K]| &*at.as_ptr().add(b);
        let (passes, last) = a.as_chunks::<PASS>();
        let (out_passes, out_last) = out.as_chunks_mut::<PASS>();
        for (o, at) in out_passes.iter_mut().zip(passes) {
            let terms = terms(tile, at.each_ref().map(block));
            for (o, t) in o.iter_mut().zip(terms) {
                add(o, t);
            }
        }
        // The last vectors fill a pass, the spare lanes repeating the final one.
        if let Some(final_one) = last.last() {
            let fill: [&[BlockQ8K]; PASS] =
                core::array::from_fn(|i| last.get(i).copied().unwrap_or(final_one));
            let terms = terms(tile, fill.each_ref().map(block));
            for (o, t) in out_last.iter_mut().zip(terms) {
                add(o, t);
            }
        }
    }
}

/// Safe entry points, installed only in the AVX-512 VNNI table.
pub(in crate::kernels) mod entry {
    use super::*;

    /// The row tile's contract on `(rows, a, out)`: every row and vector of equal length
    /// (returned), and `out` an entry per vector.
    fn even<W>(rows: &[&[W]; SUPER_ROWS], a: &[&[BlockQ8K]], out_len: usize) -> Option<usize> {
        let n = rows.first().map_or(0, |r| r.len());
        let even = rows.iter().all(|r| r.len() == n) && a.iter().all(|at| at.len() == n);
        (even && out_len >= a.len()).then_some(n)
    }

    /// An unchecked row tile (`n` blocks in every row and vector).
    type UnsafeRows<W> =
        unsafe fn(&[&[W]; SUPER_ROWS], usize, &[&[BlockQ8K]], &mut [[f32; SUPER_ROWS]]);

    /// The row tile `tile` where every row and vector has the same length and `out` an entry
    /// per vector, else `dot` pair by pair.
    ///
    /// # Safety
    /// The CPU supports AVX-512 F, BW, VL, VNNI and F16C.
    #[inline(always)]
    unsafe fn checked_rows<W>(
        rows: &[&[W]; SUPER_ROWS],
        a: &[&[BlockQ8K]],
        out: &mut [[f32; SUPER_ROWS]],
        dot: fn(&[W], &[BlockQ8K]) -> f32,
        tile: UnsafeRows<W>,
    ) {
        match even(rows, a, out.len()) {
            // SAFETY: every row and vector holds `n` blocks, and `out` one entry per vector
            // (`even`); the features are the caller's.
            Some(n) => unsafe { tile(rows, n, a, out) },
            None => crate::kernels::super_rows_by_pair(rows, a, out, dot),
        }
    }

    pub(in crate::kernels) fn q4_k_rows(
        rows: &[&[BlockQ4K]; SUPER_ROWS],
        a: &[&[BlockQ8K]],
        out: &mut [[f32; SUPER_ROWS]],
    ) {
        // SAFETY: only reachable through the AVX-512 VNNI table, built after detecting
        // avx512f/bw/vl/vnni (and, through the AVX2 table, f16c).
        unsafe { checked_rows(rows, a, out, q4_k::dot_q8_k, q4_k_rows_512) }
    }

    pub(in crate::kernels) fn q5_k_rows(
        rows: &[&[BlockQ5K]; SUPER_ROWS],
        a: &[&[BlockQ8K]],
        out: &mut [[f32; SUPER_ROWS]],
    ) {
        // SAFETY: as above.
        unsafe { checked_rows(rows, a, out, q5_k::dot_q8_k, q5_k_rows_512) }
    }

    pub(in crate::kernels) fn q6_k_rows(
        rows: &[&[BlockQ6K]; SUPER_ROWS],
        a: &[&[BlockQ8K]],
        out: &mut [[f32; SUPER_ROWS]],
    ) {
        // SAFETY: as above.
        unsafe { checked_rows(rows, a, out, q6_k::dot_q8_k, q6_k_rows_512) }
    }
}

const _: () = assert!(QK_K == 256);

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
use crate::quant::f16_at;
use crate::quant::q4_k::{self, BlockQ4K};
use crate::quant::q8_k::{self, BlockQ8K};
use crate::quant::QK_K;

const _: () = assert!(SUPER_ROWS == 8, "one qword per row in a 512-bit register");

/// One super-block of eight Q4_K rows, repacked for the products (see the module notes).
#[repr(C, align(64))]
struct Q4KTile {
    /// `levels[j][q]`: qword `r` is row `r`'s values `8q .. 8q + 8` of sub-block `j` (`0..=15`).
    levels: [[[u8; 64]; 4]; 8],
    /// `scales[j]`: `i32` lanes `2r` and `2r + 1` hold row `r`'s scale of sub-block `j`.
    scales: [[i32; 16]; 8],
    /// `mins[h]`: `i16` pair `2r + p` is row `r`'s mins of sub-blocks `4h + 2p` and
    /// `4h + 2p + 1`.
    mins: [[i16; 32]; 2],
    /// The rows' `d` and `dmin`.
    d: [f32; SUPER_ROWS],
    dmin: [f32; SUPER_ROWS],
}

impl Q4KTile {
    const ZERO: Q4KTile = Q4KTile {
        levels: [[[0; 64]; 4]; 8],
        scales: [[0; 16]; 8],
        mins: [[0; 32]; 2],
        d: [0.0; SUPER_ROWS],
        dmin: [0.0; SUPER_ROWS],
    };
}

/// Repacks super-block `b` of the eight rows into `tile`: the 32-byte nibble runs of the rows
/// transposed to qwords per row (two rows per register, then `vpermt2q` and `vshufi64x2`),
/// then split into low (sub-block `2p`) and high (`2p + 1`) nibbles.
///
/// # Safety
/// AVX-512 F; every row holds more than `b` blocks.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn repack_q4_k(rows: &[&[BlockQ4K]; SUPER_ROWS], b: usize, tile: &mut Q4KTile) {
    // Block `b` of each row: it exists (the caller's contract).
    let blocks = rows.each_ref().map(|r| r.as_ptr().wrapping_add(b).cast::<u8>());
    let [b0, b1, b2, b3, b4, b5, b6, b7] = blocks;
    // SAFETY: a block is 144 bytes, the nibbles at 16..144, so each 32-byte run `16 + 32p` is
    // inside it; the loads are unaligned.
    let run = |block: *const u8, p: usize| _mm256_loadu_si256(block.add(16 + 32 * p).cast());
    let low = _mm512_set1_epi8(0x0f);
    // Qword indices for `vpermt2q`: (r0, r1, r2, r3) of qword q and q + 1, from two row pairs.
    let even = _mm512_setr_epi64(0, 4, 8, 12, 1, 5, 9, 13);
    let odd = _mm512_setr_epi64(2, 6, 10, 14, 3, 7, 11, 15);
    let levels = tile.levels.as_mut_ptr().cast::<u8>();
    for p in 0..4 {
        let pair = |x: *const u8, y: *const u8| {
            _mm512_inserti64x4::<1>(_mm512_castsi256_si512(run(x, p)), run(y, p))
        };
        let (z0, z1, z2, z3) = (pair(b0, b1), pair(b2, b3), pair(b4, b5), pair(b6, b7));
        let (t01, t01b) =
            (_mm512_permutex2var_epi64(z0, even, z1), _mm512_permutex2var_epi64(z0, odd, z1));
        let (t23, t23b) =
            (_mm512_permutex2var_epi64(z2, even, z3), _mm512_permutex2var_epi64(z2, odd, z3));
        let by_q = [
            _mm512_shuffle_i64x2::<0x44>(t01, t23),
            _mm512_shuffle_i64x2::<0xee>(t01, t23),
            _mm512_shuffle_i64x2::<0x44>(t01b, t23b),
            _mm512_shuffle_i64x2::<0xee>(t01b, t23b),
        ];
        for (q, v) in by_q.into_iter().enumerate() {
            let lo = _mm512_and_si512(v, low);
            let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(v), low);
            // SAFETY: `levels` is [8][4][64] bytes, 64-byte aligned (the struct's alignment):
            // entries [2p][q] and [2p + 1][q] with p < 4, q < 4.
            _mm512_store_si512(levels.add(64 * (4 * (2 * p) + q)).cast(), lo);
            _mm512_store_si512(levels.add(64 * (4 * (2 * p + 1) + q)).cast(), hi);
        }
    }
    let per_row = blocks.iter().zip(tile.d.iter_mut().zip(tile.dmin.iter_mut())).enumerate();
    for (r, (block, (d, dmin))) in per_row {
        // SAFETY: as above: `block` points at a whole block.
        let wb = &*block.cast::<BlockQ4K>();
        let (sc, m) = q4_k::scales_mins(&q4_k::packed_scales(wb));
        for (lanes, s) in tile.scales.iter_mut().zip(sc) {
            if let Some(pair) = lanes.get_mut(2 * r..2 * r + 2) {
                pair.fill(i32::from(s));
            }
        }
        // Row r's mins as i16 pairs 2r + p of each half: sub-blocks 4h + 2p and 4h + 2p + 1.
        for (half, m) in tile.mins.iter_mut().zip(m.as_chunks::<4>().0) {
            if let Some(dst) = half.get_mut(4 * r..4 * r + 4) {
                for (d, m) in dst.iter_mut().zip(m) {
                    *d = i16::from(*m);
                }
            }
        }
        *d = f16_at(wb, 0);
        *dmin = f16_at(wb, 2);
    }
}

/// Lane pairs `(2r, 2r + 1)` of `v` added: row `r`'s sum in lane `r` (exact).
///
/// # Safety
/// AVX-512 F.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn pair_sums(v: __m512i) -> __m256i {
    _mm512_cvtepi64_epi32(_mm512_add_epi32(v, _mm512_srli_epi64::<32>(v)))
}

/// The eight rows' terms of one super-block against activation block `a`, each rounded as
/// [`crate::quant::super_term`] rounds it.
///
/// # Safety
/// AVX-512 F, BW, VL and VNNI.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q4_k_terms(tile: &Q4KTile, a: &BlockQ8K) -> __m256 {
    let qs = a.as_ptr().add(q8_k::QS);
    let mut sumi = _mm512_setzero_si512();
    for (j, (levels, scales)) in tile.levels.iter().zip(&tile.scales).enumerate() {
        let mut s = _mm512_setzero_si512();
        for (q, w) in levels.iter().enumerate() {
            // SAFETY: `32j + 8q + 8 <= 256`: inside the block's values; unaligned read.
            let x = _mm512_set1_epi64(qs.add(32 * j + 8 * q).cast::<i64>().read_unaligned());
            s = _mm512_dpbusd_epi32(s, _mm512_load_si512(w.as_ptr().cast()), x);
        }
        // |s| <= 16 · 15 · 127 fits i16: the (sc, 0) pair multiplies it exactly.
        sumi = _mm512_dpwssd_epi32(sumi, s, _mm512_load_si512(scales.as_ptr().cast()));
    }
    // SAFETY: the 16 i16 sums of 16 values are the block's last 32 bytes.
    let bsums = _mm256_loadu_si256(a.as_ptr().add(q8_k::BSUMS_AT).cast());
    // Sums of 32 values (|.| <= 32 · 127): packed to i16 without saturating.
    let b32 = _mm256_madd_epi16(bsums, _mm256_set1_epi16(1));
    let packed = _mm256_packs_epi32(b32, b32);
    let lo = _mm512_broadcastq_epi64(_mm256_castsi256_si128(packed));
    let hi = _mm512_broadcastq_epi64(_mm256_extracti128_si256::<1>(packed));
    let mins0 = _mm512_load_si512(tile.mins[0].as_ptr().cast());
    let mins1 = _mm512_load_si512(tile.mins[1].as_ptr().cast());
    let summ = _mm512_dpwssd_epi32(_mm512_madd_epi16(mins0, lo), mins1, hi);
    let (si, sm) = (pair_sums(sumi), pair_sums(summ));
    let da = _mm256_set1_ps(q8_k::scale(a));
    let d = _mm256_mul_ps(da, _mm256_loadu_ps(tile.d.as_ptr()));
    let dmin = _mm256_mul_ps(da, _mm256_loadu_ps(tile.dmin.as_ptr()));
    _mm256_sub_ps(
        _mm256_mul_ps(d, _mm256_cvtepi32_ps(si)),
        _mm256_mul_ps(dmin, _mm256_cvtepi32_ps(sm)),
    )
}

/// `out[t][r] = q4_k::dot_q8_k(rows[r], a[t])` for every vector `t`, bit for bit.
///
/// # Safety
/// AVX-512 F, BW, VL and VNNI; every row and every `a[t]` holds `n_blocks` blocks;
/// `out.len() >= a.len()`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn q4_k_rows_512(
    rows: &[&[BlockQ4K]; SUPER_ROWS],
    n_blocks: usize,
    a: &[&[BlockQ8K]],
    out: &mut [[f32; SUPER_ROWS]],
) {
    for o in out.iter_mut() {
        *o = [0.0; SUPER_ROWS];
    }
    let mut tile = Q4KTile::ZERO;
    for b in 0..n_blocks {
        repack_q4_k(rows, b, &mut tile);
        for (o, at) in out.iter_mut().zip(a) {
            // SAFETY: `b < n_blocks <= at.len()`.
            let term = q4_k_terms(&tile, &*at.as_ptr().add(b));
            _mm256_storeu_ps(o.as_mut_ptr(), _mm256_add_ps(_mm256_loadu_ps(o.as_ptr()), term));
        }
    }
}

/// Safe entry points, installed only in the AVX-512 VNNI table.
pub(in crate::kernels) mod entry {
    use super::*;

    pub(in crate::kernels) fn q4_k_rows(
        rows: &[&[BlockQ4K]; SUPER_ROWS],
        a: &[&[BlockQ8K]],
        out: &mut [[f32; SUPER_ROWS]],
    ) {
        let n = rows[0].len();
        let even = rows.iter().all(|r| r.len() == n) && a.iter().all(|at| at.len() == n);
        if !even || out.len() < a.len() {
            return crate::kernels::super_rows_by_pair(rows, a, out, q4_k::dot_q8_k);
        }
        // SAFETY: only reachable through the AVX-512 VNNI table, built after detecting
        // avx512f/bw/vl/vnni; every row and vector holds `n` blocks, and `out` one entry per
        // vector, checked just above.
        unsafe { q4_k_rows_512(rows, n, a, out) }
    }
}

const _: () = assert!(QK_K == 256);

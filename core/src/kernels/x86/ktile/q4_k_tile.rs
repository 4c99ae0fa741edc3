//! The Q4_K and Q5_K row tiles (see [`super`]): one repacked layout, Q5_K's levels with their
//! fifth bit.

use core::arch::x86_64::*;

use super::{f16x8, pair_sums, rows_by_tile, transpose8, transpose_dwords, PASS};
use crate::kernels::SUPER_ROWS;
use crate::quant::q4_k::BlockQ4K;
use crate::quant::q5_k::BlockQ5K;
use crate::quant::q8_k::{self, BlockQ8K};

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
/// transposed to qwords per row ([`transpose8`]), then split into low (sub-block `2p`) and
/// high (`2p + 1`) nibbles.
///
/// # Safety
/// AVX-512 F; every row holds more than `b` blocks.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx2,f16c")]
unsafe fn repack_q4_k(rows: &[&[BlockQ4K]; SUPER_ROWS], b: usize, tile: &mut Q4KTile) {
    // Block `b` of each row: it exists (the caller's contract).
    let blocks = rows.each_ref().map(|r| r.as_ptr().wrapping_add(b).cast::<u8>());
    // SAFETY: a block is 144 bytes, the nibbles at 16..144, so each 32-byte run `16 + 32p` is
    // inside it; the loads are unaligned.
    let run = |block: *const u8, p: usize| _mm256_loadu_si256(block.add(16 + 32 * p).cast());
    let low = _mm512_set1_epi8(0x0f);
    let levels = tile.levels.as_mut_ptr().cast::<u8>();
    for p in 0..4 {
        let by_q = transpose8(blocks.map(|b| run(b, p)));
        for (q, v) in by_q.into_iter().enumerate() {
            let lo = _mm512_and_si512(v, low);
            let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(v), low);
            // SAFETY: `levels` is [8][4][64] bytes, 64-byte aligned (the struct's alignment):
            // entries [2p][q] and [2p + 1][q] with p < 4, q < 4.
            _mm512_store_si512(levels.add(64 * (4 * (2 * p) + q)).cast(), lo);
            _mm512_store_si512(levels.add(64 * (4 * (2 * p + 1) + q)).cast(), hi);
        }
    }
    scales_into(&blocks, tile);
}

/// The eight blocks' `d`, `dmin`, scales and mins (the first 16 bytes, laid out alike in
/// Q4_K and Q5_K) into `tile`.
///
/// # Safety
/// AVX-512 F and BW, AVX2, F16C; every pointer is at a whole block.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx2,f16c")]
unsafe fn scales_into(blocks: &[*const u8; SUPER_ROWS], tile: &mut Q4KTile) {
    // Dwords 1, 2, 3 of each block are the packed scales' words w0, w1, w2 (see
    // `q4_k::scales_mins`), decoded here for the eight rows at once: byte k of lane r is row
    // r's scale (or min) k, resp. 4 + k.
    // SAFETY: the 16 bytes at 0 (d, dmin, scales) are inside each block.
    let [_, w0, w1, w2] = transpose_dwords(blocks.map(|b| _mm_loadu_si128(b.cast())));
    let (low6, low4, low2) =
        (_mm256_set1_epi8(0x3f), _mm256_set1_epi8(0x0f), _mm256_set1_epi8(0x03));
    let high = |w: __m256i, low_bits: __m256i| {
        _mm256_slli_epi32::<4>(_mm256_and_si256(_mm256_srli_epi32::<6>(w), low_bits))
    };
    let sc =
        [_mm256_and_si256(w0, low6), _mm256_or_si256(_mm256_and_si256(w2, low4), high(w0, low2))];
    let m = [
        _mm256_and_si256(w1, low6),
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32::<4>(w2), low4), high(w1, low2)),
    ];
    // scales[4h + k]: byte k of each lane, in both i32 lanes of the row.
    let scales = tile.scales.as_mut_ptr().cast::<i32>();
    for (h, v) in sc.into_iter().enumerate() {
        for k in 0..4 {
            let one = _mm256_and_si256(
                _mm256_srlv_epi32(v, _mm256_set1_epi32(8 * k)),
                _mm256_set1_epi32(0xff),
            );
            let wide = _mm512_cvtepu32_epi64(one);
            let both = _mm512_or_si512(wide, _mm512_slli_epi64::<32>(wide));
            // SAFETY: `scales` is [8][16] i32 and 4h + k < 8.
            _mm512_storeu_si512(scales.add(16 * (4 * h + k as usize)).cast(), both);
        }
    }
    // mins[h]: i16 lanes 4r .. 4r + 4 are row r's mins 4h .. 4h + 4, i.e. its four bytes.
    for (half, v) in tile.mins.iter_mut().zip(m) {
        // SAFETY: `half` is 32 i16; unaligned store.
        _mm512_storeu_si512(half.as_mut_ptr().cast(), _mm512_cvtepu8_epi16(v));
    }
    // SAFETY: `d` and `dmin` are bytes 0..4 of a block.
    f16x8(blocks, 0, &mut tile.d);
    f16x8(blocks, 2, &mut tile.dmin);
}

/// Bit `k` of every byte of `h` moved to bit 4, the other bits cleared (16-bit shifts of at
/// most 4 left or 3 right: the mask keeps each byte's own bit).
///
/// # Safety
/// AVX-512 F and BW.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn bit_to_4(h: __m512i, k: usize) -> __m512i {
    let bit4 = _mm512_set1_epi8(0x10);
    #[allow(clippy::cast_possible_wrap, clippy::cast_possible_truncation)] // k < 8
    let shifted = if k <= 4 {
        _mm512_sll_epi16(h, _mm_cvtsi32_si128((4 - k) as i32))
    } else {
        _mm512_srl_epi16(h, _mm_cvtsi32_si128((k - 4) as i32))
    };
    _mm512_and_si512(shifted, bit4)
}

/// Repacks super-block `b` of eight Q5_K rows into `tile`: as [`repack_q4_k`], each level
/// given its fifth bit from `qh` (bit `j` of byte `l` for value `l` of sub-block `j`), whose
/// 32-byte run is transposed the same way.
///
/// # Safety
/// AVX-512 F and BW, AVX2, F16C; every row holds more than `b` blocks.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx2,f16c")]
unsafe fn repack_q5_k(rows: &[&[BlockQ5K]; SUPER_ROWS], b: usize, tile: &mut Q4KTile) {
    // Block `b` of each row: it exists (the caller's contract).
    let blocks = rows.each_ref().map(|r| r.as_ptr().wrapping_add(b).cast::<u8>());
    // SAFETY: a block is 176 bytes: qh at 16..48, the nibbles at 48..176, so every 32-byte
    // run read is inside it; the loads are unaligned.
    let run = |block: *const u8, at: usize| _mm256_loadu_si256(block.add(at).cast());
    let qh = transpose8(blocks.map(|b| run(b, 16)));
    let low = _mm512_set1_epi8(0x0f);
    let levels = tile.levels.as_mut_ptr().cast::<u8>();
    for p in 0..4 {
        let by_q = transpose8(blocks.map(|b| run(b, 48 + 32 * p)));
        for (q, (v, h)) in by_q.into_iter().zip(qh).enumerate() {
            let lo = _mm512_or_si512(_mm512_and_si512(v, low), bit_to_4(h, 2 * p));
            let hi = _mm512_or_si512(
                _mm512_and_si512(_mm512_srli_epi16::<4>(v), low),
                bit_to_4(h, 2 * p + 1),
            );
            // SAFETY: as in `repack_q4_k`.
            _mm512_store_si512(levels.add(64 * (4 * (2 * p) + q)).cast(), lo);
            _mm512_store_si512(levels.add(64 * (4 * (2 * p + 1) + q)).cast(), hi);
        }
    }
    scales_into(&blocks, tile);
}

/// `Σ_j sc_j · Σ q·y` of the eight rows against the values at `qs`, in lane pairs `(2r, 2r + 1)`:
/// two accumulators (even and odd sub-blocks), so the `vpdpwssd` chains overlap.
///
/// # Safety
/// AVX-512 F, BW and VNNI; `qs` points at 256 values.
#[inline(always)]
unsafe fn q4_k_sumi<const SPLIT: bool>(tile: &Q4KTile, qs: [*const u8; PASS]) -> [__m512i; PASS] {
    // Each vector's dpbusd chain over qwords `q0 ..` of sub-block j, from zero: per row the
    // sums of 4 products per qword in two lanes.
    let chain = |j: usize, ws: &[[u8; 64]], q0: usize| {
        let mut s = [_mm512_setzero_si512(); PASS];
        for (dq, w) in ws.iter().enumerate() {
            let w = _mm512_load_si512(w.as_ptr().cast());
            for (s, qs) in s.iter_mut().zip(qs) {
                // SAFETY: `32j + 8(q0 + dq) + 8 <= 256`: inside the block's values; unaligned.
                let x = qs.add(32 * j + 8 * (q0 + dq)).cast::<i64>().read_unaligned();
                *s = _mm512_dpbusd_epi32(*s, w, _mm512_set1_epi64(x));
            }
        }
        s
    };
    let mut acc = [[_mm512_setzero_si512(); PASS]; 2];
    let pairs = tile.levels.as_chunks::<2>().0.iter().zip(tile.scales.as_chunks::<2>().0);
    for (k, (levels, scales)) in pairs.enumerate() {
        for (((acc, levels), scales), j) in
            acc.iter_mut().zip(levels).zip(scales).zip([2 * k, 2 * k + 1])
        {
            let c = _mm512_load_si512(scales.as_ptr().cast());
            if SPLIT {
                // Q5_K: two chains of two qwords each (|s| <= 8 · 31 · 127 < 2^15).
                let (front, back) = levels.split_at(2);
                for s in [chain(j, front, 0), chain(j, back, 2)] {
                    for (a, s) in acc.iter_mut().zip(s) {
                        *a = _mm512_dpwssd_epi32(*a, s, c);
                    }
                }
            } else {
                // Q4_K: |s| <= 16 · 15 · 127 fits i16: the (sc, 0) pair multiplies it exactly.
                for (a, s) in acc.iter_mut().zip(chain(j, levels, 0)) {
                    *a = _mm512_dpwssd_epi32(*a, s, c);
                }
            }
        }
    }
    let [mut sumi, odd] = acc;
    for (e, o) in sumi.iter_mut().zip(odd) {
        *e = _mm512_add_epi32(*e, o);
    }
    sumi
}

/// The eight rows' terms of one super-block against the [`PASS`] activation blocks `a`, each
/// rounded as [`crate::quant::super_term`] rounds it.
///
/// # Safety
/// AVX-512 F, BW, VL and VNNI.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q4_k_terms<const SPLIT: bool>(tile: &Q4KTile, a: [&BlockQ8K; PASS]) -> [__m256; PASS] {
    let sumi = q4_k_sumi::<SPLIT>(tile, a.map(|a| a.as_ptr().add(q8_k::QS)));
    let mins0 = _mm512_load_si512(tile.mins[0].as_ptr().cast());
    let mins1 = _mm512_load_si512(tile.mins[1].as_ptr().cast());
    let (d, dmin) = (_mm256_loadu_ps(tile.d.as_ptr()), _mm256_loadu_ps(tile.dmin.as_ptr()));
    let mut out = [_mm256_setzero_ps(); PASS];
    for ((o, a), sumi) in out.iter_mut().zip(a).zip(sumi) {
        // SAFETY: the 16 i16 sums of 16 values are the block's last 32 bytes.
        let bsums = _mm256_loadu_si256(a.as_ptr().add(q8_k::BSUMS_AT).cast());
        // Sums of 32 values (|.| <= 32 · 127): packed to i16 without saturating.
        let b32 = _mm256_madd_epi16(bsums, _mm256_set1_epi16(1));
        let packed = _mm256_packs_epi32(b32, b32);
        let lo = _mm512_broadcastq_epi64(_mm256_castsi256_si128(packed));
        let hi = _mm512_broadcastq_epi64(_mm256_extracti128_si256::<1>(packed));
        let summ = _mm512_dpwssd_epi32(_mm512_madd_epi16(mins0, lo), mins1, hi);
        let (si, sm) = (pair_sums(sumi), pair_sums(summ));
        let da = _mm256_set1_ps(q8_k::scale(a));
        *o = _mm256_sub_ps(
            _mm256_mul_ps(_mm256_mul_ps(da, d), _mm256_cvtepi32_ps(si)),
            _mm256_mul_ps(_mm256_mul_ps(da, dmin), _mm256_cvtepi32_ps(sm)),
        );
    }
    out
}

/// `out[t][r] = q4_k::dot_q8_k(rows[r], a[t])` for every vector `t`, bit for bit.
///
/// # Safety
/// AVX-512 F, BW, VL and VNNI; every row and every `a[t]` holds `n_blocks` blocks;
/// `out.len() >= a.len()`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,f16c")]
pub(super) unsafe fn q4_k_rows_512(
    rows: &[&[BlockQ4K]; SUPER_ROWS],
    n_blocks: usize,
    a: &[&[BlockQ8K]],
    out: &mut [[f32; SUPER_ROWS]],
) {
    let mut tile = Q4KTile::ZERO;
    rows_by_tile(rows, (n_blocks, a), out, &mut tile, repack_q4_k, q4_k_terms::<false>);
}

/// `out[t][r] = q5_k::dot_q8_k(rows[r], a[t])` for every vector `t`, bit for bit.
///
/// # Safety
/// As [`q4_k_rows_512`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,f16c")]
pub(super) unsafe fn q5_k_rows_512(
    rows: &[&[BlockQ5K]; SUPER_ROWS],
    n_blocks: usize,
    a: &[&[BlockQ8K]],
    out: &mut [[f32; SUPER_ROWS]],
) {
    let mut tile = Q4KTile::ZERO;
    rows_by_tile(rows, (n_blocks, a), out, &mut tile, repack_q5_k, q4_k_terms::<true>);
}

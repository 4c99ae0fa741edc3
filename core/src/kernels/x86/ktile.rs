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
use crate::quant::q6_k::{self, BlockQ6K};
use crate::quant::q8_k::{self, BlockQ8K};
use crate::quant::QK_K;

const _: () = assert!(SUPER_ROWS == 8, "one qword per row in a 512-bit register");

/// Vectors multiplied per pass over a repacked super-block (each weight register loaded once
/// for all of them).
const PASS: usize = 4;

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

/// The `f16` at byte `at` of each of the eight blocks, as `f32`: one F16C conversion (exact,
/// as [`crate::quant::f16_at`] is; the software conversion's multiply takes a slow microcode assist on the
/// subnormal `f16` scales that K-quant files often hold).
///
/// # Safety
/// AVX and F16C; `at + 2` bytes are inside every block.
#[inline]
#[target_feature(enable = "avx,f16c")]
unsafe fn f16x8(blocks: &[*const u8; SUPER_ROWS], at: usize, out: &mut [f32; SUPER_ROWS]) {
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
unsafe fn transpose_dwords(x: [__m128i; SUPER_ROWS]) -> [__m256i; 4] {
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
unsafe fn transpose8(runs: [__m256i; SUPER_ROWS]) -> [__m512i; 4] {
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
    f16x8(&blocks, 0, &mut tile.d);
    f16x8(&blocks, 2, &mut tile.dmin);
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

/// `Σ_j sc_j · Σ q·y` of the eight rows against the values at `qs`, in lane pairs `(2r, 2r + 1)`:
/// two accumulators (even and odd sub-blocks), so the `vpdpwssd` chains overlap.
///
/// # Safety
/// AVX-512 F, BW and VNNI; `qs` points at 256 values.
#[inline(always)]
unsafe fn q4_k_sumi(tile: &Q4KTile, qs: [*const u8; PASS]) -> [__m512i; PASS] {
    // `s[t]`: vector t's 32-product sums of sub-block j, per row in two lanes.
    let sub_block = |j: usize, levels: &[[u8; 64]; 4]| {
        let mut s = [_mm512_setzero_si512(); PASS];
        for (q, w) in levels.iter().enumerate() {
            let w = _mm512_load_si512(w.as_ptr().cast());
            for (s, qs) in s.iter_mut().zip(qs) {
                // SAFETY: `32j + 8q + 8 <= 256`: inside the block's values; unaligned read.
                let x = _mm512_set1_epi64(qs.add(32 * j + 8 * q).cast::<i64>().read_unaligned());
                *s = _mm512_dpbusd_epi32(*s, w, x);
            }
        }
        s
    };
    let (mut even, mut odd) = ([_mm512_setzero_si512(); PASS], [_mm512_setzero_si512(); PASS]);
    let pairs = tile.levels.as_chunks::<2>().0.iter().zip(tile.scales.as_chunks::<2>().0);
    for (k, ([l0, l1], [c0, c1])) in pairs.enumerate() {
        let (s0, s1) = (sub_block(2 * k, l0), sub_block(2 * k + 1, l1));
        // |s| <= 16 · 15 · 127 fits i16: the (sc, 0) pair multiplies it exactly.
        let (c0, c1) =
            (_mm512_load_si512(c0.as_ptr().cast()), _mm512_load_si512(c1.as_ptr().cast()));
        for ((e, o), (s0, s1)) in even.iter_mut().zip(&mut odd).zip(s0.into_iter().zip(s1)) {
            *e = _mm512_dpwssd_epi32(*e, s0, c0);
            *o = _mm512_dpwssd_epi32(*o, s1, c1);
        }
    }
    let mut sumi = even;
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
unsafe fn q4_k_terms(tile: &Q4KTile, a: [&BlockQ8K; PASS]) -> [__m256; PASS] {
    let sumi = q4_k_sumi(tile, a.map(|a| a.as_ptr().add(q8_k::QS)));
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

/// `out[t][r] = Σ_b terms(tile of block b, a[t][b])` for every vector `t`, the terms added in
/// block order from 0.0 (as the references add them), each super-block repacked once and
/// multiplied with [`PASS`] vectors per pass (`terms` takes that many).
///
/// # Safety
/// What `repack` and `terms` need; every row and every `a[t]` holds `n_blocks` blocks;
/// `out.len() >= a.len()`.
#[inline(always)]
unsafe fn rows_by_tile<W, T>(
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

/// `out[t][r] = q4_k::dot_q8_k(rows[r], a[t])` for every vector `t`, bit for bit.
///
/// # Safety
/// AVX-512 F, BW, VL and VNNI; every row and every `a[t]` holds `n_blocks` blocks;
/// `out.len() >= a.len()`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,f16c")]
unsafe fn q4_k_rows_512(
    rows: &[&[BlockQ4K]; SUPER_ROWS],
    n_blocks: usize,
    a: &[&[BlockQ8K]],
    out: &mut [[f32; SUPER_ROWS]],
) {
    let mut tile = Q4KTile::ZERO;
    rows_by_tile(rows, (n_blocks, a), out, &mut tile, repack_q4_k, q4_k_terms);
}

/// One super-block of eight Q6_K rows, repacked for the products.
#[repr(C, align(64))]
struct Q6KTile {
    /// `levels[2j + h]`: qword `r` is row `r`'s values `16j + 8h .. 16j + 8h + 8` as stored,
    /// `q` in `0..=63` (the `− 32` is applied through the activation sums).
    levels: [[u8; 64]; 32],
    /// `scales[j]`: `i16` lanes `4r .. 4r + 4` hold row `r`'s scale `j`.
    scales: [[i16; 32]; 16],
    /// `pairs[h]`: `i16` pair `2r + p` is row `r`'s scales `4h + 2p` and `4h + 2p + 1`.
    pairs: [[i16; 32]; 4],
    /// The rows' `d`.
    d: [f32; SUPER_ROWS],
}

impl Q6KTile {
    const ZERO: Q6KTile = Q6KTile {
        levels: [[0; 64]; 32],
        scales: [[0; 32]; 16],
        pairs: [[0; 32]; 4],
        d: [0.0; SUPER_ROWS],
    };
}

/// Repacks super-block `b` of the eight rows into `tile`: each half's runs of `ql` (two) and
/// `qh` (one) transposed to qwords per row ([`transpose8`]), then the four 32-value runs of
/// the half assembled from nibbles and bit pairs as the format defines them.
///
/// # Safety
/// AVX-512 F and BW; every row holds more than `b` blocks.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx2,f16c")]
unsafe fn repack_q6_k(rows: &[&[BlockQ6K]; SUPER_ROWS], b: usize, tile: &mut Q6KTile) {
    // Block `b` of each row: it exists (the caller's contract).
    let blocks = rows.each_ref().map(|r| r.as_ptr().wrapping_add(b).cast::<u8>());
    // SAFETY: a block is 210 bytes: `ql` at 0..128, `qh` at 128..192; every run read is
    // 32 bytes inside them; the loads are unaligned.
    let run = |block: *const u8, at: usize| _mm256_loadu_si256(block.add(at).cast());
    let (low, bits) = (_mm512_set1_epi8(0x0f), _mm512_set1_epi8(0x30));
    let levels = tile.levels.as_mut_ptr().cast::<u8>();
    for n in 0..2 {
        let ql0 = transpose8(blocks.map(|b| run(b, 64 * n)));
        let ql1 = transpose8(blocks.map(|b| run(b, 64 * n + 32)));
        let qh = transpose8(blocks.map(|b| run(b, 128 + 32 * n)));
        for (q, ((l0, l1), h)) in ql0.into_iter().zip(ql1).zip(qh).enumerate() {
            let k_runs = [
                _mm512_or_si512(
                    _mm512_and_si512(l0, low),
                    _mm512_and_si512(_mm512_slli_epi16::<4>(h), bits),
                ),
                _mm512_or_si512(
                    _mm512_and_si512(l1, low),
                    _mm512_and_si512(_mm512_slli_epi16::<2>(h), bits),
                ),
                _mm512_or_si512(
                    _mm512_and_si512(_mm512_srli_epi16::<4>(l0), low),
                    _mm512_and_si512(h, bits),
                ),
                _mm512_or_si512(
                    _mm512_and_si512(_mm512_srli_epi16::<4>(l1), low),
                    _mm512_and_si512(_mm512_srli_epi16::<2>(h), bits),
                ),
            ];
            for (k, v) in k_runs.into_iter().enumerate() {
                // Values 128n + 32k + 8q: sub-block 8n + 2k + q / 2, half q % 2.
                // SAFETY: `levels` is [32][64] bytes, 64-byte aligned (the struct's
                // alignment), and 16n + 4k + q < 32.
                _mm512_store_si512(levels.add(64 * (16 * n + 4 * k + q)).cast(), v);
            }
        }
    }
    // Dword k of lane r: row r's scales 4k .. 4k + 4 (i8).
    // SAFETY: the 16 scales at 192..208 are inside each block.
    let by_four = transpose_dwords(blocks.map(|b| _mm_loadu_si128(b.add(q6_k::SCALES).cast())));
    for (k, v) in by_four.into_iter().enumerate() {
        // i16 lanes 4r .. 4r + 4: row r's scales 4k .. 4k + 4.
        let four = _mm512_cvtepi8_epi16(v);
        // SAFETY: `pairs` is [4][32] i16 and `scales` [16][32] i16, k < 4; unaligned stores.
        _mm512_storeu_si512(tile.pairs.as_mut_ptr().add(k).cast(), four);
        let scales = tile.scales.as_mut_ptr().add(4 * k).cast::<__m512i>();
        // Scale 4k + i in all four i16 lanes of each row (word i of each qword).
        _mm512_storeu_si512(
            scales,
            _mm512_shufflehi_epi16::<0x00>(_mm512_shufflelo_epi16::<0x00>(four)),
        );
        _mm512_storeu_si512(
            scales.add(1),
            _mm512_shufflehi_epi16::<0x55>(_mm512_shufflelo_epi16::<0x55>(four)),
        );
        _mm512_storeu_si512(
            scales.add(2),
            _mm512_shufflehi_epi16::<0xaa>(_mm512_shufflelo_epi16::<0xaa>(four)),
        );
        _mm512_storeu_si512(
            scales.add(3),
            _mm512_shufflehi_epi16::<0xff>(_mm512_shufflelo_epi16::<0xff>(four)),
        );
    }
    // SAFETY: `d` is bytes 208..210 of a block.
    f16x8(&blocks, q6_k::D, &mut tile.d);
}

/// The eight rows' terms of one Q6_K super-block against the [`PASS`] activation blocks `a`,
/// each rounded as [`crate::quant::super_term_no_min`] rounds it: `sumi = Σ_j sc_j Σ q·y − 32
/// Σ_j sc_j · bsum_j`, exact. Two accumulators per vector (even and odd runs), so four
/// `vpdpwssd` chains overlap.
///
/// # Safety
/// AVX-512 F, BW, VL and VNNI.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q6_k_terms(tile: &Q6KTile, a: [&BlockQ8K; PASS]) -> [__m256; PASS] {
    let qs = a.map(|a| a.as_ptr().add(q8_k::QS));
    let (mut even, mut odd) = ([_mm512_setzero_si512(); PASS], [_mm512_setzero_si512(); PASS]);
    // Sub-block j's two runs (values 16j .. 16j + 8 and 16j + 8 .. 16j + 16): their product
    // pairs added as i16 (|.| <= 4 · 63 · 127 < 2^15, exact), then one `vpdpwssd` with the
    // scales; even and odd sub-blocks go to two accumulators per vector.
    let sub_block = |j: usize, [w0, w1]: &[[u8; 64]; 2], qs: *const u8| {
        let (w0, w1) =
            (_mm512_load_si512(w0.as_ptr().cast()), _mm512_load_si512(w1.as_ptr().cast()));
        // SAFETY: `16j + 16 <= 256`: inside the block's values; unaligned reads.
        let x0 = _mm512_set1_epi64(qs.add(16 * j).cast::<i64>().read_unaligned());
        let x1 = _mm512_set1_epi64(qs.add(16 * j + 8).cast::<i64>().read_unaligned());
        _mm512_add_epi16(_mm512_maddubs_epi16(w0, x0), _mm512_maddubs_epi16(w1, x1))
    };
    let levels = tile.levels.as_chunks::<2>().0.as_chunks::<2>().0;
    let scales = tile.scales.as_chunks::<2>().0;
    for (k, ([l0, l1], [c0, c1])) in levels.iter().zip(scales).enumerate() {
        let (c0, c1) =
            (_mm512_load_si512(c0.as_ptr().cast()), _mm512_load_si512(c1.as_ptr().cast()));
        for ((e, o), qs) in even.iter_mut().zip(&mut odd).zip(qs) {
            *e = _mm512_dpwssd_epi32(*e, sub_block(2 * k, l0, qs), c0);
            *o = _mm512_dpwssd_epi32(*o, sub_block(2 * k + 1, l1, qs), c1);
        }
    }
    let mut out = [_mm256_setzero_ps(); PASS];
    let d = _mm256_loadu_ps(tile.d.as_ptr());
    for ((o, a), (even, odd)) in out.iter_mut().zip(a).zip(even.into_iter().zip(odd)) {
        let bsums = a.as_ptr().add(q8_k::BSUMS_AT);
        let mut summ = _mm512_setzero_si512();
        for (h, pairs) in tile.pairs.iter().enumerate() {
            // SAFETY: bsums 4h .. 4h + 4 (8 bytes) are inside the block's last 32 bytes.
            let bs = _mm512_set1_epi64(bsums.add(8 * h).cast::<i64>().read_unaligned());
            summ = _mm512_dpwssd_epi32(summ, _mm512_load_si512(pairs.as_ptr().cast()), bs);
        }
        let si = pair_sums(_mm512_add_epi32(even, odd));
        let si = _mm256_sub_epi32(si, _mm256_slli_epi32::<5>(pair_sums(summ)));
        let da_d = _mm256_mul_ps(_mm256_set1_ps(q8_k::scale(a)), d);
        *o = _mm256_mul_ps(da_d, _mm256_cvtepi32_ps(si));
    }
    out
}

/// `out[t][r] = q6_k::dot_q8_k(rows[r], a[t])` for every vector `t`, bit for bit.
///
/// # Safety
/// As [`q4_k_rows_512`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,f16c")]
unsafe fn q6_k_rows_512(
    rows: &[&[BlockQ6K]; SUPER_ROWS],
    n_blocks: usize,
    a: &[&[BlockQ8K]],
    out: &mut [[f32; SUPER_ROWS]],
) {
    let mut tile = Q6KTile::ZERO;
    rows_by_tile(rows, (n_blocks, a), out, &mut tile, repack_q6_k, q6_k_terms);
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

    pub(in crate::kernels) fn q4_k_rows(
        rows: &[&[BlockQ4K]; SUPER_ROWS],
        a: &[&[BlockQ8K]],
        out: &mut [[f32; SUPER_ROWS]],
    ) {
        match even(rows, a, out.len()) {
            // SAFETY: only reachable through the AVX-512 VNNI table, built after detecting
            // avx512f/bw/vl/vnni; every row and vector holds `n` blocks, and `out` one entry
            // per vector (`even`).
            Some(n) => unsafe { q4_k_rows_512(rows, n, a, out) },
            None => crate::kernels::super_rows_by_pair(rows, a, out, q4_k::dot_q8_k),
        }
    }

    pub(in crate::kernels) fn q6_k_rows(
        rows: &[&[BlockQ6K]; SUPER_ROWS],
        a: &[&[BlockQ8K]],
        out: &mut [[f32; SUPER_ROWS]],
    ) {
        match even(rows, a, out.len()) {
            // SAFETY: as above.
            Some(n) => unsafe { q6_k_rows_512(rows, n, a, out) },
            None => crate::kernels::super_rows_by_pair(rows, a, out, q6_k::dot_q8_k),
        }
    }
}

const _: () = assert!(QK_K == 256);

//! The Q6_K row tile (see [`super`]).

use core::arch::x86_64::*;

use super::{f16x8, pair_sums, rows_by_tile, transpose8, transpose_dwords, PASS};
use crate::kernels::SUPER_ROWS;
use crate::quant::q6_k::{self, BlockQ6K};
use crate::quant::q8_k::{self, BlockQ8K};

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
/// As [`super::q4_k_rows_512`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,f16c")]
pub(super) unsafe fn q6_k_rows_512(
    rows: &[&[BlockQ6K]; SUPER_ROWS],
    n_blocks: usize,
    a: &[&[BlockQ8K]],
    out: &mut [[f32; SUPER_ROWS]],
) {
    let mut tile = Q6KTile::ZERO;
    rows_by_tile(rows, (n_blocks, a), out, &mut tile, repack_q6_k, q6_k_terms);
}

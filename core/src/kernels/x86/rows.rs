//! Decode's Q8_0 product: a chunk of weight rows against one activation vector, [`ROWS`]
//! rows per pass ([`crate::kernels::RowsFn`]), on AVX-512 VL + VNNI and on AVX2.
//!
//! The one-row kernel adds each block's term to one running sum, so a row is a chain of
//! dependent additions; four rows side by side are four independent chains, added in one
//! register (lane `i` = row `i`), and each activation block is loaded once for the four.
//! Each row prefetches (into L2) the blocks the next pass reads in its row: four rows read
//! side by side are four short streams, which the hardware prefetcher does not follow from
//! one row to the next (without it, decode ran at half the one-row kernel's speed).
//!
//! A [`Form`] is one table's block product and scale gathering:
//! - [`Vnni512`]: the weights are `vpdpbusd`'s unsigned operand, biased: `Σ (w ⊕ 0x80) · a =
//!   Σ w · a + 128 · Σ a`, exact for every byte, and `128 · Σ a` depends on the activation
//!   only, so it is computed once per call for every row (one `vpxor` + one `vpdpbusd` per
//!   weight block, where the sign transfer takes three ops); the eight scales of a pass come
//!   from two `vpermt2w`;
//! - [`Avx2`]: the sign transfer of the one-row AVX2 kernel (`maddubs` + `madd`, exact for
//!   activations in −127..=127, which is all Q8_0 quantisation writes).
//!
//! Each row's terms are the scalar reference's, added in block order from 0 and then to
//! `out[r]`: bit-identical to `q8_0::dot_q8_0_scaled`.
#![allow(unsafe_code)]

use core::arch::x86_64::*;

use super::{add_lanes_in_order, hsum8_epi32, hsum_epi32};
use crate::quant::q8_0::{self, BlockQ8_0};
use crate::quant::{block_scale, ACT_CHUNK_BLOCKS};

/// Rows per pass: four independent sums. Eight (one `ymm` of sums, an 8 × 8 transpose) measured
/// the same on Zen 4: the per-row block work, not the addition chain, bounds the pass.
const ROWS: usize = 4;

/// One table's instructions for the kernel.
trait Form {
    /// One weight block (`wp`) times an activation block's 32 values `qa` as 8 `i32` lanes
    /// summing to `Σ w · a` plus the block's [`Corrections`] entry (exact).
    ///
    /// # Safety
    /// The CPU has the form's features; `wp` points at a 34-byte block.
    unsafe fn lanes(wp: *const u8, qa: __m256i) -> __m256i;

    /// The f16 scales of the eight blocks from `p` as `f32`, block `j` in lane `j`.
    ///
    /// # Safety
    /// The CPU has the form's features; `p` points at eight blocks.
    unsafe fn scales8(p: *const u8) -> __m256;

    /// What [`Form::lanes`] adds to each of `a`'s blocks (at most [`ACT_CHUNK_BLOCKS`]).
    ///
    /// # Safety
    /// The CPU has the form's features.
    unsafe fn corrections(a: &[BlockQ8_0]) -> Corrections;

    /// `dot_q8_0_scaled(w, a, s)` by the table's one-row kernel.
    ///
    /// # Safety
    /// The CPU has the form's features.
    unsafe fn one_row(w: &[BlockQ8_0], a: &[BlockQ8_0], s: &[f32]) -> f32;
}

/// AVX-512 F, BW, VL and VNNI: biased weights.
struct Vnni512;

impl Form for Vnni512 {
    #[inline(always)]
    unsafe fn lanes(wp: *const u8, qa: __m256i) -> __m256i {
        // SAFETY: the caller's contract; the values are at 2..34, the load unaligned.
        let w = _mm256_xor_si256(_mm256_loadu_si256(wp.add(2).cast()), _mm256_set1_epi8(-128));
        _mm256_dpbusd_epi32(_mm256_setzero_si256(), w, qa)
    }

    #[inline(always)]
    unsafe fn scales8(p: *const u8) -> __m256 {
        scales8_512(p)
    }

    #[inline(always)]
    unsafe fn corrections(a: &[BlockQ8_0]) -> Corrections {
        let mut c = [0i32; ACT_CHUNK_BLOCKS];
        let bias = _mm256_set1_epi8(-128);
        for (cj, ab) in c.iter_mut().zip(a) {
            // SAFETY: a block is 34 bytes, its values at 2..34; the load is unaligned.
            let qa = _mm256_loadu_si256(ab.as_ptr().add(2).cast());
            *cj = hsum_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), bias, qa));
        }
        Corrections(c)
    }

    #[inline(always)]
    unsafe fn one_row(w: &[BlockQ8_0], a: &[BlockQ8_0], s: &[f32]) -> f32 {
        super::vnni::vl::dot_q8_0(0.0, w, a, Some(s))
    }
}

/// AVX2: the sign transfer, no corrections.
struct Avx2;

impl Form for Avx2 {
    #[inline(always)]
    unsafe fn lanes(wp: *const u8, qa: __m256i) -> __m256i {
        // SAFETY: the caller's contract; the values are at 2..34, the load unaligned.
        let qw = _mm256_loadu_si256(wp.add(2).cast());
        let pairs = _mm256_maddubs_epi16(_mm256_abs_epi8(qw), _mm256_sign_epi8(qa, qw));
        _mm256_madd_epi16(pairs, _mm256_set1_epi16(1))
    }

    #[inline(always)]
    unsafe fn scales8(p: *const u8) -> __m256 {
        // SAFETY: the caller's eight blocks.
        super::scales8(&*p.cast::<[BlockQ8_0; 8]>())
    }

    #[inline(always)]
    unsafe fn corrections(_: &[BlockQ8_0]) -> Corrections {
        Corrections([0; ACT_CHUNK_BLOCKS])
    }

    #[inline(always)]
    unsafe fn one_row(w: &[BlockQ8_0], a: &[BlockQ8_0], s: &[f32]) -> f32 {
        super::dot_q8_0_avx2(0.0, w, a, Some(s))
    }
}

/// The activation's side of [`Form::lanes`], computed once per call: `128 · Σ a` per block
/// ([`Vnni512`]), or 0 ([`Avx2`]).
struct Corrections([i32; ACT_CHUNK_BLOCKS]);

impl Corrections {
    /// Eight blocks' corrections from block `8 g`, block `j` in lane `j`.
    #[inline(always)]
    fn eight(&self, g: usize) -> __m256i {
        let c = self.0.get(8 * g..).and_then(|c| c.first_chunk::<8>()).copied().unwrap_or([0; 8]);
        // SAFETY: `c` is eight i32; the load is unaligned. (SSE2 is x86_64's baseline; AVX
        // is enabled in every caller.)
        unsafe { _mm256_loadu_si256(c.as_ptr().cast()) }
    }
}

/// The 32 values of each of eight blocks from `p`, loaded once for every row of a pass.
///
/// # Safety
/// The CPU supports AVX; `p` points at eight blocks.
#[inline(always)]
unsafe fn values8(p: *const BlockQ8_0) -> [__m256i; 8] {
    let mut q = [_mm256_setzero_si256(); 8];
    for (j, qj) in q.iter_mut().enumerate() {
        // SAFETY: `j < 8`; a block's values are at 2..34, the load unaligned.
        *qj = _mm256_loadu_si256(p.add(j).cast::<u8>().add(2).cast());
    }
    q
}

/// Asks for the cache lines of eight blocks from `p` (never faults: a hint).
///
/// # Safety
/// The CPU supports SSE (every x86_64 does).
#[inline(always)]
unsafe fn prefetch_group(p: *const u8) {
    for line in 0..5 {
        _mm_prefetch::<_MM_HINT_T1>(p.wrapping_add(64 * line).cast::<i8>());
    }
}

/// For lane `i < 8`, the word index of block `i`'s scale (at byte `34 i`) in a 128-byte
/// two-register table: the first 128 bytes of eight blocks for `i < 4`, the next 128 for the
/// rest (`(34 i mod 128) / 2`). The other lanes are unused.
const SCALE_WORDS: [u16; 32] = {
    let mut w = [0u16; 32];
    let [w0, w1, w2, w3, w4, w5, w6, w7, ..] = &mut w;
    (*w0, *w1, *w2, *w3, *w4, *w5, *w6, *w7) = (0, 17, 34, 51, 4, 21, 38, 55);
    w
};

/// The f16 scales of eight consecutive blocks from `p` as `f32`, block `j` in lane `j`:
/// four 64-byte loads and two word permutes (the blocks' first 256 bytes hold all eight).
///
/// # Safety
/// The CPU supports AVX-512 F and BW and F16C; `p` points at eight blocks.
#[inline(always)]
unsafe fn scales8_512(p: *const u8) -> __m256 {
    // SAFETY: eight blocks are 272 bytes; the loads (unaligned) cover the first 256.
    let (z0, z1) = (_mm512_loadu_si512(p.cast()), _mm512_loadu_si512(p.add(64).cast()));
    let (z2, z3) = (_mm512_loadu_si512(p.add(128).cast()), _mm512_loadu_si512(p.add(192).cast()));
    let idx = _mm512_loadu_si512(SCALE_WORDS.as_ptr().cast());
    let low = _mm512_permutex2var_epi16(z0, idx, z1);
    let high = _mm512_permutex2var_epi16(z2, idx, z3);
    let words = _mm512_mask_blend_epi16(0xF0, low, high);
    _mm256_cvtph_ps(_mm512_castsi512_si128(words))
}

/// One row's terms `(d_w · d_a) · isum` for the eight blocks from `wg` (against the activation
/// blocks' values `qa`, scales `da` and corrections `c`), rounded as the reference rounds
/// them, after asking for the blocks `ahead` bytes on.
///
/// # Safety
/// The CPU has `F`'s features; `wg` holds eight blocks.
#[inline(always)]
unsafe fn group_terms<F: Form>(
    wg: *const BlockQ8_0,
    qa: &[__m256i; 8],
    da: __m256,
    c: __m256i,
    ahead: usize,
) -> __m256 {
    prefetch_group(wg.cast::<u8>().wrapping_add(ahead));
    let mut lanes = [_mm256_setzero_si256(); 8];
    for (j, (l, q)) in lanes.iter_mut().zip(qa).enumerate() {
        // SAFETY: `j < 8`: the caller's eight blocks.
        *l = F::lanes(wg.add(j).cast(), *q);
    }
    let isum = _mm256_sub_epi32(hsum8_epi32(lanes), c);
    let dw = F::scales8(wg.cast());
    // |isum| < 2^24: the conversion is exact.
    _mm256_mul_ps(_mm256_mul_ps(dw, da), _mm256_cvtepi32_ps(isum))
}

/// `sums[i]` plus row `i`'s terms `t[i]`, lane 0 to 7, one addition at a time, the four rows
/// side by side in one register (lane `i` = row `i`): each row's additions are
/// [`add_lanes_in_order`]'s, so the same bits, in one chain of 8 for four rows.
///
/// # Safety
/// The CPU supports AVX.
#[inline(always)]
pub(super) unsafe fn add_columns_in_order(sums: __m128, t: [__m256; ROWS]) -> __m128 {
    let [t0, t1, t2, t3] = t;
    // Per 128-bit half: (t0[k], t1[k], t0[k+1], t1[k+1]), the same for t2, t3.
    let (l01, h01) = (_mm256_unpacklo_ps(t0, t1), _mm256_unpackhi_ps(t0, t1));
    let (l23, h23) = (_mm256_unpacklo_ps(t2, t3), _mm256_unpackhi_ps(t2, t3));
    // Column k (low half) and k + 4 (high half), rows 0..4 in lanes 0..4.
    let cols = [
        _mm256_shuffle_ps::<0x44>(l01, l23),
        _mm256_shuffle_ps::<0xEE>(l01, l23),
        _mm256_shuffle_ps::<0x44>(h01, h23),
        _mm256_shuffle_ps::<0xEE>(h01, h23),
    ];
    let mut s = sums;
    for c in cols {
        s = _mm_add_ps(s, _mm256_castps256_ps128(c));
    }
    for c in cols {
        s = _mm_add_ps(s, _mm256_extractf128_ps::<1>(c));
    }
    s
}

/// [`ROWS`] rows' sums over `n` blocks (`w[i]` row `i`'s first block; each row holds `n`
/// blocks, `a` and `d_a` too, `n <= ACT_CHUNK_BLOCKS`), each from 0 in block order.
///
/// # Safety
/// The CPU has `F`'s features; the pointers hold `n` blocks.
#[inline(always)]
unsafe fn pass4<F: Form>(
    w: [*const BlockQ8_0; ROWS],
    a: *const BlockQ8_0,
    d_a: *const f32,
    n: usize,
    corr: &Corrections,
    ahead: usize,
) -> [f32; ROWS] {
    let mut sums = _mm_setzero_ps();
    let groups = n / 8;
    for g in 0..groups {
        // SAFETY: `8 g + 8 <= n` blocks on every side.
        let (qa, da, c) = (values8(a.add(8 * g)), _mm256_loadu_ps(d_a.add(8 * g)), corr.eight(g));
        // A loop, not `map`: a closure would not take this function's target features.
        let mut t = [_mm256_setzero_ps(); ROWS];
        for (ti, wr) in t.iter_mut().zip(w) {
            *ti = group_terms::<F>(wr.add(8 * g), &qa, da, c, ahead);
        }
        sums = add_columns_in_order(sums, t);
    }
    let mut out = [0.0f32; ROWS];
    // SAFETY: `out` holds four f32; the store is unaligned.
    _mm_storeu_ps(out.as_mut_ptr(), sums);
    tail::<F, ROWS>(out, w, a, d_a, 8 * groups, n, corr)
}

/// One row's sum over `n` blocks, as [`pass4`] sums each of its rows.
///
/// # Safety
/// As [`pass4`], for the one row `w`.
#[inline(always)]
unsafe fn pass1<F: Form>(
    w: *const BlockQ8_0,
    a: *const BlockQ8_0,
    d_a: *const f32,
    n: usize,
    corr: &Corrections,
    ahead: usize,
) -> f32 {
    let mut sum = 0.0f32;
    let groups = n / 8;
    for g in 0..groups {
        // SAFETY: `8 g + 8 <= n` blocks on every side.
        let (qa, da, c) = (values8(a.add(8 * g)), _mm256_loadu_ps(d_a.add(8 * g)), corr.eight(g));
        sum = add_lanes_in_order(sum, group_terms::<F>(w.add(8 * g), &qa, da, c, ahead));
    }
    let [s] = tail::<F, 1>([sum], [w], a, d_a, 8 * groups, n, corr);
    s
}

/// `sums[i]` plus row `i`'s terms of blocks `from..n`, one block at a time.
///
/// # Safety
/// As [`pass4`].
#[inline(always)]
unsafe fn tail<F: Form, const R: usize>(
    mut sums: [f32; R],
    w: [*const BlockQ8_0; R],
    a: *const BlockQ8_0,
    d_a: *const f32,
    from: usize,
    n: usize,
    corr: &Corrections,
) -> [f32; R] {
    for j in from..n {
        // SAFETY: `j < n`.
        let (ab, da) = (a.add(j), *d_a.add(j));
        let c = corr.0.get(j).copied().unwrap_or(0);
        for (sum, wr) in sums.iter_mut().zip(w) {
            // SAFETY: as above.
            let wb = &*wr.add(j);
            let qa = _mm256_loadu_si256(ab.cast::<u8>().add(2).cast());
            let isum = hsum_epi32(F::lanes(wb.as_ptr(), qa)) - c;
            #[allow(clippy::cast_precision_loss)] // |isum| < 2^24: exact
            let term = (block_scale(wb) * da) * isum as f32;
            *sum += term;
        }
    }
    sums
}

/// [`crate::kernels::RowsFn`]: `out[r] += dot_q8_0_scaled(rows[r · stride ..][.. n], a,
/// a_scales)` for every `r < out.len()` whose blocks `rows` holds, `n = min(a.len(),
/// a_scales.len())`, bit for bit. Chunks longer than [`ACT_CHUNK_BLOCKS`] (which `matvec`
/// never passes) take the one-row kernel per row.
///
/// Always inlined, with no target features of its own: each entry below compiles it with
/// its form's.
///
/// # Safety
/// The CPU has `F`'s features.
#[inline(always)]
unsafe fn rows_with<F: Form>(
    rows: &[BlockQ8_0],
    stride: usize,
    a: &[BlockQ8_0],
    a_scales: &[f32],
    out: &mut [f32],
) {
    let n = a.len().min(a_scales.len());
    let row = |r: usize| rows.get(r.checked_mul(stride)?..)?.get(..n);
    if n > ACT_CHUNK_BLOCKS {
        for (r, o) in out.iter_mut().enumerate() {
            if let Some(w) = row(r) {
                *o += F::one_row(w, a, a_scales);
            }
        }
        return;
    }
    let corr = F::corrections(a.get(..n).unwrap_or(&[]));
    let (ap, dp) = (a.as_ptr(), a_scales.as_ptr());
    // Each row prefetches the same blocks of the row a pass later: what the next pass reads
    // first (the hardware's stream prefetch follows each row to its end, not to the next).
    let ahead = stride.wrapping_mul(ROWS * q8_0::BLOCK_BYTES);
    let mut quads = out.chunks_exact_mut(ROWS);
    let mut r0 = 0;
    for quad in &mut quads {
        let w: [Option<&[BlockQ8_0]>; ROWS] = core::array::from_fn(|i| row(r0 + i));
        if w.iter().all(Option::is_some) {
            let w = w.map(|s| s.map_or(core::ptr::null(), <[BlockQ8_0]>::as_ptr));
            // SAFETY: each row holds `n` blocks, `a` and `a_scales` at least `n`.
            let sums = pass4::<F>(w, ap, dp, n, &corr, ahead);
            for (o, s) in quad.iter_mut().zip(sums) {
                *o += s;
            }
        } else {
            for (i, o) in quad.iter_mut().enumerate() {
                if let Some(w) = row(r0 + i) {
                    // SAFETY: as above.
                    let s = pass1::<F>(w.as_ptr(), ap, dp, n, &corr, ahead);
                    *o += s;
                }
            }
        }
        r0 += ROWS;
    }
    for (i, o) in quads.into_remainder().iter_mut().enumerate() {
        if let Some(w) = row(r0 + i) {
            // SAFETY: as above.
            let s = pass1::<F>(w.as_ptr(), ap, dp, n, &corr, ahead);
            *o += s;
        }
    }
}

/// [`rows_with`] on AVX-512.
///
/// # Safety
/// The CPU supports AVX2, F16C, AVX-512 F, BW, VL and VNNI.
#[target_feature(enable = "avx2,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn dot_q8_0_rows_512(
    rows: &[BlockQ8_0],
    stride: usize,
    a: &[BlockQ8_0],
    a_scales: &[f32],
    out: &mut [f32],
) {
    rows_with::<Vnni512>(rows, stride, a, a_scales, out);
}

/// [`rows_with`] on AVX2.
///
/// # Safety
/// The CPU supports AVX2 and F16C.
#[target_feature(enable = "avx2,f16c")]
unsafe fn dot_q8_0_rows_avx2(
    rows: &[BlockQ8_0],
    stride: usize,
    a: &[BlockQ8_0],
    a_scales: &[f32],
    out: &mut [f32],
) {
    rows_with::<Avx2>(rows, stride, a, a_scales, out);
}

/// The safe entry points, each installed only in tables built after detecting its features.
pub(in crate::kernels) mod entry {
    use super::BlockQ8_0;

    pub(in crate::kernels) fn dot_q8_0_rows_512(
        rows: &[BlockQ8_0],
        stride: usize,
        a: &[BlockQ8_0],
        a_scales: &[f32],
        out: &mut [f32],
    ) {
        // SAFETY: reachable only through the table built after detecting AVX-512 F, BW, VL
        // and VNNI on top of AVX2 and F16C (`Kernels::x86_vnni`).
        unsafe { super::dot_q8_0_rows_512(rows, stride, a, a_scales, out) }
    }

    pub(in crate::kernels) fn dot_q8_0_rows_avx2(
        rows: &[BlockQ8_0],
        stride: usize,
        a: &[BlockQ8_0],
        a_scales: &[f32],
        out: &mut [f32],
    ) {
        // SAFETY: reachable only through tables built after detecting AVX2 and F16C
        // (`Kernels::x86_avx2` and the tables built on it).
        unsafe { super::dot_q8_0_rows_avx2(rows, stride, a, a_scales, out) }
    }
}

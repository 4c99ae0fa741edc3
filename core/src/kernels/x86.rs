//! x86_64 AVX2 + FMA + F16C variants of the hot dot products, and the shared pieces of the
//! x86 kernels (horizontal sums, prefetch, the Q8_0 / Q4_0 block loops).
//!
//! `floats`: f32 / f16 rows and the row decoders · `groups`: packed groups · `attn256` /
//! `attn512`: attention over a tile of cached rows · `blocks`: the other block formats ·
//! `vnni`: AVX-512 VNNI and AVX-VNNI tables · `f16_tile`: F16 rows × vectors on AVX-512 VL ·
//! `entry`: the safe functions the tables hold.
//!
//! Every function here has a scalar reference in [`super::scalar`] or [`crate::quant`] and is
//! tested against it (`kernels::tests`). They are reachable only through [`super::Kernels`],
//! which installs them after the CPU features were detected (or compiled in).
#![allow(unsafe_code)]

use core::arch::x86_64::*;

mod attn256;
pub(in crate::kernels) mod attn512;
mod blocks;
pub(super) mod entry;
pub(in crate::kernels) mod f16_tile;
mod floats;
mod groups;
mod k_low;
#[cfg(feature = "block-formats")]
pub(in crate::kernels) mod krows;
#[cfg(feature = "block-formats")]
pub(in crate::kernels) mod ktile;
mod min_tile;
pub(in crate::kernels) mod rows;
pub(in crate::kernels) mod vnni;

use super::GROUP_TILE;
use crate::quant::group8::{Group8, GROUP_BYTES};
use crate::quant::{block_term, q4_0::BlockQ4_0, q8_0, q8_0::BlockQ8_0};

/// Sum of the 8 lanes.
///
/// # Safety
/// The CPU supports AVX.
#[inline]
#[target_feature(enable = "avx")]
unsafe fn hsum_ps(v: __m256) -> f32 {
    let lo = _mm256_castps256_ps128(v);
    let hi = _mm256_extractf128_ps::<1>(v);
    let s = _mm_add_ps(lo, hi);
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s));
    _mm_cvtss_f32(s)
}

/// Sum of the 8 `i32` lanes (exact).
///
/// # Safety
/// The CPU supports AVX2.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn hsum_epi32(v: __m256i) -> i32 {
    let lo = _mm256_castsi256_si128(v);
    let hi = _mm256_extracti128_si256::<1>(v);
    let s = _mm_add_epi32(lo, hi);
    let s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01>(s));
    _mm_cvtsi128_si32(s)
}

/// One Q8_0 × Q8_0 block as 8 `i32` lanes summing to the block's exact dot product: `maddubs`
/// wants an unsigned operand, so `|x| · sign(x)·y = x·y` (exact for activations in
/// −127..=127, which is all Q8_0 quantisation writes; −128 would flip sign).
///
/// # Safety
/// The CPU supports AVX2.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn q8_0_lanes(wb: &BlockQ8_0, ab: &BlockQ8_0) -> __m256i {
    // SAFETY: each block is 34 bytes; bytes 2..34 are the 32 values.
    let qx = _mm256_loadu_si256(wb.as_ptr().add(2).cast::<__m256i>());
    let qy = _mm256_loadu_si256(ab.as_ptr().add(2).cast::<__m256i>());
    let pairs = _mm256_maddubs_epi16(_mm256_abs_epi8(qx), _mm256_sign_epi8(qy, qx));
    _mm256_madd_epi16(pairs, _mm256_set1_epi16(1))
}

/// One Q4_0 × Q8_0 block as 8 `i32` lanes, exact for every input byte: the 16 nibble bytes
/// are spread to 32 lanes in element order (low nibbles are elements 0..16, high nibbles
/// 16..32), then `Σ (q − 8)·y` is `maddubs(q, y) − maddubs(8, y)` per `i16` pair
/// (|pair| ≤ 2 · 15 · 128, no saturation), widened with `madd`.
///
/// # Safety
/// The CPU supports AVX2.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn q4_0_lanes(wb: &BlockQ4_0, ab: &BlockQ8_0) -> __m256i {
    // SAFETY: a Q4_0 block is 18 bytes (nibbles at 2..18), a Q8_0 block 34 (values at 2..34).
    let nib = _mm_loadu_si128(wb.as_ptr().add(2).cast::<__m128i>());
    let qy = _mm256_loadu_si256(ab.as_ptr().add(2).cast::<__m256i>());
    let spread = _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(nib), _mm_srli_epi16(nib, 4));
    let q = _mm256_and_si256(spread, _mm256_set1_epi8(0x0f));
    let pairs = _mm256_sub_epi16(
        _mm256_maddubs_epi16(q, qy),
        _mm256_maddubs_epi16(_mm256_set1_epi8(8), qy),
    );
    _mm256_madd_epi16(pairs, _mm256_set1_epi16(1))
}

/// Eight blocks' lane vectors to their eight sums, block `j` in lane `j` (exact).
///
/// # Safety
/// The CPU supports AVX2.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn hsum8_epi32(v: [__m256i; 8]) -> __m256i {
    let [v0, v1, v2, v3, v4, v5, v6, v7] = v;
    // Per 128-bit half: [v0, v1, v2, v3] partial sums, then the same for v4..v7.
    let s0123 = _mm256_hadd_epi32(_mm256_hadd_epi32(v0, v1), _mm256_hadd_epi32(v2, v3));
    let s4567 = _mm256_hadd_epi32(_mm256_hadd_epi32(v4, v5), _mm256_hadd_epi32(v6, v7));
    // [s0123.lo | s4567.hi] + [s0123.hi | s4567.lo]: one lane permute instead of two.
    let straight = _mm256_blend_epi32::<0xf0>(s0123, s4567);
    // `vperm2i128` is 8 micro-ops on Zen 1; an extract and an insert are 3.
    let crossed = _mm256_inserti128_si256::<1>(
        _mm256_castsi128_si256(_mm256_extracti128_si256::<1>(s0123)),
        _mm256_castsi256_si128(s4567),
    );
    _mm256_add_epi32(straight, crossed)
}

/// The f16 scales of eight blocks as `f32` (exact conversions). The eight halves are packed in
/// general-purpose registers (no store-to-load round trip), then converted at once.
///
/// # Safety
/// The CPU supports AVX and F16C.
#[inline]
#[target_feature(enable = "avx,f16c")]
unsafe fn scales8<const B: usize>(blocks: &[[u8; B]; 8]) -> __m256 {
    let d = |j: usize| {
        blocks
            .get(j)
            .and_then(|b| b.first_chunk::<2>())
            .map_or(0, |x| u64::from(u16::from_le_bytes(*x)))
    };
    let lo = d(0) | d(1) << 16 | d(2) << 32 | d(3) << 48;
    let hi = d(4) | d(5) << 16 | d(6) << 32 | d(7) << 48;
    #[allow(clippy::cast_possible_wrap)] // bit patterns
    _mm256_cvtph_ps(_mm_set_epi64x(hi as i64, lo as i64))
}

/// Asks for the cache lines `PREFETCH_BYTES` past `p` that the kernel reads one chunk later
/// (eight `B`-byte blocks), so rows streamed from DRAM arrive before the kernel reaches them. A prefetch never faults, and
/// the address is only formed with wrapping arithmetic, so a hint past the end of the weights
/// is harmless.
///
/// # Safety
/// The CPU supports SSE (every x86_64 does).
#[inline]
#[target_feature(enable = "sse")]
pub(super) unsafe fn prefetch_ahead<const B: usize>(p: *const u8) {
    let mut off = PREFETCH_BYTES;
    while off < PREFETCH_BYTES + 8 * B + 64 {
        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(off).cast::<i8>());
        off += 64;
    }
}

/// How far ahead of the kernel weights are prefetched.
const PREFETCH_BYTES: usize = 1024;

/// `sum + Σ (d_w · d_a) · isum` over blocks, in block order and with the scalar reference's rounding
/// (so bit-identical to it): eight blocks' integer sums, scales and products are computed in
/// vectors, then added to the running sum one lane at a time. The last `len % 8` blocks are
/// summed one at a time (a horizontal sum and a scalar term each: cheaper on Zen 1 than one
/// padded 8-block reduction, measured on the 4-block rows of the absorbed `W_UK`).
///
/// `a_scales`, when given, holds the activation blocks' scales as `f32` (`a_scales[i]` for
/// `a[i]`, converted once per vector by the caller); otherwise they are converted here, eight
/// at a time. Either way the terms and their order are the same.
///
/// Always inlined, with no target features of its own, so that it takes its caller's: the
/// VNNI tables pass `lanes` that need more than AVX2, and only a copy compiled inside their
/// functions can inline them (an out-of-line call per block cost a third of the kernel).
///
/// # Safety
/// The CPU supports AVX2 and F16C, and whatever `lanes` needs.
#[inline(always)]
pub(super) unsafe fn dot_blocks<const B: usize>(
    mut sum: f32,
    w: &[[u8; B]],
    a: &[BlockQ8_0],
    a_scales: Option<&[f32]>,
    lanes: unsafe fn(&[u8; B], &BlockQ8_0) -> __m256i,
) -> f32 {
    let n = w.len().min(a.len()).min(a_scales.map_or(usize::MAX, <[f32]>::len));
    let (w8, w_tail) = w.get(..n).unwrap_or(&[]).as_chunks::<8>();
    let (a8, a_tail) = a.get(..n).unwrap_or(&[]).as_chunks::<8>();
    let s8 = a_scales.map(|s| s.get(..n).unwrap_or(&[]).as_chunks::<8>().0);
    for (i, (wc, ac)) in w8.iter().zip(a8).enumerate() {
        prefetch_ahead::<B>(wc.as_ptr().cast::<u8>());
        let da = match s8.and_then(|s| s.get(i)) {
            // SAFETY: `sc` is 8 floats.
            Some(sc) => _mm256_loadu_ps(sc.as_ptr()),
            None => scales8(ac),
        };
        sum = add_lanes_in_order(sum, terms8(wc, ac, da, lanes));
    }
    for (wb, ab) in w_tail.iter().zip(a_tail) {
        sum += block_term(wb, ab, hsum_epi32(lanes(wb, ab)));
    }
    sum
}

/// The f16 scales of eight Q8_0 activation blocks as `f32`, block `t` in lane `t` (one F16C
/// conversion; exact).
///
/// # Safety
/// The CPU supports AVX and F16C.
#[inline(always)]
pub(super) unsafe fn act_scales8(ab: [&BlockQ8_0; GROUP_TILE]) -> __m256 {
    let d = |x: &[u8]| x.first_chunk::<2>().map_or(0, |h| u64::from(u16::from_le_bytes(*h)));
    let [a0, a1, a2, a3, a4, a5, a6, a7] = ab;
    let lo = d(a0) | d(a1) << 16 | d(a2) << 32 | d(a3) << 48;
    let hi = d(a4) | d(a5) << 16 | d(a6) << 32 | d(a7) << 48;
    #[allow(clippy::cast_possible_wrap)] // bit patterns
    _mm256_cvtph_ps(_mm_set_epi64x(hi as i64, lo as i64))
}

/// [`dot_blocks`] of one weight row against [`GROUP_TILE`] activation vectors: lane `t` is
/// `sums[t] + Σ_b (d_w · d_{a_t}) · isum`, the terms added one block at a time in block order,
/// so bit-identical to `dot_blocks(sums[t], w, a[t], None, lanes)` (whose eight-block batches
/// add their terms to the running sum lane by lane, in the same order). Per block, the weight
/// block is read once for the eight vectors, their eight integer sums are one horizontal
/// reduction and their eight terms one multiply: the batched product over rows too short for
/// packed groups (the absorbed `W_UK`, small models) and the blocks after a row's groups.
///
/// Always inlined, with no target features of its own (as [`dot_blocks`]).
///
/// # Safety
/// The CPU supports AVX2 and F16C, and whatever `lanes` needs; every `a[t]` holds at least
/// `w.len()` blocks.
#[inline(always)]
pub(super) unsafe fn dot_blocks_tile<const B: usize>(
    sums: [f32; GROUP_TILE],
    w: &[[u8; B]],
    a: &[&[BlockQ8_0]; GROUP_TILE],
    lanes: unsafe fn(&[u8; B], &BlockQ8_0) -> __m256i,
) -> [f32; GROUP_TILE] {
    const _: () = assert!(GROUP_TILE == 8, "one f32 lane per vector of the tile");
    let mut acc = _mm256_loadu_ps(sums.as_ptr());
    let bases: [*const BlockQ8_0; GROUP_TILE] = a.map(<[BlockQ8_0]>::as_ptr);
    for (b, wb) in w.iter().enumerate() {
        // SAFETY: `b < w.len() <= a[t].len()` (the caller's contract).
        let ab: [&BlockQ8_0; GROUP_TILE] = bases.map(|p| &*p.add(b));
        let isum = _mm256_cvtepi32_ps(hsum8_epi32(ab.map(|x| lanes(wb, x)))); // exact, < 2^24
        let da = act_scales8(ab);
        let dw_bits = wb.first_chunk::<2>().map_or(0, |h| i16::from_le_bytes(*h));
        let dw = _mm256_cvtph_ps(_mm_set1_epi16(dw_bits));
        acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_mul_ps(dw, da), isum));
    }
    let mut out = [0.0f32; GROUP_TILE];
    // SAFETY: `out` holds eight f32; the store is unaligned.
    _mm256_storeu_ps(out.as_mut_ptr(), acc);
    out
}

/// The terms `(d_w · d_a) · isum` of eight blocks (activation scales `da`), block `j` in lane
/// `j`, each rounded as `quant::block_term` rounds it.
///
/// # Safety
/// The CPU supports AVX2 and F16C, and whatever `lanes` needs (inlined as [`dot_blocks`] is).
#[inline(always)]
unsafe fn terms8<const B: usize>(
    wc: &[[u8; B]; 8],
    ac: &[BlockQ8_0; 8],
    da: __m256,
    lanes: unsafe fn(&[u8; B], &BlockQ8_0) -> __m256i,
) -> __m256 {
    let mut v = [_mm256_setzero_si256(); 8];
    for ((vi, wb), ab) in v.iter_mut().zip(wc).zip(ac) {
        *vi = lanes(wb, ab);
    }
    let isum = _mm256_cvtepi32_ps(hsum8_epi32(v)); // |isum| < 2^24: exact
    _mm256_mul_ps(_mm256_mul_ps(scales8(wc), da), isum)
}

/// `sum + v[0] + v[1] + … + v[7]`, added one lane at a time in lane order (a scalar loop's
/// rounding), with the lanes moved by register shuffles.
///
/// # Safety
/// The CPU supports AVX.
#[inline]
#[target_feature(enable = "avx")]
pub(super) unsafe fn add_lanes_in_order(sum: f32, v: __m256) -> f32 {
    let mut s = _mm_set_ss(sum);
    for half in [_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v)] {
        s = _mm_add_ss(s, half);
        s = _mm_add_ss(s, _mm_movehdup_ps(half));
        s = _mm_add_ss(s, _mm_movehl_ps(half, half));
        s = _mm_add_ss(s, _mm_shuffle_ps::<0b11>(half, half));
    }
    _mm_cvtss_f32(s)
}

/// `sum` + Q8_0 × Q8_0, bit-identical to the scalar reference (activations in −127..=127);
/// `a_scales` as [`dot_blocks`] takes them. Every entry point goes through this function (or
/// another with AVX2 enabled), never through `dot_blocks` directly: an always-inlined body in
/// a function without target features cannot inline its AVX2 helpers (measured: decode at
/// 57% speed).
///
/// # Safety
/// The CPU supports AVX2 and F16C.
#[target_feature(enable = "avx2,f16c")]
unsafe fn dot_q8_0_avx2(
    sum: f32,
    w: &[BlockQ8_0],
    a: &[BlockQ8_0],
    a_scales: Option<&[f32]>,
) -> f32 {
    dot_blocks(sum, w, a, a_scales, q8_0_lanes)
}

/// `sum` + Q4_0 weights × Q8_0 activations (ggml's `vec_dot_q4_0_q8_0`), bit-identical to the scalar
/// reference for every input byte.
///
/// # Safety
/// The CPU supports AVX2 and F16C.
#[target_feature(enable = "avx2,f16c")]
unsafe fn dot_q4_0_avx2(
    sum: f32,
    w: &[BlockQ4_0],
    a: &[BlockQ8_0],
    a_scales: Option<&[f32]>,
) -> f32 {
    dot_blocks(sum, w, a, a_scales, q4_0_lanes)
}

/// [`dot_q8_0_avx2`] for [`GROUP_TILE`] vectors at once ([`dot_blocks_tile`]).
///
/// # Safety
/// The CPU supports AVX2 and F16C; every `a[t]` holds at least `w.len()` blocks.
#[target_feature(enable = "avx2,f16c")]
unsafe fn dot_q8_0_tile_avx2(
    sums: [f32; GROUP_TILE],
    w: &[BlockQ8_0],
    a: &[&[BlockQ8_0]; GROUP_TILE],
) -> [f32; GROUP_TILE] {
    dot_blocks_tile(sums, w, a, q8_0_lanes)
}

/// [`dot_q4_0_avx2`] for [`GROUP_TILE`] vectors at once ([`dot_blocks_tile`]).
///
/// # Safety
/// The CPU supports AVX2 and F16C; every `a[t]` holds at least `w.len()` blocks.
#[target_feature(enable = "avx2,f16c")]
unsafe fn dot_q4_0_tile_avx2(
    sums: [f32; GROUP_TILE],
    w: &[BlockQ4_0],
    a: &[&[BlockQ8_0]; GROUP_TILE],
) -> [f32; GROUP_TILE] {
    dot_blocks_tile(sums, w, a, q4_0_lanes)
}

//! x86_64 AVX2 + FMA + F16C variants of the hot dot products.
//!
//! Every function here has a scalar reference in [`super::scalar`] or [`crate::quant`] and is
//! tested against it (`kernels::tests`). They are reachable only through [`super::Kernels`],
//! which installs them after the CPU features were detected (or compiled in).
#![allow(unsafe_code)]

use core::arch::x86_64::*;

pub(in crate::kernels) mod attn512;
mod blocks;
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

/// `Σ w[i]·x[i]`, `w` little-endian `f32` bytes.
///
/// # Safety
/// The CPU supports AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_f32_le_avx2(w: &[u8], x: &[f32]) -> f32 {
    let n = (w.len() / 4).min(x.len());
    let (wp, xp) = (w.as_ptr(), x.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    // SAFETY (all loads): i + 8 <= n, and n bounds both slices (in f32 units); loads are
    // unaligned.
    while i + 32 <= n {
        for (k, a) in acc.iter_mut().enumerate() {
            let j = i + 8 * k;
            let wv = _mm256_loadu_ps(wp.add(4 * j).cast::<f32>());
            *a = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xp.add(j)), *a);
        }
        i += 32;
    }
    while i + 8 <= n {
        let wv = _mm256_loadu_ps(wp.add(4 * i).cast::<f32>());
        acc[0] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xp.add(i)), acc[0]);
        i += 8;
    }
    let mut sum =
        hsum_ps(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    let (w_tail, _) = w.get(4 * i..4 * n).unwrap_or(&[]).as_chunks::<4>();
    for (b, xi) in w_tail.iter().zip(x.get(i..n).unwrap_or(&[])) {
        sum += f32::from_le_bytes(*b) * xi;
    }
    sum
}

/// `Σ w[i]·x[i]`, `w` little-endian IEEE `f16` bytes.
///
/// # Safety
/// The CPU supports AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_f16_le_avx2(w: &[u8], x: &[f32]) -> f32 {
    let n = (w.len() / 2).min(x.len());
    let (wp, xp) = (w.as_ptr(), x.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    // SAFETY (all loads): i + 8 <= n bounds both slices (16 bytes of halves, 8 floats).
    while i + 32 <= n {
        for (k, a) in acc.iter_mut().enumerate() {
            let j = i + 8 * k;
            let wv = _mm256_cvtph_ps(_mm_loadu_si128(wp.add(2 * j).cast::<__m128i>()));
            *a = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xp.add(j)), *a);
        }
        i += 32;
    }
    while i + 8 <= n {
        let wv = _mm256_cvtph_ps(_mm_loadu_si128(wp.add(2 * i).cast::<__m128i>()));
        acc[0] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xp.add(i)), acc[0]);
        i += 8;
    }
    let mut sum =
        hsum_ps(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    let (w_tail, _) = w.get(2 * i..2 * n).unwrap_or(&[]).as_chunks::<2>();
    for (b, xi) in w_tail.iter().zip(x.get(i..n).unwrap_or(&[])) {
        sum += super::scalar::f16_to_f32(*b) * xi;
    }
    sum
}

/// [`super::scalar::f16s_to_f32`] eight at a time with F16C (both conversions are exact; they
/// differ only in the payload of a signalling NaN, which F16C quiets).
///
/// # Safety
/// The CPU supports AVX and F16C.
#[target_feature(enable = "avx,f16c")]
unsafe fn f16s_to_f32_f16c(bytes: &[u8], out: &mut [f32]) {
    let n = (bytes.len() / 2).min(out.len());
    let (bp, op) = (bytes.as_ptr(), out.as_mut_ptr());
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n: 16 bytes of halves and 8 floats are in bounds.
        unsafe {
            let v = _mm256_cvtph_ps(_mm_loadu_si128(bp.add(2 * i).cast::<__m128i>()));
            _mm256_storeu_ps(op.add(i), v);
        }
        i += 8;
    }
    super::scalar::f16s_to_f32(
        bytes.get(2 * i..).unwrap_or(&[]),
        out.get_mut(i..n).unwrap_or(&mut []),
    );
}

/// [`crate::quant::q8_0::dequantize`]: per block, the 32 values widened to `f32` (exact), times
/// the scale, plus zero — the reference's operations.
///
/// # Safety
/// The CPU supports AVX2 and F16C.
#[target_feature(enable = "avx2,f16c")]
unsafe fn dequantize_q8_0_avx2(blocks: &[BlockQ8_0], out: &mut [f32]) {
    let whole = (out.len() / crate::quant::QK).min(blocks.len());
    for (block, o) in blocks.iter().zip(out.chunks_exact_mut(crate::quant::QK)).take(whole) {
        let d = _mm256_set1_ps(crate::quant::block_scale(block));
        let op = o.as_mut_ptr();
        for k in 0..4 {
            // SAFETY: bytes 2 + 8k .. 2 + 8k + 8 of the 34-byte block; 8 floats at 8k of 32.
            unsafe {
                let q = _mm_loadl_epi64(block.as_ptr().add(2 + 8 * k).cast::<__m128i>());
                let x = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
                let v = _mm256_add_ps(_mm256_setzero_ps(), _mm256_mul_ps(d, x));
                _mm256_storeu_ps(op.add(8 * k), v);
            }
        }
    }
    q8_0::dequantize(
        blocks.get(whole..).unwrap_or(&[]),
        out.get_mut(whole * crate::quant::QK..).unwrap_or(&mut []),
    );
}

/// `crate::quant::q8_compact::dequantize_compact` for whole 66-byte blocks (eight values at a time:
/// widened exactly, times the scale), the reference for a last, shorter block or output.
///
/// # Safety
/// The CPU supports AVX2 and F16C.
#[target_feature(enable = "avx2,f16c")]
unsafe fn dequantize_compact_avx2(bytes: &[u8], out: &mut [f32]) {
    use crate::quant::q8_compact::{Q8C_BLOCK_BYTES, Q8C_BLOCK_ELEMS};
    let whole = (bytes.len() / Q8C_BLOCK_BYTES).min(out.len() / Q8C_BLOCK_ELEMS);
    let blocks = bytes.chunks_exact(Q8C_BLOCK_BYTES).zip(out.chunks_exact_mut(Q8C_BLOCK_ELEMS));
    for (block, o) in blocks.take(whole) {
        let Some((scale, _)) = block.split_first_chunk::<2>() else { continue };
        let d = _mm256_set1_ps(super::scalar::f16_to_f32(*scale));
        let op = o.as_mut_ptr();
        for k in 0..Q8C_BLOCK_ELEMS / 8 {
            // SAFETY: bytes 2 + 8k .. 2 + 8k + 8 of the 66-byte block; 8 floats at 8k of 64.
            unsafe {
                let q = _mm_loadl_epi64(block.as_ptr().add(2 + 8 * k).cast::<__m128i>());
                let x = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
                _mm256_storeu_ps(op.add(8 * k), _mm256_mul_ps(d, x));
            }
        }
    }
    crate::quant::q8_compact::dequantize_compact(
        bytes.get(whole * Q8C_BLOCK_BYTES..).unwrap_or(&[]),
        out.get_mut(whole * Q8C_BLOCK_ELEMS..).unwrap_or(&mut []),
    );
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
        let d = |x: &[u8]| x.first_chunk::<2>().map_or(0, |h| u64::from(u16::from_le_bytes(*h)));
        let lo = d(ab[0]) | d(ab[1]) << 16 | d(ab[2]) << 32 | d(ab[3]) << 48;
        let hi = d(ab[4]) | d(ab[5]) << 16 | d(ab[6]) << 32 | d(ab[7]) << 48;
        #[allow(clippy::cast_possible_wrap)] // bit patterns
        let da = _mm256_cvtph_ps(_mm_set_epi64x(hi as i64, lo as i64));
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

/// Stores eight blocks' 32 values (`rows[j]`, as 8 four-byte words) and scales into a
/// [`Group8`]: the scales as `f32`, then the 8×8 word transpose (`qs[g][j]` = word `g` of
/// block `j`) by two rounds of unpacks and one of 128-bit lane moves.
///
/// # Safety
/// The CPU supports AVX2.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn store_group(rows: [__m256i; 8], scales: __m256, out: &mut Group8) {
    let [r0, r1, r2, r3, r4, r5, r6, r7] = rows;
    // Per 128-bit half: words (w0, w1 | w4, w5) and (w2, w3 | w6, w7) of two blocks.
    let (t0, t1) = (_mm256_unpacklo_epi32(r0, r1), _mm256_unpackhi_epi32(r0, r1));
    let (t2, t3) = (_mm256_unpacklo_epi32(r2, r3), _mm256_unpackhi_epi32(r2, r3));
    let (t4, t5) = (_mm256_unpacklo_epi32(r4, r5), _mm256_unpackhi_epi32(r4, r5));
    let (t6, t7) = (_mm256_unpacklo_epi32(r6, r7), _mm256_unpackhi_epi32(r6, r7));
    // Word w of blocks 0..4 (low half: w in 0..4, high half: w + 4), then blocks 4..8.
    let lo = [
        _mm256_unpacklo_epi64(t0, t2),
        _mm256_unpackhi_epi64(t0, t2),
        _mm256_unpacklo_epi64(t1, t3),
        _mm256_unpackhi_epi64(t1, t3),
    ];
    let hi = [
        _mm256_unpacklo_epi64(t4, t6),
        _mm256_unpackhi_epi64(t4, t6),
        _mm256_unpacklo_epi64(t5, t7),
        _mm256_unpackhi_epi64(t5, t7),
    ];
    let p = out.as_mut_ptr();
    // SAFETY: a group is 288 bytes: 32 of scales, then 8 rows of 32; stores are unaligned.
    _mm256_storeu_ps(p.cast::<f32>(), scales);
    for (w, (l, h)) in lo.into_iter().zip(hi).enumerate() {
        _mm256_storeu_si256(
            p.add(32 + 32 * w).cast::<__m256i>(),
            _mm256_permute2x128_si256::<0x20>(l, h),
        );
        _mm256_storeu_si256(
            p.add(32 + 32 * (w + 4)).cast::<__m256i>(),
            _mm256_permute2x128_si256::<0x31>(l, h),
        );
    }
}

/// [`crate::quant::group8::pack_q8_0`], byte for byte (finite scales).
///
/// # Safety
/// The CPU supports AVX2 and F16C.
#[target_feature(enable = "avx2,f16c")]
unsafe fn pack_q8_0_avx2(blocks: &[BlockQ8_0; 8], out: &mut Group8) {
    prefetch_ahead::<{ q8_0::BLOCK_BYTES }>(blocks.as_ptr().cast::<u8>());
    // SAFETY: each block is 34 bytes; bytes 2..34 are the 32 values; loads are unaligned.
    let rows = blocks.each_ref().map(|b| _mm256_loadu_si256(b.as_ptr().add(2).cast::<__m256i>()));
    store_group(rows, scales8(blocks), out);
}

/// [`crate::quant::group8::pack_q4_0`], byte for byte (finite scales): each block's nibbles
/// spread to 32 bytes in element order (as [`q4_0_lanes`] does) and recentred to `q − 8`.
///
/// # Safety
/// The CPU supports AVX2 and F16C.
#[target_feature(enable = "avx2,f16c")]
unsafe fn pack_q4_0_avx2(blocks: &[BlockQ4_0; 8], out: &mut Group8) {
    let rows = blocks.each_ref().map(|b| {
        // SAFETY: a Q4_0 block is 18 bytes, nibbles at 2..18; the load is unaligned.
        let nib = _mm_loadu_si128(b.as_ptr().add(2).cast::<__m128i>());
        let spread =
            _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(nib), _mm_srli_epi16(nib, 4));
        _mm256_sub_epi8(_mm256_and_si256(spread, _mm256_set1_epi8(0x0f)), _mm256_set1_epi8(8))
    });
    store_group(rows, scales8(blocks), out);
}

/// Packed groups (see [`crate::quant::group8`]), bit-identical to
/// [`crate::quant::group8::dot`]: lane `j`
/// of every multiply-add belongs to block `j`, so eight `maddubs`/`madd` steps with vertical
/// adds give the eight exact block sums with no horizontal reduction (weights in −128..=127,
/// activations in −127..=127, as for [`q8_0_lanes`]).
///
/// # Safety
/// The CPU supports AVX2.
#[target_feature(enable = "avx2")]
unsafe fn dot_groups_avx2(w: &[Group8], a: &[Group8]) -> f32 {
    let ones = _mm256_set1_epi16(1);
    let mut sum = 0.0f32;
    for (wg, ag) in w.iter().zip(a) {
        let (wp, ap) = (wg.as_ptr(), ag.as_ptr());
        let mut acc = _mm256_setzero_si256();
        // SAFETY (all loads): a group is 288 bytes, 32 of scales then 8 rows of 32 values;
        // loads are unaligned.
        for g in 0..8 {
            let qx = _mm256_loadu_si256(wp.add(32 + 32 * g).cast::<__m256i>());
            let qy = _mm256_loadu_si256(ap.add(32 + 32 * g).cast::<__m256i>());
            let pairs = _mm256_maddubs_epi16(_mm256_abs_epi8(qx), _mm256_sign_epi8(qy, qx));
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, ones));
        }
        let d = _mm256_mul_ps(_mm256_loadu_ps(wp.cast::<f32>()), _mm256_loadu_ps(ap.cast::<f32>()));
        // |isum| < 2^24: the conversion is exact.
        sum = add_lanes_in_order(sum, _mm256_mul_ps(d, _mm256_cvtepi32_ps(acc)));
    }
    sum
}

/// [`dot_groups_avx2`] of one weight row against [`GROUP_TILE`] activation vectors at once:
/// each weight row of a group is loaded and `abs`-ed once for all of them, and the vectors'
/// running sums are independent dependency chains that overlap. A group's eight block
/// products of the eight vectors are transposed (8×8), so that lane `t` of one register holds
/// vector `t`'s running sum and eight vertical adds add each vector's block products in block
/// order: the additions [`add_lanes_in_order`] makes one lane at a time, for all vectors at
/// once. Each result is bit-identical to [`dot_groups_avx2`]'s.
///
/// # Safety
/// The CPU supports AVX2, and every `a[t]` holds at least `w.len()` groups.
///
/// With `SHARED_ACTIVATION` the roles of the sign transfer swap: `w` is then one activation
/// vector (values in −127..=127) and each `a[t]` a weight row with any byte (decode's tile
/// over 8 rows), and lane `t` is `dot_groups_avx2(a[t], w)`, the same bits.
#[target_feature(enable = "avx2")]
unsafe fn dot_groups_tile_avx2<const SHARED_ACTIVATION: bool>(
    w: &[Group8],
    a: &[&[Group8]; GROUP_TILE],
) -> [f32; GROUP_TILE] {
    const _: () = assert!(GROUP_TILE == 8, "one f32 lane per vector of the tile");
    let ones = _mm256_set1_epi16(1);
    // Lane `t`: vector `t`'s running sum.
    let mut sums = _mm256_setzero_ps();
    let bases: [*const u8; GROUP_TILE] = a.map(|at| at.as_ptr().cast::<u8>());
    for (i, wg) in w.iter().enumerate() {
        // SAFETY: `i < w.len() <= a[t].len()` (the caller's contract), so group `i` of every
        // vector is in bounds.
        let ap: [*const u8; GROUP_TILE] = bases.map(|b| b.add(i * GROUP_BYTES));
        let wp = wg.as_ptr();
        let mut acc = [_mm256_setzero_si256(); GROUP_TILE];
        // SAFETY (all loads): groups are 288 bytes, 32 of scales then 8 rows of 32 values;
        // loads are unaligned.
        for g in 0..8 {
            let qx = _mm256_loadu_si256(wp.add(32 + 32 * g).cast::<__m256i>());
            let ax = _mm256_abs_epi8(qx);
            for (acc_t, ap_t) in acc.iter_mut().zip(ap) {
                let qy = _mm256_loadu_si256(ap_t.add(32 + 32 * g).cast::<__m256i>());
                let pairs = if SHARED_ACTIVATION {
                    _mm256_maddubs_epi16(_mm256_abs_epi8(qy), _mm256_sign_epi8(qx, qy))
                } else {
                    _mm256_maddubs_epi16(ax, _mm256_sign_epi8(qy, qx))
                };
                *acc_t = _mm256_add_epi32(*acc_t, _mm256_madd_epi16(pairs, ones));
            }
        }
        let dw = _mm256_loadu_ps(wp.cast::<f32>());
        // Lane `j` of `products[t]`: vector `t`'s block `j`, as `dot_groups_avx2` computes it.
        let mut products = [_mm256_setzero_ps(); GROUP_TILE];
        for ((p, acc_t), ap_t) in products.iter_mut().zip(acc).zip(ap) {
            let d = _mm256_mul_ps(dw, _mm256_loadu_ps(ap_t.cast::<f32>()));
            // |isum| < 2^24: the conversion is exact.
            *p = _mm256_mul_ps(d, _mm256_cvtepi32_ps(acc_t));
        }
        for block in transpose8_ps(products) {
            sums = _mm256_add_ps(sums, block);
        }
    }
    let mut out = [0.0f32; GROUP_TILE];
    // SAFETY: `out` holds eight f32; the store is unaligned.
    _mm256_storeu_ps(out.as_mut_ptr(), sums);
    out
}

/// The 8×8 transpose of eight `f32` rows: lane `t` of result `j` is lane `j` of `rows[t]`.
///
/// # Safety
/// The CPU supports AVX.
#[inline]
#[target_feature(enable = "avx")]
unsafe fn transpose8_ps(rows: [__m256; 8]) -> [__m256; 8] {
    let [r0, r1, r2, r3, r4, r5, r6, r7] = rows;
    // Per 128-bit half: (r0[0], r1[0], r0[1], r1[1]) and so on.
    let (t0, t1) = (_mm256_unpacklo_ps(r0, r1), _mm256_unpackhi_ps(r0, r1));
    let (t2, t3) = (_mm256_unpacklo_ps(r2, r3), _mm256_unpackhi_ps(r2, r3));
    let (t4, t5) = (_mm256_unpacklo_ps(r4, r5), _mm256_unpackhi_ps(r4, r5));
    let (t6, t7) = (_mm256_unpacklo_ps(r6, r7), _mm256_unpackhi_ps(r6, r7));
    // Per half: column k of rows 0..4 (or 4..8).
    let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    [
        _mm256_permute2f128_ps::<0x20>(u0, u4),
        _mm256_permute2f128_ps::<0x20>(u1, u5),
        _mm256_permute2f128_ps::<0x20>(u2, u6),
        _mm256_permute2f128_ps::<0x20>(u3, u7),
        _mm256_permute2f128_ps::<0x31>(u0, u4),
        _mm256_permute2f128_ps::<0x31>(u1, u5),
        _mm256_permute2f128_ps::<0x31>(u2, u6),
        _mm256_permute2f128_ps::<0x31>(u3, u7),
    ]
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

/// The scalar reference body compiled with AVX2 enabled (LLVM vectorises it 8 wide; same
/// operation order as the reference, so results are identical).
///
/// # Safety
/// The CPU supports AVX2.
#[target_feature(enable = "avx2")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    super::scalar::dot(a, b)
}

/// [`super::attn::tile_scores`]: two heads × four rows per pass (eight independent 8-lane
/// accumulators, enough to hide the add latency), every chunk of the queries and rows loaded
/// once for the block; multiply then add (no FMA) and [`hsum_ps`]'s reduction, the
/// reference's order, so each score is exactly `scalar::dot`'s.
///
/// # Safety
/// The CPU supports AVX2.
#[target_feature(enable = "avx2")]
unsafe fn tile_scores_avx2(q: &[f32], width: usize, rows: &[f32], out: &mut [f32]) {
    const H: usize = 2;
    const R: usize = 4;
    let width = width.max(1);
    let t = rows.len() / width;
    if t == 0 {
        return;
    }
    let mut q_pairs = q.chunks_exact(width * H);
    let mut out_pairs = out.chunks_exact_mut(t * H);
    for (q2, o2) in (&mut q_pairs).zip(&mut out_pairs) {
        let mut r = 0;
        while r + R <= t {
            let sums = scores_block::<H, R>(q2, width, rows.get(r * width..).unwrap_or(&[]));
            for (h, sums_h) in sums.iter().enumerate() {
                for (k, sum) in sums_h.iter().enumerate() {
                    if let Some(o) = o2.get_mut(h * t + r + k) {
                        *o = *sum;
                    }
                }
            }
            r += R;
        }
        for (h, (q_h, o_h)) in q2.chunks_exact(width).zip(o2.chunks_exact_mut(t)).enumerate() {
            let _ = h;
            for (o, row) in o_h.iter_mut().zip(rows.chunks_exact(width)).skip(r) {
                *o = dot_avx2(q_h, row);
            }
        }
    }
    for (q_h, o_h) in
        q_pairs.remainder().chunks_exact(width).zip(out_pairs.into_remainder().chunks_exact_mut(t))
    {
        let mut r = 0;
        while r + R <= t {
            let sums = scores_block::<1, R>(q_h, width, rows.get(r * width..).unwrap_or(&[]));
            for (k, sum) in sums.iter().flatten().enumerate() {
                if let Some(o) = o_h.get_mut(r + k) {
                    *o = *sum;
                }
            }
            r += R;
        }
        for (o, row) in o_h.iter_mut().zip(rows.chunks_exact(width)).skip(r) {
            *o = dot_avx2(q_h, row);
        }
    }
}

/// `H` heads' queries (`q`: `[H][width]`) against the first `R` rows of `rows` (`[≥R][width]`):
/// `[h][r]` scores, each exactly `scalar::dot`'s (8 lanes in chunk order, [`hsum_ps`], then
/// the tail in order). Short inputs give zeros for what is missing.
///
/// # Safety
/// The CPU supports AVX2.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn scores_block<const H: usize, const R: usize>(
    q: &[f32],
    width: usize,
    rows: &[f32],
) -> [[f32; R]; H] {
    const L: usize = 8;
    let mut sums = [[0.0f32; R]; H];
    if q.len() < H * width || rows.len() < R * width {
        return sums;
    }
    let chunks = width / L;
    let tail = chunks * L;
    let (qp, rp) = (q.as_ptr(), rows.as_ptr());
    let mut acc = [[_mm256_setzero_ps(); R]; H];
    for c in 0..chunks {
        let mut y = [_mm256_setzero_ps(); R];
        for (k, y_k) in y.iter_mut().enumerate() {
            // SAFETY: k < R rows of `width` and c * L + L <= width, checked above.
            *y_k = unsafe { _mm256_loadu_ps(rp.add(k * width + c * L)) };
        }
        for (h, acc_h) in acc.iter_mut().enumerate() {
            // SAFETY: h < H queries of `width`, c * L + L <= width.
            let x = unsafe { _mm256_loadu_ps(qp.add(h * width + c * L)) };
            for (a, y_k) in acc_h.iter_mut().zip(&y) {
                *a = _mm256_add_ps(*a, _mm256_mul_ps(x, *y_k));
            }
        }
    }
    for (h, (acc_h, sums_h)) in acc.iter().zip(sums.iter_mut()).enumerate() {
        let q_tail = q.get(h * width + tail..(h + 1) * width).unwrap_or(&[]);
        for (k, (a, sum)) in acc_h.iter().zip(sums_h.iter_mut()).enumerate() {
            let mut s = hsum_ps(*a);
            let row_tail = rows.get(k * width + tail..(k + 1) * width).unwrap_or(&[]);
            for (x, y) in q_tail.iter().zip(row_tail) {
                s += x * y;
            }
            *sum = s;
        }
    }
    sums
}

/// [`super::attn::tile_accumulate`]: four heads × sixteen columns per pass (eight independent
/// accumulators), each loaded row chunk serving the four heads; per element the rows are
/// added in order as `lat + p·x` (multiply, then add), the reference's arithmetic.
///
/// # Safety
/// The CPU supports AVX2.
#[target_feature(enable = "avx2")]
unsafe fn tile_accumulate_avx2(p: &[f32], rows: &[f32], width: usize, lat: &mut [f32], kv: usize) {
    const H: usize = 4;
    const C: usize = 16;
    let (width, kv) = (width.max(1), kv.max(1));
    let t = rows.len() / width;
    if t == 0 || kv > width {
        return;
    }
    let mut p_groups = p.chunks_exact(t * H);
    let mut lat_groups = lat.chunks_exact_mut(kv * H);
    for (pg, lg) in (&mut p_groups).zip(&mut lat_groups) {
        let lp = lg.as_mut_ptr();
        let mut j = 0;
        while j + C <= kv {
            let mut acc = [[_mm256_setzero_ps(); 2]; H];
            for (h, a) in acc.iter_mut().enumerate() {
                // SAFETY: h < H rows of `kv` in `lg`, j + C <= kv.
                unsafe {
                    a[0] = _mm256_loadu_ps(lp.add(h * kv + j));
                    a[1] = _mm256_loadu_ps(lp.add(h * kv + j + 8));
                }
            }
            let (pp, rp) = (pg.as_ptr(), rows.as_ptr());
            for r in 0..t {
                // SAFETY: r < t rows of `width`, j + C <= kv <= width.
                let (x0, x1) = unsafe {
                    let row = rp.add(r * width + j);
                    (_mm256_loadu_ps(row), _mm256_loadu_ps(row.add(8)))
                };
                for (h, a) in acc.iter_mut().enumerate() {
                    // SAFETY: `pg` is `[H][t]` (a `chunks_exact(t * H)` chunk), h < H, r < t.
                    let w = _mm256_set1_ps(unsafe { *pp.add(h * t + r) });
                    a[0] = _mm256_add_ps(a[0], _mm256_mul_ps(w, x0));
                    a[1] = _mm256_add_ps(a[1], _mm256_mul_ps(w, x1));
                }
            }
            for (h, a) in acc.iter().enumerate() {
                // SAFETY: as for the loads.
                unsafe {
                    _mm256_storeu_ps(lp.add(h * kv + j), a[0]);
                    _mm256_storeu_ps(lp.add(h * kv + j + 8), a[1]);
                }
            }
            j += C;
        }
        if j < kv {
            for (p_h, l) in pg.chunks_exact(t).zip(lg.chunks_exact_mut(kv)) {
                super::attn::accumulate_columns(
                    p_h,
                    rows,
                    width,
                    l.get_mut(j..).unwrap_or(&mut []),
                    j,
                );
            }
        }
    }
    for (p_h, l) in
        p_groups.remainder().chunks_exact(t).zip(lat_groups.into_remainder().chunks_exact_mut(kv))
    {
        super::attn::accumulate_columns(p_h, rows, width, l, 0);
    }
}

/// [`super::attn::softmax_weights`] eight at a time: [`super::attn::exp_nonpositive`]'s steps
/// as vector operations (the same multiplies and adds, truncating conversion, exponent bits),
/// then the sum in order.
///
/// # Safety
/// The CPU supports AVX2.
#[target_feature(enable = "avx2")]
unsafe fn softmax_weights_avx2(s: &mut [f32], max: f32) -> f32 {
    use super::attn::{EXP_MIN, EXP_P, LN2_HI, LN2_LO};
    let mut chunks = s.chunks_exact_mut(8);
    let c = |v: f32| _mm256_set1_ps(v);
    for ch in &mut chunks {
        // SAFETY: `ch` holds 8 floats.
        let v = unsafe { _mm256_loadu_ps(ch.as_ptr()) };
        let x = _mm256_sub_ps(v, c(max));
        // max(x, MIN) returns MIN for NaN, like f32::max; then min(., 0).
        let x = _mm256_min_ps(_mm256_max_ps(x, c(EXP_MIN)), c(0.0));
        let neg = _mm256_sub_ps(c(0.0), x);
        let n = _mm256_cvttps_epi32(_mm256_add_ps(
            _mm256_mul_ps(neg, c(core::f32::consts::LOG2_E)),
            c(0.5),
        ));
        let nf = _mm256_cvtepi32_ps(n);
        let r = _mm256_add_ps(
            _mm256_add_ps(x, _mm256_mul_ps(nf, c(LN2_HI))),
            _mm256_mul_ps(nf, c(LN2_LO)),
        );
        let z = _mm256_mul_ps(r, r);
        let mut p = c(EXP_P[0]);
        for coef in &EXP_P[1..] {
            p = _mm256_add_ps(_mm256_mul_ps(p, r), c(*coef));
        }
        let y = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(p, z), r), c(1.0));
        let bits = _mm256_slli_epi32::<23>(_mm256_sub_epi32(_mm256_set1_epi32(127), n));
        let out = _mm256_mul_ps(y, _mm256_castsi256_ps(bits));
        // SAFETY: as for the load.
        unsafe { _mm256_storeu_ps(ch.as_mut_ptr(), out) };
    }
    for v in chunks.into_remainder() {
        *v = super::attn::exp_nonpositive(*v - max);
    }
    let mut sum = 0.0f32;
    for v in s.iter() {
        sum += *v;
    }
    sum
}

/// Safe entry points, installed in [`super::Kernels`] only once the features are known.
pub(super) mod entry {
    use super::*;
    use crate::quant::iq4_nl::BlockIq4Nl;
    use crate::quant::iq4_xs::BlockIq4Xs;
    use crate::quant::q4_1::BlockQ4_1;
    use crate::quant::q4_k::BlockQ4K;
    use crate::quant::q5_0::BlockQ5_0;
    use crate::quant::q5_1::BlockQ5_1;
    use crate::quant::q5_k::BlockQ5K;
    use crate::quant::q6_k::BlockQ6K;
    use crate::quant::q8_k::BlockQ8K;

    pub(in crate::kernels) fn softmax_weights(s: &mut [f32], max: f32) -> f32 {
        // SAFETY: only reachable through a `Kernels` table built after detecting (or compiling
        // with) avx2; see `Kernels::x86_avx2`.
        unsafe { softmax_weights_avx2(s, max) }
    }

    pub(in crate::kernels) fn tile_scores(q: &[f32], width: usize, rows: &[f32], out: &mut [f32]) {
        // SAFETY: only reachable through a `Kernels` table built after detecting (or compiling
        // with) avx2 and fma; see `Kernels::x86_avx2`.
        unsafe { tile_scores_avx2(q, width, rows, out) }
    }

    pub(in crate::kernels) fn f16s_to_f32(bytes: &[u8], out: &mut [f32]) {
        // SAFETY: as above (avx2 implies avx; f16c).
        unsafe { f16s_to_f32_f16c(bytes, out) }
    }

    pub(in crate::kernels) fn dequantize_q8_0(blocks: &[BlockQ8_0], out: &mut [f32]) {
        // SAFETY: as above (avx2, f16c).
        unsafe { dequantize_q8_0_avx2(blocks, out) }
    }

    pub(in crate::kernels) fn dequantize_compact(bytes: &[u8], out: &mut [f32]) {
        // SAFETY: as above (avx2, f16c).
        unsafe { dequantize_compact_avx2(bytes, out) }
    }

    pub(in crate::kernels) fn tile_accumulate(
        p: &[f32],
        rows: &[f32],
        width: usize,
        lat: &mut [f32],
        kv: usize,
    ) {
        // SAFETY: as above (avx2).
        unsafe { tile_accumulate_avx2(p, rows, width, lat, kv) }
    }

    pub(in crate::kernels) fn dot_f32_le(w: &[u8], x: &[f32]) -> f32 {
        // SAFETY: only reachable through a `Kernels` table built after detecting (or compiling
        // with) avx2 and fma; see `Kernels::x86_avx2`.
        unsafe { dot_f32_le_avx2(w, x) }
    }

    pub(in crate::kernels) fn dot_f16_le(w: &[u8], x: &[f32]) -> f32 {
        // SAFETY: as above, with f16c also required by `Kernels::x86_avx2`.
        unsafe { dot_f16_le_avx2(w, x) }
    }

    pub(in crate::kernels) fn dot_q8_0(w: &[BlockQ8_0], a: &[BlockQ8_0]) -> f32 {
        // SAFETY: as above (avx2, f16c).
        unsafe { dot_q8_0_avx2(0.0, w, a, None) }
    }

    pub(in crate::kernels) fn dot_q8_0_from(sum: f32, w: &[BlockQ8_0], a: &[BlockQ8_0]) -> f32 {
        // SAFETY: as above (avx2, f16c).
        unsafe { dot_q8_0_avx2(sum, w, a, None) }
    }

    pub(in crate::kernels) fn dot_q4_0(w: &[BlockQ4_0], a: &[BlockQ8_0]) -> f32 {
        // SAFETY: as above (avx2, f16c).
        unsafe { dot_q4_0_avx2(0.0, w, a, None) }
    }

    pub(in crate::kernels) fn dot_q8_0_tile(
        sums: &[f32; GROUP_TILE],
        w: &[BlockQ8_0],
        a: &[&[BlockQ8_0]; GROUP_TILE],
    ) -> [f32; GROUP_TILE] {
        if a.iter().any(|at| at.len() < w.len()) {
            return crate::kernels::tile_by_vector(sums, w, a, dot_q8_0_from);
        }
        // SAFETY: as above (avx2, f16c); every vector covers `w`, checked just above.
        unsafe { dot_q8_0_tile_avx2(*sums, w, a) }
    }

    pub(in crate::kernels) fn dot_q4_0_tile(
        sums: &[f32; GROUP_TILE],
        w: &[BlockQ4_0],
        a: &[&[BlockQ8_0]; GROUP_TILE],
    ) -> [f32; GROUP_TILE] {
        if a.iter().any(|at| at.len() < w.len()) {
            return crate::kernels::tile_by_vector(sums, w, a, dot_q4_0_from);
        }
        // SAFETY: as above (avx2, f16c); every vector covers `w`, checked just above.
        unsafe { dot_q4_0_tile_avx2(*sums, w, a) }
    }

    pub(in crate::kernels) fn dot_q4_0_from(sum: f32, w: &[BlockQ4_0], a: &[BlockQ8_0]) -> f32 {
        // SAFETY: as above (avx2, f16c).
        unsafe { dot_q4_0_avx2(sum, w, a, None) }
    }

    pub(in crate::kernels) fn dot_groups(w: &[Group8], a: &[Group8]) -> f32 {
        // SAFETY: as above (avx2).
        unsafe { dot_groups_avx2(w, a) }
    }

    pub(in crate::kernels) fn dot_groups_tile(
        w: &[Group8],
        a: &[&[Group8]; GROUP_TILE],
    ) -> [f32; GROUP_TILE] {
        if a.iter().any(|at| at.len() < w.len()) {
            return a.map(|at| dot_groups(w, at));
        }
        // SAFETY: as above (avx2); every vector covers `w`, checked just above.
        unsafe { dot_groups_tile_avx2::<false>(w, a) }
    }

    pub(in crate::kernels) fn dot_rows_tile(
        x: &[Group8],
        rows: &[&[Group8]; GROUP_TILE],
    ) -> [f32; GROUP_TILE] {
        if rows.iter().any(|r| r.len() < x.len()) {
            return rows.map(|r| dot_groups(r, x));
        }
        // SAFETY: as above (avx2); every row covers `x`, checked just above.
        unsafe { dot_groups_tile_avx2::<true>(x, rows) }
    }

    pub(in crate::kernels) fn pack_q8_0(blocks: &[BlockQ8_0; 8], out: &mut Group8) {
        // SAFETY: as above (avx2, f16c).
        unsafe { pack_q8_0_avx2(blocks, out) }
    }

    pub(in crate::kernels) fn pack_q4_0(blocks: &[BlockQ4_0; 8], out: &mut Group8) {
        // SAFETY: as above (avx2, f16c).
        unsafe { pack_q4_0_avx2(blocks, out) }
    }

    pub(in crate::kernels) fn dot_q8_0_scaled(w: &[BlockQ8_0], a: &[BlockQ8_0], s: &[f32]) -> f32 {
        // SAFETY: as above (avx2, f16c). Through the target-feature function, so that
        // `dot_blocks` and its helpers inline into code compiled for AVX2.
        unsafe { dot_q8_0_avx2(0.0, w, a, Some(s)) }
    }

    pub(in crate::kernels) fn dot_q4_0_scaled(w: &[BlockQ4_0], a: &[BlockQ8_0], s: &[f32]) -> f32 {
        // SAFETY: as above (avx2, f16c).
        unsafe { dot_q4_0_avx2(0.0, w, a, Some(s)) }
    }

    pub(in crate::kernels) fn dot(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: as above (avx2).
        unsafe { dot_avx2(a, b) }
    }

    pub(in crate::kernels) fn dot_q4_k(w: &[BlockQ4K], a: &[BlockQ8K]) -> f32 {
        // SAFETY: as above (avx2, f16c).
        unsafe { super::blocks::dot_q4_k_avx2(w, a) }
    }

    pub(in crate::kernels) fn dot_q5_k(w: &[BlockQ5K], a: &[BlockQ8K]) -> f32 {
        // SAFETY: as above (avx2, f16c).
        unsafe { super::blocks::dot_q5_k_avx2(w, a) }
    }

    pub(in crate::kernels) fn dot_q6_k(w: &[BlockQ6K], a: &[BlockQ8K]) -> f32 {
        // SAFETY: as above (avx2, f16c).
        unsafe { super::blocks::dot_q6_k_avx2(w, a) }
    }

    pub(in crate::kernels) fn dot_iq4_xs(w: &[BlockIq4Xs], a: &[BlockQ8K]) -> f32 {
        // SAFETY: as above (avx2, f16c).
        unsafe { super::blocks::dot_iq4_xs_avx2(w, a) }
    }

    pub(in crate::kernels) fn dot_q4_1(w: &[BlockQ4_1], a: &[BlockQ8_0]) -> f32 {
        // SAFETY: as above (avx2).
        unsafe { super::blocks::dot_q4_1_avx2(w, a) }
    }

    pub(in crate::kernels) fn dot_q5_0(w: &[BlockQ5_0], a: &[BlockQ8_0]) -> f32 {
        // SAFETY: as above (avx2, f16c).
        unsafe { super::blocks::dot_q5_0_avx2(w, a) }
    }

    pub(in crate::kernels) fn dot_q5_1(w: &[BlockQ5_1], a: &[BlockQ8_0]) -> f32 {
        // SAFETY: as above (avx2).
        unsafe { super::blocks::dot_q5_1_avx2(w, a) }
    }

    pub(in crate::kernels) fn dot_iq4_nl(w: &[BlockIq4Nl], a: &[BlockQ8_0]) -> f32 {
        // SAFETY: as above (avx2, f16c).
        unsafe { super::blocks::dot_iq4_nl_avx2(w, a) }
    }
}

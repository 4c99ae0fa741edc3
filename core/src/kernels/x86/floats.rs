//! AVX2 + FMA + F16C kernels over f32 / f16 rows and the int8 row decoders: dot products of
//! little-endian f32 and f16 weights, f16 → f32, and Q8_0 / q8-compact blocks → f32.

use core::arch::x86_64::*;

use super::*;

/// `Σ w[i]·x[i]`, `w` little-endian `f32` bytes.
///
/// # Safety
/// The CPU supports AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn dot_f32_le_avx2(w: &[u8], x: &[f32]) -> f32 {
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
pub(super) unsafe fn dot_f16_le_avx2(w: &[u8], x: &[f32]) -> f32 {
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
        sum += crate::kernels::scalar::f16_to_f32(*b) * xi;
    }
    sum
}

/// `Σ w[i]·x[i]`, `w` little-endian `bf16` bytes: [`dot_f16_le_avx2`]'s loop with each
/// weight widened exactly by a 16-bit shift.
///
/// # Safety
/// The CPU supports AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn dot_bf16_le_avx2(w: &[u8], x: &[f32]) -> f32 {
    let n = (w.len() / 2).min(x.len());
    let (wp, xp) = (w.as_ptr(), x.as_ptr());
    let widen = |p: *const u8| {
        // SAFETY: the callers below pass `wp + 2j` with j + 8 <= n: 16 bytes in bounds.
        let h = unsafe { _mm_loadu_si128(p.cast::<__m128i>()) };
        _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h)))
    };
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    // SAFETY (all loads): i + 8 <= n bounds both slices (16 bytes of bf16, 8 floats).
    while i + 32 <= n {
        for (k, a) in acc.iter_mut().enumerate() {
            let j = i + 8 * k;
            *a = _mm256_fmadd_ps(widen(wp.add(2 * j)), _mm256_loadu_ps(xp.add(j)), *a);
        }
        i += 32;
    }
    while i + 8 <= n {
        acc[0] = _mm256_fmadd_ps(widen(wp.add(2 * i)), _mm256_loadu_ps(xp.add(i)), acc[0]);
        i += 8;
    }
    let mut sum =
        hsum_ps(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    let (w_tail, _) = w.get(2 * i..2 * n).unwrap_or(&[]).as_chunks::<2>();
    for (b, xi) in w_tail.iter().zip(x.get(i..n).unwrap_or(&[])) {
        sum += crate::kernels::scalar::bf16_to_f32(*b) * xi;
    }
    sum
}

/// [`crate::kernels::scalar::f16s_to_f32`] eight at a time with F16C (both conversions are exact; they
/// differ only in the payload of a signalling NaN, which F16C quiets).
///
/// # Safety
/// The CPU supports AVX and F16C.
#[target_feature(enable = "avx,f16c")]
pub(super) unsafe fn f16s_to_f32_f16c(bytes: &[u8], out: &mut [f32]) {
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
    crate::kernels::scalar::f16s_to_f32(
        bytes.get(2 * i..).unwrap_or(&[]),
        out.get_mut(i..n).unwrap_or(&mut []),
    );
}

/// [`crate::quant::q8_0::quantize`], the reference's own code compiled for AVX2 (eight lanes
/// where the baseline has four): the same operations, so the same bytes. Rust never fuses a
/// multiply and an add on its own, so enabling FMA changes no rounding.
///
/// # Safety
/// The CPU supports AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn quantize_q8_0_avx2(x: &[f32], out: &mut [BlockQ8_0]) {
    crate::quant::q8_0::quantize_inlined(x, out);
}

/// [`crate::quant::q8_k::quantize`] compiled for AVX2, as [`quantize_q8_0_avx2`].
///
/// # Safety
/// The CPU supports AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn quantize_q8_k_avx2(x: &[f32], out: &mut [crate::quant::q8_k::BlockQ8K]) {
    crate::quant::q8_k::quantize_inlined(x, out);
}

/// [`crate::quant::q8_0::dequantize`]: per block, the 32 values widened to `f32` (exact), times
/// the scale, plus zero — the reference's operations.
///
/// # Safety
/// The CPU supports AVX2 and F16C.
#[target_feature(enable = "avx2,f16c")]
pub(super) unsafe fn dequantize_q8_0_avx2(blocks: &[BlockQ8_0], out: &mut [f32]) {
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
pub(super) unsafe fn dequantize_compact_avx2(bytes: &[u8], out: &mut [f32]) {
    use crate::quant::q8_compact::{Q8C_BLOCK_BYTES, Q8C_BLOCK_ELEMS};
    let whole = (bytes.len() / Q8C_BLOCK_BYTES).min(out.len() / Q8C_BLOCK_ELEMS);
    let blocks = bytes.chunks_exact(Q8C_BLOCK_BYTES).zip(out.chunks_exact_mut(Q8C_BLOCK_ELEMS));
    for (block, o) in blocks.take(whole) {
        let Some((scale, _)) = block.split_first_chunk::<2>() else { continue };
        let d = _mm256_set1_ps(crate::kernels::scalar::f16_to_f32(*scale));
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

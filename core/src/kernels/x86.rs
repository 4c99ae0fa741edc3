//! x86_64 AVX2 + FMA + F16C variants of the hot dot products.
//!
//! Every function here has a scalar reference in [`super::scalar`] or [`crate::quant`] and is
//! tested against it (`kernels::tests`). They are reachable only through [`super::Kernels`],
//! which installs them after the CPU features were detected (or compiled in).
#![allow(unsafe_code)]

use core::arch::x86_64::*;

use crate::quant::{block_scale, q4_0::BlockQ4_0, q8_0::BlockQ8_0};

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
unsafe fn hsum_epi32(v: __m256i) -> i32 {
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

/// Q8_0 × Q8_0: the same exact `i32` block sums as the scalar reference (so the result is
/// bit-identical for values in −127..=127, which is all Q8_0 quantisation produces), computed
/// 32 lanes at a time with `maddubs`.
///
/// # Safety
/// The CPU supports AVX2.
#[target_feature(enable = "avx2")]
unsafe fn dot_q8_0_avx2(w: &[BlockQ8_0], a: &[BlockQ8_0]) -> f32 {
    let ones = _mm256_set1_epi16(1);
    let mut sum = 0.0f32;
    for (wb, ab) in w.iter().zip(a) {
        // SAFETY: each block is 34 bytes; bytes 2..34 are the 32 values.
        let qx = _mm256_loadu_si256(wb.as_ptr().add(2).cast::<__m256i>());
        let qy = _mm256_loadu_si256(ab.as_ptr().add(2).cast::<__m256i>());
        // |x| · sign(x)·y = x·y, with |x| unsigned as maddubs wants.
        let ax = _mm256_sign_epi8(qx, qx);
        let sy = _mm256_sign_epi8(qy, qx);
        let pairs = _mm256_maddubs_epi16(ax, sy);
        let isum = hsum_epi32(_mm256_madd_epi16(pairs, ones));
        #[allow(clippy::cast_precision_loss)] // |isum| < 2^24: exact
        let s = isum as f32;
        sum += block_scale(wb) * block_scale(ab) * s;
    }
    sum
}

/// Q4_0 weights × Q8_0 activations (ggml's `vec_dot_q4_0_q8_0`), bit-identical to the scalar
/// reference for every input byte: the 16 nibble bytes are spread to 32 lanes in element order
/// (low nibbles are elements 0..16, high nibbles 16..32), then `Σ (q − 8)·y` is computed as
/// `maddubs(q, y) − maddubs(8, y)` per `i16` pair (|pair| ≤ 2 · 15 · 128, no saturation) and
/// widened to `i32` with `madd`.
///
/// # Safety
/// The CPU supports AVX2.
#[target_feature(enable = "avx2")]
unsafe fn dot_q4_0_avx2(w: &[BlockQ4_0], a: &[BlockQ8_0]) -> f32 {
    let ones = _mm256_set1_epi16(1);
    let eights = _mm256_set1_epi8(8);
    let low_mask = _mm256_set1_epi8(0x0f);
    let mut sum = 0.0f32;
    for (wb, ab) in w.iter().zip(a) {
        // SAFETY: a Q4_0 block is 18 bytes (nibbles at 2..18), a Q8_0 block 34 (values at 2..34).
        let nib = _mm_loadu_si128(wb.as_ptr().add(2).cast::<__m128i>());
        let qy = _mm256_loadu_si256(ab.as_ptr().add(2).cast::<__m256i>());
        let spread =
            _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(nib), _mm_srli_epi16(nib, 4));
        let q = _mm256_and_si256(spread, low_mask);
        let pairs = _mm256_sub_epi16(_mm256_maddubs_epi16(q, qy), _mm256_maddubs_epi16(eights, qy));
        let isum = hsum_epi32(_mm256_madd_epi16(pairs, ones));
        #[allow(clippy::cast_precision_loss)] // |isum| <= 32 · 8 · 128 < 2^24: exact
        let s = isum as f32;
        sum += block_scale(wb) * block_scale(ab) * s;
    }
    sum
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

/// Safe entry points, installed in [`super::Kernels`] only once the features are known.
pub(super) mod entry {
    use super::*;

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
        // SAFETY: as above (avx2).
        unsafe { dot_q8_0_avx2(w, a) }
    }

    pub(in crate::kernels) fn dot_q4_0(w: &[BlockQ4_0], a: &[BlockQ8_0]) -> f32 {
        // SAFETY: as above (avx2).
        unsafe { dot_q4_0_avx2(w, a) }
    }

    pub(in crate::kernels) fn dot(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: as above (avx2).
        unsafe { dot_avx2(a, b) }
    }
}

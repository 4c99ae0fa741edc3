//! Block-quantised storage formats (ggml's layouts), one file each, and the activation
//! quantisation the integer dot products use.
//!
//! Layouts from ggml's `ggml-common.h`. Blocks are handled as `[u8; N]` arrays (via
//! `as_chunks`), so no cast, alignment or `unsafe` is involved.

pub mod f16;
pub mod format;
pub mod group8;
pub mod iq4_nl;
pub mod iq4_xs;
pub mod q2_k;
pub mod q3_k;
pub mod q4_0;
pub mod q4_1;
pub mod q4_k;
pub mod q5_0;
pub mod q5_1;
pub mod q5_k;
pub mod q6_k;
pub mod q8_0;
pub mod q8_compact;
pub mod q8_k;

/// Elements per block of the 32-element formats (`QK8_0`, `QK4_0`, `QK4_1`, `QK5_0`,
/// `QK5_1`, `QK4_NL`).
pub const QK: usize = 32;

/// Elements per super-block of the K-quants and IQ4_XS (`QK_K`).
pub const QK_K: usize = 256;

/// Super-blocks of activations quantised at once by a K-quant matrix-vector product: the
/// same 2,048 values per pass as [`ACT_CHUNK_BLOCKS`] 32-blocks.
pub(crate) const ACT_CHUNK_SUPER: usize = ACT_CHUNK_BLOCKS * QK / QK_K;

/// Activation blocks quantised at once by a quantised matrix-vector product: 64 blocks (2,048
/// values, 2,176 bytes of stack) per pass over the rows.
pub(crate) const ACT_CHUNK_BLOCKS: usize = 64;

/// `f32::max(m, v)` where `m` is not NaN (a running maximum, or a bound). With vector units
/// (x86_64, aarch64) it is `f32::max`, which LLVM vectorises, reductions included; elsewhere
/// a compare and a select, where `f32::max` is a libm call on cores without `VMAXNM`
/// (Cortex-M4). The same result: a NaN `v` gives `m` either way.
#[inline(always)]
pub(crate) fn max_non_nan(m: f32, v: f32) -> f32 {
    if cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
        m.max(v)
    } else if v > m {
        v
    } else {
        m
    }
}

/// `f32::min(x, hi)` for `x` and `hi` not NaN, as [`max_non_nan`] chooses its form (the
/// forms may differ only in the sign of a zero result, which no caller's result depends on).
#[inline(always)]
pub(crate) fn min_non_nan(x: f32, hi: f32) -> f32 {
    if cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
        x.min(hi)
    } else if x < hi {
        x
    } else {
        hi
    }
}

/// The f16 scale at the start of a block, as `f32`.
#[inline(always)]
pub(crate) fn block_scale(block: &[u8]) -> f32 {
    match block.first_chunk::<2>() {
        Some(d) => f16::f16_to_f32(*d),
        None => 0.0,
    }
}

/// The f16 at byte `at` of a block, as `f32` (0 if the block is too short, which whole blocks
/// never are).
#[inline(always)]
pub(crate) fn f16_at(block: &[u8], at: usize) -> f32 {
    match block.get(at..).and_then(<[u8]>::first_chunk::<2>) {
        Some(d) => f16::f16_to_f32(*d),
        None => 0.0,
    }
}

/// One super-block's term of a K-quant dot product from its exact integer sums: `d_a` the
/// activation block's scale, `d` / `dmin` the weight block's scales, `sumi` the scale-weighted
/// sum of products and `summins` the min-weighted sum of activations (0 for the formats
/// without mins). Every kernel rounds it exactly so: the scales multiplied first, each `i32`
/// converted to `f32` once (round to nearest), then one product, a second product and the
/// difference.
#[inline(always)]
#[allow(clippy::cast_precision_loss)] // the conversion's rounding is part of the definition
pub(crate) fn super_term(d_a: f32, d: f32, dmin: f32, sumi: i32, summins: i32) -> f32 {
    (d_a * d) * sumi as f32 - (d_a * dmin) * summins as f32
}

/// [`super_term`] for the formats without mins (Q3_K, Q6_K, IQ4_XS).
#[inline(always)]
#[allow(clippy::cast_precision_loss)] // as in `super_term`
pub(crate) fn super_term_no_min(d_a: f32, d: f32, sumi: i32) -> f32 {
    (d_a * d) * sumi as f32
}

/// One block's term of an integer dot product of a format with a min (Q4_1, Q5_1) against a
/// Q8_0 activation block: `(d_w · d_a) · isum + (m_w · d_a) · asum`, `isum` the exact
/// `Σ q_w · q_a` and `asum` the exact `Σ q_a`; both below 2^24, so converted exactly.
#[inline(always)]
#[allow(clippy::cast_precision_loss)] // |isum| <= 32 · 31 · 127 and |asum| <= 32 · 127
pub(crate) fn min_block_term(d: f32, m: f32, a: &[u8], isum: i32, asum: i32) -> f32 {
    let d_a = block_scale(a);
    (d * d_a) * isum as f32 + (m * d_a) * asum as f32
}

/// The 16 values of IQ4_NL and IQ4_XS (`kvalues_iq4nl`).
pub const IQ4_VALUES: [i8; 16] =
    [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];

/// One block's term of an integer dot product, `(d_w · d_a) · isum` (`isum` the block's exact
/// `i32` dot), rounded as every kernel (scalar reference and SIMD) must round it to stay
/// bit-identical: the two scales multiplied first.
#[inline(always)]
pub(crate) fn block_term(w: &[u8], a: &[u8], isum: i32) -> f32 {
    #[allow(clippy::cast_precision_loss)] // |isum| <= 32 · 128 · 128 < 2^24: exact
    let s = isum as f32;
    block_scale(w) * block_scale(a) * s
}

#[cfg(test)]
mod tests;

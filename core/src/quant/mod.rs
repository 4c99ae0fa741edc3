//! Block-quantised storage formats (ggml's layouts), one file each, and the activation
//! quantisation the integer dot products use.
//!
//! Layouts from ggml's `ggml-common.h`. Blocks are handled as `[u8; N]` arrays (via
//! `as_chunks`), so no cast, alignment or `unsafe` is involved.

pub mod group8;
pub mod q4_0;
pub mod q8_0;

/// Elements per block for Q8_0 and Q4_0 (`QK8_0`, `QK4_0`).
pub const QK: usize = 32;

/// Activation blocks quantised at once by a quantised matrix-vector product: 64 blocks (2,048
/// values, 2,176 bytes of stack) per pass over the rows.
pub(crate) const ACT_CHUNK_BLOCKS: usize = 64;

/// The f16 scale at the start of a block, as `f32`.
#[inline(always)]
pub(crate) fn block_scale(block: &[u8]) -> f32 {
    match block.first_chunk::<2>() {
        Some(d) => crate::kernels::f16_to_f32(*d),
        None => 0.0,
    }
}

/// One block's term of an integer dot product, `(d_w · d_a) · isum` (`isum` the block's exact
/// `i32` dot), rounded as every kernel (scalar reference and SIMD) must round it to stay
/// bit-identical: the two scales multiplied first.
#[inline(always)]
pub(crate) fn block_term(w: &[u8], a: &[u8], isum: i32) -> f32 {
    #[allow(clippy::cast_precision_loss)] // |isum| <= 32 · 128 · 128 = 2^19 < 2^24: exact
    let s = isum as f32;
    block_scale(w) * block_scale(a) * s
}

#[cfg(test)]
mod tests;

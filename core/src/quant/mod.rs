//! Block-quantised storage formats (ggml's layouts), one file each, and the activation
//! quantisation the integer dot products use.
//!
//! Layouts from ggml's `ggml-common.h`. Blocks are handled as `[u8; N]` arrays (via
//! `as_chunks`), so no cast, alignment or `unsafe` is involved.

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

#[cfg(test)]
mod tests;

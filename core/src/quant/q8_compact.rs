//! The int8 blocks of the latent cache's `q8-compact` rows ([`CacheStorage::Q8Compact`]): an
//! f16 scale `d`, then up to 64 `i8` (a row's last block holds only the values left, so no
//! row is padded). Values are `d · q`, quantised as Q8_0 quantises a block.
//!
//! [`CacheStorage::Q8Compact`]: crate::cache::CacheStorage::Q8Compact

use super::f16::f16_to_f32;

/// Elements per block.
pub const Q8C_BLOCK_ELEMS: usize = 64;
/// Bytes per whole block: an f16 scale `d`, then 64 `i8`.
pub const Q8C_BLOCK_BYTES: usize = 2 + Q8C_BLOCK_ELEMS;

/// Bytes of `n` values: whole blocks of 66 bytes, and a last block of `2 + n % 64` bytes that
/// holds only the values left.
pub(crate) fn compact_bytes(n: usize) -> Option<usize> {
    let tail = n % Q8C_BLOCK_ELEMS;
    (n / Q8C_BLOCK_ELEMS).checked_mul(Q8C_BLOCK_BYTES)?.checked_add(if tail > 0 {
        2 + tail
    } else {
        0
    })
}

/// The blocks of `bytes` (laid out by [`compact_bytes`]), each as (scale, int8 values).
fn compact_blocks(bytes: &[u8]) -> impl Iterator<Item = (&[u8; 2], &[u8])> {
    bytes.chunks(Q8C_BLOCK_BYTES).filter_map(|b| b.split_first_chunk::<2>())
}

/// `x` into int8 blocks of up to 64 values (`out` holds `compact_bytes(x.len())`).
pub(crate) fn put_compact(x: &[f32], out: &mut [u8]) {
    for (block, xs) in out.chunks_mut(Q8C_BLOCK_BYTES).zip(x.chunks(Q8C_BLOCK_ELEMS)) {
        if let Some((scale, qs)) = block.split_first_chunk_mut::<2>() {
            super::q8_0::quantize_block(xs, scale, qs);
        }
    }
}

/// The reference of [`crate::kernels::Kernels::dequantize_compact`]: each block's values
/// `d · q` (`out.len()` values from blocks laid out by [`compact_bytes`]).
pub(crate) fn dequantize_compact(bytes: &[u8], out: &mut [f32]) {
    for ((scale, qs), os) in compact_blocks(bytes).zip(out.chunks_mut(Q8C_BLOCK_ELEMS)) {
        let d = f16_to_f32(*scale);
        for (o, q) in os.iter_mut().zip(qs) {
            *o = d * f32::from(i8::from_le_bytes([*q]));
        }
    }
}

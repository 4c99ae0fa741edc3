//! `Q8_K`: the activation format of the K-quant and IQ4_XS dot products (ggml's
//! `block_q8_K`) — 256 values per 292-byte block: an `f32` scale `d`, 256 `i8` values `q`,
//! then the sums of each 16 consecutive `q` as `i16` (`bsums`, so a weight format's mins and
//! offsets cost one multiply per 16 values). `x ≈ d · q`. Never stored in a file.

use super::q8_0::{amax, round_to_i8, RESIDUAL_SCALE};
use super::QK_K;

/// Bytes per block: `d` (4), `qs` (256), `bsums` (16 × 2).
pub const BLOCK_BYTES: usize = 4 + QK_K + 2 * BSUMS;
/// Sums per block, one per 16 values.
pub const BSUMS: usize = QK_K / 16;
/// A block as raw bytes: `d` (f32, little-endian), `qs[256]` (i8), `bsums[16]` (i16 LE).
pub type BlockQ8K = [u8; BLOCK_BYTES];
const _: () = assert!(BLOCK_BYTES == 292);

/// Byte offset of `qs`.
pub(crate) const QS: usize = 4;
/// Byte offset of `bsums`.
pub(crate) const BSUMS_AT: usize = QS + QK_K;

/// Quantises `x` into blocks: per block `d = max|x| / 127` (kept in `f32`), `q = round(x /
/// d)` (halves away from zero, in `-127..=127`), and the 16-value sums. A partial last block
/// is zero-padded. Blocks past the end of `x` are left alone.
pub fn quantize(x: &[f32], out: &mut [BlockQ8K]) {
    quantize_inlined(x, out);
}

/// [`quantize`], inlined into its caller: a kernel table compiles it for its own features
/// (the same operations on wider vectors, so the same bytes).
#[inline(always)]
pub(crate) fn quantize_inlined(x: &[f32], out: &mut [BlockQ8K]) {
    for (block, xs) in out.iter_mut().zip(x.chunks(QK_K)) {
        quantize_block(xs, block);
    }
}

/// Quantises `x` twice over, for [`crate::ActivationPrecision::Int16`], as
/// [`super::q8_0::quantize_with_residual`] does for Q8_0: `value` gets [`quantize`]'s
/// blocks, each `residual` block quantises `RESIDUAL_SCALE · (x − d · q)`.
pub fn quantize_with_residual(x: &[f32], value: &mut [BlockQ8K], residual: &mut [BlockQ8K]) {
    for ((v, r), xs) in value.iter_mut().zip(residual.iter_mut()).zip(x.chunks(QK_K)) {
        quantize_block(xs, v);
        let d = scale(v);
        let mut rest = [0.0f32; QK_K];
        for ((e, x), q) in rest.iter_mut().zip(xs).zip(values(v)) {
            *e = (x - d * f32::from(i8::from_le_bytes([*q]))) * RESIDUAL_SCALE;
        }
        quantize_block(rest.get(..xs.len()).unwrap_or(&rest), r);
    }
}

#[inline(always)]
fn quantize_block(xs: &[f32], block: &mut BlockQ8K) {
    let d = amax(xs) / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let (head, rest) = block.split_at_mut(QS);
    head.copy_from_slice(&d.to_le_bytes());
    let (qs, bsums) = rest.split_at_mut(QK_K);
    qs.fill(0);
    for (q, v) in qs.iter_mut().zip(xs) {
        *q = round_to_i8(v * id).to_le_bytes()[0];
    }
    for (s, group) in bsums.as_chunks_mut::<2>().0.iter_mut().zip(qs.chunks_exact(16)) {
        let sum: i16 = group.iter().map(|q| i16::from(i8::from_le_bytes([*q]))).sum();
        *s = sum.to_le_bytes();
    }
}

/// The block's scale `d`.
#[inline(always)]
pub(crate) fn scale(block: &BlockQ8K) -> f32 {
    block.first_chunk::<4>().map_or(0.0, |d| f32::from_le_bytes(*d))
}

/// The block's 256 values as bytes (each an `i8`).
#[inline(always)]
pub(crate) fn values(block: &BlockQ8K) -> &[u8; QK_K] {
    const EMPTY: [u8; QK_K] = [0; QK_K];
    block.get(QS..).and_then(<[u8]>::first_chunk::<QK_K>).unwrap_or(&EMPTY)
}

/// Value `i` of a block's values as `i32`.
#[inline(always)]
pub(crate) fn value(qs: &[u8; QK_K], i: usize) -> i32 {
    qs.get(i).map_or(0, |q| i32::from(i8::from_le_bytes([*q])))
}

/// Sum `j` (of values `16 j .. 16 j + 16`).
#[inline(always)]
pub(crate) fn bsum(block: &BlockQ8K, j: usize) -> i32 {
    let at = BSUMS_AT + 2 * j;
    block
        .get(at..)
        .and_then(<[u8]>::first_chunk::<2>)
        .map_or(0, |s| i32::from(i16::from_le_bytes(*s)))
}

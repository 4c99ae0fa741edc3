//! `Q4_0`: 32 weights per 18-byte block — an f16 scale `d`, then 16 bytes of nibbles;
//! `x = d · (q − 8)`. The low nibble of byte `j` is element `j`, the high nibble element
//! `j + 16`. 4.5 bits per weight.

use super::{block_scale, block_term, q8_0::BlockQ8_0, QK};

/// Bytes per block.
pub const BLOCK_BYTES: usize = 2 + QK / 2;
/// A block as raw bytes: `d` (f16, little-endian), then `qs[16]`.
pub type BlockQ4_0 = [u8; BLOCK_BYTES];
const _: () = assert!(core::mem::size_of::<BlockQ4_0>() == 18);

/// The 32 signed 4-bit values of a block, in element order.
#[inline(always)]
pub(crate) fn values(block: &BlockQ4_0) -> [i8; QK] {
    let mut v = [0i8; QK];
    let (lo, hi) = v.split_at_mut(QK / 2);
    for ((l, h), b) in lo.iter_mut().zip(hi.iter_mut()).zip(block.iter().skip(2)) {
        // Nibbles are 0..=15, so `- 8` stays in i8.
        *l = i8::from_le_bytes([b & 0x0f]) - 8;
        *h = i8::from_le_bytes([b >> 4]) - 8;
    }
    v
}

/// `acc[i] += p · dequant(blocks)[i]`.
pub fn axpy(acc: &mut [f32], p: f32, blocks: &[BlockQ4_0]) {
    for (block, out) in blocks.iter().zip(acc.chunks_mut(QK)) {
        let scale = p * block_scale(block);
        for (o, q) in out.iter_mut().zip(values(block)) {
            *o += scale * f32::from(q);
        }
    }
}

/// `Σ w[i]·a[i]` over Q4_0 weight blocks and Q8_0 activation blocks (ggml's
/// `vec_dot_q4_0_q8_0`): an `i32` sum per block, one scale multiply per block.
#[inline]
pub fn dot_q8_0(w: &[BlockQ4_0], a: &[BlockQ8_0]) -> f32 {
    dot_q8_0_from(0.0, w, a)
}

/// [`dot_q8_0`] continuing a running sum `sum` (the blocks' terms are added to it in order).
#[inline]
pub(crate) fn dot_q8_0_from(mut sum: f32, w: &[BlockQ4_0], a: &[BlockQ8_0]) -> f32 {
    for (wb, ab) in w.iter().zip(a) {
        sum += block_term(wb, ab, block_isum(wb, ab));
    }
    sum
}

/// [`dot_q8_0`] given the activation blocks' scales as `f32` (see
/// [`super::q8_0::dot_q8_0_scaled`]): bit-identical.
#[allow(clippy::cast_precision_loss)] // |isum| <= 32 · 8 · 128 < 2^24: exact
pub fn dot_q8_0_scaled(w: &[BlockQ4_0], a: &[BlockQ8_0], a_scales: &[f32]) -> f32 {
    let mut sum = 0.0f32;
    for ((wb, ab), d_a) in w.iter().zip(a).zip(a_scales) {
        sum += (super::block_scale(wb) * d_a) * block_isum(wb, ab) as f32;
    }
    sum
}

/// The exact `Σ q_w · q_a` of a block pair.
#[inline(always)]
fn block_isum(wb: &BlockQ4_0, ab: &BlockQ8_0) -> i32 {
    let mut isum = 0i32;
    for (x, y) in values(wb).iter().zip(ab.iter().skip(2)) {
        isum += i32::from(*x) * i32::from(i8::from_le_bytes([*y]));
    }
    isum
}

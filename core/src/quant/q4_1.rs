//! `Q4_1`: 32 weights per 20-byte block — an f16 scale `d`, an f16 min `m`, then 16 bytes of
//! nibbles; `x = d · q + m` with `q` in `0..=15`. The low nibble of byte `j` is element `j`,
//! the high nibble element `j + 16`. 5 bits per weight.

use super::{f16_at, min_block_term, q8_0::BlockQ8_0, QK};

/// Bytes per block.
pub const BLOCK_BYTES: usize = 4 + QK / 2;
/// A block as raw bytes: `d`, `m` (f16, little-endian), then `qs[16]`.
pub type BlockQ4_1 = [u8; BLOCK_BYTES];
const _: () = assert!(core::mem::size_of::<BlockQ4_1>() == 20);

/// The 32 unsigned 4-bit values of a block, in element order.
#[inline(always)]
pub(crate) fn values(block: &BlockQ4_1) -> [u8; QK] {
    let mut v = [0u8; QK];
    let (lo, hi) = v.split_at_mut(QK / 2);
    for ((l, h), b) in lo.iter_mut().zip(hi.iter_mut()).zip(block.iter().skip(4)) {
        *l = b & 0x0f;
        *h = b >> 4;
    }
    v
}

/// `out[i] = dequant(blocks)[i]`, each `d · q + m` in `f32` (gguf-py's and ggml's rounding).
pub fn dequantize(blocks: &[BlockQ4_1], out: &mut [f32]) {
    for (block, out) in blocks.iter().zip(out.chunks_mut(QK)) {
        let (d, m) = (f16_at(block, 0), f16_at(block, 2));
        for (o, q) in out.iter_mut().zip(values(block)) {
            *o = d * f32::from(q) + m;
        }
    }
}

/// `Σ w[i]·a[i]` over Q4_1 weight blocks and Q8_0 activation blocks: per block the exact
/// `Σ q_w·q_a` and `Σ q_a`, then `min_block_term`.
pub fn dot_q8_0(w: &[BlockQ4_1], a: &[BlockQ8_0]) -> f32 {
    dot_q8_0_from(0.0, w, a)
}

/// [`dot_q8_0`] continuing a running sum `sum` (the blocks' terms are added to it in order).
#[inline]
pub(crate) fn dot_q8_0_from(mut sum: f32, w: &[BlockQ4_1], a: &[BlockQ8_0]) -> f32 {
    for (wb, ab) in w.iter().zip(a) {
        let (mut isum, mut asum) = (0i32, 0i32);
        for (x, y) in values(wb).iter().zip(ab.iter().skip(2)) {
            let y = i32::from(i8::from_le_bytes([*y]));
            isum += i32::from(*x) * y;
            asum += y;
        }
        sum += min_block_term(f16_at(wb, 0), f16_at(wb, 2), ab, isum, asum);
    }
    sum
}

//! `Q5_1`: 32 weights per 24-byte block — an f16 scale `d`, an f16 min `m`, 4 bytes `qh` (a
//! little-endian `u32` of fifth bits, bit `j` for element `j`), then 16 bytes of nibbles as
//! in Q4_1; `x = d · q + m` with `q` in `0..=31`. 6 bits per weight.

use super::{f16_at, min_block_term, q5_0::five_bit_values, q8_0::BlockQ8_0, QK};

/// Bytes per block.
pub const BLOCK_BYTES: usize = 8 + QK / 2;
/// A block as raw bytes: `d`, `m` (f16), `qh[4]`, then `qs[16]`.
pub type BlockQ5_1 = [u8; BLOCK_BYTES];
const _: () = assert!(core::mem::size_of::<BlockQ5_1>() == 24);

/// The 32 unsigned 5-bit values of a block, in element order.
#[inline(always)]
pub(crate) fn values(block: &BlockQ5_1) -> [u8; QK] {
    five_bit_values(block.get(4..).unwrap_or(&[]))
}

/// `out[i] = dequant(blocks)[i]`, each `d · q + m` in `f32`.
pub fn dequantize(blocks: &[BlockQ5_1], out: &mut [f32]) {
    for (block, out) in blocks.iter().zip(out.chunks_mut(QK)) {
        let (d, m) = (f16_at(block, 0), f16_at(block, 2));
        for (o, q) in out.iter_mut().zip(values(block)) {
            *o = d * f32::from(q) + m;
        }
    }
}

/// `Σ w[i]·a[i]` over Q5_1 weight blocks and Q8_0 activation blocks, as Q4_1's.
pub fn dot_q8_0(w: &[BlockQ5_1], a: &[BlockQ8_0]) -> f32 {
    dot_q8_0_from(0.0, w, a)
}

/// [`dot_q8_0`] continuing a running sum `sum` (the blocks' terms are added to it in order).
#[inline]
pub(crate) fn dot_q8_0_from(mut sum: f32, w: &[BlockQ5_1], a: &[BlockQ8_0]) -> f32 {
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

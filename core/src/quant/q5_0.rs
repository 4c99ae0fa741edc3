//! `Q5_0`: 32 weights per 22-byte block — an f16 scale `d`, 4 bytes `qh` (a little-endian
//! `u32` of fifth bits, bit `j` for element `j`), then 16 bytes of nibbles as in Q4_0;
//! `x = d · (q − 16)` with `q` in `0..=31`. 5.5 bits per weight.

use super::{block_term, f16_at, q8_0::BlockQ8_0, QK};

/// Bytes per block.
pub const BLOCK_BYTES: usize = 6 + QK / 2;
/// A block as raw bytes: `d` (f16), `qh[4]`, then `qs[16]`.
pub type BlockQ5_0 = [u8; BLOCK_BYTES];
const _: () = assert!(core::mem::size_of::<BlockQ5_0>() == 22);

/// The 32 unsigned 5-bit values of `qh[4]` followed by `qs[16]`, in element order: element
/// `j < 16` is the low nibble of `qs[j]` plus bit `j` of `qh` as 16, element `j + 16` the
/// high nibble plus bit `j + 16`.
#[inline(always)]
pub(crate) fn five_bit_values(qh_qs: &[u8]) -> [u8; QK] {
    let qh = qh_qs.first_chunk::<4>().map_or(0, |b| u32::from_le_bytes(*b));
    let mut v = [0u8; QK];
    let (lo, hi) = v.split_at_mut(QK / 2);
    for (j, ((l, h), b)) in lo.iter_mut().zip(hi.iter_mut()).zip(qh_qs.iter().skip(4)).enumerate() {
        let bit = |i: usize| u8::from((qh >> i) & 1 == 1) << 4;
        *l = (b & 0x0f) | bit(j);
        *h = (b >> 4) | bit(j + 16);
    }
    v
}

/// The 32 signed values `q − 16` of a block, in element order.
#[inline(always)]
pub(crate) fn values(block: &BlockQ5_0) -> [i8; QK] {
    // 0..=31 - 16 stays in i8.
    five_bit_values(block.get(2..).unwrap_or(&[])).map(|q| i8::from_le_bytes([q]) - 16)
}

/// `out[i] = dequant(blocks)[i]`, each `d · (q − 16)` in `f32`.
pub fn dequantize(blocks: &[BlockQ5_0], out: &mut [f32]) {
    for (block, out) in blocks.iter().zip(out.chunks_mut(QK)) {
        let d = f16_at(block, 0);
        for (o, q) in out.iter_mut().zip(values(block)) {
            *o = d * f32::from(q);
        }
    }
}

/// `Σ w[i]·a[i]` over Q5_0 weight blocks and Q8_0 activation blocks: an exact `i32` sum and
/// one `block_term` per block, as Q4_0's.
pub fn dot_q8_0(w: &[BlockQ5_0], a: &[BlockQ8_0]) -> f32 {
    dot_q8_0_from(0.0, w, a)
}

/// [`dot_q8_0`] continuing a running sum `sum` (the blocks' terms are added to it in order).
#[inline]
pub(crate) fn dot_q8_0_from(mut sum: f32, w: &[BlockQ5_0], a: &[BlockQ8_0]) -> f32 {
    for (wb, ab) in w.iter().zip(a) {
        let mut isum = 0i32;
        for (x, y) in values(wb).iter().zip(ab.iter().skip(2)) {
            isum += i32::from(*x) * i32::from(i8::from_le_bytes([*y]));
        }
        sum += block_term(wb, ab, isum);
    }
    sum
}

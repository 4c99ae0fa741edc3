//! `IQ4_NL`: 32 weights per 18-byte block — an f16 scale `d`, then 16 bytes of nibbles laid
//! out as in Q4_0, each an index into the non-linear grid [`IQ4_VALUES`]; `x = d ·
//! IQ4_VALUES[q]`. 4.5 bits per weight.

use super::{block_term, f16_at, q8_0::BlockQ8_0, IQ4_VALUES, QK};

/// Bytes per block.
pub const BLOCK_BYTES: usize = 2 + QK / 2;
/// A block as raw bytes: `d` (f16), then `qs[16]`.
pub type BlockIq4Nl = [u8; BLOCK_BYTES];
const _: () = assert!(core::mem::size_of::<BlockIq4Nl>() == 18);

/// The grid value of nibble `q`.
#[inline(always)]
pub(crate) fn grid(q: u8) -> i8 {
    IQ4_VALUES.get(usize::from(q & 0x0f)).copied().unwrap_or(0)
}

/// The 32 grid values of 16 bytes of nibbles, in element order (low nibbles first).
#[inline(always)]
pub(crate) fn grid_values(qs: &[u8]) -> [i8; QK] {
    let mut v = [0i8; QK];
    let (lo, hi) = v.split_at_mut(QK / 2);
    for ((l, h), b) in lo.iter_mut().zip(hi.iter_mut()).zip(qs) {
        *l = grid(*b);
        *h = grid(*b >> 4);
    }
    v
}

/// `out[i] = dequant(blocks)[i]`, each `d · grid` in `f32`.
pub fn dequantize(blocks: &[BlockIq4Nl], out: &mut [f32]) {
    for (block, out) in blocks.iter().zip(out.chunks_mut(QK)) {
        let d = f16_at(block, 0);
        for (o, q) in out.iter_mut().zip(grid_values(block.get(2..).unwrap_or(&[]))) {
            *o = d * f32::from(q);
        }
    }
}

/// `Σ w[i]·a[i]` over IQ4_NL weight blocks and Q8_0 activation blocks: an exact `i32` sum
/// (`|isum| <= 32 · 127 · 127 < 2^24`) and one `block_term` per block.
pub fn dot_q8_0(w: &[BlockIq4Nl], a: &[BlockQ8_0]) -> f32 {
    dot_q8_0_from(0.0, w, a)
}

/// [`dot_q8_0`] continuing a running sum `sum` (the blocks' terms are added to it in order).
#[inline]
pub(crate) fn dot_q8_0_from(mut sum: f32, w: &[BlockIq4Nl], a: &[BlockQ8_0]) -> f32 {
    for (wb, ab) in w.iter().zip(a) {
        let mut isum = 0i32;
        for (x, y) in grid_values(wb.get(2..).unwrap_or(&[])).iter().zip(ab.iter().skip(2)) {
            isum += i32::from(*x) * i32::from(i8::from_le_bytes([*y]));
        }
        sum += block_term(wb, ab, isum);
    }
    sum
}

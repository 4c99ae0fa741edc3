//! IEEE binary16, the scale type of every block format and the element type of F16 tensors
//! and f16 cache rows.

/// IEEE binary16 (little-endian bytes) to `f32`, exactly, without branches on the common path
/// so LLVM vectorises loops over it (the `half` crate's portable path converts one value at a
/// time unless the target has F16C).
///
/// Shifting the 15 exponent+mantissa bits into place and multiplying by 2^112 re-biases the
/// exponent (127 − 15); the multiply also normalises subnormals. Inf/NaN keep an all-ones
/// exponent. Checked against `half` for all 65,536 inputs.
#[inline(always)]
pub fn f16_to_f32(bytes: [u8; 2]) -> f32 {
    let h = u32::from(u16::from_le_bytes(bytes));
    let sign = (h & 0x8000) << 16;
    let magnitude = h & 0x7fff;
    let scaled = f32::from_bits(magnitude << 13) * f32::from_bits(0x7780_0000); // 2^112
    let bits = if magnitude >= 0x7c00 { (magnitude << 13) | 0x7f80_0000 } else { scaled.to_bits() };
    f32::from_bits(bits | sign)
}

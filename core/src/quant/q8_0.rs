//! `Q8_0`: 32 weights per 34-byte block — an f16 scale `d`, then 32 `i8` values `q`;
//! `x = d · q`. 8.5 bits per weight. Also the activation format of the integer dot products.

use half::f16;

use super::{block_scale, block_term, QK};

/// Bytes per block.
pub const BLOCK_BYTES: usize = 2 + QK;
/// A block as raw bytes: `d` (f16, little-endian), then `qs[32]`.
pub type BlockQ8_0 = [u8; BLOCK_BYTES];
const _: () = assert!(core::mem::size_of::<BlockQ8_0>() == 34);

/// ggml's `quantize_row_q8_0_ref`: per block `d = max|x| / 127`, `q = round(x / d)`. A
/// partial last block is zero-padded. Blocks past the end of `x` are left alone.
pub fn quantize(x: &[f32], out: &mut [BlockQ8_0]) {
    for (block, xs) in out.iter_mut().zip(x.chunks(QK)) {
        if let Some((scale, qs)) = block.split_first_chunk_mut::<2>() {
            quantize_block(xs, scale, qs);
        }
    }
}

/// One block of int8 values with an f16 scale, the rounding every int8 format here shares:
/// `d = max|xs| / 127` into `scale`, `q = round(x / d)` into `qs` (its bytes past `xs.len()`
/// zeroed). `q` is always in `-127..=127`.
pub(crate) fn quantize_block(xs: &[f32], scale: &mut [u8; 2], qs: &mut [u8]) {
    let amax = xs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    *scale = f16::from_f32(d).to_le_bytes();
    qs.fill(0);
    for (q, v) in qs.iter_mut().zip(xs) {
        // |v · id| <= 127 for finite scales; the clamp covers a subnormal `d` whose inverse
        // overflows, and NaN becomes 0 in `as`, so the cast cannot truncate.
        #[allow(clippy::cast_possible_truncation)]
        let qi = round_half_away(v * id).clamp(-127.0, 127.0) as i8;
        *q = qi.to_le_bytes()[0];
    }
}

/// `roundf(y)` (halves away from zero) wherever the result is then clamped to `-127..=127`
/// and cast to `i8`, as [`quantize_block`] does; unlike `libm::roundf` (a call per value) it
/// is a truncating cast, a subtraction and two compares, which LLVM vectorises.
/// `y as i32` truncates toward zero (NaN to 0, beyond `i32` saturating, where the clamp takes
/// over), and `y - t` is exact for `|y| < 2^23`; above that every `f32` is an integer and the
/// fraction is 0.
#[inline(always)]
fn round_half_away(y: f32) -> f32 {
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)] // see above
    let t = (y as i32) as f32;
    let frac = y - t;
    t + if frac >= 0.5 {
        1.0
    } else if frac <= -0.5 {
        -1.0
    } else {
        0.0
    }
}

/// `acc[i] += p · dequant(blocks)[i]`.
pub fn axpy(acc: &mut [f32], p: f32, blocks: &[BlockQ8_0]) {
    for (block, out) in blocks.iter().zip(acc.chunks_mut(QK)) {
        let scale = p * block_scale(block);
        for (o, q) in out.iter_mut().zip(block.iter().skip(2)) {
            *o += scale * f32::from(i8::from_le_bytes([*q]));
        }
    }
}

/// `Σ w[i]·a[i]` over Q8_0 weight blocks and Q8_0 activation blocks: an `i32` sum per block
/// and one scale multiply per block (ggml's `vec_dot_q8_0_q8_0`).
#[inline]
pub fn dot_q8_0(w: &[BlockQ8_0], a: &[BlockQ8_0]) -> f32 {
    dot_q8_0_from(0.0, w, a)
}

/// [`dot_q8_0`] continuing a running sum `sum` (the blocks' terms are added to it in order).
#[inline]
pub(crate) fn dot_q8_0_from(mut sum: f32, w: &[BlockQ8_0], a: &[BlockQ8_0]) -> f32 {
    for (wb, ab) in w.iter().zip(a) {
        let mut isum = 0i32;
        for (x, y) in wb.iter().skip(2).zip(ab.iter().skip(2)) {
            isum += i32::from(i8::from_le_bytes([*x])) * i32::from(i8::from_le_bytes([*y]));
        }
        sum += block_term(wb, ab, isum);
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `round_half_away` then clamp and cast equals `libm::roundf` then clamp and cast: every
    /// value within a few ulps of each half-integer in -130..=130 (where the ties are), a
    /// stride through all 2^32 bit patterns (NaN, infinities, subnormals, huge), and the
    /// values past `i32`'s range.
    #[test]
    fn rounding_equals_roundf_after_the_clamp() {
        let q = |y: f32| round_half_away(y).clamp(-127.0, 127.0) as i8;
        let want = |y: f32| libm::roundf(y).clamp(-127.0, 127.0) as i8;
        let mut checked = 0u64;
        let mut check = |y: f32| {
            assert_eq!(q(y), want(y), "y = {y:e} ({:#010x})", y.to_bits());
            checked += 1;
        };
        for h in -260i32..=260 {
            let centre = h as f32 / 2.0;
            let bits = centre.to_bits();
            for d in 0..=8u32 {
                check(f32::from_bits(bits.wrapping_add(d)));
                check(f32::from_bits(bits.wrapping_sub(d)));
            }
        }
        let stride = if cfg!(miri) { 0x00ff_ffff } else { 0x0000_1fff };
        let mut bits = 0u32;
        while let Some(next) = bits.checked_add(stride) {
            check(f32::from_bits(bits));
            bits = next;
        }
        for y in [2.2e9f32, -2.2e9, 3e38, -3e38, f32::INFINITY, f32::NEG_INFINITY, f32::NAN] {
            check(y);
        }
        assert!(checked > 9_000);
    }
}

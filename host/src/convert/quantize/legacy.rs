//! The 32-weight block formats' reference quantizers (ggml's `quantize_row_q4_0_ref`,
//! `_q4_1_ref`, `_q5_0_ref`, `_q5_1_ref`): one block from 32 values, byte-identical to ggml's
//! and gguf-py's. Block layouts as in `ggml-common.h` (and `tinymla_core::quant`).

use tinymla_core::quant::{q4_0, q4_1, q5_0, q5_1, QK};

use super::search::{inverse, signed_absmax, to_f16};

/// The smallest and largest value (`f32::MAX` / `-f32::MAX` for an empty block).
fn min_max(xs: &[f32]) -> (f32, f32) {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &x in xs {
        if x < min {
            min = x;
        }
        if x > max {
            max = x;
        }
    }
    (min, max)
}

/// C's `(int8_t) f` for the non-negative `f` these quantizers convert (truncation; Rust's
/// saturating cast agrees wherever C's is defined).
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn trunc_u8(f: f32) -> u8 {
    f as i8 as u8
}

/// Q4_0: `d = max / −8` (the signed first largest magnitude), `q = min(15, trunc(x / d +
/// 8.5))`; byte `j` holds `q[j] | q[j + 16] << 4`.
pub(super) fn q4_0(xs: &[f32; QK]) -> [u8; q4_0::BLOCK_BYTES] {
    let d = signed_absmax(xs).0 / -8.0;
    let id = inverse(d);
    let mut block = [0u8; q4_0::BLOCK_BYTES];
    block[..2].copy_from_slice(&to_f16(d));
    let q = |x: f32| trunc_u8(x * id + 8.5).min(15);
    for j in 0..QK / 2 {
        block[2 + j] = q(xs[j]) | (q(xs[j + QK / 2]) << 4);
    }
    block
}

/// Q4_1: `d = (max − min) / 15`, `m = min`, `q = min(15, trunc((x − min) / d + 0.5))`.
pub(super) fn q4_1(xs: &[f32; QK]) -> [u8; q4_1::BLOCK_BYTES] {
    let (min, max) = min_max(xs);
    let d = (max - min) / 15.0;
    let id = inverse(d);
    let mut block = [0u8; q4_1::BLOCK_BYTES];
    block[..2].copy_from_slice(&to_f16(d));
    block[2..4].copy_from_slice(&to_f16(min));
    let q = |x: f32| trunc_u8((x - min) * id + 0.5).min(15);
    for j in 0..QK / 2 {
        block[4 + j] = q(xs[j]) | (q(xs[j + QK / 2]) << 4);
    }
    block
}

/// Writes 5-bit levels as Q5_0 / Q5_1 store them: the low nibbles in `qs` (`q[j] | q[j + 16]
/// << 4`), the fifth bits in the little-endian `u32` `qh` (bit `j` for `q[j]`).
fn put_5bit(levels: &[u8; QK], qh: &mut [u8], qs: &mut [u8]) {
    let mut high = 0u32;
    for j in 0..QK / 2 {
        let (a, b) = (levels[j], levels[j + QK / 2]);
        qs[j] = (a & 0x0f) | ((b & 0x0f) << 4);
        high |= u32::from((a & 0x10) >> 4) << j;
        high |= u32::from((b & 0x10) >> 4) << (j + QK / 2);
    }
    qh.copy_from_slice(&high.to_le_bytes());
}

/// Q5_0: `d = max / −16`, `q = min(31, trunc(x / d + 16.5))`.
pub(super) fn q5_0(xs: &[f32; QK]) -> [u8; q5_0::BLOCK_BYTES] {
    let d = signed_absmax(xs).0 / -16.0;
    let id = inverse(d);
    let mut levels = [0u8; QK];
    for (l, &x) in levels.iter_mut().zip(xs) {
        *l = trunc_u8(x * id + 16.5).min(31);
    }
    let mut block = [0u8; q5_0::BLOCK_BYTES];
    block[..2].copy_from_slice(&to_f16(d));
    let (qh, qs) = block[2..].split_at_mut(4);
    put_5bit(&levels, qh, qs);
    block
}

/// Q5_1: `d = (max − min) / 31`, `m = min`, `q = trunc((x − min) / d + 0.5)` (no clamp, as
/// in ggml: the value is at most 31.5).
pub(super) fn q5_1(xs: &[f32; QK]) -> [u8; q5_1::BLOCK_BYTES] {
    let (min, max) = min_max(xs);
    let d = (max - min) / 31.0;
    let id = inverse(d);
    let mut levels = [0u8; QK];
    for (l, &x) in levels.iter_mut().zip(xs) {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let q = ((x - min) * id + 0.5) as u8;
        *l = q;
    }
    let mut block = [0u8; q5_1::BLOCK_BYTES];
    block[..2].copy_from_slice(&to_f16(d));
    block[2..4].copy_from_slice(&to_f16(min));
    let (qh, qs) = block[4..].split_at_mut(4);
    put_5bit(&levels, qh, qs);
    block
}

#[cfg(test)]
mod tests {
    use super::*;
    use tinymla_core::quant::format::BlockFormat;

    /// A block with both signs, a repeated largest magnitude and a zero.
    fn sample() -> [f32; QK] {
        let mut xs = [0.0f32; QK];
        for (i, x) in xs.iter_mut().enumerate() {
            *x = (i as f32 - 11.0) * 0.25;
        }
        xs[3] = -5.0;
        xs[20] = 5.0;
        xs
    }

    #[test]
    fn q4_0_matches_the_reference_formula() {
        let block = q4_0(&sample());
        let d = half::f16::from_le_bytes([block[0], block[1]]).to_f32();
        assert_eq!(d, 5.0 / 8.0); // max = −5.0 (first), d = −5 / −8
        assert_eq!(block[2 + 3] & 0x0f, 0); // −5 / 0.625 + 8.5 = 0.5 → 0
        assert_eq!(block[2 + 4] >> 4, 15); // xs[20] = 5 → 16.5 → 16 → clipped to 15
    }

    /// Each format's blocks dequantize (by the engine's own dequantizer) to within half a
    /// step of the input: a level or a nibble in the wrong place would be far off.
    #[test]
    fn blocks_round_trip_within_half_a_step() {
        let xs = sample();
        let (min, max) = min_max(&xs);
        let cases: [(BlockFormat, Vec<u8>, f32); 3] = [
            (BlockFormat::Q4_1, q4_1(&xs).to_vec(), (max - min) / 15.0),
            (BlockFormat::Q5_0, q5_0(&xs).to_vec(), 5.0 / 16.0),
            (BlockFormat::Q5_1, q5_1(&xs).to_vec(), (max - min) / 31.0),
        ];
        for (format, bytes, step) in cases {
            let mut out = [0.0f32; QK];
            format.dequantize(&bytes, &mut out);
            for (i, (&x, &y)) in xs.iter().zip(&out).enumerate() {
                // Q5_0's grid is −16..=15 steps of 5/16: +5 clips to 15 steps (4.6875).
                let tol = if format == BlockFormat::Q5_0 && x == 5.0 { step } else { step * 0.51 };
                assert!((x - y).abs() <= tol, "{format:?} [{i}]: {x} -> {y}");
            }
        }
    }
}

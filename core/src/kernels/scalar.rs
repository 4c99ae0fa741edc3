//! Scalar reference kernels. These define the results every SIMD variant must reproduce.
//!
//! Length contract: operands are zipped, so extra elements of the longer operand are ignored.
//! Callers size their buffers from a validated [`crate::ModelConfig`], where lengths agree.

pub use crate::quant::f16::f16_to_f32;
pub(crate) use crate::quant::{max_non_nan, min_non_nan};

/// Independent accumulators per dot product: enough for LLVM to fill an AVX2 register pair and
/// hide FMA latency, few enough for the 16 FP registers of a Cortex-M4F.
const LANES: usize = 8;

/// `Σ a[i]·b[i]` over `f32` slices.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (a_chunks, a_tail) = a.as_chunks::<LANES>();
    let (b_chunks, b_tail) = b.as_chunks::<LANES>();
    if cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
        for (x, y) in a_chunks.iter().zip(b_chunks) {
            for ((s, xi), yi) in acc.iter_mut().zip(x).zip(y) {
                *s += xi * yi;
            }
        }
    } else {
        // Without vector units (the boards, built for size): the same sums in named lanes.
        for (x, y) in a_chunks.iter().zip(b_chunks) {
            acc = lanes_mul_add(acc, x, y);
        }
    }
    let mut sum = reduce(acc);
    for (x, y) in a_tail.iter().zip(b_tail) {
        sum += x * y;
    }
    sum
}

/// `Σ w[i]·x[i]` where `w` is little-endian `f32` bytes (4 per element) from a model file.
#[inline]
pub fn dot_f32_le(w: &[u8], x: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (w_chunks, w_tail) = w.as_chunks::<{ 4 * LANES }>();
    let (x_chunks, x_tail) = x.as_chunks::<LANES>();
    for (wc, xc) in w_chunks.iter().zip(x_chunks) {
        let (wv, _) = wc.as_chunks::<4>();
        for ((s, wb), xi) in acc.iter_mut().zip(wv).zip(xc) {
            *s += f32::from_le_bytes(*wb) * xi;
        }
    }
    let mut sum = reduce(acc);
    let (w_tail, _) = w_tail.as_chunks::<4>();
    for (wb, xi) in w_tail.iter().zip(x_tail) {
        sum += f32::from_le_bytes(*wb) * xi;
    }
    sum
}

/// `Σ w[i]·x[i]` where `w` is little-endian IEEE `f16` bytes (2 per element).
#[inline]
pub fn dot_f16_le(w: &[u8], x: &[f32]) -> f32 {
    dot_halves_le(w, x, f16_to_f32)
}

/// `Σ w[i]·x[i]` where `w` is little-endian `bf16` bytes (2 per element; the upper half of an
/// `f32`, so each converts exactly), summed in lanes like [`dot_f16_le`].
#[inline]
pub fn dot_bf16_le(w: &[u8], x: &[f32]) -> f32 {
    dot_halves_le(w, x, bf16_to_f32)
}

/// `Σ widen(w[i])·x[i]` over 2-byte weights, in [`LANES`] lanes, then the tail in order.
#[inline(always)]
fn dot_halves_le(w: &[u8], x: &[f32], widen: impl Fn([u8; 2]) -> f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (w_chunks, w_tail) = w.as_chunks::<{ 2 * LANES }>();
    let (x_chunks, x_tail) = x.as_chunks::<LANES>();
    for (wc, xc) in w_chunks.iter().zip(x_chunks) {
        let (wv, _) = wc.as_chunks::<2>();
        for ((s, wb), xi) in acc.iter_mut().zip(wv).zip(xc) {
            *s += widen(*wb) * xi;
        }
    }
    let mut sum = reduce(acc);
    let (w_tail, _) = w_tail.as_chunks::<2>();
    for (wb, xi) in w_tail.iter().zip(x_tail) {
        sum += widen(*wb) * xi;
    }
    sum
}

/// A little-endian `bf16` as `f32` (exact: its bits are the `f32`'s upper half).
#[inline(always)]
pub fn bf16_to_f32(b: [u8; 2]) -> f32 {
    f32::from_bits(u32::from(u16::from_le_bytes(b)) << 16)
}

/// [`f16_to_f32`] of every 2-byte little-endian half in `bytes`, into `out` (as many as both
/// hold).
pub fn f16s_to_f32(bytes: &[u8], out: &mut [f32]) {
    let (halves, _) = bytes.as_chunks::<2>();
    for (o, h) in out.iter_mut().zip(halves) {
        *o = f16_to_f32(*h);
    }
}

/// `acc[i] + x[i] · y[i]` per lane, the lanes named so that a build without vectors keeps
/// them in registers (an array indexed in a loop stays in memory at `opt-level = "s"`).
#[inline(always)]
fn lanes_mul_add(acc: [f32; LANES], x: &[f32; LANES], y: &[f32; LANES]) -> [f32; LANES] {
    let [s0, s1, s2, s3, s4, s5, s6, s7] = acc;
    let [x0, x1, x2, x3, x4, x5, x6, x7] = *x;
    let [y0, y1, y2, y3, y4, y5, y6, y7] = *y;
    [
        s0 + x0 * y0,
        s1 + x1 * y1,
        s2 + x2 * y2,
        s3 + x3 * y3,
        s4 + x4 * y4,
        s5 + x5 * y5,
        s6 + x6 * y6,
        s7 + x7 * y7,
    ]
}

/// Pairwise sum of the accumulators (a fixed order, so results are reproducible).
#[inline]
fn reduce(acc: [f32; LANES]) -> f32 {
    let [a0, a1, a2, a3, a4, a5, a6, a7] = acc;
    ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7))
}

/// `y[i] += a · x[i]`.
#[inline]
pub fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

/// `y[i] += x[i]`.
#[inline]
pub fn add_assign(y: &mut [f32], x: &[f32]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += xi;
    }
}

/// RMSNorm as transformers computes it in f32: `out = w · x / sqrt(mean(x²) + eps)`.
/// `w` is little-endian `f32` bytes.
pub fn rms_norm(out: &mut [f32], x: &[f32], w: &[u8], eps: f32) {
    let inv = inv_rms(x, eps);
    let (w, _) = w.as_chunks::<4>();
    for ((o, xi), wb) in out.iter_mut().zip(x).zip(w) {
        *o = f32::from_le_bytes(*wb) * (xi * inv);
    }
}

/// [`rms_norm`] in place.
pub fn rms_norm_in_place(x: &mut [f32], w: &[u8], eps: f32) {
    let inv = inv_rms(x, eps);
    let (w, _) = w.as_chunks::<4>();
    for (xi, wb) in x.iter_mut().zip(w) {
        *xi = f32::from_le_bytes(*wb) * (*xi * inv);
    }
}

/// `1 / sqrt(mean(x²) + eps)`.
fn inv_rms(x: &[f32], eps: f32) -> f32 {
    let n = x.len().max(1) as f32;
    1.0 / libm::sqrtf(dot(x, x) / n + eps)
}

/// In-place softmax, shifted by the maximum for stability. An empty slice is left alone.
pub fn softmax_in_place(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f32;
    for v in x.iter_mut() {
        *v = libm::expf(*v - max);
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// `x *= a` for every element.
pub fn scale_in_place(x: &mut [f32], a: f32) {
    for v in x.iter_mut() {
        *v *= a;
    }
}

/// SiLU: `x · sigmoid(x)`, as `x / (1 + exp(-x))` with [`exp_clamped`], so a loop of it
/// vectorises (`libm::expf` is a call per value) and gives the same bits on every target.
#[inline(always)]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + exp_clamped(-x))
}

/// `exp(x)` for `x` in `[-87, 87]` (outside, the bound's value; NaN gives a finite value, so a
/// caller whose result must stay NaN keeps `x` in it, as [`silu`] does): the range reduction
/// and polynomial of [`super::attn::exp_nonpositive`] with `n = round(x / ln 2)` of either
/// sign, within 2 ulp of `exp`. Branch-free plain float steps (multiply, then add; no fused
/// multiply-add), so every target computes the same bits, vectorised or not.
#[inline(always)]
pub fn exp_clamped(x: f32) -> f32 {
    use super::attn::{EXP_MIN, EXP_P, LN2_HI, LN2_LO};
    // Adding 1.5 · 2^23 rounds to an integer (to nearest, ties to even) for |v| < 2^22, and
    // that integer is then the low bits of the sum's representation.
    const ROUND: f32 = 12_582_912.0;
    // Not `clamp`: NaN becomes a bound instead of staying NaN (branch-free either way).
    let x = min_non_nan(max_non_nan(EXP_MIN, x), -EXP_MIN);
    let t = x * core::f32::consts::LOG2_E + ROUND;
    // n in -126..=126, so 2^n below is a normal float.
    #[allow(clippy::cast_possible_wrap)]
    let n = t.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
    let nf = t - ROUND;
    let r = (x - nf * LN2_HI) - nf * LN2_LO;
    let z = r * r;
    let p =
        ((((EXP_P[0] * r + EXP_P[1]) * r + EXP_P[2]) * r + EXP_P[3]) * r + EXP_P[4]) * r + EXP_P[5];
    let y = (p * z + r) + 1.0;
    #[allow(clippy::cast_sign_loss)]
    let scale = f32::from_bits(((n + 127) as u32) << 23);
    y * scale
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::f16;

    fn naive_dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum()
    }

    #[test]
    fn dot_variants_agree_with_f64_on_awkward_lengths() {
        for n in [0usize, 1, 7, 8, 9, 31, 33, 100] {
            let a: Vec<f32> = (0..n).map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.25).collect();
            let b: Vec<f32> = (0..n).map(|i| ((i * 13 % 7) as f32 - 3.0) * 0.5).collect();
            let bytes32: Vec<u8> = a.iter().flat_map(|v| v.to_le_bytes()).collect();
            let bytes16: Vec<u8> = a.iter().flat_map(|v| f16::from_f32(*v).to_le_bytes()).collect();
            let want = naive_dot(&a, &b);
            for got in [dot(&a, &b), dot_f32_le(&bytes32, &b), dot_f16_le(&bytes16, &b)] {
                assert!((f64::from(got) - want).abs() < 1e-4, "n={n}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn f16_conversion_is_exact_for_every_input() {
        for h in 0..=u16::MAX {
            let want = f16::from_bits(h).to_f32();
            let got = f16_to_f32(h.to_le_bytes());
            if want.is_nan() {
                assert!(got.is_nan(), "{h:#06x}");
            } else {
                assert_eq!(got.to_bits(), want.to_bits(), "{h:#06x}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn softmax_sums_to_one_and_survives_large_inputs() {
        let mut x = [1000.0f32, 1001.0, 999.0];
        softmax_in_place(&mut x);
        assert!((x.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(x[1] > x[0] && x[0] > x[2]);
    }

    /// [`exp_clamped`] within 4e-7 relative of `f64::exp` over its whole range, the bounds'
    /// values outside it; [`silu`] within 1e-6 relative (plus 1e-30 absolute for the values
    /// under `2^-100`) of its f64 definition, NaN kept. A wrong constant or a mis-rounded `n`
    /// (e.g. truncation for negative `x`) breaks the first bound.
    #[test]
    fn exp_and_silu_are_accurate_over_their_range() {
        let steps = if cfg!(miri) { 2_000 } else { 800_000 };
        let (mut worst_exp, mut worst_silu) = (0.0f64, 0.0f64);
        for i in 0..=steps {
            let x = -87.0 + 174.0 * i as f32 / steps as f32;
            let want = f64::from(x).exp();
            let rel = (f64::from(exp_clamped(x)) - want).abs() / want;
            worst_exp = worst_exp.max(rel);
            let xs = x * 1.1;
            let want = f64::from(xs) / (1.0 + (-f64::from(xs)).exp());
            let err = (f64::from(silu(xs)) - want).abs();
            if err > 1e-30 {
                worst_silu = worst_silu.max(err / want.abs());
            }
        }
        assert!(worst_exp < 4e-7, "exp: worst relative error {worst_exp:e}");
        assert!(worst_silu < 1e-6, "silu: worst relative error {worst_silu:e}");
        assert_eq!(exp_clamped(0.0), 1.0);
        assert_eq!(exp_clamped(200.0), exp_clamped(87.0));
        assert_eq!(exp_clamped(-200.0), exp_clamped(-87.0));
        assert!(exp_clamped(87.0).is_finite() && exp_clamped(-87.0) > 0.0);
        assert!(silu(f32::NAN).is_nan());
        assert_eq!(silu(f32::INFINITY), f32::INFINITY);
        assert_eq!(silu(0.0), 0.0);
    }

    #[test]
    fn rms_norm_matches_definition() {
        let x = [1.0f32, -2.0, 3.0];
        let w: Vec<u8> = [0.5f32, 1.0, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut out = [0.0f32; 3];
        rms_norm(&mut out, &x, &w, 1e-6);
        let r = (14.0f32 / 3.0 + 1e-6).sqrt();
        assert!((out[0] - 0.5 / r).abs() < 1e-6);
        assert!((out[2] - 6.0 / r).abs() < 1e-6);
    }
}

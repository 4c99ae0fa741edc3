//! Decoupled RoPE with optional YaRN, as transformers' DeepSeek-V2/V3 apply it to the
//! `qk_rope_head_dim` part of each query head and to the single shared `k_pe`.
//!
//! Reference: `transformers/modeling_rope_utils.py::_compute_yarn_parameters` and
//! `models/deepseek_v3/modeling_deepseek_v3.py`.
//!
//! Layout: pairs `(x[2i], x[2i+1])` are rotated by `pos · inv_freq[i]` (GPT-J / ggml "NORM"
//! style). DeepSeek-V2 keeps that interleaved layout; V3 with `rope_interleave` writes the
//! rotated pairs de-interleaved, but queries and keys get the same permutation, so every score
//! is identical and the cache may keep the interleaved order.
//!
//! Tables are computed in `f64` and rounded to `f32` on purpose (the reference works in `f32`),
//! hence the module-wide allowance for `f64 as f32`.
#![allow(clippy::cast_possible_truncation)]

use crate::config::{ModelConfig, Yarn};

/// Inverse frequency of rotary pair `i` (of `dim / 2`), rounded to `f32` as the reference
/// stores it.
fn inv_freq(i: usize, dim: usize, theta: f64, yarn: Option<&Yarn>) -> f32 {
    let exponent = (2 * i) as f64 / dim as f64;
    let pos_freq = libm::pow(theta, exponent);
    let extrapolated = 1.0 / pos_freq;
    let Some(y) = yarn else {
        return extrapolated as f32;
    };
    let factor = f64::from(y.factor);
    let interpolated = 1.0 / (factor * pos_freq);
    let (low, high) = correction_range(y, dim, theta);
    let ramp = ((i as f64 - low) / (high - low)).clamp(0.0, 1.0);
    // ramp = 0: pure extrapolation (fast dims); ramp = 1: pure interpolation (slow dims).
    (interpolated * ramp + extrapolated * (1.0 - ramp)) as f32
}

/// YaRN's `find_correction_range` with `truncate = true`: the dims between which frequencies
/// are blended.
fn correction_range(y: &Yarn, dim: usize, theta: f64) -> (f64, f64) {
    let d = dim as f64;
    let l0 = f64::from(y.original_context_length);
    let correction_dim = |rotations: f64| {
        d * libm::log(l0 / (rotations * 2.0 * core::f64::consts::PI)) / (2.0 * libm::log(theta))
    };
    let low = libm::floor(correction_dim(f64::from(y.beta_fast))).max(0.0);
    let mut high = libm::ceil(correction_dim(f64::from(y.beta_slow))).min(d - 1.0);
    if low == high {
        high += 0.001;
    }
    (low, high)
}

/// What the rotary frequencies of a model depend on: a few bytes that a cache keeps to
/// re-rotate its keys (see [`shift_rotation`]) without the model at hand.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RopeParams {
    /// `qk_rope_head_dim`.
    pub(crate) dim: usize,
    /// `rope_theta`.
    pub(crate) theta: f32,
    /// YaRN scaling, if any.
    pub(crate) yarn: Option<Yarn>,
}

impl RopeParams {
    /// The parameters of `config`'s model.
    pub(crate) fn of(config: &ModelConfig) -> Self {
        RopeParams { dim: config.qk_rope_head_dim, theta: config.rope_theta, yarn: config.yarn }
    }

    /// Inverse frequency of rotary pair `i` (`< dim / 2`).
    pub(crate) fn inv_freq(&self, i: usize) -> f32 {
        inv_freq(i, self.dim, f64::from(self.theta), self.yarn.as_ref())
    }
}

/// Fills `inv_freqs` (`qk_rope_head_dim / 2` values) with the model's rotary frequencies:
/// constant per model, so computed once when the scratch is set up, not per token.
pub(crate) fn fill_inv_freqs(config: &ModelConfig, inv_freqs: &mut [f32]) {
    let params = RopeParams::of(config);
    for (i, f) in inv_freqs.iter_mut().enumerate() {
        *f = params.inv_freq(i);
    }
}

/// The angle the reference rotates pair `inv_freq` by at position `pos`: the product in
/// `f32` (`inv_freq @ position_ids.float()`), widened.
fn angle(inv_freq: f32, pos: u64) -> f64 {
    f64::from(inv_freq * pos as f32)
}

/// `[cos, sin]` of the rotation that turns a pair rotated for position `from` into the same
/// pair rotated for position `to` (a context shift moves cached keys this way). RoPE
/// rotations compose, so this is the rotation by the difference of the two angles; both are
/// the reference's own `f32` angles, and the difference is taken in `f64`, so the shifted key
/// equals the key rotated for `to` directly up to the `f32` rounding of the products.
pub(crate) fn shift_rotation(inv_freq: f32, from: u64, to: u64) -> [f32; 2] {
    let delta = angle(inv_freq, to) - angle(inv_freq, from);
    [libm::cos(delta) as f32, libm::sin(delta) as f32]
}

/// Fills `table` (`[cos; dim/2]` then `[sin; dim/2]`) for absolute position `pos`, from the
/// frequencies of [`fill_inv_freqs`].
pub(crate) fn fill_table(inv_freqs: &[f32], pos: u64, table: &mut [f32]) {
    let (cos, sin) = table.split_at_mut(inv_freqs.len().min(table.len()));
    for ((c, s), f) in cos.iter_mut().zip(sin.iter_mut()).zip(inv_freqs) {
        let a = angle(*f, pos);
        *c = libm::cos(a) as f32;
        *s = libm::sin(a) as f32;
    }
}

/// Rotates `x` (`qk_rope_head_dim` elements) in place with a table from [`fill_table`].
pub(crate) fn rotate(x: &mut [f32], table: &[f32]) {
    let half = table.len() / 2;
    let (cos, sin) = table.split_at(half);
    let (pairs, _) = x.as_chunks_mut::<2>();
    for ((p, c), s) in pairs.iter_mut().zip(cos).zip(sin) {
        *p = rotate_pair(*p, [*c, *s]);
    }
}

/// One pair `(x0, x1)` rotated by the angle whose `[cos, sin]` is given.
pub(crate) fn rotate_pair([x0, x1]: [f32; 2], [c, s]: [f32; 2]) -> [f32; 2] {
    [x0 * c - x1 * s, x1 * c + x0 * s]
}

/// The attention softmax scale: `qk_head_dim^-0.5`, times `mscale²` under YaRN, where
/// `mscale = 1 + log_multiplier · ln(factor)` (transformers' `yarn_get_mscale(factor,
/// mscale_all_dim)`, 1 when `factor <= 1`).
pub(crate) fn softmax_scale(config: &ModelConfig) -> f32 {
    let base = 1.0 / libm::sqrt(config.qk_head_dim() as f64);
    let mscale = match config.yarn {
        Some(y) if y.factor > 1.0 => {
            1.0 + f64::from(y.log_multiplier) * libm::log(f64::from(y.factor))
        }
        _ => 1.0,
    };
    (base * mscale * mscale) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yarn(factor: f32, orig: u32) -> Yarn {
        Yarn {
            factor,
            original_context_length: orig,
            beta_fast: 32.0,
            beta_slow: 1.0,
            log_multiplier: 0.1,
        }
    }

    /// The reference-math notes' tiny model: dim 8, theta 1e4, factor 4, original 64 gives
    /// inv_freq = [1, 0.0625, 0.0025, 0.00025] (low = 0, high = 2).
    #[test]
    fn yarn_inv_freq_matches_reference_values() {
        let y = yarn(4.0, 64);
        let got: Vec<f32> = (0..4).map(|i| inv_freq(i, 8, 1e4, Some(&y))).collect();
        let want = [1.0f32, 0.0625, 0.0025, 0.00025];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= 1e-6 * w.max(1e-3), "{got:?}");
        }
    }

    #[test]
    fn rotation_preserves_norm_and_is_identity_at_zero() {
        let inv_freqs = [inv_freq(0, 4, 1e4, None), inv_freq(1, 4, 1e4, None)];
        let cfg_table = |pos| {
            let mut table = [0.0f32; 4];
            fill_table(&inv_freqs, pos, &mut table);
            table
        };
        let t0 = cfg_table(0);
        let mut x = [1.0f32, 2.0, 3.0, 4.0];
        rotate(&mut x, &t0);
        assert_eq!(x, [1.0, 2.0, 3.0, 4.0]);
        let t5 = cfg_table(5);
        rotate(&mut x, &t5);
        let norm: f32 = x.iter().map(|v| v * v).sum();
        assert!((norm - 30.0).abs() < 1e-4);
    }

    #[test]
    fn a_shift_rotation_composes_to_the_direct_rotation() {
        let y = yarn(4.0, 32);
        let params = RopeParams { dim: 16, theta: 1e4, yarn: Some(y) };
        let freqs: Vec<f32> = (0..8).map(|i| params.inv_freq(i)).collect();
        let key: Vec<f32> = (0..16).map(|i| (i as f32 * 0.37).sin() + 0.5).collect();
        for (from, to) in [(9u64, 3u64), (255, 128), (4095, 2048), (7, 7), (3, 9)] {
            let mut at_from = [0.0f32; 16];
            fill_table(&freqs, from, &mut at_from);
            let mut shifted = key.clone();
            rotate(&mut shifted, &at_from);
            for (p, f) in shifted.as_chunks_mut::<2>().0.iter_mut().zip(&freqs) {
                *p = rotate_pair(*p, shift_rotation(*f, from, to));
            }
            let mut at_to = [0.0f32; 16];
            fill_table(&freqs, to, &mut at_to);
            let mut direct = key.clone();
            rotate(&mut direct, &at_to);
            for (a, b) in shifted.iter().zip(&direct) {
                assert!((a - b).abs() < 4e-6, "{from}->{to}: {shifted:?} vs {direct:?}");
            }
        }
    }

    #[test]
    fn mscale_matches_reference_softmax_scale() {
        // Notes: tiny V3, qk_head_dim 24, factor 4, mscale_all_dim 1 -> 0.264642.
        let m = 1.0 + 0.1 * 4.0f64.ln();
        let want = (m * m / 24f64.sqrt()) as f32;
        assert!((want - 0.264642).abs() < 1e-6);
    }
}

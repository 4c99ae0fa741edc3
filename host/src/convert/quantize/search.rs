//! The scale searches of ggml's reference quantizers (`ggml-quants.c`, no importance matrix),
//! transcribed operation for operation: every product, sum and rounding happens in `f32` in
//! the same order as in C, so the blocks come out byte-identical to llama.cpp's
//! `llama_model_quantize` (checked against its files in `tests/kquant.rs`).

use half::f16;

/// ggml's `GROUP_MAX_EPS`: a group whose largest magnitude is below this is all zero.
pub(super) const GROUP_MAX_EPS: f32 = 1e-15;

/// ggml's `nearest_int`: `x` rounded to the nearest integer, ties to even, by adding
/// 1.5 · 2^23 and reading the mantissa (exact for `|x| < 2^22`, which every caller's values
/// are; larger or non-finite values give some integer, never a panic).
#[allow(clippy::cast_possible_wrap)]
pub(super) fn nearest_int(x: f32) -> i32 {
    let biased = x + 12_582_912.0;
    (biased.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

/// `x` rounded to f16 (ggml's `GGML_FP32_TO_FP16`: to nearest, ties to even), as bytes.
pub(super) fn to_f16(x: f32) -> [u8; 2] {
    f16::from_f32(x).to_le_bytes()
}

/// The value a stored f16 holds (ggml's `GGML_FP16_TO_FP32`).
pub(super) fn from_f16(b: [u8; 2]) -> f32 {
    f16::from_le_bytes(b).to_f32()
}

/// `1 / d`, or 0 for `d = 0` (ggml's `d ? 1/d : 0`).
pub(super) fn inverse(d: f32) -> f32 {
    if d == 0.0 {
        0.0
    } else {
        1.0 / d
    }
}

/// `max(lo, min(hi, l))`, as ggml's `MAX(lo, MIN(hi, l))`.
fn clamp(l: i32, lo: i32, hi: i32) -> i32 {
    l.min(hi).max(lo)
}

/// The first element of largest magnitude (`|x|` strictly greater, as ggml scans), with its
/// sign, and that magnitude.
pub(super) fn signed_absmax(x: &[f32]) -> (f32, f32) {
    let (mut max, mut amax) = (0.0f32, 0.0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    (max, amax)
}

/// ggml's `make_qx_quants` with `rmse_type = 1` and no importance weights (what Q6_K's
/// reference takes): symmetric levels `l` in `-nmax ..= nmax − 1`, stored as `l + nmax` in
/// `levels`, weights `x²`, the scale refined over 19 trial inverse scales. Returns the scale.
pub(super) fn make_qx_quants(nmax: i32, x: &[f32], levels: &mut [i8]) -> f32 {
    let (max, amax) = signed_absmax(x);
    if amax < GROUP_MAX_EPS {
        levels.iter_mut().for_each(|l| *l = 0);
        return 0.0;
    }
    let level = |iscale: f32, v: f32| clamp(nearest_int(iscale * v), -nmax, nmax - 1);
    // `l + nmax` is in `0 ..= 2 nmax − 1 <= 63` for the callers' `nmax <= 32`.
    #[allow(clippy::cast_possible_truncation)]
    let store = |l: i32| (l + nmax) as i8;
    let mut iscale = -(nmax as f32) / max;
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for (l_out, &v) in levels.iter_mut().zip(x) {
        let l = level(iscale, v);
        *l_out = store(l);
        let w = v * v;
        sumlx += w * v * l as f32;
        suml2 += w * l as f32 * l as f32;
    }
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in -9i32..=9 {
        if is == 0 {
            continue;
        }
        iscale = -(nmax as f32 + 0.1 * is as f32) / max;
        let (mut slx, mut sl2) = (0.0f32, 0.0f32);
        for &v in x {
            let l = level(iscale, v) as f32;
            let w = v * v;
            slx += w * v * l;
            sl2 += w * l * l;
        }
        if sl2 > 0.0 && slx * slx > best * sl2 {
            for (l_out, &v) in levels.iter_mut().zip(x) {
                *l_out = store(level(iscale, v));
            }
            scale = slx / sl2;
            best = scale * slx;
        }
    }
    scale
}

/// ggml's `make_q3_quants` with `do_rmse` (Q3_K's reference): symmetric levels in
/// `-nmax ..= nmax − 1` chosen for the weights `x²`, then each level moved where that lowers
/// the weighted error (up to 5 passes); stored as `l + nmax` in `levels`. Returns the scale.
pub(super) fn make_q3_quants(nmax: i32, x: &[f32], levels: &mut [i8]) -> f32 {
    let (max, amax) = signed_absmax(x);
    if amax < GROUP_MAX_EPS {
        levels.iter_mut().for_each(|l| *l = 0);
        return 0.0;
    }
    let iscale = -(nmax as f32) / max;
    let mut ls = [0i32; 16];
    let ls = &mut ls[..x.len().min(16)];
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for (l_out, &v) in ls.iter_mut().zip(x) {
        let l = clamp(nearest_int(iscale * v), -nmax, nmax - 1);
        *l_out = l;
        let w = v * v;
        sumlx += w * v * l as f32;
        suml2 += w * l as f32 * l as f32;
    }
    for _ in 0..5 {
        let mut changed = 0;
        for (l_i, &v) in ls.iter_mut().zip(x) {
            let w = v * v;
            let mut slx = sumlx - w * v * *l_i as f32;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * *l_i as f32 * *l_i as f32;
                let new_l = clamp(nearest_int(v * sl2 / slx), -nmax, nmax - 1);
                if new_l != *l_i {
                    slx += w * v * new_l as f32;
                    sl2 += w * new_l as f32 * new_l as f32;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        *l_i = new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        changed += 1;
                    }
                }
            }
        }
        if changed == 0 {
            break;
        }
    }
    for (l_out, &l) in levels.iter_mut().zip(ls.iter()) {
        // In `0 ..= 2 nmax − 1 = 7`.
        #[allow(clippy::cast_possible_truncation)]
        let stored = (l + nmax) as i8;
        *l_out = stored;
    }
    if suml2 > 0.0 {
        sumlx / suml2
    } else {
        0.0
    }
}

/// The parameters of one [`make_qkx2_quants`] search.
#[derive(Debug, Clone, Copy)]
pub(super) struct Qkx2 {
    /// Largest level (levels are `0 ..= nmax`).
    pub(super) nmax: i32,
    /// First trial offset of the inverse scale's numerator.
    pub(super) rmin: f32,
    /// Step between trials.
    pub(super) rdelta: f32,
    /// Trials after the first (`0 ..= nstep`).
    pub(super) nstep: i32,
    /// Weigh absolute errors (else squared).
    pub(super) use_mad: bool,
}

/// ggml's `make_qkx2_quants`: asymmetric levels `0 ..= nmax` with a scale and a min
/// (`x ≈ scale · l − min`), the pair fitted by weighted least squares at each trial inverse
/// scale and kept when the weighted error drops. Writes the levels; returns `(scale, min)`
/// (ggml's return value and `the_min`).
pub(super) fn make_qkx2_quants(
    p: Qkx2,
    x: &[f32],
    weights: &[f32],
    levels: &mut [u8],
) -> (f32, f32) {
    let (Some(&x0), Some(&w0)) = (x.first(), weights.first()) else {
        return (0.0, 0.0);
    };
    let (mut min, mut max) = (x0, x0);
    let mut sum_w = w0;
    let mut sum_x = sum_w * x0;
    for (&v, &w) in x.iter().zip(weights).skip(1) {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
        sum_w += w;
        sum_x += w * v;
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        levels.iter_mut().for_each(|l| *l = 0);
        return (0.0, -min);
    }
    let nmax = p.nmax as f32;
    // Levels are clamped to `0 ..= nmax <= 31`.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let level =
        |iscale: f32, v: f32, min: f32| clamp(nearest_int(iscale * (v - min)), 0, p.nmax) as u8;
    let error = |scale: f32, min: f32, ls: &[u8]| {
        let mut e = 0.0f32;
        for ((&l, &v), &w) in ls.iter().zip(x).zip(weights) {
            let diff = scale * f32::from(l) + min - v;
            e += w * if p.use_mad { diff.abs() } else { diff * diff };
        }
        e
    };
    let mut iscale = nmax / (max - min);
    let mut scale = 1.0 / iscale;
    for (l, &v) in levels.iter_mut().zip(x) {
        *l = level(iscale, v, min);
    }
    let mut best_error = error(scale, min, levels);
    if p.nstep < 1 {
        return (scale, -min);
    }
    let mut trial = [0u8; 32];
    let trial = &mut trial[..x.len().min(32)];
    for is in 0..=p.nstep {
        iscale = (p.rmin + p.rdelta * is as f32 + nmax) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for ((t, &v), &w) in trial.iter_mut().zip(x).zip(weights) {
            *t = level(iscale, v, min);
            let l = f32::from(*t);
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * v;
        }
        let d = sum_w * sum_l2 - sum_l * sum_l;
        if d > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / d;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / d;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let cur_error = error(this_scale, this_min, trial);
            if cur_error < best_error {
                levels.iter_mut().zip(trial.iter()).for_each(|(l, t)| *l = *t);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_int_rounds_half_to_even() {
        assert_eq!(nearest_int(2.5), 2);
        assert_eq!(nearest_int(3.5), 4);
        assert_eq!(nearest_int(-2.5), -2);
        assert_eq!(nearest_int(-0.4), 0);
        assert_eq!(nearest_int(-7.6), -8);
        assert_eq!(nearest_int(1_000_000.2), 1_000_000);
    }

    #[test]
    fn qkx2_fits_an_exact_grid() {
        // Values on a grid of step 0.5 from −1: the fit must find scale 0.5, min 1, and the
        // grid's own levels.
        let x: Vec<f32> = (0..32).map(|i| -1.0 + 0.5 * (i % 16) as f32).collect();
        let w = vec![1.0f32; 32];
        let mut l = [0u8; 32];
        let p = Qkx2 { nmax: 15, rmin: -1.0, rdelta: 0.1, nstep: 20, use_mad: false };
        let (scale, min) = make_qkx2_quants(p, &x, &w, &mut l);
        assert!((scale - 0.5).abs() < 1e-6 && (min - 1.0).abs() < 1e-6, "{scale} {min}");
        for (i, &q) in l.iter().enumerate() {
            assert_eq!(u32::from(q), i as u32 % 16);
        }
    }

    #[test]
    fn all_zero_groups_have_zero_scales() {
        let mut l = [5i8; 16];
        assert_eq!(make_qx_quants(32, &[0.0; 16], &mut l), 0.0);
        assert_eq!(l, [0; 16]);
        assert_eq!(make_q3_quants(4, &[0.0; 16], &mut l), 0.0);
        let mut u = [3u8; 16];
        let p = Qkx2 { nmax: 3, rmin: -0.5, rdelta: 0.1, nstep: 15, use_mad: true };
        assert_eq!(make_qkx2_quants(p, &[0.0; 16], &[0.0; 16], &mut u), (0.0, 0.0));
        assert_eq!(u, [0; 16]);
    }
}

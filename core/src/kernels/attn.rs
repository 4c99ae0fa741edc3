//! Reference kernels of the tiled multi-head attention (`crate::attend`): every head against a
//! tile of cached rows. They define the results: each score is one [`scalar::dot`] per
//! (head, row), each latent update one [`scalar::axpy`] per (row, head) with rows in order. A
//! SIMD table may block heads and rows to load each row once for several heads (`x86.rs`), as
//! long as every sum keeps this order; the M-profile cores, with 8–16 registers, run these.

use super::scalar;

/// `out[h][r] = q[h] · rows[r]` for `q` `[heads][width]`, `rows` `[t][width]` and `out`
/// `[heads][t]`: one [`scalar::dot`] per (head, row).
pub fn tile_scores(q: &[f32], width: usize, rows: &[f32], out: &mut [f32]) {
    let width = width.max(1);
    let t = rows.len() / width;
    for (q_h, out_h) in q.chunks_exact(width).zip(out.chunks_exact_mut(t.max(1))) {
        for (o, row) in out_h.iter_mut().zip(rows.chunks_exact(width)) {
            *o = scalar::dot(q_h, row);
        }
    }
}

/// `lat[h][j] += Σ_r p[h][r] · rows[r][j]` for `j < kv` (`p` `[heads][t]`, `rows`
/// `[t][width]`, `lat` `[heads][kv]`): one [`scalar::axpy`] per (row, head), rows in order.
pub fn tile_accumulate(p: &[f32], rows: &[f32], width: usize, lat: &mut [f32], kv: usize) {
    let (width, kv) = (width.max(1), kv.max(1));
    let t = rows.len() / width;
    for (r, row) in rows.chunks_exact(width).enumerate() {
        let x = row.get(..kv).unwrap_or(&[]);
        for (p_h, lat_h) in p.chunks_exact(t.max(1)).zip(lat.chunks_exact_mut(kv)) {
            scalar::axpy(lat_h, p_h.get(r).copied().unwrap_or(0.0), x);
        }
    }
}

/// One head's `lat[j - from] += Σ_r p[r] · rows[r][j]` for the columns `lat` covers, rows in
/// order (the reference's sums for a column range: a SIMD table's tail).
#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) fn accumulate_columns(
    p: &[f32],
    rows: &[f32],
    width: usize,
    lat: &mut [f32],
    from: usize,
) {
    for (w, row) in p.iter().zip(rows.chunks_exact(width)) {
        for (s, xi) in lat.iter_mut().zip(row.get(from..).unwrap_or(&[])) {
            *s += w * xi;
        }
    }
}

/// `exp(x)` for `x <= 0` (larger `x` counts as 0, NaN as −87), the softmax's only use: Cephes'
/// `expf` range reduction (`x = r + k·ln 2`, `ln 2` split in two constants) and degree-5
/// polynomial, within 2 ulp of `exp` over `[-87, 0]`, and 0 <= result <= 1. Branch-free plain
/// float steps (multiply, then add), so a SIMD table computes the very same bits.
#[inline(always)]
pub fn exp_nonpositive(x: f32) -> f32 {
    // Not `clamp`: NaN must become EXP_MIN, as `_mm256_max_ps(x, MIN)` makes it (±0 both
    // give exactly 1 below).
    let x = scalar::min_non_nan(scalar::max_non_nan(EXP_MIN, x), 0.0);
    // k = -n with n = round(-x / ln 2) in 0..=126 (truncation of a non-negative value).
    #[allow(clippy::cast_possible_truncation)]
    let n = (-x * core::f32::consts::LOG2_E + 0.5) as i32;
    #[allow(clippy::cast_precision_loss)]
    let nf = n as f32;
    let r = (x + nf * LN2_HI) + nf * LN2_LO;
    let z = r * r;
    let p =
        ((((EXP_P[0] * r + EXP_P[1]) * r + EXP_P[2]) * r + EXP_P[3]) * r + EXP_P[4]) * r + EXP_P[5];
    let y = (p * z + r) + 1.0;
    #[allow(clippy::cast_sign_loss)]
    let scale = f32::from_bits(((127 - n) as u32) << 23);
    y * scale
}

/// Below this, `exp` is under `2^-125`: a softmax weight of 0 in effect.
pub(crate) const EXP_MIN: f32 = -87.0;
/// `ln 2` split so that `n · LN2_HI` is exact for the `n` that occur (Cephes).
pub(crate) const LN2_HI: f32 = 0.693_359_4;
pub(crate) const LN2_LO: f32 = -2.121_944_4e-4;
/// Cephes `expf` polynomial coefficients, highest degree first (its last, 5.0000001201e-1,
/// is 0.5 in `f32`).
pub(crate) const EXP_P: [f32; 6] =
    [1.987_569_1e-4, 1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 0.5];

/// Softmax weights of one head's tile: `s[i] = exp(s[i] - max)` ([`exp_nonpositive`]), and
/// their sum, added in order.
pub fn softmax_weights(s: &mut [f32], max: f32) -> f32 {
    let mut sum = 0.0f32;
    for v in s.iter_mut() {
        *v = exp_nonpositive(*v - max);
        sum += *v;
    }
    sum
}

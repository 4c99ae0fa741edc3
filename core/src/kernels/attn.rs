//! Reference kernels of the tiled multi-head attention (`crate::attend`): every head against a
//! tile of cached rows with each row loaded once for all heads. The bodies are generic over
//! nothing and `#[inline(always)]`, so the AVX2 table compiles the very same code with wider
//! registers (`x86::entry`): bit-identical by construction, and tested.

use super::scalar;

/// Heads one pass of [`tile_scores`] / [`tile_accumulate`] keeps in registers.
const HEADS: usize = 4;
/// Rows one pass of [`tile_scores`] scores at once (each query chunk loaded once for them).
const ROWS: usize = 4;
/// Columns of one pass of [`tile_accumulate`].
const COLS: usize = 8;

/// `out[h][r] = q[h] · rows[r]` for `q` `[heads][width]` and `rows` `[t][width]`, with
/// `out` `[heads][t]` (`t = rows.len() / width`): each dot exactly [`scalar::dot`]'s sum, four
/// rows at a time so a query chunk is loaded once per four rows.
#[inline(always)]
pub(crate) fn tile_scores_body(q: &[f32], width: usize, rows: &[f32], out: &mut [f32]) {
    let width = width.max(1);
    let t = rows.len() / width;
    if t == 0 {
        return;
    }
    for (q_h, out_h) in q.chunks_exact(width).zip(out.chunks_exact_mut(t)) {
        let mut blocks = rows.chunks_exact(width * ROWS);
        let mut outs = out_h.chunks_exact_mut(ROWS);
        for (block, o) in (&mut blocks).zip(&mut outs) {
            let (r01, r23) = block.split_at(width.min(block.len()) * 2);
            let (r0, r1) = r01.split_at(width.min(r01.len()));
            let (r2, r3) = r23.split_at(width.min(r23.len()));
            let [s0, s1, s2, s3] = dot4(q_h, [r0, r1, r2, r3]);
            if let Some(o) = o.first_chunk_mut::<ROWS>() {
                *o = [s0, s1, s2, s3];
            }
        }
        for (dst, row) in
            outs.into_remainder().iter_mut().zip(blocks.remainder().chunks_exact(width))
        {
            *dst = scalar::dot(q_h, row);
        }
    }
}

/// Four [`scalar::dot`]s of `a` against four rows at once (each `a` chunk loaded once), each
/// with exactly `scalar::dot`'s summation order.
#[inline(always)]
fn dot4(a: &[f32], rows: [&[f32]; ROWS]) -> [f32; ROWS] {
    const L: usize = scalar::LANES;
    let [r0, r1, r2, r3] = rows;
    let (ac, at) = a.as_chunks::<L>();
    let ((c0, t0), (c1, t1)) = (r0.as_chunks::<L>(), r1.as_chunks::<L>());
    let ((c2, t2), (c3, t3)) = (r2.as_chunks::<L>(), r3.as_chunks::<L>());
    let (mut a0, mut a1, mut a2, mut a3) = ([0.0f32; L], [0.0f32; L], [0.0f32; L], [0.0f32; L]);
    for ((((x, y0), y1), y2), y3) in ac.iter().zip(c0).zip(c1).zip(c2).zip(c3) {
        lanes_fma(&mut a0, x, y0);
        lanes_fma(&mut a1, x, y1);
        lanes_fma(&mut a2, x, y2);
        lanes_fma(&mut a3, x, y3);
    }
    let mut out = [0.0f32; ROWS];
    for ((o, a_r), tail) in out.iter_mut().zip([a0, a1, a2, a3]).zip([t0, t1, t2, t3]) {
        let mut sum = scalar::reduce(a_r);
        for (x, y) in at.iter().zip(tail) {
            sum += x * y;
        }
        *o = sum;
    }
    out
}

/// `acc[l] += x[l] · y[l]` (a multiply, then an add: no fused rounding).
#[inline(always)]
fn lanes_fma(acc: &mut [f32; scalar::LANES], x: &[f32; scalar::LANES], y: &[f32; scalar::LANES]) {
    for ((s, xi), yi) in acc.iter_mut().zip(x).zip(y) {
        *s += xi * yi;
    }
}

/// `lat[h][j] += Σ_r p[h][r] · rows[r][j]` for `j < kv` (`p` `[heads][t]`, `rows` `[t][width]`,
/// `lat` `[heads][kv]`), the rows added in order `r = 0, 1, …` to each element (the same sums
/// as one `axpy` per row and head), four heads and eight columns at a time so each loaded
/// row chunk serves four heads.
#[inline(always)]
pub(crate) fn tile_accumulate_body(
    p: &[f32],
    rows: &[f32],
    width: usize,
    lat: &mut [f32],
    kv: usize,
) {
    let (width, kv) = (width.max(1), kv.max(1));
    let t = rows.len() / width;
    if t == 0 {
        return;
    }
    let mut p_groups = p.chunks_exact(t * HEADS);
    let mut lat_groups = lat.chunks_exact_mut(kv * HEADS);
    for (pg, lg) in (&mut p_groups).zip(&mut lat_groups) {
        let mut j = 0;
        while j + COLS <= kv {
            let mut acc = [[0.0f32; COLS]; HEADS];
            for (a, l) in acc.iter_mut().zip(lg.chunks_exact(kv)) {
                if let Some(src) = l.get(j..j + COLS) {
                    a.copy_from_slice(src);
                }
            }
            for (r, row) in rows.chunks_exact(width).enumerate() {
                let Some(x) = row.get(j..j + COLS) else { continue };
                for (a, p_h) in acc.iter_mut().zip(pg.chunks_exact(t)) {
                    let w = p_h.get(r).copied().unwrap_or(0.0);
                    for (s, xi) in a.iter_mut().zip(x) {
                        *s += w * xi;
                    }
                }
            }
            for (a, l) in acc.iter().zip(lg.chunks_exact_mut(kv)) {
                if let Some(dst) = l.get_mut(j..j + COLS) {
                    dst.copy_from_slice(a);
                }
            }
            j += COLS;
        }
        if j < kv {
            for (p_h, l) in pg.chunks_exact(t).zip(lg.chunks_exact_mut(kv)) {
                accumulate_columns(p_h, rows, width, l.get_mut(j..).unwrap_or(&mut []), j);
            }
        }
    }
    for (p_h, l) in
        p_groups.remainder().chunks_exact(t).zip(lat_groups.into_remainder().chunks_exact_mut(kv))
    {
        accumulate_columns(p_h, rows, width, l, 0);
    }
}

/// One head's `lat[j - from] += Σ_r p[r] · rows[r][j]` for the columns `lat` covers, rows in
/// order.
#[inline(always)]
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

/// [`tile_scores_body`] (tables with 32 vector registers: NEON).
pub fn tile_scores(q: &[f32], width: usize, rows: &[f32], out: &mut [f32]) {
    tile_scores_body(q, width, rows, out);
}

/// [`tile_accumulate_body`] (tables with 32 vector registers: NEON).
pub fn tile_accumulate(p: &[f32], rows: &[f32], width: usize, lat: &mut [f32], kv: usize) {
    tile_accumulate_body(p, rows, width, lat, kv);
}

/// The definition of [`tile_scores_body`]: one [`scalar::dot`] per (head, row). What a core
/// with few registers runs (the blocked form spills there); the same results.
pub fn tile_scores_by_row(q: &[f32], width: usize, rows: &[f32], out: &mut [f32]) {
    let width = width.max(1);
    let t = rows.len() / width;
    for (q_h, out_h) in q.chunks_exact(width).zip(out.chunks_exact_mut(t.max(1))) {
        for (o, row) in out_h.iter_mut().zip(rows.chunks_exact(width)) {
            *o = scalar::dot(q_h, row);
        }
    }
}

/// The definition of [`tile_accumulate_body`]: one [`scalar::axpy`] per (row, head), rows in
/// order; the same results.
pub fn tile_accumulate_by_row(p: &[f32], rows: &[f32], width: usize, lat: &mut [f32], kv: usize) {
    let (width, kv) = (width.max(1), kv.max(1));
    let t = rows.len() / width;
    for (r, row) in rows.chunks_exact(width).enumerate() {
        let x = row.get(..kv).unwrap_or(&[]);
        for (p_h, lat_h) in p.chunks_exact(t.max(1)).zip(lat.chunks_exact_mut(kv)) {
            scalar::axpy(lat_h, p_h.get(r).copied().unwrap_or(0.0), x);
        }
    }
}

/// `exp(x)` for `x <= 0` (larger `x` counts as 0, NaN as −87), the softmax's only use: Cephes'
/// `expf` range reduction (`x = r + k·ln 2`, `ln 2` split in two constants) and degree-5
/// polynomial, within 2 ulp of `exp` over `[-87, 0]`, and 0 <= result <= 1. Branch-free plain
/// float steps (multiply, then add), so a SIMD table computes the very same bits.
#[inline(always)]
pub fn exp_nonpositive(x: f32) -> f32 {
    // Not `clamp`: NaN must become EXP_MIN, as `_mm256_max_ps(x, MIN)` makes it.
    #[allow(clippy::manual_clamp)]
    let x = x.max(EXP_MIN).min(0.0);
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

//! AVX2 + FMA attention kernels over a tile of cached rows: every head's scores, the softmax
//! weights and the weighted latent sum (the 512-bit ones are in [`super::attn512`]).

use core::arch::x86_64::*;

use super::*;

/// The scalar reference body compiled with AVX2 enabled (LLVM vectorises it 8 wide; same
/// operation order as the reference, so results are identical).
///
/// # Safety
/// The CPU supports AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    crate::kernels::scalar::dot(a, b)
}

/// [`crate::kernels::attn::tile_scores`]: two heads × four rows per pass (eight independent 8-lane
/// accumulators, enough to hide the add latency), every chunk of the queries and rows loaded
/// once for the block; multiply then add (no FMA) and [`hsum_ps`]'s reduction, the
/// reference's order, so each score is exactly `scalar::dot`'s.
///
/// # Safety
/// The CPU supports AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn tile_scores_avx2(q: &[f32], width: usize, rows: &[f32], out: &mut [f32]) {
    const H: usize = 2;
    const R: usize = 4;
    let width = width.max(1);
    let t = rows.len() / width;
    if t == 0 {
        return;
    }
    let mut q_pairs = q.chunks_exact(width * H);
    let mut out_pairs = out.chunks_exact_mut(t * H);
    for (q2, o2) in (&mut q_pairs).zip(&mut out_pairs) {
        let mut r = 0;
        while r + R <= t {
            let sums = scores_block::<H, R>(q2, width, rows.get(r * width..).unwrap_or(&[]));
            for (h, sums_h) in sums.iter().enumerate() {
                for (k, sum) in sums_h.iter().enumerate() {
                    if let Some(o) = o2.get_mut(h * t + r + k) {
                        *o = *sum;
                    }
                }
            }
            r += R;
        }
        for (h, (q_h, o_h)) in q2.chunks_exact(width).zip(o2.chunks_exact_mut(t)).enumerate() {
            let _ = h;
            for (o, row) in o_h.iter_mut().zip(rows.chunks_exact(width)).skip(r) {
                *o = dot_avx2(q_h, row);
            }
        }
    }
    for (q_h, o_h) in
        q_pairs.remainder().chunks_exact(width).zip(out_pairs.into_remainder().chunks_exact_mut(t))
    {
        let mut r = 0;
        while r + R <= t {
            let sums = scores_block::<1, R>(q_h, width, rows.get(r * width..).unwrap_or(&[]));
            for (k, sum) in sums.iter().flatten().enumerate() {
                if let Some(o) = o_h.get_mut(r + k) {
                    *o = *sum;
                }
            }
            r += R;
        }
        for (o, row) in o_h.iter_mut().zip(rows.chunks_exact(width)).skip(r) {
            *o = dot_avx2(q_h, row);
        }
    }
}

/// `H` heads' queries (`q`: `[H][width]`) against the first `R` rows of `rows` (`[≥R][width]`):
/// `[h][r]` scores, each exactly `scalar::dot`'s (8 lanes in chunk order, [`hsum_ps`], then
/// the tail in order). Short inputs give zeros for what is missing.
///
/// # Safety
/// The CPU supports AVX2.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn scores_block<const H: usize, const R: usize>(
    q: &[f32],
    width: usize,
    rows: &[f32],
) -> [[f32; R]; H] {
    const L: usize = 8;
    let mut sums = [[0.0f32; R]; H];
    if q.len() < H * width || rows.len() < R * width {
        return sums;
    }
    let chunks = width / L;
    let tail = chunks * L;
    let (qp, rp) = (q.as_ptr(), rows.as_ptr());
    let mut acc = [[_mm256_setzero_ps(); R]; H];
    for c in 0..chunks {
        let mut y = [_mm256_setzero_ps(); R];
        for (k, y_k) in y.iter_mut().enumerate() {
            // SAFETY: k < R rows of `width` and c * L + L <= width, checked above.
            *y_k = unsafe { _mm256_loadu_ps(rp.add(k * width + c * L)) };
        }
        for (h, acc_h) in acc.iter_mut().enumerate() {
            // SAFETY: h < H queries of `width`, c * L + L <= width.
            let x = unsafe { _mm256_loadu_ps(qp.add(h * width + c * L)) };
            for (a, y_k) in acc_h.iter_mut().zip(&y) {
                *a = _mm256_add_ps(*a, _mm256_mul_ps(x, *y_k));
            }
        }
    }
    for (h, (acc_h, sums_h)) in acc.iter().zip(sums.iter_mut()).enumerate() {
        let q_tail = q.get(h * width + tail..(h + 1) * width).unwrap_or(&[]);
        for (k, (a, sum)) in acc_h.iter().zip(sums_h.iter_mut()).enumerate() {
            let mut s = hsum_ps(*a);
            let row_tail = rows.get(k * width + tail..(k + 1) * width).unwrap_or(&[]);
            for (x, y) in q_tail.iter().zip(row_tail) {
                s += x * y;
            }
            *sum = s;
        }
    }
    sums
}

/// [`crate::kernels::attn::tile_accumulate`]: four heads × sixteen columns per pass (eight independent
/// accumulators), each loaded row chunk serving the four heads; per element the rows are
/// added in order as `lat + p·x` (multiply, then add), the reference's arithmetic.
///
/// # Safety
/// The CPU supports AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn tile_accumulate_avx2(
    p: &[f32],
    rows: &[f32],
    width: usize,
    lat: &mut [f32],
    kv: usize,
) {
    const H: usize = 4;
    const C: usize = 16;
    let (width, kv) = (width.max(1), kv.max(1));
    let t = rows.len() / width;
    if t == 0 || kv > width {
        return;
    }
    let mut p_groups = p.chunks_exact(t * H);
    let mut lat_groups = lat.chunks_exact_mut(kv * H);
    for (pg, lg) in (&mut p_groups).zip(&mut lat_groups) {
        let lp = lg.as_mut_ptr();
        let mut j = 0;
        while j + C <= kv {
            let mut acc = [[_mm256_setzero_ps(); 2]; H];
            for (h, a) in acc.iter_mut().enumerate() {
                // SAFETY: h < H rows of `kv` in `lg`, j + C <= kv.
                unsafe {
                    a[0] = _mm256_loadu_ps(lp.add(h * kv + j));
                    a[1] = _mm256_loadu_ps(lp.add(h * kv + j + 8));
                }
            }
            let (pp, rp) = (pg.as_ptr(), rows.as_ptr());
            for r in 0..t {
                // SAFETY: r < t rows of `width`, j + C <= kv <= width.
                let (x0, x1) = unsafe {
                    let row = rp.add(r * width + j);
                    (_mm256_loadu_ps(row), _mm256_loadu_ps(row.add(8)))
                };
                for (h, a) in acc.iter_mut().enumerate() {
                    // SAFETY: `pg` is `[H][t]` (a `chunks_exact(t * H)` chunk), h < H, r < t.
                    let w = _mm256_set1_ps(unsafe { *pp.add(h * t + r) });
                    a[0] = _mm256_add_ps(a[0], _mm256_mul_ps(w, x0));
                    a[1] = _mm256_add_ps(a[1], _mm256_mul_ps(w, x1));
                }
            }
            for (h, a) in acc.iter().enumerate() {
                // SAFETY: as for the loads.
                unsafe {
                    _mm256_storeu_ps(lp.add(h * kv + j), a[0]);
                    _mm256_storeu_ps(lp.add(h * kv + j + 8), a[1]);
                }
            }
            j += C;
        }
        if j < kv {
            for (p_h, l) in pg.chunks_exact(t).zip(lg.chunks_exact_mut(kv)) {
                crate::kernels::attn::accumulate_columns(
                    p_h,
                    rows,
                    width,
                    l.get_mut(j..).unwrap_or(&mut []),
                    j,
                );
            }
        }
    }
    for (p_h, l) in
        p_groups.remainder().chunks_exact(t).zip(lat_groups.into_remainder().chunks_exact_mut(kv))
    {
        crate::kernels::attn::accumulate_columns(p_h, rows, width, l, 0);
    }
}

/// [`crate::kernels::attn::softmax_weights`] eight at a time: [`crate::kernels::attn::exp_nonpositive`]'s steps
/// as vector operations (the same multiplies and adds, truncating conversion, exponent bits),
/// then the sum in order.
///
/// # Safety
/// The CPU supports AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn softmax_weights_avx2(s: &mut [f32], max: f32) -> f32 {
    use crate::kernels::attn::{EXP_MIN, EXP_P, LN2_HI, LN2_LO};
    let mut chunks = s.chunks_exact_mut(8);
    let c = |v: f32| _mm256_set1_ps(v);
    for ch in &mut chunks {
        // SAFETY: `ch` holds 8 floats.
        let v = unsafe { _mm256_loadu_ps(ch.as_ptr()) };
        let x = _mm256_sub_ps(v, c(max));
        // max(x, MIN) returns MIN for NaN, like f32::max; then min(., 0).
        let x = _mm256_min_ps(_mm256_max_ps(x, c(EXP_MIN)), c(0.0));
        let neg = _mm256_sub_ps(c(0.0), x);
        let n = _mm256_cvttps_epi32(_mm256_add_ps(
            _mm256_mul_ps(neg, c(core::f32::consts::LOG2_E)),
            c(0.5),
        ));
        let nf = _mm256_cvtepi32_ps(n);
        let r = _mm256_add_ps(
            _mm256_add_ps(x, _mm256_mul_ps(nf, c(LN2_HI))),
            _mm256_mul_ps(nf, c(LN2_LO)),
        );
        let z = _mm256_mul_ps(r, r);
        let mut p = c(EXP_P[0]);
        for coef in &EXP_P[1..] {
            p = _mm256_add_ps(_mm256_mul_ps(p, r), c(*coef));
        }
        let y = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(p, z), r), c(1.0));
        let bits = _mm256_slli_epi32::<23>(_mm256_sub_epi32(_mm256_set1_epi32(127), n));
        let out = _mm256_mul_ps(y, _mm256_castsi256_ps(bits));
        // SAFETY: as for the load.
        unsafe { _mm256_storeu_ps(ch.as_mut_ptr(), out) };
    }
    for v in chunks.into_remainder() {
        *v = crate::kernels::attn::exp_nonpositive(*v - max);
    }
    let mut sum = 0.0f32;
    for v in s.iter() {
        sum += *v;
    }
    sum
}

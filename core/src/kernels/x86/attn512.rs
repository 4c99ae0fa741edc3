//! The attention tile kernels ([`crate::kernels::attn`]) on 512-bit registers (AVX-512 F):
//! twice the lanes of the AVX2 bodies per instruction, the reference's sums unchanged.
//!
//! - Scores: a register holds two heads' 8-lane partial sums of one row (`[q_h | q_h+1]`
//!   against the row's chunk broadcast to both halves), so every lane adds its products in
//!   chunk order exactly as [`crate::kernels::scalar::dot`]'s eight accumulators do, and each
//!   half is reduced in the reference's order ([`super::hsum_ps`]).
//! - Accumulation: sixteen columns per register; per element the rows are added in order as
//!   `lat + p·x` (multiply, then add).
//!
//! Head counts and widths that do not fill a block run the AVX2 bodies, which are the
//! reference's arithmetic too.
#![allow(unsafe_code)]

use core::arch::x86_64::*;

/// Eight `f32`s from `p`, in both halves of a 512-bit register.
///
/// # Safety
/// The CPU supports AVX-512 F; `p` points at 8 readable `f32`s.
#[inline]
#[target_feature(enable = "avx2,avx512f")]
unsafe fn load_both_halves(p: *const f32) -> __m512 {
    // SAFETY: the caller's contract; an unaligned 256-bit load.
    let v = unsafe { _mm256_loadu_pd(p.cast::<f64>()) };
    _mm512_castpd_ps(_mm512_broadcast_f64x4(v))
}

/// Eight `f32`s from `lo` in the low half and eight from `hi` in the high half.
///
/// # Safety
/// The CPU supports AVX-512 F; `lo` and `hi` point at 8 readable `f32`s each.
#[inline]
#[target_feature(enable = "avx2,avx512f")]
unsafe fn load_halves(lo: *const f32, hi: *const f32) -> __m512 {
    // SAFETY: the caller's contract; unaligned 256-bit loads.
    let (l, h) = unsafe { (_mm256_loadu_pd(lo.cast::<f64>()), _mm256_loadu_pd(hi.cast::<f64>())) };
    _mm512_castpd_ps(_mm512_insertf64x4::<1>(_mm512_castpd256_pd512(l), h))
}

/// The two 8-lane halves of `v` reduced each as the reference reduces its accumulators.
///
/// # Safety
/// The CPU supports AVX-512 F.
#[inline]
#[target_feature(enable = "avx2,avx512f")]
unsafe fn hsum_halves(v: __m512) -> [f32; 2] {
    let lo = _mm512_castps512_ps256(v);
    let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
    // SAFETY: AVX is implied by AVX2.
    unsafe { [super::hsum_ps(lo), super::hsum_ps(hi)] }
}

/// Two heads' queries (`q`: `[2][width]`) against `R` rows (`rows`: `[≥R][width]`), the scores
/// written to `out_h0[r]` and `out_h1[r]` for `r < R`: each exactly `scalar::dot`'s (8 lanes
/// in chunk order, reduced in its order, then the tail in order).
///
/// # Safety
/// The CPU supports AVX2 and AVX-512 F; `q` holds `2 * width` values, `rows` `R * width`,
/// `out_h0` and `out_h1` at least `R` each.
#[inline]
#[target_feature(enable = "avx2,avx512f")]
unsafe fn scores_pair<const R: usize>(
    q: &[f32],
    width: usize,
    rows: &[f32],
    out_h0: &mut [f32],
    out_h1: &mut [f32],
) {
    const L: usize = 8;
    let chunks = width / L;
    let tail = chunks * L;
    let (qp, rp) = (q.as_ptr(), rows.as_ptr());
    let mut acc = [_mm512_setzero_ps(); R];
    for c in 0..chunks {
        // SAFETY: c * L + L <= width; two queries of `width` (contract).
        let x = unsafe { load_halves(qp.add(c * L), qp.add(width + c * L)) };
        for (k, a) in acc.iter_mut().enumerate() {
            // SAFETY: k < R rows of `width`, c * L + L <= width (contract).
            let y = unsafe { load_both_halves(rp.add(k * width + c * L)) };
            *a = _mm512_add_ps(*a, _mm512_mul_ps(x, y));
        }
    }
    let (q0_tail, q1_tail) =
        (q.get(tail..width).unwrap_or(&[]), q.get(width + tail..2 * width).unwrap_or(&[]));
    for (k, a) in acc.iter().enumerate() {
        // SAFETY: the features of this function.
        let [mut s0, mut s1] = unsafe { hsum_halves(*a) };
        let row_tail = rows.get(k * width + tail..(k + 1) * width).unwrap_or(&[]);
        for ((x0, x1), y) in q0_tail.iter().zip(q1_tail).zip(row_tail) {
            s0 += x0 * y;
            s1 += x1 * y;
        }
        if let (Some(o0), Some(o1)) = (out_h0.get_mut(k), out_h1.get_mut(k)) {
            *o0 = s0;
            *o1 = s1;
        }
    }
}

/// [`crate::kernels::attn::tile_scores`]: pairs of heads × eight rows per pass (eight
/// accumulators of two heads each), then four rows, then one; an odd last head runs the AVX2
/// body.
///
/// # Safety
/// The CPU supports AVX2 and AVX-512 F.
#[target_feature(enable = "avx2,avx512f")]
unsafe fn tile_scores_512(q: &[f32], width: usize, rows: &[f32], out: &mut [f32]) {
    let width = width.max(1);
    let t = rows.len() / width;
    if t == 0 {
        return;
    }
    let mut q_pairs = q.chunks_exact(2 * width);
    let mut out_pairs = out.chunks_exact_mut(2 * t);
    for (q2, o2) in (&mut q_pairs).zip(&mut out_pairs) {
        let (o0, o1) = o2.split_at_mut(t);
        let mut r = 0;
        while r < t {
            let rest = rows.get(r * width..).unwrap_or(&[]);
            let (o0, o1) = (o0.get_mut(r..).unwrap_or(&mut []), o1.get_mut(r..).unwrap_or(&mut []));
            // SAFETY: q2 holds two queries of `width`; `rest` at least the rows of the block
            // (r + block <= t); the outputs have t - r >= block entries.
            unsafe {
                if r + 8 <= t {
                    scores_pair::<8>(q2, width, rest, o0, o1);
                    r += 8;
                } else if r + 4 <= t {
                    scores_pair::<4>(q2, width, rest, o0, o1);
                    r += 4;
                } else {
                    scores_pair::<1>(q2, width, rest, o0, o1);
                    r += 1;
                }
            }
        }
    }
    // SAFETY: AVX2 is enabled here.
    unsafe {
        super::attn256::tile_scores_avx2(
            q_pairs.remainder(),
            width,
            rows,
            out_pairs.into_remainder(),
        )
    };
}

/// [`crate::kernels::attn::tile_accumulate`]: four heads × thirty-two columns per pass (eight
/// accumulators), each loaded row chunk serving the four heads; the other heads and columns
/// run the AVX2 body.
///
/// # Safety
/// The CPU supports AVX2 and AVX-512 F.
#[target_feature(enable = "avx2,avx512f")]
unsafe fn tile_accumulate_512(p: &[f32], rows: &[f32], width: usize, lat: &mut [f32], kv: usize) {
    const H: usize = 4;
    const C: usize = 32;
    let (width, kv) = (width.max(1), kv.max(1));
    let t = rows.len() / width;
    if t == 0 || kv > width {
        return;
    }
    let wide = kv / C * C;
    let mut p_groups = p.chunks_exact(t * H);
    let mut lat_groups = lat.chunks_exact_mut(kv * H);
    for (pg, lg) in (&mut p_groups).zip(&mut lat_groups) {
        let lp = lg.as_mut_ptr();
        for j in (0..wide).step_by(C) {
            let mut acc = [[_mm512_setzero_ps(); 2]; H];
            for (h, a) in acc.iter_mut().enumerate() {
                // SAFETY: h < H rows of `kv` in `lg`, j + C <= kv.
                unsafe {
                    a[0] = _mm512_loadu_ps(lp.add(h * kv + j));
                    a[1] = _mm512_loadu_ps(lp.add(h * kv + j + 16));
                }
            }
            let (pp, rp) = (pg.as_ptr(), rows.as_ptr());
            for r in 0..t {
                // SAFETY: r < t rows of `width`, j + C <= kv <= width.
                let (x0, x1) = unsafe {
                    let row = rp.add(r * width + j);
                    (_mm512_loadu_ps(row), _mm512_loadu_ps(row.add(16)))
                };
                for (h, a) in acc.iter_mut().enumerate() {
                    // SAFETY: `pg` is `[H][t]` (a `chunks_exact(t * H)` chunk), h < H, r < t.
                    let w = _mm512_set1_ps(unsafe { *pp.add(h * t + r) });
                    a[0] = _mm512_add_ps(a[0], _mm512_mul_ps(w, x0));
                    a[1] = _mm512_add_ps(a[1], _mm512_mul_ps(w, x1));
                }
            }
            for (h, a) in acc.iter().enumerate() {
                // SAFETY: as for the loads.
                unsafe {
                    _mm512_storeu_ps(lp.add(h * kv + j), a[0]);
                    _mm512_storeu_ps(lp.add(h * kv + j + 16), a[1]);
                }
            }
        }
        if wide < kv {
            for (p_h, l) in pg.chunks_exact(t).zip(lg.chunks_exact_mut(kv)) {
                crate::kernels::attn::accumulate_columns(
                    p_h,
                    rows,
                    width,
                    l.get_mut(wide..).unwrap_or(&mut []),
                    wide,
                );
            }
        }
    }
    // SAFETY: AVX2 is enabled here.
    unsafe {
        super::attn256::tile_accumulate_avx2(
            p_groups.remainder(),
            rows,
            width,
            lat_groups.into_remainder(),
            kv,
        );
    }
}

/// Safe entry points, installed in [`crate::kernels::Kernels`] only once AVX2 and AVX-512 F
/// were detected.
pub(in crate::kernels) mod entry {
    use super::*;

    pub(in crate::kernels) fn tile_scores(q: &[f32], width: usize, rows: &[f32], out: &mut [f32]) {
        // SAFETY: reachable only through the table `Kernels::x86_vnni(true)` builds after
        // detecting avx2 and avx512f (with bw, vl and vnni).
        unsafe { tile_scores_512(q, width, rows, out) }
    }

    pub(in crate::kernels) fn tile_accumulate(
        p: &[f32],
        rows: &[f32],
        width: usize,
        lat: &mut [f32],
        kv: usize,
    ) {
        // SAFETY: as above.
        unsafe { tile_accumulate_512(p, rows, width, lat, kv) }
    }
}

//! `vpdpbusd` kernels: AVX-512 VNNI (512-bit group kernels, 256-bit block kernels through
//! AVX-512 VL) and AVX-VNNI (the same instruction in its 256-bit VEX form, on Alder Lake and
//! later client cores). One `vpdpbusd` multiplies 4 unsigned bytes by 4 signed bytes and adds
//! the four products to an `i32` lane — where AVX2 needs `maddubs` + `madd` + an add — and
//! never saturates, so every sum here is the exact integer sum of the references.
//!
//! Two ways make one operand unsigned, both exact:
//! - *sign transfer* (one-vector block kernels, like AVX2's): `|w| · (sign(w) · a)`, exact for
//!   activations in −127..=127, which is all Q8_0 quantisation writes;
//! - *bias* (group kernels): `a ⊕ 0x80` is `a + 128` read unsigned, so `Σ (a + 128) · w` minus
//!   `Σ 128 · w` (one more `vpdpbusd` on a constant) is `Σ a · w` for *every* pair of bytes.
//!
//! The float side (block scales, terms, the in-order additions) is [`super`]'s, so every
//! result is bit-identical to the scalar reference.
#![allow(unsafe_code)]

use core::arch::x86_64::*;

use super::{add_lanes_in_order, GROUP_TILE};
use crate::quant::group8::{BiasedGroups, Group8, GROUP_BYTES};

/// Bytes from a group's start to its values (the eight `f32` scales come first).
const VALUES: usize = 32;

/// The 16 lanes of a 512-bit group sum folded to the 8 block sums: lane `j` of rows `2h` and
/// `2h + 1` both belong to block `j` (exact).
///
/// # Safety
/// The CPU supports AVX-512 F.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn fold16(v: __m512i) -> __m256i {
    _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64::<1>(v))
}

/// `(d_w · d_a) · isum` for eight blocks, as `group8::dot` rounds each term: `dw`, `da` the
/// eight scales of each side (`f32` at a group's start), `isum` the exact block sums.
///
/// # Safety
/// The CPU supports AVX; `wp` and `ap` point at groups.
#[inline]
#[target_feature(enable = "avx")]
unsafe fn terms(wp: *const u8, ap: *const u8, isum: __m256i) -> __m256 {
    // SAFETY: a group starts with its eight f32 scales; the loads are unaligned.
    let d = _mm256_mul_ps(_mm256_loadu_ps(wp.cast::<f32>()), _mm256_loadu_ps(ap.cast::<f32>()));
    // |isum| < 2^24: the conversion is exact.
    _mm256_mul_ps(d, _mm256_cvtepi32_ps(isum))
}

/// The exact block sums of one group pair: `Σ w · a` per block over the 256 values, with the
/// unsigned operand `a ⊕ 0x80` and the correction `128 · Σ w` (see the module notes).
///
/// # Safety
/// The CPU supports AVX-512 F, BW and VNNI; `wp`, `ap` point at groups.
/// With `BIASED`, `ap`'s values are stored biased already ([`BiasedGroups`]).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn group_sums_512<const BIASED: bool>(wp: *const u8, ap: *const u8) -> __m256i {
    let bias = _mm512_set1_epi8(-128);
    let (mut acc, mut corr) = (_mm512_setzero_si512(), _mm512_setzero_si512());
    for h in 0..4 {
        // SAFETY: a group is 288 bytes, the values at 32..288; two rows per 64-byte load.
        let w = _mm512_loadu_si512(wp.add(VALUES + 64 * h).cast());
        let a = _mm512_loadu_si512(ap.add(VALUES + 64 * h).cast());
        let a = if BIASED { a } else { _mm512_xor_si512(a, bias) };
        acc = _mm512_dpbusd_epi32(acc, a, w);
        corr = _mm512_dpbusd_epi32(corr, bias, w);
    }
    fold16(_mm512_sub_epi32(acc, corr))
}

/// [`crate::quant::group8::dot`] with 512-bit `vpdpbusd`, bit-identical for every byte
/// ([`crate::quant::group8::dot_biased`] with `BIASED`).
///
/// # Safety
/// The CPU supports AVX2, AVX-512 F, BW and VNNI.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vnni")]
pub(super) unsafe fn dot_groups_512<const BIASED: bool>(w: &[Group8], a: &[Group8]) -> f32 {
    let mut sum = 0.0f32;
    for (wg, ag) in w.iter().zip(a) {
        let (wp, ap) = (wg.as_ptr(), ag.as_ptr());
        sum = add_lanes_in_order(sum, terms(wp, ap, group_sums_512::<BIASED>(wp, ap)));
    }
    sum
}

/// One shared operand `s` against [`GROUP_TILE`] others `v[t]` (each at least `s.len()`
/// groups): `[group8::dot(s, v[0]), …]`, bit-identical, exact for every byte on both sides.
/// The shared rows are loaded once per group, with their correction `128 · Σ s`; the others
/// are biased (`⊕ 0x80`) and multiplied, one `vpdpbusd` per 64 bytes. The eight results'
/// block terms are transposed so that lane `t` of one register carries vector `t`'s running
/// sum (see [`super::groups::dot_groups_tile_avx2`]).
///
/// Serves both tiles: prefill's (one weight row, 8 activation vectors) and decode's (one
/// activation vector, 8 weight rows; `group8::dot` is symmetric to the bit). With `BIASED`,
/// the vectors `v[t]` are stored biased already ([`BiasedGroups`]: prefill's activations),
/// which saves a third of the tile's vector instructions.
///
/// # Safety
/// The CPU supports AVX2, AVX-512 F, BW and VNNI; every `v[t]` holds `s.len()` groups.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vnni")]
pub(super) unsafe fn dot_groups_tile_512<const BIASED: bool>(
    s: &[Group8],
    v: &[&[Group8]; GROUP_TILE],
) -> [f32; GROUP_TILE] {
    const _: () = assert!(GROUP_TILE == 8, "one f32 lane per vector of the tile");
    let bias = _mm512_set1_epi8(-128);
    let mut sums = _mm256_setzero_ps();
    let bases: [*const u8; GROUP_TILE] = v.map(|vt| vt.as_ptr().cast::<u8>());
    for (i, sg) in s.iter().enumerate() {
        // SAFETY: `i < s.len() <= v[t].len()` (the caller's contract).
        let vp: [*const u8; GROUP_TILE] = bases.map(|b| b.add(i * GROUP_BYTES));
        let sp = sg.as_ptr();
        // SAFETY (all loads): groups are 288 bytes, values at 32..288; loads are unaligned.
        let rows: [__m512i; 4] =
            core::array::from_fn(|h| _mm512_loadu_si512(sp.add(VALUES + 64 * h).cast()));
        let mut corr = _mm512_setzero_si512();
        for r in rows {
            corr = _mm512_dpbusd_epi32(corr, bias, r);
        }
        // The correction and the shared scales, once for both halves of a pair of vectors.
        let corr = twice(fold16(corr));
        let ds = _mm512_castsi512_ps(twice(_mm256_loadu_si256(sp.cast())));
        let sums_of = |vt: *const u8| {
            let mut acc = _mm512_setzero_si512();
            for (h, r) in rows.iter().enumerate() {
                let x = _mm512_loadu_si512(vt.add(VALUES + 64 * h).cast());
                let x = if BIASED { x } else { _mm512_xor_si512(x, bias) };
                acc = _mm512_dpbusd_epi32(acc, x, *r);
            }
            acc
        };
        // Vectors 2k and 2k + 1 side by side: their folded block sums, then their terms
        // `(d_s · d_v) · isum`, rounded as `terms` rounds them.
        let [p0, p1, p2, p3, p4, p5, p6, p7] = vp;
        let pairs = [(p0, p1), (p2, p3), (p4, p5), (p6, p7)].map(|(va, vb)| {
            let (a, b) = (sums_of(va), sums_of(vb));
            let low = _mm512_shuffle_i64x2::<0b01_00_01_00>(a, b);
            let high = _mm512_shuffle_i64x2::<0b11_10_11_10>(a, b);
            let isum = _mm512_sub_epi32(_mm512_add_epi32(low, high), corr);
            let dv = _mm512_inserti64x4::<1>(
                _mm512_castsi256_si512(_mm256_loadu_si256(va.cast())),
                _mm256_loadu_si256(vb.cast()),
            );
            let d = _mm512_mul_ps(ds, _mm512_castsi512_ps(dv));
            // |isum| < 2^24: the conversion is exact.
            _mm512_mul_ps(d, _mm512_cvtepi32_ps(isum))
        });
        for block in transpose_pairs(pairs) {
            sums = _mm256_add_ps(sums, block);
        }
    }
    let mut out = [0.0f32; GROUP_TILE];
    // SAFETY: `out` holds eight f32; the store is unaligned.
    _mm256_storeu_ps(out.as_mut_ptr(), sums);
    out
}

/// `[v, v]`: a 256-bit value in both halves.
///
/// # Safety
/// The CPU supports AVX-512 F.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn twice(v: __m256i) -> __m512i {
    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(v), v)
}

/// The 8 × 8 transpose of rows given in pairs (`pairs[k]` = rows `2k`, `2k + 1`): column `j`
/// (lane `t` = row `t`'s value `j`) for `j` in `0..8`, on 512-bit shuffles (12, against the
/// 24 of [`super::groups::transpose8_ps`], plus 4 extractions).
///
/// # Safety
/// The CPU supports AVX-512 F.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn transpose_pairs(pairs: [__m512; 4]) -> [__m256; 8] {
    let [z0, z1, z2, z3] = pairs;
    // Per 128-bit lane (rows 0 | 2 | 1 | 3 halves): (z0[i], z1[i], z0[i+1], z1[i+1]).
    let (t0, t1) = (_mm512_unpacklo_ps(z0, z1), _mm512_unpackhi_ps(z0, z1));
    let (t2, t3) = (_mm512_unpacklo_ps(z2, z3), _mm512_unpackhi_ps(z2, z3));
    // u[c] holds, per 128-bit lane, column c (lanes 0, 2) or c + 4 (lanes 1, 3) of the even
    // rows (lanes 0, 1: rows 0, 2, 4, 6) and the odd rows (lanes 2, 3: rows 1, 3, 5, 7).
    let u = [
        _mm512_shuffle_ps::<0x44>(t0, t2),
        _mm512_shuffle_ps::<0xEE>(t0, t2),
        _mm512_shuffle_ps::<0x44>(t1, t3),
        _mm512_shuffle_ps::<0xEE>(t1, t3),
    ];
    // Interleave even and odd rows: [column c | column c + 4], rows in order.
    let order = _mm512_setr_epi32(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
    let w = u.map(|x| _mm512_permutexvar_ps(order, x));
    let low = |x: __m512| _mm512_castps512_ps256(x);
    let high = |x: __m512| _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(x)));
    [low(w[0]), low(w[1]), low(w[2]), low(w[3]), high(w[0]), high(w[1]), high(w[2]), high(w[3])]
}

/// The 256-bit kernels, once per instruction form: `vpdpbusd` on `ymm` through AVX-512 VL
/// (`avx512vl`) and through AVX-VNNI's VEX encoding (`avxvnni`). Same arithmetic, same
/// results; only the encoding (and the CPUs that have it) differ.
macro_rules! vnni256 {
    ($name:ident, $features:literal, $dpbusd:ident) => {
        pub(in crate::kernels) mod $name {
            use core::arch::x86_64::*;

            use super::super::groups::transpose8_ps;
            use super::super::{add_lanes_in_order, dot_blocks, dot_blocks_tile};
            use super::{terms, GROUP_TILE, VALUES};
            use crate::quant::group8::{BiasedGroups, Group8, GROUP_BYTES};
            use crate::quant::{q4_0::BlockQ4_0, q8_0::BlockQ8_0};

            /// One Q8_0 × Q8_0 block as 8 `i32` lanes summing to its exact dot product
            /// (sign transfer: activations in −127..=127).
            ///
            /// # Safety
            /// The CPU has the module's features.
            #[inline]
            #[target_feature(enable = $features)]
            pub(in crate::kernels) unsafe fn q8_0_lanes(wb: &BlockQ8_0, ab: &BlockQ8_0) -> __m256i {
                // SAFETY: each block is 34 bytes; bytes 2..34 are the 32 values.
                let qx = _mm256_loadu_si256(wb.as_ptr().add(2).cast::<__m256i>());
                let qy = _mm256_loadu_si256(ab.as_ptr().add(2).cast::<__m256i>());
                let zero = _mm256_setzero_si256();
                $dpbusd(zero, _mm256_abs_epi8(qx), _mm256_sign_epi8(qy, qx))
            }

            /// One Q4_0 × Q8_0 block as 8 `i32` lanes, exact for every byte: nibbles `q` in
            /// element order (as the AVX2 kernel spreads them), `Σ q · y − Σ 8 · y`.
            ///
            /// # Safety
            /// The CPU has the module's features.
            #[inline]
            #[target_feature(enable = $features)]
            pub(in crate::kernels) unsafe fn q4_0_lanes(wb: &BlockQ4_0, ab: &BlockQ8_0) -> __m256i {
                // SAFETY: a Q4_0 block is 18 bytes (nibbles at 2..18), a Q8_0 block 34.
                let nib = _mm_loadu_si128(wb.as_ptr().add(2).cast::<__m128i>());
                let qy = _mm256_loadu_si256(ab.as_ptr().add(2).cast::<__m256i>());
                let spread = _mm256_inserti128_si256::<1>(
                    _mm256_castsi128_si256(nib),
                    _mm_srli_epi16(nib, 4),
                );
                let q = _mm256_and_si256(spread, _mm256_set1_epi8(0x0f));
                let zero = _mm256_setzero_si256();
                let eight = $dpbusd(zero, _mm256_set1_epi8(8), qy);
                _mm256_sub_epi32($dpbusd(zero, q, qy), eight)
            }

            /// `sum` + Q8_0 × Q8_0 (the AVX2 kernel's block loop and float side).
            ///
            /// # Safety
            /// The CPU has the module's features.
            #[target_feature(enable = $features)]
            pub(in crate::kernels) unsafe fn dot_q8_0(
                sum: f32,
                w: &[BlockQ8_0],
                a: &[BlockQ8_0],
                scales: Option<&[f32]>,
            ) -> f32 {
                dot_blocks(sum, w, a, scales, q8_0_lanes)
            }

            /// `sum` + Q4_0 × Q8_0.
            ///
            /// # Safety
            /// The CPU has the module's features.
            #[target_feature(enable = $features)]
            pub(in crate::kernels) unsafe fn dot_q4_0(
                sum: f32,
                w: &[BlockQ4_0],
                a: &[BlockQ8_0],
                scales: Option<&[f32]>,
            ) -> f32 {
                dot_blocks(sum, w, a, scales, q4_0_lanes)
            }

            /// [`dot_q8_0`] for [`GROUP_TILE`] vectors at once.
            ///
            /// # Safety
            /// The CPU has the module's features; every `a[t]` holds `w.len()` blocks.
            #[target_feature(enable = $features)]
            pub(in crate::kernels) unsafe fn dot_q8_0_tile(
                sums: [f32; GROUP_TILE],
                w: &[BlockQ8_0],
                a: &[&[BlockQ8_0]; GROUP_TILE],
            ) -> [f32; GROUP_TILE] {
                dot_blocks_tile(sums, w, a, q8_0_lanes)
            }

            /// [`dot_q4_0`] for [`GROUP_TILE`] vectors at once.
            ///
            /// # Safety
            /// The CPU has the module's features; every `a[t]` holds `w.len()` blocks.
            #[target_feature(enable = $features)]
            pub(in crate::kernels) unsafe fn dot_q4_0_tile(
                sums: [f32; GROUP_TILE],
                w: &[BlockQ4_0],
                a: &[&[BlockQ8_0]; GROUP_TILE],
            ) -> [f32; GROUP_TILE] {
                dot_blocks_tile(sums, w, a, q4_0_lanes)
            }

            /// The exact block sums of one group pair (bias, as in the 512-bit kernel).
            ///
            /// # Safety
            /// The CPU has the module's features; `wp`, `ap` point at groups.
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn group_sums<const BIASED: bool>(wp: *const u8, ap: *const u8) -> __m256i {
                let bias = _mm256_set1_epi8(-128);
                let (mut acc, mut corr) = (_mm256_setzero_si256(), _mm256_setzero_si256());
                for g in 0..8 {
                    // SAFETY: a group is 288 bytes, the values at 32..288.
                    let w = _mm256_loadu_si256(wp.add(VALUES + 32 * g).cast());
                    let a = _mm256_loadu_si256(ap.add(VALUES + 32 * g).cast());
                    let a = if BIASED { a } else { _mm256_xor_si256(a, bias) };
                    acc = $dpbusd(acc, a, w);
                    corr = $dpbusd(corr, bias, w);
                }
                _mm256_sub_epi32(acc, corr)
            }

            /// [`crate::quant::group8::dot`], bit-identical for every byte
            /// ([`crate::quant::group8::dot_biased`] with `BIASED`).
            ///
            /// # Safety
            /// The CPU has the module's features.
            #[target_feature(enable = $features)]
            pub(in crate::kernels) unsafe fn dot_groups<const BIASED: bool>(
                w: &[Group8],
                a: &[Group8],
            ) -> f32 {
                let mut sum = 0.0f32;
                for (wg, ag) in w.iter().zip(a) {
                    let (wp, ap) = (wg.as_ptr(), ag.as_ptr());
                    sum = add_lanes_in_order(sum, terms(wp, ap, group_sums::<BIASED>(wp, ap)));
                }
                sum
            }

            /// [`super::dot_groups_tile_512`] on 256-bit registers.
            ///
            /// # Safety
            /// The CPU has the module's features; every `v[t]` holds `s.len()` groups.
            #[target_feature(enable = $features)]
            pub(in crate::kernels) unsafe fn dot_groups_tile<const BIASED: bool>(
                s: &[Group8],
                v: &[&[Group8]; GROUP_TILE],
            ) -> [f32; GROUP_TILE] {
                let bias = _mm256_set1_epi8(-128);
                let mut sums = _mm256_setzero_ps();
                let bases: [*const u8; GROUP_TILE] = v.map(|vt| vt.as_ptr().cast::<u8>());
                for (i, sg) in s.iter().enumerate() {
                    // SAFETY: `i < s.len() <= v[t].len()` (the caller's contract).
                    let vp: [*const u8; GROUP_TILE] = bases.map(|b| b.add(i * GROUP_BYTES));
                    let sp = sg.as_ptr();
                    // SAFETY (all loads): groups are 288 bytes, values at 32..288.
                    let rows: [__m256i; 8] = core::array::from_fn(|g| {
                        _mm256_loadu_si256(sp.add(VALUES + 32 * g).cast())
                    });
                    let mut corr = _mm256_setzero_si256();
                    for r in rows {
                        corr = $dpbusd(corr, bias, r);
                    }
                    let mut products = [_mm256_setzero_ps(); GROUP_TILE];
                    for (p, vt) in products.iter_mut().zip(vp) {
                        let mut acc = _mm256_setzero_si256();
                        for (g, r) in rows.iter().enumerate() {
                            let x = _mm256_loadu_si256(vt.add(VALUES + 32 * g).cast());
                            let x = if BIASED { x } else { _mm256_xor_si256(x, bias) };
                            acc = $dpbusd(acc, x, *r);
                        }
                        *p = terms(sp, vt, _mm256_sub_epi32(acc, corr));
                    }
                    for block in transpose8_ps(products) {
                        sums = _mm256_add_ps(sums, block);
                    }
                }
                let mut out = [0.0f32; GROUP_TILE];
                // SAFETY: `out` holds eight f32; the store is unaligned.
                _mm256_storeu_ps(out.as_mut_ptr(), sums);
                out
            }

            /// Safe entry points, installed in [`crate::kernels::Kernels`] only once the
            /// module's features were detected.
            pub(in crate::kernels) mod entry {
                use super::*;

                pub(in crate::kernels) fn dot_q8_0_from(
                    sum: f32,
                    w: &[BlockQ8_0],
                    a: &[BlockQ8_0],
                ) -> f32 {
                    // SAFETY: reachable only through a table built after detecting the
                    // module's features (`Kernels::x86_vnni`).
                    unsafe { super::dot_q8_0(sum, w, a, None) }
                }

                pub(in crate::kernels) fn dot_q8_0(w: &[BlockQ8_0], a: &[BlockQ8_0]) -> f32 {
                    dot_q8_0_from(0.0, w, a)
                }

                pub(in crate::kernels) fn dot_q8_0_scaled(
                    w: &[BlockQ8_0],
                    a: &[BlockQ8_0],
                    s: &[f32],
                ) -> f32 {
                    // SAFETY: as above.
                    unsafe { super::dot_q8_0(0.0, w, a, Some(s)) }
                }

                pub(in crate::kernels) fn dot_q4_0_from(
                    sum: f32,
                    w: &[BlockQ4_0],
                    a: &[BlockQ8_0],
                ) -> f32 {
                    // SAFETY: as above.
                    unsafe { super::dot_q4_0(sum, w, a, None) }
                }

                pub(in crate::kernels) fn dot_q4_0(w: &[BlockQ4_0], a: &[BlockQ8_0]) -> f32 {
                    dot_q4_0_from(0.0, w, a)
                }

                pub(in crate::kernels) fn dot_q4_0_scaled(
                    w: &[BlockQ4_0],
                    a: &[BlockQ8_0],
                    s: &[f32],
                ) -> f32 {
                    // SAFETY: as above.
                    unsafe { super::dot_q4_0(0.0, w, a, Some(s)) }
                }

                pub(in crate::kernels) fn dot_groups(w: &[Group8], a: &[Group8]) -> f32 {
                    // SAFETY: as above.
                    unsafe { super::dot_groups::<false>(w, a) }
                }

                pub(in crate::kernels) fn dot_groups_biased(
                    w: &[Group8],
                    a: BiasedGroups<'_>,
                ) -> f32 {
                    // SAFETY: as above.
                    unsafe { super::dot_groups::<true>(w, a.groups()) }
                }

                pub(in crate::kernels) fn dot_q8_0_tile(
                    sums: &[f32; GROUP_TILE],
                    w: &[BlockQ8_0],
                    a: &[&[BlockQ8_0]; GROUP_TILE],
                ) -> [f32; GROUP_TILE] {
                    if a.iter().any(|at| at.len() < w.len()) {
                        return crate::kernels::tile_by_vector(sums, w, a, dot_q8_0_from);
                    }
                    // SAFETY: as above; every vector covers `w`, checked just above.
                    unsafe { super::dot_q8_0_tile(*sums, w, a) }
                }

                pub(in crate::kernels) fn dot_q4_0_tile(
                    sums: &[f32; GROUP_TILE],
                    w: &[BlockQ4_0],
                    a: &[&[BlockQ8_0]; GROUP_TILE],
                ) -> [f32; GROUP_TILE] {
                    if a.iter().any(|at| at.len() < w.len()) {
                        return crate::kernels::tile_by_vector(sums, w, a, dot_q4_0_from);
                    }
                    // SAFETY: as above; every vector covers `w`, checked just above.
                    unsafe { super::dot_q4_0_tile(*sums, w, a) }
                }

                pub(in crate::kernels) fn dot_groups_tile(
                    s: &[Group8],
                    v: &[&[Group8]; GROUP_TILE],
                ) -> [f32; GROUP_TILE] {
                    if v.iter().any(|vt| vt.len() < s.len()) {
                        return v.map(|vt| dot_groups(s, vt));
                    }
                    // SAFETY: as above; every vector covers `s`, checked just above.
                    unsafe { super::dot_groups_tile::<false>(s, v) }
                }

                pub(in crate::kernels) fn dot_groups_tile_biased(
                    s: &[Group8],
                    v: &[BiasedGroups<'_>; GROUP_TILE],
                ) -> [f32; GROUP_TILE] {
                    if v.iter().any(|vt| vt.len() < s.len()) {
                        return v.map(|vt| dot_groups_biased(s, vt));
                    }
                    // SAFETY: as above; every vector covers `s`, checked just above.
                    unsafe { super::dot_groups_tile::<true>(s, &v.map(BiasedGroups::groups)) }
                }
            }
        }
    };
}

/// Safe entry points of the 512-bit group kernels, installed in [`crate::kernels::Kernels`]
/// only once AVX-512 F, BW, VL and VNNI were detected.
pub(in crate::kernels) mod entry512 {
    use super::*;

    pub(in crate::kernels) fn dot_groups(w: &[Group8], a: &[Group8]) -> f32 {
        // SAFETY: reachable only through the table `Kernels::x86_vnni` builds after detecting
        // avx2 and avx512f/bw/vl/vnni.
        unsafe { dot_groups_512::<false>(w, a) }
    }

    pub(in crate::kernels) fn dot_groups_biased(w: &[Group8], a: BiasedGroups<'_>) -> f32 {
        // SAFETY: as above.
        unsafe { dot_groups_512::<true>(w, a.groups()) }
    }

    pub(in crate::kernels) fn dot_groups_tile(
        s: &[Group8],
        v: &[&[Group8]; GROUP_TILE],
    ) -> [f32; GROUP_TILE] {
        if v.iter().any(|vt| vt.len() < s.len()) {
            return v.map(|vt| dot_groups(s, vt));
        }
        // SAFETY: as above; every vector covers `s`, checked just above.
        unsafe { dot_groups_tile_512::<false>(s, v) }
    }

    pub(in crate::kernels) fn dot_groups_tile_biased(
        s: &[Group8],
        v: &[BiasedGroups<'_>; GROUP_TILE],
    ) -> [f32; GROUP_TILE] {
        if v.iter().any(|vt| vt.len() < s.len()) {
            return v.map(|vt| dot_groups_biased(s, vt));
        }
        // SAFETY: as above; every vector covers `s`, checked just above.
        unsafe { dot_groups_tile_512::<true>(s, &v.map(BiasedGroups::groups)) }
    }
}

vnni256!(vl, "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni", _mm256_dpbusd_epi32);
vnni256!(avx, "avx2,fma,f16c,avxvnni", _mm256_dpbusd_avx_epi32);

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

use super::{add_lanes_in_order, transpose8_ps, GROUP_TILE};
use crate::quant::group8::{Group8, GROUP_BYTES};

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
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn group_sums_512(wp: *const u8, ap: *const u8) -> __m256i {
    let bias = _mm512_set1_epi8(-128);
    let (mut acc, mut corr) = (_mm512_setzero_si512(), _mm512_setzero_si512());
    for h in 0..4 {
        // SAFETY: a group is 288 bytes, the values at 32..288; two rows per 64-byte load.
        let w = _mm512_loadu_si512(wp.add(VALUES + 64 * h).cast());
        let a = _mm512_loadu_si512(ap.add(VALUES + 64 * h).cast());
        acc = _mm512_dpbusd_epi32(acc, _mm512_xor_si512(a, bias), w);
        corr = _mm512_dpbusd_epi32(corr, bias, w);
    }
    fold16(_mm512_sub_epi32(acc, corr))
}

/// [`crate::quant::group8::dot`] with 512-bit `vpdpbusd`, bit-identical for every byte.
///
/// # Safety
/// The CPU supports AVX2, AVX-512 F, BW and VNNI.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vnni")]
pub(super) unsafe fn dot_groups_512(w: &[Group8], a: &[Group8]) -> f32 {
    let mut sum = 0.0f32;
    for (wg, ag) in w.iter().zip(a) {
        let (wp, ap) = (wg.as_ptr(), ag.as_ptr());
        sum = add_lanes_in_order(sum, terms(wp, ap, group_sums_512(wp, ap)));
    }
    sum
}

/// One shared operand `s` against [`GROUP_TILE`] others `v[t]` (each at least `s.len()`
/// groups): `[group8::dot(s, v[0]), …]`, bit-identical, exact for every byte on both sides.
/// The shared rows are loaded once per group, with their correction `128 · Σ s`; the others
/// are biased (`⊕ 0x80`) and multiplied, one `vpdpbusd` per 64 bytes. The eight results'
/// block terms are transposed so that lane `t` of one register carries vector `t`'s running
/// sum (see [`super::dot_groups_tile_avx2`]).
///
/// Serves both tiles: prefill's (one weight row, 8 activation vectors) and decode's (one
/// activation vector, 8 weight rows; `group8::dot` is symmetric to the bit).
///
/// # Safety
/// The CPU supports AVX2, AVX-512 F, BW and VNNI; every `v[t]` holds `s.len()` groups.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vnni")]
pub(super) unsafe fn dot_groups_tile_512(
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
        let mut products = [_mm256_setzero_ps(); GROUP_TILE];
        for (p, vt) in products.iter_mut().zip(vp) {
            let mut acc = _mm512_setzero_si512();
            for (h, r) in rows.iter().enumerate() {
                let x = _mm512_loadu_si512(vt.add(VALUES + 64 * h).cast());
                acc = _mm512_dpbusd_epi32(acc, _mm512_xor_si512(x, bias), *r);
            }
            *p = terms(sp, vt, fold16(_mm512_sub_epi32(acc, corr)));
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

/// The 256-bit kernels, once per instruction form: `vpdpbusd` on `ymm` through AVX-512 VL
/// (`avx512vl`) and through AVX-VNNI's VEX encoding (`avxvnni`). Same arithmetic, same
/// results; only the encoding (and the CPUs that have it) differ.
macro_rules! vnni256 {
    ($name:ident, $features:literal, $dpbusd:ident) => {
        pub(in crate::kernels) mod $name {
            use core::arch::x86_64::*;

            use super::super::{add_lanes_in_order, dot_blocks, dot_blocks_tile, transpose8_ps};
            use super::{terms, GROUP_TILE, VALUES};
            use crate::quant::group8::{Group8, GROUP_BYTES};
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
            unsafe fn group_sums(wp: *const u8, ap: *const u8) -> __m256i {
                let bias = _mm256_set1_epi8(-128);
                let (mut acc, mut corr) = (_mm256_setzero_si256(), _mm256_setzero_si256());
                for g in 0..8 {
                    // SAFETY: a group is 288 bytes, the values at 32..288.
                    let w = _mm256_loadu_si256(wp.add(VALUES + 32 * g).cast());
                    let a = _mm256_loadu_si256(ap.add(VALUES + 32 * g).cast());
                    acc = $dpbusd(acc, _mm256_xor_si256(a, bias), w);
                    corr = $dpbusd(corr, bias, w);
                }
                _mm256_sub_epi32(acc, corr)
            }

            /// [`crate::quant::group8::dot`], bit-identical for every byte.
            ///
            /// # Safety
            /// The CPU has the module's features.
            #[target_feature(enable = $features)]
            pub(in crate::kernels) unsafe fn dot_groups(w: &[Group8], a: &[Group8]) -> f32 {
                let mut sum = 0.0f32;
                for (wg, ag) in w.iter().zip(a) {
                    let (wp, ap) = (wg.as_ptr(), ag.as_ptr());
                    sum = add_lanes_in_order(sum, terms(wp, ap, group_sums(wp, ap)));
                }
                sum
            }

            /// [`super::dot_groups_tile_512`] on 256-bit registers.
            ///
            /// # Safety
            /// The CPU has the module's features; every `v[t]` holds `s.len()` groups.
            #[target_feature(enable = $features)]
            pub(in crate::kernels) unsafe fn dot_groups_tile(
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
                            acc = $dpbusd(acc, _mm256_xor_si256(x, bias), *r);
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
                    unsafe { super::dot_groups(w, a) }
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
                    unsafe { super::dot_groups_tile(s, v) }
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
        unsafe { dot_groups_512(w, a) }
    }

    pub(in crate::kernels) fn dot_groups_tile(
        s: &[Group8],
        v: &[&[Group8]; GROUP_TILE],
    ) -> [f32; GROUP_TILE] {
        if v.iter().any(|vt| vt.len() < s.len()) {
            return v.map(|vt| dot_groups(s, vt));
        }
        // SAFETY: as above; every vector covers `s`, checked just above.
        unsafe { dot_groups_tile_512(s, v) }
    }
}

vnni256!(vl, "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni", _mm256_dpbusd_epi32);
vnni256!(avx, "avx2,fma,f16c,avxvnni", _mm256_dpbusd_avx_epi32);

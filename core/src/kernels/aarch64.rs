//! aarch64 NEON variants of the hot dot products, with an `SDOT` (`dotprod`) tier for the
//! integer ones.
//!
//! Every function here has a scalar reference in [`super::scalar`] or [`crate::quant`] and is
//! tested against it (`kernels::tests`, run under `qemu-aarch64` by `scripts/test.sh`). They are
//! reachable only through [`super::Kernels`], which installs them after the CPU features were
//! detected (or compiled in). Loads are byte loads (`vld1q_u8`), so no alignment is assumed.
//!
//! The integer kernels compute each block's `i32` sum exactly, for every `i8` input (−128
//! included), then apply the two scales in the scalar reference's order, so they are
//! bit-identical to it. `vdotq_s32` is still unstable in Rust, so `SDOT` is emitted with
//! `asm!` inside a `dotprod` function.
#![allow(unsafe_code)]

use core::arch::aarch64::*;
use core::arch::asm;

#[cfg(feature = "block-formats")]
pub(in crate::kernels) mod blocks;

use super::GROUP_TILE;
use crate::quant::group8::{Group8, GROUP_BYTES};
use crate::quant::{block_term, q4_0::BlockQ4_0, q8_0::BlockQ8_0};

/// `Σ w[i]·x[i]`, `w` little-endian `f32` bytes: four 4-lane FMA accumulators.
///
/// # Safety
/// The CPU supports NEON.
#[target_feature(enable = "neon")]
unsafe fn dot_f32_le_neon(w: &[u8], x: &[f32]) -> f32 {
    let n = (w.len() / 4).min(x.len());
    let (wp, xp) = (w.as_ptr(), x.as_ptr());
    let mut acc = [vdupq_n_f32(0.0); 4];
    let mut i = 0;
    // SAFETY (all loads): i + 4 <= n, and n bounds both slices (in f32 units); `w` is read as
    // bytes, so no alignment is needed.
    while i + 16 <= n {
        for (k, a) in acc.iter_mut().enumerate() {
            let j = i + 4 * k;
            let wv = vreinterpretq_f32_u8(vld1q_u8(wp.add(4 * j)));
            *a = vfmaq_f32(*a, wv, vld1q_f32(xp.add(j)));
        }
        i += 16;
    }
    while i + 4 <= n {
        let wv = vreinterpretq_f32_u8(vld1q_u8(wp.add(4 * i)));
        acc[0] = vfmaq_f32(acc[0], wv, vld1q_f32(xp.add(i)));
        i += 4;
    }
    let mut sum = vaddvq_f32(vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3])));
    let (w_tail, _) = w.get(4 * i..4 * n).unwrap_or(&[]).as_chunks::<4>();
    for (b, xi) in w_tail.iter().zip(x.get(i..n).unwrap_or(&[])) {
        sum += f32::from_le_bytes(*b) * xi;
    }
    sum
}

/// `Σ w[i]·x[i]`, `w` little-endian IEEE `f16` bytes, widened with [`widen_f16`].
///
/// # Safety
/// The CPU supports NEON.
#[target_feature(enable = "neon")]
unsafe fn dot_f16_le_neon(w: &[u8], x: &[f32]) -> f32 {
    let n = (w.len() / 2).min(x.len());
    let (wp, xp) = (w.as_ptr(), x.as_ptr());
    let mut acc = [vdupq_n_f32(0.0); 4];
    let mut i = 0;
    // SAFETY (all loads): i + 8 <= n bounds both slices (16 bytes of halves, 8 floats).
    while i + 16 <= n {
        let (l0, h0) = widen_f16(vld1q_u8(wp.add(2 * i)));
        let (l1, h1) = widen_f16(vld1q_u8(wp.add(2 * i + 16)));
        acc[0] = vfmaq_f32(acc[0], l0, vld1q_f32(xp.add(i)));
        acc[1] = vfmaq_f32(acc[1], h0, vld1q_f32(xp.add(i + 4)));
        acc[2] = vfmaq_f32(acc[2], l1, vld1q_f32(xp.add(i + 8)));
        acc[3] = vfmaq_f32(acc[3], h1, vld1q_f32(xp.add(i + 12)));
        i += 16;
    }
    while i + 8 <= n {
        let (l, h) = widen_f16(vld1q_u8(wp.add(2 * i)));
        acc[0] = vfmaq_f32(acc[0], l, vld1q_f32(xp.add(i)));
        acc[1] = vfmaq_f32(acc[1], h, vld1q_f32(xp.add(i + 4)));
        i += 8;
    }
    let mut sum = vaddvq_f32(vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3])));
    let (w_tail, _) = w.get(2 * i..2 * n).unwrap_or(&[]).as_chunks::<2>();
    for (b, xi) in w_tail.iter().zip(x.get(i..n).unwrap_or(&[])) {
        sum += super::scalar::f16_to_f32(*b) * xi;
    }
    sum
}

/// Eight little-endian `f16` values (16 bytes) widened to `f32` with `FCVTL`/`FCVTL2` (exact).
/// `asm!` because the `float16x8_t` intrinsics need Rust 1.94 and the MSRV is 1.88.
///
/// # Safety
/// The CPU supports NEON.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn widen_f16(h: uint8x16_t) -> (float32x4_t, float32x4_t) {
    let (lo, hi): (float32x4_t, float32x4_t);
    // SAFETY: register-only NEON instructions (baseline here, see the `target_feature`); the
    // outputs are `out`, not `lateout`, so neither can overwrite `h` before FCVTL2 reads it.
    asm!(
        "fcvtl {lo:v}.4s, {h:v}.4h",
        "fcvtl2 {hi:v}.4s, {h:v}.8h",
        h = in(vreg) h,
        lo = out(vreg) lo,
        hi = out(vreg) hi,
        options(pure, nomem, nostack),
    );
    (lo, hi)
}

/// The scalar reference body compiled here (NEON is baseline on aarch64 Linux, so LLVM already
/// vectorises it; same operation order, so results are identical).
///
/// # Safety
/// The CPU supports NEON.
#[target_feature(enable = "neon")]
unsafe fn dot_neon(a: &[f32], b: &[f32]) -> f32 {
    super::scalar::dot(a, b)
}

/// The 32 values of a Q8_0 block as two 16-lane vectors.
///
/// # Safety
/// The CPU supports NEON.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn q8_values(b: &BlockQ8_0) -> (int8x16_t, int8x16_t) {
    let p = b.as_ptr();
    // SAFETY: a block is 34 bytes; bytes 2..18 and 18..34 are the values.
    (vreinterpretq_s8_u8(vld1q_u8(p.add(2))), vreinterpretq_s8_u8(vld1q_u8(p.add(18))))
}

/// The 32 values of a Q4_0 block, `q − 8`, in element order (low nibbles are elements 0..16,
/// high nibbles 16..32).
///
/// # Safety
/// The CPU supports NEON.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn q4_values(b: &BlockQ4_0) -> (int8x16_t, int8x16_t) {
    // SAFETY: a block is 18 bytes; bytes 2..18 are the nibbles.
    let q = vld1q_u8(b.as_ptr().add(2));
    let eight = vdupq_n_s8(8);
    let lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0x0f))), eight);
    let hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8::<4>(q)), eight);
    (lo, hi)
}

/// `Σ x[i]·y[i]` over 32 `i8` lanes, exact: each `i16` product (|p| ≤ 2^14) is widened
/// pairwise into `i32` before any further addition.
///
/// # Safety
/// The CPU supports NEON.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn block_isum_neon(x: (int8x16_t, int8x16_t), y: (int8x16_t, int8x16_t)) -> i32 {
    let mut acc = vdupq_n_s32(0);
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(x.0), vget_low_s8(y.0)));
    acc = vpadalq_s16(acc, vmull_high_s8(x.0, y.0));
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(x.1), vget_low_s8(y.1)));
    acc = vpadalq_s16(acc, vmull_high_s8(x.1, y.1));
    vaddvq_s32(acc)
}

/// As [`block_isum_neon`] with two `SDOT`s (four `i8` products summed into each `i32` lane).
///
/// # Safety
/// The CPU supports NEON and `dotprod`.
#[inline]
#[target_feature(enable = "neon,dotprod")]
unsafe fn block_isum_sdot(x: (int8x16_t, int8x16_t), y: (int8x16_t, int8x16_t)) -> i32 {
    vaddvq_s32(sdot(sdot(vdupq_n_s32(0), x.0, y.0), x.1, y.1))
}

/// Q8_0 × Q8_0 with `vmull_s8` + `vpadalq_s16`.
///
/// # Safety
/// The CPU supports NEON.
#[target_feature(enable = "neon")]
unsafe fn dot_q8_0_neon(w: &[BlockQ8_0], a: &[BlockQ8_0]) -> f32 {
    let mut sum = 0.0f32;
    for (wb, ab) in w.iter().zip(a) {
        sum += block_term(wb, ab, block_isum_neon(q8_values(wb), q8_values(ab)));
    }
    sum
}

/// Q8_0 × Q8_0 with `SDOT`.
///
/// # Safety
/// The CPU supports NEON and `dotprod`.
#[target_feature(enable = "neon,dotprod")]
unsafe fn dot_q8_0_sdot(w: &[BlockQ8_0], a: &[BlockQ8_0]) -> f32 {
    let mut sum = 0.0f32;
    for (wb, ab) in w.iter().zip(a) {
        sum += block_term(wb, ab, block_isum_sdot(q8_values(wb), q8_values(ab)));
    }
    sum
}

/// Q4_0 weights × Q8_0 activations with `vmull_s8` + `vpadalq_s16`.
///
/// # Safety
/// The CPU supports NEON.
#[target_feature(enable = "neon")]
unsafe fn dot_q4_0_neon(w: &[BlockQ4_0], a: &[BlockQ8_0]) -> f32 {
    let mut sum = 0.0f32;
    for (wb, ab) in w.iter().zip(a) {
        sum += block_term(wb, ab, block_isum_neon(q4_values(wb), q8_values(ab)));
    }
    sum
}

/// Q4_0 weights × Q8_0 activations with `SDOT`.
///
/// # Safety
/// The CPU supports NEON and `dotprod`.
#[target_feature(enable = "neon,dotprod")]
unsafe fn dot_q4_0_sdot(w: &[BlockQ4_0], a: &[BlockQ8_0]) -> f32 {
    let mut sum = 0.0f32;
    for (wb, ab) in w.iter().zip(a) {
        sum += block_term(wb, ab, block_isum_sdot(q4_values(wb), q8_values(ab)));
    }
    sum
}

/// `acc + SDOT(x, y)`: lane `i` gains `Σ_k x[4i + k] · y[4i + k]`.
///
/// # Safety
/// The CPU supports NEON and `dotprod`.
#[inline]
#[target_feature(enable = "neon,dotprod")]
unsafe fn sdot(mut acc: int32x4_t, x: int8x16_t, y: int8x16_t) -> int32x4_t {
    // SAFETY: SDOT only reads and writes the named vector registers; callers have `dotprod`.
    asm!(
        "sdot {acc:v}.4s, {x:v}.16b, {y:v}.16b",
        acc = inout(vreg) acc,
        x = in(vreg) x,
        y = in(vreg) y,
        options(pure, nomem, nostack, preserves_flags),
    );
    acc
}

/// 16 bytes at `p` as `i8` lanes.
///
/// # Safety
/// `p..p + 16` is readable; the CPU supports NEON.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn load_i8(p: *const u8) -> int8x16_t {
    vreinterpretq_s8_u8(vld1q_u8(p))
}

/// Four little-endian `f32` at `p` (a byte load, so no alignment is assumed).
///
/// # Safety
/// `p..p + 16` is readable; the CPU supports NEON.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn load_f32x4(p: *const u8) -> float32x4_t {
    vreinterpretq_f32_u8(vld1q_u8(p))
}

/// `sum` plus a group's eight block terms `(d_w · d_a) · isum`, blocks 0..4 in `lo` and 4..8
/// in `hi`, added one at a time in block order (the reference's rounding).
///
/// # Safety
/// `wp` and `ap` point at whole groups; the CPU supports NEON.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn add_group_terms(
    mut sum: f32,
    wp: *const u8,
    ap: *const u8,
    lo: int32x4_t,
    hi: int32x4_t,
) -> f32 {
    // SAFETY: a group starts with its eight scales as 32 bytes of f32.
    let d_lo = vmulq_f32(load_f32x4(wp), load_f32x4(ap));
    let d_hi = vmulq_f32(load_f32x4(wp.add(16)), load_f32x4(ap.add(16)));
    // |isum| <= 2^19: the conversions are exact.
    for t in [vmulq_f32(d_lo, vcvtq_f32_s32(lo)), vmulq_f32(d_hi, vcvtq_f32_s32(hi))] {
        sum += vgetq_lane_f32::<0>(t);
        sum += vgetq_lane_f32::<1>(t);
        sum += vgetq_lane_f32::<2>(t);
        sum += vgetq_lane_f32::<3>(t);
    }
    sum
}

/// Packed groups (see [`crate::quant::group8`]) with `SDOT`, bit-identical to
/// [`crate::quant::group8::dot`]: a group's 32-byte row `g` is blocks 0..4's 4-byte slices
/// then blocks 4..8's, so one `SDOT` per 16 bytes leaves block `j`'s partial sum in lane
/// `j % 4` of one of two accumulators, exact for every `i8` input.
///
/// # Safety
/// The CPU supports NEON and `dotprod`.
#[target_feature(enable = "neon,dotprod")]
unsafe fn dot_groups_sdot(w: &[Group8], a: &[Group8]) -> f32 {
    let mut sum = 0.0f32;
    for (wg, ag) in w.iter().zip(a) {
        let (wp, ap) = (wg.as_ptr(), ag.as_ptr());
        let (mut lo, mut hi) = (vdupq_n_s32(0), vdupq_n_s32(0));
        // SAFETY (all loads): a group is 288 bytes, 32 of scales then 8 rows of 32 values.
        for g in 0..8 {
            let at = 32 + 32 * g;
            lo = sdot(lo, load_i8(wp.add(at)), load_i8(ap.add(at)));
            hi = sdot(hi, load_i8(wp.add(at + 16)), load_i8(ap.add(at + 16)));
        }
        sum = add_group_terms(sum, wp, ap, lo, hi);
    }
    sum
}

/// [`dot_groups_sdot`] of one weight row against [`GROUP_TILE`] activation vectors: each
/// weight row of a group is loaded once for all of them (16 accumulators, 4 operand
/// registers). Each result is bit-identical to [`dot_groups_sdot`]'s.
///
/// # Safety
/// The CPU supports NEON and `dotprod`, and every `a[t]` holds at least `w.len()` groups.
#[target_feature(enable = "neon,dotprod")]
unsafe fn dot_groups_tile_sdot(w: &[Group8], a: &[&[Group8]; GROUP_TILE]) -> [f32; GROUP_TILE] {
    let mut sums = [0.0f32; GROUP_TILE];
    let bases: [*const u8; GROUP_TILE] = a.map(|at| at.as_ptr().cast::<u8>());
    for (i, wg) in w.iter().enumerate() {
        // SAFETY: `i < w.len() <= a[t].len()` (the caller's contract), so group `i` of every
        // vector is in bounds; groups are 288 bytes as above.
        let ap: [*const u8; GROUP_TILE] = bases.map(|b| b.add(i * GROUP_BYTES));
        let wp = wg.as_ptr();
        let mut acc = [(vdupq_n_s32(0), vdupq_n_s32(0)); GROUP_TILE];
        for g in 0..8 {
            let at = 32 + 32 * g;
            let (w_lo, w_hi) = (load_i8(wp.add(at)), load_i8(wp.add(at + 16)));
            for ((lo, hi), ap_t) in acc.iter_mut().zip(ap) {
                *lo = sdot(*lo, w_lo, load_i8(ap_t.add(at)));
                *hi = sdot(*hi, w_hi, load_i8(ap_t.add(at + 16)));
            }
        }
        for ((sum, (lo, hi)), ap_t) in sums.iter_mut().zip(acc).zip(ap) {
            *sum = add_group_terms(*sum, wp, ap_t, lo, hi);
        }
    }
    sums
}

/// Safe entry points, installed in [`super::Kernels`] only once the features are known.
pub(super) mod entry {
    use super::*;

    pub(in crate::kernels) fn dot(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: only reachable through a `Kernels` table built after detecting (or compiling
        // with) NEON; see `Kernels::aarch64_neon`.
        unsafe { dot_neon(a, b) }
    }

    pub(in crate::kernels) fn dot_f32_le(w: &[u8], x: &[f32]) -> f32 {
        // SAFETY: as above (neon).
        unsafe { dot_f32_le_neon(w, x) }
    }

    pub(in crate::kernels) fn dot_f16_le(w: &[u8], x: &[f32]) -> f32 {
        // SAFETY: as above (neon).
        unsafe { dot_f16_le_neon(w, x) }
    }

    pub(in crate::kernels) fn dot_q8_0(w: &[BlockQ8_0], a: &[BlockQ8_0]) -> f32 {
        // SAFETY: as above (neon).
        unsafe { dot_q8_0_neon(w, a) }
    }

    pub(in crate::kernels) fn dot_q4_0(w: &[BlockQ4_0], a: &[BlockQ8_0]) -> f32 {
        // SAFETY: as above (neon).
        unsafe { dot_q4_0_neon(w, a) }
    }

    pub(in crate::kernels) fn dot_q8_0_dotprod(w: &[BlockQ8_0], a: &[BlockQ8_0]) -> f32 {
        // SAFETY: only reachable through the `neon+dotprod` table, built after detecting (or
        // compiling with) NEON and dotprod; see `Kernels::aarch64_neon`.
        unsafe { dot_q8_0_sdot(w, a) }
    }

    pub(in crate::kernels) fn dot_q4_0_dotprod(w: &[BlockQ4_0], a: &[BlockQ8_0]) -> f32 {
        // SAFETY: as above (neon, dotprod).
        unsafe { dot_q4_0_sdot(w, a) }
    }

    pub(in crate::kernels) fn dot_groups_dotprod(w: &[Group8], a: &[Group8]) -> f32 {
        // SAFETY: as above (neon, dotprod).
        unsafe { dot_groups_sdot(w, a) }
    }

    pub(in crate::kernels) fn dot_groups_tile_dotprod(
        w: &[Group8],
        a: &[&[Group8]; GROUP_TILE],
    ) -> [f32; GROUP_TILE] {
        if a.iter().any(|at| at.len() < w.len()) {
            return a.map(|at| dot_groups_dotprod(w, at));
        }
        // SAFETY: as above (neon, dotprod); every vector covers `w`, checked just above.
        unsafe { dot_groups_tile_sdot(w, a) }
    }
}

//! Arm DSP-extension (Cortex-M4/M7/M33/M55, and every v7-A core) variants of the integer dot
//! products: `SXTB16` spreads the even and odd bytes of a 32-bit word into two sign-extended
//! `i16` pairs and `SMLAD` multiplies both pairs and adds them to an `i32` accumulator, so four
//! `i8` products cost two word loads, four `SXTB16` and two `SMLAD` (CMSIS-NN's
//! `read_and_pad` + `__SMLAD` scheme). The scalar reference compiles to `LDRSB, LDRSB, SMLABB`
//! per product on thumbv7em.
//!
//! `core::arch::arm::{__smlad, __sxtb16}` are unstable (`stdarch_arm_dsp`) and LLVM does not
//! form `SMLAD` from byte data on its own, so the two instructions are `asm!`. The kernel body
//! is generic over [`Dsp`]: [`Hw`] issues the instructions (built when `build.rs` finds the DSP
//! extension and sets `cfg(tinymla_arm_dsp)`), [`Model`] is a portable model of them, so the
//! host tests run the very same body (word loads, rotation, pairing, accumulation order) against
//! the scalar reference; `scripts/test.sh` also runs the hardware version under `qemu-arm`.
//!
//! Block sums are exact for every `i8` input (|Σ| ≤ 32 · 2^14 = 2^19, and `SMLAD` wraps only
//! past 2^31), and the scales are applied in the reference's order, so the results are
//! bit-identical to [`crate::quant::q8_0::dot_q8_0`] and [`crate::quant::q4_0::dot_q8_0`].
#![cfg_attr(tinymla_arm_dsp, allow(unsafe_code))]

use crate::quant::{block_term, q4_0::BlockQ4_0, q8_0::BlockQ8_0};

/// The two DSP instructions the kernels use.
pub(crate) trait Dsp {
    /// `SXTB16 x`: bytes 0 and 2 of `x`, sign-extended into the low and high halfwords.
    fn sxtb16(x: u32) -> u32;
    /// `SXTB16 x, ROR #8`: bytes 1 and 3 of `x`, likewise.
    fn sxtb16_ror8(x: u32) -> u32;
    /// `SMLAD`: `acc + lo(a)·lo(b) + hi(a)·hi(b)` over signed halfwords (wrapping).
    fn smlad(a: u32, b: u32, acc: i32) -> i32;
}

/// A portable model of the instructions (bit-exact, by their Arm ARM pseudocode).
pub(crate) struct Model;

impl Dsp for Model {
    #[inline(always)]
    fn sxtb16(x: u32) -> u32 {
        let [b0, _, b2, _] = x.to_le_bytes();
        let lo = i16::from(i8::from_le_bytes([b0])).to_le_bytes();
        let hi = i16::from(i8::from_le_bytes([b2])).to_le_bytes();
        u32::from_le_bytes([lo[0], lo[1], hi[0], hi[1]])
    }

    #[inline(always)]
    fn sxtb16_ror8(x: u32) -> u32 {
        Self::sxtb16(x.rotate_right(8))
    }

    #[inline(always)]
    fn smlad(a: u32, b: u32, acc: i32) -> i32 {
        let halves = |v: u32| {
            let [l0, l1, h0, h1] = v.to_le_bytes();
            (i32::from(i16::from_le_bytes([l0, l1])), i32::from(i16::from_le_bytes([h0, h1])))
        };
        let ((al, ah), (bl, bh)) = (halves(a), halves(b));
        acc.wrapping_add(al * bl).wrapping_add(ah * bh)
    }
}

/// The instructions themselves.
#[cfg(tinymla_arm_dsp)]
pub(crate) struct Hw;

#[cfg(tinymla_arm_dsp)]
impl Dsp for Hw {
    #[inline(always)]
    fn sxtb16(x: u32) -> u32 {
        let out: u32;
        // SAFETY: a register-only instruction of the DSP extension, which `cfg(tinymla_arm_dsp)`
        // says the target has (build.rs).
        unsafe {
            core::arch::asm!("sxtb16 {o}, {x}", o = lateout(reg) out, x = in(reg) x,
                options(pure, nomem, nostack, preserves_flags));
        }
        out
    }

    #[inline(always)]
    fn sxtb16_ror8(x: u32) -> u32 {
        let out: u32;
        // SAFETY: as in `sxtb16`.
        unsafe {
            core::arch::asm!("sxtb16 {o}, {x}, ror #8", o = lateout(reg) out, x = in(reg) x,
                options(pure, nomem, nostack, preserves_flags));
        }
        out
    }

    #[inline(always)]
    fn smlad(a: u32, b: u32, acc: i32) -> i32 {
        let out: i32;
        // SAFETY: register-only DSP instruction, as in `sxtb16`. It may set the sticky Q flag on
        // overflow (not the condition flags), which nothing here reads.
        unsafe {
            core::arch::asm!("smlad {o}, {a}, {b}, {c}", o = lateout(reg) out, a = in(reg) a,
                b = in(reg) b, c = in(reg) acc, options(pure, nomem, nostack, preserves_flags));
        }
        out
    }
}

/// `Σ x[i]·y[i]` over 32 `i8` values, four at a time from little-endian words (any order of
/// exact `i32` additions gives the same sum).
#[inline(always)]
fn isum32<D: Dsp>(x: &[[u8; 4]], y: &[[u8; 4]]) -> i32 {
    let mut acc = 0i32;
    for (xc, yc) in x.iter().zip(y) {
        let (xw, yw) = (u32::from_le_bytes(*xc), u32::from_le_bytes(*yc));
        acc = D::smlad(D::sxtb16(xw), D::sxtb16(yw), acc);
        acc = D::smlad(D::sxtb16_ror8(xw), D::sxtb16_ror8(yw), acc);
    }
    acc
}

/// A block's 32 values (after the 2-byte scale) as 8 words.
#[inline(always)]
fn words(block: &[u8]) -> &[[u8; 4]] {
    block.get(2..).unwrap_or(&[]).as_chunks::<4>().0
}

/// Q8_0 × Q8_0 with `SXTB16` + `SMLAD`.
#[inline(always)]
pub(crate) fn dot_q8_0_with<D: Dsp>(w: &[BlockQ8_0], a: &[BlockQ8_0]) -> f32 {
    let mut sum = 0.0f32;
    for (wb, ab) in w.iter().zip(a) {
        sum += block_term(wb, ab, isum32::<D>(words(wb), words(ab)));
    }
    sum
}

/// Four nibbles of a Q4_0 word minus 8, as signed bytes: each byte is 0..=15, so adding 0x78
/// never carries into the next byte, and flipping bit 7 turns `n + 0x78` into `n − 8` (i8).
#[inline(always)]
fn minus_8(nibbles: u32) -> [u8; 4] {
    (nibbles.wrapping_add(0x7878_7878) ^ 0x8080_8080).to_le_bytes()
}

/// Q4_0 weights × Q8_0 activations: each weight word yields its low nibbles (elements `j..j+4`)
/// and high nibbles (elements `16+j..16+j+4`), recentred bytewise, then the Q8_0 body.
#[inline(always)]
pub(crate) fn dot_q4_0_with<D: Dsp>(w: &[BlockQ4_0], a: &[BlockQ8_0]) -> f32 {
    let mut sum = 0.0f32;
    for (wb, ab) in w.iter().zip(a) {
        let mut lo = [[0u8; 4]; 4];
        let mut hi = [[0u8; 4]; 4];
        for ((l, h), q) in lo.iter_mut().zip(hi.iter_mut()).zip(words(wb)) {
            let q = u32::from_le_bytes(*q);
            *l = minus_8(q & 0x0f0f_0f0f);
            *h = minus_8((q >> 4) & 0x0f0f_0f0f);
        }
        let (y_lo, y_hi) = words(ab).split_at(4.min(words(ab).len()));
        let isum = isum32::<D>(&lo, y_lo) + isum32::<D>(&hi, y_hi);
        sum += block_term(wb, ab, isum);
    }
    sum
}

/// Safe entry points with the real instructions, installed by [`super::Kernels::compile_time`]
/// on DSP targets.
#[cfg(tinymla_arm_dsp)]
pub(super) mod entry {
    use super::*;

    pub(in crate::kernels) fn dot_q8_0(w: &[BlockQ8_0], a: &[BlockQ8_0]) -> f32 {
        dot_q8_0_with::<Hw>(w, a)
    }

    pub(in crate::kernels) fn dot_q4_0(w: &[BlockQ4_0], a: &[BlockQ8_0]) -> f32 {
        dot_q4_0_with::<Hw>(w, a)
    }
}

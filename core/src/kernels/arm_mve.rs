//! Helium (Arm M-profile Vector Extension, Cortex-M55/M85) variants of the integer dot
//! products. Q8_0: two `VLDRB.8` pairs load a block's 32 weights and 32 activations as 16-byte
//! vectors, and `VMLADAV.S8` / `VMLADAVA.S8` multiply 16 `i8` pairs each and add the products
//! into one general-purpose register: six instructions per block, where the DSP kernel
//! ([`super::arm_dsp`]) needs about fifty. Q4_0: one load of the 16 nibble bytes, `VAND` /
//! `VSHR` split them into elements 0..16 and 16..32, `VSUB` recentres them by 8, then the same
//! two `VMLADAV`s: eleven instructions.
//!
//! Stable Rust has no MVE intrinsics, so the block body is `asm!`, assembled because
//! `cfg(tinymla_arm_mve)` (from `build.rs`) is only set when the target CPU has MVE. The block
//! sum is exact (|Σ| ≤ 32 · 2^14 = 2^19) and the scales are applied in the reference's order,
//! so the result is bit-identical to [`crate::quant::q8_0::dot_q8_0`]; `tests/firmware.rs`
//! checks that on QEMU's Cortex-M55 (mps3-an547) through the whole model's logits, and the
//! firmware's start-up self-test compares both kernels with the references on random and
//! extreme blocks.
#![allow(unsafe_code)]

use core::arch::asm;

use crate::quant::{block_term, q4_0::BlockQ4_0, q8_0::BlockQ8_0};

/// The exact dot product of two Q8_0 blocks' 32 values.
#[inline(always)]
fn isum(wb: &BlockQ8_0, ab: &BlockQ8_0) -> i32 {
    let acc: i32;
    // SAFETY: reads bytes 2..34 of two 34-byte blocks (byte-element loads need no alignment);
    // writes only q0 and q1 (= s0..s7, declared clobbered) and `acc`. `VMLADAV` takes an even
    // destination register, hence the fixed r0.
    unsafe {
        asm!(
            "vldrb.u8 q0, [{w}, #2]",
            "vldrb.u8 q1, [{a}, #2]",
            "vmladav.s8 r0, q0, q1",
            "vldrb.u8 q0, [{w}, #18]",
            "vldrb.u8 q1, [{a}, #18]",
            "vmladava.s8 r0, q0, q1",
            w = in(reg) wb.as_ptr(),
            a = in(reg) ab.as_ptr(),
            out("r0") acc,
            out("s0") _, out("s1") _, out("s2") _, out("s3") _,
            out("s4") _, out("s5") _, out("s6") _, out("s7") _,
            options(readonly, nostack, preserves_flags),
        );
    }
    acc
}

/// The exact dot product of a Q4_0 block's 32 values (nibbles minus 8) with a Q8_0 block's.
#[inline(always)]
fn isum_q4(wb: &BlockQ4_0, ab: &BlockQ8_0) -> i32 {
    let acc: i32;
    // SAFETY: reads bytes 2..18 of the 18-byte Q4_0 block and 2..34 of the 34-byte Q8_0 block
    // (byte-element loads need no alignment); writes only q0..q2 (= s0..s11, declared
    // clobbered) and `acc` (fixed even r0, as `VMLADAV` requires).
    unsafe {
        asm!(
            "vldrb.u8 q0, [{w}, #2]",
            "vmov.i8 q2, #0xf",
            "vand q1, q0, q2",
            "vshr.u8 q0, q0, #4",
            "vmov.i8 q2, #8",
            "vsub.i8 q1, q1, q2",
            "vsub.i8 q0, q0, q2",
            "vldrb.u8 q2, [{a}, #2]",
            "vmladav.s8 r0, q1, q2",
            "vldrb.u8 q2, [{a}, #18]",
            "vmladava.s8 r0, q0, q2",
            w = in(reg) wb.as_ptr(),
            a = in(reg) ab.as_ptr(),
            out("r0") acc,
            out("s0") _, out("s1") _, out("s2") _, out("s3") _,
            out("s4") _, out("s5") _, out("s6") _, out("s7") _,
            out("s8") _, out("s9") _, out("s10") _, out("s11") _,
            options(readonly, nostack, preserves_flags),
        );
    }
    acc
}

/// `Σ (d_w · d_a) · isum` in block order, the scalar reference's rounding.
#[inline(always)]
fn dot_blocks<const B: usize>(
    w: &[[u8; B]],
    a: &[BlockQ8_0],
    isum: impl Fn(&[u8; B], &BlockQ8_0) -> i32,
) -> f32 {
    let mut sum = 0.0f32;
    for (wb, ab) in w.iter().zip(a) {
        sum += block_term(wb, ab, isum(wb, ab));
    }
    sum
}

/// Safe entry points, installed by [`super::Kernels::compile_time`] on Helium targets.
pub(super) mod entry {
    use super::*;

    pub(in crate::kernels) fn dot_q8_0(w: &[BlockQ8_0], a: &[BlockQ8_0]) -> f32 {
        dot_blocks(w, a, isum)
    }

    pub(in crate::kernels) fn dot_q4_0(w: &[BlockQ4_0], a: &[BlockQ8_0]) -> f32 {
        dot_blocks(w, a, isum_q4)
    }
}

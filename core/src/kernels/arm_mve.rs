//! Helium (Arm M-profile Vector Extension, Cortex-M55/M85) variant of the Q8_0 integer dot
//! product: two `VLDRB.8` pairs load a block's 32 weights and 32 activations as 16-byte
//! vectors, and `VMLADAV.S8` / `VMLADAVA.S8` multiply 16 `i8` pairs each and add the products
//! into one general-purpose register. Six instructions per block, where the DSP kernel
//! ([`super::arm_dsp`]) needs about fifty.
//!
//! Stable Rust has no MVE intrinsics, so the block body is `asm!`, assembled because
//! `cfg(tinymla_arm_mve)` (from `build.rs`) is only set when the target CPU has MVE. The block
//! sum is exact (|Σ| ≤ 32 · 2^14 = 2^19) and the scales are applied in the reference's order,
//! so the result is bit-identical to [`crate::quant::q8_0::dot_q8_0`]; `tests/firmware.rs`
//! checks that on QEMU's Cortex-M55 (mps3-an547) through the whole model's logits, and the
//! firmware's start-up self-test compares this kernel with the reference on random and extreme
//! blocks. Q4_0 keeps the DSP kernel.
#![allow(unsafe_code)]

use core::arch::asm;

use crate::quant::{block_scale, q8_0::BlockQ8_0};

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

/// Q8_0 × Q8_0, bit-identical to the scalar reference.
#[inline(always)]
fn dot_q8_0(w: &[BlockQ8_0], a: &[BlockQ8_0]) -> f32 {
    let mut sum = 0.0f32;
    for (wb, ab) in w.iter().zip(a) {
        #[allow(clippy::cast_precision_loss)] // |isum| <= 2^19: exact
        let s = isum(wb, ab) as f32;
        sum += block_scale(wb) * block_scale(ab) * s;
    }
    sum
}

/// Safe entry points, installed by [`super::Kernels::compile_time`] on Helium targets.
pub(super) mod entry {
    use super::*;

    pub(in crate::kernels) fn dot_q8_0(w: &[BlockQ8_0], a: &[BlockQ8_0]) -> f32 {
        super::dot_q8_0(w, a)
    }
}

//! Numeric kernels: the only place hot loops live.
//!
//! Each kernel has one safe function here; [`scalar`] holds the reference implementations,
//! written so LLVM vectorises them (fixed-width chunks, several independent accumulators, no
//! early exits). Weight operands are raw little-endian bytes borrowed from the model file, so
//! no alignment is assumed. Arch-specific variants (AVX2, NEON, Cortex-M DSP) come with the
//! quantised-weights work and are tested against these.

pub mod scalar;

pub use scalar::{
    add_assign, axpy, dot, dot_f16_le, dot_f32_le, f16_to_f32, rms_norm, silu, softmax_in_place,
};

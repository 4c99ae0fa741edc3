//! Numeric kernels: the only place hot loops live.
//!
//! Each kernel has one safe function in [`scalar`] (or [`crate::quant`]), the reference
//! implementation, written so LLVM vectorises it (fixed-width chunks, several independent
//! accumulators, no early exits). Arch-specific variants (`x86.rs`: AVX2 + FMA + F16C) are
//! installed in a [`Kernels`] table chosen once per process and tested against the references.
//! Weight operands are raw little-endian bytes borrowed from the model file, so no alignment
//! is assumed.

pub mod scalar;
// Reached through runtime detection (`std`) or compile-time target features; a plain no_std
// x86 build without AVX2 enabled uses neither, hence the allowance.
#[cfg(all(target_arch = "x86_64", not(miri)))]
#[allow(dead_code)]
mod x86;

pub use scalar::{
    add_assign, axpy, dot, dot_f16_le, dot_f32_le, f16_to_f32, rms_norm, rms_norm_in_place,
    scale_in_place, silu, softmax_in_place,
};

use crate::quant::q8_0::{self, BlockQ8_0};

/// The dot-product kernels the model calls, chosen once per process. Every entry computes
/// the same result as the scalar reference: bit-identical for the integer Q8_0 path and the
/// f32×f32 dot, within [`TOL_DOT_REL`] for the float weight paths (different summation order).
#[derive(Clone, Copy)]
pub struct Kernels {
    name: &'static str,
    dot: fn(&[f32], &[f32]) -> f32,
    dot_f32_le: fn(&[u8], &[f32]) -> f32,
    dot_f16_le: fn(&[u8], &[f32]) -> f32,
    dot_q8_0: fn(&[BlockQ8_0], &[BlockQ8_0]) -> f32,
}

/// Relative tolerance between a SIMD float dot product and the scalar reference, relative to
/// `Σ |w_i x_i|` (only the summation order differs).
pub const TOL_DOT_REL: f32 = 1e-5;

impl core::fmt::Debug for Kernels {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Kernels({})", self.name)
    }
}

impl Kernels {
    /// The portable reference kernels.
    pub const SCALAR: Kernels = Kernels {
        name: "scalar",
        dot: scalar::dot,
        dot_f32_le: scalar::dot_f32_le,
        dot_f16_le: scalar::dot_f16_le,
        dot_q8_0: q8_0::dot_q8_0,
    };

    /// The AVX2 + FMA + F16C kernels, if this CPU has those features.
    #[cfg(all(target_arch = "x86_64", not(miri), any(feature = "std", test)))]
    pub fn x86_avx2() -> Option<Kernels> {
        let has = std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("f16c");
        has.then_some(Self::AVX2)
    }

    #[cfg(all(target_arch = "x86_64", not(miri)))]
    #[allow(dead_code)] // see `mod x86`
    const AVX2: Kernels = Kernels {
        name: "avx2+fma+f16c",
        dot: x86::entry::dot,
        dot_f32_le: x86::entry::dot_f32_le,
        dot_f16_le: x86::entry::dot_f16_le,
        dot_q8_0: x86::entry::dot_q8_0,
    };

    /// The best kernels the compile-time target features allow (what `no_std` builds use:
    /// an MCU's ISA is fixed at build time).
    pub const fn compile_time() -> Kernels {
        #[cfg(all(
            target_arch = "x86_64",
            not(miri),
            target_feature = "avx2",
            target_feature = "fma",
            target_feature = "f16c"
        ))]
        {
            Self::AVX2
        }
        #[cfg(not(all(
            target_arch = "x86_64",
            not(miri),
            target_feature = "avx2",
            target_feature = "fma",
            target_feature = "f16c"
        )))]
        {
            Self::SCALAR
        }
    }

    /// The best kernels for this CPU: runtime detection with `std`, else [`Self::compile_time`].
    pub fn detect() -> Kernels {
        #[cfg(all(target_arch = "x86_64", not(miri), any(feature = "std", test)))]
        if let Some(k) = Self::x86_avx2() {
            return k;
        }
        Self::compile_time()
    }

    /// The table's name (`"scalar"`, `"avx2+fma+f16c"`).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// `Σ a[i]·b[i]`.
    #[inline]
    pub fn dot(&self, a: &[f32], b: &[f32]) -> f32 {
        (self.dot)(a, b)
    }

    /// `Σ w[i]·x[i]`, `w` little-endian `f32` bytes.
    #[inline]
    pub fn dot_f32_le(&self, w: &[u8], x: &[f32]) -> f32 {
        (self.dot_f32_le)(w, x)
    }

    /// `Σ w[i]·x[i]`, `w` little-endian `f16` bytes.
    #[inline]
    pub fn dot_f16_le(&self, w: &[u8], x: &[f32]) -> f32 {
        (self.dot_f16_le)(w, x)
    }

    /// Q8_0 weight blocks × Q8_0 activation blocks.
    #[inline]
    pub fn dot_q8_0(&self, w: &[BlockQ8_0], a: &[BlockQ8_0]) -> f32 {
        (self.dot_q8_0)(w, a)
    }
}

/// The kernels in force: detected once on first use with `std`, fixed at compile time without.
pub fn active() -> &'static Kernels {
    #[cfg(feature = "std")]
    {
        static ACTIVE: std::sync::OnceLock<Kernels> = std::sync::OnceLock::new();
        ACTIVE.get_or_init(Kernels::detect)
    }
    #[cfg(not(feature = "std"))]
    {
        static ACTIVE: Kernels = Kernels::compile_time();
        &ACTIVE
    }
}

#[cfg(test)]
mod tests;

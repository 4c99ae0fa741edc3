//! The kernel tables: the scalar references, and each architecture's table with the SIMD
//! entries it has (the rest of each table falls back to the references). [`Kernels::detect`]
//! and [`Kernels::compile_time`] choose among them.

use super::*;

impl Kernels {
    /// The portable reference kernels.
    pub const SCALAR: Kernels = Kernels {
        name: "scalar",
        dot: scalar::dot,
        dot_f32_le: scalar::dot_f32_le,
        dot_f16_le: scalar::dot_f16_le,
        dot_bf16_le: scalar::dot_bf16_le,
        dot_q8_0: q8_0::dot_q8_0,
        dot_q4_0: q4_0::dot_q8_0,
        dot_q8_0_from: None,
        dot_q4_0_from: None,
        dot_q8_0_scaled: Some(q8_0::dot_q8_0_scaled),
        dot_q4_0_scaled: Some(q4_0::dot_q8_0_scaled),
        dot_q8_0_rows: None,
        pack_q8_0: group8::pack_q8_0,
        pack_q4_0: group8::pack_q4_0,
        dot_groups: None,
        dot_groups_tile: None,
        dot_groups_biased: None,
        dot_groups_tile_biased: None,
        dot_rows_tile: None,
        dot_q8_0_tile: None,
        dot_q4_0_tile: None,
        tile_scores: attn::tile_scores,
        tile_accumulate: attn::tile_accumulate,
        softmax_weights: attn::softmax_weights,
        f16s_to_f32: scalar::f16s_to_f32,
        dequantize_q8_0: q8_0::dequantize,
        dequantize_compact: crate::quant::q8_compact::dequantize_compact,
        dot_f16_tile: None,
        dot_bf16_tile: None,
        quantize_q8_0: q8_0::quantize,
        quantize_q8_k: q8_k::quantize,
        #[cfg(feature = "block-formats")]
        block_dots: BlockDots::SCALAR,
    };

    /// [`Self::SCALAR`] with the reference group kernel, so tests run the packed path of a
    /// batched product on any machine.
    #[cfg(test)]
    pub(crate) const SCALAR_GROUPS: Kernels =
        Kernels { name: "scalar+groups", dot_groups: Some(group8::dot), ..Self::SCALAR };

    /// [`Self::SCALAR_GROUPS`] with the reference biased group kernel, so tests run the
    /// biased-activation path of a batched product on any x86_64 machine.
    #[cfg(all(test, target_arch = "x86_64", not(miri)))]
    pub(crate) const SCALAR_BIASED: Kernels = Kernels {
        name: "scalar+biased",
        dot_groups_biased: Some(group8::dot_biased),
        dot_groups_tile_biased: Some(|w, a| a.map(|at| group8::dot_biased(w, at))),
        ..Self::SCALAR_GROUPS
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
    pub(super) const AVX2: Kernels = Kernels {
        name: "avx2+fma+f16c",
        dot: x86::entry::dot,
        dot_f32_le: x86::entry::dot_f32_le,
        dot_f16_le: x86::entry::dot_f16_le,
        dot_bf16_le: x86::entry::dot_bf16_le,
        dot_q8_0: x86::entry::dot_q8_0,
        dot_q4_0: x86::entry::dot_q4_0,
        dot_q8_0_from: Some(x86::entry::dot_q8_0_from),
        dot_q4_0_from: Some(x86::entry::dot_q4_0_from),
        dot_q8_0_scaled: Some(x86::entry::dot_q8_0_scaled),
        dot_q4_0_scaled: Some(x86::entry::dot_q4_0_scaled),
        dot_q8_0_rows: Some(x86::rows::entry::dot_q8_0_rows_avx2),
        pack_q8_0: x86::entry::pack_q8_0,
        pack_q4_0: x86::entry::pack_q4_0,
        dot_groups: Some(x86::entry::dot_groups),
        dot_groups_tile: Some(x86::entry::dot_groups_tile),
        // AVX2 multiplies with `maddubs` and a sign transfer: no use for biased activations.
        dot_groups_biased: None,
        dot_groups_tile_biased: None,
        dot_rows_tile: Some(x86::entry::dot_rows_tile),
        dot_q8_0_tile: Some(x86::entry::dot_q8_0_tile),
        dot_q4_0_tile: Some(x86::entry::dot_q4_0_tile),
        tile_scores: x86::entry::tile_scores,
        tile_accumulate: x86::entry::tile_accumulate,
        softmax_weights: x86::entry::softmax_weights,
        f16s_to_f32: x86::entry::f16s_to_f32,
        dequantize_q8_0: x86::entry::dequantize_q8_0,
        dequantize_compact: x86::entry::dequantize_compact,
        dot_f16_tile: None,
        dot_bf16_tile: None,
        quantize_q8_0: x86::entry::quantize_q8_0,
        quantize_q8_k: x86::entry::quantize_q8_k,
        #[cfg(feature = "block-formats")]
        block_dots: BlockDots {
            q4_1: x86::entry::dot_q4_1,
            q5_0: x86::entry::dot_q5_0,
            q5_1: x86::entry::dot_q5_1,
            iq4_nl: x86::entry::dot_iq4_nl,
            q4_k: x86::entry::dot_q4_k,
            q5_k: x86::entry::dot_q5_k,
            q6_k: x86::entry::dot_q6_k,
            iq4_xs: x86::entry::dot_iq4_xs,
            pack_q5_0: x86::entry::pack_q5_0,
            pack_iq4_nl: x86::entry::pack_iq4_nl,
            q5_0_tile: Some(x86::entry::dot_q5_0_tile),
            q4_1_tile: Some(x86::entry::dot_q4_1_tile),
            q5_1_tile: Some(x86::entry::dot_q5_1_tile),
            iq4_nl_tile: Some(x86::entry::dot_iq4_nl_tile),
            q2_k: x86::entry::dot_q2_k,
            q3_k: x86::entry::dot_q3_k,
            super_rows4: Some(x86::krows::entry::super_rows4),
            ..BlockDots::SCALAR
        },
    };

    /// The AVX2 table with `vpdpbusd` integer kernels, if this CPU has them: with `wide`, the
    /// AVX-512 F + BW + VL + VNNI table (512-bit group kernels); without, the AVX-VNNI one
    /// (the 256-bit VEX form of Alder Lake and later client cores). `None` when a feature is
    /// missing.
    #[cfg(all(target_arch = "x86_64", not(miri), any(feature = "std", test)))]
    pub fn x86_vnni(wide: bool) -> Option<Kernels> {
        Self::x86_avx2()?;
        if wide {
            let has = std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512bw")
                && std::is_x86_feature_detected!("avx512vl")
                && std::is_x86_feature_detected!("avx512vnni");
            has.then_some(Self::AVX512_VNNI)
        } else {
            std::is_x86_feature_detected!("avxvnni").then_some(Self::AVX_VNNI)
        }
    }

    #[cfg(all(target_arch = "x86_64", not(miri)))]
    #[allow(dead_code)] // see `mod x86`
    pub(super) const AVX512_VNNI: Kernels = Kernels {
        name: "avx512vnni",
        dot_q8_0: x86::vnni::vl::entry::dot_q8_0,
        dot_q4_0: x86::vnni::vl::entry::dot_q4_0,
        dot_q8_0_from: Some(x86::vnni::vl::entry::dot_q8_0_from),
        dot_q4_0_from: Some(x86::vnni::vl::entry::dot_q4_0_from),
        dot_q8_0_scaled: Some(x86::vnni::vl::entry::dot_q8_0_scaled),
        dot_q4_0_scaled: Some(x86::vnni::vl::entry::dot_q4_0_scaled),
        dot_q8_0_rows: Some(x86::rows::entry::dot_q8_0_rows_512),
        dot_groups: Some(x86::vnni::entry512::dot_groups),
        dot_groups_tile: Some(x86::vnni::entry512::dot_groups_tile),
        dot_groups_biased: Some(x86::vnni::entry512::dot_groups_biased),
        dot_groups_tile_biased: Some(x86::vnni::entry512::dot_groups_tile_biased),
        // The 512-bit tile is exact for every byte on both sides, so it serves decode's
        // tile (one activation vector, 8 weight rows) as it is.
        dot_rows_tile: Some(x86::vnni::entry512::dot_groups_tile),
        dot_q8_0_tile: Some(x86::vnni::vl::entry::dot_q8_0_tile),
        dot_q4_0_tile: Some(x86::vnni::vl::entry::dot_q4_0_tile),
        tile_scores: x86::attn512::entry::tile_scores,
        tile_accumulate: x86::attn512::entry::tile_accumulate,
        // Bit-identical to the AVX2 `dot_f16_le` / `dot_bf16_le` this table keeps.
        dot_f16_tile: Some(x86::f16_tile::dot_f16_tile),
        dot_bf16_tile: Some(x86::f16_tile::dot_bf16_tile),
        #[cfg(feature = "block-formats")]
        block_dots: BlockDots {
            q4_k_rows: Some(x86::ktile::entry::q4_k_rows),
            q5_k_rows: Some(x86::ktile::entry::q5_k_rows),
            q6_k_rows: Some(x86::ktile::entry::q6_k_rows),
            ..Self::AVX2.block_dots
        },
        ..Self::AVX2
    };

    #[cfg(all(target_arch = "x86_64", not(miri)))]
    #[allow(dead_code)] // see `mod x86`
    pub(super) const AVX_VNNI: Kernels = Kernels {
        name: "avx2+avx-vnni",
        dot_q8_0: x86::vnni::avx::entry::dot_q8_0,
        dot_q4_0: x86::vnni::avx::entry::dot_q4_0,
        dot_q8_0_from: Some(x86::vnni::avx::entry::dot_q8_0_from),
        dot_q4_0_from: Some(x86::vnni::avx::entry::dot_q4_0_from),
        dot_q8_0_scaled: Some(x86::vnni::avx::entry::dot_q8_0_scaled),
        dot_q4_0_scaled: Some(x86::vnni::avx::entry::dot_q4_0_scaled),
        dot_groups: Some(x86::vnni::avx::entry::dot_groups),
        dot_groups_tile: Some(x86::vnni::avx::entry::dot_groups_tile),
        dot_groups_biased: Some(x86::vnni::avx::entry::dot_groups_biased),
        dot_groups_tile_biased: Some(x86::vnni::avx::entry::dot_groups_tile_biased),
        dot_rows_tile: Some(x86::vnni::avx::entry::dot_groups_tile),
        dot_q8_0_tile: Some(x86::vnni::avx::entry::dot_q8_0_tile),
        dot_q4_0_tile: Some(x86::vnni::avx::entry::dot_q4_0_tile),
        ..Self::AVX2
    };

    /// The NEON kernels if this CPU has NEON: with `SDOT` integer dots when it also has
    /// `dotprod` (`dotprod: true`), with widening multiplies otherwise (`dotprod: false`).
    /// `None` when a requested feature is missing.
    #[cfg(all(target_arch = "aarch64", not(miri), any(feature = "std", test)))]
    pub fn aarch64_neon(dotprod: bool) -> Option<Kernels> {
        if !std::arch::is_aarch64_feature_detected!("neon") {
            return None;
        }
        if !dotprod {
            return Some(Self::NEON);
        }
        std::arch::is_aarch64_feature_detected!("dotprod").then_some(Self::NEON_DOTPROD)
    }

    #[cfg(all(target_arch = "aarch64", not(miri)))]
    #[allow(dead_code)] // see `mod aarch64`
    pub(super) const NEON: Kernels = Kernels {
        name: "neon",
        dot: aarch64::entry::dot,
        dot_f32_le: aarch64::entry::dot_f32_le,
        dot_f16_le: aarch64::entry::dot_f16_le,
        dot_q8_0: aarch64::entry::dot_q8_0,
        dot_q4_0: aarch64::entry::dot_q4_0,
        // The scalar scaled forms would replace the NEON dots.
        dot_q8_0_scaled: None,
        dot_q4_0_scaled: None,
        #[cfg(feature = "block-formats")]
        block_dots: Self::neon_block_dots(false),
        // The reference running-sum forms, scale handling, packing and group kernels.
        ..Self::SCALAR
    };

    /// The NEON block-format dot products, with `SDOT` (`dotprod`) or widening multiplies;
    /// Q2_K and Q3_K run the references.
    #[cfg(all(target_arch = "aarch64", not(miri), feature = "block-formats"))]
    #[allow(dead_code)] // see `mod aarch64`
    const fn neon_block_dots(dotprod: bool) -> BlockDots {
        use aarch64::blocks::{dotprod, widening};
        if dotprod {
            BlockDots {
                q2_k: dotprod::entry::dot_q2_k,
                q3_k: dotprod::entry::dot_q3_k,
                q4_1: dotprod::entry::dot_q4_1,
                q5_0: dotprod::entry::dot_q5_0,
                q5_1: dotprod::entry::dot_q5_1,
                iq4_nl: dotprod::entry::dot_iq4_nl,
                q4_k: dotprod::entry::dot_q4_k,
                q5_k: dotprod::entry::dot_q5_k,
                q6_k: dotprod::entry::dot_q6_k,
                iq4_xs: dotprod::entry::dot_iq4_xs,
                ..BlockDots::SCALAR
            }
        } else {
            BlockDots {
                q2_k: widening::entry::dot_q2_k,
                q3_k: widening::entry::dot_q3_k,
                q4_1: widening::entry::dot_q4_1,
                q5_0: widening::entry::dot_q5_0,
                q5_1: widening::entry::dot_q5_1,
                iq4_nl: widening::entry::dot_iq4_nl,
                q4_k: widening::entry::dot_q4_k,
                q5_k: widening::entry::dot_q5_k,
                q6_k: widening::entry::dot_q6_k,
                iq4_xs: widening::entry::dot_iq4_xs,
                ..BlockDots::SCALAR
            }
        }
    }

    #[cfg(all(target_arch = "aarch64", not(miri)))]
    #[allow(dead_code)] // see `mod aarch64`
    pub(super) const NEON_DOTPROD: Kernels = Kernels {
        name: "neon+dotprod",
        dot_q8_0: aarch64::entry::dot_q8_0_dotprod,
        dot_q4_0: aarch64::entry::dot_q4_0_dotprod,
        dot_groups: Some(aarch64::entry::dot_groups_dotprod),
        dot_groups_tile: Some(aarch64::entry::dot_groups_tile_dotprod),
        #[cfg(feature = "block-formats")]
        block_dots: Self::neon_block_dots(true),
        ..Self::NEON
    };

    /// Scalar float kernels (LLVM's auto-vectorisation is all an M-profile core has) with the
    /// `SXTB16` + `SMLAD` integer dots, for Arm targets with the DSP extension.
    #[cfg(tinymla_arm_dsp)]
    pub const ARM_DSP: Kernels = Kernels {
        name: "arm-dsp",
        dot_q8_0: arm_dsp::entry::dot_q8_0,
        dot_q4_0: arm_dsp::entry::dot_q4_0,
        dot_q8_0_scaled: Some(arm_dsp::entry::dot_q8_0_scaled),
        dot_q4_0_scaled: Some(arm_dsp::entry::dot_q4_0_scaled),
        dot_q8_0_rows: Some(arm_dsp::entry::dot_q8_0_rows),
        ..Self::SCALAR
    };

    /// Scalar float kernels with the Helium (`VMLADAV`) integer dots, for Cortex-M55/M85.
    #[cfg(tinymla_arm_mve)]
    pub const ARM_MVE: Kernels = Kernels {
        name: "arm-mve",
        dot_q8_0: arm_mve::entry::dot_q8_0,
        dot_q4_0: arm_mve::entry::dot_q4_0,
        // The DSP table's scaled and two-row kernels are slower than `VMLADAV`.
        dot_q8_0_scaled: None,
        dot_q4_0_scaled: None,
        dot_q8_0_rows: None,
        ..Self::ARM_DSP
    };
}

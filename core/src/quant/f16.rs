//! IEEE binary16, the scale type of every block format and the element type of F16 tensors
//! and f16 cache rows.
//!
//! On M-profile Arm cores with an FPU (`cfg(tinymla_arm_fp16)`, from build.rs) both
//! conversions are one `VCVTB` instruction; elsewhere they are the portable references below.
//! The two agree bit for bit on every input but NaNs (both give NaN; the hardware also sets
//! a signalling NaN's quiet bit); the firmware's start-up self-test checks it on each board.
#![cfg_attr(tinymla_arm_fp16, allow(unsafe_code))]

/// Whether [`f16_to_f32`] and [`f32_to_f16`] are the FPU's `VCVTB` (else the references).
pub const HARDWARE_CONVERSIONS: bool = cfg!(tinymla_arm_fp16);

/// `VCVTB` (`$insn`, `s15` to `s15`) on the 32 bits `$bits`, returning the register's bits.
/// Stable Rust offers no FPU register class on these targets (it needs the unstable `vfp2`
/// feature), so the value passes through `s15`, whose contents are saved in a general
/// register first and restored after.
#[cfg(tinymla_arm_fp16)]
macro_rules! through_s15 {
    ($insn:literal, $bits:expr) => {{
        let out: u32;
        // SAFETY: register-only FPU instructions, which `cfg(tinymla_arm_fp16)` says the
        // target has (build.rs: M-profile hard-float triples); no memory, no flags, and `s15`
        // holds what it held before.
        unsafe {
            core::arch::asm!(
                "vmov {save}, s15",
                "vmov s15, {i}",
                $insn,
                "vmov {o}, s15",
                "vmov s15, {save}",
                save = out(reg) _,
                i = in(reg) $bits,
                o = lateout(reg) out,
                options(pure, nomem, nostack, preserves_flags),
            );
        }
        out
    }};
}

/// IEEE binary16 (little-endian bytes) to `f32`, exactly: [`f16_to_f32_reference`], or
/// `VCVTB.F32.F16` on M-profile Arm cores with an FPU.
#[inline(always)]
pub fn f16_to_f32(bytes: [u8; 2]) -> f32 {
    #[cfg(tinymla_arm_fp16)]
    return f32::from_bits(through_s15!(
        "vcvtb.f32.f16 s15, s15",
        u32::from(u16::from_le_bytes(bytes))
    ));
    #[cfg(not(tinymla_arm_fp16))]
    f16_to_f32_reference(bytes)
}

/// The portable binary16 → `f32` conversion, without branches on the common path so LLVM
/// vectorises loops over it (the `half` crate's portable path converts one value at a time
/// unless the target has F16C).
///
/// Shifting the 15 exponent+mantissa bits into place and multiplying by 2^112 re-biases the
/// exponent (127 − 15); the multiply also normalises subnormals. Inf/NaN keep an all-ones
/// exponent (a signalling NaN stays signalling, where `half`, F16C and `VCVTB` set the quiet
/// bit: NaN either way). Checked against `half` for all 65,536 inputs.
#[inline(always)]
pub fn f16_to_f32_reference(bytes: [u8; 2]) -> f32 {
    let h = u32::from(u16::from_le_bytes(bytes));
    let sign = (h & 0x8000) << 16;
    let magnitude = h & 0x7fff;
    let scaled = f32::from_bits(magnitude << 13) * f32::from_bits(0x7780_0000); // 2^112
    let bits = if magnitude >= 0x7c00 { (magnitude << 13) | 0x7f80_0000 } else { scaled.to_bits() };
    f32::from_bits(bits | sign)
}

/// `f32` to IEEE binary16 (little-endian bytes), rounded to nearest even:
/// [`f32_to_f16_reference`], or `VCVTB.F16.F32` on M-profile Arm cores with an FPU (which
/// writes the low half of the register: only that half is kept).
#[inline(always)]
pub fn f32_to_f16(x: f32) -> [u8; 2] {
    #[cfg(tinymla_arm_fp16)]
    {
        #[allow(clippy::cast_possible_truncation)] // the low half is the result
        let h = through_s15!("vcvtb.f16.f32 s15, s15", x.to_bits()) as u16;
        h.to_le_bytes()
    }
    #[cfg(not(tinymla_arm_fp16))]
    f32_to_f16_reference(x)
}

/// The portable `f32` → binary16 conversion (the `half` crate's, round to nearest even).
#[inline(always)]
pub fn f32_to_f16_reference(x: f32) -> [u8; 2] {
    half::f16::from_f32(x).to_le_bytes()
}

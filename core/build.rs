//! Two cfgs. `tinymla_arm_dsp`: the target is Arm with the DSP extension (`SMLAD`, `SXTB16`),
//! which selects `kernels/arm_dsp.rs`. `tinymla_arm_mve`: the target also has Helium (the
//! M-profile Vector Extension: Cortex-M55/M85, `-C target-cpu=cortex-m55` or `+mve`), which
//! selects `kernels/arm_mve.rs`; it is derived from the rustflags only, the last
//! `target-cpu` / `±mve` deciding, as it does for rustc. Stable Rust hides `target_feature = "dsp"` from `cfg`
//! (the feature name is unstable), so it is derived here, conservatively: the target features
//! Cargo reports (nightly lists `dsp`), else the target triple (thumbv7em = Cortex-M4/M7;
//! every v7-A triple), else `-C target-cpu=` / `-C target-feature=±dsp` in the rustflags
//! (thumbv8m.main needs `-C target-cpu=cortex-m33` or `+dsp`: the extension is optional there).
//! A false "yes" would fail to assemble, never run wrong code; a false "no" means scalar.
//!
//! `tinymla_arm_fp16`: an M-profile hard-float target (`thumbv7em-*-eabihf`: FPv4-SP or FPv5;
//! `thumbv8m.main-*-eabihf`: FPv5), whose FPU converts between binary16 and `f32` in one
//! instruction (`VCVTB`), which `quant/f16.rs` then uses instead of integer bit arithmetic.

use std::env;

/// M-profile cores whose LLVM definition includes the DSP extension.
const DSP_CPUS: [&str; 6] =
    ["cortex-m4", "cortex-m7", "cortex-m33", "cortex-m35p", "cortex-m55", "cortex-m85"];
/// Triples whose baseline includes the DSP extension.
const DSP_TRIPLES: [&str; 4] = ["thumbv7em", "armv7", "thumbv7a", "thumbv7neon"];
/// M-profile cores whose LLVM definition includes MVE (integer Helium at least).
const MVE_CPUS: [&str; 2] = ["cortex-m55", "cortex-m85"];

fn main() {
    println!("cargo::rustc-check-cfg=cfg(tinymla_arm_dsp)");
    println!("cargo::rustc-check-cfg=cfg(tinymla_arm_mve)");
    println!("cargo::rustc-check-cfg=cfg(tinymla_arm_fp16)");
    println!("cargo::rerun-if-changed=build.rs");
    if env::var("CARGO_CFG_TARGET_ARCH").as_deref() != Ok("arm") {
        return;
    }
    let target = env::var("TARGET").unwrap_or_default();
    let m_profile_fpu = ["thumbv7em-", "thumbv8m.main-"].iter().any(|t| target.starts_with(t));
    if m_profile_fpu && target.ends_with("eabihf") {
        println!("cargo::rustc-cfg=tinymla_arm_fp16");
    }
    if has_dsp() {
        println!("cargo::rustc-cfg=tinymla_arm_dsp");
        if has_mve() {
            println!("cargo::rustc-cfg=tinymla_arm_mve");
        }
    }
}

/// The codegen options (`-C x` / `-Cx`) in the encoded rustflags, in order.
fn codegen_options() -> Vec<String> {
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let mut out = Vec::new();
    let mut args = flags.split('\x1f');
    while let Some(arg) = args.next() {
        let opt = match arg {
            "-C" | "--codegen" => args.next().unwrap_or(""),
            _ => arg.strip_prefix("-C").unwrap_or(""),
        };
        out.push(opt.to_string());
    }
    out
}

/// Helium: the last `target-cpu` is an MVE core, or a later `+mve` / `+mve.fp` adds it (a later
/// `-mve` removes it).
fn has_mve() -> bool {
    let features = env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    if features.split(',').any(|f| f == "mve") {
        return true;
    }
    let mut mve = false;
    for opt in codegen_options() {
        if let Some(cpu) = opt.strip_prefix("target-cpu=") {
            mve = MVE_CPUS.contains(&cpu);
        } else if let Some(list) = opt.strip_prefix("target-feature=") {
            for f in list.split(',') {
                match f {
                    "+mve" | "+mve.fp" => mve = true,
                    "-mve" => mve = false,
                    _ => {}
                }
            }
        }
    }
    mve
}

fn has_dsp() -> bool {
    let features = env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    if features.split(',').any(|f| f == "dsp") {
        return true;
    }
    let target = env::var("TARGET").unwrap_or_default();
    let mut dsp = DSP_TRIPLES.iter().any(|t| target.starts_with(t));
    for opt in codegen_options() {
        if let Some(cpu) = opt.strip_prefix("target-cpu=") {
            dsp |= DSP_CPUS.contains(&cpu);
        } else if let Some(list) = opt.strip_prefix("target-feature=") {
            for f in list.split(',') {
                match f {
                    "+dsp" => dsp = true,
                    "-dsp" => dsp = false,
                    _ => {}
                }
            }
        }
    }
    dsp
}

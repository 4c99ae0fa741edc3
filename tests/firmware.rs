//! Host-vs-firmware agreement (issue #9): builds every QEMU board in `firmware/`, runs each
//! model it carries under QEMU, decodes the defmt log with `defmt-print`, and checks it against
//! this host engine run on the same model, prompt ids, cache storage and sampler seed:
//!
//! - the prompt ids the firmware feeds are what the host tokenizer makes of its prompt text;
//! - the greedy and the sampled token ids are identical;
//! - the first step's logits checksums (Σl, Σ|l|, Σ l·(i mod 7 + 1)) agree within
//!   [`LOGITS_REL_TOL`] × Σ|l|: the boards run the scalar kernels, the host its SIMD ones, so
//!   the float sums are reordered.
//!
//! Slow (a minute or more: builds for three targets, then QEMU), so `#[ignore]`d in the quick
//! loop; `scripts/test.sh` runs it as its own step. Without QEMU or defmt-print it fails and says
//! how to install them (`firmware/install-tools.sh`).

use std::path::{Path, PathBuf};
use std::process::Command;

use tinymla_core::{
    CacheOptions, CacheStorage, LatentCache, Model, OverflowPolicy, Sampler, SamplerConfig, Scratch,
};
use tinymla_host::tokenizer::Tokenizer;

/// Relative tolerance on the first-step logits checksums, against Σ|l|.
const LOGITS_REL_TOL: f32 = 1e-4;

/// A QEMU board: its cargo package, target, extra cargo arguments, binaries (one per model) and
/// the kernel table its build must select (the firmware logs it with its self-test).
struct Board {
    package: &'static str,
    target: &'static str,
    cargo_args: &'static [&'static str],
    bins: &'static [&'static str],
    kernels: &'static str,
}

/// Every QEMU board and the models it carries. The Cortex-M55 is built with
/// `firmware/cortex-m55.toml` layered on (Helium kernels), as the `fw-an547` alias does.
const BOARDS: &[Board] = &[
    Board {
        package: "board-mps2-an386",
        target: "thumbv7em-none-eabihf",
        cargo_args: &[],
        bins: &["mps2-an386-demo-s", "mps2-an386-demo-m"],
        kernels: "arm-dsp",
    },
    Board {
        package: "board-mps2-an505",
        target: "thumbv8m.main-none-eabihf",
        cargo_args: &[],
        bins: &["mps2-an505-demo-s", "mps2-an505-demo-m"],
        kernels: "arm-dsp",
    },
    Board {
        package: "board-mps3-an547",
        target: "thumbv8m.main-none-eabihf",
        cargo_args: &["--config", "cortex-m55.toml"],
        bins: &["mps3-an547-demo-s", "mps3-an547-demo-m"],
        kernels: "arm-mve",
    },
    Board {
        package: "board-riscv-virt",
        target: "riscv32imac-unknown-none-elf",
        cargo_args: &[],
        bins: &["riscv-virt-demo-s", "riscv-virt-demo-m"],
        kernels: "scalar",
    },
    // The same board crate with the single-precision FPU (RV32IMAFC, as ESP32-C6/P4-class
    // parts have): hardware float instead of soft-float, same tokens.
    Board {
        package: "board-riscv-virt",
        target: "riscv32imafc-unknown-none-elf",
        cargo_args: &[],
        bins: &["riscv-virt-demo-s", "riscv-virt-demo-m"],
        kernels: "scalar",
    },
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn require_tools() {
    let missing: Vec<&str> = ["qemu-system-arm", "qemu-system-riscv32", "defmt-print"]
        .into_iter()
        .filter(|t| Command::new(t).arg("--version").output().is_err())
        .collect();
    assert!(
        missing.is_empty(),
        "the firmware agreement test needs {missing:?} on PATH. Install them with \
         `bash firmware/install-tools.sh` (QEMU 10 from Debian bookworm-backports: bookworm's \
         QEMU 7.2 does not install on these machines; defmt-print with cargo install --locked). \
         .ci/run does this."
    );
}

/// `cargo build --release --locked` of one board's package, in `firmware/`.
fn build(board: &Board) {
    let fw = root().join("firmware");
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(&fw)
        .args(board.cargo_args)
        .args(["build", "--release", "--locked", "--target", board.target, "-p", board.package])
        .env("CARGO_TARGET_DIR", fw.join("target"))
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    let status = cmd.status().expect("running cargo build in firmware/");
    assert!(status.success(), "building {} for {} failed", board.package, board.target);
}

/// What one firmware run logged.
#[derive(Debug, Default)]
struct FwRun {
    log: String,
    ctx: usize,
    storage: String,
    n_generate: usize,
    sampler: SamplerConfig,
    prompt: String,
    prompt_ids: Vec<u32>,
    /// (Σl, Σ|l|, Σ l·(i mod 7 + 1)).
    logits0: (f32, f32, f32),
    greedy: Vec<u32>,
    sampled: Vec<u32>,
    /// The kernel table whose start-up self-test passed.
    kernels: String,
    /// The f16 conversions whose start-up self-test passed: `FPU` (`VCVTB`) or `portable`.
    f16: String,
}

fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no `{key}=` in {line:?}"))
}

fn ids(list: &str) -> Vec<u32> {
    let list = list.trim().trim_start_matches('[').trim_end_matches(']');
    list.split(',').filter(|s| !s.trim().is_empty()).map(|s| s.trim().parse().unwrap()).collect()
}

fn parse(log: &str) -> FwRun {
    let mut run = FwRun { log: log.to_owned(), ..Default::default() };
    let mut done = false;
    for line in log.lines() {
        let Some(rest) = line.split_once("tinymla: ").map(|(_, r)| r) else { continue };
        if let Some(r) = rest.strip_prefix("config ") {
            run.ctx = field(r, "ctx").parse().unwrap();
            run.storage = field(r, "cache").to_owned();
            run.n_generate = field(r, "n_generate").parse().unwrap();
            run.sampler = SamplerConfig {
                temperature: field(r, "temperature").parse().unwrap(),
                top_k: field(r, "top_k").parse().unwrap(),
                top_p: field(r, "top_p").parse().unwrap(),
                seed: field(r, "seed").parse().unwrap(),
                ..SamplerConfig::default()
            };
        } else if let Some(r) = rest.strip_prefix("prompt_ids ") {
            run.prompt_ids = ids(r);
        } else if let Some(r) = rest.strip_prefix("prompt ") {
            run.prompt = r.to_owned();
        } else if let Some(r) = rest.strip_prefix("logits0 ") {
            let f = |k| field(r, k).parse::<f32>().unwrap();
            run.logits0 = (f("sum"), f("abs"), f("wsum"));
        } else if let Some(r) = rest.strip_prefix("greedy ids ") {
            run.greedy = ids(r);
        } else if let Some(r) = rest.strip_prefix("sampled ids ") {
            run.sampled = ids(r);
        } else if let Some(r) = rest.strip_prefix("f16 conversions self-test ok (") {
            run.f16 = r.split_once(')').map_or("", |(how, _)| how).to_owned();
        } else if let Some(r) = rest.strip_prefix("kernels ") {
            if let Some((name, _)) = r.split_once(" self-test ok") {
                run.kernels = name.to_owned();
            }
        } else if rest.starts_with("done") {
            done = true;
        }
    }
    assert!(done, "the firmware did not finish; its log:\n{log}");
    run
}

fn run_qemu(elf: &Path) -> FwRun {
    let out = Command::new("bash")
        .arg(root().join("firmware/run.sh"))
        .arg(elf)
        .output()
        .expect("running firmware/run.sh");
    let log = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{} exited with {:?}; stderr:\n{}\nlog:\n{log}",
        elf.display(),
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    parse(&log)
}

/// The host's run of what the firmware did: prompt, then `n` tokens from `sampler`, over a
/// cache of `ctx` rows stored as `storage`. Returns (first-step checksums, generated ids).
fn host_run(
    model: &Model<'_>,
    prompt: &[u32],
    ctx: usize,
    storage: CacheStorage,
    n: usize,
    sampler: SamplerConfig,
) -> ((f32, f32, f32), Vec<u32>) {
    let cfg = model.config();
    let mut cache_mem = vec![0u8; LatentCache::bytes_needed(cfg, ctx, storage).unwrap()];
    let mut scratch_mem = vec![0.0f32; cfg.scratch_elems(ctx).unwrap()];
    let mut work = vec![0u32; cfg.vocab_size];
    let options =
        CacheOptions { storage, policy: OverflowPolicy::Error, allow_beyond_context: false };
    let mut cache = LatentCache::new(cfg, ctx, options, &mut cache_mem).unwrap();
    let mut scratch = Scratch::new(cfg, ctx, &mut scratch_mem).unwrap();
    let mut sampler = Sampler::new(sampler);
    for &t in prompt {
        model.forward(t, &mut cache, &mut scratch).unwrap();
    }
    let sums =
        scratch.logits().iter().enumerate().fold((0f32, 0f32, 0f32), |(s, a, w), (i, &v)| {
            (s + v, a + v.abs(), w + v * ((i % 7) as f32 + 1.0))
        });
    let mut out = Vec::new();
    loop {
        let next = sampler.sample(scratch.logits_mut(), &mut work).unwrap();
        out.push(next);
        if out.len() == n {
            return (sums, out);
        }
        model.forward(next, &mut cache, &mut scratch).unwrap();
    }
}

fn storage(name: &str) -> CacheStorage {
    match name {
        "F32" => CacheStorage::F32,
        "F16" => CacheStorage::F16,
        "Q8" => CacheStorage::Q8,
        "Q8Compact" => CacheStorage::Q8Compact,
        other => panic!("unknown cache storage {other:?}"),
    }
}

/// Checks one firmware run against the host; returns a one-line summary.
fn check(bin: &str, kernels: &str, run: &FwRun) -> String {
    assert_eq!(
        run.kernels, kernels,
        "{bin}: expected the {kernels} kernels to pass their self-test; log:\n{}",
        run.log
    );
    // The Arm boards all have an FPU with half-precision conversions; RISC-V converts in code.
    let f16 = if kernels.starts_with("arm") { "FPU" } else { "portable" };
    assert_eq!(run.f16, f16, "{bin}: expected the {f16} f16 conversions to pass their self-test");
    // `bin` may carry its target after a space: `riscv-virt-demo-s [riscv32imafc-…]`.
    let name = bin.split_whitespace().next().unwrap_or(bin);
    let model_name = name.rsplit_once("-demo-").map(|(_, m)| format!("demo-{m}")).unwrap();
    let path = root().join(format!("models/{model_name}.q8_0.gguf"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let model = Model::load(&bytes).unwrap();
    let tokenizer = Tokenizer::from_gguf(&bytes).unwrap();
    let encoded = tokenizer.encode(&run.prompt, tokenizer.add_bos_default());
    assert_eq!(
        encoded, run.prompt_ids,
        "{bin}: the firmware's prompt ids are not the host's encoding of {:?}",
        run.prompt
    );

    let st = storage(&run.storage);
    let greedy_cfg = SamplerConfig { temperature: 0.0, ..run.sampler };
    let (sums, greedy) = host_run(&model, &run.prompt_ids, run.ctx, st, run.n_generate, greedy_cfg);
    let (_, sampled) = host_run(&model, &run.prompt_ids, run.ctx, st, run.n_generate, run.sampler);
    assert!(greedy.len() >= 32 && sampled.len() >= 32);
    assert_eq!(run.greedy, greedy, "{bin}: greedy token ids differ from the host's\n{}", run.log);
    assert_eq!(
        run.sampled, sampled,
        "{bin}: sampled token ids differ from the host's\n{}",
        run.log
    );

    let (fw, host) = (run.logits0, sums);
    let scale = host.1.max(f32::MIN_POSITIVE);
    let rel = [(fw.0 - host.0).abs(), (fw.1 - host.1).abs(), (fw.2 - host.2).abs()]
        .into_iter()
        .fold(0f32, f32::max)
        / scale;
    assert!(
        rel <= LOGITS_REL_TOL,
        "{bin}: first-step logits checksum firmware {fw:?} vs host {host:?}: relative {rel:e} > {LOGITS_REL_TOL:e}"
    );
    format!(
        "{bin} ({}, f16 {}): prompt {} ids, greedy {} + sampled {} ids identical; logits0 checksum rel diff {rel:.2e} (limit {LOGITS_REL_TOL:e})",
        run.kernels,
        run.f16,
        run.prompt_ids.len(),
        greedy.len(),
        sampled.len()
    )
}

#[test]
#[ignore = "slow: builds and runs the firmware under QEMU; scripts/test.sh runs it as its own step"]
fn firmware_agrees_with_host() {
    require_tools();
    // One build per board: boards sharing a target may differ in rustflags (the M55).
    for board in BOARDS {
        build(board);
    }
    // Labelled with the target: riscv-virt runs twice, soft-float and with the F extension.
    let runs: Vec<(String, &str, PathBuf)> = BOARDS
        .iter()
        .flat_map(|b| {
            b.bins.iter().map(move |bin| {
                let elf = root().join("firmware/target").join(b.target).join("release").join(bin);
                (format!("{bin} [{}]", b.target), b.kernels, elf)
            })
        })
        .collect();
    // Two QEMUs at a time (CI has 2 cores); each run is single-threaded.
    let (even, odd): (Vec<_>, Vec<_>) = runs.iter().enumerate().partition(|(i, _)| i % 2 == 0);
    let summary: Vec<String> = std::thread::scope(|s| {
        let work = |half: Vec<(usize, &(String, &str, PathBuf))>| {
            half.into_iter()
                .map(|(i, (bin, kernels, elf))| (i, check(bin, kernels, &run_qemu(elf))))
                .collect::<Vec<_>>()
        };
        let a = s.spawn(move || work(even));
        let b = s.spawn(move || work(odd));
        let mut all = a.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        all.extend(b.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
        all.sort_by_key(|(i, _)| *i);
        all.into_iter().map(|(_, line)| line).collect()
    });
    for line in &summary {
        println!("{line}");
    }
}

#[test]
fn firmware_log_parser_rejects_an_unfinished_run() {
    let log = "INFO  tinymla: config ctx=8 cache=Q8 n_generate=2 temperature=0.8 top_k=0 top_p=0.95 seed=2\n";
    let r = std::panic::catch_unwind(|| parse(log));
    assert!(r.is_err(), "a log without `tinymla: done` must not parse");
    let mut log = log.to_owned();
    log.push_str("INFO  tinymla: greedy ids [1, 2]\nINFO  tinymla: done\n");
    let run = parse(&log);
    assert_eq!((run.ctx, run.greedy.as_slice(), run.sampler.seed), (8, &[1u32, 2][..], 2));
}

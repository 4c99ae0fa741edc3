//! The C API (issue #11): the committed header is what cbindgen makes of `capi/src`, and the C
//! example `capi/examples/generate.c`, built with the system C compiler against the
//! staticlib, generates the same greedy tokens as the Rust engine.

use std::path::{Path, PathBuf};
use std::process::Command;

use tinymla_core::{CacheOptions, LatentCache, Model, Sampler, SamplerConfig, Scratch};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The header as cbindgen generates it from `capi/` with `capi/cbindgen.toml`.
fn generate_header(out: &Path) {
    let capi = root().join("capi");
    let config = cbindgen::Config::from_file(capi.join("cbindgen.toml")).expect("cbindgen.toml");
    cbindgen::Builder::new()
        .with_crate(&capi)
        .with_config(config)
        .generate()
        .expect("cbindgen failed on capi/")
        .write_to_file(out);
}

/// Fails if `capi/include/tinymla.h` differs from a fresh generation. To update it:
/// `TINYMLA_BLESS_HEADER=1 cargo test -p tinymla-tests capi_header`.
#[test]
fn capi_header_is_up_to_date() {
    let committed = root().join("capi/include/tinymla.h");
    let dir = std::env::temp_dir().join(format!("tinymla-capi-header-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fresh = dir.join("tinymla.h");
    generate_header(&fresh);
    let fresh_text = std::fs::read_to_string(&fresh).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    if std::env::var_os("TINYMLA_BLESS_HEADER").is_some() {
        std::fs::write(&committed, &fresh_text).unwrap();
    }
    let old = std::fs::read_to_string(&committed).unwrap_or_default();
    assert!(
        old == fresh_text,
        "capi/include/tinymla.h is stale: regenerate it with \
         TINYMLA_BLESS_HEADER=1 cargo test -p tinymla-tests capi_header and commit it"
    );
}

/// The prompt `capi/examples/generate.c` feeds ("The meaning of life is", demo tokenizer).
const PROMPT_IDS: [u32; 8] = [0, 318, 422, 271, 280, 291, 696, 303];
const N_GENERATE: usize = 24;
const MODEL: &str = "models/demo-m.q8_0.gguf";

/// `cargo build --release` of the capi staticlib in its own target dir (the outer `cargo test`
/// may hold the workspace's), then the C example compiled with the system `cc` against it.
fn build_c_example() -> PathBuf {
    let dir = root().join("target/capi-c");
    let status = Command::new(env!("CARGO"))
        .current_dir(root())
        .args(["build", "--release", "--locked", "-p", "tinymla-capi"])
        .env("CARGO_TARGET_DIR", &dir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .expect("running cargo build -p tinymla-capi");
    assert!(status.success(), "building the capi staticlib failed");
    compile_c("cc", &["-O2"], "capi/examples/generate.c", &dir.join("generate"))
}

/// `compiler` (with `flags`) builds `source` against the staticlib [`build_c_example`] made,
/// into `exe`; fails the test with the compiler's messages otherwise.
fn compile_c(compiler: &str, flags: &[&str], source: &str, exe: &Path) -> PathBuf {
    let dir = root().join("target/capi-c");
    let out = Command::new(compiler)
        .current_dir(root())
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-Icapi/include"])
        .args(flags)
        .arg(source)
        .arg(dir.join("release/libtinymla_capi.a"))
        // std's runtime needs (`rustc --print native-static-libs`).
        .args(["-lpthread", "-ldl", "-lm", "-lgcc_s", "-lc", "-o"])
        .arg(exe)
        .output()
        .unwrap_or_else(|e| panic!("running {compiler}: {e}"));
    assert!(
        out.status.success(),
        "{compiler} {flags:?} failed on {source}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe.to_owned()
}

/// The Rust engine's greedy continuation of `PROMPT_IDS`.
fn rust_greedy(file: &[u8], n: usize) -> Vec<u32> {
    let model = Model::load(file).unwrap();
    let cfg = model.config();
    let capacity = PROMPT_IDS.len() + n;
    let opts = CacheOptions::default();
    let mut cache_mem = vec![0u8; LatentCache::bytes_needed(cfg, capacity, opts.storage).unwrap()];
    let mut scratch_mem = vec![0f32; cfg.scratch_elems(capacity).unwrap()];
    let mut cache = LatentCache::new(cfg, capacity, opts, &mut cache_mem).unwrap();
    let mut scratch = Scratch::new(cfg, capacity, &mut scratch_mem).unwrap();
    let mut sampler = Sampler::new(SamplerConfig { temperature: 0.0, ..SamplerConfig::default() });
    let mut work = vec![0u32; cfg.vocab_size];
    for &t in &PROMPT_IDS {
        model.forward(t, &mut cache, &mut scratch).unwrap();
    }
    let mut ids = Vec::new();
    for i in 0..n {
        let t = sampler.sample(scratch.logits_mut(), &mut work).unwrap();
        ids.push(t);
        if i + 1 < n {
            model.forward(t, &mut cache, &mut scratch).unwrap();
        }
    }
    ids
}

/// The C example's greedy ids equal the Rust engine's, and its text is what the host
/// tokenizer's vocabulary decodes them to.
#[test]
fn capi_c_example_generates_the_rust_tokens() {
    let exe = build_c_example();
    let out = Command::new(&exe)
        .current_dir(root())
        .args([MODEL, &N_GENERATE.to_string()])
        .output()
        .expect("running the C example");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "generate.c failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ids: Vec<u32> = stdout
        .lines()
        .find_map(|l| l.strip_prefix("ids:"))
        .expect("an `ids:` line")
        .split_whitespace()
        .map(|t| t.parse().unwrap())
        .collect();
    let text = stdout.lines().find_map(|l| l.strip_prefix("text: ")).expect("a `text:` line");
    let file = std::fs::read(root().join(MODEL)).unwrap();
    assert_eq!(ids, rust_greedy(&file, N_GENERATE), "C ids vs Rust greedy ids");

    let gguf = tinymla_core::Gguf::parse(&file).unwrap();
    let vocab = tinymla_core::vocab::Vocab::new(&gguf).unwrap();
    let mut bytes = Vec::new();
    let mut piece = vec![0u8; vocab.max_token_bytes()];
    for &t in &ids {
        let n = vocab.decode_token(t, &mut piece).unwrap();
        bytes.extend_from_slice(&piece[..n]);
    }
    // The example prints the text on one line: compare up to the first newline.
    let want = String::from_utf8_lossy(&bytes);
    assert_eq!(text, want.lines().next().unwrap_or(""), "C text vs Rust decoding");

    // Errors reach C as a status and its text, not a crash.
    let out = Command::new(&exe).arg("Cargo.toml").current_dir(root()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a well-formed GGUF file (status 6)"), "{err}");
}

/// The staticlib (built by [`build_c_example`]) linked with a C program compiled by clang
/// with AddressSanitizer and UndefinedBehaviorSanitizer; aborts on the first report.
fn build_sanitized(source: &str, exe_name: &str) -> PathBuf {
    build_c_example();
    let exe = root().join("target/capi-c").join(exe_name);
    let flags = [
        "-O1",
        "-g",
        "-fsanitize=address,undefined",
        "-fno-sanitize-recover=all",
        "-fno-omit-frame-pointer",
    ];
    compile_c("clang", &flags, source, &exe)
}

/// Runs a sanitized program; any sanitizer report (they abort, and leaks fail the exit) or a
/// failed check fails the test.
fn run_sanitized(exe: &Path, args: &[&str]) -> String {
    let out = Command::new(exe)
        .current_dir(root())
        .args(args)
        .env("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1:halt_on_error=1")
        .env("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        .output()
        .expect("running a sanitized C program");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{} failed under ASan/UBSan:\n{stderr}", exe.display());
    assert!(!stderr.contains("Sanitizer"), "a sanitizer reported:\n{stderr}");
    String::from_utf8(out.stdout).unwrap()
}

/// The C API under clang's AddressSanitizer and UndefinedBehaviorSanitizer: the hosted
/// example generates the same greedy ids as its plain build (and frees everything: the leak
/// checker is on), and `capi/examples/misuse.c` drives every misuse case (NULL, short and
/// misaligned memory, bad files, foreign, moved, mixed and released handles, bad tokens, a
/// full cache) to its status with the sanitizers silent. Needs clang with its sanitizer
/// runtimes (`.ci/run` installs them), so `#[ignore]`d in the quick loop; scripts/test.sh
/// runs it.
#[test]
#[ignore = "needs clang with ASan/UBSan runtimes; scripts/test.sh runs it"]
fn capi_under_address_and_undefined_behaviour_sanitizers() {
    let generate = build_sanitized("capi/examples/generate.c", "generate-asan");
    let stdout = run_sanitized(&generate, &[MODEL, &N_GENERATE.to_string()]);
    let ids: Vec<u32> = stdout
        .lines()
        .find_map(|l| l.strip_prefix("ids:"))
        .expect("an `ids:` line")
        .split_whitespace()
        .map(|t| t.parse().unwrap())
        .collect();
    let file = std::fs::read(root().join(MODEL)).unwrap();
    assert_eq!(ids, rust_greedy(&file, N_GENERATE), "sanitized C ids vs Rust greedy ids");

    let misuse = build_sanitized("capi/examples/misuse.c", "misuse-asan");
    for model in ["models/demo-s.q8_0.gguf", MODEL] {
        let stdout = run_sanitized(&misuse, &[model]);
        let n: usize = stdout
            .trim()
            .strip_prefix("misuse: ")
            .and_then(|s| s.strip_suffix(" checks passed"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected output: {stdout}"));
        assert!(n >= 50, "only {n} misuse checks ran");
    }
}

/// The bare-metal C example (`capi/examples/baremetal/`): the `no_std` staticlib for
/// thumbv7em-none-eabihf linked with `arm-none-eabi-gcc` and run under QEMU mps2-an386 gives
/// the Rust engine's greedy tokens for demo-s. Needs gcc-arm-none-eabi, newlib and QEMU
/// (`.ci/run` installs them), so `#[ignore]`d in the quick loop; scripts/test.sh runs it.
#[test]
#[ignore = "needs arm-none-eabi-gcc and qemu-system-arm; scripts/test.sh runs it"]
fn capi_baremetal_example_generates_the_rust_tokens() {
    let out = Command::new("bash")
        .current_dir(root())
        .arg("capi/examples/baremetal/build.sh")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .expect("running capi/examples/baremetal/build.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the bare-metal example failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ids: Vec<u32> = stdout
        .lines()
        .find_map(|l| l.strip_prefix("ids:"))
        .expect("an `ids:` line")
        .split_whitespace()
        .map(|t| t.parse().unwrap())
        .collect();
    let file = std::fs::read(root().join("models/demo-s.q8_0.gguf")).unwrap();
    assert_eq!(ids.len(), 16);
    assert_eq!(ids, rust_greedy(&file, ids.len()), "bare-metal C ids vs Rust greedy ids");
}

//! Drives the built `tinymla` binary.

use std::path::PathBuf;
use std::process::Command;

// `convert`'s tests live in their own file; they are part of this binary (one link).
#[path = "cli/convert.rs"]
mod convert;

fn tinymla() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tinymla"))
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(name)
}

#[test]
fn inspect_reports_hyperparameters_tensors_and_cache_size() {
    let out = tinymla().arg("inspect").arg(fixture("v2_lite_moe.gguf")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    for want in [
        "architecture: deepseek2",
        "none (direct attn_q)",
        "blk.2.ffn_down_exps.weight",
        "bytes per token (all layers, f32): 312",
        "loads: yes",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
}

#[test]
fn inspect_of_a_truncated_file_fails_with_one_line() {
    let bytes = std::fs::read(fixture("v3_dense_tied.gguf")).unwrap();
    let path = std::env::temp_dir().join(format!("tinymla-truncated-{}.gguf", std::process::id()));
    std::fs::write(&path, &bytes[..100]).unwrap();
    let out = tinymla().arg("inspect").arg(&path).output().unwrap();
    std::fs::remove_file(&path).ok();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("tinymla: inspecting") && err.contains("malformed GGUF"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn inspect_of_a_directory_or_missing_file_fails_cleanly() {
    for path in [fixture(""), fixture("no-such-file.gguf")] {
        let out = tinymla().arg("inspect").arg(&path).output().unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.starts_with("tinymla: ") && !err.contains("panicked"), "{err}");
    }
}

fn run_ok(args: &[&str]) -> (String, String) {
    let out = tinymla().args(args).output().unwrap();
    let (stdout, stderr) =
        (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap());
    assert!(out.status.success(), "{args:?} failed: {stderr}");
    (stdout, stderr)
}

fn run_err(args: &[&str]) -> String {
    let out = tinymla().args(args).output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!out.status.success(), "{args:?} should fail");
    assert!(stderr.starts_with("tinymla: ") && !stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    stderr
}

#[test]
fn run_streams_text_and_reports_speed() {
    let model = fixture("v3_qlora_grouped.gguf");
    let m = model.to_str().unwrap();
    let (text, stderr) = run_ok(&["run", "-m", m, "-p", "the cat", "-n", "12"]);
    assert!(!text.trim_end_matches('\n').is_empty());
    assert!(stderr.contains("prompt: ") && stderr.contains("generated: 12 tokens"), "{stderr}");
    // Greedy is deterministic; a seeded sampler is reproducible and differs from greedy.
    assert_eq!(run_ok(&["run", "-m", m, "-p", "the cat", "-n", "12"]).0, text);
    let sampled = ["run", "-m", m, "-p", "the cat", "-n", "12", "--temp", "1.0", "--seed", "5"];
    assert_eq!(run_ok(&sampled).0, run_ok(&sampled).0);
    // Every cache storage runs; -n 0 only prefills.
    for cache in ["f16", "q8"] {
        run_ok(&["run", "-m", m, "-p", "hi", "-n", "4", "--cache", cache]);
    }
    let (none, stderr) = run_ok(&["run", "-m", m, "-p", "hi", "-n", "0"]);
    assert_eq!(none.trim(), "");
    assert!(stderr.contains("generated: 0 tokens"), "{stderr}");
    // A small context stops generation instead of failing.
    let (_, stderr) = run_ok(&["run", "-m", m, "-p", "hi", "-n", "50", "--ctx", "8"]);
    assert!(stderr.contains("stopped: context full"), "{stderr}");
}

#[test]
fn run_rejects_bad_input_with_one_line() {
    let model = fixture("v3_qlora_grouped.gguf");
    let m = model.to_str().unwrap();
    assert!(run_err(&["run", "-m", m, "-p", ""]).contains("prompt is empty"));
    assert!(run_err(&["run", "-m", m, "-p", "hi", "--ctx", "1000000000000"]).contains("--ctx"));
    assert!(run_err(&["run", "-m", m, "-p", "hi", "--ctx", "0"]).contains("--ctx"));
    let long = "a ".repeat(100);
    assert!(run_err(&["run", "-m", m, "-p", &long, "--ctx", "16"]).contains("more than --ctx 16"));
    assert!(
        run_err(&["run", "-m", fixture("").to_str().unwrap(), "-p", "hi"]).contains("directory")
    );
    let bytes = std::fs::read(&model).unwrap();
    let path = std::env::temp_dir().join(format!("tinymla-run-trunc-{}.gguf", std::process::id()));
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = run_err(&["run", "-m", path.to_str().unwrap(), "-p", "hi"]);
    std::fs::remove_file(&path).ok();
    assert!(err.contains("malformed GGUF"), "{err}");
}

/// `logits` reproduces the golden reference: the JSON for the fixture's prompt equals
/// transformers' logits within the golden tolerance.
#[test]
fn logits_json_matches_the_reference() {
    let bytes = std::fs::read(fixture("v3_dense_tied.expected.bin")).unwrap();
    let word = |i: usize| u32::from_le_bytes(bytes[4 * i..4 * i + 4].try_into().unwrap());
    let (n_pos, n_vocab) = (word(2) as usize, word(3) as usize);
    let tokens: Vec<u32> = (0..n_pos).map(|i| word(4 + i)).collect();
    let list = tokens.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
    let model = fixture("v3_dense_tied.gguf");
    let (json, _) = run_ok(&["logits", "-m", model.to_str().unwrap(), "--tokens", &list]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["tokens"].as_array().unwrap().len(), n_pos);
    for pos in 0..n_pos {
        let row = v["logits"][pos].as_array().unwrap();
        assert_eq!(row.len(), n_vocab);
        let start = 4 * (4 + n_pos) + 4 * pos * n_vocab;
        for (j, got) in row.iter().enumerate() {
            let at = start + 4 * j;
            let want = f32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
            assert!((got.as_f64().unwrap() as f32 - want).abs() < 1e-4 * 3.0, "pos {pos} id {j}");
        }
    }
    let err = run_err(&["logits", "-m", model.to_str().unwrap(), "--tokens", "1,99999"]);
    assert!(err.contains("out of range"), "{err}");
    let (json, _) = run_ok(&["logits", "-m", model.to_str().unwrap(), "-p", "the"]);
    assert!(json.contains("\"logits\""));
}

#[test]
fn bench_prints_a_row_per_prompt_length() {
    let model = fixture("v3_dense_tied.gguf");
    let (table, _) =
        run_ok(&["bench", "-m", model.to_str().unwrap(), "--prompt", "4,16", "-n", "4"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].contains("prefill tok/s") && lines[2].trim_start().starts_with("16"));
    let err = run_err(&["bench", "-m", model.to_str().unwrap(), "--prompt", "100000"]);
    assert!(err.contains("--ctx"), "{err}");
}

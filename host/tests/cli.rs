//! Drives the built `tinymla` binary.

use std::path::PathBuf;
use std::process::Command;

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

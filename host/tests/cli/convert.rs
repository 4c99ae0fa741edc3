//! `tinymla convert` on the golden fixtures' Hugging Face checkpoints (`tests/fixtures/hf/`,
//! see its PROVENANCE.md): the output must hold exactly the tensors of the GGUFs that
//! `scripts/gen_fixtures.py` (and llama.cpp's converter) wrote from the same weights, and give
//! the same logits; bad input must fail with one line.

use std::path::{Path, PathBuf};
use std::process::Output;

use safetensors::tensor::TensorView as StView;
use tinymla_core::gguf::MetadataValue;
use tinymla_core::Gguf;

use super::{fixture, run_ok, tinymla};

/// `(fixture, --type, reference GGUF)`: the reference holds the same tensors the converter
/// must write. `v2_grouped_legacy`'s own files keep the legacy `attn_kv_b`; llama.cpp's
/// converter output (split `attn_k_b` / `attn_v_b`, like ours) is its F32 reference.
const CASES: &[(&str, &str, &str)] = &[
    ("v2_lite_moe", "f32", "v2_lite_moe.gguf"),
    ("v2_lite_moe", "f16", "v2_lite_moe.f16.gguf"),
    ("v2_lite_moe", "q8_0", "v2_lite_moe.q8_0.gguf"),
    ("v3_qlora_grouped", "f32", "v3_qlora_grouped.gguf"),
    ("v3_qlora_grouped", "f16", "v3_qlora_grouped.f16.gguf"),
    ("v3_qlora_grouped", "q8_0", "v3_qlora_grouped.q8_0.gguf"),
    ("v3_dense_tied", "f32", "v3_dense_tied.gguf"),
    ("v3_dense_tied", "f16", "v3_dense_tied.f16.gguf"),
    ("v3_dense_tied", "q8_0", "v3_dense_tied.q8_0.gguf"),
    ("v2_grouped_legacy", "f32", "llamacpp/v2_grouped_legacy.gguf"),
    ("v2_grouped_legacy", "f16", "v2_grouped_legacy.f16.gguf"),
    ("v2_grouped_legacy", "q8_0", "v2_grouped_legacy.q8_0.gguf"),
    ("v3_aligned", "f32", "v3_aligned.gguf"),
    ("v3_aligned", "f16", "v3_aligned.f16.gguf"),
    ("v3_aligned", "q8_0", "v3_aligned.q8_0.gguf"),
    ("v3_aligned", "q4_0", "v3_aligned.q4_0.gguf"),
    // llama.cpp's quantizer (`llama_model_quantize`) on the F32 file of the same weights
    // (tests/fixtures/kquant/PROVENANCE.md): its per-tensor types and its blocks. Rows are
    // whole 32-blocks, never 256-blocks, so the K-quant types fall back (Q5_0, Q4_0, Q8_0,
    // IQ4_NL).
    ("v3_aligned", "q4_1", "kquant/v3_aligned.q4_1.gguf"),
    ("v3_aligned", "q5_0", "kquant/v3_aligned.q5_0.gguf"),
    ("v3_aligned", "q5_1", "kquant/v3_aligned.q5_1.gguf"),
    ("v3_aligned", "q4_k_m", "kquant/v3_aligned.q4_k_m.gguf"),
    ("v3_aligned", "q6_k", "kquant/v3_aligned.q6_k.gguf"),
    ("v3_aligned", "q2_k", "kquant/v3_aligned.q2_k.gguf"),
    ("v3_aligned", "iq4_xs", "kquant/v3_aligned.iq4_xs.gguf"),
    // No row a multiple of 32: every matrix F16, the tied embeddings on the output rule.
    ("v3_dense_tied", "q4_k_m", "kquant/v3_dense_tied.q4_k_m.gguf"),
];

/// A fresh, empty temp directory for one test.
fn scratch_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tinymla-convert-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn hf(name: &str) -> PathBuf {
    fixture(&format!("hf/{name}"))
}

fn convert(dir: &Path, out: &Path, ty: &str) -> Output {
    tinymla().arg("convert").arg(dir).arg("-o").arg(out).args(["--type", ty]).output().unwrap()
}

fn convert_ok(dir: &Path, out: &Path, ty: &str) {
    let o = convert(dir, out, ty);
    assert!(
        o.status.success(),
        "convert {}: {}",
        dir.display(),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Runs `convert` expecting failure: one `tinymla: ` line, no panic, no output file left.
fn convert_err(dir: &Path, out: &Path, ty: &str) -> String {
    let o = convert(dir, out, ty);
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(!o.status.success(), "{} should fail", dir.display());
    assert!(err.starts_with("tinymla: ") && !err.contains("panicked"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(!out.exists(), "a failed conversion left {}", out.display());
    assert_no_temporary_files(out);
    err
}

/// No file in `out`'s folder but `out` itself carries its name (a temporary file of the
/// atomic write would: `.out.gguf.XXXX`).
fn assert_no_temporary_files(out: &Path) {
    let (Some(folder), Some(name)) = (out.parent(), out.file_name()) else { return };
    let Ok(entries) = std::fs::read_dir(folder) else { return };
    let name = name.to_string_lossy();
    for entry in entries {
        let other = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(other == *name || !other.contains(&*name), "a conversion left {other}");
    }
}

/// `convert` under a file-size limit (`RLIMIT_FSIZE`, 64 KiB, set by `sh -c ulimit` in the
/// child) far below its output: with SIGXFSZ ignored, the write fails midway with EFBIG;
/// with the default action, the kernel kills the process midway. Either way the existing
/// output keeps its old bytes and no temporary file is left; the failure is one error line.
#[test]
fn interrupted_writes_keep_the_old_file() {
    use std::os::unix::process::ExitStatusExt;

    let dir = scratch_dir("fsize");
    let out = dir.join("out.gguf");
    let old = b"the previous conversion, which must survive".repeat(10);
    let run = |ignore_sigxfsz: bool| {
        std::fs::write(&out, &old).unwrap();
        let trap = if ignore_sigxfsz { "trap '' XFSZ; " } else { "" };
        let o = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit -f 128; {trap}exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_tinymla"))
            .arg("convert")
            .arg(hf("v2_lite_moe"))
            .arg("-o")
            .arg(&out)
            .args(["--type", "f32"])
            .output()
            .unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), old, "the old file was damaged");
        assert_no_temporary_files(&out);
        o
    };

    let failed = run(true);
    let err = String::from_utf8(failed.stderr).unwrap();
    assert_eq!(failed.status.code(), Some(1), "{err}");
    assert!(err.starts_with("tinymla: ") && err.contains("out.gguf: File too large"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");

    let killed = run(false);
    assert_eq!(killed.status.signal(), Some(25), "not killed by SIGXFSZ: {:?}", killed.status);

    // Without the limit the same command replaces the file.
    convert_ok(&hf("v2_lite_moe"), &out, "f32");
    assert!(std::fs::metadata(&out).unwrap().len() > 128 * 1024);
    std::fs::remove_dir_all(&dir).ok();
}

/// Whether a key is expected to differ between our file and a reference: llama.cpp and the
/// fixture script name the model and pre-tokenizer differently, the script writes fixed
/// BOS/EOS ids and no `general.type`, and the legacy fixture has the non-MLA attention keys.
fn key_may_differ(key: &str, legacy: bool) -> bool {
    matches!(
        key,
        "general.name"
            | "general.type"
            | "general.size_label"
            | "general.file_type"
            | "general.quantization_version"
            | "tokenizer.ggml.pre"
            | "tokenizer.ggml.bos_token_id"
            | "tokenizer.ggml.eos_token_id"
    ) || (legacy && key.starts_with("deepseek2.attention."))
}

/// Metadata values compared by content (an array's position in the file does not count).
fn same_value(a: MetadataValue<'_>, b: MetadataValue<'_>) -> bool {
    match (a.as_array(), b.as_array()) {
        (Some(x), Some(y)) => {
            (x.elem_type(), x.len(), x.element_bytes())
                == (y.elem_type(), y.len(), y.element_bytes())
        }
        _ => a == b,
    }
}

/// A short description of a metadata value for failure messages.
fn show(v: Option<MetadataValue<'_>>) -> String {
    match v {
        Some(v) => match v.as_array() {
            Some(a) => format!("array of {} {:?}", a.len(), a.elem_type()),
            None => format!("{v:?}"),
        },
        None => "absent".into(),
    }
}

/// Same tensors (name, type, dims, bytes, in any order) and same metadata apart from
/// [`key_may_differ`]. Returns the number of tensors compared.
fn assert_same_model(ours: &[u8], reference: &[u8], legacy: bool, what: &str) -> usize {
    let (a, b) = (Gguf::parse(ours).unwrap(), Gguf::parse(reference).unwrap());
    let skip = |name: &str| legacy && name.contains(".attn_k");
    let skip = |name: &str| skip(name) || (legacy && name.contains(".attn_v_b"));
    let mut compared = 0;
    for t in b.tensors().filter(|t| !skip(t.name)) {
        let ours = a.tensor(t.name).unwrap_or_else(|| panic!("{what}: no {}", t.name));
        assert_eq!(
            (ours.ggml_type, ours.dims),
            (t.ggml_type, t.dims),
            "{what}: {} type/dims",
            t.name
        );
        assert!(ours.bytes == t.bytes, "{what}: {} bytes differ", t.name);
        compared += 1;
    }
    let n_ours = a.tensors().filter(|t| !skip(t.name)).count();
    assert_eq!(n_ours, compared, "{what}: extra tensors in our file");
    for (key, value) in b.metadata() {
        if key_may_differ(key, legacy) {
            continue;
        }
        let mine = a.get(key).unwrap_or_else(|| panic!("{what}: no key {key}"));
        assert!(
            same_value(mine, value),
            "{what}: key {key}: {} vs {}",
            show(Some(mine)),
            show(Some(value))
        );
    }
    for (key, _) in a.metadata() {
        assert!(key_may_differ(key, legacy) || b.get(key).is_some(), "{what}: extra key {key}");
    }
    compared
}

/// Per-position logits of `model` on `tokens`, through the binary's `logits` subcommand.
fn logits(model: &Path, tokens: &[u32]) -> Vec<Vec<f32>> {
    let ids: Vec<String> = tokens.iter().map(u32::to_string).collect();
    let model = model.to_str().unwrap();
    let (stdout, _) = run_ok(&["logits", "-m", model, "--tokens", &ids.join(",")]);
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    json["logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect())
        .collect()
}

/// The 20 prompt ids and transformers' logits from `<name>.expected.bin`.
fn expected(name: &str) -> (Vec<u32>, Vec<Vec<f32>>) {
    let bytes = std::fs::read(fixture(&format!("{name}.expected.bin"))).unwrap();
    let word = |i: usize| u32::from_le_bytes(bytes[4 * i..4 * i + 4].try_into().unwrap());
    let (n_pos, n_vocab) = (word(2) as usize, word(3) as usize);
    let tokens = (0..n_pos).map(|i| word(4 + i)).collect();
    let floats: Vec<f32> = bytes[4 * (4 + n_pos)..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    (tokens, floats.chunks(n_vocab).map(<[f32]>::to_vec).collect())
}

#[test]
fn convert_reproduces_the_fixture_script_s_tensors_and_logits() {
    let dir = scratch_dir("fixtures");
    for &(name, ty, reference) in CASES {
        let out = dir.join(format!("{name}.{ty}.gguf"));
        convert_ok(&hf(name), &out, ty);
        let what = format!("{name} --type {ty}");
        let legacy = name == "v2_grouped_legacy" && ty != "f32";
        let ours = std::fs::read(&out).unwrap();
        let n =
            assert_same_model(&ours, &std::fs::read(fixture(reference)).unwrap(), legacy, &what);

        // Same weights, same engine: the logits must be bit-identical to the reference file's.
        let (tokens, hf_logits) = expected(name);
        let got = logits(&out, &tokens);
        let want = logits(&fixture(reference), &tokens);
        let max_logit = hf_logits.iter().flatten().fold(0.0f32, |m, x| m.max(x.abs()));
        let worst_hf = got
            .iter()
            .flatten()
            .zip(hf_logits.iter().flatten())
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        let identical = got == want;
        eprintln!(
            "{what}: {n} tensors byte-identical to {reference}; logits identical: {identical}; \
             max|Δ| vs transformers / max|logit| = {:.1e}",
            worst_hf / max_logit
        );
        if legacy {
            // The reference keeps the legacy kv_b layout (another attention path), so compare
            // with transformers instead, within the golden tests' F16 limit.
            assert!(worst_hf / max_logit < 1e-2, "{what}: {worst_hf}");
        } else {
            assert!(identical, "{what}: logits differ from {reference}'s");
        }
        if ty == "f32" {
            assert!(worst_hf / max_logit < 1e-4, "{what}: {worst_hf} vs transformers");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Rewrites `model.safetensors` of `src` into `dst` as `n` shards plus
/// `model.safetensors.index.json`, keeping `drop` out and replacing tensors by `replace`.
fn reshard(
    src: &Path,
    dst: &Path,
    n: usize,
    drop: &[&str],
    replace: &[(&str, Vec<usize>, Vec<u8>)],
) {
    std::fs::create_dir_all(dst).unwrap();
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(src.join(f), dst.join(f)).unwrap();
    }
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<&str> = st.names().into_iter().filter(|n| !drop.contains(n)).collect();
    names.sort_unstable();
    let per_shard = names.len().div_ceil(n);
    let mut weight_map = serde_json::Map::new();
    for (i, chunk) in names.chunks(per_shard).enumerate() {
        let file = format!("model-{:05}-of-{n:05}.safetensors", i + 1);
        let views: Vec<(String, StView<'_>)> = chunk
            .iter()
            .map(|&name| {
                let view = match replace.iter().find(|(r, _, _)| *r == name) {
                    Some((_, shape, data)) => {
                        StView::new(safetensors::Dtype::F32, shape.clone(), data).unwrap()
                    }
                    None => st.tensor(name).unwrap(),
                };
                (name.to_owned(), view)
            })
            .collect();
        for &name in chunk {
            weight_map.insert(name.to_owned(), file.clone().into());
        }
        safetensors::serialize_to_file(views, None, &dst.join(&file)).unwrap();
    }
    let index = serde_json::json!({ "metadata": {}, "weight_map": weight_map });
    std::fs::write(dst.join("model.safetensors.index.json"), index.to_string()).unwrap();
}

#[test]
fn sharded_checkpoints_convert_to_the_same_file() {
    let dir = scratch_dir("sharded");
    // Same folder name, so even general.name matches and the files must be equal byte for byte.
    let sharded = dir.join("sharded").join("v3_qlora_grouped");
    reshard(&hf("v3_qlora_grouped"), &sharded, 2, &[], &[]);
    for ty in ["f32", "q8_0"] {
        let (a, b) = (dir.join(format!("one.{ty}.gguf")), dir.join(format!("two.{ty}.gguf")));
        convert_ok(&hf("v3_qlora_grouped"), &a, ty);
        convert_ok(&sharded, &b, ty);
        assert!(std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(), "{ty}: files differ");
    }
    // The index names a shard that is gone.
    std::fs::remove_file(sharded.join("model-00002-of-00002.safetensors")).unwrap();
    let err = convert_err(&sharded, &dir.join("x.gguf"), "f32");
    assert!(err.contains("model-00002-of-00002.safetensors: no such file"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bf16_and_f16_checkpoints_are_widened_exactly() {
    // v3_aligned re-saved with every tensor in BF16 (or F16): --type f32 must hold exactly the
    // rounded values, i.e. the F32 conversion with each value rounded the same way.
    let dir = scratch_dir("half");
    let f32_out = dir.join("f32.gguf");
    convert_ok(&hf("v3_aligned"), &f32_out, "f32");
    let reference = std::fs::read(&f32_out).unwrap();
    let reference = Gguf::parse(&reference).unwrap();
    let bytes = std::fs::read(hf("v3_aligned").join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    type Round = fn(f32) -> (f32, [u8; 2]);
    let bf16: Round = |x| (half::bf16::from_f32(x).to_f32(), half::bf16::from_f32(x).to_le_bytes());
    let f16: Round = |x| (half::f16::from_f32(x).to_f32(), half::f16::from_f32(x).to_le_bytes());
    for (tag, dtype, round) in
        [("bf16", safetensors::Dtype::BF16, bf16), ("f16", safetensors::Dtype::F16, f16)]
    {
        let model = dir.join(tag).join("v3_aligned");
        std::fs::create_dir_all(&model).unwrap();
        for f in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
            std::fs::copy(hf("v3_aligned").join(f), model.join(f)).unwrap();
        }
        let halves: Vec<(String, Vec<usize>, Vec<u8>)> = st
            .iter()
            .map(|(name, view)| {
                let data = view
                    .data()
                    .chunks_exact(4)
                    .flat_map(|c| round(f32::from_le_bytes(c.try_into().unwrap())).1);
                (name.to_owned(), view.shape().to_vec(), data.collect())
            })
            .collect();
        let views = halves
            .iter()
            .map(|(n, shape, data)| (n.clone(), StView::new(dtype, shape.clone(), data).unwrap()));
        safetensors::serialize_to_file(views, None, &model.join("model.safetensors")).unwrap();
        let out = dir.join(format!("{tag}.gguf"));
        convert_ok(&model, &out, "f32");
        let ours = std::fs::read(&out).unwrap();
        let ours = Gguf::parse(&ours).unwrap();
        for t in reference.tensors() {
            let want: Vec<u8> = t
                .bytes
                .chunks_exact(4)
                .flat_map(|c| round(f32::from_le_bytes(c.try_into().unwrap())).0.to_le_bytes())
                .collect();
            assert!(ours.tensor(t.name).unwrap().bytes == want.as_slice(), "{tag}: {}", t.name);
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// A copy of `hf/<name>` in `dst` whose `config.json` went through `edit`.
fn copy_with_config(name: &str, dst: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(hf(name)).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dst.join(path.file_name().unwrap())).unwrap();
    }
    let text = std::fs::read_to_string(dst.join("config.json")).unwrap();
    let mut config: serde_json::Value = serde_json::from_str(&text).unwrap();
    edit(&mut config);
    std::fs::write(dst.join("config.json"), config.to_string()).unwrap();
}

#[test]
fn bad_checkpoints_fail_with_one_line_and_leave_no_file() {
    let dir = scratch_dir("bad");
    let out = dir.join("out.gguf");

    // A folder without config.json.
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let err = convert_err(&empty, &out, "f16");
    assert!(err.contains("config.json: no such file"), "{err}");

    // Not a folder at all, and a folder that does not exist.
    let file = hf("v3_dense_tied").join("config.json");
    assert!(convert_err(&file, &out, "f16").contains("not a directory"));
    assert!(convert_err(&dir.join("nope"), &out, "f16").contains("no such file"));

    // A truncated shard.
    let truncated = dir.join("truncated");
    copy_with_config("v3_dense_tied", &truncated, |_| {});
    let shard = truncated.join("model.safetensors");
    let bytes = std::fs::read(&shard).unwrap();
    std::fs::write(&shard, &bytes[..bytes.len() / 2]).unwrap();
    let err = convert_err(&truncated, &out, "f16");
    assert!(err.contains("model.safetensors: not a valid safetensors file"), "{err}");

    // Config and weights disagree: a wrong shape, then a tensor that is not there.
    let shape = dir.join("shape");
    copy_with_config("v3_dense_tied", &shape, |c| c["kv_lora_rank"] = 16.into());
    let err = convert_err(&shape, &out, "f16");
    assert!(
        err.contains(
            "tensor model.layers.0.self_attn.kv_a_proj_with_mqa.weight has shape [18, 30]"
        ) && err.contains("implies [20, 30]"),
        "{err}"
    );
    let untied = dir.join("untied");
    copy_with_config("v3_dense_tied", &untied, |c| c["tie_word_embeddings"] = false.into());
    let err = convert_err(&untied, &out, "f16");
    assert!(err.contains("tensor lm_head.weight is missing"), "{err}");
    let missing = dir.join("missing");
    reshard(
        &hf("v3_qlora_grouped"),
        &missing,
        1,
        &["model.layers.2.mlp.experts.5.up_proj.weight"],
        &[],
    );
    let err = convert_err(&missing, &out, "q8_0");
    assert!(err.contains("tensor model.layers.2.mlp.experts.5.up_proj.weight is missing"), "{err}");

    // Not a DeepSeek model; a layout GGUF deepseek2 cannot express.
    let llama = dir.join("llama");
    copy_with_config("v3_dense_tied", &llama, |c| {
        c["architectures"] = serde_json::json!(["LlamaForCausalLM"])
    });
    let err = convert_err(&llama, &out, "f16");
    assert!(err.contains("architecture \"LlamaForCausalLM\" is not supported"), "{err}");
    let freq = dir.join("freq");
    copy_with_config("v2_lite_moe", &freq, |c| c["moe_layer_freq"] = 2.into());
    assert!(convert_err(&freq, &out, "f16").contains("moe_layer_freq = 2"));

    // An FP8 tensor (DeepSeek-V3's own release) in a second shard.
    let fp8 = dir.join("fp8");
    copy_with_config("v3_dense_tied", &fp8, |_| {});
    let data = [0u8; 4];
    let view = StView::new(safetensors::Dtype::F8_E4M3, vec![2, 2], &data).unwrap();
    let tensors = [("model.layers.0.mlp.up_proj.weight_fp8", view)];
    safetensors::serialize_to_file(tensors, None, &fp8.join("extra.safetensors")).unwrap();
    let err = convert_err(&fp8, &out, "q8_0");
    assert!(err.contains("has dtype F8_E4M3; only F32, F16 and BF16"), "{err}");

    // No tokenizer.
    let no_tok = dir.join("no_tok");
    copy_with_config("v3_dense_tied", &no_tok, |_| {});
    std::fs::remove_file(no_tok.join("tokenizer.json")).unwrap();
    assert!(convert_err(&no_tok, &out, "f16").contains("tokenizer.json: no such file"));

    // An output folder that does not exist.
    let nowhere = dir.join("no-such-dir").join("out.gguf");
    let err = convert_err(&hf("v3_dense_tied"), &nowhere, "f16");
    assert!(err.contains("out.gguf: No such file or directory"), "{err}");

    // An unknown --type is a usage error from the argument parser.
    let o = convert(&hf("v3_dense_tied"), &out, "q5_k");
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(!o.status.success() && err.contains("invalid value 'q5_k'"), "{err}");
    assert!(!out.exists());
    std::fs::remove_dir_all(&dir).ok();
}

/// Little-endian f32 bytes of `n` small deterministic values.
fn f32_bytes(n: usize) -> Vec<u8> {
    (0..n).flat_map(|i| (((i * 7919) % 1000) as f32 / 1000.0 - 0.5).to_le_bytes()).collect()
}

fn metadata_str<'a>(g: &Gguf<'a>, key: &str) -> Option<&'a str> {
    g.get(key).and_then(|v| match v {
        MetadataValue::String(s) => std::str::from_utf8(s).ok(),
        _ => None,
    })
}

#[test]
fn deepseek_v3_tokenizer_is_embedded_as_the_trained_demo_has_it() {
    // demo-s's tokenizer.json (DeepSeek-V3 splits, 1,024 ids, BOS/EOS as added tokens) on the
    // dense fixture with its vocabulary widened to 1,024 rows.
    let dir = scratch_dir("tokenizer");
    let model = dir.join("demo-tok");
    let (hidden, vocab) = (30usize, 1024usize);
    reshard(
        &hf("v3_dense_tied"),
        &model,
        1,
        &[],
        &[("model.embed_tokens.weight", vec![vocab, hidden], f32_bytes(vocab * hidden))],
    );
    let text = std::fs::read_to_string(model.join("config.json")).unwrap();
    let mut config: serde_json::Value = serde_json::from_str(&text).unwrap();
    config["vocab_size"] = vocab.into();
    std::fs::write(model.join("config.json"), config.to_string()).unwrap();
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(fixture(&format!("hf/demo-s-tokenizer/{f}")), model.join(f)).unwrap();
    }
    let out = dir.join("demo-tok.gguf");
    convert_ok(&model, &out, "f16");

    let ours = std::fs::read(&out).unwrap();
    let demo =
        std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/demo-s.q8_0.gguf"))
            .unwrap();
    let (a, b) = (Gguf::parse(&ours).unwrap(), Gguf::parse(&demo).unwrap());
    for key in [
        "tokenizer.ggml.model",
        "tokenizer.ggml.pre",
        "tokenizer.ggml.tokens",
        "tokenizer.ggml.token_type",
        "tokenizer.ggml.merges",
        "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.add_bos_token",
    ] {
        let same = match (a.get(key), b.get(key)) {
            (Some(x), Some(y)) => same_value(x, y),
            (x, y) => x.is_none() && y.is_none(),
        };
        assert!(same, "{key}: {} vs {}", show(a.get(key)), show(b.get(key)));
    }
    assert_eq!(metadata_str(&a, "tokenizer.ggml.pre"), Some("deepseek-v3"));
    let template = metadata_str(&a, "tokenizer.chat_template").unwrap();
    assert!(template.contains("<｜User｜>"), "{template}");

    // The host tokenizer reads the embedded vocabulary and encodes like the demo model's.
    let prompt = "The 3 cats' \"naps\" — 猫 😺 at 12:45!";
    let ids = |m: &Path| {
        let (stdout, _) = run_ok(&["logits", "-m", m.to_str().unwrap(), "-p", prompt]);
        let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        json["tokens"].clone()
    };
    let demo_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/demo-s.q8_0.gguf");
    assert_eq!(ids(&out), ids(&demo_path));
    std::fs::remove_dir_all(&dir).ok();
}

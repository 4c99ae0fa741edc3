//! The GGUFs people download (issue #20): files quantised by llama.cpp's own quantizer into
//! every K-quant / IQ4 / Q4_1 / Q5_x ftype (`tests/fixtures/kquant/`, see its PROVENANCE.md)
//! load and reproduce the float64 reference logits computed over the same file's weights
//! dequantised by gguf-py; every block format dequantises bit for bit like gguf-py.

use crate::common::{argmax, max_abs, max_abs_diff, read_fixture, run_tokens, Expected};
use tinymla_core::quant::format::BlockFormat;
use tinymla_core::{ActivationPrecision, CacheOptions, GgmlType, Gguf, Model, ModelOptions};

/// Every quantised fixture: `(file stem under kquant/, ftype)`. Each has
/// `<stem>.expected.bin`: numpy_ref's float64 logits over that file's dequantised weights.
const FILES: &[&str] = &[
    "kq_aligned.q2_k",
    "kq_aligned.q3_k_s",
    "kq_aligned.q3_k_m",
    "kq_aligned.q3_k_l",
    "kq_aligned.q4_k_s",
    "kq_aligned.q4_k_m",
    "kq_aligned.q5_k_s",
    "kq_aligned.q5_k_m",
    "kq_aligned.q6_k",
    "kq_aligned.iq4_nl",
    "kq_aligned.iq4_xs",
    "kq_aligned_legacy.q4_k_m",
    "v3_aligned.q4_1",
    "v3_aligned.q5_0",
    "v3_aligned.q5_1",
    "v3_aligned.q4_k_m",
    "v3_aligned.q6_k",
    "v3_aligned.iq4_xs",
    "v3_aligned.q2_k",
    "v3_dense_tied.q4_k_m",
];

/// Int16 activations (about 15 bits) against the float64 reference over the same weights:
/// max |Δlogit| ≤ 1e-3 × max |logit| at every position (the bound).
const INT16_REL_TOL: f32 = 1e-3;
/// Int8 activations (one int8 block per 32 values, or per 256 for the K-quants' Q8_K, as
/// llama.cpp): a looser bound. Measured worst 0.137 (kq_aligned.q4_k_m; its 1-layer random
/// model turns small activation errors into large logit moves: one Q6_K matrix alone moves
/// its logits by up to 0.4), 0.03–0.05 on v3_aligned; greedy agreement 85–100% per file.
const INT8_REL_TOL: f32 = 0.2;

/// Worst relative error over positions and the share of positions with the reference's
/// greedy token.
fn compare(stem: &str, activations: ActivationPrecision) -> (f32, f32) {
    let bytes = read_fixture(&format!("kquant/{stem}.gguf"));
    let expected = Expected::load(&format!("kquant/{stem}"));
    let options = ModelOptions { activations, ..ModelOptions::default() };
    let gguf = Gguf::parse(&bytes).unwrap_or_else(|e| panic!("{stem}: parse: {e}"));
    let model = Model::from_gguf(&gguf, options).unwrap_or_else(|e| panic!("{stem}: load: {e}"));
    let n = expected.tokens.len();
    let steps = run_tokens(&model, &expected.tokens, n, CacheOptions::default()).unwrap();
    let (mut worst, mut agree) = (0.0f32, 0usize);
    for (pos, got) in steps.iter().enumerate() {
        let want = expected.position(pos);
        worst = worst.max(max_abs_diff(got, want) / max_abs(want));
        agree += usize::from(argmax(got) == argmax(want));
    }
    (worst, agree as f32 / n as f32)
}

#[test]
fn every_k_quant_ftype_matches_its_float64_reference_at_int16() {
    for stem in FILES {
        let (worst, agree) = compare(stem, ActivationPrecision::Int16);
        eprintln!("kquant {stem} int16: worst {worst:.2e}, greedy agree {:.0}%", 100.0 * agree);
        assert!(worst <= INT16_REL_TOL, "{stem} int16: max|Δ|/max|logit| {worst:e}");
    }
}

#[test]
fn every_k_quant_ftype_stays_near_its_float64_reference_at_int8() {
    for stem in FILES {
        let (worst, agree) = compare(stem, ActivationPrecision::Int8);
        eprintln!("kquant {stem} int8: worst {worst:.2e}, greedy agree {:.0}%", 100.0 * agree);
        assert!(worst <= INT8_REL_TOL, "{stem} int8: max|Δ|/max|logit| {worst:e}");
    }
}

/// The fixtures really hold the types they are meant to test: every block format appears in
/// at least one file, and the aligned model's matrices are mostly K-quants.
#[test]
fn the_fixtures_cover_every_block_format() {
    let mut seen = std::collections::BTreeSet::new();
    for stem in FILES {
        let bytes = read_fixture(&format!("kquant/{stem}.gguf"));
        let gguf = Gguf::parse(&bytes).unwrap();
        for t in gguf.tensors() {
            seen.insert(t.ggml_type.name());
        }
    }
    for name in ["Q4_1", "Q5_0", "Q5_1", "IQ4_NL", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_XS"]
    {
        assert!(seen.contains(name), "no fixture tensor of type {name} (seen {seen:?})");
    }
}

/// Each block format's dequantisation equals gguf-py's bit for bit on random blocks with
/// extreme scales (0, subnormal, ±65504, −0), `tests/fixtures/kquant/blocks/`.
#[test]
fn every_block_format_dequantises_like_gguf_py() {
    for ty in [
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::IQ4_NL,
        GgmlType::Q2_K,
        GgmlType::Q3_K,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
        GgmlType::IQ4_XS,
    ] {
        let blocks = read_fixture(&format!("kquant/blocks/{}.blocks", ty.name()));
        let want: Vec<f32> = read_fixture(&format!("kquant/blocks/{}.f32", ty.name()))
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        let f = BlockFormat::of(ty).unwrap();
        assert_eq!(blocks.len() / f.block_bytes() * f.block_elems(), want.len(), "{ty}");
        let mut got = vec![f32::NAN; want.len()];
        f.dequantize(&blocks, &mut got);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g.to_bits(), w.to_bits(), "{ty} value {i}: {g} vs {w}");
        }
    }
}

/// `kq_aligned`'s `token_embd.weight` as F32, `[64][256]` (`scripts/gen_kquant_rows.py`): the
/// rows llama.cpp quantized into each `kq_aligned*.gguf`.
fn kq_aligned_token_embd() -> Vec<f32> {
    let bytes = read_fixture("kquant/kq_aligned.token_embd.f32");
    assert_eq!(bytes.len(), 64 * 256 * 4);
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
}

/// tinymla's quantizers (what `convert --type q4_k_m…` runs) reproduce llama.cpp's
/// `llama_model_quantize` block for block: the 64 embedding rows, one 256-value super-block
/// each, in every type llama.cpp stored them as across the ftypes (Q2_K, Q3_K, Q4_K, Q5_K,
/// Q6_K, IQ4_NL, IQ4_XS). Prints which types were compared.
#[test]
fn quantizers_reproduce_llama_cpp_s_k_quant_blocks() {
    use tinymla_host::convert::quantize::{encode_row, row_bytes};
    let rows = kq_aligned_token_embd();
    let mut compared: Vec<&str> = Vec::new();
    for stem in FILES.iter().filter(|s| s.starts_with("kq_aligned")) {
        let bytes = read_fixture(&format!("kquant/{stem}.gguf"));
        let gguf = Gguf::parse(&bytes).unwrap();
        let t = gguf.tensor("token_embd.weight").unwrap();
        let per_row = row_bytes(t.ggml_type, 256);
        for (r, row) in rows.chunks_exact(256).enumerate() {
            let mut ours = Vec::new();
            encode_row(t.ggml_type, row, &mut ours).unwrap();
            let theirs = &t.bytes[r * per_row..(r + 1) * per_row];
            assert!(ours == theirs, "{stem}: token_embd row {r} as {} differs", t.ggml_type.name());
        }
        if !compared.contains(&t.ggml_type.name()) {
            compared.push(t.ggml_type.name());
        }
    }
    eprintln!("byte-identical to llama.cpp, 64 super-blocks each: {}", compared.join(", "));
    for want in ["Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_NL", "IQ4_XS"] {
        assert!(compared.contains(&want), "{want} was not compared");
    }
}

/// tinymla's per-tensor type choice for the quantizer's ftypes (`TypeRules`) gives the type
/// llama.cpp chose for every tensor of every fixture it quantized.
#[test]
fn type_rules_reproduce_llama_cpp_s_choice_for_every_tensor() {
    use tinymla_host::convert::quantize::{OutType, TypeRules};
    // The fixture's ftype is the `--type` name after the last dot.
    let ftype = |stem: &str| {
        <OutType as clap::ValueEnum>::from_str(stem.rsplit('.').next().unwrap(), false).ok()
    };
    let mut files = 0;
    for stem in FILES {
        let out = ftype(stem).unwrap_or_else(|| panic!("{stem}: which ftype?"));
        let bytes = read_fixture(&format!("kquant/{stem}.gguf"));
        let gguf = Gguf::parse(&bytes).unwrap();
        let key = |k: &str| gguf.get(&format!("deepseek2.{k}")).and_then(|v| v.as_u64()).unwrap();
        let n_layer = usize::try_from(key("block_count")).unwrap();
        let n_gqa =
            usize::try_from(key("attention.head_count") / key("attention.head_count_kv")).unwrap();
        let rules = TypeRules::new(out, n_layer, n_gqa, gguf.tensors().map(|t| t.name));
        for t in gguf.tensors() {
            let n_dims = usize::try_from(t.n_dims).unwrap();
            let got = rules.tensor_type(t.name, n_dims, usize::try_from(t.dims[0]).unwrap());
            assert_eq!(got, t.ggml_type, "{stem}: {}", t.name);
        }
        files += 1;
    }
    assert_eq!(files, FILES.len());
}

//! Golden logits: every fixture model, processed token by token through the latent cache,
//! must reproduce the logits transformers computed for the same prompt at every position.
//!
//! Tolerance (issue #4): max |Δlogit| ≤ 1e-4 × max |logit| at every position, and the greedy
//! argmax identical everywhere.

use crate::common::{
    argmax, max_abs, max_abs_diff, read_fixture, run_tokens, Expected, GOLDEN_MODELS,
};
use tinymla_core::{CacheOptions, Model};

/// Relative tolerance on logits, against the largest reference logit at that position.
const REL_TOL: f32 = 1e-4;

/// Runs `name`'s prompt and returns the worst relative error over all positions.
fn check_model(name: &str) -> f32 {
    let file = read_fixture(&format!("{name}.gguf"));
    let expected = Expected::load(name);
    let model = Model::load(&file).unwrap_or_else(|e| panic!("{name}: load failed: {e}"));
    assert_eq!(model.config().vocab_size, expected.n_vocab, "{name}: vocab");
    let steps =
        run_tokens(&model, &expected.tokens, expected.tokens.len(), CacheOptions::default())
            .unwrap();

    let mut worst = 0.0f32;
    for (pos, got) in steps.iter().enumerate() {
        let want = expected.position(pos);
        let (err, scale) = (max_abs_diff(got, want), max_abs(want));
        let rel = err / scale;
        assert!(
            rel <= REL_TOL,
            "{name} pos {pos}: max |Δlogit| {err:e} vs max |logit| {scale} (rel {rel:e})"
        );
        assert_eq!(argmax(got), argmax(want), "{name} pos {pos}: greedy token differs");
        worst = worst.max(rel);
    }
    eprintln!("golden {name}: {} positions, worst max|Δ|/max|logit| = {worst:.2e}", steps.len());
    worst
}

#[test]
fn every_golden_model_matches_reference_logits() {
    for name in GOLDEN_MODELS {
        check_model(name);
    }
}

/// F16 copies of the fixtures (and `q8_0`-typed copies, whose matrices all fall back to F16
/// because no fixture row length is a multiple of 32, exactly as llama.cpp's converter does)
/// against the f32 reference logits.
const F16_WEIGHTS_REL_TOL: f32 = 1e-2;

#[test]
fn f16_weight_copies_match_reference_logits() {
    for suffix in ["f16", "q8_0"] {
        let mut worst = 0.0f32;
        for name in GOLDEN_MODELS {
            let file = read_fixture(&format!("{name}.{suffix}.gguf"));
            let expected = Expected::load(name);
            let model = Model::load(&file).unwrap_or_else(|e| panic!("{name}.{suffix}: {e}"));
            let steps = run_tokens(
                &model,
                &expected.tokens,
                expected.tokens.len(),
                CacheOptions::default(),
            )
            .unwrap();
            for (pos, got) in steps.iter().enumerate() {
                let want = expected.position(pos);
                let rel = max_abs_diff(got, want) / max_abs(want);
                assert!(rel <= F16_WEIGHTS_REL_TOL, "{name}.{suffix} pos {pos}: rel {rel:e}");
                assert_eq!(argmax(got), argmax(want), "{name}.{suffix} pos {pos}");
                worst = worst.max(rel);
            }
        }
        eprintln!("golden *.{suffix}.gguf: worst max|Δ|/max|logit| = {worst:.2e}");
    }
}

/// Files written by llama.cpp's own converter from the same Hugging Face checkpoints
/// (`tests/fixtures/llamacpp/`) load and reproduce the same reference logits.
#[test]
fn llama_cpp_converter_output_matches_reference_logits() {
    for name in ["v3_qlora_grouped", "v2_lite_moe", "v2_grouped_legacy"] {
        let file = read_fixture(&format!("llamacpp/{name}.gguf"));
        let expected = Expected::load(name);
        let model = Model::load(&file).unwrap_or_else(|e| panic!("llamacpp/{name}: {e}"));
        let steps =
            run_tokens(&model, &expected.tokens, expected.tokens.len(), CacheOptions::default())
                .unwrap();
        for (pos, got) in steps.iter().enumerate() {
            let want = expected.position(pos);
            let rel = max_abs_diff(got, want) / max_abs(want);
            assert!(rel <= REL_TOL, "llamacpp/{name} pos {pos}: rel {rel:e}");
            assert_eq!(argmax(got), argmax(want), "llamacpp/{name} pos {pos}");
        }
    }
}

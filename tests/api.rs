//! The public API's typed errors and options, on real fixture models.

use crate::common::{max_abs_diff, read_fixture, run_tokens, Expected};
use tinymla_core::config::SoftmaxGroupScore;
use tinymla_core::{
    BufferKind, CacheOptions, CacheStorage, ConfigError, Error, Gguf, LatentCache, Model,
    ModelOptions, ModelWith, Scratch,
};

fn buffers(model: &Model<'_>, capacity: usize) -> (Vec<u8>, Vec<f32>) {
    let cfg = model.config();
    (
        vec![0u8; LatentCache::bytes_needed(cfg, capacity, CacheStorage::F32).unwrap()],
        vec![0.0; cfg.scratch_elems(capacity).unwrap()],
    )
}

#[test]
fn token_out_of_range_full_cache_and_small_buffers_are_typed_errors() {
    let file = read_fixture("v3_dense_tied.gguf");
    let model = Model::load(&file).unwrap();
    let cfg = model.config();
    let (mut cache_mem, mut scratch_mem) = buffers(&model, 2);
    let mut cache = LatentCache::new(cfg, 2, CacheOptions::default(), &mut cache_mem).unwrap();
    let mut scratch = Scratch::new(cfg, 2, &mut scratch_mem).unwrap();

    assert_eq!(
        model.forward(260, &mut cache, &mut scratch).unwrap_err(),
        Error::TokenOutOfRange { token: 260, vocab_size: 260 }
    );
    assert_eq!((cache.len(), cache.position()), (0, 0), "a rejected token must not advance");
    model.forward(1, &mut cache, &mut scratch).unwrap();
    model.forward(2, &mut cache, &mut scratch).unwrap();
    assert_eq!(
        model.forward(3, &mut cache, &mut scratch).unwrap_err(),
        Error::CacheFull { capacity: 2 }
    );
    assert_eq!((cache.len(), cache.position()), (2, 2));

    let needed = LatentCache::bytes_needed(cfg, 4, CacheStorage::F32).unwrap();
    let mut short = vec![0u8; needed - 1];
    assert_eq!(
        LatentCache::new(cfg, 4, CacheOptions::default(), &mut short).unwrap_err(),
        Error::BufferTooSmall { buffer: BufferKind::Cache, needed, given: needed - 1 }
    );
    let needed = cfg.scratch_elems(4).unwrap();
    let mut short = vec![0.0; needed - 1];
    assert!(matches!(
        Scratch::new(cfg, 4, &mut short).unwrap_err(),
        Error::BufferTooSmall { buffer: BufferKind::Scratch, .. }
    ));
}

#[test]
fn scratch_is_bounded_and_serves_any_context() {
    // Attention keeps running per-head statistics per partition, and a cache is cut into at
    // most 8 partitions: the scratch stops growing at 4,096 rows, and one scratch serves any
    // cache.
    let file = read_fixture("v2_lite_moe.gguf");
    let model = Model::load(&file).unwrap();
    let cfg = model.config();
    assert_eq!(cfg.scratch_elems(4096).unwrap(), cfg.scratch_elems(1 << 20).unwrap());
    assert!(cfg.scratch_elems(1).unwrap() < cfg.scratch_elems(4096).unwrap());
    let expected = Expected::load("v2_lite_moe");
    let (mut cache_mem, _) = buffers(&model, 64);
    let mut scratch_mem = vec![0.0; cfg.scratch_elems(1).unwrap()];
    let mut cache = LatentCache::new(cfg, 64, CacheOptions::default(), &mut cache_mem).unwrap();
    let mut scratch = Scratch::new(cfg, 1, &mut scratch_mem).unwrap();
    for (pos, &t) in expected.tokens.iter().enumerate() {
        let got = model.forward(t, &mut cache, &mut scratch).unwrap();
        let want = expected.position(pos);
        assert!(max_abs_diff(got, want) <= 1e-4 * crate::common::max_abs(want), "pos {pos}");
    }
}

#[test]
fn a_cache_built_for_another_model_is_rejected() {
    let small = read_fixture("v3_dense_tied.gguf");
    let other = read_fixture("v2_lite_moe.gguf");
    let (small, other) = (Model::load(&small).unwrap(), Model::load(&other).unwrap());
    let (mut cache_mem, _) = buffers(&other, 2);
    let mut cache =
        LatentCache::new(other.config(), 2, CacheOptions::default(), &mut cache_mem).unwrap();
    let (_, mut scratch_mem) = buffers(&small, 2);
    let mut scratch = Scratch::new(small.config(), 2, &mut scratch_mem).unwrap();
    assert_eq!(small.forward(0, &mut cache, &mut scratch).unwrap_err(), Error::CacheMismatch);
}

#[test]
fn a_model_with_more_layers_than_the_bound_is_rejected() {
    let file = read_fixture("v2_lite_moe.gguf");
    assert!(ModelWith::<'_, 3>::load(&file).is_ok());
    assert!(matches!(
        ModelWith::<'_, 2>::load(&file).unwrap_err(),
        Error::Config(ConfigError::InvalidValue(_))
    ));
}

/// transformers scores V2 expert groups by their best expert; llama.cpp by the sum of the best
/// two. The fixture is built so the rule matters: the llama.cpp rule must change the result.
#[test]
fn softmax_group_scoring_rule_is_selectable_and_matters() {
    let name = "v2_grouped_legacy";
    let file = read_fixture(&format!("{name}.gguf"));
    let expected = Expected::load(name);
    let options =
        ModelOptions { softmax_group_score: SoftmaxGroupScore::Top2Sum, ..Default::default() };
    let model = Model::from_gguf(&Gguf::parse(&file).unwrap(), options).unwrap();
    let steps =
        run_tokens(&model, &expected.tokens, expected.tokens.len(), CacheOptions::default())
            .unwrap();
    let max_diff = steps
        .iter()
        .enumerate()
        .map(|(pos, got)| max_abs_diff(got, expected.position(pos)))
        .fold(0.0f32, f32::max);
    assert!(
        max_diff > 1e-2,
        "top-2-sum grouping should differ from transformers here ({max_diff})"
    );
}

//! A long context against transformers (issue #19): `v3_long` (dense V3, YaRN) over 2,048
//! tokens, where attention runs tiled and cut into partitions; every cache storage token by
//! token, batched prefill and threads against the same reference.

use crate::common::{
    max_abs, max_abs_diff, read_fixture, run_tokens, run_tokens_with, ExpectedAt, RunMemory,
};
use tinymla_core::{CacheOptions, CacheStorage, Model, Serial};
use tinymla_host::threads::Threads;

/// max |Δlogit| / max |logit| at every kept position. f32 rows: the golden bound. f16 rows and
/// int8 rows (`Q8`: int8 `c_kv`, f16 `k_pe`; `Q8Compact`: int8 both): one rounding of every
/// cached value, over 2,048 rows.
const F32_REL_TOL: f32 = 1e-4;
const F16_REL_TOL: f32 = 2e-3;
const Q8_REL_TOL: f32 = 3e-2;

fn rel(got: &[f32], want: &[f32]) -> f32 {
    max_abs_diff(got, want) / max_abs(want)
}

#[test]
fn long_context_matches_transformers_in_every_storage() {
    let expected = ExpectedAt::load("v3_long");
    let file = read_fixture("v3_long.gguf");
    let model = Model::load(&file).unwrap();
    let capacity = expected.tokens.len();
    assert_eq!(capacity, 2048);
    for (storage, tol) in [
        (CacheStorage::F32, F32_REL_TOL),
        (CacheStorage::F16, F16_REL_TOL),
        (CacheStorage::Q8, Q8_REL_TOL),
        (CacheStorage::Q8Compact, Q8_REL_TOL),
    ] {
        let opts = CacheOptions { storage, ..CacheOptions::default() };
        let steps = run_tokens(&model, &expected.tokens, capacity, opts).unwrap();
        let worst = expected
            .rows
            .iter()
            .map(|(pos, want)| {
                let r = rel(&steps[*pos], want);
                assert!(r <= tol, "{storage:?} position {pos}: rel {r:e}");
                r
            })
            .fold(0.0f32, f32::max);
        eprintln!(
            "v3_long {storage:?}: worst rel err {worst:.2e} over {} positions",
            expected.rows.len()
        );
    }
}

#[test]
fn long_prefill_batched_and_threaded_equals_token_by_token() {
    let expected = ExpectedAt::load("v3_long");
    let file = read_fixture("v3_long.gguf");
    let model = Model::load(&file).unwrap();
    let cfg = model.config();
    let tokens = &expected.tokens;
    let capacity = tokens.len();
    let opts = CacheOptions::default();
    let single = run_tokens(&model, tokens, capacity, opts).unwrap();
    let threads = Threads::new(2).unwrap();
    let threaded =
        threads.install(|| run_tokens_with(&model, tokens, capacity, opts, &threads)).unwrap();
    assert!(single == threaded, "threads changed the logits");

    let mut mem = RunMemory::new(cfg, capacity, opts.storage, 32);
    let (mut cache, mut scratch, mut batch) = mem.views(cfg, opts);
    // Token 0 alone, then 64 at a time: each batch ends on a kept position.
    let mut done = 0;
    while done < tokens.len() {
        let n = if done == 0 { 1 } else { 64.min(tokens.len() - done) };
        let logits = model
            .forward_batch(&tokens[done..done + n], &mut cache, &mut scratch, &mut batch, &Serial)
            .unwrap()
            .to_vec();
        done += n;
        assert!(logits == single[done - 1], "batched prefill differs at position {}", done - 1);
    }
    for (pos, want) in &expected.rows {
        assert!(rel(&single[*pos], want) <= F32_REL_TOL, "position {pos}");
    }
}

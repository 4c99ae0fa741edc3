//! A decode step over several sequences at once (`Model::forward_sequences`, what `tinymla
//! serve` batches its sessions with) equals each sequence run alone, bit for bit: every step's
//! logits and every byte of every cache, for every golden fixture and weight type, cache
//! storages, sequences at different positions joining and leaving, caches that slide or shift
//! while batched, and threads. Bad input fails before any cache changes.

use crate::common::{fixture_path, GOLDEN_MODELS};
use tinymla_core::{
    BatchScratch, CacheOptions, CacheStorage, Error, LatentCache, Model, OverflowPolicy, Parallel,
    Scratch, Serial,
};
use tinymla_host::synth::{SynthSpec, WeightType};
use tinymla_host::threads::Threads;

/// One sequence: its prompt, and the tokens fed after it (greedy choices of the solo run).
struct Plan {
    prompt: Vec<u32>,
    /// Decode steps in which this sequence takes part (it joins and leaves the batch).
    steps: std::ops::Range<usize>,
}

/// What a sequence produced: the logits of each decode step, and its cache bytes at the end.
#[derive(PartialEq)]
struct Trace {
    logits: Vec<Vec<u32>>,
    cache: Vec<u8>,
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn argmax(v: &[f32]) -> u32 {
    tinymla_core::sampler::argmax(v)
}

/// Each plan alone, token by token: prompt, then greedy decode for `steps.len()` steps.
fn solo(model: &Model<'_>, plan: &Plan, capacity: usize, options: CacheOptions) -> Trace {
    let cfg = model.config();
    let mut mem = vec![0u8; LatentCache::bytes_needed(cfg, capacity, options.storage).unwrap()];
    let mut scratch_mem = vec![0.0f32; cfg.scratch_elems(capacity).unwrap()];
    let mut logits = Vec::new();
    {
        let mut cache = LatentCache::new(cfg, capacity, options, &mut mem).unwrap();
        let mut scratch = Scratch::new(cfg, capacity, &mut scratch_mem).unwrap();
        let mut last = Vec::new();
        for &t in &plan.prompt {
            last = model.forward(t, &mut cache, &mut scratch).unwrap().to_vec();
        }
        for _ in plan.steps.clone() {
            let next = argmax(&last);
            last = model.forward(next, &mut cache, &mut scratch).unwrap().to_vec();
            logits.push(bits(&last));
        }
    }
    Trace { logits, cache: mem }
}

/// All plans together: each prompt prefilled in batches, then decode step `s` runs every
/// plan whose `steps` contains `s` through one `forward_sequences` call.
fn together(
    model: &Model<'_>,
    plans: &[Plan],
    capacity: usize,
    options: CacheOptions,
    par: &dyn Parallel,
) -> Vec<Trace> {
    let cfg = model.config();
    let vocab = cfg.vocab_size;
    let cache_bytes = LatentCache::bytes_needed(cfg, capacity, options.storage).unwrap();
    let mut mems: Vec<Vec<u8>> = plans.iter().map(|_| vec![0u8; cache_bytes]).collect();
    let mut scratch_mem = vec![0.0f32; cfg.scratch_elems(capacity).unwrap()];
    let sizes = BatchScratch::sizes(cfg, BatchScratch::MAX_TOKENS).unwrap();
    let (mut floats, mut blocks) = (vec![0.0f32; sizes.floats], vec![0u8; sizes.bytes]);
    let mut logits: Vec<Vec<Vec<u32>>> = plans.iter().map(|_| Vec::new()).collect();
    {
        let mut scratch = Scratch::new(cfg, capacity, &mut scratch_mem).unwrap();
        let mut batch =
            BatchScratch::new(cfg, BatchScratch::MAX_TOKENS, &mut floats, &mut blocks).unwrap();
        let mut caches: Vec<LatentCache<'_>> =
            mems.iter_mut().map(|m| LatentCache::new(cfg, capacity, options, m).unwrap()).collect();
        let mut last: Vec<Vec<f32>> = Vec::new();
        for (plan, cache) in plans.iter().zip(caches.iter_mut()) {
            let l = model.forward_batch(&plan.prompt, cache, &mut scratch, &mut batch, par);
            last.push(l.unwrap().to_vec());
        }
        let n_steps = plans.iter().map(|p| p.steps.end).max().unwrap_or(0);
        let mut out = vec![0.0f32; plans.len() * vocab];
        for step in 0..n_steps {
            let members: Vec<usize> =
                (0..plans.len()).filter(|&i| plans[i].steps.contains(&step)).collect();
            if members.is_empty() {
                continue;
            }
            let tokens: Vec<u32> = members.iter().map(|&i| argmax(&last[i])).collect();
            let mut refs: Vec<&mut LatentCache<'_>> = caches
                .iter_mut()
                .enumerate()
                .filter(|(i, _)| members.contains(i))
                .map(|(_, c)| c)
                .collect();
            model
                .forward_sequences(&tokens, &mut refs, &scratch, &mut batch, &mut out, par)
                .unwrap();
            for (k, &i) in members.iter().enumerate() {
                last[i] = out[k * vocab..(k + 1) * vocab].to_vec();
                logits[i].push(bits(&last[i]));
            }
        }
    }
    mems.into_iter().zip(logits).map(|(cache, logits)| Trace { logits, cache }).collect()
}

fn assert_traces(what: &str, model: &Model<'_>, plans: &[Plan], cap: usize, o: CacheOptions) {
    assert_traces_with(what, model, plans, cap, o, &Serial);
}

fn assert_traces_with(
    what: &str,
    model: &Model<'_>,
    plans: &[Plan],
    capacity: usize,
    options: CacheOptions,
    par: &dyn Parallel,
) {
    assert_batched_equal_solo(what, model, model, plans, capacity, options, par);
}

/// `batched` (the same weights, perhaps packed) run together equals `alone` run token by token.
fn assert_batched_equal_solo(
    what: &str,
    batched: &Model<'_>,
    alone: &Model<'_>,
    plans: &[Plan],
    capacity: usize,
    options: CacheOptions,
    par: &dyn Parallel,
) {
    let got = together(batched, plans, capacity, options, par);
    for (i, (plan, got)) in plans.iter().zip(&got).enumerate() {
        let want = solo(alone, plan, capacity, options);
        assert_eq!(want.logits.len(), got.logits.len(), "{what}: sequence {i} steps");
        for (s, (a, b)) in want.logits.iter().zip(&got.logits).enumerate() {
            assert!(a == b, "{what}: sequence {i}, decode step {s}: logits differ");
        }
        assert!(want.cache == got.cache, "{what}: sequence {i}: cache bytes differ");
    }
}

/// Five sequences with prompts of different lengths (so different positions), joining at
/// different steps and leaving early.
fn plans(vocab: u32) -> Vec<Plan> {
    let prompt =
        |len: u32, seed: u32| (0..len).map(|i| (i * 7919 + seed * 104_729) % vocab).collect();
    vec![
        Plan { prompt: prompt(3, 1), steps: 0..6 },
        Plan { prompt: prompt(1, 2), steps: 0..6 },
        Plan { prompt: prompt(7, 3), steps: 2..5 },
        Plan { prompt: prompt(5, 4), steps: 1..3 },
        Plan { prompt: prompt(2, 5), steps: 0..6 },
    ]
}

#[test]
fn sequences_decoded_together_equal_each_run_alone_on_golden_fixtures() {
    let mut files = Vec::new();
    for name in GOLDEN_MODELS {
        for suffix in ["gguf", "f16.gguf", "q8_0.gguf", "q4_0.gguf", "bf16.gguf"] {
            let file = format!("{name}.{suffix}");
            if fixture_path(&file).exists() {
                files.push(file);
            }
        }
    }
    assert!(files.len() >= 15, "fixtures missing: {files:?}");
    for file in files {
        let bytes = std::fs::read(fixture_path(&file)).unwrap();
        let model = Model::load(&bytes).unwrap();
        let plans = plans(model.config().vocab_size as u32);
        for storage in [CacheStorage::F32, CacheStorage::Q8Compact] {
            let options = CacheOptions { storage, ..CacheOptions::default() };
            assert_traces(&format!("{file} {storage:?}"), &model, &plans, 16, options);
        }
    }
}

/// Caches that fill while batched: a sliding one evicts, a shifting one shifts, inside a
/// `forward_sequences` step, exactly as a lone `forward` would.
#[test]
fn sequences_that_slide_or_shift_while_batched_equal_each_run_alone() {
    let bytes = std::fs::read(fixture_path("v3_qlora_grouped.gguf")).unwrap();
    let model = Model::load(&bytes).unwrap();
    let plans = plans(model.config().vocab_size as u32);
    for policy in
        [OverflowPolicy::Slide { sinks: 2 }, OverflowPolicy::Shift { sinks: 1, discard: 3 }]
    {
        let options = CacheOptions { policy, ..CacheOptions::default() };
        assert_traces(&format!("{policy:?}"), &model, &plans, 8, options);
    }
}

/// A synthetic model with V2-Lite attention shapes (hidden 512), one dense and one MoE layer
/// (8 experts, 3 used, 1 shared, expert width `moe_width`), in `ty`.
fn moe_model(ty: WeightType, moe_width: usize, seed: u64) -> Vec<u8> {
    let mut spec = SynthSpec::v2_lite_attention(2, ty);
    spec.hidden_size = 512;
    spec.first_k_dense_replace = 1;
    spec.n_routed_experts = 8;
    spec.num_experts_per_tok = 3;
    spec.n_shared_experts = 1;
    spec.moe_intermediate_size = moe_width;
    spec.to_gguf(seed)
}

/// A model whose products are split into spans (V2-Lite attention shapes, an MoE layer whose
/// experts see different subsets of the batch), with two threads, Q8_0 and F16.
#[test]
fn sequences_decoded_together_are_bit_identical_with_threads_and_experts() {
    let threads = Threads::new(2).unwrap();
    for ty in [WeightType::Q8_0, WeightType::F16] {
        let file = moe_model(ty, 128, 7);
        let model = Model::load(&file).unwrap();
        let plans = plans(model.config().vocab_size as u32);
        let options = CacheOptions::default();
        assert_traces_with(&format!("{ty:?}"), &model, &plans, 32, options, &threads);
        let what = format!("{ty:?} installed");
        threads.install(|| assert_traces_with(&what, &model, &plans, 32, options, &threads));
    }
}

/// Bad steps fail with a typed error before any cache changes.
#[test]
fn bad_sequence_steps_fail_before_any_cache_changes() {
    let bytes = std::fs::read(fixture_path("v2_lite_moe.gguf")).unwrap();
    let model = Model::load(&bytes).unwrap();
    let cfg = model.config();
    let vocab = cfg.vocab_size;
    let options = CacheOptions::default();
    let bytes_needed = LatentCache::bytes_needed(cfg, 2, options.storage).unwrap();
    let (mut m0, mut m1) = (vec![0u8; bytes_needed], vec![0u8; bytes_needed]);
    let mut scratch_mem = vec![0.0f32; cfg.scratch_elems(2).unwrap()];
    let sizes = BatchScratch::sizes(cfg, 2).unwrap();
    let (mut floats, mut blocks) = (vec![0.0f32; sizes.floats], vec![0u8; sizes.bytes]);
    let scratch = Scratch::new(cfg, 2, &mut scratch_mem).unwrap();
    let mut batch = BatchScratch::new(cfg, 2, &mut floats, &mut blocks).unwrap();
    let mut c0 = LatentCache::new(cfg, 2, options, &mut m0).unwrap();
    let mut c1 = LatentCache::new(cfg, 2, options, &mut m1).unwrap();
    let mut logits = vec![0.0f32; 2 * vocab];
    let v = vocab as u32;

    let mut step = |tokens: &[u32], caches: &mut [&mut LatentCache<'_>], logits: &mut [f32]| {
        model.forward_sequences(tokens, caches, &scratch, &mut batch, logits, &Serial)
    };
    let invalid = Err(Error::InvalidBatch { max: 2 });
    assert_eq!(step(&[], &mut [], &mut logits), invalid);
    assert_eq!(step(&[1, 2], &mut [&mut c0], &mut logits), invalid);
    assert_eq!(step(&[1, 2, 3], &mut [&mut c0, &mut c1], &mut logits), invalid);
    assert_eq!(
        step(&[1, v], &mut [&mut c0, &mut c1], &mut logits),
        Err(Error::TokenOutOfRange { token: v, vocab_size: v })
    );
    assert!(matches!(
        step(&[1, 2], &mut [&mut c0, &mut c1], &mut logits[..vocab]),
        Err(Error::BufferTooSmall { buffer: tinymla_core::BufferKind::Logits, .. })
    ));
    assert_eq!((c0.len(), c1.len()), (0, 0), "a refused step stored rows");

    // c1 full under OverflowPolicy::Error: the whole step is refused, c0 keeps its length.
    step(&[1], &mut [&mut c1], &mut logits).unwrap();
    step(&[2], &mut [&mut c1], &mut logits).unwrap();
    assert_eq!(
        step(&[3, 4], &mut [&mut c0, &mut c1], &mut logits),
        Err(Error::CacheFull { capacity: 2 })
    );
    assert_eq!((c0.len(), c0.position(), c1.len()), (0, 0, 2));
    step(&[3], &mut [&mut c0], &mut logits).unwrap();
    assert_eq!(c0.len(), 1);
}

/// `LatentCache::truncate` (a server's shared-prefix reuse) keeps a prefix whose continuation
/// is bit-identical to a fresh run of the same tokens, and refuses caches that have slid.
#[test]
fn a_truncated_cache_goes_on_exactly_as_a_fresh_one() {
    let bytes = std::fs::read(fixture_path("v3_qlora_grouped.gguf")).unwrap();
    let model = Model::load(&bytes).unwrap();
    let cfg = model.config();
    let options = CacheOptions { storage: CacheStorage::Q8, ..CacheOptions::default() };
    let capacity = 12;
    let run = |first: &[u32], keep: usize, then: &[u32]| {
        let mut mem = vec![0u8; LatentCache::bytes_needed(cfg, capacity, options.storage).unwrap()];
        let mut scratch_mem = vec![0.0f32; cfg.scratch_elems(capacity).unwrap()];
        let mut cache = LatentCache::new(cfg, capacity, options, &mut mem).unwrap();
        let mut scratch = Scratch::new(cfg, capacity, &mut scratch_mem).unwrap();
        for &t in first {
            model.forward(t, &mut cache, &mut scratch).unwrap();
        }
        assert!(cache.truncate(keep));
        assert_eq!((cache.len(), cache.position()), (keep, keep as u64));
        let mut last = Vec::new();
        for &t in then {
            last = bits(model.forward(t, &mut cache, &mut scratch).unwrap());
        }
        (last, cache.len())
    };
    // The same six tokens: fresh, and after a different tail was cut off.
    let fresh = run(&[], 0, &[5, 6, 7, 8, 9, 10]);
    let reused = run(&[5, 6, 7, 1, 2, 3, 4], 3, &[8, 9, 10]);
    assert_eq!(fresh, reused);
    assert!(reused.1 == 6);

    // Longer than the cache holds, or after a slide: refused, nothing changes.
    let sliding = CacheOptions { policy: OverflowPolicy::Slide { sinks: 1 }, ..options };
    let mut mem = vec![0u8; LatentCache::bytes_needed(cfg, 2, sliding.storage).unwrap()];
    let mut scratch_mem = vec![0.0f32; cfg.scratch_elems(2).unwrap()];
    let mut cache = LatentCache::new(cfg, 2, sliding, &mut mem).unwrap();
    let mut scratch = Scratch::new(cfg, 2, &mut scratch_mem).unwrap();
    model.forward(1, &mut cache, &mut scratch).unwrap();
    assert!(!cache.truncate(2));
    model.forward(2, &mut cache, &mut scratch).unwrap();
    model.forward(3, &mut cache, &mut scratch).unwrap();
    assert!(!cache.truncate(1), "a cache that slid cannot be cut");
    assert_eq!((cache.len(), cache.position()), (2, 3));
}

/// Weights packed once at load (`with_packed_weights`) change no bit of a batched step: prompts
/// in batches and sequences decoded together, against the unpacked model run token by token,
/// with one and two threads: MoE models whose Q8_0 rows go through packed groups (with a
/// trailing partial group; expert rows of one chunk and of two), and the golden Q8_0 / Q4_0
/// fixtures. Token-by-token steps on the packed model (decode over the packed rows on a table
/// without a rows kernel, over the file's rows otherwise) change no bit either.
#[test]
fn packed_weights_change_no_bit() {
    let threads = Threads::new(2).unwrap();
    let mut files = Vec::new();
    for name in GOLDEN_MODELS {
        for suffix in ["q8_0.gguf", "q4_0.gguf"] {
            let file = format!("{name}.{suffix}");
            if fixture_path(&file).exists() {
                files.push((file.clone(), std::fs::read(fixture_path(&file)).unwrap()));
            }
        }
    }
    // Expert rows of 320 values, 10 blocks: one group and a 2-block tail each.
    files.push(("synth Q8_0".to_owned(), moe_model(WeightType::Q8_0, 320, 11)));
    // Expert rows of 2,400 values, 75 blocks: a whole activation chunk of 8 groups, then one
    // group and a 3-block tail.
    files.push(("synth Q8_0 two chunks".to_owned(), moe_model(WeightType::Q8_0, 2400, 13)));
    for (what, file) in &files {
        let model = Model::load(file).unwrap();
        let bytes = model.packed_weight_bytes();
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && what.starts_with("synth") {
            assert!(bytes > 0, "{what}: the AVX2 table packs groups, yet nothing was packed");
        }
        println!("{what}: {bytes} bytes of packed weights");
        let mut mem = vec![0u8; bytes];
        let packed = model.with_packed_weights(&mut mem).unwrap();
        let plans = plans(model.config().vocab_size as u32);
        let options = CacheOptions::default();
        for par in [&Serial as &dyn Parallel, &threads] {
            assert_batched_equal_solo(what, &packed, &model, &plans, 32, options, par);
        }
        for (i, plan) in plans.iter().enumerate() {
            let (got, want) = (solo(&packed, plan, 32, options), solo(&model, plan, 32, options));
            assert!(got.logits == want.logits, "{what}: sequence {i} alone: logits differ");
            assert!(got.cache == want.cache, "{what}: sequence {i} alone: cache bytes differ");
        }
        if bytes > 0 {
            let mut short = vec![0u8; bytes - 1];
            assert!(matches!(
                model.with_packed_weights(&mut short),
                Err(Error::BufferTooSmall { buffer: tinymla_core::BufferKind::PackedWeights, .. })
            ));
        }
    }
}

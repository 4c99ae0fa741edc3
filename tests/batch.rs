//! Batched prefill (`Model::forward_batch`) equals token-by-token `forward`, bit for bit: the
//! logits after each batch and every byte of the cache, for every golden fixture and weight
//! type, every cache storage, batch sizes that split a prompt unevenly, threads, and a sliding
//! cache that overflows mid-prompt. Bad input fails before anything is stored.

use crate::common::{fixture_path, Expected, GOLDEN_MODELS};
use tinymla_core::{
    ActivationPrecision, BatchScratch, CacheOptions, CacheStorage, Error, Gguf, LatentCache, Model,
    ModelOptions, OverflowPolicy, Parallel, Scratch, Serial,
};
use tinymla_host::synth::{SynthSpec, WeightType};
use tinymla_host::threads::Threads;

/// Logits after each of `cuts` (token counts, cumulative ends) and the final cache bytes.
struct Run {
    logits: Vec<Vec<f32>>,
    cache: Vec<u8>,
    len: usize,
}

/// Token by token: the logits at each end of `ends`.
fn one_by_one(
    model: &Model<'_>,
    tokens: &[u32],
    ends: &[usize],
    capacity: usize,
    options: CacheOptions,
) -> Run {
    let cfg = model.config();
    let mut mem = vec![0u8; LatentCache::bytes_needed(cfg, capacity, options.storage).unwrap()];
    let mut scratch_mem = vec![0.0f32; cfg.scratch_elems(capacity).unwrap()];
    let mut logits = Vec::new();
    let len;
    {
        let mut cache = LatentCache::new(cfg, capacity, options, &mut mem).unwrap();
        let mut scratch = Scratch::new(cfg, capacity, &mut scratch_mem).unwrap();
        for (i, &t) in tokens.iter().enumerate() {
            let l = model.forward(t, &mut cache, &mut scratch).unwrap();
            if ends.contains(&(i + 1)) {
                logits.push(l.to_vec());
            }
        }
        len = cache.len();
    }
    Run { logits, cache: mem, len }
}

/// In batches ending at `ends`, with at most `max_tokens` per batched step.
#[allow(clippy::too_many_arguments)]
fn batched(
    model: &Model<'_>,
    tokens: &[u32],
    ends: &[usize],
    capacity: usize,
    options: CacheOptions,
    max_tokens: usize,
    par: &dyn Parallel,
) -> Run {
    let cfg = model.config();
    let mut mem = vec![0u8; LatentCache::bytes_needed(cfg, capacity, options.storage).unwrap()];
    let mut scratch_mem = vec![0.0f32; cfg.scratch_elems(capacity).unwrap()];
    let sizes = BatchScratch::sizes(cfg, max_tokens).unwrap();
    let (mut floats, mut bytes) = (vec![0.0f32; sizes.floats], vec![0u8; sizes.bytes]);
    let mut logits = Vec::new();
    let len;
    {
        let mut cache = LatentCache::new(cfg, capacity, options, &mut mem).unwrap();
        let mut scratch = Scratch::new(cfg, capacity, &mut scratch_mem).unwrap();
        let mut batch = BatchScratch::new(cfg, max_tokens, &mut floats, &mut bytes).unwrap();
        let mut start = 0;
        for &end in ends {
            let l = model
                .forward_batch(&tokens[start..end], &mut cache, &mut scratch, &mut batch, par)
                .unwrap();
            logits.push(l.to_vec());
            start = end;
        }
        len = cache.len();
    }
    Run { logits, cache: mem, len }
}

fn assert_same(what: &str, want: &Run, got: &Run) {
    assert_eq!(want.len, got.len, "{what}: cache length");
    assert_eq!(want.logits.len(), got.logits.len(), "{what}");
    for (i, (a, b)) in want.logits.iter().zip(&got.logits).enumerate() {
        let same = a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same, "{what}: logits after batch {i} differ");
    }
    assert!(want.cache == got.cache, "{what}: cache bytes differ");
}

/// A model loaded with Int16 activations (batched products then take their vectors in
/// batches that fit a block buffer sized for Int8).
fn load_int16(bytes: &[u8]) -> Model<'_> {
    let options = ModelOptions { activations: ActivationPrecision::Int16, ..Default::default() };
    Model::from_gguf(&Gguf::parse(bytes).unwrap(), options).unwrap()
}

/// Every golden fixture in every weight type it ships, every cache storage, with batches of
/// 1, 5 and the rest of the prompt, and batched steps of at most 1, 3 and 32 tokens; the
/// quantised files also with Int16 activations (f32 cache rows).
#[test]
fn batched_prefill_equals_token_by_token_on_golden_fixtures() {
    let mut files = Vec::new();
    for name in GOLDEN_MODELS {
        for suffix in ["gguf", "f16.gguf", "q8_0.gguf", "q4_0.gguf", "bf16.gguf"] {
            let file = format!("{name}.{suffix}");
            if fixture_path(&file).exists() {
                files.push((name, file));
            }
        }
    }
    assert!(files.len() >= 15, "fixtures missing: {files:?}");
    for (name, file) in files {
        let bytes = std::fs::read(fixture_path(&file)).unwrap();
        let model = Model::load(&bytes).unwrap();
        let tokens = Expected::load(name).tokens;
        let n = tokens.len();
        assert!(n >= 8, "{file}: prompt of {n} tokens");
        let ends = [1, 6, n];
        for storage in
            [CacheStorage::F32, CacheStorage::F16, CacheStorage::Q8, CacheStorage::Q8Compact]
        {
            let options = CacheOptions { storage, ..CacheOptions::default() };
            let want = one_by_one(&model, &tokens, &ends, n, options);
            for max_tokens in [1, 3, 32] {
                let got = batched(&model, &tokens, &ends, n, options, max_tokens, &Serial);
                assert_same(&format!("{file} {storage:?} batch {max_tokens}"), &want, &got);
            }
        }
        if file.contains("q8_0") || file.contains("q4_0") {
            let model = load_int16(&bytes);
            let options = CacheOptions::default();
            let want = one_by_one(&model, &tokens, &ends, n, options);
            for max_tokens in [1, 3, 32] {
                let got = batched(&model, &tokens, &ends, n, options, max_tokens, &Serial);
                assert_same(&format!("{file} int16 batch {max_tokens}"), &want, &got);
            }
        }
    }
}

/// A model big enough that every batched product is split into spans (V2-Lite attention
/// shapes, a dense and an MoE layer), in each integer and float weight type, with threads.
#[test]
fn batched_prefill_is_bit_identical_with_threads_and_split_products() {
    let tokens: Vec<u32> = (0..40u32).map(|i| (i * 977 + 13) % 4096).collect();
    let ends = [7, 40];
    let threads = Threads::new(2).unwrap();
    for ty in [WeightType::Q8_0, WeightType::F16, WeightType::F32] {
        let mut spec = SynthSpec::v2_lite_attention(2, ty);
        spec.hidden_size = 512;
        spec.first_k_dense_replace = 1;
        spec.n_routed_experts = 8;
        spec.num_experts_per_tok = 3;
        spec.n_shared_experts = 1;
        spec.moe_intermediate_size = 128;
        spec.q_lora_rank = Some(256);
        let file = spec.to_gguf(5);
        let model = Model::load(&file).unwrap();
        let options = CacheOptions::default();
        let want = one_by_one(&model, &tokens, &ends, 64, options);
        let got = batched(&model, &tokens, &ends, 64, options, 32, &threads);
        assert_same(&format!("{ty:?} two threads"), &want, &got);
        let got = threads.install(|| batched(&model, &tokens, &ends, 64, options, 16, &threads));
        assert_same(&format!("{ty:?} two threads, installed"), &want, &got);
        if ty == WeightType::Q8_0 {
            let model = load_int16(&file);
            let want = one_by_one(&model, &tokens, &ends, 64, options);
            let got = batched(&model, &tokens, &ends, 64, options, 32, &threads);
            assert_same("Q8_0 int16 two threads", &want, &got);
        }
    }
}

/// A sliding cache that fills mid-prompt: the tokens that fit run batched, the evicting ones
/// one at a time, and the result is token-by-token's.
#[test]
fn batched_prefill_over_a_sliding_cache_equals_token_by_token() {
    let bytes = std::fs::read(fixture_path("v3_qlora_grouped.gguf")).unwrap();
    let model = Model::load(&bytes).unwrap();
    let tokens = Expected::load("v3_qlora_grouped").tokens;
    let n = tokens.len();
    assert!(n > 8);
    let options =
        CacheOptions { policy: OverflowPolicy::Slide { sinks: 2 }, ..CacheOptions::default() };
    let ends = [3, n];
    let want = one_by_one(&model, &tokens, &ends, 8, options);
    for max_tokens in [2, 32] {
        let got = batched(&model, &tokens, &ends, 8, options, max_tokens, &Serial);
        assert_same(&format!("slide batch {max_tokens}"), &want, &got);
    }
}

/// Bad batches fail with the error a token-by-token run would meet first, and store nothing.
#[test]
fn bad_batches_fail_before_storing_anything() {
    let bytes = std::fs::read(fixture_path("v2_lite_moe.gguf")).unwrap();
    let model = Model::load(&bytes).unwrap();
    let cfg = model.config();
    let capacity = 4;
    let options = CacheOptions::default();
    let mut mem = vec![0u8; LatentCache::bytes_needed(cfg, capacity, options.storage).unwrap()];
    let mut scratch_mem = vec![0.0f32; cfg.scratch_elems(capacity).unwrap()];
    let sizes = BatchScratch::sizes(cfg, 4).unwrap();
    let (mut floats, mut blocks) = (vec![0.0f32; sizes.floats], vec![0u8; sizes.bytes]);
    let mut cache = LatentCache::new(cfg, capacity, options, &mut mem).unwrap();
    let mut scratch = Scratch::new(cfg, capacity, &mut scratch_mem).unwrap();
    let mut batch = BatchScratch::new(cfg, 4, &mut floats, &mut blocks).unwrap();
    let vocab = cfg.vocab_size as u32;
    let max = BatchScratch::MAX_TOKENS as u32;

    let mut run = |tokens: &[u32], cache: &mut LatentCache<'_>| {
        model.forward_batch(tokens, cache, &mut scratch, &mut batch, &Serial).map(|_| ())
    };
    assert_eq!(run(&[], &mut cache), Err(Error::InvalidBatch { max }));
    assert_eq!(
        run(&[1, 2, vocab], &mut cache),
        Err(Error::TokenOutOfRange { token: vocab, vocab_size: vocab })
    );
    assert_eq!(run(&[1, 2, 3, 4, 5], &mut cache), Err(Error::CacheFull { capacity: 4 }));
    assert_eq!((cache.len(), cache.position()), (0, 0), "a failed batch stored rows");
    run(&[1, 2, 3], &mut cache).unwrap();
    assert_eq!(run(&[4, 5], &mut cache), Err(Error::CacheFull { capacity: 4 }));
    assert_eq!((cache.len(), cache.position()), (3, 3));
    run(&[4], &mut cache).unwrap();
    assert_eq!(cache.len(), 4);

    // Buffers for no tokens or more than the maximum are refused, as are short buffers.
    assert_eq!(BatchScratch::sizes(cfg, 0).unwrap_err(), Error::InvalidBatch { max });
    assert_eq!(
        BatchScratch::sizes(cfg, BatchScratch::MAX_TOKENS + 1).unwrap_err(),
        Error::InvalidBatch { max }
    );
    let mut short = vec![0.0f32; sizes.floats - 1];
    let mut blocks = vec![0u8; sizes.bytes];
    assert!(matches!(
        BatchScratch::new(cfg, 4, &mut short, &mut blocks).unwrap_err(),
        Error::BufferTooSmall { .. }
    ));
}

/// Past the trained context: the batch is refused whole, with the first bad position.
#[test]
fn a_batch_past_the_context_is_refused_whole() {
    let bytes = std::fs::read(fixture_path("v2_lite_moe.gguf")).unwrap();
    let model = Model::load(&bytes).unwrap();
    let cfg = model.config();
    let ctx = cfg.context_length;
    let capacity = ctx + 4;
    let options = CacheOptions::default();
    let mut mem = vec![0u8; LatentCache::bytes_needed(cfg, capacity, options.storage).unwrap()];
    let mut scratch_mem = vec![0.0f32; cfg.scratch_elems(capacity).unwrap()];
    let sizes = BatchScratch::sizes(cfg, 32).unwrap();
    let (mut floats, mut blocks) = (vec![0.0f32; sizes.floats], vec![0u8; sizes.bytes]);
    let mut cache = LatentCache::new(cfg, capacity, options, &mut mem).unwrap();
    let mut scratch = Scratch::new(cfg, capacity, &mut scratch_mem).unwrap();
    let mut batch = BatchScratch::new(cfg, 32, &mut floats, &mut blocks).unwrap();
    let fill: Vec<u32> = vec![1; ctx - 2];
    for chunk in fill.chunks(32) {
        model.forward_batch(chunk, &mut cache, &mut scratch, &mut batch, &Serial).unwrap();
    }
    let err = model.forward_batch(&[1, 2, 3], &mut cache, &mut scratch, &mut batch, &Serial);
    assert_eq!(
        err.map(|_| ()),
        Err(Error::PositionBeyondContext { pos: ctx as u64, context_length: ctx as u64 })
    );
    assert_eq!(cache.position(), (ctx - 2) as u64);
}

/// `Model::prefill` (a prompt piece whose logits nobody reads) stores exactly what
/// `forward_batch` stores: a prompt fed as `prefill` + `forward_batch` gives the logits and
/// cache bytes of two `forward_batch` calls, on every golden Q8_0 fixture; its errors are
/// `forward_batch`'s, with nothing stored.
#[test]
fn prefill_stores_what_forward_batch_stores() {
    for name in GOLDEN_MODELS {
        let bytes = std::fs::read(fixture_path(&format!("{name}.q8_0.gguf"))).unwrap();
        let model = Model::load(&bytes).unwrap();
        let cfg = model.config();
        let vocab = cfg.vocab_size as u32;
        let tokens: Vec<u32> = (0..11u32).map(|i| (i * 7919 + 13) % vocab).collect();
        let options = CacheOptions::default();
        let run = |first_with_logits: bool| {
            let mut mem = vec![0u8; LatentCache::bytes_needed(cfg, 16, options.storage).unwrap()];
            let mut scratch_mem = vec![0.0f32; cfg.scratch_elems(16).unwrap()];
            let sizes = BatchScratch::sizes(cfg, 4).unwrap();
            let (mut floats, mut blocks) = (vec![0.0f32; sizes.floats], vec![0u8; sizes.bytes]);
            let mut cache = LatentCache::new(cfg, 16, options, &mut mem).unwrap();
            let mut scratch = Scratch::new(cfg, 16, &mut scratch_mem).unwrap();
            let mut batch = BatchScratch::new(cfg, 4, &mut floats, &mut blocks).unwrap();
            let (head, tail) = tokens.split_at(7);
            if first_with_logits {
                model.forward_batch(head, &mut cache, &mut scratch, &mut batch, &Serial).unwrap();
            } else {
                let bad = [1, vocab];
                let err = model.prefill(&bad, &mut cache, &mut scratch, &mut batch, &Serial);
                assert_eq!(err, Err(Error::TokenOutOfRange { token: vocab, vocab_size: vocab }));
                assert_eq!(cache.len(), 0, "{name}: a refused prefill stored rows");
                model.prefill(head, &mut cache, &mut scratch, &mut batch, &Serial).unwrap();
            }
            let logits = model
                .forward_batch(tail, &mut cache, &mut scratch, &mut batch, &Serial)
                .unwrap()
                .to_vec();
            assert_eq!(cache.len(), tokens.len());
            (logits, mem)
        };
        let (want, got) = (run(true), run(false));
        assert!(want.0 == got.0, "{name}: logits differ");
        assert!(want.1 == got.1, "{name}: cache bytes differ");
    }
}

/// Batched prefill equals token by token on llama.cpp's K-quant files (their batched products
/// quantize each token's activations to Q8_K once and walk the weight rows in chunks):
/// Q4_K_M (Q4_K and Q6_K rows, a Q5_0 fallback), Q5_K_M, Q6_K and IQ4_XS, at Int8 and Int16
/// activations, with batched steps of 32 and 5.
#[test]
fn batched_prefill_equals_token_by_token_on_k_quant_files() {
    for stem in ["q4_k_m", "q5_k_m", "q6_k", "iq4_xs"] {
        let file = format!("kquant/kq_aligned.{stem}.gguf");
        let bytes = std::fs::read(fixture_path(&file)).unwrap();
        let tokens: Vec<u32> = (0..21u32).map(|i| (i * 37 + 5) % 64).collect();
        let n = tokens.len();
        let ends = [2, 19, n];
        let options = CacheOptions::default();
        for int16 in [false, true] {
            let model = if int16 { load_int16(&bytes) } else { Model::load(&bytes).unwrap() };
            let want = one_by_one(&model, &tokens, &ends, n, options);
            for max_tokens in [32, 5] {
                let got = batched(&model, &tokens, &ends, n, options, max_tokens, &Serial);
                assert_same(&format!("{file} int16 {int16} batch {max_tokens}"), &want, &got);
            }
        }
    }
}

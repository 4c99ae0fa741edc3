//! Threaded matrix-vector products give bit-identical logits for any thread count.

use crate::common::{
    fixture_path, read_fixture, run_tokens, run_tokens_with, RunMemory, GOLDEN_MODELS,
};
use tinymla_core::{
    CacheOptions, CacheStorage, LatentCache, Model, Parallel, RowSpan, Scratch, Serial,
};
use tinymla_host::synth::{SynthSpec, WeightType};
use tinymla_host::threads::Threads;

/// Runs spans last to first on the calling thread, counting them: shows the split happens
/// and that its order does not matter.
struct Reversed {
    ways: usize,
    spans_run: std::sync::atomic::AtomicUsize,
}

impl Parallel for Reversed {
    fn ways(&self) -> usize {
        self.ways
    }
    fn run(&self, spans: &mut [RowSpan<'_>], work: &(dyn Fn(&mut RowSpan<'_>) + Sync)) {
        for span in spans.iter_mut().rev() {
            self.spans_run.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            work(span);
        }
    }
}

/// A model big enough that every matrix is split: DeepSeek-V2-Lite's attention shapes, one
/// dense layer and one MoE layer, in `ty`.
fn split_model(ty: WeightType) -> Vec<u8> {
    let mut spec = SynthSpec::v2_lite_attention(2, ty);
    spec.hidden_size = 1024;
    spec.first_k_dense_replace = 1;
    spec.n_routed_experts = 4;
    spec.num_experts_per_tok = 2;
    spec.n_shared_experts = 1;
    spec.moe_intermediate_size = 256;
    spec.q_lora_rank = Some(384);
    spec.to_gguf(11)
}

fn assert_identical(name: &str, a: &[Vec<f32>], b: &[Vec<f32>]) {
    assert_eq!(a.len(), b.len());
    for (pos, (x, y)) in a.iter().zip(b).enumerate() {
        let same = x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits());
        assert!(same, "{name}: logits differ at position {pos}");
    }
}

#[test]
fn any_thread_count_gives_bit_identical_logits() {
    let tokens = [1u32, 17, 300, 4000, 5, 5, 77];
    for ty in [WeightType::F32, WeightType::F16, WeightType::Q8_0] {
        let file = split_model(ty);
        let model = Model::load(&file).unwrap();
        let opts = CacheOptions::default();
        let serial = run_tokens(&model, &tokens, 8, opts).unwrap();
        for n in [2, 3, 4] {
            let threads = Threads::new(n).unwrap();
            let threaded = run_tokens_with(&model, &tokens, 8, opts, &threads).unwrap();
            assert_identical(&format!("{ty:?} × {n} threads"), &serial, &threaded);
            // Inside the pool: spans are stolen, or run by the worker that spawned them.
            let installed =
                threads.install(|| run_tokens_with(&model, &tokens, 8, opts, &threads)).unwrap();
            assert_identical(&format!("{ty:?} × {n} threads, installed"), &serial, &installed);
        }
        let reversed = Reversed { ways: 7, spans_run: Default::default() };
        let split = run_tokens_with(&model, &tokens, 8, opts, &reversed).unwrap();
        assert_identical(&format!("{ty:?} reversed spans"), &serial, &split);
        assert!(reversed.spans_run.into_inner() > 7 * tokens.len(), "{ty:?}: nothing was split");
    }
}

#[test]
fn golden_fixtures_are_unchanged_by_threads() {
    let threads = Threads::new(3).unwrap();
    for name in GOLDEN_MODELS {
        for suffix in ["gguf", "q8_0.gguf"] {
            let file_name = format!("{name}.{suffix}");
            assert!(fixture_path(&file_name).exists(), "{file_name} missing");
            let file = read_fixture(&file_name);
            let model = Model::load(&file).unwrap();
            let tokens: Vec<u32> = (0..12).map(|i| (i * 7 + 3) % 50).collect();
            let opts = CacheOptions::default();
            let serial = run_tokens(&model, &tokens, 16, opts).unwrap();
            let threaded = run_tokens_with(&model, &tokens, 16, opts, &threads).unwrap();
            assert_identical(&file_name, &serial, &threaded);
        }
    }
}

#[test]
fn zero_threads_is_an_error() {
    let err = Threads::new(0).unwrap_err();
    assert_eq!(err.to_string(), "--threads must be at least 1");
}

/// A long context cuts attention into partitions that run on the threads (flash-decoding):
/// logits stay bit-identical for any thread count, for a scratch too small to hold every
/// partition (they then run one after another), and for batched prefill.
#[test]
fn long_context_attention_is_bit_identical_across_threads() {
    // A golden fixture (tiny rows: float scores) and a synthetic model with DeepSeek-sized
    // rows (5 heads, latent 256 + RoPE 64: 16-row tiles, the 512-bit kernels' odd head).
    let file = read_fixture("v3_qlora_grouped.gguf");
    let mut wide = SynthSpec::v2_lite_attention(1, WeightType::Q8_0);
    wide.hidden_size = 256;
    wide.num_attention_heads = 5;
    wide.kv_lora_rank = 256;
    wide.vocab_size = 300;
    wide.intermediate_size = 64;
    let wide = wide.to_gguf(3);
    for (name, file) in [("v3_qlora_grouped", &file), ("wide synthetic", &wide)] {
        let model = Model::load(file).unwrap();
        long_context_case(name, &model);
    }
}

fn long_context_case(name: &str, model: &Model<'_>) {
    let cfg = model.config();
    let (capacity, n) = (2048, 1300);
    let tokens: Vec<u32> = (0..n as u32).map(|i| (i * 37 + 11) % 300).collect();
    for storage in [CacheStorage::F32, CacheStorage::Q8] {
        let opts = CacheOptions { storage, ..CacheOptions::default() };
        let serial = run_tokens(model, &tokens, capacity, opts).unwrap();
        for n_threads in [2, 3] {
            let threads = Threads::new(n_threads).unwrap();
            let threaded = threads
                .install(|| run_tokens_with(model, &tokens, capacity, opts, &threads))
                .unwrap();
            assert_identical(
                &format!("{name} {storage:?} × {n_threads} threads"),
                &serial,
                &threaded,
            );
        }
        let reversed = Reversed { ways: 7, spans_run: Default::default() };
        let split = run_tokens_with(model, &tokens, capacity, opts, &reversed).unwrap();
        assert_identical(&format!("{name} {storage:?} reversed spans"), &serial, &split);

        // Scratch for a 1-row cache: one partition area, partitions in turn.
        let mut mem = vec![0u8; LatentCache::bytes_needed(cfg, capacity, storage).unwrap()];
        let mut cache = LatentCache::new(cfg, capacity, opts, &mut mem).unwrap();
        let mut small = vec![0.0; cfg.scratch_elems(1).unwrap()];
        assert!(small.len() < cfg.scratch_elems(capacity).unwrap());
        let mut scratch = Scratch::new(cfg, 1, &mut small).unwrap();
        let threads = Threads::new(2).unwrap();
        for (pos, &t) in tokens.iter().enumerate() {
            let got = threads.install(|| model.forward_with(t, &mut cache, &mut scratch, &threads));
            let same =
                got.unwrap().iter().zip(&serial[pos]).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{name} {storage:?}: small scratch differs at {pos}");
        }

        // Batched prefill of the same tokens.
        let mut mem = RunMemory::new(cfg, capacity, storage, 32);
        let (mut cache, mut scratch, mut batch) = mem.views(cfg, opts);
        let last = model.forward_batch(&tokens, &mut cache, &mut scratch, &mut batch, &Serial);
        let same =
            last.unwrap().iter().zip(&serial[n - 1]).all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "{name} {storage:?}: batched prefill differs");
    }
}

//! Threaded matrix-vector products give bit-identical logits for any thread count.

use crate::common::{fixture_path, read_fixture, run_tokens, run_tokens_with, GOLDEN_MODELS};
use tinymla_core::{CacheOptions, Model, Parallel, RowSpan};
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

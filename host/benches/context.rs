//! Decode cost against context length for DeepSeek-V2-Lite's attention shapes (16 heads,
//! kv_lora_rank 512, rope 64): the absorbed path costs O(context × (512 + 64)) per head, so
//! time per token should grow slowly and linearly.
//!
//! The cache is filled with synthetic rows (`LatentCache::push_rows`) instead of a prefill, and
//! a sliding cache of capacity `context + 1` keeps the context length constant while a token
//! is decoded per iteration.

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use tinymla_core::{CacheOptions, CacheStorage, LatentCache, Model, OverflowPolicy, Scratch};
use tinymla_host::synth::{SynthSpec, WeightType};

/// Layers of the synthetic model (each with V2-Lite's attention).
const LAYERS: usize = 2;

fn context(c: &mut Criterion) {
    let file = SynthSpec::v2_lite_attention(LAYERS, WeightType::F16).to_gguf(42);
    let model = Model::load(&file).unwrap_or_else(|e| panic!("{e}"));
    let cfg = model.config();
    let width = cfg.cache_row_elems();
    let mut group = c.benchmark_group("decode_vs_context_v2lite_attention");
    group.throughput(Throughput::Elements(1));
    group.sample_size(20);
    for storage in [CacheStorage::F32, CacheStorage::F16, CacheStorage::Q8] {
        for ctx in [0usize, 512, 2048, 8192] {
            let capacity = ctx + 1;
            let options = CacheOptions {
                storage,
                policy: OverflowPolicy::Slide { sinks: 0 },
                allow_beyond_context: true,
            };
            let bytes = LatentCache::bytes_needed(cfg, capacity, storage).unwrap_or(0);
            let mut mem = vec![0u8; bytes];
            let mut cache = LatentCache::new(cfg, capacity, options, &mut mem)
                .unwrap_or_else(|e| panic!("{e}"));
            let mut state = 0x1234_5678u32;
            let mut rows = vec![0.0f32; width * LAYERS];
            for _ in 0..ctx {
                for v in rows.iter_mut() {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    *v = (state % 2000) as f32 / 1000.0 - 1.0;
                }
                cache.push_rows(&rows, cfg.context_length).unwrap_or_else(|e| panic!("{e}"));
            }
            let mut scratch_mem = vec![0.0; cfg.scratch_elems(capacity).unwrap_or(0)];
            let mut scratch =
                Scratch::new(cfg, capacity, &mut scratch_mem).unwrap_or_else(|e| panic!("{e}"));
            let id = BenchmarkId::new(format!("{storage:?}"), ctx);
            group.bench_function(id, |b| {
                b.iter(|| {
                    let logits = model
                        .forward(7, &mut cache, &mut scratch)
                        .unwrap_or_else(|e| panic!("{e}"));
                    logits[0]
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, context);

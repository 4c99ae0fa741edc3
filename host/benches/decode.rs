//! End-to-end decode: one `Model::forward` step at a growing position, per golden fixture.
//!
//! Each iteration decodes a full prompt of `STEPS` tokens from an empty cache, so the reported
//! time divided by `STEPS` is the mean decode time per token over positions 0..STEPS.

use std::path::PathBuf;

use criterion::{criterion_group, Criterion, Throughput};
use tinymla_core::{CacheOptions, CacheStorage, LatentCache, Model, Scratch};

const STEPS: usize = 20;

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(STEPS as u64));
    for name in
        ["v2_lite_moe", "v3_qlora_grouped", "v3_dense_tied", "v2_grouped_legacy", "v3_aligned"]
    {
        let file = fixture(&format!("{name}.gguf"));
        let model = Model::load(&file).unwrap_or_else(|e| panic!("{name}: {e}"));
        let cfg = model.config();
        let storage = CacheStorage::F32;
        let mut cache_mem = vec![0u8; LatentCache::bytes_needed(cfg, STEPS, storage).unwrap_or(0)];
        let mut scratch_mem = vec![0.0; cfg.scratch_elems(STEPS).unwrap_or(0)];
        let vocab = cfg.vocab_size as u32;
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut cache =
                    LatentCache::new(cfg, STEPS, CacheOptions::default(), &mut cache_mem)
                        .unwrap_or_else(|e| panic!("{e}"));
                let mut scratch =
                    Scratch::new(cfg, STEPS, &mut scratch_mem).unwrap_or_else(|e| panic!("{e}"));
                let mut token = 1 % vocab;
                for _ in 0..STEPS {
                    let logits = model
                        .forward(token, &mut cache, &mut scratch)
                        .unwrap_or_else(|e| panic!("{e}"));
                    token = (logits[0].to_bits() % vocab).max(1);
                }
                token
            })
        });
    }
    group.finish();
}

criterion_group!(benches, decode);

//! The decode roofline: the machine's read bandwidth (a streaming sum over 1 GiB), the weight
//! bytes one token reads ([`WeightTraffic`]), and decode speed at 1 and 2 threads of
//!
//! - `v2-lite-scaled`: the ~420 MB DeepSeek-V2-Lite-shaped synthetic model at Q8_0
//!   (`tinymla synth`, written to `target/` on first use), far larger than any cache;
//! - `demo-m`: the bundled 3.4 MB Q8_0 demo model, which fits the L3 (8 MiB on the 2-core
//!   EPYC VM we measure on; 32 MB on bigger parts), so the same kernels run from cache.
//!
//! Then batched prefill (`Model::forward_batch`, 32-token batches into a fresh cache) of the
//! same models: each weight row is read once per batch, so prefill is bound by the kernels'
//! compute, not by memory, and its tok/s is printed beside decode's.
//!
//! After the criterion groups it prints, per model and thread count, the achieved weight
//! stream `bytes/token × tok/s` and its ratio to the read bandwidth at the same thread count,
//! from the best (fastest) criterion sample of each. Models are decoded with a sliding
//! 64-position cache after a 32-token prompt, so attention over the context stays a small,
//! constant part of the step.
//!
//! `cargo bench -p tinymla-host --bench bench_main -- roofline`

use std::cell::RefCell;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use tinymla_core::sampler::argmax;
use tinymla_core::{
    BatchScratch, CacheOptions, CacheStorage, Gguf, LatentCache, Model, OverflowPolicy, Scratch,
};
use tinymla_host::model_file::ModelFile;
use tinymla_host::roofline::{timed_read, WeightTraffic};
use tinymla_host::synth::{SynthSpec, WeightType};
use tinymla_host::threads::Threads;

/// Bytes the bandwidth test reads: far beyond any L3.
const READ_BYTES: usize = 1 << 30;
const THREADS: [usize; 2] = [1, 2];
/// Cache positions (sliding) and prompt tokens before the timed decode steps.
const CAPACITY: usize = 64;
const PROMPT: usize = 32;

/// Best seconds per iteration seen, per (what, threads).
type Best = RefCell<Vec<(String, usize, f64)>>;

fn record(best: &Best, what: &str, threads: usize, secs: f64) {
    let mut b = best.borrow_mut();
    match b.iter_mut().find(|(w, t, _)| w == what && *t == threads) {
        Some(e) => e.2 = e.2.min(secs),
        None => b.push((what.to_string(), threads, secs)),
    }
}

fn best_of(best: &Best, what: &str, threads: usize) -> Option<f64> {
    best.borrow().iter().find(|(w, t, _)| w == what && *t == threads).map(|e| e.2)
}

fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

/// The large model's path, written with `tinymla synth`'s defaults (seed 1) if missing.
fn large_model() -> PathBuf {
    let path = repo_path("target/synth-v2-lite-scaled.q8_0.gguf");
    if !path.exists() {
        eprintln!("writing {} (once)", path.display());
        let bytes = SynthSpec::v2_lite_scaled(WeightType::Q8_0).to_gguf(1);
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    path
}

fn bandwidth(c: &mut Criterion, best: &Best) {
    let mut group = c.benchmark_group("roofline_read_1GiB");
    group.throughput(Throughput::Bytes(READ_BYTES as u64));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(8));
    // Filled (not just allocated), so every page is mapped before timing.
    let mut buf: Option<Vec<u8>> = None;
    for t in THREADS {
        group.bench_function(BenchmarkId::new("threads", t), |b| {
            let buf = buf.get_or_insert_with(|| vec![1u8; READ_BYTES]);
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (sum, secs) = timed_read(std::hint::black_box(buf), t);
                    std::hint::black_box(sum);
                    record(best, "read", t, secs);
                    total += Duration::from_secs_f64(secs);
                }
                total
            })
        });
    }
    group.finish();
}

fn decode(c: &mut Criterion, best: &Best, name: &str, path: &std::path::Path) {
    let file = ModelFile::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let model = Model::load(file.bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
    let cfg = model.config();
    let vocab = cfg.vocab_size as u32;
    let mut group = c.benchmark_group(format!("roofline_decode_{name}"));
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(8));
    for t in THREADS {
        let threads = Threads::new(t).unwrap_or_else(|e| panic!("{e}"));
        let options = CacheOptions {
            storage: CacheStorage::F32,
            policy: OverflowPolicy::Slide { sinks: 0 },
            allow_beyond_context: true,
        };
        let bytes = LatentCache::bytes_needed(cfg, CAPACITY, options.storage).unwrap_or(0);
        let mut cache_mem = vec![0u8; bytes];
        let mut scratch_mem = vec![0.0; cfg.scratch_elems(CAPACITY).unwrap_or(0)];
        let mut cache = LatentCache::new(cfg, CAPACITY, options, &mut cache_mem)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut scratch =
            Scratch::new(cfg, CAPACITY, &mut scratch_mem).unwrap_or_else(|e| panic!("{e}"));
        let mut token = 1 % vocab;
        let mut step = |token: u32| {
            threads
                .install(|| {
                    model.forward_with(token, &mut cache, &mut scratch, &threads).map(argmax)
                })
                .unwrap_or_else(|e| panic!("{e}"))
        };
        for i in 0..PROMPT as u32 {
            token = step((i * 7 + 3) % vocab);
        }
        group.bench_function(BenchmarkId::new("threads", t), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    token = step(token);
                }
                let total = start.elapsed();
                record(best, name, t, total.as_secs_f64() / iters.max(1) as f64);
                total
            })
        });
    }
    group.finish();
}

/// Prefill of [`PROMPT`] tokens as one batch into a cleared cache, per iteration.
fn prefill(c: &mut Criterion, best: &Best, name: &str, path: &std::path::Path) {
    let file = ModelFile::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let model = Model::load(file.bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
    let cfg = model.config();
    let vocab = cfg.vocab_size as u32;
    let prompt: Vec<u32> = (0..PROMPT as u32).map(|i| (i * 7 + 3) % vocab).collect();
    let mut group = c.benchmark_group(format!("roofline_prefill_{name}"));
    group.throughput(Throughput::Elements(PROMPT as u64));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(8));
    for t in THREADS {
        let threads = Threads::new(t).unwrap_or_else(|e| panic!("{e}"));
        let options = CacheOptions::default();
        let bytes = LatentCache::bytes_needed(cfg, CAPACITY, options.storage).unwrap_or(0);
        let mut cache_mem = vec![0u8; bytes];
        let mut scratch_mem = vec![0.0; cfg.scratch_elems(CAPACITY).unwrap_or(0)];
        let sizes = BatchScratch::sizes(cfg, PROMPT).unwrap_or_else(|e| panic!("{e}"));
        let (mut floats, mut blocks) = (vec![0.0; sizes.floats], vec![0u8; sizes.bytes]);
        let mut cache = LatentCache::new(cfg, CAPACITY, options, &mut cache_mem)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut scratch =
            Scratch::new(cfg, CAPACITY, &mut scratch_mem).unwrap_or_else(|e| panic!("{e}"));
        let mut batch = BatchScratch::new(cfg, PROMPT, &mut floats, &mut blocks)
            .unwrap_or_else(|e| panic!("{e}"));
        let what = format!("{name} prefill");
        group.bench_function(BenchmarkId::new("threads", t), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    cache.clear();
                    threads
                        .install(|| {
                            model
                                .forward_batch(
                                    &prompt,
                                    &mut cache,
                                    &mut scratch,
                                    &mut batch,
                                    &threads,
                                )
                                .map(argmax)
                        })
                        .unwrap_or_else(|e| panic!("{e}"));
                }
                let total = start.elapsed();
                record(best, &what, t, total.as_secs_f64() / iters.max(1) as f64 / PROMPT as f64);
                total
            })
        });
    }
    group.finish();
}

fn roofline(c: &mut Criterion) {
    let best: Best = RefCell::new(Vec::new());
    bandwidth(c, &best);
    let models =
        [("v2-lite-scaled", large_model()), ("demo-m", repo_path("models/demo-m.q8_0.gguf"))];
    for (name, path) in &models {
        decode(c, &best, name, path);
        prefill(c, &best, name, path);
    }

    println!("\nroofline (best samples; read bandwidth = {READ_BYTES} bytes / best time):");
    for t in THREADS {
        if let Some(secs) = best_of(&best, "read", t) {
            println!("  read bandwidth, {t} thread(s): {:.2} GB/s", READ_BYTES as f64 / secs / 1e9);
        }
    }
    println!(
        "  {:<16} {:>7} {:>14} {:>10} {:>12} {:>9} {:>16}",
        "model", "threads", "bytes/token", "tok/s", "weight GB/s", "roofline", "prefill tok/s"
    );
    for (name, path) in &models {
        let file = ModelFile::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let gguf = Gguf::parse(file.bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let Some(traffic) = WeightTraffic::of(&gguf) else { continue };
        let per_token = traffic.per_token() as f64;
        for t in THREADS {
            let (Some(step), Some(read)) = (best_of(&best, name, t), best_of(&best, "read", t))
            else {
                continue;
            };
            let stream = per_token / step;
            let bw = READ_BYTES as f64 / read;
            let prefill = best_of(&best, &format!("{name} prefill"), t).map_or(0.0, |s| 1.0 / s);
            println!(
                "  {:<16} {:>7} {:>14} {:>10.2} {:>12.2} {:>8.1}% {:>16.2}",
                name,
                t,
                traffic.per_token(),
                1.0 / step,
                stream / 1e9,
                100.0 * stream / bw,
                prefill
            );
        }
    }
}

criterion_group!(benches, roofline);

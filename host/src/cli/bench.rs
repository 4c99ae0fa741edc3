//! `tinymla bench`: prefill and decode speed at a few prompt lengths, one line each.

use std::io::Write;
use std::time::Instant;

use tinymla_core::{sampler::argmax, BatchScratch, CacheStorage, LatentCache, Scratch};

use crate::session::{Buffers, Loaded, SessionError};
use crate::threads::Threads;

/// What every row of a bench run shares.
#[derive(Debug, Clone, Copy)]
pub struct BenchOptions {
    /// Greedy decode steps after each prompt.
    pub n_gen: usize,
    /// Latent-cache storage.
    pub storage: CacheStorage,
    /// Prompt tokens per prefill step (1: token by token through `forward_with`; more:
    /// `forward_batch` on chunks of this many tokens).
    pub batch: usize,
    /// Sequences decoded together (1: `forward_with`; more: each its own cache and prompt,
    /// decoded by `forward_sequences`, as `tinymla serve` decodes its slots).
    pub sequences: usize,
    /// Pack the batched products' weights once before measuring, as `tinymla serve` does.
    pub pack_weights: bool,
}

/// One measured row.
#[derive(Debug, Clone, Copy)]
pub struct BenchRow {
    /// Prompt tokens prefilled.
    pub prompt: usize,
    /// Prompt tokens per prefill step.
    pub batch: usize,
    /// Threads per matrix-vector product.
    pub threads: usize,
    /// Prefill tokens per second.
    pub prefill_tok_s: f64,
    /// Tokens decoded after the prompt (per sequence).
    pub generated: usize,
    /// Sequences decoded together.
    pub sequences: usize,
    /// Decode tokens per second, all sequences together.
    pub decode_tok_s: f64,
}

/// For each thread count and prompt length: measures prefill of the prompt (pseudo-random
/// token ids, fixed seed) in steps of `opts.batch` tokens, followed by `opts.n_gen` greedy
/// decode steps, with a cache of `prompt + n_gen` positions stored as `opts.storage`, and
/// prints a table to `out`; then the kernel table, CPU features and packed bytes to stderr.
///
/// # Errors
/// [`SessionError`] if a length does not fit the model's context or memory.
pub fn bench(
    loaded: &Loaded,
    prompts: &[usize],
    thread_counts: &[usize],
    opts: BenchOptions,
    out: &mut impl Write,
) -> Result<Vec<BenchRow>, SessionError> {
    let max = tinymla_core::BatchScratch::MAX_TOKENS;
    if !(1..=max).contains(&opts.batch) {
        return Err(SessionError::BadBatch { batch: opts.batch, max });
    }
    if !(1..=max).contains(&opts.sequences) {
        return Err(SessionError::BadSequences { sequences: opts.sequences, max });
    }
    let unpacked = loaded.model()?;
    let mut packed = vec![0u8; if opts.pack_weights { unpacked.packed_weight_bytes() } else { 0 }];
    let packed_mib = packed.len() as f64 / (1024.0 * 1024.0);
    let model = if packed.is_empty() {
        unpacked
    } else {
        unpacked.with_packed_weights(&mut packed).map_err(SessionError::Step)?
    };
    let vocab = u32::try_from(model.config().vocab_size).unwrap_or(u32::MAX);
    let _ = writeln!(
        out,
        "{:>8} {:>6} {:>8} {:>5} {:>7} {:>14} {:>14}",
        "prompt", "batch", "decode", "seqs", "threads", "prefill tok/s", "decode tok/s"
    );
    let mut rows = Vec::new();
    for &n_threads in thread_counts {
        let threads = Threads::new(n_threads).map_err(SessionError::Threads)?;
        for &p in prompts {
            let row = if opts.sequences > 1 {
                bench_sequences(&model, &threads, p, opts, vocab)?
            } else {
                bench_one(&model, &threads, p, opts, vocab)?
            };
            let _ = writeln!(
                out,
                "{:>8} {:>6} {:>8} {:>5} {:>7} {:>14.1} {:>14.1}",
                row.prompt,
                row.batch,
                row.generated,
                row.sequences,
                row.threads,
                row.prefill_tok_s,
                row.decode_tok_s
            );
            rows.push(row);
        }
    }
    // What ran, on what: to stderr once the table is complete, so that stdout stays
    // one table and an error stays one line.
    eprintln!(
        "kernels: {}; cpu: {}; packed weights: {:.1} MiB",
        tinymla_core::kernels::active().name(),
        cpu_features(),
        packed_mib
    );
    Ok(rows)
}

/// The CPU features the kernel tables are chosen by, as runtime detection sees them (so a
/// bench line says what the numbers ran on).
fn cpu_features() -> String {
    let mut have: Vec<&str> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! probe {
            ($($f:tt),*) => {$(
                if std::is_x86_feature_detected!($f) {
                    have.push($f);
                }
            )*};
        }
        probe!("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512vnni", "avxvnni");
    }
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("neon") {
            have.push("neon");
        }
        if std::arch::is_aarch64_feature_detected!("dotprod") {
            have.push("dotprod");
        }
    }
    if have.is_empty() {
        "no SIMD features detected".to_owned()
    } else {
        have.join(" ")
    }
}

/// One prompt length at one thread count.
fn bench_one(
    model: &tinymla_core::Model<'_>,
    threads: &Threads,
    p: usize,
    opts: BenchOptions,
    vocab: u32,
) -> Result<BenchRow, SessionError> {
    let mut buffers = Buffers::new(model, (p + opts.n_gen).max(1), opts.storage)?;
    let (mut cache, mut scratch, _, mut batch) = buffers.views(model)?;
    let prompt = pseudo_random_prompt(p, vocab, 0x2545_f491);
    let start = Instant::now();
    let mut next =
        prefill(model, threads, &prompt, opts.batch, &mut cache, &mut scratch, &mut batch)?;
    let prefill = start.elapsed().as_secs_f64();
    let start = Instant::now();
    for _ in 0..opts.n_gen {
        next = threads
            .install(|| model.forward_with(next, &mut cache, &mut scratch, threads).map(argmax))
            .map_err(SessionError::Step)?;
    }
    let decode = start.elapsed().as_secs_f64();
    Ok(BenchRow {
        prompt: p,
        batch: opts.batch,
        threads: threads.count(),
        prefill_tok_s: p as f64 / prefill.max(1e-9),
        generated: opts.n_gen,
        sequences: 1,
        decode_tok_s: opts.n_gen as f64 / decode.max(1e-9),
    })
}

/// Runs `prompt` into `cache` in steps of `batch` tokens (1: token by token through
/// `forward_with`, as decode runs), each step on a worker of the pool (see
/// `Threads::install`); the greedy next token.
fn prefill(
    model: &tinymla_core::Model<'_>,
    threads: &Threads,
    prompt: &[u32],
    batch: usize,
    cache: &mut LatentCache<'_>,
    scratch: &mut Scratch<'_>,
    batch_scratch: &mut BatchScratch<'_>,
) -> Result<u32, SessionError> {
    let mut next = 0;
    let chunks = prompt.chunks(batch.max(1));
    let last = chunks.len().saturating_sub(1);
    for (i, chunk) in chunks.enumerate() {
        threads
            .install(|| match chunk {
                [one] if batch == 1 => {
                    model.forward_with(*one, cache, scratch, threads).map(|l| next = argmax(l))
                }
                // Only the prompt's last step needs logits (as `run` and `chat` compute them).
                _ if i < last => model.prefill(chunk, cache, scratch, batch_scratch, threads),
                _ => model
                    .forward_batch(chunk, cache, scratch, batch_scratch, threads)
                    .map(|l| next = argmax(l)),
            })
            .map_err(SessionError::Step)?;
    }
    Ok(next)
}

/// `p` token ids from a xorshift generator seeded with `seed`.
fn pseudo_random_prompt(p: usize, vocab: u32, seed: u32) -> Vec<u32> {
    let mut state = seed.max(1);
    (0..p)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state % vocab
        })
        .collect()
}

/// One prompt length at one thread count with `opts.sequences` sequences: each prefilled on
/// its own (a different prompt each), then decoded together, one `forward_sequences` step
/// per token. The decode rate counts every sequence's tokens.
fn bench_sequences(
    model: &tinymla_core::Model<'_>,
    threads: &Threads,
    p: usize,
    opts: BenchOptions,
    vocab: u32,
) -> Result<BenchRow, SessionError> {
    let ctx = (p + opts.n_gen).max(1);
    let n = opts.sequences;
    let mut buffers = Buffers::new(model, ctx, opts.storage)?;
    let cache_bytes = buffers.cache.len();
    let mut mems: Vec<Vec<u8>> = (1..n).map(|_| vec![0u8; cache_bytes]).collect();
    let (first, mut scratch, _, mut batch) = buffers.views(model)?;
    let mut caches = vec![first];
    for mem in &mut mems {
        let options = *caches[0].options();
        let cache =
            LatentCache::new(model.config(), ctx, options, mem).map_err(SessionError::Step)?;
        caches.push(cache);
    }
    let width = vocab as usize;
    let mut logits = vec![0.0f32; n * width];
    let start = Instant::now();
    let mut next = vec![0u32; n];
    for ((i, cache), next) in caches.iter_mut().enumerate().zip(&mut next) {
        let prompt = pseudo_random_prompt(p, vocab, 0x2545_f491 + i as u32);
        *next = prefill(model, threads, &prompt, opts.batch, cache, &mut scratch, &mut batch)?;
    }
    let prefill = start.elapsed().as_secs_f64();
    let start = Instant::now();
    for _ in 0..opts.n_gen {
        let mut refs: Vec<&mut LatentCache<'_>> = caches.iter_mut().collect();
        threads
            .install(|| {
                model.forward_sequences(
                    &next,
                    &mut refs,
                    &scratch,
                    &mut batch,
                    &mut logits,
                    threads,
                )
            })
            .map_err(SessionError::Step)?;
        for (t, l) in next.iter_mut().zip(logits.chunks_exact(width)) {
            *t = argmax(l);
        }
    }
    let decode = start.elapsed().as_secs_f64();
    Ok(BenchRow {
        prompt: p,
        batch: opts.batch,
        threads: threads.count(),
        prefill_tok_s: (n * p) as f64 / prefill.max(1e-9),
        generated: opts.n_gen,
        sequences: n,
        decode_tok_s: (n * opts.n_gen) as f64 / decode.max(1e-9),
    })
}

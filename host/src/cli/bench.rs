//! `tinymla bench`: prefill and decode speed at a few prompt lengths, one line each.

use std::io::Write;
use std::time::Instant;

use tinymla_core::{sampler::argmax, CacheStorage};

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
    /// Tokens decoded after the prompt.
    pub generated: usize,
    /// Decode tokens per second.
    pub decode_tok_s: f64,
}

/// For each thread count and prompt length: measures prefill of the prompt (pseudo-random
/// token ids, fixed seed) in steps of `opts.batch` tokens, followed by `opts.n_gen` greedy
/// decode steps, with a cache of `prompt + n_gen` positions stored as `opts.storage`, and
/// prints a table to `out`.
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
    let model = loaded.model()?;
    let vocab = u32::try_from(model.config().vocab_size).unwrap_or(u32::MAX);
    let _ = writeln!(
        out,
        "{:>8} {:>6} {:>8} {:>7} {:>14} {:>14}",
        "prompt", "batch", "decode", "threads", "prefill tok/s", "decode tok/s"
    );
    let mut rows = Vec::new();
    for &n_threads in thread_counts {
        let threads = Threads::new(n_threads).map_err(SessionError::Threads)?;
        for &p in prompts {
            let row = bench_one(&model, &threads, p, opts, vocab)?;
            let _ = writeln!(
                out,
                "{:>8} {:>6} {:>8} {:>7} {:>14.1} {:>14.1}",
                row.prompt,
                row.batch,
                row.generated,
                row.threads,
                row.prefill_tok_s,
                row.decode_tok_s
            );
            rows.push(row);
        }
    }
    Ok(rows)
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
    let mut state = 0x2545_f491u32;
    let prompt: Vec<u32> = (0..p)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state % vocab
        })
        .collect();
    // Each step on a worker of the pool (see `Threads::install`).
    let start = Instant::now();
    let mut next = 0;
    for chunk in prompt.chunks(opts.batch.max(1)) {
        next = threads
            .install(|| {
                match chunk {
                    [one] if opts.batch == 1 => {
                        model.forward_with(*one, &mut cache, &mut scratch, threads)
                    }
                    _ => model.forward_batch(chunk, &mut cache, &mut scratch, &mut batch, threads),
                }
                .map(argmax)
            })
            .map_err(SessionError::Step)?;
    }
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
        decode_tok_s: opts.n_gen as f64 / decode.max(1e-9),
    })
}

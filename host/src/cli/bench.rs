//! `tinymla bench`: prefill and decode speed at a few prompt lengths, one line each.

use std::io::Write;
use std::time::Instant;

use tinymla_core::{sampler::argmax, CacheStorage};

use crate::session::{Buffers, Loaded, SessionError};
use crate::threads::Threads;

/// One measured row.
#[derive(Debug, Clone, Copy)]
pub struct BenchRow {
    /// Prompt tokens prefilled (token by token).
    pub prompt: usize,
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
/// token ids, fixed seed) followed by `n_gen` greedy decode steps, with a cache of
/// `prompt + n_gen` positions stored as `storage`, and prints a table to `out`.
///
/// # Errors
/// [`SessionError`] if a length does not fit the model's context or memory.
pub fn bench(
    loaded: &Loaded,
    prompts: &[usize],
    thread_counts: &[usize],
    n_gen: usize,
    storage: CacheStorage,
    out: &mut impl Write,
) -> Result<Vec<BenchRow>, SessionError> {
    let model = loaded.model()?;
    let vocab = u32::try_from(model.config().vocab_size).unwrap_or(u32::MAX);
    let _ = writeln!(
        out,
        "{:>8} {:>8} {:>7} {:>14} {:>14}",
        "prompt", "decode", "threads", "prefill tok/s", "decode tok/s"
    );
    let mut rows = Vec::new();
    for &n_threads in thread_counts {
        let threads = Threads::new(n_threads).map_err(SessionError::Threads)?;
        for &p in prompts {
            let row = bench_one(&model, &threads, p, n_gen, storage, vocab)?;
            let _ = writeln!(
                out,
                "{:>8} {:>8} {:>7} {:>14.1} {:>14.1}",
                row.prompt, row.generated, row.threads, row.prefill_tok_s, row.decode_tok_s
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
    n_gen: usize,
    storage: CacheStorage,
    vocab: u32,
) -> Result<BenchRow, SessionError> {
    let mut buffers = Buffers::new(model, (p + n_gen).max(1), storage)?;
    let (mut cache, mut scratch, _) = buffers.views(model)?;
    let mut step = |t: u32| {
        threads
            .install(|| model.forward_with(t, &mut cache, &mut scratch, threads).map(argmax))
            .map_err(SessionError::Step)
    };
    let mut state = 0x2545_f491u32;
    let start = Instant::now();
    let mut next = 0;
    for _ in 0..p {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        next = step(state % vocab)?;
    }
    let prefill = start.elapsed().as_secs_f64();
    let start = Instant::now();
    for _ in 0..n_gen {
        next = step(next)?;
    }
    let decode = start.elapsed().as_secs_f64();
    Ok(BenchRow {
        prompt: p,
        threads: threads.count(),
        prefill_tok_s: p as f64 / prefill.max(1e-9),
        generated: n_gen,
        decode_tok_s: n_gen as f64 / decode.max(1e-9),
    })
}

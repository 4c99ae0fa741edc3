//! `tinymla bench`: prefill and decode speed at a few prompt lengths, one line each.

use std::io::Write;
use std::time::Instant;

use tinymla_core::{sampler::argmax, CacheStorage};

use crate::session::{Buffers, Loaded, SessionError};

/// One measured row.
#[derive(Debug, Clone, Copy)]
pub struct BenchRow {
    /// Prompt tokens prefilled (token by token).
    pub prompt: usize,
    /// Prefill tokens per second.
    pub prefill_tok_s: f64,
    /// Tokens decoded after the prompt.
    pub generated: usize,
    /// Decode tokens per second.
    pub decode_tok_s: f64,
}

/// Measures prefill of each prompt length (pseudo-random token ids, fixed seed) followed by
/// `n_gen` greedy decode steps, with a cache of `prompt + n_gen` positions stored as
/// `storage`, and prints a table to `out`.
///
/// # Errors
/// [`SessionError`] if a length does not fit the model's context or memory.
pub fn bench(
    loaded: &Loaded,
    prompts: &[usize],
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
    for &p in prompts {
        let mut buffers = Buffers::new(&model, (p + n_gen).max(1), storage)?;
        let (mut cache, mut scratch, _) = buffers.views(&model)?;
        let mut state = 0x2545_f491u32;
        let start = Instant::now();
        let mut next = 0;
        for _ in 0..p {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let logits = model
                .forward(state % vocab, &mut cache, &mut scratch)
                .map_err(SessionError::Step)?;
            next = argmax(logits);
        }
        let prefill = start.elapsed().as_secs_f64();
        let start = Instant::now();
        for _ in 0..n_gen {
            next =
                argmax(model.forward(next, &mut cache, &mut scratch).map_err(SessionError::Step)?);
        }
        let decode = start.elapsed().as_secs_f64();
        let row = BenchRow {
            prompt: p,
            prefill_tok_s: p as f64 / prefill.max(1e-9),
            generated: n_gen,
            decode_tok_s: n_gen as f64 / decode.max(1e-9),
        };
        let _ = writeln!(
            out,
            "{:>8} {:>8} {:>7} {:>14.1} {:>14.1}",
            row.prompt, row.generated, 1, row.prefill_tok_s, row.decode_tok_s
        );
        rows.push(row);
    }
    Ok(rows)
}

//! `tinymla run`: encode a prompt, prefill it, then sample and stream text.

use std::io::Write;
use std::time::Instant;

use tinymla_core::vocab::SpecialTokens;
use tinymla_core::{CacheStorage, OverflowPolicy, Sampler, SamplerConfig};

use crate::session::{Buffers, Loaded, SessionError};
use crate::threads::Threads;

/// What `run` does.
#[derive(Debug, Clone)]
pub struct RunArgs {
    /// The prompt text.
    pub prompt: String,
    /// Tokens to generate (stops earlier at an end-of-generation token). Past the context,
    /// the cache shifts ([`RUN_SINKS`] sinks, half the rest dropped per shift) and goes on.
    pub n_tokens: usize,
    /// Sampling settings.
    pub sampler: SamplerConfig,
    /// Context length (cache capacity).
    pub ctx: Option<usize>,
    /// Cache row storage.
    pub cache: CacheStorage,
    /// Threads per matrix-vector product (the output does not depend on it).
    pub threads: usize,
}

/// Counts and timings of one run.
#[derive(Debug, Clone, Copy)]
pub struct RunStats {
    /// Prompt tokens processed.
    pub prompt_tokens: usize,
    /// Seconds spent on them.
    pub prompt_secs: f64,
    /// Tokens generated.
    pub generated: usize,
    /// Seconds spent generating.
    pub gen_secs: f64,
    /// Context shifts made to go on past the context.
    pub shifts: u64,
}

/// Attention sinks `run` keeps when it shifts the context.
pub const RUN_SINKS: u32 = 4;

/// Runs the prompt and streams generated text to `out` as it is produced.
///
/// # Errors
/// [`SessionError`] for a bad context, an empty or too long prompt, or allocation failure.
pub fn run(
    loaded: &Loaded,
    args: &RunArgs,
    out: &mut impl Write,
) -> Result<RunStats, SessionError> {
    let model = loaded.model()?;
    let tokenizer = loaded.tokenizer()?;
    let prompt = tokenizer.encode(&args.prompt, tokenizer.add_bos_default());
    if prompt.is_empty() {
        return Err(SessionError::EmptyPrompt);
    }
    let ctx = args.ctx.map_or_else(|| loaded.default_context(), Ok)?;
    let mut buffers = Buffers::new(&model, ctx, args.cache)?;
    buffers.options.policy =
        OverflowPolicy::shift_half(ctx, RUN_SINKS.min(u32::try_from(ctx / 2).unwrap_or(u32::MAX)))
            .unwrap_or(OverflowPolicy::Error);
    if prompt.len() > ctx {
        return Err(SessionError::PromptTooLong { tokens: prompt.len(), ctx });
    }
    let (mut cache, mut scratch, work, mut batch) = buffers.views(&model)?;
    let mut sampler = Sampler::new(args.sampler);
    let threads = Threads::new(args.threads).map_err(SessionError::Threads)?;

    // The prompt in batches (every weight row read once per batch), on a worker of the pool.
    let start = Instant::now();
    let mut logits = Vec::new();
    threads
        .install(|| {
            let l = model.forward_batch(&prompt, &mut cache, &mut scratch, &mut batch, &threads)?;
            logits.extend_from_slice(l);
            Ok(())
        })
        .map_err(SessionError::Step)?;
    let prompt_secs = start.elapsed().as_secs_f64();

    // Each step runs on a worker of the pool (see `Threads::install`).
    let mut step = |t: u32, logits: &mut Vec<f32>| {
        threads.install(|| {
            let l = model.forward_with(t, &mut cache, &mut scratch, &threads)?;
            logits.clear();
            logits.extend_from_slice(l);
            Ok(())
        })
    };

    let start = Instant::now();
    let mut stream = tokenizer.stream(SpecialTokens::Skip);
    // The prompt and what follows, for the repetition penalty.
    let mut history = prompt.clone();
    let mut generated = 0;
    while generated < args.n_tokens {
        let next = sampler.sample_after(&mut logits, work, &history).map_err(SessionError::Step)?;
        generated += 1;
        if tokenizer.is_end_of_generation(next) {
            break;
        }
        history.push(next);
        let text =
            stream.push(next).map_err(|e| SessionError::Tokenizer(loaded.path().to_owned(), e))?;
        let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
        if generated == args.n_tokens {
            break;
        }
        step(next, &mut logits).map_err(SessionError::Step)?;
    }
    let _ = out.write_all(stream.finish().as_bytes()).and_then(|()| out.flush());
    Ok(RunStats {
        prompt_tokens: prompt.len(),
        prompt_secs,
        generated,
        gen_secs: start.elapsed().as_secs_f64(),
        shifts: cache.shifts(),
    })
}

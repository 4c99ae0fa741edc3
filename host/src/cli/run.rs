//! `tinymla run`: encode a prompt, prefill it, then sample and stream text.

use std::io::Write;
use std::time::Instant;

use tinymla_core::vocab::SpecialTokens;
use tinymla_core::{CacheStorage, Error, Sampler, SamplerConfig};

use crate::session::{Buffers, Loaded, SessionError};
use crate::threads::Threads;

/// What `run` does.
#[derive(Debug, Clone)]
pub struct RunArgs {
    /// The prompt text.
    pub prompt: String,
    /// Tokens to generate (stops earlier at EOS or when the context is full).
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
    /// True when generation stopped because the context was full.
    pub hit_context_limit: bool,
}

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
    let trained = model.config().context_length;
    let ctx = args.ctx.unwrap_or_else(|| trained.min(4096));
    let mut buffers = Buffers::new(&model, ctx, args.cache)?;
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
    let (mut generated, mut hit_context_limit) = (0, false);
    while generated < args.n_tokens {
        let next = sampler.sample(&mut logits, work).map_err(SessionError::Step)?;
        generated += 1;
        if Some(next) == tokenizer.eos() {
            break;
        }
        let text =
            stream.push(next).map_err(|e| SessionError::Tokenizer(loaded.path().to_owned(), e))?;
        let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
        if generated == args.n_tokens {
            break;
        }
        match step(next, &mut logits) {
            Ok(()) => {}
            Err(Error::CacheFull { .. }) => {
                hit_context_limit = true;
                break;
            }
            Err(e) => return Err(SessionError::Step(e)),
        }
    }
    let _ = out.write_all(stream.finish().as_bytes()).and_then(|()| out.flush());
    Ok(RunStats {
        prompt_tokens: prompt.len(),
        prompt_secs,
        generated,
        gen_secs: start.elapsed().as_secs_f64(),
        hit_context_limit,
    })
}

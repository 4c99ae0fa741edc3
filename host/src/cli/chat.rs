//! `tinymla chat`: an interactive conversation that keeps the latent cache across turns.
//!
//! Each turn renders the whole conversation with the chat template, and feeds the model only
//! the text past what its cache already holds, so a turn costs its own tokens, not the
//! history's. If the template rewrites earlier turns (so the cache no longer holds a prefix
//! of the rendering), the conversation is fed again from the start. When the cache fills up,
//! the cache's overflow policy decides: `Shift` drops the oldest tokens after the sinks and
//! the conversation goes on forever; `Slide` evicts the oldest token (keeping the sinks) until
//! positions reach the trained context; `Error` (and `Slide` at the trained context) ends the
//! reply, says so, and starts a fresh conversation (keeping the system prompt) at the next
//! turn.
//!
//! A reply ends at an end-of-generation token (EOS, the template's end of turn), at the plain
//! format's next `User:` turn, or at the reply limit, which it says in one line.

use std::io::{BufRead, Write};
use std::time::Instant;

use tinymla_core::vocab::SpecialTokens;
use tinymla_core::SamplerConfig;
use tinymla_core::{
    BatchScratch, CacheStorage, Error, LatentCache, Model, OverflowPolicy, Sampler, Scratch,
};

use crate::chat_template::{ChatTemplate, Message, Role};
use crate::session::{Buffers, Loaded, SessionError};
use crate::threads::Threads;
use crate::tokenizer::{EncodeOptions, Tokenizer};

/// What `chat` does.
#[derive(Debug, Clone)]
pub struct ChatArgs {
    /// A system prompt, kept across resets.
    pub system: Option<String>,
    /// Most tokens per reply.
    pub n_tokens: usize,
    /// Sampling settings.
    pub sampler: SamplerConfig,
    /// Context length (cache capacity).
    pub ctx: Option<usize>,
    /// Cache row storage.
    pub cache: CacheStorage,
    /// What happens when the cache is full.
    pub policy: OverflowPolicy,
    /// Threads per matrix-vector product.
    pub threads: usize,
    /// Print a `> ` prompt before reading each line (when a person is typing).
    pub show_prompt: bool,
}

/// Totals over a chat session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChatStats {
    /// Turns answered.
    pub turns: usize,
    /// Tokens fed to the model (template and user text, and history fed again after a reset).
    pub fed: usize,
    /// Tokens generated.
    pub generated: usize,
    /// Times the conversation was started afresh because the cache was full.
    pub resets: usize,
    /// Context shifts (each dropped part of the history and went on).
    pub shifts: u64,
    /// Replies stopped by the reply limit.
    pub cut: usize,
}

/// Why a reply ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReplyEnd {
    /// The model produced an end-of-generation token.
    EndOfTurn,
    /// The model started the next user turn (plain format).
    StopText,
    /// The reply reached `n_tokens`.
    Length,
    /// The context is full (`OverflowPolicy::Error`, or `Slide` at the trained context).
    ContextFull,
}

/// True for the errors that mean "this conversation has no room left": a full cache under
/// `OverflowPolicy::Error`, or positions at the trained context under `Slide`.
fn is_context_full(e: &Error) -> bool {
    matches!(e, Error::CacheFull { .. } | Error::PositionBeyondContext { .. })
}

/// Text that ends a reply in the plain `User:`/`Assistant:` format: the model writing the
/// next user turn itself.
pub(crate) const PLAIN_STOP: &str = "\nUser:";

/// Streams reply text, holding back what may be the start of a stop string so that a reply
/// that ends with it never shows it.
#[derive(Debug, Default)]
struct StopFilter {
    stop: Option<&'static str>,
    held: String,
}

impl StopFilter {
    /// Adds `piece`; returns the text that is safe to show, and true when the stop string is
    /// complete (the text before it is returned, the rest is dropped).
    fn push(&mut self, piece: &str) -> (String, bool) {
        self.held.push_str(piece);
        let Some(stop) = self.stop else { return (std::mem::take(&mut self.held), false) };
        if let Some(at) = self.held.find(stop) {
            let shown = self.held[..at].to_owned();
            self.held.clear();
            return (shown, true);
        }
        // Keep the longest tail of the held text that could grow into the stop string.
        let len = self.held.len();
        let keep = (1..=stop.len().min(len))
            .rev()
            .find(|&n| {
                self.held.is_char_boundary(len - n) && stop.starts_with(&self.held[len - n..])
            })
            .unwrap_or(0);
        let tail = self.held.split_off(len - keep);
        (std::mem::replace(&mut self.held, tail), false)
    }

    /// The text still held back (the reply ended without the stop string).
    fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

/// The model side of a conversation: cache, scratch, and the text the cache holds.
struct Conversation<'m, 'b> {
    model: &'m Model<'m>,
    tokenizer: &'m Tokenizer,
    threads: &'m Threads,
    cache: LatentCache<'b>,
    scratch: Scratch<'b>,
    /// For feeding a turn's tokens in batches.
    batch: BatchScratch<'b>,
    /// The rendered conversation text whose tokens are in the cache (exactly, unless the
    /// slide policy evicted some: then its tail).
    cached_text: String,
    /// Logits after the last token fed.
    logits: Vec<f32>,
    /// The tokens fed, oldest first, for the repetition penalty (kept to the last
    /// [`HISTORY_KEPT`] or so).
    history: Vec<u32>,
    /// Context shifts of conversations before the current one.
    shifts_before: u64,
    add_bos: bool,
}

/// Tokens of history kept for the repetition penalty (`--repeat-last-n` beyond it sees only
/// these).
const HISTORY_KEPT: usize = 1 << 16;

impl Conversation<'_, '_> {
    fn reset(&mut self) {
        self.shifts_before += self.cache.shifts();
        self.cache.clear();
        self.cached_text.clear();
        self.logits.clear();
        self.history.clear();
    }

    /// Context shifts so far, over every conversation.
    fn shifts(&self) -> u64 {
        self.shifts_before + self.cache.shifts()
    }

    fn remember(&mut self, tokens: &[u32]) {
        self.history.extend_from_slice(tokens);
        if self.history.len() > 2 * HISTORY_KEPT {
            self.history.drain(..self.history.len() - HISTORY_KEPT);
        }
    }

    /// Feeds the tokens of `rendered` past `cached_text` (all of it, after a reset, if the
    /// cache does not hold a prefix of it). Returns the tokens fed.
    fn feed_rendered(&mut self, rendered: &str) -> Result<usize, Error> {
        let delta = match rendered.strip_prefix(self.cached_text.as_str()) {
            Some(rest) if !self.cached_text.is_empty() => rest.to_owned(),
            _ => {
                self.reset();
                rendered.to_owned()
            }
        };
        let add_bos = self.add_bos && self.cached_text.is_empty();
        let ids =
            self.tokenizer.encode_with(&delta, EncodeOptions { add_bos, parse_special: true });
        if !ids.is_empty() {
            self.feed(&ids)?;
        }
        self.remember(&ids);
        self.cached_text.push_str(&delta);
        Ok(ids.len())
    }

    /// Feeds `tokens` in batches; on error (a full cache under `OverflowPolicy::Error`)
    /// nothing is stored.
    fn feed(&mut self, tokens: &[u32]) -> Result<(), Error> {
        let (model, threads) = (self.model, self.threads);
        let (cache, scratch, batch) = (&mut self.cache, &mut self.scratch, &mut self.batch);
        let out = &mut self.logits;
        // On a worker of the pool (see `Threads::install`).
        threads.install(|| {
            let logits = model.forward_batch(tokens, cache, scratch, batch, threads)?;
            out.clear();
            out.extend_from_slice(logits);
            Ok(())
        })
    }

    fn step(&mut self, token: u32) -> Result<(), Error> {
        let (model, threads) = (self.model, self.threads);
        let (cache, scratch, out) = (&mut self.cache, &mut self.scratch, &mut self.logits);
        // On a worker of the pool (see `Threads::install`).
        threads.install(|| {
            let logits = model.forward_with(token, cache, scratch, threads)?;
            out.clear();
            out.extend_from_slice(logits);
            Ok::<(), Error>(())
        })?;
        self.remember(&[token]);
        Ok(())
    }
}

/// Runs a chat on `input` (one user message per line; `/reset` starts over, `/quit` or end
/// of input stops), streaming replies to `out` and notices and per-turn speed to `log`.
///
/// # Errors
/// [`SessionError`] for a bad model, tokenizer, template, context or thread count; a failing
/// step other than a full cache.
pub fn chat(
    loaded: &Loaded,
    args: &ChatArgs,
    input: &mut impl BufRead,
    out: &mut impl Write,
    log: &mut impl Write,
) -> Result<ChatStats, SessionError> {
    let model = loaded.model()?;
    let tokenizer = loaded.tokenizer()?;
    let template = template_of(&tokenizer)?;
    let ctx = args.ctx.map_or_else(|| loaded.default_context(), Ok)?;
    let mut buffers = Buffers::new(&model, ctx, args.cache)?;
    buffers.options.policy = args.policy;
    let threads = Threads::new(args.threads).map_err(SessionError::Threads)?;
    let (cache, scratch, work, batch) = buffers.views(&model)?;
    let mut conv = Conversation {
        model: &model,
        tokenizer: &tokenizer,
        threads: &threads,
        cache,
        scratch,
        batch,
        cached_text: String::new(),
        logits: Vec::new(),
        history: Vec::new(),
        shifts_before: 0,
        // A file's template writes BOS itself; the plain format relies on the tokenizer.
        add_bos: !template.is_from_file() && tokenizer.add_bos_default(),
    };
    let mut sampler = Sampler::new(args.sampler);
    let system: Vec<Message> =
        args.system.iter().map(|s| Message { role: Role::System, content: s.clone() }).collect();
    let mut messages = system.clone();
    let mut stats = ChatStats::default();
    let format = if template.is_from_file() {
        "the model's chat template"
    } else {
        "plain User:/Assistant: turns (the model has no chat template)"
    };
    let _ = writeln!(
        log,
        "chat: context {ctx} tokens, {format}, replies up to {} tokens; /reset starts over, \
         /quit ends",
        args.n_tokens
    );

    let mut line = String::new();
    loop {
        if args.show_prompt {
            let _ = write!(log, "> ").and_then(|()| log.flush());
        }
        line.clear();
        if input.read_line(&mut line).map_err(SessionError::Input)? == 0 {
            break;
        }
        let text = line.trim();
        match text {
            "" => continue,
            "/quit" => break,
            "/reset" => {
                messages = system.clone();
                conv.reset();
                let _ = writeln!(log, "[conversation reset]");
                continue;
            }
            _ => {}
        }
        messages.push(Message { role: Role::User, content: text.to_owned() });

        // Prefill: the new turn, or the whole conversation if the cache holds no prefix.
        let start = Instant::now();
        let rendered = template.render(&messages, true).map_err(SessionError::Template)?;
        let fed = match conv.feed_rendered(&rendered) {
            Ok(n) => n,
            Err(e) if is_context_full(&e) => {
                // Start afresh with only the system prompt and this message.
                stats.resets += 1;
                messages = system.iter().cloned().chain(messages.pop()).collect();
                let rendered = template.render(&messages, true).map_err(SessionError::Template)?;
                conv.reset();
                match conv.feed_rendered(&rendered) {
                    Ok(n) => {
                        let _ = writeln!(log, "[context full: earlier turns dropped]");
                        n
                    }
                    Err(e) if is_context_full(&e) => {
                        let _ = writeln!(log, "[this message does not fit in {ctx} tokens]");
                        messages = system.clone();
                        conv.reset();
                        continue;
                    }
                    Err(e) => return Err(SessionError::Step(e)),
                }
            }
            Err(e) => return Err(SessionError::Step(e)),
        };
        let prefill_secs = start.elapsed().as_secs_f64();
        stats.fed += fed;

        // Reply.
        let start = Instant::now();
        let shifts_before = conv.shifts();
        let mut stream = tokenizer.stream(SpecialTokens::Skip);
        let mut filter = StopFilter {
            stop: (!template.is_from_file()).then_some(PLAIN_STOP),
            ..StopFilter::default()
        };
        // `generated`: the text of every token fed back (what the cache holds); `reply`: the
        // text shown, without a stop string.
        let (mut generated, mut reply) = (String::new(), String::new());
        let mut n = 0;
        let end = loop {
            if n == args.n_tokens {
                break ReplyEnd::Length;
            }
            let next = sampler
                .sample_after(&mut conv.logits, work, &conv.history)
                .map_err(SessionError::Step)?;
            n += 1;
            if tokenizer.is_end_of_generation(next) {
                break ReplyEnd::EndOfTurn;
            }
            let piece = stream
                .push(next)
                .map_err(|e| SessionError::Tokenizer(loaded.path().to_owned(), e))?;
            generated.push_str(&piece);
            let (shown, stopped) = filter.push(&piece);
            let _ = out.write_all(shown.as_bytes()).and_then(|()| out.flush());
            reply.push_str(&shown);
            match conv.step(next) {
                Ok(()) if stopped => break ReplyEnd::StopText,
                Ok(()) => {}
                Err(e) if is_context_full(&e) => break ReplyEnd::ContextFull,
                Err(e) => return Err(SessionError::Step(e)),
            }
        };
        if end != ReplyEnd::StopText {
            let tail = stream.finish();
            generated.push_str(&tail);
            let (shown, _) = filter.push(&tail);
            let shown = shown + &filter.finish();
            let _ = out.write_all(shown.as_bytes());
            reply.push_str(&shown);
        }
        let _ = writeln!(out).and_then(|()| out.flush());
        stats.generated += n;
        stats.turns += 1;
        let gen_secs = start.elapsed().as_secs_f64();
        let shifted = conv.shifts() - shifts_before;
        let _ = writeln!(
            log,
            "[prefill {fed} tokens, {:.1} tok/s; reply {n} tokens, {:.1} tok/s; cache {}/{}{}]",
            fed as f64 / prefill_secs.max(1e-9),
            n as f64 / gen_secs.max(1e-9),
            conv.cache.len(),
            conv.cache.capacity(),
            match shifted {
                0 => String::new(),
                k => format!("; context shifted {k}x, oldest turns dropped"),
            }
        );
        if end == ReplyEnd::Length {
            stats.cut += 1;
            let _ = writeln!(log, "[reply cut at the {}-token limit; -n sets it]", args.n_tokens);
        }

        // The reply joins the history; the cache holds the text generated (the tokens fed).
        conv.cached_text.push_str(&generated);
        let content = if end == ReplyEnd::StopText { reply.trim_end().to_owned() } else { reply };
        messages.push(Message { role: Role::Assistant, content });
        if end == ReplyEnd::ContextFull {
            stats.resets += 1;
            let _ = writeln!(log, "[context full: the next turn starts a new conversation]");
            messages = system.clone();
            conv.reset();
        }
    }
    stats.shifts = conv.shifts();
    Ok(stats)
}

/// The file's chat template, or the plain built-in one.
pub(crate) fn template_of(tokenizer: &Tokenizer) -> Result<ChatTemplate, SessionError> {
    let source = tokenizer
        .chat_template()
        .map_err(|_| SessionError::Template(crate::chat_template::TemplateError::NotAString))?;
    let text = |id: Option<u32>| {
        id.and_then(|i| tokenizer.token_text(i))
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default()
    };
    ChatTemplate::new(source, &text(tokenizer.bos()), &text(tokenizer.eos()))
        .map_err(SessionError::Template)
}

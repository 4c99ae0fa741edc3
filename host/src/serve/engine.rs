//! The server's engine: one thread that owns the model, a fixed set of slots (each a latent
//! cache allocated once at start) and the bounded queue of requests waiting for one.
//!
//! Each step of its loop:
//! 1. frees the slots whose client went away (the event channel closed, or full because the
//!    client stopped reading), and moves queued requests into free slots, choosing for each the
//!    free slot whose cache already holds the longest prefix of its prompt (that prefix is not
//!    computed again);
//! 2. prefills one chunk (at most [`PREFILL_CHUNK`] tokens) of one slot's prompt, so a long
//!    prompt does not stall the others for more than a chunk;
//! 3. decodes one token of every generating slot with one
//!    [`tinymla_core::ModelWith::forward_sequences`] call: each weight row is read once for all
//!    of them, and each sequence's tokens are bit-identical to running it alone.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use tinymla_core::vocab::SpecialTokens;
use tinymla_core::{
    BatchScratch, CacheOptions, CacheStorage, LatentCache, Model, OverflowPolicy, Sampler,
    SamplerConfig, Scratch,
};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::mpsc::Sender;

use crate::session::{try_zeroed, SessionError};
use crate::threads::Threads;
use crate::tokenizer::{DecodeStream, Tokenizer};

/// Most prompt tokens one engine step prefills (one batched step's most tokens).
pub const PREFILL_CHUNK: usize = BatchScratch::MAX_TOKENS;

/// Events a request's channel buffers before its client counts as not reading (the slot is
/// then freed).
pub const EVENT_BUFFER: usize = 512;

/// One generation request, checked by the HTTP layer: the prompt fits the context with room
/// for `max_tokens`.
#[derive(Debug)]
pub struct Job {
    /// Prompt tokens (at least one).
    pub prompt: Vec<u32>,
    /// Most tokens to generate (at least one).
    pub max_tokens: usize,
    /// Sampling settings.
    pub sampler: SamplerConfig,
    /// Texts that end the reply (not included in it).
    pub stop: Vec<String>,
    /// Go on past end-of-generation tokens (their text is empty).
    pub ignore_eos: bool,
    /// Where the reply goes, piece by piece.
    pub events: Sender<Event>,
}

/// Why a reply ended, as OpenAI names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// An end-of-generation token or a stop text.
    Stop,
    /// `max_tokens` tokens, or the context is full.
    Length,
}

impl Finish {
    /// OpenAI's `finish_reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            Finish::Stop => "stop",
            Finish::Length => "length",
        }
    }
}

/// What the engine sends a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The next piece of the reply's text (whole UTF-8 characters).
    Text(String),
    /// The reply is complete.
    Done {
        /// Why it ended.
        finish: Finish,
        /// Prompt tokens.
        prompt_tokens: usize,
        /// Prompt tokens found in the slot's cache and not computed again.
        cached_tokens: usize,
        /// Tokens generated.
        completion_tokens: usize,
    },
    /// The engine failed on this request (a bug or a broken model; the message says which).
    Failed(String),
}

/// Counters the engine and the HTTP layer keep, for `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Requests answered, by outcome.
    pub requests_ok: AtomicU64,
    /// Requests refused as bad input (4xx other than 429).
    pub requests_bad: AtomicU64,
    /// Requests refused because the queue was full (429).
    pub requests_rejected: AtomicU64,
    /// Requests whose client went away before the reply was complete.
    pub requests_cancelled: AtomicU64,
    /// Prompt tokens computed.
    pub prompt_tokens: AtomicU64,
    /// Prompt tokens reused from a slot's cache.
    pub prompt_tokens_reused: AtomicU64,
    /// Tokens generated.
    pub generated_tokens: AtomicU64,
    /// Decode steps run (each over one or more sequences).
    pub decode_steps: AtomicU64,
    /// Sequences decoded, summed over decode steps (÷ steps = mean batch).
    pub decode_sequences: AtomicU64,
    /// Slots generating or prefilling now.
    pub slots_busy: AtomicU64,
}

/// The queue between the HTTP handlers and the engine thread.
#[derive(Debug)]
pub struct Queue {
    jobs: Mutex<VecDeque<Job>>,
    wake: Condvar,
    capacity: usize,
    /// Set when the engine thread has stopped (returned or panicked): nothing more is served.
    stopped: AtomicBool,
    /// Counters.
    pub metrics: Metrics,
}

/// Why [`Queue::submit`] gave a job back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `capacity` requests are already waiting.
    Full,
    /// The engine has stopped.
    Stopped,
}

impl Queue {
    /// A queue that holds at most `capacity` waiting requests.
    pub fn new(capacity: usize) -> Self {
        Queue {
            jobs: Mutex::new(VecDeque::new()),
            wake: Condvar::new(),
            capacity,
            stopped: AtomicBool::new(false),
            metrics: Metrics::default(),
        }
    }

    /// Queues `job`, or refuses it (the job is dropped, which closes its event channel).
    ///
    /// # Errors
    /// [`Refused::Full`] when `capacity` requests are already waiting; [`Refused::Stopped`]
    /// once the engine has stopped.
    pub fn submit(&self, job: Job) -> Result<(), Refused> {
        if self.is_stopped() {
            return Err(Refused::Stopped);
        }
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if jobs.len() >= self.capacity {
            return Err(Refused::Full);
        }
        jobs.push_back(job);
        drop(jobs);
        self.wake.notify_one();
        Ok(())
    }

    /// True once the engine thread has stopped; requests are then refused.
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }

    /// Requests waiting for a slot.
    pub fn len(&self) -> usize {
        self.jobs.lock().map_or(0, |j| j.len())
    }

    /// True when no request waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most requests that may wait.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn pop(&self) -> Option<Job> {
        self.jobs.lock().ok()?.pop_front()
    }

    /// Waits until a request is queued (or `timeout` passes).
    fn wait(&self, timeout: Duration) {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if jobs.is_empty() {
            let _ = self.wake.wait_timeout(jobs, timeout);
        }
    }
}

/// Engine settings.
#[derive(Debug, Clone, Copy)]
pub struct EngineConfig {
    /// Sessions decoded together (each with its own cache).
    pub slots: usize,
    /// Positions per slot.
    pub ctx: usize,
    /// Cache row storage.
    pub storage: CacheStorage,
}

/// Bytes the engine allocates at start for `config`: the slots' caches, and the scratch,
/// batch and logits buffers they share.
///
/// # Errors
/// [`SessionError::OutOfMemory`] when a size overflows.
pub fn memory_bytes(model: &Model<'_>, config: &EngineConfig) -> Result<MemoryPlan, SessionError> {
    let cfg = model.config();
    let oom = SessionError::OutOfMemory { ctx: config.ctx, bytes: usize::MAX };
    let cache = LatentCache::bytes_needed(cfg, config.ctx, config.storage).map_err(|_| oom)?;
    let oom = || SessionError::OutOfMemory { ctx: config.ctx, bytes: usize::MAX };
    let scratch = cfg.scratch_elems(config.ctx).map_err(|_| oom())?.saturating_mul(4);
    let sizes = BatchScratch::sizes(cfg, BatchScratch::MAX_TOKENS).map_err(|_| oom())?;
    let shared = scratch
        .saturating_add(sizes.floats.saturating_mul(4))
        .saturating_add(sizes.bytes)
        .saturating_add(config.slots.saturating_mul(cfg.vocab_size).saturating_mul(4))
        .saturating_add(cfg.vocab_size.saturating_mul(4));
    Ok(MemoryPlan { cache_per_slot: cache, shared, packed_weights: 0 })
}

/// What [`memory_bytes`] counts.
#[derive(Debug, Clone, Copy)]
pub struct MemoryPlan {
    /// One slot's latent cache.
    pub cache_per_slot: usize,
    /// Scratch, batch buffers and logits, shared by the slots.
    pub shared: usize,
    /// Weights packed at start for the batched products (0: not packed).
    pub packed_weights: usize,
}

/// Where a request stands.
#[derive(Clone, Copy)]
enum Phase {
    /// Prompt tokens `done..` still to be run.
    Prefill { done: usize },
    /// `next` is sampled and sent; it is the next token to run.
    Decode { next: u32 },
}

/// A request in a slot.
struct Active<'t> {
    phase: Phase,
    job: Job,
    sampler: Sampler,
    stream: DecodeStream<'t>,
    /// Prompt then generated tokens (the repetition penalty's window).
    history: Vec<u32>,
    generated: usize,
    cached: usize,
    /// The reply so far, and how many of its bytes were sent.
    text: String,
    sent: usize,
}

/// One slot: its cache's tokens (for prefix reuse), and its request (`None`: free; the cache
/// keeps its tokens for the next prompt that shares a prefix).
struct Slot<'t> {
    tokens: Vec<u32>,
    active: Option<Active<'t>>,
}

impl Slot<'_> {
    fn phase(&self) -> Option<Phase> {
        self.active.as_ref().map(|a| a.phase)
    }
}

/// Runs the engine until `stop` returns true (checked when idle): allocates everything for
/// `config`, calls `ready`, then serves `queue`.
///
/// # Errors
/// [`SessionError`] if the buffers cannot be allocated or the model's buffers refuse them.
pub fn run(
    model: &Model<'_>,
    tokenizer: &Tokenizer,
    config: EngineConfig,
    threads: &Threads,
    queue: &Queue,
    stop: &(dyn Fn() -> bool + Sync),
    ready: impl FnOnce(),
) -> Result<(), SessionError> {
    let cfg = model.config();
    let plan = memory_bytes(model, &config)?;
    let oom = |bytes| SessionError::OutOfMemory { ctx: config.ctx, bytes };
    let mut mems = Vec::with_capacity(config.slots);
    for _ in 0..config.slots {
        mems.push(try_zeroed::<u8>(plan.cache_per_slot).ok_or_else(|| oom(plan.cache_per_slot))?);
    }
    let scratch_elems = cfg.scratch_elems(config.ctx).map_err(SessionError::Step)?;
    let mut scratch_mem = try_zeroed::<f32>(scratch_elems).ok_or_else(|| oom(scratch_elems * 4))?;
    let sizes = BatchScratch::sizes(cfg, BatchScratch::MAX_TOKENS).map_err(SessionError::Step)?;
    let mut floats = try_zeroed::<f32>(sizes.floats).ok_or_else(|| oom(sizes.floats * 4))?;
    let mut blocks = try_zeroed::<u8>(sizes.bytes).ok_or_else(|| oom(sizes.bytes))?;
    let vocab = cfg.vocab_size;
    let mut logits =
        try_zeroed::<f32>(config.slots * vocab).ok_or_else(|| oom(config.slots * vocab * 4))?;
    let mut work = try_zeroed::<u32>(vocab).ok_or_else(|| oom(vocab * 4))?;

    let options = CacheOptions {
        storage: config.storage,
        policy: OverflowPolicy::Error,
        allow_beyond_context: false,
    };
    let mut caches = Vec::with_capacity(config.slots);
    for mem in &mut mems {
        caches.push(LatentCache::new(cfg, config.ctx, options, mem).map_err(SessionError::Step)?);
    }
    let mut scratch =
        Scratch::new(cfg, config.ctx, &mut scratch_mem).map_err(SessionError::Step)?;
    let mut batch = BatchScratch::new(cfg, BatchScratch::MAX_TOKENS, &mut floats, &mut blocks)
        .map_err(SessionError::Step)?;
    let mut slots: Vec<Slot<'_>> =
        (0..config.slots).map(|_| Slot { tokens: Vec::new(), active: None }).collect();
    let m = &queue.metrics;
    let mut next_prefill = 0usize;
    // However the loop ends (returning, or a panic unwinding), the queue stops taking requests
    // and the waiting ones are dropped, which ends their replies.
    let _stopped = StopGuard(queue);
    ready();

    loop {
        // 1. Cancelled requests leave; queued ones enter free slots.
        for slot in &mut slots {
            if slot.active.as_ref().is_some_and(|a| a.job.events.is_closed()) {
                m.requests_cancelled.fetch_add(1, Ordering::Relaxed);
                free(slot);
            }
        }
        while slots.iter().any(|s| s.active.is_none()) {
            let Some(job) = queue.pop() else { break };
            if job.events.is_closed() {
                m.requests_cancelled.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            admit(&mut slots, &mut caches, job, tokenizer, m);
        }
        m.slots_busy
            .store(slots.iter().filter(|s| s.active.is_some()).count() as u64, Ordering::Relaxed);
        if slots.iter().all(|s| s.active.is_none()) {
            if stop() {
                return Ok(());
            }
            queue.wait(Duration::from_millis(100));
            continue;
        }

        // 2. One chunk of one prompt (the slots take turns).
        let prefilling: Vec<usize> = (0..slots.len())
            .filter(|&i| matches!(slots[i].phase(), Some(Phase::Prefill { .. })))
            .collect();
        if let Some(&i) =
            prefilling.iter().find(|&&i| i >= next_prefill).or_else(|| prefilling.first())
        {
            next_prefill = i + 1;
            let (slot, cache) = (&mut slots[i], &mut caches[i]);
            let Some(active) = slot.active.as_mut() else { continue };
            let Phase::Prefill { done } = active.phase else { continue };
            let prompt_len = active.job.prompt.len();
            let end = (done + PREFILL_CHUNK).min(prompt_len);
            let chunk = active.job.prompt[done..end].to_vec();
            // Only a prompt's last chunk needs logits (they pick its first token).
            let result = threads.install(|| {
                if end < prompt_len {
                    model.prefill(&chunk, cache, &mut scratch, &mut batch, threads)
                } else {
                    model
                        .forward_batch(&chunk, cache, &mut scratch, &mut batch, threads)
                        .map(|_| ())
                }
            });
            match result {
                Err(e) => fail(slot, &e.to_string()),
                Ok(()) => {
                    slot.tokens.extend_from_slice(&chunk);
                    m.prompt_tokens.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    if end < prompt_len {
                        if let Some(a) = slot.active.as_mut() {
                            a.phase = Phase::Prefill { done: end };
                        }
                    } else {
                        let logits = scratch.logits_mut();
                        sample_and_send(slot, cache, logits, &mut work, tokenizer, m);
                    }
                }
            }
        }

        // 3. One token of every generating slot, together.
        let decoding: Vec<usize> = (0..slots.len())
            .filter(|&i| matches!(slots[i].phase(), Some(Phase::Decode { .. })))
            .collect();
        if decoding.is_empty() {
            continue;
        }
        let tokens: Vec<u32> = decoding
            .iter()
            .map(|&i| match slots[i].phase() {
                Some(Phase::Decode { next }) => next,
                _ => 0,
            })
            .collect();
        let mut refs: Vec<&mut LatentCache<'_>> = caches
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| decoding.contains(i))
            .map(|(_, c)| c)
            .collect();
        let out = &mut logits[..decoding.len() * vocab];
        let result = threads.install(|| {
            model.forward_sequences(&tokens, &mut refs, &scratch, &mut batch, out, threads)
        });
        drop(refs);
        m.decode_steps.fetch_add(1, Ordering::Relaxed);
        m.decode_sequences.fetch_add(decoding.len() as u64, Ordering::Relaxed);
        match result {
            Err(e) => {
                for &i in &decoding {
                    fail(&mut slots[i], &e.to_string());
                }
            }
            Ok(()) => {
                for (k, &i) in decoding.iter().enumerate() {
                    slots[i].tokens.push(tokens[k]);
                    let l = &mut logits[k * vocab..(k + 1) * vocab];
                    sample_and_send(&mut slots[i], &caches[i], l, &mut work, tokenizer, m);
                }
            }
        }
    }
}

/// Marks the queue stopped and drops its waiting jobs when the engine loop ends.
struct StopGuard<'q>(&'q Queue);

impl Drop for StopGuard<'_> {
    fn drop(&mut self) {
        self.0.stopped.store(true, Ordering::Relaxed);
        if let Ok(mut jobs) = self.0.jobs.lock() {
            jobs.clear();
        }
    }
}

/// Puts `job` into the free slot whose cache holds the longest prefix of its prompt, and cuts
/// that cache back to the shared prefix (at most all but the prompt's last token, which must
/// run to give the first logits).
fn admit<'t>(
    slots: &mut [Slot<'t>],
    caches: &mut [LatentCache<'_>],
    job: Job,
    tokenizer: &'t Tokenizer,
    m: &Metrics,
) {
    let shared =
        |s: &Slot<'_>| s.tokens.iter().zip(&job.prompt).take_while(|(a, b)| a == b).count();
    let Some(i) = (0..slots.len())
        .filter(|&i| slots[i].active.is_none())
        .max_by_key(|&i| (shared(&slots[i]), std::cmp::Reverse(i)))
    else {
        return;
    };
    let keep = shared(&slots[i]).min(job.prompt.len().saturating_sub(1));
    let (slot, cache) = (&mut slots[i], &mut caches[i]);
    let keep = if cache.truncate(keep) {
        keep
    } else {
        cache.clear();
        0
    };
    slot.tokens.truncate(keep);
    m.prompt_tokens_reused.fetch_add(keep as u64, Ordering::Relaxed);
    slot.active = Some(Active {
        phase: Phase::Prefill { done: keep },
        sampler: Sampler::new(job.sampler),
        stream: tokenizer.stream(SpecialTokens::Skip),
        history: job.prompt.clone(),
        generated: 0,
        cached: keep,
        text: String::new(),
        sent: 0,
        job,
    });
}

/// Samples the slot's next token from `logits` and sends its text; ends the request at an
/// end-of-generation token, a stop text, `max_tokens`, or a full cache.
fn sample_and_send(
    slot: &mut Slot<'_>,
    cache: &LatentCache<'_>,
    logits: &mut [f32],
    work: &mut [u32],
    tokenizer: &Tokenizer,
    m: &Metrics,
) {
    let Some(a) = slot.active.as_mut() else { return };
    let next = match a.sampler.sample_after(logits, work, &a.history) {
        Ok(t) => t,
        Err(e) => return fail(slot, &e.to_string()),
    };
    a.generated += 1;
    m.generated_tokens.fetch_add(1, Ordering::Relaxed);
    if tokenizer.is_end_of_generation(next) && !a.job.ignore_eos {
        return finish(slot, Finish::Stop, m);
    }
    a.history.push(next);
    match a.stream.push(next) {
        Ok(piece) => a.text.push_str(&piece),
        Err(e) => return fail(slot, &e.to_string()),
    }
    if let Some(at) = find_stop(&a.text, a.sent, &a.job.stop) {
        a.text.truncate(at);
        return finish_with(slot, Finish::Stop, false, m);
    }
    let safe = a.text.len() - held_back(&a.text, &a.job.stop);
    if !send_text(a, safe) {
        return cancel(slot, m);
    }
    if a.generated >= a.job.max_tokens || cache.is_full() {
        return finish(slot, Finish::Length, m);
    }
    a.phase = Phase::Decode { next };
}

/// The byte offset of the first stop text in `text`, looking only where one could end after
/// byte `sent` (earlier text was already checked).
fn find_stop(text: &str, sent: usize, stops: &[String]) -> Option<usize> {
    stops
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| {
            let mut from = sent.saturating_sub(s.len().saturating_sub(1));
            while !text.is_char_boundary(from) {
                from -= 1;
            }
            text.get(from..)?.find(s.as_str()).map(|at| from + at)
        })
        .min()
}

/// Bytes at the end of `text` that could be the start of a stop text (held back until the
/// next piece shows whether the stop text follows).
fn held_back(text: &str, stops: &[String]) -> usize {
    let longest = stops.iter().map(String::len).max().unwrap_or(0);
    (1..longest.min(text.len() + 1))
        .rev()
        .find(|&k| {
            let start = text.len() - k;
            text.is_char_boundary(start) && stops.iter().any(|s| s.starts_with(&text[start..]))
        })
        .unwrap_or(0)
}

/// Sends `text[sent..upto]`; false if the client is gone or not reading.
fn send_text(a: &mut Active<'_>, upto: usize) -> bool {
    if upto <= a.sent {
        return true;
    }
    let piece = a.text[a.sent..upto].to_owned();
    a.sent = upto;
    match a.job.events.try_send(Event::Text(piece)) {
        Ok(()) => true,
        Err(TrySendError::Full(_) | TrySendError::Closed(_)) => false,
    }
}

/// Ends the request: the rest of its text (with what the decoder still held, unless a stop
/// text ended it), then `Done`.
fn finish(slot: &mut Slot<'_>, finish: Finish, m: &Metrics) {
    finish_with(slot, finish, true, m);
}

fn finish_with(slot: &mut Slot<'_>, finish: Finish, flush: bool, m: &Metrics) {
    if let Some(a) = slot.active.as_mut() {
        if flush {
            let rest = a.stream.finish();
            a.text.push_str(&rest);
        }
        if let Some(at) = find_stop(&a.text, a.sent, &a.job.stop) {
            a.text.truncate(at);
        }
        let upto = a.text.len();
        let sent = send_text(a, upto);
        let done = Event::Done {
            finish,
            prompt_tokens: a.job.prompt.len(),
            cached_tokens: a.cached,
            completion_tokens: a.generated,
        };
        // Counted before the last event goes out, so a client that has its reply finds it
        // counted; taken back if the client is gone.
        m.requests_ok.fetch_add(1, Ordering::Relaxed);
        if !sent || a.job.events.try_send(done).is_err() {
            m.requests_ok.fetch_sub(1, Ordering::Relaxed);
            m.requests_cancelled.fetch_add(1, Ordering::Relaxed);
        }
    }
    free(slot);
}

fn cancel(slot: &mut Slot<'_>, m: &Metrics) {
    m.requests_cancelled.fetch_add(1, Ordering::Relaxed);
    free(slot);
}

fn fail(slot: &mut Slot<'_>, message: &str) {
    if let Some(a) = &slot.active {
        let _ = a.job.events.try_send(Event::Failed(message.to_owned()));
    }
    free(slot);
}

/// Ends the slot's request; the cache keeps its tokens for prefix reuse.
fn free(slot: &mut Slot<'_>) {
    slot.active = None;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Loaded;
    use tokio::sync::mpsc;

    /// Runs an engine with one slot over demo-m while `body` submits jobs to its queue.
    fn with_engine(body: impl FnOnce(&Queue, &Tokenizer)) -> Queue {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/demo-m.q8_0.gguf");
        let loaded = Loaded::open(std::path::Path::new(path)).unwrap();
        let model = loaded.model().unwrap();
        let tokenizer = loaded.tokenizer().unwrap();
        let threads = Threads::new(1).unwrap();
        let queue = Queue::new(8);
        let stopping = std::sync::atomic::AtomicBool::new(false);
        let config = EngineConfig { slots: 1, ctx: 256, storage: CacheStorage::F32 };
        std::thread::scope(|scope| {
            let (model, tokenizer, threads, queue) = (&model, &tokenizer, &threads, &queue);
            let stop = || stopping.load(Ordering::Relaxed);
            let engine =
                scope.spawn(move || run(model, tokenizer, config, threads, queue, &stop, || ()));
            body(queue, tokenizer);
            stopping.store(true, Ordering::Relaxed);
            engine.join().unwrap().unwrap();
        });
        queue
    }

    fn job(tokenizer: &Tokenizer, n: usize, events: Sender<Event>) -> Job {
        Job {
            prompt: tokenizer.encode("Once upon a time", true),
            max_tokens: n,
            sampler: SamplerConfig::default(),
            stop: Vec::new(),
            ignore_eos: true,
            events,
        }
    }

    /// Drains `rx` until the engine drops its sender: the events it got.
    fn drain(mut rx: mpsc::Receiver<Event>) -> Vec<Event> {
        let mut events = Vec::new();
        while let Some(e) = rx.blocking_recv() {
            events.push(e);
        }
        events
    }

    /// A client that stops reading (its event channel fills) loses its slot at that step; the
    /// request queued behind it then runs.
    #[test]
    fn a_client_that_stops_reading_frees_its_slot() {
        let mut stalled = None;
        let mut next = Vec::new();
        let q = with_engine(|queue, tokenizer| {
            let (tx, rx) = mpsc::channel(2);
            queue.submit(job(tokenizer, 200, tx)).unwrap();
            let (tx2, rx2) = mpsc::channel(EVENT_BUFFER);
            queue.submit(job(tokenizer, 5, tx2)).unwrap();
            next = drain(rx2);
            stalled = Some(rx);
        });
        let m = &q.metrics;
        assert!(matches!(next.last(), Some(Event::Done { completion_tokens: 5, .. })), "{next:?}");
        let stalled = drain(stalled.unwrap());
        assert_eq!(stalled.len(), 2, "{stalled:?}");
        assert!(stalled.iter().all(|e| matches!(e, Event::Text(_))));
        assert_eq!(m.requests_cancelled.load(Ordering::Relaxed), 1);
        // The stalled request stopped at its third token, not its 200th.
        assert_eq!(m.generated_tokens.load(Ordering::Relaxed), 3 + 5);
    }

    /// Once the engine has stopped, requests are refused, not queued forever.
    #[test]
    fn a_stopped_engine_refuses_requests() {
        let mut prompt_of = None;
        let queue = with_engine(|q, tokenizer| {
            let (tx, rx) = mpsc::channel(EVENT_BUFFER);
            q.submit(job(tokenizer, 2, tx)).unwrap();
            assert!(matches!(drain(rx).last(), Some(Event::Done { .. })));
            assert!(!q.is_stopped());
            prompt_of = Some(job(tokenizer, 2, mpsc::channel(1).0));
        });
        assert!(queue.is_stopped());
        assert_eq!(queue.submit(prompt_of.unwrap()), Err(Refused::Stopped));
        assert_eq!(queue.metrics.requests_ok.load(Ordering::Relaxed), 1);
    }

    /// A client gone before its request leaves the queue never takes a slot.
    #[test]
    fn a_client_gone_before_its_turn_is_skipped() {
        let mut done = Vec::new();
        let q = with_engine(|queue, tokenizer| {
            let (tx, rx) = mpsc::channel(EVENT_BUFFER);
            drop(rx);
            queue.submit(job(tokenizer, 50, tx)).unwrap();
            let (tx, rx) = mpsc::channel(EVENT_BUFFER);
            queue.submit(job(tokenizer, 4, tx)).unwrap();
            done = drain(rx);
        });
        let m = &q.metrics;
        assert!(matches!(done.last(), Some(Event::Done { completion_tokens: 4, .. })));
        assert_eq!(m.requests_cancelled.load(Ordering::Relaxed), 1);
        assert_eq!(m.generated_tokens.load(Ordering::Relaxed), 4);
    }

    fn stops(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn stop_texts_are_found_across_pieces_and_held_back_while_partial() {
        let s = stops(&["\nUser:", "END"]);
        assert_eq!(find_stop("hello\nUser: hi", 0, &s), Some(5));
        // Already-sent text is not searched again except where a stop could still end.
        assert_eq!(find_stop("hello\nUser: hi", 7, &s), Some(5));
        assert_eq!(find_stop("abc EN", 0, &s), None);
        assert_eq!(held_back("abc EN", &s), 2);
        assert_eq!(held_back("abc\nUs", &s), 3);
        assert_eq!(held_back("abc", &s), 0);
        assert_eq!(held_back("abc", &[]), 0);
        // Multi-byte characters: boundaries are respected.
        let s = stops(&["é!"]);
        assert_eq!(held_back("caf\u{e9}", &s), 2);
        assert_eq!(find_stop("caf\u{e9}!", 3, &s), Some(3));
    }
}

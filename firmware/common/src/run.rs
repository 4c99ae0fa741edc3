//! [`run`]: one firmware run, logged as `tinymla:` lines that the host-side agreement test
//! (`tests/firmware.rs`) and `firmware/footprint.sh` parse.

use alloc::vec::Vec;
use core::mem::MaybeUninit;

use tinymla_core::vocab::{Utf8Stream, Vocab};
use tinymla_core::{
    ActivationPrecision, CacheOptions, CacheStorage, Error, Gguf, LatentCache, ModelConfig,
    ModelOptions, ModelWith, OverflowPolicy, Sampler, SamplerConfig, Scratch,
};

use crate::{counter, exit::exit, stack, HEAP};

/// The prompt every board runs. The firmware has no BPE encoder: it takes [`PROMPT_IDS`],
/// and the agreement test checks that the host tokenizer encodes [`PROMPT`] to exactly these.
pub const PROMPT: &str = "The meaning of life is";
/// [`PROMPT`] encoded by the host tokenizer of the demo models (BOS first).
pub const PROMPT_IDS: [u32; 8] = [0, 318, 422, 271, 280, 291, 696, 303];
/// Tokens generated per run (greedy, then sampled).
pub const N_GENERATE: usize = 32;
/// The sampled run's settings: temperature 0.8, top-p 0.95, seed 2 (no top-k, min-p or penalty).
pub const SAMPLER: SamplerConfig = SamplerConfig {
    temperature: 0.8,
    top_k: 0,
    top_p: 0.95,
    min_p: 0.0,
    repeat_penalty: 1.0,
    repeat_last_n: 0,
    seed: 2,
};
/// The cache rows: int8 `c_kv` and `k_pe` with no block padding (52 bytes per token and
/// layer for demo-s, against 66 for `Q8`), so demo-s at context 256 fits a 64 KiB-class MCU.
pub const STORAGE: CacheStorage = CacheStorage::Q8Compact;
/// The model as the boards hold it (weights borrowed from flash), with `L` layer slots: the
/// binary's model's layer count (`layers` in [`crate::firmware!`]), since each slot costs
/// about 300 bytes of stack.
type Model<const L: usize> = ModelWith<'static, L>;
/// Allocator slack per allocation (linked-list header, alignment).
const ALLOC_SLACK: usize = 64;

/// What a board binary tells [`run`].
#[derive(Debug, Clone, Copy)]
pub struct Board {
    /// The binary's name, e.g. `mps2-an386-demo-s`.
    pub name: &'static str,
    /// The model's name.
    pub model_name: &'static str,
    /// Cache capacity (context).
    pub ctx: usize,
    /// SysTick clock in Hz on Arm (see [`counter`]); 0 on RISC-V.
    pub counter_hz: u32,
}

/// The sampler's index type: `u16`, half the bytes of `u32`, as the boards' vocabularies
/// have at most 65,536 tokens (the sampler refuses a larger one with a typed error).
type SamplerIdx = u16;

/// Heap bytes the run needs at context `ctx`: cache + scratch + the sampler's index buffer.
fn heap_needed(cfg: &ModelConfig, ctx: usize) -> Result<usize, Error> {
    let cache = LatentCache::bytes_needed(cfg, ctx, STORAGE)?;
    let scratch = cfg.scratch_elems(ctx)?.checked_mul(4).ok_or(Error::SizeOverflow)?;
    let work = cfg
        .vocab_size
        .checked_mul(core::mem::size_of::<SamplerIdx>())
        .ok_or(Error::SizeOverflow)?;
    cache
        .checked_add(scratch)
        .and_then(|n| n.checked_add(work))
        .and_then(|n| n.checked_add(3 * ALLOC_SLACK))
        .ok_or(Error::SizeOverflow)
}

/// A zeroed `Vec` of `n` elements from the heap, or `None`.
fn try_zeroed<T: Default + Clone>(n: usize) -> Option<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).ok()?;
    v.resize(n, T::default());
    Some(v)
}

fn fail(what: &str, e: Error) -> ! {
    defmt::error!("tinymla: {=str}: {}", what, e);
    exit(2)
}

/// Generates text on the board: see the crate docs. Never returns; exits 0 on success, 2 on
/// an engine error, 3 when the heap is too small, 4 when the kernel self-test fails, 101 on
/// panic.
pub fn run<const L: usize>(
    board: &Board,
    model_bytes: &'static [u8],
    heap_mem: &'static mut [MaybeUninit<u8>],
) -> ! {
    crate::selftest::kernels();
    let painted = stack::paint();
    counter::init();
    let heap_bytes = heap_mem.len();
    // SAFETY: `run` is called once, first thing, and `heap_mem` is handed over for good.
    unsafe { HEAP.init(heap_mem) };
    defmt::info!(
        "tinymla: board {=str} model {=str} at {=usize:#x} ({=usize} bytes, in flash), heap {=usize} bytes, ctx {=usize}",
        board.name,
        board.model_name,
        model_bytes.as_ptr() as usize,
        model_bytes.len(),
        heap_bytes,
        board.ctx
    );

    // Loading. The model (about 2 KB) is written once, into `loaded` in this frame, and
    // borrowed from there: unwrapping or returning it through helpers would give each frame
    // on the way its own copy. The helpers are out of line so that their temporaries (the
    // parser's name filters, the config, per-layer values) are gone before generation.
    let gguf = parse(model_bytes);
    let loaded = load_model::<L>(&gguf);
    let model = match &loaded {
        Ok(model) => model,
        Err(e) => fail("load", *e),
    };
    let vocab = &load_vocab(&gguf);
    let cfg = model.config();
    // The stack peak of loading, then repaint to measure generation on its own.
    let stack_load = painted.used();
    let painted = stack::paint();

    let needed = heap_needed(cfg, board.ctx).unwrap_or_else(|e| fail("sizes", e));
    let at = |ctx| heap_needed(cfg, ctx).unwrap_or(usize::MAX);
    defmt::info!(
        "tinymla: heap needed ctx128={=usize} ctx256={=usize} ctx512={=usize} (cache {=?} rows)",
        at(128),
        at(256),
        at(512),
        STORAGE
    );
    if needed > heap_bytes {
        defmt::error!(
            "tinymla: heap too small: context {=usize} needs {=usize} bytes (cache {=usize} + scratch + sampler), the board's heap is {=usize}; raise `heap` in the board's firmware! call or lower `ctx`",
            board.ctx,
            needed,
            LatentCache::bytes_needed(cfg, board.ctx, STORAGE).unwrap_or(0),
            heap_bytes
        );
        exit(3)
    }
    let oom = || -> ! {
        defmt::error!("tinymla: out of heap although {=usize} <= {=usize}", needed, heap_bytes);
        exit(3)
    };
    let cache_len = LatentCache::bytes_needed(cfg, board.ctx, STORAGE).unwrap_or(0);
    let scratch_len = cfg.scratch_elems(board.ctx).unwrap_or(0);
    let mut cache_mem = try_zeroed::<u8>(cache_len).unwrap_or_else(|| oom());
    let mut scratch_mem = try_zeroed::<f32>(scratch_len).unwrap_or_else(|| oom());
    let mut work = try_zeroed::<SamplerIdx>(cfg.vocab_size).unwrap_or_else(|| oom());

    let options = CacheOptions {
        storage: STORAGE,
        policy: OverflowPolicy::Error,
        allow_beyond_context: false,
    };
    let mut scratch =
        Scratch::new(cfg, board.ctx, &mut scratch_mem).unwrap_or_else(|e| fail("scratch", e));

    defmt::info!(
        "tinymla: config ctx={=usize} cache={=?} n_generate={=usize} temperature={=f32} top_k={=usize} top_p={=f32} seed={=u64}",
        board.ctx,
        STORAGE,
        N_GENERATE,
        SAMPLER.temperature,
        SAMPLER.top_k,
        SAMPLER.top_p,
        SAMPLER.seed
    );
    defmt::info!("tinymla: prompt {=str}", PROMPT);
    defmt::info!("tinymla: prompt_ids {=[?]}", &PROMPT_IDS[..]);

    let modes: [(&str, SamplerConfig); 2] =
        [("greedy", SamplerConfig { temperature: 0.0, ..SAMPLER }), ("sampled", SAMPLER)];
    for (mode, sampler_cfg) in modes {
        let mut cache = LatentCache::new(cfg, board.ctx, options, &mut cache_mem)
            .unwrap_or_else(|e| fail("cache", e));
        generate(board, model, vocab, mode, sampler_cfg, &mut cache, &mut scratch, &mut work);
    }
    let stack_used = painted.used();
    defmt::info!(
        "tinymla: ram heap_peak={=usize} heap_size={=usize} stack_peak={=usize}{=str} (loading {=usize}, generating {=usize}; model struct {=usize})",
        HEAP.peak(),
        HEAP.size(),
        stack_used.max(stack_load),
        if painted.overflowed_window() { " (window full: lower bound)" } else { "" },
        stack_load,
        stack_used,
        core::mem::size_of::<Model<L>>()
    );
    drop((cache_mem, scratch_mem, work));
    defmt::info!("tinymla: done");
    exit(0)
}

/// The loading stages, each out of line (see `run`).
#[inline(never)]
fn parse(bytes: &'static [u8]) -> Gguf<'static> {
    Gguf::parse(bytes).unwrap_or_else(|e| fail("parse", e.into()))
}

#[inline(never)]
fn load_model<const L: usize>(gguf: &Gguf<'static>) -> Result<Model<L>, Error> {
    let activations = if cfg!(feature = "int16-activations") {
        ActivationPrecision::Int16
    } else {
        ActivationPrecision::Int8
    };
    Model::from_gguf(gguf, ModelOptions { activations, ..ModelOptions::default() })
}

#[inline(never)]
fn load_vocab(gguf: &Gguf<'static>) -> Vocab<'static> {
    Vocab::new(gguf).unwrap_or_else(|e| fail("vocab", e))
}

/// Per-step instruction statistics.
#[derive(Default)]
struct Stats {
    total: u64,
    min: u64,
    max: u64,
    steps: u64,
}

/// One forward step, counted (and marked for the QEMU plugin).
#[inline(never)]
fn step<const L: usize>(
    model: &Model<L>,
    token: u32,
    cache: &mut LatentCache<'_>,
    scratch: &mut Scratch<'_>,
    hz: u32,
    stats: &mut Stats,
) {
    counter::tinymla_mark();
    let t0 = counter::read();
    let r = model.forward(token, cache, scratch).map(|_| ());
    let d = counter::to_instructions(counter::delta(t0, counter::read()), hz);
    stats.total += d;
    stats.min = if stats.steps == 0 { d } else { stats.min.min(d) };
    stats.max = stats.max.max(d);
    stats.steps += 1;
    r.unwrap_or_else(|e| fail("forward", e))
}

/// Prefills [`PROMPT_IDS`] into the empty `cache`, then generates [`N_GENERATE`] tokens with
/// `sampler_cfg`, logging the ids, the text and the instruction counts.
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn generate<const L: usize>(
    board: &Board,
    model: &Model<L>,
    vocab: &Vocab<'_>,
    mode: &str,
    sampler_cfg: SamplerConfig,
    cache: &mut LatentCache<'_>,
    scratch: &mut Scratch<'_>,
    work: &mut [SamplerIdx],
) {
    let mut sampler = Sampler::new(sampler_cfg);
    let mut ids = heapless::Vec::<u32, N_GENERATE>::new();
    let mut text = Escaped(heapless::String::<512>::new());
    let mut stream = Utf8Stream::new();
    let mut piece = [0u8; 64];
    let mut stats = Stats::default();
    for &t in &PROMPT_IDS {
        step(model, t, cache, scratch, board.counter_hz, &mut stats);
    }
    if mode == "greedy" {
        let l = scratch.logits();
        let (sum, abs, wsum) =
            l.iter().enumerate().fold((0f32, 0f32, 0f32), |(s, a, w), (i, &v)| {
                (s + v, a + v.abs(), w + v * ((i % 7) as f32 + 1.0))
            });
        defmt::info!(
            "tinymla: logits0 n={=usize} sum={=f32} abs={=f32} wsum={=f32} first={=[?]}",
            l.len(),
            sum,
            abs,
            wsum,
            l.get(..4).unwrap_or(&[])
        );
    }
    loop {
        let next = sampler.sample(scratch.logits_mut(), work).unwrap_or_else(|e| fail("sample", e));
        let n = vocab.decode_token(next, &mut piece).unwrap_or(0);
        let _ = stream.push(piece.get(..n).unwrap_or(&[]), &mut text);
        if ids.push(next).is_err() || ids.is_full() {
            break;
        }
        step(model, next, cache, scratch, board.counter_hz, &mut stats);
    }
    let _ = stream.finish(&mut text);
    counter::tinymla_mark();
    defmt::info!("tinymla: {=str} ids {=[?]}", mode, &ids[..]);
    defmt::info!("tinymla: {=str} text \"{=str}\"", mode, text.0.as_str());
    defmt::info!(
        "tinymla: {=str} instructions/token mean={=u64} min={=u64} max={=u64} over {=u64} forward steps ({=str})",
        mode,
        stats.total / stats.steps.max(1),
        stats.min,
        stats.max,
        stats.steps,
        match (cfg!(target_arch = "arm"), board.counter_hz) {
            (true, 0) => "SysTick cycles",
            (true, _) => "SysTick under -icount",
            (false, _) => "minstret",
        }
    );
}

/// Text with `\`, `"`, newlines and tabs escaped, so each log record stays on one line.
struct Escaped(heapless::String<512>);

impl core::fmt::Write for Escaped {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for c in s.chars() {
            let r = match c {
                '\n' => self.0.push_str("\\n").map_err(drop),
                '\t' => self.0.push_str("\\t").map_err(drop),
                '\\' => self.0.push_str("\\\\").map_err(drop),
                '"' => self.0.push_str("\\\"").map_err(drop),
                c => self.0.push(c).map_err(drop),
            };
            // A full buffer truncates the shown text; the token ids are what is checked.
            if r.is_err() {
                return Ok(());
            }
        }
        Ok(())
    }
}

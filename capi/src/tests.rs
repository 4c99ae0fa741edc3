//! The C API driven from Rust: the error paths (NULL, short and misaligned memory, foreign and
//! moved handles, out-of-range tokens, a full cache) and greedy ids equal to the core's.
#![allow(unsafe_code, reason = "calls the C ABI as C would")]
#![allow(
    clippy::undocumented_unsafe_blocks,
    reason = "test calls pass valid or deliberately bad pointers"
)]

use core::ptr::{null, null_mut};

use tinymla_core::{CacheOptions, LatentCache, Model, Sampler, SamplerConfig, Scratch};

use super::*;
use TinymlaStatus as S;

fn demo() -> &'static [u8] {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/demo-s.q8_0.gguf");
    Box::leak(std::fs::read(path).unwrap().into_boxed_slice())
}

/// `n` bytes aligned to 8 (as `u64`s), leaked: handles must never move.
fn mem(n: usize) -> &'static mut [u8] {
    let words: &'static mut [u64] = Box::leak(vec![0u64; n.div_ceil(8) + 1].into_boxed_slice());
    let bytes = words.as_mut_ptr().cast::<u8>();
    unsafe { core::slice::from_raw_parts_mut(bytes, n) }
}

fn new_model() -> *mut ModelHandle {
    let file = demo();
    let m = mem(tinymla_model_size());
    let mut out = null_mut();
    let s =
        unsafe { tinymla_model_init(m.as_mut_ptr(), m.len(), file.as_ptr(), file.len(), &mut out) };
    assert_eq!(s, S::Ok);
    out
}

fn cache(model: *const ModelHandle, capacity: usize) -> *mut CacheHandle {
    let mut n = 0;
    assert_eq!(unsafe { tinymla_cache_bytes_needed(model, capacity, 0, &mut n) }, S::Ok);
    let m = mem(n);
    let mut out = null_mut();
    assert_eq!(
        unsafe { tinymla_cache_init(model, capacity, 0, m.as_mut_ptr(), n, &mut out) },
        S::Ok
    );
    out
}

fn scratch(model: *const ModelHandle, capacity: usize) -> *mut ScratchHandle {
    let mut n = 0;
    assert_eq!(unsafe { tinymla_scratch_bytes_needed(model, capacity, &mut n) }, S::Ok);
    let m = mem(n);
    let mut out = null_mut();
    assert_eq!(
        unsafe { tinymla_scratch_init(model, capacity, m.as_mut_ptr(), n, &mut out) },
        S::Ok
    );
    out
}

fn sampler(model: *const ModelHandle) -> *mut SamplerHandle {
    let mut n = 0;
    assert_eq!(unsafe { tinymla_sampler_bytes_needed(model, &mut n) }, S::Ok);
    let m = mem(n);
    let mut out = null_mut();
    let s = unsafe { tinymla_sampler_init(model, 0.0, 0, 1.0, 1, m.as_mut_ptr(), n, &mut out) };
    assert_eq!(s, S::Ok);
    out
}

const PROMPT: [u32; 8] = [0, 318, 422, 271, 280, 291, 696, 303];

/// Runs `f` with a fresh core cache of `capacity` f32 rows for `model` and its scratch.
fn with_core_cache<R>(
    model: &Model<'_>,
    capacity: usize,
    f: impl FnOnce(&mut LatentCache<'_>, &mut Scratch<'_>) -> R,
) -> R {
    let cfg = model.config();
    let opts = CacheOptions::default();
    let mut cm = vec![0u8; LatentCache::bytes_needed(cfg, capacity, opts.storage).unwrap()];
    let mut sm = vec![0f32; cfg.scratch_elems(capacity).unwrap()];
    let mut cache = LatentCache::new(cfg, capacity, opts, &mut cm).unwrap();
    let mut scratch = Scratch::new(cfg, capacity, &mut sm).unwrap();
    f(&mut cache, &mut scratch)
}

#[test]
fn greedy_ids_and_text_match_the_core() {
    let (m, c, s, sa) = {
        let m = new_model();
        (m, cache(m, 64), scratch(m, 64), sampler(m))
    };
    let dm = mem(tinymla_decoder_size());
    let mut dec = null_mut();
    assert_eq!(unsafe { tinymla_decoder_init(dm.as_mut_ptr(), dm.len(), &mut dec) }, S::Ok);
    let mut need = 0;
    assert_eq!(unsafe { tinymla_decode_bytes_needed(m, &mut need) }, S::Ok);
    let mut text_buf = vec![0u8; need];
    let mut ids = Vec::new();
    let mut text = Vec::new();
    let mut token = 0;
    for (i, &t) in PROMPT.iter().chain(std::iter::repeat(&0)).take(PROMPT.len() + 15).enumerate() {
        let t = if i < PROMPT.len() { t } else { token };
        let (mut logits, mut n) = (null(), 0);
        assert_eq!(unsafe { tinymla_forward(m, c, s, t, &mut logits, &mut n) }, S::Ok);
        assert!(!logits.is_null() && n > 0);
        assert_eq!(unsafe { tinymla_sample(sa, s, &mut token) }, S::Ok);
        if i + 1 >= PROMPT.len() {
            ids.push(token);
            let mut len = 0;
            let st = unsafe {
                tinymla_decode(m, dec, token, text_buf.as_mut_ptr(), text_buf.len(), &mut len)
            };
            assert_eq!(st, S::Ok);
            assert_eq!(text_buf[len], 0);
            text.extend_from_slice(&text_buf[..len]);
        }
    }

    // The same run through the core.
    let file = demo();
    let model = Model::load(file).unwrap();
    let want = with_core_cache(&model, 64, |cache, scratch| {
        let mut sampler = Sampler::new(SamplerConfig::default());
        let mut work = vec![0u32; model.config().vocab_size];
        let mut want = Vec::new();
        for &t in &PROMPT {
            model.forward(t, cache, scratch).unwrap();
        }
        for _ in 0..16 {
            let t = sampler.sample(scratch.logits_mut(), &mut work).unwrap();
            want.push(t);
            model.forward(t, cache, scratch).unwrap();
        }
        want
    });
    assert_eq!(ids, want);
    assert!(std::str::from_utf8(&text).is_ok() && !text.is_empty(), "{text:?}");
}

#[test]
fn null_pointers_are_refused() {
    let file = demo();
    let m = mem(tinymla_model_size());
    let mut out = null_mut();
    unsafe {
        let p = m.as_mut_ptr();
        assert_eq!(
            tinymla_model_init(null_mut(), m.len(), file.as_ptr(), file.len(), &mut out),
            S::NullPointer
        );
        assert_eq!(tinymla_model_init(p, m.len(), null(), file.len(), &mut out), S::NullPointer);
        assert_eq!(
            tinymla_model_init(p, m.len(), file.as_ptr(), file.len(), null_mut()),
            S::NullPointer
        );
        let mut n = 0;
        assert_eq!(tinymla_model_vocab_size(null(), &mut n), S::NullPointer);
        assert_eq!(tinymla_cache_bytes_needed(null(), 8, 0, &mut n), S::NullPointer);
        assert_eq!(
            tinymla_forward(null(), null_mut(), null_mut(), 0, null_mut(), null_mut()),
            S::NullPointer
        );
        assert_eq!(tinymla_sample(null_mut(), null_mut(), null_mut()), S::NullPointer);
        let model = new_model();
        assert_eq!(tinymla_model_vocab_size(model, null_mut()), S::NullPointer);
        let c = cache(model, 4);
        assert_eq!(
            tinymla_forward(model, c, null_mut(), 0, null_mut(), null_mut()),
            S::NullPointer
        );
        assert_eq!(tinymla_decode(model, null_mut(), 0, null_mut(), 0, null_mut()), S::NullPointer);
    }
}

#[test]
fn short_misaligned_and_bad_memory_is_refused() {
    let file = demo();
    let m = mem(tinymla_model_size() + 8);
    let mut out = null_mut();
    unsafe {
        let p = m.as_mut_ptr();
        let short = tinymla_model_size() - 1;
        assert_eq!(
            tinymla_model_init(p, short, file.as_ptr(), file.len(), &mut out),
            S::BufferTooSmall
        );
        assert!(out.is_null());
        assert_eq!(
            tinymla_model_init(p.add(1), m.len() - 1, file.as_ptr(), file.len(), &mut out),
            S::Misaligned
        );
        assert_eq!(tinymla_model_init(p, m.len(), file.as_ptr(), 100, &mut out), S::BadGguf);
        let junk = [7u8; 256];
        assert_eq!(tinymla_model_init(p, m.len(), junk.as_ptr(), junk.len(), &mut out), S::BadGguf);

        let model = new_model();
        let mut n = 0;
        assert_eq!(tinymla_cache_bytes_needed(model, 4, 0, &mut n), S::Ok);
        let cm = mem(n);
        let mut c = null_mut();
        assert_eq!(
            tinymla_cache_init(model, 4, 0, cm.as_mut_ptr(), n - 1, &mut c),
            S::BufferTooSmall
        );
        assert_eq!(tinymla_cache_init(model, 0, 0, cm.as_mut_ptr(), n, &mut c), S::InvalidArgument);
        assert_eq!(tinymla_cache_init(model, 4, 9, cm.as_mut_ptr(), n, &mut c), S::InvalidArgument);
        assert_eq!(tinymla_cache_bytes_needed(model, usize::MAX, 0, &mut n), S::SizeOverflow);
        assert_eq!(tinymla_scratch_bytes_needed(model, 4, &mut n), S::Ok);
        let sm = mem(n);
        let mut s = null_mut();
        assert_eq!(
            tinymla_scratch_init(model, 4, sm.as_mut_ptr(), n - 4, &mut s),
            S::BufferTooSmall
        );

        let mut need = 0;
        assert_eq!(tinymla_decode_bytes_needed(model, &mut need), S::Ok);
        let dm = mem(tinymla_decoder_size());
        let mut d = null_mut();
        assert_eq!(tinymla_decoder_init(dm.as_mut_ptr(), dm.len(), &mut d), S::Ok);
        let mut buf = vec![0u8; need];
        let mut len = 0;
        assert_eq!(
            tinymla_decode(model, d, 300, buf.as_mut_ptr(), need - 1, &mut len),
            S::BufferTooSmall
        );
        assert_eq!(
            tinymla_decode(model, d, u32::MAX, buf.as_mut_ptr(), need, &mut len),
            S::TokenOutOfRange
        );
        assert_eq!(tinymla_decoder_finish(d, buf.as_mut_ptr(), 3, &mut len), S::BufferTooSmall);
        assert_eq!(tinymla_decoder_finish(d, buf.as_mut_ptr(), need, &mut len), S::Ok);
        assert_eq!(len, 0);
    }
}

#[test]
fn foreign_moved_and_mixed_handles_are_refused() {
    let model = new_model();
    let c = cache(model, 4);
    let s = scratch(model, 4);
    unsafe {
        // Zeroed and random memory, and a handle of another type, in place of a model.
        let zeros = mem(tinymla_model_size());
        let mut n = 0;
        assert_eq!(tinymla_model_vocab_size(zeros.as_ptr().cast(), &mut n), S::BadHandle);
        let junk = mem(64);
        junk.fill(0xA5);
        assert_eq!(tinymla_model_vocab_size(junk.as_ptr().cast(), &mut n), S::BadHandle);
        assert_eq!(tinymla_model_vocab_size(c.cast(), &mut n), S::BadHandle);
        assert_eq!(
            tinymla_model_vocab_size(model.cast::<u8>().add(1).cast(), &mut n),
            S::Misaligned
        );
        // Cache and scratch swapped.
        assert_eq!(
            tinymla_forward(model, s.cast(), c.cast(), 0, null_mut(), null_mut()),
            S::BadHandle
        );
        // A handle copied elsewhere (moved) is refused: it still points at its old self.
        let copy = mem(64);
        copy.copy_from_slice(core::slice::from_raw_parts(model.cast::<u8>(), 64));
        assert_eq!(tinymla_model_vocab_size(copy.as_ptr().cast(), &mut n), S::BadHandle);
        // A cache made for another model (same file, other handle).
        let other = new_model();
        let c2 = cache(other, 4);
        assert_eq!(tinymla_forward(model, c2, s, 0, null_mut(), null_mut()), S::BadHandle);
        assert_eq!(tinymla_forward(model, c, s, 0, null_mut(), null_mut()), S::Ok);
    }
}

#[test]
fn released_handles_are_refused() {
    let model = new_model();
    let c = cache(model, 4);
    let s = scratch(model, 4);
    let sa = sampler(model);
    unsafe {
        assert_eq!(tinymla_forward(model, c, s, 1, null_mut(), null_mut()), S::Ok);
        // A released cache: refused, and releasing it again is refused too.
        assert_eq!(tinymla_release(c.cast()), S::Ok);
        assert_eq!(tinymla_forward(model, c, s, 1, null_mut(), null_mut()), S::BadHandle);
        let mut n = 0;
        assert_eq!(tinymla_cache_len(c, &mut n), S::BadHandle);
        assert_eq!(tinymla_release(c.cast()), S::BadHandle);
        // A released model: refused by every call that takes it, with its other handles too.
        let c2 = cache(model, 4);
        assert_eq!(tinymla_release(model.cast()), S::Ok);
        assert_eq!(tinymla_model_vocab_size(model, &mut n), S::BadHandle);
        assert_eq!(tinymla_forward(model, c2, s, 1, null_mut(), null_mut()), S::BadHandle);
        // Handles that do not take the model still work on their own memory.
        let mut id = 0;
        assert_eq!(tinymla_sample(sa, s, &mut id), S::Ok);
        for h in [c2.cast(), s.cast(), sa.cast()] {
            assert_eq!(tinymla_release(h), S::Ok);
        }
        assert_eq!(tinymla_sample(sa, s, &mut id), S::BadHandle);
        // Not handles at all.
        assert_eq!(tinymla_release(null_mut()), S::NullPointer);
        assert_eq!(tinymla_release(model.cast::<u8>().add(1).cast()), S::Misaligned);
        let junk = mem(64);
        junk.fill(0xA5);
        assert_eq!(tinymla_release(junk.as_mut_ptr().cast()), S::BadHandle);
    }
}

#[test]
fn token_out_of_range_and_full_cache() {
    let model = new_model();
    let c = cache(model, 2);
    let s = scratch(model, 2);
    let mut vocab = 0;
    unsafe {
        assert_eq!(tinymla_model_vocab_size(model, &mut vocab), S::Ok);
        let v = u32::try_from(vocab).unwrap();
        assert_eq!(tinymla_forward(model, c, s, v, null_mut(), null_mut()), S::TokenOutOfRange);
        assert_eq!(tinymla_forward(model, c, s, 1, null_mut(), null_mut()), S::Ok);
        assert_eq!(tinymla_forward(model, c, s, 2, null_mut(), null_mut()), S::Ok);
        assert_eq!(tinymla_forward(model, c, s, 3, null_mut(), null_mut()), S::CacheFull);
        let mut len = 0;
        assert_eq!(tinymla_cache_len(c, &mut len), S::Ok);
        assert_eq!(len, 2);
        assert_eq!(tinymla_cache_clear(c), S::Ok);
        assert_eq!(tinymla_forward(model, c, s, 3, null_mut(), null_mut()), S::Ok);
        // One scratch serves a cache of any capacity.
        let big = cache(model, 8);
        assert_eq!(tinymla_forward(model, big, s, 3, null_mut(), null_mut()), S::Ok);
    }
}

#[test]
fn every_code_has_text() {
    for code in -1..20 {
        let p = tinymla_strerror(code);
        assert!(!p.is_null());
        let text = unsafe { core::ffi::CStr::from_ptr(p) }.to_str().unwrap();
        assert!(!text.is_empty());
    }
    for (i, (s, _)) in status::MESSAGES.iter().enumerate() {
        assert_eq!(*s as i32, i32::try_from(i).unwrap());
    }
    let t =
        |s: S| unsafe { core::ffi::CStr::from_ptr(tinymla_strerror(s as i32)) }.to_str().unwrap();
    assert_eq!(t(S::CacheFull), "the cache is full");
    assert_eq!(t(S::Ok), "ok");
}

#[test]
fn sampled_ids_match_the_core() {
    let cfg =
        SamplerConfig { temperature: 0.8, top_k: 40, top_p: 0.95, seed: 2, ..Default::default() };
    let m = new_model();
    let (c, s) = (cache(m, 32), scratch(m, 32));
    let mut n = 0;
    assert_eq!(unsafe { tinymla_sampler_bytes_needed(m, &mut n) }, S::Ok);
    let sm = mem(n);
    let mut sa = null_mut();
    let st = unsafe {
        tinymla_sampler_init(
            m,
            cfg.temperature,
            40,
            cfg.top_p,
            cfg.seed,
            sm.as_mut_ptr(),
            n,
            &mut sa,
        )
    };
    assert_eq!(st, S::Ok);
    let mut ids = Vec::new();
    for &t in &PROMPT {
        assert_eq!(unsafe { tinymla_forward(m, c, s, t, null_mut(), null_mut()) }, S::Ok);
    }
    for _ in 0..16 {
        let mut t = 0;
        assert_eq!(unsafe { tinymla_sample(sa, s, &mut t) }, S::Ok);
        ids.push(t);
        assert_eq!(unsafe { tinymla_forward(m, c, s, t, null_mut(), null_mut()) }, S::Ok);
    }

    let model = Model::load(demo()).unwrap();
    let mc = model.config();
    let opts = CacheOptions::default();
    let mut cm = vec![0u8; LatentCache::bytes_needed(mc, 32, opts.storage).unwrap()];
    let mut scm = vec![0f32; mc.scratch_elems(32).unwrap()];
    let mut cache = LatentCache::new(mc, 32, opts, &mut cm).unwrap();
    let mut scratch = Scratch::new(mc, 32, &mut scm).unwrap();
    let mut sampler = Sampler::new(cfg);
    let mut work = vec![0u32; mc.vocab_size];
    let mut want = Vec::new();
    for &t in &PROMPT {
        model.forward(t, &mut cache, &mut scratch).unwrap();
    }
    for _ in 0..16 {
        let t = sampler.sample(scratch.logits_mut(), &mut work).unwrap();
        want.push(t);
        model.forward(t, &mut cache, &mut scratch).unwrap();
    }
    assert_eq!(ids, want);
    let nan = unsafe { tinymla_sampler_init(m, f32::NAN, 0, 1.0, 1, sm.as_mut_ptr(), n, &mut sa) };
    assert_eq!(nan, S::InvalidArgument);
    assert!(sa.is_null());
}

/// A model whose tokenizer is not one tinymla reads still runs; decoding says `NO_VOCAB`.
#[test]
fn model_without_vocab_runs_but_cannot_decode() {
    let mut file = demo().to_vec();
    let key = b"tokenizer.ggml.model";
    let at = file.windows(key.len()).position(|w| w == key).unwrap() + key.len();
    // type id (u32 8 = string), length (u64 4), then "gpt2": make it an unknown tokenizer.
    assert_eq!(&file[at + 12..at + 16], b"gpt2");
    file[at + 12..at + 16].copy_from_slice(b"zzzz");
    let file: &'static [u8] = Box::leak(file.into_boxed_slice());
    let m = mem(tinymla_model_size());
    let mut model = null_mut();
    let st = unsafe {
        tinymla_model_init(m.as_mut_ptr(), m.len(), file.as_ptr(), file.len(), &mut model)
    };
    assert_eq!(st, S::Ok);
    let (c, s) = (cache(model, 4), scratch(model, 4));
    assert_eq!(unsafe { tinymla_forward(model, c, s, 1, null_mut(), null_mut()) }, S::Ok);
    let mut n = 0;
    assert_eq!(unsafe { tinymla_decode_bytes_needed(model, &mut n) }, S::NoVocab);
    let dm = mem(tinymla_decoder_size());
    let mut d = null_mut();
    assert_eq!(unsafe { tinymla_decoder_init(dm.as_mut_ptr(), dm.len(), &mut d) }, S::Ok);
    let mut buf = [0u8; 256];
    let st = unsafe { tinymla_decode(model, d, 1, buf.as_mut_ptr(), buf.len(), &mut n) };
    assert_eq!(st, S::NoVocab);
}

/// `tinymla_model_init_with`: `TINYMLA_ACTIVATIONS_INT16` gives the core's Int16 logits (not
/// the Int8 ones), and an unknown value is `INVALID_ARGUMENT` with the handle left NULL.
#[test]
fn model_init_with_chooses_the_activation_precision() {
    use tinymla_core::{ActivationPrecision, Gguf, ModelOptions};
    let file = demo();
    let init = |activations: i32| {
        let m = mem(tinymla_model_size());
        let mut out = null_mut();
        let s = unsafe {
            tinymla_model_init_with(
                m.as_mut_ptr(),
                m.len(),
                file.as_ptr(),
                file.len(),
                activations,
                &mut out,
            )
        };
        (s, out)
    };
    for bad in [-1, 2, i32::MAX] {
        assert_eq!(init(bad), (S::InvalidArgument, null_mut()), "activations {bad}");
    }
    let (s, model) = init(TinymlaActivations::Int16 as i32);
    assert_eq!(s, S::Ok);
    let (c, sc) = (cache(model, 8), scratch(model, 8));
    let mut got = Vec::new();
    for &t in &PROMPT[..4] {
        let (mut logits, mut n) = (null(), 0);
        assert_eq!(unsafe { tinymla_forward(model, c, sc, t, &mut logits, &mut n) }, S::Ok);
        got = unsafe { core::slice::from_raw_parts(logits, n) }.to_vec();
    }
    let core_logits = |activations| {
        let gguf = Gguf::parse(file).unwrap();
        let model = Model::from_gguf(&gguf, ModelOptions { activations, ..Default::default() });
        let model = model.unwrap();
        with_core_cache(&model, 8, |cache, scratch| {
            let mut last = Vec::new();
            for &t in &PROMPT[..4] {
                last = model.forward(t, cache, scratch).unwrap().to_vec();
            }
            last
        })
    };
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&got), bits(&core_logits(ActivationPrecision::Int16)));
    assert_ne!(bits(&got), bits(&core_logits(ActivationPrecision::Int8)));
}

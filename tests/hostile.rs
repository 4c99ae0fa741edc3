//! Hostile input: thousands of mutated and truncated variants of the fixture GGUFs go through
//! the reader, the loader and a forward step. Every one must end in `Err` or a working model —
//! never a panic, never an out-of-bounds read.

use crate::common::{read_fixture, GOLDEN_MODELS};
use std::panic::{catch_unwind, AssertUnwindSafe};
use tinymla_core::{CacheOptions, Error, Gguf, LatentCache, Model, Scratch};

/// Variants per fixture model; with four fixtures this is > 10,000 in total.
const VARIANTS_PER_MODEL: usize = 2_600;
/// Forward steps run on variants that load; sized to keep allocations small.
const CAPACITY: usize = 3;
/// Largest scratch + cache (in f32 elements) a loaded variant may ask this test for.
const MAX_ELEMS: usize = 1 << 24;

/// Deterministic xorshift64* generator, so a failure names a reproducible variant.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Values that break naive readers when written over a length, count or offset.
const NASTY: [u64; 10] =
    [0, 1, 3, 0xff, 0x7fff_ffff, 0xffff_ffff, 0x1_0000_0000, 1 << 40, 1 << 63, u64::MAX];

/// One mutation of `base`, chosen by `rng`; `header_len` is the metadata + tensor-info part.
fn mutate(base: &[u8], header_len: usize, rng: &mut Rng) -> Vec<u8> {
    let mut v = base.to_vec();
    match rng.below(6) {
        // Truncate anywhere, mostly inside the header.
        0 => {
            let cut =
                if rng.below(4) == 0 { rng.below(v.len()) } else { rng.below(header_len + 1) };
            v.truncate(cut);
        }
        // Flip a few random header bytes.
        1 => {
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(header_len);
                v[i] ^= 1 << rng.below(8);
            }
        }
        // Overwrite a u64 at a random header offset with a nasty value.
        2 => {
            let i = rng.below(header_len.saturating_sub(8));
            let val = NASTY[rng.below(NASTY.len())];
            v[i..i + 8].copy_from_slice(&val.to_le_bytes());
        }
        // Overwrite a u32 with a nasty value.
        3 => {
            let i = rng.below(header_len.saturating_sub(4));
            let val = NASTY[rng.below(NASTY.len())] as u32;
            v[i..i + 4].copy_from_slice(&val.to_le_bytes());
        }
        // Random bytes over a header span.
        4 => {
            let i = rng.below(header_len);
            let n = 1 + rng.below(32);
            for b in v.iter_mut().skip(i).take(n) {
                *b = rng.next() as u8;
            }
        }
        // Corrupt the weights: NaN/Inf/huge floats must not panic either.
        _ => {
            for _ in 0..16 {
                let i = header_len + rng.below(v.len() - header_len - 4);
                let val = [f32::NAN, f32::INFINITY, -f32::INFINITY, 3e38][rng.below(4)];
                v[i..i + 4].copy_from_slice(&val.to_le_bytes());
            }
        }
    }
    v
}

/// Parses, loads and (if it loads) steps a variant. Returns which stage it got to.
fn exercise(bytes: &[u8]) -> Result<&'static str, Error> {
    let gguf = Gguf::parse(bytes)?;
    // Touch every lookup path the host tools use.
    for (_, value) in gguf.metadata() {
        if let Some(a) = value.as_array() {
            a.iter().for_each(drop);
        }
    }
    gguf.tensors().for_each(drop);
    let model = Model::load(bytes)?;
    let cfg = model.config();
    let options = CacheOptions::default();
    let cache_bytes = LatentCache::bytes_needed(cfg, CAPACITY, options.storage)?;
    let scratch_elems = cfg.scratch_elems(CAPACITY)?;
    if cache_bytes / 4 + scratch_elems > MAX_ELEMS {
        return Ok("loaded (too large to step here)");
    }
    let mut cache_mem = vec![0u8; cache_bytes];
    let mut scratch_mem = vec![0.0; scratch_elems];
    let mut cache = LatentCache::new(cfg, CAPACITY, options, &mut cache_mem)?;
    let mut scratch = Scratch::new(cfg, CAPACITY, &mut scratch_mem)?;
    let vocab = cfg.vocab_size as u32;
    assert!(matches!(
        model.forward(vocab, &mut cache, &mut scratch),
        Err(Error::TokenOutOfRange { .. })
    ));
    for token in [0, vocab - 1, vocab / 2] {
        model.forward(token, &mut cache, &mut scratch)?;
    }
    assert!(matches!(model.forward(0, &mut cache, &mut scratch), Err(Error::CacheFull { .. })));
    Ok("stepped")
}

#[test]
fn mutated_and_truncated_fixtures_never_panic() {
    let mut total = 0usize;
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    for (m, name) in GOLDEN_MODELS.iter().enumerate() {
        let base = read_fixture(&format!("{name}.gguf"));
        let header_len = Gguf::parse(&base).expect("fixture parses").data_offset() as usize;
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (m as u64 + 1));
        for i in 0..VARIANTS_PER_MODEL {
            let variant = mutate(&base, header_len, &mut rng);
            let result = catch_unwind(AssertUnwindSafe(|| exercise(&variant)));
            let outcome = match result {
                Ok(Ok(stage)) => stage.to_string(),
                Ok(Err(e)) => {
                    format!("{:?}", e).split(['(', ' ', '{']).next().unwrap_or("").to_string()
                }
                Err(_) => panic!("{name} variant {i} panicked (len {})", variant.len()),
            };
            *outcomes.entry(outcome).or_default() += 1;
            total += 1;
        }
    }
    eprintln!("hostile: {total} variants: {outcomes:?}");
    assert!(total >= 10_000);
}

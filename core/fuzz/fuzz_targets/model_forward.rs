//! Model loading and forward steps on arbitrary bytes: the first 8 bytes are two token ids,
//! the rest is the model file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tinymla_core::{CacheOptions, CacheStorage, LatentCache, Model, OverflowPolicy, Scratch};

/// Largest scratch + cache (in 4-byte units) a fuzz case may allocate.
const MAX_UNITS: usize = 1 << 22;

fuzz_target!(|data: &[u8]| {
    let Some((tokens, file)) = data.split_first_chunk::<8>() else { return };
    let Ok(model) = Model::load(file) else { return };
    let cfg = model.config();
    let capacity = 2;
    let storage = match tokens[0] % 4 {
        0 => CacheStorage::F32,
        1 => CacheStorage::F16,
        2 => CacheStorage::Q8,
        _ => CacheStorage::Q8Compact,
    };
    // The third step meets a full cache: it slides, or shifts (re-rotating the kept key).
    let policy = match tokens[1] % 4 {
        s @ 0..=1 => OverflowPolicy::Slide { sinks: u32::from(s) },
        s => OverflowPolicy::Shift { sinks: u32::from(s - 2), discard: 1 },
    };
    let options = CacheOptions { storage, policy, allow_beyond_context: tokens[2] % 2 == 0 };
    let (Ok(cache_bytes), Ok(scratch_elems)) =
        (LatentCache::bytes_needed(cfg, capacity, storage), cfg.scratch_elems(capacity))
    else {
        return;
    };
    if cache_bytes / 4 + scratch_elems > MAX_UNITS {
        return;
    }
    let mut cache_mem = vec![0u8; cache_bytes];
    let mut scratch_mem = vec![0.0f32; scratch_elems];
    let mut cache = LatentCache::new(cfg, capacity, options, &mut cache_mem).unwrap();
    let mut scratch = Scratch::new(cfg, capacity, &mut scratch_mem).unwrap();
    let (a, b) = tokens.split_at(4);
    for t in [a, b, a] {
        let token = u32::from_le_bytes(t.try_into().unwrap());
        let _ = model.forward(token, &mut cache, &mut scratch);
    }
});

//! `LatentCache::restore` on arbitrary bytes, for a fixed small model, into sliding and
//! shifting caches; after any successful restore the cache must keep working (through a
//! shift when it restored full).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tinymla_core::{CacheOptions, CacheStorage, LatentCache, Model, OverflowPolicy, Scratch};

static MODEL: &[u8] = include_bytes!("../../../tests/fixtures/v3_dense_tied.gguf");

fuzz_target!(|data: &[u8]| {
    let model = Model::load(MODEL).unwrap();
    let cfg = model.config();
    let capacity = 8;
    let policies =
        [OverflowPolicy::Slide { sinks: 2 }, OverflowPolicy::Shift { sinks: 2, discard: 3 }];
    for (storage, policy) in
        [CacheStorage::F32, CacheStorage::Q8].into_iter().flat_map(|s| policies.map(|p| (s, p)))
    {
        let options = CacheOptions { storage, policy, ..Default::default() };
        let mut mem = vec![0u8; LatentCache::bytes_needed(cfg, capacity, storage).unwrap()];
        let mut cache = LatentCache::new(cfg, capacity, options, &mut mem).unwrap();
        if cache.restore(model.fingerprint(), data).is_ok() {
            let mut scratch_mem = vec![0.0f32; cfg.scratch_elems(capacity).unwrap()];
            let mut scratch = Scratch::new(cfg, capacity, &mut scratch_mem).unwrap();
            for token in 1..4 {
                let _ = model.forward(token, &mut cache, &mut scratch);
            }
        }
    }
});

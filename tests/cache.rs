//! The latent cache (issue #6): storage types against f32, the slide policy against
//! transformers with an explicit attention mask, the context guard, snapshots, and every error.

use crate::common::{
    argmax, max_abs, max_abs_diff, read_fixture, run_tokens, Expected, GOLDEN_MODELS,
};
use tinymla_core::cache::SnapshotError;
use tinymla_core::{
    CacheArena, CacheOptions, CacheStorage, Error, LatentCache, Model, OverflowPolicy, Scratch,
};

/// f16 rows: max |Δlogit| vs f32 rows, relative to max |logit|, at every position.
const F16_REL_TOL: f32 = 2e-3;
/// Q8 rows (int8 `c_kv`, f16 `k_pe`) vs f32 rows, relative error: the mean over positions,
/// and the 95th percentile. Not the max: on the random tiny MoE fixtures an int8 rounding can
/// flip one expert choice (routing margins are ~1e-3), which moves that position's logits by
/// ~0.2 relative while the greedy token stays the same.
const Q8_MEAN_REL_TOL: f32 = 1.5e-2;
const Q8_P95_REL_TOL: f32 = 3e-2;

fn options(storage: CacheStorage) -> CacheOptions {
    CacheOptions { storage, ..CacheOptions::default() }
}

/// f16 and int8 storage against f32 storage on every golden fixture: logits within the
/// tolerances above and the greedy token unchanged at >= 99% of positions.
#[test]
fn f16_and_int8_rows_track_f32_rows() {
    for storage in [CacheStorage::F16, CacheStorage::Q8, CacheStorage::Q8Compact] {
        let (mut agree, mut errors) = (0usize, Vec::new());
        for name in GOLDEN_MODELS {
            let file = read_fixture(&format!("{name}.gguf"));
            let model = Model::load(&file).unwrap();
            let tokens = Expected::load(name).tokens;
            let reference =
                run_tokens(&model, &tokens, tokens.len(), options(CacheStorage::F32)).unwrap();
            let got = run_tokens(&model, &tokens, tokens.len(), options(storage)).unwrap();
            for (g, r) in got.iter().zip(&reference) {
                errors.push(max_abs_diff(g, r) / max_abs(r));
                agree += usize::from(argmax(g) == argmax(r));
            }
        }
        let total = errors.len();
        errors.sort_by(f32::total_cmp);
        let mean = errors.iter().sum::<f32>() / total as f32;
        let (p95, max) = (errors[total * 95 / 100], errors[total - 1]);
        eprintln!(
            "cache {storage:?} vs F32: rel err mean {mean:.2e} p95 {p95:.2e} max {max:.2e}; \
             greedy agree {agree}/{total}"
        );
        assert!(agree * 100 >= total * 99, "{storage:?}: greedy agreement {agree}/{total} < 99%");
        match storage {
            CacheStorage::F16 => assert!(max <= F16_REL_TOL, "F16: max rel err {max:e}"),
            _ => assert!(
                mean <= Q8_MEAN_REL_TOL && p95 <= Q8_P95_REL_TOL,
                "Q8: mean {mean:e}, p95 {p95:e}"
            ),
        }
    }
}

#[test]
fn row_bytes_for_v2_lite_shapes() {
    // kv_lora_rank 512 + qk_rope_head_dim 64, as DeepSeek-V2-Lite.
    let file = read_fixture("v2_lite_moe.gguf");
    let model = Model::load(&file).unwrap();
    let mut cfg = *model.config();
    cfg.kv_lora_rank = 512;
    cfg.qk_rope_head_dim = 64;
    assert_eq!(LatentCache::row_bytes_for(&cfg, CacheStorage::F32), 2304);
    assert_eq!(LatentCache::row_bytes_for(&cfg, CacheStorage::F16), 1152);
    assert_eq!(LatentCache::row_bytes_for(&cfg, CacheStorage::Q8), 672);
    assert_eq!(LatentCache::row_bytes_for(&cfg, CacheStorage::Q8Compact), 594);
}

#[test]
fn full_cache_error_changes_nothing_and_slide_keeps_going() {
    let file = read_fixture("v3_dense_tied.gguf");
    let model = Model::load(&file).unwrap();
    let tokens: Vec<u32> = (0..6).collect();
    assert_eq!(
        run_tokens(&model, &tokens, 4, CacheOptions::default()).unwrap_err(),
        Error::CacheFull { capacity: 4 }
    );
    let slide = CacheOptions { policy: OverflowPolicy::Slide { sinks: 1 }, ..Default::default() };
    assert_eq!(run_tokens(&model, &tokens, 4, slide).unwrap().len(), 6);
}

#[test]
fn slide_evicts_the_oldest_non_sink_slot_and_positions_keep_counting() {
    let file = read_fixture("v3_dense_tied.gguf");
    let model = Model::load(&file).unwrap();
    let cfg = model.config();
    let opts = CacheOptions { policy: OverflowPolicy::Slide { sinks: 2 }, ..Default::default() };
    let mut mem = vec![0u8; LatentCache::bytes_needed(cfg, 5, opts.storage).unwrap()];
    let mut scratch_mem = vec![0.0; cfg.scratch_elems(5).unwrap()];
    let mut cache = LatentCache::new(cfg, 5, opts, &mut mem).unwrap();
    let mut scratch = Scratch::new(cfg, 5, &mut scratch_mem).unwrap();
    for t in 0..9 {
        model.forward(t, &mut cache, &mut scratch).unwrap();
    }
    // Slots 0,1 are sinks (positions 0,1); the ring 2..5 has held 2,3,4 then 5,6,7, then 8.
    let positions: Vec<u64> = (0..5).map(|s| cache.slot_position(s).unwrap()).collect();
    assert_eq!(positions, [0, 1, 8, 6, 7]);
    assert_eq!((cache.len(), cache.position()), (5, 9));
}

/// The streaming slide computation equals transformers run with an attention mask in which each
/// token sees exactly the tokens the cache retained when it was processed
/// (`scripts/gen_fixtures.py`, `<name>.slide_c<C>_s<S>.expected.bin`).
#[test]
fn slide_matches_transformers_with_the_same_retained_tokens() {
    for (name, capacity, sinks) in
        [("v3_qlora_grouped", 8, 2), ("v2_lite_moe", 8, 2), ("v3_qlora_grouped", 8, 0)]
    {
        let file = read_fixture(&format!("{name}.gguf"));
        let model = Model::load(&file).unwrap();
        let expected = Expected::load(&format!("{name}.slide_c{capacity}_s{sinks}"));
        let plain = Expected::load(name);
        for storage in [CacheStorage::F32, CacheStorage::F16] {
            let opts = CacheOptions {
                storage,
                policy: OverflowPolicy::Slide { sinks },
                allow_beyond_context: false,
            };
            let steps = run_tokens(&model, &expected.tokens, capacity, opts).unwrap();
            let tol = if storage == CacheStorage::F32 { 1e-4 } else { F16_REL_TOL };
            let mut worst = 0.0f32;
            for (pos, got) in steps.iter().enumerate() {
                let want = expected.position(pos);
                let rel = max_abs_diff(got, want) / max_abs(want);
                worst = worst.max(rel);
                assert!(
                    rel <= tol,
                    "{name} C{capacity} S{sinks} {storage:?} pos {pos}: rel {rel:e}"
                );
                if pos >= capacity && storage == CacheStorage::F32 {
                    // The reference itself must differ from the unwindowed run here, or this test
                    // would not be testing eviction.
                    assert!(max_abs_diff(want, plain.position(pos)) > 1e-3, "{name} pos {pos}");
                }
            }
            eprintln!("slide {name} C{capacity} S{sinks} {storage:?}: worst rel err {worst:.2e}");
        }
    }
}

#[test]
fn positions_past_the_trained_context_need_an_opt_in() {
    // v3_dense_tied was trained for 64 positions.
    let file = read_fixture("v3_dense_tied.gguf");
    let model = Model::load(&file).unwrap();
    assert_eq!(model.config().context_length, 64);
    let tokens: Vec<u32> = (0..65).map(|t| t % 200).collect();
    let slide = OverflowPolicy::Slide { sinks: 4 };
    let strict = CacheOptions { policy: slide, ..Default::default() };
    assert_eq!(
        run_tokens(&model, &tokens, 16, strict).unwrap_err(),
        Error::PositionBeyondContext { pos: 64, context_length: 64 }
    );
    let open = CacheOptions { policy: slide, allow_beyond_context: true, ..Default::default() };
    assert_eq!(run_tokens(&model, &tokens, 16, open).unwrap().len(), 65);
}

#[test]
fn invalid_cache_options_are_rejected() {
    let file = read_fixture("v3_dense_tied.gguf");
    let model = Model::load(&file).unwrap();
    let cfg = model.config();
    let mut mem = vec![0u8; 1 << 16];
    assert_eq!(
        LatentCache::new(cfg, 0, CacheOptions::default(), &mut mem).unwrap_err(),
        Error::InvalidCacheOptions
    );
    let sinks_fill_it =
        CacheOptions { policy: OverflowPolicy::Slide { sinks: 4 }, ..Default::default() };
    assert_eq!(
        LatentCache::new(cfg, 4, sinks_fill_it, &mut mem).unwrap_err(),
        Error::InvalidCacheOptions
    );
}

#[test]
fn arena_backed_cache_for_firmware() {
    static_assertions_free_arena();
}

fn static_assertions_free_arena() {
    let file = read_fixture("v3_dense_tied.gguf");
    let model = Model::load(&file).unwrap();
    let cfg = model.config();
    let mut arena = Box::new(CacheArena::<4096>::new());
    let needed = LatentCache::bytes_needed(cfg, 8, CacheStorage::Q8).unwrap();
    assert!(needed <= 4096, "{needed}");
    let mut cache = arena.cache(cfg, 8, options(CacheStorage::Q8)).unwrap();
    let mut scratch_mem = vec![0.0; cfg.scratch_elems(8).unwrap()];
    let mut scratch = Scratch::new(cfg, 8, &mut scratch_mem).unwrap();
    model.forward(3, &mut cache, &mut scratch).unwrap();
    let mut small = CacheArena::<16>::new();
    assert!(matches!(
        small.cache(cfg, 8, CacheOptions::default()).unwrap_err(),
        Error::BufferTooSmall { .. }
    ));
}

/// Decodes `tokens[..split]`, snapshots, restores into a fresh cache, decodes the rest: the
/// logits must be bit-identical to an uninterrupted run.
#[test]
fn snapshot_restore_resumes_bit_identically() {
    for storage in [CacheStorage::F32, CacheStorage::F16, CacheStorage::Q8, CacheStorage::Q8Compact]
    {
        let name = "v3_qlora_grouped";
        let file = read_fixture(&format!("{name}.gguf"));
        let model = Model::load(&file).unwrap();
        let cfg = model.config();
        let tokens = Expected::load(name).tokens;
        let opts = CacheOptions {
            storage,
            policy: OverflowPolicy::Slide { sinks: 2 },
            ..Default::default()
        };
        let capacity = 8;
        let reference = run_tokens(&model, &tokens, capacity, opts).unwrap();

        let bytes = LatentCache::bytes_needed(cfg, capacity, storage).unwrap();
        let (mut mem_a, mut mem_b) = (vec![0u8; bytes], vec![0xa5u8; bytes]);
        let mut scratch_mem = vec![0.0; cfg.scratch_elems(capacity).unwrap()];
        let mut scratch = Scratch::new(cfg, capacity, &mut scratch_mem).unwrap();
        let mut first = LatentCache::new(cfg, capacity, opts, &mut mem_a).unwrap();
        let split = 11; // past the first eviction
        for &t in &tokens[..split] {
            model.forward(t, &mut first, &mut scratch).unwrap();
        }
        let mut snap = vec![0u8; first.snapshot_len()];
        assert_eq!(first.snapshot(model.fingerprint(), &mut snap).unwrap(), snap.len());

        let mut second = LatentCache::new(cfg, capacity, opts, &mut mem_b).unwrap();
        second.restore(model.fingerprint(), &snap).unwrap();
        assert_eq!(second.position(), split as u64);
        for (pos, &t) in tokens.iter().enumerate().skip(split) {
            let got = model.forward(t, &mut second, &mut scratch).unwrap();
            assert_eq!(got, &reference[pos][..], "{storage:?} pos {pos}");
        }
    }
}

#[test]
fn corrupted_or_mismatched_snapshots_are_typed_errors() {
    let file = read_fixture("v3_qlora_grouped.gguf");
    let other_file = read_fixture("v3_dense_tied.gguf");
    let model = Model::load(&file).unwrap();
    let other = Model::load(&other_file).unwrap();
    let cfg = model.config();
    let opts = CacheOptions::default();
    let bytes = LatentCache::bytes_needed(cfg, 8, opts.storage).unwrap();
    let mut mem = vec![0u8; bytes];
    let mut scratch_mem = vec![0.0; cfg.scratch_elems(8).unwrap()];
    let mut scratch = Scratch::new(cfg, 8, &mut scratch_mem).unwrap();
    let mut cache = LatentCache::new(cfg, 8, opts, &mut mem).unwrap();
    for t in [5, 6, 7] {
        model.forward(t, &mut cache, &mut scratch).unwrap();
    }
    let mut snap = vec![0u8; cache.snapshot_len()];
    cache.snapshot(model.fingerprint(), &mut snap).unwrap();
    let fp = model.fingerprint();
    let snap_err = |e: SnapshotError| Error::Snapshot(e);

    let mut too_short = vec![0u8; snap.len() - 1];
    assert!(matches!(
        cache.snapshot(fp, &mut too_short).unwrap_err(),
        Error::Snapshot(SnapshotError::Truncated { .. })
    ));

    let mut mem2 = vec![0u8; bytes];
    let mut target = LatentCache::new(cfg, 8, opts, &mut mem2).unwrap();
    let mut flipped = snap.clone();
    flipped[70] ^= 1;
    assert_eq!(
        target.restore(fp, &flipped).unwrap_err(),
        snap_err(SnapshotError::ChecksumMismatch)
    );
    assert_eq!(
        target.restore(fp, &snap[..40]).unwrap_err(),
        snap_err(SnapshotError::Truncated { needed: 64, given: 40 })
    );
    assert!(matches!(
        target.restore(fp, &snap[..snap.len() - 1]).unwrap_err(),
        Error::Snapshot(SnapshotError::Truncated { .. })
    ));
    let mut magic = snap.clone();
    magic[0] = b'X';
    assert_eq!(target.restore(fp, &magic).unwrap_err(), snap_err(SnapshotError::BadMagic));
    assert_eq!(
        target.restore(other.fingerprint(), &snap).unwrap_err(),
        snap_err(SnapshotError::ModelMismatch)
    );
    assert_ne!(model.fingerprint(), other.fingerprint());
    assert_eq!(target.len(), 0, "failed restores leave the cache unchanged");

    let q8 = options(CacheStorage::Q8);
    let mut mem3 = vec![0u8; LatentCache::bytes_needed(cfg, 8, CacheStorage::Q8).unwrap()];
    let mut q8_cache = LatentCache::new(cfg, 8, q8, &mut mem3).unwrap();
    assert_eq!(q8_cache.restore(fp, &snap).unwrap_err(), snap_err(SnapshotError::ConfigMismatch));
    let mut mem4 = vec![0u8; LatentCache::bytes_needed(cfg, 9, opts.storage).unwrap()];
    let mut bigger = LatentCache::new(cfg, 9, opts, &mut mem4).unwrap();
    assert_eq!(bigger.restore(fp, &snap).unwrap_err(), snap_err(SnapshotError::ConfigMismatch));

    target.restore(fp, &snap).unwrap();
    assert_eq!((target.len(), target.position()), (3, 3));
}

/// A cache filled at f32 and copied into f16/int8 storage continues like one filled directly
/// in that storage (the same rows are quantised the same way).
#[test]
fn copy_from_converts_storage_and_continues_identically() {
    let name = "v2_lite_moe";
    let file = read_fixture(&format!("{name}.gguf"));
    let model = Model::load(&file).unwrap();
    let cfg = model.config();
    let tokens = Expected::load(name).tokens;
    let capacity = tokens.len();
    let mut scratch_mem = vec![0.0; cfg.scratch_elems(capacity).unwrap()];
    let mut scratch = Scratch::new(cfg, capacity, &mut scratch_mem).unwrap();
    let mut f32_mem =
        vec![0u8; LatentCache::bytes_needed(cfg, capacity, CacheStorage::F32).unwrap()];
    let mut f32_cache =
        LatentCache::new(cfg, capacity, CacheOptions::default(), &mut f32_mem).unwrap();
    for &t in &tokens[..10] {
        model.forward(t, &mut f32_cache, &mut scratch).unwrap();
    }
    let mut tmp = vec![0.0; cfg.cache_row_elems()];
    for storage in [CacheStorage::F16, CacheStorage::Q8, CacheStorage::Q8Compact] {
        let mut mem = vec![0u8; LatentCache::bytes_needed(cfg, capacity, storage).unwrap()];
        let mut converted = LatentCache::new(cfg, capacity, options(storage), &mut mem).unwrap();
        converted.copy_from(&f32_cache, &mut tmp).unwrap();
        assert_eq!((converted.len(), converted.position()), (10, 10));
        // The continuation must track a run that used `storage` from the start (its first
        // rows differ only by where the rounding happened).
        let direct = run_tokens(&model, &tokens, capacity, options(storage)).unwrap();
        for (pos, &t) in tokens.iter().enumerate().skip(10) {
            let got = model.forward(t, &mut converted, &mut scratch).unwrap();
            let rel = max_abs_diff(got, &direct[pos]) / max_abs(&direct[pos]);
            assert!(rel < 5e-2, "{storage:?} pos {pos}: {rel}");
        }
    }
    let mut tiny_mem = vec![0u8; LatentCache::bytes_needed(cfg, 4, CacheStorage::F32).unwrap()];
    let mut tiny = LatentCache::new(cfg, 4, CacheOptions::default(), &mut tiny_mem).unwrap();
    assert_eq!(tiny.copy_from(&f32_cache, &mut tmp).unwrap_err(), Error::CacheFull { capacity: 4 });
}

/// The committed seed corpus of the `cache_restore` fuzz target (core/fuzz/seeds/) holds valid
/// snapshots of `v3_dense_tied` in the configurations that target uses; they must keep
/// restoring. `TINYMLA_WRITE_FUZZ_SEEDS=1` regenerates them.
#[test]
fn fuzz_seed_snapshots_restore() {
    let file = read_fixture("v3_dense_tied.gguf");
    let model = Model::load(&file).unwrap();
    let cfg = model.config();
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/fuzz/seeds/cache_restore");
    let write = std::env::var_os("TINYMLA_WRITE_FUZZ_SEEDS").is_some();
    for storage in [CacheStorage::F32, CacheStorage::Q8] {
        for n_tokens in [3u32, 11] {
            let opts = CacheOptions {
                storage,
                policy: OverflowPolicy::Slide { sinks: 2 },
                ..Default::default()
            };
            let mut mem = vec![0u8; LatentCache::bytes_needed(cfg, 8, storage).unwrap()];
            let mut scratch_mem = vec![0.0; cfg.scratch_elems(8).unwrap()];
            let mut scratch = Scratch::new(cfg, 8, &mut scratch_mem).unwrap();
            let mut cache = LatentCache::new(cfg, 8, opts, &mut mem).unwrap();
            for t in 0..n_tokens {
                model.forward(t, &mut cache, &mut scratch).unwrap();
            }
            let mut snap = vec![0u8; cache.snapshot_len()];
            cache.snapshot(model.fingerprint(), &mut snap).unwrap();
            let path = dir.join(format!("{storage:?}-{n_tokens}.snap").to_lowercase());
            if write {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &snap).unwrap();
            }
            // Seeds must stay valid snapshots of this model and configuration (their bytes may
            // drift by float rounding as kernels change; that does not make them stale).
            let seed = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let mut mem2 = vec![0u8; LatentCache::bytes_needed(cfg, 8, storage).unwrap()];
            let mut restored = LatentCache::new(cfg, 8, opts, &mut mem2).unwrap();
            restored
                .restore(model.fingerprint(), &seed)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!((restored.len(), restored.position()), (cache.len(), cache.position()));
        }
    }
}

//! Context shift (`OverflowPolicy::Shift`, issue #27): against transformers with the same
//! rows dropped and their `k_pe` rotated again for the shifted positions
//! (`<name>.shift_c<C>_s<S>_d<D>.expected.bin`), in every row storage, token by token and
//! batched; positions stay below the capacity; snapshots; bad options.

use crate::common::{max_abs, max_abs_diff, read_fixture, run_tokens, Expected, RunMemory};
use tinymla_core::cache::SnapshotError;
use tinymla_core::{
    CacheOptions, CacheStorage, Error, LatentCache, Model, OverflowPolicy, Scratch, Serial,
};

/// The fixtures with shift files: two YaRN models (V2's RoPE, V3's interleaved RoPE) and the
/// plain-RoPE one.
const SHIFT_MODELS: [&str; 3] = ["v2_lite_moe", "v3_qlora_grouped", "v3_dense_tied"];
/// (sinks, dropped per shift) of the shift files; capacity 8, 20 tokens.
const SHIFT_CASES: [(u32, u32); 4] = [(0, 4), (1, 3), (4, 2), (1, 1)];
const CAPACITY: usize = 8;

/// Relative logit error (max |Δ| / max |logit| per position) allowed against the reference.
/// f32 rows: the bound. f16 rows: one f16 rounding per value plus one more per shift a
/// key survives. int8 rows (`Q8`: int8 `c_kv`, f16 `k_pe`; `Q8Compact`: int8 both, the keys
/// quantised again after each rotation): the mean and 95th percentile over positions, as for
/// unshifted int8 rows in `cache.rs` (a rounding can flip one expert of the random tiny MoE).
const F32_REL_TOL: f32 = 1e-4;
const F16_REL_TOL: f32 = 2e-3;
const Q8_MEAN_REL_TOL: f32 = 1.5e-2;
const Q8_P95_REL_TOL: f32 = 3e-2;

fn shift(sinks: u32, discard: u32) -> OverflowPolicy {
    OverflowPolicy::Shift { sinks, discard }
}

/// Every filled slot holds its own index as position, all below the capacity.
fn assert_slots_in_order(cache: &LatentCache<'_>, what: &str) {
    for slot in 0..cache.len() {
        let pos = cache.slot_position(slot).unwrap();
        assert_eq!(pos, slot as u64, "{what}: slot {slot}");
        assert!(pos < cache.capacity() as u64, "{what}: position {pos}");
    }
    assert_eq!(cache.position(), cache.len() as u64, "{what}");
}

/// Token by token: each step's logits against the reference, and the slot positions after
/// every step.
#[test]
fn shift_matches_transformers_with_rerotated_keys() {
    let storages =
        [CacheStorage::F32, CacheStorage::F16, CacheStorage::Q8, CacheStorage::Q8Compact];
    for storage in storages {
        let mut errors = Vec::new();
        for name in SHIFT_MODELS {
            let file = read_fixture(&format!("{name}.gguf"));
            let model = Model::load(&file).unwrap();
            let cfg = model.config();
            let plain = Expected::load(name);
            for (sinks, discard) in SHIFT_CASES {
                let what = format!("{name} S{sinks} D{discard} {storage:?}");
                let expected =
                    Expected::load(&format!("{name}.shift_c{CAPACITY}_s{sinks}_d{discard}"));
                let opts =
                    CacheOptions { storage, policy: shift(sinks, discard), ..Default::default() };
                let mut mem = vec![0u8; LatentCache::bytes_needed(cfg, CAPACITY, storage).unwrap()];
                let mut scratch_mem = vec![0.0; cfg.scratch_elems(CAPACITY).unwrap()];
                let mut cache = LatentCache::new(cfg, CAPACITY, opts, &mut mem).unwrap();
                let mut scratch = Scratch::new(cfg, CAPACITY, &mut scratch_mem).unwrap();
                let mut worst = 0.0f32;
                for (pos, &t) in expected.tokens.iter().enumerate() {
                    let got = model.forward(t, &mut cache, &mut scratch).unwrap();
                    let want = expected.position(pos);
                    let rel = max_abs_diff(got, want) / max_abs(want);
                    worst = worst.max(rel);
                    if storage == CacheStorage::F32 {
                        assert!(rel <= F32_REL_TOL, "{what} pos {pos}: rel {rel:e}");
                    }
                    if storage == CacheStorage::F16 {
                        assert!(rel <= F16_REL_TOL, "{what} pos {pos}: rel {rel:e}");
                    }
                    if pos >= CAPACITY && storage == CacheStorage::F32 {
                        // The reference must differ from the unshifted run here, or this test
                        // would not be testing the shift.
                        assert!(max_abs_diff(want, plain.position(pos)) > 1e-3, "{what} {pos}");
                    }
                    errors.push(rel);
                    assert_slots_in_order(&cache, &what);
                }
                let shifts = 1 + (expected.tokens.len() - CAPACITY - 1) as u64 / u64::from(discard);
                assert_eq!(cache.shifts(), shifts, "{what}");
                eprintln!("shift {what}: worst rel err {worst:.2e} over {shifts} shifts");
            }
        }
        errors.sort_by(f32::total_cmp);
        let n = errors.len();
        let mean = errors.iter().sum::<f32>() / n as f32;
        let (p95, max) = (errors[n * 95 / 100], errors[n - 1]);
        eprintln!("shift {storage:?}: rel err mean {mean:.2e} p95 {p95:.2e} max {max:.2e} ({n})");
        if matches!(storage, CacheStorage::Q8 | CacheStorage::Q8Compact) {
            assert!(
                mean <= Q8_MEAN_REL_TOL && p95 <= Q8_P95_REL_TOL,
                "{storage:?}: mean {mean:e}, p95 {p95:e}"
            );
        }
    }
}

/// Batched prefill across shifts: chunks of several sizes, logits after each chunk equal to
/// the reference at that position, and the same cache bytes as token by token.
#[test]
fn batched_prefill_shifts_like_token_by_token() {
    for name in SHIFT_MODELS {
        let file = read_fixture(&format!("{name}.gguf"));
        let model = Model::load(&file).unwrap();
        let cfg = model.config();
        for (sinks, discard) in SHIFT_CASES {
            let expected = Expected::load(&format!("{name}.shift_c{CAPACITY}_s{sinks}_d{discard}"));
            let opts = CacheOptions { policy: shift(sinks, discard), ..Default::default() };
            let mut mem = RunMemory::new(cfg, CAPACITY, opts.storage, 8);
            let (mut batched, mut scratch, mut batch) = mem.views(cfg, opts);
            let mut mem_b =
                vec![0u8; LatentCache::bytes_needed(cfg, CAPACITY, opts.storage).unwrap()];
            let mut single = LatentCache::new(cfg, CAPACITY, opts, &mut mem_b).unwrap();
            let mut done = 0;
            for chunk in [5, 7, 1, 6, 1] {
                let tokens = &expected.tokens[done..done + chunk];
                let got = model
                    .forward_batch(tokens, &mut batched, &mut scratch, &mut batch, &Serial)
                    .unwrap()
                    .to_vec();
                done += chunk;
                let want = expected.position(done - 1);
                let rel = max_abs_diff(&got, want) / max_abs(want);
                assert!(rel <= F32_REL_TOL, "{name} S{sinks} D{discard} at {done}: {rel:e}");
                for &t in tokens {
                    model.forward(t, &mut single, &mut scratch).unwrap();
                }
                assert_eq!((batched.len(), batched.position()), (single.len(), single.position()));
                let mut rows = [vec![0.0; 64], vec![0.0; 64]];
                for layer in 0..cfg.num_hidden_layers {
                    for slot in 0..single.len() {
                        assert!(batched.read_row(layer, slot, &mut rows[0]));
                        assert!(single.read_row(layer, slot, &mut rows[1]));
                        assert_eq!(rows[0], rows[1], "{name} S{sinks} D{discard} {layer}/{slot}");
                    }
                }
                assert_slots_in_order(&batched, name);
            }
            assert_eq!(done, expected.tokens.len());
        }
    }
}

/// A shifting cache runs far past the trained context without the opt-in, where the ring
/// slide stops at the trained context.
#[test]
fn shift_runs_past_the_trained_context_with_positions_below_capacity() {
    let file = read_fixture("v3_dense_tied.gguf");
    let model = Model::load(&file).unwrap();
    let cfg = model.config();
    assert_eq!(cfg.context_length, 64);
    let tokens: Vec<u32> = (0..300u32).map(|t| (t * 7) % 250).collect();
    let slide = CacheOptions { policy: OverflowPolicy::Slide { sinks: 4 }, ..Default::default() };
    assert_eq!(
        run_tokens(&model, &tokens, 16, slide).unwrap_err(),
        Error::PositionBeyondContext { pos: 64, context_length: 64 }
    );
    for policy in [shift(4, 6), OverflowPolicy::shift_half(16, 4).unwrap(), shift(0, 1)] {
        for storage in [CacheStorage::F32, CacheStorage::Q8Compact] {
            let opts = CacheOptions { storage, policy, ..Default::default() };
            let mut mem = vec![0u8; LatentCache::bytes_needed(cfg, 16, storage).unwrap()];
            let mut scratch_mem = vec![0.0; cfg.scratch_elems(16).unwrap()];
            let mut cache = LatentCache::new(cfg, 16, opts, &mut mem).unwrap();
            let mut scratch = Scratch::new(cfg, 16, &mut scratch_mem).unwrap();
            for &t in &tokens {
                let logits = model.forward(t, &mut cache, &mut scratch).unwrap();
                assert!(logits.iter().all(|v| v.is_finite()));
                assert_slots_in_order(&cache, &format!("{policy:?}"));
            }
            assert!(cache.shifts() > 0);
        }
    }
    // A cache larger than the trained context still stops there, shift or not.
    let big = CacheOptions { policy: shift(4, 10), ..Default::default() };
    assert_eq!(
        run_tokens(&model, &tokens, 80, big).unwrap_err(),
        Error::PositionBeyondContext { pos: 64, context_length: 64 }
    );
}

#[test]
fn shift_half_drops_half_of_the_non_sink_rows() {
    assert_eq!(OverflowPolicy::shift_half(256, 4), Some(shift(4, 126)));
    assert_eq!(OverflowPolicy::shift_half(8, 0), Some(shift(0, 4)));
    assert_eq!(OverflowPolicy::shift_half(5, 4), Some(shift(4, 1)));
    assert_eq!(OverflowPolicy::shift_half(4, 4), None);
}

/// `push_rows` into a full shifting cache: the cache shifts, and the pushed token's `k_pe`
/// (given for the position before the call) is rotated to its shifted position.
#[test]
fn push_rows_rotates_a_pushed_key_across_the_shift() {
    // Plain RoPE, qk_rope_head_dim 4: inverse frequencies 1 and 1e4^-0.5 = 0.01.
    let file = read_fixture("v3_dense_tied.gguf");
    let model = Model::load(&file).unwrap();
    let cfg = model.config();
    let (kv, rope, layers) = (cfg.kv_lora_rank, cfg.qk_rope_head_dim, cfg.num_hidden_layers);
    assert_eq!(rope, 4);
    let opts = CacheOptions { policy: shift(1, 3), ..Default::default() };
    let mut mem = vec![0u8; LatentCache::bytes_needed(cfg, CAPACITY, opts.storage).unwrap()];
    let mut cache = LatentCache::new(cfg, CAPACITY, opts, &mut mem).unwrap();
    let mut rows = vec![0.0f32; (kv + rope) * layers];
    for row in rows.chunks_exact_mut(kv + rope) {
        row[kv..].copy_from_slice(&[1.0, 0.0, 0.0, 1.0]);
    }
    for _ in 0..CAPACITY {
        cache.push_rows(&rows, cfg.context_length).unwrap();
    }
    assert_eq!((cache.position(), cache.shifts()), (8, 0));
    cache.push_rows(&rows, cfg.context_length).unwrap();
    assert_eq!((cache.position(), cache.len(), cache.shifts()), (6, 6, 1));
    // Position 8 -> 5: every kept and pushed key turned by -3 * inv_freq.
    for slot in 1..6 {
        let mut out = vec![0.0; kv + rope];
        assert!(cache.read_row(0, slot, &mut out));
        let (a0, a1) = (-3.0f32, -3.0f32 * 0.01);
        let want = [a0.cos(), a0.sin(), -a1.sin(), a1.cos()];
        for (g, w) in out[kv..].iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "slot {slot}: {:?} vs {want:?}", &out[kv..]);
        }
    }
    // The sink was not moved or turned.
    let mut out = vec![0.0; kv + rope];
    assert!(cache.read_row(0, 0, &mut out));
    assert_eq!(out[kv..], [1.0, 0.0, 0.0, 1.0]);
}

/// Snapshots of a shifted cache restore and continue bit-identically; a snapshot whose
/// positions are not in slot order is refused (a shift would misplace them).
#[test]
fn shifted_cache_snapshots_restore_and_bad_positions_are_refused() {
    let name = "v3_qlora_grouped";
    let file = read_fixture(&format!("{name}.gguf"));
    let model = Model::load(&file).unwrap();
    let cfg = model.config();
    let tokens = Expected::load(name).tokens;
    let opts = CacheOptions { policy: shift(1, 3), ..Default::default() };
    let reference = run_tokens(&model, &tokens, CAPACITY, opts).unwrap();
    let bytes = LatentCache::bytes_needed(cfg, CAPACITY, opts.storage).unwrap();
    let (mut mem_a, mut mem_b) = (vec![0u8; bytes], vec![0u8; bytes]);
    let mut scratch_mem = vec![0.0; cfg.scratch_elems(CAPACITY).unwrap()];
    let mut scratch = Scratch::new(cfg, CAPACITY, &mut scratch_mem).unwrap();
    let mut first = LatentCache::new(cfg, CAPACITY, opts, &mut mem_a).unwrap();
    let split = 13;
    for &t in &tokens[..split] {
        model.forward(t, &mut first, &mut scratch).unwrap();
    }
    assert!(first.shifts() > 0);
    let mut snap = vec![0u8; first.snapshot_len()];
    first.snapshot(model.fingerprint(), &mut snap).unwrap();
    let mut second = LatentCache::new(cfg, CAPACITY, opts, &mut mem_b).unwrap();
    second.restore(model.fingerprint(), &snap).unwrap();
    for (pos, &t) in tokens.iter().enumerate().skip(split) {
        let got = model.forward(t, &mut second, &mut scratch).unwrap();
        assert_eq!(got, &reference[pos][..], "pos {pos}");
    }
    // Another policy kind is another configuration.
    let slide = CacheOptions { policy: OverflowPolicy::Slide { sinks: 1 }, ..opts };
    let mut mem_c = vec![0u8; bytes];
    let mut other = LatentCache::new(cfg, CAPACITY, slide, &mut mem_c).unwrap();
    assert_eq!(
        other.restore(model.fingerprint(), &snap),
        Err(Error::Snapshot(SnapshotError::ConfigMismatch))
    );
    // Slot 1 claiming position 7, with a valid checksum.
    let mut bad = snap.clone();
    bad[64 + 4..64 + 8].copy_from_slice(&7u32.to_le_bytes());
    let body = bad.len() - 8;
    let sum = fnv1a64(&bad[..body]);
    bad[body..].copy_from_slice(&sum.to_le_bytes());
    let mut mem_d = vec![0u8; bytes];
    let mut third = LatentCache::new(cfg, CAPACITY, opts, &mut mem_d).unwrap();
    assert_eq!(
        third.restore(model.fingerprint(), &bad),
        Err(Error::Snapshot(SnapshotError::Corrupt))
    );
    assert!(third.is_empty());
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3))
}

#[test]
fn invalid_shift_options_are_rejected() {
    let file = read_fixture("v3_dense_tied.gguf");
    let model = Model::load(&file).unwrap();
    let cfg = model.config();
    let mut mem = vec![0u8; 1 << 16];
    for policy in [shift(2, 0), shift(4, 5), shift(9, 0), shift(u32::MAX, 2)] {
        let opts = CacheOptions { policy, ..Default::default() };
        assert_eq!(
            LatentCache::new(cfg, 8, opts, &mut mem).unwrap_err(),
            Error::InvalidCacheOptions,
            "{policy:?}"
        );
    }
    let all_but_sinks = CacheOptions { policy: shift(4, 4), ..Default::default() };
    assert!(LatentCache::new(cfg, 8, all_but_sinks, &mut mem).is_ok());
}

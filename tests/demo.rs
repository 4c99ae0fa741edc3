//! The bundled demo models (issue #8) against the transformers run that trained them
//! (`models/<name>.json`, written by `scripts/train_demo.py`): greedy continuations, and
//! held-out perplexity.

use std::path::PathBuf;

use tinymla_core::sampler::argmax;
use tinymla_core::{CacheOptions, CacheStorage, LatentCache, Model, Scratch};

fn models_dir() -> PathBuf {
    std::env::var_os("TINYMLA_DEMO_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models"))
}

fn reference(name: &str) -> serde_json::Value {
    let path = models_dir().join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

/// Greedy continuation: feeds `prompt`, then `n` argmax tokens.
fn greedy(model: &Model<'_>, prompt: &[u32], n: usize) -> Vec<u32> {
    let cfg = model.config();
    let cap = prompt.len() + n;
    let mut cache_mem = vec![0u8; LatentCache::bytes_needed(cfg, cap, Default::default()).unwrap()];
    let mut scratch_mem = vec![0.0; cfg.scratch_elems(cap).unwrap()];
    let mut cache = LatentCache::new(cfg, cap, CacheOptions::default(), &mut cache_mem).unwrap();
    let mut scratch = Scratch::new(cfg, cap, &mut scratch_mem).unwrap();
    let mut next = 0;
    for &t in prompt {
        next = argmax(model.forward(t, &mut cache, &mut scratch).unwrap());
    }
    let mut out = vec![next];
    while out.len() < n {
        next = argmax(model.forward(next, &mut cache, &mut scratch).unwrap());
        out.push(next);
    }
    out
}

/// Perplexity over windows that each start from a fresh cache at position 0: feed
/// `ids[..len-1]`, score `ids[1..]`.
fn perplexity(model: &Model<'_>, windows: &[Vec<u32>]) -> f64 {
    scored(model, windows, CacheStorage::F32).0
}

/// [`perplexity`] with cache rows stored as `storage`, and at every position the argmax and
/// the margin between the two largest logits.
fn scored(
    model: &Model<'_>,
    windows: &[Vec<u32>],
    storage: CacheStorage,
) -> (f64, Vec<(usize, f32)>) {
    let cfg = model.config();
    let (mut nll, mut count, mut top) = (0.0f64, 0usize, Vec::new());
    for w in windows {
        let cap = w.len() - 1;
        let mut cache_mem = vec![0u8; LatentCache::bytes_needed(cfg, cap, storage).unwrap()];
        let mut scratch_mem = vec![0.0; cfg.scratch_elems(cap).unwrap()];
        let options = CacheOptions { storage, ..CacheOptions::default() };
        let mut cache = LatentCache::new(cfg, cap, options, &mut cache_mem).unwrap();
        let mut scratch = Scratch::new(cfg, cap, &mut scratch_mem).unwrap();
        for pair in w.windows(2) {
            let logits = model.forward(pair[0], &mut cache, &mut scratch).unwrap();
            let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let lse =
                f64::from(m) + logits.iter().map(|v| f64::from(v - m).exp()).sum::<f64>().ln();
            nll += lse - f64::from(logits[pair[1] as usize]);
            count += 1;
            let best = argmax(logits) as usize;
            let second = logits
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != best)
                .map(|(_, v)| *v)
                .fold(f32::NEG_INFINITY, f32::max);
            top.push((best, logits[best] - second));
        }
    }
    ((nll / count as f64).exp(), top)
}

/// Checks `name`'s committed files: `suffixes` lists which (`"f32"`: exact greedy and
/// perplexity within 1%; `"q8_0"`: greedy at least as far as the exact Q8_0 reference, and
/// perplexity within 1%).
fn check(name: &str, suffixes: &[&str]) {
    let r = reference(name);
    // Greedy prefix the float64 reference reaches on the Q8_0 file (dequantised weights).
    let q8_reference_prefix: Vec<usize> = r["checks"]["q8_0_gguf_numpy_ref"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["greedy_prefix_equal"].as_u64().unwrap() as usize)
        .collect();
    for &suffix in suffixes {
        let exact = suffix == "f32";
        let path = models_dir().join(format!("{name}.{suffix}.gguf"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let model = Model::load(&bytes).unwrap();
        for (i, p) in r["greedy"]["prompts"].as_array().unwrap().iter().enumerate() {
            let (prompt, want) = (ids(&p["ids"]), ids(&p["new_ids"]));
            let got = greedy(&model, &prompt, want.len());
            let same_prefix = got.iter().zip(&want).take_while(|(a, b)| a == b).count();
            eprintln!(
                "demo {name}.{suffix} {:?}: {same_prefix}/{} before divergence",
                p["text"],
                want.len()
            );
            if exact {
                assert_eq!(got, want, "{name}.{suffix} greedy for {}", p["text"]);
            } else {
                // The engine (int8 activations too) must follow the f32 run at least as far as
                // the exact reference computation on the same Q8_0 weights does.
                assert!(
                    same_prefix >= q8_reference_prefix[i],
                    "{name}.{suffix}: prefix {same_prefix} < reference {}",
                    q8_reference_prefix[i]
                );
            }
        }
        let windows: Vec<Vec<u32>> =
            r["ppl_slice"]["windows"].as_array().unwrap().iter().map(ids).collect();
        let want = r["ppl_slice"]["perplexity"].as_f64().unwrap();
        let got = perplexity(&model, &windows);
        eprintln!(
            "demo {name}.{suffix}: held-out slice perplexity {got:.4} (transformers f32 {want:.4})"
        );
        // f32 within 1% of transformers (issue #8); Q8_0 held to the same 1% here.
        assert!((got - want).abs() <= 0.01 * want, "{name}.{suffix}: perplexity {got} vs {want}");
    }
}

#[test]
fn demo_s_matches_its_training_run() {
    check("demo-s", &["f32", "q8_0"]);
}

/// demo-m ships only as Q8_0: its F32 file (12.6 MB) is not committed.
#[test]
fn demo_m_matches_its_training_run() {
    check("demo-m", &["q8_0"]);
}

/// Cache storage on trained models and real text (the 1,024 held-out positions of each demo
/// model), against f32 rows: perplexity within 1% for every storage. F16 and Q8 rows change
/// the greedy token only where the f32 run's top two logits are within [`NEAR_TIE`] (odds
/// under e^0.5 = 1.65): the tiny demo models have many near ties, so even f16 flips 9-15 of
/// 1,024. Q8Compact's 8-bit RoPE keys cost more: it can flip a wider margin (measured 0.715
/// on demo-m), so it is held to >= 98% greedy agreement instead. Measured (kept / widest
/// margin flipped): demo-s F16 1009 / 0.058, Q8 1005 / 0.104, Q8Compact 1004 / 0.118;
/// demo-m F16 1014 / 0.176, Q8 1017 / 0.176, Q8Compact 1009 / 0.715.
#[test]
fn cache_storage_on_demo_text() {
    /// Logit margin below which the f32 run's choice is a near tie.
    const NEAR_TIE: f32 = 0.5;
    for name in ["demo-s", "demo-m"] {
        let r = reference(name);
        let windows: Vec<Vec<u32>> =
            r["ppl_slice"]["windows"].as_array().unwrap().iter().map(ids).collect();
        let bytes = std::fs::read(models_dir().join(format!("{name}.q8_0.gguf"))).unwrap();
        let model = Model::load(&bytes).unwrap();
        let (ppl_f32, top_f32) = scored(&model, &windows, CacheStorage::F32);
        for storage in [CacheStorage::F16, CacheStorage::Q8, CacheStorage::Q8Compact] {
            let (ppl, top) = scored(&model, &windows, storage);
            let flips: Vec<f32> =
                top.iter().zip(&top_f32).filter(|(a, b)| a.0 != b.0).map(|(_, b)| b.1).collect();
            let widest = flips.iter().copied().fold(0.0f32, f32::max);
            let n = top.len();
            eprintln!(
                "{name} cache {storage:?}: greedy {}/{n} as f32 rows (widest f32 margin flipped \
                 {widest:.3}), perplexity {ppl:.4} (f32 rows {ppl_f32:.4})",
                n - flips.len()
            );
            if storage == CacheStorage::Q8Compact {
                let kept = n - flips.len();
                assert!(kept * 100 >= n * 98, "{name} {storage:?}: greedy {kept}/{n}");
            } else {
                assert!(widest < NEAR_TIE, "{name} {storage:?}: flipped a margin of {widest}");
            }
            assert!((ppl - ppl_f32).abs() <= 0.01 * ppl_f32, "{name} {storage:?}: ppl {ppl}");
        }
    }
}

//! The bundled demo models (issue #8) against the transformers run that trained them
//! (`models/<name>.json`, written by `scripts/train_demo.py`): greedy continuations, and
//! held-out perplexity. Only the Q8_0 files are committed: the training snaps every Q8_0
//! tensor to the Q8_0 grid (quantisation-aware training), so the F32 file is the Q8_0 file
//! dequantised, which [`f32_from_q8_0`] rebuilds byte for byte (checked against the sha256 the
//! script recorded).

use std::path::PathBuf;

use tinymla_core::kernels::scalar::f16_to_f32;
use tinymla_core::sampler::argmax;
use tinymla_core::{CacheOptions, CacheStorage, GgmlType, LatentCache, Model, Scratch};
use tinymla_host::gguf_writer::TensorData;

use crate::common::{rewrite, Edit};

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

/// The F32 GGUF `scripts/train_demo.py` wrote beside `q8_0` (a Q8_0 GGUF): the same metadata
/// without the two keys the quantised copy adds, every Q8_0 tensor dequantised (`d · q` in f32,
/// as `gguf.quants.dequantize` computes it), F32 tensors as they are.
fn f32_from_q8_0(q8_0: &[u8]) -> Vec<u8> {
    let edit = |key: &str| match key {
        "general.file_type" | "general.quantization_version" => Edit::Drop,
        _ => Edit::Keep,
    };
    rewrite(q8_0, edit, Vec::new(), |t| {
        if t.ggml_type != GgmlType::Q8_0.id() {
            return Some(t);
        }
        let mut bytes = Vec::with_capacity(t.bytes.len() / 34 * 32 * 4);
        for block in t.bytes.chunks_exact(34) {
            let d = f16_to_f32([block[0], block[1]]);
            for &q in &block[2..] {
                bytes.extend_from_slice(&(d * f32::from(q as i8)).to_le_bytes());
            }
        }
        Some(TensorData { ggml_type: GgmlType::F32.id(), bytes, ..t })
    })
}

/// SHA-256 (FIPS 180-4) of `data`, as lowercase hex.
fn sha256_hex(data: &[u8]) -> String {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&(data.len() as u64 * 8).to_be_bytes());
    for chunk in msg.chunks_exact(64) {
        let mut w = [0u32; 64];
        for (wi, b) in w.iter_mut().zip(chunk.chunks_exact(4)) {
            *wi = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16].wrapping_add(s0).wrapping_add(w[i - 7]).wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for (k, wi) in K.iter().zip(w) {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh.wrapping_add(s1).wrapping_add(ch).wrapping_add(*k).wrapping_add(wi);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            (hh, g, f, e, d, c, b, a) = (g, f, e, d.wrapping_add(t1), c, b, a, t1.wrapping_add(t2));
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(y);
        }
    }
    h.iter().map(|x| format!("{x:08x}")).collect()
}

#[test]
fn sha256_known_answers() {
    assert_eq!(sha256_hex(b""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    let abc = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    assert_eq!(sha256_hex(abc), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
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

/// Which file of a demo model a check runs on.
#[derive(Clone, Copy, PartialEq)]
enum Precision {
    /// The F32 file, rebuilt from the committed Q8_0 one ([`f32_from_q8_0`]) and checked
    /// against the sha256 of the file the script wrote.
    F32,
    /// The committed Q8_0 file (the engine quantises activations to Q8_0 blocks as well).
    Q8_0,
}

/// Checks `name` against its training run (issue #8). F32: greedy equal to transformers' for
/// every prompt. Q8_0: every prompt's greedy equal to transformers' for at least 90% of its new
/// tokens before the first divergence (29 of 32). Both: slice perplexity within 1% of
/// transformers'. Prints every prompt's prefix before asserting.
fn check(name: &str, precision: Precision) {
    let r = reference(name);
    let path = models_dir().join(format!("{name}.q8_0.gguf"));
    let q8_0 = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (suffix, bytes) = match precision {
        Precision::Q8_0 => ("q8_0", q8_0),
        Precision::F32 => {
            let f32_file = f32_from_q8_0(&q8_0);
            assert_eq!(
                sha256_hex(&f32_file),
                r["files"]["f32_sha256"].as_str().unwrap(),
                "{name}: the F32 file rebuilt from the Q8_0 one differs from the script's"
            );
            ("f32", f32_file)
        }
    };
    let model = Model::load(&bytes).unwrap();
    let mut failures = Vec::new();
    for p in r["greedy"]["prompts"].as_array().unwrap() {
        let (prompt, want) = (ids(&p["ids"]), ids(&p["new_ids"]));
        let got = greedy(&model, &prompt, want.len());
        let same_prefix = got.iter().zip(&want).take_while(|(a, b)| a == b).count();
        let n = want.len();
        eprintln!("demo {name}.{suffix} {:?}: {same_prefix}/{n} before divergence", p["text"]);
        let ok = match precision {
            Precision::F32 => same_prefix == n,
            Precision::Q8_0 => same_prefix * 10 >= n * 9,
        };
        if !ok {
            failures.push(format!("{}: {same_prefix}/{n}", p["text"]));
        }
    }
    let windows: Vec<Vec<u32>> =
        r["ppl_slice"]["windows"].as_array().unwrap().iter().map(ids).collect();
    let want = r["ppl_slice"]["perplexity"].as_f64().unwrap();
    let got = perplexity(&model, &windows);
    eprintln!(
        "demo {name}.{suffix}: held-out slice perplexity {got:.4} (transformers f32 {want:.4})"
    );
    assert!(failures.is_empty(), "{name}.{suffix} greedy before divergence: {failures:?}");
    // f32 within 1% of transformers (issue #8); Q8_0 held to the same 1% here.
    assert!((got - want).abs() <= 0.01 * want, "{name}.{suffix}: perplexity {got} vs {want}");
}

/// Measured: 32/32 on every prompt; slice perplexity 56.5679, transformers' 56.5679.
#[test]
fn demo_s_f32_matches_its_training_run() {
    check("demo-s", Precision::F32);
}

/// Measured: 12, 32, 27 of 32 (fails issue #8's 29). The float64 reference on the same Q8_0
/// weights follows all 32 tokens of every prompt; the engine's int8 activations flip ties of
/// 0.0023 and 0.0011 logits at tokens 13 and 28. Slice perplexity 56.6044 (transformers
/// 56.5679).
#[test]
fn demo_s_q8_0_matches_its_training_run() {
    check("demo-s", Precision::Q8_0);
}

/// Measured: 32/32 on every prompt; slice perplexity 43.5711, transformers' 43.5711.
#[test]
fn demo_m_f32_matches_its_training_run() {
    check("demo-m", Precision::F32);
}

/// Measured: 32/32 on every prompt; slice perplexity 43.5027 (transformers 43.5711).
#[test]
fn demo_m_q8_0_matches_its_training_run() {
    check("demo-m", Precision::Q8_0);
}

/// Cache storage on trained models and real text (the 1,024 held-out positions of each demo
/// model), against f32 rows: perplexity within 1% for every storage. F16 and Q8 rows change
/// the greedy token only where the f32 run's top two logits are within [`NEAR_TIE`] (odds
/// under e^0.5 = 1.65): the tiny demo models have many near ties, so even f16 flips 9-15 of
/// 1,024. Q8Compact's 8-bit RoPE keys cost more: it can flip a wider margin (measured 0.715
/// on the demo-m trained without QAT), so it is held to >= 98% greedy agreement instead.
/// Measured on the QAT-trained models (kept / widest margin flipped): demo-s F16 1006 /
/// 0.065, Q8 1006 / 0.302, Q8Compact 1002 / 0.127 (below 98%: fails); demo-m F16 1009 /
/// 0.126, Q8 1007 / 1.110 (above NEAR_TIE: fails), Q8Compact 1006 / 1.110. Perplexity
/// within 0.2% for every storage. Before QAT: demo-s F16 1009 / 0.058, Q8 1005 / 0.104,
/// Q8Compact 1004 / 0.118; demo-m F16 1014 / 0.176, Q8 1017 / 0.176, Q8Compact 1009 / 0.715.
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

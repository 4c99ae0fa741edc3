//! Shared helpers: fixture paths and the expected-logits file format.

use std::path::PathBuf;

/// `tests/fixtures/<name>`.
pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}

/// Reads a fixture file, failing the test with the path if it is missing.
pub fn read_fixture(name: &str) -> Vec<u8> {
    let path = fixture_path(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The golden configurations written by `scripts/gen_fixtures.py`.
pub const GOLDEN_MODELS: &[&str] =
    &["v2_lite_moe", "v3_qlora_grouped", "v3_dense_tied", "v2_grouped_legacy"];

/// Expected output of the reference for one prompt: `<name>.expected.bin`.
///
/// Format (little-endian): `TMLE`, u32 version = 1, u32 n_pos, u32 n_vocab,
/// n_pos × u32 token ids, n_pos × n_vocab × f32 logits (row-major `[pos][vocab]`).
pub struct Expected {
    pub tokens: Vec<u32>,
    pub n_vocab: usize,
    /// `[n_pos][n_vocab]` flattened.
    pub logits: Vec<f32>,
}

impl Expected {
    pub fn load(name: &str) -> Self {
        let bytes = read_fixture(&format!("{name}.expected.bin"));
        assert_eq!(&bytes[..4], b"TMLE", "{name}: bad magic");
        let word = |i: usize| u32::from_le_bytes(bytes[4 * i..4 * i + 4].try_into().unwrap());
        assert_eq!(word(1), 1, "{name}: version");
        let (n_pos, n_vocab) = (word(2) as usize, word(3) as usize);
        let tokens: Vec<u32> = (0..n_pos).map(|i| word(4 + i)).collect();
        let start = 4 * (4 + n_pos);
        let logits: Vec<f32> = bytes[start..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(logits.len(), n_pos * n_vocab, "{name}: logits length");
        Expected { tokens, n_vocab, logits }
    }

    pub fn position(&self, pos: usize) -> &[f32] {
        &self.logits[pos * self.n_vocab..(pos + 1) * self.n_vocab]
    }
}

/// Index of the largest value (first on ties).
pub fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

use tinymla_core::{CacheOptions, Error, LatentCache, Model, Scratch};

/// Runs `tokens` one by one through a fresh cache of `capacity` slots with `options` and
/// returns every step's logits.
pub fn run_tokens(
    model: &Model<'_>,
    tokens: &[u32],
    capacity: usize,
    options: CacheOptions,
) -> Result<Vec<Vec<f32>>, Error> {
    let cfg = model.config();
    let mut cache_mem = vec![0u8; LatentCache::bytes_needed(cfg, capacity, options.storage)?];
    let mut scratch_mem = vec![0.0f32; cfg.scratch_elems(capacity)?];
    let mut cache = LatentCache::new(cfg, capacity, options, &mut cache_mem)?;
    let mut scratch = Scratch::new(cfg, capacity, &mut scratch_mem)?;
    tokens
        .iter()
        .map(|&t| model.forward(t, &mut cache, &mut scratch).map(<[f32]>::to_vec))
        .collect()
}

/// max |a - b| over two equal-length slices.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
}

/// max |v|.
pub fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0.0f32, |m, x| m.max(x.abs()))
}

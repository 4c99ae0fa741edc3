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
    &["v2_lite_moe", "v3_qlora_grouped", "v3_dense_tied", "v2_grouped_legacy", "v3_aligned"];

/// The fixtures none of whose row lengths is a multiple of 32: their `q8_0` copies hold only
/// F16 fallbacks, as llama.cpp's converter writes them.
pub const UNALIGNED_MODELS: &[&str] =
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
    run_tokens_with(model, tokens, capacity, options, &tinymla_core::Serial)
}

/// [`run_tokens`] with matrix rows spread over `par`.
pub fn run_tokens_with(
    model: &Model<'_>,
    tokens: &[u32],
    capacity: usize,
    options: CacheOptions,
    par: &dyn tinymla_core::Parallel,
) -> Result<Vec<Vec<f32>>, Error> {
    let cfg = model.config();
    let mut cache_mem = vec![0u8; LatentCache::bytes_needed(cfg, capacity, options.storage)?];
    let mut scratch_mem = vec![0.0f32; cfg.scratch_elems(capacity)?];
    let mut cache = LatentCache::new(cfg, capacity, options, &mut cache_mem)?;
    let mut scratch = Scratch::new(cfg, capacity, &mut scratch_mem)?;
    tokens
        .iter()
        .map(|&t| model.forward_with(t, &mut cache, &mut scratch, par).map(<[f32]>::to_vec))
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

use tinymla_core::gguf::MetadataValue;
use tinymla_core::Gguf;
use tinymla_host::gguf_writer::{GgufWriter, TensorData, Value};

/// What [`rewrite`] does with one metadata entry.
pub enum Edit {
    Keep,
    Drop,
    Set(Value),
}

/// Re-writes the GGUF `bytes` with metadata edited by `edit` (and `add` appended), and tensors
/// edited by `tensor` (return `None` to drop one). For building precise hostile models from
/// the fixtures.
pub fn rewrite(
    bytes: &[u8],
    edit: impl Fn(&str) -> Edit,
    add: Vec<(&str, Value)>,
    tensor: impl Fn(TensorData) -> Option<TensorData>,
) -> Vec<u8> {
    let g = Gguf::parse(bytes).unwrap();
    let mut w = GgufWriter::new();
    for (key, value) in g.metadata() {
        let value = match edit(key) {
            Edit::Drop => continue,
            Edit::Set(v) => v,
            Edit::Keep => to_value(&value),
        };
        w.kv(key, value);
    }
    for (key, value) in add {
        w.kv(key, value);
    }
    for t in g.tensors() {
        let data = TensorData {
            name: t.name.to_string(),
            ne: t.dims[..t.n_dims as usize].to_vec(),
            ggml_type: t.ggml_type.id(),
            bytes: t.bytes.to_vec(),
        };
        if let Some(d) = tensor(data) {
            w.tensor(d);
        }
    }
    w.to_bytes()
}

fn to_value(v: &MetadataValue<'_>) -> Value {
    match v {
        MetadataValue::U32(x) => Value::U32(*x),
        MetadataValue::F32(x) => Value::F32(*x),
        MetadataValue::Bool(x) => Value::Bool(*x),
        MetadataValue::String(_) => Value::Str(v.as_str().unwrap().to_string()),
        MetadataValue::Array(a) => match a.iter().next() {
            Some(MetadataValue::I32(_)) => Value::I32Array(
                a.iter().map(|e| if let MetadataValue::I32(x) = e { x } else { 0 }).collect(),
            ),
            _ => Value::StrArray(a.iter().map(|e| e.as_str().unwrap_or("").to_string()).collect()),
        },
        other => panic!("fixture metadata type not handled by the test writer: {other:?}"),
    }
}

/// Expected logits at some positions of a long prompt: `<name>.expected_at.bin`.
///
/// Format (little-endian): `TMLE`, u32 version = 2, u32 n_tokens, u32 n_pos, u32 n_vocab,
/// n_tokens × u32 token ids, n_pos × u32 positions, n_pos × n_vocab × f32 logits.
pub struct ExpectedAt {
    pub tokens: Vec<u32>,
    /// `(position, logits)` for each kept position, in order.
    pub rows: Vec<(usize, Vec<f32>)>,
}

impl ExpectedAt {
    pub fn load(name: &str) -> Self {
        let bytes = read_fixture(&format!("{name}.expected_at.bin"));
        assert_eq!(&bytes[..4], b"TMLE", "{name}: bad magic");
        let word = |i: usize| u32::from_le_bytes(bytes[4 * i..4 * i + 4].try_into().unwrap());
        assert_eq!(word(1), 2, "{name}: version");
        let (n_tokens, n_pos, n_vocab) = (word(2) as usize, word(3) as usize, word(4) as usize);
        let tokens: Vec<u32> = (0..n_tokens).map(|i| word(5 + i)).collect();
        let positions: Vec<usize> = (0..n_pos).map(|i| word(5 + n_tokens + i) as usize).collect();
        let start = 4 * (5 + n_tokens + n_pos);
        let logits: Vec<f32> = bytes[start..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(logits.len(), n_pos * n_vocab, "{name}: logits length");
        let rows =
            positions.into_iter().zip(logits.chunks_exact(n_vocab).map(<[f32]>::to_vec)).collect();
        ExpectedAt { tokens, rows }
    }
}

/// Owned memory for one run: a latent cache of `capacity` rows, the step scratch, and the
/// batched-prefill scratch for `max_batch` tokens.
pub struct RunMemory {
    cache: Vec<u8>,
    scratch: Vec<f32>,
    floats: Vec<f32>,
    bytes: Vec<u8>,
    capacity: usize,
    max_batch: usize,
}

impl RunMemory {
    pub fn new(
        cfg: &tinymla_core::ModelConfig,
        capacity: usize,
        storage: tinymla_core::CacheStorage,
        max_batch: usize,
    ) -> Self {
        let sizes = tinymla_core::BatchScratch::sizes(cfg, max_batch).unwrap();
        RunMemory {
            cache: vec![0u8; LatentCache::bytes_needed(cfg, capacity, storage).unwrap()],
            scratch: vec![0.0; cfg.scratch_elems(capacity).unwrap()],
            floats: vec![0.0; sizes.floats],
            bytes: vec![0u8; sizes.bytes],
            capacity,
            max_batch,
        }
    }

    /// An empty cache with `options`, the scratch and the batch scratch.
    pub fn views(
        &mut self,
        cfg: &tinymla_core::ModelConfig,
        options: CacheOptions,
    ) -> (LatentCache<'_>, Scratch<'_>, tinymla_core::BatchScratch<'_>) {
        let cache = LatentCache::new(cfg, self.capacity, options, &mut self.cache).unwrap();
        let scratch = Scratch::new(cfg, self.capacity, &mut self.scratch).unwrap();
        let batch =
            tinymla_core::BatchScratch::new(cfg, self.max_batch, &mut self.floats, &mut self.bytes)
                .unwrap();
        (cache, scratch, batch)
    }
}

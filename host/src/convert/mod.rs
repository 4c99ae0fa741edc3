//! `tinymla convert`: a Hugging Face DeepSeek-V2/V3 checkpoint folder → one GGUF file in
//! llama.cpp's `deepseek2` layout, tokenizer included, loadable by tinymla and llama.cpp.
//!
//! Reference: llama.cpp's `convert_hf_to_gguf.py` (`DeepseekV2Model`), pinned to the copy in
//! the llama-cpp-python 0.3.36 sdist (see `tests/fixtures/llamacpp/PROVENANCE.md`).
//!
//! One job per module: [`hf_config`] maps `config.json` to the `deepseek2.*` keys, [`vocab`]
//! the tokenizer files to `tokenizer.*`, [`checkpoint`] maps the shards and indexes their
//! tensors, [`plan`] maps tensor names and shapes, [`quantize`] encodes rows. This module
//! streams the result: the header first, then each tensor row by row, so memory use is one
//! row plus the output buffer whatever the model size; shards are memory-mapped, never read.

pub mod checkpoint;
pub mod error;
pub mod hf_config;
pub mod plan;
pub mod quantize;
pub mod vocab;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use tinymla_core::GgmlType;

pub use error::ConvertError;
pub use hf_config::HfConfig;
pub use quantize::OutType;

use crate::durable;
use crate::gguf_writer::{self, TensorInfo, Value};

/// What to convert and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// The Hugging Face checkpoint folder.
    pub input: PathBuf,
    /// The GGUF file to write (replaced only once the conversion succeeded).
    pub output: PathBuf,
    /// Storage type of the large matrices.
    pub out_type: OutType,
    /// Draw a progress bar on stderr (hidden anyway when stderr is not a terminal).
    pub progress: bool,
}

/// What a conversion wrote.
#[derive(Debug, Clone)]
pub struct Report {
    /// Tensors written.
    pub n_tensors: usize,
    /// Parameters (elements) written.
    pub n_params: u64,
    /// Number of tensors stored as each ggml type, by type name.
    pub type_counts: Vec<(&'static str, usize)>,
    /// Shard files read and their total bytes.
    pub n_shards: usize,
    /// Total bytes of the input shards.
    pub input_bytes: u64,
    /// Bytes of the output file.
    pub output_bytes: u64,
    /// Wall time of the whole conversion.
    pub seconds: f64,
}

/// Converts `opts.input` to `opts.output`.
///
/// Everything is checked (config, tokenizer, every tensor's presence and shape) before the
/// first byte is written. The file is written with [`durable::write_atomically`]: a failed or
/// killed run leaves an existing `OUTPUT` as it was and never a truncated GGUF behind.
///
/// # Errors
/// [`ConvertError`]: a missing or malformed input file, an unsupported model or tokenizer, a
/// missing or wrong-shaped tensor, or an I/O error while writing.
pub fn convert(opts: &Options) -> Result<Report, ConvertError> {
    let start = Instant::now();
    let dir = &opts.input;
    if !dir.is_dir() {
        return Err(if dir.exists() {
            ConvertError::NotADirectory(dir.clone())
        } else {
            ConvertError::MissingFile(dir.clone())
        });
    }
    let cfg = HfConfig::load(dir)?;
    let shards = checkpoint::Shards::open(dir)?;
    let ckpt = checkpoint::Checkpoint::index(&shards)?;
    let tensors = plan::build(&cfg, &ckpt)?;
    let tokenizer = vocab::metadata(dir, &cfg)?;

    let mut metadata: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::Str(hf_config::ARCH.into())),
        ("general.type".into(), Value::Str("model".into())),
        ("general.name".into(), Value::Str(model_name(dir))),
    ];
    metadata.extend(cfg.metadata());
    metadata.push(("general.file_type".into(), Value::U32(opts.out_type.file_type())));
    metadata.push(("general.quantization_version".into(), Value::U32(2)));
    metadata.extend(tokenizer);

    // The split MLA layout has one KV head (`attention.head_count_kv` = 1).
    let rules = quantize::TypeRules::new(
        opts.out_type,
        cfg.num_hidden_layers,
        cfg.num_attention_heads,
        tensors.iter().map(|t| t.name.as_str()),
    );
    let types: Vec<GgmlType> =
        tensors.iter().map(|t| rules.tensor_type(&t.name, t.ne.len(), t.row_len())).collect();
    let infos: Vec<TensorInfo> = tensors
        .iter()
        .zip(&types)
        .map(|(t, &ty)| TensorInfo {
            name: t.name.clone(),
            ne: t.ne.clone(),
            ggml_type: ty.id(),
            n_bytes: (quantize::row_bytes(ty, t.row_len()) * t.n_rows()) as u64,
        })
        .collect();

    write_file(&opts.output, &metadata, &infos, &tensors, &types, opts.progress)?;

    let mut type_counts: Vec<(&'static str, usize)> = Vec::new();
    for ty in &types {
        match type_counts.iter_mut().find(|(n, _)| *n == ty.name()) {
            Some(entry) => entry.1 += 1,
            None => type_counts.push((ty.name(), 1)),
        }
    }
    let output_bytes = std::fs::metadata(&opts.output).map(|m| m.len()).unwrap_or(0);
    Ok(Report {
        n_tensors: tensors.len(),
        n_params: tensors.iter().map(|t| t.ne.iter().product::<u64>()).sum(),
        type_counts,
        n_shards: shards.len(),
        input_bytes: shards.total_bytes(),
        output_bytes,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// `general.name`: the checkpoint folder's name.
fn model_name(dir: &Path) -> String {
    let canonical = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
    canonical.file_name().map_or_else(|| "model".into(), |n| n.to_string_lossy().into_owned())
}

fn write_file(
    path: &Path,
    metadata: &[(String, Value)],
    infos: &[TensorInfo],
    tensors: &[plan::OutTensor<'_>],
    types: &[GgmlType],
    progress: bool,
) -> Result<(), ConvertError> {
    let io_err = |e| ConvertError::Io(path.to_owned(), e);
    durable::write_atomically(path, io_err, |out| {
        write_gguf(out, metadata, infos, tensors, types, progress, path)
    })
}

/// The GGUF bytes of [`write_file`]: header, then every tensor's rows encoded in `types`.
fn write_gguf(
    mut out: &mut dyn Write,
    metadata: &[(String, Value)],
    infos: &[TensorInfo],
    tensors: &[plan::OutTensor<'_>],
    types: &[GgmlType],
    progress: bool,
    path: &Path,
) -> Result<(), ConvertError> {
    let io_err = |e| ConvertError::Io(path.to_owned(), e);
    gguf_writer::write_header(&mut out, metadata, infos).map_err(io_err)?;

    let total: u64 = infos.iter().map(|t| t.n_bytes).sum();
    let bar = if progress {
        indicatif::ProgressBar::new(total)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );

    let mut row = Vec::new();
    let mut encoded = Vec::new();
    for ((t, info), &ty) in tensors.iter().zip(infos).zip(types) {
        bar.set_message(t.name.clone());
        row.resize(t.row_len(), 0.0f32);
        for r in 0..t.n_rows() {
            t.read_row(r, &mut row);
            quantize::encode_row(ty, &row, &mut encoded).map_err(|ty| {
                ConvertError::UnsupportedConfig(format!("{}: no encoder for {}", t.name, ty.name()))
            })?;
            // Flush the encode buffer in ~1 MiB pieces; the BufWriter batches the writes.
            if encoded.len() >= 1 << 20 {
                out.write_all(&encoded).map_err(io_err)?;
                bar.inc(encoded.len() as u64);
                encoded.clear();
            }
        }
        out.write_all(&encoded).map_err(io_err)?;
        bar.inc(encoded.len() as u64);
        encoded.clear();
        gguf_writer::write_padding(&mut out, info.n_bytes).map_err(io_err)?;
    }
    bar.finish_and_clear();
    Ok(())
}

//! Why a conversion failed: one variant per thing the user can fix, each with the file, key
//! or tensor it concerns.

use std::fmt;
use std::path::PathBuf;

/// Why `tinymla convert` could not produce a GGUF.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConvertError {
    /// The input path is not a directory (a checkpoint is a folder of files).
    NotADirectory(PathBuf),
    /// A file the checkpoint needs is absent: `config.json`, `tokenizer.json`, a shard named in
    /// `model.safetensors.index.json`, or any `*.safetensors` at all.
    MissingFile(PathBuf),
    /// A file could not be read, mapped or written.
    Io(PathBuf, std::io::Error),
    /// A JSON file is not valid JSON.
    Json(PathBuf, serde_json::Error),
    /// A `config.json` key is missing or has the wrong type.
    ConfigKey {
        /// The key, e.g. `kv_lora_rank`.
        key: String,
        /// What is wrong, e.g. "missing" or "not an unsigned integer".
        problem: &'static str,
    },
    /// `architectures` names a model that is not DeepSeek-V2/V3.
    UnsupportedArchitecture(String),
    /// The config asks for something the `deepseek2` GGUF layout cannot express.
    UnsupportedConfig(String),
    /// `model.safetensors.index.json` has no `weight_map` object.
    BadIndex(PathBuf),
    /// A shard is not a valid safetensors file (truncated, corrupt header, …).
    Safetensors(PathBuf, safetensors::SafeTensorError),
    /// The same tensor name appears in two shards.
    DuplicateTensor(String),
    /// A tensor the config implies is absent from every shard.
    MissingTensor(String),
    /// A tensor's shape (torch order) differs from what the config implies.
    ShapeMismatch {
        /// Hugging Face tensor name.
        tensor: String,
        /// The shape the config implies.
        expected: Vec<usize>,
        /// The shape in the shard.
        found: Vec<usize>,
    },
    /// A tensor's element type cannot be converted (only F32, F16 and BF16 can).
    UnsupportedDtype {
        /// Hugging Face tensor name.
        tensor: String,
        /// The safetensors dtype, e.g. `F8_E4M3`.
        dtype: String,
    },
    /// A tensor in the checkpoint that is not part of a DeepSeek-V2/V3 language model.
    UnexpectedTensor(String),
    /// `tokenizer.json` describes a tokenizer the GGUF `gpt2` vocabulary cannot hold.
    Tokenizer(String),
}

impl fmt::Display for ConvertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConvertError::NotADirectory(p) => write!(
                f,
                "{}: not a directory (pass the Hugging Face checkpoint folder that holds \
                 config.json and *.safetensors)",
                p.display()
            ),
            ConvertError::MissingFile(p) => write!(f, "{}: no such file", p.display()),
            ConvertError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            ConvertError::Json(p, e) => write!(f, "{}: invalid JSON: {e}", p.display()),
            ConvertError::ConfigKey { key, problem } => {
                write!(f, "config.json: `{key}` is {problem}")
            }
            ConvertError::UnsupportedArchitecture(a) => write!(
                f,
                "config.json: architecture {a:?} is not supported \
                 (supported: DeepseekV2ForCausalLM, DeepseekV3ForCausalLM)"
            ),
            ConvertError::UnsupportedConfig(why) => write!(f, "config.json: {why}"),
            ConvertError::BadIndex(p) => write!(f, "{}: no \"weight_map\" object", p.display()),
            ConvertError::Safetensors(p, e) => {
                write!(f, "{}: not a valid safetensors file (truncated?): {e}", p.display())
            }
            ConvertError::DuplicateTensor(t) => write!(f, "tensor {t} appears in two shards"),
            ConvertError::MissingTensor(t) => {
                write!(f, "tensor {t} is missing from the checkpoint")
            }
            ConvertError::ShapeMismatch { tensor, expected, found } => write!(
                f,
                "tensor {tensor} has shape {found:?}, but config.json implies {expected:?}"
            ),
            ConvertError::UnsupportedDtype { tensor, dtype } => write!(
                f,
                "tensor {tensor} has dtype {dtype}; only F32, F16 and BF16 can be converted"
            ),
            ConvertError::UnexpectedTensor(t) => write!(
                f,
                "tensor {t} is not part of a DeepSeek-V2/V3 model as config.json describes it"
            ),
            ConvertError::Tokenizer(why) => write!(f, "tokenizer.json: {why}"),
        }
    }
}

// The inner errors are already part of the one-line `Display`, so `source` stays `None`: a
// caller printing the chain (anyhow's `{:#}`) would otherwise repeat them.
impl std::error::Error for ConvertError {}

//! Every way a call into `tinymla-core` can fail.
//!
//! All error types are `Copy`, hold no heap data and name the offending item with typed ids or
//! `&'static str` keys, so they work on a board without an allocator.

use core::fmt;

use crate::tensor::TensorId;
use crate::tokenizer_model::TokenizerModel;

/// Why a call into tinymla-core failed. Never allocates; cheap to copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// The bytes are not a well-formed GGUF file; see the inner variant.
    Gguf(GgufError),
    /// The file is well-formed GGUF but does not describe a model tinymla can run.
    Config(ConfigError),
    /// A tensor the configuration requires is absent, e.g. `blk.3.attn_kv_a_mqa.weight`.
    MissingTensor(TensorId),
    /// A tensor's dims (fastest-varying first, as GGUF stores them) differ from what the config
    /// implies. Unused trailing dims are 1.
    ShapeMismatch {
        /// Which tensor.
        tensor: TensorId,
        /// Dims the config implies, `ne` order.
        expected: [u64; 3],
        /// Dims the file declares, `ne` order.
        found: [u64; 3],
    },
    /// A tensor is stored in a GGML type this build cannot compute with (type id as in ggml).
    UnsupportedTensorType {
        /// Which tensor.
        tensor: TensorId,
        /// The ggml type id.
        ggml_type: u32,
    },
    /// A weight holds NaN or ±Inf (only checked with `ModelOptions::check_finite_weights`).
    NonFiniteWeight(TensorId),
    /// `token >= vocab_size`.
    TokenOutOfRange {
        /// The rejected token id.
        token: u32,
        /// The model's vocabulary size.
        vocab_size: u32,
    },
    /// The latent cache already holds `capacity` positions.
    CacheFull {
        /// Positions the cache was built for.
        capacity: u32,
    },
    /// The latent cache was built for a different model shape (layers or row width).
    CacheMismatch,
    /// The next position is at or past the model's trained context and the cache was not
    /// built with `allow_beyond_context` (or it passed `u32::MAX`).
    PositionBeyondContext {
        /// The position refused.
        pos: u64,
        /// The model's `context_length`.
        context_length: u64,
    },
    /// A cache was requested with capacity 0 (or above `u32::MAX`), or a slide policy keeps at
    /// least as many sink tokens as the cache holds.
    InvalidCacheOptions,
    /// A cache snapshot could not be written or restored.
    Snapshot(SnapshotError),
    /// Caller-provided memory is shorter than the model needs.
    BufferTooSmall {
        /// Which buffer.
        buffer: BufferKind,
        /// Elements needed.
        needed: usize,
        /// Elements given.
        given: usize,
    },
    /// A size computed from the file's dimensions does not fit in `usize` on this target.
    SizeOverflow,
    /// The sampler's work buffer has an index type too narrow for the vocabulary (`u16`
    /// indexes at most 65,536 tokens).
    SamplerIndexTooNarrow {
        /// The vocabulary (logits) length.
        vocab: usize,
        /// The most tokens the index type addresses.
        max: usize,
    },
    /// A batch was asked for with no tokens, or batch buffers for 0 or more than `max` tokens.
    InvalidBatch {
        /// The largest batch one step can take (`BatchScratch::MAX_TOKENS`).
        max: u32,
    },
}

/// Names a caller-provided buffer in [`Error::BufferTooSmall`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum BufferKind {
    /// The activation scratch (`f32` elements), see `ModelConfig::scratch_elems`.
    Scratch,
    /// The latent cache storage (bytes), see `LatentCache::bytes_needed`.
    Cache,
    /// A token decode buffer (bytes), see `Vocab::max_token_bytes`.
    TokenText,
    /// The vocabulary lookup index (`u32` offsets, one per token), see `Vocab::with_index`.
    VocabIndex,
    /// The sampler's index buffer (`u32`, one per vocabulary entry), see `Sampler::sample`.
    SamplerWork,
    /// A batch scratch's `f32` buffer, see `BatchScratch::sizes`.
    BatchScratch,
    /// A batch scratch's byte buffer (quantised activations), see `BatchScratch::sizes`.
    BatchBlocks,
    /// The logits of a step over several sequences (`f32`, `[sequences][vocab]`), see
    /// `ModelWith::forward_sequences`.
    Logits,
    /// Memory for weights packed at load (bytes), see `ModelWith::packed_weight_bytes`.
    PackedWeights,
}

/// Why a byte slice is not a well-formed GGUF file. Offsets are bytes from the start of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum GgufError {
    /// The file ends before a field: `needed` bytes were wanted at offset `at`.
    Truncated {
        /// Offset of the field.
        at: u64,
        /// Bytes the field needs.
        needed: u64,
    },
    /// The first four bytes are not `GGUF`.
    BadMagic([u8; 4]),
    /// Only GGUF versions 2 and 3 are read.
    UnsupportedVersion(u32),
    /// A count (`what`) claims more entries than the remaining bytes could hold.
    CountTooLarge {
        /// Which count.
        what: CountKind,
        /// The claimed count.
        count: u64,
    },
    /// A string (key, name or value) is not valid UTF-8. `at` is the offset of its bytes.
    InvalidUtf8 {
        /// Offset of the string's bytes.
        at: u64,
    },
    /// A metadata value type id outside the GGUF spec (0..=12).
    BadValueType {
        /// The type id read.
        type_id: u32,
        /// Offset of the id.
        at: u64,
    },
    /// An array of arrays; tinymla reads one level of arrays only (nothing real nests them).
    NestedArray {
        /// Offset of the inner array type id.
        at: u64,
    },
    /// Metadata key number `index` repeats an earlier key.
    DuplicateKey {
        /// Index of the second occurrence.
        index: u64,
    },
    /// Tensor number `index` repeats an earlier tensor's name.
    DuplicateTensor {
        /// Index of the second occurrence.
        index: u64,
    },
    /// `general.alignment` is zero, not a power of two, or not a `u32`.
    BadAlignment(u64),
    /// A tensor declares `n_dims` outside `1..=4`.
    BadDimCount {
        /// Tensor index.
        index: u64,
        /// The declared count.
        n_dims: u32,
    },
    /// A tensor has a zero dimension or its element count overflows.
    BadDims {
        /// Tensor index.
        index: u64,
    },
    /// A tensor's ggml type id is not one this reader knows the block layout of.
    UnknownTensorType {
        /// Tensor index.
        index: u64,
        /// The type id read.
        ggml_type: u32,
    },
    /// A tensor's row length (`ne[0]`) is not a multiple of its type's block size.
    RowNotBlockMultiple {
        /// Tensor index.
        index: u64,
    },
    /// Tensor data is not laid out as ggml requires: each tensor at the aligned end of the
    /// previous one, in order. This also rules out overlapping or gapped tensors.
    BadTensorOffset {
        /// Tensor index.
        index: u64,
        /// Offset ggml's layout requires, relative to the data section.
        expected: u64,
        /// Offset declared in the file.
        found: u64,
    },
    /// Tensor data extends past the end of the file.
    DataOutOfRange {
        /// Tensor index.
        index: u64,
    },
}

/// Which count field was implausible, in [`GgufError::CountTooLarge`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum CountKind {
    /// The header's tensor count.
    Tensors,
    /// The header's metadata key/value count.
    MetadataEntries,
    /// An array's element count.
    ArrayElements,
    /// A string's byte length.
    StringBytes,
}

/// Why a well-formed GGUF file does not describe a runnable DeepSeek-V2/V3 model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ConfigError {
    /// `general.architecture` is not `deepseek2`.
    UnsupportedArchitecture,
    /// A required metadata key is absent.
    MissingKey(&'static str),
    /// A metadata key has a type that cannot represent the value (e.g. a string where a count
    /// belongs, or a negative count).
    WrongKeyType(&'static str),
    /// A metadata value is outside its valid range, e.g. zero heads, an odd RoPE dim, more
    /// experts used per token than exist, or a non-finite epsilon.
    InvalidValue(&'static str),
    /// A metadata string that names a mode has a value tinymla does not implement
    /// (e.g. `rope.scaling.type = "longrope"`, or a gating function other than softmax/sigmoid).
    Unsupported(&'static str),
    /// `tokenizer.ggml.model` names a tokenizer family other than byte-level BPE (`"gpt2"`).
    UnsupportedTokenizer(TokenizerModel),
}

impl From<GgufError> for Error {
    fn from(e: GgufError) -> Self {
        Error::Gguf(e)
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::Config(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Gguf(e) => write!(f, "malformed GGUF: {e}"),
            Error::Config(e) => write!(f, "unsupported model: {e}"),
            Error::MissingTensor(id) => write!(f, "missing tensor {id}"),
            Error::ShapeMismatch { tensor, expected, found } => {
                write!(f, "{tensor}: expected dims {expected:?} (ggml ne order), found {found:?}")
            }
            Error::UnsupportedTensorType { tensor, ggml_type } => {
                write!(f, "{tensor}: ggml type {ggml_type} is not supported for this tensor")
            }
            Error::NonFiniteWeight(id) => write!(f, "{id}: weight is NaN or infinite"),
            Error::TokenOutOfRange { token, vocab_size } => {
                write!(f, "token id {token} out of range (vocab size {vocab_size})")
            }
            Error::CacheFull { capacity } => {
                write!(f, "latent cache is full ({capacity} positions)")
            }
            Error::CacheMismatch => write!(f, "latent cache was built for a different model shape"),
            Error::PositionBeyondContext { pos, context_length } => write!(
                f,
                "position {pos} is past the model's trained context of {context_length} tokens"
            ),
            Error::InvalidCacheOptions => {
                write!(
                    f,
                    "invalid cache options: capacity must be > 0, sinks < capacity, and a shift \
                     must drop at least 1 token and no more than capacity - sinks"
                )
            }
            Error::Snapshot(e) => write!(f, "{e}"),
            Error::BufferTooSmall { buffer, needed, given } => {
                write!(f, "{buffer:?} buffer too small: need {needed} elements, given {given}")
            }
            Error::SizeOverflow => write!(f, "a model size overflows this target's usize"),
            Error::SamplerIndexTooNarrow { vocab, max } => write!(
                f,
                "the sampler's work buffer indexes {max} tokens, the vocabulary has {vocab}"
            ),
            Error::InvalidBatch { max } => {
                write!(f, "a batch must hold 1 to {max} tokens")
            }
        }
    }
}

impl fmt::Display for GgufError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GgufError::Truncated { at, needed } => {
                write!(f, "file ends at offset {at}, {needed} more bytes needed")
            }
            GgufError::BadMagic(m) => write!(f, "bad magic {m:02x?}, expected \"GGUF\""),
            GgufError::UnsupportedVersion(v) => write!(f, "GGUF version {v} (2 and 3 are read)"),
            GgufError::CountTooLarge { what, count } => {
                write!(f, "{what:?} count {count} exceeds what the file can hold")
            }
            GgufError::InvalidUtf8 { at } => write!(f, "string at offset {at} is not UTF-8"),
            GgufError::BadValueType { type_id, at } => {
                write!(f, "unknown metadata value type {type_id} at offset {at}")
            }
            GgufError::NestedArray { at } => write!(f, "nested array at offset {at}"),
            GgufError::DuplicateKey { index } => write!(f, "metadata key #{index} is a duplicate"),
            GgufError::DuplicateTensor { index } => {
                write!(f, "tensor #{index} repeats an earlier tensor name")
            }
            GgufError::BadAlignment(a) => write!(f, "general.alignment {a} is not a power of two"),
            GgufError::BadDimCount { index, n_dims } => {
                write!(f, "tensor #{index} has {n_dims} dims (1..=4 allowed)")
            }
            GgufError::BadDims { index } => {
                write!(f, "tensor #{index} has a zero or overflowing dimension")
            }
            GgufError::UnknownTensorType { index, ggml_type } => {
                write!(f, "tensor #{index} has unknown ggml type {ggml_type}")
            }
            GgufError::RowNotBlockMultiple { index } => {
                write!(f, "tensor #{index} row length is not a multiple of its block size")
            }
            GgufError::BadTensorOffset { index, expected, found } => {
                write!(f, "tensor #{index} data at offset {found}, ggml layout requires {expected}")
            }
            GgufError::DataOutOfRange { index } => {
                write!(f, "tensor #{index} data extends past the end of the file")
            }
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::UnsupportedArchitecture => {
                write!(f, "general.architecture is not \"deepseek2\"")
            }
            ConfigError::MissingKey(k) => write!(f, "missing metadata key {k}"),
            ConfigError::WrongKeyType(k) => write!(f, "metadata key {k} has the wrong type"),
            ConfigError::InvalidValue(k) => write!(f, "metadata key {k} has an invalid value"),
            ConfigError::Unsupported(k) => write!(f, "metadata key {k} names an unsupported mode"),
            ConfigError::UnsupportedTokenizer(m) => write!(
                f,
                "tokenizer.ggml.model is {m}; only byte-level BPE (\"gpt2\") vocabularies are read"
            ),
        }
    }
}

impl core::error::Error for Error {}
impl core::error::Error for GgufError {}
impl core::error::Error for ConfigError {}

/// Why a snapshot could not be written or restored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum SnapshotError {
    /// The output buffer is shorter than [`crate::LatentCache::snapshot_len`], or the input is shorter
    /// than its header says.
    Truncated {
        /// Bytes needed.
        needed: u64,
        /// Bytes given.
        given: u64,
    },
    /// The bytes do not start with `TMLC`.
    BadMagic,
    /// A format version this build does not read.
    UnsupportedVersion(u32),
    /// The checksum does not match: the bytes were corrupted.
    ChecksumMismatch,
    /// The snapshot was taken with a different model (fingerprint differs).
    ModelMismatch,
    /// The snapshot was taken with a different cache configuration (storage, capacity, policy
    /// or row shape).
    ConfigMismatch,
    /// Header fields contradict each other (e.g. more filled slots than capacity).
    Corrupt,
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnapshotError::Truncated { needed, given } => {
                write!(f, "snapshot needs {needed} bytes, {given} given")
            }
            SnapshotError::BadMagic => write!(f, "not a tinymla cache snapshot"),
            SnapshotError::UnsupportedVersion(v) => write!(f, "snapshot format version {v}"),
            SnapshotError::ChecksumMismatch => write!(f, "snapshot checksum mismatch"),
            SnapshotError::ModelMismatch => write!(f, "snapshot was taken with another model"),
            SnapshotError::ConfigMismatch => {
                write!(f, "snapshot was taken with another cache configuration")
            }
            SnapshotError::Corrupt => write!(f, "snapshot header is inconsistent"),
        }
    }
}

impl From<SnapshotError> for Error {
    fn from(e: SnapshotError) -> Self {
        Error::Snapshot(e)
    }
}

//! [`TinymlaStatus`]: the C error codes, mapped from [`tinymla_core::Error`], and their text.

use tinymla_core::Error;

/// Result of every `tinymla_*` call. `TINYMLA_STATUS_OK` (0) is success; everything else is an
/// error whose text [`crate::tinymla_strerror`] gives. Values are stable: new codes are
/// only ever appended.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TinymlaStatus {
    /// Success.
    Ok = 0,
    /// A required pointer argument is NULL.
    NullPointer = 1,
    /// A caller buffer is shorter than the matching size query says.
    BufferTooSmall = 2,
    /// Handle memory is not aligned to `TINYMLA_ALIGN`.
    Misaligned = 3,
    /// A handle is not one `*_init` made of the expected type (foreign, uninitialised, moved
    /// or of another kind), or was made for another model.
    BadHandle = 4,
    /// An argument is out of its documented range (e.g. cache capacity 0, unknown storage).
    InvalidArgument = 5,
    /// The bytes are not a well-formed GGUF file.
    BadGguf = 6,
    /// The GGUF file is not a model tinymla can run (architecture, keys, too many layers).
    UnsupportedModel = 7,
    /// A tensor the model needs is missing, misshapen, of an unsupported type or not finite.
    BadTensor = 8,
    /// Token id `>= vocab_size`.
    TokenOutOfRange = 9,
    /// The cache holds `capacity` positions already.
    CacheFull = 10,
    /// The next position is past the model's trained context.
    PositionBeyondContext = 11,
    /// The file has no (supported) tokenizer vocabulary, so tokens cannot be decoded.
    NoVocab = 12,
    /// A size does not fit in `size_t` on this target.
    SizeOverflow = 13,
    /// Any other engine error.
    Internal = 14,
}

/// Storage of cache rows, the `storage` argument of `tinymla_cache_bytes_needed` and
/// `tinymla_cache_init` (passed as `int32_t`).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TinymlaCacheStorage {
    /// `f32` rows: exact.
    F32 = 0,
    /// `f16` rows.
    F16 = 1,
    /// `c_kv` as Q8_0 blocks, `k_pe` as f16.
    Q8 = 2,
    /// Both parts int8 in 64-value blocks with no padding (smallest).
    Q8Compact = 3,
}

impl TinymlaCacheStorage {
    /// The core storage for a C value, or `None` for an unknown one.
    pub(crate) fn from_c(v: i32) -> Option<tinymla_core::CacheStorage> {
        use tinymla_core::CacheStorage as S;
        match v {
            0 => Some(S::F32),
            1 => Some(S::F16),
            2 => Some(S::Q8),
            3 => Some(S::Q8Compact),
            _ => None,
        }
    }
}

/// Precision of the input vectors of quantised (Q8_0, Q4_0) matrix products, the
/// `activations` argument of `tinymla_model_init_with` (passed as `int32_t`).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TinymlaActivations {
    /// One int8 block per 32 values (as llama.cpp): the fastest; logits move by ~0.03.
    Int8 = 0,
    /// An int8 block plus one of its rounding residual (~15 bits): logits within ~1e-4 of
    /// f32, for twice the integer work.
    Int16 = 1,
}

impl TinymlaActivations {
    /// The core precision for a C value, or `None` for an unknown one.
    pub(crate) fn from_c(v: i32) -> Option<tinymla_core::ActivationPrecision> {
        use tinymla_core::ActivationPrecision as A;
        match v {
            0 => Some(A::Int8),
            1 => Some(A::Int16),
            _ => None,
        }
    }
}

impl From<Error> for TinymlaStatus {
    fn from(e: Error) -> Self {
        match e {
            Error::Gguf(_) => Self::BadGguf,
            Error::Config(_) => Self::UnsupportedModel,
            Error::MissingTensor(_)
            | Error::ShapeMismatch { .. }
            | Error::UnsupportedTensorType { .. }
            | Error::NonFiniteWeight(_) => Self::BadTensor,
            Error::TokenOutOfRange { .. } => Self::TokenOutOfRange,
            Error::CacheFull { .. } => Self::CacheFull,
            Error::CacheMismatch => Self::BadHandle,
            Error::PositionBeyondContext { .. } => Self::PositionBeyondContext,
            Error::InvalidCacheOptions => Self::InvalidArgument,
            Error::BufferTooSmall { .. } => Self::BufferTooSmall,
            Error::SizeOverflow => Self::SizeOverflow,
            _ => Self::Internal,
        }
    }
}

/// Every code with its NUL-terminated text, in value order.
pub(crate) const MESSAGES: [(TinymlaStatus, &[u8]); 15] = [
    (TinymlaStatus::Ok, b"ok\0"),
    (TinymlaStatus::NullPointer, b"a required pointer argument is NULL\0"),
    (TinymlaStatus::BufferTooSmall, b"a buffer is smaller than its size query says\0"),
    (TinymlaStatus::Misaligned, b"handle memory is not aligned to TINYMLA_ALIGN\0"),
    (
        TinymlaStatus::BadHandle,
        b"not a handle of this type made by its init function (or made for another model)\0",
    ),
    (TinymlaStatus::InvalidArgument, b"an argument is out of range\0"),
    (TinymlaStatus::BadGguf, b"the bytes are not a well-formed GGUF file\0"),
    (TinymlaStatus::UnsupportedModel, b"the GGUF file is not a model tinymla can run\0"),
    (TinymlaStatus::BadTensor, b"a model tensor is missing, misshapen or of an unsupported type\0"),
    (TinymlaStatus::TokenOutOfRange, b"token id out of range (>= vocab_size)\0"),
    (TinymlaStatus::CacheFull, b"the cache is full\0"),
    (TinymlaStatus::PositionBeyondContext, b"position beyond the model's trained context\0"),
    (TinymlaStatus::NoVocab, b"the model file has no supported tokenizer vocabulary\0"),
    (TinymlaStatus::SizeOverflow, b"a size does not fit in size_t\0"),
    (TinymlaStatus::Internal, b"internal engine error\0"),
];

/// Text for an unknown code.
pub(crate) const UNKNOWN: &[u8] = b"unknown tinymla status code\0";

/// The NUL-terminated text of `code`.
pub(crate) fn message(code: i32) -> &'static [u8] {
    MESSAGES.iter().find(|(s, _)| *s as i32 == code).map_or(UNKNOWN, |(_, m)| m)
}

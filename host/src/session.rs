//! A loaded model with its tokenizer and the host-allocated buffers one generation needs:
//! the shared plumbing of `run`, `logits` and `bench`.

use std::path::{Path, PathBuf};

use tinymla_core::{
    BatchScratch, CacheOptions, CacheStorage, Gguf, LatentCache, Model, ModelOptions,
    OverflowPolicy, Scratch,
};

use crate::model_file::{ModelFile, OpenError};
use crate::tokenizer::{Tokenizer, TokenizerError};

/// Why a session could not be set up or run. Each variant renders as one line a user can act on.
#[derive(Debug)]
pub enum SessionError {
    /// The file could not be opened.
    Open(OpenError),
    /// The file is not a model tinymla can run.
    Model(PathBuf, tinymla_core::Error),
    /// The file's tokenizer could not be read.
    Tokenizer(PathBuf, TokenizerError),
    /// `--ctx` is zero or larger than the model's trained context.
    BadContext {
        /// The requested context.
        ctx: usize,
        /// The model's trained context.
        trained: usize,
    },
    /// The buffers for `ctx` cannot be allocated.
    OutOfMemory {
        /// The requested context.
        ctx: usize,
        /// Bytes that could not be allocated.
        bytes: usize,
    },
    /// The prompt does not fit the context.
    PromptTooLong {
        /// Prompt tokens.
        tokens: usize,
        /// The context.
        ctx: usize,
    },
    /// The prompt encodes to no tokens (and the model adds no BOS).
    EmptyPrompt,
    /// `--batch` is outside `1..=max`.
    BadBatch {
        /// The requested batch size.
        batch: usize,
        /// The most tokens one batched step takes.
        max: usize,
    },
    /// `--sequences` is outside `1..=max`.
    BadSequences {
        /// The requested count.
        sequences: usize,
        /// The most sequences one step takes.
        max: usize,
    },
    /// A token id given on the command line is not in the vocabulary.
    Step(tinymla_core::Error),
    /// The worker threads could not be started.
    Threads(crate::threads::ThreadsError),
    /// The model's chat template cannot be used.
    Template(crate::chat_template::TemplateError),
    /// Reading the user's input failed.
    Input(std::io::Error),
}

impl std::fmt::Display for SessionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionError::Open(e) => write!(f, "{e}"),
            SessionError::Model(p, e) => write!(f, "{}: {e}", p.display()),
            SessionError::Tokenizer(p, e) => write!(f, "{}: tokenizer: {e}", p.display()),
            SessionError::BadContext { ctx, trained } => {
                write!(f, "--ctx {ctx} is not in 1..={trained} (the model's trained context)")
            }
            SessionError::OutOfMemory { ctx, bytes } => {
                write!(f, "cannot allocate {bytes} bytes for a context of {ctx} tokens")
            }
            SessionError::PromptTooLong { tokens, ctx } => {
                write!(f, "the prompt has {tokens} tokens, more than --ctx {ctx}")
            }
            SessionError::EmptyPrompt => write!(f, "the prompt is empty"),
            SessionError::BadBatch { batch, max } => {
                write!(f, "--batch {batch} is not in 1..={max}")
            }
            SessionError::BadSequences { sequences, max } => {
                write!(f, "--sequences {sequences} is not in 1..={max}")
            }
            SessionError::Step(e) => write!(f, "{e}"),
            SessionError::Threads(e) => write!(f, "{e}"),
            SessionError::Template(e) => write!(f, "{e}"),
            SessionError::Input(e) => write!(f, "reading input: {e}"),
        }
    }
}

impl std::error::Error for SessionError {}

/// An opened model file (kept mapped for the session's lifetime).
#[derive(Debug)]
pub struct Loaded {
    file: ModelFile,
    options: ModelOptions,
}

/// The largest context [`Loaded::default_context`] picks (a 4K-token latent cache of
/// DeepSeek-V2-Lite is 255 MB at f32 rows).
pub const DEFAULT_MAX_CONTEXT: usize = 4096;

impl Loaded {
    /// Maps `path` (the model is parsed and checked by [`Loaded::model`]).
    ///
    /// # Errors
    /// [`SessionError::Open`].
    pub fn open(path: &Path) -> Result<Self, SessionError> {
        let file = ModelFile::open(path).map_err(SessionError::Open)?;
        Ok(Loaded { file, options: ModelOptions::default() })
    }

    /// The same file, loaded by [`Loaded::model`] with `options`.
    #[must_use]
    pub fn with_options(self, options: ModelOptions) -> Self {
        Loaded { options, ..self }
    }

    /// The model, borrowing the map: parsed and validated by this call.
    ///
    /// # Errors
    /// [`SessionError::Model`] if the file is not a model tinymla can run.
    pub fn model(&self) -> Result<Model<'_>, SessionError> {
        let fail = |e| SessionError::Model(self.file.path().to_owned(), e);
        let gguf = Gguf::parse(self.file.bytes()).map_err(|e| fail(e.into()))?;
        Model::from_gguf(&gguf, self.options).map_err(fail)
    }

    /// The context `run` and `chat` use without `--ctx`: the model's trained context, at
    /// most [`DEFAULT_MAX_CONTEXT`] tokens.
    ///
    /// # Errors
    /// As [`Loaded::model`].
    pub fn default_context(&self) -> Result<usize, SessionError> {
        Ok(self.model()?.config().context_length.min(DEFAULT_MAX_CONTEXT))
    }

    /// The path the model was opened from.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// The tokenizer embedded in the file.
    ///
    /// # Errors
    /// [`SessionError::Tokenizer`].
    pub fn tokenizer(&self) -> Result<Tokenizer, SessionError> {
        Tokenizer::from_gguf(self.file.bytes())
            .map_err(|e| SessionError::Tokenizer(self.file.path().to_owned(), e))
    }
}

/// The views [`Buffers::views`] hands out: cache, scratch, sampler work, batch scratch.
pub type Views<'b> = (LatentCache<'b>, Scratch<'b>, &'b mut [u32], BatchScratch<'b>);

/// Host memory for a cache of `ctx` positions and the matching scratch.
#[derive(Debug)]
pub struct Buffers {
    /// Cache bytes.
    pub cache: Vec<u8>,
    /// Scratch elements.
    pub scratch: Vec<f32>,
    /// Sampler work indices.
    pub sampler: Vec<u32>,
    /// Batched-prefill activations ([`BatchScratch`] for its most tokens).
    pub batch_floats: Vec<f32>,
    /// Batched-prefill quantised activations.
    pub batch_bytes: Vec<u8>,
    /// The options the cache will use.
    pub options: CacheOptions,
    /// Positions.
    pub ctx: usize,
}

impl Buffers {
    /// Allocates (fallibly) for `ctx` positions of `model` with rows stored as `storage`.
    ///
    /// # Errors
    /// [`SessionError::BadContext`] outside `1..=context_length`;
    /// [`SessionError::OutOfMemory`] if the allocation fails or overflows.
    pub fn new(model: &Model<'_>, ctx: usize, storage: CacheStorage) -> Result<Self, SessionError> {
        let cfg = model.config();
        if ctx == 0 || ctx > cfg.context_length {
            return Err(SessionError::BadContext { ctx, trained: cfg.context_length });
        }
        let oom = |bytes| SessionError::OutOfMemory { ctx, bytes };
        let cache_bytes =
            LatentCache::bytes_needed(cfg, ctx, storage).map_err(|_| oom(usize::MAX))?;
        let scratch_elems = cfg.scratch_elems(ctx).map_err(|_| oom(usize::MAX))?;
        let cache = try_zeroed::<u8>(cache_bytes).ok_or_else(|| oom(cache_bytes))?;
        let scratch = try_zeroed::<f32>(scratch_elems).ok_or_else(|| oom(scratch_elems * 4))?;
        let sampler = try_zeroed::<u32>(cfg.vocab_size).ok_or_else(|| oom(cfg.vocab_size * 4))?;
        let sizes =
            BatchScratch::sizes(cfg, BatchScratch::MAX_TOKENS).map_err(|_| oom(usize::MAX))?;
        let batch_floats =
            try_zeroed::<f32>(sizes.floats).ok_or_else(|| oom(sizes.floats.saturating_mul(4)))?;
        let batch_bytes = try_zeroed::<u8>(sizes.bytes).ok_or_else(|| oom(sizes.bytes))?;
        let options =
            CacheOptions { storage, policy: OverflowPolicy::Error, allow_beyond_context: false };
        Ok(Buffers { cache, scratch, sampler, batch_floats, batch_bytes, options, ctx })
    }

    /// The cache, scratch, sampler work buffer and batched-prefill scratch, ready for `model`.
    ///
    /// # Errors
    /// Never for buffers built by [`Buffers::new`] for the same model.
    pub fn views<'b>(&'b mut self, model: &Model<'_>) -> Result<Views<'b>, SessionError> {
        let cfg = model.config();
        let cache = LatentCache::new(cfg, self.ctx, self.options, &mut self.cache)
            .map_err(SessionError::Step)?;
        let scratch = Scratch::new(cfg, self.ctx, &mut self.scratch).map_err(SessionError::Step)?;
        let batch = BatchScratch::new(
            cfg,
            BatchScratch::MAX_TOKENS,
            &mut self.batch_floats,
            &mut self.batch_bytes,
        )
        .map_err(SessionError::Step)?;
        Ok((cache, scratch, &mut self.sampler, batch))
    }
}

/// A zeroed `Vec` of `n` elements, or `None` if it cannot be allocated.
pub(crate) fn try_zeroed<T: Default + Clone>(n: usize) -> Option<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).ok()?;
    v.resize(n, T::default());
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixture whose `deepseek2.context_length` claims `ctx` positions.
    fn claiming_context(ctx: u32) -> Vec<u8> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/v3_dense_tied.gguf");
        let mut file = std::fs::read(path).unwrap();
        let key = b"deepseek2.context_length";
        let at = file.windows(key.len()).position(|w| w == key).unwrap() + key.len();
        assert_eq!(file[at..at + 4], 4u32.to_le_bytes(), "a u32 value");
        file[at + 4..at + 8].copy_from_slice(&ctx.to_le_bytes());
        file
    }

    /// The context cap: a file may claim any trained context, but buffers are allocated
    /// fallibly for the context asked for, which must lie in `1..=context_length`. A context
    /// whose cache cannot exist (here 2^32 − 1 positions, hundreds of GB) is an error value,
    /// not an abort.
    #[test]
    fn a_huge_claimed_context_is_an_error_not_an_abort() {
        let file = claiming_context(u32::MAX);
        let model = Model::load(&file).unwrap();
        assert_eq!(model.config().context_length, u32::MAX as usize);
        let huge = u32::MAX as usize;
        let err = Buffers::new(&model, huge, CacheStorage::F32).unwrap_err();
        assert!(
            matches!(err, SessionError::OutOfMemory { ctx, bytes } if ctx == huge && bytes > 1 << 38),
            "{err}"
        );
        assert!(err.to_string().starts_with("cannot allocate"), "{err}");
        let err = Buffers::new(&model, huge + 1, CacheStorage::F32).unwrap_err();
        assert!(matches!(err, SessionError::BadContext { .. }), "{err}");
        assert!(matches!(
            Buffers::new(&model, 0, CacheStorage::F32),
            Err(SessionError::BadContext { ctx: 0, .. })
        ));
        // A sane context of the same file allocates.
        assert!(Buffers::new(&model, 16, CacheStorage::Q8).is_ok());
    }
}

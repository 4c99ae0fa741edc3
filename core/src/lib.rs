//! # tinymla-core
//!
//! A `no_std`, allocation-free inference core for DeepSeek-V2/V3 models, which use
//! Multi-head Latent Attention (MLA). It reads a GGUF file in llama.cpp's `deepseek2` layout
//! straight from a byte slice (flash or an mmap), borrows every weight from it, and runs the
//! absorbed MLA decode over a latent cache that stores one `c_kv` row (`kv_lora_rank`) and one
//! rotated `k_pe` row (`qk_rope_head_dim`) per token and layer.
//!
//! The caller owns all memory: [`ModelConfig::scratch_elems`] says how many `f32`s of
//! activation scratch to provide and [`LatentCache::bytes_needed`] how many bytes of cache.
//!
//! ```no_run
//! # fn demo(file: &[u8]) -> Result<(), tinymla_core::Error> {
//! use tinymla_core::{CacheOptions, LatentCache, Model, Scratch};
//! let model = Model::load(file)?;
//! let capacity = 64;
//! let options = CacheOptions::default(); // f32 rows, error when full
//! let mut cache_mem = vec![0u8; LatentCache::bytes_needed(model.config(), capacity, options.storage)?];
//! let mut scratch_mem = vec![0.0f32; model.config().scratch_elems(capacity)?];
//! let mut cache = LatentCache::new(model.config(), capacity, options, &mut cache_mem)?;
//! let mut scratch = Scratch::new(model.config(), capacity, &mut scratch_mem)?;
//! let logits = model.forward(1, &mut cache, &mut scratch)?;
//! # let _ = logits; Ok(()) }
//! ```
//!
//! A prompt runs faster through [`ModelWith::forward_batch`], which takes up to
//! [`BatchScratch::MAX_TOKENS`] tokens per step through each layer together (each weight row
//! read once per step) and gives bit-for-bit the logits and cache of one `forward` per token;
//! its buffers are a [`BatchScratch`] sized by [`BatchScratch::sizes`].
//!
//! Ground truth is Hugging Face transformers' `DeepseekV2ForCausalLM` /
//! `DeepseekV3ForCausalLM`; the workspace's golden tests compare against logits it produced.

#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![deny(missing_docs, unsafe_code)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    clippy::undocumented_unsafe_blocks
)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::cast_possible_truncation
    )
)]

pub mod config;
pub mod error;
pub mod gguf;
pub mod kernels;
pub mod tensor;

mod attend;
mod batch;
pub mod cache;
mod ffn;
mod fnv;
mod mla;
mod model;
mod moe;
pub mod parallel;
pub mod quant;
mod rope;
pub mod sampler;
mod scratch;
mod tokenizer_model;
pub mod vocab;
mod weights;

pub use batch::{BatchScratch, BatchSizes};
pub use cache::{CacheArena, CacheOptions, CacheStorage, LatentCache, OverflowPolicy};
pub use config::{ActivationPrecision, ModelConfig, ModelOptions};
pub use error::{BufferKind, ConfigError, Error, GgufError};
pub use gguf::Gguf;
pub use model::{Model, ModelWith, DEFAULT_MAX_LAYERS};
pub use parallel::{Parallel, RowSpan, Serial};
pub use sampler::{Sampler, SamplerConfig, SamplerIndex};
pub use scratch::Scratch;
pub use tensor::{GgmlType, TensorId, TensorKind, TensorView};

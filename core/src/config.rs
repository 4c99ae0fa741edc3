//! [`ModelConfig`]: the DeepSeek-V2/V3 hyperparameters, read from a GGUF file's `deepseek2.*`
//! keys (llama.cpp's names), validated, with the buffer sizes they imply.
//!
//! Field names follow Hugging Face's `DeepseekV3Config` so they can be grepped against the
//! reference. This module knows the keys but no math.

use crate::error::{ConfigError, Error};
use crate::gguf::{Gguf, MetadataValue};

/// The only architecture string accepted.
pub const ARCH: &str = "deepseek2";
/// `general.architecture`
pub const KEY_ARCHITECTURE: &str = "general.architecture";
/// Trained context length.
pub const KEY_CONTEXT_LENGTH: &str = "deepseek2.context_length";
/// Hidden size.
pub const KEY_EMBEDDING_LENGTH: &str = "deepseek2.embedding_length";
/// Number of transformer blocks.
pub const KEY_BLOCK_COUNT: &str = "deepseek2.block_count";
/// Dense FFN intermediate size.
pub const KEY_FEED_FORWARD_LENGTH: &str = "deepseek2.feed_forward_length";
/// Attention heads.
pub const KEY_HEAD_COUNT: &str = "deepseek2.attention.head_count";
/// RMSNorm epsilon.
pub const KEY_RMS_EPS: &str = "deepseek2.attention.layer_norm_rms_epsilon";
/// RoPE base.
pub const KEY_ROPE_FREQ_BASE: &str = "deepseek2.rope.freq_base";
/// `qk_rope_head_dim`.
pub const KEY_ROPE_DIMENSION_COUNT: &str = "deepseek2.rope.dimension_count";
/// `q_lora_rank`; absent when the model projects the query directly (V2-Lite).
pub const KEY_Q_LORA_RANK: &str = "deepseek2.attention.q_lora_rank";
/// `kv_lora_rank`.
pub const KEY_KV_LORA_RANK: &str = "deepseek2.attention.kv_lora_rank";
/// MLA files: `kv_lora_rank + qk_rope_head_dim`; legacy files: `qk_nope + qk_rope`.
pub const KEY_KEY_LENGTH: &str = "deepseek2.attention.key_length";
/// MLA files: `kv_lora_rank`; legacy files: `v_head_dim`.
pub const KEY_VALUE_LENGTH: &str = "deepseek2.attention.value_length";
/// `qk_nope_head_dim + qk_rope_head_dim`; its presence marks an MLA-layout file.
pub const KEY_KEY_LENGTH_MLA: &str = "deepseek2.attention.key_length_mla";
/// `v_head_dim` in MLA-layout files.
pub const KEY_VALUE_LENGTH_MLA: &str = "deepseek2.attention.value_length_mla";
/// `first_k_dense_replace`.
pub const KEY_LEADING_DENSE: &str = "deepseek2.leading_dense_block_count";
/// Vocabulary size (optional; else the embedding's row count).
pub const KEY_VOCAB_SIZE: &str = "deepseek2.vocab_size";
/// `moe_intermediate_size`.
pub const KEY_EXPERT_FF_LENGTH: &str = "deepseek2.expert_feed_forward_length";
/// `n_routed_experts`.
pub const KEY_EXPERT_COUNT: &str = "deepseek2.expert_count";
/// `num_experts_per_tok`.
pub const KEY_EXPERT_USED_COUNT: &str = "deepseek2.expert_used_count";
/// `n_shared_experts`.
pub const KEY_EXPERT_SHARED_COUNT: &str = "deepseek2.expert_shared_count";
/// `routed_scaling_factor`.
pub const KEY_EXPERT_WEIGHTS_SCALE: &str = "deepseek2.expert_weights_scale";
/// `norm_topk_prob` (written only when true).
pub const KEY_EXPERT_WEIGHTS_NORM: &str = "deepseek2.expert_weights_norm";
/// 1 = softmax (V2), 2 = sigmoid (V3); absent means softmax.
pub const KEY_EXPERT_GATING_FUNC: &str = "deepseek2.expert_gating_func";
/// `n_group`.
pub const KEY_EXPERT_GROUP_COUNT: &str = "deepseek2.expert_group_count";
/// `topk_group`.
pub const KEY_EXPERT_GROUP_USED_COUNT: &str = "deepseek2.expert_group_used_count";
/// `"yarn"` or `"none"`/absent.
pub const KEY_ROPE_SCALING_TYPE: &str = "deepseek2.rope.scaling.type";
/// YaRN `factor`.
pub const KEY_ROPE_SCALING_FACTOR: &str = "deepseek2.rope.scaling.factor";
/// YaRN `original_max_position_embeddings`.
pub const KEY_ROPE_SCALING_ORIG_CTX: &str = "deepseek2.rope.scaling.original_context_length";
/// YaRN `beta_fast` (default 32).
pub const KEY_YARN_BETA_FAST: &str = "deepseek2.rope.scaling.yarn_beta_fast";
/// YaRN `beta_slow` (default 1).
pub const KEY_YARN_BETA_SLOW: &str = "deepseek2.rope.scaling.yarn_beta_slow";
/// `0.1 * mscale_all_dim`.
pub const KEY_YARN_LOG_MULTIPLIER: &str = "deepseek2.rope.scaling.yarn_log_multiplier";

/// Most routed experts used per token; bounds the router's stack buffers.
pub const MAX_EXPERTS_USED: usize = 64;
/// Most expert groups; bounds the router's stack buffers.
pub const MAX_EXPERT_GROUPS: usize = 64;

/// How the router turns logits into expert scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Gating {
    /// DeepSeek-V2: softmax over all experts; groups scored by their max; dropped groups' scores
    /// set to 0; no selection bias.
    Softmax,
    /// DeepSeek-V3: sigmoid per expert; `exp_probs_b` bias added for selection only; groups
    /// scored by the sum of their top two; dropped groups masked to -inf.
    Sigmoid,
}

/// How a group of experts is scored for group-limited routing under [`Gating::Softmax`].
/// (Sigmoid gating always uses the sum of the top two, as both references do.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SoftmaxGroupScore {
    /// The group's best expert score: transformers' `group_limited_greedy` (the reference).
    #[default]
    Max,
    /// The sum of the group's two best scores: what llama.cpp's `build_moe_ffn` does for every
    /// gating function. Pick this to reproduce llama.cpp on DeepSeek-V2 (236B) GGUFs.
    Top2Sum,
}

/// How a quantised weight matrix (Q8_0, Q4_0) multiplies its input vector. Either way the
/// vector is cut into 32-value blocks with an f16 scale and the products are integer sums per
/// block, on the same kernels; float weights (F32, F16, BF16) always take the vector as f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ActivationPrecision {
    /// One Q8_0 block per 32 values: `x ≈ d · q`, `q` in −127..=127 (what llama.cpp does).
    /// Rounding moves each value by up to `max|x| / 254` of its block, so logits move by
    /// about 0.01–0.05 on the demo models: enough to flip a greedy choice whose top two
    /// logits are closer than that.
    #[default]
    Int8,
    /// Two Q8_0 blocks per 32 values, the value and its rounding residual scaled by 256:
    /// `x ≈ d₁ · q₁ + d₂ · q₂ / 256`, about 15 bits per value (rounding error up to
    /// `max|x| / 64,516` of the block). Logits move by about 1e-4 on the demo models. Twice
    /// the integer work, the weights read once: for small models, or whenever agreeing with
    /// a float reference matters more than speed.
    Int16,
}

impl ActivationPrecision {
    /// Quantised blocks per 32 input values.
    pub(crate) fn planes(self) -> usize {
        match self {
            ActivationPrecision::Int8 => 1,
            ActivationPrecision::Int16 => 2,
        }
    }
}

/// Run-time choices that the GGUF file does not carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ModelOptions {
    /// Group scoring under softmax gating; see [`SoftmaxGroupScore`].
    pub softmax_group_score: SoftmaxGroupScore,
    /// Scan every float weight at load and reject NaN or ±Inf with
    /// [`crate::Error::NonFiniteWeight`]. Off by default: it reads the whole file once.
    pub check_finite_weights: bool,
    /// Precision of the input vectors of quantised matrix products; see
    /// [`ActivationPrecision`].
    pub activations: ActivationPrecision,
}

/// YaRN context extension, as transformers' `_compute_yarn_parameters` defines it.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Yarn {
    /// Context scale `factor` (> 1).
    pub factor: f32,
    /// `original_max_position_embeddings`.
    pub original_context_length: u32,
    /// `beta_fast`: rotations above which a dimension is extrapolated.
    pub beta_fast: f32,
    /// `beta_slow`: rotations below which a dimension is interpolated.
    pub beta_slow: f32,
    /// `0.1 * mscale_all_dim`. The softmax scale is multiplied by
    /// `(1 + log_multiplier * ln(factor))²`. The GGUF cannot carry a separate `mscale`, so, as
    /// in llama.cpp, `mscale == mscale_all_dim` is assumed and cos/sin are not rescaled.
    pub log_multiplier: f32,
}

/// The MoE part of a config (`None` in a dense-only model).
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MoeConfig {
    /// `n_routed_experts`.
    pub n_routed_experts: usize,
    /// `num_experts_per_tok` (≤ `n_routed_experts`, ≤ [`MAX_EXPERTS_USED`]).
    pub num_experts_per_tok: usize,
    /// `n_shared_experts` (0 allowed).
    pub n_shared_experts: usize,
    /// `moe_intermediate_size`, per expert.
    pub moe_intermediate_size: usize,
    /// `routed_scaling_factor`.
    pub routed_scaling_factor: f32,
    /// `norm_topk_prob`: renormalise the selected weights to sum 1 before scaling.
    pub norm_topk_prob: bool,
    /// Scoring function.
    pub gating: Gating,
    /// `n_group` (1 = no group limit). Divides `n_routed_experts`.
    pub n_group: usize,
    /// `topk_group` (≤ `n_group`).
    pub topk_group: usize,
}

/// Validated DeepSeek-V2/V3 hyperparameters. Every size is at least 1 unless noted, and every
/// product used to size a buffer fits in `usize`.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ModelConfig {
    /// Vocabulary size (rows of `token_embd`).
    pub vocab_size: usize,
    /// `hidden_size`.
    pub hidden_size: usize,
    /// `num_hidden_layers`.
    pub num_hidden_layers: usize,
    /// Dense MLP `intermediate_size` (0 when every layer is MoE).
    pub intermediate_size: usize,
    /// `num_attention_heads`.
    pub num_attention_heads: usize,
    /// `q_lora_rank`; `None` means a direct `attn_q` projection.
    pub q_lora_rank: Option<usize>,
    /// `kv_lora_rank`: width of the cached latent `c_kv`.
    pub kv_lora_rank: usize,
    /// `qk_nope_head_dim`.
    pub qk_nope_head_dim: usize,
    /// `qk_rope_head_dim` (even): width of the cached, rotated `k_pe`.
    pub qk_rope_head_dim: usize,
    /// `v_head_dim`.
    pub v_head_dim: usize,
    /// `first_k_dense_replace`: layers `< this` use the dense MLP.
    pub first_k_dense_replace: usize,
    /// `rms_norm_eps` (finite, > 0); used for every norm, as llama.cpp does.
    pub rms_norm_eps: f32,
    /// `rope_theta`.
    pub rope_theta: f32,
    /// YaRN, if the file enables it.
    pub yarn: Option<Yarn>,
    /// Trained context length (`max_position_embeddings`).
    pub context_length: usize,
    /// MoE settings; `None` when every layer is dense.
    pub moe: Option<MoeConfig>,
}

impl ModelConfig {
    /// Reads and validates the hyperparameters of a `deepseek2` GGUF.
    ///
    /// # Errors
    /// [`ConfigError`] for a wrong architecture, a missing or ill-typed key, or an out-of-range
    /// value; [`Error::SizeOverflow`] if buffer sizes would overflow `usize`.
    pub fn from_gguf(gguf: &Gguf<'_>) -> Result<Self, Error> {
        let keys = Keys(gguf);
        if gguf.get(KEY_ARCHITECTURE).and_then(|v| v.as_str()) != Some(ARCH) {
            return Err(ConfigError::UnsupportedArchitecture.into());
        }
        let hidden_size = keys.count(KEY_EMBEDDING_LENGTH)?;
        let num_hidden_layers = keys.count(KEY_BLOCK_COUNT)?;
        let num_attention_heads = keys.count(KEY_HEAD_COUNT)?;
        let kv_lora_rank = keys.count(KEY_KV_LORA_RANK)?;
        let qk_rope_head_dim = keys.count(KEY_ROPE_DIMENSION_COUNT)?;
        let q_lora_rank = keys.opt_usize(KEY_Q_LORA_RANK)?.filter(|&r| r > 0);

        // MLA files carry `*_mla`; legacy ones mean per-head sizes by key_length/value_length.
        let (qk_head_dim, v_head_dim) = match keys.opt_usize(KEY_KEY_LENGTH_MLA)? {
            Some(k) => (k, keys.count(KEY_VALUE_LENGTH_MLA)?),
            None => (keys.count(KEY_KEY_LENGTH)?, keys.count(KEY_VALUE_LENGTH)?),
        };
        let qk_nope_head_dim = qk_head_dim
            .checked_sub(qk_rope_head_dim)
            .filter(|&n| n > 0)
            .ok_or(ConfigError::InvalidValue(KEY_KEY_LENGTH_MLA))?;
        if qk_rope_head_dim % 2 != 0 {
            return Err(ConfigError::InvalidValue(KEY_ROPE_DIMENSION_COUNT).into());
        }
        if kv_lora_rank > hidden_size {
            return Err(ConfigError::InvalidValue(KEY_KV_LORA_RANK).into());
        }
        if q_lora_rank.is_some_and(|r| r > hidden_size) {
            return Err(ConfigError::InvalidValue(KEY_Q_LORA_RANK).into());
        }
        if u16::try_from(num_hidden_layers).is_err() {
            return Err(ConfigError::InvalidValue(KEY_BLOCK_COUNT).into());
        }

        let first_k_dense_replace =
            keys.opt_usize(KEY_LEADING_DENSE)?.unwrap_or(0).min(num_hidden_layers);
        let intermediate_size = if first_k_dense_replace > 0 {
            keys.count(KEY_FEED_FORWARD_LENGTH)?
        } else {
            keys.opt_usize(KEY_FEED_FORWARD_LENGTH)?.unwrap_or(0)
        };
        let moe =
            if first_k_dense_replace < num_hidden_layers { Some(read_moe(&keys)?) } else { None };

        let rms_norm_eps = keys.f32_or(KEY_RMS_EPS, None)?;
        if !(rms_norm_eps.is_finite() && rms_norm_eps > 0.0) {
            return Err(ConfigError::InvalidValue(KEY_RMS_EPS).into());
        }
        let rope_theta = keys.f32_or(KEY_ROPE_FREQ_BASE, Some(10_000.0))?;
        if !(rope_theta.is_finite() && rope_theta > 1.0) {
            return Err(ConfigError::InvalidValue(KEY_ROPE_FREQ_BASE).into());
        }
        let yarn = read_yarn(&keys)?;
        let context_length = keys.count(KEY_CONTEXT_LENGTH)?;
        // The vocab key is optional in llama.cpp's files; without it the embedding's row count
        // (`ne[1]`) says. The loader checks every tensor against whichever was used.
        let vocab_size = match keys.opt_usize(KEY_VOCAB_SIZE)? {
            Some(n) => n,
            None => gguf
                .tensor(crate::tensor::TensorKind::TokenEmbd.suffix())
                .and_then(|t| usize::try_from(t.dims[1]).ok())
                .ok_or(ConfigError::MissingKey(KEY_VOCAB_SIZE))?,
        };
        if vocab_size == 0 || u32::try_from(vocab_size).is_err() {
            return Err(ConfigError::InvalidValue(KEY_VOCAB_SIZE).into());
        }

        let config = ModelConfig {
            vocab_size,
            hidden_size,
            num_hidden_layers,
            intermediate_size,
            num_attention_heads,
            q_lora_rank,
            kv_lora_rank,
            qk_nope_head_dim,
            qk_rope_head_dim,
            v_head_dim,
            first_k_dense_replace,
            rms_norm_eps,
            rope_theta,
            yarn,
            context_length,
            moe,
        };
        // Reject configs whose buffers cannot be sized on this target.
        config.scratch_elems(1)?;
        Ok(config)
    }

    /// `qk_nope_head_dim + qk_rope_head_dim`: the per-head query/key width of the reference.
    pub fn qk_head_dim(&self) -> usize {
        self.qk_nope_head_dim + self.qk_rope_head_dim
    }

    /// Elements of one latent-cache row: `kv_lora_rank + qk_rope_head_dim` (`c_kv`, then the
    /// rotated `k_pe`).
    pub fn cache_row_elems(&self) -> usize {
        self.kv_lora_rank + self.qk_rope_head_dim
    }

    /// Bytes of latent cache per token across all layers, at `f32`.
    pub fn cache_bytes_per_token(&self) -> usize {
        self.cache_row_elems()
            .saturating_mul(self.num_hidden_layers)
            .saturating_mul(core::mem::size_of::<f32>())
    }

    /// True when layer `layer` uses the routed-expert MLP.
    pub fn is_moe_layer(&self, layer: usize) -> bool {
        self.moe.is_some() && layer >= self.first_k_dense_replace
    }

    /// The widest FFN hidden activation any layer needs (dense, one expert, or the fused shared
    /// experts).
    pub(crate) fn ffn_hidden_max(&self) -> Option<usize> {
        let moe = self
            .moe
            .map_or(Some(0), |m| m.moe_intermediate_size.checked_mul(m.n_shared_experts.max(1)))?;
        Some(self.intermediate_size.max(moe))
    }
}

/// Reads the MoE keys (only called when some layer is MoE).
fn read_moe(keys: &Keys<'_, '_>) -> Result<MoeConfig, Error> {
    let n_routed_experts = keys.count(KEY_EXPERT_COUNT)?;
    let num_experts_per_tok = keys.count(KEY_EXPERT_USED_COUNT)?;
    let n_shared_experts = keys.opt_usize(KEY_EXPERT_SHARED_COUNT)?.unwrap_or(0);
    let moe_intermediate_size = keys.count(KEY_EXPERT_FF_LENGTH)?;
    let routed_scaling_factor = keys.f32_or(KEY_EXPERT_WEIGHTS_SCALE, Some(1.0))?;
    let norm_topk_prob = match keys.0.get(KEY_EXPERT_WEIGHTS_NORM) {
        None => false,
        Some(v) => v.as_bool().ok_or(ConfigError::WrongKeyType(KEY_EXPERT_WEIGHTS_NORM))?,
    };
    let gating = match keys.opt_usize(KEY_EXPERT_GATING_FUNC)? {
        None | Some(1) => Gating::Softmax,
        Some(2) => Gating::Sigmoid,
        Some(_) => return Err(ConfigError::Unsupported(KEY_EXPERT_GATING_FUNC).into()),
    };
    let n_group = keys.opt_usize(KEY_EXPERT_GROUP_COUNT)?.unwrap_or(1).max(1);
    let topk_group = keys.opt_usize(KEY_EXPERT_GROUP_USED_COUNT)?.unwrap_or(n_group).max(1);

    if num_experts_per_tok > n_routed_experts || num_experts_per_tok > MAX_EXPERTS_USED {
        return Err(ConfigError::InvalidValue(KEY_EXPERT_USED_COUNT).into());
    }
    if n_group > MAX_EXPERT_GROUPS || n_routed_experts % n_group != 0 {
        return Err(ConfigError::InvalidValue(KEY_EXPERT_GROUP_COUNT).into());
    }
    let per_group = n_routed_experts / n_group;
    // Group scores use the top two experts of a group (sigmoid, or llama.cpp's rule), and the
    // kept groups must hold enough experts to choose from.
    let too_few_per_group = n_group > 1 && per_group < 2;
    if topk_group > n_group
        || too_few_per_group
        || topk_group.saturating_mul(per_group) < num_experts_per_tok
    {
        return Err(ConfigError::InvalidValue(KEY_EXPERT_GROUP_USED_COUNT).into());
    }
    if !routed_scaling_factor.is_finite() {
        return Err(ConfigError::InvalidValue(KEY_EXPERT_WEIGHTS_SCALE).into());
    }
    Ok(MoeConfig {
        n_routed_experts,
        num_experts_per_tok,
        n_shared_experts,
        moe_intermediate_size,
        routed_scaling_factor,
        norm_topk_prob,
        gating,
        n_group,
        topk_group,
    })
}

/// Reads the YaRN keys, if `rope.scaling.type` enables it.
fn read_yarn(keys: &Keys<'_, '_>) -> Result<Option<Yarn>, Error> {
    let kind = match keys.0.get(KEY_ROPE_SCALING_TYPE) {
        None => return Ok(None),
        Some(v) => v.as_str().ok_or(ConfigError::WrongKeyType(KEY_ROPE_SCALING_TYPE))?,
    };
    match kind {
        "none" => return Ok(None),
        "yarn" => {}
        _ => return Err(ConfigError::Unsupported(KEY_ROPE_SCALING_TYPE).into()),
    }
    let factor = keys.f32_or(KEY_ROPE_SCALING_FACTOR, None)?;
    if !(factor.is_finite() && factor > 0.0) {
        return Err(ConfigError::InvalidValue(KEY_ROPE_SCALING_FACTOR).into());
    }
    let original_context_length = u32::try_from(keys.count(KEY_ROPE_SCALING_ORIG_CTX)?)
        .map_err(|_| ConfigError::InvalidValue(KEY_ROPE_SCALING_ORIG_CTX))?;
    let beta_fast = keys.f32_or(KEY_YARN_BETA_FAST, Some(32.0))?;
    let beta_slow = keys.f32_or(KEY_YARN_BETA_SLOW, Some(1.0))?;
    if !(beta_fast.is_finite() && beta_fast > 0.0 && beta_slow.is_finite() && beta_slow > 0.0) {
        return Err(ConfigError::InvalidValue(KEY_YARN_BETA_FAST).into());
    }
    let log_multiplier = keys.f32_or(KEY_YARN_LOG_MULTIPLIER, Some(0.0))?;
    if !log_multiplier.is_finite() {
        return Err(ConfigError::InvalidValue(KEY_YARN_LOG_MULTIPLIER).into());
    }
    Ok(Some(Yarn { factor, original_context_length, beta_fast, beta_slow, log_multiplier }))
}

/// Typed access to metadata keys, with the key name in every error.
struct Keys<'g, 'a>(&'g Gguf<'a>);

impl Keys<'_, '_> {
    fn value(&self, key: &'static str) -> Result<MetadataValue<'_>, ConfigError> {
        self.0.get(key).ok_or(ConfigError::MissingKey(key))
    }

    /// An optional non-negative integer that fits `usize`.
    fn opt_usize(&self, key: &'static str) -> Result<Option<usize>, ConfigError> {
        match self.0.get(key) {
            None => Ok(None),
            Some(v) => {
                let n = v.as_u64().ok_or(ConfigError::WrongKeyType(key))?;
                usize::try_from(n).map(Some).map_err(|_| ConfigError::InvalidValue(key))
            }
        }
    }

    /// A required count, at least 1.
    fn count(&self, key: &'static str) -> Result<usize, ConfigError> {
        let v = self.value(key)?;
        let n = v.as_u64().ok_or(ConfigError::WrongKeyType(key))?;
        match usize::try_from(n) {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(ConfigError::InvalidValue(key)),
        }
    }

    /// A float key (`f32` or `f64`), or `default` when absent (required when `None`).
    fn f32_or(&self, key: &'static str, default: Option<f32>) -> Result<f32, ConfigError> {
        match (self.0.get(key), default) {
            (None, Some(d)) => Ok(d),
            (None, None) => Err(ConfigError::MissingKey(key)),
            #[allow(clippy::cast_possible_truncation)] // f64 -> f32 rounds; that is intended.
            (Some(v), _) => v.as_f64().map(|f| f as f32).ok_or(ConfigError::WrongKeyType(key)),
        }
    }
}

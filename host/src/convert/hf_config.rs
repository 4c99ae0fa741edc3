//! Hugging Face `config.json` (DeepseekV2Config / DeepseekV3Config) → the `deepseek2.*` GGUF
//! keys, as llama.cpp's `convert_hf_to_gguf.py` (`DeepseekV2Model.set_gguf_parameters`) and
//! `scripts/gen_fixtures.py` (`gguf_metadata`) write them.

use std::path::Path;

use serde_json::{Map, Value as Json};

use super::error::ConvertError;
use crate::gguf_writer::Value;

/// Architecture string of every file this converter writes.
pub const ARCH: &str = "deepseek2";

/// Which Hugging Face model class the checkpoint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `DeepseekV2ForCausalLM`: softmax routing unless `scoring_func` says otherwise.
    V2,
    /// `DeepseekV3ForCausalLM`: sigmoid routing plus `e_score_correction_bias`.
    V3,
}

// The MoE settings are the core's own types: the converter writes exactly what the engine
// reads back.
pub use tinymla_core::config::{Gating, MoeConfig};

/// YaRN rope scaling.
#[derive(Debug, Clone, PartialEq)]
pub struct Yarn {
    /// Context extension factor.
    pub factor: f32,
    /// Trained context before extension.
    pub original_max_position_embeddings: usize,
    /// `beta_fast` (HF default 32).
    pub beta_fast: f32,
    /// `beta_slow` (HF default 1).
    pub beta_slow: f32,
    /// `mscale_all_dim`, if given (written as `yarn_log_multiplier = 0.1 · mscale_all_dim`,
    /// computed in f64 like the Python converters, then stored as f32).
    pub mscale_all_dim: Option<f64>,
}

/// The fields of a DeepSeek-V2/V3 `config.json` that the GGUF needs, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct HfConfig {
    /// Model class.
    pub family: Family,
    /// Rows of the embedding and output matrices.
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// Hidden width of the dense FFN layers.
    pub intermediate_size: usize,
    /// Transformer blocks (MTP layers past this index are skipped).
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Trained context length.
    pub max_position_embeddings: usize,
    /// Epsilon of every RMSNorm.
    pub rms_norm_eps: f32,
    /// Rank of the query LoRA, or `None` for a full `q_proj` (DeepSeek-V2-Lite).
    pub q_lora_rank: Option<usize>,
    /// Rank of the joint KV latent.
    pub kv_lora_rank: usize,
    /// Per-head query/key width without RoPE.
    pub qk_nope_head_dim: usize,
    /// Per-head RoPE width (shared key).
    pub qk_rope_head_dim: usize,
    /// Per-head value width.
    pub v_head_dim: usize,
    /// Leading dense layers; the rest are MoE (`num_hidden_layers` if there are no experts).
    pub first_k_dense_replace: usize,
    /// The MoE settings, `None` for an all-dense model.
    pub moe: Option<MoeConfig>,
    /// RoPE base.
    pub rope_theta: f32,
    /// YaRN scaling, if any.
    pub yarn: Option<Yarn>,
    /// `lm_head` shares `embed_tokens`' weights.
    pub tie_word_embeddings: bool,
    /// `bos_token_id`, if set.
    pub bos_token_id: Option<u32>,
    /// `eos_token_id`, if set (the first one if it is a list).
    pub eos_token_id: Option<u32>,
    /// `pad_token_id`, if set.
    pub pad_token_id: Option<u32>,
}

/// Typed access to a JSON object with errors that name the key.
struct Keys<'a>(&'a Map<String, Json>, &'a str);

impl Keys<'_> {
    fn key(&self, key: &str) -> String {
        if self.1.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.1)
        }
    }

    fn err(&self, key: &str, problem: &'static str) -> ConvertError {
        ConvertError::ConfigKey { key: self.key(key), problem }
    }

    /// `None` when absent or `null`.
    fn get(&self, key: &str) -> Option<&Json> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    fn opt_usize(&self, key: &str) -> Result<Option<usize>, ConvertError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|x| usize::try_from(x).ok())
                .map(Some)
                .ok_or_else(|| self.err(key, "not an unsigned integer")),
        }
    }

    fn usize(&self, key: &str) -> Result<usize, ConvertError> {
        self.opt_usize(key)?.ok_or_else(|| self.err(key, "missing"))
    }

    /// A size that must be at least 1 (a zero would give a GGUF tensor with an empty dim).
    fn positive(&self, key: &str) -> Result<usize, ConvertError> {
        match self.usize(key)? {
            0 => Err(self.err(key, "0 (must be at least 1)")),
            n => Ok(n),
        }
    }

    fn opt_f32(&self, key: &str) -> Result<Option<f32>, ConvertError> {
        match self.get(key) {
            None => Ok(None),
            // Narrowing to f32 is what gguf-py does when it writes an f32 key.
            #[allow(clippy::cast_possible_truncation)]
            Some(v) => {
                v.as_f64().map(|x| Some(x as f32)).ok_or_else(|| self.err(key, "not a number"))
            }
        }
    }

    fn opt_bool(&self, key: &str) -> Result<Option<bool>, ConvertError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_bool().map(Some).ok_or_else(|| self.err(key, "not true or false")),
        }
    }

    fn opt_str(&self, key: &str) -> Result<Option<&str>, ConvertError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_str().map(Some).ok_or_else(|| self.err(key, "not a string")),
        }
    }

    /// A token id that may also be given as a list (the first entry counts).
    fn opt_token(&self, key: &str) -> Result<Option<u32>, ConvertError> {
        let v = match self.get(key) {
            None => return Ok(None),
            Some(Json::Array(items)) => match items.first() {
                None => return Ok(None),
                Some(first) => first,
            },
            Some(v) => v,
        };
        v.as_u64()
            .and_then(|x| u32::try_from(x).ok())
            .map(Some)
            .ok_or_else(|| self.err(key, "not a token id"))
    }
}

/// Reads and parses a JSON file.
///
/// # Errors
/// [`ConvertError::MissingFile`], [`ConvertError::Io`] or [`ConvertError::Json`].
pub fn read_json(path: &Path) -> Result<Json, ConvertError> {
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ConvertError::MissingFile(path.to_owned()),
        _ => ConvertError::Io(path.to_owned(), e),
    })?;
    serde_json::from_str(&text).map_err(|e| ConvertError::Json(path.to_owned(), e))
}

impl HfConfig {
    /// Reads `dir/config.json`.
    ///
    /// # Errors
    /// A missing or invalid file, a missing key, or a model this converter does not support.
    pub fn load(dir: &Path) -> Result<Self, ConvertError> {
        let json = read_json(&dir.join("config.json"))?;
        Self::from_json(&json)
    }

    /// Validates a parsed `config.json`.
    ///
    /// # Errors
    /// A missing or mistyped key, or a model this converter does not support.
    pub fn from_json(json: &Json) -> Result<Self, ConvertError> {
        let obj = json.as_object().ok_or(ConvertError::ConfigKey {
            key: "(top level)".into(),
            problem: "not a JSON object",
        })?;
        let k = Keys(obj, "");
        let family = family(&k)?;

        if let Some(act) = k.opt_str("hidden_act")? {
            if act != "silu" {
                return Err(ConvertError::UnsupportedConfig(format!(
                    "hidden_act {act:?} is not supported (DeepSeek models use \"silu\")"
                )));
            }
        }
        let num_hidden_layers = k.positive("num_hidden_layers")?;
        let num_attention_heads = k.positive("num_attention_heads")?;
        let n_routed = k.opt_usize("n_routed_experts")?;
        let first_k_dense_replace = match k.opt_usize("first_k_dense_replace")? {
            Some(n) => n.min(num_hidden_layers),
            None if n_routed.is_none() => num_hidden_layers,
            None => 0,
        };
        let moe = match n_routed {
            Some(n) if n > 0 && first_k_dense_replace < num_hidden_layers => {
                Some(moe_config(&k, family, n)?)
            }
            _ => None,
        };
        let (rope_theta, yarn) = rope(&k)?;
        Ok(HfConfig {
            family,
            vocab_size: k.positive("vocab_size")?,
            hidden_size: k.positive("hidden_size")?,
            intermediate_size: k.positive("intermediate_size")?,
            num_hidden_layers,
            num_attention_heads,
            max_position_embeddings: k.positive("max_position_embeddings")?,
            rms_norm_eps: k.opt_f32("rms_norm_eps")?.unwrap_or(1e-6),
            q_lora_rank: k.opt_usize("q_lora_rank")?.filter(|&r| r > 0),
            kv_lora_rank: k.positive("kv_lora_rank")?,
            qk_nope_head_dim: k.positive("qk_nope_head_dim")?,
            qk_rope_head_dim: k.positive("qk_rope_head_dim")?,
            v_head_dim: k.positive("v_head_dim")?,
            first_k_dense_replace,
            moe,
            rope_theta,
            yarn,
            tie_word_embeddings: k.opt_bool("tie_word_embeddings")?.unwrap_or(false),
            bos_token_id: k.opt_token("bos_token_id")?,
            eos_token_id: k.opt_token("eos_token_id")?,
            pad_token_id: k.opt_token("pad_token_id")?,
        })
    }

    /// Whether layer `il` has an MoE FFN (else a dense SwiGLU).
    pub fn is_moe_layer(&self, il: usize) -> bool {
        self.moe.is_some() && il >= self.first_k_dense_replace
    }

    /// The `deepseek2.*` keys, in the order `scripts/gen_fixtures.py` writes them.
    pub fn metadata(&self) -> Vec<(String, Value)> {
        let mut kv: Vec<(String, Value)> = Vec::new();
        let mut put = |key: &str, value: Value| kv.push((format!("{ARCH}.{key}"), value));
        let u = |x: usize| Value::U32(u32::try_from(x).unwrap_or(u32::MAX));
        put("context_length", u(self.max_position_embeddings));
        put("embedding_length", u(self.hidden_size));
        put("block_count", u(self.num_hidden_layers));
        put("feed_forward_length", u(self.intermediate_size));
        put("attention.head_count", u(self.num_attention_heads));
        // MLA is stored as MQA with one wide KV head: the latent plus the shared RoPE key.
        put("attention.head_count_kv", Value::U32(1));
        put("attention.layer_norm_rms_epsilon", Value::F32(self.rms_norm_eps));
        put("rope.freq_base", Value::F32(self.rope_theta));
        put("rope.dimension_count", u(self.qk_rope_head_dim));
        if let Some(rank) = self.q_lora_rank {
            put("attention.q_lora_rank", u(rank));
        }
        put("attention.kv_lora_rank", u(self.kv_lora_rank));
        put("attention.key_length", u(self.kv_lora_rank + self.qk_rope_head_dim));
        put("attention.value_length", u(self.kv_lora_rank));
        put("attention.key_length_mla", u(self.qk_nope_head_dim + self.qk_rope_head_dim));
        put("attention.value_length_mla", u(self.v_head_dim));
        put("leading_dense_block_count", u(self.first_k_dense_replace));
        put("vocab_size", u(self.vocab_size));
        match &self.moe {
            Some(m) => {
                put("expert_feed_forward_length", u(m.moe_intermediate_size));
                put("expert_count", u(m.n_routed_experts));
                put("expert_used_count", u(m.num_experts_per_tok));
                put("expert_shared_count", u(m.n_shared_experts));
                put("expert_weights_scale", Value::F32(m.routed_scaling_factor));
                if m.norm_topk_prob {
                    put("expert_weights_norm", Value::Bool(true));
                }
                let gating = match m.gating {
                    Gating::Softmax => 1,
                    Gating::Sigmoid => 2,
                };
                put("expert_gating_func", Value::U32(gating));
                put("expert_group_count", u(m.n_group));
                put("expert_group_used_count", u(m.topk_group));
            }
            None => {
                // llama.cpp requires the first two even without MoE layers.
                for key in [
                    "expert_feed_forward_length",
                    "expert_shared_count",
                    "expert_count",
                    "expert_used_count",
                ] {
                    put(key, Value::U32(0));
                }
            }
        }
        if let Some(y) = &self.yarn {
            put("rope.scaling.type", Value::Str("yarn".into()));
            put("rope.scaling.factor", Value::F32(y.factor));
            put("rope.scaling.original_context_length", u(y.original_max_position_embeddings));
            put("rope.scaling.yarn_beta_fast", Value::F32(y.beta_fast));
            put("rope.scaling.yarn_beta_slow", Value::F32(y.beta_slow));
            if let Some(m) = y.mscale_all_dim {
                // llama.cpp's legacy convention ([TAG_DEEPSEEK2_YARN_LOG_MUL_FIX]): 0.1 ·
                // mscale_all_dim, computed in f64 as Python does, then stored as f32.
                #[allow(clippy::cast_possible_truncation)]
                let mul = (0.1 * m) as f32;
                put("rope.scaling.yarn_log_multiplier", Value::F32(mul));
            }
        }
        kv
    }
}

fn family(k: &Keys<'_>) -> Result<Family, ConvertError> {
    let arch = match k.get("architectures") {
        Some(Json::Array(items)) => items.first().and_then(Json::as_str).map(str::to_owned),
        _ => None,
    };
    match arch.as_deref() {
        Some("DeepseekV2ForCausalLM") => Ok(Family::V2),
        Some("DeepseekV3ForCausalLM") => Ok(Family::V3),
        Some(other) => Err(ConvertError::UnsupportedArchitecture(other.to_owned())),
        None => match k.opt_str("model_type")? {
            Some("deepseek_v2") => Ok(Family::V2),
            Some("deepseek_v3") => Ok(Family::V3),
            Some(other) => Err(ConvertError::UnsupportedArchitecture(other.to_owned())),
            None => Err(k.err("architectures", "missing")),
        },
    }
}

fn moe_config(k: &Keys<'_>, family: Family, n_routed: usize) -> Result<MoeConfig, ConvertError> {
    if let Some(freq) = k.opt_usize("moe_layer_freq")? {
        if freq != 1 {
            return Err(ConvertError::UnsupportedConfig(format!(
                "moe_layer_freq = {freq}: the deepseek2 GGUF layout only has leading dense \
                 layers followed by MoE layers (moe_layer_freq = 1)"
            )));
        }
    }
    // transformers 5 drops `scoring_func` on save; the model class then decides.
    let gating = match k.opt_str("scoring_func")? {
        Some("softmax") => Gating::Softmax,
        Some("sigmoid") => Gating::Sigmoid,
        Some(other) => {
            return Err(ConvertError::UnsupportedConfig(format!(
                "scoring_func {other:?} is not supported (softmax or sigmoid)"
            )))
        }
        None => match family {
            Family::V2 => Gating::Softmax,
            Family::V3 => Gating::Sigmoid,
        },
    };
    let n_group = k.opt_usize("n_group")?.unwrap_or(1).max(1);
    let topk_group = k.opt_usize("topk_group")?.unwrap_or(n_group).max(1);
    let num_experts_per_tok = k.positive("num_experts_per_tok")?;
    if !n_routed.is_multiple_of(n_group) || topk_group > n_group || num_experts_per_tok > n_routed {
        return Err(ConvertError::UnsupportedConfig(format!(
            "inconsistent routing: {n_routed} experts, {n_group} groups, topk_group \
             {topk_group}, num_experts_per_tok {num_experts_per_tok}"
        )));
    }
    Ok(MoeConfig {
        n_routed_experts: n_routed,
        num_experts_per_tok,
        n_shared_experts: k.opt_usize("n_shared_experts")?.unwrap_or(0),
        moe_intermediate_size: k.positive("moe_intermediate_size")?,
        routed_scaling_factor: k.opt_f32("routed_scaling_factor")?.unwrap_or(1.0),
        norm_topk_prob: k.opt_bool("norm_topk_prob")?.unwrap_or(false),
        gating,
        n_group,
        topk_group,
    })
}

/// `(rope_theta, yarn)` from transformers 5's `rope_parameters` or the older `rope_theta` +
/// `rope_scaling` pair that DeepSeek's own config.json files use.
fn rope(k: &Keys<'_>) -> Result<(f32, Option<Yarn>), ConvertError> {
    let (params_key, params) = match (k.get("rope_parameters"), k.get("rope_scaling")) {
        (Some(p), _) => ("rope_parameters", Some(p)),
        (None, Some(p)) => ("rope_scaling", Some(p)),
        (None, None) => ("rope_scaling", None),
    };
    let Some(params) = params else {
        return Ok((k.opt_f32("rope_theta")?.unwrap_or(10_000.0), None));
    };
    let obj = params.as_object().ok_or_else(|| k.err(params_key, "not a JSON object"))?;
    let p = Keys(obj, params_key);
    let theta = match p.opt_f32("rope_theta")? {
        Some(t) => t,
        None => k.opt_f32("rope_theta")?.unwrap_or(10_000.0),
    };
    let kind = match p.opt_str("rope_type")? {
        Some(t) => Some(t),
        None => p.opt_str("type")?,
    };
    match kind {
        None | Some("default") => Ok((theta, None)),
        Some("yarn") => {
            let mscale = p.get("mscale").and_then(Json::as_f64);
            let mscale_all_dim = match p.get("mscale_all_dim") {
                None => None,
                Some(v) => Some(v.as_f64().ok_or_else(|| p.err("mscale_all_dim", "not a number"))?),
            };
            if let (Some(a), Some(b)) = (mscale, mscale_all_dim) {
                if a != b {
                    return Err(ConvertError::UnsupportedConfig(format!(
                        "{params_key}: mscale {a} != mscale_all_dim {b}; GGUF deepseek2 has no \
                         key for the rotary attention factor this implies"
                    )));
                }
            }
            let factor = p.opt_f32("factor")?.ok_or_else(|| p.err("factor", "missing"))?;
            Ok((
                theta,
                Some(Yarn {
                    factor,
                    original_max_position_embeddings: p
                        .usize("original_max_position_embeddings")?,
                    beta_fast: p.opt_f32("beta_fast")?.unwrap_or(32.0),
                    beta_slow: p.opt_f32("beta_slow")?.unwrap_or(1.0),
                    mscale_all_dim,
                }),
            ))
        }
        Some(other) => Err(ConvertError::UnsupportedConfig(format!(
            "{params_key}: rope type {other:?} is not supported (default or yarn)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DeepSeek's own V2-Lite config.json style: `rope_theta` + `rope_scaling` with `type`.
    fn v2_lite() -> Json {
        serde_json::json!({
            "architectures": ["DeepseekV2ForCausalLM"], "vocab_size": 102400, "hidden_size": 2048,
            "intermediate_size": 10944, "moe_intermediate_size": 1408, "num_hidden_layers": 27,
            "num_attention_heads": 16, "q_lora_rank": null, "kv_lora_rank": 512,
            "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128,
            "n_routed_experts": 64, "num_experts_per_tok": 6, "n_shared_experts": 2,
            "first_k_dense_replace": 1, "moe_layer_freq": 1, "norm_topk_prob": false,
            "routed_scaling_factor": 1.0, "max_position_embeddings": 163840, "rope_theta": 10000,
            "rope_scaling": {"type": "yarn", "factor": 40, "original_max_position_embeddings": 4096,
                             "beta_fast": 32, "beta_slow": 1, "mscale": 0.707, "mscale_all_dim": 0.707},
            "bos_token_id": 100000, "eos_token_id": 100001
        })
    }

    #[test]
    fn v2_lite_config_maps_like_real_v2_lite_ggufs() {
        let cfg = HfConfig::from_json(&v2_lite()).unwrap();
        assert_eq!(cfg.q_lora_rank, None);
        assert_eq!(cfg.moe.as_ref().unwrap().gating, Gating::Softmax);
        let meta = cfg.metadata();
        let get =
            |k: &str| meta.iter().find(|(key, _)| key == &format!("deepseek2.{k}")).map(|(_, v)| v);
        assert!(matches!(get("attention.key_length"), Some(Value::U32(576))));
        assert!(matches!(get("attention.key_length_mla"), Some(Value::U32(192))));
        assert!(matches!(get("rope.scaling.factor"), Some(Value::F32(f)) if *f == 40.0));
        assert!(
            matches!(get("rope.scaling.yarn_log_multiplier"), Some(Value::F32(f)) if *f == 0.0707)
        );
        assert!(get("attention.q_lora_rank").is_none() && get("expert_weights_norm").is_none());
    }

    #[test]
    fn dense_only_v3_writes_zero_experts_and_sigmoid_is_the_v3_default() {
        let mut j = v2_lite();
        j["architectures"] = serde_json::json!(["DeepseekV3ForCausalLM"]);
        assert_eq!(HfConfig::from_json(&j).unwrap().moe.unwrap().gating, Gating::Sigmoid);
        j["first_k_dense_replace"] = 30.into(); // more than the 27 layers
        let cfg = HfConfig::from_json(&j).unwrap();
        assert!(cfg.moe.is_none() && cfg.first_k_dense_replace == 27);
        let meta = cfg.metadata();
        assert!(meta
            .iter()
            .any(|(k, v)| k == "deepseek2.expert_count" && matches!(v, Value::U32(0))));
    }

    #[test]
    fn configs_gguf_cannot_express_are_refused() {
        let mut j = v2_lite();
        j["rope_scaling"]["mscale"] = 1.0.into();
        assert!(matches!(HfConfig::from_json(&j), Err(ConvertError::UnsupportedConfig(_))));
        let mut j = v2_lite();
        j["rope_scaling"]["type"] = "linear".into();
        assert!(matches!(HfConfig::from_json(&j), Err(ConvertError::UnsupportedConfig(_))));
        let mut j = v2_lite();
        j["kv_lora_rank"] = "512".into();
        let e = HfConfig::from_json(&j).unwrap_err();
        assert_eq!(e.to_string(), "config.json: `kv_lora_rank` is not an unsigned integer");
    }
}

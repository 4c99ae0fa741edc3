//! Synthetic DeepSeek-V2/V3 models with deterministic pseudo-random weights, written as GGUF in
//! llama.cpp's `deepseek2` layout: benchmark subjects with real model shapes (e.g.
//! DeepSeek-V2-Lite's attention) without downloading anything.

use half::f16;
use tinymla_core::quant::{q8_0, QK};

use crate::gguf_writer::{GgufWriter, TensorData, Value};

/// Storage of the synthetic weight matrices (norms and the router stay F32, as llama.cpp does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightType {
    /// ggml type 0.
    F32,
    /// ggml type 1.
    F16,
    /// ggml type 8, quantised with the core's (llama.cpp's reference) Q8_0 rounding. Needs
    /// every row length to be a multiple of 32.
    Q8_0,
}

/// The shape of a synthetic model. Field names follow Hugging Face's DeepSeek configs.
#[derive(Debug, Clone)]
pub struct SynthSpec {
    /// `general.name`.
    pub name: String,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Hidden size.
    pub hidden_size: usize,
    /// Layers.
    pub num_hidden_layers: usize,
    /// Leading dense layers.
    pub first_k_dense_replace: usize,
    /// Dense FFN width.
    pub intermediate_size: usize,
    /// Heads.
    pub num_attention_heads: usize,
    /// `None`: direct `attn_q`.
    pub q_lora_rank: Option<usize>,
    /// Latent width.
    pub kv_lora_rank: usize,
    /// Non-rotary query/key width per head.
    pub qk_nope_head_dim: usize,
    /// Rotary width.
    pub qk_rope_head_dim: usize,
    /// Value width per head.
    pub v_head_dim: usize,
    /// Routed experts (0 with no MoE layers).
    pub n_routed_experts: usize,
    /// Experts per token.
    pub num_experts_per_tok: usize,
    /// Shared experts.
    pub n_shared_experts: usize,
    /// Expert width.
    pub moe_intermediate_size: usize,
    /// Trained context length written to the file.
    pub context_length: usize,
    /// Matrix storage.
    pub weight_type: WeightType,
}

impl SynthSpec {
    /// DeepSeek-V2-Lite's attention (hidden 2048, 16 heads, no q LoRA, kv_lora_rank 512,
    /// rope 64, nope 128, v 128) with `layers` layers, a small vocabulary and a thin dense FFN,
    /// so context-length effects dominate and a bench model stays small.
    pub fn v2_lite_attention(layers: usize, weight_type: WeightType) -> Self {
        SynthSpec {
            name: format!("synthetic-v2-lite-attention-{layers}l"),
            vocab_size: 4096,
            hidden_size: 2048,
            num_hidden_layers: layers,
            first_k_dense_replace: layers,
            intermediate_size: 512,
            num_attention_heads: 16,
            q_lora_rank: None,
            kv_lora_rank: 512,
            qk_nope_head_dim: 128,
            qk_rope_head_dim: 64,
            v_head_dim: 128,
            n_routed_experts: 0,
            num_experts_per_tok: 0,
            n_shared_experts: 0,
            moe_intermediate_size: 0,
            context_length: 32768,
            weight_type,
        }
    }

    /// A DeepSeek-V2-Lite-shaped model scaled down to about 400 MB at Q8_0 (so it streams
    /// from DRAM, far beyond a 32 MB L3): V2-Lite's hidden size, attention (16 heads, no q
    /// LoRA, kv_lora_rank 512, rope 64, nope 128, v 128), first dense layer (10944 wide) and
    /// expert width (1408) with 2 shared experts, but 4 layers, 6 routed experts of which 2
    /// are used, and a 16K vocabulary. About 397M parameters, of which about 260M are read
    /// per token.
    pub fn v2_lite_scaled(weight_type: WeightType) -> Self {
        SynthSpec {
            name: "synthetic-v2-lite-scaled".to_string(),
            vocab_size: 16384,
            num_hidden_layers: 4,
            first_k_dense_replace: 1,
            intermediate_size: 10944,
            n_routed_experts: 6,
            num_experts_per_tok: 2,
            n_shared_experts: 2,
            moe_intermediate_size: 1408,
            ..Self::v2_lite_attention(4, weight_type)
        }
    }

    /// Parameters the file will hold.
    pub fn n_params(&self) -> usize {
        self.tensors().iter().map(|(_, ne, _)| ne.iter().product::<u64>() as usize).sum()
    }

    /// (name, ne, is_matrix) for every tensor, in file order.
    fn tensors(&self) -> Vec<(String, Vec<u64>, bool)> {
        let u = |v: usize| v as u64;
        let (h, heads) = (u(self.hidden_size), u(self.num_attention_heads));
        let (nope, rope, v, r) = (
            u(self.qk_nope_head_dim),
            u(self.qk_rope_head_dim),
            u(self.v_head_dim),
            u(self.kv_lora_rank),
        );
        let mut t = vec![
            ("token_embd.weight".to_string(), vec![h, u(self.vocab_size)], true),
            ("output_norm.weight".to_string(), vec![h], false),
            ("output.weight".to_string(), vec![h, u(self.vocab_size)], true),
        ];
        for l in 0..self.num_hidden_layers {
            let mut add =
                |name: &str, ne: Vec<u64>, m: bool| t.push((format!("blk.{l}.{name}"), ne, m));
            add("attn_norm.weight", vec![h], false);
            match self.q_lora_rank {
                None => add("attn_q.weight", vec![h, heads * (nope + rope)], true),
                Some(q) => {
                    add("attn_q_a.weight", vec![h, u(q)], true);
                    add("attn_q_a_norm.weight", vec![u(q)], false);
                    add("attn_q_b.weight", vec![u(q), heads * (nope + rope)], true);
                }
            }
            add("attn_kv_a_mqa.weight", vec![h, r + rope], true);
            add("attn_kv_a_norm.weight", vec![r], false);
            add("attn_k_b.weight", vec![nope, r, heads], true);
            add("attn_v_b.weight", vec![r, v, heads], true);
            add("attn_output.weight", vec![heads * v, h], true);
            add("ffn_norm.weight", vec![h], false);
            if l < self.first_k_dense_replace {
                let ff = u(self.intermediate_size);
                add("ffn_gate.weight", vec![h, ff], true);
                add("ffn_up.weight", vec![h, ff], true);
                add("ffn_down.weight", vec![ff, h], true);
            } else {
                let (e, ff) = (u(self.n_routed_experts), u(self.moe_intermediate_size));
                add("ffn_gate_inp.weight", vec![h, e], false);
                add("ffn_gate_exps.weight", vec![h, ff, e], true);
                add("ffn_up_exps.weight", vec![h, ff, e], true);
                add("ffn_down_exps.weight", vec![ff, h, e], true);
                if self.n_shared_experts > 0 {
                    let sh = ff * u(self.n_shared_experts);
                    add("ffn_gate_shexp.weight", vec![h, sh], true);
                    add("ffn_up_shexp.weight", vec![h, sh], true);
                    add("ffn_down_shexp.weight", vec![sh, h], true);
                }
            }
        }
        t
    }

    /// The GGUF file, with weights drawn from a fixed-seed generator: matrices uniform in
    /// `±1/sqrt(ne[0])` (so activations keep unit scale), norm weights near 1.
    pub fn to_gguf(&self, seed: u64) -> Vec<u8> {
        let mut w = GgufWriter::new();
        let a = "deepseek2.";
        let u32v = |v: usize| Value::U32(u32::try_from(v).unwrap_or(u32::MAX));
        w.kv("general.architecture", Value::Str("deepseek2".into()))
            .kv("general.name", Value::Str(self.name.clone()))
            .kv(&format!("{a}context_length"), u32v(self.context_length))
            .kv(&format!("{a}embedding_length"), u32v(self.hidden_size))
            .kv(&format!("{a}block_count"), u32v(self.num_hidden_layers))
            .kv(&format!("{a}feed_forward_length"), u32v(self.intermediate_size))
            .kv(&format!("{a}attention.head_count"), u32v(self.num_attention_heads))
            .kv(&format!("{a}attention.head_count_kv"), u32v(1))
            .kv(&format!("{a}attention.layer_norm_rms_epsilon"), Value::F32(1e-6))
            .kv(&format!("{a}rope.freq_base"), Value::F32(10_000.0))
            .kv(&format!("{a}rope.dimension_count"), u32v(self.qk_rope_head_dim))
            .kv(&format!("{a}attention.kv_lora_rank"), u32v(self.kv_lora_rank))
            .kv(
                &format!("{a}attention.key_length"),
                u32v(self.kv_lora_rank + self.qk_rope_head_dim),
            )
            .kv(&format!("{a}attention.value_length"), u32v(self.kv_lora_rank))
            .kv(
                &format!("{a}attention.key_length_mla"),
                u32v(self.qk_nope_head_dim + self.qk_rope_head_dim),
            )
            .kv(&format!("{a}attention.value_length_mla"), u32v(self.v_head_dim))
            .kv(&format!("{a}leading_dense_block_count"), u32v(self.first_k_dense_replace))
            .kv(&format!("{a}vocab_size"), u32v(self.vocab_size));
        // 0 means a direct `attn_q`; llama.cpp requires the key unless it recognises V2-Lite
        // by its 27 layers.
        w.kv(&format!("{a}attention.q_lora_rank"), u32v(self.q_lora_rank.unwrap_or(0)));
        // No tokenizer, said explicitly: llama.cpp then loads the file with `vocab_size`
        // placeholder tokens (so `scripts/peer/speed_llamacpp.py` can run it by token ids).
        w.kv("tokenizer.ggml.model", Value::Str("none".into()));
        if self.first_k_dense_replace < self.num_hidden_layers {
            w.kv(&format!("{a}expert_feed_forward_length"), u32v(self.moe_intermediate_size))
                .kv(&format!("{a}expert_count"), u32v(self.n_routed_experts))
                .kv(&format!("{a}expert_used_count"), u32v(self.num_experts_per_tok))
                .kv(&format!("{a}expert_shared_count"), u32v(self.n_shared_experts))
                .kv(&format!("{a}expert_weights_scale"), Value::F32(1.0))
                .kv(&format!("{a}expert_gating_func"), u32v(1));
        }
        let mut rng = Rng(seed | 1);
        for (name, ne, is_matrix) in self.tensors() {
            let n: usize = ne.iter().product::<u64>() as usize;
            let values: Vec<f32> = if is_matrix {
                let scale = 1.0 / (ne[0] as f32).sqrt();
                (0..n).map(|_| rng.uniform() * scale).collect()
            } else {
                (0..n).map(|_| 1.0 + 0.1 * rng.uniform()).collect()
            };
            let stored = if is_matrix && !name.contains("gate_inp") {
                self.weight_type
            } else {
                WeightType::F32
            };
            let (ggml_type, bytes) = match stored {
                WeightType::F32 => (0, values.iter().flat_map(|v| v.to_le_bytes()).collect()),
                WeightType::F16 => {
                    (1, values.iter().flat_map(|v| f16::from_f32(*v).to_le_bytes()).collect())
                }
                WeightType::Q8_0 => (8, quantize_q8_0(&values)),
            };
            w.tensor(TensorData { name, ne, ggml_type, bytes });
        }
        w.to_bytes()
    }
}

/// `values` as Q8_0 blocks (a trailing partial block is zero-padded).
fn quantize_q8_0(values: &[f32]) -> Vec<u8> {
    let mut blocks = vec![[0u8; q8_0::BLOCK_BYTES]; values.len().div_ceil(QK)];
    q8_0::quantize(values, &mut blocks);
    blocks.concat()
}

/// xorshift64*: deterministic, fast, good enough for weights.
struct Rng(u64);

impl Rng {
    /// Uniform in [-1, 1).
    fn uniform(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40; // 24 bits
        bits as f32 / (1u64 << 23) as f32 - 1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tinymla_core::gguf::MetadataValue;

    /// The keys llama.cpp needs to load a synthetic file (see `scripts/peer/speed_llamacpp.py`).
    #[test]
    fn synthetic_files_carry_what_llama_cpp_requires() {
        let mut spec = SynthSpec::v2_lite_attention(1, WeightType::F32);
        spec.hidden_size = 64;
        spec.num_attention_heads = 2;
        spec.kv_lora_rank = 32;
        spec.qk_rope_head_dim = 8;
        spec.vocab_size = 50;
        let bytes = spec.to_gguf(1);
        let gguf = tinymla_core::Gguf::parse(&bytes).unwrap();
        let key = |k: &str| gguf.get(k).unwrap_or_else(|| panic!("{k} missing"));
        assert!(matches!(key("deepseek2.attention.q_lora_rank"), MetadataValue::U32(0)));
        assert_eq!(key("tokenizer.ggml.model").as_str(), Some("none"));
        let model = tinymla_core::Model::load(&bytes).unwrap();
        assert_eq!(model.config().q_lora_rank, None);
    }

    #[test]
    fn synthetic_models_load_and_run() {
        let mut spec = SynthSpec::v2_lite_attention(1, WeightType::F16);
        spec.hidden_size = 64;
        spec.num_attention_heads = 2;
        spec.kv_lora_rank = 32;
        spec.qk_rope_head_dim = 8;
        spec.vocab_size = 50;
        spec.num_hidden_layers = 2;
        spec.first_k_dense_replace = 1;
        spec.n_routed_experts = 4;
        spec.num_experts_per_tok = 2;
        spec.n_shared_experts = 1;
        spec.moe_intermediate_size = 16;
        spec.q_lora_rank = Some(24);
        let bytes = spec.to_gguf(7);
        let model = tinymla_core::Model::load(&bytes).unwrap();
        assert_eq!(model.config().num_hidden_layers, 2);
        let cfg = model.config();
        let mut cache_mem =
            vec![0u8; tinymla_core::LatentCache::bytes_needed(cfg, 4, Default::default()).unwrap()];
        let mut scratch_mem = vec![0.0; cfg.scratch_elems(4).unwrap()];
        let mut cache =
            tinymla_core::LatentCache::new(cfg, 4, Default::default(), &mut cache_mem).unwrap();
        let mut scratch = tinymla_core::Scratch::new(cfg, 4, &mut scratch_mem).unwrap();
        let logits = model.forward(3, &mut cache, &mut scratch).unwrap();
        assert!(logits.iter().all(|v| v.is_finite()));
    }
}

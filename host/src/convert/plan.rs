//! Hugging Face tensor names → llama.cpp `deepseek2` GGUF tensors: which source rows make up
//! each output row. Every source is shape-checked against the config here, before anything is
//! written.
//!
//! The mapping is llama.cpp's `DeepseekV2Model.modify_tensors` (and `gguf_tensors` in
//! `scripts/gen_fixtures.py`): experts stacked into 3-D tensors, `kv_b_proj` split per head
//! into `attn_k_b` (transposed) and `attn_v_b`, the tied `lm_head` dropped, MTP layers
//! (index ≥ `num_hidden_layers`) skipped. Output order is the model's: globals first, then
//! each block in forward order, as the fixture script writes it.

use std::collections::HashSet;

use super::checkpoint::{Checkpoint, Source};
use super::error::ConvertError;
use super::hf_config::{Family, HfConfig};

/// How the rows of one output tensor are gathered. A "row" is `ne[0]` consecutive values.
#[derive(Debug, Clone)]
pub enum Rows<'a> {
    /// Output row `r` is row `(r / group_rows) · stride + offset + r % group_rows` of the only
    /// source, or row `offset + r % group_rows` of source `r / group_rows` when there are several
    /// (one per expert). Covers plain copies, stacked experts, the halves of a fused
    /// `gate_up_proj` and `attn_v_b`.
    Strided {
        /// One source, or one per group.
        sources: Vec<Source<'a>>,
        /// Output rows per group.
        group_rows: usize,
        /// Source rows per group (single source only).
        stride: usize,
        /// First source row of each group.
        offset: usize,
    },
    /// `attn_k_b`: torch `[n_head, kv_lora_rank, nope]`; output row `(h, c)` holds
    /// `kv_b[h·(nope+v) + j][c]` for `j < nope` (each head's K block, transposed).
    KvbTransposed {
        /// `kv_b_proj.weight`, torch `[n_head·(nope+v), kv_lora_rank]`.
        source: Source<'a>,
        /// `qk_nope_head_dim + v_head_dim`.
        head_rows: usize,
        /// `kv_lora_rank`.
        rank: usize,
    },
}

/// One tensor of the output file.
#[derive(Debug, Clone)]
pub struct OutTensor<'a> {
    /// GGUF name, e.g. `blk.3.attn_k_b.weight`.
    pub name: String,
    /// ggml dims, fastest first (the reverse of the torch shape).
    pub ne: Vec<u64>,
    /// Where its rows come from.
    pub rows: Rows<'a>,
}

impl OutTensor<'_> {
    /// Values per row (`ne[0]`).
    pub fn row_len(&self) -> usize {
        self.ne.first().map_or(0, |&n| usize::try_from(n).unwrap_or(0))
    }

    /// Number of rows (product of `ne[1..]`).
    pub fn n_rows(&self) -> usize {
        self.ne.iter().skip(1).map(|&n| usize::try_from(n).unwrap_or(0)).product()
    }

    /// Fills `out` (`row_len()` values) with row `r` as f32.
    pub fn read_row(&self, r: usize, out: &mut [f32]) {
        let len = out.len();
        match &self.rows {
            Rows::Strided { sources, group_rows, stride, offset } => {
                let (group, i) = (r / group_rows, r % group_rows);
                let (source, row) = if sources.len() == 1 {
                    (&sources[0], group * stride + offset + i)
                } else {
                    (&sources[group], offset + i)
                };
                source.read(row * len, out);
            }
            Rows::KvbTransposed { source, head_rows, rank } => {
                let (h, c) = (r / rank, r % rank);
                for (j, o) in out.iter_mut().enumerate() {
                    *o = source.elem((h * head_rows + j) * rank + c);
                }
            }
        }
    }
}

/// A whole-tensor copy with the torch shape `shape`.
fn copy<'a>(name: String, source: Source<'a>, shape: &[usize]) -> OutTensor<'a> {
    let rows: usize = shape.iter().rev().skip(1).product();
    OutTensor {
        name,
        ne: shape.iter().rev().map(|&d| d as u64).collect(),
        rows: Rows::Strided {
            sources: vec![source],
            group_rows: rows.max(1),
            stride: 0,
            offset: 0,
        },
    }
}

/// Builds the output tensor list, checking every source shape and that no checkpoint tensor
/// is left over.
///
/// # Errors
/// [`ConvertError::MissingTensor`], [`ConvertError::ShapeMismatch`],
/// [`ConvertError::UnexpectedTensor`].
pub fn build<'a>(
    cfg: &HfConfig,
    ckpt: &Checkpoint<'a>,
) -> Result<Vec<OutTensor<'a>>, ConvertError> {
    let mut used: HashSet<String> = HashSet::new();
    let mut out = Vec::new();
    let mut take = |name: &str, shape: &[usize]| -> Result<Source<'a>, ConvertError> {
        let s = ckpt.get(name, shape)?;
        used.insert(name.to_owned());
        Ok(s)
    };
    let h = cfg.hidden_size;
    let nh = cfg.num_attention_heads;
    let (nope, rope, v) = (cfg.qk_nope_head_dim, cfg.qk_rope_head_dim, cfg.v_head_dim);
    let rank = cfg.kv_lora_rank;

    let vocab_shape = [cfg.vocab_size, h];
    out.push(copy(
        "token_embd.weight".into(),
        take("model.embed_tokens.weight", &vocab_shape)?,
        &vocab_shape,
    ));
    out.push(copy("output_norm.weight".into(), take("model.norm.weight", &[h])?, &[h]));
    if !cfg.tie_word_embeddings {
        out.push(copy("output.weight".into(), take("lm_head.weight", &vocab_shape)?, &vocab_shape));
    }

    for il in 0..cfg.num_hidden_layers {
        let hf = format!("model.layers.{il}.");
        let blk = format!("blk.{il}.");
        let mut put = |gguf: &str, hf_name: &str, shape: &[usize]| -> Result<(), ConvertError> {
            let source = take(&format!("{hf}{hf_name}"), shape)?;
            out.push(copy(format!("{blk}{gguf}"), source, shape));
            Ok(())
        };
        put("attn_norm.weight", "input_layernorm.weight", &[h])?;
        match cfg.q_lora_rank {
            None => put("attn_q.weight", "self_attn.q_proj.weight", &[nh * (nope + rope), h])?,
            Some(q) => {
                put("attn_q_a.weight", "self_attn.q_a_proj.weight", &[q, h])?;
                put("attn_q_a_norm.weight", "self_attn.q_a_layernorm.weight", &[q])?;
                put("attn_q_b.weight", "self_attn.q_b_proj.weight", &[nh * (nope + rope), q])?;
            }
        }
        put("attn_kv_a_mqa.weight", "self_attn.kv_a_proj_with_mqa.weight", &[rank + rope, h])?;
        put("attn_kv_a_norm.weight", "self_attn.kv_a_layernorm.weight", &[rank])?;
        let kv_b = take(&format!("{hf}self_attn.kv_b_proj.weight"), &[nh * (nope + v), rank])?;
        out.push(OutTensor {
            name: format!("{blk}attn_k_b.weight"),
            ne: vec![nope as u64, rank as u64, nh as u64],
            rows: Rows::KvbTransposed { source: kv_b.clone(), head_rows: nope + v, rank },
        });
        out.push(OutTensor {
            name: format!("{blk}attn_v_b.weight"),
            ne: vec![rank as u64, v as u64, nh as u64],
            rows: Rows::Strided {
                sources: vec![kv_b],
                group_rows: v,
                stride: nope + v,
                offset: nope,
            },
        });
        let mut put = |gguf: &str, hf_name: &str, shape: &[usize]| -> Result<(), ConvertError> {
            let source = take(&format!("{hf}{hf_name}"), shape)?;
            out.push(copy(format!("{blk}{gguf}"), source, shape));
            Ok(())
        };
        put("attn_output.weight", "self_attn.o_proj.weight", &[h, nh * v])?;
        put("ffn_norm.weight", "post_attention_layernorm.weight", &[h])?;
        let moe = match &cfg.moe {
            Some(m) if cfg.is_moe_layer(il) => m,
            _ => {
                let ff = cfg.intermediate_size;
                put("ffn_gate.weight", "mlp.gate_proj.weight", &[ff, h])?;
                put("ffn_up.weight", "mlp.up_proj.weight", &[ff, h])?;
                put("ffn_down.weight", "mlp.down_proj.weight", &[h, ff])?;
                continue;
            }
        };
        let (n_exp, ff) = (moe.n_routed_experts, moe.moe_intermediate_size);
        put("ffn_gate_inp.weight", "mlp.gate.weight", &[n_exp, h])?;
        let bias = format!("{hf}mlp.gate.e_score_correction_bias");
        if cfg.family == Family::V3 || ckpt.contains(&bias) {
            let source = take(&bias, &[n_exp])?;
            out.push(copy(format!("{blk}exp_probs_b.bias"), source, &[n_exp]));
        }
        let exps = |proj: &str| -> [u64; 3] {
            if proj == "down" {
                [ff as u64, h as u64, n_exp as u64]
            } else {
                [h as u64, ff as u64, n_exp as u64]
            }
        };
        let fused = format!("{hf}mlp.experts.gate_up_proj");
        if ckpt.contains(&fused) {
            // transformers 5 in memory: gate_up_proj [E, 2·ff, h] (gate rows first), down_proj
            // [E, h, ff].
            let gate_up = take(&fused, &[n_exp, 2 * ff, h])?;
            for (proj, offset) in [("gate", 0), ("up", ff)] {
                out.push(OutTensor {
                    name: format!("{blk}ffn_{proj}_exps.weight"),
                    ne: exps(proj).to_vec(),
                    rows: Rows::Strided {
                        sources: vec![gate_up.clone()],
                        group_rows: ff,
                        stride: 2 * ff,
                        offset,
                    },
                });
            }
            let down = take(&format!("{hf}mlp.experts.down_proj"), &[n_exp, h, ff])?;
            let mut t = copy(format!("{blk}ffn_down_exps.weight"), down, &[n_exp, h, ff]);
            t.ne = exps("down").to_vec();
            out.push(t);
        } else {
            // Saved checkpoints: one [ff, h] / [h, ff] matrix per expert, stacked here.
            for proj in ["gate", "up", "down"] {
                let shape = if proj == "down" { [h, ff] } else { [ff, h] };
                let sources = (0..n_exp)
                    .map(|e| take(&format!("{hf}mlp.experts.{e}.{proj}_proj.weight"), &shape))
                    .collect::<Result<Vec<_>, _>>()?;
                out.push(OutTensor {
                    name: format!("{blk}ffn_{proj}_exps.weight"),
                    ne: exps(proj).to_vec(),
                    rows: Rows::Strided { sources, group_rows: shape[0], stride: 0, offset: 0 },
                });
            }
        }
        if moe.n_shared_experts > 0 {
            let sh = moe.n_shared_experts * ff;
            let mut put =
                |gguf: &str, hf_name: &str, shape: &[usize]| -> Result<(), ConvertError> {
                    let source = take(&format!("{hf}{hf_name}"), shape)?;
                    out.push(copy(format!("{blk}{gguf}"), source, shape));
                    Ok(())
                };
            put("ffn_gate_shexp.weight", "mlp.shared_experts.gate_proj.weight", &[sh, h])?;
            put("ffn_up_shexp.weight", "mlp.shared_experts.up_proj.weight", &[sh, h])?;
            put("ffn_down_shexp.weight", "mlp.shared_experts.down_proj.weight", &[h, sh])?;
        }
    }

    for name in ckpt.names() {
        if used.contains(name) || is_skipped(cfg, name) {
            continue;
        }
        return Err(ConvertError::UnexpectedTensor(name.to_owned()));
    }
    Ok(out)
}

/// Checkpoint tensors that are dropped on purpose: the tied `lm_head`, RoPE caches, and the
/// multi-token-prediction layers DeepSeek-V3 appends after the last block.
fn is_skipped(cfg: &HfConfig, name: &str) -> bool {
    if cfg.tie_word_embeddings && name == "lm_head.weight" {
        return true;
    }
    if name.ends_with(".rotary_emb.inv_freq") {
        return true;
    }
    name.strip_prefix("model.layers.")
        .and_then(|rest| rest.split('.').next())
        .and_then(|il| il.parse::<usize>().ok())
        .is_some_and(|il| il >= cfg.num_hidden_layers)
}

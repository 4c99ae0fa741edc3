//! `tinymla inspect FILE`: what a GGUF file holds and what running it costs.

use std::io::{self, Write};

use tinymla_core::gguf::MetadataValue;
use tinymla_core::{CacheStorage, Gguf, LatentCache, Model, ModelConfig};

use crate::roofline::WeightTraffic;

/// Why `inspect` failed.
#[derive(Debug)]
pub enum InspectError {
    /// The bytes are not a valid GGUF file.
    Parse(tinymla_core::Error),
    /// Writing the report failed.
    Io(io::Error),
}

impl std::fmt::Display for InspectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InspectError::Parse(e) => write!(f, "{e}"),
            InspectError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for InspectError {}

impl From<io::Error> for InspectError {
    fn from(e: io::Error) -> Self {
        InspectError::Io(e)
    }
}

/// Writes the report for `bytes`. A well-formed GGUF that is not a runnable deepseek2 model is
/// still listed, with the reason it would not load; a malformed file is an error.
///
/// # Errors
/// [`InspectError::Parse`] for a malformed GGUF; [`InspectError::Io`] if writing fails.
pub fn run(bytes: &[u8], ctx: usize, out: &mut impl Write) -> Result<(), InspectError> {
    let gguf = Gguf::parse(bytes).map_err(|e| InspectError::Parse(e.into()))?;
    writeln!(
        out,
        "GGUF v{}: {} bytes, {} metadata entries, {} tensors, alignment {}, data at offset {}",
        gguf.version(),
        bytes.len(),
        gguf.n_metadata(),
        gguf.n_tensors(),
        gguf.alignment(),
        gguf.data_offset()
    )?;

    writeln!(out, "\nmetadata:")?;
    for (key, value) in gguf.metadata() {
        writeln!(out, "  {key:<48} {}", show_value(&value))?;
    }

    match ModelConfig::from_gguf(&gguf) {
        Ok(c) => write_config(&c, ctx, out)?,
        Err(e) => writeln!(out, "\nnot a runnable deepseek2 model: {e}")?,
    }

    writeln!(out, "\ntensors:")?;
    writeln!(
        out,
        "  {:<36} {:<6} {:<24} {:>12} {:>12}",
        "name", "type", "ne (fastest first)", "offset", "bytes"
    )?;
    let mut n_params = 0u64;
    for t in gguf.tensors() {
        let dims = t.dims.iter().take(t.n_dims as usize).map(u64::to_string).collect::<Vec<_>>();
        writeln!(
            out,
            "  {:<36} {:<6} {:<24} {:>12} {:>12}",
            t.name,
            t.ggml_type.name(),
            format!("[{}]", dims.join(", ")),
            t.data_offset,
            t.bytes.len()
        )?;
        n_params += t.n_elements();
    }
    writeln!(out, "  total parameters: {n_params}")?;
    write_type_mix(&gguf, out)?;
    if let Some(t) = WeightTraffic::of(&gguf) {
        writeln!(
            out,
            "  weight bytes read per decoded token: {} of {} ({} read whole, {} of routed \
             experts as used / routed, {} of one embedding row)",
            t.per_token(),
            t.file_tensor_bytes,
            t.dense_bytes,
            t.routed_bytes,
            t.embedding_row_bytes
        )?;
    }

    match Model::load(bytes) {
        Ok(m) => {
            writeln!(out, "\nloads: yes ({} LM head)", if m.is_tied() { "tied" } else { "untied" })?
        }
        Err(e) => writeln!(out, "\nloads: no: {e}")?,
    }
    Ok(())
}

/// One line per storage type: tensors, parameters, bytes, share of all tensor bytes and
/// bits per weight (a K-quant file's mix as llama.cpp's quantizer chose it), then the whole
/// file's bits per weight.
fn write_type_mix(gguf: &Gguf<'_>, out: &mut impl Write) -> io::Result<()> {
    // (tensors, parameters, bytes) per type name, in the order types first appear.
    let mut mix: Vec<(&str, u64, u64, u64)> = Vec::new();
    for t in gguf.tensors() {
        let name = t.ggml_type.name();
        let i = match mix.iter().position(|m| m.0 == name) {
            Some(i) => i,
            None => {
                mix.push((name, 0, 0, 0));
                mix.len() - 1
            }
        };
        if let Some(m) = mix.get_mut(i) {
            m.1 += 1;
            m.2 += t.n_elements();
            m.3 += t.bytes.len() as u64;
        }
    }
    let bits = |bytes: u64, params: u64| 8.0 * bytes as f64 / params.max(1) as f64;
    let (all_params, all_bytes) = mix.iter().fold((0, 0), |(p, b), m| (p + m.2, b + m.3));
    writeln!(out, "\ntypes:")?;
    writeln!(
        out,
        "  {:<8} {:>8} {:>14} {:>14} {:>8} {:>10}",
        "type", "tensors", "parameters", "bytes", "share", "bits/w"
    )?;
    for (name, n, params, bytes) in &mix {
        writeln!(
            out,
            "  {name:<8} {n:>8} {params:>14} {bytes:>14} {:>7.1}% {:>10.3}",
            100.0 * *bytes as f64 / all_bytes.max(1) as f64,
            bits(*bytes, *params)
        )?;
    }
    writeln!(out, "  all tensors: {:.3} bits per weight", bits(all_bytes, all_params))
}

fn write_config(c: &ModelConfig, ctx: usize, out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "\narchitecture: deepseek2 (DeepSeek-V2/V3, MLA)")?;
    let q = c.q_lora_rank.map_or("none (direct attn_q)".to_string(), |r| r.to_string());
    let rows: [(&str, String); 13] = [
        ("vocab_size", c.vocab_size.to_string()),
        ("hidden_size", c.hidden_size.to_string()),
        ("num_hidden_layers", c.num_hidden_layers.to_string()),
        ("num_attention_heads", c.num_attention_heads.to_string()),
        ("q_lora_rank", q),
        ("kv_lora_rank", c.kv_lora_rank.to_string()),
        (
            "qk_nope_head_dim / qk_rope_head_dim",
            format!("{} / {}", c.qk_nope_head_dim, c.qk_rope_head_dim),
        ),
        ("v_head_dim", c.v_head_dim.to_string()),
        ("first_k_dense_replace", c.first_k_dense_replace.to_string()),
        ("intermediate_size (dense)", c.intermediate_size.to_string()),
        ("rms_norm_eps", c.rms_norm_eps.to_string()),
        ("rope_theta", c.rope_theta.to_string()),
        ("context_length", c.context_length.to_string()),
    ];
    for (k, v) in rows {
        writeln!(out, "  {k:<36} {v}")?;
    }
    match c.yarn {
        Some(y) => writeln!(
            out,
            "  {:<36} factor {}, original ctx {}, beta {}/{}, log multiplier {}",
            "rope scaling",
            y.factor,
            y.original_context_length,
            y.beta_fast,
            y.beta_slow,
            y.log_multiplier
        )?,
        None => writeln!(out, "  {:<36} none", "rope scaling")?,
    }
    match c.moe {
        Some(m) => writeln!(
            out,
            "  {:<36} {} routed (top {}), {} shared, width {}, {:?} gating, groups {}/{}, scale {}, norm_topk_prob {}",
            "moe", m.n_routed_experts, m.num_experts_per_tok, m.n_shared_experts, m.moe_intermediate_size,
            m.gating, m.topk_group, m.n_group, m.routed_scaling_factor, m.norm_topk_prob
        )?,
        None => writeln!(out, "  {:<36} none (all layers dense)", "moe")?,
    }

    let row = c.cache_row_elems();
    let per_token = c.cache_bytes_per_token();
    let mha = c.num_attention_heads * (c.qk_head_dim() + c.v_head_dim) * c.num_hidden_layers * 4;
    writeln!(out, "\nlatent cache:")?;
    writeln!(
        out,
        "  row per token and layer: {} (c_kv) + {} (k_pe) = {row} f32",
        c.kv_lora_rank, c.qk_rope_head_dim
    )?;
    writeln!(
        out,
        "  bytes per token (all layers, f32): {per_token} (full MHA K+V cache would be {mha})"
    )?;
    for storage in [CacheStorage::F32, CacheStorage::F16, CacheStorage::Q8, CacheStorage::Q8Compact]
    {
        let row = LatentCache::row_bytes_for(c, storage);
        let total =
            LatentCache::bytes_needed(c, ctx, storage).map_or("overflow".into(), |b| b.to_string());
        writeln!(
            out,
            "  {storage:?} cache: {row} bytes per token and layer; {total} bytes at context {ctx}"
        )?;
    }
    let cache = LatentCache::bytes_needed(c, ctx, CacheStorage::F32)
        .map_or("overflow".into(), |b| b.to_string());
    let scratch = c.scratch_elems(ctx).map_or("overflow".into(), |e| (e * 4).to_string());
    writeln!(out, "  at context {ctx}: cache {cache} bytes, scratch {scratch} bytes")?;
    Ok(())
}

/// One-line rendering of a metadata value; arrays show their type, length and first items.
fn show_value(v: &MetadataValue<'_>) -> String {
    match v {
        MetadataValue::String(_) => format!("{:?}", v.as_str().unwrap_or("<invalid UTF-8>")),
        MetadataValue::Array(a) => {
            let head: Vec<String> = a.iter().take(4).map(|e| show_value(&e)).collect();
            let more = if a.len() > 4 { ", …" } else { "" };
            format!("[{:?}; {}] [{}{more}]", a.elem_type(), a.len(), head.join(", "))
        }
        MetadataValue::U8(x) => x.to_string(),
        MetadataValue::I8(x) => x.to_string(),
        MetadataValue::U16(x) => x.to_string(),
        MetadataValue::I16(x) => x.to_string(),
        MetadataValue::U32(x) => x.to_string(),
        MetadataValue::I32(x) => x.to_string(),
        MetadataValue::U64(x) => x.to_string(),
        MetadataValue::I64(x) => x.to_string(),
        MetadataValue::F32(x) => x.to_string(),
        MetadataValue::F64(x) => x.to_string(),
        MetadataValue::Bool(x) => x.to_string(),
    }
}

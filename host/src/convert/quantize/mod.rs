//! Output tensor types and row encoders.
//!
//! Two families of `--type`:
//! - `f32`, `f16`, `q8_0`, `q4_0` are what llama.cpp's converter (`convert_hf_to_gguf.py`)
//!   writes, bit-exact with gguf-py's `gguf.quants.quantize`;
//! - the others are what llama.cpp's quantizer (`llama_model_quantize`, `llama-quantize`)
//!   writes from an F32 file of the same checkpoint, without an importance matrix: its
//!   per-tensor type choice for deepseek2 ([`TypeRules`]) and ggml's reference quantizers
//!   (`legacy`, `kquants`, `iq4`), byte-identical to its files (`tests/kquant.rs`).

mod iq4;
mod kquants;
mod legacy;
mod search;

use half::f16;
use tinymla_core::quant::{q8_0, QK, QK_K};
use tinymla_core::GgmlType;

/// The `--type` of a conversion: what the large matrices are stored as. The first four are
/// what llama.cpp's converter writes; the others what llama.cpp's quantizer (`llama-quantize`)
/// writes from the F32 file, with its per-tensor mix ([`TypeRules`]) and byte-identical
/// blocks. The doc lines are `tinymla convert --help`'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutType {
    /// Every tensor F32 (`general.file_type` 0).
    F32,
    /// Matrices F16 (1).
    F16,
    /// Matrices Q8_0, F16 where a row is not whole 32-blocks (7).
    #[value(name = "q8_0")]
    Q8_0,
    /// Matrices Q4_0, F16 where a row is not whole 32-blocks (2).
    #[value(name = "q4_0")]
    Q4_0,
    /// llama.cpp's Q4_1 mix (3).
    #[value(name = "q4_1")]
    Q4_1,
    /// llama.cpp's Q5_0 mix (8).
    #[value(name = "q5_0")]
    Q5_0,
    /// llama.cpp's Q5_1 mix (9).
    #[value(name = "q5_1")]
    Q5_1,
    /// llama.cpp's Q2_K mix: Q3_K / Q4_K for some tensors (10).
    #[value(name = "q2_k")]
    Q2K,
    /// llama.cpp's Q3_K_S mix (11).
    #[value(name = "q3_k_s")]
    Q3KS,
    /// llama.cpp's Q3_K_M mix (12).
    #[value(name = "q3_k_m")]
    Q3KM,
    /// llama.cpp's Q3_K_L mix (13).
    #[value(name = "q3_k_l")]
    Q3KL,
    /// llama.cpp's Q4_K_S mix (14).
    #[value(name = "q4_k_s")]
    Q4KS,
    /// llama.cpp's Q4_K_M mix: Q6_K for the output and some ffn_down / attn_kv_b (15).
    #[value(name = "q4_k_m")]
    Q4KM,
    /// llama.cpp's Q5_K_S mix (16).
    #[value(name = "q5_k_s")]
    Q5KS,
    /// llama.cpp's Q5_K_M mix (17).
    #[value(name = "q5_k_m")]
    Q5KM,
    /// llama.cpp's Q6_K mix (18).
    #[value(name = "q6_k")]
    Q6K,
    /// llama.cpp's IQ4_NL mix (25).
    #[value(name = "iq4_nl")]
    IQ4NL,
    /// llama.cpp's IQ4_XS mix (30).
    #[value(name = "iq4_xs")]
    IQ4XS,
}

impl OutType {
    /// llama.cpp's `LlamaFileType` number for `general.file_type`.
    pub fn file_type(self) -> u32 {
        match self {
            OutType::F32 => 0,
            OutType::F16 => 1,
            OutType::Q4_0 => 2,
            OutType::Q4_1 => 3,
            OutType::Q8_0 => 7,
            OutType::Q5_0 => 8,
            OutType::Q5_1 => 9,
            OutType::Q2K => 10,
            OutType::Q3KS => 11,
            OutType::Q3KM => 12,
            OutType::Q3KL => 13,
            OutType::Q4KS => 14,
            OutType::Q4KM => 15,
            OutType::Q5KS => 16,
            OutType::Q5KM => 17,
            OutType::Q6K => 18,
            OutType::IQ4NL => 25,
            OutType::IQ4XS => 30,
        }
    }

    /// Whether this type is one of llama.cpp's quantizer's (chosen per tensor by
    /// [`TypeRules`]) rather than the converter's.
    pub fn is_quantizer_type(self) -> bool {
        !matches!(self, OutType::F32 | OutType::F16 | OutType::Q8_0 | OutType::Q4_0)
    }

    /// The ggml type most matrices get (llama.cpp's `default_type` of the ftype).
    fn default_type(self) -> GgmlType {
        match self {
            OutType::F32 => GgmlType::F32,
            OutType::F16 => GgmlType::F16,
            OutType::Q8_0 => GgmlType::Q8_0,
            OutType::Q4_0 => GgmlType::Q4_0,
            OutType::Q4_1 => GgmlType::Q4_1,
            OutType::Q5_0 => GgmlType::Q5_0,
            OutType::Q5_1 => GgmlType::Q5_1,
            OutType::Q2K => GgmlType::Q2_K,
            OutType::Q3KS | OutType::Q3KM | OutType::Q3KL => GgmlType::Q3_K,
            OutType::Q4KS | OutType::Q4KM => GgmlType::Q4_K,
            OutType::Q5KS | OutType::Q5KM => GgmlType::Q5_K,
            OutType::Q6K => GgmlType::Q6_K,
            OutType::IQ4NL => GgmlType::IQ4_NL,
            OutType::IQ4XS => GgmlType::IQ4_XS,
        }
    }

    /// The storage type, in llama.cpp's converter, for the tensor `name` with `n_dims` dims
    /// and rows of `row_len` values (the quantizer's types go through [`TypeRules`]).
    ///
    /// llama.cpp's `prepare_tensors`: 1-D tensors, `*_norm.weight`, the router
    /// (`ffn_gate_inp`) and names not ending in `.weight` (`exp_probs_b.bias`) stay F32; the
    /// rest get the requested type. Q8_0 / Q4_0 fall back to F16 when `row_len` is not a
    /// multiple of 32 (gguf-py raises `QuantError` and the converter retries with F16).
    pub fn tensor_type(self, name: &str, n_dims: usize, row_len: usize) -> GgmlType {
        let keep_f32 = n_dims <= 1
            || name.ends_with("_norm.weight")
            || name.ends_with(".ffn_gate_inp.weight")
            || !name.ends_with(".weight");
        if keep_f32 {
            return GgmlType::F32;
        }
        match self {
            OutType::F32 => GgmlType::F32,
            OutType::Q8_0 | OutType::Q4_0 if !row_len.is_multiple_of(QK) => GgmlType::F16,
            OutType::Q8_0 => GgmlType::Q8_0,
            OutType::Q4_0 => GgmlType::Q4_0,
            _ => GgmlType::F16,
        }
    }
}

/// llama.cpp's quantizer's choice of type per tensor (`llama_tensor_get_type` in
/// `src/llama-quant.cpp`, no importance matrix, no overrides) for a deepseek2 model with a
/// number of experts other than 8, transcribed from `scripts/gen_kquant_fixtures.py`'s
/// `expected_type` (which checks itself against every file llama.cpp writes there).
#[derive(Debug, Clone)]
pub struct TypeRules {
    out: OutType,
    /// `block_count`.
    n_layer: usize,
    /// `head_count / head_count_kv`.
    n_gqa: usize,
    /// No `output.weight`: `token_embd.weight` follows the output rule.
    tied: bool,
    /// The `attn_kv_b` tensors' names in file order (llama.cpp's `i_attention_wv` counts
    /// them).
    kv_b: Vec<String>,
}

/// llama.cpp's `use_more_bits`: the first and last eighth of `n`, and every third between.
fn use_more_bits(i: usize, n: usize) -> bool {
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
}

/// llama.cpp's `tensor_type_fallback`: the 32-block type a 256-block type falls back to when
/// a row is not whole super-blocks.
fn fallback(t: GgmlType) -> GgmlType {
    match t {
        GgmlType::IQ4_XS => GgmlType::IQ4_NL,
        GgmlType::Q2_K | GgmlType::Q3_K => GgmlType::Q4_0,
        GgmlType::Q4_K => GgmlType::Q5_0,
        GgmlType::Q5_K => GgmlType::Q5_1,
        GgmlType::Q6_K => GgmlType::Q8_0,
        other => other,
    }
}

/// Weights per block of `t`.
fn block_elems(t: GgmlType) -> usize {
    usize::try_from(t.block_layout().0).unwrap_or(1)
}

impl TypeRules {
    /// The rules of `out` for a model of `n_layer` blocks and `n_gqa` query heads per KV
    /// head whose tensors are named `names` (in file order).
    pub fn new<'n>(
        out: OutType,
        n_layer: usize,
        n_gqa: usize,
        names: impl IntoIterator<Item = &'n str>,
    ) -> Self {
        let names: Vec<&str> = names.into_iter().collect();
        TypeRules {
            out,
            n_layer,
            n_gqa,
            tied: !names.contains(&"output.weight"),
            kv_b: names
                .iter()
                .filter(|n| n.contains("attn_kv_b.weight"))
                .map(|n| (*n).to_string())
                .collect(),
        }
    }

    /// The storage type of the tensor `name` with `n_dims` dims and rows of `row_len` values.
    pub fn tensor_type(&self, name: &str, n_dims: usize, row_len: usize) -> GgmlType {
        if !self.out.is_quantizer_type() {
            return self.out.tensor_type(name, n_dims, row_len);
        }
        if n_dims < 2
            || !name.ends_with("weight")
            || name.contains("_norm.weight")
            || name.contains("ffn_gate_inp.weight")
        {
            // Not quantized: kept as the F32 source holds it.
            return GgmlType::F32;
        }
        let out = self.out;
        let mut t = out.default_type();
        if name == "output.weight" || (self.tied && name == "token_embd.weight") {
            t = if !row_len.is_multiple_of(block_elems(t)) {
                GgmlType::Q8_0
            } else if t != GgmlType::Q8_0 {
                GgmlType::Q6_K
            } else {
                t
            };
        } else if name == "token_embd.weight" {
        } else if name.contains("attn_kv_b.weight") {
            let i = self.kv_b.iter().position(|n| n == name).unwrap_or(0);
            let n = self.kv_b.len();
            t = match out {
                OutType::Q2K if self.n_gqa >= 4 => GgmlType::Q4_K,
                OutType::Q2K => GgmlType::Q3_K,
                OutType::Q3KM if i < 2 => GgmlType::Q5_K,
                OutType::Q3KM => GgmlType::Q4_K,
                OutType::Q3KL => GgmlType::Q5_K,
                OutType::IQ4NL | OutType::IQ4XS if self.n_gqa >= 4 => GgmlType::Q5_K,
                OutType::Q4KM | OutType::Q5KM if use_more_bits(i, n) => GgmlType::Q6_K,
                OutType::Q4KS if i < 4 => GgmlType::Q5_K,
                _ => t,
            };
        } else if name.contains("ffn_down") {
            // llama.cpp's layer_info parses `blk.N.`.
            let i = name.split('.').nth(1).and_then(|n| n.parse::<usize>().ok()).unwrap_or(0);
            let n = self.n_layer;
            t = match out {
                OutType::Q2K => GgmlType::Q3_K,
                OutType::Q3KM if i < n / 16 => GgmlType::Q5_K,
                OutType::Q3KM => GgmlType::Q4_K,
                OutType::Q3KL => GgmlType::Q5_K,
                OutType::Q4KM if use_more_bits(i, n) => GgmlType::Q6_K,
                OutType::IQ4NL | OutType::IQ4XS if i < n / 8 => GgmlType::Q5_K,
                OutType::Q5KM if use_more_bits(i, n) => GgmlType::Q6_K,
                OutType::Q4KS if i < n / 8 => GgmlType::Q5_K,
                _ => t,
            };
        } else if name.contains("attn_output.weight") {
            t = match out {
                OutType::Q2K => GgmlType::Q3_K,
                OutType::Q3KM => GgmlType::Q4_K,
                OutType::Q3KL => GgmlType::Q5_K,
                _ => t,
            };
        }
        if !row_len.is_multiple_of(block_elems(t)) {
            t = fallback(t);
            if !row_len.is_multiple_of(block_elems(t)) {
                t = GgmlType::F16;
            }
        }
        t
    }
}

/// Bytes one row of `row_len` values takes in `ty` (`row_len` a whole number of its blocks;
/// `ty` one [`TypeRules::tensor_type`] returns).
pub fn row_bytes(ty: GgmlType, row_len: usize) -> usize {
    let (elems, bytes) = ty.block_layout();
    let (elems, bytes) = (usize::try_from(elems).unwrap_or(1), usize::try_from(bytes).unwrap_or(4));
    row_len / elems.max(1) * bytes
}

/// Appends `row` encoded as `ty` to `out` ([`row_bytes`] bytes).
///
/// # Errors
/// `Err(ty)`, with nothing appended, for a type with no encoder here (none that
/// [`TypeRules::tensor_type`] returns).
pub fn encode_row(ty: GgmlType, row: &[f32], out: &mut Vec<u8>) -> Result<(), GgmlType> {
    match ty {
        GgmlType::F16 => {
            for &x in row {
                out.extend_from_slice(&f16::from_f32(x).to_le_bytes());
            }
        }
        GgmlType::Q8_0 => {
            let mut blocks = vec![[0u8; q8_0::BLOCK_BYTES]; row.len() / QK];
            q8_0::quantize(row, &mut blocks);
            out.extend(blocks.iter().flatten());
        }
        GgmlType::Q4_0 => {
            row.as_chunks::<QK>().0.iter().for_each(|b| out.extend_from_slice(&legacy::q4_0(b)))
        }
        GgmlType::Q4_1 => {
            row.as_chunks::<QK>().0.iter().for_each(|b| out.extend_from_slice(&legacy::q4_1(b)))
        }
        GgmlType::Q5_0 => {
            row.as_chunks::<QK>().0.iter().for_each(|b| out.extend_from_slice(&legacy::q5_0(b)))
        }
        GgmlType::Q5_1 => {
            row.as_chunks::<QK>().0.iter().for_each(|b| out.extend_from_slice(&legacy::q5_1(b)))
        }
        GgmlType::Q2_K => {
            row.as_chunks::<QK_K>().0.iter().for_each(|b| out.extend_from_slice(&kquants::q2_k(b)))
        }
        GgmlType::Q3_K => {
            row.as_chunks::<QK_K>().0.iter().for_each(|b| out.extend_from_slice(&kquants::q3_k(b)))
        }
        GgmlType::Q4_K => {
            row.as_chunks::<QK_K>().0.iter().for_each(|b| out.extend_from_slice(&kquants::q4_k(b)))
        }
        GgmlType::Q5_K => {
            row.as_chunks::<QK_K>().0.iter().for_each(|b| out.extend_from_slice(&kquants::q5_k(b)))
        }
        GgmlType::Q6_K => {
            row.as_chunks::<QK_K>().0.iter().for_each(|b| out.extend_from_slice(&kquants::q6_k(b)))
        }
        GgmlType::IQ4_NL => {
            row.as_chunks::<QK>().0.iter().for_each(|b| out.extend_from_slice(&iq4::iq4_nl(b)))
        }
        GgmlType::IQ4_XS => {
            row.as_chunks::<QK_K>().0.iter().for_each(|b| out.extend_from_slice(&iq4::iq4_xs(b)))
        }
        GgmlType::F32 => {
            for &x in row {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        other => return Err(other),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_rules_follow_the_converter() {
        let t = |name: &str, dims: usize, row: usize| OutType::Q8_0.tensor_type(name, dims, row);
        assert_eq!(t("blk.0.attn_norm.weight", 1, 64), GgmlType::F32);
        assert_eq!(t("blk.0.attn_q_a_norm.weight", 1, 64), GgmlType::F32);
        assert_eq!(t("blk.1.ffn_gate_inp.weight", 2, 64), GgmlType::F32);
        assert_eq!(t("blk.1.exp_probs_b.bias", 1, 8), GgmlType::F32);
        assert_eq!(t("blk.0.attn_k_b.weight", 3, 32), GgmlType::Q8_0);
        assert_eq!(t("blk.0.attn_k_b.weight", 3, 10), GgmlType::F16);
        assert_eq!(t("token_embd.weight", 2, 64), GgmlType::Q8_0);
        assert_eq!(OutType::F32.tensor_type("token_embd.weight", 2, 64), GgmlType::F32);
    }

    #[test]
    fn quantizer_rules_follow_llama_cpp() {
        let names = ["token_embd.weight", "output.weight", "blk.0.ffn_down.weight"];
        let rules = TypeRules::new(OutType::Q4KM, 16, 16, names);
        let t = |name: &str, row: usize| rules.tensor_type(name, 2, row);
        assert_eq!(t("output.weight", 512), GgmlType::Q6_K);
        assert_eq!(t("output.weight", 96), GgmlType::Q8_0); // not whole 256-blocks
        assert_eq!(t("token_embd.weight", 512), GgmlType::Q4_K);
        assert_eq!(t("blk.0.ffn_down.weight", 512), GgmlType::Q6_K); // first eighth
        assert_eq!(t("blk.3.ffn_down.weight", 512), GgmlType::Q4_K);
        assert_eq!(t("blk.4.ffn_down.weight", 512), GgmlType::Q6_K); // (4 − 2) % 3 == 2
        assert_eq!(t("blk.0.attn_q_b.weight", 96), GgmlType::Q5_0); // Q4_K's fallback
        assert_eq!(t("blk.0.attn_q_b.weight", 30), GgmlType::F16);
        assert_eq!(rules.tensor_type("blk.0.attn_norm.weight", 1, 512), GgmlType::F32);
        let tied = TypeRules::new(OutType::Q2K, 2, 1, ["token_embd.weight"]);
        assert_eq!(tied.tensor_type("token_embd.weight", 2, 256), GgmlType::Q6_K);
        assert_eq!(tied.tensor_type("blk.1.attn_output.weight", 2, 256), GgmlType::Q3_K);
        assert_eq!(tied.tensor_type("blk.1.attn_output.weight", 2, 64), GgmlType::Q4_0);
    }

    #[test]
    fn a_type_without_an_encoder_is_an_error_not_garbage() {
        let mut out = Vec::new();
        assert_eq!(encode_row(GgmlType::Q8_K, &[0.5; 256], &mut out), Err(GgmlType::Q8_K));
        assert!(out.is_empty());
        encode_row(GgmlType::IQ4_XS, &[0.5; 256], &mut out).unwrap();
        assert_eq!(out.len(), row_bytes(GgmlType::IQ4_XS, 256));
    }
}

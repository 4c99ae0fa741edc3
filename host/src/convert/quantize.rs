//! Output tensor types and row encoders, bit-exact with gguf-py's `gguf.quants.quantize`
//! (what llama.cpp's `convert_hf_to_gguf.py` calls) for F32, F16, Q8_0 and Q4_0.

use half::f16;
use tinymla_core::quant::{q4_0, q8_0, QK};
use tinymla_core::GgmlType;

/// The `--type` of a conversion: what the large matrices are stored as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutType {
    /// Everything F32 (`general.file_type` 0).
    F32,
    /// Matrices F16 (`general.file_type` 1).
    F16,
    /// Matrices Q8_0, F16 where a row is not whole 32-blocks (`general.file_type` 7).
    Q8_0,
    /// Matrices Q4_0, F16 where a row is not whole 32-blocks (`general.file_type` 2).
    Q4_0,
}

impl OutType {
    /// llama.cpp's `LlamaFileType` number for `general.file_type`.
    pub fn file_type(self) -> u32 {
        match self {
            OutType::F32 => 0,
            OutType::F16 => 1,
            OutType::Q4_0 => 2,
            OutType::Q8_0 => 7,
        }
    }

    /// The storage type for the tensor `name` with `n_dims` dims and rows of `row_len` values.
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
            OutType::F16 => GgmlType::F16,
            OutType::Q8_0 | OutType::Q4_0 if !row_len.is_multiple_of(QK) => GgmlType::F16,
            OutType::Q8_0 => GgmlType::Q8_0,
            OutType::Q4_0 => GgmlType::Q4_0,
        }
    }
}

/// Bytes one row of `row_len` values takes in `ty` (`row_len` a multiple of 32 for blocks).
pub fn row_bytes(ty: GgmlType, row_len: usize) -> usize {
    match ty {
        GgmlType::F16 => 2 * row_len,
        GgmlType::Q8_0 => row_len / QK * q8_0::BLOCK_BYTES,
        GgmlType::Q4_0 => row_len / QK * q4_0::BLOCK_BYTES,
        _ => 4 * row_len,
    }
}

/// Appends `row` encoded as `ty` to `out` ([`row_bytes`] bytes). `ty` is one
/// [`OutType::tensor_type`] returns.
pub fn encode_row(ty: GgmlType, row: &[f32], out: &mut Vec<u8>) {
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
            for xs in row.chunks_exact(QK) {
                out.extend_from_slice(&quantize_q4_0_block(xs));
            }
        }
        _ => {
            for &x in row {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
    }
}

/// gguf-py's `Q4_0.quantize_blocks` (= ggml's `quantize_row_q4_0_ref`) on one 32-value block:
/// `d = x[argmax|x|] / -8` (the signed value of the first largest magnitude),
/// `q = min(15, trunc(x / d + 8.5))`, all in f32; byte `j` holds `q[j] | q[j + 16] << 4`.
fn quantize_q4_0_block(xs: &[f32]) -> [u8; q4_0::BLOCK_BYTES] {
    let mut max = 0.0f32;
    let mut amax = 0.0f32;
    for &x in xs {
        // Strictly greater: numpy's argmax keeps the first of equal magnitudes.
        if x.abs() > amax {
            amax = x.abs();
            max = x;
        }
    }
    let d = max / -8.0;
    let id = if d == 0.0 { 0.0 } else { 1.0 / d };
    let mut block = [0u8; q4_0::BLOCK_BYTES];
    block[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
    // `x · id + 8.5` is in [0.5, 16.5]; the cast saturates and `min` clips 16 to 15.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let q = |x: f32| ((x * id + 8.5).trunc() as u8).min(15);
    for j in 0..QK / 2 {
        block[2 + j] = q(xs[j]) | (q(xs[j + QK / 2]) << 4);
    }
    block
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q4_0_matches_the_reference_formula() {
        // Values chosen so the first largest magnitude is negative and appears twice.
        let mut xs = [0.0f32; 32];
        for (i, x) in xs.iter_mut().enumerate() {
            *x = (i as f32 - 11.0) * 0.25;
        }
        xs[3] = -5.0;
        xs[20] = 5.0;
        let block = quantize_q4_0_block(&xs);
        let d = f16::from_le_bytes([block[0], block[1]]).to_f32();
        assert_eq!(d, 5.0 / 8.0); // max = -5.0 (first), d = -5 / -8
        assert_eq!(block[2 + 3] & 0x0f, 0); // -5 / 0.625 + 8.5 = 0.5 → 0
        assert_eq!(block[2 + 4] >> 4, 15); // xs[20] = 5 → 16.5 → 16 → clipped to 15
    }

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
}

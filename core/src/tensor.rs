//! Tensor metadata and zero-copy views: ggml storage types, dims, and typed tensor ids.
//!
//! Dims are always in GGUF/ggml `ne` order: `ne[0]` is the fastest-varying axis (the length of
//! one row), the reverse of PyTorch's row-major shape.

use core::fmt;

/// A ggml storage type whose block layout this crate knows (type ids from ggml's `ggml.h`).
///
/// Knowing the layout is enough to validate a file; which types the math can compute with is a
/// separate question answered by the model loader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[allow(non_camel_case_types)]
#[non_exhaustive]
pub enum GgmlType {
    /// IEEE binary32, id 0.
    F32,
    /// IEEE binary16, id 1.
    F16,
    /// 32 weights: f16 scale + 16 bytes of nibbles (18 bytes), id 2.
    Q4_0,
    /// 32 weights: f16 scale, f16 min + 16 bytes (20 bytes), id 3.
    Q4_1,
    /// 32 weights, 22 bytes, id 6.
    Q5_0,
    /// 32 weights, 24 bytes, id 7.
    Q5_1,
    /// 32 weights: f16 scale + 32 int8 (34 bytes), id 8.
    Q8_0,
    /// 32 weights, 36 bytes, id 9.
    Q8_1,
    /// 256 weights, 84 bytes, id 10.
    Q2_K,
    /// 256 weights, 110 bytes, id 11.
    Q3_K,
    /// 256 weights, 144 bytes, id 12.
    Q4_K,
    /// 256 weights, 176 bytes, id 13.
    Q5_K,
    /// 256 weights, 210 bytes, id 14.
    Q6_K,
    /// 256 weights, 292 bytes, id 15.
    Q8_K,
    /// 32 weights, 18 bytes, id 20.
    IQ4_NL,
    /// 256 weights, 136 bytes, id 23.
    IQ4_XS,
    /// int8, id 24.
    I8,
    /// int16, id 25.
    I16,
    /// int32, id 26.
    I32,
    /// int64, id 27.
    I64,
    /// IEEE binary64, id 28.
    F64,
    /// bfloat16, id 30.
    BF16,
}

impl GgmlType {
    /// The type for a ggml type id, if its layout is known.
    pub fn from_id(id: u32) -> Option<Self> {
        use GgmlType::*;
        Some(match id {
            0 => F32,
            1 => F16,
            2 => Q4_0,
            3 => Q4_1,
            6 => Q5_0,
            7 => Q5_1,
            8 => Q8_0,
            9 => Q8_1,
            10 => Q2_K,
            11 => Q3_K,
            12 => Q4_K,
            13 => Q5_K,
            14 => Q6_K,
            15 => Q8_K,
            20 => IQ4_NL,
            23 => IQ4_XS,
            24 => I8,
            25 => I16,
            26 => I32,
            27 => I64,
            28 => F64,
            30 => BF16,
            _ => return None,
        })
    }

    /// The ggml type id.
    pub fn id(self) -> u32 {
        use GgmlType::*;
        match self {
            F32 => 0,
            F16 => 1,
            Q4_0 => 2,
            Q4_1 => 3,
            Q5_0 => 6,
            Q5_1 => 7,
            Q8_0 => 8,
            Q8_1 => 9,
            Q2_K => 10,
            Q3_K => 11,
            Q4_K => 12,
            Q5_K => 13,
            Q6_K => 14,
            Q8_K => 15,
            IQ4_NL => 20,
            IQ4_XS => 23,
            I8 => 24,
            I16 => 25,
            I32 => 26,
            I64 => 27,
            F64 => 28,
            BF16 => 30,
        }
    }

    /// `(elements per block, bytes per block)`.
    pub fn block_layout(self) -> (u64, u64) {
        use GgmlType::*;
        match self {
            F32 | I32 => (1, 4),
            F16 | BF16 | I16 => (1, 2),
            I8 => (1, 1),
            I64 | F64 => (1, 8),
            Q4_0 | IQ4_NL => (32, 18),
            Q4_1 => (32, 20),
            Q5_0 => (32, 22),
            Q5_1 => (32, 24),
            Q8_0 => (32, 34),
            Q8_1 => (32, 36),
            Q2_K => (256, 84),
            Q3_K => (256, 110),
            Q4_K => (256, 144),
            Q5_K => (256, 176),
            Q6_K => (256, 210),
            Q8_K => (256, 292),
            IQ4_XS => (256, 136),
        }
    }

    /// The name ggml prints (`"F32"`, `"Q8_0"`, …).
    pub fn name(self) -> &'static str {
        use GgmlType::*;
        match self {
            F32 => "F32",
            F16 => "F16",
            Q4_0 => "Q4_0",
            Q4_1 => "Q4_1",
            Q5_0 => "Q5_0",
            Q5_1 => "Q5_1",
            Q8_0 => "Q8_0",
            Q8_1 => "Q8_1",
            Q2_K => "Q2_K",
            Q3_K => "Q3_K",
            Q4_K => "Q4_K",
            Q5_K => "Q5_K",
            Q6_K => "Q6_K",
            Q8_K => "Q8_K",
            IQ4_NL => "IQ4_NL",
            IQ4_XS => "IQ4_XS",
            I8 => "I8",
            I16 => "I16",
            I32 => "I32",
            I64 => "I64",
            F64 => "F64",
            BF16 => "BF16",
        }
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A tensor in a GGUF file: name, type, dims and its bytes, borrowed from the file.
///
/// Invariants (checked by `Gguf::parse`): `1 <= n_dims <= 4`, every dim `>= 1`, `dims[0]` is a
/// multiple of the type's block size, unused dims are 1, and `bytes.len()` is exactly the
/// tensor's byte size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TensorView<'a> {
    /// The tensor's name, e.g. `blk.0.attn_q_a.weight`.
    pub name: &'a str,
    /// Storage type.
    pub ggml_type: GgmlType,
    /// Number of meaningful dims (1..=4).
    pub n_dims: u32,
    /// Dims in `ne` order (fastest-varying first), padded with 1.
    pub dims: [u64; 4],
    /// Offset of the data from the start of the data section, in bytes.
    pub data_offset: u64,
    /// The tensor's data.
    pub bytes: &'a [u8],
}

impl TensorView<'_> {
    /// Total number of elements.
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// The first three dims in `ne` order, or `None` if the 4th is not 1.
    pub fn dims3(&self) -> Option<[u64; 3]> {
        let [a, b, c, d] = self.dims;
        (d == 1).then_some([a, b, c])
    }
}

/// Which tensor of a DeepSeek2 GGUF; with a layer, names `blk.{layer}.{kind}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum TensorKind {
    /// `token_embd.weight`
    TokenEmbd,
    /// `output_norm.weight`
    OutputNorm,
    /// `output.weight`
    Output,
    /// `attn_norm.weight`
    AttnNorm,
    /// `attn_q.weight` (no q LoRA)
    AttnQ,
    /// `attn_q_a.weight`
    AttnQA,
    /// `attn_q_a_norm.weight`
    AttnQANorm,
    /// `attn_q_b.weight`
    AttnQB,
    /// `attn_kv_a_mqa.weight`
    AttnKvAMqa,
    /// `attn_kv_a_norm.weight`
    AttnKvANorm,
    /// `attn_kv_b.weight` (legacy joint layout)
    AttnKvB,
    /// `attn_k_b.weight`
    AttnKB,
    /// `attn_v_b.weight`
    AttnVB,
    /// `attn_output.weight`
    AttnOutput,
    /// `ffn_norm.weight`
    FfnNorm,
    /// `ffn_gate.weight`
    FfnGate,
    /// `ffn_up.weight`
    FfnUp,
    /// `ffn_down.weight`
    FfnDown,
    /// `ffn_gate_inp.weight` (router)
    FfnGateInp,
    /// `exp_probs_b.bias` (V3 selection bias)
    ExpProbsB,
    /// `ffn_gate_exps.weight`
    FfnGateExps,
    /// `ffn_up_exps.weight`
    FfnUpExps,
    /// `ffn_down_exps.weight`
    FfnDownExps,
    /// `ffn_gate_shexp.weight`
    FfnGateShexp,
    /// `ffn_up_shexp.weight`
    FfnUpShexp,
    /// `ffn_down_shexp.weight`
    FfnDownShexp,
}

impl TensorKind {
    /// The name without the `blk.N.` prefix, e.g. `attn_q_a.weight`.
    pub fn suffix(self) -> &'static str {
        use TensorKind::*;
        match self {
            TokenEmbd => "token_embd.weight",
            OutputNorm => "output_norm.weight",
            Output => "output.weight",
            AttnNorm => "attn_norm.weight",
            AttnQ => "attn_q.weight",
            AttnQA => "attn_q_a.weight",
            AttnQANorm => "attn_q_a_norm.weight",
            AttnQB => "attn_q_b.weight",
            AttnKvAMqa => "attn_kv_a_mqa.weight",
            AttnKvANorm => "attn_kv_a_norm.weight",
            AttnKvB => "attn_kv_b.weight",
            AttnKB => "attn_k_b.weight",
            AttnVB => "attn_v_b.weight",
            AttnOutput => "attn_output.weight",
            FfnNorm => "ffn_norm.weight",
            FfnGate => "ffn_gate.weight",
            FfnUp => "ffn_up.weight",
            FfnDown => "ffn_down.weight",
            FfnGateInp => "ffn_gate_inp.weight",
            ExpProbsB => "exp_probs_b.bias",
            FfnGateExps => "ffn_gate_exps.weight",
            FfnUpExps => "ffn_up_exps.weight",
            FfnDownExps => "ffn_down_exps.weight",
            FfnGateShexp => "ffn_gate_shexp.weight",
            FfnUpShexp => "ffn_up_shexp.weight",
            FfnDownShexp => "ffn_down_shexp.weight",
        }
    }
}

/// A typed tensor name: `Display` prints the GGUF name, e.g. `blk.3.attn_kv_a_mqa.weight`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TensorId {
    /// The block index for per-layer tensors, `None` for global ones.
    pub layer: Option<u16>,
    /// Which tensor.
    pub kind: TensorKind,
}

impl TensorId {
    /// A global tensor.
    pub const fn global(kind: TensorKind) -> Self {
        TensorId { layer: None, kind }
    }

    /// A per-layer tensor.
    pub const fn layer(layer: u16, kind: TensorKind) -> Self {
        TensorId { layer: Some(layer), kind }
    }

    /// True when `name` is this tensor's GGUF name. Allocation-free.
    pub fn matches(&self, name: &str) -> bool {
        match self.layer {
            None => name == self.kind.suffix(),
            Some(layer) => {
                let mut digits = [0u8; 5];
                let layer_str = format_u16(layer, &mut digits);
                name.strip_prefix("blk.")
                    .and_then(|rest| rest.strip_prefix(layer_str))
                    .and_then(|rest| rest.strip_prefix('.'))
                    .is_some_and(|rest| rest == self.kind.suffix())
            }
        }
    }
}

/// Decimal digits of `v` written into `buf`.
fn format_u16(mut v: u16, buf: &mut [u8; 5]) -> &str {
    let mut start = buf.len();
    loop {
        start -= 1;
        if let Some(slot) = buf.get_mut(start) {
            *slot = b'0' + (v % 10) as u8;
        }
        v /= 10;
        if v == 0 || start == 0 {
            break;
        }
    }
    buf.get(start..).and_then(|b| core::str::from_utf8(b).ok()).unwrap_or("")
}

impl fmt::Display for TensorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.layer {
            None => f.write_str(self.kind.suffix()),
            Some(l) => write!(f, "blk.{l}.{}", self.kind.suffix()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_id_matches_and_displays_gguf_names() {
        let id = TensorId::layer(13, TensorKind::AttnKvAMqa);
        assert!(id.matches("blk.13.attn_kv_a_mqa.weight"));
        assert!(!id.matches("blk.1.attn_kv_a_mqa.weight"));
        assert!(!id.matches("blk.130.attn_kv_a_mqa.weight"));
        assert!(TensorId::layer(0, TensorKind::ExpProbsB).matches("blk.0.exp_probs_b.bias"));
        assert!(TensorId::layer(65535, TensorKind::FfnUp).matches("blk.65535.ffn_up.weight"));
        assert!(TensorId::global(TensorKind::Output).matches("output.weight"));
        extern crate std;
        use std::string::ToString;
        assert_eq!(id.to_string(), "blk.13.attn_kv_a_mqa.weight");
    }

    #[test]
    fn every_type_id_round_trips() {
        for id in 0..64 {
            if let Some(t) = GgmlType::from_id(id) {
                assert_eq!(t.id(), id);
            }
        }
    }
}

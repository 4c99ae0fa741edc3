//! The block formats beyond Q8_0 / Q4_0 as one value: which layout a tensor has, how it
//! dequantises and which activation blocks its integer dot product takes. The dot products
//! themselves go through the kernel table (`kernels/formats.rs` adds them to [`BlockFormat`]).

#[cfg(feature = "block-formats")]
use super::{iq4_nl, iq4_xs, q2_k, q3_k, q4_1, q4_k, q5_0, q5_1, q5_k, q6_k, QK, QK_K};
use crate::tensor::GgmlType;

/// A ggml block format with a dequantiser and an integer dot product here (besides Q8_0 and
/// Q4_0, which have their own paths).
///
/// Without the `block-formats` feature (firmware that only reads Q8_0 / Q4_0 files) this type
/// has no values: files in these formats are refused as unsupported, and every path that
/// handles them is unreachable and compiled out, with their kernels.
#[cfg(feature = "block-formats")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockFormat {
    /// 32 weights, `d · q + m`.
    Q4_1,
    /// 32 weights, `d · (q − 16)`, 5-bit `q`.
    Q5_0,
    /// 32 weights, `d · q + m`, 5-bit `q`.
    Q5_1,
    /// 32 weights on the non-linear 16-value grid.
    Iq4Nl,
    /// 256 weights, 2-bit, 16 scales and mins.
    Q2K,
    /// 256 weights, 3-bit, 16 scales.
    Q3K,
    /// 256 weights, 4-bit, 8 scales and mins.
    Q4K,
    /// 256 weights, 5-bit, 8 scales and mins.
    Q5K,
    /// 256 weights, 6-bit, 16 scales.
    Q6K,
    /// 256 weights on the IQ4_NL grid, 8 scales.
    Iq4Xs,
}

/// The activation blocks a format's integer dot product takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActBlocks {
    /// 32-value [`BlockQ8_0`](super::q8_0::BlockQ8_0)s.
    Q8_0,
    /// 256-value [`BlockQ8K`](super::q8_k::BlockQ8K)s.
    Q8K,
}

/// [`BlockFormat`] without the `block-formats` feature: no values.
#[cfg(not(feature = "block-formats"))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockFormat {}

#[cfg(not(feature = "block-formats"))]
#[allow(clippy::missing_const_for_fn, clippy::unused_self, missing_docs)]
impl BlockFormat {
    pub const ALL: &'static [BlockFormat] = &[];
    pub fn of(_: GgmlType) -> Option<Self> {
        None
    }
    pub const fn block_elems(self) -> usize {
        match self {}
    }
    pub const fn block_bytes(self) -> usize {
        match self {}
    }
    pub const fn acts(self) -> ActBlocks {
        match self {}
    }
    pub const fn scale_offsets(self) -> &'static [usize] {
        match self {}
    }
    pub fn row_bytes(self, _: usize) -> Option<usize> {
        match self {}
    }
    pub fn dequantize(self, _: &[u8], _: &mut [f32]) {
        match self {}
    }
}

#[cfg(feature = "block-formats")]
impl BlockFormat {
    /// Every format, in ggml type order.
    pub const ALL: &'static [BlockFormat] = &[
        Self::Q4_1,
        Self::Q5_0,
        Self::Q5_1,
        Self::Iq4Nl,
        Self::Q2K,
        Self::Q3K,
        Self::Q4K,
        Self::Q5K,
        Self::Q6K,
        Self::Iq4Xs,
    ];

    /// The format of a ggml type, if it is one of these.
    pub fn of(t: GgmlType) -> Option<Self> {
        Some(match t {
            GgmlType::Q4_1 => Self::Q4_1,
            GgmlType::Q5_0 => Self::Q5_0,
            GgmlType::Q5_1 => Self::Q5_1,
            GgmlType::IQ4_NL => Self::Iq4Nl,
            GgmlType::Q2_K => Self::Q2K,
            GgmlType::Q3_K => Self::Q3K,
            GgmlType::Q4_K => Self::Q4K,
            GgmlType::Q5_K => Self::Q5K,
            GgmlType::Q6_K => Self::Q6K,
            GgmlType::IQ4_XS => Self::Iq4Xs,
            _ => return None,
        })
    }

    /// Weights per block.
    pub const fn block_elems(self) -> usize {
        match self.acts() {
            ActBlocks::Q8_0 => QK,
            ActBlocks::Q8K => QK_K,
        }
    }

    /// Bytes per block.
    pub const fn block_bytes(self) -> usize {
        match self {
            Self::Q4_1 => q4_1::BLOCK_BYTES,
            Self::Q5_0 => q5_0::BLOCK_BYTES,
            Self::Q5_1 => q5_1::BLOCK_BYTES,
            Self::Iq4Nl => iq4_nl::BLOCK_BYTES,
            Self::Q2K => q2_k::BLOCK_BYTES,
            Self::Q3K => q3_k::BLOCK_BYTES,
            Self::Q4K => q4_k::BLOCK_BYTES,
            Self::Q5K => q5_k::BLOCK_BYTES,
            Self::Q6K => q6_k::BLOCK_BYTES,
            Self::Iq4Xs => iq4_xs::BLOCK_BYTES,
        }
    }

    /// The activation blocks of this format's dot product.
    pub const fn acts(self) -> ActBlocks {
        match self {
            Self::Q4_1 | Self::Q5_0 | Self::Q5_1 | Self::Iq4Nl => ActBlocks::Q8_0,
            Self::Q2K | Self::Q3K | Self::Q4K | Self::Q5K | Self::Q6K | Self::Iq4Xs => {
                ActBlocks::Q8K
            }
        }
    }

    /// Byte offsets of a block's f16 scales (`d`, and `m` / `dmin` where there is one).
    pub const fn scale_offsets(self) -> &'static [usize] {
        match self {
            Self::Q4_1 | Self::Q5_1 | Self::Q4K | Self::Q5K => &[0, 2],
            Self::Q5_0 | Self::Iq4Nl | Self::Iq4Xs => &[0],
            Self::Q2K => &[80, 82],
            Self::Q3K => &[108],
            Self::Q6K => &[208],
        }
    }

    /// Bytes of a row of `cols` weights (`None` unless `cols` is a whole number of blocks).
    pub fn row_bytes(self, cols: usize) -> Option<usize> {
        let elems = self.block_elems();
        cols.is_multiple_of(elems).then(|| cols / elems * self.block_bytes())
    }

    /// `out[i]` = weight `i` of the whole blocks in `bytes` (as many as both hold), each
    /// rounded exactly as ggml's `dequantize_row_*` and gguf-py round it.
    pub fn dequantize(self, bytes: &[u8], out: &mut [f32]) {
        match self {
            Self::Q4_1 => q4_1::dequantize(bytes.as_chunks().0, out),
            Self::Q5_0 => q5_0::dequantize(bytes.as_chunks().0, out),
            Self::Q5_1 => q5_1::dequantize(bytes.as_chunks().0, out),
            Self::Iq4Nl => iq4_nl::dequantize(bytes.as_chunks().0, out),
            Self::Q2K => q2_k::dequantize(bytes.as_chunks().0, out),
            Self::Q3K => q3_k::dequantize(bytes.as_chunks().0, out),
            Self::Q4K => q4_k::dequantize(bytes.as_chunks().0, out),
            Self::Q5K => q5_k::dequantize(bytes.as_chunks().0, out),
            Self::Q6K => q6_k::dequantize(bytes.as_chunks().0, out),
            Self::Iq4Xs => iq4_xs::dequantize(bytes.as_chunks().0, out),
        }
    }
}

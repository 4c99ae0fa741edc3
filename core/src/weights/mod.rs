//! Weight views: typed, shape-checked windows into the model file's bytes.
//!
//! This file holds the views and their validation; `matvec` the one-vector products (decode),
//! `matmul` the batched product (prefill), bit-identical to them.

use crate::config::ActivationPrecision;
use crate::error::Error;
use crate::kernels;
use crate::kernels::bf16_to_f32;
use crate::quant::format::{ActBlocks, BlockFormat};
use crate::quant::{block_scale, f16_at, q4_0, q8_0, QK};
use crate::tensor::{GgmlType, TensorId, TensorView};

/// Storage of a weight matrix this build can compute with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WeightType {
    F32,
    F16,
    BF16,
    /// ggml `Q8_0` blocks; rows are whole blocks.
    Q8_0,
    /// ggml `Q4_0` blocks; rows are whole blocks.
    Q4_0,
    /// Another ggml block format (K-quants, IQ4, Q4_1, Q5_0, Q5_1); rows are whole blocks.
    Blocks(BlockFormat),
}

impl WeightType {
    fn of(t: GgmlType) -> Option<Self> {
        Some(match t {
            GgmlType::F32 => WeightType::F32,
            GgmlType::F16 => WeightType::F16,
            GgmlType::BF16 => WeightType::BF16,
            GgmlType::Q8_0 => WeightType::Q8_0,
            GgmlType::Q4_0 => WeightType::Q4_0,
            other => WeightType::Blocks(BlockFormat::of(other)?),
        })
    }

    /// Bytes per block of a block format (0 for the float types).
    fn block_bytes(self) -> usize {
        match self {
            WeightType::F32 | WeightType::F16 | WeightType::BF16 => 0,
            WeightType::Q8_0 => q8_0::BLOCK_BYTES,
            WeightType::Q4_0 => q4_0::BLOCK_BYTES,
            WeightType::Blocks(f) => f.block_bytes(),
        }
    }

    /// True for the formats multiplied against Q8_0 activation blocks.
    fn takes_q8_0(self) -> bool {
        match self {
            WeightType::Q8_0 | WeightType::Q4_0 => true,
            WeightType::Blocks(f) => f.acts() == ActBlocks::Q8_0,
            WeightType::F32 | WeightType::F16 | WeightType::BF16 => false,
        }
    }

    /// True for the formats the batched product packs into [`Group8`](crate::quant::group8)s:
    /// those whose block term is Q8_0's (`d_w · d_a · Σ w·a` over 32 signed values), so the
    /// group kernels give their references' bits.
    fn packs_to_groups(self) -> bool {
        match self {
            WeightType::Q8_0 | WeightType::Q4_0 => true,
            #[cfg(feature = "block-formats")]
            WeightType::Blocks(BlockFormat::Q5_0 | BlockFormat::Iq4Nl) => true,
            _ => false,
        }
    }

    /// Bytes of a row of `cols` elements (`None` if `cols` is not a whole number of blocks).
    fn row_bytes(self, cols: usize) -> Option<usize> {
        match self {
            WeightType::F32 => cols.checked_mul(4),
            WeightType::F16 | WeightType::BF16 => cols.checked_mul(2),
            WeightType::Q8_0 => cols.is_multiple_of(QK).then(|| cols / QK * q8_0::BLOCK_BYTES),
            WeightType::Q4_0 => cols.is_multiple_of(QK).then(|| cols / QK * q4_0::BLOCK_BYTES),
            WeightType::Blocks(f) => f.row_bytes(cols),
        }
    }
}

/// A row-major matrix `[rows][cols]` borrowed from the file (`ne = [cols, rows]`).
///
/// Invariant: `bytes.len() == rows * ty.row_bytes(cols)`.
#[derive(Clone, Copy)]
pub(crate) struct Matrix<'a> {
    ty: WeightType,
    rows: usize,
    cols: usize,
    row_bytes: usize,
    bytes: &'a [u8],
    /// How quantised rows take their input vector.
    acts: ActivationPrecision,
    /// The rows' whole groups packed at load for the batched product ([`packed`]), or none.
    packed: packed::Rows<'a>,
}

impl core::fmt::Debug for Matrix<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Matrix {{ {:?}, {} x {} }}", self.ty, self.rows, self.cols)
    }
}

impl<'a> Matrix<'a> {
    /// A view of `t` as `rows × cols` if its dims (any trailing dims folded into rows) match.
    pub(crate) fn new(
        id: TensorId,
        t: &TensorView<'a>,
        expected_ne: [u64; 3],
    ) -> Result<Self, Error> {
        let found =
            t.dims3().unwrap_or([t.dims[0], t.dims[1], t.dims[2].saturating_mul(t.dims[3])]);
        if found != expected_ne || t.dims[3] != 1 {
            return Err(Error::ShapeMismatch { tensor: id, expected: expected_ne, found });
        }
        let ty = WeightType::of(t.ggml_type)
            .ok_or(Error::UnsupportedTensorType { tensor: id, ggml_type: t.ggml_type.id() })?;
        let [ne0, ne1, ne2] = expected_ne;
        let to_usize = |v: u64| usize::try_from(v).map_err(|_| Error::SizeOverflow);
        let cols = to_usize(ne0)?;
        let rows = to_usize(ne1)?.checked_mul(to_usize(ne2)?).ok_or(Error::SizeOverflow)?;
        let mismatch = Error::ShapeMismatch { tensor: id, expected: expected_ne, found };
        let row_bytes = ty.row_bytes(cols).ok_or(mismatch)?;
        let len = rows.checked_mul(row_bytes).ok_or(Error::SizeOverflow)?;
        if t.bytes.len() != len {
            return Err(mismatch);
        }
        let acts = ActivationPrecision::Int8;
        Ok(Matrix { ty, rows, cols, row_bytes, bytes: t.bytes, acts, packed: packed::NONE })
    }

    /// The same view, multiplying its input vectors at precision `acts` (quantised rows).
    pub(crate) fn with_activations(self, acts: ActivationPrecision) -> Self {
        Matrix { acts, ..self }
    }

    /// True when every element is finite (quantised blocks: every scale).
    pub(crate) fn is_finite(&self) -> bool {
        match self.ty {
            WeightType::F32 => all_finite_f32(self.bytes),
            WeightType::F16 => {
                self.bytes.as_chunks::<2>().0.iter().all(|b| kernels::f16_to_f32(*b).is_finite())
            }
            WeightType::BF16 => {
                self.bytes.as_chunks::<2>().0.iter().all(|b| bf16_to_f32(*b).is_finite())
            }
            WeightType::Q8_0 => self
                .bytes
                .as_chunks::<{ q8_0::BLOCK_BYTES }>()
                .0
                .iter()
                .all(|b| block_scale(b).is_finite()),
            WeightType::Q4_0 => self
                .bytes
                .as_chunks::<{ q4_0::BLOCK_BYTES }>()
                .0
                .iter()
                .all(|b| block_scale(b).is_finite()),
            WeightType::Blocks(f) => self
                .bytes
                .chunks_exact(f.block_bytes())
                .all(|b| f.scale_offsets().iter().all(|at| f16_at(b, *at).is_finite())),
        }
    }

    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// Rows `start .. start + n` as a matrix (empty if out of range).
    pub(crate) fn sub_rows(&self, start: usize, n: usize) -> Matrix<'a> {
        let rb = self.row_bytes;
        let bytes = start
            .checked_mul(rb)
            .zip(start.checked_add(n).and_then(|e| e.checked_mul(rb)))
            .and_then(|(s, e)| self.bytes.get(s..e));
        match bytes {
            Some(bytes) => Matrix { rows: n, bytes, packed: self.packed_rows(start, n), ..*self },
            None => Matrix { rows: 0, bytes: &[], packed: packed::NONE, ..*self },
        }
    }
}

/// A result from its value blocks' dot product and its residual blocks' one
/// ([`q8_0::quantize_with_residual`]); every Int16 product folds its sums with this.
#[inline(always)]
fn with_residual(value: f32, residual: f32) -> f32 {
    value + residual * (1.0 / q8_0::RESIDUAL_SCALE)
}

/// Result `t` of a batched product from the sums of its quantised vectors, `sum(p)` for
/// vector `p`: `planes` (1 or 2) vectors per result, value then residual.
#[inline(always)]
fn fold_planes(planes: usize, t: usize, sum: impl Fn(usize) -> f32) -> f32 {
    match planes {
        2 => with_residual(sum(2 * t), sum(2 * t + 1)),
        _ => sum(t),
    }
}

/// A 1-D `f32` vector (norm weights, biases) borrowed from the file as little-endian bytes.
///
/// Invariant: `bytes.len() == 4 * len`.
#[derive(Clone, Copy)]
pub(crate) struct Vector<'a> {
    bytes: &'a [u8],
}

impl core::fmt::Debug for Vector<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Vector {{ F32, {} }}", self.bytes.len() / 4)
    }
}

impl<'a> Vector<'a> {
    /// A view of `t` if it is a 1-D `F32` tensor of `len` elements.
    pub(crate) fn new(id: TensorId, t: &TensorView<'a>, len: usize) -> Result<Self, Error> {
        let expected = [len as u64, 1, 1];
        let found = t.dims3().unwrap_or([t.dims[0], t.dims[1], t.dims[2]]);
        if found != expected || t.dims[3] != 1 {
            return Err(Error::ShapeMismatch { tensor: id, expected, found });
        }
        if t.ggml_type != GgmlType::F32 {
            return Err(Error::UnsupportedTensorType { tensor: id, ggml_type: t.ggml_type.id() });
        }
        Ok(Vector { bytes: t.bytes })
    }

    /// True when every element is finite.
    pub(crate) fn is_finite(&self) -> bool {
        all_finite_f32(self.bytes)
    }

    /// `out = RMSNorm(x)` with these weights.
    pub(crate) fn rms_norm(&self, out: &mut [f32], x: &[f32], eps: f32) {
        kernels::rms_norm(out, x, self.bytes, eps);
    }

    /// `x = RMSNorm(x)` with these weights.
    pub(crate) fn rms_norm_in_place(&self, x: &mut [f32], eps: f32) {
        kernels::rms_norm_in_place(x, self.bytes, eps);
    }

    /// Element `i` (0.0 past the end).
    pub(crate) fn get(&self, i: usize) -> f32 {
        let (v, _) = self.bytes.as_chunks::<4>();
        v.get(i).map_or(0.0, |b| f32::from_le_bytes(*b))
    }
}

fn all_finite_f32(bytes: &[u8]) -> bool {
    let (v, _) = bytes.as_chunks::<4>();
    v.iter().all(|b| f32::from_le_bytes(*b).is_finite())
}

mod act_layout;
mod float_rows;
mod matmul;
pub(crate) use matmul::MAX_BATCH;
mod matvec;
pub(crate) mod packed;
#[cfg(test)]
mod tests;
mod transpose;

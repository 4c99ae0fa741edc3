//! Weight views: typed, shape-checked windows into the model file's bytes.

use crate::error::Error;
use crate::kernels;
use crate::tensor::{GgmlType, TensorId, TensorView};

/// Storage of a weight matrix this build can compute with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WeightType {
    F32,
    F16,
}

impl WeightType {
    fn bytes_per_elem(self) -> usize {
        match self {
            WeightType::F32 => 4,
            WeightType::F16 => 2,
        }
    }
}

/// A row-major matrix `[rows][cols]` borrowed from the file (`ne = [cols, rows]`).
///
/// Invariant: `bytes.len() == rows * cols * bytes_per_elem`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Matrix<'a> {
    ty: WeightType,
    rows: usize,
    cols: usize,
    bytes: &'a [u8],
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
        let ty = match t.ggml_type {
            GgmlType::F32 => WeightType::F32,
            GgmlType::F16 => WeightType::F16,
            other => {
                return Err(Error::UnsupportedTensorType { tensor: id, ggml_type: other.id() })
            }
        };
        let [ne0, ne1, ne2] = expected_ne;
        let to_usize = |v: u64| usize::try_from(v).map_err(|_| Error::SizeOverflow);
        let cols = to_usize(ne0)?;
        let rows = to_usize(ne1)?.checked_mul(to_usize(ne2)?).ok_or(Error::SizeOverflow)?;
        let len = rows
            .checked_mul(cols)
            .and_then(|n| n.checked_mul(ty.bytes_per_elem()))
            .ok_or(Error::SizeOverflow)?;
        if t.bytes.len() != len {
            return Err(Error::ShapeMismatch { tensor: id, expected: expected_ne, found });
        }
        Ok(Matrix { ty, rows, cols, bytes: t.bytes })
    }

    /// True when every element is finite.
    pub(crate) fn is_finite(&self) -> bool {
        match self.ty {
            WeightType::F32 => all_finite_f32(self.bytes),
            WeightType::F16 => {
                let (v, _) = self.bytes.as_chunks::<2>();
                v.iter().all(|b| half::f16::from_le_bytes(*b).is_finite())
            }
        }
    }

    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    fn row_bytes(&self) -> usize {
        self.cols * self.ty.bytes_per_elem()
    }

    /// Rows `start .. start + n` as a matrix (empty if out of range).
    pub(crate) fn sub_rows(&self, start: usize, n: usize) -> Matrix<'a> {
        let rb = self.row_bytes();
        let bytes = start
            .checked_mul(rb)
            .zip(start.checked_add(n).and_then(|e| e.checked_mul(rb)))
            .and_then(|(s, e)| self.bytes.get(s..e));
        match bytes {
            Some(bytes) => Matrix { ty: self.ty, rows: n, cols: self.cols, bytes },
            None => Matrix { ty: self.ty, rows: 0, cols: self.cols, bytes: &[] },
        }
    }

    /// `out[r] = Σ_c W[r][c] · x[c]` for every row (`out.len()` rows at most).
    pub(crate) fn matvec(&self, x: &[f32], out: &mut [f32]) {
        let rb = self.row_bytes().max(1);
        let rows = self.bytes.chunks_exact(rb);
        match self.ty {
            WeightType::F32 => {
                for (o, row) in out.iter_mut().zip(rows) {
                    *o = kernels::dot_f32_le(row, x);
                }
            }
            WeightType::F16 => {
                for (o, row) in out.iter_mut().zip(rows) {
                    *o = kernels::dot_f16_le(row, x);
                }
            }
        }
    }

    /// `out[c] = Σ_r x[r] · W[r][c]` (the transposed product), `out.len() == cols`.
    pub(crate) fn matvec_transposed(&self, x: &[f32], out: &mut [f32]) {
        out.fill(0.0);
        let rb = self.row_bytes().max(1);
        for (xr, row) in x.iter().zip(self.bytes.chunks_exact(rb)) {
            match self.ty {
                WeightType::F32 => {
                    let (w, _) = row.as_chunks::<4>();
                    for (o, wb) in out.iter_mut().zip(w) {
                        *o += xr * f32::from_le_bytes(*wb);
                    }
                }
                WeightType::F16 => {
                    let (w, _) = row.as_chunks::<2>();
                    for (o, wb) in out.iter_mut().zip(w) {
                        *o += xr * kernels::f16_to_f32(*wb);
                    }
                }
            }
        }
    }

    /// Row `r` converted to `f32` into `out` (the embedding lookup).
    pub(crate) fn row_into(&self, r: usize, out: &mut [f32]) {
        let row = self.sub_rows(r, 1);
        match self.ty {
            WeightType::F32 => {
                let (w, _) = row.bytes.as_chunks::<4>();
                for (o, wb) in out.iter_mut().zip(w) {
                    *o = f32::from_le_bytes(*wb);
                }
            }
            WeightType::F16 => {
                let (w, _) = row.bytes.as_chunks::<2>();
                for (o, wb) in out.iter_mut().zip(w) {
                    *o = kernels::f16_to_f32(*wb);
                }
            }
        }
    }
}

/// A 1-D `f32` vector (norm weights, biases) borrowed from the file as little-endian bytes.
///
/// Invariant: `bytes.len() == 4 * len`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Vector<'a> {
    bytes: &'a [u8],
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

    /// The raw little-endian bytes (what the norm kernels take).
    pub(crate) fn bytes(&self) -> &'a [u8] {
        self.bytes
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

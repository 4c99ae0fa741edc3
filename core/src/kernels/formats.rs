//! Each [`BlockFormat`]'s integer dot product, through a kernel table's entry for it. Methods
//! of the format (`f.dot_q8_0(k, w, a)`), written here so that `quant` stays below `kernels`.

#[cfg(feature = "block-formats")]
use super::super_rows_by_pair;
#[cfg(feature = "block-formats")]
use super::SuperRowsFn;
use super::{Kernels, SUPER_ROWS};
use crate::quant::format::BlockFormat;
use crate::quant::{q8_0::BlockQ8_0, q8_k::BlockQ8K};

#[cfg(feature = "block-formats")]
impl BlockFormat {
    /// `Σ w·a` of the whole blocks in `w` against Q8_0 activation blocks, through `k` (0 for
    /// the formats that take [`ActBlocks::Q8K`](crate::quant::format::ActBlocks::Q8K)).
    #[inline]
    pub fn dot_q8_0(self, k: &Kernels, w: &[u8], a: &[BlockQ8_0]) -> f32 {
        let d = k.block_dots();
        match self {
            Self::Q4_1 => (d.q4_1)(w.as_chunks().0, a),
            Self::Q5_0 => (d.q5_0)(w.as_chunks().0, a),
            Self::Q5_1 => (d.q5_1)(w.as_chunks().0, a),
            Self::Iq4Nl => (d.iq4_nl)(w.as_chunks().0, a),
            _ => 0.0,
        }
    }

    /// `Σ w·a` of the whole blocks in `w` against Q8_K activation blocks, through `k` (0 for
    /// the formats that take [`ActBlocks::Q8_0`](crate::quant::format::ActBlocks::Q8_0)).
    #[inline]
    pub fn dot_q8_k(self, k: &Kernels, w: &[u8], a: &[BlockQ8K]) -> f32 {
        let d = k.block_dots();
        match self {
            Self::Q2K => (d.q2_k)(w.as_chunks().0, a),
            Self::Q3K => (d.q3_k)(w.as_chunks().0, a),
            Self::Q4K => (d.q4_k)(w.as_chunks().0, a),
            Self::Q5K => (d.q5_k)(w.as_chunks().0, a),
            Self::Q6K => (d.q6_k)(w.as_chunks().0, a),
            Self::Iq4Xs => (d.iq4_xs)(w.as_chunks().0, a),
            _ => 0.0,
        }
    }

    /// True when `k` has a row tile for this format ([`BlockFormat::rows_q8_k`]).
    #[inline]
    pub fn has_rows_tile(self, k: &Kernels) -> bool {
        let d = k.block_dots();
        match self {
            Self::Q4K => d.q4_k_rows.is_some(),
            Self::Q5K => d.q5_k_rows.is_some(),
            Self::Q6K => d.q6_k_rows.is_some(),
            _ => false,
        }
    }

    /// `out[t][r] = self.dot_q8_k(k, rows[r], a[t])` for every vector of `a`, bit for bit,
    /// through `k`'s row tile for this format (pair by pair where it has none).
    pub fn rows_q8_k(
        self,
        k: &Kernels,
        rows: &[&[u8]; SUPER_ROWS],
        a: &[&[BlockQ8K]],
        out: &mut [[f32; SUPER_ROWS]],
    ) {
        /// The tile where the table has one, else the table's one-vector dot pair by pair.
        fn run<W>(
            tile: Option<SuperRowsFn<W>>,
            dot: fn(&[W], &[BlockQ8K]) -> f32,
            rows: &[&[W]; SUPER_ROWS],
            a: &[&[BlockQ8K]],
            out: &mut [[f32; SUPER_ROWS]],
        ) {
            match tile {
                Some(tile) => tile(rows, a, out),
                None => super_rows_by_pair(rows, a, out, dot),
            }
        }
        let d = k.block_dots();
        match self {
            Self::Q4K => run(d.q4_k_rows, d.q4_k, &rows.map(|r| r.as_chunks().0), a, out),
            Self::Q5K => run(d.q5_k_rows, d.q5_k, &rows.map(|r| r.as_chunks().0), a, out),
            Self::Q6K => run(d.q6_k_rows, d.q6_k, &rows.map(|r| r.as_chunks().0), a, out),
            _ => {
                for (o, at) in out.iter_mut().zip(a) {
                    for (o, row) in o.iter_mut().zip(rows) {
                        *o = self.dot_q8_k(k, row, at);
                    }
                }
            }
        }
    }
}

#[cfg(not(feature = "block-formats"))]
#[allow(clippy::unused_self, missing_docs)]
impl BlockFormat {
    pub fn dot_q8_0(self, _: &Kernels, _: &[u8], _: &[BlockQ8_0]) -> f32 {
        match self {}
    }
    pub fn dot_q8_k(self, _: &Kernels, _: &[u8], _: &[BlockQ8K]) -> f32 {
        match self {}
    }
    pub fn has_rows_tile(self, _: &Kernels) -> bool {
        match self {}
    }
    pub fn rows_q8_k(
        self,
        _: &Kernels,
        _: &[&[u8]; SUPER_ROWS],
        _: &[&[BlockQ8K]],
        _: &mut [[f32; SUPER_ROWS]],
    ) {
        match self {}
    }
}

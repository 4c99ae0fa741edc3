//! Weights packed once at load for the batched product.
//!
//! The batched product ([`Matrix::matmul`]) multiplies a Q8_0 / Q4_0 row with many vectors in
//! [`Group8`] layout, and packs each chunk of each row into it on every call: for a decode step
//! over a few sequences that packing is a large share of the work (a sixth of a step over 8
//! sequences on a Zen 3). A host with memory to spare packs every such matrix once
//! ([`Matrix::pack_into`], driven by `ModelWith::with_packed_weights`); the product then reads
//! the packed groups instead. They are the bytes the per-call packing would produce, so every
//! result is bit-identical.
//!
//! Layout: per row, its `cols / 256` whole groups of [`group8::GROUP_BYTES`] each, rows one after
//! another; a row's trailing `cols / 32 % 8` blocks stay in the original bytes.

use super::{Matrix, WeightType};
use crate::config::ActivationPrecision;
use crate::kernels::{Kernels, GROUP_TILE};
#[cfg(feature = "block-formats")]
use crate::quant::format::BlockFormat;
use crate::quant::group8::{self, Group8};
use crate::quant::{q8_0, ACT_CHUNK_BLOCKS, QK};

/// A matrix's packed rows: empty when it has none.
#[cfg(feature = "packed-weights")]
pub(crate) type Rows<'a> = &'a [u8];
/// Without the `packed-weights` feature a matrix carries no packed rows (and no bytes for them).
#[cfg(not(feature = "packed-weights"))]
pub(crate) type Rows<'a> = core::marker::PhantomData<&'a [u8]>;

/// No packed rows.
#[cfg(feature = "packed-weights")]
pub(crate) const NONE: Rows<'static> = &[];
/// No packed rows.
#[cfg(not(feature = "packed-weights"))]
pub(crate) const NONE: Rows<'static> = core::marker::PhantomData;

/// Columns of one group: a matrix narrower than this is never packed.
pub(crate) const GROUP_COLS: usize = group8::BLOCKS * QK;

impl<'a> Matrix<'a> {
    /// True when the batched product with kernel table `k` takes this matrix in groups.
    pub(crate) fn takes_groups(&self, k: &Kernels) -> bool {
        self.ty.packs_to_groups() && k.has_group_kernel() && self.cols >= GROUP_COLS
    }

    /// Packs the eight blocks at the start of `blocks` (a row's bytes from a group's first
    /// block on) into `out`, for a matrix whose type [`WeightType::packs_to_groups`].
    pub(super) fn pack_group(&self, k: &Kernels, blocks: &[u8], out: &mut Group8) {
        fn first<const B: usize>(bytes: &[u8]) -> Option<&[[u8; B]; group8::BLOCKS]> {
            bytes.as_chunks::<B>().0.first_chunk::<{ group8::BLOCKS }>()
        }
        match self.ty {
            WeightType::Q8_0 => first(blocks).map(|b| k.pack_q8_0(b, out)),
            WeightType::Q4_0 => first(blocks).map(|b| k.pack_q4_0(b, out)),
            #[cfg(feature = "block-formats")]
            WeightType::Blocks(BlockFormat::Q5_0) => {
                first(blocks).map(|b| (k.block_dots().pack_q5_0)(b, out))
            }
            #[cfg(feature = "block-formats")]
            WeightType::Blocks(BlockFormat::Iq4Nl) => {
                first(blocks).map(|b| (k.block_dots().pack_iq4_nl)(b, out))
            }
            _ => None,
        };
    }

    /// Bytes of one row's packed groups.
    fn packed_row_bytes(&self) -> usize {
        self.cols / QK / group8::BLOCKS * group8::GROUP_BYTES
    }

    /// Bytes [`Matrix::pack_into`] needs with kernel table `k` (0 for a matrix it leaves as
    /// is).
    pub(crate) fn packed_len(&self, k: &Kernels) -> usize {
        if cfg!(feature = "packed-weights") && self.takes_groups(k) {
            self.rows.saturating_mul(self.packed_row_bytes())
        } else {
            0
        }
    }

    /// Packs every row's whole groups into the front of `*mem` (taking [`Matrix::packed_len`]
    /// bytes from it) and returns this matrix reading them; a matrix that is not packed, or
    /// too little memory, gives the matrix unchanged.
    #[cfg(feature = "packed-weights")]
    pub(crate) fn pack_into<'p>(&self, k: &Kernels, mem: &mut &'p mut [u8]) -> Matrix<'p>
    where
        'a: 'p,
    {
        let len = self.packed_len(k);
        if len == 0 || mem.len() < len {
            return *self;
        }
        let (out, rest) = core::mem::take(mem).split_at_mut(len);
        *mem = rest;
        let prb = self.packed_row_bytes();
        let n_groups = prb / group8::GROUP_BYTES;
        for (row, packed) in self.bytes.chunks_exact(self.row_bytes).zip(out.chunks_exact_mut(prb))
        {
            let (groups, _) = packed.as_chunks_mut::<{ group8::GROUP_BYTES }>();
            let group_bytes = group8::BLOCKS * self.ty.block_bytes();
            for (i, g) in groups.iter_mut().enumerate().take(n_groups) {
                self.pack_group(k, row.get(i * group_bytes..).unwrap_or(&[]), g);
            }
        }
        Matrix { packed: out, ..*self }
    }

    /// True when [`Matrix::matvec_packed`] computes this matrix's products with table `k`:
    /// Q8_0 rows packed at load, int8 activations, and a table without a rows kernel (one
    /// reads the file's rows faster: measured twice as fast on Zen 4). (Packed Q4_0 rows are
    /// twice the bytes of the file's, which a decode step bound by weight traffic does not
    /// gain from.)
    pub(crate) fn decodes_packed(&self, k: &Kernels) -> bool {
        cfg!(feature = "packed-weights")
            && k.dot_q8_0_rows().is_none()
            && self.ty == WeightType::Q8_0
            && self.acts == ActivationPrecision::Int8
            && self.has_packed_rows()
    }

    /// True when this matrix carries rows packed at load.
    fn has_packed_rows(&self) -> bool {
        #[cfg(feature = "packed-weights")]
        {
            !self.packed.is_empty()
        }
        #[cfg(not(feature = "packed-weights"))]
        {
            false
        }
    }

    /// [`Matrix::matvec`]'s rows (on the calling thread) from the rows packed at load, for a
    /// matrix that [`Matrix::decodes_packed`]: `x` is quantised and packed one
    /// [`ACT_CHUNK_BLOCKS`] chunk at a time, and each chunk is multiplied with eight rows per
    /// call of the table's rows tile ([`Kernels::dot_rows_tile`]: the activation chunk is
    /// loaded once for the eight, and the per-block sums need no horizontal reduction). A
    /// chunk's trailing `cols / 32 % 8` blocks continue each row's sum from the file's bytes.
    /// Each result is bit-identical to the unpacked product's: the same blocks, the same
    /// per-block terms, added in the same order, chunk by chunk.
    pub(super) fn matvec_packed(&self, k: &Kernels, x: &[f32], out: &mut [f32]) {
        out.fill(0.0);
        let rows = out.len().min(self.rows);
        let mut act = [[0u8; q8_0::BLOCK_BYTES]; ACT_CHUNK_BLOCKS];
        let mut act_groups = [[0u8; group8::GROUP_BYTES]; ACT_CHUNK_BLOCKS / group8::BLOCKS];
        for (c, xs) in x.get(..self.cols).unwrap_or(x).chunks(ACT_CHUNK_BLOCKS * QK).enumerate() {
            let n_blocks = xs.len().div_ceil(QK);
            let act = act.get_mut(..n_blocks).unwrap_or(&mut []);
            k.quantize_q8_0(xs, act);
            let (whole, tail) = act.as_chunks::<{ group8::BLOCKS }>();
            let groups = act_groups.get_mut(..whole.len()).unwrap_or(&mut []);
            for (g, src) in groups.iter_mut().zip(whole) {
                k.pack_q8_0(src, g);
            }
            let groups = &*groups;
            let g0 = c * ACT_CHUNK_BLOCKS / group8::BLOCKS;
            let g1 = g0 + groups.len();
            // The row's blocks after the chunk's whole groups.
            let tail_at = g1 * group8::BLOCKS * q8_0::BLOCK_BYTES;
            let finish = |r: usize, sum: f32| {
                if tail.is_empty() {
                    return sum;
                }
                let row = self.bytes.get(r * self.row_bytes..(r + 1) * self.row_bytes);
                let w = row.and_then(|row| row.get(tail_at..)).unwrap_or(&[]);
                k.dot_q8_0_from(sum, w.as_chunks().0, tail)
            };
            let (tiles, rest) =
                out.get_mut(..rows).unwrap_or(&mut []).as_chunks_mut::<GROUP_TILE>();
            for (i, o) in tiles.iter_mut().enumerate() {
                let r0 = i * GROUP_TILE;
                let tile =
                    core::array::from_fn(|t| self.packed_groups(r0 + t, g0, g1).unwrap_or(&[]));
                let sums = k.dot_rows_tile(groups, &tile);
                for (t, (o, sum)) in o.iter_mut().zip(sums).enumerate() {
                    *o += finish(r0 + t, sum);
                }
            }
            let r0 = tiles.len() * GROUP_TILE;
            for (t, o) in rest.iter_mut().enumerate() {
                let row = self.packed_groups(r0 + t, g0, g1).unwrap_or(&[]);
                *o += finish(r0 + t, k.dot_groups(row, groups));
            }
        }
    }

    /// The packed rows of rows `start .. start + n` (none if this matrix has none).
    pub(crate) fn packed_rows(&self, start: usize, n: usize) -> Rows<'a> {
        #[cfg(feature = "packed-weights")]
        {
            let prb = self.packed_row_bytes();
            let end = start.checked_add(n).and_then(|e| e.checked_mul(prb));
            let range = start.checked_mul(prb).zip(end);
            range.and_then(|(s, e)| self.packed.get(s..e)).unwrap_or(NONE)
        }
        #[cfg(not(feature = "packed-weights"))]
        {
            let _ = (start, n);
            NONE
        }
    }

    /// Groups `g0 .. g1` of row `r` of the packed rows, if this matrix has them.
    pub(crate) fn packed_groups(&self, r: usize, g0: usize, g1: usize) -> Option<&'a [Group8]> {
        #[cfg(feature = "packed-weights")]
        {
            let prb = self.packed_row_bytes();
            let row = self.packed.get(r.checked_mul(prb)?..r.checked_add(1)?.checked_mul(prb)?)?;
            row.as_chunks::<{ group8::GROUP_BYTES }>().0.get(g0..g1)
        }
        #[cfg(not(feature = "packed-weights"))]
        {
            let _ = (r, g0, g1);
            None
        }
    }
}

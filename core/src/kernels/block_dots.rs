//! The integer dot products of the block formats beyond Q8_0 / Q4_0 as one table entry of a
//! [`Kernels`](super::Kernels) table: one-vector dots, the group packers and tiles of the
//! 32-weight formats that pack into groups, and the K-quant row tiles.

use super::BlocksTileFn;
use crate::quant::format::BlockFormat;
use crate::quant::group8::{self, Group8};
use crate::quant::iq4_nl::{self, BlockIq4Nl};
use crate::quant::iq4_xs::{self, BlockIq4Xs};
use crate::quant::q2_k::{self, BlockQ2K};
use crate::quant::q3_k::{self, BlockQ3K};
use crate::quant::q4_1::{self, BlockQ4_1};
use crate::quant::q4_k::{self, BlockQ4K};
use crate::quant::q5_0::{self, BlockQ5_0};
use crate::quant::q5_1::{self, BlockQ5_1};
use crate::quant::q5_k::{self, BlockQ5K};
use crate::quant::q6_k::{self, BlockQ6K};
use crate::quant::q8_0::BlockQ8_0;
use crate::quant::q8_k::BlockQ8K;

/// The integer dot products of the block formats beyond Q8_0 / Q4_0, one entry per format,
/// each bit-identical to its reference in [`crate::quant`] (the 32-weight formats against
/// Q8_0 activation blocks, the 256-weight ones against Q8_K blocks).
#[derive(Clone, Copy)]
pub struct BlockDots {
    /// Reference [`q4_1::dot_q8_0`].
    pub q4_1: fn(&[BlockQ4_1], &[BlockQ8_0]) -> f32,
    /// Reference [`q5_0::dot_q8_0`].
    pub q5_0: fn(&[BlockQ5_0], &[BlockQ8_0]) -> f32,
    /// Reference [`q5_1::dot_q8_0`].
    pub q5_1: fn(&[BlockQ5_1], &[BlockQ8_0]) -> f32,
    /// Reference [`iq4_nl::dot_q8_0`].
    pub iq4_nl: fn(&[BlockIq4Nl], &[BlockQ8_0]) -> f32,
    /// Reference [`q2_k::dot_q8_k`].
    pub q2_k: fn(&[BlockQ2K], &[BlockQ8K]) -> f32,
    /// Reference [`q3_k::dot_q8_k`].
    pub q3_k: fn(&[BlockQ3K], &[BlockQ8K]) -> f32,
    /// Reference [`q4_k::dot_q8_k`].
    pub q4_k: fn(&[BlockQ4K], &[BlockQ8K]) -> f32,
    /// Reference [`q5_k::dot_q8_k`].
    pub q5_k: fn(&[BlockQ5K], &[BlockQ8K]) -> f32,
    /// Reference [`q6_k::dot_q8_k`].
    pub q6_k: fn(&[BlockQ6K], &[BlockQ8K]) -> f32,
    /// Reference [`iq4_xs::dot_q8_k`].
    pub iq4_xs: fn(&[BlockIq4Xs], &[BlockQ8K]) -> f32,
    /// Packs eight Q5_0 blocks into a [`Group8`] (reference [`group8::pack_q5_0`]).
    pub pack_q5_0: fn(&[BlockQ5_0; group8::BLOCKS], &mut Group8),
    /// Packs eight IQ4_NL blocks (reference [`group8::pack_iq4_nl`]).
    pub pack_iq4_nl: fn(&[BlockIq4Nl; group8::BLOCKS], &mut Group8),
    /// `q5_0::dot_q8_0_from` for [`GROUP_TILE`](super::GROUP_TILE) vectors against one row's blocks (the blocks
    /// after a row chunk's packed groups), where the table has a tile kernel.
    pub q5_0_tile: Option<BlocksTileFn<BlockQ5_0>>,
    /// `iq4_nl::dot_q8_0_from` for [`GROUP_TILE`](super::GROUP_TILE) vectors, where the table has one.
    pub iq4_nl_tile: Option<BlocksTileFn<BlockIq4Nl>>,
    /// `q4_1::dot_q8_0_from` for [`GROUP_TILE`](super::GROUP_TILE) vectors, where the table
    /// has a tile kernel (Q4_1 and Q5_1 rows are not packed into groups: their min term
    /// differs).
    pub q4_1_tile: Option<BlocksTileFn<BlockQ4_1>>,
    /// `q5_1::dot_q8_0_from` for [`GROUP_TILE`](super::GROUP_TILE) vectors, where the table
    /// has one.
    pub q5_1_tile: Option<BlocksTileFn<BlockQ5_1>>,
    /// [`SUPER_ROWS`] Q4_K rows × many vectors (reference [`q4_k::dot_q8_k`] per pair), where
    /// the table has a row tile.
    pub q4_k_rows: Option<SuperRowsFn<BlockQ4K>>,
    /// [`SUPER_ROWS`] Q5_K rows × many vectors (reference [`q5_k::dot_q8_k`] per pair).
    pub q5_k_rows: Option<SuperRowsFn<BlockQ5K>>,
    /// [`SUPER_ROWS`] Q6_K rows × many vectors (reference [`q6_k::dot_q8_k`] per pair).
    pub q6_k_rows: Option<SuperRowsFn<BlockQ6K>>,
    /// Four K-quant rows × one vector (decode), where the table has such a kernel.
    pub super_rows4: Option<SuperRows4Fn>,
}

impl BlockDots {
    /// The references.
    pub const SCALAR: BlockDots = BlockDots {
        q4_1: q4_1::dot_q8_0,
        q5_0: q5_0::dot_q8_0,
        q5_1: q5_1::dot_q8_0,
        iq4_nl: iq4_nl::dot_q8_0,
        q2_k: q2_k::dot_q8_k,
        q3_k: q3_k::dot_q8_k,
        q4_k: q4_k::dot_q8_k,
        q5_k: q5_k::dot_q8_k,
        q6_k: q6_k::dot_q8_k,
        iq4_xs: iq4_xs::dot_q8_k,
        pack_q5_0: group8::pack_q5_0,
        pack_iq4_nl: group8::pack_iq4_nl,
        q5_0_tile: None,
        iq4_nl_tile: None,
        q4_1_tile: None,
        q5_1_tile: None,
        q4_k_rows: None,
        q5_k_rows: None,
        q6_k_rows: None,
        super_rows4: None,
    };
}

/// Rows of one call of a [`SuperRows4Fn`].
pub const SUPER_ROWS4: usize = 4;

/// Decode's K-quant rows kernel: `(format, rows, a, ahead, out)` sets `out[r] =
/// format.dot_q8_k(rows[r], a)` bit for bit and returns true for the formats it serves (Q4_K,
/// Q5_K, Q6_K), or returns false and leaves `out` alone. `ahead` is a prefetch hint: the
/// distance in bytes from each row's blocks to the ones the next call reads (never read here).
pub type SuperRows4Fn =
    fn(BlockFormat, &[&[u8]; SUPER_ROWS4], &[BlockQ8K], usize, &mut [f32; SUPER_ROWS4]) -> bool;

/// Weight rows of one call of a K-quant row tile ([`BlockDots::q4_k_rows`]).
pub const SUPER_ROWS: usize = 8;

/// A K-quant row tile: `out[t][r] = dot_q8_k(rows[r], a[t])` for every vector `t` of `a`
/// (`out` holds at least `a.len()` entries).
pub type SuperRowsFn<W> = fn(&[&[W]; SUPER_ROWS], &[&[BlockQ8K]], &mut [[f32; SUPER_ROWS]]);

/// A row tile computed pair by pair with `dot` (the reference, and every table's fallback on
/// uneven lengths).
#[cfg(feature = "block-formats")]
pub(crate) fn super_rows_by_pair<W>(
    rows: &[&[W]; SUPER_ROWS],
    a: &[&[BlockQ8K]],
    out: &mut [[f32; SUPER_ROWS]],
    dot: fn(&[W], &[BlockQ8K]) -> f32,
) {
    for (o, at) in out.iter_mut().zip(a) {
        for (o, row) in o.iter_mut().zip(rows) {
            *o = dot(row, at);
        }
    }
}

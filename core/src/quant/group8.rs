//! Eight consecutive blocks interleaved for *vertical* integer sums: the batched product's
//! layout on targets with a group kernel (AVX2).
//!
//! A one-vector kernel sums each 32-value block horizontally (eight 4-product lanes reduced to
//! one `i32`), which costs as much as the products themselves on x86. In a [`Group8`], 4-byte
//! group `g` of all eight blocks sits in one 32-byte row, so a SIMD lane `j` only ever sees
//! block `j`: eight multiply-adds and vertical adds leave block `j`'s exact sum in lane `j`.
//! The result is the same sum as [`super::q8_0::dot_q8_0`] of the unpacked blocks, bit for
//! bit (block order, the same rounding). Packing costs a pass over the blocks, so it pays
//! only when the packed blocks are reused: a chunk of a weight row for every token of a batch,
//! a token's activations for every row.
//!
//! Layout (288 bytes): the eight block scales as little-endian `f32`, then `qs[g][j][k]` =
//! value `4g + k` of block `j` as `i8` (`g`, `j` in `0..8`, `k` in `0..4`).

use super::iq4_nl::BlockIq4Nl;
use super::q5_0::BlockQ5_0;
use super::{block_scale, q4_0::BlockQ4_0, q8_0::BlockQ8_0, QK};

/// Blocks per group.
pub const BLOCKS: usize = 8;
/// Bytes of the scales part.
const SCALE_BYTES: usize = 4 * BLOCKS;
/// Bytes per group.
pub const GROUP_BYTES: usize = SCALE_BYTES + BLOCKS * QK;
/// Eight packed blocks.
pub type Group8 = [u8; GROUP_BYTES];
const _: () = assert!(core::mem::size_of::<Group8>() == 288);

/// Packs eight blocks given as (scale, their 32 values as bytes) into `out`: value bytes are
/// moved four at a time, so packing stays a small fraction of the products it serves.
fn pack(out: &mut Group8, block: impl Fn(usize) -> (f32, [u8; QK])) {
    let (scales, qs) = out.split_at_mut(SCALE_BYTES);
    let (rows, _) = qs.as_chunks_mut::<4>();
    for (j, d) in scales.chunks_exact_mut(4).enumerate() {
        let (scale, values) = block(j);
        d.copy_from_slice(&scale.to_le_bytes());
        let (words, _) = values.as_chunks::<4>();
        for (g, word) in words.iter().enumerate() {
            if let Some(dst) = rows.get_mut(g * BLOCKS + j) {
                *dst = *word;
            }
        }
    }
}

/// Packs eight Q8_0 blocks.
pub fn pack_q8_0(blocks: &[BlockQ8_0; BLOCKS], out: &mut Group8) {
    pack(out, |j| match blocks.get(j).and_then(|b| b.split_first_chunk::<2>()) {
        Some((_, qs)) => {
            let mut v = [0u8; QK];
            v.copy_from_slice(qs.get(..QK).unwrap_or(&[0; QK]));
            (blocks.get(j).map_or(0.0, |b| block_scale(b)), v)
        }
        None => (0.0, [0; QK]),
    });
}

/// Packs eight Q4_0 blocks as their signed values `q − 8` (in `-8..=7`).
pub fn pack_q4_0(blocks: &[BlockQ4_0; BLOCKS], out: &mut Group8) {
    pack(out, |j| match blocks.get(j) {
        Some(b) => (block_scale(b), super::q4_0::values(b).map(|v| v.to_le_bytes()[0])),
        None => (0.0, [0; QK]),
    });
}

/// Packs eight Q5_0 blocks as their signed values `q − 16` (in `-16..=15`): a Q5_0 block's
/// term is Q4_0's (`block_term` of its scale and the exact sum), so the group kernels give
/// its reference's bits.
pub fn pack_q5_0(blocks: &[BlockQ5_0; BLOCKS], out: &mut Group8) {
    pack(out, |j| match blocks.get(j) {
        Some(b) => (block_scale(b), super::q5_0::values(b).map(|v| v.to_le_bytes()[0])),
        None => (0.0, [0; QK]),
    });
}

/// Packs eight IQ4_NL blocks as their grid values (in `-127..=113`), whose term is also
/// `block_term`'s.
pub fn pack_iq4_nl(blocks: &[BlockIq4Nl; BLOCKS], out: &mut Group8) {
    pack(out, |j| match blocks.get(j) {
        Some(b) => {
            let values = super::iq4_nl::grid_values(b.get(2..).unwrap_or(&[]));
            (block_scale(b), values.map(|v| v.to_le_bytes()[0]))
        }
        None => (0.0, [0; QK]),
    });
}

/// Packed activation groups whose value bytes are stored plus 128 (`a ⊕ 0x80`, read as `u8`):
/// the unsigned operand of `vpdpbusd` as it is, so that the VNNI tile kernels need not bias
/// every activation row at every use (see `kernels::x86::vnni`). Made only by
/// [`BiasedGroups::bias_in_place`] over groups packed by [`pack_q8_0`]; the scales are as in
/// a [`Group8`].
#[derive(Debug, Clone, Copy, Default)]
pub struct BiasedGroups<'a> {
    groups: &'a [Group8],
}

impl<'a> BiasedGroups<'a> {
    /// Biases the value bytes of `groups` (packed by [`pack_q8_0`]) in place and returns
    /// them as biased groups.
    pub fn bias_in_place(groups: &'a mut [Group8]) -> Self {
        for g in groups.iter_mut() {
            for v in g.iter_mut().skip(SCALE_BYTES) {
                *v ^= 0x80;
            }
        }
        BiasedGroups { groups }
    }

    /// Groups whose values the caller biased (with [`BiasedGroups::bias_in_place`] earlier,
    /// into a buffer it kept): the batched product's activations, biased when quantised and
    /// read back per row span.
    pub(crate) fn already_biased(groups: &'a [Group8]) -> Self {
        BiasedGroups { groups }
    }

    /// The groups, values biased.
    pub fn groups(self) -> &'a [Group8] {
        self.groups
    }

    /// The first `n` groups (all of them if there are fewer).
    #[must_use]
    pub fn take(self, n: usize) -> Self {
        BiasedGroups { groups: self.groups.get(..n).unwrap_or(self.groups) }
    }

    /// Groups `from..to` (none if out of range).
    #[must_use]
    pub fn range(self, from: usize, to: usize) -> Self {
        BiasedGroups { groups: self.groups.get(from..to).unwrap_or(&[]) }
    }

    /// How many groups.
    pub fn len(self) -> usize {
        self.groups.len()
    }

    /// True when there are none.
    pub fn is_empty(self) -> bool {
        self.groups.is_empty()
    }
}

/// [`dot`] with biased activation groups: the same sum, bit for bit, as `dot` of the groups
/// before biasing.
pub fn dot_biased(w: &[Group8], a: BiasedGroups<'_>) -> f32 {
    let mut sum = 0.0f32;
    let mut plain = [0u8; GROUP_BYTES];
    for (wg, ag) in w.iter().zip(a.groups) {
        plain.copy_from_slice(ag);
        for v in plain.iter_mut().skip(SCALE_BYTES) {
            *v ^= 0x80;
        }
        sum = dot_from(sum, core::slice::from_ref(wg), core::slice::from_ref(&plain));
    }
    sum
}

/// Block `j`'s scale.
#[inline(always)]
pub(crate) fn scale(group: &Group8, j: usize) -> f32 {
    let at = 4 * j;
    group.get(at..at + 4).and_then(|b| b.first_chunk::<4>()).map_or(0.0, |b| f32::from_le_bytes(*b))
}

/// `Σ w·a` over packed groups, in block order with the reference rounding: per block
/// `(d_w · d_a) · isum` added to the running sum. Equal, bit for bit, to
/// [`super::q8_0::dot_q8_0`] (or [`super::q4_0::dot_q8_0`]) of the blocks packed.
pub fn dot(w: &[Group8], a: &[Group8]) -> f32 {
    dot_from(0.0, w, a)
}

/// [`dot`] continuing the running sum `sum`.
fn dot_from(mut sum: f32, w: &[Group8], a: &[Group8]) -> f32 {
    for (wg, ag) in w.iter().zip(a) {
        let mut isum = [0i32; BLOCKS];
        let (wq, aq) = (wg.get(SCALE_BYTES..).unwrap_or(&[]), ag.get(SCALE_BYTES..).unwrap_or(&[]));
        for (i, (x, y)) in wq.iter().zip(aq).enumerate() {
            if let Some(s) = isum.get_mut(i / 4 % BLOCKS) {
                *s += i32::from(i8::from_le_bytes([*x])) * i32::from(i8::from_le_bytes([*y]));
            }
        }
        for (j, s) in isum.iter().enumerate() {
            #[allow(clippy::cast_precision_loss)] // |isum| <= 32 · 128 · 128 = 2^19: exact
            let s = *s as f32;
            sum += scale(wg, j) * scale(ag, j) * s;
        }
    }
    sum
}

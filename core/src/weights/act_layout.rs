//! The batched product's activation bytes: each vector quantised once into Q8_0 blocks, packed
//! into [`Group8`]s where the table has a group kernel (with their residual plane under int16
//! activations).

use crate::kernels::Kernels;
use crate::quant::group8::{self, BiasedGroups, Group8};
use crate::quant::{q8_0, QK};

/// Where one vector's quantised blocks go in a batched product's activation bytes: plain
/// Q8_0 blocks, or (for a table with a group kernel) packed [`Group8`]s followed by the last
/// `n_blocks % 8` blocks plain.
#[derive(Debug, Clone, Copy)]
pub(super) struct ActLayout {
    pub(super) n_blocks: usize,
    grouped: bool,
    /// The packed groups' values are stored biased ([`BiasedGroups`]), for a table whose
    /// group kernels take them so.
    pub(super) biased: bool,
    /// Bytes per vector.
    pub(super) bytes: usize,
}

impl ActLayout {
    pub(super) fn new(n_blocks: usize, grouped: bool) -> Self {
        let bytes = if grouped {
            n_blocks / group8::BLOCKS * group8::GROUP_BYTES
                + n_blocks % group8::BLOCKS * q8_0::BLOCK_BYTES
        } else {
            n_blocks * q8_0::BLOCK_BYTES
        };
        ActLayout { n_blocks, grouped, biased: false, bytes }
    }

    /// Quantises `x` into `out`: `self.bytes` of [`q8_0::quantize`]'s blocks, or, when
    /// `out` has room for two vectors, [`q8_0::quantize_with_residual`]'s value blocks and
    /// then its residual blocks.
    pub(super) fn quantize(&self, k: &Kernels, x: &[f32], out: &mut [u8]) {
        let (value, rest) = out.split_at_mut(self.bytes.min(out.len()));
        let residual = rest.get_mut(..self.bytes).filter(|r| !r.is_empty());
        let group_bytes = self.group_bytes();
        let (groups, tail) = value.split_at_mut(group_bytes.min(value.len()));
        // The residual plane split as the value plane is: packed groups, then plain blocks.
        let (mut r_groups, r_tail) = match residual {
            Some(r) => {
                let (g, t) = r.split_at_mut(group_bytes.min(r.len()));
                (Some(g.as_chunks_mut::<{ group8::GROUP_BYTES }>().0.iter_mut()), Some(t))
            }
            None => (None, None),
        };
        let group_values = group8::BLOCKS * QK;
        let (gx, tail_x) =
            x.split_at(x.len().min(groups.len() / group8::GROUP_BYTES * group_values));
        for (g, xs) in groups
            .as_chunks_mut::<{ group8::GROUP_BYTES }>()
            .0
            .iter_mut()
            .zip(gx.chunks(group_values))
        {
            let mut v = [[0u8; q8_0::BLOCK_BYTES]; group8::BLOCKS];
            match r_groups.as_mut().and_then(Iterator::next) {
                Some(rg) => {
                    let mut r = [[0u8; q8_0::BLOCK_BYTES]; group8::BLOCKS];
                    q8_0::quantize_with_residual(xs, &mut v, &mut r);
                    k.pack_q8_0(&r, rg);
                    if self.biased {
                        BiasedGroups::bias_in_place(core::slice::from_mut(rg));
                    }
                }
                None => k.quantize_q8_0(xs, &mut v),
            }
            k.pack_q8_0(&v, g);
            if self.biased {
                BiasedGroups::bias_in_place(core::slice::from_mut(g));
            }
        }
        match r_tail {
            Some(r_tail) => q8_0::quantize_with_residual(
                tail_x,
                tail.as_chunks_mut().0,
                r_tail.as_chunks_mut().0,
            ),
            None => k.quantize_q8_0(tail_x, tail.as_chunks_mut().0),
        }
    }

    /// Bytes of a vector's packed groups (0 in the plain layout).
    pub(super) fn group_bytes(&self) -> usize {
        if self.grouped {
            self.n_blocks / group8::BLOCKS * group8::GROUP_BYTES
        } else {
            0
        }
    }

    /// A vector's bytes as (packed groups, trailing plain blocks).
    pub(super) fn split<'b>(&self, act: &'b [u8]) -> (&'b [Group8], &'b [q8_0::BlockQ8_0]) {
        let at = self.group_bytes().min(act.len());
        let (groups, tail) = act.split_at(at);
        (groups.as_chunks().0, tail.as_chunks().0)
    }
}

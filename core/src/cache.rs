//! [`LatentCache`]: the MLA cache — per token and layer one `c_kv` latent and one rotated `k_pe`
//! row — over caller-provided memory.

use crate::config::ModelConfig;
use crate::error::{BufferKind, Error};

/// Fixed-capacity latent cache over a borrowed `&mut [f32]`.
///
/// Layout: `[layer][slot][kv_lora_rank + qk_rope_head_dim]`, each row holding `c_kv` (after
/// `attn_kv_a_norm`) followed by `k_pe` already rotated for its absolute position. Slot `i`
/// holds position `i`; [`LatentCache::len`] positions are filled. Pushing past `capacity`
/// fails with [`Error::CacheFull`] and changes nothing.
#[derive(Debug)]
pub struct LatentCache<'m> {
    mem: &'m mut [f32],
    n_layers: usize,
    row_elems: usize,
    capacity: usize,
    len: usize,
}

impl<'m> LatentCache<'m> {
    /// `f32` elements needed for `capacity` positions of `config`'s model.
    ///
    /// # Errors
    /// [`Error::SizeOverflow`] if the product overflows `usize`.
    pub fn elems_needed(config: &ModelConfig, capacity: usize) -> Result<usize, Error> {
        config
            .cache_row_elems()
            .checked_mul(config.num_hidden_layers)
            .and_then(|n| n.checked_mul(capacity))
            .ok_or(Error::SizeOverflow)
    }

    /// Bytes needed for `capacity` positions of `config`'s model.
    ///
    /// # Errors
    /// [`Error::SizeOverflow`] if the product overflows `usize`.
    pub fn bytes_needed(config: &ModelConfig, capacity: usize) -> Result<usize, Error> {
        Self::elems_needed(config, capacity)?
            .checked_mul(core::mem::size_of::<f32>())
            .ok_or(Error::SizeOverflow)
    }

    /// An empty cache of `capacity` positions over `mem` (extra elements are left unused).
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] if `mem` holds fewer than [`Self::elems_needed`] elements.
    pub fn new(config: &ModelConfig, capacity: usize, mem: &'m mut [f32]) -> Result<Self, Error> {
        let needed = Self::elems_needed(config, capacity)?;
        if mem.len() < needed {
            return Err(Error::BufferTooSmall {
                buffer: BufferKind::Cache,
                needed,
                given: mem.len(),
            });
        }
        Ok(LatentCache {
            mem,
            n_layers: config.num_hidden_layers,
            row_elems: config.cache_row_elems(),
            capacity,
            len: 0,
        })
    }

    /// Positions filled (= the position the next token will take).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no position is filled.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Positions the cache can hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// True when the next push would fail.
    pub fn is_full(&self) -> bool {
        self.len >= self.capacity
    }

    /// Forgets every position (the memory is reused as is).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Row width in elements (`kv_lora_rank + qk_rope_head_dim`).
    pub fn row_elems(&self) -> usize {
        self.row_elems
    }

    /// True when this cache was built for `config`'s shape.
    pub(crate) fn fits(&self, config: &ModelConfig) -> bool {
        self.n_layers == config.num_hidden_layers && self.row_elems == config.cache_row_elems()
    }

    /// All rows of `layer`, `[capacity][row_elems]`.
    fn layer_mut(&mut self, layer: usize) -> &mut [f32] {
        // `n_layers * capacity * row_elems` was checked not to overflow in `new`.
        let per_layer = self.capacity.saturating_mul(self.row_elems);
        let start = layer.saturating_mul(per_layer);
        self.mem.get_mut(start..start.saturating_add(per_layer)).unwrap_or(&mut [])
    }

    /// Writes `row` into slot `self.len()` of `layer` and returns the filled rows of that layer
    /// including the new one, `[len + 1][row_elems]`. The caller commits with [`Self::advance`]
    /// after every layer has been written.
    pub(crate) fn write_and_view(&mut self, layer: usize, row: &[f32]) -> &[f32] {
        let (len, width) = (self.len, self.row_elems);
        let rows = self.layer_mut(layer);
        if let Some(slot) = rows.get_mut(len * width..(len + 1) * width) {
            for (dst, src) in slot.iter_mut().zip(row) {
                *dst = *src;
            }
        }
        rows.get(..(len + 1) * width).unwrap_or(&[])
    }

    /// Commits one position after every layer's row was written.
    pub(crate) fn advance(&mut self) {
        self.len += 1;
    }
}

//! [`LatentCache`]: the MLA cache — per token and layer one `c_kv` latent and one rotated `k_pe`
//! — in a fixed number of slots over caller-provided bytes, with a run-time storage type, an
//! overflow policy, and snapshot/restore.

mod policy;
pub(crate) mod row;
mod snapshot;

pub use policy::{CacheOptions, OverflowPolicy};
pub use row::{CacheStorage, Q8_BLOCK_BYTES, Q8_BLOCK_ELEMS};
pub use snapshot::{SnapshotError, SNAPSHOT_HEADER_BYTES};

use crate::config::ModelConfig;
use crate::error::{BufferKind, Error};
use crate::rope::RopeParams;
pub(crate) use row::RowFormat;

/// Fixed-capacity latent cache over a borrowed `&mut [u8]`.
///
/// Memory layout: `capacity` little-endian `u32` absolute positions (one per slot), then for
/// each layer `capacity` rows of [`LatentCache::row_bytes`] bytes, each `c_kv` (after
/// `attn_kv_a_norm`) followed by `k_pe` already rotated for the slot's position.
///
/// Slots fill in order `0, 1, …`. When all `capacity` slots are filled, the next token either
/// fails with [`Error::CacheFull`] (nothing changes), or, under [`OverflowPolicy::Slide`],
/// overwrites the slot of the oldest non-sink token, or, under [`OverflowPolicy::Shift`],
/// first frees `discard` slots by a context shift. Attention always runs over every filled
/// slot; slot order does not matter to it.
#[derive(Debug)]
pub struct LatentCache<'m> {
    mem: &'m mut [u8],
    format: RowFormat,
    options: CacheOptions,
    n_layers: usize,
    capacity: usize,
    /// Filled slots (`<= capacity`).
    len: usize,
    /// Position of the next token (tokens accepted, less those dropped by shifts).
    next_pos: u64,
    /// Under `Slide`, the ring index (`0..capacity - sinks`) of the next slot to overwrite.
    ring_next: usize,
    /// The slot the token in flight writes, set by `begin`.
    pending_slot: usize,
    /// The model's rotary frequencies, for re-rotating keys in a shift.
    rope: RopeParams,
    /// Context shifts so far (not part of snapshots).
    shifts: u64,
}

impl<'m> LatentCache<'m> {
    /// Bytes needed for `capacity` positions of `config`'s model stored as `storage`.
    ///
    /// # Errors
    /// [`Error::SizeOverflow`] if the size does not fit in `usize`.
    pub fn bytes_needed(
        config: &ModelConfig,
        capacity: usize,
        storage: CacheStorage,
    ) -> Result<usize, Error> {
        let row = row_format(config, storage).row_bytes().ok_or(Error::SizeOverflow)?;
        row.checked_mul(config.num_hidden_layers)
            .and_then(|n| n.checked_add(4))
            .and_then(|n| n.checked_mul(capacity))
            .ok_or(Error::SizeOverflow)
    }

    /// Bytes of cache per token and layer (one row) for `config` stored as `storage`.
    pub fn row_bytes_for(config: &ModelConfig, storage: CacheStorage) -> usize {
        row_format(config, storage).row_bytes().unwrap_or(usize::MAX)
    }

    /// An empty cache of `capacity` positions over `mem` (extra bytes are left unused).
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] if `mem` is shorter than [`Self::bytes_needed`];
    /// [`Error::InvalidCacheOptions`] if `capacity` is 0, larger than `u32::MAX`, a slide
    /// policy keeps `sinks >= capacity`, or a shift policy has `discard == 0` or
    /// `sinks + discard > capacity`.
    pub fn new(
        config: &ModelConfig,
        capacity: usize,
        options: CacheOptions,
        mem: &'m mut [u8],
    ) -> Result<Self, Error> {
        if capacity == 0 || u32::try_from(capacity).is_err() {
            return Err(Error::InvalidCacheOptions);
        }
        let valid = match options.policy {
            OverflowPolicy::Error => true,
            OverflowPolicy::Slide { sinks } => usize::try_from(sinks).is_ok_and(|s| s < capacity),
            OverflowPolicy::Shift { sinks, discard } => {
                let kept = u64::from(sinks) + u64::from(discard);
                discard > 0 && kept <= capacity as u64
            }
        };
        if !valid {
            return Err(Error::InvalidCacheOptions);
        }
        let needed = Self::bytes_needed(config, capacity, options.storage)?;
        if mem.len() < needed {
            return Err(Error::BufferTooSmall {
                buffer: BufferKind::Cache,
                needed,
                given: mem.len(),
            });
        }
        Ok(LatentCache {
            mem,
            format: row_format(config, options.storage),
            options,
            n_layers: config.num_hidden_layers,
            capacity,
            len: 0,
            next_pos: 0,
            ring_next: 0,
            pending_slot: 0,
            rope: RopeParams::of(config),
            shifts: 0,
        })
    }

    /// Filled slots.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no slot is filled.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Slots the cache holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// True when every slot is filled (the next token evicts or fails, per the policy).
    pub fn is_full(&self) -> bool {
        self.len >= self.capacity
    }

    /// Position the next token will take: the tokens accepted so far, less those a context
    /// shift dropped ([`OverflowPolicy::Shift`] keeps it below `capacity`).
    pub fn position(&self) -> u64 {
        self.next_pos
    }

    /// Context shifts done since the cache was made or cleared.
    pub fn shifts(&self) -> u64 {
        self.shifts
    }

    /// The options this cache was built with.
    pub fn options(&self) -> &CacheOptions {
        &self.options
    }

    /// Bytes of one stored row (one token in one layer).
    pub fn row_bytes(&self) -> usize {
        self.format.row_bytes().unwrap_or(0)
    }

    /// Absolute position held in `slot`, if that slot is filled.
    pub fn slot_position(&self, slot: usize) -> Option<u64> {
        (slot < self.len).then(|| u64::from(self.read_pos(slot)))
    }

    /// Forgets every token (the memory is reused as is).
    pub fn clear(&mut self) {
        self.len = 0;
        self.next_pos = 0;
        self.ring_next = 0;
        self.shifts = 0;
    }

    /// Keeps only the first `len` tokens, so that a sequence sharing them (a prompt with the
    /// same prefix) goes on from there without recomputing them. Only a cache that never
    /// evicted or shifted (every slot holds its own position) can be cut; otherwise, or if
    /// `len` is more than it holds, this returns false and changes nothing.
    pub fn truncate(&mut self, len: usize) -> bool {
        let in_order = self.next_pos == self.len as u64 && self.shifts == 0;
        if !in_order || len > self.len {
            return false;
        }
        self.len = len;
        self.next_pos = len as u64;
        self.ring_next = 0;
        true
    }

    /// Decodes the row of `layer` in `slot` into `out` (`kv_lora_rank + qk_rope_head_dim`
    /// values). Returns false if the slot is not filled or the layer does not exist.
    pub fn read_row(&self, layer: usize, slot: usize, out: &mut [f32]) -> bool {
        if slot >= self.len || layer >= self.n_layers {
            return false;
        }
        self.format.decode(self.row(layer, slot), out);
        true
    }

    /// Appends one token whose rows were computed elsewhere (for example by a batched prefill,
    /// or to import a latent cache): `rows` is `[num_hidden_layers][kv_lora_rank +
    /// qk_rope_head_dim]`, each row `c_kv` after `attn_kv_a_norm` then `k_pe` rotated for the
    /// token's position, which is [`Self::position`] as read before the call. Follows the
    /// overflow policy and context guard exactly like [`crate::Model::forward`]: if the push
    /// starts with a context shift, the token's `k_pe` is re-rotated to its shifted position.
    ///
    /// # Errors
    /// [`Error::CacheMismatch`] if `rows` has the wrong length; otherwise as `forward`'s cache
    /// errors.
    pub fn push_rows(&mut self, rows: &[f32], context_length: usize) -> Result<(), Error> {
        let width = self.format.kv_lora + self.format.rope;
        if rows.len() != width.saturating_mul(self.n_layers) {
            return Err(Error::CacheMismatch);
        }
        let computed_for = self.next_pos;
        let pos = self.begin(context_length)?;
        for (layer, row) in rows.chunks_exact(width.max(1)).enumerate() {
            self.write(layer, row);
        }
        if pos != computed_for {
            let slot = self.pending_slot;
            self.rotate_slots(slot..slot + 1, |_, _| (computed_for, pos));
        }
        self.commit();
        Ok(())
    }

    /// Replaces this cache's contents with `src`'s, re-encoding every row into this cache's
    /// storage (e.g. keep a long system prompt computed at f32 in int8). `tmp` holds one
    /// decoded row (`kv_lora_rank + qk_rope_head_dim` values).
    ///
    /// # Errors
    /// [`Error::CacheMismatch`] if the row shapes or layer counts differ, or if `src` has
    /// wrapped around and the capacities or policies differ; [`Error::CacheFull`] if `src`
    /// holds more slots than this cache; [`Error::BufferTooSmall`] if `tmp` is too short.
    pub fn copy_from(&mut self, src: &LatentCache<'_>, tmp: &mut [f32]) -> Result<(), Error> {
        let same_shape = self.n_layers == src.n_layers
            && (self.format.kv_lora, self.format.rope) == (src.format.kv_lora, src.format.rope);
        let has_wrapped = src.next_pos > src.len as u64;
        let same_ring = self.capacity == src.capacity && self.options.policy == src.options.policy;
        if !same_shape || (has_wrapped && !same_ring) {
            return Err(Error::CacheMismatch);
        }
        if src.len > self.capacity {
            return Err(Error::CacheFull {
                capacity: u32::try_from(self.capacity).unwrap_or(u32::MAX),
            });
        }
        let width = self.format.kv_lora + self.format.rope;
        let given = tmp.len();
        let tmp = tmp.get_mut(..width).ok_or(Error::BufferTooSmall {
            buffer: BufferKind::Scratch,
            needed: width,
            given,
        })?;
        for slot in 0..src.len {
            self.write_pos(slot, src.read_pos(slot));
            for layer in 0..self.n_layers {
                src.format.decode(src.row(layer, slot), tmp);
                let format = self.format;
                if let Some(dst) = self.row_range(layer, slot).and_then(|r| self.mem.get_mut(r)) {
                    format.encode(tmp, dst);
                }
            }
        }
        self.len = src.len;
        self.next_pos = src.next_pos;
        self.ring_next = src.ring_next;
        Ok(())
    }

    /// True when this cache was built for `config`'s shape.
    pub(crate) fn fits(&self, config: &ModelConfig) -> bool {
        self.n_layers == config.num_hidden_layers
            && self.format == row_format(config, self.options.storage)
    }

    /// Picks the slot for the next token and checks the position, before anything is written
    /// (a full cache under [`OverflowPolicy::Shift`] shifts first). Returns the position of
    /// the token.
    ///
    /// # Errors
    /// [`Error::CacheFull`] (full under [`OverflowPolicy::Error`]),
    /// [`Error::PositionBeyondContext`]; on error nothing changed.
    pub(crate) fn begin(&mut self, context_length: usize) -> Result<u64, Error> {
        if let (true, OverflowPolicy::Shift { sinks, discard }) =
            (self.is_full(), self.options.policy)
        {
            let after = self.capacity.saturating_sub(usize::try_from(discard).unwrap_or(0));
            self.check_position(after as u64, context_length)?;
            self.shift(usize::try_from(sinks).unwrap_or(0), usize::try_from(discard).unwrap_or(0));
        }
        let pos = self.next_pos;
        self.check_position(pos, context_length)?;
        self.pending_slot = if self.len < self.capacity {
            self.len
        } else {
            match self.options.policy {
                OverflowPolicy::Error => {
                    return Err(Error::CacheFull {
                        capacity: u32::try_from(self.capacity).unwrap_or(u32::MAX),
                    })
                }
                OverflowPolicy::Slide { sinks } => {
                    usize::try_from(sinks).unwrap_or(0).saturating_add(self.ring_next)
                }
                // `shift` above freed slots; not reached.
                OverflowPolicy::Shift { .. } => self.len.min(self.capacity - 1),
            }
        };
        Ok(pos)
    }

    /// Writes this token's row (`[c_kv | k_pe]`, f32) for `layer` into the pending slot.
    pub(crate) fn write(&mut self, layer: usize, row: &[f32]) {
        let slot = self.pending_slot;
        let format = self.format;
        if let Some(dst) = self.row_range(layer, slot).and_then(|r| self.mem.get_mut(r)) {
            format.encode(row, dst);
        }
    }

    /// The filled rows of `layer` including the pending one, as `(slot count, bytes)`;
    /// rows are `row_bytes` each, in slot order.
    pub(crate) fn rows(&self, layer: usize) -> &[u8] {
        let filled = (self.len + usize::from(self.len < self.capacity)).min(self.capacity);
        let start = self.row_range(layer, 0).map_or(0, |r| r.start);
        let end = start.saturating_add(filled.saturating_mul(self.row_bytes()));
        self.mem.get(start..end).unwrap_or(&[])
    }

    /// The stored-row codec.
    pub(crate) fn format(&self) -> &RowFormat {
        &self.format
    }

    /// Slots still free before the cache is full (a batch of at most this many tokens evicts
    /// nothing).
    pub(crate) fn free_slots(&self) -> usize {
        self.capacity - self.len
    }

    /// Checks that `n` more tokens can be accepted one after another, before anything is
    /// written: every position inside the context (unless allowed beyond it) and, under
    /// [`OverflowPolicy::Error`], room for all `n`.
    ///
    /// # Errors
    /// As [`LatentCache::begin`] would return for the first token that fails.
    pub(crate) fn check_room(&self, n: usize, context_length: usize) -> Result<(), Error> {
        let free = self.free_slots();
        if let (OverflowPolicy::Shift { .. }, true) = (self.options.policy, n > free) {
            // Positions climb to `capacity - 1`, shift down, and climb there again.
            return self.check_position(self.capacity as u64 - 1, context_length);
        }
        if matches!(self.options.policy, OverflowPolicy::Error) && n > free {
            // Token-by-token, the first `free` tokens would pass the position check first.
            self.check_position(self.next_pos.saturating_add(free as u64), context_length)?;
            return Err(Error::CacheFull {
                capacity: u32::try_from(self.capacity).unwrap_or(u32::MAX),
            });
        }
        match n.checked_sub(1) {
            Some(last) => {
                self.check_position(self.next_pos.saturating_add(last as u64), context_length)
            }
            None => Ok(()),
        }
    }

    /// The position rule: every position in `self.next_pos..=pos` is inside the trained
    /// context (unless the cache allows beyond it) and fits `u32`. Positions only fail from
    /// some point on, so the error names the first that does.
    fn check_position(&self, pos: u64, context_length: usize) -> Result<(), Error> {
        let ctx = u64::try_from(context_length).unwrap_or(u64::MAX);
        let first_bad = if self.options.allow_beyond_context {
            u64::from(u32::MAX) + 1
        } else {
            ctx.min(u64::from(u32::MAX) + 1)
        };
        if pos < first_bad {
            return Ok(());
        }
        Err(Error::PositionBeyondContext { pos: first_bad.max(self.next_pos), context_length: ctx })
    }

    /// Writes the row (`[c_kv | k_pe]`, f32) of the batch's `i`-th token for `layer`: slot
    /// `len + i`. The caller made sure with [`LatentCache::free_slots`] that the slot is free.
    pub(crate) fn write_batch_row(&mut self, layer: usize, i: usize, row: &[f32]) {
        let slot = self.len.saturating_add(i);
        let format = self.format;
        if let Some(dst) = self.row_range(layer, slot).and_then(|r| self.mem.get_mut(r)) {
            format.encode(row, dst);
        }
    }

    /// The rows of `layer` that the batch's `i`-th token attends over: the filled slots and the
    /// batch's rows `0..=i`, in slot order (as [`LatentCache::rows`] shows them to a token
    /// run on its own).
    pub(crate) fn batch_rows(&self, layer: usize, i: usize) -> &[u8] {
        let visible = self.len.saturating_add(i).saturating_add(1).min(self.capacity);
        let start = self.row_range(layer, 0).map_or(0, |r| r.start);
        let end = start.saturating_add(visible.saturating_mul(self.row_bytes()));
        self.mem.get(start..end).unwrap_or(&[])
    }

    /// Commits a batch of `n` tokens whose rows were written with
    /// [`LatentCache::write_batch_row`] (`n <= free_slots()`).
    pub(crate) fn commit_batch(&mut self, n: usize) {
        for _ in 0..n.min(self.free_slots()) {
            self.pending_slot = self.len;
            self.commit();
        }
    }

    /// Commits the token in flight after every layer's row was written.
    pub(crate) fn commit(&mut self) {
        let slot = self.pending_slot;
        let pos = u32::try_from(self.next_pos).unwrap_or(u32::MAX);
        self.write_pos(slot, pos);
        if self.len < self.capacity {
            self.len += 1;
        } else if let OverflowPolicy::Slide { sinks } = self.options.policy {
            let ring = self.capacity.saturating_sub(usize::try_from(sinks).unwrap_or(0)).max(1);
            self.ring_next = (self.ring_next + 1) % ring;
        }
        self.next_pos += 1;
    }

    fn row(&self, layer: usize, slot: usize) -> &[u8] {
        self.row_range(layer, slot).and_then(|r| self.mem.get(r)).unwrap_or(&[])
    }

    /// Byte range of `(layer, slot)`'s row. The total was checked not to overflow in `new`.
    fn row_range(&self, layer: usize, slot: usize) -> Option<core::ops::Range<usize>> {
        let rb = self.row_bytes();
        let start = self
            .capacity
            .checked_mul(4)?
            .checked_add(layer.checked_mul(self.capacity)?.checked_add(slot)?.checked_mul(rb)?)?;
        Some(start..start.checked_add(rb)?)
    }

    fn read_pos(&self, slot: usize) -> u32 {
        let at = slot.saturating_mul(4);
        self.mem
            .get(at..at.saturating_add(4))
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map_or(0, u32::from_le_bytes)
    }

    fn write_pos(&mut self, slot: usize, pos: u32) {
        let at = slot.saturating_mul(4);
        if let Some(dst) = self.mem.get_mut(at..).and_then(|m| m.first_chunk_mut::<4>()) {
            *dst = pos.to_le_bytes();
        }
    }
}

fn row_format(config: &ModelConfig, storage: CacheStorage) -> RowFormat {
    RowFormat { storage, kv_lora: config.kv_lora_rank, rope: config.qk_rope_head_dim }
}

/// A latent cache's memory owned inline, for firmware that keeps it in a `static`: size
/// `BYTES` from [`LatentCache::bytes_needed`] for the board's model and context.
#[derive(Debug)]
pub struct CacheArena<const BYTES: usize> {
    mem: [u8; BYTES],
}

impl<const BYTES: usize> CacheArena<BYTES> {
    /// A zeroed arena (usable in a `static` initialiser).
    pub const fn new() -> Self {
        CacheArena { mem: [0; BYTES] }
    }

    /// An empty cache over this arena.
    ///
    /// # Errors
    /// As [`LatentCache::new`]: notably [`Error::BufferTooSmall`] if `BYTES` is too small.
    pub fn cache(
        &mut self,
        config: &ModelConfig,
        capacity: usize,
        options: CacheOptions,
    ) -> Result<LatentCache<'_>, Error> {
        LatentCache::new(config, capacity, options, &mut self.mem)
    }
}

impl<const BYTES: usize> Default for CacheArena<BYTES> {
    fn default() -> Self {
        Self::new()
    }
}

//! What a full cache does: the [`OverflowPolicy`] in its [`CacheOptions`], and the context
//! shift of [`OverflowPolicy::Shift`] (rows moved down, their `k_pe` re-rotated).

use super::row::ROPE_PAIRS_PER_CALL;
use super::{CacheStorage, LatentCache};
use crate::rope;

/// What a full cache does with the next token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum OverflowPolicy {
    /// Refuse with [`Error::CacheFull`](crate::Error::CacheFull) (the default).
    #[default]
    Error,
    /// Keep the first `sinks` tokens forever (attention sinks) and overwrite the oldest of the
    /// others, one per token. Positions keep counting: every cached `k_pe` keeps the rotation
    /// of its own absolute position, so no row is ever re-rotated or re-quantised, but the
    /// trained-context guard still stops the cache at `context_length` tokens. For a cache
    /// smaller than the trained context (a board's RAM) that needs exact positions up to
    /// there. `sinks < capacity`.
    Slide {
        /// Tokens at the start that are never evicted.
        sinks: u32,
    },
    /// Context shift (StreamingLLM-style positions): keep the first `sinks` tokens forever;
    /// when the cache is full, drop the `discard` oldest of the others, move the rest down to
    /// follow the sinks, and re-rotate their `k_pe` to their new positions (the latent `c_kv`
    /// carries no position, so it only moves). Slot `i` always holds position `i`: positions
    /// never reach `capacity`, so a conversation runs forever inside the trained context.
    /// A row is re-rotated (and, in int8 or f16 storage, re-rounded) once per shift it
    /// survives; with `discard` half of the non-sink slots, at most once.
    /// `discard >= 1` and `sinks + discard <= capacity`.
    Shift {
        /// Tokens at the start that are never evicted.
        sinks: u32,
        /// Tokens dropped by one shift.
        discard: u32,
    },
}

impl OverflowPolicy {
    /// A context shift that keeps `sinks` tokens and drops half of the others (at least one)
    /// per shift, as llama.cpp's context shift does: each row is re-rotated at most once.
    /// `None` if `sinks >= capacity`.
    pub fn shift_half(capacity: usize, sinks: u32) -> Option<Self> {
        let window = capacity.checked_sub(usize::try_from(sinks).ok()?).filter(|w| *w > 0)?;
        let discard = u32::try_from((window / 2).max(1)).ok()?;
        Some(OverflowPolicy::Shift { sinks, discard })
    }
}

/// How a cache stores rows and what it does when full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CacheOptions {
    /// Row storage.
    pub storage: CacheStorage,
    /// Overflow policy.
    pub policy: OverflowPolicy,
    /// Allow positions at or past the model's trained context (`context_length`). Off by
    /// default: RoPE (even with YaRN) is only trained up to there.
    pub allow_beyond_context: bool,
}

impl LatentCache<'_> {
    /// The context shift of [`OverflowPolicy::Shift`] on a full cache: drops slots
    /// `sinks .. sinks + discard`, moves the later rows down to follow the sinks, and
    /// re-rotates each moved row's `k_pe` from its old position to its new one (its slot).
    /// Afterwards `len == position() == capacity - discard`.
    pub(super) fn shift(&mut self, sinks: usize, discard: usize) {
        let first_kept = sinks.saturating_add(discard).min(self.capacity);
        let moved = self.capacity - first_kept;
        let rb = self.row_bytes();
        for layer in 0..self.n_layers {
            let base = self.row_range(layer, 0).map_or(0, |r| r.start);
            let src = base + first_kept * rb..base + self.capacity * rb;
            if src.end <= self.mem.len() {
                self.mem.copy_within(src, base + sinks * rb);
            }
        }
        // Every moved row's old position is still stored at `slot + discard` until the loop
        // below rewrites the positions.
        self.rotate_slots(sinks..sinks + moved, |cache, slot| {
            (u64::from(cache.read_pos(slot + discard)), slot as u64)
        });
        for slot in sinks..sinks + moved {
            self.write_pos(slot, u32::try_from(slot).unwrap_or(u32::MAX));
        }
        self.len = sinks + moved;
        self.next_pos = self.len as u64;
        self.ring_next = 0;
        self.shifts += 1;
    }

    /// Re-rotates the `k_pe` of every layer's row in each of `slots` from position `from` to
    /// `to`, `(from, to) = positions(self, slot)` (read before any row is touched). The
    /// frequencies are computed once per call, not per slot.
    pub(super) fn rotate_slots(
        &mut self,
        slots: core::ops::Range<usize>,
        positions: impl Fn(&Self, usize) -> (u64, u64),
    ) {
        let pairs = self.format.rope / 2;
        let format = self.format;
        for first in (0..pairs).step_by(ROPE_PAIRS_PER_CALL) {
            let n = (pairs - first).min(ROPE_PAIRS_PER_CALL);
            let mut inv_freqs = [0.0f32; ROPE_PAIRS_PER_CALL];
            for (i, f) in inv_freqs.iter_mut().take(n).enumerate() {
                *f = self.rope.inv_freq(first + i);
            }
            for slot in slots.clone() {
                let (from, to) = positions(self, slot);
                let mut rotations = [[0.0f32; 2]; ROPE_PAIRS_PER_CALL];
                for (r, f) in rotations.iter_mut().zip(&inv_freqs).take(n) {
                    *r = rope::shift_rotation(*f, from, to);
                }
                for layer in 0..self.n_layers {
                    let Some(row) = self.row_range(layer, slot).and_then(|r| self.mem.get_mut(r))
                    else {
                        continue;
                    };
                    format.rotate_rope(row, first, rotations.get(..n).unwrap_or(&[]));
                }
            }
        }
    }
}

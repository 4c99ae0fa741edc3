//! Snapshot / restore of a [`LatentCache`]: a product can persist the state after a system
//! prompt and resume from it later, on the same model and cache configuration only.
//!
//! Format (little-endian), [`SNAPSHOT_HEADER_BYTES`] of header, the payload, then a checksum:
//!
//! | offset | field |
//! |---|---|
//! | 0 | magic `TMLC` |
//! | 4 | format version `u32` = 1 |
//! | 8 | model fingerprint `u64` ([`crate::Model::fingerprint`]) |
//! | 16 | storage id `u8`, policy kind `u8` (0 error, 1 slide, 2 shift), 2 bytes zero |
//! | 20 | sinks `u32` (a shift's `discard` is not stored: it only decides future shifts) |
//! | 24 | capacity `u32` |
//! | 28 | layers `u32` |
//! | 32 | kv_lora_rank `u32` |
//! | 36 | qk_rope_head_dim `u32` |
//! | 40 | filled slots `len` `u32` |
//! | 44 | ring index `u32` |
//! | 48 | next position `u64` |
//! | 56 | payload bytes `u64` |
//! | 64 | payload: `len` positions (`u32`), then per layer `len` stored rows |
//! | end − 8 | FNV-1a 64 of everything before it |

use super::{CacheStorage, LatentCache, OverflowPolicy};
use crate::error::Error;
pub use crate::error::SnapshotError;
use crate::fnv::Fnv1a64;

/// Bytes before the payload.
pub const SNAPSHOT_HEADER_BYTES: usize = 64;
const MAGIC: [u8; 4] = *b"TMLC";
const VERSION: u32 = 1;

/// The header fields, as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    fingerprint: u64,
    storage: u8,
    policy: u8,
    sinks: u32,
    capacity: u32,
    layers: u32,
    kv_lora: u32,
    rope: u32,
    len: u32,
    ring_next: u32,
    next_pos: u64,
    payload: u64,
}

fn policy_fields(p: OverflowPolicy) -> (u8, u32) {
    match p {
        OverflowPolicy::Error => (0, 0),
        OverflowPolicy::Slide { sinks } => (1, sinks),
        OverflowPolicy::Shift { sinks, .. } => (2, sinks),
    }
}

impl Header {
    fn encode(&self, out: &mut [u8; SNAPSHOT_HEADER_BYTES]) {
        let mut w = Writer { out, at: 0 };
        w.put(&MAGIC);
        w.put(&VERSION.to_le_bytes());
        w.put(&self.fingerprint.to_le_bytes());
        w.put(&[self.storage, self.policy, 0, 0]);
        for v in [
            self.sinks,
            self.capacity,
            self.layers,
            self.kv_lora,
            self.rope,
            self.len,
            self.ring_next,
        ] {
            w.put(&v.to_le_bytes());
        }
        w.put(&self.next_pos.to_le_bytes());
        w.put(&self.payload.to_le_bytes());
    }

    fn decode(b: &[u8; SNAPSHOT_HEADER_BYTES]) -> Result<Self, SnapshotError> {
        let u32_at = |i: usize| {
            b.get(i..i + 4).and_then(|s| <[u8; 4]>::try_from(s).ok()).map_or(0, u32::from_le_bytes)
        };
        let u64_at = |i: usize| {
            b.get(i..i + 8).and_then(|s| <[u8; 8]>::try_from(s).ok()).map_or(0, u64::from_le_bytes)
        };
        if b.get(..4) != Some(&MAGIC[..]) {
            return Err(SnapshotError::BadMagic);
        }
        let version = u32_at(4);
        if version != VERSION {
            return Err(SnapshotError::UnsupportedVersion(version));
        }
        Ok(Header {
            fingerprint: u64_at(8),
            storage: b.get(16).copied().unwrap_or(0xff),
            policy: b.get(17).copied().unwrap_or(0xff),
            sinks: u32_at(20),
            capacity: u32_at(24),
            layers: u32_at(28),
            kv_lora: u32_at(32),
            rope: u32_at(36),
            len: u32_at(40),
            ring_next: u32_at(44),
            next_pos: u64_at(48),
            payload: u64_at(56),
        })
    }
}

struct Writer<'o> {
    out: &'o mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        if let Some(dst) = self.out.get_mut(self.at..).and_then(|o| o.get_mut(..bytes.len())) {
            dst.copy_from_slice(bytes);
        }
        self.at = self.at.saturating_add(bytes.len());
    }
}

impl LatentCache<'_> {
    fn header(&self, fingerprint: u64) -> Header {
        let (policy, sinks) = policy_fields(self.options.policy);
        let to_u32 = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        Header {
            fingerprint,
            storage: self.options.storage.id(),
            policy,
            sinks,
            capacity: to_u32(self.capacity),
            layers: to_u32(self.n_layers),
            kv_lora: to_u32(self.format.kv_lora),
            rope: to_u32(self.format.rope),
            len: to_u32(self.len),
            ring_next: to_u32(self.ring_next),
            next_pos: self.next_pos,
            payload: self.payload_len() as u64,
        }
    }

    /// Payload bytes: positions and rows of the filled slots.
    fn payload_len(&self) -> usize {
        self.row_bytes().saturating_mul(self.n_layers).saturating_add(4).saturating_mul(self.len)
    }

    /// Bytes [`Self::snapshot`] writes for the current contents.
    pub fn snapshot_len(&self) -> usize {
        SNAPSHOT_HEADER_BYTES + self.payload_len() + 8
    }

    /// Writes the cache contents and counters to `out`, tagged with the model's
    /// `fingerprint`; returns the bytes written ([`Self::snapshot_len`]).
    ///
    /// # Errors
    /// [`SnapshotError::Truncated`] if `out` is too short.
    pub fn snapshot(&self, fingerprint: u64, out: &mut [u8]) -> Result<usize, Error> {
        let total = self.snapshot_len();
        let given = out.len();
        let out = out
            .get_mut(..total)
            .ok_or(SnapshotError::Truncated { needed: total as u64, given: given as u64 })?;
        let (head, rest) = out.split_at_mut(SNAPSHOT_HEADER_BYTES.min(total));
        if let Ok(head) = <&mut [u8; SNAPSHOT_HEADER_BYTES]>::try_from(head) {
            self.header(fingerprint).encode(head);
        }
        let mut w = Writer { out: rest, at: 0 };
        let positions = self.len.saturating_mul(4);
        w.put(self.mem.get(..positions).unwrap_or(&[]));
        let row = self.row_bytes();
        for layer in 0..self.n_layers {
            let start = self.row_range(layer, 0).map_or(0, |r| r.start);
            let end = start.saturating_add(self.len.saturating_mul(row));
            w.put(self.mem.get(start..end).unwrap_or(&[]));
        }
        let body = total.saturating_sub(8);
        let sum = Fnv1a64::new().write(out.get(..body).unwrap_or(&[])).finish();
        if let Some(dst) = out.get_mut(body..) {
            dst.copy_from_slice(&sum.to_le_bytes());
        }
        Ok(total)
    }

    /// Replaces the cache contents with a snapshot taken from a cache of the same
    /// configuration on the model with `fingerprint`. On error the cache is unchanged.
    ///
    /// # Errors
    /// A [`SnapshotError`]: truncated, bad magic or version, checksum mismatch, another model,
    /// another cache configuration, or an inconsistent header.
    pub fn restore(&mut self, fingerprint: u64, bytes: &[u8]) -> Result<(), Error> {
        let head: &[u8; SNAPSHOT_HEADER_BYTES] = bytes
            .get(..SNAPSHOT_HEADER_BYTES)
            .and_then(|h| h.try_into().ok())
            .ok_or(SnapshotError::Truncated {
                needed: SNAPSHOT_HEADER_BYTES as u64,
                given: bytes.len() as u64,
            })?;
        let h = Header::decode(head)?;
        let total = usize::try_from(h.payload)
            .ok()
            .and_then(|p| p.checked_add(SNAPSHOT_HEADER_BYTES + 8))
            .ok_or(SnapshotError::Corrupt)?;
        if bytes.len() < total {
            return Err(SnapshotError::Truncated {
                needed: total as u64,
                given: bytes.len() as u64,
            }
            .into());
        }
        let (body, sum) = bytes.split_at(total - 8);
        let stored = sum.get(..8).and_then(|s| <[u8; 8]>::try_from(s).ok()).map(u64::from_le_bytes);
        if stored != Some(Fnv1a64::new().write(body).finish()) {
            return Err(SnapshotError::ChecksumMismatch.into());
        }
        if h.fingerprint != fingerprint {
            return Err(SnapshotError::ModelMismatch.into());
        }
        let mine = self.header(fingerprint);
        let same_config = (h.storage, h.policy, h.sinks, h.capacity, h.layers, h.kv_lora, h.rope)
            == (
                mine.storage,
                mine.policy,
                mine.sinks,
                mine.capacity,
                mine.layers,
                mine.kv_lora,
                mine.rope,
            );
        if !same_config || CacheStorage::from_id(h.storage).is_none() {
            return Err(SnapshotError::ConfigMismatch.into());
        }
        let len = usize::try_from(h.len).map_err(|_| SnapshotError::Corrupt)?;
        let ring_next = usize::try_from(h.ring_next).map_err(|_| SnapshotError::Corrupt)?;
        let ring = self.capacity.saturating_sub(usize::try_from(h.sinks).unwrap_or(usize::MAX));
        let expected_payload =
            self.row_bytes().saturating_mul(self.n_layers).saturating_add(4).saturating_mul(len);
        if len > self.capacity
            || (ring_next > 0 && ring_next >= ring)
            || h.next_pos < h.len as u64
            || usize::try_from(h.payload).ok() != Some(expected_payload)
        {
            return Err(SnapshotError::Corrupt.into());
        }
        let payload = body.get(SNAPSHOT_HEADER_BYTES..).unwrap_or(&[]);
        let (positions, mut rows) = payload.split_at(len.saturating_mul(4).min(payload.len()));
        // A shifting cache keeps position `i` in slot `i` (its shift relies on it).
        let in_slot_order = || {
            positions
                .as_chunks::<4>()
                .0
                .iter()
                .enumerate()
                .all(|(i, p)| u32::try_from(i).is_ok_and(|i| i == u32::from_le_bytes(*p)))
        };
        if matches!(self.options.policy, OverflowPolicy::Shift { .. })
            && (h.next_pos != h.len as u64 || ring_next != 0 || !in_slot_order())
        {
            return Err(SnapshotError::Corrupt.into());
        }

        // Everything is checked: copy the payload in.
        if let Some(dst) = self.mem.get_mut(..positions.len()) {
            dst.copy_from_slice(positions);
        }
        let layer_bytes = len.saturating_mul(self.row_bytes());
        for layer in 0..self.n_layers {
            let (src, rest) = rows.split_at(layer_bytes.min(rows.len()));
            rows = rest;
            let start = self.row_range(layer, 0).map_or(0, |r| r.start);
            if let Some(dst) = self.mem.get_mut(start..start.saturating_add(src.len())) {
                dst.copy_from_slice(src);
            }
        }
        self.len = len;
        self.ring_next = ring_next;
        self.next_pos = h.next_pos;
        self.shifts = 0;
        Ok(())
    }
}

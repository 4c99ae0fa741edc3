//! Encoding of one latent-cache row (`c_kv` then rotated `k_pe`) in each storage type, and the
//! two operations attention needs on it, reading the stored bytes directly (no expansion).

use crate::kernels;
use crate::quant::f16::f32_to_f16;
use crate::quant::q8_0;
use crate::quant::q8_compact::{compact_bytes, dequantize_compact, put_compact};

/// Elements per int8 block of `c_kv` (ggml's `QK8_0`).
pub const Q8_BLOCK_ELEMS: usize = crate::quant::QK;
/// Bytes per int8 block: an f16 scale `d`, then 32 `i8` (ggml's `block_q8_0`, 34 bytes).
pub const Q8_BLOCK_BYTES: usize = q8_0::BLOCK_BYTES;

pub use crate::quant::q8_compact::{Q8C_BLOCK_BYTES, Q8C_BLOCK_ELEMS};

/// How rows are stored. Chosen at run time, per cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum CacheStorage {
    /// `c_kv` and `k_pe` as little-endian `f32`: exact.
    #[default]
    F32,
    /// `c_kv` and `k_pe` as IEEE `f16`.
    F16,
    /// `c_kv` in ggml `Q8_0` blocks (per 32 values an f16 scale `d` and `i8` values
    /// `q = round(x / d)`, `d = max|x| / 127`; a partial last block is zero-padded), `k_pe` as
    /// `f16`: RoPE keys quantise badly, so they keep 16 bits.
    Q8,
    /// Both parts int8, in blocks of up to 64 values with one f16 scale each
    /// (`d = max|x| / 127`, `q = round(x / d)`); `k_pe` starts a new block, and the last block
    /// of each part holds only the values left (`2 + n % 64` bytes), so small models pay no
    /// padding: 594 bytes per token and layer for DeepSeek-V2-Lite (512 + 64) instead of
    /// [`Q8`]'s 672, 52 instead of 66 for the 32 + 16 demo-s, at the price of 8-bit RoPE keys.
    ///
    /// [`Q8`]: CacheStorage::Q8
    Q8Compact,
}

impl CacheStorage {
    /// The id stored in snapshots.
    pub(crate) fn id(self) -> u8 {
        match self {
            CacheStorage::F32 => 0,
            CacheStorage::F16 => 1,
            CacheStorage::Q8 => 2,
            CacheStorage::Q8Compact => 3,
        }
    }

    /// The storage for a snapshot id.
    pub(crate) fn from_id(id: u8) -> Option<Self> {
        match id {
            0 => Some(CacheStorage::F32),
            1 => Some(CacheStorage::F16),
            2 => Some(CacheStorage::Q8),
            3 => Some(CacheStorage::Q8Compact),
            _ => None,
        }
    }
}

/// The shape of a row: `kv_lora_rank` latent values and `qk_rope_head_dim` key values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RowFormat {
    pub(crate) storage: CacheStorage,
    pub(crate) kv_lora: usize,
    pub(crate) rope: usize,
}

impl RowFormat {
    /// Bytes of the `c_kv` part.
    fn latent_bytes(&self) -> Option<usize> {
        match self.storage {
            CacheStorage::F32 => self.kv_lora.checked_mul(4),
            CacheStorage::F16 => self.kv_lora.checked_mul(2),
            CacheStorage::Q8 => self.kv_lora.div_ceil(Q8_BLOCK_ELEMS).checked_mul(Q8_BLOCK_BYTES),
            CacheStorage::Q8Compact => compact_bytes(self.kv_lora),
        }
    }

    /// Bytes of the `k_pe` part.
    fn rope_bytes(&self) -> Option<usize> {
        match self.storage {
            CacheStorage::F32 => self.rope.checked_mul(4),
            CacheStorage::F16 | CacheStorage::Q8 => self.rope.checked_mul(2),
            CacheStorage::Q8Compact => compact_bytes(self.rope),
        }
    }

    /// Bytes of one stored row, or `None` on overflow.
    pub(crate) fn row_bytes(&self) -> Option<usize> {
        self.latent_bytes()?.checked_add(self.rope_bytes()?)
    }

    /// Stores `x = [c_kv (kv_lora) | k_pe (rope)]` into `out` (`row_bytes` long).
    pub(crate) fn encode(&self, x: &[f32], out: &mut [u8]) {
        let (c, k) = x.split_at(self.kv_lora.min(x.len()));
        let (out_c, out_k) = out.split_at_mut(self.latent_bytes().unwrap_or(0).min(out.len()));
        match self.storage {
            CacheStorage::F32 => {
                put_f32(c, out_c);
                put_f32(k, out_k);
            }
            CacheStorage::F16 => {
                put_f16(c, out_c);
                put_f16(k, out_k);
            }
            CacheStorage::Q8 => {
                let (blocks, _) = out_c.as_chunks_mut::<Q8_BLOCK_BYTES>();
                q8_0::quantize(c, blocks);
                put_f16(k, out_k);
            }
            CacheStorage::Q8Compact => {
                put_compact(c, out_c);
                put_compact(k, out_k);
            }
        }
    }

    /// Stored rows read in place as the `f32` values [`Self::decode`] would write
    /// (`[n][kv_lora + rope]`): `Some` for [`CacheStorage::F32`] rows on a little-endian
    /// target whose bytes are aligned for `f32` (as a heap allocation's are), `None` otherwise
    /// (the caller decodes).
    pub(crate) fn f32_view<'r>(&self, rows: &'r [u8]) -> Option<&'r [f32]> {
        if self.storage != CacheStorage::F32 || cfg!(not(target_endian = "little")) {
            return None;
        }
        #[allow(unsafe_code)]
        // SAFETY: every 4-byte pattern is a valid `f32`, and `align_to` puts in the middle
        // part only whole, aligned `f32`s; little-endian bytes are the values `get_f32` reads.
        let (head, values, tail) = unsafe { rows.align_to::<f32>() };
        (head.is_empty() && tail.is_empty()).then_some(values)
    }

    /// Decodes a stored row back to `f32` (for tests and snapshots' users).
    pub(crate) fn decode(&self, row: &[u8], out: &mut [f32]) {
        let (c, k) = row.split_at(self.latent_bytes().unwrap_or(0).min(row.len()));
        let (out_c, out_k) = out.split_at_mut(self.kv_lora.min(out.len()));
        match self.storage {
            CacheStorage::F32 => {
                get_f32(c, out_c);
                get_f32(k, out_k);
            }
            CacheStorage::F16 => {
                get_f16(c, out_c);
                get_f16(k, out_k);
            }
            CacheStorage::Q8 => {
                let blocks = c.as_chunks::<Q8_BLOCK_BYTES>().0;
                if SIMD_DECODE {
                    kernels::active().dequantize_q8_0(blocks, out_c);
                } else {
                    q8_0::dequantize(blocks, out_c);
                }
                get_f16(k, out_k);
            }
            CacheStorage::Q8Compact => {
                get_compact(c, out_c);
                get_compact(k, out_k);
            }
        }
    }
}

/// Rotary pairs of `k_pe` that [`RowFormat::rotate_rope`] takes per call: one
/// [`CacheStorage::Q8Compact`] block's worth, so an int8 block is decoded and re-quantised once.
pub(crate) const ROPE_PAIRS_PER_CALL: usize = Q8C_BLOCK_ELEMS / 2;

impl RowFormat {
    /// Rotates pairs `first_pair .. first_pair + rotations.len()` of the `k_pe` stored in `row`
    /// (`row_bytes` long), pair `first_pair + j` by the angle whose `[cos, sin]` is
    /// `rotations[j]`. `first_pair` is a multiple of [`ROPE_PAIRS_PER_CALL`] and
    /// `rotations.len() <= ROPE_PAIRS_PER_CALL`; pairs past `qk_rope_head_dim / 2` are ignored.
    ///
    /// The pairs are rotated in `f32` and stored again in the row's storage: exact for f32
    /// rows up to the rotation's own rounding, one more f16 rounding for f16 keys (`F16`, `Q8`),
    /// and a fresh int8 quantisation of each touched block for `Q8Compact`.
    pub(crate) fn rotate_rope(&self, row: &mut [u8], first_pair: usize, rotations: &[[f32; 2]]) {
        let latent = self.latent_bytes().unwrap_or(usize::MAX);
        let Some(k) = row.get_mut(latent..) else { return };
        let rotate = |p: [f32; 2], r: &[f32; 2]| crate::rope::rotate_pair(p, *r);
        match self.storage {
            CacheStorage::F32 => {
                let pairs = k.get_mut(first_pair.saturating_mul(8)..).unwrap_or(&mut []);
                for (b, r) in pairs.as_chunks_mut::<8>().0.iter_mut().zip(rotations) {
                    let (x0, x1) = b.split_at_mut(4);
                    let x = [get_f32_at(x0), get_f32_at(x1)];
                    let [y0, y1] = rotate(x, r);
                    x0.copy_from_slice(&y0.to_le_bytes());
                    x1.copy_from_slice(&y1.to_le_bytes());
                }
            }
            CacheStorage::F16 | CacheStorage::Q8 => {
                let pairs = k.get_mut(first_pair.saturating_mul(4)..).unwrap_or(&mut []);
                for (b, r) in pairs.as_chunks_mut::<4>().0.iter_mut().zip(rotations) {
                    let [l0, h0, l1, h1] = *b;
                    let x = [kernels::f16_to_f32([l0, h0]), kernels::f16_to_f32([l1, h1])];
                    let [y0, y1] = rotate(x, r);
                    let ([l0, h0], [l1, h1]) = (f32_to_f16(y0), f32_to_f16(y1));
                    *b = [l0, h0, l1, h1];
                }
            }
            CacheStorage::Q8Compact => {
                let block = first_pair / ROPE_PAIRS_PER_CALL;
                let Some(bytes) = k.chunks_mut(Q8C_BLOCK_BYTES).nth(block) else { return };
                let Some((scale, qs)) = bytes.split_first_chunk_mut::<2>() else { return };
                let mut values = [0.0f32; Q8C_BLOCK_ELEMS];
                let values = values.get_mut(..qs.len()).unwrap_or(&mut []);
                let d = kernels::f16_to_f32(*scale);
                for (v, q) in values.iter_mut().zip(qs.iter()) {
                    *v = d * f32::from(i8::from_le_bytes([*q]));
                }
                for (p, r) in values.as_chunks_mut::<2>().0.iter_mut().zip(rotations) {
                    *p = rotate(*p, r);
                }
                q8_0::quantize_block(values, scale, qs);
            }
        }
    }
}

fn get_f32_at(b: &[u8]) -> f32 {
    b.first_chunk::<4>().map_or(0.0, |v| f32::from_le_bytes(*v))
}

/// Whether rows decode through the kernel table: on x86_64, whose tables have SIMD decoders.
/// Elsewhere every table has the references, called directly (no indirect call per row on a
/// board).
const SIMD_DECODE: bool = cfg!(target_arch = "x86_64");

/// Int8 blocks back to `f32` (`out.len()` values), through the kernel table.
fn get_compact(bytes: &[u8], out: &mut [f32]) {
    if SIMD_DECODE {
        kernels::active().dequantize_compact(bytes, out);
    } else {
        dequantize_compact(bytes, out);
    }
}

fn put_f32(x: &[f32], out: &mut [u8]) {
    let (o, _) = out.as_chunks_mut::<4>();
    for (b, v) in o.iter_mut().zip(x) {
        *b = v.to_le_bytes();
    }
}

fn put_f16(x: &[f32], out: &mut [u8]) {
    let (o, _) = out.as_chunks_mut::<2>();
    for (b, v) in o.iter_mut().zip(x) {
        *b = f32_to_f16(*v);
    }
}

fn get_f32(bytes: &[u8], out: &mut [f32]) {
    let (b, _) = bytes.as_chunks::<4>();
    for (o, v) in out.iter_mut().zip(b) {
        *o = f32::from_le_bytes(*v);
    }
}

fn get_f16(bytes: &[u8], out: &mut [f32]) {
    if SIMD_DECODE {
        kernels::active().f16s_to_f32(bytes, out);
    } else {
        kernels::scalar::f16s_to_f32(bytes, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format(storage: CacheStorage, kv_lora: usize, rope: usize) -> RowFormat {
        RowFormat { storage, kv_lora, rope }
    }

    fn sample(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| (((i as u32).wrapping_mul(2654435761u32) ^ seed) % 2001) as f32 / 1000.0 - 1.0)
            .collect()
    }

    #[test]
    fn v2_lite_row_sizes() {
        assert_eq!(format(CacheStorage::F32, 512, 64).row_bytes(), Some(2304));
        assert_eq!(format(CacheStorage::F16, 512, 64).row_bytes(), Some(1152));
        // 16 Q8_0 blocks (544 bytes) + 64 f16 (128 bytes).
        assert_eq!(format(CacheStorage::Q8, 512, 64).row_bytes(), Some(672));
        // 8 + 1 blocks of 66 bytes.
        assert_eq!(format(CacheStorage::Q8Compact, 512, 64).row_bytes(), Some(594));
        // Last blocks hold only what is left: 2 + 20 and 2 + 6; 64 + 1 values take 66 + 3.
        assert_eq!(format(CacheStorage::Q8Compact, 20, 6).row_bytes(), Some(22 + 8));
        assert_eq!(format(CacheStorage::Q8Compact, 65, 64).row_bytes(), Some(69 + 66));
        // A partial block still takes a whole block.
        assert_eq!(format(CacheStorage::Q8, 20, 6).row_bytes(), Some(34 + 12));
    }

    #[test]
    fn every_storage_round_trips_within_its_precision() {
        for (storage, tol) in [
            (CacheStorage::F32, 0.0),
            (CacheStorage::F16, 1e-3),
            (CacheStorage::Q8, 1.0 / 127.0),
            (CacheStorage::Q8Compact, 1.0 / 127.0),
        ] {
            for (kv_lora, rope) in [(20, 6), (64, 8), (33, 2), (512, 64)] {
                let f = format(storage, kv_lora, rope);
                let x = sample(kv_lora + rope, 7);
                let mut bytes = vec![0u8; f.row_bytes().unwrap()];
                f.encode(&x, &mut bytes);
                let mut y = vec![0.0; x.len()];
                f.decode(&bytes, &mut y);
                for (a, b) in x.iter().zip(&y) {
                    assert!((a - b).abs() <= tol, "{storage:?} {kv_lora}: {a} vs {b}");
                }
            }
        }
    }

    /// Rotating the stored keys equals rotating the f32 row and storing it, within one
    /// rounding of the storage (and exactly for f32 rows).
    #[test]
    fn rotate_rope_matches_rotating_before_storing() {
        for (storage, tol) in [
            (CacheStorage::F32, 0.0),
            (CacheStorage::F16, 2e-3),
            (CacheStorage::Q8, 2e-3),
            (CacheStorage::Q8Compact, 2.0 / 127.0),
        ] {
            for (kv_lora, rope) in [(20, 6), (64, 64), (33, 2), (16, 130)] {
                let f = format(storage, kv_lora, rope);
                let x = sample(kv_lora + rope, 11);
                let rotations: Vec<[f32; 2]> = (0..rope / 2)
                    .map(|i| [(i as f32 * 0.3).cos(), (i as f32 * 0.3).sin()])
                    .collect();
                let mut bytes = vec![0u8; f.row_bytes().unwrap()];
                f.encode(&x, &mut bytes);
                for (c, chunk) in rotations.chunks(ROPE_PAIRS_PER_CALL).enumerate() {
                    f.rotate_rope(&mut bytes, c * ROPE_PAIRS_PER_CALL, chunk);
                }
                let mut want = x.clone();
                for (p, r) in want[kv_lora..].as_chunks_mut::<2>().0.iter_mut().zip(&rotations) {
                    *p = crate::rope::rotate_pair(*p, *r);
                }
                let mut got = vec![0.0; x.len()];
                f.decode(&bytes, &mut got);
                let mut direct = vec![0u8; bytes.len()];
                f.encode(&want, &mut direct);
                let mut stored = vec![0.0; x.len()];
                f.decode(&direct, &mut stored);
                // The latent part is untouched, bit for bit.
                assert_eq!(got[..kv_lora], stored[..kv_lora], "{storage:?}");
                for (i, (a, b)) in got.iter().zip(&want).enumerate().skip(kv_lora) {
                    assert!((a - b).abs() <= tol, "{storage:?} {kv_lora}+{rope} [{i}]: {a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn q8_zero_block_and_extremes() {
        for storage in [CacheStorage::Q8, CacheStorage::Q8Compact] {
            q8_zero_block_and_extremes_in(storage);
        }
    }

    fn q8_zero_block_and_extremes_in(storage: CacheStorage) {
        let f = format(storage, 32, 2);
        let mut x = vec![0.0f32; 34];
        let mut bytes = vec![0u8; f.row_bytes().unwrap()];
        f.encode(&x, &mut bytes);
        let mut y = vec![1.0; 34];
        f.decode(&bytes, &mut y);
        assert_eq!(y, [0.0; 34]);
        x[0] = 1e4;
        x[1] = -1e4;
        f.encode(&x, &mut bytes);
        f.decode(&bytes, &mut y);
        assert!((y[0] - 1e4).abs() < 10.0 && (y[1] + 1e4).abs() < 10.0);
    }
}

//! Zero-copy GGUF reader: `&[u8]` → [`Gguf`], validated once, then trusted.
//!
//! Format: <https://github.com/ggml-org/ggml/blob/master/docs/gguf.md>. The checks mirror
//! ggml's own loader (`ggml/src/gguf.cpp`): magic and version, counts bounded by the bytes that
//! remain, no duplicate keys or tensor names, a power-of-two `general.alignment`, `n_dims <= 4`,
//! checked element and byte counts, rows a multiple of the block size, and tensor data laid out
//! in order at aligned offsets inside the file. This module knows nothing about DeepSeek.

mod reader;
mod value;

pub use value::{ArrayIter, ArrayView, MetadataValue, ValueType};

use crate::error::{CountKind, GgufError};
use crate::tensor::{GgmlType, TensorView};
use reader::Reader;

/// `GGUF` as read little-endian.
const MAGIC: [u8; 4] = *b"GGUF";
/// Alignment of the data section and of every tensor when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Key of the alignment override.
pub const KEY_ALIGNMENT: &str = "general.alignment";
/// Most metadata entries accepted. Real files carry under 100; the cap bounds the worst-case
/// cost of the duplicate-key check on a hostile file.
pub const MAX_METADATA_ENTRIES: u64 = 1 << 10;
/// Most tensors accepted (DeepSeek-V3 has about 1,300). Bounds the duplicate-name check.
pub const MAX_TENSORS: u64 = 1 << 14;
/// Fewest bytes one metadata entry can take: key length (8) + type id (4) + a 1-byte value.
const MIN_KV_BYTES: usize = 13;
/// Fewest bytes one tensor info can take: name length (8) + n_dims (4) + one dim (8) + type (4)
/// + offset (8).
const MIN_TENSOR_INFO_BYTES: usize = 32;

/// A validated GGUF file borrowed from its bytes. Lookups re-walk the validated sections, so
/// nothing is allocated; see [`Gguf::parse`] for what was checked.
#[derive(Debug, Clone, Copy)]
pub struct Gguf<'a> {
    version: u32,
    n_kv: usize,
    n_tensors: usize,
    /// The metadata section (all key/value entries), starting at `kv_offset`.
    kv_bytes: &'a [u8],
    kv_offset: u64,
    /// The tensor-info section, starting at `tensor_info_offset`.
    tensor_info_bytes: &'a [u8],
    tensor_info_offset: u64,
    /// The data section: from the aligned end of the tensor infos to the end of the file.
    data: &'a [u8],
    data_offset: u64,
    alignment: u64,
}

/// One raw tensor info as stored in the file (before its data is attached).
struct RawTensorInfo<'a> {
    name: &'a str,
    n_dims: u32,
    dims: [u64; 4],
    ggml_type: u32,
    offset: u64,
}

impl<'a> Gguf<'a> {
    /// Parses and validates `bytes` as a GGUF v2/v3 file.
    ///
    /// Work is bounded by `bytes.len()` (plus a pairwise name comparison over the entries
    /// actually present); no count is trusted before the bytes to back it are seen.
    ///
    /// # Errors
    /// A [`GgufError`] naming the first problem found.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, GgufError> {
        let mut r = Reader::new(bytes);
        let magic: [u8; 4] = r.array()?;
        if magic != MAGIC {
            return Err(GgufError::BadMagic(magic));
        }
        let version = r.u32()?;
        if !(2..=3).contains(&version) {
            return Err(GgufError::UnsupportedVersion(version));
        }
        let n_tensors_raw = r.u64()?;
        let n_kv_raw = r.u64()?;
        let n_tensors = bounded_count(
            &r,
            n_tensors_raw,
            MAX_TENSORS,
            MIN_TENSOR_INFO_BYTES,
            CountKind::Tensors,
        )?;
        let n_kv = bounded_count(
            &r,
            n_kv_raw,
            MAX_METADATA_ENTRIES,
            MIN_KV_BYTES,
            CountKind::MetadataEntries,
        )?;

        // Metadata.
        let kv_start = r;
        let mut alignment = DEFAULT_ALIGNMENT;
        let mut seen = NameFilter::new();
        for index in 0..n_kv {
            let (key, value) = read_kv(&mut r)?;
            if key == KEY_ALIGNMENT {
                alignment = match value {
                    MetadataValue::U32(a) if a != 0 && a.is_power_of_two() => u64::from(a),
                    other => return Err(GgufError::BadAlignment(other.as_u64().unwrap_or(0))),
                };
            }
            if seen.maybe_seen(key) && kv_entries(kv_start, index).any(|(k, _)| k == key) {
                return Err(GgufError::DuplicateKey { index: index as u64 });
            }
        }
        let (kv_bytes, kv_offset) = section(kv_start, &r)?;

        // Tensor infos.
        let ti_start = r;
        let mut seen = NameFilter::new();
        for index in 0..n_tensors {
            let info = read_tensor_info(&mut r, index as u64)?;
            if seen.maybe_seen(info.name)
                && tensor_infos(ti_start, index).any(|t| t.name == info.name)
            {
                return Err(GgufError::DuplicateTensor { index: index as u64 });
            }
        }
        let (tensor_info_bytes, tensor_info_offset) = section(ti_start, &r)?;

        // Data section: starts at the next multiple of the alignment.
        let info_end = r.offset();
        let data_offset = align_up(info_end, alignment)
            .ok_or(GgufError::Truncated { at: info_end, needed: alignment })?;
        let data = usize::try_from(data_offset).ok().and_then(|o| bytes.get(o..)).unwrap_or(&[]);
        if n_tensors > 0 && usize::try_from(data_offset).map_or(true, |o| o > bytes.len()) {
            return Err(GgufError::Truncated { at: info_end, needed: data_offset - info_end });
        }

        // Tensor data: in order, each at the aligned end of the previous one (ggml's layout).
        let mut expected = 0u64;
        for (index, info) in tensor_infos(ti_start, n_tensors).enumerate() {
            let index = index as u64;
            if info.offset != expected {
                return Err(GgufError::BadTensorOffset { index, expected, found: info.offset });
            }
            let size = tensor_bytes(&info, index)?;
            let end = info.offset.checked_add(size).ok_or(GgufError::DataOutOfRange { index })?;
            if end > data.len() as u64 {
                return Err(GgufError::DataOutOfRange { index });
            }
            expected = align_up(end, alignment).ok_or(GgufError::DataOutOfRange { index })?;
        }

        Ok(Gguf {
            version,
            n_kv,
            n_tensors,
            kv_bytes,
            kv_offset,
            tensor_info_bytes,
            tensor_info_offset,
            data,
            data_offset,
            alignment,
        })
    }

    /// GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Data alignment in bytes (a power of two).
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Offset of the data section from the start of the file.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// Number of metadata entries.
    pub fn n_metadata(&self) -> usize {
        self.n_kv
    }

    /// Number of tensors.
    pub fn n_tensors(&self) -> usize {
        self.n_tensors
    }

    /// All metadata entries in file order.
    pub fn metadata(&self) -> impl Iterator<Item = (&'a str, MetadataValue<'a>)> + 'a {
        kv_entries(Reader::at(self.kv_bytes, self.kv_offset), self.n_kv)
    }

    /// The value of metadata key `key`, if present.
    pub fn get(&self, key: &str) -> Option<MetadataValue<'a>> {
        self.metadata().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// All tensors in file order.
    pub fn tensors(&self) -> impl Iterator<Item = TensorView<'a>> + 'a {
        let data = self.data;
        tensor_infos(Reader::at(self.tensor_info_bytes, self.tensor_info_offset), self.n_tensors)
            .filter_map(move |info| view(&info, data))
    }

    /// The first tensor whose name satisfies `pred`.
    pub fn find_tensor(&self, pred: impl Fn(&str) -> bool) -> Option<TensorView<'a>> {
        self.tensors().find(|t| pred(t.name))
    }

    /// A 64-bit fingerprint of the file: FNV-1a over the metadata and tensor-info sections and
    /// the first and last 64 bytes of every tensor's data. Cheap (it touches two small spans per
    /// tensor), stable across mmap and flash, and different for files with different shapes,
    /// metadata or (almost surely) weights.
    pub fn fingerprint(&self) -> u64 {
        let mut h = crate::fnv::Fnv1a64::new();
        h.write(self.kv_bytes).write(self.tensor_info_bytes);
        for t in self.tensors() {
            let n = t.bytes.len();
            h.write(t.bytes.get(..n.min(64)).unwrap_or(&[]));
            h.write(t.bytes.get(n.saturating_sub(64)..).unwrap_or(&[]));
        }
        h.finish()
    }

    /// The tensor named `name`, if present.
    pub fn tensor(&self, name: &str) -> Option<TensorView<'a>> {
        self.find_tensor(|n| n == name)
    }
}

/// A 4096-bit Bloom filter over names: answers "definitely new" without re-walking the file,
/// so the exact duplicate scan runs only on a (rare) hash hit.
struct NameFilter {
    bits: [u64; 64],
}

impl NameFilter {
    fn new() -> Self {
        NameFilter { bits: [0; 64] }
    }

    /// Records `name`; returns true if it may have been recorded before.
    fn maybe_seen(&mut self, name: &str) -> bool {
        let hash = crate::fnv::Fnv1a64::new().write(name.as_bytes()).finish();
        let bit = hash % 4096;
        let (word, mask) = ((bit / 64) as usize, 1u64 << (bit % 64));
        match self.bits.get_mut(word) {
            Some(w) => {
                let hit = *w & mask != 0;
                *w |= mask;
                hit
            }
            None => true,
        }
    }
}

/// `count` as a usize, if it is at most `max` and `count * min_entry_bytes` could fit in what
/// `r` has left.
fn bounded_count(
    r: &Reader<'_>,
    count: u64,
    max: u64,
    min_entry_bytes: usize,
    what: CountKind,
) -> Result<usize, GgufError> {
    let err = GgufError::CountTooLarge { what, count };
    if count > max {
        return Err(err);
    }
    let n = usize::try_from(count).map_err(|_| err)?;
    match n.checked_mul(min_entry_bytes) {
        Some(b) if b <= r.remaining() => Ok(n),
        _ => Err(err),
    }
}

/// The bytes between two positions of the same reader, and where they start.
fn section<'a>(start: Reader<'a>, end: &Reader<'a>) -> Result<(&'a [u8], u64), GgufError> {
    let used = start.remaining().saturating_sub(end.remaining());
    let mut s = start;
    Ok((s.take(used)?, start.offset()))
}

fn read_kv<'a>(r: &mut Reader<'a>) -> Result<(&'a str, MetadataValue<'a>), GgufError> {
    let key = r.str()?;
    let at = r.offset();
    let type_id = r.u32()?;
    let ty = ValueType::from_id(type_id).ok_or(GgufError::BadValueType { type_id, at })?;
    Ok((key, MetadataValue::read(r, ty)?))
}

/// The first `n` metadata entries from `r` (already validated, so reads do not fail).
fn kv_entries<'a>(
    mut r: Reader<'a>,
    n: usize,
) -> impl Iterator<Item = (&'a str, MetadataValue<'a>)> + 'a {
    (0..n).map_while(move |_| read_kv(&mut r).ok())
}

fn read_tensor_info<'a>(r: &mut Reader<'a>, index: u64) -> Result<RawTensorInfo<'a>, GgufError> {
    let name = r.str()?;
    let n_dims = r.u32()?;
    if !(1..=4).contains(&n_dims) {
        return Err(GgufError::BadDimCount { index, n_dims });
    }
    let mut dims = [1u64; 4];
    for d in dims.iter_mut().take(n_dims as usize) {
        *d = r.u64()?;
    }
    let ggml_type = r.u32()?;
    let offset = r.u64()?;
    let info = RawTensorInfo { name, n_dims, dims, ggml_type, offset };
    tensor_bytes(&info, index)?;
    Ok(info)
}

/// The first `n` tensor infos from `r` (already validated, so reads do not fail).
fn tensor_infos<'a>(mut r: Reader<'a>, n: usize) -> impl Iterator<Item = RawTensorInfo<'a>> + 'a {
    (0..n).map_while(move |i| read_tensor_info(&mut r, i as u64).ok())
}

/// Bytes of a tensor's data, with every dimension and product checked.
fn tensor_bytes(info: &RawTensorInfo<'_>, index: u64) -> Result<u64, GgufError> {
    let ty = GgmlType::from_id(info.ggml_type)
        .ok_or(GgufError::UnknownTensorType { index, ggml_type: info.ggml_type })?;
    let (block_elems, block_bytes) = ty.block_layout();
    let bad = GgufError::BadDims { index };
    if info.dims.contains(&0) {
        return Err(bad);
    }
    let [ne0, ne1, ne2, ne3] = info.dims;
    if ne0 % block_elems != 0 {
        return Err(GgufError::RowNotBlockMultiple { index });
    }
    // ggml also requires the element count to fit in an i64.
    let n_elements = ne0
        .checked_mul(ne1)
        .and_then(|n| n.checked_mul(ne2))
        .and_then(|n| n.checked_mul(ne3))
        .filter(|&n| n <= i64::MAX as u64)
        .ok_or(bad)?;
    (n_elements / block_elems).checked_mul(block_bytes).ok_or(bad)
}

/// Attaches the data bytes to a validated tensor info.
fn view<'a>(info: &RawTensorInfo<'a>, data: &'a [u8]) -> Option<TensorView<'a>> {
    let ggml_type = GgmlType::from_id(info.ggml_type)?;
    let size = tensor_bytes(info, 0).ok()?;
    let start = usize::try_from(info.offset).ok()?;
    let end = start.checked_add(usize::try_from(size).ok()?)?;
    Some(TensorView {
        name: info.name,
        ggml_type,
        n_dims: info.n_dims,
        dims: info.dims,
        data_offset: info.offset,
        bytes: data.get(start..end)?,
    })
}

/// `x` rounded up to a multiple of the power of two `align`.
fn align_up(x: u64, align: u64) -> Option<u64> {
    let mask = align.checked_sub(1)?;
    x.checked_add(mask).map(|v| v & !mask)
}

#[cfg(test)]
mod tests;

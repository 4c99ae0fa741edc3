//! One test per validation rule, each asserting the exact error variant, on files written by a
//! tiny in-test builder.

use super::*;
use crate::error::CountKind;
use std::vec::Vec;

/// Writes GGUF bytes field by field.
#[derive(Default)]
struct Builder {
    bytes: Vec<u8>,
}

impl Builder {
    fn header(version: u32, n_tensors: u64, n_kv: u64) -> Self {
        let mut b = Builder::default();
        b.raw(b"GGUF").u32(version).u64(n_tensors).u64(n_kv);
        b
    }
    fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.bytes.extend_from_slice(bytes);
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.raw(&v.to_le_bytes())
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.raw(&v.to_le_bytes())
    }
    fn string(&mut self, s: &str) -> &mut Self {
        self.u64(s.len() as u64).raw(s.as_bytes())
    }
    fn kv_u32(&mut self, key: &str, v: u32) -> &mut Self {
        self.string(key).u32(4).u32(v)
    }
    fn kv_str(&mut self, key: &str, v: &str) -> &mut Self {
        self.string(key).u32(8).string(v)
    }
    fn tensor_info(&mut self, name: &str, dims: &[u64], ggml_type: u32, offset: u64) -> &mut Self {
        self.string(name).u32(dims.len() as u32);
        for &d in dims {
            self.u64(d);
        }
        self.u32(ggml_type).u64(offset)
    }
    /// Pads to `align` and appends `n` data bytes.
    fn data(&mut self, align: usize, n: usize) -> &mut Self {
        while !self.bytes.len().is_multiple_of(align) {
            self.bytes.push(0);
        }
        self.bytes.extend(core::iter::repeat_n(0u8, n));
        self
    }
    fn parse(&self) -> Result<Gguf<'_>, GgufError> {
        Gguf::parse(&self.bytes)
    }
}

/// A valid file: two keys, an array, two F32 tensors.
fn valid() -> Builder {
    let mut b = Builder::header(3, 2, 3);
    b.kv_str("general.architecture", "deepseek2").kv_u32("a.count", 7);
    b.string("a.list").u32(9).u32(8).u64(2).string("x").string("yz");
    b.tensor_info("t0", &[4, 2], 0, 0).tensor_info("t1", &[3], 0, 32);
    b.data(32, 32 + 12);
    b
}

#[test]
fn valid_file_round_trips() {
    let b = valid();
    let g = b.parse().unwrap();
    assert_eq!((g.version(), g.n_metadata(), g.n_tensors(), g.alignment()), (3, 3, 2, 32));
    assert_eq!(g.get("a.count").and_then(|v| v.as_u64()), Some(7));
    assert_eq!(g.get("general.architecture").and_then(|v| v.as_str()), Some("deepseek2"));
    let list: Vec<_> = g.get("a.list").unwrap().as_array().unwrap().iter().collect();
    assert_eq!(list, [MetadataValue::String(b"x"), MetadataValue::String(b"yz")]);
    let t1 = g.tensor("t1").unwrap();
    assert_eq!((t1.dims, t1.bytes.len(), t1.data_offset), ([3, 1, 1, 1], 12, 32));
    assert_eq!(g.data_offset() % 32, 0);
}

#[test]
fn version_2_is_read() {
    let mut b = valid();
    b.bytes[4] = 2;
    assert_eq!(b.parse().unwrap().version(), 2);
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let b = valid();
    for len in 0..b.bytes.len() {
        assert!(Gguf::parse(&b.bytes[..len]).is_err(), "prefix of {len} bytes parsed");
    }
}

#[test]
fn bad_magic() {
    let mut b = valid();
    b.bytes[0] = b'X';
    assert_eq!(b.parse().unwrap_err(), GgufError::BadMagic(*b"XGUF"));
}

#[test]
fn unsupported_version() {
    let mut b = valid();
    b.bytes[4] = 1;
    assert_eq!(b.parse().unwrap_err(), GgufError::UnsupportedVersion(1));
}

#[test]
fn tensor_count_beyond_file_is_rejected_without_work() {
    let b = Builder::header(3, 1 << 40, 0);
    assert_eq!(
        b.parse().unwrap_err(),
        GgufError::CountTooLarge { what: CountKind::Tensors, count: 1 << 40 }
    );
}

#[test]
fn metadata_count_beyond_file_is_rejected() {
    let b = Builder::header(3, 0, u64::MAX);
    assert!(matches!(
        b.parse().unwrap_err(),
        GgufError::CountTooLarge { what: CountKind::MetadataEntries, .. }
    ));
}

#[test]
fn string_length_of_2_pow_63_is_rejected() {
    let mut b = Builder::header(3, 0, 1);
    b.u64(1 << 63).raw(b"key").raw(&[0u8; 16]);
    assert_eq!(
        b.parse().unwrap_err(),
        GgufError::CountTooLarge { what: CountKind::StringBytes, count: 1 << 63 }
    );
}

#[test]
fn array_of_2_pow_40_elements_in_small_file_is_rejected() {
    let mut b = Builder::header(3, 0, 1);
    b.string("arr").u32(9).u32(0).u64(1 << 40);
    b.raw(&[0u8; 1000]);
    assert_eq!(
        b.parse().unwrap_err(),
        GgufError::CountTooLarge { what: CountKind::ArrayElements, count: 1 << 40 }
    );
}

#[test]
fn array_of_strings_claiming_too_many_is_rejected() {
    let mut b = Builder::header(3, 0, 1);
    b.string("arr").u32(9).u32(8).u64(200).string("a");
    assert!(matches!(b.parse().unwrap_err(), GgufError::CountTooLarge { .. }));
}

#[test]
fn nested_arrays_are_rejected() {
    let mut b = Builder::header(3, 0, 1);
    b.string("arr").u32(9).u32(9).u64(1).u32(4).u64(1).u32(5);
    assert!(matches!(b.parse().unwrap_err(), GgufError::NestedArray { .. }));
}

#[test]
fn unknown_value_type_is_rejected() {
    let mut b = Builder::header(3, 0, 1);
    b.string("k").u32(13).u32(0);
    assert!(matches!(b.parse().unwrap_err(), GgufError::BadValueType { type_id: 13, .. }));
}

#[test]
fn invalid_utf8_key_is_rejected() {
    let mut b = Builder::header(3, 0, 1);
    b.u64(2).raw(&[0xc3, 0x28]).u32(4).u32(1);
    assert!(matches!(b.parse().unwrap_err(), GgufError::InvalidUtf8 { .. }));
}

#[test]
fn duplicate_keys_are_rejected() {
    let mut b = Builder::header(3, 0, 3);
    b.kv_u32("a", 1).kv_u32("b", 2).kv_u32("a", 3);
    assert_eq!(b.parse().unwrap_err(), GgufError::DuplicateKey { index: 2 });
}

#[test]
fn many_distinct_keys_are_not_duplicates() {
    let names: Vec<_> = (0..500).map(|i| std::format!("key.{i}")).collect();
    let mut b = Builder::header(3, 0, names.len() as u64);
    for n in &names {
        b.kv_u32(n, 0);
    }
    assert_eq!(b.parse().unwrap().n_metadata(), 500);
}

#[test]
fn duplicate_tensor_names_are_rejected() {
    let mut b = Builder::header(3, 2, 0);
    b.tensor_info("w", &[8], 0, 0).tensor_info("w", &[8], 0, 32).data(32, 64);
    assert_eq!(b.parse().unwrap_err(), GgufError::DuplicateTensor { index: 1 });
}

#[test]
fn zero_alignment_is_rejected() {
    let mut b = Builder::header(3, 0, 1);
    b.kv_u32("general.alignment", 0);
    assert_eq!(b.parse().unwrap_err(), GgufError::BadAlignment(0));
}

#[test]
fn non_power_of_two_alignment_is_rejected() {
    let mut b = Builder::header(3, 0, 1);
    b.kv_u32("general.alignment", 48);
    assert_eq!(b.parse().unwrap_err(), GgufError::BadAlignment(48));
}

#[test]
fn custom_alignment_moves_the_data_section() {
    let mut b = Builder::header(3, 1, 1);
    b.kv_u32("general.alignment", 64).tensor_info("w", &[2], 0, 0).data(64, 8);
    let g = b.parse().unwrap();
    assert_eq!((g.alignment(), g.data_offset() % 64), (64, 0));
}

#[test]
fn five_dims_are_rejected() {
    let mut b = Builder::header(3, 1, 0);
    b.tensor_info("w", &[1, 1, 1, 1, 1], 0, 0).data(32, 4);
    assert_eq!(b.parse().unwrap_err(), GgufError::BadDimCount { index: 0, n_dims: 5 });
}

#[test]
fn zero_dimension_is_rejected() {
    let mut b = Builder::header(3, 1, 0);
    b.tensor_info("w", &[4, 0], 0, 0).data(32, 4);
    assert_eq!(b.parse().unwrap_err(), GgufError::BadDims { index: 0 });
}

#[test]
fn element_count_overflow_is_rejected() {
    let mut b = Builder::header(3, 1, 0);
    b.tensor_info("w", &[1 << 32, 1 << 32], 0, 0).data(32, 4);
    assert_eq!(b.parse().unwrap_err(), GgufError::BadDims { index: 0 });
}

#[test]
fn tensor_claiming_one_terabyte_is_out_of_range() {
    let mut b = Builder::header(3, 1, 0);
    b.tensor_info("w", &[1 << 18, 1 << 20], 0, 0).data(32, 64);
    assert_eq!(b.parse().unwrap_err(), GgufError::DataOutOfRange { index: 0 });
}

#[test]
fn unknown_tensor_type_is_rejected() {
    let mut b = Builder::header(3, 1, 0);
    b.tensor_info("w", &[4], 99, 0).data(32, 16);
    assert_eq!(b.parse().unwrap_err(), GgufError::UnknownTensorType { index: 0, ggml_type: 99 });
}

#[test]
fn quantized_row_not_block_multiple_is_rejected() {
    let mut b = Builder::header(3, 1, 0);
    b.tensor_info("w", &[33, 2], 8, 0).data(32, 68);
    assert_eq!(b.parse().unwrap_err(), GgufError::RowNotBlockMultiple { index: 0 });
}

#[test]
fn quantized_tensor_size_uses_block_layout() {
    let mut b = Builder::header(3, 1, 0);
    b.tensor_info("w", &[64, 3], 8, 0).data(32, 6 * 34);
    assert_eq!(b.parse().unwrap().tensor("w").unwrap().bytes.len(), 6 * 34);
}

#[test]
fn overlapping_tensors_are_rejected() {
    let mut b = Builder::header(3, 2, 0);
    b.tensor_info("a", &[16], 0, 0).tensor_info("b", &[16], 0, 32).data(32, 128);
    assert_eq!(
        b.parse().unwrap_err(),
        GgufError::BadTensorOffset { index: 1, expected: 64, found: 32 }
    );
}

#[test]
fn misaligned_tensor_offset_is_rejected() {
    let mut b = Builder::header(3, 1, 0);
    b.tensor_info("a", &[4], 0, 4).data(32, 64);
    assert_eq!(
        b.parse().unwrap_err(),
        GgufError::BadTensorOffset { index: 0, expected: 0, found: 4 }
    );
}

#[test]
fn data_past_end_of_file_is_rejected() {
    let mut b = Builder::header(3, 1, 0);
    b.tensor_info("a", &[16], 0, 0).data(32, 63);
    assert_eq!(b.parse().unwrap_err(), GgufError::DataOutOfRange { index: 0 });
}

/// A K-quant tensor (256-weight super-blocks) whose rows hold 100 values is a typed error,
/// as is an IQ4_XS one of 288; a whole super-block parses with its 144 bytes.
#[test]
fn k_quant_rows_must_be_whole_super_blocks() {
    for (ne0, ty) in [(100u64, 12u32), (288, 23), (32, 14)] {
        let mut b = Builder::header(3, 1, 0);
        b.tensor_info("w", &[ne0, 2], ty, 0).data(32, 600);
        assert_eq!(b.parse().unwrap_err(), GgufError::RowNotBlockMultiple { index: 0 }, "{ty}");
    }
    let mut b = Builder::header(3, 1, 0);
    b.tensor_info("w", &[256, 2], 12, 0).data(32, 2 * 144);
    assert_eq!(b.parse().unwrap().tensor("w").unwrap().bytes.len(), 288);
}

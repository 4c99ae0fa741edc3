//! GGUF metadata values. Strings and arrays stay borrowed from the file bytes.

use super::reader::Reader;
use crate::error::{CountKind, GgufError};

/// A metadata value type id, as numbered by the GGUF spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ValueType {
    /// 0
    U8,
    /// 1
    I8,
    /// 2
    U16,
    /// 3
    I16,
    /// 4
    U32,
    /// 5
    I32,
    /// 6
    F32,
    /// 7 (one byte, non-zero is true)
    Bool,
    /// 8 (`u64` length + UTF-8 bytes)
    String,
    /// 9 (`u32` element type + `u64` count + elements)
    Array,
    /// 10
    U64,
    /// 11
    I64,
    /// 12
    F64,
}

impl ValueType {
    /// The type for a GGUF type id, if the spec defines one.
    pub fn from_id(id: u32) -> Option<Self> {
        Some(match id {
            0 => ValueType::U8,
            1 => ValueType::I8,
            2 => ValueType::U16,
            3 => ValueType::I16,
            4 => ValueType::U32,
            5 => ValueType::I32,
            6 => ValueType::F32,
            7 => ValueType::Bool,
            8 => ValueType::String,
            9 => ValueType::Array,
            10 => ValueType::U64,
            11 => ValueType::I64,
            12 => ValueType::F64,
            _ => return None,
        })
    }

    /// Bytes per value for fixed-size types; `None` for strings and arrays.
    pub fn fixed_bytes(self) -> Option<usize> {
        match self {
            ValueType::U8 | ValueType::I8 | ValueType::Bool => Some(1),
            ValueType::U16 | ValueType::I16 => Some(2),
            ValueType::U32 | ValueType::I32 | ValueType::F32 => Some(4),
            ValueType::U64 | ValueType::I64 | ValueType::F64 => Some(8),
            ValueType::String | ValueType::Array => None,
        }
    }

    /// The fewest bytes one value of this type occupies (a string needs its 8-byte length).
    fn min_bytes(self) -> usize {
        self.fixed_bytes().unwrap_or(8)
    }
}

/// One metadata value, borrowed from the file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MetadataValue<'a> {
    /// `u8`
    U8(u8),
    /// `i8`
    I8(i8),
    /// `u16`
    U16(u16),
    /// `i16`
    I16(i16),
    /// `u32`
    U32(u32),
    /// `i32`
    I32(i32),
    /// `f32`
    F32(f32),
    /// `bool`
    Bool(bool),
    /// A string's raw bytes; the spec says UTF-8, see [`MetadataValue::as_str`].
    String(&'a [u8]),
    /// An array of scalars or strings.
    Array(ArrayView<'a>),
    /// `u64`
    U64(u64),
    /// `i64`
    I64(i64),
    /// `f64`
    F64(f64),
}

impl<'a> MetadataValue<'a> {
    /// The value as an unsigned integer, if it is a non-negative integer of any width.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetadataValue::U8(v) => Some(u64::from(v)),
            MetadataValue::U16(v) => Some(u64::from(v)),
            MetadataValue::U32(v) => Some(u64::from(v)),
            MetadataValue::U64(v) => Some(v),
            MetadataValue::I8(v) => u64::try_from(v).ok(),
            MetadataValue::I16(v) => u64::try_from(v).ok(),
            MetadataValue::I32(v) => u64::try_from(v).ok(),
            MetadataValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as a float, if it is `f32` or `f64`.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetadataValue::F32(v) => Some(f64::from(v)),
            MetadataValue::F64(v) => Some(v),
            _ => None,
        }
    }

    /// The value as a bool, if it is one.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            MetadataValue::Bool(v) => Some(v),
            _ => None,
        }
    }

    /// The value as UTF-8 text, if it is a valid UTF-8 string.
    pub fn as_str(&self) -> Option<&'a str> {
        match *self {
            MetadataValue::String(b) => core::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// The value as an array view, if it is an array.
    pub fn as_array(&self) -> Option<ArrayView<'a>> {
        match *self {
            MetadataValue::Array(a) => Some(a),
            _ => None,
        }
    }

    /// Reads one value of type `ty`. Arrays may hold scalars or strings, not arrays.
    pub(crate) fn read(r: &mut Reader<'a>, ty: ValueType) -> Result<Self, GgufError> {
        Ok(match ty {
            ValueType::U8 => MetadataValue::U8(r.u8()?),
            ValueType::I8 => MetadataValue::I8(i8::from_le_bytes(r.array()?)),
            ValueType::U16 => MetadataValue::U16(u16::from_le_bytes(r.array()?)),
            ValueType::I16 => MetadataValue::I16(i16::from_le_bytes(r.array()?)),
            ValueType::U32 => MetadataValue::U32(r.u32()?),
            ValueType::I32 => MetadataValue::I32(i32::from_le_bytes(r.array()?)),
            ValueType::F32 => MetadataValue::F32(f32::from_le_bytes(r.array()?)),
            ValueType::Bool => MetadataValue::Bool(r.u8()? != 0),
            ValueType::String => MetadataValue::String(r.string_bytes()?.0),
            ValueType::U64 => MetadataValue::U64(r.u64()?),
            ValueType::I64 => MetadataValue::I64(i64::from_le_bytes(r.array()?)),
            ValueType::F64 => MetadataValue::F64(f64::from_le_bytes(r.array()?)),
            ValueType::Array => MetadataValue::Array(ArrayView::read(r)?),
        })
    }
}

/// A borrowed metadata array: element type, count and the validated bytes of all elements.
///
/// Invariant: `bytes` holds exactly `len` well-formed elements of `elem_type` (never `Array`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArrayView<'a> {
    elem_type: ValueType,
    len: usize,
    bytes: &'a [u8],
    bytes_offset: u64,
}

impl<'a> ArrayView<'a> {
    /// Reads the array header and walks its elements once, checking every length.
    /// The count is checked against the remaining bytes before any element is read, so a
    /// claimed count the file cannot hold costs no work.
    fn read(r: &mut Reader<'a>) -> Result<Self, GgufError> {
        let type_at = r.offset();
        let type_id = r.u32()?;
        let elem_type =
            ValueType::from_id(type_id).ok_or(GgufError::BadValueType { type_id, at: type_at })?;
        if elem_type == ValueType::Array {
            return Err(GgufError::NestedArray { at: type_at });
        }
        let count = r.u64()?;
        let too_large = GgufError::CountTooLarge { what: CountKind::ArrayElements, count };
        let len = r.len_within_rest(count, too_large)?;
        if len.checked_mul(elem_type.min_bytes()).is_none_or(|b| b > r.remaining()) {
            return Err(too_large);
        }
        let bytes_offset = r.offset();
        let start = *r;
        match elem_type.fixed_bytes() {
            Some(size) => {
                // `len * size <= remaining` was checked above.
                r.take(len.saturating_mul(size))?;
            }
            None => {
                for _ in 0..len {
                    r.string_bytes()?;
                }
            }
        }
        let used = start.remaining().saturating_sub(r.remaining());
        let mut whole = start;
        let bytes = whole.take(used)?;
        Ok(ArrayView { elem_type, len, bytes, bytes_offset })
    }

    /// Element type.
    pub fn elem_type(&self) -> ValueType {
        self.elem_type
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The validated bytes of all elements, as stored: fixed-size elements back to back
    /// (little-endian), or for strings each a `u64` length then the bytes.
    pub fn element_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The elements in order.
    pub fn iter(&self) -> ArrayIter<'a> {
        ArrayIter {
            reader: Reader::at(self.bytes, self.bytes_offset),
            elem_type: self.elem_type,
            left: self.len,
        }
    }
}

/// Iterator over an [`ArrayView`]'s elements.
#[derive(Debug, Clone)]
pub struct ArrayIter<'a> {
    reader: Reader<'a>,
    elem_type: ValueType,
    left: usize,
}

impl<'a> Iterator for ArrayIter<'a> {
    type Item = MetadataValue<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // The bytes were validated when the view was built, so this read cannot fail; if it
        // somehow did, iteration just ends.
        MetadataValue::read(&mut self.reader, self.elem_type).ok()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left))
    }
}

//! A bounds-checked little-endian cursor over a byte slice: it can fail, never over-read.

use crate::error::GgufError;

/// Reads little-endian fields from `rest`, remembering the absolute offset for error messages.
///
/// Invariant: `offset + rest.len()` is the length of the slice the reader was created from.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
    offset: u64,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes, offset: 0 }
    }

    /// A reader over `bytes`, reporting offsets as if it started at `offset`.
    pub(crate) fn at(bytes: &'a [u8], offset: u64) -> Self {
        Reader { rest: bytes, offset }
    }

    /// Absolute offset of the next byte.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// Bytes left to read.
    pub(crate) fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// The next `n` bytes, or `Truncated` if fewer remain.
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], GgufError> {
        match self.rest.split_at_checked(n) {
            Some((head, tail)) => {
                self.rest = tail;
                self.offset = self.offset.saturating_add(n as u64);
                Ok(head)
            }
            None => Err(GgufError::Truncated { at: self.offset, needed: n as u64 }),
        }
    }

    /// The next `N` bytes as an array.
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], GgufError> {
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, GgufError> {
        Ok(u8::from_le_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A GGUF string: `u64` byte length, then that many bytes (not NUL-terminated).
    /// Returns the raw bytes and their absolute offset; UTF-8 is checked by the caller.
    pub(crate) fn string_bytes(&mut self) -> Result<(&'a [u8], u64), GgufError> {
        let len = self.u64()?;
        let at = self.offset;
        let len = self.len_within_rest(
            len,
            GgufError::CountTooLarge { what: crate::error::CountKind::StringBytes, count: len },
        )?;
        Ok((self.take(len)?, at))
    }

    /// A GGUF string that must be UTF-8 (keys and tensor names).
    pub(crate) fn str(&mut self) -> Result<&'a str, GgufError> {
        let (bytes, at) = self.string_bytes()?;
        core::str::from_utf8(bytes).map_err(|_| GgufError::InvalidUtf8 { at })
    }

    /// `len` as a `usize`, or `err` if it exceeds what remains (and so cannot be real).
    pub(crate) fn len_within_rest(&self, len: u64, err: GgufError) -> Result<usize, GgufError> {
        match usize::try_from(len) {
            Ok(n) if n <= self.rest.len() => Ok(n),
            _ => Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_and_reports_truncation_offset() {
        let bytes = [1u8, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 9];
        let mut r = Reader::new(&bytes);
        assert_eq!(r.u32(), Ok(1));
        assert_eq!(r.u64(), Ok(2));
        assert_eq!(r.offset(), 12);
        assert_eq!(r.u32(), Err(GgufError::Truncated { at: 12, needed: 4 }));
        assert_eq!(r.u8(), Ok(9));
    }

    #[test]
    fn string_longer_than_file_is_rejected_before_reading() {
        let mut bytes = u64::MAX.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"abc");
        let mut r = Reader::new(&bytes);
        assert!(matches!(r.str(), Err(GgufError::CountTooLarge { .. })));
    }

    #[test]
    fn invalid_utf8_is_rejected() {
        let mut bytes = 2u64.to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0xff, 0xfe]);
        let mut r = Reader::new(&bytes);
        assert_eq!(r.str(), Err(GgufError::InvalidUtf8 { at: 8 }));
    }
}

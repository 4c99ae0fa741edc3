//! [`Utf8Stream`]: bytes in, only whole and valid UTF-8 out.

use core::fmt;

/// Turns a stream of bytes into whole UTF-8 text: a character split across tokens is held back
/// until its last byte arrives. Holds at most 3 pending bytes (a fixed 4-byte buffer).
///
/// Invalid bytes become U+FFFD exactly as `String::from_utf8_lossy` would replace them in the
/// whole stream, so the text written is the same however the bytes are split.
///
/// ```
/// use tinymla_core::vocab::Utf8Stream;
/// let mut s = Utf8Stream::new();
/// let mut out = String::new();
/// s.push(&[b'a', 0xE4, 0xB8], &mut out).unwrap(); // "a" + the first two bytes of "中"
/// assert_eq!(out, "a");
/// s.push(&[0xAD], &mut out).unwrap();
/// s.finish(&mut out).unwrap();
/// assert_eq!(out, "a中");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Utf8Stream {
    pending: [u8; 4],
    n_pending: usize,
}

impl Utf8Stream {
    /// An empty stream.
    pub const fn new() -> Self {
        Utf8Stream { pending: [0; 4], n_pending: 0 }
    }

    /// Bytes of an incomplete character held back.
    pub fn n_pending(&self) -> usize {
        self.n_pending
    }

    /// Writes every complete character of `pending ++ bytes` to `w` and keeps an incomplete
    /// tail for the next call.
    ///
    /// # Errors
    /// Whatever `w` returns.
    pub fn push(&mut self, mut bytes: &[u8], w: &mut impl fmt::Write) -> fmt::Result {
        // Finish (or reject) the held-back character one byte at a time.
        while self.n_pending > 0 {
            let Some((&b, rest)) = bytes.split_first() else {
                return Ok(());
            };
            let mut buf = self.pending;
            let n = self.n_pending;
            if let Some(slot) = buf.get_mut(n) {
                *slot = b;
            }
            match core::str::from_utf8(buf.get(..=n).unwrap_or(&[])) {
                Ok(s) => {
                    self.n_pending = 0;
                    bytes = rest;
                    w.write_str(s)?;
                }
                Err(e) if e.error_len().is_none() => {
                    self.pending = buf;
                    self.n_pending = n + 1;
                    bytes = rest;
                }
                // The held bytes were a valid prefix, so `b` broke it: they become one U+FFFD
                // and `b` starts afresh.
                Err(_) => {
                    self.n_pending = 0;
                    w.write_char(char::REPLACEMENT_CHARACTER)?;
                }
            }
        }
        loop {
            match core::str::from_utf8(bytes) {
                Ok(s) => return w.write_str(s),
                Err(e) => {
                    let (good, bad) = bytes.split_at_checked(e.valid_up_to()).unwrap_or((&[], &[]));
                    w.write_str(core::str::from_utf8(good).unwrap_or(""))?;
                    match e.error_len() {
                        Some(n) => {
                            w.write_char(char::REPLACEMENT_CHARACTER)?;
                            bytes = bad.get(n..).unwrap_or(&[]);
                        }
                        None => {
                            // An incomplete character at the end: at most 3 bytes.
                            let n = bad.len().min(3);
                            if let (Some(dst), Some(src)) =
                                (self.pending.get_mut(..n), bad.get(..n))
                            {
                                dst.copy_from_slice(src);
                            }
                            self.n_pending = n;
                            return Ok(());
                        }
                    }
                }
            }
        }
    }

    /// Ends the stream: an incomplete held-back character is written as one U+FFFD.
    ///
    /// # Errors
    /// Whatever `w` returns.
    pub fn finish(&mut self, w: &mut impl fmt::Write) -> fmt::Result {
        if self.n_pending > 0 {
            self.n_pending = 0;
            w.write_char(char::REPLACEMENT_CHARACTER)?;
        }
        Ok(())
    }
}

//! Token ids → bytes → text from the GGUF vocabulary (`tokenizer.ggml.*`), with no allocator.
//!
//! Only byte-level BPE vocabularies (`tokenizer.ggml.model = "gpt2"`) are read; every
//! DeepSeek-V2/V3 GGUF has one. A normal token's string spells each of its bytes as one char of
//! GPT-2's `bytes_to_unicode` table (openai/gpt-2 `src/encoder.py`), so decoding maps every char
//! back to its byte, as Hugging Face's `ByteLevel` decoder and llama.cpp's `token_to_piece` do.
//! Tokens are bytes, not text: one UTF-8 character may be split over several tokens, so printing
//! goes through [`Utf8Stream`], which only ever emits whole, valid UTF-8.

mod utf8;
pub use utf8::Utf8Stream;

use crate::error::{BufferKind, ConfigError, Error};
use crate::gguf::{ArrayView, Gguf, MetadataValue, ValueType};
pub use crate::tokenizer_model::TokenizerModel;

/// Tokenizer family (`"gpt2"` = byte-level BPE; the only one read).
pub const KEY_MODEL: &str = "tokenizer.ggml.model";
/// Pre-tokenizer name, e.g. `"deepseek-llm"`, `"deepseek-v3"`, `"gpt-2"`.
pub const KEY_PRE: &str = "tokenizer.ggml.pre";
/// Token strings, indexed by id.
pub const KEY_TOKENS: &str = "tokenizer.ggml.tokens";
/// Token types ([`TokenType`] as `i32`), indexed by id. Optional: absent means all normal.
pub const KEY_TOKEN_TYPE: &str = "tokenizer.ggml.token_type";
/// BPE merges, `"left right"` in rank order (read by the host encoder, not here).
pub const KEY_MERGES: &str = "tokenizer.ggml.merges";
/// Beginning-of-sequence token id.
pub const KEY_BOS: &str = "tokenizer.ggml.bos_token_id";
/// End-of-sequence token id.
pub const KEY_EOS: &str = "tokenizer.ggml.eos_token_id";
/// Whether prompts start with BOS.
pub const KEY_ADD_BOS: &str = "tokenizer.ggml.add_bos_token";

/// `tokenizer.ggml.token_type` values (llama.cpp's `llama_token_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum TokenType {
    /// 0: never written by converters; decodes to nothing, as in llama.cpp.
    Undefined,
    /// 1: an ordinary byte-level BPE token.
    Normal,
    /// 2: the unknown token; decodes like a control token.
    Unknown,
    /// 3: a special token such as BOS/EOS (HF `added_tokens` with `special: true`).
    Control,
    /// 4: an added token that is not special (e.g. `<think>`); decodes to its text as stored.
    UserDefined,
    /// 5: a padding slot (`[PAD123]`); decodes to nothing.
    Unused,
    /// 6: a raw byte spelled `<0xAB>`.
    Byte,
}

impl TokenType {
    /// The type for a stored value, if it is one of llama.cpp's.
    pub fn from_i64(v: i64) -> Option<Self> {
        Some(match v {
            0 => TokenType::Undefined,
            1 => TokenType::Normal,
            2 => TokenType::Unknown,
            3 => TokenType::Control,
            4 => TokenType::UserDefined,
            5 => TokenType::Unused,
            6 => TokenType::Byte,
            _ => return None,
        })
    }

    /// Whether the text holds this token as a whole (special and added tokens), rather than
    /// reaching it through BPE merges.
    pub fn is_added(self) -> bool {
        matches!(self, TokenType::Control | TokenType::UserDefined | TokenType::Unknown)
    }
}

/// What control (and unknown) tokens decode to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SpecialTokens {
    /// Nothing (the default: `<｜end▁of▁sentence｜>` is not part of the text).
    #[default]
    Skip,
    /// Their stored text, e.g. `<｜end▁of▁sentence｜>`.
    Render,
}

/// The byte a char of GPT-2's `bytes_to_unicode` table stands for, if it is in the table.
///
/// The table keeps the 188 printable Latin-1 bytes (`!`..=`~`, `¡`..=`¬`, `®`..=`ÿ`) as
/// themselves and maps the other 68 (0..=32, 127..=160, 173), in order, to U+0100..=U+0143.
pub fn unicode_to_byte(c: char) -> Option<u8> {
    let cp = u32::from(c);
    match cp {
        0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF => u8::try_from(cp).ok(),
        0x100..=0x120 => u8::try_from(cp - 0x100).ok(),
        0x121..=0x142 => u8::try_from(cp - 0x121 + 0x7F).ok(),
        0x143 => Some(0xAD),
        _ => None,
    }
}

/// The char GPT-2's `bytes_to_unicode` table spells byte `b` with (inverse of
/// [`unicode_to_byte`]).
pub fn byte_to_unicode(b: u8) -> char {
    let cp = match b {
        0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF => u32::from(b),
        0x00..=0x20 => 0x100 + u32::from(b),
        0x7F..=0xA0 => 0x121 + u32::from(b - 0x7F),
        _ => 0x143, // 0xAD, the only byte left
    };
    char::from_u32(cp).unwrap_or(char::REPLACEMENT_CHARACTER)
}

/// Decodes one token's stored text into the bytes it stands for; returns how many were written.
///
/// `Normal` tokens map char by char through [`unicode_to_byte`]; if any char is outside the
/// table (or the text is not UTF-8) the stored bytes are copied unchanged, as Hugging Face's
/// `ByteLevel` decoder does. `UserDefined` tokens copy their text; `Control` and `Unknown`
/// copy it only with [`SpecialTokens::Render`]; `Byte` tokens (`<0xAB>`) give their byte;
/// `Unused` and `Undefined` give nothing (llama.cpp's `token_to_piece` rules).
///
/// # Errors
/// [`Error::BufferTooSmall`] (`BufferKind::TokenText`) if `out` cannot hold the bytes; nothing
/// useful is written then. `text.len()` bytes always suffice.
pub fn decode_piece(
    text: &[u8],
    ty: TokenType,
    special: SpecialTokens,
    out: &mut [u8],
) -> Result<usize, Error> {
    let raw = |out: &mut [u8]| copy_into(text, out);
    match ty {
        TokenType::Normal => match byte_level_len(text) {
            Some(needed) => {
                check_room(needed, out)?;
                let chars = core::str::from_utf8(text).unwrap_or("").chars();
                for (slot, c) in out.iter_mut().zip(chars) {
                    *slot = unicode_to_byte(c).unwrap_or(0);
                }
                Ok(needed)
            }
            None => raw(out),
        },
        TokenType::UserDefined => raw(out),
        TokenType::Control | TokenType::Unknown => match special {
            SpecialTokens::Skip => Ok(0),
            SpecialTokens::Render => raw(out),
        },
        TokenType::Byte => match parse_byte_token(text) {
            Some(b) => copy_into(&[b], out),
            None => Ok(0),
        },
        TokenType::Unused | TokenType::Undefined => Ok(0),
    }
}

/// Chars in `text` if it is UTF-8 and every char is in the byte-level table.
fn byte_level_len(text: &[u8]) -> Option<usize> {
    let s = core::str::from_utf8(text).ok()?;
    s.chars().try_fold(0usize, |n, c| unicode_to_byte(c).map(|_| n + 1))
}

/// `<0xAB>` → `0xAB`.
fn parse_byte_token(text: &[u8]) -> Option<u8> {
    let hex = text.strip_prefix(b"<0x")?.strip_suffix(b">")?;
    let s = core::str::from_utf8(hex).ok().filter(|s| s.len() == 2)?;
    u8::from_str_radix(s, 16).ok()
}

fn check_room(needed: usize, out: &[u8]) -> Result<(), Error> {
    if needed > out.len() {
        return Err(Error::BufferTooSmall {
            buffer: BufferKind::TokenText,
            needed,
            given: out.len(),
        });
    }
    Ok(())
}

fn copy_into(bytes: &[u8], out: &mut [u8]) -> Result<usize, Error> {
    check_room(bytes.len(), out)?;
    if let Some(dst) = out.get_mut(..bytes.len()) {
        dst.copy_from_slice(bytes);
    }
    Ok(bytes.len())
}

/// The vocabulary of a byte-level BPE GGUF, borrowed from the file: id → stored text, type and
/// decoded bytes, plus BOS/EOS and the pre-tokenizer name.
///
/// Invariant: `tokens` holds `n_vocab` strings; `types`, when present, `n_vocab` valid integers.
/// Without an index ([`Vocab::new`]) looking a token up walks the array from the start, O(id);
/// with one ([`Vocab::with_index`]) it is O(1).
#[derive(Debug, Clone, Copy)]
pub struct Vocab<'a> {
    tokens: ArrayView<'a>,
    types: Option<ArrayView<'a>>,
    index: Option<Index<'a>>,
    n_vocab: u32,
    bos: Option<u32>,
    eos: Option<u32>,
    add_bos: Option<bool>,
    pre: Option<&'a str>,
    max_token_bytes: usize,
}

/// Where each token sits in the token array, so lookups need no walk.
#[derive(Debug, Clone, Copy)]
struct Index<'a> {
    /// `offsets[id]`: offset of token `id`'s string bytes in the token array's element bytes
    /// (its `u64` length precedes them).
    offsets: &'a [u32],
}

impl<'a> Vocab<'a> {
    /// Reads and validates the tokenizer keys of `gguf`. Walks the token and type arrays once.
    ///
    /// # Errors
    /// `Config(MissingKey)` without `tokenizer.ggml.model` or `.tokens`;
    /// `Config(UnsupportedTokenizer)` unless the model is `"gpt2"`; `Config(WrongKeyType)` for a
    /// key of the wrong type; `Config(InvalidValue)` for an empty token list, a type array of
    /// another length or with values outside 0..=6, or a BOS/EOS id outside the vocabulary.
    pub fn new(gguf: &Gguf<'a>) -> Result<Self, Error> {
        let model = gguf.get(KEY_MODEL).ok_or(ConfigError::MissingKey(KEY_MODEL))?;
        let model = model.as_str().ok_or(ConfigError::WrongKeyType(KEY_MODEL))?;
        match TokenizerModel::from_name(model) {
            TokenizerModel::Gpt2 => {}
            other => return Err(ConfigError::UnsupportedTokenizer(other).into()),
        }
        let tokens = gguf
            .get(KEY_TOKENS)
            .ok_or(ConfigError::MissingKey(KEY_TOKENS))?
            .as_array()
            .filter(|a| a.elem_type() == ValueType::String)
            .ok_or(ConfigError::WrongKeyType(KEY_TOKENS))?;
        let n_vocab = u32::try_from(tokens.len())
            .ok()
            .filter(|&n| n > 0)
            .ok_or(ConfigError::InvalidValue(KEY_TOKENS))?;
        let max_token_bytes = tokens.iter().map(|t| string_bytes(&t).len()).max().unwrap_or(0);

        let types = match gguf.get(KEY_TOKEN_TYPE) {
            None => None,
            Some(v) => {
                let a = v
                    .as_array()
                    .filter(|a| matches!(a.elem_type(), ValueType::I32 | ValueType::U32))
                    .ok_or(ConfigError::WrongKeyType(KEY_TOKEN_TYPE))?;
                let all_valid = a.iter().all(|t| type_of(&t).is_some());
                if a.len() != tokens.len() || !all_valid {
                    return Err(ConfigError::InvalidValue(KEY_TOKEN_TYPE).into());
                }
                Some(a)
            }
        };
        let id_key = |key: &'static str| -> Result<Option<u32>, Error> {
            match gguf.get(key) {
                None => Ok(None),
                Some(v) => {
                    let id = v.as_u64().ok_or(ConfigError::WrongKeyType(key))?;
                    match u32::try_from(id) {
                        Ok(id) if id < n_vocab => Ok(Some(id)),
                        _ => Err(ConfigError::InvalidValue(key).into()),
                    }
                }
            }
        };
        let add_bos = match gguf.get(KEY_ADD_BOS) {
            None => None,
            Some(v) => Some(v.as_bool().ok_or(ConfigError::WrongKeyType(KEY_ADD_BOS))?),
        };
        let pre = match gguf.get(KEY_PRE) {
            None => None,
            Some(v) => Some(v.as_str().ok_or(ConfigError::WrongKeyType(KEY_PRE))?),
        };
        Ok(Vocab {
            tokens,
            types,
            index: None,
            n_vocab,
            bos: id_key(KEY_BOS)?,
            eos: id_key(KEY_EOS)?,
            add_bos,
            pre,
            max_token_bytes,
        })
    }

    /// Parses `file` and builds the vocabulary with an O(1) lookup index in `offsets`, which
    /// must hold at least [`Vocab::n_vocab`] entries (4 bytes per token: 512 KiB for
    /// DeepSeek-V3's 129,280 tokens). Building walks the token array once.
    ///
    /// # Errors
    /// Everything [`Gguf::parse`] and [`Vocab::new`] return; [`Error::BufferTooSmall`]
    /// (`BufferKind::VocabIndex`) if `offsets` is short; [`Error::SizeOverflow`] if the token
    /// array is 4 GiB or larger.
    pub fn with_index(file: &'a [u8], offsets: &'a mut [u32]) -> Result<Self, Error> {
        let gguf = Gguf::parse(file)?;
        let mut vocab = Vocab::new(&gguf)?;
        let needed = vocab.n_vocab();
        let given = offsets.len();
        let offsets = offsets.get_mut(..needed).ok_or(Error::BufferTooSmall {
            buffer: BufferKind::VocabIndex,
            needed,
            given,
        })?;
        // Strings are stored back to back, each after its `u64` length.
        let mut at = 0usize;
        for (slot, token) in offsets.iter_mut().zip(vocab.tokens.iter()) {
            let start = at.checked_add(8).ok_or(Error::SizeOverflow)?;
            *slot = u32::try_from(start).map_err(|_| Error::SizeOverflow)?;
            at = start.checked_add(string_bytes(&token).len()).ok_or(Error::SizeOverflow)?;
        }
        vocab.index = Some(Index { offsets });
        Ok(vocab)
    }

    /// Number of tokens (at least 1).
    pub fn n_vocab(&self) -> usize {
        self.tokens.len()
    }

    /// The longest stored token text in bytes: a decode buffer this long always suffices.
    pub fn max_token_bytes(&self) -> usize {
        self.max_token_bytes
    }

    /// `tokenizer.ggml.bos_token_id`, if present.
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    /// `tokenizer.ggml.eos_token_id`, if present.
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    /// `tokenizer.ggml.add_bos_token`, if present.
    pub fn add_bos(&self) -> Option<bool> {
        self.add_bos
    }

    /// `tokenizer.ggml.pre`, if present.
    pub fn pre(&self) -> Option<&'a str> {
        self.pre
    }

    /// Every token's stored text and type, in id order: one pass over the arrays, for
    /// callers that copy the whole vocabulary (the host tokenizer).
    pub fn iter(&self) -> impl Iterator<Item = (&'a [u8], TokenType)> + 'a {
        let types = self.types;
        let mut type_iter = types.map(|t| t.iter());
        self.tokens.iter().map(move |t| {
            let ty = match type_iter.as_mut() {
                None => TokenType::Normal,
                Some(it) => it.next().and_then(|v| type_of(&v)).unwrap_or(TokenType::Undefined),
            };
            (string_bytes(&t), ty)
        })
    }

    /// Whether the O(1) index is in use.
    pub fn is_indexed(&self) -> bool {
        self.index.is_some()
    }

    fn check_id(&self, id: u32) -> Result<usize, Error> {
        usize::try_from(id)
            .ok()
            .filter(|&i| i < self.n_vocab())
            .ok_or(Error::TokenOutOfRange { token: id, vocab_size: self.n_vocab })
    }

    /// Token `id`'s text exactly as stored (byte-level spelling, e.g. `Ġthe`).
    ///
    /// # Errors
    /// [`Error::TokenOutOfRange`] if `id >= n_vocab`.
    pub fn token_text(&self, id: u32) -> Result<&'a [u8], Error> {
        let i = self.check_id(id)?;
        let indexed = self.index.and_then(|ix| {
            let array = self.tokens.element_bytes();
            let at = usize::try_from(*ix.offsets.get(i)?).ok()?;
            let len_bytes = array.get(at.checked_sub(8)?..at)?;
            let len = usize::try_from(u64::from_le_bytes(len_bytes.try_into().ok()?)).ok()?;
            array.get(at..at.checked_add(len)?)
        });
        // The walk is the fallback for an index that cannot answer, which validation rules out.
        Ok(indexed.unwrap_or_else(|| self.tokens.iter().nth(i).map_or(&[], |v| string_bytes(&v))))
    }

    /// Token `id`'s type ([`TokenType::Normal`] when the file has no type array).
    ///
    /// # Errors
    /// [`Error::TokenOutOfRange`] if `id >= n_vocab`.
    pub fn token_type(&self, id: u32) -> Result<TokenType, Error> {
        let i = self.check_id(id)?;
        let Some(types) = self.types else {
            return Ok(TokenType::Normal);
        };
        // Type arrays hold 4-byte integers (I32 or U32, validated by `new`): random access.
        let indexed = self.index.and_then(|_| {
            let at = i.checked_mul(4)?;
            let raw = types.element_bytes().get(at..at.checked_add(4)?)?;
            TokenType::from_i64(i64::from(i32::from_le_bytes(raw.try_into().ok()?)))
        });
        Ok(indexed.or_else(|| type_of(&types.iter().nth(i)?)).unwrap_or(TokenType::Undefined))
    }

    /// Decodes token `id` into the bytes it stands for, skipping control tokens; see
    /// [`decode_piece`]. Returns how many bytes were written to `out`.
    ///
    /// # Errors
    /// [`Error::TokenOutOfRange`] if `id >= n_vocab`; [`Error::BufferTooSmall`] if `out` is
    /// shorter than the decoded bytes ([`Vocab::max_token_bytes`] always suffices).
    pub fn decode_token(&self, id: u32, out: &mut [u8]) -> Result<usize, Error> {
        self.decode_token_with(id, SpecialTokens::Skip, out)
    }

    /// [`Vocab::decode_token`], choosing what control tokens decode to.
    ///
    /// # Errors
    /// As [`Vocab::decode_token`].
    pub fn decode_token_with(
        &self,
        id: u32,
        special: SpecialTokens,
        out: &mut [u8],
    ) -> Result<usize, Error> {
        decode_piece(self.token_text(id)?, self.token_type(id)?, special, out)
    }
}

fn string_bytes<'a>(v: &MetadataValue<'a>) -> &'a [u8] {
    match *v {
        MetadataValue::String(b) => b,
        _ => &[],
    }
}

fn type_of(v: &MetadataValue<'_>) -> Option<TokenType> {
    match *v {
        MetadataValue::I32(t) => TokenType::from_i64(i64::from(t)),
        MetadataValue::U32(t) => TokenType::from_i64(i64::from(t)),
        _ => None,
    }
}

#[cfg(test)]
mod tests;

//! Text ⇄ token ids for byte-level BPE GGUFs (`tokenizer.ggml.model = "gpt2"`), matching
//! Hugging Face `tokenizers` on the model's own `tokenizer.json` pipeline.
//!
//! Encoding: added tokens are cut out of the text whole ([`added`]), each stretch between them
//! is split by the pre-tokenizer named in `tokenizer.ggml.pre` ([`pretokenize`]), and each piece
//! is merged by rank ([`bpe`]). Decoding is the core's [`decode_piece`], the same code firmware
//! uses, and streamed text goes through the core's [`Utf8Stream`].

pub mod added;
pub mod bpe;
pub mod pretokenize;

use std::collections::HashMap;
use std::fmt;

use tinymla_core::gguf::{Gguf, MetadataValue, ValueType};
use tinymla_core::vocab::{decode_piece, SpecialTokens, TokenType, Utf8Stream, Vocab, KEY_MERGES};
use tinymla_core::{ConfigError, Error};

use crate::chat_template::KEY_CHAT_TEMPLATE;

pub use added::{AddedTokens, Segment};
pub use bpe::{Bpe, MergeError};
pub use pretokenize::{Flavour, PreTokenizer};

/// GGUF key of the end-of-turn token, where a converter wrote one.
pub const KEY_EOT: &str = "tokenizer.ggml.eot_token_id";
/// GGUF key of the end-of-message token (tool calls), where a converter wrote one.
pub const KEY_EOM: &str = "tokenizer.ggml.eom_token_id";

/// Texts of control tokens that end a turn in the chat templates of MLA-family and other
/// common models (DeepSeek, ChatML, Llama 3, Gemma, Phi, GLM), counted as end of generation
/// when a file names no end-of-turn token: llama.cpp's vocabulary loader uses the same rule.
pub const END_OF_TURN_TEXTS: &[&str] = &[
    "<｜end▁of▁sentence｜>",
    "<|im_end|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|user|>",
    "<|observation|>",
    "<EOT>",
];

/// Why a tokenizer could not be built or used.
#[derive(Debug)]
pub enum TokenizerError {
    /// The file's tokenizer keys are missing or malformed, or a token id is out of range.
    Core(Error),
    /// `tokenizer.ggml.pre` names a pre-tokenizer tinymla does not implement.
    UnsupportedPre(String),
    /// A `tokenizer.ggml.merges` rule is malformed or names tokens not in the vocabulary.
    Merge(MergeError),
    /// A built-in split regex failed to compile (a bug; the tests compile every one).
    Regex(Box<fancy_regex::Error>),
}

impl fmt::Display for TokenizerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenizerError::Core(e) => write!(f, "{e}"),
            TokenizerError::UnsupportedPre(pre) => write!(
                f,
                "tokenizer.ggml.pre = {pre:?} is not supported \
                 (supported: deepseek-llm, deepseek-v3, glm4, gpt-2, default)"
            ),
            TokenizerError::Merge(MergeError::Malformed(i)) => {
                write!(f, "tokenizer.ggml.merges[{i}] is not \"left right\"")
            }
            TokenizerError::Merge(MergeError::NotInVocab(i)) => {
                write!(f, "tokenizer.ggml.merges[{i}] names a token that is not in the vocabulary")
            }
            TokenizerError::Regex(e) => write!(f, "pre-tokenizer regex: {e}"),
        }
    }
}

impl std::error::Error for TokenizerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TokenizerError::Core(e) => Some(e),
            TokenizerError::Regex(e) => Some(e.as_ref()),
            _ => None,
        }
    }
}

impl From<Error> for TokenizerError {
    fn from(e: Error) -> Self {
        TokenizerError::Core(e)
    }
}

/// How [`Tokenizer::encode_with`] treats the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeOptions {
    /// Put the BOS token first (if the vocabulary has one).
    pub add_bos: bool,
    /// Match control tokens such as `<｜end▁of▁sentence｜>` written in the text (Hugging Face
    /// does, so this is the default). User-defined added tokens are always matched.
    pub parse_special: bool,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions { add_bos: false, parse_special: true }
    }
}

/// A byte-level BPE tokenizer that owns everything it needs (no borrow of the file).
#[derive(Debug)]
pub struct Tokenizer {
    pre: PreTokenizer,
    bpe: Bpe,
    added: AddedTokens,
    /// Stored text of every token, by id.
    tokens: Vec<Box<[u8]>>,
    types: Vec<TokenType>,
    bos: Option<u32>,
    eos: Option<u32>,
    /// Tokens that end a reply: EOS, `tokenizer.ggml.eot_token_id` / `eom_token_id`, and the
    /// control tokens named in [`END_OF_TURN_TEXTS`]; sorted, no duplicates.
    end_of_generation: Vec<u32>,
    add_bos: bool,
    /// `tokenizer.chat_template` (read here because this is where the file is parsed).
    chat_template: Result<Option<Box<str>>, Error>,
}

impl Tokenizer {
    /// Reads the tokenizer from a GGUF file's bytes.
    ///
    /// # Errors
    /// [`TokenizerError::Core`] for missing or malformed keys (including a tokenizer other than
    /// byte-level BPE, and a missing `tokenizer.ggml.merges`); [`TokenizerError::UnsupportedPre`]
    /// and [`TokenizerError::Merge`] as described there.
    pub fn from_gguf(file: &[u8]) -> Result<Self, TokenizerError> {
        let gguf = Gguf::parse(file).map_err(Error::from)?;
        let vocab = Vocab::new(&gguf)?;
        let n_vocab = vocab.n_vocab();
        let flavour = Flavour::from_pre(vocab.pre())
            .ok_or_else(|| TokenizerError::UnsupportedPre(vocab.pre().unwrap_or("").to_owned()))?;

        let (tokens, types): (Vec<Box<[u8]>>, Vec<TokenType>) =
            vocab.iter().map(|(text, ty)| (Box::from(text), ty)).unzip();
        // Ids are u32 everywhere.
        u32::try_from(n_vocab).map_err(|_| Error::SizeOverflow)?;

        // Merges name tokens by text; added tokens are matched whole and never take part.
        let mut by_text: HashMap<&[u8], u32> = HashMap::with_capacity(n_vocab);
        for (id, (text, ty)) in (0u32..).zip(tokens.iter().zip(&types)) {
            if !ty.is_added() {
                by_text.entry(&**text).or_insert(id);
            }
        }
        let merges = gguf
            .get(KEY_MERGES)
            .ok_or(Error::Config(ConfigError::MissingKey(KEY_MERGES)))?
            .as_array()
            .filter(|a| a.elem_type() == ValueType::String)
            .ok_or(Error::Config(ConfigError::WrongKeyType(KEY_MERGES)))?;
        let rules = merges.iter().map(|v| match v {
            MetadataValue::String(b) => b,
            _ => &[],
        });
        let mut bpe =
            Bpe::new(|t| by_text.get(t).copied(), rules).map_err(TokenizerError::Merge)?;
        if flavour.ignores_merges() {
            bpe = bpe.ignoring_merges(by_text.iter().map(|(text, id)| (*text, *id)));
        }

        let added = AddedTokens::new(
            (0u32..)
                .zip(tokens.iter().zip(&types))
                .filter(|(_, (_, ty))| ty.is_added())
                .map(|(id, (text, ty))| (&**text, id, *ty != TokenType::UserDefined)),
        );
        let pre = PreTokenizer::new(flavour).map_err(TokenizerError::Regex)?;
        let id_key = |key: &'static str| match gguf.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|id| u32::try_from(id).ok())
                .filter(|id| (*id as usize) < n_vocab)
                .map(Some)
                .ok_or(Error::Config(ConfigError::WrongKeyType(key))),
        };
        let named_in_text = (0u32..).zip(tokens.iter().zip(&types)).filter(|(_, (text, ty))| {
            **ty == TokenType::Control && END_OF_TURN_TEXTS.iter().any(|t| t.as_bytes() == &***text)
        });
        let mut end_of_generation: Vec<u32> = [vocab.eos(), id_key(KEY_EOT)?, id_key(KEY_EOM)?]
            .into_iter()
            .flatten()
            .chain(named_in_text.map(|(id, _)| id))
            .collect();
        end_of_generation.sort_unstable();
        end_of_generation.dedup();
        Ok(Tokenizer {
            pre,
            bpe,
            added,
            bos: vocab.bos(),
            eos: vocab.eos(),
            end_of_generation,
            add_bos: vocab.add_bos().unwrap_or(false),
            tokens,
            types,
            chat_template: match gguf.get(KEY_CHAT_TEMPLATE) {
                None => Ok(None),
                Some(v) => v
                    .as_str()
                    .map(|s| Some(Box::from(s)))
                    .ok_or(Error::Config(ConfigError::WrongKeyType(KEY_CHAT_TEMPLATE))),
            },
        })
    }

    /// The file's Jinja chat template (`tokenizer.chat_template`), if it has one.
    ///
    /// # Errors
    /// [`ConfigError::WrongKeyType`] if the key is not a string.
    pub fn chat_template(&self) -> Result<Option<&str>, Error> {
        self.chat_template.as_ref().map(Option::as_deref).map_err(|e| *e)
    }

    /// Token ids for `text`, with BOS first if `add_bos`; control tokens written in the text
    /// are matched.
    pub fn encode(&self, text: &str, add_bos: bool) -> Vec<u32> {
        self.encode_with(text, EncodeOptions { add_bos, ..EncodeOptions::default() })
    }

    /// Token ids for `text`.
    pub fn encode_with(&self, text: &str, options: EncodeOptions) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 1);
        if options.add_bos {
            out.extend(self.bos);
        }
        for segment in self.added.segments(text, options.parse_special) {
            match segment {
                Segment::Token(id) => out.push(id),
                Segment::Text(t) => {
                    for piece in self.pre.split(t) {
                        self.bpe.encode_piece(piece.as_bytes(), &mut out);
                    }
                }
            }
        }
        out
    }

    /// Appends token `id`'s bytes to `out` (see [`decode_piece`]).
    ///
    /// # Errors
    /// [`Error::TokenOutOfRange`] if `id` is not in the vocabulary.
    pub fn decode_token(
        &self,
        id: u32,
        special: SpecialTokens,
        out: &mut Vec<u8>,
    ) -> Result<(), TokenizerError> {
        let range = Error::TokenOutOfRange { token: id, vocab_size: self.vocab_size_u32() };
        let i = usize::try_from(id).map_err(|_| range)?;
        let (text, ty) = self.tokens.get(i).zip(self.types.get(i)).ok_or(range)?;
        let start = out.len();
        out.resize(start + text.len(), 0);
        let n = decode_piece(text, *ty, special, &mut out[start..])?;
        out.truncate(start + n);
        Ok(())
    }

    /// The bytes `ids` stand for, control tokens skipped unless `special` says otherwise.
    ///
    /// # Errors
    /// [`Error::TokenOutOfRange`] for the first id not in the vocabulary.
    pub fn decode_bytes(
        &self,
        ids: &[u32],
        special: SpecialTokens,
    ) -> Result<Vec<u8>, TokenizerError> {
        let mut out = Vec::new();
        for &id in ids {
            self.decode_token(id, special, &mut out)?;
        }
        Ok(out)
    }

    /// The text `ids` stand for (control tokens skipped; invalid UTF-8 becomes U+FFFD).
    ///
    /// # Errors
    /// [`Error::TokenOutOfRange`] for the first id not in the vocabulary.
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        Ok(String::from_utf8_lossy(&self.decode_bytes(ids, SpecialTokens::Skip)?).into_owned())
    }

    /// A streaming decoder that yields only whole UTF-8 characters.
    pub fn stream(&self, special: SpecialTokens) -> DecodeStream<'_> {
        DecodeStream { tokenizer: self, special, utf8: Utf8Stream::new(), bytes: Vec::new() }
    }

    /// Number of tokens.
    pub fn n_vocab(&self) -> usize {
        self.tokens.len()
    }

    fn vocab_size_u32(&self) -> u32 {
        u32::try_from(self.tokens.len()).unwrap_or(u32::MAX)
    }

    /// Token `id`'s stored text (byte-level spelling), if it exists.
    pub fn token_text(&self, id: u32) -> Option<&[u8]> {
        self.tokens.get(usize::try_from(id).ok()?).map(|t| &**t)
    }

    /// Token `id`'s type, if it exists.
    pub fn token_type(&self, id: u32) -> Option<TokenType> {
        self.types.get(usize::try_from(id).ok()?).copied()
    }

    /// BOS id, if the vocabulary has one.
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    /// EOS id, if the vocabulary has one.
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    /// True for a token that ends a reply: EOS, the file's end-of-turn and end-of-message
    /// tokens, and control tokens spelled like a chat template's end of turn
    /// ([`END_OF_TURN_TEXTS`]).
    pub fn is_end_of_generation(&self, id: u32) -> bool {
        self.end_of_generation.binary_search(&id).is_ok()
    }

    /// Whether the file asks for BOS at the start of a prompt (`tokenizer.ggml.add_bos_token`).
    pub fn add_bos_default(&self) -> bool {
        self.add_bos
    }

    /// The pre-tokenizer in use.
    pub fn flavour(&self) -> Flavour {
        self.pre.flavour()
    }

    /// Number of BPE merge rules.
    pub fn n_merges(&self) -> usize {
        self.bpe.n_merges()
    }

    /// Number of added (special and user-defined) tokens matched in text.
    pub fn n_added(&self) -> usize {
        self.added.len()
    }
}

/// Decodes tokens one at a time into text, holding back a character split across tokens.
#[derive(Debug)]
pub struct DecodeStream<'t> {
    tokenizer: &'t Tokenizer,
    special: SpecialTokens,
    utf8: Utf8Stream,
    bytes: Vec<u8>,
}

impl DecodeStream<'_> {
    /// The whole characters that token `id` completes (possibly empty).
    ///
    /// # Errors
    /// [`Error::TokenOutOfRange`] if `id` is not in the vocabulary.
    pub fn push(&mut self, id: u32) -> Result<String, TokenizerError> {
        self.bytes.clear();
        self.tokenizer.decode_token(id, self.special, &mut self.bytes)?;
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = self.utf8.push(&self.bytes, &mut text);
        Ok(text)
    }

    /// Ends the stream: U+FFFD if a character was left incomplete, else nothing.
    pub fn finish(&mut self) -> String {
        let mut text = String::new();
        let _ = self.utf8.finish(&mut text);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf_writer::{GgufWriter, Value};

    /// A small byte-level vocabulary file: 256 byte tokens, `hello` and its merges.
    fn vocab_file() -> Vec<u8> {
        let mut tokens: Vec<String> =
            (0..=255u8).map(|b| tinymla_core::vocab::byte_to_unicode(b).to_string()).collect();
        tokens.extend(["he", "ll", "hell", "hello"].map(String::from));
        let n = tokens.len();
        let mut w = GgufWriter::new();
        w.kv("general.architecture", Value::Str("deepseek2".into()))
            .kv("tokenizer.ggml.model", Value::Str("gpt2".into()))
            .kv("tokenizer.ggml.pre", Value::Str("deepseek-v3".into()))
            .kv("tokenizer.ggml.tokens", Value::StrArray(tokens))
            .kv("tokenizer.ggml.token_type", Value::I32Array(vec![1; n]))
            .kv(
                KEY_MERGES,
                Value::StrArray(["h e", "l l", "he ll", "hell o"].map(String::from).into()),
            );
        let mut file = Vec::new();
        w.write(&mut file).unwrap();
        file
    }

    /// Overwrites the element count of the array under `key` (GGUF: key, type 9, element
    /// type, u64 count).
    fn claim_len(file: &mut [u8], key: &str, n: u64) {
        let at = file.windows(key.len()).position(|w| w == key.as_bytes()).unwrap() + key.len();
        file[at + 8..at + 16].copy_from_slice(&n.to_le_bytes());
    }

    /// The vocabulary and merge caps: a file claiming more tokens or merges than its bytes
    /// can hold is refused by the GGUF reader before the tokenizer allocates anything for
    /// them (the claimed 2^40 entries would need terabytes).
    #[test]
    fn claimed_vocabulary_and_merge_counts_are_checked_against_the_file() {
        let file = vocab_file();
        let t = Tokenizer::from_gguf(&file).unwrap();
        assert_eq!(t.encode("hello", false), [259]);
        for key in ["tokenizer.ggml.tokens", KEY_MERGES, "tokenizer.ggml.token_type"] {
            for n in [1u64 << 40, u64::MAX] {
                let mut bad = file.clone();
                claim_len(&mut bad, key, n);
                let err = Tokenizer::from_gguf(&bad).unwrap_err();
                assert!(matches!(err, TokenizerError::Core(_)), "{key} = {n}: {err}");
            }
        }
    }
}

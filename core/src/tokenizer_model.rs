//! [`TokenizerModel`]: which tokenizer family a GGUF names (`tokenizer.ggml.model`). Its own
//! module because both [`crate::vocab`], which reads it, and [`crate::error`], which reports an
//! unsupported one, name it.

use core::fmt;

/// Value of `tokenizer.ggml.model`, as llama.cpp names the tokenizer families.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum TokenizerModel {
    /// `"gpt2"`: byte-level BPE (GPT-2, DeepSeek, Llama 3, Qwen).
    Gpt2,
    /// `"llama"`: SentencePiece BPE.
    Llama,
    /// `"bert"`: WordPiece.
    Bert,
    /// `"t5"`: SentencePiece unigram.
    T5,
    /// `"rwkv"`: RWKV's greedy trie tokenizer.
    Rwkv,
    /// `"no_vocab"` / `"none"`: the file has no tokenizer.
    NoVocab,
    /// Any other name.
    Other,
}

impl TokenizerModel {
    /// Classifies a `tokenizer.ggml.model` value.
    pub fn from_name(name: &str) -> Self {
        match name {
            "gpt2" => TokenizerModel::Gpt2,
            "llama" => TokenizerModel::Llama,
            "bert" => TokenizerModel::Bert,
            "t5" => TokenizerModel::T5,
            "rwkv" => TokenizerModel::Rwkv,
            "no_vocab" | "none" => TokenizerModel::NoVocab,
            _ => TokenizerModel::Other,
        }
    }
}

impl fmt::Display for TokenizerModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TokenizerModel::Gpt2 => "\"gpt2\" (byte-level BPE)",
            TokenizerModel::Llama => "\"llama\" (SentencePiece)",
            TokenizerModel::Bert => "\"bert\" (WordPiece)",
            TokenizerModel::T5 => "\"t5\" (unigram)",
            TokenizerModel::Rwkv => "\"rwkv\"",
            TokenizerModel::NoVocab => "no vocabulary",
            TokenizerModel::Other => "an unknown tokenizer",
        })
    }
}

//! Tokenizer: encode parity with Hugging Face tokenizers, decode (placeholder; being written).

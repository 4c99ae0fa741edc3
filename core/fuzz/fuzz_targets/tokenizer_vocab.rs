//! The tokenizer built from a hostile vocabulary: arbitrary tokens (normal, control and
//! user-defined), arbitrary merges, any pre-tokenizer, written into a GGUF and loaded with
//! `Tokenizer::from_gguf`. Loading is `Ok` or a typed error; encoding any text never panics;
//! with the 256 byte tokens present, decoding the encoding gives the text back.
//!
//! Input: byte 0's bits pick the pre-tokenizer and whether the byte tokens come first; then,
//! separated by NUL bytes: tokens (one per line; a leading 0x01 marks control, 0x02
//! user-defined), merges (one per line, `left right`), and the text to encode.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tinymla_core::vocab::{byte_to_unicode, SpecialTokens};
use tinymla_host::gguf_writer::{GgufWriter, Value};
use tinymla_host::tokenizer::{EncodeOptions, Tokenizer};

const PRES: [&str; 4] = ["deepseek-v3", "deepseek-llm", "gpt2", "unknown-pre"];
const NORMAL: i32 = 1;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;

fuzz_target!(|data: &[u8]| {
    let [flags, rest @ ..] = data else { return };
    let mut parts = rest.split(|&b| b == 0);
    let (tokens_part, merges_part) = (parts.next().unwrap_or(&[]), parts.next().unwrap_or(&[]));
    let text = String::from_utf8_lossy(parts.next().unwrap_or(&[]));
    let with_bytes = flags & 4 != 0;

    let mut tokens: Vec<String> = Vec::new();
    let mut types: Vec<i32> = Vec::new();
    if with_bytes {
        tokens.extend((0..=255u8).map(|b| byte_to_unicode(b).to_string()));
        types.resize(256, NORMAL);
    }
    for line in tokens_part.split(|&b| b == b'\n') {
        let (ty, body) = match line.split_first() {
            Some((1, body)) => (CONTROL, body),
            Some((2, body)) => (USER_DEFINED, body),
            _ => (NORMAL, line),
        };
        tokens.push(String::from_utf8_lossy(body).into_owned());
        types.push(ty);
    }
    let merges: Vec<String> = merges_part
        .split(|&b| b == b'\n')
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();

    let mut w = GgufWriter::new();
    w.kv("general.architecture", Value::Str("deepseek2".into()))
        .kv("tokenizer.ggml.model", Value::Str("gpt2".into()))
        .kv("tokenizer.ggml.pre", Value::Str(PRES[usize::from(flags & 3)].into()))
        .kv("tokenizer.ggml.tokens", Value::StrArray(tokens))
        .kv("tokenizer.ggml.token_type", Value::I32Array(types))
        .kv("tokenizer.ggml.merges", Value::StrArray(merges));
    let mut file = Vec::new();
    w.write(&mut file).unwrap();

    let Ok(t) = Tokenizer::from_gguf(&file) else { return };
    for parse_special in [false, true] {
        let ids = t.encode_with(&text, EncodeOptions { add_bos: flags & 8 != 0, parse_special });
        let decoded = t.decode_bytes(&ids, SpecialTokens::Render);
        if with_bytes && !parse_special && flags & 8 == 0 {
            assert_eq!(decoded.unwrap(), text.as_bytes());
        }
    }
});

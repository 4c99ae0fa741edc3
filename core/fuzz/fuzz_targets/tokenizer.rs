//! Tokenizer encode/decode of arbitrary bytes: encoding is lossless (`decode(encode(s)) == s`
//! for any text), and decoding arbitrary ids — host `Tokenizer`, core `Vocab` with and without
//! its index, streaming UTF-8 — never panics and never emits broken UTF-8.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tinymla_core::vocab::{SpecialTokens, Utf8Stream, Vocab};
use tinymla_core::Gguf;
use tinymla_host::tokenizer::{EncodeOptions, Tokenizer};

static FILE: &[u8] = include_bytes!("../../../tests/fixtures/tokenizer/deepseek-v3.gguf");

fn tokenizer() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| Tokenizer::from_gguf(FILE).unwrap())
}

/// The core's vocabulary without and with its offset index, built once (building them per
/// input cost 4 ms and held the target at ~200 executions per second).
fn vocabs() -> &'static (Vocab<'static>, Vocab<'static>) {
    static V: OnceLock<(Vocab<'static>, Vocab<'static>)> = OnceLock::new();
    V.get_or_init(|| {
        let gguf = Gguf::parse(FILE).unwrap();
        let vocab = Vocab::new(&gguf).unwrap();
        let offsets = Box::leak(vec![0u32; vocab.n_vocab()].into_boxed_slice());
        (vocab, Vocab::with_index(FILE, offsets).unwrap())
    })
}

fuzz_target!(|data: &[u8]| {
    let t = tokenizer();
    let text = String::from_utf8_lossy(data);
    let ids = t.encode_with(&text, EncodeOptions { add_bos: false, parse_special: false });
    assert_eq!(t.decode_bytes(&ids, SpecialTokens::Render).unwrap(), text.as_bytes());

    // The same bytes read as token ids (out-of-range ones must be typed errors).
    let raw: Vec<u32> =
        data.chunks_exact(2).map(|c| u32::from(u16::from_le_bytes([c[0], c[1]]))).collect();
    let mut stream = t.stream(SpecialTokens::Skip);
    let mut streamed = String::new();
    for &id in &raw {
        if let Ok(s) = stream.push(id) {
            streamed.push_str(&s);
        }
    }
    streamed.push_str(&stream.finish());

    let (vocab, indexed) = vocabs();
    let mut buf = vec![0u8; vocab.max_token_bytes()];
    let mut utf8 = Utf8Stream::new();
    let mut out = String::new();
    for &id in &raw {
        let slow = vocab.decode_token(id, &mut buf).map(|n| buf[..n].to_vec());
        let fast = indexed.decode_token(id, &mut buf).map(|n| buf[..n].to_vec());
        assert_eq!(slow, fast);
        if let Ok(bytes) = fast {
            utf8.push(&bytes, &mut out).unwrap();
        }
    }
    utf8.finish(&mut out).unwrap();
    assert_eq!(out, streamed);
});

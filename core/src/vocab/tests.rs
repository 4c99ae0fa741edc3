//! Unit tests of the vocabulary decoder and the UTF-8 stream.

use super::*;
use std::string::String;
use std::vec::Vec;

/// GPT-2's `bytes_to_unicode`, written as in openai/gpt-2's encoder.py.
fn gpt2_table() -> Vec<char> {
    let mut bs: Vec<u32> = (0x21..=0x7E).chain(0xA1..=0xAC).chain(0xAE..=0xFF).collect();
    let mut cs = bs.clone();
    let mut n = 0;
    for b in 0..256 {
        if !bs.contains(&b) {
            bs.push(b);
            cs.push(256 + n);
            n += 1;
        }
    }
    let mut table = vec!['\0'; 256];
    for (b, c) in bs.iter().zip(&cs) {
        table[*b as usize] = char::from_u32(*c).unwrap();
    }
    table
}

#[test]
fn byte_table_matches_gpt2_and_inverts() {
    let table = gpt2_table();
    for b in 0..=255u8 {
        assert_eq!(byte_to_unicode(b), table[b as usize], "byte {b}");
        assert_eq!(unicode_to_byte(table[b as usize]), Some(b));
    }
    assert_eq!(unicode_to_byte(' '), None);
    assert_eq!(unicode_to_byte('\u{144}'), None);
    assert_eq!(unicode_to_byte('中'), None);
}

/// A GGUF with only tokenizer keys.
fn file(model: &str, tokens: &[&str], types: Option<&[i32]>, bos: u32) -> Vec<u8> {
    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&(s.len() as u64).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    let mut out = b"GGUF".to_vec();
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes());
    out.extend_from_slice(&(5 + u64::from(types.is_some())).to_le_bytes());
    for (k, v) in [(KEY_MODEL, model), (KEY_PRE, "deepseek-v3")] {
        string(&mut out, k);
        out.extend_from_slice(&8u32.to_le_bytes());
        string(&mut out, v);
    }
    string(&mut out, KEY_TOKENS);
    out.extend_from_slice(&9u32.to_le_bytes());
    out.extend_from_slice(&8u32.to_le_bytes());
    out.extend_from_slice(&(tokens.len() as u64).to_le_bytes());
    tokens.iter().for_each(|t| string(&mut out, t));
    if let Some(types) = types {
        string(&mut out, KEY_TOKEN_TYPE);
        out.extend_from_slice(&9u32.to_le_bytes());
        out.extend_from_slice(&5u32.to_le_bytes());
        out.extend_from_slice(&(types.len() as u64).to_le_bytes());
        types.iter().for_each(|t| out.extend_from_slice(&t.to_le_bytes()));
    }
    for (k, v) in [(KEY_BOS, bos), (KEY_EOS, 1)] {
        string(&mut out, k);
        out.extend_from_slice(&4u32.to_le_bytes());
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

const TOKENS: &[&str] =
    &["<s>", "</s>", "Ġhello", "ä¸", "Ń", "<0x41>", "[PAD6]", "<think>", "Ã©", "a b"];
const TYPES: &[i32] = &[3, 3, 1, 1, 1, 6, 5, 4, 1, 1];

fn decoded(v: &Vocab<'_>, id: u32, special: SpecialTokens) -> Vec<u8> {
    let mut buf = vec![0u8; v.max_token_bytes()];
    let n = v.decode_token_with(id, special, &mut buf).unwrap();
    buf[..n].to_vec()
}

#[test]
fn decodes_every_token_type_with_and_without_index() {
    let bytes = file("gpt2", TOKENS, Some(TYPES), 0);
    let plain = Vocab::new(&Gguf::parse(&bytes).unwrap()).unwrap();
    let mut offsets = vec![0u32; plain.n_vocab()];
    let indexed = Vocab::with_index(&bytes, &mut offsets).unwrap();
    assert!(indexed.is_indexed() && !plain.is_indexed());
    assert_eq!((plain.bos(), plain.eos(), plain.pre()), (Some(0), Some(1), Some("deepseek-v3")));
    assert_eq!(plain.max_token_bytes(), 7);
    for v in [&plain, &indexed] {
        let skip = |id| decoded(v, id, SpecialTokens::Skip);
        assert_eq!(skip(0), b"");
        assert_eq!(decoded(v, 0, SpecialTokens::Render), b"<s>");
        assert_eq!(skip(2), b" hello");
        assert_eq!([skip(3), skip(4)].concat(), "中".as_bytes());
        assert_eq!(skip(5), b"A");
        assert_eq!(skip(6), b"");
        assert_eq!(skip(7), b"<think>");
        assert_eq!(skip(8), "é".as_bytes());
        assert_eq!(skip(9), b"a b", "a char outside the table: raw bytes, as HF does");
    }
    for id in 0..TOKENS.len() as u32 {
        assert_eq!(plain.token_text(id).unwrap(), indexed.token_text(id).unwrap());
        assert_eq!(plain.token_type(id).unwrap(), indexed.token_type(id).unwrap());
        assert_eq!(plain.token_text(id).unwrap(), TOKENS[id as usize].as_bytes());
    }
    let oob = Error::TokenOutOfRange { token: 10, vocab_size: 10 };
    assert_eq!(indexed.decode_token(10, &mut [0; 8]), Err(oob));
    assert_eq!(plain.token_text(u32::MAX).unwrap_err(), oob_max());
    let small = Error::BufferTooSmall { buffer: BufferKind::TokenText, needed: 6, given: 5 };
    assert_eq!(plain.decode_token(2, &mut [0; 5]), Err(small));
}

fn oob_max() -> Error {
    Error::TokenOutOfRange { token: u32::MAX, vocab_size: 10 }
}

#[test]
fn missing_types_mean_normal() {
    let bytes = file("gpt2", &["<s>", "Ġx"], None, 0);
    let v = Vocab::new(&Gguf::parse(&bytes).unwrap()).unwrap();
    assert_eq!(v.token_type(0), Ok(TokenType::Normal));
    assert_eq!(decoded(&v, 1, SpecialTokens::Skip), b" x");
}

#[test]
fn rejects_bad_tokenizer_metadata() {
    let err = |bytes: Vec<u8>| Vocab::new(&Gguf::parse(&bytes).unwrap()).unwrap_err();
    assert_eq!(
        err(file("llama", TOKENS, Some(TYPES), 0)),
        Error::Config(ConfigError::UnsupportedTokenizer(TokenizerModel::Llama))
    );
    assert_eq!(
        err(file("gpt2", TOKENS, Some(&TYPES[1..]), 0)),
        Error::Config(ConfigError::InvalidValue(KEY_TOKEN_TYPE))
    );
    assert_eq!(
        err(file("gpt2", TOKENS, Some(&[9; 10]), 0)),
        Error::Config(ConfigError::InvalidValue(KEY_TOKEN_TYPE))
    );
    assert_eq!(
        err(file("gpt2", TOKENS, Some(TYPES), 10)),
        Error::Config(ConfigError::InvalidValue(KEY_BOS))
    );
    assert_eq!(
        err(file("gpt2", &[], None, 0)),
        Error::Config(ConfigError::InvalidValue(KEY_TOKENS))
    );
    let bytes = file("gpt2", TOKENS, Some(TYPES), 0);
    let mut short = [0u32; 9];
    assert_eq!(
        Vocab::with_index(&bytes, &mut short).unwrap_err(),
        Error::BufferTooSmall { buffer: BufferKind::VocabIndex, needed: 10, given: 9 }
    );
}

/// Every way of cutting a byte string into pieces gives `from_utf8_lossy` of the whole.
#[test]
fn utf8_stream_matches_lossy_decoding_for_every_split() {
    let samples: [&[u8]; 5] = [
        "a中b🦀é".as_bytes(),
        b"\xE4\xB8x\xF0\x9F\xA6\x80\xFF\xC3",
        b"\xED\xA0\x80\xF4\x90\x80\x80\xE0\x80\xAF",
        b"\xF0\x9F\xA6",
        b"\xC3\xA9\xE2\x82\x41\x80\x80",
    ];
    for bytes in samples {
        let want = String::from_utf8_lossy(bytes);
        // Split at every subset of cut points (inputs are short enough to try them all).
        let n = bytes.len();
        for mask in 0u32..(1 << (n - 1)) {
            let mut stream = Utf8Stream::new();
            let mut out = String::new();
            let mut start = 0;
            for i in 1..=n {
                if i == n || mask & (1 << (i - 1)) != 0 {
                    stream.push(&bytes[start..i], &mut out).unwrap();
                    assert!(stream.n_pending() <= 3);
                    start = i;
                }
            }
            stream.finish(&mut out).unwrap();
            assert_eq!(out, want, "{bytes:02x?} cut by {mask:b}");
        }
    }
}

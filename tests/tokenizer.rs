//! Tokenizer: encode parity with Hugging Face `tokenizers` on the golden corpus for every
//! pre-tokenizer flavour, decode round trips, streaming decode, and typed errors.
//!
//! Fixtures: `tests/fixtures/tokenizer/<flavour>.{gguf,json}` from
//! `scripts/gen_tokenizer_fixtures.py` (see PROVENANCE.md there).

use crate::common::read_fixture;
use tinymla_core::gguf::MetadataValue;
use tinymla_core::vocab::{SpecialTokens, TokenType, Utf8Stream, Vocab, KEY_MODEL, KEY_PRE};
use tinymla_core::{BufferKind, ConfigError, Error, Gguf};
use tinymla_host::gguf_writer::{GgufWriter, Value};
use tinymla_host::tokenizer::{EncodeOptions, Flavour, Tokenizer, TokenizerError};

const FLAVOURS: [(&str, Flavour); 4] = [
    ("gpt2", Flavour::Gpt2),
    ("deepseek-llm", Flavour::DeepSeekLlm),
    ("deepseek-v3", Flavour::DeepSeekV3),
    ("glm4", Flavour::Glm4),
];

struct Golden {
    bos: u32,
    vocab_size: usize,
    cases: Vec<(String, Vec<u32>)>,
}

fn golden(flavour: &str) -> Golden {
    let text = read_fixture(&format!("tokenizer/{flavour}.json"));
    let json: serde_json::Value = serde_json::from_slice(&text).unwrap();
    let cases = json["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let ids = c["ids"].as_array().unwrap().iter().map(|i| i.as_u64().unwrap() as u32);
            (c["text"].as_str().unwrap().to_owned(), ids.collect())
        })
        .collect();
    Golden {
        bos: json["bos_id"].as_u64().unwrap() as u32,
        vocab_size: json["vocab_size"].as_u64().unwrap() as usize,
        cases,
    }
}

fn load(flavour: &str) -> (Vec<u8>, Tokenizer, Golden) {
    let file = read_fixture(&format!("tokenizer/{flavour}.gguf"));
    let tok = Tokenizer::from_gguf(&file).unwrap_or_else(|e| panic!("{flavour}: {e}"));
    (file, tok, golden(flavour))
}

#[test]
fn encode_matches_hugging_face_on_every_line() {
    for (name, flavour) in FLAVOURS {
        let (_, tok, golden) = load(name);
        assert_eq!(tok.flavour(), flavour);
        assert_eq!(tok.n_vocab(), golden.vocab_size);
        assert_eq!((tok.n_added(), tok.bos()), (6, Some(golden.bos)));
        assert!(golden.cases.len() > 150, "{name}: golden corpus too small");
        let mut failures = Vec::new();
        for (text, want) in &golden.cases {
            let got = tok.encode(text, false);
            if &got != want {
                failures.push(format!("  {text:?}\n    hf:   {want:?}\n    ours: {got:?}"));
            }
            let with_bos = tok.encode(text, true);
            assert_eq!(with_bos[0], golden.bos);
            assert_eq!(&with_bos[1..], &got[..]);
        }
        assert!(
            failures.is_empty(),
            "{name}: {} lines differ:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
}

#[test]
fn decode_of_encode_is_the_input() {
    for (name, _) in FLAVOURS {
        let (_, tok, golden) = load(name);
        for (text, _) in &golden.cases {
            let ids = tok.encode(text, false);
            let bytes = tok.decode_bytes(&ids, SpecialTokens::Render).unwrap();
            assert_eq!(String::from_utf8(bytes).unwrap(), *text, "{name}");
            // Skipping control tokens removes exactly their text.
            let mut without = text.clone();
            for id in 0..tok.n_vocab() as u32 {
                if tok.token_type(id) == Some(TokenType::Control) {
                    let t = std::str::from_utf8(tok.token_text(id).unwrap()).unwrap();
                    without = without.replace(t, "");
                }
            }
            assert_eq!(tok.decode(&ids).unwrap(), without, "{name}");
        }
    }
}

#[test]
fn special_tokens_in_text_are_matched_only_when_asked() {
    let (_, tok, _) = load("deepseek-v3");
    let eos = tok.eos().unwrap();
    let text = "a<｜end▁of▁sentence｜>b<think>";
    let ids = tok.encode(text, false);
    assert!(ids.contains(&eos));
    let plain = EncodeOptions { add_bos: false, parse_special: false };
    let spelled = tok.encode_with(text, plain);
    assert!(!spelled.contains(&eos), "a control token was matched with parse_special off");
    assert_eq!(tok.decode(&spelled).unwrap(), text);
    // User-defined added tokens (`<think>`) are matched either way.
    assert_eq!(ids.last(), spelled.last());
    assert_eq!(tok.token_type(*ids.last().unwrap()), Some(TokenType::UserDefined));
}

/// The firmware path: core `Vocab` (with and without the index) and `Utf8Stream` over a fixed
/// buffer give the same bytes as the host decoder for every token, and streamed text is the
/// input however the characters fall across tokens.
#[test]
fn core_vocab_decodes_like_the_host_and_streams_whole_characters() {
    for (name, _) in FLAVOURS {
        let (file, tok, golden) = load(name);
        let plain = Vocab::new(&Gguf::parse(&file).unwrap()).unwrap();
        let mut offsets = vec![0u32; plain.n_vocab()];
        let indexed = Vocab::with_index(&file, &mut offsets).unwrap();
        let mut buf = vec![0u8; indexed.max_token_bytes()];
        for id in 0..plain.n_vocab() as u32 {
            let mut host = Vec::new();
            tok.decode_token(id, SpecialTokens::Skip, &mut host).unwrap();
            let n = indexed.decode_token(id, &mut buf).unwrap();
            assert_eq!(&buf[..n], &host[..], "{name} token {id}");
            if id % 97 == 0 {
                let n = plain.decode_token(id, &mut buf).unwrap();
                assert_eq!(&buf[..n], &host[..], "{name} token {id} (no index)");
            }
        }

        let mut split_chars = 0;
        for (text, _) in &golden.cases {
            let ids = tok.encode(text, false);
            let mut stream = Utf8Stream::new();
            let mut out = String::new();
            let mut host_stream = tok.stream(SpecialTokens::Render);
            let mut host_out = String::new();
            for &id in &ids {
                let n = indexed.decode_token_with(id, SpecialTokens::Render, &mut buf).unwrap();
                if std::str::from_utf8(&buf[..n]).is_err() {
                    split_chars += 1;
                }
                let before = out.len();
                stream.push(&buf[..n], &mut out).unwrap();
                assert!(!out[before..].contains('\u{FFFD}'), "{name}: {text:?} emitted U+FFFD");
                host_out.push_str(&host_stream.push(id).unwrap());
            }
            assert_eq!(stream.n_pending(), 0, "{name}: {text:?} left bytes pending");
            stream.finish(&mut out).unwrap();
            host_out.push_str(&host_stream.finish());
            assert_eq!((&out, &host_out), (text, text), "{name}");
        }
        assert!(split_chars > 10, "{name}: the corpus must split characters across tokens");
    }
}

#[test]
fn out_of_range_ids_are_typed_errors() {
    let (file, tok, golden) = load("deepseek-llm");
    let n = golden.vocab_size as u32;
    let oob = Error::TokenOutOfRange { token: n, vocab_size: n };
    assert!(matches!(tok.decode(&[1, n]), Err(TokenizerError::Core(e)) if e == oob));
    assert!(
        matches!(tok.stream(SpecialTokens::Skip).push(n), Err(TokenizerError::Core(e)) if e == oob)
    );
    let mut offsets = vec![0u32; golden.vocab_size];
    let vocab = Vocab::with_index(&file, &mut offsets).unwrap();
    assert_eq!(vocab.decode_token(n, &mut [0; 64]), Err(oob));
    assert_eq!(
        vocab.token_text(u32::MAX),
        Err(Error::TokenOutOfRange { token: u32::MAX, vocab_size: n })
    );
    assert_eq!(
        Vocab::with_index(&file, &mut offsets[1..]).unwrap_err(),
        Error::BufferTooSmall {
            buffer: BufferKind::VocabIndex,
            needed: n as usize,
            given: n as usize - 1
        }
    );
}

/// The fixture's metadata with `key` replaced by `value` (or removed when `None`).
fn rewritten(file: &[u8], key: &str, value: Option<Value>) -> Vec<u8> {
    let gguf = Gguf::parse(file).unwrap();
    let mut w = GgufWriter::new();
    for (k, v) in gguf.metadata() {
        let v = if k == key {
            match &value {
                Some(v) => v.clone(),
                None => continue,
            }
        } else {
            match v {
                MetadataValue::String(b) => Value::Str(String::from_utf8(b.to_vec()).unwrap()),
                MetadataValue::U32(x) => Value::U32(x),
                MetadataValue::Bool(x) => Value::Bool(x),
                MetadataValue::Array(a) => match a.iter().next() {
                    Some(MetadataValue::I32(_)) => Value::I32Array(
                        a.iter()
                            .map(|x| if let MetadataValue::I32(x) = x { x } else { 0 })
                            .collect(),
                    ),
                    _ => Value::StrArray(
                        a.iter()
                            .map(|x| String::from_utf8(x.as_str().unwrap().into()).unwrap())
                            .collect(),
                    ),
                },
                other => panic!("{k}: {other:?} not handled"),
            }
        };
        w.kv(k, v);
    }
    w.to_bytes()
}

#[test]
fn unsupported_or_broken_tokenizers_are_typed_errors() {
    let file = read_fixture("tokenizer/deepseek-v3.gguf");
    assert_eq!(Tokenizer::from_gguf(&rewritten(&file, "general.name", None)).unwrap().n_added(), 6);

    let spm = rewritten(&file, KEY_MODEL, Some(Value::Str("llama".into())));
    assert!(matches!(
        Tokenizer::from_gguf(&spm),
        Err(TokenizerError::Core(Error::Config(ConfigError::UnsupportedTokenizer(_))))
    ));
    let qwen = rewritten(&file, KEY_PRE, Some(Value::Str("qwen2".into())));
    assert!(
        matches!(Tokenizer::from_gguf(&qwen), Err(TokenizerError::UnsupportedPre(p)) if p == "qwen2")
    );
    let no_pre = rewritten(&file, KEY_PRE, None);
    assert_eq!(Tokenizer::from_gguf(&no_pre).unwrap().flavour(), Flavour::Gpt2);
    let no_merges = rewritten(&file, "tokenizer.ggml.merges", None);
    assert!(matches!(
        Tokenizer::from_gguf(&no_merges),
        Err(TokenizerError::Core(Error::Config(ConfigError::MissingKey("tokenizer.ggml.merges"))))
    ));
    let bad_merge = rewritten(
        &file,
        "tokenizer.ggml.merges",
        Some(Value::StrArray(vec!["Ġ Ġ".into(), "zz qq".into()])),
    );
    assert!(matches!(
        Tokenizer::from_gguf(&bad_merge),
        Err(TokenizerError::Merge(tinymla_host::tokenizer::MergeError::NotInVocab(1)))
    ));
}

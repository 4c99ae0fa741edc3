//! `tinymla serve`'s request bodies: hostile bytes as a `/v1/chat/completions` and a
//! `/v1/completions` body. Parsing returns a request or a 400-class error, never panics; an
//! accepted request holds only values the engine can take (max_tokens ≥ 1, sampling values in
//! range, at most 4 stop texts of at most 256 bytes), and its messages render with the plain
//! chat template and encode with demo-s's tokenizer.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tinymla_core::SamplerConfig;
use tinymla_host::chat_template::ChatTemplate;
use tinymla_host::serve::api::{self, Input, Request};
use tinymla_host::tokenizer::Tokenizer;

fn tokenizer() -> &'static Tokenizer {
    static TOKENIZER: OnceLock<Tokenizer> = OnceLock::new();
    TOKENIZER.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/demo-s.q8_0.gguf");
        Tokenizer::from_gguf(&std::fs::read(path).expect("demo-s")).expect("demo-s tokenizer")
    })
}

fn check(r: &Request) {
    assert!(r.max_tokens.is_none_or(|n| n >= 1));
    let s = &r.sampler;
    assert!(s.temperature.is_finite() && (0.0..=2.0).contains(&s.temperature));
    assert!((0.0..=1.0).contains(&s.top_p) && (0.0..=1.0).contains(&s.min_p));
    assert!(s.repeat_penalty.is_finite() && s.repeat_penalty > 0.0);
    assert!(r.stop.len() <= 4 && r.stop.iter().all(|t| !t.is_empty() && t.len() <= 256));
    let t = tokenizer();
    match &r.input {
        Input::Chat(messages) => {
            let template = ChatTemplate::new(None, "<s>", "</s>").expect("the plain template");
            if let Ok(text) = template.render(messages, true) {
                let _ = t.encode(&text, true);
            }
        }
        Input::Text(text) => {
            let _ = t.encode(text, true);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let defaults = SamplerConfig::default();
    for parsed in [api::parse_chat(data, &defaults), api::parse_completion(data, &defaults)] {
        match parsed {
            Ok(r) => check(&r),
            Err(e) => assert!(e.status == 400 && !e.message.is_empty()),
        }
    }
});

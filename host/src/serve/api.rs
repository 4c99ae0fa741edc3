//! The OpenAI request bodies `tinymla serve` accepts, checked into engine jobs, and the JSON
//! it answers with (replies, stream chunks, errors).

use serde::Deserialize;
use serde_json::{json, Value};
use tinymla_core::SamplerConfig;

use crate::chat_template::{Message, Role};

/// An error answer: HTTP status and OpenAI's `{"error": {...}}` body.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status code.
    pub status: u16,
    /// OpenAI's error `type`.
    pub kind: &'static str,
    /// OpenAI's error `code` (null when `None`).
    pub code: Option<&'static str>,
    /// The request field at fault.
    pub param: Option<&'static str>,
    /// One line a person can act on.
    pub message: String,
}

impl ApiError {
    /// A 400 `invalid_request_error`.
    pub fn bad(param: Option<&'static str>, message: impl Into<String>) -> Self {
        ApiError {
            status: 400,
            kind: "invalid_request_error",
            code: None,
            param,
            message: message.into(),
        }
    }

    /// An error with its own status and code.
    pub fn with(status: u16, kind: &'static str, code: &'static str, message: String) -> Self {
        ApiError { status, kind, code: Some(code), param: None, message }
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        json!({ "error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }
}

/// `stop`: one text or several.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

/// The sampling fields both endpoints share. Left out, each takes `tinymla run`'s default.
#[derive(Debug, Deserialize)]
struct Sampling {
    max_tokens: Option<u64>,
    /// The chat endpoint's newer name for `max_tokens`.
    max_completion_tokens: Option<u64>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    top_k: Option<u64>,
    min_p: Option<f32>,
    repeat_penalty: Option<f32>,
    seed: Option<u64>,
    stop: Option<Stop>,
    #[serde(default)]
    stream: bool,
    stream_options: Option<StreamOptions>,
    n: Option<u64>,
    /// llama.cpp's extension: go on past end-of-generation tokens (fixed-length replies for
    /// benchmarks).
    #[serde(default)]
    ignore_eos: bool,
}

#[derive(Debug, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Debug, Deserialize)]
struct ChatBody {
    messages: Vec<ChatMessage>,
    #[serde(flatten)]
    sampling: Sampling,
}

#[derive(Debug, Deserialize)]
struct ChatMessage {
    role: String,
    #[serde(default)]
    content: Value,
}

#[derive(Debug, Deserialize)]
struct CompletionBody {
    prompt: Value,
    #[serde(flatten)]
    sampling: Sampling,
}

/// What a request asks for, checked; the prompt is still text.
#[derive(Debug, Clone)]
pub struct Request {
    /// The conversation (chat) or the prompt text (completions).
    pub input: Input,
    /// `max_tokens`, if given.
    pub max_tokens: Option<usize>,
    /// Sampling settings.
    pub sampler: SamplerConfig,
    /// Stop texts.
    pub stop: Vec<String>,
    /// Server-sent events instead of one JSON answer.
    pub stream: bool,
    /// A last chunk with the token counts (`stream_options.include_usage`).
    pub stream_usage: bool,
    /// Go on past end-of-generation tokens.
    pub ignore_eos: bool,
}

/// A request's input.
#[derive(Debug, Clone)]
pub enum Input {
    /// Chat messages, to render with the model's chat template.
    Chat(Vec<Message>),
    /// A prompt, encoded as `tinymla run` encodes one.
    Text(String),
}

/// Most stop texts, and bytes in each (OpenAI allows 4).
const MAX_STOPS: usize = 4;
const MAX_STOP_BYTES: usize = 256;

/// Parses a `/v1/chat/completions` body.
///
/// # Errors
/// [`ApiError`] (400) for malformed JSON, wrong types, no messages, unknown roles, content
/// that is not text, and sampling values out of range.
pub fn parse_chat(body: &[u8], defaults: &SamplerConfig) -> Result<Request, ApiError> {
    let body: ChatBody = from_json(body)?;
    if body.messages.is_empty() {
        return Err(ApiError::bad(Some("messages"), "'messages' must hold at least one message"));
    }
    let mut messages = Vec::with_capacity(body.messages.len());
    for (i, m) in body.messages.into_iter().enumerate() {
        let role = match m.role.as_str() {
            "system" | "developer" => Role::System,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => {
                return Err(ApiError::bad(
                    Some("messages"),
                    format!(
                        "messages[{i}].role is '{}': expected 'system', 'developer', 'user' or \
                         'assistant'",
                        other.chars().take(40).collect::<String>()
                    ),
                ))
            }
        };
        let content = text_content(&m.content).ok_or_else(|| {
            ApiError::bad(
                Some("messages"),
                format!("messages[{i}].content must be a string or a list of text parts"),
            )
        })?;
        messages.push(Message { role, content });
    }
    finish(Input::Chat(messages), body.sampling, defaults)
}

/// Parses a `/v1/completions` body (`prompt` a string, or a list of one string).
///
/// # Errors
/// As [`parse_chat`].
pub fn parse_completion(body: &[u8], defaults: &SamplerConfig) -> Result<Request, ApiError> {
    let body: CompletionBody = from_json(body)?;
    let prompt = match &body.prompt {
        Value::String(s) => s.clone(),
        Value::Array(items) if items.len() == 1 => match &items[0] {
            Value::String(s) => s.clone(),
            _ => return Err(ApiError::bad(Some("prompt"), "'prompt' must be a string")),
        },
        Value::Array(_) => {
            return Err(ApiError::bad(Some("prompt"), "one prompt per request is supported"))
        }
        _ => return Err(ApiError::bad(Some("prompt"), "'prompt' must be a string")),
    };
    finish(Input::Text(prompt), body.sampling, defaults)
}

fn from_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        let what = if e.is_syntax() || e.is_eof() { "malformed JSON" } else { "invalid request" };
        ApiError::bad(None, format!("{what}: {e}"))
    })
}

/// A message's text: a string, a list of `{"type": "text", "text": ...}` parts, or null.
fn text_content(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => Some(String::new()),
        Value::Array(parts) => {
            let mut text = String::new();
            for p in parts {
                if p.get("type")?.as_str()? != "text" {
                    return None;
                }
                text.push_str(p.get("text")?.as_str()?);
            }
            Some(text)
        }
        _ => None,
    }
}

fn finish(input: Input, s: Sampling, defaults: &SamplerConfig) -> Result<Request, ApiError> {
    if s.n.is_some_and(|n| n != 1) {
        return Err(ApiError::bad(Some("n"), "only n = 1 is supported"));
    }
    let max_tokens = match s.max_completion_tokens.or(s.max_tokens) {
        None => None,
        Some(0) => {
            return Err(ApiError::bad(Some("max_tokens"), "'max_tokens' must be at least 1"))
        }
        Some(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
    };
    let range = |param: &'static str, v: Option<f32>, lo: f32, hi: f32, default: f32| match v {
        None => Ok(default),
        Some(x) if x.is_finite() && (lo..=hi).contains(&x) => Ok(x),
        Some(x) => Err(ApiError::bad(Some(param), format!("'{param}' is {x}: not in {lo}..={hi}"))),
    };
    let temperature = range("temperature", s.temperature, 0.0, 2.0, defaults.temperature)?;
    let top_p = range("top_p", s.top_p, 0.0, 1.0, defaults.top_p)?;
    let min_p = range("min_p", s.min_p, 0.0, 1.0, defaults.min_p)?;
    let default_penalty = if temperature > 0.0 { defaults.repeat_penalty } else { 1.0 };
    let repeat_penalty = range("repeat_penalty", s.repeat_penalty, 0.01, 100.0, default_penalty)?;
    let top_k = s.top_k.map_or(defaults.top_k, |k| usize::try_from(k).unwrap_or(usize::MAX));
    let seed = s.seed.unwrap_or_else(random_seed);
    let stop = match s.stop {
        None => Vec::new(),
        Some(Stop::One(t)) => vec![t],
        Some(Stop::Many(ts)) => ts,
    };
    if stop.len() > MAX_STOPS || stop.iter().any(|t| t.len() > MAX_STOP_BYTES) {
        return Err(ApiError::bad(
            Some("stop"),
            format!("at most {MAX_STOPS} stop texts of at most {MAX_STOP_BYTES} bytes each"),
        ));
    }
    let stop = stop.into_iter().filter(|t| !t.is_empty()).collect();
    Ok(Request {
        input,
        max_tokens,
        sampler: SamplerConfig {
            temperature,
            top_k,
            top_p,
            min_p,
            repeat_penalty,
            repeat_last_n: defaults.repeat_last_n,
            seed,
        },
        stop,
        stream: s.stream,
        stream_usage: s.stream_options.is_some_and(|o| o.include_usage),
        ignore_eos: s.ignore_eos,
    })
}

/// A seed for a request that gives none (OpenAI: no seed, no determinism).
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(body: &str) -> Result<Request, ApiError> {
        parse_chat(body.as_bytes(), &SamplerConfig::default())
    }

    #[test]
    fn good_chat_bodies_parse_with_defaults_and_overrides() {
        let r = chat(r#"{"model":"x","messages":[{"role":"user","content":"hi"}]}"#).unwrap();
        assert!(matches!(&r.input, Input::Chat(m) if m.len() == 1 && m[0].content == "hi"));
        assert_eq!((r.max_tokens, r.stream, r.sampler.temperature), (None, false, 0.0));
        let r = chat(
            r#"{"messages":[{"role":"developer","content":[{"type":"text","text":"a"},
            {"type":"text","text":"b"}]}],"max_tokens":5,"temperature":0.5,"top_k":3,
            "seed":7,"stop":"x","stream":true,"stream_options":{"include_usage":true},
            "user":"ignored","presence_penalty":0}"#,
        )
        .unwrap();
        assert!(
            matches!(&r.input, Input::Chat(m) if m[0].role == Role::System && m[0].content == "ab")
        );
        assert_eq!((r.max_tokens, r.sampler.top_k, r.sampler.seed), (Some(5), 3, 7));
        assert_eq!((r.stop.clone(), r.stream, r.stream_usage), (vec!["x".to_owned()], true, true));
    }

    #[test]
    fn bad_chat_bodies_are_400_with_the_field() {
        let cases: &[(&str, Option<&str>)] = &[
            ("{", None),
            ("[]", None),
            (r#"{"messages":"hi"}"#, None),
            (r#"{"messages":[]}"#, Some("messages")),
            (r#"{"messages":[{"role":"wizard","content":"x"}]}"#, Some("messages")),
            (r#"{"messages":[{"role":"user","content":5}]}"#, Some("messages")),
            (r#"{"messages":[{"role":"user","content":"x"}],"max_tokens":0}"#, Some("max_tokens")),
            (r#"{"messages":[{"role":"user","content":"x"}],"max_tokens":"9"}"#, None),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"temperature":-1}"#,
                Some("temperature"),
            ),
            (r#"{"messages":[{"role":"user","content":"x"}],"top_p":2}"#, Some("top_p")),
            (r#"{"messages":[{"role":"user","content":"x"}],"n":2}"#, Some("n")),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"stop":["a","b","c","d","e"]}"#,
                Some("stop"),
            ),
        ];
        for (body, param) in cases {
            let e = chat(body).unwrap_err();
            assert_eq!((e.status, e.param), (400, *param), "{body}: {e:?}");
            assert!(!e.message.is_empty());
            assert_eq!(e.body()["error"]["type"], "invalid_request_error");
        }
    }

    #[test]
    fn completion_prompts_are_one_string() {
        let d = SamplerConfig::default();
        let r = parse_completion(br#"{"prompt":"abc"}"#, &d).unwrap();
        assert!(matches!(r.input, Input::Text(ref t) if t == "abc"));
        assert!(parse_completion(br#"{"prompt":["abc"]}"#, &d).is_ok());
        assert_eq!(parse_completion(br#"{"prompt":["a","b"]}"#, &d).unwrap_err().status, 400);
        assert_eq!(parse_completion(br#"{"prompt":[1,2]}"#, &d).unwrap_err().status, 400);
        assert_eq!(parse_completion(br#"{}"#, &d).unwrap_err().status, 400);
    }
}

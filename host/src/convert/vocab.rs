//! `tokenizer.json` (+ `tokenizer_config.json`, `config.json`) → the `tokenizer.ggml.*` keys of
//! a byte-level BPE (`gpt2`) vocabulary, as llama.cpp's `_set_vocab_gpt2` and gguf-py's
//! `SpecialVocab` write them.
//!
//! - tokens: one per id below `vocab_size`; ids the tokenizer lacks become `[PAD{id}]` (UNUSED);
//!   added tokens are CONTROL when special (or shaped like `<|…|>` / `<｜…｜>`), else
//!   USER_DEFINED; the rest NORMAL.
//! - merges: `"left right"`, with spaces inside a pair's parts written as U+0120 (the newer
//!   list-of-pairs format).
//! - `tokenizer.ggml.pre`: recognised from the `pre_tokenizer` pipeline instead of llama.cpp's
//!   hash of sample encodings: GPT-2's `ByteLevel(use_regex)`, DeepSeek-LLM's five splits plus
//!   digits, DeepSeek-V3's three splits — the flavours tinymla's tokenizer implements.
//! - BOS/EOS/UNK/PAD: `tokenizer_config.json`'s `*_token` content looked up among the added
//!   tokens, else `config.json`'s `*_token_id`; `add_bos_token` / `add_eos_token` from
//!   `tokenizer_config.json`, else the post-processor.
//! - `tokenizer.chat_template`: `tokenizer_config.json`'s `chat_template`, else
//!   `chat_template.jinja`, else `chat_template.json`.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value as Json;

use super::error::ConvertError;
use super::hf_config::{read_json, HfConfig};
use crate::gguf_writer::Value;
use crate::tokenizer::pretokenize::{DEEPSEEK_LLM_REGEXES, DEEPSEEK_V3_REGEXES};

const NORMAL: i32 = 1;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;
const UNUSED: i32 = 5;

/// Reads the tokenizer files in `dir` and returns the `tokenizer.*` keys in write order.
///
/// # Errors
/// [`ConvertError::MissingFile`] without `tokenizer.json`; [`ConvertError::Tokenizer`] for a
/// model other than byte-level BPE, an unknown pre-tokenizer or ids past `vocab_size`.
pub fn metadata(dir: &Path, cfg: &HfConfig) -> Result<Vec<(String, Value)>, ConvertError> {
    let tok = read_json(&dir.join("tokenizer.json"))?;
    let tc_path = dir.join("tokenizer_config.json");
    let tc = if tc_path.is_file() { Some(read_json(&tc_path)?) } else { None };
    metadata_from_json(&tok, tc.as_ref(), cfg, dir)
}

/// [`metadata`] of a parsed `tokenizer.json` and `tokenizer_config.json`; `dir` is where a
/// `chat_template.jinja` / `chat_template.json` is looked for when `tc` has no template.
///
/// # Errors
/// As [`metadata`].
pub fn metadata_from_json(
    tok: &Json,
    tc: Option<&Json>,
    cfg: &HfConfig,
    dir: &Path,
) -> Result<Vec<(String, Value)>, ConvertError> {
    let bad = |why: String| ConvertError::Tokenizer(why);

    let model = tok.get("model").ok_or_else(|| bad("no \"model\"".into()))?;
    let kind = model.get("type").and_then(Json::as_str).unwrap_or("");
    if kind != "BPE" {
        return Err(bad(format!(
            "model type {kind:?} is not supported (only byte-level BPE, as DeepSeek uses)"
        )));
    }
    let pre = pre_tokenizer(tok.get("pre_tokenizer"))?;

    let mut by_id: HashMap<usize, String> = HashMap::new();
    let vocab =
        model.get("vocab").and_then(Json::as_object).ok_or_else(|| bad("no model.vocab".into()))?;
    for (token, id) in vocab {
        let id = id.as_u64().and_then(|i| usize::try_from(i).ok());
        let id = id.ok_or_else(|| bad(format!("token {token:?} has no integer id")))?;
        by_id.insert(id, token.clone());
    }
    // id -> (content, special)
    let mut added: HashMap<usize, (String, bool)> = HashMap::new();
    for t in tok.get("added_tokens").and_then(Json::as_array).into_iter().flatten() {
        let id = t.get("id").and_then(Json::as_u64).and_then(|i| usize::try_from(i).ok());
        let content = t.get("content").and_then(Json::as_str);
        let (Some(id), Some(content)) = (id, content) else {
            return Err(bad("an added_tokens entry lacks id or content".into()));
        };
        let special = t.get("special").and_then(Json::as_bool).unwrap_or(false);
        by_id.insert(id, content.to_owned());
        added.insert(id, (content.to_owned(), special));
    }
    if let Some(&max) = by_id.keys().max() {
        if max >= cfg.vocab_size {
            return Err(bad(format!(
                "token id {max} does not fit config.json's vocab_size {}",
                cfg.vocab_size
            )));
        }
    }

    let mut tokens = Vec::with_capacity(cfg.vocab_size);
    let mut types = Vec::with_capacity(cfg.vocab_size);
    for id in 0..cfg.vocab_size {
        match (by_id.get(&id), added.get(&id)) {
            (None, _) => {
                tokens.push(format!("[PAD{id}]"));
                types.push(UNUSED);
            }
            (Some(_), Some((content, special))) => {
                if *special || looks_special(content) {
                    tokens.push(content.clone());
                    types.push(CONTROL);
                } else {
                    // Pre-normalise user-defined spaces, as the converter does.
                    tokens.push(content.replace('\u{2581}', " "));
                    types.push(USER_DEFINED);
                }
            }
            (Some(token), None) => {
                tokens.push(token.clone());
                types.push(NORMAL);
            }
        }
    }
    let merges = merges(model.get("merges"))?;

    let mut kv: Vec<(String, Value)> = vec![
        ("tokenizer.ggml.model".into(), Value::Str("gpt2".into())),
        ("tokenizer.ggml.pre".into(), Value::Str(pre.into())),
        ("tokenizer.ggml.tokens".into(), Value::StrArray(tokens)),
        ("tokenizer.ggml.token_type".into(), Value::I32Array(types)),
        ("tokenizer.ggml.merges".into(), Value::StrArray(merges)),
    ];
    let id_of = |content: &str| added.iter().find(|(_, (c, _))| c == content).map(|(&id, _)| id);
    let config_ids = [
        ("bos", cfg.bos_token_id),
        ("eos", cfg.eos_token_id),
        ("unk", None),
        ("pad", cfg.pad_token_id),
    ];
    for (typ, config_id) in config_ids {
        let from_tc = tc
            .and_then(|tc| tc.get(format!("{typ}_token")))
            .and_then(|e| e.as_str().or_else(|| e.get("content").and_then(Json::as_str)))
            .and_then(id_of)
            .and_then(|id| u32::try_from(id).ok());
        if let Some(id) = from_tc.or(config_id).filter(|&id| (id as usize) < cfg.vocab_size) {
            kv.push((format!("tokenizer.ggml.{typ}_token_id"), Value::U32(id)));
        }
    }
    for (typ, value) in add_special(tok, tc) {
        kv.push((format!("tokenizer.ggml.add_{typ}_token"), Value::Bool(value)));
    }
    if let Some(template) = chat_template(dir, tc)? {
        kv.push(("tokenizer.chat_template".into(), Value::Str(template)));
    }
    Ok(kv)
}

/// The converter's `does_token_look_special`.
fn looks_special(token: &str) -> bool {
    matches!(token, "<pad>" | "<mask>" | "<2mass>" | "[@BOS@]")
        || (token.starts_with("<|") && token.ends_with("|>"))
        || (token.starts_with("<\u{FF5C}") && token.ends_with("\u{FF5C}>"))
        || (token.starts_with("<unused") && token.ends_with('>'))
}

/// `tokenizer.ggml.pre` for a `pre_tokenizer` pipeline tinymla implements.
fn pre_tokenizer(pre: Option<&Json>) -> Result<&'static str, ConvertError> {
    let ty = |j: &Json| j.get("type").and_then(Json::as_str).unwrap_or("").to_owned();
    let byte_level = |j: &Json, regex: bool| {
        ty(j) == "ByteLevel" && j.get("use_regex").and_then(Json::as_bool).unwrap_or(true) == regex
    };
    let split_regex = |j: &Json| -> Option<String> {
        if ty(j) != "Split" || j.get("behavior").and_then(Json::as_str) != Some("Isolated") {
            return None;
        }
        j.get("pattern").and_then(|p| p.get("Regex")).and_then(Json::as_str).map(canonical_regex)
    };
    let known = |list: &[&str]| list.iter().map(|r| canonical_regex(r)).collect::<Vec<_>>();
    let found = match pre {
        Some(j) if byte_level(j, true) => Some("gpt-2"),
        Some(j) if ty(j) == "Sequence" => {
            let steps: Vec<&Json> =
                j.get("pretokenizers").and_then(Json::as_array).into_iter().flatten().collect();
            let splits: Vec<String> = steps.iter().map_while(|s| split_regex(s)).collect();
            let rest = &steps[splits.len()..];
            let digits = |j: &Json| {
                ty(j) == "Digits"
                    && j.get("individual_digits").and_then(Json::as_bool) == Some(true)
            };
            if splits == known(&DEEPSEEK_V3_REGEXES)
                && rest.len() == 1
                && byte_level(rest[0], false)
            {
                Some("deepseek-v3")
            } else if splits == known(&DEEPSEEK_LLM_REGEXES)
                && rest.len() == 2
                && digits(rest[0])
                && byte_level(rest[1], false)
            {
                Some("deepseek-llm")
            } else if splits.is_empty() && rest.len() == 1 && byte_level(rest[0], true) {
                Some("gpt-2")
            } else {
                None
            }
        }
        _ => None,
    };
    found.ok_or_else(|| {
        ConvertError::Tokenizer(
            "pre_tokenizer is not one tinymla implements (GPT-2 ByteLevel, DeepSeek-LLM or \
             DeepSeek-V3 splits)"
                .into(),
        )
    })
}

/// A split regex with literal CR / LF written as the escapes `\r` / `\n`: tokenizer.json files
/// carry them as raw characters, tinymla's constants partly as escapes; both mean the same.
fn canonical_regex(r: &str) -> String {
    r.replace('\r', "\\r").replace('\n', "\\n")
}

/// `model.merges` as `"left right"` strings.
fn merges(merges: Option<&Json>) -> Result<Vec<String>, ConvertError> {
    let mut out = Vec::new();
    for m in merges.and_then(Json::as_array).into_iter().flatten() {
        match m {
            Json::String(s) => out.push(s.clone()),
            Json::Array(pair) => {
                match (pair.first().and_then(Json::as_str), pair.get(1).and_then(Json::as_str)) {
                    (Some(a), Some(b)) if pair.len() == 2 => {
                        let enc = |s: &str| s.replace(' ', "\u{120}");
                        out.push(format!("{} {}", enc(a), enc(b)));
                    }
                    _ => return Err(ConvertError::Tokenizer(format!("merge {m} is not a pair"))),
                }
            }
            _ => return Err(ConvertError::Tokenizer(format!("merge {m} is not a pair"))),
        }
    }
    Ok(out)
}

/// `add_bos_token` / `add_eos_token`: the post-processor's defaults, overridden by
/// `tokenizer_config.json` where it says so (gguf-py's precedence).
fn add_special(tok: &Json, tc: Option<&Json>) -> Vec<(&'static str, bool)> {
    let mut flags: Vec<(&'static str, bool)> = Vec::new();
    let mut set = |typ: &'static str, value: bool, overwrite: bool| match flags
        .iter_mut()
        .find(|(t, _)| *t == typ)
    {
        Some(entry) if overwrite => entry.1 = value,
        Some(_) => {}
        None => flags.push((typ, value)),
    };
    if let Some(post) = tok.get("post_processor").filter(|p| !p.is_null()) {
        let list: Vec<&Json> = match post.get("processors").and_then(Json::as_array) {
            Some(items) => items.iter().collect(),
            None => vec![post],
        };
        for p in list {
            match p.get("type").and_then(Json::as_str) {
                Some("ByteLevel") => {
                    set("bos", false, false);
                    set("eos", false, false);
                }
                Some("TemplateProcessing") => {
                    let single = p.get("single").and_then(Json::as_array);
                    let special_at =
                        |i: Option<&Json>| i.and_then(|s| s.get("SpecialToken")).is_some();
                    if let Some(single) = single.filter(|s| s.len() > 1) {
                        set("bos", special_at(single.first()), true);
                        set("eos", special_at(single.last()), true);
                    }
                }
                _ => {}
            }
        }
    }
    for typ in ["bos", "eos"] {
        if let Some(v) =
            tc.and_then(|tc| tc.get(format!("add_{typ}_token"))).and_then(Json::as_bool)
        {
            set(typ, v, false);
        }
    }
    flags
}

fn chat_template(dir: &Path, tc: Option<&Json>) -> Result<Option<String>, ConvertError> {
    if let Some(t) = tc.and_then(|tc| tc.get("chat_template")).and_then(Json::as_str) {
        return Ok(Some(t.to_owned()));
    }
    let jinja = dir.join("chat_template.jinja");
    if jinja.is_file() {
        return std::fs::read_to_string(&jinja).map(Some).map_err(|e| ConvertError::Io(jinja, e));
    }
    let json = dir.join("chat_template.json");
    if json.is_file() {
        let j = read_json(&json)?;
        return Ok(j.get("chat_template").and_then(Json::as_str).map(str::to_owned));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(r: &str) -> Json {
        serde_json::json!({"type": "Split", "pattern": {"Regex": r}, "behavior": "Isolated", "invert": false})
    }

    #[test]
    fn pre_tokenizers_are_recognised_by_their_pipeline() {
        let bl = |regex: bool| serde_json::json!({"type": "ByteLevel", "use_regex": regex});
        assert_eq!(pre_tokenizer(Some(&bl(true))).unwrap(), "gpt-2");
        let mut steps: Vec<Json> = DEEPSEEK_LLM_REGEXES.iter().map(|r| split(r)).collect();
        steps.push(serde_json::json!({"type": "Digits", "individual_digits": true}));
        steps.push(bl(false));
        let llm = serde_json::json!({"type": "Sequence", "pretokenizers": steps});
        assert_eq!(pre_tokenizer(Some(&llm)).unwrap(), "deepseek-llm");
        let mut steps: Vec<Json> = DEEPSEEK_V3_REGEXES.iter().map(|r| split(r)).collect();
        steps.push(bl(false));
        let v3 = serde_json::json!({"type": "Sequence", "pretokenizers": steps.clone()});
        assert_eq!(pre_tokenizer(Some(&v3)).unwrap(), "deepseek-v3");
        steps.remove(0);
        let other = serde_json::json!({"type": "Sequence", "pretokenizers": steps});
        assert!(pre_tokenizer(Some(&other)).is_err());
        assert!(pre_tokenizer(None).is_err());
    }

    #[test]
    fn merges_in_both_formats() {
        let j = serde_json::json!(["a b", ["c d", "e"]]);
        assert_eq!(merges(Some(&j)).unwrap(), ["a b", "c\u{120}d e"]);
        assert!(merges(Some(&serde_json::json!([["x"]]))).is_err());
    }
}

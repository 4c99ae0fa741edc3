//! `tinymla logits`: per-position logits as JSON, for checking against other engines.

use tinymla_core::CacheStorage;

use crate::session::{Buffers, Loaded, SessionError};

/// Runs `tokens` (or the encoded `prompt`) and returns
/// `{"model": …, "tokens": [...], "vocab_size": n, "logits": [[...], ...]}`.
///
/// # Errors
/// [`SessionError`] for an empty input, a token out of range, or a bad context.
pub fn logits_json(
    loaded: &Loaded,
    name: &str,
    tokens: Option<&[u32]>,
    prompt: Option<&str>,
) -> Result<serde_json::Value, SessionError> {
    let model = loaded.model()?;
    let ids: Vec<u32> = match (tokens, prompt) {
        (Some(t), _) => t.to_vec(),
        (None, Some(p)) => {
            let tok = loaded.tokenizer()?;
            tok.encode(p, tok.add_bos_default())
        }
        (None, None) => Vec::new(),
    };
    if ids.is_empty() {
        return Err(SessionError::EmptyPrompt);
    }
    let trained = model.config().context_length;
    if ids.len() > trained {
        return Err(SessionError::PromptTooLong { tokens: ids.len(), ctx: trained });
    }
    let mut buffers = Buffers::new(&model, ids.len(), CacheStorage::F32)?;
    let (mut cache, mut scratch, _, _) = buffers.views(&model)?;
    let mut rows = Vec::with_capacity(ids.len());
    for &t in &ids {
        let l = model.forward(t, &mut cache, &mut scratch).map_err(SessionError::Step)?;
        rows.push(l.to_vec());
    }
    Ok(serde_json::json!({
        "model": name,
        "tokens": ids,
        "vocab_size": model.config().vocab_size,
        "logits": rows,
    }))
}

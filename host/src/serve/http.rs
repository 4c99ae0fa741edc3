//! The HTTP side of `tinymla serve`: axum routes on hyper's HTTP/1.1 connections, each request
//! checked, encoded and handed to the engine's bounded queue, its reply returned as one JSON
//! document or streamed as server-sent events in OpenAI's chunk format.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::{json, Value};
use tinymla_core::SamplerConfig;
use tokio::sync::mpsc;

use super::api::{self, ApiError, Input};
use super::engine::{Event, Finish, Job, Queue, Refused, EVENT_BUFFER};
use crate::chat_template::ChatTemplate;
use crate::tokenizer::{EncodeOptions, Tokenizer};

/// Largest request body accepted (413 beyond).
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// What every handler shares.
pub struct Server {
    /// The engine's queue and counters.
    pub queue: Arc<Queue>,
    /// The model's tokenizer.
    pub tokenizer: Arc<Tokenizer>,
    /// Its chat template (or the plain built-in one).
    pub template: ChatTemplate,
    /// Positions per slot.
    pub ctx: usize,
    /// Slots.
    pub slots: usize,
    /// The name `/v1/models` lists and replies carry.
    pub model_name: String,
    /// Sampling defaults (`tinymla run`'s).
    pub defaults: SamplerConfig,
    /// Numbers replies' ids.
    pub next_id: std::sync::atomic::AtomicU64,
    /// Time a client has to send a request's body once its headers are in (408 after).
    pub body_timeout: Duration,
}

/// The routes.
pub fn router(server: Arc<Server>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/completions", post(completions))
        .route("/v1/models", get(models))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(server)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Chat,
    Completion,
}

async fn chat_completions(State(s): State<Arc<Server>>, req: Request) -> Response {
    generate(&s, req, Endpoint::Chat).await.unwrap_or_else(|e| error(&s, &e))
}

async fn completions(State(s): State<Arc<Server>>, req: Request) -> Response {
    generate(&s, req, Endpoint::Completion).await.unwrap_or_else(|e| error(&s, &e))
}

async fn models(State(s): State<Arc<Server>>) -> Response {
    let body = json!({ "object": "list", "data": [{
        "id": s.model_name, "object": "model", "created": now(), "owned_by": "tinymla",
    }]});
    json_response(StatusCode::OK, &body)
}

async fn health(State(s): State<Arc<Server>>) -> Response {
    let busy = s.queue.metrics.slots_busy.load(Ordering::Relaxed);
    let body = json!({
        "status": if s.queue.is_stopped() { "error" } else { "ok" },
        "slots": s.slots,
        "slots_busy": busy,
        "queue": s.queue.len(),
        "queue_capacity": s.queue.capacity(),
    });
    json_response(StatusCode::OK, &body)
}

async fn metrics(State(s): State<Arc<Server>>) -> Response {
    let m = &s.queue.metrics;
    let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let mut text = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, lines: &[(&str, u64)]| {
        text.push_str(&format!("# HELP tinymla_{name} {help}\n# TYPE tinymla_{name} {kind}\n"));
        for (labels, v) in lines {
            text.push_str(&format!("tinymla_{name}{labels} {v}\n"));
        }
    };
    metric(
        "requests_total",
        "counter",
        "Generation requests by outcome.",
        &[
            ("{outcome=\"ok\"}", get(&m.requests_ok)),
            ("{outcome=\"bad_request\"}", get(&m.requests_bad)),
            ("{outcome=\"queue_full\"}", get(&m.requests_rejected)),
            ("{outcome=\"cancelled\"}", get(&m.requests_cancelled)),
        ],
    );
    metric(
        "prompt_tokens_total",
        "counter",
        "Prompt tokens computed.",
        &[("", get(&m.prompt_tokens))],
    );
    metric(
        "prompt_tokens_reused_total",
        "counter",
        "Prompt tokens found in a slot's cache (shared prefix) and not computed again.",
        &[("", get(&m.prompt_tokens_reused))],
    );
    metric(
        "generated_tokens_total",
        "counter",
        "Tokens generated.",
        &[("", get(&m.generated_tokens))],
    );
    metric(
        "decode_steps_total",
        "counter",
        "Decode steps, each over every generating slot.",
        &[("", get(&m.decode_steps))],
    );
    metric(
        "decode_sequences_total",
        "counter",
        "Sequences decoded, summed over decode steps.",
        &[("", get(&m.decode_sequences))],
    );
    metric("slots", "gauge", "Slots (sessions decoded together).", &[("", s.slots as u64)]);
    metric("slots_busy", "gauge", "Slots holding a request.", &[("", get(&m.slots_busy))]);
    metric("queue_length", "gauge", "Requests waiting for a slot.", &[("", s.queue.len() as u64)]);
    metric(
        "queue_capacity",
        "gauge",
        "Most requests that may wait.",
        &[("", s.queue.capacity() as u64)],
    );
    let mut r = Response::new(Body::from(text));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

async fn not_found(State(s): State<Arc<Server>>, req: Request) -> Response {
    let path: String = req.uri().path().chars().take(100).collect();
    let e = ApiError::with(404, "invalid_request_error", "not_found", format!("no route {path}"));
    error(&s, &e)
}

async fn method_not_allowed(State(s): State<Arc<Server>>, req: Request) -> Response {
    let path: String = req.uri().path().chars().take(100).collect();
    let message = format!("{} is not allowed on {path}", req.method());
    error(&s, &ApiError::with(405, "invalid_request_error", "method_not_allowed", message))
}

/// A request to either generation endpoint, from body to reply.
async fn generate(s: &Server, req: Request, endpoint: Endpoint) -> Result<Response, ApiError> {
    let body = read_body(req, s.body_timeout).await?;
    let request = match endpoint {
        Endpoint::Chat => api::parse_chat(&body, &s.defaults)?,
        Endpoint::Completion => api::parse_completion(&body, &s.defaults)?,
    };
    let (prompt, mut stop) = encode(s, &request.input)?;
    stop.extend(request.stop.iter().cloned());
    let room = s.ctx + 1 - prompt.len();
    let max_tokens = match request.max_tokens {
        None => room,
        Some(n) if n <= room => n,
        Some(n) => {
            let message = format!(
                "max_tokens is {n}, but the prompt's {} tokens leave room for at most {room} of \
                 the {}-token context",
                prompt.len(),
                s.ctx
            );
            return Err(ApiError {
                param: Some("max_tokens"),
                code: Some("context_length_exceeded"),
                ..ApiError::bad(None, message)
            });
        }
    };
    let (events, replies) = mpsc::channel(EVENT_BUFFER);
    let ignore_eos = request.ignore_eos;
    let job = Job { prompt, max_tokens, sampler: request.sampler, stop, ignore_eos, events };
    let refused = s.queue.submit(job).err();
    if refused == Some(Refused::Stopped) {
        return Err(engine_error("the engine has stopped; restart the server".to_owned()));
    }
    if refused == Some(Refused::Full) {
        s.queue.metrics.requests_rejected.fetch_add(1, Ordering::Relaxed);
        let message = format!(
            "all {} slots are busy and {} requests are already waiting; retry later",
            s.slots,
            s.queue.capacity()
        );
        let mut r = error_body(&ApiError::with(429, "server_error", "queue_full", message));
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return Ok(r);
    }
    let reply = Reply {
        id: format!(
            "{}-{}",
            if endpoint == Endpoint::Chat { "chatcmpl" } else { "cmpl" },
            s.next_id.fetch_add(1, Ordering::Relaxed)
        ),
        created: now(),
        model: s.model_name.clone(),
        endpoint,
        usage_chunk: request.stream_usage,
    };
    if request.stream {
        return Ok(stream(reply, replies));
    }
    whole(reply, replies).await
}

/// The body, at most [`MAX_BODY_BYTES`], within `timeout`.
async fn read_body(req: Request, timeout: Duration) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::with(
            413,
            "invalid_request_error",
            "request_too_large",
            format!("the request body exceeds {MAX_BODY_BYTES} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let body = Limited::new(req.into_body(), MAX_BODY_BYTES);
    match tokio::time::timeout(timeout, body.collect()).await {
        Err(_) => Err(ApiError::with(
            408,
            "invalid_request_error",
            "request_timeout",
            format!("the request body did not arrive within {} ms", timeout.as_millis()),
        )),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Ok(Err(e)) => Err(ApiError::bad(None, format!("reading the request body: {e}"))),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

/// The prompt's tokens, and the stop texts the format implies (the plain chat format's next
/// `User:` turn). Chat messages are rendered with the model's template and encoded as
/// `tinymla chat` encodes them; a completion prompt as `tinymla run` encodes it.
fn encode(s: &Server, input: &Input) -> Result<(Vec<u32>, Vec<String>), ApiError> {
    let t = &s.tokenizer;
    let (prompt, stop) = match input {
        Input::Chat(messages) => {
            let text = s.template.render(messages, true).map_err(|e| {
                ApiError::bad(Some("messages"), format!("the chat template refused them: {e}"))
            })?;
            let add_bos = !s.template.is_from_file() && t.add_bos_default();
            let prompt = t.encode_with(&text, EncodeOptions { add_bos, parse_special: true });
            let stop = if s.template.is_from_file() {
                Vec::new()
            } else {
                vec![crate::cli::chat::PLAIN_STOP.to_owned()]
            };
            (prompt, stop)
        }
        Input::Text(text) => (t.encode(text, t.add_bos_default()), Vec::new()),
    };
    if prompt.is_empty() {
        return Err(ApiError::bad(Some("prompt"), "the prompt encodes to no tokens"));
    }
    if prompt.len() > s.ctx {
        return Err(ApiError {
            code: Some("context_length_exceeded"),
            ..ApiError::bad(
                None,
                format!(
                    "the prompt has {} tokens, more than the {}-token context",
                    prompt.len(),
                    s.ctx
                ),
            )
        });
    }
    Ok((prompt, stop))
}

/// What every chunk or reply of one request carries.
struct Reply {
    id: String,
    created: u64,
    model: String,
    endpoint: Endpoint,
    usage_chunk: bool,
}

impl Reply {
    fn object(&self, chunk: bool) -> &'static str {
        match (self.endpoint, chunk) {
            (Endpoint::Chat, false) => "chat.completion",
            (Endpoint::Chat, true) => "chat.completion.chunk",
            (Endpoint::Completion, _) => "text_completion",
        }
    }

    fn choice(&self, text: Option<&str>, finish: Option<Finish>, whole: bool) -> Value {
        let finish = finish.map(Finish::as_str);
        match (self.endpoint, whole) {
            (Endpoint::Chat, true) => json!({
                "index": 0,
                "message": { "role": "assistant", "content": text.unwrap_or("") },
                "finish_reason": finish,
            }),
            (Endpoint::Chat, false) => {
                let delta = match text {
                    Some(t) => json!({ "content": t }),
                    None => json!({}),
                };
                json!({ "index": 0, "delta": delta, "finish_reason": finish })
            }
            (Endpoint::Completion, _) => json!({
                "index": 0,
                "text": text.unwrap_or(""),
                "logprobs": null,
                "finish_reason": finish,
            }),
        }
    }

    fn document(&self, choices: Value, usage: Option<Value>, chunk: bool) -> Value {
        let mut v = json!({
            "id": self.id,
            "object": self.object(chunk),
            "created": self.created,
            "model": self.model,
            "choices": choices,
        });
        if let Some(u) = usage {
            v["usage"] = u;
        }
        v
    }
}

fn usage(prompt: usize, cached: usize, completion: usize) -> Value {
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": { "cached_tokens": cached },
    })
}

/// Waits for the whole reply.
async fn whole(reply: Reply, mut events: mpsc::Receiver<Event>) -> Result<Response, ApiError> {
    let mut text = String::new();
    while let Some(event) = events.recv().await {
        match event {
            Event::Text(t) => text.push_str(&t),
            Event::Done { finish, prompt_tokens, cached_tokens, completion_tokens } => {
                let choices = json!([reply.choice(Some(&text), Some(finish), true)]);
                let usage = usage(prompt_tokens, cached_tokens, completion_tokens);
                let body = reply.document(choices, Some(usage), false);
                return Ok(json_response(StatusCode::OK, &body));
            }
            Event::Failed(message) => return Err(engine_error(message)),
        }
    }
    Err(engine_error("the engine stopped".to_owned()))
}

fn engine_error(message: String) -> ApiError {
    ApiError::with(500, "server_error", "engine_error", message)
}

/// Server-sent events: a first chunk with the role (chat), one chunk per text piece, a last
/// chunk with the finish reason, the usage chunk if asked for, then `[DONE]`.
fn stream(reply: Reply, events: mpsc::Receiver<Event>) -> Response {
    let reply = Arc::new(reply);
    let first = if reply.endpoint == Endpoint::Chat {
        let choice = json!([{ "index": 0, "delta": { "role": "assistant", "content": "" },
            "finish_reason": null }]);
        Some(sse(&reply.document(choice, None, true)))
    } else {
        None
    };
    let state = (Some(events), first, reply);
    let chunks = futures_util::stream::unfold(state, |(events, pending, reply)| async move {
        if let Some(frame) = pending {
            return Some((Ok::<_, Infallible>(frame), (events, None, reply)));
        }
        let mut events = events?;
        let frame = match events.recv().await {
            Some(Event::Text(t)) => {
                let choices = json!([reply.choice(Some(&t), None, false)]);
                return Some((
                    Ok(sse(&reply.document(choices, None, true))),
                    (Some(events), None, reply),
                ));
            }
            Some(Event::Done { finish, prompt_tokens, cached_tokens, completion_tokens }) => {
                let choices = json!([reply.choice(None, Some(finish), false)]);
                let mut frame = sse(&reply.document(choices, None, true));
                if reply.usage_chunk {
                    let u = usage(prompt_tokens, cached_tokens, completion_tokens);
                    frame.push_str(&sse(&reply.document(json!([]), Some(u), true)));
                }
                frame.push_str("data: [DONE]\n\n");
                frame
            }
            Some(Event::Failed(message)) => {
                let mut frame = sse(&engine_error(message).body());
                frame.push_str("data: [DONE]\n\n");
                frame
            }
            None => return None,
        };
        // The last frame; the stream ends after it.
        Some((Ok(frame), (None, None, reply)))
    });
    let body = Body::from_stream(futures_util::StreamExt::map(chunks, |r| r.map(Bytes::from)));
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

fn sse(v: &Value) -> String {
    format!("data: {v}\n\n")
}

fn error(s: &Server, e: &ApiError) -> Response {
    if e.status != 429 && e.status < 500 {
        s.queue.metrics.requests_bad.fetch_add(1, Ordering::Relaxed);
    }
    error_body(e)
}

fn error_body(e: &ApiError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(status, &e.body())
}

fn json_response(status: StatusCode, v: &Value) -> Response {
    let mut r = (status, v.to_string()).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

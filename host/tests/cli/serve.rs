//! `tinymla serve` on 127.0.0.1 (port 0), driven by a real HTTP client (ureq) and, for what a
//! client library will not send (a body that never finishes, garbage), by raw TCP.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{fixture, run_ok, tinymla};

const DEMO_M: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/demo-m.q8_0.gguf");

/// A running server, killed when dropped.
struct Server {
    child: Child,
    base: String,
    addr: String,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        Self::start_with(DEMO_M, args)
    }

    fn start_with(model: &str, args: &[&str]) -> Server {
        let mut child = tinymla()
            .args(["serve", "-m", model, "--port", "0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_owned();
        Server { child, base: format!("http://{addr}"), addr }
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into()
    }

    /// POSTs `body`; the status and the response text.
    fn post(&self, path: &str, body: &str) -> (u16, String) {
        let mut r = Self::agent()
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .send(body)
            .unwrap();
        (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
    }

    fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let (status, text) = self.post(path, &body.to_string());
        (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")))
    }

    fn get(&self, path: &str) -> (u16, String) {
        let mut r = Self::agent().get(format!("{}{path}", self.base)).call().unwrap();
        (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
    }

    /// A counter or gauge from `/metrics`.
    fn metric(&self, name: &str) -> u64 {
        let (_, text) = self.get("/metrics");
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    }

    /// Raw bytes to the server; what it answers before closing (or within `wait`).
    fn raw(&self, bytes: &[u8], wait: Duration) -> String {
        let mut s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(wait)).unwrap();
        let _ = s.write_all(bytes);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The text of `tinymla run --temp 0` for `prompt` (what it printed, less its last newline).
fn run_alone(prompt: &str, n: usize) -> String {
    let n = n.to_string();
    let (out, _) = run_ok(&["run", "-m", DEMO_M, "-p", prompt, "-n", &n, "--temp", "0"]);
    out.strip_suffix('\n').unwrap_or(&out).to_owned()
}

fn completion(prompt: &str, n: usize) -> Value {
    json!({ "prompt": prompt, "max_tokens": n, "temperature": 0 })
}

const PROMPTS: [&str; 16] = [
    "Once upon a time",
    "The little cat",
    "In the morning",
    "She said",
    "The king",
    "A long time ago there was",
    "He opened the door and",
    "The sun",
    "Tom and his dog",
    "One day",
    "The bird sang",
    "It was a cold night",
    "My friend",
    "The boy ran",
    "Under the tree",
    "They went to the",
];

/// 16 concurrent greedy requests over 4 slots (so some queue, and the batch changes size as
/// requests come and go): each text equals the same prompt run alone by `tinymla run --temp 0`.
#[test]
fn serve_answers_concurrent_greedy_requests_exactly_as_run_alone() {
    let server = Server::start(&["--slots", "4", "--queue", "16", "--pack-weights"]);
    let n = 40;
    let want: Vec<String> = PROMPTS.iter().map(|p| run_alone(p, n)).collect();
    let got: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = PROMPTS
            .iter()
            .map(|p| {
                let server = &server;
                scope.spawn(move || server.post_json("/v1/completions", &completion(p, n)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for ((prompt, want), (status, body)) in PROMPTS.iter().zip(&want).zip(&got) {
        assert_eq!(*status, 200, "{prompt}: {body}");
        assert_eq!(body["choices"][0]["text"].as_str(), Some(want.as_str()), "{prompt}: {body}");
        assert_eq!(body["object"], "text_completion");
        let usage = &body["usage"];
        let total =
            usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap();
        assert_eq!(usage["total_tokens"].as_u64(), Some(total));
    }
    assert_eq!(server.metric("tinymla_requests_total{outcome=\"ok\"}"), 16);
    assert!(
        server.metric("tinymla_decode_sequences_total")
            > server.metric("tinymla_decode_steps_total"),
        "no decode step ran more than one sequence"
    );
}

/// Streamed replies (server-sent events) join to the whole reply, on both endpoints, with the
/// role first, the finish reason last, the usage chunk when asked, then `[DONE]`.
#[test]
fn streamed_chunks_join_to_the_whole_reply() {
    let server = Server::start(&["--slots", "2"]);
    let chat = json!({
        "messages": [{"role": "system", "content": "You tell stories."},
                     {"role": "user", "content": "Tell me about a cat."}],
        "max_tokens": 30, "temperature": 0,
    });
    for (path, body) in
        [("/v1/chat/completions", chat), ("/v1/completions", completion("The dog", 30))]
    {
        let (status, whole) = server.post_json(path, &body);
        assert_eq!(status, 200, "{whole}");
        let whole_text = whole["choices"][0]["message"]["content"]
            .as_str()
            .or(whole["choices"][0]["text"].as_str())
            .unwrap()
            .to_owned();
        let mut streamed = body.clone();
        streamed["stream"] = json!(true);
        streamed["stream_options"] = json!({"include_usage": true});
        let (status, text) = server.post(path, &streamed.to_string());
        assert_eq!(status, 200, "{text}");
        let frames: Vec<&str> = text.split("\n\n").filter(|f| !f.is_empty()).collect();
        assert!(frames.iter().all(|f| f.starts_with("data: ")), "{text}");
        assert_eq!(frames.last(), Some(&"data: [DONE]"), "{text}");
        let chunks: Vec<Value> = frames[..frames.len() - 1]
            .iter()
            .map(|f| serde_json::from_str(&f["data: ".len()..]).unwrap())
            .collect();
        let mut joined = String::new();
        let mut finish = None;
        for c in &chunks {
            if let Some(choice) = c["choices"].get(0) {
                let piece = choice["delta"]["content"].as_str().or(choice["text"].as_str());
                joined.push_str(piece.unwrap_or(""));
                if !choice["finish_reason"].is_null() {
                    finish = choice["finish_reason"].as_str().map(str::to_owned);
                }
            }
        }
        assert_eq!(joined, whole_text, "{path}");
        assert_eq!(finish.as_deref(), whole["choices"][0]["finish_reason"].as_str(), "{path}");
        let usage = &chunks.last().unwrap()["usage"];
        assert_eq!(usage["completion_tokens"], whole["usage"]["completion_tokens"], "{path}");
        if path.contains("chat") {
            assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
            assert_eq!(chunks[0]["object"], "chat.completion.chunk");
        }
    }
}

/// Every kind of bad input gets its status and an OpenAI-style JSON error, and a normal request
/// right after it still succeeds.
#[test]
fn bad_requests_get_their_status_and_a_json_error_and_serving_goes_on() {
    let server = Server::start(&["--slots", "2", "--timeout", "1"]);
    let good = || {
        let (status, body) = server.post_json("/v1/completions", &completion("One day", 8));
        assert_eq!(status, 200, "{body}");
    };
    let user = |content: &str| json!([{"role": "user", "content": content}]);
    let long_prompt = "the cat sat on the mat and ".repeat(200);
    let cases: Vec<(&str, String, u16)> = vec![
        ("/v1/chat/completions", "{\"messages\": [".to_owned(), 400),
        ("/v1/chat/completions", "not json at all".to_owned(), 400),
        ("/v1/chat/completions", json!({"messages": "hello"}).to_string(), 400),
        (
            "/v1/chat/completions",
            json!({"messages": user("hi"), "max_tokens": "many"}).to_string(),
            400,
        ),
        (
            "/v1/chat/completions",
            json!({"messages": user("hi"), "temperature": -3}).to_string(),
            400,
        ),
        (
            "/v1/chat/completions",
            json!({"messages": [{"role": "wizard", "content": "hi"}]}).to_string(),
            400,
        ),
        ("/v1/chat/completions", json!({"messages": []}).to_string(), 400),
        ("/v1/chat/completions", json!({"messages": user(&long_prompt)}).to_string(), 400),
        ("/v1/completions", json!({"prompt": long_prompt}).to_string(), 400),
        ("/v1/completions", json!({"prompt": "One day", "max_tokens": 10_000}).to_string(), 400),
        ("/v1/completions", json!({"prompt": 17}).to_string(), 400),
        ("/v1/nothing", "{}".to_owned(), 404),
    ];
    for (path, body, want) in cases {
        let (status, text) = server.post(path, &body);
        assert_eq!(status, want, "{path} {body:.80}: {text}");
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        let message = v["error"]["message"].as_str().unwrap_or("");
        assert!(!message.is_empty() && v["error"]["type"].is_string(), "{text}");
        good();
    }
    // Too long for the context: the code says so.
    let (_, v) = server.post_json("/v1/completions", &json!({"prompt": long_prompt}));
    assert_eq!(v["error"]["code"], "context_length_exceeded", "{v}");

    // A body over the limit (413), declared or streamed in chunks.
    let reply = server.raw(
        b"POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
          content-length: 5000000\r\n\r\n{\"prompt\":",
        Duration::from_secs(5),
    );
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(reply.contains("\"request_too_large\""), "{reply}");
    good();
    let mut chunked =
        b"POST /v1/completions HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..40 {
        chunked.extend_from_slice(format!("{:x}\r\n", 64 * 1024).as_bytes());
        chunked.extend(std::iter::repeat_n(b' ', 64 * 1024));
        chunked.extend_from_slice(b"\r\n");
    }
    let reply = server.raw(&chunked, Duration::from_secs(5));
    assert!(reply.starts_with("HTTP/1.1 413"), "{:.200}", reply);
    good();

    // A body that never finishes: 408 after --timeout; headers that never finish: closed.
    let start = Instant::now();
    let reply = server.raw(
        b"POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{\"pro",
        Duration::from_secs(10),
    );
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.contains("\"request_timeout\""), "{reply}");
    assert!(start.elapsed() < Duration::from_secs(5));
    let start = Instant::now();
    let reply = server.raw(b"POST /v1/completions HTTP/1.1\r\nhost:", Duration::from_secs(10));
    assert!(start.elapsed() < Duration::from_secs(5), "headers never finished: {reply}");
    good();

    // Not HTTP at all, and a wrong method.
    let reply = server.raw(b"\x00\x01garbage\r\n\r\n", Duration::from_secs(5));
    assert!(reply.is_empty() || reply.starts_with("HTTP/1.1 400"), "{reply}");
    let (status, text) = server.get("/v1/completions");
    assert_eq!(status, 405, "{text}");
    good();
    assert!(server.metric("tinymla_requests_total{outcome=\"bad_request\"}") >= 15);
}

/// More requests than slots and queue: the rest are answered 429 with a JSON error at once,
/// and the accepted ones complete (all with the same greedy text).
#[test]
fn a_full_queue_answers_429() {
    let server = Server::start(&["--slots", "1", "--queue", "1"]);
    let body = json!({"prompt": "Once upon a time", "max_tokens": 240, "temperature": 0,
                      "ignore_eos": true});
    let barrier = std::sync::Barrier::new(24);
    let got: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..24)
            .map(|_| {
                let (server, body, barrier) = (&server, &body, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    server.post_json("/v1/completions", body)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let rejected: Vec<&Value> = got.iter().filter(|(s, _)| *s == 429).map(|(_, v)| v).collect();
    let ok: Vec<&Value> = got.iter().filter(|(s, _)| *s == 200).map(|(_, v)| v).collect();
    assert_eq!(rejected.len() + ok.len(), 24, "{got:?}");
    assert!(!rejected.is_empty(), "no request was refused");
    assert!(!ok.is_empty(), "no request was served");
    for v in &rejected {
        assert_eq!(v["error"]["code"], "queue_full", "{v}");
    }
    let text = &ok[0]["choices"][0]["text"];
    assert!(ok.iter().all(|v| &v["choices"][0]["text"] == text));
    assert!(ok.iter().all(|v| v["usage"]["completion_tokens"] == 240));
    assert_eq!(
        server.metric("tinymla_requests_total{outcome=\"queue_full\"}"),
        rejected.len() as u64
    );
}

/// A client that goes away frees its slot: a whole reply whose client closes right after
/// sending, and a streamed one whose client closes after the first chunk, end long before
/// their 240 tokens (neither completes), and the server goes on serving.
#[test]
fn a_client_that_disconnects_is_cancelled() {
    let server = Server::start(&["--slots", "1"]);
    for stream in [false, true] {
        let body = json!({"prompt": "Once upon a time", "max_tokens": 240, "temperature": 0,
                          "ignore_eos": true, "stream": stream})
        .to_string();
        let mut s = TcpStream::connect(&server.addr).unwrap();
        let head = format!(
            "POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
             content-length: {}\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body.as_bytes()).unwrap();
        if stream {
            // Wait for the first chunk: the reply is being generated.
            let mut first = [0u8; 256];
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let n = s.read(&mut first).unwrap();
            assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
        }
        drop(s);
    }
    // The streamed one is cancelled; the whole one either before its turn (its handler was
    // dropped first) or while generating.
    let cancelled = "tinymla_requests_total{outcome=\"cancelled\"}";
    let start = Instant::now();
    while (server.metric(cancelled) < 1 || server.metric("tinymla_slots_busy") > 0)
        && start.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(server.metric(cancelled) >= 1);
    assert_eq!(server.metric("tinymla_requests_total{outcome=\"ok\"}"), 0);
    assert!(server.metric("tinymla_generated_tokens_total") < 2 * 240);
    assert_eq!(server.metric("tinymla_slots_busy"), 0);
    let (status, _) = server.post_json("/v1/completions", &completion("One day", 8));
    assert_eq!(status, 200);
}

/// A second request with the same system prompt reuses the first one's cached prefix (the
/// usage says how many tokens), and its reply is the same as without reuse.
#[test]
fn a_shared_prompt_prefix_is_reused_and_changes_nothing() {
    let system = "You are a storyteller who writes short, happy stories about animals.";
    let chat = |user: &str| {
        json!({"messages": [{"role": "system", "content": system},
                            {"role": "user", "content": user}],
               "max_tokens": 20, "temperature": 0})
    };
    // Fresh servers answer each question with nothing cached.
    let alone: Vec<Value> = ["A fox", "A bear"]
        .iter()
        .map(|q| Server::start(&["--slots", "1"]).post_json("/v1/chat/completions", &chat(q)).1)
        .collect();
    let server = Server::start(&["--slots", "1"]);
    let (_, first) = server.post_json("/v1/chat/completions", &chat("A fox"));
    let (_, second) = server.post_json("/v1/chat/completions", &chat("A bear"));
    assert_eq!(first["choices"], alone[0]["choices"]);
    assert_eq!(second["choices"], alone[1]["choices"]);
    let cached = second["usage"]["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap();
    assert!(cached >= 10, "only {cached} cached tokens: {second}");
    assert_eq!(alone[1]["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    assert_eq!(server.metric("tinymla_prompt_tokens_reused_total"), cached);
}

/// `/v1/models`, `/health` and `/metrics` answer; bad options are refused with one line.
#[test]
fn serve_lists_the_model_reports_health_and_refuses_bad_options() {
    let server = Server::start(&["--slots", "3"]);
    let (status, text) = server.get("/v1/models");
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["data"][0]["id"], "demo-m.q8_0");
    let (status, text) = server.get("/health");
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!((v["status"].as_str(), v["slots"].as_u64()), (Some("ok"), Some(3)));
    assert_eq!(server.metric("tinymla_slots"), 3);

    for (args, want) in [
        (vec!["--slots", "0"], "--slots 0 is not in 1..=64"),
        (vec!["--slots", "65"], "--slots 65 is not in 1..=64"),
        (vec!["--ctx", "100000"], "is not in 1..=256"),
    ] {
        let out =
            tinymla().args(["serve", "-m", DEMO_M, "--port", "0"]).args(&args).output().unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(want) && err.lines().count() == 1, "{args:?}: {err}");
    }
    let out = tinymla().args(["serve", "-m"]).arg(fixture("no-such.gguf")).output().unwrap();
    assert!(!out.status.success());
}

/// A model whose chat template doubles a string once per message: a conversation of 60
/// messages would need 2^61 bytes. That request gets a 400 saying the render ran out of
/// memory (the render's own process hit its limit, not the server), and the server goes on.
#[test]
fn a_template_that_outgrows_its_memory_is_refused_and_serving_goes_on() {
    let template = "{% set ns = namespace(s='ab') %}{% for m in messages %}\
                    {% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}";
    let model = super::demo_s_with_template(template, "doubling-serve");
    let server = Server::start_with(model.to_str().unwrap(), &["--slots", "1"]);
    let chat = |n: usize| {
        let messages: Vec<Value> =
            (0..n).map(|_| json!({"role": "user", "content": "a"})).collect();
        server.post_json("/v1/chat/completions", &json!({"messages": messages, "max_tokens": 2}))
    };
    let (status, body) = chat(3);
    assert_eq!(status, 200, "{body}");
    let (status, body) = chat(60);
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("ran out of memory"), "{body}");
    let (status, body) = chat(3);
    assert_eq!(status, 200, "{body}");
    assert_eq!(server.get("/health").0, 200);
    std::fs::remove_file(&model).ok();
}

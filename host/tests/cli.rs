//! Drives the built `tinymla` binary.

use std::path::PathBuf;
use std::process::Command;

// `convert`'s tests live in their own file; they are part of this binary (one link).
#[path = "cli/convert.rs"]
mod convert;
#[path = "cli/serve.rs"]
mod serve;

fn tinymla() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tinymla"))
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(name)
}

#[test]
fn inspect_reports_hyperparameters_tensors_and_cache_size() {
    let out = tinymla().arg("inspect").arg(fixture("v2_lite_moe.gguf")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    for want in [
        "architecture: deepseek2",
        "none (direct attn_q)",
        "blk.2.ffn_down_exps.weight",
        "bytes per token (all layers, f32): 312",
        "loads: yes",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
}

/// A file from llama.cpp's quantizer: `inspect` lists each storage type's share and bits per
/// weight, and the file loads.
#[test]
fn inspect_reports_the_type_mix_of_a_k_quant_file() {
    let path = fixture("kquant/kq_aligned.q4_k_m.gguf");
    let (text, _) = run_ok(&["inspect", path.to_str().unwrap()]);
    let line = |ty: &str| {
        text.lines().find(|l| l.trim_start().starts_with(&format!("{ty} "))).unwrap_or("")
    };
    assert!(line("Q4_K").trim_end().ends_with("4.500"), "Q4_K line: {:?}\n{text}", line("Q4_K"));
    assert!(line("Q6_K").trim_end().ends_with("6.562"), "Q6_K line: {:?}\n{text}", line("Q6_K"));
    assert!(line("Q5_0").contains('%'), "{text}");
    assert!(text.contains("all tensors: 5.0"), "{text}");
    assert!(text.contains("loads: yes"), "{text}");
}

#[test]
fn inspect_of_a_truncated_file_fails_with_one_line() {
    let bytes = std::fs::read(fixture("v3_dense_tied.gguf")).unwrap();
    let path = std::env::temp_dir().join(format!("tinymla-truncated-{}.gguf", std::process::id()));
    std::fs::write(&path, &bytes[..100]).unwrap();
    let out = tinymla().arg("inspect").arg(&path).output().unwrap();
    std::fs::remove_file(&path).ok();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("tinymla: inspecting") && err.contains("malformed GGUF"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn inspect_of_a_directory_or_missing_file_fails_cleanly() {
    for path in [fixture(""), fixture("no-such-file.gguf")] {
        let out = tinymla().arg("inspect").arg(&path).output().unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.starts_with("tinymla: ") && !err.contains("panicked"), "{err}");
    }
}

fn run_ok(args: &[&str]) -> (String, String) {
    let out = tinymla().args(args).output().unwrap();
    let (stdout, stderr) =
        (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap());
    assert!(out.status.success(), "{args:?} failed: {stderr}");
    (stdout, stderr)
}

fn run_err(args: &[&str]) -> String {
    let out = tinymla().args(args).output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!out.status.success(), "{args:?} should fail");
    assert!(stderr.starts_with("tinymla: ") && !stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    stderr
}

#[test]
fn run_streams_text_and_reports_speed() {
    let model = fixture("v3_qlora_grouped.gguf");
    let m = model.to_str().unwrap();
    let greedy = ["run", "-m", m, "-p", "the cat", "-n", "12", "--temp", "0"];
    let (text, stderr) = run_ok(&greedy);
    assert!(!text.trim_end_matches('\n').is_empty());
    assert!(stderr.contains("prompt: ") && stderr.contains("generated: 12 tokens"), "{stderr}");
    // Greedy is deterministic; a seeded sampler (the default) is reproducible.
    assert_eq!(run_ok(&greedy).0, text);
    let sampled = ["run", "-m", m, "-p", "the cat", "-n", "12", "--temp", "1.0", "--seed", "5"];
    assert_eq!(run_ok(&sampled).0, run_ok(&sampled).0);
    let defaults = ["run", "-m", m, "-p", "the cat", "-n", "12"];
    assert_eq!(run_ok(&defaults).0, run_ok(&defaults).0);
    // Every cache storage runs; -n 0 only prefills.
    for cache in ["f16", "q8"] {
        run_ok(&["run", "-m", m, "-p", "hi", "-n", "4", "--cache", cache]);
    }
    let (none, stderr) = run_ok(&["run", "-m", m, "-p", "hi", "-n", "0"]);
    assert_eq!(none.trim(), "");
    assert!(stderr.contains("generated: 0 tokens"), "{stderr}");
    // Past a small context, generation shifts the context and goes on.
    let (_, stderr) =
        run_ok(&["run", "-m", m, "-p", "hi", "-n", "50", "--ctx", "8", "--temp", "0"]);
    assert!(
        stderr.contains("generated: 50 tokens") && stderr.contains("context shifts"),
        "{stderr}"
    );
}

#[test]
fn run_rejects_bad_input_with_one_line() {
    let model = fixture("v3_qlora_grouped.gguf");
    let m = model.to_str().unwrap();
    assert!(run_err(&["run", "-m", m, "-p", ""]).contains("prompt is empty"));
    assert!(run_err(&["run", "-m", m, "-p", "hi", "--ctx", "1000000000000"]).contains("--ctx"));
    assert!(run_err(&["run", "-m", m, "-p", "hi", "--ctx", "0"]).contains("--ctx"));
    let long = "a ".repeat(100);
    assert!(run_err(&["run", "-m", m, "-p", &long, "--ctx", "16"]).contains("more than --ctx 16"));
    assert!(
        run_err(&["run", "-m", fixture("").to_str().unwrap(), "-p", "hi"]).contains("directory")
    );
    let bytes = std::fs::read(&model).unwrap();
    let path = std::env::temp_dir().join(format!("tinymla-run-trunc-{}.gguf", std::process::id()));
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = run_err(&["run", "-m", path.to_str().unwrap(), "-p", "hi"]);
    std::fs::remove_file(&path).ok();
    assert!(err.contains("malformed GGUF"), "{err}");
}

/// `logits` reproduces the golden reference: the JSON for the fixture's prompt equals
/// transformers' logits within the golden tolerance.
#[test]
fn logits_json_matches_the_reference() {
    let bytes = std::fs::read(fixture("v3_dense_tied.expected.bin")).unwrap();
    let word = |i: usize| u32::from_le_bytes(bytes[4 * i..4 * i + 4].try_into().unwrap());
    let (n_pos, n_vocab) = (word(2) as usize, word(3) as usize);
    let tokens: Vec<u32> = (0..n_pos).map(|i| word(4 + i)).collect();
    let list = tokens.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
    let model = fixture("v3_dense_tied.gguf");
    let (json, _) = run_ok(&["logits", "-m", model.to_str().unwrap(), "--tokens", &list]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["tokens"].as_array().unwrap().len(), n_pos);
    for pos in 0..n_pos {
        let row = v["logits"][pos].as_array().unwrap();
        assert_eq!(row.len(), n_vocab);
        let start = 4 * (4 + n_pos) + 4 * pos * n_vocab;
        for (j, got) in row.iter().enumerate() {
            let at = start + 4 * j;
            let want = f32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
            assert!((got.as_f64().unwrap() as f32 - want).abs() < 1e-4 * 3.0, "pos {pos} id {j}");
        }
    }
    let err = run_err(&["logits", "-m", model.to_str().unwrap(), "--tokens", "1,99999"]);
    assert!(err.contains("out of range"), "{err}");
    let (json, _) = run_ok(&["logits", "-m", model.to_str().unwrap(), "-p", "the"]);
    assert!(json.contains("\"logits\""));
}

/// `--activations int16` reaches the model: on a Q8_0 file (demo-s; the golden fixtures'
/// widths fall back to F16) its logits differ from int8's, by no more than int8 rounding
/// moves them.
#[test]
fn logits_take_the_activation_precision() {
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/demo-s.q8_0.gguf");
    let m = model.to_str().unwrap();
    let logits = |a: &str| -> Vec<f64> {
        let (json, _) = run_ok(&["logits", "-m", m, "--tokens", "1,2,3", "--activations", a]);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let rows = v["logits"].as_array().unwrap();
        rows.iter()
            .flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()))
            .collect()
    };
    let (int8, int16) = (logits("int8"), logits("int16"));
    let widest = int8.iter().zip(&int16).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(widest > 0.0 && widest < 0.5, "int8 vs int16: {widest}");
}

#[test]
fn bench_prints_a_row_per_prompt_length() {
    let model = fixture("v3_dense_tied.gguf");
    let (table, _) =
        run_ok(&["bench", "-m", model.to_str().unwrap(), "--prompt", "4,16", "-n", "4"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].contains("prefill tok/s") && lines[2].trim_start().starts_with("16"));
    let err = run_err(&["bench", "-m", model.to_str().unwrap(), "--prompt", "100000"]);
    assert!(err.contains("--ctx"), "{err}");
    // Several sequences decoded together: the `seqs` column says how many.
    let m = model.to_str().unwrap();
    let (table, _) = run_ok(&["bench", "-m", m, "--prompt", "4", "-n", "3", "--sequences", "3"]);
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[..5], ["4", "64", "3", "3", "1"], "{table}");
    let err = run_err(&["bench", "-m", model.to_str().unwrap(), "--sequences", "0"]);
    assert!(err.contains("--sequences 0 is not in 1..=64"), "{err}");
}

#[test]
fn threads_change_speed_not_output() {
    // demo-m: its larger matrices are split across threads.
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/demo-m.q8_0.gguf");
    let m = model.to_str().unwrap();
    let one = run_ok(&["run", "-m", m, "-p", "the cat", "-n", "16", "-t", "1"]).0;
    for t in ["2", "3"] {
        assert_eq!(run_ok(&["run", "-m", m, "-p", "the cat", "-n", "16", "-t", t]).0, one);
    }
    assert!(run_err(&["run", "-m", m, "-p", "hi", "-t", "0"]).contains("at least 1"));
    let (table, _) = run_ok(&["bench", "-m", m, "--prompt", "4", "-n", "2", "-t", "1,2"]);
    let threads: Vec<&str> =
        table.lines().skip(1).map(|l| l.split_whitespace().nth(4).unwrap()).collect();
    assert_eq!(threads, ["1", "2"], "{table}");
    // Prefill batch size is a column; 0 and more than a batch step holds are refused.
    let (table, _) = run_ok(&["bench", "-m", m, "--prompt", "40", "-n", "1", "--batch", "1"]);
    assert_eq!(table.lines().nth(1).unwrap().split_whitespace().nth(1), Some("1"), "{table}");
    for bad in ["0", "65"] {
        assert!(run_err(&["bench", "-m", m, "--batch", bad]).contains("--batch"), "{bad}");
    }
}

#[test]
fn synth_writes_a_loadable_model() {
    let path = std::env::temp_dir().join(format!("tinymla-synth-{}.gguf", std::process::id()));
    let p = path.to_str().unwrap();
    let (_, stderr) = run_ok(&["synth", "--shape", "v2-lite-attention", "--type", "f16", "-o", p]);
    assert!(stderr.contains("parameters"), "{stderr}");
    let (info, _) = run_ok(&["inspect", p]);
    std::fs::remove_file(&path).ok();
    assert!(info.contains("synthetic-v2-lite-attention-2l"), "{info}");
    let err = run_err(&["synth", "-o", "/nonexistent-dir/x.gguf"]);
    assert!(err.contains("writing"), "{err}");
}

/// `demo-s` with `tokenizer.chat_template = template` added (the new entry is padded with
/// trailing spaces to a multiple of the 32-byte alignment, so the tensor data stays aligned).
fn demo_s_with_template(template: &str, tag: &str) -> PathBuf {
    let demo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/demo-s.q8_0.gguf");
    let bytes = std::fs::read(demo).unwrap();
    let key = "tokenizer.chat_template";
    let mut value = template.to_owned();
    let entry_len = |v: &str| 8 + key.len() + 4 + 8 + v.len();
    while entry_len(&value) % 32 != 0 {
        value.push(' ');
    }
    let mut entry = Vec::new();
    entry.extend((key.len() as u64).to_le_bytes());
    entry.extend(key.as_bytes());
    entry.extend(8u32.to_le_bytes()); // string
    entry.extend((value.len() as u64).to_le_bytes());
    entry.extend(value.as_bytes());
    let mut out = bytes[..24].to_vec();
    let n_kv = u64::from_le_bytes(bytes[16..24].try_into().unwrap());
    out[16..24].copy_from_slice(&(n_kv + 1).to_le_bytes());
    out.extend(entry);
    out.extend(&bytes[24..]);
    let path = std::env::temp_dir().join(format!("tinymla-chat-{tag}-{}.gguf", std::process::id()));
    std::fs::write(&path, out).unwrap();
    path
}

fn chat(args: &[&str], input: &str) -> (String, String, bool) {
    use std::io::Write as _;
    let mut child = tinymla()
        .arg("chat")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (String::from_utf8(out.stdout).unwrap(), stderr, out.status.success())
}

/// `(prefill tokens, cache length)` of each turn, from the per-turn stderr lines.
fn turns(stderr: &str) -> Vec<(usize, usize)> {
    stderr
        .lines()
        .filter_map(|l| {
            let l = l.trim_start_matches("> ");
            let fed = l.strip_prefix("[prefill ")?.split(' ').next()?.parse().ok()?;
            let cache = l.split("cache ").nth(1)?.split('/').next()?.parse().ok()?;
            Some((fed, cache))
        })
        .collect()
}

#[test]
fn chat_keeps_the_cache_across_turns() {
    let args = ["-n", "12", "--temp", "0"];
    let (text, stderr, ok) = chat(&args, "Hello there\nWhat is a cat?\n");
    assert!(ok, "{stderr}");
    assert!(stderr.contains("plain User:/Assistant: turns (the model has no chat template)"));
    let t = turns(&stderr);
    assert_eq!(t.len(), 2, "{stderr}");
    // Turn 2 reads only its own text: the cache grows by exactly what was fed and generated.
    assert_eq!(t[1].1, t[0].1 + t[1].0 + 12, "{stderr}");
    assert!(!text.trim().is_empty(), "{stderr}");
    // Deterministic, and /reset starts over: the same first turn gives the same reply.
    let (one, _, _) = chat(&args, "Hello there\n");
    let (again, stderr, _) = chat(&args, "Hello there\n/reset\nHello there\n");
    assert_eq!(again, one.repeat(2), "{stderr}");
    assert_eq!(turns(&stderr)[1], turns(&stderr)[0]);
}

#[test]
fn chat_handles_a_full_context_per_policy() {
    let input = "tell me a long story please\n".repeat(6);
    // Shift (the default): never resets, shifts, and the cache never passes its capacity.
    let (_, stderr, ok) = chat(&["-n", "20", "--ctx", "48"], &input);
    assert!(ok && !stderr.contains("context full"), "{stderr}");
    let t = turns(&stderr);
    assert_eq!(t.len(), 6, "{stderr}");
    assert!(t.iter().all(|&(_, c)| c < 48), "{stderr}");
    assert!(stderr.contains("context shifted") && stderr.contains("0 context resets"), "{stderr}");
    // Slide: never resets, the cache stays at capacity.
    let (_, stderr, ok) = chat(&["-n", "20", "--ctx", "48", "--overflow", "slide"], &input);
    assert!(ok && !stderr.contains("context full"), "{stderr}");
    let t = turns(&stderr);
    assert_eq!(t.len(), 6, "{stderr}");
    assert!(t.iter().all(|&(_, c)| c <= 48) && t[5].1 == 48, "{stderr}");
    assert!(stderr.contains("0 context resets"), "{stderr}");
    // Slide past the model's trained context (256): a new conversation, not an exit.
    let long = "tell me a long story please\n".repeat(12);
    let (_, stderr, ok) = chat(&["-n", "20", "--ctx", "48", "--overflow", "slide"], &long);
    assert!(ok && stderr.contains("[context full"), "{stderr}");
    assert_eq!(turns(&stderr).len(), 12, "{stderr}");
    // Error: the conversation starts afresh instead of failing.
    let (_, stderr, ok) = chat(&["-n", "20", "--ctx", "48", "--overflow", "error"], &input);
    assert!(ok && stderr.contains("[context full"), "{stderr}");
    assert_eq!(turns(&stderr).len(), 6, "{stderr}");
    // A message that cannot fit at all is refused, and the chat goes on.
    let huge = format!("{}\nhi\n", "word ".repeat(200));
    let (_, stderr, ok) = chat(&["-n", "4", "--ctx", "48", "--overflow", "error"], &huge);
    assert!(ok && stderr.contains("does not fit in 48 tokens"), "{stderr}");
    assert_eq!(turns(&stderr).len(), 1, "{stderr}");
}

#[test]
fn chat_uses_the_files_template() {
    let template = "{% for m in messages %}{% if m.role == 'user' %}{{ bos_token }}Q: \
                    {{ m.content }}\nA:{% else %}{{ m.content }}{{ eos_token }}{% endif %}\
                    {% endfor %}";
    let path = demo_s_with_template(template, "ok");
    let p = path.to_str().unwrap();
    let (_, stderr, ok) = chat(&["-m", p, "-n", "6", "--temp", "0"], "Hi\nAgain\n");
    assert!(ok && stderr.contains("the model's chat template"), "{stderr}");
    let t = turns(&stderr);
    // "<BOS>Q: Hi\nA:" then "<EOS><BOS>Q: Again\nA:" (or fewer tokens if the reply hit EOS).
    assert_eq!(t.len(), 2, "{stderr}");
    let plain = turns(&chat(&["-n", "6", "--temp", "0"], "Hi\n").1);
    assert_ne!(t[0].0, 0);
    assert!(t[0].0 != plain[0].0 || t[1].0 > 0, "{stderr}");
    std::fs::remove_file(&path).ok();

    let path = demo_s_with_template("{{ raise_exception('only user and assistant') }}", "raise");
    let (_, stderr, ok) = chat(&["-m", path.to_str().unwrap()], "Hi\n");
    std::fs::remove_file(&path).ok();
    assert!(!ok && stderr.contains("only user and assistant"), "{stderr}");
    assert_eq!(stderr.lines().filter(|l| l.starts_with("tinymla: ")).count(), 1, "{stderr}");

    // A template that doubles a string 64 times stops in its own process at the render's
    // memory limit: one error line, and the chat ends cleanly.
    let path = demo_s_with_template(
        "{% set ns = namespace(s='x') %}{% for i in range(64) %}\
         {% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
        "doubling",
    );
    let (_, stderr, ok) = chat(&["-m", path.to_str().unwrap()], "Hi\n");
    std::fs::remove_file(&path).ok();
    assert!(!ok && stderr.contains("rendering stopped, it ran out of memory"), "{stderr}");
    assert_eq!(stderr.lines().filter(|l| l.starts_with("tinymla: ")).count(), 1, "{stderr}");

    let path = demo_s_with_template("{% for %}", "broken");
    let (_, stderr, ok) = chat(&["-m", path.to_str().unwrap()], "Hi\n");
    std::fs::remove_file(&path).ok();
    assert!(!ok && stderr.starts_with("tinymla: chat template: syntax error"), "{stderr}");
}

#[test]
fn chat_rejects_bad_options_with_one_line() {
    for (args, want) in [
        (&["-t", "0"][..], "at least 1"),
        (&["--ctx", "8", "--sinks", "8"][..], "sink"),
        (&["--ctx", "0"][..], "--ctx"),
    ] {
        let (_, stderr, ok) = chat(args, "Hi\n");
        assert!(
            !ok && stderr.starts_with("tinymla: ") && stderr.contains(want),
            "{args:?}: {stderr}"
        );
    }
}

/// Issue #27's acceptance run: twenty varied messages to the bundled demo model with the
/// default options (a fixed seed only) are all answered, the conversation runs well past the
/// model's 256-token context by shifting it, and the program exits 0.
#[test]
fn chat_answers_twenty_messages_with_default_options() {
    let messages = [
        "Tell me a joke about programmers",
        "What is life?",
        "Why is the sky blue?",
        "Write a short poem about the sea",
        "Who was the first person on the moon?",
        "Give me some advice about money",
        "What do cats dream about?",
        "How do I fix a bug in my code?",
        "Tell me something about love",
        "What is the best way to learn to cook?",
        "Say something wise",
        "Describe a rainy day in the city",
        "What would you do with a million dollars?",
        "Why do people tell fortunes?",
        "Recommend a good book",
        "What is the meaning of happiness?",
        "Tell me a story about a dragon",
        "How do computers think?",
        "What happens after we die?",
        "Goodbye, and thanks for the chat",
    ];
    let input: String = messages.iter().map(|m| format!("{m}\n")).collect();
    let (text, stderr, ok) = chat(&["--seed", "7"], &input);
    assert!(ok, "{stderr}");
    let t = turns(&stderr);
    assert_eq!(t.len(), 20, "{stderr}");
    assert!(stderr.contains("\n20 turns, "), "{stderr}");
    // Tokens read and generated over the conversation, from the closing line.
    let closing = stderr.lines().find(|l| l.starts_with("20 turns, ")).unwrap();
    let count = |what: &str| -> usize {
        closing
            .split(", ")
            .find(|f| f.ends_with(what))
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (read, generated, shifts) =
        (count("tokens read"), count("generated"), count("context shifts"));
    assert!(read + generated > 4 * 256, "{closing}");
    assert!(shifts >= 3 && closing.ends_with("0 context resets"), "{closing}");
    assert!(t.iter().all(|&(_, cache)| cache < 256), "{stderr}");
    // Replies are text, and not all the same.
    assert!(!text.trim().is_empty());
    eprintln!("{stderr}\n{text}");
}

/// `--temp 0` is plain greedy decoding whatever the sampling defaults: `run`'s text equals an
/// argmax loop over the library's logits (no penalty, no truncation), on the bundled model.
#[test]
fn run_with_temp_0_is_plain_greedy() {
    use tinymla_core::sampler::argmax;
    use tinymla_core::vocab::SpecialTokens;
    use tinymla_core::{CacheOptions, LatentCache, Scratch};
    use tinymla_host::session::Loaded;

    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/demo-m.q8_0.gguf");
    let (prompt, n) = ("A programmer", 48);
    let loaded = Loaded::open(&path).unwrap();
    let (model, tokenizer) = (loaded.model().unwrap(), loaded.tokenizer().unwrap());
    let cfg = model.config();
    let mut mem = vec![0u8; LatentCache::bytes_needed(cfg, 256, Default::default()).unwrap()];
    let mut cache = LatentCache::new(cfg, 256, CacheOptions::default(), &mut mem).unwrap();
    let mut scratch_mem = vec![0.0; cfg.scratch_elems(256).unwrap()];
    let mut scratch = Scratch::new(cfg, 256, &mut scratch_mem).unwrap();
    let mut logits = Vec::new();
    for &t in &tokenizer.encode(prompt, tokenizer.add_bos_default()) {
        logits = model.forward(t, &mut cache, &mut scratch).unwrap().to_vec();
    }
    let mut ids = Vec::new();
    while ids.len() < n {
        let next = argmax(&logits);
        if tokenizer.is_end_of_generation(next) {
            break;
        }
        ids.push(next);
        logits = model.forward(next, &mut cache, &mut scratch).unwrap().to_vec();
    }
    let want =
        String::from_utf8(tokenizer.decode_bytes(&ids, SpecialTokens::Skip).unwrap()).unwrap();
    let m = path.to_str().unwrap();
    let (text, _) = run_ok(&["run", "-m", m, "-p", prompt, "-n", &n.to_string(), "--temp", "0"]);
    assert_eq!(text.strip_suffix('\n').unwrap(), want);
    assert!(ids.len() > 10, "{want:?}");
}

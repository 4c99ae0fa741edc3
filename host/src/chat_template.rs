//! Chat templates: the Jinja template a GGUF carries in `tokenizer.chat_template`, rendered
//! the way Hugging Face's `apply_chat_template` does (`messages`, `add_generation_prompt`,
//! `bos_token`, `eos_token`, `raise_exception`, Python string methods), or a plain built-in
//! format for models that carry none.

use minijinja::{context, Environment, Error as JinjaError, ErrorKind};

#[cfg(target_os = "linux")]
mod isolated;
#[cfg(target_os = "linux")]
pub use isolated::{RENDER_MEMORY_BYTES, RENDER_SECONDS};

/// The metadata key llama.cpp's converter writes the template to.
pub const KEY_CHAT_TEMPLATE: &str = "tokenizer.chat_template";

/// The format used when the file has no template: DeepSeek-V2's turn markers without the
/// special tokens, readable by any base model. An assistant turn is written exactly as
/// generated after the `Assistant:` prompt (with its leading space), so a rendered
/// conversation always extends the text the model has already read.
/// Longest template source accepted, in bytes. Real chat templates are 1–20 KB; a longer
/// `tokenizer.chat_template` is refused before it is compiled.
pub const MAX_TEMPLATE_BYTES: usize = 256 << 10;

/// Jinja instructions one render may execute (minijinja's fuel): a DeepSeek-V3-style
/// template renders a 5,000-message conversation within it (tested), while a hostile
/// template's nested loops stop within a second with an error.
pub const TEMPLATE_FUEL: u64 = 5_000_000;

/// Longest string a template may build with `*` (`'-' * 40` is the kind real templates use).
pub const MAX_REPEATED_BYTES: usize = 4096;

/// Longest rendered prompt, in bytes (far above any context a model reads, about 4 M
/// tokens); a template that writes more stops with [`TemplateError::OutputTooLong`].
pub const MAX_RENDERED_BYTES: usize = 16 << 20;

const PLAIN_TEMPLATE: &str = "{% for m in messages %}\
{% if m.role == 'system' %}{{ m.content }}\n\n\
{% elif m.role == 'user' %}User: {{ m.content }}\n\n\
{% else %}Assistant:{{ m.content }}\n\n{% endif %}\
{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}";

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Instructions before the conversation.
    System,
    /// The person chatting.
    User,
    /// The model.
    Assistant,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One turn of the conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Who said it.
    pub role: Role,
    /// What was said.
    pub content: String,
}

/// A compiled chat template.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    /// True for the file's own template, false for the built-in plain format.
    from_file: bool,
    bos_token: String,
    eos_token: String,
    /// The helper process that renders the file's template (see `isolated`).
    #[cfg(target_os = "linux")]
    renderer: isolated::Renderer,
}

/// Why a chat template cannot be used.
#[derive(Debug)]
pub enum TemplateError {
    /// It does not compile or render (Jinja's own message).
    Jinja(JinjaError),
    /// `tokenizer.chat_template` is not a string.
    NotAString,
    /// The template source is longer than [`MAX_TEMPLATE_BYTES`].
    TooLong {
        /// Its length in bytes.
        bytes: usize,
    },
    /// Rendering wrote more than [`MAX_RENDERED_BYTES`].
    OutputTooLong,
    /// A `*` whose operands are not both constants (a number times a number, or a string of
    /// at most [`MAX_REPEATED_BYTES`] bytes in all): minijinja repeats sequences lazily and
    /// without bound, outside its fuel (`() * 2422220007` spins for minutes), so templates may
    /// only multiply constants.
    Repetition {
        /// Line of the `*`.
        line: u32,
    },
    /// Rendering failed in the process that rendered it (its error's one line, as
    /// [`TemplateError::Jinja`] displays it).
    Render(String),
    /// Rendering went past its memory ([`RENDER_MEMORY_BYTES`]) or time ([`RENDER_SECONDS`])
    /// and was stopped: a template that builds ever larger values (strings or lists doubled
    /// in a loop), which fuel alone cannot stop.
    ResourceLimit {
        /// What stopped it, in words ("it ran out of memory").
        cause: &'static str,
    },
    /// The render could not be set up in a process of its own (`pipe` or `fork` failed).
    Isolation(std::io::Error),
}

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let e = match self {
            TemplateError::NotAString => return write!(f, "{KEY_CHAT_TEMPLATE} is not a string"),
            TemplateError::TooLong { bytes } => {
                return write!(
                    f,
                    "chat template: {bytes} bytes, more than the {MAX_TEMPLATE_BYTES} accepted"
                )
            }
            TemplateError::Repetition { line } => {
                return write!(
                    f,
                    "chat template: `*` on a non-constant operand (line {line}); only constants \
                     may be multiplied"
                )
            }
            TemplateError::OutputTooLong => {
                return write!(
                    f,
                    "chat template: the rendered prompt exceeds {MAX_RENDERED_BYTES} bytes"
                )
            }
            TemplateError::Render(line) => return f.write_str(line),
            TemplateError::ResourceLimit { cause } => return resource_limit(f, cause),
            TemplateError::Isolation(e) => {
                return write!(f, "chat template: cannot render in a process of its own: {e}")
            }
            TemplateError::Jinja(e) => e,
        };
        // One line: the kind and detail, without minijinja's multi-line debug view.
        write!(f, "chat template: {}", e.kind())?;
        if let Some(detail) = e.detail() {
            write!(f, ": {detail}")?;
        }
        if let Some(line) = e.line() {
            write!(f, " (line {line})")?;
        }
        Ok(())
    }
}

impl std::error::Error for TemplateError {}

#[cfg(target_os = "linux")]
fn resource_limit(f: &mut std::fmt::Formatter<'_>, cause: &str) -> std::fmt::Result {
    write!(
        f,
        "chat template: rendering stopped, {cause} (a render may use {} MiB and {RENDER_SECONDS} s)",
        RENDER_MEMORY_BYTES >> 20
    )
}

#[cfg(not(target_os = "linux"))]
fn resource_limit(f: &mut std::fmt::Formatter<'_>, cause: &str) -> std::fmt::Result {
    write!(f, "chat template: rendering stopped, {cause}")
}

impl ChatTemplate {
    /// Compiles `source` (the file's template), or the built-in plain format for `None`.
    /// `bos_token`/`eos_token` are the texts of the tokenizer's BOS/EOS tokens.
    ///
    /// # Errors
    /// [`TemplateError`] if the template does not compile.
    pub fn new(
        source: Option<&str>,
        bos_token: &str,
        eos_token: &str,
    ) -> Result<Self, TemplateError> {
        let from_file = source.is_some();
        let source = source.unwrap_or(PLAIN_TEMPLATE);
        if source.len() > MAX_TEMPLATE_BYTES {
            return Err(TemplateError::TooLong { bytes: source.len() });
        }
        check_repetition(source)?;
        let mut env = Environment::new();
        env.set_fuel(Some(TEMPLATE_FUEL));
        // Hugging Face renders with trim_blocks and lstrip_blocks.
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |msg: String| -> Result<String, JinjaError> {
            Err(JinjaError::new(ErrorKind::InvalidOperation, msg))
        });
        env.add_template_owned("chat", source.to_owned()).map_err(TemplateError::Jinja)?;
        Ok(ChatTemplate {
            env,
            from_file,
            bos_token: bos_token.to_owned(),
            eos_token: eos_token.to_owned(),
            #[cfg(target_os = "linux")]
            renderer: isolated::Renderer::default(),
        })
    }

    /// True when the model file supplied the template.
    pub fn is_from_file(&self) -> bool {
        self.from_file
    }

    /// The conversation as the model expects to read it; with `add_generation_prompt`, ending
    /// where the assistant's next reply begins.
    ///
    /// On Linux a file's template renders in a helper process of its own, under hard memory
    /// and time limits ([`RENDER_MEMORY_BYTES`], [`RENDER_SECONDS`]), so that a template that
    /// builds ever larger values ends in [`TemplateError::ResourceLimit`] instead of
    /// exhausting the memory (the helper is forked at the first render; each render then
    /// costs two pipe messages, about 20 µs). The built-in plain format renders in this
    /// process.
    ///
    /// # Errors
    /// [`TemplateError`] if rendering fails (including the template's own
    /// `raise_exception`, e.g. for roles it does not accept) or goes past a limit.
    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String, TemplateError> {
        #[cfg(target_os = "linux")]
        if self.from_file {
            return self.renderer.render(self, messages, add_generation_prompt);
        }
        self.render_here(messages, add_generation_prompt)
    }

    /// [`ChatTemplate::render`] in this process, with fuel and the output cap but no memory
    /// limit: a hostile template can exhaust the memory. For the fuzzer (which needs the
    /// render in its own process to see coverage) and for platforms without `fork`.
    pub fn render_here(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String, TemplateError> {
        let messages: Vec<_> = messages
            .iter()
            .map(|m| context! { role => m.role.as_str(), content => m.content.as_str() })
            .collect();
        let template = self.env.get_template("chat").map_err(TemplateError::Jinja)?;
        let mut out = CappedOutput { bytes: Vec::new(), overflowed: false };
        let ctx = context! {
            messages,
            add_generation_prompt,
            bos_token => self.bos_token.as_str(),
            eos_token => self.eos_token.as_str(),
        };
        match template.render_captured_to(ctx, &mut out) {
            Ok(_) => {}
            Err(_) if out.overflowed => return Err(TemplateError::OutputTooLong),
            Err(e) => return Err(TemplateError::Jinja(e)),
        }
        // minijinja writes whole `str`s, and a write past the cap fails before it is kept.
        String::from_utf8(out.bytes).map_err(|_| TemplateError::OutputTooLong)
    }
}

/// Refuses a template with a `*` that is not constant × constant (see
/// [`TemplateError::Repetition`]); a template that does not tokenize is left to the compiler
/// to report.
fn check_repetition(source: &str) -> Result<(), TemplateError> {
    use minijinja::machinery::{tokenize, Token, WhitespaceConfig};
    /// A literal: (is a string, its bytes or its value); `None` for anything else.
    fn literal(t: Option<&(Token<'_>, u32)>) -> Option<(bool, u128)> {
        match t.map(|(t, _)| t) {
            Some(Token::Str(s)) => Some((true, s.len() as u128)),
            Some(Token::String(s)) => Some((true, s.len() as u128)),
            Some(Token::Int(n)) => Some((false, u128::from(*n))),
            Some(Token::Int128(n)) => Some((false, **n)),
            Some(Token::Float(_)) => Some((false, 1)),
            _ => None,
        }
    }
    let ws =
        WhitespaceConfig { keep_trailing_newline: false, lstrip_blocks: true, trim_blocks: true };
    let mut tokens = Vec::new();
    for t in tokenize(source, false, Default::default(), ws) {
        match t {
            Ok((token, span)) => tokens.push((token, u32::from(span.start_line))),
            Err(_) => return Ok(()),
        }
    }
    for (i, (token, line)) in tokens.iter().enumerate() {
        if !matches!(token, Token::Mul) {
            continue;
        }
        let before = literal(i.checked_sub(1).and_then(|j| tokens.get(j)));
        let ok = match (before, literal(tokens.get(i + 1))) {
            (Some((false, _)), Some((false, _))) => true,
            (Some((true, len)), Some((false, n))) | (Some((false, n)), Some((true, len))) => {
                len.saturating_mul(n) <= MAX_REPEATED_BYTES as u128
            }
            _ => false,
        };
        if !ok {
            return Err(TemplateError::Repetition { line: *line });
        }
    }
    Ok(())
}

/// The render's output, refusing to grow past [`MAX_RENDERED_BYTES`].
struct CappedOutput {
    bytes: Vec<u8>,
    overflowed: bool,
}

impl std::io::Write for CappedOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > MAX_RENDERED_BYTES {
            self.overflowed = true;
            return Err(std::io::Error::other("rendered prompt too long"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_templates_stop_with_an_error() {
        let chat = [user("hi")];
        // 10^10 iterations: out of fuel.
        let t = ChatTemplate::new(
            Some(
                "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
            ),
            "",
            "",
        )
        .unwrap();
        let e = t.render(&chat, true).unwrap_err();
        assert!(e.to_string().contains("fuel"), "{e}");
        // 32 MB of output: past the output cap.
        let t = ChatTemplate::new(
            Some("{% for i in range(8000) %}{{ 'x' * 4000 }}{% endfor %}"),
            "",
            "",
        )
        .unwrap();
        assert!(matches!(t.render(&chat, true), Err(TemplateError::OutputTooLong)));
        // Repetition of anything but constants is refused before compiling: the fuzzer's
        // input that spun minijinja for minutes (an empty tuple repeated 2.4e9 times), a
        // repeated list, a variable, and a string past the cap.
        for source in [
            "a*{{-()*4*024_2222_0007}}a\n{{1>=0_1>=0_0007}}a\nc9}}",
            "{{ [1] * 1000000000 }}",
            "{{ messages * 3 }}",
            "{{ 'ab' * 2049 }}",
            "{% set n = 3 %}{{ '-' * n }}",
        ] {
            let e = ChatTemplate::new(Some(source), "", "").unwrap_err();
            assert!(matches!(e, TemplateError::Repetition { .. }), "{source}: {e}");
        }
        // Constants still multiply.
        let t =
            ChatTemplate::new(Some("{{ '-' * 4 }}{{ 2 * 3 }}{{ 2048 * 'ab' }}"), "", "").unwrap();
        assert_eq!(t.render(&chat, true).unwrap().len(), 4 + 1 + 4096);
        // A source past the length cap is refused before compiling.
        let long = "x".repeat(MAX_TEMPLATE_BYTES + 1);
        let e = ChatTemplate::new(Some(&long), "", "").unwrap_err();
        assert!(matches!(e, TemplateError::TooLong { bytes } if bytes == MAX_TEMPLATE_BYTES + 1));
        assert!(e.to_string().contains("more than the 262144 accepted"), "{e}");
        // Just under the output cap still renders.
        let t = ChatTemplate::new(
            Some("{% for i in range(4000) %}{{ 'x' * 4000 }}{% endfor %}"),
            "",
            "",
        )
        .unwrap();
        assert_eq!(t.render(&chat, true).unwrap().len(), 16_000_000);
    }

    /// Templates whose values double at every step (a few instructions each, so fuel does
    /// not stop them): each render stops with a resource-limit error in its own process,
    /// and this process (the test) goes on. Without the isolation the first one aborts the
    /// test binary when an allocation of terabytes fails.
    #[cfg(target_os = "linux")]
    #[test]
    fn growing_values_stop_at_the_memory_limit() {
        let chat = [user("hi")];
        let doubling = [
            // String concatenation, the session-9 example.
            "{% set ns = namespace(s='x') %}{% for i in range(64) %}\
             {% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
            // `+` on strings and on lists.
            "{% set ns = namespace(s='ab') %}{% for i in range(64) %}\
             {% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}",
            "{% set ns = namespace(l=[1, 2]) %}{% for i in range(64) %}\
             {% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l|length }}",
            // Filters whose result is longer than their input: escaping and replacing.
            "{% set ns = namespace(s='\"') %}{% for i in range(64) %}\
             {% set ns.s = ns.s|tojson %}{% endfor %}{{ ns.s|length }}",
            "{% set ns = namespace(s='x') %}{% for i in range(64) %}\
             {% set ns.s = ns.s|replace('x', 'xx') %}{% endfor %}{{ ns.s|length }}",
        ];
        for source in doubling {
            let t = ChatTemplate::new(Some(source), "", "").unwrap();
            match t.render(&chat, true) {
                Err(e @ TemplateError::ResourceLimit { .. }) => {
                    let line = e.to_string();
                    assert!(
                        line.contains("out of memory") && !line.contains('\n'),
                        "{source}: {line}"
                    );
                }
                other => panic!("{source}: {other:?}"),
            }
        }
        // A list holding itself twice is small (shared), but written out as one string it
        // is 2^64 items: that string grows for as long as the render may run.
        let t = ChatTemplate::new(
            Some(
                "{% set ns = namespace(l=['x']) %}{% for i in range(64) %}\
                 {% set ns.l = [ns.l, ns.l] %}{% endfor %}{{ ns.l|string|length }}",
            ),
            "",
            "",
        )
        .unwrap();
        assert!(matches!(t.render(&chat, true), Err(TemplateError::ResourceLimit { .. })));
        // Growth driven by the conversation: one doubling per message. Three messages render;
        // sixty are refused, and the same template renders three again afterwards.
        let per_message = ChatTemplate::new(
            Some(
                "{% set ns = namespace(s='ab') %}{% for m in messages %}\
                 {% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
            ),
            "",
            "",
        )
        .unwrap();
        assert_eq!(per_message.render(&[user("a"), user("b"), user("c")], true).unwrap(), "16");
        let long: Vec<Message> = (0..60).map(|_| user("a")).collect();
        assert!(matches!(
            per_message.render(&long, true),
            Err(TemplateError::ResourceLimit { .. })
        ));
        assert_eq!(per_message.render(&[user("a"), user("b"), user("c")], true).unwrap(), "16");
    }

    #[test]
    fn the_fuel_renders_thousands_of_turns() {
        let t = ChatTemplate::new(Some(DEEPSEEK_V3_LIKE), "<BOS>", "<EOS>").unwrap();
        let chat: Vec<Message> = (0..5000)
            .map(|i| if i % 2 == 0 { user("question") } else { assistant("answer") })
            .collect();
        let text = t.render(&chat, true).unwrap();
        assert_eq!(text.matches("question").count(), 2500);
    }

    fn user(s: &str) -> Message {
        Message { role: Role::User, content: s.into() }
    }

    fn assistant(s: &str) -> Message {
        Message { role: Role::Assistant, content: s.into() }
    }

    /// DeepSeek-V3's template, shortened to its message loop but keeping the constructs
    /// that need more than basic Jinja: `namespace`, `in` on strings, `.split()[-1]`.
    const DEEPSEEK_V3_LIKE: &str = "{% if not add_generation_prompt is defined %}\
{% set add_generation_prompt = false %}{% endif %}\
{% set ns = namespace(system_prompt='') %}\
{%- for message in messages %}{%- if message['role'] == 'system' %}\
{% set ns.system_prompt = message['content'] %}{%- endif %}{%- endfor %}\
{{ bos_token }}{{ ns.system_prompt }}\
{%- for message in messages %}\
{%- if message['role'] == 'user' %}{{ '<｜User｜>' + message['content'] }}{%- endif %}\
{%- if message['role'] == 'assistant' %}{% set content = message['content'] %}\
{% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %}\
{{ '<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>' }}{%- endif %}\
{%- endfor %}\
{% if add_generation_prompt %}{{ '<｜Assistant｜>' }}{% endif %}";

    #[test]
    fn deepseek_style_template_renders_like_transformers() {
        let t = ChatTemplate::new(Some(DEEPSEEK_V3_LIKE), "<BOS>", "<EOS>").unwrap();
        assert!(t.is_from_file());
        let msgs = [
            Message { role: Role::System, content: "Be brief.".into() },
            user("Hi"),
            assistant("<think>hmm</think>Hello"),
            user("Bye"),
        ];
        assert_eq!(
            t.render(&msgs, true).unwrap(),
            "<BOS>Be brief.<｜User｜>Hi<｜Assistant｜>Hello<｜end▁of▁sentence｜>\
             <｜User｜>Bye<｜Assistant｜>"
        );
        assert!(!t.render(&msgs, false).unwrap().ends_with("<｜Assistant｜>"));
    }

    #[test]
    fn plain_format_is_used_without_a_template() {
        let t = ChatTemplate::new(None, "", "").unwrap();
        assert!(!t.is_from_file());
        let text = t.render(&[user("Hi"), assistant(" Hello"), user("Bye")], true).unwrap();
        assert_eq!(text, "User: Hi\n\nAssistant: Hello\n\nUser: Bye\n\nAssistant:");
    }

    #[test]
    fn template_errors_are_one_line() {
        let e = ChatTemplate::new(Some("{% for %}"), "", "").unwrap_err().to_string();
        assert!(e.starts_with("chat template: ") && !e.contains('\n'), "{e}");
        let t = ChatTemplate::new(Some("{{ raise_exception('no system role') }}"), "", "").unwrap();
        let e = t.render(&[user("x")], true).unwrap_err().to_string();
        assert!(e.contains("no system role") && !e.contains('\n'), "{e}");
    }
}

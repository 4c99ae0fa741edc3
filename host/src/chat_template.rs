//! Chat templates: the Jinja template a GGUF carries in `tokenizer.chat_template`, rendered
//! the way Hugging Face's `apply_chat_template` does (`messages`, `add_generation_prompt`,
//! `bos_token`, `eos_token`, `raise_exception`, Python string methods), or a plain built-in
//! format for models that carry none.

use minijinja::{context, Environment, Error as JinjaError, ErrorKind};

/// The metadata key llama.cpp's converter writes the template to.
pub const KEY_CHAT_TEMPLATE: &str = "tokenizer.chat_template";

/// The format used when the file has no template: DeepSeek-V2's turn markers without the
/// special tokens, readable by any base model. An assistant turn is written exactly as
/// generated after the `Assistant:` prompt (with its leading space), so a rendered
/// conversation always extends the text the model has already read.
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
}

/// Why a chat template cannot be used.
#[derive(Debug)]
pub enum TemplateError {
    /// It does not compile or render (Jinja's own message).
    Jinja(JinjaError),
    /// `tokenizer.chat_template` is not a string.
    NotAString,
}

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let e = match self {
            TemplateError::NotAString => return write!(f, "{KEY_CHAT_TEMPLATE} is not a string"),
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
        let mut env = Environment::new();
        // Hugging Face renders with trim_blocks and lstrip_blocks.
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |msg: String| -> Result<String, JinjaError> {
            Err(JinjaError::new(ErrorKind::InvalidOperation, msg))
        });
        env.add_template_owned("chat", source.unwrap_or(PLAIN_TEMPLATE).to_owned())
            .map_err(TemplateError::Jinja)?;
        Ok(ChatTemplate {
            env,
            from_file: source.is_some(),
            bos_token: bos_token.to_owned(),
            eos_token: eos_token.to_owned(),
        })
    }

    /// True when the model file supplied the template.
    pub fn is_from_file(&self) -> bool {
        self.from_file
    }

    /// The conversation as the model expects to read it; with `add_generation_prompt`, ending
    /// where the assistant's next reply begins.
    ///
    /// # Errors
    /// [`TemplateError`] if rendering fails (including the template's own
    /// `raise_exception`, e.g. for roles it does not accept).
    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String, TemplateError> {
        let messages: Vec<_> = messages
            .iter()
            .map(|m| context! { role => m.role.as_str(), content => m.content.as_str() })
            .collect();
        let template = self.env.get_template("chat").map_err(TemplateError::Jinja)?;
        template
            .render(context! {
                messages,
                add_generation_prompt,
                bos_token => self.bos_token.as_str(),
                eos_token => self.eos_token.as_str(),
            })
            .map_err(TemplateError::Jinja)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

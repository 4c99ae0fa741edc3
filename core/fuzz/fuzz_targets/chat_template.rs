//! Chat templates from a hostile GGUF (`tokenizer.chat_template`) rendering hostile messages:
//! compiling and rendering return `Ok` or a typed error, never panic, and finish within the
//! fuzzer's time limit whatever the template loops over.
//!
//! It renders with `render_here`, in the fuzzer's own process (a forked render's coverage
//! would not reach the fuzzer). That path has no memory limit: an out-of-memory finding here is
//! a template whose values grow without bound, which `render` (what `chat` and `serve` call)
//! stops in its own process with `TemplateError::ResourceLimit` — check the input against
//! `render` before calling it a bug.
//!
//! Input, separated by NUL bytes: the template source, then up to 8 messages whose first byte
//! picks the role.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tinymla_host::chat_template::{ChatTemplate, Message, Role};

const ROLES: [Role; 3] = [Role::System, Role::User, Role::Assistant];

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|&b| b == 0);
    let source = String::from_utf8_lossy(parts.next().unwrap_or(&[]));
    let Ok(template) =
        ChatTemplate::new(Some(&source), "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>")
    else {
        return;
    };
    let messages: Vec<Message> = parts
        .take(8)
        .map(|p| {
            let (role, content) = p.split_first().map_or((0, &[][..]), |(r, c)| (*r, c));
            Message {
                role: ROLES[usize::from(role) % ROLES.len()],
                content: String::from_utf8_lossy(content).into_owned(),
            }
        })
        .collect();
    for add_generation_prompt in [false, true] {
        let _ = template.render_here(&messages, add_generation_prompt);
    }
});

//! Renders of a file's chat template in a helper process of their own, under hard memory and
//! time limits (Linux).
//!
//! Fuel bounds the instructions a template runs, and the output cap what it writes, but
//! neither bounds what it *holds*: `{% set ns.s = ns.s ~ ns.s %}` in a 40-step loop (or one
//! step per message), `tojson` or `replace` applied to their own result, a list concatenated
//! with itself — a few instructions each, doubling memory every time. minijinja has no
//! memory limit, and an allocation that fails aborts a Rust process. So renders run in a
//! helper process, `fork`ed at a template's first render, whose address space may grow by at
//! most [`RENDER_MEMORY_BYTES`] over the parent's and whose every render may take at most
//! [`RENDER_SECONDS`]: a template that goes past either kills only the helper, the caller
//! gets [`TemplateError::ResourceLimit`], and the next render starts a new helper.
//!
//! The helper renders with the parent's compiled template (its memory is a copy-on-write copy
//! of the parent's), takes requests and gives answers over two pipes, closes every other file
//! it inherited (so that one template's helper keeps no other helper's pipe open), sends its
//! stderr to `/dev/null` (an abort's message does not reach the user's terminal) and leaves
//! with `_exit` when its parent closes the request pipe. One helper serves one template, one
//! render at a time. A `fork` copies the parent's page tables (tens of milliseconds for a
//! process holding GiBs of caches), so it happens once, not per render; a render then costs
//! two pipe messages.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Mutex, PoisonError};

use nix::sys::resource::{setrlimit, Resource};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

use super::{ChatTemplate, Message, Role, TemplateError};

/// Address space the helper may add to its parent's, in bytes. Real templates need a few MiB
/// for a long conversation (the output alone is capped at 16 MiB).
pub const RENDER_MEMORY_BYTES: u64 = 512 << 20;

/// Wall-clock seconds one render may take (an alarm in the helper). Fuel stops real loops
/// long before; this stops what fuel does not count (writing out a huge shared structure).
pub const RENDER_SECONDS: u32 = 5;

/// The helper's answer: one tag byte, a little-endian `u64` length, then the rendered text
/// or the error's one line.
const TAG_TEXT: u8 = b'T';
const TAG_ERROR: u8 = b'E';
const TAG_OUTPUT_TOO_LONG: u8 = b'L';

/// The helper's exit status when it could not set its limits (and so renders nothing).
const EXIT_NO_LIMITS: i32 = 2;

/// A template's helper, started at its first render and again after one was stopped.
#[derive(Default)]
pub(super) struct Renderer {
    helper: Mutex<Option<Helper>>,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Renderer")
    }
}

/// A running helper: its process and the parent's ends of its two pipes.
struct Helper {
    pid: Pid,
    requests: File,
    answers: File,
}

impl Renderer {
    /// `template.render_here(messages, add_generation_prompt)`, run by the helper. The
    /// render's own errors come back as [`TemplateError::Render`] (their one-line text) or
    /// [`TemplateError::OutputTooLong`]; a helper stopped by a limit (or by anything else)
    /// as [`TemplateError::ResourceLimit`]; a failed `pipe`/`fork` as
    /// [`TemplateError::Isolation`].
    pub(super) fn render(
        &self,
        template: &ChatTemplate,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String, TemplateError> {
        let mut slot = self.helper.lock().unwrap_or_else(PoisonError::into_inner);
        let helper = match &mut *slot {
            Some(helper) => helper,
            empty => empty.insert(Helper::start(template)?),
        };
        match helper.ask(messages, add_generation_prompt) {
            Ok((tag, payload)) => decode(tag, payload),
            Err(_) => {
                // The helper is gone (a limit stopped it) or broken: reap it and say why.
                let cause = "it stopped without an answer";
                Err(slot.take().map_or(TemplateError::ResourceLimit { cause }, Helper::stop))
            }
        }
    }
}

impl Helper {
    /// Forks the helper for `template`.
    fn start(template: &ChatTemplate) -> Result<Helper, TemplateError> {
        let isolation = |e: nix::Error| TemplateError::Isolation(std::io::Error::from(e));
        let cloexec = nix::fcntl::OFlag::O_CLOEXEC;
        let (request_read, request_write) = nix::unistd::pipe2(cloexec).map_err(isolation)?;
        let (answer_read, answer_write) = nix::unistd::pipe2(cloexec).map_err(isolation)?;
        // The helper's memory limit is set relative to the address space it starts with.
        let address_space = current_address_space().ok_or_else(|| {
            TemplateError::Isolation(std::io::Error::other(
                "cannot read this process's address space from /proc/self/statm",
            ))
        })?;
        // SAFETY: the child runs only `serve`, which renders (allocating through the C
        // library's allocator, which `fork` leaves usable), reads and writes its own pipes
        // and leaves with `_exit`; it takes no lock another thread of the parent could have
        // held across the fork other than the allocator's, and a render that blocks anyway
        // is stopped by its alarm.
        #[allow(unsafe_code)]
        let forked = unsafe { fork() }.map_err(isolation)?;
        match forked {
            ForkResult::Child => {
                drop((request_write, answer_read));
                serve(template, request_read, answer_write, address_space)
            }
            ForkResult::Parent { child } => Ok(Helper {
                pid: child,
                requests: File::from(request_write),
                answers: File::from(answer_read),
            }),
        }
    }

    /// Sends one request and reads its answer (tag, payload).
    fn ask(
        &mut self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> std::io::Result<(u8, Vec<u8>)> {
        let mut request = Vec::new();
        request.push(u8::from(add_generation_prompt));
        request.extend((messages.len() as u64).to_le_bytes());
        for m in messages {
            request.push(match m.role {
                Role::System => 0,
                Role::User => 1,
                Role::Assistant => 2,
            });
            request.extend((m.content.len() as u64).to_le_bytes());
            request.extend(m.content.as_bytes());
        }
        self.requests.write_all(&request)?;
        let mut tag = [0u8; 1];
        self.answers.read_exact(&mut tag)?;
        let payload = read_bytes(&mut self.answers)?;
        Ok((tag[0], payload))
    }

    /// Ends the helper (it may be gone already) and reaps it; why it had stopped, as the
    /// render's error.
    fn stop(self) -> TemplateError {
        let Helper { pid, requests, answers } = self;
        drop((requests, answers));
        let status = waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
        let _ = kill(pid, Signal::SIGKILL);
        let status = match status {
            Ok(WaitStatus::StillAlive) | Err(_) => waitpid(pid, None),
            done => done,
        };
        match status {
            Ok(WaitStatus::Signaled(_, signal, _)) => {
                TemplateError::ResourceLimit { cause: stop_cause(signal) }
            }
            Ok(WaitStatus::Exited(_, EXIT_NO_LIMITS)) => TemplateError::Isolation(
                std::io::Error::other("the render's resource limits could not be set"),
            ),
            _ => TemplateError::ResourceLimit { cause: "it stopped without an answer" },
        }
    }
}

impl Drop for Renderer {
    fn drop(&mut self) {
        let slot = self.helper.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some(helper) = slot.take() {
            helper.stop();
        }
    }
}

/// The helper's side: limits, then one render per request until the parent closes the
/// request pipe; never returns.
fn serve(template: &ChatTemplate, requests: OwnedFd, answers: OwnedFd, used: u64) -> ! {
    // The setup runs under the alarm too: a helper stuck before its first answer (a lock
    // another thread held at the fork) is stopped, and its parent gets an error, not a hang.
    nix::unistd::alarm::set(RENDER_SECONDS);
    close_inherited_files(&[requests.as_raw_fd(), answers.as_raw_fd()]);
    // Limits first; a limit that cannot be set is a reason not to render at all.
    let limits = [
        (Resource::RLIMIT_AS, used.saturating_add(RENDER_MEMORY_BYTES)),
        (Resource::RLIMIT_CORE, 0),
    ];
    if !limits.iter().all(|&(resource, value)| setrlimit(resource, value, value).is_ok()) {
        exit(EXIT_NO_LIMITS);
    }
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        let _ = nix::unistd::dup2_stderr(null);
    }
    let (mut requests, mut answers) = (File::from(requests), File::from(answers));
    nix::unistd::alarm::cancel();
    loop {
        let Ok((messages, add_generation_prompt)) = read_request(&mut requests) else { exit(0) };
        nix::unistd::alarm::set(RENDER_SECONDS);
        let rendered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            template.render_here(&messages, add_generation_prompt)
        }));
        nix::unistd::alarm::cancel();
        let (tag, payload) = match rendered {
            Ok(Ok(text)) => (TAG_TEXT, text.into_bytes()),
            Ok(Err(TemplateError::OutputTooLong)) => (TAG_OUTPUT_TOO_LONG, Vec::new()),
            Ok(Err(e)) => (TAG_ERROR, e.to_string().into_bytes()),
            Err(_) => exit(3),
        };
        let mut answer = Vec::with_capacity(9 + payload.len());
        answer.push(tag);
        answer.extend((payload.len() as u64).to_le_bytes());
        answer.extend(payload);
        if answers.write_all(&answer).is_err() {
            exit(4);
        }
    }
}

/// One request: `add_generation_prompt`, then the messages (role, content).
fn read_request(r: &mut File) -> std::io::Result<(Vec<Message>, bool)> {
    let mut flag = [0u8; 1];
    r.read_exact(&mut flag)?;
    let count = read_u64(r)?;
    let mut messages = Vec::new();
    for _ in 0..count {
        let mut role = [0u8; 1];
        r.read_exact(&mut role)?;
        let role = match role[0] {
            0 => Role::System,
            1 => Role::User,
            _ => Role::Assistant,
        };
        let content = String::from_utf8(read_bytes(r)?).map_err(std::io::Error::other)?;
        messages.push(Message { role, content });
    }
    Ok((messages, flag[0] != 0))
}

fn read_u64(r: &mut File) -> std::io::Result<u64> {
    let mut n = [0u8; 8];
    r.read_exact(&mut n)?;
    Ok(u64::from_le_bytes(n))
}

/// A `u64` length, then that many bytes (read as they come, never allocated up front).
fn read_bytes(r: &mut File) -> std::io::Result<Vec<u8>> {
    let len = read_u64(r)?;
    let mut bytes = Vec::new();
    r.take(len).read_to_end(&mut bytes)?;
    if bytes.len() as u64 == len {
        Ok(bytes)
    } else {
        Err(std::io::ErrorKind::UnexpectedEof.into())
    }
}

/// Closes every file the helper inherited except stdin, stdout, stderr and `keep`.
fn close_inherited_files(keep: &[i32]) {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else { return };
    let open: Vec<i32> =
        entries.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect();
    for fd in open.into_iter().filter(|fd| *fd > 2 && !keep.contains(fd)) {
        let _ = nix::unistd::close(fd);
    }
}

/// Leaves the helper without running destructors or `atexit` handlers (the parent's).
#[allow(unsafe_code)]
fn exit(code: i32) -> ! {
    // SAFETY: `_exit` takes any status and ends the process at once; nothing after it runs.
    unsafe { nix::libc::_exit(code) }
}

/// The process's address space in bytes (`/proc/self/statm`'s first field), read before the
/// fork; `None` if it cannot be read.
fn current_address_space() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().next()?.parse().ok()?;
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE).ok()??;
    pages.checked_mul(u64::try_from(page).ok()?)
}

/// A helper's answer as the render's result.
fn decode(tag: u8, payload: Vec<u8>) -> Result<String, TemplateError> {
    match tag {
        TAG_TEXT => String::from_utf8(payload).map_err(|_| TemplateError::OutputTooLong),
        TAG_OUTPUT_TOO_LONG => Err(TemplateError::OutputTooLong),
        _ => Err(TemplateError::Render(String::from_utf8_lossy(&payload).into_owned())),
    }
}

/// What a signal that ended the helper says about why.
fn stop_cause(signal: Signal) -> &'static str {
    match signal {
        Signal::SIGALRM => "it ran out of time",
        // A failed allocation aborts; a stack that cannot grow faults.
        Signal::SIGABRT | Signal::SIGSEGV | Signal::SIGBUS => "it ran out of memory",
        _ => "it was stopped by a signal",
    }
}

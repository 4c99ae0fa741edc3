//! The core's modules form layers: no two top-level modules of `core/src` name each other,
//! directly or around a ring, and no file of it is over 600 lines (issue #26,
//! `shared/STYLE.md` §2).
//!
//! The graph is read from the sources: module `a` depends on module `b` when a non-test line of
//! `a`'s files names `crate::b` (in a `use`, a path or a `crate::{b, …}` group). Test code
//! (`tests.rs` files and the `#[cfg(test)] mod tests` block that ends a file) may reach across
//! layers and is left out. `cargo test -p tinymla-tests --test integration layers -- --nocapture`
//! prints the layers, lowest first.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, recursively, in a stable order.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut entries: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// The top-level module a file of `src` belongs to (`None` for `lib.rs`, the root).
fn owner(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    if first == "lib.rs" {
        return None;
    }
    Some(first.trim_end_matches(".rs").to_string())
}

/// The file's code without comments, string contents and `#[cfg(test)]` modules (inline
/// ones to their closing brace; a `mod tests;` declaration is a file of its own, skipped by
/// name).
fn non_test_code(text: &str) -> String {
    let code = strip_comments_and_strings(text);
    let mut out = String::with_capacity(code.len());
    let mut rest = code.as_str();
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = rest[at + "#[cfg(test)]".len()..].trim_start();
        let is_inline_mod = after.starts_with("mod ")
            && after.find('{').is_some_and(|b| after.find(';').is_none_or(|s| b < s));
        if !is_inline_mod {
            // A test-only item other than an inline module: keep it (it is still code).
            out.push_str("#[cfg(test)]");
            rest = &rest[at + "#[cfg(test)]".len()..];
            continue;
        }
        let open = after.find('{').unwrap();
        let mut depth = 0usize;
        let mut end = after.len();
        for (k, c) in after.char_indices().skip(open) {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = k + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// `text` with comments removed and string and char literals emptied (`"…"` → `""`,
/// `'x'` → `' '`); lifetimes stay.
fn strip_comments_and_strings(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &bytes[i..];
        if rest.starts_with(b"//") {
            i += rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        } else if rest.starts_with(b"/*") {
            i += rest.windows(2).position(|w| w == b"*/").map_or(rest.len(), |e| e + 2);
        } else if rest[0] == b'"' {
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.extend_from_slice(b"\"\"");
        } else if rest[0] == b'\'' && (rest.get(1) == Some(&b'\\') || rest.get(2) == Some(&b'\'')) {
            // A char literal ('x' or an escape such as '\n', '\''), not a lifetime.
            let from = if rest.get(1) == Some(&b'\\') { 3 } else { 2 };
            i += rest
                .iter()
                .skip(from)
                .position(|&b| b == b'\'')
                .map_or(rest.len(), |p| p + from + 1);
            out.extend_from_slice(b"' '");
        } else {
            out.push(rest[0]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn ident_at(code: &str) -> &str {
    let end = code.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(code.len());
    &code[..end]
}

/// The top-level modules a piece of code names through `crate::`.
fn named_modules(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = code[at + "crate::".len()..].trim_start();
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a, b::c, d::{e, f}}`: the first identifier of each top-level item.
            let mut depth = 0usize;
            let mut item_start = true;
            for (k, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && (c.is_ascii_alphabetic() || c == '_') => {
                        out.insert(ident_at(&group[k..]).to_string());
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident_at(rest);
            if !name.is_empty() {
                out.insert(name.to_string());
            }
        }
    }
    out
}

/// The crate root's re-exports: `pub use module::{A, B};` maps `A` and `B` to `module`.
fn reexports(lib_rs: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in lib_rs.lines() {
        let Some(path) = line.trim().strip_prefix("pub use ") else {
            continue;
        };
        let path = path.trim_end_matches(';');
        let Some((module, items)) = path.split_once("::") else {
            continue;
        };
        for item in items.trim_matches(|c| c == '{' || c == '}').split(',') {
            let name = item.trim();
            if !name.is_empty() {
                out.insert(name.to_string(), module.to_string());
            }
        }
    }
    out
}

/// module → the modules it names (itself left out); a name the crate root re-exports counts
/// as the module it comes from.
fn core_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/src");
    let files = rust_files(&src);
    let modules: BTreeSet<String> = files.iter().filter_map(|f| owner(&src, f)).collect();
    let reexported = reexports(&fs::read_to_string(src.join("lib.rs")).unwrap());
    let mut graph: BTreeMap<String, BTreeSet<String>> =
        modules.iter().map(|m| (m.clone(), BTreeSet::new())).collect();
    for file in &files {
        let Some(module) = owner(&src, file) else {
            continue;
        };
        if file.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let code = non_test_code(&fs::read_to_string(file).unwrap());
        for name in named_modules(&code) {
            let name = reexported.get(&name).cloned().unwrap_or(name);
            assert!(
                modules.contains(&name),
                "{}: `crate::{name}` names neither a top-level module of core nor a re-export",
                file.display()
            );
            if name != module {
                graph.get_mut(&module).unwrap().insert(name);
            }
        }
    }
    graph
}

/// Layers, lowest first: each module sits one above the highest module it names. `Err` holds
/// the modules left on rings.
fn layers(graph: &BTreeMap<String, BTreeSet<String>>) -> Result<Vec<Vec<String>>, Vec<String>> {
    let mut placed: BTreeMap<&str, usize> = BTreeMap::new();
    let mut out: Vec<Vec<String>> = Vec::new();
    while placed.len() < graph.len() {
        let ready: Vec<&String> = graph
            .iter()
            .filter(|(m, deps)| {
                !placed.contains_key(m.as_str())
                    && deps.iter().all(|d| placed.contains_key(d.as_str()))
            })
            .map(|(m, _)| m)
            .collect();
        if ready.is_empty() {
            return Err(graph
                .keys()
                .filter(|m| !placed.contains_key(m.as_str()))
                .cloned()
                .collect());
        }
        for m in &ready {
            let level = graph[*m].iter().map(|d| placed[d.as_str()] + 1).max().unwrap_or(0);
            placed.insert(m.as_str(), level);
        }
        for m in ready {
            let level = placed[m.as_str()];
            if out.len() <= level {
                out.resize(level + 1, Vec::new());
            }
            out[level].push(m.clone());
        }
    }
    Ok(out)
}

/// A shortest ring through `start`, for the failure message.
fn ring_through(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut previous: BTreeMap<String, String> = BTreeMap::new();
    let mut frontier = vec![start.to_string()];
    while !frontier.is_empty() {
        let mut next = Vec::new();
        for m in frontier {
            for d in &graph[&m] {
                if d == start {
                    let mut ring = vec![m.clone()];
                    let mut at = m;
                    while let Some(p) = previous.get(&at) {
                        ring.push(p.clone());
                        at = p.clone();
                    }
                    ring.reverse();
                    ring.push(start.to_string());
                    return Some(ring);
                }
                if !previous.contains_key(d) && d != start {
                    previous.insert(d.clone(), m.clone());
                    next.push(d.clone());
                }
            }
        }
        frontier = next;
    }
    None
}

#[test]
fn core_modules_form_layers() {
    let graph = core_graph();
    assert!(graph.len() > 10, "read too few modules: {graph:?}");
    match layers(&graph) {
        Ok(layers) => {
            for (level, modules) in layers.iter().enumerate() {
                println!("layer {level}: {}", modules.join(" "));
            }
        }
        Err(stuck) => {
            let rings: Vec<String> = stuck
                .iter()
                .filter_map(|m| ring_through(&graph, m))
                .map(|r| r.join(" -> "))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            panic!("core modules import each other:\n{}", rings.join("\n"));
        }
    }
}

/// Most lines a file of `core/src` may have (STYLE.md: one job per module, files under about
/// 600 lines).
const MAX_LINES: usize = 600;

#[test]
fn no_core_file_is_over_600_lines() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/src");
    let files = rust_files(&src);
    assert!(files.len() > 20, "read too few files: {files:?}");
    let long: Vec<String> = files
        .iter()
        .map(|f| (f, fs::read_to_string(f).unwrap().lines().count()))
        .filter(|(_, n)| *n > MAX_LINES)
        .map(|(f, n)| format!("{} ({n} lines)", f.strip_prefix(&src).unwrap().display()))
        .collect();
    assert!(long.is_empty(), "core files over {MAX_LINES} lines: {long:?}");
}

#[test]
fn the_checker_sees_rings_and_groups() {
    let code = non_test_code(
        "use crate::{alpha::A, beta::{B, C}};\n// crate::gamma in a comment\nfn f() { crate::delta::g(\"crate::eps\", '\\'', '{') }\n#[cfg(test)]\nmod tests { fn t() { use crate::zeta; } }\n#[cfg(test)]\nmod more;\nuse crate::eta;\n",
    );
    let names: Vec<String> = named_modules(&code).into_iter().collect();
    assert_eq!(names, ["alpha", "beta", "delta", "eta"]);

    let graph = |edges: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in edges {
            g.entry(a.to_string()).or_default().insert(b.to_string());
            g.entry(b.to_string()).or_default();
        }
        g
    };
    let ring = graph(&[("a", "b"), ("b", "c"), ("c", "a"), ("d", "a")]);
    assert_eq!(layers(&ring).unwrap_err(), ["a", "b", "c", "d"]);
    assert_eq!(ring_through(&ring, "a").unwrap(), ["a", "b", "c", "a"]);
    let layered = graph(&[("model", "mla"), ("mla", "kernels"), ("model", "kernels")]);
    assert_eq!(layers(&layered).unwrap(), [vec!["kernels"], vec!["mla"], vec!["model"]]);
}

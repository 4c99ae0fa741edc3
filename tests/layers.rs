//! The core's modules form layers: no two top-level modules of `core/src` name each other,
//! directly or around a ring (issue #26, `shared/STYLE.md` §2).
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

/// The file's code without comments, string contents and its trailing test module.
fn non_test_code(text: &str) -> String {
    let cut = text.find("#[cfg(test)]\nmod ").unwrap_or(text.len());
    let text = &text[..cut];
    let mut out = String::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if text[i..].starts_with("//") {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
        } else if text[i..].starts_with("/*") {
            i += text[i..].find("*/").map_or(bytes.len() - i, |e| e + 2);
        } else if bytes[i] == b'"' {
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else {
            out.push(bytes[i] as char);
            i += 1;
        }
    }
    out
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

#[test]
fn the_checker_sees_rings_and_groups() {
    let code = non_test_code(
        "use crate::{alpha::A, beta::{B, C}};\n// crate::gamma in a comment\nfn f() { crate::delta::g(\"crate::eps\") }\n#[cfg(test)]\nmod tests { use crate::zeta; }\n",
    );
    let names: Vec<String> = named_modules(&code).into_iter().collect();
    assert_eq!(names, ["alpha", "beta", "delta"]);

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

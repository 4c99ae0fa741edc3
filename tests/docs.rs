//! The READMEs hold together (issue #26): the front page stays a front page (at most 220
//! lines, linking each crate's README), and every relative link in them reaches an existing
//! file and, where it names one, an existing heading (GitHub's anchor rules).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

const READMES: [&str; 5] =
    ["README.md", "core/README.md", "host/README.md", "firmware/README.md", "capi/README.md"];

/// Most lines of the top README.
const FRONT_PAGE_MAX_LINES: usize = 220;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The lines of a Markdown text outside fenced code blocks.
fn prose_lines(text: &str) -> Vec<&str> {
    let mut in_code = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        } else if !in_code {
            out.push(line);
        }
    }
    out
}

/// GitHub's anchor of a heading: link text kept, backticks dropped, lower case, spaces to
/// `-`, every other character that is not alphanumeric, `-` or `_` dropped.
fn slug(heading: &str) -> String {
    let mut text = String::new();
    let mut rest = heading;
    // `[text](target)` → `text`.
    while let Some(open) = rest.find('[') {
        text.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after
            .find("](")
            .and_then(|close| after[close + 2..].find(')').map(|end| (close, close + 2 + end + 1)))
        {
            Some((close, next)) => {
                text.push_str(&after[..close]);
                rest = &after[next..];
            }
            None => {
                text.push('[');
                rest = after;
            }
        }
    }
    text.push_str(rest);
    text.trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// Every heading anchor of a Markdown file (a repeated heading gets `-1`, `-2`, …).
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: std::collections::BTreeMap<String, usize> = Default::default();
    let mut out = BTreeSet::new();
    for line in prose_lines(text) {
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let s = slug(line[hashes..].trim().trim_end_matches('#').trim());
        let n = seen.entry(s.clone()).or_insert(0);
        out.insert(if *n == 0 { s.clone() } else { format!("{s}-{n}") });
        *n += 1;
    }
    out
}

/// The targets of the inline links `[text](target)` in a Markdown text, outside code blocks.
fn link_targets(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in prose_lines(text) {
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let end = after.find(')').unwrap_or(after.len());
            let target = &after[..end];
            if !target.is_empty() && !target.contains(char::is_whitespace) {
                out.push(target.to_string());
            }
            rest = &after[end..];
        }
    }
    out
}

/// "file: target (why)" for each relative link of `readme` that leads nowhere.
fn broken_links(readme: &Path) -> (usize, Vec<String>) {
    let text = fs::read_to_string(readme).unwrap();
    let dir = readme.parent().unwrap();
    let mut checked = 0;
    let mut broken = Vec::new();
    for target in link_targets(&text) {
        let is_url = target.split_once(':').is_some_and(|(scheme, _)| {
            !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_lowercase())
        });
        if is_url {
            continue;
        }
        checked += 1;
        let (path, anchor) = target.split_once('#').unwrap_or((&target, ""));
        let dest = if path.is_empty() { readme.to_path_buf() } else { dir.join(path) };
        if !dest.exists() {
            broken.push(format!("{}: {target} (no such file)", readme.display()));
        } else if !anchor.is_empty() {
            let headings = anchors(&fs::read_to_string(&dest).unwrap_or_default());
            if !headings.contains(anchor) {
                broken.push(format!("{}: {target} (no such heading)", readme.display()));
            }
        }
    }
    (checked, broken)
}

#[test]
fn every_readme_link_reaches_a_file_and_heading() {
    let mut checked = 0;
    let mut broken = Vec::new();
    for readme in READMES {
        let (n, b) = broken_links(&root().join(readme));
        checked += n;
        broken.extend(b);
    }
    println!("{checked} relative links checked");
    assert!(checked > 50, "too few links found ({checked}): is the parser broken?");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_front_page_is_short_and_links_every_crate_readme() {
    let text = fs::read_to_string(root().join("README.md")).unwrap();
    let lines = text.lines().count();
    assert!(lines <= FRONT_PAGE_MAX_LINES, "README.md has {lines} lines");
    let targets = link_targets(&text);
    for readme in &READMES[1..] {
        assert!(
            targets.iter().any(|t| t.split('#').next() == Some(readme)),
            "README.md does not link {readme}"
        );
    }
}

#[test]
fn the_checker_sees_anchors_and_links() {
    let text = "# A `code` [link](x.md) heading!\n## Repeat\n## Repeat\n```\n## not a heading [no](y.md)\n```\nSee [here](#repeat-1), [url](https://a.b) and [c](core/README.md#api).\n";
    let a = anchors(text);
    assert_eq!(a.into_iter().collect::<Vec<_>>(), ["a-code-link-heading", "repeat", "repeat-1"]);
    assert_eq!(link_targets(text), ["x.md", "#repeat-1", "https://a.b", "core/README.md#api"]);
}

//! Added tokens (special and user-defined) found whole in the text before pre-tokenization.
//!
//! As Hugging Face's `AddedVocabulary` does: an Aho-Corasick automaton over the added tokens'
//! contents, leftmost-longest, so `<｜end▁of▁sentence｜>` in a prompt becomes its one id instead
//! of being spelled out by BPE. GGUF keeps no `lstrip`/`rstrip`/`single_word` flags; DeepSeek's
//! added tokens have them all false.

use aho_corasick::{AhoCorasick, MatchKind};

/// A stretch of the input: plain text for BPE, or one added token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment<'t> {
    /// Text to pre-tokenize and merge.
    Text(&'t str),
    /// An added token's id.
    Token(u32),
}

/// Matcher over the added tokens.
#[derive(Debug)]
pub struct AddedTokens {
    matcher: Option<AhoCorasick>,
    /// Pattern index → (token id, is control/unknown rather than user-defined).
    ids: Vec<(u32, bool)>,
}

impl AddedTokens {
    /// Builds the matcher from `(text, id, is_special)`; empty or non-UTF-8 texts are ignored,
    /// and when two tokens share a text the first one wins.
    pub fn new<'a>(tokens: impl IntoIterator<Item = (&'a [u8], u32, bool)>) -> Self {
        let mut seen = std::collections::HashSet::new();
        let (patterns, ids): (Vec<&[u8]>, Vec<(u32, bool)>) = tokens
            .into_iter()
            // A pattern that is not UTF-8 could match inside a character of the text.
            .filter(|(text, _, _)| std::str::from_utf8(text).is_ok_and(|t| !t.is_empty()))
            .filter(|(text, _, _)| seen.insert(*text))
            .map(|(text, id, special)| (text, (id, special)))
            .unzip();
        let matcher = if patterns.is_empty() {
            None
        } else {
            // Building only fails past aho-corasick's size limits, far beyond a vocabulary's
            // added tokens; then nothing is matched and the text goes through BPE.
            AhoCorasick::builder().match_kind(MatchKind::LeftmostLongest).build(&patterns).ok()
        };
        AddedTokens { matcher, ids }
    }

    /// Number of added tokens matched.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Cuts `text` at every added token (user-defined ones only unless `special`).
    pub fn segments<'t>(&self, text: &'t str, special: bool) -> Vec<Segment<'t>> {
        let mut out = Vec::new();
        let mut prev = 0;
        if let Some(matcher) = &self.matcher {
            if special || self.ids.iter().any(|&(_, is_special)| !is_special) {
                for m in matcher.find_iter(text) {
                    let Some(&(id, is_special)) = self.ids.get(m.pattern().as_usize()) else {
                        continue;
                    };
                    if is_special && !special {
                        // Leftmost-longest already chose this match; a shorter user-defined
                        // token inside it is not looked for (llama.cpp does the same).
                        continue;
                    }
                    out.extend(
                        text.get(prev..m.start()).filter(|s| !s.is_empty()).map(Segment::Text),
                    );
                    out.push(Segment::Token(id));
                    prev = m.end();
                }
            }
        }
        out.extend(text.get(prev..).filter(|s| !s.is_empty()).map(Segment::Text));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftmost_longest_and_special_switch() {
        let added = AddedTokens::new([
            ("<s>".as_bytes(), 0, true),
            ("<s>x".as_bytes(), 7, false),
            ("<t>".as_bytes(), 5, false),
            ("".as_bytes(), 9, true),
        ]);
        assert_eq!(added.len(), 3);
        use Segment::*;
        assert_eq!(
            added.segments("a<s>b<s>x<t>", true),
            [Text("a"), Token(0), Text("b"), Token(7), Token(5)]
        );
        assert_eq!(added.segments("a<s>b<t>", false), [Text("a<s>b"), Token(5)]);
        assert_eq!(added.segments("", true), []);
    }
}

//! Byte-level BPE: one pre-tokenized piece → token ids, merging pairs by rank.
//!
//! The merge loop is Hugging Face `tokenizers`' `Word::merge_all` (models/bpe/word.rs): a
//! min-heap of (rank, position) over adjacent pairs; the lowest rank merges first, the leftmost
//! on ties; a popped entry whose pair has since changed is skipped; each merge queues the pairs
//! it forms with its neighbours.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use tinymla_core::vocab::byte_to_unicode;

/// Merge table and the token of every single byte.
#[derive(Debug)]
pub struct Bpe {
    /// `(left, right)` → `(rank, merged)`.
    merges: HashMap<(u32, u32), (u32, u32)>,
    /// Token id of each byte's one-char spelling, if the vocabulary has it.
    byte_ids: [Option<u32>; 256],
    /// Hugging Face's `ignore_merges` (GLM-4): a piece whose byte-level spelling is a token
    /// is that token, whatever the merges would make of it. Keyed by that spelling.
    whole_words: Option<HashMap<Box<[u8]>, u32>>,
}

/// Why a merge rule could not be used (its index in `tokenizer.ggml.merges`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeError {
    /// The rule has no space separating two non-empty parts.
    Malformed(usize),
    /// A part, or the merged token, is not in the vocabulary.
    NotInVocab(usize),
}

impl Bpe {
    /// Builds the tables. `lookup` maps a token's stored text to its id; `merges` are the
    /// `"left right"` rules in rank order.
    ///
    /// # Errors
    /// [`MergeError`] for the first rule that is malformed or names unknown tokens (Hugging
    /// Face refuses such a file too).
    pub fn new<'m>(
        lookup: impl Fn(&[u8]) -> Option<u32>,
        merges: impl IntoIterator<Item = &'m [u8]>,
    ) -> Result<Self, MergeError> {
        let mut byte_ids = [None; 256];
        for (b, slot) in (0..=255u8).zip(byte_ids.iter_mut()) {
            let mut buf = [0u8; 4];
            *slot = lookup(byte_to_unicode(b).encode_utf8(&mut buf).as_bytes());
        }
        let mut table = HashMap::new();
        for (rank, rule) in merges.into_iter().enumerate() {
            // As llama.cpp does: split at the first space after the first byte.
            let split = rule.iter().skip(1).position(|&c| c == b' ').map(|p| p + 1);
            let (left, right) = match split {
                Some(at) => (&rule[..at], &rule[at + 1..]),
                None => return Err(MergeError::Malformed(rank)),
            };
            if right.is_empty() {
                return Err(MergeError::Malformed(rank));
            }
            let merged = [left, right].concat();
            let ids = (lookup(left), lookup(right), lookup(&merged));
            let (Some(l), Some(r), Some(m)) = ids else {
                return Err(MergeError::NotInVocab(rank));
            };
            let rank = u32::try_from(rank).map_err(|_| MergeError::Malformed(rank))?;
            // A repeated pair keeps its last rank: HF collects the rules into a map in order.
            table.insert((l, r), (rank, m));
        }
        Ok(Bpe { merges: table, byte_ids, whole_words: None })
    }

    /// This BPE with `ignore_merges`: `words` (every vocabulary token's stored text and id)
    /// are looked up whole before any merging.
    #[must_use]
    pub fn ignoring_merges<'w>(self, words: impl IntoIterator<Item = (&'w [u8], u32)>) -> Self {
        let mut table = HashMap::new();
        for (text, id) in words {
            table.entry(Box::from(text)).or_insert(id);
        }
        Bpe { whole_words: Some(table), ..self }
    }

    /// Number of merge rules.
    pub fn n_merges(&self) -> usize {
        self.merges.len()
    }

    /// Appends the tokens of `piece` (raw bytes; the byte-level mapping happens here) to `out`.
    /// A byte whose one-char token is missing is dropped, as HF's BPE does without `unk`.
    pub fn encode_piece(&self, piece: &[u8], out: &mut Vec<u32>) {
        if let Some(words) = &self.whole_words {
            let mut spelling = Vec::with_capacity(piece.len() * 2);
            for &b in piece {
                let mut buf = [0u8; 4];
                spelling.extend_from_slice(byte_to_unicode(b).encode_utf8(&mut buf).as_bytes());
            }
            if let Some(&id) = words.get(spelling.as_slice()) {
                out.push(id);
                return;
            }
        }
        let ids: Vec<u32> = piece.iter().filter_map(|&b| self.byte_ids[usize::from(b)]).collect();
        if ids.len() < 2 {
            out.extend(ids);
            return;
        }
        let mut syms: Vec<Symbol> = ids
            .iter()
            .enumerate()
            .map(|(i, &id)| Symbol { id, prev: i.checked_sub(1), next: i + 1, alive: true })
            .collect();
        let n = syms.len();
        let mut queue: BinaryHeap<Reverse<(u32, usize, u32)>> = syms
            .windows(2)
            .enumerate()
            .filter_map(|(pos, w)| self.rule(w[0].id, w[1].id).map(|(r, m)| Reverse((r, pos, m))))
            .collect();

        while let Some(Reverse((_, pos, merged))) = queue.pop() {
            let sym = syms[pos];
            if !sym.alive || sym.next >= n {
                continue;
            }
            let right = syms[sym.next];
            // Skip entries made stale by an earlier merge on either side.
            if self.rule(sym.id, right.id).map(|(_, m)| m) != Some(merged) {
                continue;
            }
            syms[pos].id = merged;
            syms[pos].next = right.next;
            syms[sym.next].alive = false;
            if right.next < n {
                syms[right.next].prev = Some(pos);
            }
            let cur = syms[pos];
            if let Some(prev) = cur.prev {
                if let Some((rank, m)) = self.rule(syms[prev].id, cur.id) {
                    queue.push(Reverse((rank, prev, m)));
                }
            }
            if cur.next < n {
                if let Some((rank, m)) = self.rule(cur.id, syms[cur.next].id) {
                    queue.push(Reverse((rank, pos, m)));
                }
            }
        }
        out.extend(syms.iter().filter(|s| s.alive).map(|s| s.id));
    }

    fn rule(&self, left: u32, right: u32) -> Option<(u32, u32)> {
        self.merges.get(&(left, right)).copied()
    }
}

/// One symbol of a word being merged: a doubly linked list over a `Vec`.
#[derive(Debug, Clone, Copy)]
struct Symbol {
    id: u32,
    prev: Option<usize>,
    /// `n` (the word length) when last.
    next: usize,
    alive: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vocabulary: the 256 byte chars (ids 0..256), then "ab", "abc", "bc", "aa".
    fn bpe(merges: &[&str]) -> (Bpe, HashMap<Vec<u8>, u32>) {
        let mut vocab: HashMap<Vec<u8>, u32> = (0..=255u8)
            .map(|b| (byte_to_unicode(b).to_string().into_bytes(), u32::from(b)))
            .collect();
        for (i, t) in ["ab", "abc", "bc", "aa"].iter().enumerate() {
            vocab.insert(t.as_bytes().to_vec(), 256 + i as u32);
        }
        let v = vocab.clone();
        let b = Bpe::new(move |t| v.get(t).copied(), merges.iter().map(|m| m.as_bytes())).unwrap();
        (b, vocab)
    }

    fn enc(b: &Bpe, s: &str) -> Vec<u32> {
        let mut out = Vec::new();
        b.encode_piece(s.as_bytes(), &mut out);
        out
    }

    #[test]
    fn merges_by_rank_then_leftmost() {
        let (b, _) = bpe(&["b c", "a b", "ab c"]);
        // "b c" outranks "a b", so "abc" → a + bc, and "ab c" never applies.
        assert_eq!(enc(&b, "abc"), [u32::from(b'a'), 258]);
        let (b, _) = bpe(&["a b", "ab c", "b c"]);
        assert_eq!(enc(&b, "abc"), [257]);
        let (b, _) = bpe(&["a a"]);
        assert_eq!(enc(&b, "aaa"), [259, u32::from(b'a')]);
        assert_eq!(enc(&b, "aaaa"), [259, 259]);
    }

    #[test]
    fn bytes_map_through_the_gpt2_table() {
        let (b, _) = bpe(&[]);
        assert_eq!(enc(&b, " \n"), [32, 10]);
        assert_eq!(enc(&b, "é"), [0xC3, 0xA9]);
    }

    #[test]
    fn bad_rules_are_reported() {
        let (_, vocab) = bpe(&[]);
        let err = |m: &str| Bpe::new(|t| vocab.get(t).copied(), [m.as_bytes()]).unwrap_err();
        assert_eq!(err("ab"), MergeError::Malformed(0));
        assert_eq!(err("a "), MergeError::Malformed(0));
        assert_eq!(err("c d"), MergeError::NotInVocab(0));
    }
}

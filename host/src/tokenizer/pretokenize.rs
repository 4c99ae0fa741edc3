//! Pre-tokenizers: text → the pieces BPE runs on, one flavour per `tokenizer.ggml.pre`.
//!
//! Each flavour is the pipeline of the model's Hugging Face `tokenizer.json`: a sequence of
//! `Split(regex, behavior = Isolated)` steps (matches and the gaps between them both become
//! pieces, and each step refines the pieces of the one before, so `^`/`$` anchor at piece
//! bounds), optionally `Digits(individual_digits = true)`, then `ByteLevel(use_regex = false)`
//! (the byte mapping, done by the BPE step). The regexes are the ones in those files
//! (and in llama.cpp's `src/llama-vocab.cpp`, `llm_tokenizer_bpe`), with code points written as
//! escapes: several have canonically equivalent look-alikes (U+1F7D vs U+03CE, U+2126 vs U+03A9,
//! U+212A vs `K`) that an NFC-normalising copy swaps silently.

use fancy_regex::Regex;

/// GPT-2's split regex (HF `ByteLevel(use_regex = true)`, openai-community/gpt2).
pub const GPT2_REGEX: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

/// deepseek-ai/DeepSeek-V2 (and deepseek-llm 7B/67B) `tokenizer.json`: five isolated splits,
/// then each digit on its own.
pub const DEEPSEEK_LLM_REGEXES: [&str; 5] = [
    "[\r\n]",
    concat!(
        r"\s?[A-Za-z",
        "\u{B5}\u{C0}-\u{D6}\u{D8}-\u{F6}\u{F8}-\u{1BA}\u{1BC}-\u{1BF}\u{1C4}-\u{293}",
        "\u{295}-\u{2AF}\u{370}-\u{373}\u{376}\u{377}\u{37B}-\u{37D}\u{37F}\u{386}",
        "\u{388}-\u{38A}\u{38C}\u{38E}-\u{3A1}\u{3A3}-\u{3F5}\u{3F7}-\u{481}\u{48A}-\u{52F}",
        "\u{531}-\u{556}\u{10A0}-\u{10C5}\u{13A0}-\u{13F5}\u{13F8}-\u{13FD}\u{1C90}-\u{1CBA}",
        "\u{1CBD}-\u{1CBF}\u{1D00}-\u{1D2B}\u{1D6B}-\u{1D77}\u{1D79}-\u{1D9A}\u{1E00}-\u{1F15}",
        "\u{1F18}-\u{1F1D}\u{1F20}-\u{1F45}\u{1F48}-\u{1F4D}\u{1F50}-\u{1F57}\u{1F59}\u{1F5B}",
        "\u{1F5D}\u{1F5F}-\u{1F7D}\u{1F80}-\u{1FB4}\u{1FB6}-\u{1FBC}\u{1FBE}\u{1FC2}-\u{1FC4}",
        "\u{1FC6}-\u{1FCC}\u{1FD0}-\u{1FD3}\u{1FD6}-\u{1FDB}\u{1FE0}-\u{1FEC}\u{1FF2}-\u{1FF4}",
        "\u{1FF6}-\u{1FFC}\u{2102}\u{2107}\u{210A}-\u{2113}\u{2115}\u{2119}-\u{211D}\u{2124}",
        "\u{2126}\u{2128}\u{212A}-\u{212D}\u{212F}-\u{2134}\u{2139}\u{213C}-\u{213F}",
        "\u{2145}-\u{2149}\u{214E}\u{2183}\u{2184}\u{2C00}-\u{2C7B}\u{2C7E}-\u{2CE4}",
        "\u{2CEB}-\u{2CEE}\u{2CF2}\u{2CF3}\u{A640}-\u{A66D}\u{A680}-\u{A69B}\u{A722}-\u{A76F}",
        "\u{A771}-\u{A787}\u{A78B}-\u{A78E}\u{AB70}-\u{ABBF}\u{FB00}-\u{FB06}\u{FB13}-\u{FB17}",
        "\u{FF21}-\u{FF3A}\u{FF41}-\u{FF5A}\u{10400}-\u{1044F}\u{104B0}-\u{104D3}",
        "\u{104D8}-\u{104FB}\u{10C80}-\u{10CB2}\u{10CC0}-\u{10CF2}\u{118A0}-\u{118DF}",
        "\u{1E900}-\u{1E943}]+",
    ),
    concat!(
        r"\s?[!-/:-~",
        "\u{FF01}-\u{FF0F}\u{FF1A}-\u{FF5E}\u{2018}-\u{201F}\u{3000}-\u{3002}]+"
    ),
    r"\s+$",
    "[\u{4E00}-\u{9FA5}\u{0800}-\u{4E00}\u{AC00}-\u{D7FF}]+",
];

/// deepseek-ai/DeepSeek-V3 `tokenizer.json`: three isolated splits.
pub const DEEPSEEK_V3_REGEXES: [&str; 3] = [
    r"\p{N}{1,3}",
    "[\u{4E00}-\u{9FA5}\u{3040}-\u{309F}\u{30A0}-\u{30FF}]+",
    concat!(
        r##"[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+"##,
        r"|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+",
        r"| ?[\p{P}\p{S}]+[\r\n]*",
        r"|\s*[\r\n]+",
        r"|\s+(?!\S)",
        r"|\s+",
    ),
];

/// GLM-4 / GLM-4.5 / GLM-4.7-Flash `tokenizer.json` (zai-org): one isolated split (Llama 3's
/// pattern, contractions case-insensitive), and a BPE model with `ignore_merges`.
pub const GLM4_REGEX: &str = concat!(
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}",
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
);

/// Which pre-tokenizer a vocabulary uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// GPT-2 (`tokenizer.ggml.pre` = `gpt-2`, `gpt2`, `default` or absent).
    Gpt2,
    /// DeepSeek-V2 / DeepSeek LLM (`deepseek-llm`).
    DeepSeekLlm,
    /// DeepSeek-V3 / R1 (`deepseek-v3`).
    DeepSeekV3,
    /// GLM-4 family, GLM-4.7-Flash among them (`glm4`): whole-word lookup before merges.
    Glm4,
}

impl Flavour {
    /// The flavour for a `tokenizer.ggml.pre` value, if tinymla implements it.
    ///
    /// `default` and a missing key map to GPT-2, the split HF's `ByteLevel` pre-tokenizer
    /// applies. (llama.cpp's own `default` regex list differs slightly: it also isolates
    /// punctuation runs and digit runs.)
    pub fn from_pre(pre: Option<&str>) -> Option<Self> {
        match pre {
            None | Some("gpt-2" | "gpt2" | "default") => Some(Flavour::Gpt2),
            Some("deepseek-llm") => Some(Flavour::DeepSeekLlm),
            Some("deepseek-v3") => Some(Flavour::DeepSeekV3),
            Some("glm4") => Some(Flavour::Glm4),
            Some(_) => None,
        }
    }

    /// True when the BPE model looks a piece up whole before merging (Hugging Face's
    /// `ignore_merges`, llama.cpp's `ignore_merges` for `glm4`).
    pub fn ignores_merges(self) -> bool {
        matches!(self, Flavour::Glm4)
    }
}

/// One step of a pre-tokenizer pipeline.
#[derive(Debug)]
enum Step {
    /// `Split(regex, Isolated)`.
    Split(Box<Regex>),
    /// `Digits(individual_digits = true)`: every numeric char (`char::is_numeric`) alone.
    Digits,
}

/// A compiled pre-tokenizer.
#[derive(Debug)]
pub struct PreTokenizer {
    flavour: Flavour,
    steps: Vec<Step>,
}

impl PreTokenizer {
    /// Compiles the steps of `flavour`.
    ///
    /// # Errors
    /// A regex that does not compile (a bug in the constants above; covered by tests).
    pub fn new(flavour: Flavour) -> Result<Self, Box<fancy_regex::Error>> {
        let regexes: &[&str] = match flavour {
            Flavour::Gpt2 => &[GPT2_REGEX],
            Flavour::DeepSeekLlm => &DEEPSEEK_LLM_REGEXES,
            Flavour::DeepSeekV3 => &DEEPSEEK_V3_REGEXES,
            Flavour::Glm4 => &[GLM4_REGEX],
        };
        let mut steps = Vec::with_capacity(regexes.len() + 1);
        for re in regexes {
            steps.push(Step::Split(Box::new(Regex::new(re).map_err(Box::new)?)));
        }
        if flavour == Flavour::DeepSeekLlm {
            steps.push(Step::Digits);
        }
        Ok(PreTokenizer { flavour, steps })
    }

    /// The flavour this was built for.
    pub fn flavour(&self) -> Flavour {
        self.flavour
    }

    /// Splits `text` into non-empty pieces that concatenate back to `text`.
    pub fn split<'t>(&self, text: &'t str) -> Vec<&'t str> {
        let mut pieces = if text.is_empty() { Vec::new() } else { vec![text] };
        let mut next = Vec::with_capacity(pieces.len());
        for step in &self.steps {
            next.clear();
            for piece in &pieces {
                match step {
                    Step::Split(re) => split_isolated(re, piece, &mut next),
                    Step::Digits => split_digits(piece, &mut next),
                }
            }
            std::mem::swap(&mut pieces, &mut next);
        }
        pieces
    }
}

/// Every match and every gap between matches, in order, skipping empty ones.
fn split_isolated<'t>(re: &Regex, piece: &'t str, out: &mut Vec<&'t str>) {
    let mut prev = 0;
    // A match error is fancy-regex's backtrack limit; treat the rest of the piece as a gap.
    for m in re.find_iter(piece).map_while(Result::ok) {
        out.extend(piece.get(prev..m.start()).filter(|s| !s.is_empty()));
        out.extend(Some(m.as_str()).filter(|s| !s.is_empty()));
        prev = m.end();
    }
    out.extend(piece.get(prev..).filter(|s| !s.is_empty()));
}

fn split_digits<'t>(piece: &'t str, out: &mut Vec<&'t str>) {
    let mut start = 0;
    for (i, c) in piece.char_indices() {
        if c.is_numeric() {
            out.extend(piece.get(start..i).filter(|s| !s.is_empty()));
            out.extend(piece.get(i..i + c.len_utf8()));
            start = i + c.len_utf8();
        }
    }
    out.extend(piece.get(start..).filter(|s| !s.is_empty()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(flavour: Flavour, text: &str) -> Vec<String> {
        let pre = PreTokenizer::new(flavour).unwrap();
        let out = pre.split(text);
        assert_eq!(out.concat(), text);
        out.into_iter().map(String::from).collect()
    }

    #[test]
    fn gpt2_keeps_one_space_before_a_word() {
        assert_eq!(
            pieces(Flavour::Gpt2, "Hello   world's 123!!\n"),
            ["Hello", "  ", " world", "'s", " 123", "!!", "\n"]
        );
    }

    #[test]
    fn deepseek_llm_isolates_digits_newlines_and_cjk() {
        assert_eq!(
            pieces(Flavour::DeepSeekLlm, "ab 12\n中文 x  "),
            ["ab", " ", "1", "2", "\n", "中文", " x", "  "]
        );
    }

    #[test]
    fn deepseek_v3_groups_three_digits_and_kana() {
        assert_eq!(
            pieces(Flavour::DeepSeekV3, "12345 カナ.Net  x"),
            ["123", "45", " ", "カナ", ".Net", " ", " x"]
        );
    }

    #[test]
    fn glm4_folds_contraction_case_and_groups_three_digits() {
        assert_eq!(
            pieces(Flavour::Glm4, "IT'S 12345 héllo!!\n\nx"),
            ["IT", "'S", " ", "123", "45", " héllo", "!!\n\n", "x"]
        );
    }

    #[test]
    fn pre_names() {
        assert_eq!(Flavour::from_pre(None), Some(Flavour::Gpt2));
        assert_eq!(Flavour::from_pre(Some("gpt-2")), Some(Flavour::Gpt2));
        assert_eq!(Flavour::from_pre(Some("deepseek-v3")), Some(Flavour::DeepSeekV3));
        assert_eq!(Flavour::from_pre(Some("glm4")), Some(Flavour::Glm4));
        assert!(Flavour::Glm4.ignores_merges() && !Flavour::DeepSeekV3.ignores_merges());
        assert_eq!(Flavour::from_pre(Some("qwen2")), None);
    }
}

#!/usr/bin/env python3
"""Generate tinymla's tokenizer fixtures with Hugging Face `tokenizers` itself.

The real DeepSeek tokenizers cannot be downloaded here, so for each pre-tokenizer flavour this
script builds a byte-level BPE tokenizer whose pipeline is configured exactly as the published
tokenizer.json files configure theirs, trains it on a small offline corpus, and records what HF
does with it:

  flavour        tokenizer.ggml.pre   HF pre_tokenizer (as in the real tokenizer.json)
  gpt2           gpt-2                ByteLevel(add_prefix_space=False, use_regex=True)  (openai-community/gpt2)
  deepseek-llm   deepseek-llm         Sequence[Split x5 (Isolated), Digits(individual), ByteLevel(use_regex=False)]
                                      (deepseek-ai/DeepSeek-V2, same as deepseek-llm-7b/67b)
  deepseek-v3    deepseek-v3          Sequence[Split x3 (Isolated), ByteLevel(use_regex=False)]
                                      (deepseek-ai/DeepSeek-V3)
  glm4           glm4                 Sequence[Split (Isolated), ByteLevel(use_regex=False)], and a
                                      BPE model with ignore_merges (zai-org/GLM-4.7-Flash; no BOS).
                                      Two tokens no merge makes (" tinymla", " latents") are added
                                      to its vocabulary, so the golden ids show the whole-word lookup.

For each flavour it writes
  tests/fixtures/tokenizer/<flavour>.gguf   tokenizer keys only, no tensors, laid out as llama.cpp's
                                            convert_hf_to_gguf.py (`_set_vocab_gpt2`) writes them:
                                            tokens in id order, token types (NORMAL=1, CONTROL=3 for
                                            special added tokens, USER_DEFINED=4 for other added
                                            tokens), merges as "left right", BOS/EOS ids, add_bos.
  tests/fixtures/tokenizer/<flavour>.json   {"flavour", "pre", "bos_id", "eos_id", "vocab_size",
                                             "cases": [{"text", "ids"}]} with HF's
                                            `encode(text, add_special_tokens=False).ids`, plus a
                                            check that HF's decode round-trips every case.
and tests/fixtures/tokenizer/PROVENANCE.md.

Usage (reference venv, see scripts/requirements.txt; needs only `tokenizers` and `gguf`):
    python scripts/gen_tokenizer_fixtures.py
Deterministic: training data and settings are fixed; re-running gives identical files with the
pinned `tokenizers` version.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import platform
import sys
from importlib.metadata import version
from pathlib import Path

import gguf
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "tokenizer"

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
# Special added tokens besides BOS/EOS (CONTROL in GGUF) and plain added tokens (USER_DEFINED),
# as DeepSeek's chat and reasoning models have them.
EXTRA_SPECIAL = ["<｜User｜>", "<｜Assistant｜>"]
EXTRA_PLAIN = ["<think>", "</think>"]
VOCAB_SIZE = 1500

# The regexes are written with \u escapes: several of these code points have canonically
# equivalent look-alikes (U+1F7D vs U+03CE, U+2126 vs U+03A9, U+212A vs "K") that an editor or
# a copy through NFC silently swaps, which empties a range.
# deepseek-ai/DeepSeek-V2 tokenizer.json, pre_tokenizer.pretokenizers[1] (letters of many scripts).
DEEPSEEK_LLM_LETTERS = (
    "\\s?[A-Za-z\u00B5\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u01BA\u01BC-"
    "\u01BF\u01C4-\u0293\u0295-\u02AF\u0370-\u0373\u0376\u0377\u037B-"
    "\u037D\u037F\u0386\u0388-\u038A\u038C\u038E-\u03A1\u03A3-\u03F5"
    "\u03F7-\u0481\u048A-\u052F\u0531-\u0556\u10A0-\u10C5\u13A0-\u13F5"
    "\u13F8-\u13FD\u1C90-\u1CBA\u1CBD-\u1CBF\u1D00-\u1D2B\u1D6B-\u1D77"
    "\u1D79-\u1D9A\u1E00-\u1F15\u1F18-\u1F1D\u1F20-\u1F45\u1F48-\u1F4D"
    "\u1F50-\u1F57\u1F59\u1F5B\u1F5D\u1F5F-\u1F7D\u1F80-\u1FB4\u1FB6-"
    "\u1FBC\u1FBE\u1FC2-\u1FC4\u1FC6-\u1FCC\u1FD0-\u1FD3\u1FD6-\u1FDB"
    "\u1FE0-\u1FEC\u1FF2-\u1FF4\u1FF6-\u1FFC\u2102\u2107\u210A-\u2113"
    "\u2115\u2119-\u211D\u2124\u2126\u2128\u212A-\u212D\u212F-\u2134"
    "\u2139\u213C-\u213F\u2145-\u2149\u214E\u2183\u2184\u2C00-\u2C7B"
    "\u2C7E-\u2CE4\u2CEB-\u2CEE\u2CF2\u2CF3\uA640-\uA66D\uA680-\uA69B"
    "\uA722-\uA76F\uA771-\uA787\uA78B-\uA78E\uAB70-\uABBF\uFB00-\uFB06"
    "\uFB13-\uFB17\uFF21-\uFF3A\uFF41-\uFF5A\U00010400-\U0001044F"
    "\U000104B0-\U000104D3\U000104D8-\U000104FB\U00010C80-\U00010CB2"
    "\U00010CC0-\U00010CF2\U000118A0-\U000118DF\U0001E900-\U0001E943]+"
)
DEEPSEEK_LLM_SPLITS = [
    "[\r\n]",
    DEEPSEEK_LLM_LETTERS,
    "\\s?[!-/:-~\uFF01-\uFF0F\uFF1A-\uFF5E\u2018-\u201F\u3000-\u3002]+",
    "\\s+$",
    "[\u4E00-\u9FA5\u0800-\u4E00\uAC00-\uD7FF]+",
]
# deepseek-ai/DeepSeek-V3 tokenizer.json, pre_tokenizer.pretokenizers[0..3].
DEEPSEEK_V3_SPLITS = [
    "\\p{N}{1,3}",
    "[\u4E00-\u9FA5\u3040-\u309F\u30A0-\u30FF]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+"
    "| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
]


# zai-org/GLM-4.7-Flash tokenizer.json, pre_tokenizer.pretokenizers[0] (Llama 3's pattern; llama.cpp
# LLAMA_VOCAB_PRE_TYPE_CHATGLM4 spells the contractions out instead of (?i:...)).
GLM4_SPLIT = (
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    "| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# Vocabulary entries of the glm4 fixture that no merge produces (byte-level spelling).
GLM4_WHOLE_WORDS = ["\u0120tinymla", "\u0120latents"]
GLM4_CASES = ["tinymla keeps latents; tinymla's latents, not K and V.", " latents tinymla"]


def split(pattern: str) -> pre_tokenizers.Split:
    return pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False)


def pre_tokenizer(flavour: str):
    if flavour == "gpt2":
        return pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)
    if flavour == "deepseek-llm":
        return pre_tokenizers.Sequence(
            [split(p) for p in DEEPSEEK_LLM_SPLITS]
            + [pre_tokenizers.Digits(individual_digits=True), byte_level]
        )
    if flavour == "deepseek-v3":
        return pre_tokenizers.Sequence([split(p) for p in DEEPSEEK_V3_SPLITS] + [byte_level])
    if flavour == "glm4":
        return pre_tokenizers.Sequence([split(GLM4_SPLIT), byte_level])
    raise ValueError(flavour)


FLAVOURS = {"gpt2": "gpt-2", "deepseek-llm": "deepseek-llm", "deepseek-v3": "deepseek-v3",
            "glm4": "glm4"}


def training_corpus() -> list[str]:
    """Offline text: the Zen of Python, a few stdlib docstrings, and multilingual lines."""
    import codecs
    import collections
    import json as json_mod
    import string
    import textwrap

    with contextlib.redirect_stdout(io.StringIO()):  # importing `this` prints the Zen
        import this
    zen = codecs.decode(this.s, "rot13")
    docs = [
        str.__doc__, list.__doc__, dict.__doc__, int.__doc__, float.__doc__, bytes.__doc__,
        zip.__doc__, map.__doc__, range.__doc__, print.__doc__, sorted.__doc__,
        collections.__doc__, json_mod.__doc__, string.__doc__, textwrap.__doc__,
    ]
    text = [zen] + [d for d in docs if d]
    text += [
        "DeepSeek-V2 and DeepSeek-V3 use Multi-head Latent Attention: the cache stores a latent.",
        "It's a test. Don't panic; we'll see what they've done, I'm sure you'd agree.",
        "Numbers: 0 1 2 3 4 5 6 7 8 9 10 42 100 256 1024 65536 3.14159 2.71828 1,000,000.",
        "深度求索是一家专注于人工智能基础技术研究的公司。我们的模型支持中文和英文。",
        "今天天气很好，我们去公园散步吧。机器学习和深度学习是人工智能的重要分支。",
        "こんにちは世界。これは日本語のテストです。カタカナとひらがなを使います。",
        "안녕하세요. 한국어 문장도 조금 있습니다.",
        "Ελληνικά: καλημέρα κόσμε. Русский: привет, мир! Français: déjà vu, naïve café.",
        "Emoji: 🙂 🚀 🦀 ❤️ 👍 — and symbols: ∑ ∞ ≤ ≥ © ® ™ € £ ¥.",
        "def main():\n    print(\"hello\")\n    return 0\n\nif __name__ == \"__main__\":\n    main()\n",
        "fn main() {\n    let x: Vec<u32> = (0..10).collect();\n    println!(\"{x:?}\");\n}\n",
        "\t\tIndented with tabs\r\n    and spaces\r\nWindows line endings.\r\n",
    ]
    return text * 3


# The golden corpus: each line is encoded on its own.
CASES = [
    "",
    " ",
    "  ",
    "Hello, world!",
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "I'm sure it's fine; they'll say we've done what you'd've done. DON'T SHOUT, O'Neil's.",
    "Wait... what?! (yes) [no] {maybe} <tag> a+b=c; x->y && z || w ~`^@#$%&*_\\|/",
    "1 12 123 1234 12345 3.14159 1,000,000 2026-11-23 0x1F 1e-9 -42",
    "12345678901234567890123456789012345678901234567890",
    "Version 2.5.1 costs $1999.99 (≈ ¥14000) on 11/23.",
    "深度求索是一家人工智能公司。",
    "我们在2024年发布了DeepSeek-V2模型，它有236B参数。",
    "こんにちは、世界！カタカナもテストします。ひらがな、カタカナ、漢字。",
    "안녕하세요 세계",
    "Résumé naïve café Ελληνικά русский текст العربية हिन्दी ภาษาไทย",
    "I ❤️ 🦀 and 👍🏽 and 👨‍👩‍👧 and 🇯🇵!",
    "a  b   c    d     e",
    "   leading spaces",
    "trailing spaces   ",
    "\t\ttabs\tand  spaces \t mixed\t",
    "line1\nline2\n\nline3\r\nline4\r\n",
    "\n\n\n",
    "\r\n\r\n",
    "  \n  indented\n\t\n",
    "fn main() {\n    println!(\"hi {}\", 1 + 2);\n}\n",
    "x = [1, 2, 3]  # list\nprint(x[0])",
    "e\u0301 combining acute, ﬁ ligature, ＡＢＣ１２３！ fullwidth",
    "∑ x² ≤ ∞, α+β=γ, ½ ⅓ ¼, Ⅻ ①②③",
    "a\u00a0b\u200bc\u3000d\u2009e",
    "<｜begin▁of▁sentence｜>Hello<｜end▁of▁sentence｜>",
    "<｜User｜>What is 2+2?<｜Assistant｜><think>\nSimple.\n</think> It is 4.<｜end▁of▁sentence｜>",
    "partial <｜begin▁of and <think without close",
    "<think></think><think>",
    "🦀🦀🦀 mixed 中文English日本語123abc",
    "don't can't won't shouldn't y'all 'tis rock'n'roll",
    "MiXeD CaSe WORDS and CamelCaseIdentifiers snake_case_names",
    "https://example.com/path?q=1&r=two#frag user@example.org",
]

# Plus random lines over fragments chosen to hit the regexes' edges: whitespace before letters,
# digits and newlines, contractions, look-alike letters (U+1F7D, U+2126, U+212A), combining
# marks, special tokens glued to text.
FRAGMENTS = [
    "a", "Zq", "word", "é", "ß", "中", "文字", "カタ", "ひら", "한글", "Ωμ", "\u1f7d", "\u2126", "\u212a",
    "\u0301", "🦀", "👍🏽", "1", "23", "4567", " ", "  ", "   ", "\t", "\n", "\r\n", "\r", "\n\n",
    "'s", "'T", "'ll", "!", "...", "$", "_", "-", "(", "）", "，", "。", "“", "\u00a0", "\u3000",
    "½", "²", "٣", "<｜User｜>", "<think>", EOS, ".Net", "x=1;",
]
N_RANDOM_CASES = 150
RANDOM_SEED = 20260


def random_cases() -> list[str]:
    import random

    rng = random.Random(RANDOM_SEED)
    return ["".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(1, 12)))
            for _ in range(N_RANDOM_CASES)]


def train(flavour: str) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizer(flavour)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=2,
        show_progress=False,
        special_tokens=[BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(training_corpus(), trainer=trainer)
    if flavour == "glm4":
        # GLM-4's BPE model: ignore_merges, plus the whole-word tokens (ids after the trained ones).
        spec = json.loads(tok.to_str())
        spec["model"]["ignore_merges"] = True
        vocab = spec["model"]["vocab"]
        for word in GLM4_WHOLE_WORDS:
            assert word not in vocab, word
            vocab[word] = max(vocab.values()) + 1
        tok = Tokenizer.from_str(json.dumps(spec))
    tok.add_special_tokens(EXTRA_SPECIAL)
    tok.add_tokens(EXTRA_PLAIN)
    return tok


def gguf_vocab(tok: Tokenizer) -> tuple[list[str], list[int], list[str]]:
    """Tokens, token types and merges as convert_hf_to_gguf.py's `_set_vocab_gpt2` writes them."""
    vocab = tok.get_vocab(with_added_tokens=True)
    n = max(vocab.values()) + 1
    by_id = {i: t for t, i in vocab.items()}
    added = tok.get_added_tokens_decoder()
    tokens, types = [], []
    for i in range(n):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in added:
            tokens.append(added[i].content)
            types.append(gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.NORMAL)
    model = json.loads(tok.to_str())["model"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    return tokens, [int(t) for t in types], merges


def write_gguf(path: Path, flavour: str, tok: Tokenizer) -> dict:
    tokens, types, merges = gguf_vocab(tok)
    bos, eos = tok.token_to_id(BOS), tok.token_to_id(EOS)
    w = gguf.GGUFWriter(str(path), "deepseek2")
    w.add_name(f"tinymla tokenizer fixture ({flavour})")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(FLAVOURS[flavour])
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(bos)
    w.add_eos_token_id(eos)
    # llama.cpp adds no BOS for glm4 (special_bos_id = LLAMA_TOKEN_NULL).
    w.add_add_bos_token(flavour != "glm4")
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    # Read back and check what was written.
    r = gguf.GGUFReader(str(path))
    got = [bytes(r.fields["tokenizer.ggml.tokens"].parts[i]).decode()
           for i in r.fields["tokenizer.ggml.tokens"].data]
    assert got == tokens, "token list did not round-trip"
    return {"bos_id": bos, "eos_id": eos, "vocab_size": len(tokens), "n_merges": len(merges),
            "types": {t: types.count(t) for t in sorted(set(types))}}


def golden_json(golden: dict) -> str:
    """JSON with one case per line (diffable, small)."""
    head = {k: v for k, v in golden.items() if k != "cases"}
    body = ",\n".join("  " + json.dumps(c, ensure_ascii=False) for c in golden["cases"])
    text = json.dumps(head, ensure_ascii=False)[:-1] + ', "cases": [\n' + body + "\n]}\n"
    assert json.loads(text) == golden
    return text


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    rows = []
    for flavour in FLAVOURS:
        tok = train(flavour)
        info = write_gguf(OUT / f"{flavour}.gguf", flavour, tok)
        cases = []
        for text in CASES + random_cases() + (GLM4_CASES if flavour == "glm4" else []):
            ids = tok.encode(text, add_special_tokens=False).ids
            back = tok.decode(ids, skip_special_tokens=False)
            assert back == text, f"{flavour}: HF decode does not round-trip {text!r}: {back!r}"
            cases.append({"text": text, "ids": ids})
        golden = {"flavour": flavour, "pre": FLAVOURS[flavour], "bos_id": info["bos_id"],
                  "eos_id": info["eos_id"], "vocab_size": info["vocab_size"], "cases": cases}
        (OUT / f"{flavour}.json").write_text(golden_json(golden))
        rows.append((flavour, info, sum(len(c["ids"]) for c in cases)))

    lines = [
        "# Tokenizer fixtures: provenance",
        "",
        "Generated by `scripts/gen_tokenizer_fixtures.py` (do not edit by hand; re-run the script).",
        "Each flavour is a byte-level BPE tokenizer trained with Hugging Face `tokenizers`",
        f"(`BpeTrainer`, vocab_size {VOCAB_SIZE}, min_frequency 2, full byte alphabet) on an offline",
        "corpus (the Zen of Python, stdlib docstrings, multilingual lines), with the pre-tokenizer",
        "configured exactly as the real tokenizer.json of GPT-2 / DeepSeek-V2 / DeepSeek-V3 / GLM-4.7-Flash",
        "(glm4: BPE with ignore_merges, two whole-word tokens no merge makes, no BOS).",
        f"Special tokens: `{BOS}` (BOS), `{EOS}` (EOS), {', '.join(f'`{t}`' for t in EXTRA_SPECIAL)}",
        f"(CONTROL); plain added tokens {', '.join(f'`{t}`' for t in EXTRA_PLAIN)} (USER_DEFINED).",
        f"Golden cases: {len(CASES)} written lines, then {N_RANDOM_CASES} random concatenations of",
        f"edge-case fragments (`random.Random({RANDOM_SEED})`). Golden ids are",
        "`Tokenizer.encode(text, add_special_tokens=False).ids`; HF's decode round-trips each one.",
        "",
        "| component | version |",
        "|---|---|",
        f"| python | {platform.python_version()} ({platform.system()} {platform.machine()}) |",
        f"| tokenizers | {version('tokenizers')} |",
        f"| gguf | {version('gguf')} |",
        "",
        "| flavour | tokenizer.ggml.pre | vocab | merges | token types | golden ids | gguf sha256 |",
        "|---|---|---|---|---|---|---|",
    ]
    for flavour, info, n_ids in rows:
        digest = hashlib.sha256((OUT / f"{flavour}.gguf").read_bytes()).hexdigest()[:16]
        lines.append(f"| `{flavour}` | `{FLAVOURS[flavour]}` | {info['vocab_size']} | {info['n_merges']} "
                     f"| {info['types']} | {n_ids} | `{digest}…` |")
    (OUT / "PROVENANCE.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())

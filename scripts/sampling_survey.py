#!/usr/bin/env python3
"""Measure how sampling settings shape the bundled demo models' text (issue #27).

For each setting, `tinymla chat` answers every message in MESSAGES (one conversation per
message, so replies are separable) with every seed in SEEDS, at the chat's default reply limit
(128 tokens on the demo models), and the script reports, over those replies:

- loops: the share of continuations in which some word 4-gram occurs 3 or more times (the
  greedy failure the issue shows: "There is the same thing to be a same...");
- distinct-3: unique word 3-grams / all word 3-grams (1.0 = no phrase repeated);
- corpus words: the share of generated words (letters only, lower-cased) that occur in the
  training corpus, Debian's fortunes (a proxy for "real words" on a 1,024-token BPE model);
- cut: replies that ran into the reply limit instead of ending (a looping reply never ends);
- tokens: mean reply length in tokens (from chat's per-turn line).

Needs only the Python standard library, the `tinymla` binary (built by `cargo build
--release -p tinymla-host`) and the corpus (`apt-get install -y fortunes`).

    python3 scripts/sampling_survey.py [--bin target/release/tinymla] [--model models/demo-m.q8_0.gguf]
"""

from __future__ import annotations

import argparse
import re
import subprocess
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORPUS_DIR = Path("/usr/share/games/fortunes")
MESSAGES = [
    "Tell me a joke about programmers",
    "What is life?",
    "Why is the sky blue?",
    "Give me some advice about money",
    "What do cats dream about?",
    "Tell me something about love",
    "Say something wise",
    "Recommend a good book",
]
SEEDS = [1, 2, 3, 4, 5, 6]
# (name, extra `chat` arguments). The CLI defaults are temp 0.8, top-k 40, top-p 0.95,
# min-p 0.05, repeat penalty 1.1 over the last 64 tokens.
SETTINGS = [
    ("greedy", ["--temp", "0"]),
    ("temp 0.8 only", ["--top-k", "0", "--top-p", "1", "--min-p", "0", "--repeat-penalty", "1"]),
    ("llama.cpp defaults (no penalty)", ["--repeat-penalty", "1"]),
    ("defaults (penalty 1.1 / 64)", []),
    ("defaults, penalty 1.2", ["--repeat-penalty", "1.2"]),
    ("defaults, temp 0.6", ["--temp", "0.6"]),
    ("defaults, temp 0.7", ["--temp", "0.7"]),
    ("defaults, temp 1.0", ["--temp", "1.0"]),
]
WORD = re.compile(r"[a-z]+")


def corpus_words() -> set[str]:
    words: set[str] = set()
    for path in CORPUS_DIR.glob("*"):
        if path.is_file() and path.suffix not in {".dat", ".u8"}:
            words.update(WORD.findall(path.read_text(errors="replace").lower()))
    return words


def reply(binary: str, model: str, message: str, seed: int, extra: list[str]) -> tuple[str, int, bool]:
    """(reply text, tokens, cut by the limit) of a one-message chat."""
    out = subprocess.run([binary, "chat", "-m", model, "--seed", str(seed), *extra], input=message + "\n",
                         capture_output=True, text=True, check=True)
    tokens = int(re.search(r"reply (\d+) tokens", out.stderr).group(1))
    return out.stdout, tokens, "[reply cut" in out.stderr


def ngrams(words: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", default=str(REPO / "target/release/tinymla"))
    parser.add_argument("--model", default=str(REPO / "models/demo-m.q8_0.gguf"))
    args = parser.parse_args()
    vocab = corpus_words()
    print(f"model {Path(args.model).name}, {len(MESSAGES)} messages x {len(SEEDS)} seeds")
    print("| setting | loops | cut | distinct-3 | corpus words | tokens |")
    print("|---|---|---|---|---|---|")
    for name, extra in SETTINGS:
        loops, cut, distinct, in_corpus, n_words, tokens = 0, 0, [], 0, 0, []
        for message in MESSAGES:
            for seed in SEEDS:
                text, n, was_cut = reply(args.bin, args.model, message, seed, extra)
                words = WORD.findall(text.lower())
                tokens.append(n)
                cut += was_cut
                loops += any(c >= 3 for c in Counter(ngrams(words, 4)).values())
                grams = ngrams(words, 3)
                distinct.append(len(set(grams)) / len(grams) if grams else 1.0)
                in_corpus += sum(w in vocab for w in words)
                n_words += len(words)
        runs = len(MESSAGES) * len(SEEDS)
        print(f"| {name} | {loops}/{runs} | {cut}/{runs} | {sum(distinct) / runs:.3f} | "
              f"{in_corpus / max(n_words, 1):.3f} | {sum(tokens) / runs:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

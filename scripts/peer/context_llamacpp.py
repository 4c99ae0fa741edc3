#!/usr/bin/env python3
"""Decode and prefill speed against context length, tinymla beside llama.cpp on one GGUF
(issue #19): for each context C, a prompt of C pseudo-random ids is prefilled, then `-n`
tokens are decoded one at a time, at 1 and 2 threads.

    python scripts/peer/context_llamacpp.py MODEL.gguf [--contexts 16,1024,4096,8192,16384,32768]
        [-n 16] [--threads 1,2] [--cache f32,q8] [--repeats 2]

tinymla runs `tinymla bench` once per cache storage in `--cache`. llama.cpp runs in each of
its settings that can be fastest here: f32 KV cache, f16 KV cache with flash attention on, and
f16 with it off (batched prefill, n_batch 512); its best per row is the one compared, and the
table names it. Each number is the best of `--repeats` runs. Ratios > 1: tinymla is faster.
"""
import argparse
import sys
from pathlib import Path

import llama_cpp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed_llamacpp import ROOT, llamacpp, tinymla  # noqa: E402

# (name, ggml cache type, flash attention)
SETTINGS = [("f32", 0, False), ("f16+FA", 1, True), ("f16", 1, False)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--contexts", default="16,1024,4096,8192,16384,32768")
    ap.add_argument("-n", type=int, default=16, dest="n_gen")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--cache", default="f32,q8")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--tinymla", type=Path, default=ROOT / "target" / "release" / "tinymla")
    a = ap.parse_args()
    contexts = [int(c) for c in a.contexts.split(",")]
    threads = [int(t) for t in a.threads.split(",")]
    caches = a.cache.split(",")

    best = {}  # (engine, setting, what, context, threads) -> best tok/s

    def keep(key, value):
        best[key] = max(best.get(key, 0.0), value)

    for r in range(a.repeats):
        for c in contexts:
            print(f"run {r + 1}/{a.repeats}, context {c} ...", file=sys.stderr)
            for cache in caches:
                for t, (pf, dc) in tinymla(a.tinymla, a.model, threads, c, a.n_gen, 32, cache).items():
                    keep(("tinymla", cache, "prefill", c, t), pf)
                    keep(("tinymla", cache, "decode", c, t), dc)
            for name, cache_type, fa in SETTINGS:
                for t in threads:
                    pf, dc = llamacpp(a.model, t, c, a.n_gen, 512, cache_type, fa)
                    keep(("llama.cpp", name, "prefill", c, t), pf)
                    keep(("llama.cpp", name, "decode", c, t), dc)

    print(f"{a.model.name}: decode {a.n_gen} tokens after a prompt of C, best of {a.repeats}; "
          f"llama.cpp {llama_cpp.__version__} (llama-cpp-python), its best of {[s[0] for s in SETTINGS]}")
    for what in ("decode", "prefill"):
        print(f"\n{what} tok/s")
        head = " | ".join(f"tinymla {cache}" for cache in caches)
        print(f"| context | threads | {head} | llama.cpp best | ratio (tinymla {caches[0]}) "
              f"| tinymla {caches[0]} vs its context {contexts[0]} |")
        print("|---|---|" + "---|" * len(caches) + "---|---|---|")
        for c in contexts:
            for t in threads:
                ours = [best.get(("tinymla", cache, what, c, t), 0.0) for cache in caches]
                theirs = [(best.get(("llama.cpp", s[0], what, c, t), 0.0), s[0]) for s in SETTINGS]
                top, name = max(theirs)
                base = best.get(("tinymla", caches[0], what, contexts[0], t), 0.0)
                cells = " | ".join(f"{x:.1f}" for x in ours)
                ratio = ours[0] / top if top else float("nan")
                share = ours[0] / base if base else float("nan")
                print(f"| {c} | {t} | {cells} | {top:.1f} ({name}) | {ratio:.2f} | {share:.0%} |")


if __name__ == "__main__":
    main()

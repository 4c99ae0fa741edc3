#!/usr/bin/env python3
"""Prefill and decode speed of one GGUF in llama.cpp (llama-cpp-python) and in `tinymla bench`,
at 1 and 2 threads, with tinymla/llama.cpp ratios (> 1 means tinymla is faster).

    python scripts/peer/speed_llamacpp.py MODEL.gguf [--prompt 128] [-n 32] [--threads 1,2]

Both engines get the same workload: a prompt of `--prompt` pseudo-random token ids, then `-n`
decode steps of one token each, with an f32 latent / KV cache. tinymla's numbers are what
`tinymla bench` prints; llama.cpp is timed around its C API calls (`llama_decode` +
`llama_synchronize` through ctypes, a few microseconds per call). Each number is the best of
`--repeats` runs.

Prefill is compared twice, like for like: batched (llama.cpp with n_batch 512, tinymla with
its batched steps of up to 64 tokens, `tinymla bench --batch 64`; each weight row read once per
batch) and token by token (llama.cpp with n_batch 1, `tinymla bench --batch 1`).

The model needs `deepseek2.attention.q_lora_rank` (0 for a direct query projection) and some
`tokenizer.ggml.model` for llama.cpp to load it; `tinymla synth` writes both ("none").
"""
import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

import llama_cpp

ROOT = Path(__file__).resolve().parents[2]


def prompt_tokens(n, vocab, seed=0x2545F491):
    """Deterministic pseudo-random ids in 1..vocab (never 0, which may be special)."""
    state, out = seed, []
    for _ in range(n):
        state ^= (state << 13) & 0xFFFFFFFF
        state ^= state >> 17
        state ^= (state << 5) & 0xFFFFFFFF
        out.append(1 + state % (vocab - 1))
    return out


def llamacpp(path, threads, n_prompt, n_gen, n_batch, cache_type=0, flash_attn=False):
    """(prefill tok/s, decode tok/s), timed around llama.cpp's C API (`llama_decode`, then
    `llama_synchronize`) with no Python work inside the timed region but the ctypes calls.
    `cache_type` is the KV cache's ggml type (0 f32, 1 f16, 8 q8_0)."""
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=n_prompt + n_gen + 8, n_threads=threads,
                          n_threads_batch=threads, n_batch=max(n_batch, 1),
                          n_ubatch=max(n_batch, 1), type_k=cache_type, type_v=cache_type,
                          flash_attn=flash_attn, verbose=False)
    tokens = prompt_tokens(n_prompt + n_gen, llm.n_vocab())
    ctx = llm._ctx.ctx

    def decode(ids):
        arr = (llama_cpp.llama_token * len(ids))(*ids)
        rc = llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(arr, len(ids)))
        assert rc == 0, f"llama_decode returned {rc}"
        llama_cpp.llama_synchronize(ctx)

    start = time.perf_counter()
    step = max(n_batch, 1)
    for i in range(0, n_prompt, step):
        decode(tokens[i:min(i + step, n_prompt)])
    prefill = n_prompt / (time.perf_counter() - start)
    start = time.perf_counter()
    for t in tokens[n_prompt:]:
        decode([t])
    decode_tok_s = n_gen / (time.perf_counter() - start)
    llm.close()
    return prefill, decode_tok_s


def tinymla(binary, path, threads, n_prompt, n_gen, batch, cache="f32", extra=()):
    """{threads: (prefill tok/s, decode tok/s)} parsed from `tinymla bench --batch BATCH`
    (plus `extra` arguments, e.g. `--pack-weights`)."""
    cmd = [str(binary), "bench", "-m", str(path), "--prompt", str(n_prompt), "-n", str(n_gen),
           "-t", ",".join(map(str, threads)), "--batch", str(batch), "--cache", cache, *extra]
    return bench_rows(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def bench_rows(out):
    """{threads: (prefill tok/s, decode tok/s)} from the table `tinymla bench` prints."""
    rows = {}
    # prompt, batch, decode, seqs, threads, prefill tok/s, decode tok/s
    for line in out.splitlines():
        m = re.match(r"\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s*$", line)
        if m:
            rows[int(m.group(5))] = (float(m.group(6)), float(m.group(7)))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("-n", type=int, default=32, dest="n_gen")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tinymla", type=Path, default=ROOT / "target" / "release" / "tinymla")
    ap.add_argument("--pack-weights", action="store_true",
                    help="run tinymla with its weights packed once at load (`bench --pack-weights`)")
    a = ap.parse_args()
    extra = ["--pack-weights"] if a.pack_weights else []
    threads = [int(t) for t in a.threads.split(",")]

    best = {}  # (engine, what, threads) -> best tok/s

    def keep(key, value):
        best[key] = max(best.get(key, 0.0), value)

    for r in range(a.repeats):
        print(f"run {r + 1}/{a.repeats} ...", file=sys.stderr)
        for t, (pf, dc) in tinymla(a.tinymla, a.model, threads, a.prompt, a.n_gen, 64,
                                  extra=extra).items():
            keep(("tinymla", "prefill", t), pf)
            keep(("tinymla", "decode", t), dc)
        for t, (pf, dc) in tinymla(a.tinymla, a.model, threads, a.prompt, a.n_gen, 1,
                                  extra=extra).items():
            keep(("tinymla", "prefill-b1", t), pf)
            keep(("tinymla", "decode", t), dc)
        for t in threads:
            pf, dc = llamacpp(a.model, t, a.prompt, a.n_gen, n_batch=512)
            keep(("llama.cpp", "prefill", t), pf)
            keep(("llama.cpp", "decode", t), dc)
            pf1, _ = llamacpp(a.model, t, a.prompt, a.n_gen, n_batch=1)
            keep(("llama.cpp", "prefill-b1", t), pf1)

    print(f"{a.model.name}: prompt {a.prompt}, decode {a.n_gen}, best of {a.repeats}; "
          f"llama.cpp {llama_cpp.__version__} (llama-cpp-python), f32 cache in both"
          + (", tinymla with --pack-weights" if a.pack_weights else ""))
    print(f"| {'row':<48} | {'threads':>7} | {'tinymla tok/s':>13} | {'llama.cpp tok/s':>15} "
          f"| {'ratio':>6} |")
    print(f"|{'-' * 50}|{'-' * 9}|{'-' * 15}|{'-' * 17}|{'-' * 8}|")
    rows = [
        ("decode", "decode", "decode"),
        ("prefill, batched (n_batch 512 / --batch 64)", "prefill", "prefill"),
        ("prefill, token by token (n_batch 1 / --batch 1)", "prefill-b1", "prefill-b1"),
    ]
    for label, ours, theirs in rows:
        for t in threads:
            x, y = best.get(("tinymla", ours, t)), best.get(("llama.cpp", theirs, t))
            if x is None or y is None:
                continue
            print(f"| {label:<48} | {t:>7} | {x:>13.1f} | {y:>15.1f} | {x / y:>6.2f} |")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Aggregate decode speed of N sequences decoded together, in tinymla and in llama.cpp, against
one sequence alone: what `tinymla serve` gains by batching its slots (issue #22).

    python scripts/peer/sequences_llamacpp.py MODEL.gguf [--sequences 8] [--prompt 64] [-n 32]
        [--threads 1,2] [--repeats 2]

tinymla: `tinymla bench --sequences N` (each sequence its own cache and prompt, prefilled on
its own, then one `forward_sequences` step per token for all N) and `tinymla bench` (one
sequence, `forward_with`). llama.cpp (llama-cpp-python's low-level C API): one context with
`n_seq_max = N` and a unified KV cache; each sequence's prompt is prefilled under its own
sequence id, then every decode step is one `llama_decode` of a batch of N tokens, one per
sequence id, each with its logits. Both engines compute the LM head for every sequence every
step; llama.cpp is fed fixed pseudo-random tokens, tinymla its argmax (a scan of the logits).
Each number is the best of `--repeats` runs; decode rates count the tokens of all sequences.
"""
import argparse
import ctypes
import subprocess
import sys
import time
from pathlib import Path

import llama_cpp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed_llamacpp import ROOT, bench_rows, prompt_tokens  # noqa: E402


@llama_cpp.llama_log_callback
def _quiet(level, text, user_data):
    """llama.cpp's log lines (hundreds per context) are dropped."""


llama_cpp.llama_log_set(_quiet, ctypes.c_void_p(0))


def llamacpp(path, threads, n_seq, n_prompt, n_gen):
    """(prefill tok/s, aggregate decode tok/s) of `n_seq` sequences in one llama.cpp context,
    f32 KV cache."""
    llama_cpp.llama_backend_init()
    mparams = llama_cpp.llama_model_default_params()
    model = llama_cpp.llama_model_load_from_file(str(path).encode(), mparams)
    assert model, f"llama.cpp cannot load {path}"
    cparams = llama_cpp.llama_context_default_params()
    cparams.n_ctx = n_seq * (n_prompt + n_gen + 8)
    cparams.n_batch = max(512, n_seq)
    cparams.n_ubatch = max(512, n_seq)
    cparams.n_seq_max = n_seq
    cparams.n_threads = threads
    cparams.n_threads_batch = threads
    cparams.type_k = 0
    cparams.type_v = 0
    cparams.kv_unified = True
    ctx = llama_cpp.llama_init_from_model(model, cparams)
    assert ctx, "llama.cpp cannot make the context"
    vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(model))
    capacity = max(n_prompt, n_seq)
    batch = llama_cpp.llama_batch_init(capacity, 0, 1)

    def decode(entries):
        """entries: (token, position, sequence id, wants logits)."""
        batch.n_tokens = len(entries)
        for i, (t, p, s, want) in enumerate(entries):
            batch.token[i] = t
            batch.pos[i] = p
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = s
            batch.logits[i] = 1 if want else 0
        rc = llama_cpp.llama_decode(ctx, batch)
        assert rc == 0, f"llama_decode returned {rc}"
        llama_cpp.llama_synchronize(ctx)

    prompts = [prompt_tokens(n_prompt + n_gen, vocab, 0x2545F491 + s) for s in range(n_seq)]
    start = time.perf_counter()
    for s, toks in enumerate(prompts):
        decode([(t, p, s, p == n_prompt - 1) for p, t in enumerate(toks[:n_prompt])])
    prefill = n_seq * n_prompt / (time.perf_counter() - start)
    start = time.perf_counter()
    for g in range(n_gen):
        decode([(prompts[s][n_prompt + g], n_prompt + g, s, True) for s in range(n_seq)])
    decode_tok_s = n_seq * n_gen / (time.perf_counter() - start)
    llama_cpp.llama_batch_free(batch)
    llama_cpp.llama_free(ctx)
    llama_cpp.llama_model_free(model)
    return prefill, decode_tok_s


def tinymla(binary, path, threads, n_seq, n_prompt, n_gen, pack=False):
    """{threads: (prefill tok/s, decode tok/s)} from `tinymla bench --sequences N`."""
    cmd = [str(binary), "bench", "-m", str(path), "--prompt", str(n_prompt), "-n", str(n_gen),
           "-t", ",".join(map(str, threads)), "--sequences", str(n_seq)]
    if pack:
        cmd.append("--pack-weights")
    return bench_rows(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--sequences", type=int, default=8)
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("-n", type=int, default=32, dest="n_gen")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--tinymla", type=Path, default=ROOT / "target" / "release" / "tinymla")
    ap.add_argument("--pack-weights", action="store_true",
                    help="tinymla packs its batched weights once first (serve --pack-weights)")
    a = ap.parse_args()
    threads = [int(t) for t in a.threads.split(",")]
    counts = [1, a.sequences]

    best = {}  # (engine, sequences, threads) -> best decode tok/s

    def keep(key, value):
        best[key] = max(best.get(key, 0.0), value)

    for r in range(a.repeats):
        print(f"run {r + 1}/{a.repeats} ...", file=sys.stderr)
        for n in counts:
            rows = tinymla(a.tinymla, a.model, threads, n, a.prompt, a.n_gen, a.pack_weights)
            for t, (_, dc) in rows.items():
                keep(("tinymla", n, t), dc)
            for t in threads:
                _, dc = llamacpp(a.model, t, n, a.prompt, a.n_gen)
                keep(("llama.cpp", n, t), dc)

    n = a.sequences
    print(f"{a.model.name}: {n} sequences, prompts of {a.prompt} tokens, {a.n_gen} decode steps, "
          f"best of {a.repeats}; llama.cpp {llama_cpp.__version__} (llama-cpp-python), f32 cache"
          + ("; tinymla with packed weights" if a.pack_weights else ""))
    print("| threads | engine | 1 sequence tok/s | "
          f"{n} sequences tok/s (all) | {n} vs 1 |")
    print("|---|---|---|---|---|")
    for t in threads:
        for engine in ["tinymla", "llama.cpp"]:
            one, many = best[(engine, 1, t)], best[(engine, n, t)]
            print(f"| {t} | {engine} | {one:.1f} | {many:.1f} | {many / one:.2f}x |")
        ours, theirs = best[("tinymla", n, t)], best[("llama.cpp", n, t)]
        print(f"| {t} | tinymla / llama.cpp | {best[('tinymla', 1, t)] / best[('llama.cpp', 1, t)]:.2f} "
              f"| {ours / theirs:.2f} | |")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Evaluate a fixture's prompt with llama.cpp (llama-cpp-python, f32 KV cache, 1 thread) and
compare its logits with the transformers reference in tests/fixtures/<name>.expected.bin.

    python scripts/peer/compare_llamacpp.py MODEL.gguf FIXTURE_NAME
"""
import struct
import sys
from pathlib import Path

import llama_cpp
import numpy as np

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures"


def read_expected(name):
    b = (FIXTURES / f"{name}.expected.bin").read_bytes()
    assert b[:4] == b"TMLE"
    _, n_pos, n_vocab = struct.unpack_from("<3I", b, 4)
    tokens = list(struct.unpack_from(f"<{n_pos}I", b, 16))
    logits = np.frombuffer(b, dtype="<f4", offset=16 + 4 * n_pos).reshape(n_pos, n_vocab)
    return tokens, logits


def main(path, name):
    tokens, expected = read_expected(name)
    llm = llama_cpp.Llama(model_path=path, logits_all=True, n_ctx=64, n_threads=1,
                          type_k=0, type_v=0, verbose=False)
    llm.eval(tokens)
    got = np.array(llm.scores[: len(tokens)], dtype=np.float32)
    d = np.abs(got - expected)
    agree = int((got.argmax(1) == expected.argmax(1)).sum())
    print(f"{path}: llama.cpp {llama_cpp.__version__}: max|d| {d.max():.3e} "
          f"(rel {d.max() / np.abs(expected).max():.3e}), argmax {agree}/{len(tokens)}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

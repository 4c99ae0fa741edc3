#!/usr/bin/env python3
"""The F32 rows behind llama.cpp's K-quant fixtures, so that tinymla's quantizers can be checked
against llama.cpp's own blocks without Python or llama.cpp in the tests (issue #20).

`tests/fixtures/kquant/kq_aligned.<ftype>.gguf` are llama.cpp's `llama_model_quantize` of an F32
GGUF that is not committed (3.9 MB; `scripts/gen_kquant_fixtures.py` builds it from a seeded
transformers model). Its `token_embd.weight` is 64 rows of 256 values, one super-block each, and
llama.cpp stored it as Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL or IQ4_XS depending on the ftype (see
that folder's PROVENANCE.md). This script rebuilds the F32 source exactly as that script does (same
fixture definition, seed and writer; it asserts the rebuilt tensor against the quantized files'
shapes) and writes that one tensor, 65,536 bytes:

    tests/fixtures/kquant/kq_aligned.token_embd.f32   little-endian f32, [64 rows][256]

Usage (reference venv, scripts/requirements.txt; llama-cpp-python is not needed):
    python scripts/gen_kquant_rows.py
"""

from __future__ import annotations

import sys
import tempfile
import types
from pathlib import Path

import gguf
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "peer"))

# gen_kquant_fixtures imports llama-cpp-python at module level for its quantizing steps, which
# this script does not run: stand-ins for the two names it touches while importing.
_llama_cpp = types.ModuleType("llama_cpp")
_llama_cpp.llama_log_callback = lambda f: f
_quantize_llamacpp = types.ModuleType("quantize_llamacpp")
_quantize_llamacpp.FTYPES = {}
_quantize_llamacpp.quantize = None
sys.modules.setdefault("llama_cpp", _llama_cpp)
sys.modules.setdefault("quantize_llamacpp", _quantize_llamacpp)

import gen_kquant_fixtures as gkf  # noqa: E402

OUT = gkf.OUT_DIR / "kq_aligned.token_embd.f32"
TENSOR = "token_embd.weight"


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        source = gkf.build_source(gkf.KQ, Path(tmp))
        reader = gguf.GGUFReader(source.path)
        tensor = next(t for t in reader.tensors if t.name == TENSOR)
        assert tensor.tensor_type == gguf.GGMLQuantizationType.F32, tensor.tensor_type
        rows = np.asarray(tensor.data, dtype="<f4").reshape(-1, int(tensor.shape[0]))
    assert rows.shape == (64, 256), rows.shape
    for quantized in sorted(gkf.OUT_DIR.glob("kq_aligned*.gguf")):
        t = next(t for t in gguf.GGUFReader(quantized).tensors if t.name == TENSOR)
        assert [int(n) for n in t.shape] == [256, 64], (quantized.name, t.shape)
    OUT.write_bytes(rows.tobytes())
    print(f"wrote {OUT} ({OUT.stat().st_size:,} bytes): {TENSOR} of kq_aligned, max |x| {np.abs(rows).max():.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

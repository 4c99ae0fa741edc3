#!/usr/bin/env python3
"""Quantize a GGUF with llama.cpp's own quantizer (`llama_model_quantize`, what `llama-quantize` runs).

Calls the C API through llama-cpp-python (0.3.36 in the reference venv), so the per-tensor type
choices (`src/llama-quant.cpp`: the Q4_K_M / Q3_K_M ... mixes, and the fallbacks for rows that are
not whole 256-blocks) are llama.cpp's, not a re-implementation:

    python scripts/peer/quantize_llamacpp.py IN.gguf OUT.gguf --ftype q4_k_m [--threads N]

IN is an F32 / F16 / BF16 GGUF (any architecture llama.cpp can load). No importance matrix is
passed; ftypes that need one (IQ1/IQ2/IQ3_XXS, Q2_K_S) are refused by llama.cpp and not offered
here. The output does not depend on --threads (every row is quantized independently).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import llama_cpp

# --ftype name -> llama_ftype (LLAMA_FTYPE_MOSTLY_<NAME>).
FTYPES = {name: getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{name.upper()}") for name in (
    "q4_0", "q4_1", "q5_0", "q5_1", "q8_0",
    "q2_k", "q3_k_s", "q3_k_m", "q3_k_l", "q4_k_s", "q4_k_m", "q5_k_s", "q5_k_m", "q6_k",
    "iq4_nl", "iq4_xs", "f16", "bf16",
)}


def quantize(inp: str | Path, out: str | Path, ftype: str, threads: int = 0) -> int:
    """Run llama_model_quantize(inp -> out) with llama.cpp's default params for `ftype`.

    Returns the llama_ftype id used; raises RuntimeError if llama.cpp reports failure.
    """
    ftype_id = FTYPES[ftype.lower()]
    params = llama_cpp.llama_model_quantize_default_params()
    params.nthread = threads
    params.ftype = ftype_id
    rc = llama_cpp.llama_model_quantize(str(inp).encode(), str(out).encode(), params)
    if rc != 0:
        raise RuntimeError(f"llama_model_quantize({inp} -> {out}, {ftype}) failed with {rc}")
    return ftype_id


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--ftype", required=True, choices=sorted(FTYPES), type=str.lower)
    parser.add_argument("--threads", type=int, default=0, help="0 = all hardware threads (default)")
    args = parser.parse_args(argv)
    llama_cpp.llama_backend_init()
    start = time.time()
    name = (llama_cpp.llama_ftype_name(FTYPES[args.ftype]) or b"?").decode()
    print(f"quantizing {args.input} -> {args.output}: ftype {args.ftype} = LLAMA_FTYPE id "
          f"{FTYPES[args.ftype]} ({name}), llama-cpp-python {llama_cpp.__version__}", flush=True)
    try:
        quantize(args.input, args.output, args.ftype, args.threads)
    except RuntimeError as e:
        print(e, file=sys.stderr)
        return 1
    print(f"wrote {args.output} ({args.output.stat().st_size:,} bytes) in {time.time() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

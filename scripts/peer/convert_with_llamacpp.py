#!/usr/bin/env python3
"""Run llama.cpp's own `convert_hf_to_gguf.py` on a Hugging Face checkpoint.

llama.cpp's converter is not committed here: it comes from the llama-cpp-python sdist, which
vendors the whole llama.cpp tree:

    pip download --no-deps --no-binary llama-cpp-python llama-cpp-python==0.3.36 -d sdist
    tar xzf sdist/llama_cpp_python-0.3.36.tar.gz -C sdist
    LLAMA_CPP_DIR=sdist/llama_cpp_python-0.3.36/vendor/llama.cpp \\
        python scripts/peer/convert_with_llamacpp.py HF_DIR --outfile OUT.gguf --outtype f32

One patch is applied at run time: the converter refuses tokenizers whose pre-tokenizer hash it
does not know (the fixtures' tiny byte-level tokenizer); `get_vocab_base_pre` falls back to
"default" instead. Nothing else is changed.
"""
import os
import runpy
import sys
from pathlib import Path

LLAMA = Path(os.environ["LLAMA_CPP_DIR"])
sys.path.insert(0, str(LLAMA))
sys.path.insert(1, str(LLAMA / "gguf-py"))

import conversion.base as base  # noqa: E402  (llama.cpp's converter package)

_original = base.TextModel.get_vocab_base_pre


def _fall_back_to_default(self, tokenizer):
    try:
        return _original(self, tokenizer)
    except NotImplementedError as e:
        base.logger.warning(f"unknown pre-tokenizer ({str(e).splitlines()[0]}): using 'default'")
        return "default"


base.TextModel.get_vocab_base_pre = _fall_back_to_default
sys.argv = [str(LLAMA / "convert_hf_to_gguf.py")] + sys.argv[1:]
runpy.run_path(str(LLAMA / "convert_hf_to_gguf.py"), run_name="__main__")

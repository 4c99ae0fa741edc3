#!/usr/bin/env python3
"""Write the golden fixtures' tiny byte-level BPE tokenizer into HF checkpoint folders, so
llama.cpp's converter can run on `scripts/gen_fixtures.py --hf-out` output:
ids 0..255 = GPT-2 byte chars of bytes 0..255, id 256 = 'Ġt', merges ['Ġ t'].

    python scripts/peer/fixture_tokenizer.py HF_DIR/<name> [...]
"""
import sys

from gguf.vocab import bytes_to_unicode  # noqa: F401  (pinned gguf package)
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

byte_chars = bytes_to_unicode()
vocab = {byte_chars[b]: b for b in range(256)}
vocab["Ġt"] = 256
tok = Tokenizer(models.BPE(vocab=vocab, merges=[("Ġ", "t")]))
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
for folder in sys.argv[1:]:
    PreTrainedTokenizerFast(tokenizer_object=tok).save_pretrained(folder)
    print("wrote tokenizer to", folder)

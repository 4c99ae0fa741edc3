#!/usr/bin/env python3
"""Golden fixtures for K-quant / legacy-quant GGUFs (issue #20), quantized by llama.cpp itself.

Writes into tests/fixtures/kquant/:
  1. `kq_aligned`: a tiny random-weight transformers DeepseekV3 MoE (gen_fixtures' machinery, one
     MoE layer: 2 routed experts, top-1, 1 shared) whose matrix rows (GGUF ne[0]: hidden, q/kv LoRA
     ranks, n_heads * v_head, moe_intermediate) are all 256 long, so K-quant blocks really fit. Only
     `attn_k_b` (ne[0] = qk_nope_head_dim = 64, as in real DeepSeek files where it is 128) cannot.
     Its F32 GGUF is written to a temporary directory (not committed; `--source-out DIR` keeps it)
     and quantized with llama.cpp's `llama_model_quantize` (scripts/peer/quantize_llamacpp.py) to
     every K-quant / IQ4 ftype: `kq_aligned.<ftype>.gguf`. `kq_aligned.expected.bin` holds the HF
     float32 logits of the unquantized model (20 tokens, gen_fixtures' prompt convention).
  2. `kq_aligned_legacy.q4_k_m.gguf`: the same weights in the legacy MLA layout (one attn_kv_b).
  3. `v3_aligned.<ftype>.gguf`: tests/fixtures/v3_aligned.gguf (rows multiples of 32, not of 256;
     read-only input) quantized by llama.cpp, so its fallbacks (Q5_0, Q8_0, IQ4_NL, Q4_0) appear;
     `v3_dense_tied.q4_k_m.gguf`: tests/fixtures/v3_dense_tied.gguf (no row a multiple of 32, tied
     embeddings) at Q4_K_M, where every matrix falls back to F16.
  4. For every quantized file, `<stem>.expected.bin` (TMLE v1): numpy_ref.forward's float64 logits
     of THAT file (weights dequantized by gguf-py), i.e. the ground truth for an engine reading it.
     The quantization error against the float model is recorded in PROVENANCE.md.
  5. `blocks/<TYPE>.blocks` + `blocks/<TYPE>.f32`: seeded random blocks (f16 scale fields forced
     finite, some extreme) and gguf-py's dequantization of them, for bit-exact kernel tests;
     `blocks/README.md` documents the layouts (ggml-common.h).
  6. `PROVENANCE.md`.

Every tensor type llama.cpp chose is checked against an independent transcription of its rules
(`expected_type`, from src/llama-quant.cpp), and gguf-py's dequantization of every quantized tensor
and block vector is compared bit for bit with ggml's own `dequantize_row_*` (libggml-base.so of
llama-cpp-python).

Usage (reference venv with llama-cpp-python 0.3.36):
    python scripts/gen_kquant_fixtures.py [--source-out DIR] [--threads N]
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import hashlib
import platform
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import gguf
import llama_cpp
import numpy as np
import torch
from gguf import GGMLQuantizationType as T
from gguf.constants import GGML_QUANT_SIZES
from gguf.vocab import bytes_to_unicode

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "peer"))
import gen_fixtures as gf  # noqa: E402
import numpy_ref  # noqa: E402
from quantize_llamacpp import FTYPES, quantize  # noqa: E402

OUT_DIR = gf.FIXTURE_DIR / "kquant"
BLOCK_DIR = OUT_DIR / "blocks"
MAX_TOTAL_BYTES = 8 << 20
# numpy_ref (float64) vs HF (float32) on the unquantized model, as in gen_fixtures.
TOL_NUMPY_REF = gf.TOL_NUMPY_REF

KQ = gf.Fixture("kq_aligned", "v3", 2001, "split", dict(
    vocab_size=64, hidden_size=256, intermediate_size=256, moe_intermediate_size=256, num_hidden_layers=1,
    first_k_dense_replace=0, num_attention_heads=2, q_lora_rank=256, kv_lora_rank=256,
    qk_nope_head_dim=64, qk_rope_head_dim=32, v_head_dim=128, n_routed_experts=2, num_experts_per_tok=1,
    n_shared_experts=1, n_group=1, topk_group=1, routed_scaling_factor=2.5, norm_topk_prob=True,
    rope_interleave=True, rope_parameters=gf.yarn(4.0, 1.0), max_position_embeddings=128,
    tie_word_embeddings=False))
KQ_LEGACY = dataclasses.replace(KQ, name="kq_aligned_legacy", layout="legacy")  # same seed: same weights

KQ_FTYPES = ["q2_k", "q3_k_s", "q3_k_m", "q3_k_l", "q4_k_s", "q4_k_m", "q5_k_s", "q5_k_m", "q6_k", "iq4_nl", "iq4_xs"]
LEGACY_FTYPES = ["q4_k_m"]
V3_FTYPES = ["q4_1", "q5_0", "q5_1", "q4_k_m", "q6_k", "iq4_xs", "q2_k"]
TIED_FTYPES = ["q4_k_m"]  # v3_dense_tied: the F16 fallback and the tied-embedding rule

# Block-vector fixtures: type -> offsets of its f16 scale fields (d, then dmin / m) in a block.
BLOCK_SCALES = {T.Q4_1: (0, 2), T.Q5_0: (0,), T.Q5_1: (0, 2), T.Q2_K: (80, 82), T.Q3_K: (108,),
                T.Q4_K: (0, 2), T.Q5_K: (0, 2), T.Q6_K: (208,), T.IQ4_NL: (0,), T.IQ4_XS: (0,)}
N_BLOCKS = 12
BLOCK_SEED = 20_000
F16 = np.float16
# (d, dmin) bit patterns of the first blocks: +0, subnormals, +-65504 (max finite), -0, negatives.
EXTREME_SCALES = [(0x0000, 0x3800), (0x0001, 0x03FF), (0x7BFF, 0xFBFF), (0xFBFF, 0x7BFF), (0x8000, 0x8000),
                  (int(F16(-0.01).view(np.uint16)), int(F16(-0.02).view(np.uint16)))]

# Field layout per type, from ggml/src/ggml-common.h (for blocks/README.md).
LAYOUTS = {
    T.Q4_1: "`f16 d; f16 m; u8 qs[16]` — x = d * q + m, q = 4-bit nibble (low nibbles = elements 0..15, high = 16..31)",
    T.Q5_0: "`f16 d; u8 qh[4]; u8 qs[16]` — x = d * (q - 16), q = nibble + 16 * (bit j of the little-endian u32 qh) "
            "for element j (nibbles: low = elements 0..15, high = 16..31)",
    T.Q5_1: "`f16 d; f16 m; u8 qh[4]; u8 qs[16]` — x = d * q + m, q as in Q5_0",
    T.Q2_K: "`u8 scales[16]; u8 qs[64]; f16 d; f16 dmin` — 16 sub-blocks of 16; scales byte: low 4 bits scale, high 4 bits min; "
            "x = d * scale * q - dmin * min, q 2-bit",
    T.Q3_K: "`u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d` — 16 sub-blocks of 16, 6-bit scales packed in 12 bytes "
            "(stored s, used s - 32); x = d * (s - 32) * (q - 4 if the hmask bit is clear else q), q 2-bit",
    T.Q4_K: "`f16 d; f16 dmin; u8 scales[12]; u8 qs[128]` — 8 sub-blocks of 32, 6-bit scales and mins packed in 12 "
            "bytes (get_scale_min_k4); x = d * sc * q - dmin * m, q 4-bit",
    T.Q5_K: "`f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]` — as Q4_K with a 5th bit from qh",
    T.Q6_K: "`u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d` — 16 sub-blocks of 16; x = d * scale * (q - 32), q 6-bit "
            "(4 low bits from ql, 2 high from qh)",
    T.IQ4_NL: "`f16 d; u8 qs[16]` — x = d * kvalues_iq4nl[q], q = 4-bit nibble, kvalues_iq4nl = "
              "{-127,-104,-83,-65,-49,-35,-22,-10,1,13,25,38,53,69,89,113}",
    T.IQ4_XS: "`f16 d; u16 scales_h; u8 scales_l[4]; u8 qs[128]` — 8 sub-blocks of 32, 6-bit scale ls = "
              "(nibble of scales_l) + 16 * (2 bits of scales_h); x = d * (ls - 32) * kvalues_iq4nl[q]",
}

# --------------------------------------------------------------------------- llama.cpp's type rules

K_TYPES = (T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K, T.IQ4_XS)
DEFAULT_TYPE = {"q4_0": T.Q4_0, "q4_1": T.Q4_1, "q5_0": T.Q5_0, "q5_1": T.Q5_1, "q8_0": T.Q8_0, "q2_k": T.Q2_K,
                "q3_k_s": T.Q3_K, "q3_k_m": T.Q3_K, "q3_k_l": T.Q3_K, "q4_k_s": T.Q4_K, "q4_k_m": T.Q4_K,
                "q5_k_s": T.Q5_K, "q5_k_m": T.Q5_K, "q6_k": T.Q6_K, "iq4_nl": T.IQ4_NL, "iq4_xs": T.IQ4_XS}
# tensor_type_fallback: a 256-block type whose row does not fit -> this 32-block type (-> F16 if that fails too).
FALLBACK = {T.IQ4_XS: T.IQ4_NL, T.Q2_K: T.Q4_0, T.Q3_K: T.Q4_0, T.Q4_K: T.Q5_0, T.Q5_K: T.Q5_1, T.Q6_K: T.Q8_0}


def use_more_bits(i: int, n: int) -> bool:
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def expected_type(name: str, ne: list[int], ftype: str, n_layer: int, n_gqa: int,
                  kv_b_index: dict[str, int], tied: bool) -> T:
    """llama.cpp's choice (src/llama-quant.cpp, no imatrix, no overrides) for one deepseek2 tensor of a
    model with n_expert != 8 and arch != FALCON; `tied`: no output.weight, so token_embd follows the
    output rule. `kv_b_index` maps each attn_kv_b name to its position among the attn_v-like tensors
    (i_attention_wv). ffn_down's layer is blk.N (llama.cpp parses the name when n_expert > 1 and
    counts ffn_down tensors otherwise; both give N here)."""
    if len(ne) < 2 or not name.endswith("weight") or "_norm.weight" in name or "ffn_gate_inp.weight" in name:
        return T.F32  # tensor_allows_quantization: not quantized, kept as read (F32 here)
    new = DEFAULT_TYPE[ftype]
    blck = GGML_QUANT_SIZES[new][0]
    if name == "output.weight" or (tied and name == "token_embd.weight"):
        new = T.Q8_0 if ne[0] % blck else (T.Q6_K if new != T.Q8_0 else new)
    elif name == "token_embd.weight":
        pass
    elif "attn_kv_b.weight" in name:  # category_is_attn_v
        i, n = kv_b_index[name], len(kv_b_index)
        if ftype == "q2_k":
            new = T.Q4_K if n_gqa >= 4 else T.Q3_K
        elif ftype == "q3_k_m":
            new = T.Q5_K if i < 2 else T.Q4_K
        elif ftype == "q3_k_l":
            new = T.Q5_K
        elif ftype in ("iq4_nl", "iq4_xs") and n_gqa >= 4:
            new = T.Q5_K
        elif ftype in ("q4_k_m", "q5_k_m") and use_more_bits(i, n):
            new = T.Q6_K
        elif ftype == "q4_k_s" and i < 4:
            new = T.Q5_K
    elif "ffn_down" in name:
        i = int(name.split(".")[1])  # layer_info parses blk.N. (n_expert > 1)
        if ftype == "q2_k":
            new = T.Q3_K
        elif ftype == "q3_k_m":
            new = T.Q5_K if i < n_layer // 16 else T.Q4_K
        elif ftype == "q3_k_l":
            new = T.Q5_K
        elif ftype == "q4_k_m":
            new = T.Q6_K if use_more_bits(i, n_layer) else new
        elif i < n_layer // 8 and ftype in ("iq4_nl", "iq4_xs"):
            new = T.Q5_K
        elif ftype == "q5_k_m" and use_more_bits(i, n_layer):
            new = T.Q6_K
        elif ftype == "q4_k_s" and i < n_layer // 8:
            new = T.Q5_K
    elif "attn_output.weight" in name:
        new = {"q2_k": T.Q3_K, "q3_k_m": T.Q4_K, "q3_k_l": T.Q5_K}.get(ftype, new)
    # (attn_q_a / attn_q_b / attn_kv_a_mqa / attn_k_b / attn_v_b are category OTHER; ffn_gate / ffn_up
    # only change for IQ3_XS.)
    if ne[0] % GGML_QUANT_SIZES[new][0]:
        new = FALLBACK.get(new, new)
        if ne[0] % GGML_QUANT_SIZES[new][0]:
            new = T.F16
    return new


# --------------------------------------------------------------------------- ggml's own dequantization

_GGML = None


def ggml_dequantize(data: np.ndarray, qtype: T) -> np.ndarray:
    """ggml's `dequantize_row_<type>` (libggml-base.so shipped with llama-cpp-python) over raw bytes."""
    global _GGML
    if _GGML is None:
        _GGML = ctypes.CDLL(str(Path(llama_cpp.__file__).parent / "lib" / "libggml-base.so"))
    fn = getattr(_GGML, "dequantize_row_" + qtype.name.lower().replace("_k", "_K"))
    fn.argtypes, fn.restype = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64], None
    raw = np.ascontiguousarray(data, dtype=np.uint8).reshape(-1)
    block, size = GGML_QUANT_SIZES[qtype]
    n = raw.size // size * block
    out = np.empty(n, dtype=np.float32)
    fn(raw.ctypes.data, out.ctypes.data, n)
    return out


def bitwise_mismatch(a: np.ndarray, b: np.ndarray) -> tuple[int, float]:
    """(elements whose f32 bit patterns differ, max |a - b|)."""
    a, b = np.asarray(a, np.float32).reshape(-1), np.asarray(b, np.float32).reshape(-1)
    return int(np.sum(a.view(np.uint32) != b.view(np.uint32))), float(np.max(np.abs(a.astype(np.float64) - b)))


# --------------------------------------------------------------------------- sources


def forward_routes(path: Path, tokens: list[int]) -> tuple[np.ndarray, dict, list[tuple[int, ...]]]:
    """numpy_ref.forward, also returning the expert ids it picks per (MoE layer, token) decision
    (numpy_ref.route wrapped for the call; numpy_ref itself is unchanged)."""
    chosen: list[tuple[int, ...]] = []
    route = numpy_ref.route

    def recording(*args, **kwargs):
        idx, weights = route(*args, **kwargs)
        chosen.append(tuple(sorted(int(i) for i in idx)))
        return idx, weights

    numpy_ref.route = recording
    try:
        logits, stats = numpy_ref.forward(path, tokens)
    finally:
        numpy_ref.route = route
    return logits, stats, chosen


def tokenizer_arrays(n_vocab: int) -> dict[str, list]:
    """A byte-level vocab smaller than 256: the GPT-2 byte characters of bytes 0..n_vocab-2, then "Ġ!"
    (bytes 32, 33) made by the one merge "Ġ !"; all type 1 (normal). gen_fixtures' vocab needs >= 257."""
    chars = bytes_to_unicode()
    tokens = [chars[b] for b in range(n_vocab - 1)] + [chars[32] + chars[33]]
    return {"tokenizer.ggml.tokens": tokens, "tokenizer.ggml.token_type": [gf.TOKEN_NORMAL] * n_vocab,
            "tokenizer.ggml.merges": [f"{chars[32]} {chars[33]}"]}


@dataclass
class Source:
    """An unquantized model: its F32 GGUF, prompt, HF logits and float64 numpy_ref logits."""

    name: str
    path: Path
    tokens: list[int]
    hf: np.ndarray  # HF float32 logits [n_pos, n_vocab]
    ref: np.ndarray  # numpy_ref.forward float64 logits of the F32 GGUF
    margin: float
    routes: list[tuple[int, ...]]  # expert ids chosen per (MoE layer, token), in numpy_ref's order
    n_layer: int
    n_gqa: int
    tied: bool = False
    config: object = None
    n_params: int = 0
    diff_incremental: float = 0.0
    expert_split: float = 0.0
    hf_path: Path | None = None  # committed HF logits file, if any


@torch.no_grad()
def build_source(fx: gf.Fixture, src_dir: Path) -> Source:
    """Build the seeded HF model, write its F32 GGUF into src_dir, check it, run both forwards."""
    model = gf.build_model(fx)
    gf.check_architecture(model, fx)
    cfg = model.config
    tensors = gf.gguf_tensors(model, fx)
    split = gf.check_expert_split(model, tensors)
    metadata, arrays = gf.gguf_metadata(fx, cfg), tokenizer_arrays(cfg.vocab_size)
    path = src_dir / f"{fx.name}.gguf"
    gf.write_gguf(path, metadata, arrays, tensors)
    gf.check_gguf(path, metadata, arrays, tensors)
    tokens = gf.prompt_tokens(fx, cfg.vocab_size)
    full, incremental = gf.run_logits(model, tokens)
    ref, stats, routes = forward_routes(path, tokens)
    diff = float(np.abs(ref - full).max())
    assert diff < TOL_NUMPY_REF, (fx.name, diff)
    n_gqa = 1 if fx.layout == "legacy" else cfg.num_attention_heads  # head_count / head_count_kv
    print(f"{fx.name}: {sum(p.numel() for p in model.parameters()):,} params, max|numpy_ref - HF| {diff:.2e}, "
          f"min routing margin {stats['margin']:.3e}")
    return Source(fx.name, path, tokens, full, ref, stats["margin"], routes, cfg.num_hidden_layers, n_gqa, False, cfg,
                  sum(p.numel() for p in model.parameters()), float(np.abs(full - incremental).max()), split)


def committed_source(name: str) -> Source:
    """A committed split-layout tests/fixtures/<name>.gguf (F32, read only) and its HF expected.bin."""
    fx = next(fx for fx in gf.FIXTURES if fx.name == name)
    assert fx.layout == "split"
    path = gf.FIXTURE_DIR / f"{name}.gguf"
    tokens, hf = numpy_ref.read_expected(gf.FIXTURE_DIR / f"{name}.expected.bin")
    assert tokens == gf.prompt_tokens(fx, fx.config["vocab_size"])
    ref, stats, routes = forward_routes(path, tokens)
    assert float(np.abs(ref - hf).max()) < TOL_NUMPY_REF
    return Source(name, path, tokens, hf, ref, stats["margin"], routes, fx.config["num_hidden_layers"],
                  fx.config["num_attention_heads"], fx.config["tie_word_embeddings"])


# --------------------------------------------------------------------------- quantized files

_LOG: list[str] = []


@llama_cpp.llama_log_callback
def _capture_log(level, text, user_data):
    _LOG.append(text.decode("utf-8", "replace"))


FALLBACK_LINE = re.compile(r"warning: (\S+)\s+- ncols\s+(\d+) not divisible by\s+(\d+) \(required for type\s+(\w+)\)"
                           r"(?: \(WARNING: must use F16 due to unusual shape\))? -> falling back to\s+(\w+)")


@dataclass
class QuantFile:
    """One llama.cpp-quantized GGUF and its checks."""

    source: str
    ftype: str
    ftype_id: int
    path: Path
    expected_path: Path
    types: dict[str, str]  # tensor name -> ggml type name
    n_elements: int
    data_bytes: int
    fallbacks: list[tuple[str, int, str, str]]  # (tensor, ncols, wanted, got) from llama.cpp's log
    err_ref: float  # max |numpy_ref(this) - numpy_ref(F32 source)|
    err_hf: float  # max |numpy_ref(this) - HF f32 logits of the source|
    rms_ref: float  # RMS of numpy_ref(this) - numpy_ref(F32 source)
    routes_changed: int  # (MoE layer, token) decisions that pick other experts than the float model
    argmax_ref: float
    margin: float
    k_fraction: float  # share of quantized weights stored in a 256-block type
    ggml_mismatch: int  # elements where gguf-py and ggml dequantization differ bitwise
    ne0: dict[str, int] = field(default_factory=dict)  # tensor name -> row length

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.types.values():
            out[t] = out.get(t, 0) + 1
        return out


def quantize_file(src: Source, ftype: str, threads: int, kv_b_index: dict[str, int]) -> QuantFile | str:
    """Quantize src with llama.cpp, check every tensor against the source and the rules, write the
    numpy_ref expected logits. Returns the reason instead if llama.cpp refuses."""
    path = OUT_DIR / f"{src.name}.{ftype}.gguf"
    _LOG.clear()
    try:
        ftype_id = quantize(src.path, path, ftype, threads)
    except RuntimeError as e:
        path.unlink(missing_ok=True)
        return f"{e}; llama.cpp log: {''.join(_LOG)[-400:]}"
    log = "".join(_LOG)
    fallbacks = [(m[0], int(m[1]), m[3].upper(), m[4].upper()) for m in FALLBACK_LINE.findall(log)]

    source = gguf.GGUFReader(str(src.path))
    reader = gguf.GGUFReader(str(path))
    assert int(reader.fields["general.file_type"].contents()) == ftype_id
    assert reader.fields["general.architecture"].contents() == "deepseek2"
    src_tensors = {t.name: t for t in source.tensors}
    assert sorted(src_tensors) == sorted(t.name for t in reader.tensors), path
    types, n_el, n_bytes, k_el, q_el, mismatch = {}, 0, 0, 0, 0, 0
    for t in reader.tensors:
        s = src_tensors[t.name]
        ne = [int(d) for d in t.shape]
        assert ne == [int(d) for d in s.shape], t.name
        want = expected_type(t.name, ne, ftype, src.n_layer, src.n_gqa, kv_b_index, src.tied)
        assert t.tensor_type == want, (path.name, t.name, t.tensor_type.name, want.name)
        types[t.name] = t.tensor_type.name
        n_el, n_bytes = n_el + int(t.n_elements), n_bytes + int(t.n_bytes)
        if t.tensor_type == T.F32:
            assert np.array_equal(np.asarray(t.data), np.asarray(s.data)), t.name  # copied as is
            continue
        q_el += int(t.n_elements)
        if t.tensor_type in K_TYPES:
            k_el += int(t.n_elements)
        ours = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).reshape(-1)
        if t.tensor_type != T.F16:
            mismatch += bitwise_mismatch(ours, ggml_dequantize(np.asarray(t.data), t.tensor_type))[0]
        w = np.asarray(s.data, dtype=np.float32).reshape(-1)
        # Loose sanity bound: every block format reproduces the weights to a fraction of the row's range.
        assert np.abs(ours - w).max() <= 0.5 * np.abs(w).max(), (path.name, t.name)
    logits, stats, routes = forward_routes(path, src.tokens)
    expected_path = OUT_DIR / f"{src.name}.{ftype}.expected.bin"
    gf.write_expected(expected_path, src.tokens, logits)
    read_tokens, read_logits = numpy_ref.read_expected(expected_path)
    assert read_tokens == src.tokens and np.array_equal(read_logits, logits.astype(np.float32))
    q = QuantFile(src.name, ftype, ftype_id, path, expected_path, types, n_el, n_bytes, fallbacks,
                  float(np.abs(logits - src.ref).max()), float(np.abs(logits - src.hf).max()),
                  float(np.sqrt(np.mean((logits - src.ref) ** 2))), sum(a != b for a, b in zip(routes, src.routes)),
                  float(np.mean(logits.argmax(-1) == src.ref.argmax(-1))), stats["margin"],
                  k_el / max(q_el, 1), mismatch)
    assert abs(q.err_hf - q.err_ref) < TOL_NUMPY_REF, (q.err_hf, q.err_ref)  # PROVENANCE reports one of them
    print(f"  {path.name}: id {ftype_id}, {path.stat().st_size:,} B, {q.counts}, {len(fallbacks)} fallbacks, "
          f"max|q - f| {q.err_ref:.3e}, rms {q.rms_ref:.3e}, routes changed {q.routes_changed}, argmax {q.argmax_ref:.0%}, margin {q.margin:.2e}, "
          f"256-block share {q.k_fraction:.1%}, gguf-py vs ggml mismatches {mismatch}")
    return q


# --------------------------------------------------------------------------- block vectors


@dataclass
class BlockResult:
    qtype: T
    blocks: Path
    values: Path
    ggml_mismatch: int
    ggml_max_diff: float
    max_abs: float


def f16_bits_finite(rng: np.random.Generator) -> int:
    """A uniformly random f16 bit pattern that is finite (exponent field != 31)."""
    bits = int(rng.integers(0, 1 << 16))
    return bits & ~0x4000 if (bits >> 10) & 0x1F == 0x1F else bits


def make_blocks(qtype: T) -> BlockResult:
    """N_BLOCKS uniform random blocks with their f16 scale fields overwritten: the first ones from
    EXTREME_SCALES, then alternately any finite f16 bit pattern and a realistic small positive scale."""
    block, size = GGML_QUANT_SIZES[qtype]
    rng = np.random.default_rng(BLOCK_SEED + int(qtype))
    raw = rng.integers(0, 256, size=(N_BLOCKS, size), dtype=np.uint8)
    for i in range(N_BLOCKS):
        if i < len(EXTREME_SCALES):
            scales = EXTREME_SCALES[i]
        elif i % 2 == 0:
            scales = (f16_bits_finite(rng), f16_bits_finite(rng))
        else:
            scales = tuple(int(F16(abs(rng.normal()) * 0.01 + 1e-3).view(np.uint16)) for _ in range(2))
        for offset, bits in zip(BLOCK_SCALES[qtype], scales):
            raw[i, offset:offset + 2] = np.frombuffer(np.uint16(bits).astype("<u2").tobytes(), np.uint8)
    values = gguf.quants.dequantize(raw.reshape(-1), qtype).astype("<f4").reshape(-1)
    assert values.size == N_BLOCKS * block and np.isfinite(values).all(), qtype
    ggml = ggml_dequantize(raw, qtype)
    n_diff, max_diff = bitwise_mismatch(values, ggml)
    blocks_path, values_path = BLOCK_DIR / f"{qtype.name}.blocks", BLOCK_DIR / f"{qtype.name}.f32"
    blocks_path.write_bytes(raw.tobytes())
    values_path.write_bytes(values.tobytes())
    return BlockResult(qtype, blocks_path, values_path, n_diff, max_diff, float(np.abs(values).max()))


def blocks_readme(results: list[BlockResult]) -> str:
    lines = [
        "# Block vectors for bit-exact dequantization tests",
        "",
        "Generated by `scripts/gen_kquant_fixtures.py` (see `../PROVENANCE.md`). For each type:",
        "",
        f"- `<TYPE>.blocks`: {N_BLOCKS} consecutive blocks, raw little-endian bytes as stored in a GGUF tensor.",
        f"  Bytes are uniform random (`numpy.random.default_rng({BLOCK_SEED} + ggml type id)`), then every f16",
        "  scale field (d, and dmin / m where the type has one) is overwritten: block 0 d = +0 (dmin 0.5),",
        "  block 1 subnormals (d = 0x0001, dmin = 0x03FF), block 2 d = +65504, dmin = -65504, block 3 the",
        "  reverse, block 4 both -0, block 5 both negative (-0.01, -0.02); later blocks alternate any finite",
        "  f16 bit pattern (exponent != 31) and a small positive scale |N(0,1)| * 0.01 + 0.001.",
        "  All other fields (quants, packed sub-block scales, IQ4_XS scales_h/scales_l) stay random.",
        "- `<TYPE>.f32`: `gguf.quants.dequantize` (gguf-py) of those bytes, little-endian f32, in element order.",
        "",
        "| type | ggml id | elements / block | bytes / block | layout (ggml-common.h) |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        block, size = GGML_QUANT_SIZES[r.qtype]
        lines.append(f"| {r.qtype.name} | {int(r.qtype)} | {block} | {size} | {LAYOUTS[r.qtype]} |")
    lines += [
        "",
        "Element order within a block (which nibble / bit is which element) is that of ggml-quants.c",
        "`dequantize_row_*`, which the `.f32` files reproduce bit for bit (table below).",
        "",
        "f16 fields are IEEE binary16, little-endian; all multi-byte fields are little-endian. The scale",
        "field offsets overwritten above are: " + ", ".join(
            f"{r.qtype.name} {'/'.join(str(o) for o in BLOCK_SCALES[r.qtype])}" for r in results) + ".",
        "",
        "gguf-py vs ggml: the same bytes through ggml's own `dequantize_row_*` (libggml-base.so of",
        "llama-cpp-python 0.3.36):",
        "",
        "| type | elements differing bitwise | max \\|gguf-py - ggml\\| | max \\|value\\| |",
        "|---|---|---|---|",
    ]
    lines += [f"| {r.qtype.name} | {r.ggml_mismatch} / {N_BLOCKS * GGML_QUANT_SIZES[r.qtype][0]} | "
              f"{r.ggml_max_diff:.3g} | {r.max_abs:.6g} |" for r in results]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- PROVENANCE.md


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def short(name: str) -> str:
    """Tensor name without `.weight` (kept for `.bias`)."""
    return name[:-len(".weight")] if name.endswith(".weight") else name


TYPE_ORDER = ["Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_XS", "IQ4_NL", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0",
              "F16", "F32"]


def type_table(files: list[QuantFile]) -> list[str]:
    """Tensor (rows) x file (columns) -> ggml type; F32-only rows folded into one line."""
    names: list[str] = []
    for q in files:
        names += [n for n in q.types if n not in names]
    quantized = [n for n in names if any(q.types.get(n, "F32") != "F32" for q in files)]
    kept = [n for n in names if n not in quantized]
    order = {"token_embd.weight": 0, "output.weight": 1}
    quantized.sort(key=lambda n: (order.get(n, 2), n))
    header = "| tensor (ne[0]) | " + " | ".join(f"{q.source}.{q.ftype}" if q.source != files[0].source else q.ftype
                                                 for q in files) + " |"
    lines = [header, "|---" * (len(files) + 1) + "|"]
    for n in quantized:
        ne0 = next(ne for q in files for name, ne in q.ne0.items() if name == n)
        lines.append(f"| `{short(n)}` ({ne0}) | " + " | ".join(q.types.get(n, "-") for q in files) + " |")
    lines.append(f"| {', '.join(f'`{short(n)}`' for n in kept)} | all F32 (not quantized) |" + " |" * (len(files) - 1))
    return lines


def provenance(sources: dict[str, Source], files: list[QuantFile], refused: dict[str, str],
               blocks: list[BlockResult], extra_files: list[Path], threads: int) -> str:
    kq = sources["kq_aligned"]
    c = kq.config
    sdist = Path.home() / ".cache/tinymla/sdist/llama_cpp_python-0.3.36.tar.gz"
    lines = [
        "# K-quant fixtures: provenance",
        "",
        "Generated by `scripts/gen_kquant_fixtures.py` (do not edit by hand; re-run the script). Quantized by",
        "llama.cpp's own quantizer (`llama_model_quantize`, what `llama-quantize` runs) through llama-cpp-python's",
        "C API (`scripts/peer/quantize_llamacpp.py`), default params: no importance matrix, no overrides,",
        "2 threads by default (`--threads`; every row is quantized on its own, so the files do not depend on",
        "it: 1 and 2 threads give identical bytes). Re-running the script reproduces every file byte for byte.",
        "",
        "## Command",
        "",
        "```",
        "python scripts/gen_kquant_fixtures.py",
        "```",
        "",
        "| component | version |",
        "|---|---|",
        f"| python | {platform.python_version()} ({platform.system()} {platform.machine()}) |",
        *[f"| {p} | {version(p)} |" for p in ("llama-cpp-python", "gguf", "numpy", "torch", "transformers")],
        "",
        "llama.cpp is the tree vendored in the llama-cpp-python 0.3.36 sdist"
        + (f" (`llama_cpp_python-0.3.36.tar.gz` sha256 `{sha256(sdist)}`)" if sdist.exists() else "")
        + "; type rules in `src/llama-quant.cpp`, block layouts in `ggml/src/ggml-common.h`.",
        "",
        "## Models",
        "",
        f"`kq_aligned` (seed {KQ.seed}): a transformers `{type(c).__name__}` built by `gen_fixtures.build_model` (same",
        "initialisation as the other fixtures: initializer_range 0.1, RMSNorm weights 1 + 0.2 N(0,1), router bias",
        "0.1 N(0,1)), written by `gen_fixtures.gguf_tensors` / `gguf_metadata` as an all-F32 GGUF (not committed:",
        f"{kq.path.stat().st_size:,} bytes; `--source-out DIR` keeps it), then quantized. `kq_aligned_legacy` is the",
        "same seed, i.e. the same weights, in the legacy MLA layout (one `attn_kv_b`, head_count_kv = n_heads).",
        "",
        "| key | value |",
        "|---|---|",
        f"| vocab / hidden / layers | {c.vocab_size} / {c.hidden_size} / {c.num_hidden_layers} (first_k_dense_replace "
        f"{c.first_k_dense_replace}: the only layer is MoE) |",
        f"| heads / q_lora / kv_lora | {c.num_attention_heads} / {c.q_lora_rank} / {c.kv_lora_rank} |",
        f"| nope / rope / v head dims | {c.qk_nope_head_dim} / {c.qk_rope_head_dim} / {c.v_head_dim} "
        f"(n_heads * v = {c.num_attention_heads * c.v_head_dim}) |",
        f"| experts | {c.n_routed_experts} routed, top-{c.num_experts_per_tok}, {c.n_shared_experts} shared, "
        f"moe_intermediate {c.moe_intermediate_size}; sigmoid + bias (noaux_tc), groups {c.n_group}/{c.topk_group}, "
        f"norm_topk_prob {c.norm_topk_prob}, scale {c.routed_scaling_factor} |",
        f"| rope | YaRN x{c.rope_parameters['factor']:g} from {c.rope_parameters['original_max_position_embeddings']}, "
        f"mscale 1/1, rope_interleave, max_pos {c.max_position_embeddings} |",
        f"| tied | {c.tie_word_embeddings} |",
        f"| params | {kq.n_params:,} |",
        f"| tokenizer | gpt2 / pre default, {c.vocab_size} tokens: the GPT-2 byte characters of bytes 0..{c.vocab_size - 2}, "
        f"then `Ġ!` (merge `Ġ !`), all type 1; bos 0, eos 1 |",
        f"| prompt | `{kq.tokens}` (gen_fixtures.prompt_tokens, seed {KQ.seed}) |",
        "",
        "Row lengths (GGUF ne[0]) are 256 for every matrix except `attn_k_b` (ne[0] = qk_nope_head_dim = 64; real",
        "DeepSeek files have 128 there, which does not fit a 256-block either, so it falls back as it does here).",
        "One MoE layer, not a dense layer plus a MoE layer: with every K-quant dimension at its minimum (256) a",
        "dense first layer adds about 0.55 M weights (an attention block plus a 256-wide dense FFN) and took the",
        "twelve kq_aligned files from 6.9 MB to 10.7 MB (measured), over the 8 MB budget for this directory.",
        "",
        f"Checks on the F32 source: HF full vs incremental {kq.diff_incremental:.1e}, expert split {kq.expert_split:.1e},",
        f"max |numpy_ref - HF| {np.abs(kq.ref - kq.hf).max():.2e} (split and legacy layouts give the same float64 logits to "
        f"{np.abs(sources['kq_aligned_legacy'].ref - kq.ref).max():.1e}), max |logit| {np.abs(kq.hf).max():.3f}.",
        "`kq_aligned.expected.bin` holds the HF float32 logits of the unquantized model (the usual expected.bin).",
        "",
        "`v3_aligned.<ftype>.gguf` quantize the committed `tests/fixtures/v3_aligned.gguf` (F32; see",
        "`tests/fixtures/PROVENANCE.md`: hidden 64, q/kv LoRA 32, nope 32, n_heads * v 64, ff 96, moe ff 32,",
        "4 experts, 2 layers), whose rows are multiples of 32 but never of 256; its prompt and HF logits are",
        "`tests/fixtures/v3_aligned.expected.bin`. `v3_dense_tied.q4_k_m.gguf` quantizes",
        "`tests/fixtures/v3_dense_tied.gguf` (dense, 2 layers, hidden 30, tied embeddings; no row is a multiple",
        "of 32), so every matrix takes llama.cpp's last resort, F16, inside a Q4_K_M-typed file; its token_embd",
        "follows the output rule (wanted Q8_0) because the embeddings are tied.",
        "",
        "## ftypes",
        "",
        "| ftype | LLAMA_FTYPE id | llama.cpp name | default tensor type |",
        "|---|---|---|---|",
    ]
    used = sorted({q.ftype for q in files} | set(refused), key=lambda f: FTYPES[f])
    lines += [f"| {f} | {FTYPES[f]} | {llama_cpp.llama_ftype_name(FTYPES[f]).decode()} | {DEFAULT_TYPE[f].name} |"
              for f in used]
    if refused:
        lines += ["", "Refused by llama.cpp:", ""] + [f"- {k}: {v}" for k, v in refused.items()]
    else:
        lines += ["", "llama.cpp refused none of them (none of these ftypes needs an importance matrix)."]
    lines += [
        "",
        "## Files and quantization error",
        "",
        "`<stem>.expected.bin` (TMLE v1, same tokens as the source) holds `numpy_ref.forward` of `<stem>.gguf`:",
        "float64 over weights dequantized by gguf-py, written as f32. That is what an engine reading the",
        "quantized file must produce. An engine that dequantizes exactly these values and accumulates in f32",
        "should agree to about 1e-5 (numpy_ref vs HF f32 on the unquantized kq_aligned: 8.9e-6); one that",
        "also quantizes activations (as ggml's Q8_K / Q8_1 dot products do) differs by more.",
        "",
        "- *bpw*: tensor data bits / elements over all tensors (F32 norms, router included).",
        "- *max |q - f|*: max over positions and vocab of |numpy_ref(quantized) - numpy_ref(F32 source)|, both",
        "  float64: the quantization error alone, a guide for tolerances against the float model (against",
        "  the HF f32 logits it is the same to within 1e-4).",
        "- *rms*: root mean square of the same difference.",
        "- *routes changed*: (MoE layer, token) routing decisions of numpy_ref on the quantized file that pick",
        "  other experts than on the float model (out of 20 per MoE layer); each flip moves that token a lot.",
        "- *argmax*: share of positions whose argmax equals the float model's.",
        "- *routing margin*: the smallest gap between chosen and rejected expert scores in numpy_ref on the",
        "  quantized file (an engine computing in f32 could flip a decision closer than ~1e-5).",
        "- *256-block share*: fraction of the quantized (non-F32) weights stored in a 256-element block type.",
        "- *gguf-py = ggml*: elements of all quantized tensors whose gguf-py dequantization differs bitwise from",
        "  ggml's `dequantize_row_*`.",
        "",
        "| file | bytes | bpw | tensor types | fallbacks | max \\|q - f\\| | rms | routes changed | argmax | "
        "routing margin | 256-block share | gguf-py = ggml |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for q in files:
        counts = ", ".join(f"{q.counts[t]} {t}" for t in TYPE_ORDER if t in q.counts)
        moe = np.isfinite(q.margin)
        routes, margin = (q.routes_changed, f"{q.margin:.2e}") if moe else ("no MoE", "no MoE")
        lines.append(f"| `{q.path.name}` | {q.path.stat().st_size:,} | {q.data_bytes * 8 / q.n_elements:.3f} | {counts} | "
                     f"{len(q.fallbacks)} | {q.err_ref:.3e} | {q.rms_ref:.3e} | {routes} | {q.argmax_ref:.0%} | {margin} | "
                     f"{q.k_fraction:.1%} | {'yes' if q.ggml_mismatch == 0 else f'{q.ggml_mismatch} differ'} |")
    lines += [
        "",
        "## Tensor types chosen by llama.cpp",
        "",
        "Each type below is also asserted by the script against an independent transcription of",
        "`llama-quant.cpp`'s rules (`expected_type`): default type of the ftype; `output.weight` -> Q6_K (Q8_0",
        "when ne[0] is not a multiple of the default type's block); `attn_kv_b` is attn_v-like (Q2_K -> Q3_K,",
        "Q3_K_M / Q3_K_L / Q4_K_S -> Q5_K, Q4_K_M / Q5_K_M -> Q6_K via use_more_bits); `ffn_down*` (Q2_K -> Q3_K,",
        "Q3_K_M -> Q4_K, Q3_K_L -> Q5_K, Q4_K_M / Q5_K_M -> Q6_K on use_more_bits layers, i.e. the last layer of",
        "a 1- or 2-layer model); `attn_output` (Q2_K -> Q3_K, Q3_K_M -> Q4_K, Q3_K_L -> Q5_K); `attn_q_a`,",
        "`attn_q_b`, `attn_kv_a_mqa`, `attn_k_b`, `attn_v_b` are category OTHER (default type). Then a row that",
        "is not whole blocks falls back: IQ4_XS -> IQ4_NL, Q2_K / Q3_K -> Q4_0, Q4_K -> Q5_0, Q5_K -> Q5_1,",
        "Q6_K -> Q8_0 (F16 if even that does not fit). 1-D tensors, `*_norm`, `ffn_gate_inp` and",
        "`exp_probs_b.bias` stay F32.",
        "",
        "### kq_aligned, kq_aligned_legacy",
        "",
    ]
    lines += type_table([q for q in files if q.source.startswith("kq_aligned")])
    for name in ("v3_aligned", "v3_dense_tied"):
        lines += ["", f"### {name}", ""]
        lines += type_table([q for q in files if q.source == name])
    lines += ["", "## Fallbacks (llama.cpp's log)", "", "| file | tensor (ncols) -> wanted -> got |", "|---|---|"]
    for q in files:
        if q.fallbacks:
            groups: dict[tuple, list[str]] = {}
            for name, ncols, wanted, got in q.fallbacks:
                groups.setdefault((ncols, wanted, got), []).append(short(name))
            desc = "; ".join(f"{', '.join(f'`{n}`' for n in names)} ({ncols}): {wanted} -> {got}"
                             for (ncols, wanted, got), names in groups.items())
            lines.append(f"| `{q.path.name}` | {desc} |")
    lines += [
        "",
        "## Block vectors",
        "",
        "`blocks/<TYPE>.blocks` and `blocks/<TYPE>.f32`: see `blocks/README.md` (layouts, seeds, forced scales).",
        "gguf-py vs ggml `dequantize_row_*`, elements differing bitwise: "
        + ", ".join(f"{b.qtype.name} {b.ggml_mismatch}" for b in blocks) + ".",
        "",
        "## Source rows",
        "",
        "`kq_aligned.token_embd.f32` (little-endian f32, [64 rows][256]) is `token_embd.weight` of the",
        "unquantized kq_aligned, written by `scripts/gen_kquant_rows.py` (same fixture, seed and writer as this",
        "script; run it after this one). llama.cpp stored those rows as Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL or",
        "IQ4_XS depending on the ftype, so `tests/kquant.rs` checks tinymla's quantizers against llama.cpp's",
        "blocks (`quantizers_reproduce_llama_cpp_s_k_quant_blocks`) without the 3.9 MB F32 source.",
        "",
        "## Files",
        "",
        "| file | bytes | sha256 |",
        "|---|---|---|",
    ]
    rows = OUT_DIR / "kq_aligned.token_embd.f32"  # scripts/gen_kquant_rows.py
    extra_files = extra_files + ([rows] if rows.exists() else [])
    all_files = sorted(extra_files + [p for q in files for p in (q.path, q.expected_path)]
                       + [p for b in blocks for p in (b.blocks, b.values)] + [BLOCK_DIR / "README.md"])
    total = 0
    for p in all_files:
        total += p.stat().st_size
        lines.append(f"| `{p.relative_to(OUT_DIR)}` | {p.stat().st_size:,} | `{sha256(p)}` |")
    lines += ["", f"Total: {total:,} bytes (limit {MAX_TOTAL_BYTES:,}) plus this file.", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source-out", type=Path, help="also keep the F32 kq_aligned GGUFs in DIR")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    start = time.time()
    torch.set_num_threads(1)  # reproducible reductions; the model is tiny
    llama_cpp.llama_backend_init()
    llama_cpp.llama_log_set(_capture_log, ctypes.c_void_p(0))
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    BLOCK_DIR.mkdir(parents=True, exist_ok=True)

    files: list[QuantFile] = []
    refused: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        src_dir = args.source_out or Path(tmp)
        src_dir.mkdir(parents=True, exist_ok=True)
        sources = {fx.name: build_source(fx, src_dir) for fx in (KQ, KQ_LEGACY)}
        kq = sources["kq_aligned"]
        assert np.abs(sources["kq_aligned_legacy"].ref - kq.ref).max() < 1e-9
        hf_path = OUT_DIR / "kq_aligned.expected.bin"
        gf.write_expected(hf_path, kq.tokens, kq.hf)
        sources["v3_aligned"] = committed_source("v3_aligned")
        sources["v3_dense_tied"] = committed_source("v3_dense_tied")
        plan = [("kq_aligned", KQ_FTYPES), ("kq_aligned_legacy", LEGACY_FTYPES), ("v3_aligned", V3_FTYPES),
                ("v3_dense_tied", TIED_FTYPES)]
        for name, ftypes in plan:
            src = sources[name]
            reader = gguf.GGUFReader(str(src.path))
            kv_b = [t.name for t in reader.tensors if "attn_kv_b.weight" in t.name]
            kv_b_index = {n: i for i, n in enumerate(kv_b)}
            print(f"{name}: quantizing with llama.cpp")
            for ftype in ftypes:
                q = quantize_file(src, ftype, args.threads, kv_b_index)
                if isinstance(q, str):
                    refused[f"{name}.{ftype}"] = q
                    print(f"  {name}.{ftype}: REFUSED: {q}")
                    continue
                q.ne0 = {t.name: int(t.shape[0]) for t in gguf.GGUFReader(str(q.path)).tensors}
                files.append(q)
        kq_files = [q for q in files if q.source == "kq_aligned"]
        for q in kq_files:  # the point of kq_aligned: K-quant blocks everywhere they fit
            assert q.k_fraction > 0.9 or q.ftype == "iq4_nl", (q.path.name, q.k_fraction)
        blocks = [make_blocks(t) for t in BLOCK_SCALES]
        (BLOCK_DIR / "README.md").write_text(blocks_readme(blocks))
        text = provenance(sources, files, refused, blocks, [hf_path], args.threads)
    (OUT_DIR / "PROVENANCE.md").write_text(text)
    total = sum(p.stat().st_size for p in OUT_DIR.rglob("*") if p.is_file())
    assert total < MAX_TOTAL_BYTES, f"fixtures too large: {total:,} bytes"
    print(f"wrote {len(files)} quantized files, {len(blocks)} block vectors, {total:,} bytes in "
          f"{time.time() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

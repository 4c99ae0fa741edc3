#!/usr/bin/env python3
"""Generate tinymla's golden fixtures from transformers' own DeepSeek-V2/V3 code.

For every fixture in FIXTURES this script
  1. builds a tiny random-weight `DeepseekV2ForCausalLM` / `DeepseekV3ForCausalLM`
     (float32, eager attention, eager experts, fixed seed) and checks that the
     config produced the intended architecture;
  2. writes `tests/fixtures/<name>.gguf` in llama.cpp's `deepseek2` layout (all F32)
     with gguf's GGUFWriter, and reads it back to check every key and tensor;
  3. runs one causal full forward over 20 token ids and writes the logits to
     `tests/fixtures/<name>.expected.bin` (format below);
  4. re-runs the prompt token by token through a DynamicCache and records
     max |full - incremental|;
  5. recomputes the logits from the GGUF alone with `numpy_ref.py` (float64,
     absorbed MLA) and records max |numpy_ref - expected|;
  6. for the fixtures in SLIDE_SINKS, writes sliding-window-with-attention-sinks
     logits `<name>.slide_c<C>_s<S>.expected.bin` (one full forward with a custom
     4-D additive mask, checked against numpy_ref's streaming ring-cache decode);
  7. for the fixtures in SHIFT_CASES, writes context-shift logits
     `<name>.shift_c<C>_s<S>_d<D>.expected.bin` (token by token through transformers'
     own latent DynamicCache, whose rows are dropped and whose k_pe is rotated again by
     transformers' own RoPE functions at the shifted positions; checked against
     numpy_ref's shifting decode);
  8. writes `<name>.f16.gguf` and `<name>.q8_0.gguf` with the tensor types that
     llama.cpp's convert_hf_to_gguf.py picks for --outtype f16 / q8_0;
and finally writes `tests/fixtures/PROVENANCE.md`.

expected.bin (little-endian): b"TMLE", u32 version = 1, u32 n_pos, u32 n_vocab,
n_pos x u32 token ids, n_pos * n_vocab x f32 logits, row-major [pos][vocab].

Usage (with the reference venv, see scripts/requirements.txt):
    python scripts/gen_fixtures.py [--hf-out DIR]
--hf-out DIR also saves each HF checkpoint to DIR/<name>/ (save_pretrained, with
"scoring_func" and, for V3, "topk_method": "noaux_tc" added to config.json) for
converter tests. Those checkpoints are not committed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
import struct
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import gguf
import numpy as np
import torch
from gguf.vocab import bytes_to_unicode
from transformers import (
    DeepseekV2Config,
    DeepseekV2ForCausalLM,
    DeepseekV3Config,
    DeepseekV3ForCausalLM,
    DynamicCache,
)
from transformers.models.deepseek_v2.modeling_deepseek_v2 import DeepseekV2RMSNorm
from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3RMSNorm

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy_ref  # noqa: E402  (sibling script, reads only the GGUF)

REPO = Path(__file__).resolve().parents[1]
FIXTURE_DIR = REPO / "tests" / "fixtures"
ARCH = "deepseek2"
N_POS = 20
MAX_TOTAL_BYTES = 4_500_000
# Tolerances for the in-script checks (float32 HF vs itself / vs float64 NumPy).
TOL_INCREMENTAL = 1e-4
TOL_NUMPY_REF = 1e-4
# A 4-D mask with the plain causal pattern must reproduce the mask-free forward to this.
TOL_MASK_API = 1e-6
# Every sliding-window row that lost a token must move by more than this (f32 noise is ~1e-6).
MIN_SLIDE_CHANGE = 1e-4

# Sliding window with attention sinks: latent-cache capacity C and the sink counts S per fixture.
SLIDE_CAPACITY = 8
SLIDE_SINKS = {"v3_qlora_grouped": (2, 0), "v2_lite_moe": (2,)}
# Context shift: latent-cache capacity C and (sinks S, tokens dropped per shift D) per fixture:
# half the non-sink rows (each row re-rotated at most once) for S = 0, 1, 4, and D = 1 (a row is
# re-rotated at every token until it is dropped). Two YaRN fixtures (V2's complex-number RoPE,
# V3's interleaved one) and the plain-RoPE one.
SHIFT_CAPACITY = 8
SHIFT_CASES = {name: ((0, 4), (1, 3), (4, 2), (1, 1))
               for name in ("v2_lite_moe", "v3_qlora_grouped", "v3_dense_tied")}

F32, F16, Q8_0 = (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16,
                  gguf.GGMLQuantizationType.Q8_0)
Q4_0, BF16 = gguf.GGMLQuantizationType.Q4_0, gguf.GGMLQuantizationType.BF16
# Quantized copies of every fixture: file suffix -> (convert_hf_to_gguf --outtype, general.file_type).
OUTTYPES = {"f16": (F16, gguf.LlamaFileType.MOSTLY_F16), "q8_0": (Q8_0, gguf.LlamaFileType.MOSTLY_Q8_0)}
# Extra copies for the 32-aligned fixture only (every matrix row is whole blocks there), to test the
# engine's Q4_0 and BF16 paths against gguf's own quantizer.
ALIGNED_OUTTYPES = {"q4_0": (Q4_0, gguf.LlamaFileType.MOSTLY_Q4_0), "bf16": (BF16, gguf.LlamaFileType.MOSTLY_BF16)}
ALIGNED = {"v3_aligned"}

# Settings shared by every fixture. initializer_range 0.1 keeps logits O(1).
COMMON = dict(initializer_range=0.1, attention_bias=False, rms_norm_eps=1e-6, hidden_act="silu")

GATING_SOFTMAX, GATING_SIGMOID = 1, 2  # llama.cpp LLAMA_EXPERT_GATING_FUNC_TYPE_*
TOKEN_NORMAL, TOKEN_UNUSED = 1, 5  # gguf.TokenType


def yarn(factor: float, mscale: float, original: int = 32) -> dict:
    """transformers-5 `rope_parameters` for DeepSeek YaRN (mscale == mscale_all_dim)."""
    return dict(rope_type="yarn", rope_theta=10000.0, factor=factor, original_max_position_embeddings=original,
                beta_fast=32.0, beta_slow=1.0, mscale=mscale, mscale_all_dim=mscale)


@dataclass(frozen=True)
class Fixture:
    """One golden model: HF family, seed, GGUF MLA layout and config overrides."""

    name: str
    family: str  # "v2" or "v3"
    seed: int
    layout: str  # "split" (attn_k_b/attn_v_b) or "legacy" (attn_kv_b)
    config: dict


FIXTURES = [
    Fixture("v2_lite_moe", "v2", 1001, "split", dict(
        vocab_size=320, hidden_size=44, intermediate_size=92, moe_intermediate_size=20, num_hidden_layers=3,
        first_k_dense_replace=1, num_attention_heads=4, q_lora_rank=None, kv_lora_rank=20,
        qk_nope_head_dim=12, qk_rope_head_dim=6, v_head_dim=10, n_routed_experts=6, num_experts_per_tok=2,
        n_shared_experts=2, topk_method="greedy", n_group=1, topk_group=1, routed_scaling_factor=1.0,
        norm_topk_prob=False, rope_parameters=yarn(4.0, 0.707), max_position_embeddings=128,
        tie_word_embeddings=False)),
    Fixture("v3_qlora_grouped", "v3", 1002, "split", dict(
        vocab_size=300, hidden_size=36, intermediate_size=76, moe_intermediate_size=18, num_hidden_layers=3,
        first_k_dense_replace=1, num_attention_heads=3, q_lora_rank=22, kv_lora_rank=20,
        qk_nope_head_dim=10, qk_rope_head_dim=6, v_head_dim=14, n_routed_experts=8, num_experts_per_tok=3,
        n_shared_experts=1, n_group=4, topk_group=2, routed_scaling_factor=2.5, norm_topk_prob=True,
        rope_interleave=True, rope_parameters=yarn(4.0, 1.0, original=4096), max_position_embeddings=16384,
        tie_word_embeddings=False)),
    Fixture("v3_dense_tied", "v3", 1003, "split", dict(
        vocab_size=260, hidden_size=30, intermediate_size=50, num_hidden_layers=2, first_k_dense_replace=2,
        num_attention_heads=2, q_lora_rank=14, kv_lora_rank=14, qk_nope_head_dim=8, qk_rope_head_dim=4,
        v_head_dim=6, rope_parameters=dict(rope_type="default", rope_theta=10000.0), max_position_embeddings=64,
        tie_word_embeddings=True)),
    Fixture("v2_grouped_legacy", "v2", 1004, "legacy", dict(
        vocab_size=280, hidden_size=34, intermediate_size=70, moe_intermediate_size=14, num_hidden_layers=3,
        first_k_dense_replace=1, num_attention_heads=2, q_lora_rank=18, kv_lora_rank=18,
        qk_nope_head_dim=10, qk_rope_head_dim=4, v_head_dim=10, n_routed_experts=6, num_experts_per_tok=2,
        n_shared_experts=1, topk_method="group_limited_greedy", n_group=3, topk_group=1,
        routed_scaling_factor=1.5, norm_topk_prob=False, rope_parameters=yarn(2.0, 1.0),
        max_position_embeddings=64, tie_word_embeddings=False)),
    # Every row length (hidden, q/kv LoRA ranks, nope, nh*v, ff sizes) is a multiple of 32, so the
    # q8_0 copy really holds Q8_0 matrices (and q4_0/bf16 copies exist): the int8/int4 kernels' fixture.
    Fixture("v3_aligned", "v3", 1005, "split", dict(
        vocab_size=288, hidden_size=64, intermediate_size=96, moe_intermediate_size=32, num_hidden_layers=2,
        first_k_dense_replace=1, num_attention_heads=2, q_lora_rank=32, kv_lora_rank=32,
        qk_nope_head_dim=32, qk_rope_head_dim=16, v_head_dim=32, n_routed_experts=4, num_experts_per_tok=2,
        n_shared_experts=1, n_group=2, topk_group=1, routed_scaling_factor=2.5, norm_topk_prob=True,
        rope_interleave=True, rope_parameters=yarn(4.0, 1.0), max_position_embeddings=128,
        tie_word_embeddings=False)),
]


# A long-context golden: a dense V3 with YaRN over LONG_POS tokens (a cache of that many rows
# is cut into attention partitions), its logits kept at LONG_KEEP positions spread over the range.
LONG = Fixture("v3_long", "v3", 1006, "split", dict(
    vocab_size=260, hidden_size=32, intermediate_size=64, num_hidden_layers=2, first_k_dense_replace=2,
    num_attention_heads=2, q_lora_rank=16, kv_lora_rank=32, qk_nope_head_dim=16, qk_rope_head_dim=16,
    v_head_dim=16, rope_interleave=True, rope_parameters=yarn(4.0, 1.0, original=1024),
    max_position_embeddings=4096, tie_word_embeddings=False))
LONG_POS = 2048
LONG_KEEP = list(range(0, LONG_POS, 64)) + [LONG_POS - 1]


# --------------------------------------------------------------------------- HF model


def build_model(fx: Fixture) -> torch.nn.Module:
    """Seeded HF model in eval mode; RMSNorm weights 1 + 0.2 N(0,1), V3 router bias 0.1 N(0,1)."""
    config_cls, model_cls, norm_cls = {
        "v2": (DeepseekV2Config, DeepseekV2ForCausalLM, DeepseekV2RMSNorm),
        "v3": (DeepseekV3Config, DeepseekV3ForCausalLM, DeepseekV3RMSNorm),
    }[fx.family]
    torch.manual_seed(fx.seed)
    # MLA expands K/V to every head, so num_key_value_heads must equal the head count. V3Config
    # defaults it to 128 (not None), which silently breaks any model with fewer than 128 heads.
    config = config_cls(**COMMON, **fx.config, num_key_value_heads=fx.config["num_attention_heads"],
                        attn_implementation="eager", experts_implementation="eager")
    model = model_cls(config).to(torch.float32)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, norm_cls):
                module.weight.copy_(1.0 + 0.2 * torch.randn_like(module.weight))
        if fx.family == "v3":
            for layer in model.model.layers:
                if hasattr(layer.mlp, "gate"):
                    bias = layer.mlp.gate.e_score_correction_bias
                    bias.copy_(0.1 * torch.randn_like(bias))
    return model.eval()


def hf_kq_scale(cfg) -> float:
    """Softmax scale expected from the config: (nope+rope)^-0.5 * mscale(factor, mscale_all_dim)^2."""
    scale = (cfg.qk_nope_head_dim + cfg.qk_rope_head_dim) ** -0.5
    rope = cfg.rope_parameters
    if rope["rope_type"] == "yarn" and rope["factor"] > 1:
        mscale = 0.1 * rope["mscale_all_dim"] * math.log(rope["factor"]) + 1.0
        scale *= mscale * mscale
    return scale


def check_architecture(model, fx: Fixture) -> None:
    """Assert the config built what the fixture means: MoE layers, q path, tying, rope, eps."""
    cfg = model.config
    layers = model.model.layers
    moe_layers = [i for i, layer in enumerate(layers) if hasattr(layer.mlp, "experts")]
    assert moe_layers == list(range(cfg.first_k_dense_replace, cfg.num_hidden_layers)), moe_layers
    for layer in layers:
        attn = layer.self_attn
        assert (attn.q_proj is not None) == (cfg.q_lora_rank is None)
        assert abs(attn.scaling - hf_kq_scale(cfg)) < 1e-12, (attn.scaling, hf_kq_scale(cfg))
        # q_a/kv_a norms use a hard-coded 1e-6 in transformers; GGUF has one eps for all norms.
        assert attn.kv_a_layernorm.variance_epsilon == cfg.rms_norm_eps
    tied = model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert tied == cfg.tie_word_embeddings, "tie_word_embeddings not honoured"
    # GGUF stores no mscale; the rope cos/sin factor must therefore be 1.
    assert model.model.rotary_emb.attention_scaling == 1.0
    assert cfg._attn_implementation == "eager" and cfg._experts_implementation == "eager"
    if fx.family == "v3":
        assert cfg.rope_interleave


def prompt_tokens(fx: Fixture, n_vocab: int) -> list[int]:
    """N_POS ids from a seeded RNG, with 0 and n_vocab-1 placed at seeded positions."""
    rng = np.random.default_rng(fx.seed)
    ids = rng.integers(0, n_vocab, size=N_POS)
    first, last = rng.choice(N_POS, size=2, replace=False)
    ids[first], ids[last] = 0, n_vocab - 1
    return [int(t) for t in ids]


@torch.no_grad()
def run_logits(model, tokens: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(full causal forward logits, token-by-token DynamicCache logits), both [n_pos, n_vocab] f32."""
    ids = torch.tensor([tokens], dtype=torch.long)
    full = model(input_ids=ids, use_cache=False).logits[0]
    cache = DynamicCache(config=model.config)
    steps = [model(input_ids=ids[:, t:t + 1], past_key_values=cache, use_cache=True).logits[0, -1]
             for t in range(len(tokens))]
    return full.float().numpy(), torch.stack(steps).float().numpy()


# --------------------------------------------------------------------------- GGUF


def gguf_tensors(model, fx: Fixture) -> dict[str, np.ndarray]:
    """Map the HF state dict to deepseek2 GGUF tensors (torch [out, in] order, F32, contiguous).

    transformers 5 holds routed experts fused: `mlp.experts.gate_up_proj` [E, 2I, H]
    (gate rows first, then up) and `mlp.experts.down_proj` [E, H, I].
    """
    cfg = model.config
    sd = {k: v.detach().to(torch.float32).numpy() for k, v in model.state_dict().items()}
    used: set[str] = set()
    out: dict[str, np.ndarray] = {}

    def take(hf_name: str) -> np.ndarray:
        used.add(hf_name)
        return sd[hf_name]

    def put(name: str, array: np.ndarray) -> None:
        out[name] = np.ascontiguousarray(array, dtype=np.float32)

    nh, dn, dv, rank = cfg.num_attention_heads, cfg.qk_nope_head_dim, cfg.v_head_dim, cfg.kv_lora_rank
    n_ff_exp = cfg.moe_intermediate_size
    put("token_embd.weight", take("model.embed_tokens.weight"))
    put("output_norm.weight", take("model.norm.weight"))
    if cfg.tie_word_embeddings:
        used.add("lm_head.weight")  # the same storage as embed_tokens (checked in check_architecture)
    else:
        put("output.weight", take("lm_head.weight"))

    for il in range(cfg.num_hidden_layers):
        hf, blk = f"model.layers.{il}.", f"blk.{il}."
        put(blk + "attn_norm.weight", take(hf + "input_layernorm.weight"))
        if cfg.q_lora_rank is None:
            put(blk + "attn_q.weight", take(hf + "self_attn.q_proj.weight"))
        else:
            put(blk + "attn_q_a.weight", take(hf + "self_attn.q_a_proj.weight"))
            put(blk + "attn_q_a_norm.weight", take(hf + "self_attn.q_a_layernorm.weight"))
            put(blk + "attn_q_b.weight", take(hf + "self_attn.q_b_proj.weight"))
        put(blk + "attn_kv_a_mqa.weight", take(hf + "self_attn.kv_a_proj_with_mqa.weight"))
        put(blk + "attn_kv_a_norm.weight", take(hf + "self_attn.kv_a_layernorm.weight"))
        kv_b = take(hf + "self_attn.kv_b_proj.weight")  # [nh*(dn+dv), R]
        if fx.layout == "split":
            per_head = kv_b.reshape(nh, dn + dv, rank)
            put(blk + "attn_k_b.weight", per_head[:, :dn, :].transpose(0, 2, 1))  # [nh, R, dn]
            put(blk + "attn_v_b.weight", per_head[:, dn:, :])  # [nh, dv, R]
        else:
            put(blk + "attn_kv_b.weight", kv_b)
        put(blk + "attn_output.weight", take(hf + "self_attn.o_proj.weight"))
        put(blk + "ffn_norm.weight", take(hf + "post_attention_layernorm.weight"))
        if il < cfg.first_k_dense_replace:
            for proj in ("gate", "up", "down"):
                put(blk + f"ffn_{proj}.weight", take(hf + f"mlp.{proj}_proj.weight"))
            continue
        put(blk + "ffn_gate_inp.weight", take(hf + "mlp.gate.weight"))
        if fx.family == "v3":
            put(blk + "exp_probs_b.bias", take(hf + "mlp.gate.e_score_correction_bias"))
        gate_up = take(hf + "mlp.experts.gate_up_proj")
        assert gate_up.shape == (cfg.n_routed_experts, 2 * n_ff_exp, cfg.hidden_size), gate_up.shape
        put(blk + "ffn_gate_exps.weight", gate_up[:, :n_ff_exp, :])  # [E, I, H]
        put(blk + "ffn_up_exps.weight", gate_up[:, n_ff_exp:, :])  # [E, I, H]
        put(blk + "ffn_down_exps.weight", take(hf + "mlp.experts.down_proj"))  # [E, H, I]
        for proj in ("gate", "up", "down"):
            put(blk + f"ffn_{proj}_shexp.weight", take(hf + f"mlp.shared_experts.{proj}_proj.weight"))

    unused = set(sd) - used
    assert not unused, f"state-dict entries not written to GGUF: {sorted(unused)}"
    return out


@torch.no_grad()
def check_expert_split(model, tensors: dict[str, np.ndarray]) -> float:
    """Compare each HF expert (called through its own forward) with the split GGUF weights.

    Returns the max abs difference over all MoE layers and experts.
    """
    cfg = model.config
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(5, cfg.hidden_size, generator=gen)
    worst = 0.0
    for il, layer in enumerate(model.model.layers):
        if not hasattr(layer.mlp, "experts"):
            continue
        blk = f"blk.{il}."
        for e in range(cfg.n_routed_experts):
            hf = layer.mlp.experts(x, torch.full((5, 1), e), torch.ones(5, 1)).numpy()
            gate, up, down = (tensors[blk + f"ffn_{n}_exps.weight"][e].astype(np.float64) for n in ("gate", "up", "down"))
            xd = x.numpy().astype(np.float64)
            ref = (numpy_ref.silu(xd @ gate.T) * (xd @ up.T)) @ down.T
            worst = max(worst, float(np.abs(hf - ref).max()))
    assert worst < 1e-5, f"expert split mismatch {worst}"
    return worst


def gguf_metadata(fx: Fixture, cfg) -> list[tuple[str, str, object]]:
    """(key, type, value) for every scalar metadata key, in write order."""
    a = ARCH + "."
    split = fx.layout == "split"
    nope, rope, v = cfg.qk_nope_head_dim, cfg.qk_rope_head_dim, cfg.v_head_dim
    kv = [
        ("general.name", "str", fx.name),
        (a + "context_length", "u32", cfg.max_position_embeddings),
        (a + "embedding_length", "u32", cfg.hidden_size),
        (a + "block_count", "u32", cfg.num_hidden_layers),
        (a + "feed_forward_length", "u32", cfg.intermediate_size),
        (a + "attention.head_count", "u32", cfg.num_attention_heads),
        (a + "attention.head_count_kv", "u32", 1 if split else cfg.num_attention_heads),
        (a + "attention.layer_norm_rms_epsilon", "f32", cfg.rms_norm_eps),
        (a + "rope.freq_base", "f32", cfg.rope_parameters["rope_theta"]),
        (a + "rope.dimension_count", "u32", rope),
    ]
    if cfg.q_lora_rank is not None:
        kv.append((a + "attention.q_lora_rank", "u32", cfg.q_lora_rank))
    kv.append((a + "attention.kv_lora_rank", "u32", cfg.kv_lora_rank))
    if split:
        kv += [
            (a + "attention.key_length", "u32", cfg.kv_lora_rank + rope),
            (a + "attention.value_length", "u32", cfg.kv_lora_rank),
            (a + "attention.key_length_mla", "u32", nope + rope),
            (a + "attention.value_length_mla", "u32", v),
        ]
    else:
        kv += [
            (a + "attention.key_length", "u32", nope + rope),
            (a + "attention.value_length", "u32", v),
        ]
    kv += [
        (a + "leading_dense_block_count", "u32", cfg.first_k_dense_replace),
        (a + "vocab_size", "u32", cfg.vocab_size),
    ]
    if cfg.first_k_dense_replace < cfg.num_hidden_layers:
        kv += [
            (a + "expert_feed_forward_length", "u32", cfg.moe_intermediate_size),
            (a + "expert_count", "u32", cfg.n_routed_experts),
            (a + "expert_used_count", "u32", cfg.num_experts_per_tok),
            (a + "expert_shared_count", "u32", cfg.n_shared_experts),
            (a + "expert_weights_scale", "f32", cfg.routed_scaling_factor),
        ]
        if cfg.norm_topk_prob:
            kv.append((a + "expert_weights_norm", "bool", True))
        kv += [
            (a + "expert_gating_func", "u32", GATING_SIGMOID if fx.family == "v3" else GATING_SOFTMAX),
            (a + "expert_group_count", "u32", cfg.n_group),
            (a + "expert_group_used_count", "u32", cfg.topk_group),
        ]
    else:
        # Dense only. llama.cpp requires the first two keys even without MoE layers.
        kv += [(a + k, "u32", 0) for k in ("expert_feed_forward_length", "expert_shared_count",
                                          "expert_count", "expert_used_count")]
    rp = cfg.rope_parameters
    if rp["rope_type"] == "yarn":
        kv += [
            (a + "rope.scaling.type", "str", "yarn"),
            (a + "rope.scaling.factor", "f32", rp["factor"]),
            (a + "rope.scaling.original_context_length", "u32", rp["original_max_position_embeddings"]),
            (a + "rope.scaling.yarn_beta_fast", "f32", rp["beta_fast"]),
            (a + "rope.scaling.yarn_beta_slow", "f32", rp["beta_slow"]),
            # llama.cpp convention: 0.1 * mscale_all_dim (the loader divides by 0.1 again).
            (a + "rope.scaling.yarn_log_multiplier", "f32", 0.1 * rp["mscale_all_dim"]),
        ]
    else:
        assert rp["rope_type"] == "default", rp
    kv += [
        ("tokenizer.ggml.model", "str", "gpt2"),
        ("tokenizer.ggml.pre", "str", "default"),
        ("tokenizer.ggml.bos_token_id", "u32", 0),
        ("tokenizer.ggml.eos_token_id", "u32", 1),
    ]
    return kv


def tokenizer_arrays(n_vocab: int) -> dict[str, list]:
    """Minimal GPT-2 byte-level vocab: 256 byte chars, "Ġt" at 256, then [PAD{id}] (unused)."""
    byte_chars = bytes_to_unicode()
    tokens = [byte_chars[b] for b in range(256)] + ["Ġt"] + [f"[PAD{i}]" for i in range(257, n_vocab)]
    types = [TOKEN_NORMAL] * 257 + [TOKEN_UNUSED] * (n_vocab - 257)
    return {"tokenizer.ggml.tokens": tokens, "tokenizer.ggml.token_type": types, "tokenizer.ggml.merges": ["Ġ t"]}


def write_gguf(path: Path, metadata, arrays: dict[str, list], tensors: dict[str, np.ndarray],
               raw_dtypes: dict[str, gguf.GGMLQuantizationType] | None = None) -> None:
    """Write one GGUF. `tensors` hold the stored payloads (F32 / F16 arrays, or Q8_0 bytes as
    `gguf.quants.quantize` returns them); `raw_dtypes` gives each tensor's type (None: from dtype)."""
    writer = gguf.GGUFWriter(str(path), ARCH)  # also writes general.architecture; alignment stays 32
    adders = {"u32": writer.add_uint32, "f32": writer.add_float32, "bool": writer.add_bool, "str": writer.add_string}
    for key, kind, value in metadata:
        adders[kind](key, value)
    for key, values in arrays.items():
        writer.add_array(key, values)
    for name, array in tensors.items():
        writer.add_tensor(name, array, raw_dtype=None if raw_dtypes is None else raw_dtypes[name])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def check_gguf(path: Path, metadata, arrays: dict[str, list], tensors: dict[str, np.ndarray],
               stored: dict[str, tuple[np.ndarray, gguf.GGMLQuantizationType]] | None = None) -> None:
    """Read the file back: every key/value, tensor name, ggml shape (ne = reversed torch shape) and byte.

    `tensors` are the F32 weights. For a quantized copy, `stored` maps each name to the (payload, type)
    that was written: the type and the raw bytes must match, and the dequantized values must be the
    float16 rounding (F16) or lie within 0.6 * d of the F32 weight (Q8_0, d = block absmax / 127).
    """
    reader = gguf.GGUFReader(str(path))
    fields = reader.fields
    assert fields["general.architecture"].contents() == ARCH
    for key, kind, value in metadata:
        got = fields[key].contents()
        ok = math.isclose(got, value, rel_tol=1e-7) if kind == "f32" else got == value
        assert ok, (key, got, value)
    for key, values in arrays.items():
        assert fields[key].contents() == values, key
    expected_keys = {k for k, _, _ in metadata} | set(arrays) | {"general.architecture"}
    extra = {k for k in fields if not k.startswith("GGUF.")} - expected_keys
    assert not extra, f"unexpected keys {extra}"
    assert [t.name for t in reader.tensors] == list(tensors)
    for t in reader.tensors:
        array = tensors[t.name]
        qtype = F32 if stored is None else stored[t.name][1]
        assert t.tensor_type == qtype, (t.name, t.tensor_type, qtype)
        assert [int(d) for d in t.shape] == list(reversed(array.shape)), (t.name, t.shape, array.shape)
        assert t.data_offset % 32 == 0
        if qtype == F32:
            assert np.array_equal(np.asarray(t.data).reshape(array.shape), array), t.name
            continue
        assert np.asarray(t.data).tobytes() == stored[t.name][0].tobytes(), t.name
        values = gguf.quants.dequantize(np.asarray(t.data), qtype).reshape(array.shape)
        if qtype == F16:
            assert np.array_equal(values, array.astype(np.float16).astype(np.float32)), t.name
        elif qtype == BF16:
            assert (np.abs(values - array) <= np.abs(array) * 2.0 ** -8 + 1e-30).all(), t.name
        else:
            # Q8_0: d = absmax / 127, |err| <= d / 2 (+ f16 rounding of d); Q4_0: d = absmax / 8.
            assert qtype in (Q8_0, Q4_0), (t.name, qtype)
            blocks, err = array.reshape(-1, 32), np.abs(values - array).reshape(-1, 32)
            d = np.abs(blocks).max(axis=-1, keepdims=True) / (127 if qtype == Q8_0 else 8)
            assert (err <= 0.6 * d + 1e-12).all() if qtype == Q8_0 else (err <= 1.01 * d + 1e-12).all(), t.name


def write_expected(path: Path, tokens: list[int], logits: np.ndarray) -> None:
    n_pos, n_vocab = logits.shape
    with open(path, "wb") as f:
        f.write(struct.pack("<4sIII", b"TMLE", 1, n_pos, n_vocab))
        f.write(struct.pack(f"<{n_pos}I", *tokens))
        f.write(np.ascontiguousarray(logits, dtype="<f4").tobytes())


def write_expected_at(path: Path, tokens: list[int], positions: list[int], logits: np.ndarray) -> None:
    """TMLE v2: b"TMLE", u32 2, u32 n_tokens, u32 n_pos, u32 n_vocab, the token ids, the positions
    whose logits are kept, then those logits [n_pos][n_vocab] f32."""
    n_pos, n_vocab = logits.shape
    assert n_pos == len(positions)
    with open(path, "wb") as f:
        f.write(struct.pack("<4sIIII", b"TMLE", 2, len(tokens), n_pos, n_vocab))
        f.write(struct.pack(f"<{len(tokens)}I", *tokens))
        f.write(struct.pack(f"<{n_pos}I", *positions))
        f.write(np.ascontiguousarray(logits, dtype="<f4").tobytes())


@dataclass
class LongResult:
    """The long-context golden and its checks."""

    n_params: int
    files: list[Path]
    max_logit: float
    diff_numpy: float  # max |numpy_ref.forward - HF| over the kept positions
    argmax_numpy: float


@torch.no_grad()
def generate_long() -> LongResult:
    """`v3_long.gguf` and `v3_long.expected_at.bin`: one causal forward over LONG_POS seeded ids,
    logits kept at LONG_KEEP, checked against numpy_ref's float64 forward there."""
    fx = LONG
    model = build_model(fx)
    check_architecture(model, fx)
    cfg = model.config
    rng = np.random.default_rng(fx.seed)
    tokens = [int(t) for t in rng.integers(0, cfg.vocab_size, size=LONG_POS)]
    full = model(input_ids=torch.tensor([tokens]), use_cache=False).logits[0].float().numpy()
    kept = full[LONG_KEEP]
    tensors = gguf_tensors(model, fx)
    metadata, arrays = gguf_metadata(fx, cfg), tokenizer_arrays(cfg.vocab_size)
    gguf_path = FIXTURE_DIR / f"{fx.name}.gguf"
    write_gguf(gguf_path, metadata, arrays, tensors)
    check_gguf(gguf_path, metadata, arrays, tensors)
    expected_path = FIXTURE_DIR / f"{fx.name}.expected_at.bin"
    write_expected_at(expected_path, tokens, LONG_KEEP, kept)
    read_tokens, read_positions, read_logits = numpy_ref.read_expected_at(expected_path)
    assert read_tokens == tokens and read_positions == LONG_KEEP and np.array_equal(read_logits, kept)
    ref, _ = numpy_ref.forward(gguf_path, tokens)
    diff = float(np.abs(ref[LONG_KEEP] - kept).max())
    assert diff < TOL_NUMPY_REF, diff
    argmax = float(np.mean(ref[LONG_KEEP].argmax(-1) == kept.argmax(-1)))
    print(f"{fx.name}: {LONG_POS} tokens, logits kept at {len(LONG_KEEP)} positions, "
          f"max|numpy_ref - HF| {diff:.2e}, argmax agree {argmax:.0%}")
    return LongResult(sum(p.numel() for p in model.parameters()), [gguf_path, expected_path],
                      float(np.abs(kept).max()), diff, argmax)


def long_section(r: LongResult) -> list[str]:
    """PROVENANCE.md: the long-context golden."""
    return [
        "",
        "## Long context",
        "",
        f"`{LONG.name}.gguf`: a dense DeepSeek-V3 (seed {LONG.seed}, {r.n_params:,} parameters: vocab 260,",
        "hidden 32, 2 dense layers, 2 heads, q LoRA 16, kv LoRA 32, nope/rope/v 16/16/16, YaRN x4 from 1024,",
        f"interleaved RoPE, max_pos 4096), built like the others. `{LONG.name}.expected_at.bin` (TMLE v2): one",
        f"causal forward over {LONG_POS} ids from `numpy.random.default_rng({LONG.seed}).integers(0, 260)`, the",
        f"logits kept at positions {LONG_KEEP[0]}, {LONG_KEEP[1]}, ..., {LONG_KEEP[-2]} (every 64th) and {LONG_KEEP[-1]}.",
        f"max |logit| {r.max_logit:.4f}; max |numpy_ref.forward - expected| over those positions {r.diff_numpy:.2e},",
        f"argmax agree {r.argmax_numpy:.0%}. Dense on purpose: over 2,048 positions a tiny random MoE meets",
        "routing near-ties, which f32 rounding alone would flip.",
    ]


# --------------------------------------------------------------------------- sliding window


def retained(i: int, capacity: int, n_sink: int) -> list[int]:
    """Tokens that token i attends to (its own row included) with a latent cache of `capacity` rows
    that keeps the first `n_sink` tokens and overwrites the oldest of the rest once full."""
    if i < capacity:
        return list(range(i + 1))
    return list(range(n_sink)) + list(range(i - (capacity - n_sink) + 1, i + 1))


def slide_allow(n_pos: int, capacity: int, n_sink: int) -> np.ndarray:
    """[n_pos, n_pos] bool, row i = retained(i); checked against numpy_ref's ring-slot arithmetic."""
    allow = np.zeros((n_pos, n_pos), dtype=bool)
    occupant = [-1] * capacity  # token id held by each ring slot, as numpy_ref.forward_ring fills it
    for i in range(n_pos):
        allow[i, retained(i, capacity, n_sink)] = True
        occupant[numpy_ref.ring_slot(i, capacity, n_sink)] = i
        assert sorted(o for o in occupant if o >= 0) == retained(i, capacity, n_sink), (i, occupant)
        assert allow[i].sum() == min(i + 1, capacity)
    return allow


def additive_mask(allow: np.ndarray) -> torch.Tensor:
    """[1, 1, T, T] float32: 0 where allowed, finfo(float32).min where blocked, like transformers'
    own eager mask. A 4-D mask reaches eager attention as-is and is ADDED to the scores, so it must
    be additive: a boolean 4-D mask would add 1.0 to allowed scores and block nothing."""
    blocked = torch.tensor(~allow)
    return torch.zeros(allow.shape).masked_fill(blocked, torch.finfo(torch.float32).min)[None, None]


@torch.no_grad()
def run_masked(model, tokens: list[int], mask: torch.Tensor) -> np.ndarray:
    """One full forward (no cache) with a custom 4-D attention mask and position_ids 0..T-1."""
    ids = torch.tensor([tokens], dtype=torch.long)
    positions = torch.arange(len(tokens))[None]
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False)
    return out.logits[0].float().numpy()


@dataclass
class SlideResult:
    """One sliding-window expected file and its checks."""

    n_sink: int
    path: Path
    first_diff: int  # first position whose logits differ from expected.bin by more than TOL_MASK_API
    noise_before: float  # max |slide - plain| over positions < C (f32 rounding only)
    min_change: float  # min over positions >= C of max |slide - plain|
    max_change: float  # max |slide - plain|
    diff_numpy: float  # max |numpy_ref.forward_ring - slide|
    argmax_numpy: float


def check_mask_api(model, tokens: list[int], full: np.ndarray) -> dict[str, float]:
    """Prove that transformers honours a custom 4-D mask: the causal pattern passed as an additive
    float mask must reproduce the mask-free forward. Also records what a boolean mask does."""
    causal = np.tril(np.ones((len(tokens), len(tokens)), dtype=bool))
    additive = float(np.abs(run_masked(model, tokens, additive_mask(causal)) - full).max())
    boolean = float(np.abs(run_masked(model, tokens, torch.tensor(causal)[None, None]) - full).max())
    assert additive <= TOL_MASK_API, f"4-D additive causal mask not honoured: {additive}"
    return {"additive": additive, "boolean": boolean}


def write_slide(model, fx: Fixture, tokens: list[int], full: np.ndarray, gguf_path: Path, n_sink: int) -> SlideResult:
    """`<name>.slide_c<C>_s<S>.expected.bin`: the streaming ring-cache logits as one masked forward."""
    capacity = SLIDE_CAPACITY
    logits = run_masked(model, tokens, additive_mask(slide_allow(len(tokens), capacity, n_sink)))
    change = np.abs(logits - full).max(axis=-1)  # per position
    assert (change[:capacity] <= TOL_MASK_API).all(), change  # nothing evicted yet: plain causal rows
    assert change[capacity:].min() > MIN_SLIDE_CHANGE, change  # every later row lost a token
    path = FIXTURE_DIR / f"{fx.name}.slide_c{capacity}_s{n_sink}.expected.bin"
    write_expected(path, tokens, logits)
    read_tokens, read_logits = numpy_ref.read_expected(path)
    assert read_tokens == tokens and np.array_equal(read_logits, logits)
    ring, _ = numpy_ref.forward_ring(gguf_path, tokens, capacity, n_sink)
    diff_numpy = float(np.abs(ring - logits).max())
    assert diff_numpy < TOL_NUMPY_REF, diff_numpy
    first_diff = int(np.nonzero(change > TOL_MASK_API)[0][0])
    assert first_diff == capacity, first_diff
    return SlideResult(n_sink, path, first_diff, float(change[:capacity].max()), float(change[capacity:].min()),
                       float(change.max()), diff_numpy, float(np.mean(ring.argmax(-1) == logits.argmax(-1))))


# --------------------------------------------------------------------------- context shift


def rope_key(model, k_raw: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """k_pe [1, 1, L, dr] rotated for `positions` [1, L] exactly as the model's attention does it:
    the model's own rotary embedding and its module's own rotation function."""
    attn = model.model.layers[0].self_attn
    module = sys.modules[type(attn).__module__]
    emb = model.model.rotary_emb(k_raw, positions)
    dummy_q = torch.zeros_like(k_raw)
    if isinstance(model.config, DeepseekV2Config):
        return module.apply_rotary_emb(dummy_q, k_raw, emb)[1]
    if model.config.rope_interleave:
        return module.apply_rotary_pos_emb_interleave(dummy_q, k_raw, *emb)[1]
    return module.apply_rotary_pos_emb(dummy_q, k_raw, *emb)[1]


@torch.no_grad()
def run_shifted(model, tokens: list[int], capacity: int, n_sink: int, discard: int) -> tuple[np.ndarray, int]:
    """Logits [T, vocab] of a token-by-token decode whose latent cache of `capacity` rows shifts
    when full: slots n_sink .. n_sink + discard - 1 are dropped, the later rows move down, and
    slot i always holds position i. transformers 5.23 caches exactly the latent pair per layer
    (keys = normed c_kv [1, 1, L, R], values = rotated k_pe [1, 1, L, dr]); a shift slices both
    and replaces the values with each kept token's unrotated k_pe (captured from
    kv_a_proj_with_mqa by a hook) rotated for its new slot by `rope_key`. Returns the logits and
    the number of shifts."""
    layers = model.model.layers
    kv_lora = model.config.kv_lora_rank
    raw: list[list[torch.Tensor]] = [[] for _ in layers]  # per layer, per token: [1, 1, 1, dr]

    def capture(il):
        return lambda _mod, _inp, out: raw[il].append(out[..., kv_lora:].reshape(1, 1, 1, -1).clone())

    hooks = [layer.self_attn.kv_a_proj_with_mqa.register_forward_hook(capture(il))
             for il, layer in enumerate(layers)]
    cache, order, logits, shifts = DynamicCache(config=model.config), [], [], 0
    try:
        for t, token in enumerate(tokens):
            if len(order) == capacity:
                keep = list(range(n_sink)) + list(range(n_sink + discard, capacity))
                order = [order[j] for j in keep]
                positions = torch.arange(len(order))[None]
                for il, layer in enumerate(cache.layers):
                    layer.keys = layer.keys[:, :, keep].contiguous()
                    k_raw = torch.cat([raw[il][i] for i in order], dim=2)
                    layer.values = rope_key(model, k_raw, positions).contiguous()
                shifts += 1
            assert cache.get_seq_length() == len(order)
            out = model(input_ids=torch.tensor([[token]]), position_ids=torch.tensor([[len(order)]]),
                        past_key_values=cache, use_cache=True)
            order.append(t)
            logits.append(out.logits[0, -1].float().numpy())
    finally:
        for h in hooks:
            h.remove()
    return np.stack(logits), shifts


@dataclass
class ShiftResult:
    """One context-shift expected file and its checks."""

    n_sink: int
    discard: int
    path: Path
    shifts: int
    noise_before: float  # max |shift - plain| over positions < C
    min_change: float  # min over positions >= C of max |shift - plain|
    min_vs_slide: float  # min over positions >= C of max |shift - ring slide|, same sinks
    diff_numpy: float  # max |numpy_ref.forward_shift - shift|
    argmax_numpy: float


def write_shift(model, fx: Fixture, tokens: list[int], full: np.ndarray, gguf_path: Path,
                n_sink: int, discard: int) -> ShiftResult:
    """`<name>.shift_c<C>_s<S>_d<D>.expected.bin`, checked three ways: before the first shift it
    is the plain forward; after, it differs from the plain forward and from the ring slide (so a
    test can tell them apart); and numpy_ref's float64 shifting decode agrees."""
    capacity = SHIFT_CAPACITY
    logits, shifts = run_shifted(model, tokens, capacity, n_sink, discard)
    assert shifts == 1 + (len(tokens) - capacity - 1) // discard, shifts
    change = np.abs(logits - full).max(axis=-1)
    assert (change[:capacity] <= TOL_INCREMENTAL).all(), change
    assert change[capacity:].min() > MIN_SLIDE_CHANGE, change
    ring = run_masked(model, tokens, additive_mask(slide_allow(len(tokens), capacity, n_sink)))
    vs_slide = np.abs(logits - ring).max(axis=-1)
    assert vs_slide[capacity:].min() > MIN_SLIDE_CHANGE if n_sink < capacity - 1 else True, vs_slide
    ref, _ = numpy_ref.forward_shift(gguf_path, tokens, capacity, n_sink, discard)
    diff_numpy = float(np.abs(ref - logits).max())
    assert diff_numpy < TOL_NUMPY_REF, diff_numpy
    path = FIXTURE_DIR / f"{fx.name}.shift_c{capacity}_s{n_sink}_d{discard}.expected.bin"
    write_expected(path, tokens, logits)
    read_tokens, read_logits = numpy_ref.read_expected(path)
    assert read_tokens == tokens and np.array_equal(read_logits, logits)
    return ShiftResult(n_sink, discard, path, shifts, float(change[:capacity].max()),
                       float(change[capacity:].min()), float(vs_slide[capacity:].min()), diff_numpy,
                       float(np.mean(ref.argmax(-1) == logits.argmax(-1))))


# --------------------------------------------------------------------------- quantized copies


def converter_qtype(name: str, array: np.ndarray, outtype: gguf.GGMLQuantizationType) -> gguf.GGMLQuantizationType:
    """Type llama.cpp's convert_hf_to_gguf.py (`prepare_tensors`) requests for one deepseek2 tensor:
    1-D tensors and `*_norm.weight` stay F32, so do the router `ffn_gate_inp` and any name not ending
    in `.weight` (`exp_probs_b.bias`); every other tensor (token_embd and output included, 2-D or
    3-D) gets the outtype. DeepSeek-V2/V3 have no tensor_force_quant override."""
    if array.ndim <= 1 or name.endswith("_norm.weight"):
        return F32
    if name.endswith(".ffn_gate_inp.weight") or not name.endswith(".weight"):
        return F32
    return outtype


def quantize_like_converter(tensors: dict[str, np.ndarray], outtype: gguf.GGMLQuantizationType
                            ) -> dict[str, tuple[np.ndarray, gguf.GGMLQuantizationType]]:
    """name -> (payload, type). Like the converter, Q8_0 (and Q4_0) fall back to F16 when gguf.quants
    raises QuantError, i.e. when the row length ne[0] is not a multiple of 32."""
    out = {}
    for name, array in tensors.items():
        qtype = converter_qtype(name, array, outtype)
        try:
            data = gguf.quants.quantize(array, qtype)
        except gguf.QuantError:
            qtype = F16
            data = gguf.quants.quantize(array, qtype)
        out[name] = (data, qtype)
    return out


def quantized_metadata(metadata, file_type: gguf.LlamaFileType) -> list[tuple[str, str, object]]:
    """The F32 file's keys plus what the converter adds: general.file_type and
    general.quantization_version, placed before the tokenizer keys."""
    extra = [("general.file_type", "u32", int(file_type)),
             ("general.quantization_version", "u32", gguf.GGML_QUANT_VERSION)]
    at = next(i for i, (key, _, _) in enumerate(metadata) if key.startswith("tokenizer."))
    return metadata[:at] + extra + metadata[at:]


@dataclass
class QuantResult:
    """One quantized GGUF copy and its checks."""

    suffix: str
    path: Path
    counts: dict[str, int]  # ggml type name -> number of tensors
    fallbacks: int  # tensors the outtype asked for as Q8_0 that fell back to F16
    max_weight_err: float  # max |dequantized - F32| over all weights
    diff_numpy: float  # max |numpy_ref(this file) - expected.bin|
    argmax_numpy: float


def write_quantized(fx: Fixture, metadata, arrays: dict[str, list], tensors: dict[str, np.ndarray],
                    tokens: list[int], full: np.ndarray) -> list[QuantResult]:
    """`<name>.f16.gguf` and `<name>.q8_0.gguf`, read back and evaluated with numpy_ref."""
    results = []
    outtypes = dict(OUTTYPES, **(ALIGNED_OUTTYPES if fx.name in ALIGNED else {}))
    for suffix, (outtype, file_type) in outtypes.items():
        stored = quantize_like_converter(tensors, outtype)
        path = FIXTURE_DIR / f"{fx.name}.{suffix}.gguf"
        meta = quantized_metadata(metadata, file_type)
        write_gguf(path, meta, arrays, {n: d for n, (d, _) in stored.items()}, {n: q for n, (_, q) in stored.items()})
        check_gguf(path, meta, arrays, tensors, stored)
        counts = {q.name: sum(1 for _, t in stored.values() if t == q) for q in (Q8_0, Q4_0, BF16, F16, F32)}
        fallbacks = sum(1 for n, (_, q) in stored.items() if converter_qtype(n, tensors[n], outtype) != q)
        _, weights = numpy_ref.read_gguf(path)
        max_weight_err = max(float(np.abs(weights[n] - tensors[n]).max()) for n in tensors)
        ref, _ = numpy_ref.forward(path, tokens)
        results.append(QuantResult(suffix, path, counts, fallbacks, max_weight_err, float(np.abs(ref - full).max()),
                                   float(np.mean(ref.argmax(-1) == full.argmax(-1)))))
    return results


def selftest_q8_0(tmp_dir: Path) -> dict[str, int]:
    """No fixture has a row length that is a multiple of 32, so exercise the Q8_0 path on a synthetic
    file: converter rules, write, read back (bytes, bound), and the block layout {f16 d; int8 qs[32]}
    with d = absmax / 127 that the Rust kernels will read."""
    rng = np.random.default_rng(0)
    tensors = {
        "blk.0.ffn_up.weight": rng.normal(size=(3, 64)).astype(np.float32),  # row 64: Q8_0
        "blk.0.ffn_down.weight": rng.normal(size=(64, 3)).astype(np.float32),  # row 3: F16 fallback
        "blk.0.ffn_gate_inp.weight": rng.normal(size=(4, 64)).astype(np.float32),  # router: F32
        "blk.0.ffn_norm.weight": rng.normal(size=64).astype(np.float32),  # 1-D: F32
    }
    stored = quantize_like_converter(tensors, Q8_0)
    path = tmp_dir / "selftest.q8_0.gguf"
    meta = quantized_metadata([("general.name", "str", "selftest"), ("tokenizer.ggml.model", "str", "gpt2")],
                              gguf.LlamaFileType.MOSTLY_Q8_0)
    write_gguf(path, meta, {}, {n: d for n, (d, _) in stored.items()}, {n: q for n, (_, q) in stored.items()})
    check_gguf(path, meta, {}, tensors, stored)
    raw = stored["blk.0.ffn_up.weight"][0].reshape(-1, 34)  # 3 rows x 2 blocks
    x = tensors["blk.0.ffn_up.weight"].reshape(-1, 32)
    d = raw[:, :2].copy().view(np.float16).astype(np.float32)
    assert np.array_equal(d[:, 0], (np.abs(x).max(axis=-1) / 127).astype(np.float16).astype(np.float32))
    assert (np.abs(raw[:, 2:].view(np.int8) * d - x) <= 0.6 * d).all()
    counts = {q.name: sum(1 for _, t in stored.values() if t == q) for q in (Q8_0, F16, F32)}
    assert counts == {"Q8_0": 1, "F16": 1, "F32": 2}, counts
    return counts


def save_hf(model, fx: Fixture, out_dir: Path) -> None:
    """save_pretrained + the config.json keys llama.cpp's converter needs but transformers 5 drops."""
    target = out_dir / fx.name
    model.save_pretrained(target)
    config_path = target / "config.json"
    config = json.loads(config_path.read_text())
    if fx.family == "v3":
        config.update(scoring_func="sigmoid", topk_method="noaux_tc")
    else:
        config["scoring_func"] = "softmax"
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


# --------------------------------------------------------------------------- driver


@dataclass
class Result:
    """Everything PROVENANCE.md reports about one fixture."""

    fx: Fixture
    config: object
    n_params: int
    tokens: list[int]
    max_logit: float
    diff_incremental: float
    diff_numpy_ref: float
    argmax_numpy_ref: float
    routing: dict  # numpy_ref.forward stats: margin, decisions, group_changed, bias_changed
    inv_freq: list[float]  # HF rotary inv_freq (float32)
    kq_scale: float  # HF attention softmax scale
    expert_split_diff: float
    files: list[Path]
    mask_check: dict[str, float] | None  # check_mask_api, for fixtures with sliding-window files
    slides: list[SlideResult]
    shifts: list[ShiftResult]
    quants: list[QuantResult]


def generate(fx: Fixture, hf_out: Path | None) -> Result:
    model = build_model(fx)
    cfg = model.config
    print(f"=== {fx.name}: {type(model).__name__}, seed {fx.seed}")
    print(model)
    check_architecture(model, fx)

    tokens = prompt_tokens(fx, cfg.vocab_size)
    full, incremental = run_logits(model, tokens)
    diff_incremental = float(np.abs(full - incremental).max())
    assert diff_incremental < TOL_INCREMENTAL, diff_incremental

    tensors = gguf_tensors(model, fx)
    expert_split_diff = check_expert_split(model, tensors)
    metadata, arrays = gguf_metadata(fx, cfg), tokenizer_arrays(cfg.vocab_size)
    gguf_path = FIXTURE_DIR / f"{fx.name}.gguf"
    expected_path = FIXTURE_DIR / f"{fx.name}.expected.bin"
    write_gguf(gguf_path, metadata, arrays, tensors)
    check_gguf(gguf_path, metadata, arrays, tensors)
    write_expected(expected_path, tokens, full)
    assert numpy_ref.read_expected(expected_path)[0] == tokens

    # Independent check: the GGUF alone, float64, absorbed MLA.
    hp, _ = numpy_ref.read_gguf(gguf_path)
    # f32 metadata (yarn_log_multiplier, factor) limits agreement to ~1e-7 relative.
    assert math.isclose(numpy_ref.kq_scale(hp), model.model.layers[0].self_attn.scaling, rel_tol=1e-6)
    inv_freq = model.model.rotary_emb.inv_freq.double().numpy()
    assert np.allclose(numpy_ref.rope_inv_freq(hp), inv_freq, rtol=1e-6, atol=0), inv_freq
    ref, stats = numpy_ref.forward(gguf_path, tokens)
    diff_numpy_ref = float(np.abs(ref - full).max())
    argmax_agree = float(np.mean(ref.argmax(-1) == full.argmax(-1)))
    assert diff_numpy_ref < TOL_NUMPY_REF, diff_numpy_ref

    if hf_out is not None:
        save_hf(model, fx, hf_out)

    mask_check, slides = None, []
    if fx.name in SLIDE_SINKS:
        mask_check = check_mask_api(model, tokens, full)
        # The ring decode with nothing evicted must be the causal numpy_ref forward.
        no_evict, _ = numpy_ref.forward_ring(gguf_path, tokens, N_POS, 0)
        mask_check["ring_no_evict"] = float(np.abs(no_evict - ref).max())
        assert mask_check["ring_no_evict"] < 1e-12, mask_check
        slides = [write_slide(model, fx, tokens, full, gguf_path, n_sink) for n_sink in SLIDE_SINKS[fx.name]]
    shifts = [write_shift(model, fx, tokens, full, gguf_path, n_sink, discard)
              for n_sink, discard in SHIFT_CASES.get(fx.name, ())]
    if shifts:
        # The shifting decode that never fills its cache is the plain causal forward.
        no_shift, _ = run_shifted(model, tokens, N_POS, 0, 1)
        assert np.abs(no_shift - full).max() < TOL_INCREMENTAL
    quants = write_quantized(fx, metadata, arrays, tensors, tokens, full)

    files = [gguf_path, expected_path, *(s.path for s in slides), *(s.path for s in shifts),
             *(q.path for q in quants)]
    result = Result(fx, cfg, sum(p.numel() for p in model.parameters()), tokens, float(np.abs(full).max()),
                    diff_incremental, diff_numpy_ref, argmax_agree, stats, inv_freq.tolist(),
                    model.model.layers[0].self_attn.scaling, expert_split_diff, files, mask_check, slides,
                    shifts, quants)
    print(f"{fx.name}: params {result.n_params}, max|logit| {result.max_logit:.3f}, "
          f"max|full-incr| {diff_incremental:.2e}, max|numpy_ref-expected| {diff_numpy_ref:.2e}, "
          f"min routing margin {stats['margin']:.3e}")
    if mask_check:
        print(f"  4-D mask, causal pattern: additive max|diff| {mask_check['additive']:.2e}, "
              f"boolean {mask_check['boolean']:.2e} (not honoured)")
    for sl in slides:
        print(f"  {sl.path.name}: first differing position {sl.first_diff} (noise before {sl.noise_before:.1e}), "
              f"min change at >= C {sl.min_change:.2e}, max|forward_ring - HF| {sl.diff_numpy:.2e}")
    for sh in shifts:
        print(f"  {sh.path.name}: {sh.shifts} shifts, min change at >= C {sh.min_change:.2e} (vs slide "
              f"{sh.min_vs_slide:.2e}), max|forward_shift - HF| {sh.diff_numpy:.2e}")
    for q in quants:
        print(f"  {q.path.name}: {q.counts}, fallbacks to F16 {q.fallbacks}, max weight err "
              f"{q.max_weight_err:.2e}, max|numpy_ref - expected| {q.diff_numpy:.2e}, argmax {q.argmax_numpy:.0%}")
    return result


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sliding_section(results: list[Result]) -> list[str]:
    """PROVENANCE.md: sliding-window (attention-sink) expected files."""
    cap = SLIDE_CAPACITY
    lines = [
        "",
        "## Sliding window with attention sinks",
        "",
        f"`<name>.slide_c{{C}}_s{{S}}.expected.bin` (C = {cap}) is what an engine with a latent cache of C rows",
        "must produce when, once the cache is full, it keeps the first S tokens (sinks) and overwrites the",
        "oldest of the rest. Tokens are processed one at a time at absolute positions 0..T-1 (RoPE uses the",
        "absolute position; a cached k_pe keeps the rotation of its own position); each token writes its row,",
        "then attends over every retained row including its own. So token i attends to all j <= i while",
        "i < C, and to {0..S-1} U {i-(C-S)+1 .. i} (exactly C tokens) after. Every cached latent is the one",
        "computed when its token was processed, under that token's own retained set.",
        "",
        "- HF reference: that streaming computation is one full forward of the same transformers model",
        "  (eager, float32, `use_cache=False`, `position_ids` 0..T-1) with a custom 4-D mask [1, 1, T, T]",
        "  whose row i allows exactly token i's retained set. transformers 5.23 `create_causal_mask` returns",
        "  any 4-D mask as-is and eager attention ADDS it to the scores, so the mask is additive float32:",
        "  0 = attend, finfo(float32).min = blocked (what transformers' own eager mask uses).",
        "- Proof the mask is honoured: the plain causal pattern passed the same way reproduces",
        "  `<name>.expected.bin`; a boolean 4-D mask is NOT honoured by eager attention (True/False are",
        "  added as 1.0/0.0 and nothing is blocked):",
        "",
        "| model | max \\|additive causal mask - expected\\| | max \\|boolean causal mask - expected\\| |",
        "|---|---|---|",
    ]
    for r in results:
        if r.mask_check:
            lines.append(f"| `{r.fx.name}` | {r.mask_check['additive']:.2e} | {r.mask_check['boolean']:.2e} |")
    lines += [
        "",
        "- Independent check: `numpy_ref.forward_ring` (float64, reads only the GGUF) decodes token by token",
        "  into a real ring buffer (slot = n for n < C, then S + (n - C) mod (C - S)) and attends over the",
        "  occupied slots. The script also checks, for every i, that the ring's occupants after writing",
        "  token i are exactly mask row i, and that `forward_ring` with C >= T equals `forward` (max diff",
        f"  {max(r.mask_check['ring_no_evict'] for r in results if r.mask_check):.1e}).",
        f"- Positions < C must equal the plain expected logits to {TOL_MASK_API:g} (they differ only by f32",
        "  rounding: the batched expert matmuls group different token sets; a float64 run of the model, not",
        f"  part of the script, gives exactly 0 there), and every position >= C must move by more than",
        f"  {MIN_SLIDE_CHANGE:g}; so the first position that differs by more than {TOL_MASK_API:g} is C.",
        "",
        f"| file | C | S | first position differing (> {TOL_MASK_API:g}) | max \\|slide - plain\\| at pos < C | "
        "min over pos >= C of max \\|slide - plain\\| | max \\|slide - plain\\| | "
        "max \\|forward_ring - slide\\| | argmax agree (ring vs HF) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for sl in r.slides:
            lines.append(f"| `{sl.path.name}` | {cap} | {sl.n_sink} | {sl.first_diff} | {sl.noise_before:.1e} | "
                         f"{sl.min_change:.2e} | {sl.max_change:.2e} | {sl.diff_numpy:.2e} | {sl.argmax_numpy:.0%} |")
    return lines


def shift_section(results: list[Result]) -> list[str]:
    """PROVENANCE.md: context-shift expected files."""
    cap = SHIFT_CAPACITY
    lines = [
        "",
        "## Context shift",
        "",
        f"`<name>.shift_c{{C}}_s{{S}}_d{{D}}.expected.bin` (C = {cap}) is what an engine with a latent cache of",
        "C rows must produce when slot i always holds position i and, once all C slots are full, the next",
        "token first drops the rows in slots S .. S+D-1, moves the later rows down behind the S sinks and",
        "re-rotates their k_pe for their new slots (the cached c_kv, computed when its token was processed,",
        "is kept as is); the token then takes position C - D.",
        "",
        "- HF reference: the same transformers model (eager, float32) decodes token by token through a",
        "  `DynamicCache` with explicit `position_ids`. transformers 5.23 caches exactly MLA's latent pair",
        "  per layer (normed c_kv and rotated k_pe); a shift slices both and replaces each kept token's k_pe",
        "  by its unrotated k_pe (captured from `kv_a_proj_with_mqa`) rotated for the new position with the",
        "  model's own `rotary_emb` and its module's own `apply_rotary_emb` (V2) /",
        "  `apply_rotary_pos_emb[_interleave]` (V3).",
        "- Checks: positions < C equal `<name>.expected.bin` (to f32 incremental noise); every position >= C",
        "  differs from it and from the ring slide with the same sinks (so a test can tell the three",
        "  apart); with C >= T the same decode reproduces `<name>.expected.bin`; and",
        "  `numpy_ref.forward_shift` (float64, reads only the GGUF, keeps k_pe unrotated and rotates it",
        "  for its current slot at every step) agrees.",
        "",
        "| file | C | S | D | shifts | max \\|shift - plain\\| at pos < C | min over pos >= C of max "
        "\\|shift - plain\\| | same, vs ring slide | max \\|forward_shift - HF\\| | argmax agree |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for sh in r.shifts:
            lines.append(f"| `{sh.path.name}` | {cap} | {sh.n_sink} | {sh.discard} | {sh.shifts} | "
                         f"{sh.noise_before:.1e} | {sh.min_change:.2e} | {sh.min_vs_slide:.2e} | "
                         f"{sh.diff_numpy:.2e} | {sh.argmax_numpy:.0%} |")
    return lines


def quantized_section(results: list[Result], q8_selftest: dict[str, int]) -> list[str]:
    """PROVENANCE.md: F16 / Q8_0 copies."""
    lines = [
        "",
        "## Quantized copies (F16, Q8_0)",
        "",
        "`<name>.f16.gguf` and `<name>.q8_0.gguf` follow llama.cpp `convert_hf_to_gguf.py` (`prepare_tensors`)",
        "for `--outtype f16` / `--outtype q8_0`, with gguf's own `gguf.quants.quantize`:",
        "",
        "- F32: 1-D tensors (all norms, `exp_probs_b.bias`), any `*_norm.weight`, the router",
        "  `ffn_gate_inp.weight`, and any name not ending in `.weight`.",
        "- Every other tensor (2-D and 3-D, `token_embd` and `output` included) gets the outtype. For Q8_0,",
        "  `gguf.quants.quantize` raises QuantError unless the row length ne[0] is a multiple of 32, and the",
        "  converter then falls back to F16 (llama.cpp itself does this, e.g. `attn_k_b` of a V3 with",
        "  qk_nope_head_dim 16 stays F16 in its q8_0 output).",
        "- Read back: every key, the types, shapes and raw payload bytes; F16 values equal the float16",
        "  rounding of the F32 weights, Q8_0 values lie within 0.6 d of them (d = block absmax / 127).",
        "- *numpy_ref*: logits of `numpy_ref.forward` on the quantized file (dequantized to float64) vs the",
        "  F32 `expected.bin`; this is the quantization error alone, a guide for engine tolerances.",
        "",
        "| file | bytes | Q8_0 | Q4_0 | BF16 | F16 | F32 | -> F16 fallbacks | max \\|w - w_f32\\| | "
        "max \\|numpy_ref - expected\\| | argmax agree |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for q in r.quants:
            lines.append(f"| `{q.path.name}` | {q.path.stat().st_size:,} | {q.counts['Q8_0']} | {q.counts['Q4_0']} | "
                         f"{q.counts['BF16']} | {q.counts['F16']} | "
                         f"{q.counts['F32']} | {q.fallbacks} | {q.max_weight_err:.2e} | {q.diff_numpy:.2e} | "
                         f"{q.argmax_numpy:.0%} |")
    empty = [q.path.name for r in results for q in r.quants if q.suffix == "q8_0" and not q.counts["Q8_0"]]
    if empty:
        lines += ["", f"**No Q8_0 tensor at all** in {', '.join(f'`{n}`' for n in empty)}:",
                  "every fixture dimension that is a row length (hidden, q/kv LoRA ranks, head dims, nh*v,",
                  "ff sizes) is deliberately not a multiple of 32, so these files hold only F16 and F32 tensors",
                  "and differ from the `.f16.gguf` copy only in `general.file_type`. They test the loader's",
                  "handling of a q8_0-typed file, not Q8_0 kernels."]
    counts = ", ".join(f"{n} {k}" for k, n in q8_selftest.items())
    lines += ["", f"Q8_0 write path self-test (a synthetic file in a temp dir, not committed): {counts} tensors",
              "written and read back as above; Q8_0 block layout and d = absmax / 127 checked byte by byte."]
    return lines


def describe(path: Path) -> str:
    """One-line description of a fixture file for the Files table."""
    name = path.name
    if ".shift_c" in name:
        cap, rest = name.split(".shift_c")[1].split(".")[0].split("_s")
        sink, discard = rest.split("_d")
        return f"HF logits, context-shifting latent cache C={cap}, S={sink} sinks, D={discard} per shift"
    if ".slide_c" in name:
        cap, sink = name.split(".slide_c")[1].split(".")[0].split("_s")
        return f"HF logits, latent cache C={cap}, S={sink} sinks"
    if name.endswith(".expected.bin"):
        return "HF logits, plain causal"
    for suffix in {**OUTTYPES, **ALIGNED_OUTTYPES}:
        if name.endswith(f".{suffix}.gguf"):
            return f"GGUF, converter --outtype {suffix}"
    return "GGUF, all F32"


def provenance(results: list[Result], argv: list[str], q8_selftest: dict[str, int]) -> str:
    """Markdown for tests/fixtures/PROVENANCE.md."""
    packages = ["torch", "transformers", "gguf", "numpy", "safetensors", "tokenizers"]
    lines = [
        "# Golden fixtures: provenance",
        "",
        "Generated by `scripts/gen_fixtures.py` (do not edit by hand; re-run the script).",
        "Each model is a tiny random-weight transformers `DeepseekV2ForCausalLM` / `DeepseekV3ForCausalLM`",
        "(float32, `attn_implementation=\"eager\"`, `experts_implementation=\"eager\"`, `model.eval()`).",
        "",
        "## Command",
        "",
        "```",
        "python " + " ".join(["scripts/gen_fixtures.py", *argv]),
        "```",
        "",
        "Run with the venv pinned in `scripts/requirements.txt` (about 15 s wall, mostly imports).",
        "",
        "| component | version |",
        "|---|---|",
        f"| python | {platform.python_version()} ({platform.system()} {platform.machine()}) |",
        *[f"| {p} | {version(p)} |" for p in packages],
        "",
        "## Seeds and initialisation",
        "",
        "- Per fixture: `torch.manual_seed(seed)` right before building the model; HF `_init_weights` with",
        "  `initializer_range = 0.1`; then, in `model.modules()` order, every RMSNorm weight (input_layernorm,",
        "  post_attention_layernorm, q_a_layernorm, kv_a_layernorm, model.norm) is set to `1 + 0.2*N(0,1)`,",
        "  then (V3) every `mlp.gate.e_score_correction_bias` to `0.1*N(0,1)`.",
        "- Prompt: `numpy.random.default_rng(seed)`: 20 ids from `integers(0, vocab)`, then `choice(20, 2)`",
        "  picks the positions that are overwritten with `0` and `vocab-1`.",
        "- Shared settings: rms_norm_eps 1e-6, attention_bias False, hidden_act silu, rope_theta 10000.",
        "",
        "## Fixtures",
        "",
        "| name | class | seed | vocab | hidden | layers (dense) | heads | q_lora | kv_lora | nope/rope/v | "
        "dense ff | experts (E/top-k/shared, ff) | routing | rope | tied | GGUF MLA layout | params |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        c, fx = r.config, r.fx
        has_moe = c.first_k_dense_replace < c.num_hidden_layers
        if has_moe:
            experts = f"{c.n_routed_experts}/{c.num_experts_per_tok}/{c.n_shared_experts}, {c.moe_intermediate_size}"
            method = "noaux_tc (sigmoid+bias)" if fx.family == "v3" else f"{c.topk_method} (softmax)"
            routing = (f"{method}, groups {c.n_group}/{c.topk_group}, scale {c.routed_scaling_factor}, "
                       f"norm_topk_prob {c.norm_topk_prob}")
        else:
            experts, routing = "none", "-"
        rp = c.rope_parameters
        if rp["rope_type"] == "yarn":
            rope = (f"YaRN x{rp['factor']:g} from {rp['original_max_position_embeddings']}, beta "
                    f"{rp['beta_fast']:g}/{rp['beta_slow']:g}, mscale {rp['mscale']:g}/{rp['mscale_all_dim']:g}")
        else:
            rope = "plain"
        if fx.family == "v3":
            rope += ", rope_interleave" if c.rope_interleave else ", neox"
        rope += f", max_pos {c.max_position_embeddings}"
        layout = "split attn_k_b/attn_v_b" if fx.layout == "split" else "legacy attn_kv_b"
        lines.append(
            f"| `{fx.name}` | {type(c).__name__} | {fx.seed} | {c.vocab_size} | {c.hidden_size} | "
            f"{c.num_hidden_layers} ({c.first_k_dense_replace}) | {c.num_attention_heads} | {c.q_lora_rank} | "
            f"{c.kv_lora_rank} | {c.qk_nope_head_dim}/{c.qk_rope_head_dim}/{c.v_head_dim} | "
            f"{c.intermediate_size} | {experts} | {routing} | {rope} | {c.tie_word_embeddings} | {layout} | "
            f"{r.n_params:,} |")
    lines += [
        "",
        "## Results",
        "",
        "- *full vs incremental*: the 20-token causal forward against feeding the same ids one at a time",
        "  through a `DynamicCache` from position 0.",
        "- *numpy_ref*: `scripts/numpy_ref.py`, float64, reads only the GGUF, absorbed MLA; vs expected.bin.",
        "- *routing margin*: smallest gap (in numpy_ref) between the last selected and first rejected",
        "  expert or group score over all MoE decisions; a tiny margin would make routing fragile in f32.",
        "- *changed by groups / bias*: of all (token, MoE layer) routing decisions, how many pick a different",
        "  expert set than plain top-k without the group limit / without V3's e_score_correction_bias,",
        "  i.e. whether the fixture can catch an engine that skips that step.",
        "- *expert split check*: HF expert forward vs the split GGUF `ffn_*_exps` weights.",
        "",
        "| name | max \\|logit\\| | max \\|full - incremental\\| | max \\|numpy_ref - expected\\| | "
        "argmax agree | min routing margin | changed by groups / bias | expert split check |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        st = r.routing
        if st["decisions"]:
            margin = f"{st['margin']:.2e}"
            bias = f"{st['bias_changed']}/{st['decisions']}" if r.fx.family == "v3" else "no bias"
            changed = f"{st['group_changed']}/{st['decisions']} / {bias}"
            split = f"{r.expert_split_diff:.1e}"
        else:
            margin = changed = split = "no MoE"
        lines.append(f"| `{r.fx.name}` | {r.max_logit:.4f} | {r.diff_incremental:.2e} | {r.diff_numpy_ref:.2e} | "
                     f"{r.argmax_numpy_ref:.0%} | {margin} | {changed} | {split} |")
    for r in results:
        c = r.config
        if r.routing["decisions"] and c.n_group > c.topk_group and not r.routing["group_changed"]:
            note = ""
            if r.fx.family == "v2" and c.num_experts_per_tok <= c.topk_group:
                note = (" With V2's max group score this is guaranteed: the k best experts always lie in the"
                        " k best groups when top-k <= topk_group.")
            lines += ["", f"Coverage gap: in `{r.fx.name}` the group limit never changes the chosen experts.{note}"]
    lines += ["", "Prompt token ids:", ""]
    lines += [f"- `{r.fx.name}`: `{r.tokens}`" for r in results]
    lines += ["", "RoPE inverse frequencies (transformers, f32) and softmax scale, for unit tests of the rope tables:", ""]
    lines += [f"- `{r.fx.name}`: inv_freq `{[float(f'{f:.8g}') for f in r.inv_freq]}`, kq_scale `{r.kq_scale:.10g}`"
              for r in results]
    lines += sliding_section(results) + shift_section(results) + quantized_section(results, q8_selftest)
    total = 0
    lines += ["", "## Files", "", "| file | what | bytes | sha256 |", "|---|---|---|---|"]
    for r in results:
        for path in r.files:
            size = path.stat().st_size
            total += size
            lines.append(f"| `{path.name}` | {describe(path)} | {size:,} | `{sha256(path)}` |")
    lines += [
        "",
        f"Total: {total:,} bytes (limit {MAX_TOTAL_BYTES:,}).",
        "",
        "## Formats",
        "",
        "`<name>.expected.bin`, little-endian: magic `TMLE`, u32 version = 1, u32 n_pos, u32 n_vocab,",
        "n_pos x u32 token ids, then n_pos * n_vocab x f32 logits, row-major [pos][vocab].",
        "",
        "`<name>.slide_c<C>_s<S>.expected.bin`: the same format, same token ids as `<name>.expected.bin`;",
        "logits of the streaming decode with a C-row latent cache and S attention sinks (see above).",
        "",
        "`<name>.shift_c<C>_s<S>_d<D>.expected.bin`: the same format and token ids; logits of the decode",
        "with a C-row context-shifting latent cache, S sinks, D rows dropped per shift (see above).",
        "",
        "`<name>.f16.gguf` / `<name>.q8_0.gguf`: the F32 file's metadata plus `general.file_type`",
        "(u32, 1 = MOSTLY_F16 / 7 = MOSTLY_Q8_0) and `general.quantization_version` (u32, 2), inserted",
        "before the tokenizer keys; same tensors, order and shapes; types as in the table above.",
        "Q8_0 blocks are `{ f16 d; int8 qs[32] }` (34 bytes per 32 values along ne[0]), d = absmax / 127.",
        "",
        "`<name>.gguf`: GGUF v3, `general.architecture = deepseek2`, alignment 32, every tensor F32.",
        "Tensors are written in torch order [out, in], so ggml `ne` is reversed (`token_embd` ne = {hidden, vocab}).",
        "",
        "- Split layout: `attention.head_count_kv = 1`, `key_length = kv_lora + rope`, `value_length = kv_lora`,",
        "  `key_length_mla = nope + rope`, `value_length_mla = v`; `attn_k_b` torch [nh, kv_lora, nope]",
        "  (ne {nope, kv_lora, nh}), `attn_v_b` torch [nh, v, kv_lora] (ne {kv_lora, v, nh}).",
        "- Legacy layout (`v2_grouped_legacy`): one `attn_kv_b` = HF `kv_b_proj.weight` [nh*(nope+v), kv_lora],",
        "  `head_count_kv = n_heads`, `key_length = nope + rope`, `value_length = v`, no `*_mla` keys.",
        "- `attention.q_lora_rank` only when q LoRA is used (`v2_lite_moe` has `attn_q` and no such key).",
        "  Note: llama.cpp infers \"lite\" from the layer count (26/27), so it refuses `v2_lite_moe` (3 layers)",
        "  for want of that key; the file matches real V2-Lite GGUFs, which also lack it.",
        "- MoE keys: `expert_gating_func` 1 = softmax (V2) / 2 = sigmoid (V3), `expert_group_count` /",
        "  `expert_group_used_count` = n_group / topk_group, `expert_weights_norm` only when true,",
        "  `exp_probs_b.bias` = V3 `e_score_correction_bias`. Experts are stacked: `ffn_{gate,up}_exps`",
        "  torch [E, I, H], `ffn_down_exps` torch [E, H, I], split from transformers' fused",
        "  `mlp.experts.gate_up_proj` [E, 2I, H] (gate rows first) and `mlp.experts.down_proj` [E, H, I].",
        "- Dense-only model (`v3_dense_tied`): `expert_count`, `expert_used_count`,",
        "  `expert_feed_forward_length`, `expert_shared_count` are all 0; `leading_dense_block_count = 2`;",
        "  no `output.weight` (tied to `token_embd`).",
        "- YaRN: `rope.scaling.{type=yarn, factor, original_context_length, yarn_beta_fast, yarn_beta_slow,",
        "  yarn_log_multiplier = 0.1*mscale_all_dim}`; mscale is not stored (all fixtures have",
        "  mscale == mscale_all_dim, so transformers' rope attention factor is 1).",
        "  kq_scale = (nope+rope)^-0.5 * (1 + yarn_log_multiplier*ln(factor))^2.",
        "- Tokenizer: `gpt2` / pre `default`; ids 0..255 are the GPT-2 byte characters, 256 = `Ġt`,",
        "  the rest `[PAD{id}]` (type 5, unused); merges `[\"Ġ t\"]`; bos 0, eos 1.",
        "",
        "`--hf-out DIR` checkpoints (not committed): `save_pretrained` writes per-expert tensors",
        "`model.layers.N.mlp.experts.E.{gate,up,down}_proj.weight` (transformers un-fuses on save), no",
        "`lm_head.weight` when tied, and config.json gains `scoring_func` (+ `topk_method: noaux_tc` for V3).",
        "`v3_dense_tied`'s config.json keeps DeepseekV3Config's unused MoE defaults (n_routed_experts 256, ...);",
        "a converter should emit `expert_count = 0` when first_k_dense_replace >= num_hidden_layers.",
        "Reload with `experts_implementation=\"eager\"`: the default `grouped_mm` fails on CPU",
        "(\"strides should be multiple of 16 bytes\") when moe_intermediate_size * 4 bytes is not a multiple of 16.",
        "",
        "## transformers 5.23 behaviour the fixtures pin down",
        "",
        "- V2 routing: softmax; `group_limited_greedy` scores a group by its MAX expert score and zeroes",
        "  (not -inf) the dropped groups; `norm_topk_prob` is ignored; weights * routed_scaling_factor.",
        "  llama.cpp scores groups by the top-2 sum for V2 too, so it disagrees on `v2_grouped_legacy`.",
        "  GGUF has no key for the V2 topk_method: group-limited routing is implied by",
        "  expert_group_used_count < expert_group_count.",
        "- V3 routing: sigmoid, selection on sigmoid + bias, group score = sum of the top-2, dropped groups",
        "  -inf, weights = unbiased sigmoids, normalised (+1e-20) when norm_topk_prob, then scaled.",
        "- `q_a_layernorm` / `kv_a_layernorm` use a hard-coded eps 1e-6 (equal to rms_norm_eps here).",
        "- DeepseekV3Config defaults `num_key_value_heads` to 128 (not None), so a model with fewer heads",
        "  gets `num_key_value_groups = 0` and fails in eager attention; the script sets it to the head count.",
        "- YaRN keeps the explicit `factor` even when max_position_embeddings / original differs",
        "  (transformers only warns); the fixtures keep the two consistent except `v3_qlora_grouped`,",
        "  whose original context 4096 makes rotary pair 1 a partial extrapolation/interpolation blend.",
        "- V3 `rope_interleave=True` rotates adjacent pairs and writes the result de-interleaved; V2 rotates",
        "  adjacent pairs in place. Both equal ggml NORM rope on the scores (same permutation for q and k).",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hf-out", type=Path, help="also save each HF checkpoint to DIR/<name>/")
    args = parser.parse_args()
    start = time.time()
    torch.set_num_threads(1)  # reproducible reductions; the models are tiny
    FIXTURE_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        q8_selftest = selftest_q8_0(Path(tmp))
    results = [generate(fx, args.hf_out) for fx in FIXTURES]
    long = generate_long()
    total = sum(p.stat().st_size for r in results for p in r.files) + sum(p.stat().st_size for p in long.files)
    assert total < MAX_TOTAL_BYTES, f"fixtures too large: {total} bytes"
    # Record the command without the machine-specific --hf-out path.
    argv: list[str] = []  # PROVENANCE.md must not depend on --hf-out (it is not committed)
    (FIXTURE_DIR / "PROVENANCE.md").write_text(provenance(results, argv, q8_selftest) + "\n".join(long_section(long)) + "\n")
    print(f"wrote {len(results)} fixtures, {total:,} bytes, in {time.time() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

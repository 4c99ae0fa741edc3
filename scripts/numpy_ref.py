#!/usr/bin/env python3
"""Float64 NumPy forward pass of a DeepSeek-V2/V3 (`deepseek2`) GGUF file.

Reads ONLY the GGUF (metadata + F32 tensors) and computes causal logits for a
token sequence, so agreeing with the transformers logits proves the GGUF
carries everything the model needs. The attention uses the absorbed MLA form
that tinymla implements (latent cache of c_kv and rotated k_pe):

    q_lat[h] = attn_k_b[h] @ q_nope[h]                      # [R]
    score    = (q_lat[h] . c_kv[s] + q_pe[h] . k_pe[s]) * kq_scale
    o[h]     = attn_v_b[h] @ sum_s softmax(score)[s] * c_kv[s]

Legacy files (a single `attn_kv_b`, no `*_mla` keys) are split per head into
the same k_b / v_b pair. Routing follows transformers 5.23:
  * sigmoid gating (V3): selection on sigmoid + exp_probs_b, group score = sum
    of the top-2 biased scores, dropped groups masked to -inf, weights are the
    unbiased sigmoids, optionally normalised, then scaled;
  * softmax gating (V2): group score = max, dropped groups masked to 0, no
    normalisation in transformers (expert_weights_norm is honoured if a file
    sets it), then scaled.

mscale is not stored in GGUF; the rope attention factor is taken as 1, which is
exact whenever mscale == mscale_all_dim (true for every fixture and for the
real DeepSeek checkpoints).

`forward_ring` is a second, independent driver: a token-by-token decode whose
per-layer latent cache is a ring of fixed capacity C that keeps the first S
tokens ("attention sinks") and overwrites the oldest of the rest once full
(tinymla's sliding-window policy). With C >= len(tokens) it equals `forward`.

F16, BF16 and quantized tensors (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K..Q6_K, IQ4_NL,
IQ4_XS) are dequantized with gguf's own `gguf.quants.dequantize` (so `*.f16.gguf`,
`*.q8_0.gguf` and llama.cpp-quantized fixtures can be evaluated too).

Usage:
    python scripts/numpy_ref.py tests/fixtures/NAME.gguf [more.gguf ...]
compares against the sibling NAME.expected.bin and prints max |diff|; for
NAME.f16.gguf / NAME.q8_0.gguf it compares against the F32 NAME.expected.bin
(reported only: quantization error is expected). Any sibling
NAME.slide_c<C>_s<S>.expected.bin is compared with `forward_ring(C, S)`.
"""

from __future__ import annotations

import math
import re
import struct
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType
from gguf.quants import dequantize

ARCH = "deepseek2"
GATING_SOFTMAX = 1
GATING_SIGMOID = 2
# Tensor types read_gguf accepts; all but F32 are dequantized (gguf.quants) to float64.
SUPPORTED_TYPES = (GGMLQuantizationType.F32, GGMLQuantizationType.F16, GGMLQuantizationType.Q8_0,
                   GGMLQuantizationType.Q4_0, GGMLQuantizationType.BF16,
                   GGMLQuantizationType.Q4_1, GGMLQuantizationType.Q5_0, GGMLQuantizationType.Q5_1,
                   GGMLQuantizationType.Q2_K, GGMLQuantizationType.Q3_K, GGMLQuantizationType.Q4_K,
                   GGMLQuantizationType.Q5_K, GGMLQuantizationType.Q6_K,
                   GGMLQuantizationType.IQ4_NL, GGMLQuantizationType.IQ4_XS)


@dataclass
class Hparams:
    """Model hyper-parameters, all read from `deepseek2.*` GGUF keys."""

    n_vocab: int
    n_embd: int
    n_layer: int
    n_head: int
    n_dense_lead: int
    rms_eps: float
    q_lora_rank: int  # 0 when the file has attn_q instead of attn_q_a/attn_q_b
    kv_lora_rank: int
    qk_nope: int
    qk_rope: int
    v_head: int
    is_mla_split: bool  # attn_k_b/attn_v_b present (vs. legacy attn_kv_b)
    rope_base: float
    yarn_factor: float  # 0.0 = plain RoPE
    yarn_orig_ctx: int
    yarn_beta_fast: float
    yarn_beta_slow: float
    yarn_log_mul: float  # as stored: 0.1 * mscale_all_dim
    n_expert: int
    n_expert_used: int
    n_group: int
    n_group_used: int
    gating: int
    weights_norm: bool
    weights_scale: float


def _field(reader: GGUFReader, key: str, default=None):
    """Scalar (or string) value of a metadata key, or `default` if absent."""
    field = reader.fields.get(key)
    if field is None:
        if default is None:
            raise KeyError(f"missing GGUF key {key}")
        return default
    if field.types[0] == GGUFValueType.ARRAY:
        raise TypeError(f"{key} is an array")
    return field.contents()


def read_gguf(path: str | Path) -> tuple[Hparams, dict[str, np.ndarray]]:
    """Parse a deepseek2 GGUF into hyper-parameters and float64 tensors (non-F32 ones dequantized).

    Tensors are returned in row-major (torch) order, i.e. the reverse of the
    ggml `ne` order: `token_embd.weight` is `[n_vocab, n_embd]`.
    """
    reader = GGUFReader(str(path))
    arch = _field(reader, "general.architecture")
    if arch != ARCH:
        raise ValueError(f"{path}: architecture {arch!r}, expected {ARCH!r}")

    def key(name, default=None):
        return _field(reader, f"{ARCH}.{name}", default)

    tensors = {}
    for t in reader.tensors:
        if t.tensor_type not in SUPPORTED_TYPES:
            raise ValueError(f"{t.name}: type {t.tensor_type.name} is not supported here")
        shape = tuple(int(d) for d in reversed(t.shape))
        data = t.data if t.tensor_type == GGMLQuantizationType.F32 else dequantize(t.data, t.tensor_type)
        tensors[t.name] = np.asarray(data, dtype=np.float64).reshape(shape)

    is_mla_split = "blk.0.attn_k_b.weight" in tensors
    qk_rope = key("rope.dimension_count")
    if is_mla_split:
        qk_head = key("attention.key_length_mla")
        v_head = key("attention.value_length_mla")
    else:
        qk_head = key("attention.key_length")
        v_head = key("attention.value_length")

    has_yarn = key("rope.scaling.type", "none") == "yarn"
    n_expert = key("expert_count", 0)
    hp = Hparams(
        n_vocab=tensors["token_embd.weight"].shape[0],
        n_embd=key("embedding_length"),
        n_layer=key("block_count"),
        n_head=key("attention.head_count"),
        n_dense_lead=key("leading_dense_block_count", 0),
        rms_eps=key("attention.layer_norm_rms_epsilon"),
        q_lora_rank=key("attention.q_lora_rank", 0),
        kv_lora_rank=key("attention.kv_lora_rank"),
        qk_nope=qk_head - qk_rope,
        qk_rope=qk_rope,
        v_head=v_head,
        is_mla_split=is_mla_split,
        rope_base=key("rope.freq_base"),
        yarn_factor=key("rope.scaling.factor") if has_yarn else 0.0,
        yarn_orig_ctx=key("rope.scaling.original_context_length") if has_yarn else 0,
        yarn_beta_fast=key("rope.scaling.yarn_beta_fast", 32.0),
        yarn_beta_slow=key("rope.scaling.yarn_beta_slow", 1.0),
        yarn_log_mul=key("rope.scaling.yarn_log_multiplier", 0.0),
        n_expert=n_expert,
        n_expert_used=key("expert_used_count", 0),
        n_group=key("expert_group_count", 1),
        n_group_used=key("expert_group_used_count", 1),
        gating=key("expert_gating_func", GATING_SOFTMAX),
        weights_norm=bool(key("expert_weights_norm", False)),
        weights_scale=key("expert_weights_scale", 1.0),
    )
    return hp, tensors


def rms_norm(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    """`w * x / sqrt(mean(x^2) + eps)` over the last axis (plain w, not 1+w)."""
    return w * x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)


def silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


def rope_inv_freq(hp: Hparams) -> np.ndarray:
    """Inverse frequencies [qk_rope/2], YaRN as in transformers' `_compute_yarn_parameters`.

    Note the transformers quirk kept here: `high` is clamped to `dim - 1`
    although the ramp runs over `dim / 2` indices.
    """
    dim, base = hp.qk_rope, hp.rope_base
    pos_freq = base ** (np.arange(0, dim, 2, dtype=np.float64) / dim)
    if hp.yarn_factor == 0.0:
        return 1.0 / pos_freq

    def correction_dim(n_rot: float) -> float:
        return dim * math.log(hp.yarn_orig_ctx / (n_rot * 2 * math.pi)) / (2 * math.log(base))

    low = max(math.floor(correction_dim(hp.yarn_beta_fast)), 0)
    high = min(math.ceil(correction_dim(hp.yarn_beta_slow)), dim - 1)
    if low == high:
        high += 0.001
    ramp = np.clip((np.arange(dim // 2, dtype=np.float64) - low) / (high - low), 0.0, 1.0)
    extrapolation = 1.0 - ramp  # weight of the unscaled frequency
    return (1.0 / (hp.yarn_factor * pos_freq)) * ramp + (1.0 / pos_freq) * extrapolation


def rope_adjacent(x: np.ndarray, pos: np.ndarray, inv_freq: np.ndarray) -> np.ndarray:
    """Rotate adjacent pairs (x[2i], x[2i+1]) by pos * inv_freq[i] (ggml NORM rope).

    x: [T, ..., dr]. transformers V3 with rope_interleave writes the result
    de-interleaved, but q and k get the same permutation, so scores match.
    """
    ang = pos[:, None] * inv_freq[None, :]  # [T, dr/2]
    shape = (len(pos),) + (1,) * (x.ndim - 2) + (len(inv_freq),)
    cos, sin = np.cos(ang).reshape(shape), np.sin(ang).reshape(shape)
    x0, x1 = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = x0 * cos - x1 * sin
    out[..., 1::2] = x1 * cos + x0 * sin
    return out


def kq_scale(hp: Hparams) -> float:
    """Softmax scale: (nope+rope)^-0.5, times mscale^2 under YaRN."""
    scale = 1.0 / math.sqrt(hp.qk_nope + hp.qk_rope)
    if hp.yarn_factor > 1.0:
        mscale = 1.0 + hp.yarn_log_mul * math.log(hp.yarn_factor)
        scale *= mscale * mscale
    return scale


def mla_project(hp: Hparams, w: dict[str, np.ndarray], il: int, x: np.ndarray, pos: np.ndarray,
                inv_freq: np.ndarray) -> tuple[np.ndarray, ...]:
    """MLA projections of tokens at absolute positions `pos`. x: [T, n_embd] (already normed).

    Returns (q_lat [T, nh, R], q_pe [T, nh, dr], c_kv [T, R], k_pe [T, dr], v_b [nh, dv, R]);
    c_kv and k_pe (rotated by the token's own position) are the latent-cache rows.
    """
    p = f"blk.{il}."
    n_tok, nh, dn, dr, dv, rank = len(x), hp.n_head, hp.qk_nope, hp.qk_rope, hp.v_head, hp.kv_lora_rank

    if hp.q_lora_rank:
        q_a = rms_norm(x @ w[p + "attn_q_a.weight"].T, w[p + "attn_q_a_norm.weight"], hp.rms_eps)
        q = q_a @ w[p + "attn_q_b.weight"].T
    else:
        q = x @ w[p + "attn_q.weight"].T
    q = q.reshape(n_tok, nh, dn + dr)
    q_nope, q_pe = q[..., :dn], rope_adjacent(q[..., dn:], pos, inv_freq)

    kv_a = x @ w[p + "attn_kv_a_mqa.weight"].T  # [T, R + dr]
    c_kv = rms_norm(kv_a[:, :rank], w[p + "attn_kv_a_norm.weight"], hp.rms_eps)  # cached latent
    k_pe = rope_adjacent(kv_a[:, rank:], pos, inv_freq)  # [T, dr], one head shared by all

    if hp.is_mla_split:
        k_b = w[p + "attn_k_b.weight"]  # [nh, R, dn]
        v_b = w[p + "attn_v_b.weight"]  # [nh, dv, R]
    else:
        kv_b = w[p + "attn_kv_b.weight"].reshape(nh, dn + dv, rank)
        k_b = kv_b[:, :dn, :].transpose(0, 2, 1)
        v_b = kv_b[:, dn:, :]

    q_lat = np.einsum("hrn,thn->thr", k_b, q_nope)  # [T, nh, R]
    return q_lat, q_pe, c_kv, k_pe, v_b


def mla_attend(hp: Hparams, w: dict[str, np.ndarray], il: int, q_lat: np.ndarray, q_pe: np.ndarray,
               c_kv: np.ndarray, k_pe: np.ndarray, v_b: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Absorbed attention of T queries over S latent rows; allowed [T, S] bool. Returns [T, n_embd]."""
    n_tok = len(q_lat)
    scores = (np.einsum("thr,sr->hts", q_lat, c_kv) + np.einsum("thd,sd->hts", q_pe, k_pe)) * kq_scale(hp)
    scores = np.where(allowed, scores, -np.inf)
    probs = np.exp(scores - scores.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    o_lat = np.einsum("hts,sr->thr", probs, c_kv)  # [T, nh, R]
    o = np.einsum("hvr,thr->thv", v_b, o_lat).reshape(n_tok, hp.n_head * hp.v_head)
    return o @ w[f"blk.{il}.attn_output.weight"].T


def attention(hp: Hparams, w: dict[str, np.ndarray], il: int, x: np.ndarray, inv_freq: np.ndarray) -> np.ndarray:
    """Absorbed MLA over a full causal sequence. x: [T, n_embd] (already normed)."""
    n_tok = len(x)
    q_lat, q_pe, c_kv, k_pe, v_b = mla_project(hp, w, il, x, np.arange(n_tok, dtype=np.float64), inv_freq)
    causal = np.tril(np.ones((n_tok, n_tok), dtype=bool))
    return mla_attend(hp, w, il, q_lat, q_pe, c_kv, k_pe, v_b, causal)


def swiglu(x: np.ndarray, gate: np.ndarray, up: np.ndarray, down: np.ndarray) -> np.ndarray:
    return (silu(x @ gate.T) * (x @ up.T)) @ down.T


def select_experts(hp: Hparams, choice: np.ndarray, stats: dict | None = None) -> np.ndarray:
    """Group-limited top-k over the selection scores `choice` [E]; returns expert ids [k].

    Group score: sum of the top-2 (sigmoid gating, V3) or max (softmax gating, V2);
    dropped groups are masked to -inf (V3) or 0.0 (V2). If `stats` is given, the
    smallest gap between the last chosen and the first rejected group / expert is
    recorded in `stats["margin"]`, i.e. how far the decision is from a tie.
    """
    per_group = hp.n_expert // hp.n_group
    grouped = choice.reshape(hp.n_group, per_group)
    if hp.gating == GATING_SIGMOID:
        group_score, fill = np.sort(grouped, axis=-1)[:, -2:].sum(axis=-1), -np.inf
    else:
        group_score, fill = grouped.max(axis=-1), 0.0
    margins = []
    if hp.n_group_used < hp.n_group:
        order = np.argsort(-group_score, kind="stable")
        margins.append(group_score[order[hp.n_group_used - 1]] - group_score[order[hp.n_group_used]])
        kept = np.zeros(hp.n_group, dtype=bool)
        kept[order[: hp.n_group_used]] = True
        choice = np.where(np.repeat(kept, per_group), choice, fill)
    k = hp.n_expert_used
    order = np.argsort(-choice, kind="stable")
    margins.append(choice[order[k - 1]] - choice[order[k]])
    if stats is not None:
        stats["margin"] = min(stats["margin"], *margins)
    return order[:k]


def route(hp: Hparams, logits: np.ndarray, bias: np.ndarray | None, stats: dict) -> tuple[np.ndarray, np.ndarray]:
    """Pick experts for one token from router logits [E]. Returns (expert ids [k], weights [k]).

    Also counts, for fixture coverage, decisions that the group limit
    (`stats["group_changed"]`) or the V3 selection bias (`stats["bias_changed"]`) altered.
    """
    if hp.gating == GATING_SIGMOID:
        probs = 1.0 / (1.0 + np.exp(-logits))
        choice = probs + (bias if bias is not None else 0.0)  # bias steers selection only
    elif hp.gating == GATING_SOFTMAX:
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        choice = probs
    else:
        raise ValueError(f"unsupported expert_gating_func {hp.gating}")
    idx = select_experts(hp, choice, stats)

    ungrouped = select_experts(replace(hp, n_group_used=hp.n_group), choice)
    stats["group_changed"] += set(idx) != set(ungrouped)
    if bias is not None:
        stats["bias_changed"] += set(idx) != set(select_experts(hp, probs))

    weights = probs[idx]
    if hp.weights_norm:
        weights = weights / (weights.sum() + 1e-20)
    return idx, weights * hp.weights_scale


def moe(hp: Hparams, w: dict[str, np.ndarray], il: int, x: np.ndarray, stats: dict) -> np.ndarray:
    """Routed experts + shared experts. x: [T, n_embd] (already normed)."""
    p = f"blk.{il}."
    gate_exps, up_exps, down_exps = (w[p + f"ffn_{n}_exps.weight"] for n in ("gate", "up", "down"))
    logits = x @ w[p + "ffn_gate_inp.weight"].T  # [T, E]
    bias = w.get(p + "exp_probs_b.bias")
    out = swiglu(x, w[p + "ffn_gate_shexp.weight"], w[p + "ffn_up_shexp.weight"], w[p + "ffn_down_shexp.weight"])
    for t in range(len(x)):
        stats["decisions"] += 1
        idx, weights = route(hp, logits[t], bias, stats)
        for e, we in zip(idx, weights):
            out[t] += we * swiglu(x[t], gate_exps[e], up_exps[e], down_exps[e])
    return out


def forward(path: str | Path, tokens: list[int]) -> tuple[np.ndarray, dict]:
    """Causal logits [len(tokens), n_vocab] (float64) for the GGUF at `path`.

    Also returns routing stats: "margin" (smallest gap to a tie, inf without MoE),
    "decisions" (token x MoE layer), "group_changed", "bias_changed" (see `route`).
    """
    hp, w = read_gguf(path)
    inv_freq = rope_inv_freq(hp)
    stats = {"margin": math.inf, "decisions": 0, "group_changed": 0, "bias_changed": 0}
    x = w["token_embd.weight"][np.asarray(tokens)]
    for il in range(hp.n_layer):
        p = f"blk.{il}."
        x = x + attention(hp, w, il, rms_norm(x, w[p + "attn_norm.weight"], hp.rms_eps), inv_freq)
        x = x + ffn(hp, w, il, x, stats)
    x = rms_norm(x, w["output_norm.weight"], hp.rms_eps)
    head = w.get("output.weight", w["token_embd.weight"])  # tied when output.weight is absent
    return x @ head.T, stats


def ring_slot(n: int, capacity: int, n_sink: int) -> int:
    """Cache slot written by the n-th token (0-based): slots fill in order; once full, the
    C - S non-sink slots are reused round-robin, so the oldest non-sink row is overwritten."""
    if n < capacity:
        return n
    return n_sink + (n - capacity) % (capacity - n_sink)


def forward_ring(path: str | Path, tokens: list[int], capacity: int, n_sink: int) -> tuple[np.ndarray, dict]:
    """Streaming absorbed-MLA decode with a ring latent cache of `capacity` rows and `n_sink` sinks.

    Tokens are fed one at a time at absolute positions 0, 1, ...; at every layer the token's
    (c_kv, rotated k_pe) row is written to `ring_slot(...)` first, then the token attends over
    every occupied slot (its own row included). RoPE uses the absolute position, and a cached
    k_pe keeps the rotation of its own position. Returns (logits [T, n_vocab] float64, routing stats).
    """
    if not 0 <= n_sink < capacity:
        raise ValueError(f"need 0 <= n_sink < capacity, got n_sink={n_sink}, capacity={capacity}")
    hp, w = read_gguf(path)
    inv_freq = rope_inv_freq(hp)
    stats = {"margin": math.inf, "decisions": 0, "group_changed": 0, "bias_changed": 0}
    c_ring = np.zeros((hp.n_layer, capacity, hp.kv_lora_rank))
    k_ring = np.zeros((hp.n_layer, capacity, hp.qk_rope))
    head = w.get("output.weight", w["token_embd.weight"])
    logits = []
    for n, token in enumerate(tokens):
        slot, used = ring_slot(n, capacity, n_sink), min(n + 1, capacity)
        x = w["token_embd.weight"][[token]]  # [1, n_embd]
        for il in range(hp.n_layer):
            h = rms_norm(x, w[f"blk.{il}.attn_norm.weight"], hp.rms_eps)
            q_lat, q_pe, c_kv, k_pe, v_b = mla_project(hp, w, il, h, np.array([float(n)]), inv_freq)
            c_ring[il, slot], k_ring[il, slot] = c_kv[0], k_pe[0]
            x = x + mla_attend(hp, w, il, q_lat, q_pe, c_ring[il, :used], k_ring[il, :used], v_b,
                               np.ones((1, used), dtype=bool))
            x = x + ffn(hp, w, il, x, stats)
        logits.append((rms_norm(x, w["output_norm.weight"], hp.rms_eps) @ head.T)[0])
    return np.stack(logits), stats


def ffn(hp: Hparams, w: dict[str, np.ndarray], il: int, x: np.ndarray, stats: dict) -> np.ndarray:
    """Layer il's feed-forward block on the residual stream x (normed here): dense or MoE."""
    p = f"blk.{il}."
    h = rms_norm(x, w[p + "ffn_norm.weight"], hp.rms_eps)
    if il < hp.n_dense_lead:
        return swiglu(h, w[p + "ffn_gate.weight"], w[p + "ffn_up.weight"], w[p + "ffn_down.weight"])
    return moe(hp, w, il, h, stats)


def forward_shift(path: str | Path, tokens: list[int], capacity: int, n_sink: int,
                  discard: int) -> tuple[np.ndarray, dict]:
    """Streaming absorbed-MLA decode with a context-shifting latent cache (StreamingLLM positions).

    The cache's slot i always holds position i. Tokens are fed one at a time; when all `capacity`
    slots are full, the rows in slots n_sink .. n_sink + discard - 1 are dropped and the later
    rows move down, so the next token takes position capacity - discard. Here every cached k_pe
    is kept unrotated and rotated for its current slot whenever it is attended (an engine
    re-rotates the stored key instead; RoPE rotations compose, so the scores are the same).
    Returns (logits [T, n_vocab] float64, routing stats).
    """
    if not (discard >= 1 and n_sink + discard <= capacity):
        raise ValueError(f"need discard >= 1 and n_sink + discard <= capacity, got {n_sink}, {discard}")
    hp, w = read_gguf(path)
    inv_freq = rope_inv_freq(hp)
    stats = {"margin": math.inf, "decisions": 0, "group_changed": 0, "bias_changed": 0}
    c_rows = [[] for _ in range(hp.n_layer)]  # per layer: c_kv of each slot
    k_raw = [[] for _ in range(hp.n_layer)]  # per layer: unrotated k_pe of each slot
    head = w.get("output.weight", w["token_embd.weight"])
    logits = []
    for token in tokens:
        if len(c_rows[0]) == capacity:
            for rows in (*c_rows, *k_raw):
                del rows[n_sink:n_sink + discard]
        pos = len(c_rows[0])
        x = w["token_embd.weight"][[token]]  # [1, n_embd]
        for il in range(hp.n_layer):
            h = rms_norm(x, w[f"blk.{il}.attn_norm.weight"], hp.rms_eps)
            q_lat, q_pe, c_kv, _, v_b = mla_project(hp, w, il, h, np.array([float(pos)]), inv_freq)
            c_rows[il].append(c_kv[0])
            k_raw[il].append((h @ w[f"blk.{il}.attn_kv_a_mqa.weight"].T)[0, hp.kv_lora_rank:])
            used = pos + 1
            k_pe = rope_adjacent(np.stack(k_raw[il]), np.arange(used, dtype=np.float64), inv_freq)
            x = x + mla_attend(hp, w, il, q_lat, q_pe, np.stack(c_rows[il]), k_pe, v_b,
                               np.ones((1, used), dtype=bool))
            x = x + ffn(hp, w, il, x, stats)
        logits.append((rms_norm(x, w["output_norm.weight"], hp.rms_eps) @ head.T)[0])
    return np.stack(logits), stats


def read_expected(path: str | Path) -> tuple[list[int], np.ndarray]:
    """Read a `TMLE` v1 expected-logits file: (token ids, logits [n_pos, n_vocab] f32)."""
    data = Path(path).read_bytes()
    magic, version, n_pos, n_vocab = struct.unpack_from("<4sIII", data, 0)
    if magic != b"TMLE" or version != 1:
        raise ValueError(f"{path}: not a TMLE v1 file")
    tokens = list(struct.unpack_from(f"<{n_pos}I", data, 16))
    logits = np.frombuffer(data, dtype="<f4", count=n_pos * n_vocab, offset=16 + 4 * n_pos)
    return tokens, logits.reshape(n_pos, n_vocab)


def read_expected_at(path: str | Path) -> tuple[list[int], list[int], np.ndarray]:
    """Read a `TMLE` v2 file: (token ids, the positions with logits, logits [n_pos, n_vocab] f32)."""
    data = Path(path).read_bytes()
    magic, version, n_tokens, n_pos, n_vocab = struct.unpack_from("<4sIIII", data, 0)
    if magic != b"TMLE" or version != 2:
        raise ValueError(f"{path}: not a TMLE v2 file")
    tokens = list(struct.unpack_from(f"<{n_tokens}I", data, 20))
    positions = list(struct.unpack_from(f"<{n_pos}I", data, 20 + 4 * n_tokens))
    offset = 20 + 4 * (n_tokens + n_pos)
    logits = np.frombuffer(data, dtype="<f4", count=n_pos * n_vocab, offset=offset)
    return tokens, positions, logits.reshape(n_pos, n_vocab)


SLIDE_FILE = re.compile(r"\.slide_c(\d+)_s(\d+)\.expected\.bin$")
QUANT_SUFFIXES = (".f16", ".q8_0")


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    worst = 0.0
    for gguf_path in map(Path, argv):
        stem = gguf_path.stem
        quantized = stem.endswith(QUANT_SUFFIXES)
        base = stem.rsplit(".", 1)[0] if quantized else stem
        tokens, expected = read_expected(gguf_path.with_name(base + ".expected.bin"))
        logits, stats = forward(gguf_path, tokens)
        diff = float(np.abs(logits - expected).max())
        if not quantized:
            worst = max(worst, diff)
        print(f"{gguf_path.name}: max |numpy_ref - {base}.expected| = {diff:.3e}"
              f"{' (quantized weights, not checked)' if quantized else ''}, "
              f"argmax agree {np.mean(logits.argmax(-1) == expected.argmax(-1)):.0%}, "
              f"min routing margin {stats['margin']:.3e}")
        if quantized:
            continue
        for slide_path in sorted(gguf_path.parent.glob(base + ".slide_c*_s*.expected.bin")):
            match = SLIDE_FILE.search(slide_path.name)
            if match is None:
                continue
            capacity, n_sink = int(match.group(1)), int(match.group(2))
            slide_tokens, slide_expected = read_expected(slide_path)
            ring, _ = forward_ring(gguf_path, slide_tokens, capacity, n_sink)
            diff = float(np.abs(ring - slide_expected).max())
            worst = max(worst, diff)
            print(f"  {slide_path.name}: max |forward_ring(C={capacity}, S={n_sink}) - expected| = {diff:.3e}")
    return 0 if worst < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env python3
"""Train tinymla's two bundled demo models (issue #8) on Debian's fortune cookies.

Both are transformers `DeepseekV3ForCausalLM`: MLA with q LoRA and decoupled RoPE, a dense first
layer, then MoE layers (sigmoid router with a selection bias, 2 routed experts active, 1 shared).
Every matrix row (each Linear's in_features, the embedding width, the per-head nope dim that
`attn_k_b` stores fastest) is a multiple of 32, so every matrix can be Q8_0.

    demo-s  ~200K parameters: the Q8_0 GGUF, tokenizer included, fits 256 KiB of flash
    demo-m  ~3.2M parameters: the host default

Corpus: the fortune cookie files of Debian's `fortunes` package (and `fortunes-min`, which it
depends on), read from /usr/share/games/fortunes/ where the package installs them; nothing is
downloaded and the corpus is not committed. Install it once:

    apt-get update && apt-get install -y fortunes

Licence (/usr/share/doc/fortunes/copyright): BSD (Regents of the University of California, the
advertising clause deleted); the "cookie" file is Karl Lehenbauer's alt.sources postings. Debian
ships it in main. The files in CORPUS_FILES are used (the ASCII-art file and the two files of
ethnic / men-vs-women jokes are left out). Each fortune is one document; overstrike sequences
(`___ BS BS BS AND`, `X BS X`) are resolved, other control characters (a few BELs) dropped and
duplicates removed. A document goes to the held-out split when the first 8 bytes of its sha256,
read little-endian, are 0 modulo 20 (692 of 14,385 documents, 49,554 of 1,033,904 tokens).

Tokenizer: byte-level BPE, vocab 1024 (256 bytes, BOS, EOS, 766 merges), `tokenizers`' BpeTrainer
on the training split only, DeepSeek-V3 pre-tokenizer, configured as scripts/gen_tokenizer_fixtures.py
does. Each document is encoded as BOS + text + EOS and the documents are concatenated into one
stream per split.

Training: AdamW (betas 0.9/0.95, weight decay 0.1 on matrices), linear warm-up then cosine decay to
10% of the peak learning rate, gradient clipping at 1.0, windows of SEQ_LEN + 1 tokens at seeded
random offsets of the training stream. After each step every router's selection bias moves by
BIAS_UPDATE_RATE against its expert's load (DeepSeek-V3's auxiliary-loss-free balancing), so the
GGUF's `exp_probs_b` is not zero.

Quantisation-aware training: the last QAT_FRAC (25%) of the steps run forward and backward on the
weights snapped to Q8_0 (class Q8Snap: every tensor the Q8_0 GGUF stores as Q8_0 replaced by its
gguf.quants round trip, blocks of 32 along each GGUF row, f16 block scale included), and the
optimizer updates the latent f32 weights with that gradient (straight-through estimator). The
training ends on the snapped weights, so every Q8_0 tensor lies on the Q8_0 grid: the F32 GGUF is
the Q8_0 GGUF dequantised, bit for bit (write_ggufs asserts it), the reference outputs below are
those of the model that ships at Q8_0, and tests/demo.rs rebuilds the F32 file from the committed
Q8_0 one (its sha256 is checked against files.f32_sha256), so no F32 file is committed.

Seeds are fixed, torch uses `--threads` threads (default 1) and deterministic algorithms; a re-run
with the same thread count and package versions reproduces the numbers.

Outputs, for each model NAME, in OUT (default models/):
    NAME.f32.gguf, NAME.q8_0.gguf   llama.cpp `deepseek2` layout (tensor names, keys and layouts
                                    from scripts/gen_fixtures.py), tokenizer embedded; Q8_0 with
                                    gguf.quants.quantize, 1-D tensors, the router ffn_gate_inp and
                                    exp_probs_b.bias stay F32, as llama.cpp's converter does
    NAME.train.csv                  step, tokens, lr, train loss, held-out loss, elapsed seconds
    NAME.loss.svg                   the two loss curves
    NAME.json                       what the Rust tests compare against: held-out perplexity (per
                                    token) and the exact slice of held-out token ids it was
                                    measured on, greedy continuations (32 new ids) of three
                                    prompts from transformers at f32, plus float64 NumPy checks
                                    of both GGUFs (scripts/numpy_ref.py)
    hf/NAME/                        the HF checkpoint (save_pretrained) and tokenizer.json; not
                                    committed (models/.gitignore)

Perplexity windows: the held-out stream is cut into windows of SEQ_LEN + 1 ids that overlap by one
id (window k = stream[k*SEQ_LEN : k*SEQ_LEN + SEQ_LEN + 1]); the model reads the first SEQ_LEN ids
of a window from position 0 and predicts ids 1..SEQ_LEN, so every held-out id after the first is
predicted exactly once. Perplexity = exp(total NLL / number of predicted ids).

Usage (the reference venv, scripts/requirements.txt):
    python scripts/train_demo.py [--out models] [--threads 1]   the full run, both models
    python scripts/train_demo.py --smoke                         a few steps each, into a temp dir
    python scripts/train_demo.py --probe 60                      60 s of training per model: steps/s
    --only demo-s|demo-m limits a run to one model.

Throughput (`--probe 50`, seq 256 x batch 16 = 4,096 tokens per step, 2-core machine, torch 2.15):

    threads  demo-s                 demo-m
    1        1.64 steps/s           0.380 steps/s (0.37 idle, 0.40 with a Rust build running)
    2        0.22-1.12 steps/s      0.59 steps/s idle, 0.05 steps/s with a Rust build running

Two threads barely help these small matrices and collapse when another process holds a core
(OpenMP threads wait for each other), so the default is one thread. Planned full run at one
thread: demo-s 1,500 steps (15 min), demo-m 800 steps (35 min), plus about 3 min of evaluation
and writing: about 53 min for both. The QAT steps cost little more (one gguf.quants round trip of
the weights per step). Measured with QAT, at one thread, the other core building Rust: demo-s
18.7 min of training (1.36 steps/s), demo-m 39.2 min (0.34 steps/s); 59.6 min for both with
the corpus, evaluation and outputs (19.4 + 40.2 min, run one model at a time with --only).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from importlib.metadata import version
from pathlib import Path

import gguf
import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import DeepseekV3Config, DeepseekV3ForCausalLM, DynamicCache
from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3TopkRouter

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_fixtures as gf  # noqa: E402  (GGUF layout, metadata, Q8_0 rules, checks)
import gen_tokenizer_fixtures as gt  # noqa: E402  (DeepSeek-V3 pre-tokenizer, BOS/EOS, GGUF vocab)
import numpy_ref  # noqa: E402  (float64 forward from the GGUF alone)

REPO = Path(__file__).resolve().parents[1]
CORPUS_DIR = Path("/usr/share/games/fortunes")
CORPUS_PACKAGE = "fortunes"
# Every fortune file of `fortunes` + `fortunes-min` except ascii-art (pictures), ethnic and men-women.
CORPUS_FILES = (
    "art", "computers", "cookie", "debian", "definitions", "disclaimer", "drugs", "education", "food",
    "fortunes", "goedel", "humorists", "kids", "knghtbrd", "law", "linux", "linuxcookie", "literature",
    "love", "magic", "medicine", "miscellaneous", "news", "paradoxum", "people", "perl", "pets",
    "platitudes", "politics", "pratchett", "riddles", "science", "songs-poems", "sports", "startrek",
    "tao", "translate-me", "wisdom", "work", "zippy",
)
HELDOUT_MODULUS = 20
VOCAB_SIZE = 1024
SEQ_LEN = 256
EVAL_WINDOWS = 32  # held-out windows behind the held-out loss logged during training
PPL_SLICE_WINDOWS = 4  # held-out windows whose ids go into NAME.json for the Rust tests
N_NEW_TOKENS = 32
PROMPTS = (
    "The meaning of life is",
    "Q: How many programmers does it take to change a light bulb?\nA:",
    "Never trust a",
)
BIAS_UPDATE_RATE = 1e-3
# The last QAT_FRAC of the steps train through the Q8_0 snap (Q8Snap): forward and backward on the
# snapped weights, the optimizer updating the latent f32 weights (a straight-through estimator).
QAT_FRAC = 0.25
FLASH_BYTES = 256 * 1024  # demo-s's Q8_0 file must fit
# Agreement of a GGUF, evaluated in float64 by numpy_ref, with transformers at f32:
# max |dlogit| / max |logit| over every checked position.
TOL_F32_GGUF = 1e-4
F32, Q8_0 = gf.F32, gf.Q8_0

# Shared by both models. 1e-6 because transformers hard-codes it for q_a / kv_a norms.
COMMON = dict(
    vocab_size=VOCAB_SIZE, rms_norm_eps=1e-6, initializer_range=0.02, hidden_act="silu", attention_bias=False,
    rope_parameters=dict(rope_type="default", rope_theta=10000.0), max_position_embeddings=SEQ_LEN,
    first_k_dense_replace=1, qk_nope_head_dim=32, qk_rope_head_dim=16, v_head_dim=32,
    num_experts_per_tok=2, n_shared_experts=1, n_group=1, topk_group=1, norm_topk_prob=True,
    routed_scaling_factor=1.0, bos_token_id=0, eos_token_id=1, pad_token_id=None,
)


@dataclass(frozen=True)
class Demo:
    """One demo model: shapes, seed and training budget."""

    name: str
    seed: int
    config: dict
    steps: int
    batch: int
    lr: float
    eval_every: int
    warmup_frac: float = 0.05
    weight_decay: float = 0.1
    qat_frac: float = QAT_FRAC

    @property
    def qat_start(self) -> int:
        """The first step trained on Q8_0-snapped weights (Q8Snap)."""
        return self.steps - round(self.qat_frac * self.steps) + 1


DEMOS = [
    Demo("demo-s", 2026_0801, dict(
        hidden_size=64, num_hidden_layers=3, intermediate_size=128, moe_intermediate_size=32, n_routed_experts=4,
        num_attention_heads=2, q_lora_rank=32, kv_lora_rank=32, tie_word_embeddings=True),
        steps=1500, batch=16, lr=3e-3, eval_every=50),
    Demo("demo-m", 2026_0802, dict(
        hidden_size=192, num_hidden_layers=5, intermediate_size=512, moe_intermediate_size=96, n_routed_experts=8,
        num_attention_heads=4, q_lora_rank=96, kv_lora_rank=64, tie_word_embeddings=False),
        steps=800, batch=16, lr=1.5e-3, eval_every=50),
]
# --smoke: the same shapes, a handful of steps, small batches, a short held-out set.
SMOKE = dict(steps=4, batch=2, eval_every=2)
SMOKE_EVAL_WINDOWS = 2
SMOKE_HELDOUT_WINDOWS = 6


# --------------------------------------------------------------------------- corpus and tokenizer


def resolve_overstrike(line: str) -> str:
    """What a printer shows for one line with backspaces: `___\\b\\b\\bAND` (underline) and `X\\bX` (bold)
    both print `AND` / `X`; a letter overstruck on `_` wins."""
    cells: list[str] = []
    cursor = 0
    for c in line:
        if c == "\b":
            cursor = max(0, cursor - 1)
            continue
        if cursor == len(cells):
            cells.append(c)
        elif c != "_":
            cells[cursor] = c
        cursor += 1
    return "".join(cells)


def read_corpus() -> list[str]:
    """Every fortune of CORPUS_FILES, in file order then in-file order, overstrike resolved, deduplicated."""
    if not CORPUS_DIR.is_dir():
        sys.exit(f"{CORPUS_DIR} not found: apt-get update && apt-get install -y {CORPUS_PACKAGE}")
    docs, seen = [], set()
    for name in CORPUS_FILES:
        text = (CORPUS_DIR / name).read_text(encoding="utf-8")
        for raw in re.split(r"^%\n", text, flags=re.MULTILINE):
            doc = "\n".join(map(resolve_overstrike, raw.split("\n")))
            doc = "".join(c for c in doc if c >= " " or c in "\n\t").rstrip()  # a few BELs
            if doc and doc not in seen:
                seen.add(doc)
                docs.append(doc)
    return docs


def is_heldout(doc: str) -> bool:
    return int.from_bytes(hashlib.sha256(doc.encode()).digest()[:8], "little") % HELDOUT_MODULUS == 0


def train_tokenizer(docs: list[str]) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = gt.pre_tokenizer("deepseek-v3")
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, min_frequency=2, show_progress=False,
                                  special_tokens=[gt.BOS, gt.EOS], initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(docs, trainer=trainer)
    assert tok.get_vocab_size() == VOCAB_SIZE, tok.get_vocab_size()
    assert (tok.token_to_id(gt.BOS), tok.token_to_id(gt.EOS)) == (0, 1)
    return tok


def encode_stream(tok: Tokenizer, docs: list[str]) -> np.ndarray:
    """BOS + ids + EOS per document, concatenated (int64)."""
    bos, eos = tok.token_to_id(gt.BOS), tok.token_to_id(gt.EOS)
    out = []
    for doc, enc in zip(docs, tok.encode_batch(docs, add_special_tokens=False)):
        assert tok.decode(enc.ids) == doc, doc[:80]  # byte-level BPE round-trips
        out += [bos, *enc.ids, eos]
    return np.asarray(out, dtype=np.int64)


def windows(stream: np.ndarray, n: int | None = None) -> torch.Tensor:
    """[n, SEQ_LEN + 1] ids: window k = stream[k*SEQ_LEN : k*SEQ_LEN + SEQ_LEN + 1] (consecutive overlap 1)."""
    count = (len(stream) - 1) // SEQ_LEN
    count = count if n is None else min(n, count)
    return torch.from_numpy(np.stack([stream[k * SEQ_LEN:k * SEQ_LEN + SEQ_LEN + 1] for k in range(count)]))


# --------------------------------------------------------------------------- model and training


def fixture(demo: Demo) -> gf.Fixture:
    """The gen_fixtures description, so its GGUF writer and checks apply unchanged."""
    return gf.Fixture(demo.name, "v3", demo.seed, "split", {**COMMON, **demo.config})


def build_model(demo: Demo) -> DeepseekV3ForCausalLM:
    torch.manual_seed(demo.seed)
    cfg = {**COMMON, **demo.config}
    # MLA expands K/V to every head: num_key_value_heads must equal the head count (V3Config defaults it to 128).
    config = DeepseekV3Config(**cfg, num_key_value_heads=cfg["num_attention_heads"],
                              attn_implementation="eager", experts_implementation="eager")
    return DeepseekV3ForCausalLM(config).to(torch.float32)


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def nll(model, batch: torch.Tensor) -> torch.Tensor:
    """Summed next-token NLL per window, [n] float64, for [n, SEQ_LEN + 1] ids."""
    logits = model(input_ids=batch[:, :-1], use_cache=False).logits.float()
    loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), batch[:, 1:], reduction="none")
    return loss.double().sum(dim=1)


@torch.no_grad()
def mean_nll(model, wins: torch.Tensor, batch: int = 16) -> float:
    total = sum(float(nll(model, wins[i:i + batch]).sum()) for i in range(0, len(wins), batch))
    return total / (wins.shape[0] * SEQ_LEN)


class BiasBalancer:
    """Auxiliary-loss-free load balancing (DeepSeek-V3 §2.1.2): after each step, every router's
    `e_score_correction_bias` moves by `rate` up for underloaded and down for overloaded experts."""

    def __init__(self, model, rate: float):
        self.rate = rate
        self.routers = [m for m in model.modules() if isinstance(m, DeepseekV3TopkRouter)]
        self.counts = [torch.zeros(r.num_experts) for r in self.routers]
        for router, counts in zip(self.routers, self.counts):
            router.register_forward_hook(self._hook(counts))
        self.active = False

    def _hook(self, counts: torch.Tensor):
        def hook(module, args, output):
            if self.active:
                counts.add_(torch.bincount(output[2].flatten(), minlength=module.num_experts).float())
        return hook

    @torch.no_grad()
    def step(self) -> None:
        for router, counts in zip(self.routers, self.counts):
            router.e_score_correction_bias.add_(self.rate * torch.sign(counts.mean() - counts))
            counts.zero_()

    @torch.no_grad()
    def loads(self, model, wins: torch.Tensor) -> list[list[float]]:
        """Fraction of routed slots per expert and MoE layer, over `wins` (no bias update)."""
        self.active = True
        model(input_ids=wins[:, :-1], use_cache=False)
        self.active = False
        loads = [(c / c.sum()).tolist() for c in self.counts]
        for c in self.counts:
            c.zero_()
        return loads


class Q8Snap:
    """Quantisation-aware training for the Q8_0 GGUF: every parameter element that the Q8_0 file
    stores as Q8_0 can be replaced by its Q8_0 round trip (gguf.quants quantize then dequantize,
    f16 block scale included), in the GGUF layout: blocks of 32 along each GGUF row, so `attn_k_b`
    (the nope part of kv_b_proj, stored transposed per head) is blocked along kv_b_proj's output
    axis and `attn_v_b` along kv_lora_rank. The snap goes through the same code as write_ggufs
    (gf.gguf_tensors, gf.quantize_like_converter), so it cannot drift from the file: a map from
    GGUF element to parameter element is built once by running gf.gguf_tensors on a state dict
    whose entries are their own element indices. Tensors the converter keeps F32 (1-D, norms,
    the router ffn_gate_inp, exp_probs_b) are never snapped."""

    def __init__(self, model, fx: gf.Fixture):
        self.model, self.fx = model, fx
        self.params = [p for _, p in model.named_parameters()]  # tied embedding/output counted once
        starts = np.cumsum([0] + [p.numel() for p in self.params])
        assert starts[-1] < 2**24, "element indices must be exact in float32"
        by_ptr = {p.data_ptr(): (start, p) for start, p in zip(starts, self.params)}
        index_sd = {}
        for k, v in model.state_dict().items():
            start, p = by_ptr.get(v.data_ptr(), (None, None))
            index_sd[k] = (torch.full_like(v, -1.0) if p is None else
                           torch.arange(start, start + p.numel(), dtype=torch.float32).reshape(p.shape))
        index_model = type("IndexModel", (), dict(config=model.config, state_dict=lambda self: index_sd))()
        self.index = {}
        for name, array in gf.gguf_tensors(index_model, fx).items():
            if gf.converter_qtype(name, array, Q8_0) == Q8_0:
                assert (array >= 0).all(), name
                self.index[name] = torch.from_numpy(array.astype(np.int64)).flatten()
        covered = torch.cat(list(self.index.values()))
        assert len(covered) == len(torch.unique(covered)), "a parameter element in two Q8_0 tensors"
        self.n_snapped = len(covered)

    @torch.no_grad()
    def snapped(self) -> list[torch.Tensor]:
        """Every parameter with its Q8_0 elements replaced by their Q8_0 round trip."""
        tensors = gf.gguf_tensors(self.model, self.fx)
        stored = gf.quantize_like_converter({n: tensors[n] for n in self.index}, Q8_0)
        flat = torch.cat([p.detach().flatten() for p in self.params])
        for name, idx in self.index.items():
            data, qtype = stored[name]
            assert qtype == Q8_0, name
            flat[idx] = torch.from_numpy(gguf.quants.dequantize(data, Q8_0)).flatten()
        return [chunk.view_as(p) for chunk, p in zip(flat.split([p.numel() for p in self.params]), self.params)]

    @torch.no_grad()
    def snap(self) -> list[torch.Tensor]:
        """Replaces the parameters by their snapped values; returns the previous values."""
        latent = [p.detach().clone() for p in self.params]
        for p, s in zip(self.params, self.snapped()):
            p.copy_(s)
        return latent

    @torch.no_grad()
    def restore(self, latent: list[torch.Tensor]) -> None:
        for p, v in zip(self.params, latent):
            p.copy_(v)


def lr_at(step: int, demo: Demo) -> float:
    warmup = max(1, round(demo.warmup_frac * demo.steps))
    if step < warmup:
        return demo.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, demo.steps - warmup)
    return demo.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(model, demo: Demo, train_stream: np.ndarray, eval_wins: torch.Tensor, snap: Q8Snap,
          max_seconds: float | None = None) -> tuple[list[dict], dict]:
    """Train in place. Returns the log rows and timing; stops early after max_seconds (--probe).

    From step demo.qat_start on, each step snaps the Q8_0 weights (snap.snap), runs forward and
    backward on them, restores the latent weights and applies the gradient to those: the
    straight-through estimator w + (snap(w) - w).detach(). Held-out losses logged from then on are
    the snapped model's. After the last step the model keeps its snapped weights, so the F32 GGUF
    equals the dequantised Q8_0 GGUF."""
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": demo.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=demo.lr, betas=(0.9, 0.95), eps=1e-8)
    balancer = BiasBalancer(model, BIAS_UPDATE_RATE)
    gen = torch.Generator().manual_seed(demo.seed + 1)
    data = torch.from_numpy(train_stream)
    offsets = torch.arange(SEQ_LEN + 1)
    rows, losses = [], []
    model.eval()
    rows.append(dict(step=0, tokens=0, lr=0.0, train_loss=float("nan"), heldout_loss=mean_nll(model, eval_wins),
                     elapsed_s=0.0))
    start = time.time()
    train_seconds, step, qat_entry = 0.0, 0, {}
    for step in range(1, demo.steps + 1):
        t0 = time.time()
        model.train()
        starts = torch.randint(0, len(data) - SEQ_LEN - 1, (demo.batch,), generator=gen)
        batch = data[starts[:, None] + offsets]
        for group in opt.param_groups:
            group["lr"] = lr_at(step - 1, demo)
        qat = step >= demo.qat_start
        if step == demo.qat_start and max_seconds is None:
            # Held-out loss of the f32 model entering QAT, and of its Q8_0 snap: what QAT has to recover.
            model.eval()
            qat_entry = dict(step=step - 1, heldout_loss=mean_nll(model, eval_wins))
            latent = snap.snap()
            qat_entry["snapped_heldout_loss"] = mean_nll(model, eval_wins)
            snap.restore(latent)
            print(f"  {demo.name} QAT from step {step}: held-out {qat_entry['heldout_loss']:.4f}, "
                  f"Q8_0-snapped {qat_entry['snapped_heldout_loss']:.4f}", flush=True)
            model.train()
        latent = snap.snap() if qat else None
        balancer.active = True
        loss = nll(model, batch).sum() / (demo.batch * SEQ_LEN)
        balancer.active = False
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if latent is not None:
            snap.restore(latent)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        balancer.step()
        losses.append(loss.item())
        train_seconds += time.time() - t0
        if step % demo.eval_every == 0 or step == demo.steps:
            model.eval()
            latent = snap.snap() if qat else None
            rows.append(dict(step=step, tokens=step * demo.batch * SEQ_LEN, lr=lr_at(step - 1, demo),
                             train_loss=float(np.mean(losses)), heldout_loss=mean_nll(model, eval_wins),
                             elapsed_s=time.time() - start))
            if latent is not None:
                snap.restore(latent)
            losses = []
            r = rows[-1]
            print(f"  {demo.name} step {step:5d}/{demo.steps}  lr {r['lr']:.2e}  train {r['train_loss']:.4f}"
                  f"  held-out {r['heldout_loss']:.4f}  {r['elapsed_s']:7.1f} s", flush=True)
        if max_seconds is not None and time.time() - start > max_seconds:
            break
    model.eval()
    if step >= demo.qat_start:
        snap.snap()  # the model keeps its snapped weights
    timing = dict(steps_done=step, train_seconds=train_seconds, wall_seconds=time.time() - start,
                  steps_per_s=step / train_seconds, tokens_per_s=step * demo.batch * SEQ_LEN / train_seconds,
                  qat_entry=qat_entry)
    return rows, timing


# --------------------------------------------------------------------------- reference outputs


@torch.no_grad()
def greedy(model, ids: list[int], n_new: int) -> tuple[list[int], float]:
    """n_new argmax ids after `ids` through a DynamicCache (no EOS stop), and the smallest top-1/top-2 gap."""
    cache = DynamicCache(config=model.config)
    logits = model(input_ids=torch.tensor([ids]), past_key_values=cache, use_cache=True).logits[0, -1]
    out, margin = [], math.inf
    for _ in range(n_new):
        top = torch.topk(logits, 2).values
        margin = min(margin, float(top[0] - top[1]))
        out.append(int(logits.argmax()))
        logits = model(input_ids=torch.tensor([[out[-1]]]), past_key_values=cache, use_cache=True).logits[0, -1]
    # The same ids from one full causal forward (no cache).
    full = model(input_ids=torch.tensor([ids + out]), use_cache=False).logits[0]
    assert full[len(ids) - 1:-1].argmax(-1).tolist() == out, "cached and full forward disagree"
    return out, margin


def numpy_ref_greedy(path: Path, ids: list[int], n_new: int) -> list[int]:
    out: list[int] = []
    for _ in range(n_new):
        logits, _ = numpy_ref.forward(path, ids + out)
        out.append(int(logits[-1].argmax()))
    return out


def numpy_ref_ppl(path: Path, wins: torch.Tensor) -> float:
    total = 0.0
    for w in wins.tolist():
        logits, _ = numpy_ref.forward(path, w[:-1])
        m = logits.max(axis=-1, keepdims=True)
        logp = logits - m - np.log(np.exp(logits - m).sum(axis=-1, keepdims=True))
        total -= float(logp[np.arange(SEQ_LEN), w[1:]].sum())
    return math.exp(total / (len(wins) * SEQ_LEN))


# --------------------------------------------------------------------------- GGUF


def tokenizer_metadata(tok: Tokenizer) -> tuple[list[tuple[str, str, object]], dict[str, list]]:
    tokens, types, merges = gt.gguf_vocab(tok)
    assert len(tokens) == VOCAB_SIZE
    meta = [("tokenizer.ggml.model", "str", "gpt2"), ("tokenizer.ggml.pre", "str", "deepseek-v3"),
            ("tokenizer.ggml.bos_token_id", "u32", tok.token_to_id(gt.BOS)),
            ("tokenizer.ggml.eos_token_id", "u32", tok.token_to_id(gt.EOS)),
            ("tokenizer.ggml.add_bos_token", "bool", True)]
    arrays = {"tokenizer.ggml.tokens": tokens, "tokenizer.ggml.token_type": types, "tokenizer.ggml.merges": merges}
    return meta, arrays


def write_ggufs(model, demo: Demo, tok: Tokenizer, out: Path) -> dict:
    """NAME.f32.gguf and NAME.q8_0.gguf, each read back and checked (keys, shapes, bytes, Q8_0 bound)."""
    fx = fixture(demo)
    tensors = gf.gguf_tensors(model, fx)
    tok_meta, arrays = tokenizer_metadata(tok)
    meta = [kv for kv in gf.gguf_metadata(fx, model.config) if not kv[0].startswith("tokenizer.")]
    meta = [(k, t, f"tinymla {demo.name}" if k == "general.name" else v) for k, t, v in meta] + tok_meta
    f32_path = out / f"{demo.name}.f32.gguf"
    gf.write_gguf(f32_path, meta, arrays, tensors)
    gf.check_gguf(f32_path, meta, arrays, tensors)
    stored = gf.quantize_like_converter(tensors, Q8_0)
    fallbacks = [n for n, (_, q) in stored.items() if q != gf.converter_qtype(n, tensors[n], Q8_0)]
    assert not fallbacks, f"rows not a multiple of 32: {fallbacks}"
    # QAT left every Q8_0 tensor on the Q8_0 grid: dequantising gives the F32 file's values bit for
    # bit, and quantising those again gives the same bytes.
    for name, (data, qtype) in stored.items():
        if qtype == Q8_0:
            deq = gguf.quants.dequantize(data, Q8_0)
            assert deq.shape == tensors[name].shape and np.array_equal(deq.view(np.uint32),
                                                                       tensors[name].view(np.uint32)), name
            assert np.array_equal(gguf.quants.quantize(deq, Q8_0), data), name
    q8_meta = gf.quantized_metadata(meta, gguf.LlamaFileType.MOSTLY_Q8_0)
    q8_path = out / f"{demo.name}.q8_0.gguf"
    gf.write_gguf(q8_path, q8_meta, arrays, {n: d for n, (d, _) in stored.items()},
                  {n: q for n, (_, q) in stored.items()})
    gf.check_gguf(q8_path, q8_meta, arrays, tensors, stored)
    q8_tensor_bytes = sum(d.nbytes for d, q in stored.values() if q == Q8_0)
    f32_tensor_bytes = sum(d.nbytes for d, q in stored.values() if q == F32)
    info = dict(f32_file_bytes=f32_path.stat().st_size, q8_0_file_bytes=q8_path.stat().st_size,
                q8_0_tensor_bytes=q8_tensor_bytes, q8_0_f32_tensor_bytes=f32_tensor_bytes,
                q8_0_tensors=sum(q == Q8_0 for _, q in stored.values()),
                f32_tensors=sum(q == F32 for _, q in stored.values()),
                f32_sha256=hashlib.sha256(f32_path.read_bytes()).hexdigest(),
                q8_0_sha256=hashlib.sha256(q8_path.read_bytes()).hexdigest())
    if demo.name == "demo-s":
        assert info["q8_0_file_bytes"] <= FLASH_BYTES, f"demo-s Q8_0 is {info['q8_0_file_bytes']} bytes"
    return info


# --------------------------------------------------------------------------- CSV and SVG


CSV_FIELDS = ("step", "tokens", "lr", "train_loss", "heldout_loss", "elapsed_s")


def write_csv(path: Path, rows: list[dict]) -> None:
    lines = [",".join(CSV_FIELDS)]
    for r in rows:
        lines.append(f"{r['step']},{r['tokens']},{r['lr']:.6g},{r['train_loss']:.6f},{r['heldout_loss']:.6f},"
                     f"{r['elapsed_s']:.1f}")
    path.write_text("\n".join(lines) + "\n")


def write_svg(path: Path, title: str, rows: list[dict]) -> None:
    """Train and held-out loss (nats per token) against step, as a hand-written SVG line chart."""
    w, h, left, right, top, bottom = 640, 400, 64, 20, 40, 48
    steps = [r["step"] for r in rows]
    series = [("train", "#1f77b4", [(r["step"], r["train_loss"]) for r in rows if math.isfinite(r["train_loss"])]),
              ("held-out", "#ff7f0e", [(r["step"], r["heldout_loss"]) for r in rows])]
    ys = [y for _, _, pts in series for _, y in pts]
    y_lo, y_hi = math.floor(min(ys) * 2) / 2, math.ceil(max(ys) * 2) / 2
    x_hi = max(steps) or 1

    def px(x: float) -> float:
        return left + (w - left - right) * x / x_hi

    def py(y: float) -> float:
        return top + (h - top - bottom) * (y_hi - y) / max(y_hi - y_lo, 1e-9)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
           'font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{w / 2}" y="20" text-anchor="middle" font-size="14">{title}</text>']
    n_y = max(1, round((y_hi - y_lo) / 0.5))
    step_y = (y_hi - y_lo) / n_y if n_y <= 12 else (y_hi - y_lo) / 8
    y = y_lo
    while y <= y_hi + 1e-9:
        out.append(f'<line x1="{left}" y1="{py(y):.1f}" x2="{w - right}" y2="{py(y):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{y:.1f}</text>')
        y += step_y
    x_step = 10 ** math.floor(math.log10(x_hi)) if x_hi >= 1 else 1
    if x_hi / x_step < 4:
        x_step /= 2
    x = 0.0
    while x <= x_hi + 1e-9:
        out.append(f'<line x1="{px(x):.1f}" y1="{h - bottom}" x2="{px(x):.1f}" y2="{h - bottom + 4}" stroke="black"/>')
        out.append(f'<text x="{px(x):.1f}" y="{h - bottom + 18}" text-anchor="middle">{x:g}</text>')
        x += x_step
    out.append(f'<polyline points="{left},{top} {left},{h - bottom} {w - right},{h - bottom}" fill="none" stroke="black"/>')
    out.append(f'<text x="{(left + w - right) / 2}" y="{h - 8}" text-anchor="middle">step</text>')
    out.append(f'<text x="14" y="{(top + h - bottom) / 2}" text-anchor="middle" '
               f'transform="rotate(-90 14 {(top + h - bottom) / 2})">loss (nats / token)</text>')
    for i, (label, colour, pts) in enumerate(series):
        coords = " ".join(f"{px(a):.1f},{py(b):.1f}" for a, b in pts)
        out.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2"/>')
        ly = top + 10 + 18 * i
        out.append(f'<line x1="{w - right - 110}" y1="{ly}" x2="{w - right - 86}" y2="{ly}" stroke="{colour}" '
                   'stroke-width="2"/>')
        out.append(f'<text x="{w - right - 80}" y="{ly + 4}">{label}</text>')
    out.append("</svg>")
    path.write_text("\n".join(out) + "\n")


# --------------------------------------------------------------------------- driver


@dataclass
class Data:
    tok: Tokenizer
    train: np.ndarray
    heldout: np.ndarray
    info: dict = field(default_factory=dict)


def prepare_data() -> Data:
    t0 = time.time()
    docs = read_corpus()
    train_docs = [d for d in docs if not is_heldout(d)]
    held_docs = [d for d in docs if is_heldout(d)]
    tok = train_tokenizer(train_docs)
    train_stream, held_stream = encode_stream(tok, train_docs), encode_stream(tok, held_docs)
    digest = hashlib.sha256("\n%\n".join(docs).encode()).hexdigest()
    try:
        pkg = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", CORPUS_PACKAGE], capture_output=True,
                             text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pkg = "unknown"
    info = dict(package=f"{CORPUS_PACKAGE} {pkg} (Debian)", dir=str(CORPUS_DIR), files=list(CORPUS_FILES),
                licence="BSD (Regents of the University of California, advertising clause deleted); "
                        "see /usr/share/doc/fortunes/copyright",
                documents=len(docs), train_documents=len(train_docs), heldout_documents=len(held_docs),
                train_chars=sum(map(len, train_docs)), heldout_chars=sum(map(len, held_docs)),
                train_tokens=len(train_stream), heldout_tokens=len(held_stream), text_sha256=digest,
                tokenizer_seconds=round(time.time() - t0, 1))
    print(f"corpus: {len(docs)} fortunes ({len(train_docs)} train / {len(held_docs)} held-out), "
          f"{len(train_stream)} / {len(held_stream)} tokens, {info['tokenizer_seconds']} s", flush=True)
    return Data(tok, train_stream, held_stream, info)


def run_demo(demo: Demo, data: Data, out: Path, smoke: bool, threads: int) -> dict:
    model = build_model(demo)
    fx = fixture(demo)
    count = n_params(model)
    for name, array in gf.gguf_tensors(model, fx).items():
        assert array.ndim < 2 or array.shape[-1] % 32 == 0, (name, array.shape)
    print(f"=== {demo.name}: {count:,} parameters, {demo.steps} steps x {demo.batch} x {SEQ_LEN}", flush=True)
    eval_wins = windows(data.heldout, SMOKE_EVAL_WINDOWS if smoke else EVAL_WINDOWS)
    snap = Q8Snap(model, fx)
    print(f"  QAT: steps {demo.qat_start}..{demo.steps} on {snap.n_snapped:,} Q8_0-snapped of {count:,} "
          f"parameters", flush=True)
    rows, timing = train(model, demo, data.train, eval_wins, snap)
    print(f"  {timing['steps_per_s']:.3f} steps/s, {timing['tokens_per_s']:.0f} tokens/s", flush=True)

    # Reference outputs come from the saved checkpoint, reloaded (eager attention and experts, f32).
    hf_dir = out / "hf"
    gf.save_hf(model, fx, hf_dir)
    data.tok.save(str(hf_dir / demo.name / "tokenizer.json"))
    ref = DeepseekV3ForCausalLM.from_pretrained(hf_dir / demo.name, attn_implementation="eager",
                                                experts_implementation="eager", dtype=torch.float32).eval()
    for (k, a), (k2, b) in zip(model.state_dict().items(), ref.state_dict().items()):
        assert k == k2 and torch.equal(a, b), k
    gf.check_architecture(ref, fx)

    held_wins = windows(data.heldout, SMOKE_HELDOUT_WINDOWS if smoke else None)
    heldout_nll = mean_nll(ref, held_wins)
    slice_wins = held_wins[:PPL_SLICE_WINDOWS]
    with torch.no_grad():
        slice_nll = nll(ref, slice_wins).tolist()
    slice_ppl = math.exp(sum(slice_nll) / (len(slice_wins) * SEQ_LEN))
    routing_loads = BiasBalancer(ref, 0.0).loads(ref, slice_wins)

    files = write_ggufs(ref, demo, data.tok, out)
    f32_path, q8_path = out / f"{demo.name}.f32.gguf", out / f"{demo.name}.q8_0.gguf"
    bos = data.tok.token_to_id(gt.BOS)
    prompts, worst_f32, q8_stats = [], 0.0, []
    for text in PROMPTS:
        ids = [bos] + data.tok.encode(text, add_special_tokens=False).ids
        new, margin = greedy(ref, ids, N_NEW_TOKENS)
        seq = ids + new
        with torch.no_grad():
            hf_logits = ref(input_ids=torch.tensor([seq]), use_cache=False).logits[0].double().numpy()
        np_logits, _ = numpy_ref.forward(f32_path, seq)
        worst_f32 = max(worst_f32, float(np.abs(np_logits - hf_logits).max() / np.abs(hf_logits).max()))
        assert (np_logits[len(ids) - 1:-1].argmax(-1) == new).all(), "F32 GGUF greedy differs"
        q8_logits, _ = numpy_ref.forward(q8_path, seq)
        q8_new = numpy_ref_greedy(q8_path, ids, N_NEW_TOKENS)
        prefix = next((i for i, (a, b) in enumerate(zip(q8_new, new)) if a != b), N_NEW_TOKENS)
        q8_stats.append(dict(
            rel_logit_err=float(np.abs(q8_logits - hf_logits).max() / np.abs(hf_logits).max()),
            teacher_forced_argmax_agree=float(np.mean(q8_logits[len(ids) - 1:-1].argmax(-1) == new)),
            greedy_ids=q8_new, greedy_prefix_equal=prefix))
        prompts.append(dict(text=text, ids=ids, new_ids=new, new_text=data.tok.decode(new, skip_special_tokens=False),
                            min_top2_margin=margin))
        print(f"  {text!r} ->{data.tok.decode(new, skip_special_tokens=False)!r}", flush=True)
    assert worst_f32 < TOL_F32_GGUF, worst_f32
    f32_slice_ppl = numpy_ref_ppl(f32_path, slice_wins)
    assert abs(f32_slice_ppl / slice_ppl - 1) < 1e-4, (f32_slice_ppl, slice_ppl)
    q8_slice_ppl = numpy_ref_ppl(q8_path, slice_wins)

    result = dict(
        name=demo.name, smoke=smoke, seed=demo.seed,
        config={k: v for k, v in {**COMMON, **demo.config}.items()},
        n_params=count, files=files,
        training=dict(steps=demo.steps, batch=demo.batch, seq_len=SEQ_LEN, lr=demo.lr, warmup_frac=demo.warmup_frac,
                      min_lr_frac=0.1, weight_decay=demo.weight_decay, betas=[0.9, 0.95], grad_clip=1.0,
                      bias_update_rate=BIAS_UPDATE_RATE, qat_frac=demo.qat_frac, qat_start=demo.qat_start,
                      qat_snapped_params=snap.n_snapped, threads=threads, **timing,
                      final_train_loss=rows[-1]["train_loss"], final_eval_heldout_loss=rows[-1]["heldout_loss"]),
        heldout=dict(windows=len(held_wins), predicted_tokens=len(held_wins) * SEQ_LEN, nll_per_token=heldout_nll,
                     perplexity=math.exp(heldout_nll)),
        ppl_slice=dict(
            description="each window: feed ids[0..SEQ_LEN) from position 0 (fresh cache), score ids[1..=SEQ_LEN]; "
                        "perplexity = exp(sum nll / predicted_tokens)",
            seq_len=SEQ_LEN, predicted_tokens=len(slice_wins) * SEQ_LEN, window_nll=slice_nll, perplexity=slice_ppl,
            numpy_ref_f32_perplexity=f32_slice_ppl, numpy_ref_q8_0_perplexity=q8_slice_ppl,
            windows=slice_wins.tolist()),
        greedy=dict(description=f"BOS + prompt ids, then {N_NEW_TOKENS} argmax ids from transformers (f32, "
                                "eager, DynamicCache), no stop at EOS", prompts=prompts),
        checks=dict(f32_gguf_numpy_ref_rel_logit_err=worst_f32, q8_0_gguf_numpy_ref=q8_stats,
                    expert_load_on_slice=routing_loads),
        tokenizer=dict(vocab_size=VOCAB_SIZE, bos_id=bos, eos_id=data.tok.token_to_id(gt.EOS), pre="deepseek-v3"),
        corpus=data.info,
        versions={p: version(p) for p in ("torch", "transformers", "tokenizers", "gguf", "numpy")}
        | {"python": platform.python_version()},
    )
    write_csv(out / f"{demo.name}.train.csv", rows)
    write_svg(out / f"{demo.name}.loss.svg",
              f"tinymla {demo.name}: {count:,} parameters, held-out perplexity {math.exp(heldout_nll):.2f}", rows)
    (out / f"{demo.name}.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"  held-out perplexity {math.exp(heldout_nll):.3f} (slice {slice_ppl:.3f}, Q8_0 slice "
          f"{q8_slice_ppl:.3f}); files {files['f32_file_bytes']:,} / {files['q8_0_file_bytes']:,} bytes", flush=True)
    return result


def probe(demos: list[Demo], data: Data, seconds: float) -> None:
    """Train each model for about `seconds` and print steps/s and the projected wall time of a full run."""
    eval_wins = windows(data.heldout, 4)
    total = 0.0
    for demo in demos:
        model = build_model(demo)
        _, timing = train(model, replace(demo, eval_every=10**9, qat_frac=1.0), data.train, eval_wins,
                          Q8Snap(model, fixture(demo)), max_seconds=seconds)
        projected = demo.steps / timing["steps_per_s"]
        total += projected
        print(f"probe {demo.name}: {timing['steps_done']} steps in {timing['train_seconds']:.1f} s = "
              f"{timing['steps_per_s']:.3f} steps/s ({timing['tokens_per_s']:.0f} tokens/s); "
              f"{demo.steps} steps -> {projected / 60:.1f} min", flush=True)
    print(f"probe: training both -> {total / 60:.1f} min (plus evaluation and outputs)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "models", help="output directory (default models/)")
    parser.add_argument("--smoke", action="store_true", help="a few steps per model, outputs to a temp dir")
    parser.add_argument("--probe", type=float, metavar="SECONDS", help="measure steps/s only; writes nothing")
    parser.add_argument("--only", choices=[d.name for d in DEMOS], help="train one model only")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, see the docstring)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    start = time.time()
    demos = [d for d in DEMOS if args.only in (None, d.name)]
    data = prepare_data()
    if args.probe is not None:
        probe(demos, data, args.probe)
        return 0
    if args.smoke:
        demos = [replace(d, **SMOKE) for d in demos]
        out = Path(tempfile.mkdtemp(prefix="tinymla-demo-smoke-"))
    else:
        out = args.out
    out.mkdir(parents=True, exist_ok=True)
    results = [run_demo(d, data, out, args.smoke, args.threads) for d in demos]
    for r in results:
        f = r["files"]
        print(f"{r['name']}: {r['n_params']:,} params, held-out ppl {r['heldout']['perplexity']:.3f}, "
              f"{r['training']['steps_per_s']:.3f} steps/s, Q8_0 {f['q8_0_file_bytes']:,} B, F32 {f['f32_file_bytes']:,} B")
    print(f"outputs in {out} ({(time.time() - start) / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

//! [`Model`]: per-layer weight views borrowed from a GGUF file, and the forward step.

use crate::batch::BatchScratch;
use crate::cache::LatentCache;
use crate::config::{ActivationPrecision, ModelConfig, ModelOptions, MoeConfig};
use crate::error::Error;
use crate::ffn::Mlp;
use crate::gguf::Gguf;
use crate::kernels;
use crate::mla::{self, LatentUp, MlaBuffers, MlaShape, MlaWeights, QueryProj};
use crate::moe::{self, BatchMoeBuffers, MoeBuffers, MoeWeights};
use crate::parallel::{Parallel, Serial};
use crate::rope;
use crate::scratch::Scratch;
use crate::tensor::{TensorId, TensorKind, TensorView};
use crate::weights::{Matrix, Vector};

mod packed;
mod sequences;

/// Layers a [`Model`] holds: enough for DeepSeek-V3 (61) and Kimi-K2. Boards with small models
/// use [`ModelWith`] with a smaller bound to save RAM (about 0.5 KB per layer slot).
pub const DEFAULT_MAX_LAYERS: usize = 64;

/// A DeepSeek-V2/V3 model with room for [`DEFAULT_MAX_LAYERS`] layers.
pub type Model<'a> = ModelWith<'a, DEFAULT_MAX_LAYERS>;

/// A loaded model whose weights are views into the GGUF bytes (nothing is copied), with room
/// for `MAX_LAYERS` layers.
///
/// Invariant: every weight has the dtype and shape the config implies, checked at load.
#[derive(Debug, Clone)]
pub struct ModelWith<'a, const MAX_LAYERS: usize> {
    config: ModelConfig,
    options: ModelOptions,
    /// `token_embd`: `[vocab][hidden]`.
    token_embd: Matrix<'a>,
    /// `output_norm`: `[hidden]`.
    output_norm: Vector<'a>,
    /// `output` `[vocab][hidden]`, or `token_embd` when tied.
    output: Matrix<'a>,
    is_tied: bool,
    fingerprint: u64,
    layers: heapless::Vec<Layer<'a>, MAX_LAYERS>,
    mla_shape: MlaShape,
}

#[derive(Debug, Clone, Copy)]
struct Layer<'a> {
    attn_norm: Vector<'a>,
    attn: MlaWeights<'a>,
    ffn_norm: Vector<'a>,
    ffn: Ffn<'a>,
}

// No allocator to box the larger variant; layers live inline in a fixed-size vector, so every
// slot is the size of the largest variant anyway.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy)]
enum Ffn<'a> {
    Dense(Mlp<'a>),
    Moe(MoeWeights<'a>),
}

impl<'a, const MAX_LAYERS: usize> ModelWith<'a, MAX_LAYERS> {
    /// Parses `bytes` as GGUF and loads a `deepseek2` model with default options.
    ///
    /// # Errors
    /// Any parse, config, missing-tensor, shape or dtype error; see [`Error`].
    pub fn load(bytes: &'a [u8]) -> Result<Self, Error> {
        Self::from_gguf(&Gguf::parse(bytes)?, ModelOptions::default())
    }

    /// Loads a model from a parsed file. Every tensor the config implies is looked up and
    /// checked for shape and dtype before any math runs.
    ///
    /// # Errors
    /// As [`ModelWith::load`], plus [`crate::ConfigError::InvalidValue`] if the model has more
    /// than `MAX_LAYERS` layers.
    pub fn from_gguf(gguf: &Gguf<'a>, options: ModelOptions) -> Result<Self, Error> {
        let config = ModelConfig::from_gguf(gguf)?;
        if config.num_hidden_layers > MAX_LAYERS {
            return Err(crate::ConfigError::InvalidValue(crate::config::KEY_BLOCK_COUNT).into());
        }
        let c = &config;
        let t = Tensors {
            gguf,
            check_finite: options.check_finite_weights,
            activations: options.activations,
        };
        let (hidden, vocab) = (c.hidden_size as u64, c.vocab_size as u64);
        let token_embd = t.matrix(TensorId::global(TensorKind::TokenEmbd), [hidden, vocab, 1])?;
        let output_norm = t.vector(TensorId::global(TensorKind::OutputNorm), c.hidden_size)?;
        let output_id = TensorId::global(TensorKind::Output);
        let (output, is_tied) = match t.find(output_id) {
            Some(_) => (t.matrix(output_id, [hidden, vocab, 1])?, false),
            None => (token_embd, true),
        };
        let mla_shape = MlaShape::of(c);
        let fingerprint = gguf.fingerprint();
        // The model is built once, with an empty layer vector that `load_layers` fills through
        // a reference. Loading the layers into a local vector and moving it in at the end
        // gave small MCUs more copies of the layers on the stack (one slot per unrolled
        // iteration, about 300 bytes each): see firmware/common/src/run.rs.
        let mut loaded = Ok(ModelWith {
            config,
            options,
            token_embd,
            output_norm,
            output,
            is_tied,
            fingerprint,
            layers: heapless::Vec::new(),
            mla_shape,
        });
        if let Ok(model) = &mut loaded {
            load_layers(&t, &model.config, &mut model.layers)?;
        }
        loaded
    }

    /// The validated hyperparameters.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The run-time options in force.
    pub fn options(&self) -> &ModelOptions {
        &self.options
    }

    /// The file's fingerprint ([`Gguf::fingerprint`]); cache snapshots carry it so they only
    /// restore into the model they came from.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// True when the LM head reuses the token embedding (no `output.weight` in the file).
    pub fn is_tied(&self) -> bool {
        self.is_tied
    }

    /// Runs one token at absolute position `cache.position()`, stores its latent rows in
    /// `cache` (evicting per the cache's overflow policy when full), and returns the
    /// next-token logits (`[vocab_size]`, living in `scratch`).
    ///
    /// On error nothing is stored and the cache is unchanged.
    ///
    /// # Errors
    /// [`Error::TokenOutOfRange`] if `token >= vocab_size`; [`Error::CacheFull`] if the cache
    /// is full under [`crate::OverflowPolicy::Error`]; [`Error::PositionBeyondContext`] past
    /// the trained context unless the cache allows it; [`Error::CacheMismatch`] if the cache
    /// was built for another model shape.
    pub fn forward<'s>(
        &self,
        token: u32,
        cache: &mut LatentCache<'_>,
        scratch: &'s mut Scratch<'_>,
    ) -> Result<&'s [f32], Error> {
        self.forward_with(token, cache, scratch, &Serial)
    }

    /// [`ModelWith::forward`] with the rows of large matrix-vector products spread over `par`
    /// (a host's thread pool). The logits are bit-identical to [`ModelWith::forward`]'s for any
    /// [`Parallel`] that keeps its contract.
    ///
    /// # Errors
    /// As [`ModelWith::forward`].
    pub fn forward_with<'s>(
        &self,
        token: u32,
        cache: &mut LatentCache<'_>,
        scratch: &'s mut Scratch<'_>,
        par: &dyn Parallel,
    ) -> Result<&'s [f32], Error> {
        let c = &self.config;
        let vocab_size = u32::try_from(c.vocab_size).unwrap_or(u32::MAX);
        if token >= vocab_size {
            return Err(Error::TokenOutOfRange { token, vocab_size });
        }
        if !cache.fits(c) {
            return Err(Error::CacheMismatch);
        }
        // Picks the slot (or fails: full cache, position past the context) before any write.
        let pos = cache.begin(c.context_length)?;
        let s = scratch;

        self.token_embd.row_into(token as usize, s.x);
        rope::fill_table(s.inv_freqs, pos, s.rope);

        for (l, layer) in self.layers.iter().enumerate() {
            layer.attn_norm.rms_norm(s.xn, s.x, c.rms_norm_eps);
            let bufs = MlaBuffers {
                q_a: s.q_a,
                q: s.q,
                kv_a: s.kv_a,
                q_abs: s.q_abs,
                scores: s.scores,
                lat_out: s.lat_out,
                attn_out: s.attn_out,
                attn_work: s.attn_work,
                rope: s.rope,
                out: s.acc,
            };
            mla::forward(&self.mla_shape, &layer.attn, l, s.xn, cache, bufs, par);
            kernels::add_assign(s.x, s.acc);

            layer.ffn_norm.rms_norm(s.xn, s.x, c.rms_norm_eps);
            match (&layer.ffn, &c.moe) {
                (Ffn::Dense(mlp), _) => mlp.forward(s.xn, s.ffn_hidden, s.acc, par),
                (Ffn::Moe(w), Some(m)) => {
                    let bufs = MoeBuffers {
                        router: s.router,
                        hidden: s.ffn_hidden,
                        expert_out: s.expert_out,
                    };
                    moe::forward(m, &self.options, w, s.xn, bufs, s.acc, par);
                }
                (Ffn::Moe(_), None) => s.acc.fill(0.0),
            }
            kernels::add_assign(s.x, s.acc);
        }
        cache.commit();

        self.output_norm.rms_norm(s.xn, s.x, c.rms_norm_eps);
        self.output.matvec(s.xn, s.logits, par);
        Ok(s.logits)
    }

    /// Runs `tokens` (a prompt, or its continuation) at positions `cache.position() ..`,
    /// stores their latent rows in `cache`, and returns the logits after the last token. The
    /// result and the cache are bit-identical to calling [`ModelWith::forward_with`] once per
    /// token, but up to [`BatchScratch::max_tokens`] tokens go through each layer together,
    /// so every weight row is read once per batch instead of once per token (prefill is
    /// bound by compute, not memory bandwidth). Tokens that would evict (a full cache under
    /// [`crate::OverflowPolicy::Slide`]) run one at a time; under
    /// [`crate::OverflowPolicy::Shift`] the token that meets a full cache runs alone (it
    /// shifts the cache) and batching resumes in the freed slots.
    ///
    /// Everything is checked before anything is stored: on error the cache is unchanged.
    ///
    /// # Errors
    /// [`Error::InvalidBatch`] for no tokens; otherwise those [`ModelWith::forward`] would
    /// return for the first token that fails: [`Error::TokenOutOfRange`],
    /// [`Error::CacheMismatch`], [`Error::PositionBeyondContext`], [`Error::CacheFull`] (the
    /// cache lacks room for all of `tokens` under [`crate::OverflowPolicy::Error`]).
    pub fn forward_batch<'s>(
        &self,
        tokens: &[u32],
        cache: &mut LatentCache<'_>,
        scratch: &'s mut Scratch<'_>,
        batch: &mut BatchScratch<'_>,
        par: &dyn Parallel,
    ) -> Result<&'s [f32], Error> {
        if let Some(last) = self.run_batch(tokens, cache, scratch, batch, par)? {
            let (c, h) = (&self.config, batch.w.hidden);
            let x = batch.x.get(last * h..(last + 1) * h).unwrap_or(&[]);
            self.output_norm.rms_norm(scratch.xn, x, c.rms_norm_eps);
            self.output.matvec(scratch.xn, scratch.logits, par);
        }
        Ok(scratch.logits)
    }

    /// [`ModelWith::forward_batch`] without the LM head: `tokens` go into `cache` exactly as
    /// there (same rows, same errors, nothing stored on error), but no logits are computed
    /// (one product over the whole vocabulary saved). For every piece of a prompt fed in
    /// pieces but the last one, whose logits nobody reads.
    ///
    /// # Errors
    /// As [`ModelWith::forward_batch`].
    pub fn prefill(
        &self,
        tokens: &[u32],
        cache: &mut LatentCache<'_>,
        scratch: &mut Scratch<'_>,
        batch: &mut BatchScratch<'_>,
        par: &dyn Parallel,
    ) -> Result<(), Error> {
        self.run_batch(tokens, cache, scratch, batch, par).map(|_| ())
    }

    /// [`ModelWith::forward_batch`]'s checks and layers: the index in `batch` of the last
    /// token when it ran in a batch (its residual stream is then in `batch.x`; a token run
    /// alone leaves its logits in `scratch`).
    fn run_batch(
        &self,
        tokens: &[u32],
        cache: &mut LatentCache<'_>,
        scratch: &mut Scratch<'_>,
        batch: &mut BatchScratch<'_>,
        par: &dyn Parallel,
    ) -> Result<Option<usize>, Error> {
        let c = &self.config;
        if tokens.is_empty() {
            let max = u32::try_from(BatchScratch::MAX_TOKENS).unwrap_or(u32::MAX);
            return Err(Error::InvalidBatch { max });
        }
        let vocab_size = u32::try_from(c.vocab_size).unwrap_or(u32::MAX);
        if let Some(&token) = tokens.iter().find(|&&t| t >= vocab_size) {
            return Err(Error::TokenOutOfRange { token, vocab_size });
        }
        if !cache.fits(c) {
            return Err(Error::CacheMismatch);
        }
        cache.check_room(tokens.len(), c.context_length)?;

        let mut rest = tokens;
        let mut last_batched = None;
        while !rest.is_empty() {
            let n = cache.free_slots().min(batch.max_tokens).min(rest.len());
            if n == 0 {
                // A full sliding cache: this token evicts (or shifts), so it runs on its own.
                if let Some((&token, tail)) = rest.split_first() {
                    self.forward_with(token, cache, scratch, par)?;
                    rest = tail;
                }
                last_batched = None;
                continue;
            }
            let (chunk, tail) = rest.split_at(n);
            self.forward_chunk(chunk, cache, scratch, batch, par);
            rest = tail;
            last_batched = Some(n - 1);
        }
        Ok(last_batched)
    }

    /// `tokens` (`1 ..= free_slots`, `<= batch.max_tokens`, all checked) through every layer
    /// together, committed to the cache; the residual streams are left in `batch.x`.
    fn forward_chunk(
        &self,
        tokens: &[u32],
        cache: &mut LatentCache<'_>,
        s: &Scratch<'_>,
        b: &mut BatchScratch<'_>,
        par: &dyn Parallel,
    ) {
        let n = tokens.len();
        let pos0 = cache.position();
        self.embed_batch(tokens, |i| pos0 + i as u64, s, b);
        self.layers_batch(n, cache, b, par);
        cache.commit_batch(n);
    }

    /// The batch's input rows: `tokens`' embeddings into `b.x`, and token `i`'s RoPE table for
    /// position `position(i)` into `b.rope`.
    fn embed_batch(
        &self,
        tokens: &[u32],
        position: impl Fn(usize) -> u64,
        s: &Scratch<'_>,
        b: &mut BatchScratch<'_>,
    ) {
        let w = b.w;
        for (x, &token) in b.x.chunks_exact_mut(w.hidden.max(1)).zip(tokens) {
            self.token_embd.row_into(token as usize, x);
        }
        for (i, rope) in b.rope.chunks_exact_mut(w.rope.max(1)).take(tokens.len()).enumerate() {
            rope::fill_table(s.inv_freqs, position(i), rope);
        }
    }

    /// `n` tokens' residual streams (`b.x`, with their RoPE tables in `b.rope`) through every
    /// layer together, their rows stored through `caches` (committed by the caller).
    fn layers_batch<C: mla::BatchCaches + ?Sized>(
        &self,
        n: usize,
        caches: &mut C,
        b: &mut BatchScratch<'_>,
        par: &dyn Parallel,
    ) {
        let c = &self.config;
        let w = b.w;
        let h = w.hidden.max(1);
        for (l, layer) in self.layers.iter().enumerate() {
            for (xn, x) in b.xn.chunks_exact_mut(h).zip(b.x.chunks_exact(h)).take(n) {
                layer.attn_norm.rms_norm(xn, x, c.rms_norm_eps);
            }
            let bufs = mla::BatchMlaBuffers {
                q_a: b.q_a,
                q: b.q,
                kv_a: b.kv_a,
                attn: b.attn,
                rope: b.rope,
                out: b.acc,
                tmp: b.tmp,
                blocks: b.blocks,
            };
            let shape = &self.mla_shape;
            mla::forward_batch(shape, &layer.attn, l, b.xn, n, &w.mla(), caches, bufs, par);
            for (x, acc) in b.x.chunks_exact_mut(h).zip(b.acc.chunks_exact(h)).take(n) {
                kernels::add_assign(x, acc);
            }

            for (xn, x) in b.xn.chunks_exact_mut(h).zip(b.x.chunks_exact(h)).take(n) {
                layer.ffn_norm.rms_norm(xn, x, c.rms_norm_eps);
            }
            match (&layer.ffn, &c.moe) {
                (Ffn::Dense(mlp), _) => mlp.forward_batch(
                    b.xn,
                    w.hidden,
                    n,
                    b.ffn,
                    w.ffn,
                    b.acc,
                    w.hidden,
                    (&mut *b.tmp, &mut *b.blocks),
                    par,
                ),
                (Ffn::Moe(weights), Some(m)) => {
                    let bufs = BatchMoeBuffers {
                        router: b.router,
                        hidden: b.ffn,
                        width: w.ffn,
                        gathered: b.gathered,
                        gathered_out: b.gathered_out,
                        expert_out: b.expert_out,
                        tmp: b.tmp,
                        blocks: b.blocks,
                    };
                    moe::forward_batch(
                        m,
                        &self.options,
                        weights,
                        b.xn,
                        n,
                        w.hidden,
                        bufs,
                        b.acc,
                        par,
                    );
                }
                (Ffn::Moe(_), None) => b.acc.fill(0.0),
            }
            for (x, acc) in b.x.chunks_exact_mut(h).zip(b.acc.chunks_exact(h)).take(n) {
                kernels::add_assign(x, acc);
            }
        }
    }
}

/// Tensor lookup with typed errors.
struct Tensors<'g, 'a> {
    gguf: &'g Gguf<'a>,
    check_finite: bool,
    activations: ActivationPrecision,
}

impl<'a> Tensors<'_, 'a> {
    fn find(&self, id: TensorId) -> Option<TensorView<'a>> {
        self.gguf.find_tensor(|name| id.matches(name))
    }

    fn get(&self, id: TensorId) -> Result<TensorView<'a>, Error> {
        self.find(id).ok_or(Error::MissingTensor(id))
    }

    fn matrix(&self, id: TensorId, ne: [u64; 3]) -> Result<Matrix<'a>, Error> {
        let m = Matrix::new(id, &self.get(id)?, ne)?.with_activations(self.activations);
        if self.check_finite && !m.is_finite() {
            return Err(Error::NonFiniteWeight(id));
        }
        Ok(m)
    }

    fn vector(&self, id: TensorId, len: usize) -> Result<Vector<'a>, Error> {
        let v = Vector::new(id, &self.get(id)?, len)?;
        if self.check_finite && !v.is_finite() {
            return Err(Error::NonFiniteWeight(id));
        }
        Ok(v)
    }
}

/// Loads every layer into `layers`. Out of line so that the per-layer temporaries get a frame
/// of their own, not slots in a frame that already holds the whole model.
#[inline(never)]
fn load_layers<'a, const MAX_LAYERS: usize>(
    t: &Tensors<'_, 'a>,
    c: &ModelConfig,
    layers: &mut heapless::Vec<Layer<'a>, MAX_LAYERS>,
) -> Result<(), Error> {
    for l in 0..c.num_hidden_layers {
        let layer = load_layer(t, c, l)?;
        if layers.push(layer).is_err() {
            return Err(crate::ConfigError::InvalidValue(crate::config::KEY_BLOCK_COUNT).into());
        }
    }
    Ok(())
}

fn load_layer<'a>(t: &Tensors<'_, 'a>, c: &ModelConfig, l: usize) -> Result<Layer<'a>, Error> {
    let layer = u16::try_from(l).map_err(|_| Error::SizeOverflow)?;
    let id = |kind| TensorId::layer(layer, kind);
    let u = |v: usize| v as u64;
    let (hidden, heads) = (u(c.hidden_size), u(c.num_attention_heads));
    let (nope, rope, v_head, kv_lora) =
        (u(c.qk_nope_head_dim), u(c.qk_rope_head_dim), u(c.v_head_dim), u(c.kv_lora_rank));
    let qk = nope + rope;

    let q = match c.q_lora_rank {
        None => QueryProj::Direct(t.matrix(id(TensorKind::AttnQ), [hidden, heads * qk, 1])?),
        Some(r) => QueryProj::LoRA {
            a: t.matrix(id(TensorKind::AttnQA), [hidden, u(r), 1])?,
            norm: t.vector(id(TensorKind::AttnQANorm), r)?,
            b: t.matrix(id(TensorKind::AttnQB), [u(r), heads * qk, 1])?,
        },
    };
    // Prefer the split layout that current converters write; fall back to legacy attn_kv_b.
    let up = match t.find(id(TensorKind::AttnKB)) {
        Some(_) => LatentUp::Split {
            k_b: t.matrix(id(TensorKind::AttnKB), [nope, kv_lora, heads])?,
            v_b: t.matrix(id(TensorKind::AttnVB), [kv_lora, v_head, heads])?,
        },
        None => match t.find(id(TensorKind::AttnKvB)) {
            Some(_) => LatentUp::Joint {
                kv_b: t.matrix(id(TensorKind::AttnKvB), [kv_lora, heads * (nope + v_head), 1])?,
            },
            None => return Err(Error::MissingTensor(id(TensorKind::AttnKB))),
        },
    };
    let attn = MlaWeights {
        q,
        kv_a: t.matrix(id(TensorKind::AttnKvAMqa), [hidden, kv_lora + rope, 1])?,
        kv_a_norm: t.vector(id(TensorKind::AttnKvANorm), c.kv_lora_rank)?,
        up,
        output: t.matrix(id(TensorKind::AttnOutput), [heads * v_head, hidden, 1])?,
    };
    let ffn = match (c.is_moe_layer(l), &c.moe) {
        (true, Some(m)) => Ffn::Moe(load_moe(t, c, m, layer)?),
        _ => {
            let inter = u(c.intermediate_size);
            Ffn::Dense(Mlp {
                gate: t.matrix(id(TensorKind::FfnGate), [hidden, inter, 1])?,
                up: t.matrix(id(TensorKind::FfnUp), [hidden, inter, 1])?,
                down: t.matrix(id(TensorKind::FfnDown), [inter, hidden, 1])?,
            })
        }
    };
    Ok(Layer {
        attn_norm: t.vector(id(TensorKind::AttnNorm), c.hidden_size)?,
        attn,
        ffn_norm: t.vector(id(TensorKind::FfnNorm), c.hidden_size)?,
        ffn,
    })
}

fn load_moe<'a>(
    t: &Tensors<'_, 'a>,
    c: &ModelConfig,
    m: &MoeConfig,
    layer: u16,
) -> Result<MoeWeights<'a>, Error> {
    let id = |kind| TensorId::layer(layer, kind);
    let u = |v: usize| v as u64;
    let (hidden, n_exp, inter) =
        (u(c.hidden_size), u(m.n_routed_experts), u(m.moe_intermediate_size));
    let bias_id = id(TensorKind::ExpProbsB);
    let bias = match t.find(bias_id) {
        Some(_) => Some(t.vector(bias_id, m.n_routed_experts)?),
        None => None,
    };
    let shared = if m.n_shared_experts > 0 {
        let width = inter * u(m.n_shared_experts);
        Some(Mlp {
            gate: t.matrix(id(TensorKind::FfnGateShexp), [hidden, width, 1])?,
            up: t.matrix(id(TensorKind::FfnUpShexp), [hidden, width, 1])?,
            down: t.matrix(id(TensorKind::FfnDownShexp), [width, hidden, 1])?,
        })
    } else {
        None
    };
    Ok(MoeWeights {
        router: t.matrix(id(TensorKind::FfnGateInp), [hidden, n_exp, 1])?,
        bias,
        experts: Mlp {
            gate: t.matrix(id(TensorKind::FfnGateExps), [hidden, inter, n_exp])?,
            up: t.matrix(id(TensorKind::FfnUpExps), [hidden, inter, n_exp])?,
            down: t.matrix(id(TensorKind::FfnDownExps), [inter, hidden, n_exp])?,
        },
        shared,
    })
}

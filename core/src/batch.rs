//! [`BatchScratch`]: the caller-provided buffers of a batched forward step
//! ([`crate::ModelWith::forward_batch`]), which runs up to [`BatchScratch::MAX_TOKENS`] prompt
//! tokens through each layer together so that every weight row is read once per batch.

use crate::config::ModelConfig;
use crate::error::{BufferKind, Error};
use crate::mla::{AttnState, MlaShape, MlaStrides};
use crate::quant::{group8, QK};

/// Element counts of a batch scratch, per token unless named otherwise: the strides of its
/// `[n][…]` buffers, and the sizes of its work memory.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchWidths {
    pub(crate) hidden: usize,
    pub(crate) q_a: usize,
    pub(crate) q: usize,
    pub(crate) kv_a: usize,
    /// Per-token attention state ([`crate::mla::AttnState`]).
    pub(crate) attn: AttnState,
    pub(crate) rope: usize,
    /// MLP activation width (gate and up each).
    pub(crate) ffn: usize,
    router: usize,
    /// Routed experts' outputs of one token, `[num_experts_per_tok][hidden]`.
    experts: usize,
    /// Most rows of a batched product (the `[rows][batch]` results buffer is this times the
    /// batch).
    pub(crate) max_rows: usize,
    /// Q8_0 blocks of the widest input of a batched product.
    max_blocks: usize,
}

impl BatchWidths {
    /// The strides [`crate::mla::forward_batch`] reads.
    pub(crate) const fn mla(&self) -> MlaStrides {
        MlaStrides {
            hidden: self.hidden,
            q_a: self.q_a,
            q: self.q,
            kv_a: self.kv_a,
            rope: self.rope,
            attn: self.attn,
        }
    }

    fn new(c: &ModelConfig) -> Result<Self, Error> {
        let shape = MlaShape::of(c);
        let attn = AttnState::new(&shape).ok_or(Error::SizeOverflow)?;
        let mul = |a: usize, b: usize| a.checked_mul(b).ok_or(Error::SizeOverflow);
        let hidden = c.hidden_size;
        let q_a = c.q_lora_rank.unwrap_or(0);
        let q = mul(c.num_attention_heads, c.qk_head_dim())?;
        let kv_a = c.cache_row_elems();
        let attn_out = mul(c.num_attention_heads, c.v_head_dim)?;
        let ffn = c.ffn_hidden_max().ok_or(Error::SizeOverflow)?;
        let n_exp = c.moe.map_or(0, |m| m.n_routed_experts);
        let experts = mul(c.moe.map_or(0, |m| m.num_experts_per_tok), hidden)?;
        let max_rows = [q, q_a, kv_a, hidden, ffn, n_exp].into_iter().max().unwrap_or(0);
        let max_cols = [hidden, q_a, attn_out, ffn].into_iter().max().unwrap_or(0);
        Ok(BatchWidths {
            hidden,
            q_a,
            q,
            kv_a,
            attn,
            rope: c.qk_rope_head_dim,
            ffn,
            router: mul(n_exp, 2)?,
            experts,
            max_rows,
            max_blocks: max_cols / QK,
        })
    }

    /// `f32` elements per token: x, xn, acc, gathered, gathered_out (`hidden` each), the
    /// attention rows, the MLP activations (`2 · ffn`), the router, the experts' outputs and
    /// the product results.
    fn floats_per_token(&self) -> Option<usize> {
        [
            self.hidden.checked_mul(5)?,
            self.q_a,
            self.q,
            self.kv_a,
            self.attn.width,
            self.rope,
            self.ffn.checked_mul(2)?,
            self.router,
            self.experts,
            self.max_rows,
        ]
        .iter()
        .try_fold(0usize, |acc, &p| acc.checked_add(p))
    }
}

/// Buffer sizes of a [`BatchScratch`] for a model and batch size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSizes {
    /// `f32` elements of activations.
    pub floats: usize,
    /// Bytes of quantised (Q8_0) activations.
    pub bytes: usize,
}

/// Activation buffers of a batched forward step, borrowed from caller memory: per token of the
/// batch, what [`crate::Scratch`] holds for one token, plus the batched products' work memory.
/// A host allocates it once per session; it does not grow with the context.
#[derive(Debug)]
pub struct BatchScratch<'m> {
    pub(crate) max_tokens: usize,
    pub(crate) x: &'m mut [f32],
    pub(crate) xn: &'m mut [f32],
    pub(crate) acc: &'m mut [f32],
    pub(crate) gathered: &'m mut [f32],
    pub(crate) gathered_out: &'m mut [f32],
    pub(crate) q_a: &'m mut [f32],
    pub(crate) q: &'m mut [f32],
    pub(crate) kv_a: &'m mut [f32],
    /// Per-token attention state, `[n][AttnState::width]`.
    pub(crate) attn: &'m mut [f32],
    pub(crate) rope: &'m mut [f32],
    pub(crate) ffn: &'m mut [f32],
    pub(crate) router: &'m mut [f32],
    pub(crate) expert_out: &'m mut [f32],
    /// `[rows][batch]` results of a batched product.
    pub(crate) tmp: &'m mut [f32],
    /// The batch's quantised input vectors of a batched product.
    pub(crate) blocks: &'m mut [u8],
    /// Per-token widths (the strides of the buffers above).
    pub(crate) w: BatchWidths,
}

impl<'m> BatchScratch<'m> {
    /// The most tokens one batch holds; longer prompts are run as several batches.
    pub const MAX_TOKENS: usize = crate::weights::MAX_BATCH;

    /// The buffer sizes for batches of up to `max_tokens` tokens of `config`'s model.
    ///
    /// # Errors
    /// [`Error::InvalidBatch`] unless `1 <= max_tokens <= MAX_TOKENS`;
    /// [`Error::SizeOverflow`].
    pub fn sizes(config: &ModelConfig, max_tokens: usize) -> Result<BatchSizes, Error> {
        check_tokens(max_tokens)?;
        let w = BatchWidths::new(config)?;
        let floats = w
            .floats_per_token()
            .and_then(|f| f.checked_mul(max_tokens))
            .ok_or(Error::SizeOverflow)?;
        // Packed groups take 288 bytes per 8 blocks (the plain layout 272), and a trailing
        // partial group is stored plain: a whole group per started group covers either. A
        // Q8_K block (the K-quants' activations) takes 292 bytes per 256 values.
        let per_group = group8::GROUP_BYTES.max(crate::quant::q8_k::BLOCK_BYTES);
        let bytes = w
            .max_blocks
            .div_ceil(group8::BLOCKS)
            .checked_mul(per_group)
            .and_then(|b| b.checked_mul(max_tokens))
            .ok_or(Error::SizeOverflow)?;
        Ok(BatchSizes { floats, bytes })
    }

    /// Carves batch buffers for up to `max_tokens` tokens out of `floats` and `bytes`.
    ///
    /// # Errors
    /// As [`Self::sizes`], and [`Error::BufferTooSmall`] if either buffer is shorter.
    pub fn new(
        config: &ModelConfig,
        max_tokens: usize,
        floats: &'m mut [f32],
        bytes: &'m mut [u8],
    ) -> Result<Self, Error> {
        let sizes = Self::sizes(config, max_tokens)?;
        let w = BatchWidths::new(config)?;
        if bytes.len() < sizes.bytes {
            let (needed, given) = (sizes.bytes, bytes.len());
            return Err(Error::BufferTooSmall { buffer: BufferKind::BatchBlocks, needed, given });
        }
        let too_small = Error::BufferTooSmall {
            buffer: BufferKind::BatchScratch,
            needed: sizes.floats,
            given: floats.len(),
        };
        let mut rest = floats;
        let mut take = |per_token: usize| -> Result<&'m mut [f32], Error> {
            let n = per_token.checked_mul(max_tokens).ok_or(Error::SizeOverflow)?;
            let (head, tail) =
                core::mem::take(&mut rest).split_at_mut_checked(n).ok_or(too_small)?;
            rest = tail;
            Ok(head)
        };
        Ok(BatchScratch {
            max_tokens,
            x: take(w.hidden)?,
            xn: take(w.hidden)?,
            acc: take(w.hidden)?,
            gathered: take(w.hidden)?,
            gathered_out: take(w.hidden)?,
            q_a: take(w.q_a)?,
            q: take(w.q)?,
            kv_a: take(w.kv_a)?,
            attn: take(w.attn.width)?,
            rope: take(w.rope)?,
            ffn: take(w.ffn.checked_mul(2).ok_or(Error::SizeOverflow)?)?,
            router: take(w.router)?,
            expert_out: take(w.experts)?,
            tmp: take(w.max_rows)?,
            blocks: bytes,
            w,
        })
    }

    /// The most tokens one batched step of this scratch takes.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }
}

fn check_tokens(n: usize) -> Result<(), Error> {
    if n == 0 || n > BatchScratch::MAX_TOKENS {
        let max = u32::try_from(BatchScratch::MAX_TOKENS).unwrap_or(u32::MAX);
        return Err(Error::InvalidBatch { max });
    }
    Ok(())
}

//! [`Scratch`]: the caller-provided activation buffers of one forward step, carved out of a
//! single `&mut [f32]` so a board can hand over one static array.

use crate::config::ModelConfig;
use crate::error::{BufferKind, Error};

// The scratch size is the config's to answer (`config.scratch_elems(capacity)`), but the
// layout that gives it is this module's, so the method lives here: `config` stays below
// `scratch` in the module layers.
impl ModelConfig {
    /// `f32` elements of activation scratch that [`Scratch::new`] needs for a cache of
    /// `capacity` positions. Attention keeps only running per-head statistics per partition
    /// of the cache, so the size grows with `capacity` only by the partitions' work areas
    /// (from 1,024 rows on, one per 512 rows, at most 8): bounded, whatever the context. A
    /// scratch sized for one capacity serves a cache of any other (partitions then run one
    /// after another, with the same result).
    ///
    /// # Errors
    /// [`Error::SizeOverflow`] if the total does not fit in `usize`.
    pub fn scratch_elems(&self, capacity: usize) -> Result<usize, Error> {
        Layout::new(self, capacity).map(|l| l.total)
    }
}

/// Element counts and the total for a config and cache capacity.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    pub(crate) hidden: usize,
    pub(crate) q_a: usize,
    pub(crate) q: usize,
    pub(crate) kv_a: usize,
    pub(crate) q_abs: usize,
    pub(crate) scores: usize,
    pub(crate) lat_out: usize,
    pub(crate) attn_out: usize,
    pub(crate) attn_work: usize,
    pub(crate) ffn_hidden: usize,
    pub(crate) router: usize,
    pub(crate) rope: usize,
    pub(crate) inv_freqs: usize,
    pub(crate) logits: usize,
    pub(crate) total: usize,
}

impl Layout {
    /// The layout for `c` and a cache of `capacity` rows.
    pub(crate) fn new(c: &ModelConfig, capacity: usize) -> Result<Self, Error> {
        let heads = c.num_attention_heads;
        let mul = |a: usize, b: usize| a.checked_mul(b).ok_or(Error::SizeOverflow);
        let hidden = c.hidden_size;
        let q_a = c.q_lora_rank.unwrap_or(0);
        let q = mul(
            heads,
            c.qk_nope_head_dim.checked_add(c.qk_rope_head_dim).ok_or(Error::SizeOverflow)?,
        )?;
        let kv_a = c.kv_lora_rank.checked_add(c.qk_rope_head_dim).ok_or(Error::SizeOverflow)?;
        let q_abs = mul(heads, kv_a)?;
        // Online softmax: a running max and sum per head, whatever the context.
        let scores = mul(heads, 2)?;
        let lat_out = mul(heads, c.kv_lora_rank)?;
        let attn_out = mul(heads, c.v_head_dim)?;
        // Attention partitions: one work area per partition the cache can be cut into.
        let attn_work = crate::mla::attn_dims(c).work_elems(capacity).ok_or(Error::SizeOverflow)?;
        let ffn_hidden = mul(c.ffn_hidden_max().ok_or(Error::SizeOverflow)?, 2)?;
        // Router: expert scores, then the biased/masked selection scores.
        let router = mul(c.moe.map_or(0, |m| m.n_routed_experts), 2)?;
        let rope = c.qk_rope_head_dim;
        let inv_freqs = rope / 2;
        let logits = c.vocab_size;
        // x, normed x, the block output and one expert's output are `hidden` each.
        let parts = [
            mul(hidden, 4)?,
            q_a,
            q,
            kv_a,
            q_abs,
            scores,
            lat_out,
            attn_out,
            attn_work,
            ffn_hidden,
            router,
            rope,
            inv_freqs,
            logits,
        ];
        let total = parts
            .iter()
            .try_fold(0usize, |acc, &p| acc.checked_add(p))
            .ok_or(Error::SizeOverflow)?;
        Ok(Layout {
            hidden,
            q_a,
            q,
            kv_a,
            q_abs,
            scores,
            lat_out,
            attn_out,
            attn_work,
            ffn_hidden,
            router,
            rope,
            inv_freqs,
            logits,
            total,
        })
    }
}

/// Activation buffers for [`crate::Model::forward`], borrowed from caller memory.
///
/// Sized by [`ModelConfig::scratch_elems`]: it grows with the cache capacity only by the
/// attention's partition work areas (one per 512 cached rows from 1,024 on, at most 8, so it
/// stays bounded); holding it does not allocate. The logits of the last step live here until the next step overwrites them.
#[derive(Debug)]
pub struct Scratch<'m> {
    /// The residual stream, `[hidden_size]`.
    pub(crate) x: &'m mut [f32],
    /// The normed residual (input of attention and FFN), `[hidden_size]`.
    pub(crate) xn: &'m mut [f32],
    /// Accumulator for a block's output, `[hidden_size]`.
    pub(crate) acc: &'m mut [f32],
    /// One expert's output before weighting, `[hidden_size]`.
    pub(crate) expert_out: &'m mut [f32],
    /// Query LoRA latent, `[q_lora_rank]` (empty without q LoRA).
    pub(crate) q_a: &'m mut [f32],
    /// Query, `[heads][qk_nope + qk_rope]`.
    pub(crate) q: &'m mut [f32],
    /// `kv_a_mqa` output for this token: `[c_kv (kv_lora_rank) | k_pe (qk_rope)]`.
    pub(crate) kv_a: &'m mut [f32],
    /// Absorbed query per head, laid out like a cache row: `[heads][kv_lora_rank + qk_rope]`.
    pub(crate) q_abs: &'m mut [f32],
    /// Attention's online-softmax state: each head's running max, then running sum, `[2][heads]`.
    pub(crate) scores: &'m mut [f32],
    /// Attention output in latent space, `[heads][kv_lora_rank]`.
    pub(crate) lat_out: &'m mut [f32],
    /// Attention output per head after `W_UV`, `[heads][v_head_dim]`.
    pub(crate) attn_out: &'m mut [f32],
    /// The attention's partition work areas, `[parts][crate::attend::AttnDims::part_elems]`.
    pub(crate) attn_work: &'m mut [f32],
    /// FFN gate and up activations, `[2][widest FFN]`.
    pub(crate) ffn_hidden: &'m mut [f32],
    /// Router scores then selection scores, `[2][n_routed_experts]`.
    pub(crate) router: &'m mut [f32],
    /// RoPE `cos` then `sin` for the current position, `[qk_rope_head_dim]` (`[2][rope/2]`).
    pub(crate) rope: &'m mut [f32],
    /// The model's rotary inverse frequencies, `[qk_rope_head_dim / 2]`, filled once by `new`.
    pub(crate) inv_freqs: &'m mut [f32],
    /// Output logits, `[vocab_size]`.
    pub(crate) logits: &'m mut [f32],
}

impl<'m> Scratch<'m> {
    /// Carves scratch for `config` and a cache of `capacity` rows out of `mem`; see
    /// [`ModelConfig::scratch_elems`]. Scratch made for another capacity still works with any
    /// cache (with less work memory, attention partitions run one after another, with the
    /// same result).
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] if `mem` is shorter than
    /// [`ModelConfig::scratch_elems`]`(capacity)`.
    pub fn new(config: &ModelConfig, capacity: usize, mem: &'m mut [f32]) -> Result<Self, Error> {
        let l = Layout::new(config, capacity)?;
        let given = mem.len();
        let too_small =
            Error::BufferTooSmall { buffer: BufferKind::Scratch, needed: l.total, given };
        let mut rest = mem;
        let mut take = |n: usize| -> Result<&'m mut [f32], Error> {
            let (head, tail) =
                core::mem::take(&mut rest).split_at_mut_checked(n).ok_or(too_small)?;
            rest = tail;
            Ok(head)
        };
        Ok(Scratch {
            x: take(l.hidden)?,
            xn: take(l.hidden)?,
            acc: take(l.hidden)?,
            expert_out: take(l.hidden)?,
            q_a: take(l.q_a)?,
            q: take(l.q)?,
            kv_a: take(l.kv_a)?,
            q_abs: take(l.q_abs)?,
            scores: take(l.scores)?,
            lat_out: take(l.lat_out)?,
            attn_out: take(l.attn_out)?,
            attn_work: take(l.attn_work)?,
            ffn_hidden: take(l.ffn_hidden)?,
            router: take(l.router)?,
            rope: take(l.rope)?,
            inv_freqs: {
                let f = take(l.inv_freqs)?;
                crate::rope::fill_inv_freqs(config, f);
                f
            },
            logits: take(l.logits)?,
        })
    }

    /// The logits written by the last successful forward step, `[vocab_size]`.
    pub fn logits(&self) -> &[f32] {
        self.logits
    }

    /// The same logits, writable: a [`crate::Sampler`] can turn them into probabilities in
    /// place (the next forward step overwrites them anyway), so a board needs no
    /// `[vocab_size]` copy.
    pub fn logits_mut(&mut self) -> &mut [f32] {
        self.logits
    }
}

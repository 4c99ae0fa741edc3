//! Multi-head Latent Attention, decode step, in the absorbed form.
//!
//! Per head `h` the reference computes `q_h · [k_nope_h ; k_pe]` with
//! `k_nope_h = W_UK_h · c` and `v_h = W_UV_h · c` for every cached latent `c`. Folding `W_UK_h`
//! into the query (`q_lat_h = W_UK_hᵀ · q_nope_h`) scores the cached rows `[c ; k_pe]` directly,
//! and applying `W_UV_h` once to the probability-weighted latent gives the head output: per
//! token cost is `O(context × (kv_lora_rank + qk_rope_head_dim))` per head, and nothing but
//! the latent rows is ever cached. llama.cpp's `deepseek2` graph computes the same thing.

use crate::attend::{self, AttnDims, GroupQuery};
use crate::cache::LatentCache;
use crate::parallel::{Parallel, Serial};
use crate::rope;
use crate::weights::{Matrix, Vector};

/// The query projection: direct (V2-Lite) or through a LoRA bottleneck.
#[derive(Debug, Clone, Copy)]
pub(crate) enum QueryProj<'a> {
    /// `attn_q`: `[heads * qk_head_dim][hidden]`.
    Direct(Matrix<'a>),
    /// `attn_q_a` `[q_lora][hidden]`, `attn_q_a_norm` `[q_lora]`, `attn_q_b`
    /// `[heads * qk_head_dim][q_lora]`.
    LoRA { a: Matrix<'a>, norm: Vector<'a>, b: Matrix<'a> },
}

/// The latent up-projections `W_UK` and `W_UV`, in either GGUF layout.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LatentUp<'a> {
    /// `attn_k_b` `[heads][kv_lora][qk_nope]` (ne `{nope, kv_lora, heads}`) and `attn_v_b`
    /// `[heads][v_head][kv_lora]` (ne `{kv_lora, v_head, heads}`): what current llama.cpp
    /// converters write.
    Split { k_b: Matrix<'a>, v_b: Matrix<'a> },
    /// Legacy `attn_kv_b` `[heads * (qk_nope + v_head)][kv_lora]`: per head, `qk_nope` key rows
    /// then `v_head` value rows (the Hugging Face `kv_b_proj` as is).
    Joint { kv_b: Matrix<'a> },
}

/// Weights of one attention block.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MlaWeights<'a> {
    pub(crate) q: QueryProj<'a>,
    /// `attn_kv_a_mqa`: `[kv_lora + qk_rope][hidden]`.
    pub(crate) kv_a: Matrix<'a>,
    /// `attn_kv_a_norm`: `[kv_lora]`.
    pub(crate) kv_a_norm: Vector<'a>,
    pub(crate) up: LatentUp<'a>,
    /// `attn_output`: `[hidden][heads * v_head]`.
    pub(crate) output: Matrix<'a>,
}

/// Static shape of the attention, from the config.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MlaShape {
    pub(crate) heads: usize,
    pub(crate) nope: usize,
    pub(crate) rope: usize,
    pub(crate) v_head: usize,
    pub(crate) kv_lora: usize,
    pub(crate) eps: f32,
    pub(crate) scale: f32,
    /// The attention's work shape.
    pub(crate) attn: AttnDims,
}

impl MlaShape {
    /// The attention shape of `c`.
    pub(crate) fn of(c: &crate::ModelConfig) -> Self {
        MlaShape {
            heads: c.num_attention_heads,
            nope: c.qk_nope_head_dim,
            rope: c.qk_rope_head_dim,
            v_head: c.v_head_dim,
            kv_lora: c.kv_lora_rank,
            eps: c.rms_norm_eps,
            scale: rope::softmax_scale(c),
            attn: attn_dims(c),
        }
    }
}

/// The attention work shape of `c` (sizes were checked when the config was read).
pub(crate) fn attn_dims(c: &crate::ModelConfig) -> AttnDims {
    AttnDims::new(c.num_attention_heads, c.kv_lora_rank, c.qk_rope_head_dim).unwrap_or(AttnDims {
        heads: 0,
        kv: 0,
        width: 0,
        tile: 1,
    })
}

/// Buffers one attention step works in (all from [`crate::Scratch`]).
pub(crate) struct MlaBuffers<'s> {
    pub(crate) q_a: &'s mut [f32],
    pub(crate) q: &'s mut [f32],
    pub(crate) kv_a: &'s mut [f32],
    pub(crate) q_abs: &'s mut [f32],
    pub(crate) scores: &'s mut [f32],
    pub(crate) lat_out: &'s mut [f32],
    pub(crate) attn_out: &'s mut [f32],
    /// The attention's partition work areas.
    pub(crate) attn_work: &'s mut [f32],
    /// RoPE table for the current position.
    pub(crate) rope: &'s [f32],
    /// Where the block's output goes, `[hidden]`.
    pub(crate) out: &'s mut [f32],
}

/// Buffers of the attention proper (scoring the cached rows into weighted latents), for one
/// token.
pub(crate) struct AttendBuffers<'s> {
    /// Absorbed query, `[heads][kv_lora + rope]`.
    pub(crate) q_abs: &'s mut [f32],
    /// Online-softmax state, `[2][heads]`.
    pub(crate) scores: &'s mut [f32],
    /// Weighted latent per head, `[heads][kv_lora]`.
    pub(crate) lat_out: &'s mut [f32],
    /// Partition work areas (`crate::attend`), at least one.
    pub(crate) work: &'s mut [f32],
}

/// One decode step of layer `layer`: writes this token's latent row into the cache's pending
/// slot (committed by the caller after the last layer), attends over every filled slot, and
/// writes the attention output (`[hidden]`) to `b.out`.
pub(crate) fn forward(
    s: &MlaShape,
    w: &MlaWeights<'_>,
    layer: usize,
    x: &[f32],
    cache: &mut LatentCache<'_>,
    b: MlaBuffers<'_>,
    par: &dyn Parallel,
) {
    // Query (RoPE on its rope parts comes in `attend`).
    match &w.q {
        QueryProj::Direct(m) => m.matvec(x, b.q, par),
        QueryProj::LoRA { a, norm, b: qb } => {
            a.matvec(x, b.q_a, par);
            norm.rms_norm_in_place(b.q_a, s.eps);
            qb.matvec(b.q_a, b.q, par);
        }
    }

    // This token's cache row: normed latent, then rotated shared key.
    w.kv_a.matvec(x, b.kv_a, par);
    finish_row(s, w, b.kv_a, b.rope);
    cache.write(layer, b.kv_a);

    let bufs = AttendBuffers {
        q_abs: b.q_abs,
        scores: b.scores,
        lat_out: &mut *b.lat_out,
        work: b.attn_work,
    };
    attend(s, w, b.q, b.rope, cache, cache.rows(layer), bufs, par);
    up_v(s, w, b.lat_out, b.attn_out, par);
    w.output.matvec(b.attn_out, b.out, par);
}

/// Per-token attention state of a batch, one region per token (so tokens can attend on
/// different threads): the token's query (rotated in place), absorbed query, softmax state,
/// weighted latents, one attention partition's work area, and the heads' outputs. Offsets in
/// `f32`s.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AttnState {
    q: usize,
    q_abs: usize,
    scores: usize,
    lat_out: usize,
    work: usize,
    attn_out: usize,
    /// Elements per token.
    pub(crate) width: usize,
}

impl AttnState {
    /// The layout for `s`, or `None` on overflow.
    pub(crate) fn new(s: &MlaShape) -> Option<Self> {
        let row = s.kv_lora.checked_add(s.rope)?;
        let sizes = [
            s.heads.checked_mul(s.nope.checked_add(s.rope)?)?,
            s.heads.checked_mul(row)?,
            s.heads.checked_mul(2)?,
            s.heads.checked_mul(s.kv_lora)?,
            s.attn.part_elems()?,
            s.heads.checked_mul(s.v_head)?,
        ];
        let mut at = [0usize; 7];
        let mut end = 0usize;
        for (start, n) in at.iter_mut().skip(1).zip(sizes) {
            end = end.checked_add(n)?;
            *start = end;
        }
        let [q, q_abs, scores, lat_out, work, attn_out, width] = at;
        Some(AttnState { q, q_abs, scores, lat_out, work, attn_out, width })
    }

    /// Where the heads' outputs start in a token's region (the output projection's input).
    pub(crate) fn attn_out_offset(&self) -> usize {
        self.attn_out
    }

    /// Where the weighted latents start in a token's region (`W_UV`'s input).
    fn lat_out_offset(&self) -> usize {
        self.lat_out
    }

    /// One token's region as (query, attention buffers); the heads' outputs are written by
    /// [`up_v_batch`] for the whole batch.
    fn split<'r>(&self, region: &'r mut [f32]) -> (&'r mut [f32], AttendBuffers<'r>) {
        let (q, rest) = region.split_at_mut(self.q_abs.min(region.len()));
        let (q_abs, rest) = rest.split_at_mut((self.scores - self.q_abs).min(rest.len()));
        let (scores, rest) = rest.split_at_mut((self.lat_out - self.scores).min(rest.len()));
        let (lat_out, rest) = rest.split_at_mut((self.work - self.lat_out).min(rest.len()));
        let work = rest.get_mut(..self.attn_out - self.work).unwrap_or(&mut []);
        let q = q.get_mut(self.q..).unwrap_or(&mut []);
        (q, AttendBuffers { q_abs, scores, lat_out, work })
    }
}

/// Per-token strides (elements) of the `[n][…]` buffers a batched step hands to
/// [`forward_batch`]: its inputs (`hidden`), the query (`q_a`, `q`), the latent and rope rows
/// (`kv_a`, `rope`) and the attention state.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MlaStrides {
    pub(crate) hidden: usize,
    pub(crate) q_a: usize,
    pub(crate) q: usize,
    pub(crate) kv_a: usize,
    pub(crate) rope: usize,
    pub(crate) attn: AttnState,
}

/// Buffers of a batch of `n` tokens' attention, `[n][…]` each (from [`crate::BatchScratch`],
/// whose [`MlaStrides`] are their strides).
pub(crate) struct BatchMlaBuffers<'s> {
    /// Query LoRA latents, `[n][q_lora]`.
    pub(crate) q_a: &'s mut [f32],
    /// Queries, `[n][heads · qk]`.
    pub(crate) q: &'s mut [f32],
    /// Cache rows, `[n][kv_lora + rope]`.
    pub(crate) kv_a: &'s mut [f32],
    /// Per-token attention state, `[n][AttnState::width]`.
    pub(crate) attn: &'s mut [f32],
    /// RoPE tables, `[n][rope]`.
    pub(crate) rope: &'s [f32],
    /// Block outputs, `[n][hidden]`.
    pub(crate) out: &'s mut [f32],
    /// Work memory of [`Matrix::matmul`].
    pub(crate) tmp: &'s mut [f32],
    /// Work memory of [`Matrix::matmul`].
    pub(crate) blocks: &'s mut [u8],
}

/// Where the rows of a batch's tokens go and what each token attends over.
pub(crate) trait BatchCaches: Sync {
    /// Stores token `i`'s row of `layer` (`[c_kv | k_pe]`, f32), committed by the caller.
    fn write_row(&mut self, layer: usize, i: usize, row: &[f32]);
    /// The cache token `i` reads, and its rows of `layer` that token `i` attends over
    /// (`None`: no cache for token `i`, which then has no attention output).
    fn visible(&self, layer: usize, i: usize) -> Option<(&LatentCache<'_>, &[u8])>;
}

/// One sequence's consecutive tokens (a prompt): token `i`'s row goes to slot `len + i`, and
/// it attends over the filled slots and the batch's rows `0..=i`.
impl BatchCaches for LatentCache<'_> {
    fn write_row(&mut self, layer: usize, i: usize, row: &[f32]) {
        self.write_batch_row(layer, i, row);
    }

    fn visible(&self, layer: usize, i: usize) -> Option<(&LatentCache<'_>, &[u8])> {
        Some((self, self.batch_rows(layer, i)))
    }
}

/// One token of each of several sequences: token `i`'s row goes to the pending slot of cache
/// `i` (picked by its `begin`), and it attends over that cache's rows alone.
impl BatchCaches for [&mut LatentCache<'_>] {
    fn write_row(&mut self, layer: usize, i: usize, row: &[f32]) {
        if let Some(cache) = self.get_mut(i) {
            cache.write(layer, row);
        }
    }

    fn visible(&self, layer: usize, i: usize) -> Option<(&LatentCache<'_>, &[u8])> {
        self.get(i).map(|cache| (&**cache, cache.rows(layer)))
    }
}

/// Layer `layer`'s attention for `n` tokens at once, each computed exactly as [`forward`]
/// computes it on its own: the projections run as batched products (each weight row read once
/// for the batch), each token's row is stored through `caches` (committed by the caller), and
/// each token attends over the rows `caches` shows it. The tokens' attention runs in spans
/// over `par` (every row is written first, so the tokens are independent). `xs` is
/// `[n][hidden]`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward_batch<C: BatchCaches + ?Sized>(
    s: &MlaShape,
    w: &MlaWeights<'_>,
    layer: usize,
    xs: &[f32],
    n: usize,
    st: &MlaStrides,
    caches: &mut C,
    b: BatchMlaBuffers<'_>,
    par: &dyn Parallel,
) {
    let (tmp, blocks) = (&mut *b.tmp, &mut *b.blocks);
    match &w.q {
        QueryProj::Direct(m) => m.matmul(xs, st.hidden, n, b.q, st.q, tmp, blocks, par),
        QueryProj::LoRA { a, norm, b: qb } => {
            a.matmul(xs, st.hidden, n, b.q_a, st.q_a, tmp, blocks, par);
            for q_a in b.q_a.chunks_exact_mut(st.q_a.max(1)).take(n) {
                norm.rms_norm_in_place(q_a, s.eps);
            }
            qb.matmul(b.q_a, st.q_a, n, b.q, st.q, tmp, blocks, par);
        }
    }
    w.kv_a.matmul(xs, st.hidden, n, b.kv_a, st.kv_a, tmp, blocks, par);
    let rows = b.kv_a.chunks_exact_mut(st.kv_a.max(1));
    let ropes = b.rope.chunks_exact(st.rope.max(1));
    for (i, (row, rope)) in rows.zip(ropes).take(n).enumerate() {
        finish_row(s, w, row, rope);
        caches.write_row(layer, i, row);
    }

    let layout = st.attn;
    let width = layout.width.max(1);
    let state = b.attn.get_mut(..n.saturating_mul(width)).unwrap_or(&mut []);
    let absorbed =
        absorb_split_batch(s, w, &layout, n, b.q, st.q, state, (&mut *tmp, &mut *blocks), par);
    let (caches, queries, ropes) = (&*caches, &*b.q, b.rope);
    // One "row" per token; its weight of work is at least a span's worth (the per-head
    // products read `W_UK` and `W_UV`), so any two tokens may go to different threads.
    crate::parallel::for_each_wide_span(
        par,
        state,
        width,
        crate::parallel::MIN_SPAN_BYTES,
        &|span| {
            let first = span.first_row();
            // Consecutive tokens that read the same cache rows from the same start attend
            // as a group: each tile of rows is read once for all of them.
            let mut group: heapless::Vec<GroupQuery<'_>, ATTEND_GROUP> = heapless::Vec::new();
            let mut shared: Option<(&LatentCache<'_>, &[u8])> = None;
            for (k, region) in span.out().chunks_exact_mut(width).enumerate() {
                let i = first + k;
                let Some((cache, rows)) = caches.visible(layer, i) else { continue };
                let (q, mut bufs) = layout.split(region);
                let start = i * st.q;
                if let Some(src) = queries.get(start..start + q.len()) {
                    q.copy_from_slice(src);
                }
                if !absorbed {
                    absorb_split(s, w, q, &mut bufs, &Serial);
                }
                let rope = ropes.get(i * st.rope..(i + 1) * st.rope).unwrap_or(&[]);
                absorb_rest(s, w, q, rope, bufs.q_abs);
                let joins = shared.is_some_and(|(c, r)| {
                    core::ptr::eq(c, cache) && r.as_ptr() == rows.as_ptr() && !group.is_full()
                });
                if !joins {
                    if let Some((c, r)) = shared {
                        attend_tokens(s, c, r, &mut group);
                    }
                    group.clear();
                }
                let keep = match shared {
                    Some((_, r)) if joins && r.len() >= rows.len() => r,
                    _ => rows,
                };
                shared = Some((cache, keep));
                let token = GroupQuery::new(
                    &s.attn,
                    bufs.q_abs,
                    rows.len() / row_bytes(cache),
                    bufs.scores,
                    bufs.lat_out,
                    bufs.work,
                );
                // Not full: a full group was attended and cleared above.
                let _ = group.push(token);
            }
            if let Some((c, r)) = shared {
                attend_tokens(s, c, r, &mut group);
            }
        },
    );
    up_v_batch(s, w, &layout, n, b.attn, b.q, (tmp, blocks), par);
    let attn_out = b.attn.get(layout.attn_out_offset()..).unwrap_or(&[]);
    w.output.matmul(attn_out, width, n, b.out, st.hidden, tmp, blocks, par);
}

/// Tokens a batch attends over shared rows at once ([`attend::attend_group`]).
const ATTEND_GROUP: usize = 16;

/// Bytes of one of `cache`'s rows (at least 1).
fn row_bytes(cache: &LatentCache<'_>) -> usize {
    cache.format().row_bytes().unwrap_or(0).max(1)
}

/// A group's attention over the leading rows of `rows` (rows of `cache`).
fn attend_tokens(
    s: &MlaShape,
    cache: &LatentCache<'_>,
    rows: &[u8],
    group: &mut heapless::Vec<GroupQuery<'_>, ATTEND_GROUP>,
) {
    attend::attend_group(&s.attn, s.scale, rows, cache.format(), cache.capacity(), group);
}

/// [`up_v`] for the `n` tokens of a batch (token `i`'s weighted latents and outputs in region
/// `i` of `state`): per head, one batched product over the tokens, so each row of `W_UV_h` is
/// read once for the batch; bit-identical to the per-token products. Each head's latents are
/// first gathered into `gather` (`[n][kv_lora]`: the batch's queries, free by now); where it
/// is too small, each token runs [`up_v`] alone.
#[allow(clippy::too_many_arguments)]
fn up_v_batch(
    s: &MlaShape,
    w: &MlaWeights<'_>,
    layout: &AttnState,
    n: usize,
    state: &mut [f32],
    gather: &mut [f32],
    (tmp, blocks): (&mut [f32], &mut [u8]),
    par: &dyn Parallel,
) {
    let (kv_lora, v_head, width) = (s.kv_lora.max(1), s.v_head.max(1), layout.width.max(1));
    let (lat_at, out_at) = (layout.lat_out_offset(), layout.attn_out_offset());
    let fits = gather.len() >= n.saturating_mul(kv_lora) && tmp.len() >= n.saturating_mul(v_head);
    if !fits {
        for region in state.chunks_exact_mut(width).take(n) {
            let (head, outs) = region.split_at_mut(out_at.min(region.len()));
            let lat_out = head.get(lat_at..).unwrap_or(&[]);
            up_v(s, w, lat_out, outs, par);
        }
        return;
    }
    for h in 0..s.heads {
        for (g, region) in gather.chunks_exact_mut(kv_lora).zip(state.chunks_exact(width)).take(n) {
            let at = lat_at + h * kv_lora;
            if let Some(src) = region.get(at..at + kv_lora) {
                g.copy_from_slice(src);
            }
        }
        let w_uv = match &w.up {
            LatentUp::Split { v_b, .. } => v_b.sub_rows(h * v_head, v_head),
            LatentUp::Joint { kv_b } => kv_b.sub_rows(h * (s.nope + s.v_head) + s.nope, v_head),
        };
        let out = state.get_mut(out_at + h * v_head..).unwrap_or(&mut []);
        w_uv.matmul(gather, kv_lora, n, out, width, tmp, blocks, par);
    }
}

/// A `kv_a_mqa` output made a cache row in place: `attn_kv_a_norm` on the latent, RoPE on the
/// shared key.
fn finish_row(s: &MlaShape, w: &MlaWeights<'_>, kv_a: &mut [f32], rope: &[f32]) {
    let (c_kv, k_pe) = kv_a.split_at_mut(s.kv_lora.min(kv_a.len()));
    w.kv_a_norm.rms_norm_in_place(c_kv, s.eps);
    rope::rotate(k_pe, rope);
}

/// Attention of one token over `rows` (cache rows in slot order, its own included): the
/// absorbed query ([`absorb_split`] then [`absorb_rest`]), then one online-softmax pass over
/// the rows into `b.lat_out`.
#[allow(clippy::too_many_arguments)]
fn attend(
    s: &MlaShape,
    w: &MlaWeights<'_>,
    q: &mut [f32],
    rope: &[f32],
    cache: &LatentCache<'_>,
    rows: &[u8],
    mut b: AttendBuffers<'_>,
    par: &dyn Parallel,
) {
    absorb_split(s, w, q, &mut b, par);
    attend_absorbed(s, w, q, rope, cache, rows, b, par);
}

/// Split layout (`attn_k_b`): every head's `W_UK_h q_nope_h` in one product (into `lat_out`,
/// free until the weighted sum), copied into the latent parts of `b.q_abs`. No-op for the
/// joint layout, whose [`absorb_rest`] does it per head.
fn absorb_split(
    s: &MlaShape,
    w: &MlaWeights<'_>,
    q: &[f32],
    b: &mut AttendBuffers<'_>,
    par: &dyn Parallel,
) {
    let LatentUp::Split { k_b, .. } = &w.up else { return };
    let (qk, row, kv_lora) =
        ((s.nope + s.rope).max(1), (s.kv_lora + s.rope).max(1), s.kv_lora.max(1));
    k_b.matvec_grouped(q, qk, s.kv_lora, b.lat_out, par);
    for (q_abs_h, lat_h) in b.q_abs.chunks_exact_mut(row).zip(b.lat_out.chunks_exact(kv_lora)) {
        for (d, v) in q_abs_h.iter_mut().zip(lat_h) {
            *d = *v;
        }
    }
}

/// The rest of one token's attention once [`absorb_split`] (or its batched form) has run: the
/// absorbed queries' other parts ([`absorb_rest`]), then every head over `rows` into
/// `b.lat_out`.
#[allow(clippy::too_many_arguments)]
fn attend_absorbed(
    s: &MlaShape,
    w: &MlaWeights<'_>,
    q: &mut [f32],
    rope: &[f32],
    cache: &LatentCache<'_>,
    rows: &[u8],
    b: AttendBuffers<'_>,
    par: &dyn Parallel,
) {
    absorb_rest(s, w, q, rope, b.q_abs);
    // Every head over the cached rows: tiles, online softmax, partitions (`crate::attend`).
    let heads = s.heads.min(b.scores.len() / 2);
    let d = AttnDims { heads, ..s.attn };
    let (format, capacity) = (cache.format(), cache.capacity());
    let (state, q_abs) = (&mut *b.scores, &*b.q_abs);
    attend::attend(&d, s.scale, q_abs, rows, format, capacity, state, b.lat_out, b.work, par);
}

/// The absorbed queries' parts [`absorb_split`] does not write, laid out like cache rows
/// (`q_abs` `[heads][kv_lora + rope]`): RoPE on the query's rope parts (in place in `q`),
/// copied after the latent part; for the joint layout also each head's `W_UKᵀ q_nope`.
fn absorb_rest(s: &MlaShape, w: &MlaWeights<'_>, q: &mut [f32], rope: &[f32], q_abs: &mut [f32]) {
    // Chunk widths are >= 1 for any validated config; `max(1)` keeps that local.
    let qk = (s.nope + s.rope).max(1);
    let row = (s.kv_lora + s.rope).max(1);
    let kv_lora = s.kv_lora.max(1);
    for (h, (q_h, q_abs_h)) in q.chunks_exact_mut(qk).zip(q_abs.chunks_exact_mut(row)).enumerate() {
        let (q_nope, q_pe) = q_h.split_at_mut(s.nope.min(qk));
        rope::rotate(q_pe, rope);
        let (q_lat, q_rope) = q_abs_h.split_at_mut(kv_lora.min(row));
        if let LatentUp::Joint { kv_b } = &w.up {
            kv_b.sub_rows(h * (s.nope + s.v_head), s.nope).matvec_transposed(q_nope, q_lat);
        }
        for (d, v) in q_rope.iter_mut().zip(q_pe.iter()) {
            *d = *v;
        }
    }
}

/// [`absorb_split`] for the `n` tokens of a batch (queries `[n][q_stride]` in `queries`, token
/// `i`'s absorbed query in region `i` of `state`): per head, one batched product over the
/// tokens, so each row of `W_UK_h` is read once for the batch; bit-identical to the per-token
/// product. Returns `false` (nothing written) for the joint layout or where `tmp` is too small;
/// each token then runs [`absorb_split`] itself.
#[allow(clippy::too_many_arguments)]
fn absorb_split_batch(
    s: &MlaShape,
    w: &MlaWeights<'_>,
    layout: &AttnState,
    n: usize,
    queries: &[f32],
    q_stride: usize,
    state: &mut [f32],
    (tmp, blocks): (&mut [f32], &mut [u8]),
    par: &dyn Parallel,
) -> bool {
    let LatentUp::Split { k_b, .. } = &w.up else { return false };
    let (qk, row, kv_lora) =
        ((s.nope + s.rope).max(1), (s.kv_lora + s.rope).max(1), s.kv_lora.max(1));
    if tmp.len() < n.saturating_mul(kv_lora) {
        return false;
    }
    for h in 0..s.heads {
        let xs = queries.get(h * qk..).unwrap_or(&[]);
        let out = state.get_mut(layout.q_abs + h * row..).unwrap_or(&mut []);
        let w_uk = k_b.sub_rows(h * kv_lora, kv_lora);
        w_uk.matmul(xs, q_stride, n, out, layout.width.max(1), tmp, blocks, par);
    }
    true
}

/// `W_UV` per head: `attn_out[h] = W_UV_h · lat_out[h]` (`lat_out` `[heads][kv_lora]`,
/// `attn_out` `[heads][v_head]`).
fn up_v(
    s: &MlaShape,
    w: &MlaWeights<'_>,
    lat_out: &[f32],
    attn_out: &mut [f32],
    par: &dyn Parallel,
) {
    let (kv_lora, v_head) = (s.kv_lora.max(1), s.v_head.max(1));
    match &w.up {
        // Every head's W_UV_h at once (one fork and join instead of one per head).
        LatentUp::Split { v_b, .. } => {
            v_b.matvec_grouped(lat_out, s.kv_lora, s.v_head, attn_out, par)
        }
        LatentUp::Joint { kv_b } => {
            for (h, (lat_h, o_h)) in
                lat_out.chunks_exact(kv_lora).zip(attn_out.chunks_exact_mut(v_head)).enumerate()
            {
                kv_b.sub_rows(h * (s.nope + s.v_head) + s.nope, s.v_head).matvec(lat_h, o_h, par);
            }
        }
    }
}

//! Routed mixture of experts with shared experts, as DeepSeek-V2 (softmax, greedy or
//! group-limited) and DeepSeek-V3 (sigmoid + selection bias, grouped "noaux_tc") route.
//!
//! Reference: `DeepseekV2Moe` / `DeepseekV3TopkRouter` + `DeepseekV3MoE` in transformers.

use crate::config::{
    Gating, ModelOptions, MoeConfig, SoftmaxGroupScore, MAX_EXPERTS_USED, MAX_EXPERT_GROUPS,
};
use crate::ffn::Mlp;
use crate::kernels;
use crate::parallel::Parallel;
use crate::weights::{Matrix, Vector, MAX_BATCH};

/// Weights of one MoE layer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MoeWeights<'a> {
    /// Router, `[n_routed_experts][hidden]`.
    pub(crate) router: Matrix<'a>,
    /// V3 selection bias (`e_score_correction_bias`), `[n_routed_experts]`.
    pub(crate) bias: Option<Vector<'a>>,
    /// Stacked experts: `gate`/`up` `[n_experts * moe_inter][hidden]`,
    /// `down` `[n_experts * hidden][moe_inter]`.
    pub(crate) experts: Mlp<'a>,
    /// Shared experts fused into one MLP of width `moe_inter * n_shared`.
    pub(crate) shared: Option<Mlp<'a>>,
}

/// Buffers the MoE step works in (all from [`crate::Scratch`]).
pub(crate) struct MoeBuffers<'s> {
    /// `[2][n_routed_experts]`: scores, then selection scores.
    pub(crate) router: &'s mut [f32],
    /// FFN activations.
    pub(crate) hidden: &'s mut [f32],
    /// One expert's output, `[hidden]`.
    pub(crate) expert_out: &'s mut [f32],
}

/// `out = Σ_j w_j · expert_{idx_j}(x) + shared(x)`.
pub(crate) fn forward(
    cfg: &MoeConfig,
    opts: &ModelOptions,
    w: &MoeWeights<'_>,
    x: &[f32],
    buf: MoeBuffers<'_>,
    out: &mut [f32],
    par: &dyn Parallel,
) {
    w.router.matvec(x, buf.router, par);
    let mut chosen = [0usize; MAX_EXPERTS_USED];
    let mut weights = [0.0f32; MAX_EXPERTS_USED];
    let k = route(cfg, opts, w, buf.router, &mut chosen, &mut weights);

    out.fill(0.0);
    let hidden_size = out.len();
    for (&e, &wt) in chosen.iter().zip(weights.iter()).take(k) {
        expert(cfg, w, e, hidden_size).forward(x, buf.hidden, buf.expert_out, par);
        kernels::axpy(out, wt * cfg.routed_scaling_factor, buf.expert_out);
    }
    if let Some(shared) = &w.shared {
        shared.forward(x, buf.hidden, buf.expert_out, par);
        kernels::add_assign(out, buf.expert_out);
    }
}

/// Routed expert `e`'s MLP.
fn expert<'a>(cfg: &MoeConfig, w: &MoeWeights<'a>, e: usize, hidden_size: usize) -> Mlp<'a> {
    let inter = cfg.moe_intermediate_size;
    Mlp {
        gate: w.experts.gate.sub_rows(e * inter, inter),
        up: w.experts.up.sub_rows(e * inter, inter),
        down: w.experts.down.sub_rows(e * hidden_size, hidden_size),
    }
}

/// The routing of one token: `router` holds the router's logits in its first
/// `n_routed_experts` elements (and is work memory after them, `[2][n_routed_experts]` in
/// all). Writes the chosen experts and their weights, best first, and returns how many.
/// Out of line: inlined, its temporaries stayed in the caller's frame while the experts run,
/// 0.4 KB more stack at a board's peak.
#[inline(never)]
fn route(
    cfg: &MoeConfig,
    opts: &ModelOptions,
    w: &MoeWeights<'_>,
    router: &mut [f32],
    chosen: &mut [usize; MAX_EXPERTS_USED],
    weights: &mut [f32; MAX_EXPERTS_USED],
) -> usize {
    let n_exp = cfg.n_routed_experts;
    let (scores, select) = router.split_at_mut(n_exp.min(router.len()));
    match cfg.gating {
        Gating::Softmax => kernels::softmax_in_place(scores),
        Gating::Sigmoid => {
            for s in scores.iter_mut() {
                *s = 1.0 / (1.0 + libm::expf(-*s));
            }
        }
    }
    // Selection scores: the V3 bias steers which experts are chosen, never their weights.
    for (i, (sel, s)) in select.iter_mut().zip(scores.iter()).enumerate() {
        *sel = *s + w.bias.map_or(0.0, |b| b.get(i));
    }
    if cfg.n_group > 1 {
        limit_groups(cfg, opts, select);
    }

    let k = cfg.num_experts_per_tok.min(MAX_EXPERTS_USED);
    let chosen = chosen.get_mut(..k).unwrap_or(&mut []);
    let weights = weights.get_mut(..k).unwrap_or(&mut []);
    for j in 0..chosen.len() {
        let (done, _) = chosen.split_at(j);
        let best = argmax_excluding(select, done);
        if let Some(slot) = chosen.get_mut(j) {
            *slot = best;
        }
    }
    for (wt, &e) in weights.iter_mut().zip(chosen.iter()) {
        *wt = scores.get(e).copied().unwrap_or(0.0);
    }
    if cfg.norm_topk_prob {
        let sum: f32 = weights.iter().sum::<f32>() + 1e-20;
        for wt in weights.iter_mut() {
            *wt /= sum;
        }
    }
    k
}

/// Buffers of a batch of `n` tokens' MoE step (from [`crate::BatchScratch`]).
pub(crate) struct BatchMoeBuffers<'s> {
    /// Router logits and work, `[n][2 · n_routed_experts]`.
    pub(crate) router: &'s mut [f32],
    /// MLP activations, `[n][2 · width]`.
    pub(crate) hidden: &'s mut [f32],
    /// MLP activation width (at least the widest expert or shared MLP).
    pub(crate) width: usize,
    /// The inputs of the tokens routed to one expert, `[n][hidden]`.
    pub(crate) gathered: &'s mut [f32],
    /// Their outputs (and the shared experts' outputs), `[n][hidden]`.
    pub(crate) gathered_out: &'s mut [f32],
    /// Each token's routed experts' outputs, `[n][num_experts_per_tok][hidden]`.
    pub(crate) expert_out: &'s mut [f32],
    /// Work memory of [`crate::weights::Matrix::matmul`].
    pub(crate) tmp: &'s mut [f32],
    /// Work memory of [`crate::weights::Matrix::matmul`].
    pub(crate) blocks: &'s mut [u8],
}

/// [`forward`] for `n <= MAX_BATCH` tokens `xs` (`[n][hidden_size]`) at once, each token's
/// output bit-identical to its own call: tokens are grouped by routed expert, so each expert's
/// weights are read once per batch, and each token's expert outputs are then summed in its own
/// routing order, as [`forward`] sums them. Outputs go to `out` (`[n][hidden_size]`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward_batch(
    cfg: &MoeConfig,
    opts: &ModelOptions,
    w: &MoeWeights<'_>,
    xs: &[f32],
    n: usize,
    hidden_size: usize,
    b: BatchMoeBuffers<'_>,
    out: &mut [f32],
    par: &dyn Parallel,
) {
    let n = n.min(MAX_BATCH);
    let n_exp = cfg.n_routed_experts;
    let router_stride = 2 * n_exp;
    let hs = hidden_size.max(1);
    w.router.matmul(xs, hidden_size, n, b.router, router_stride, b.tmp, b.blocks, par);
    let mut chosen = [[usize::MAX; MAX_EXPERTS_USED]; MAX_BATCH];
    let mut weights = [[0.0f32; MAX_EXPERTS_USED]; MAX_BATCH];
    let mut k = 0;
    let routers = b.router.chunks_exact_mut(router_stride.max(1));
    for ((router, c), wt) in routers.zip(chosen.iter_mut()).zip(weights.iter_mut()).take(n) {
        k = route(cfg, opts, w, router, c, wt);
    }
    let per_token = k * hidden_size;

    // Each expert once, over the tokens that chose it.
    let mut members = [(0usize, 0usize); MAX_BATCH];
    for e in 0..n_exp {
        let mut m = 0;
        for (t, c) in chosen.iter().enumerate().take(n) {
            if let Some(j) = c.iter().take(k).position(|&ce| ce == e) {
                if let Some(slot) = members.get_mut(m) {
                    *slot = (t, j);
                    m += 1;
                }
            }
        }
        if m == 0 {
            continue;
        }
        let members = members.get(..m).unwrap_or(&[]);
        for (dst, &(t, _)) in b.gathered.chunks_exact_mut(hs).zip(members) {
            if let Some(src) = xs.get(t * hidden_size..(t + 1) * hidden_size) {
                dst.copy_from_slice(src);
            }
        }
        expert(cfg, w, e, hidden_size).forward_batch(
            b.gathered,
            hidden_size,
            m,
            b.hidden,
            b.width,
            b.gathered_out,
            hidden_size,
            (&mut *b.tmp, &mut *b.blocks),
            par,
        );
        for (src, &(t, j)) in b.gathered_out.chunks_exact(hs).zip(members) {
            let at = t * per_token + j * hidden_size;
            if let Some(dst) = b.expert_out.get_mut(at..at + hidden_size) {
                dst.copy_from_slice(src);
            }
        }
    }

    for (t, (o, wt)) in out.chunks_exact_mut(hs).zip(weights.iter()).take(n).enumerate() {
        o.fill(0.0);
        for (j, &wj) in wt.iter().enumerate().take(k) {
            let at = t * per_token + j * hidden_size;
            let eo = b.expert_out.get(at..at + hidden_size).unwrap_or(&[]);
            kernels::axpy(o, wj * cfg.routed_scaling_factor, eo);
        }
    }
    if let Some(shared) = &w.shared {
        shared.forward_batch(
            xs,
            hidden_size,
            n,
            b.hidden,
            b.width,
            b.gathered_out,
            hidden_size,
            (&mut *b.tmp, &mut *b.blocks),
            par,
        );
        for (o, sh) in out.chunks_exact_mut(hs).zip(b.gathered_out.chunks_exact(hs)).take(n) {
            kernels::add_assign(o, sh);
        }
    }
}

/// Keeps the `topk_group` best groups of experts and masks the rest of `select`.
fn limit_groups(cfg: &MoeConfig, opts: &ModelOptions, select: &mut [f32]) {
    let n_group = cfg.n_group.min(MAX_EXPERT_GROUPS);
    let per_group = cfg.n_routed_experts / n_group.max(1);
    let top2 = matches!(cfg.gating, Gating::Sigmoid)
        || opts.softmax_group_score == SoftmaxGroupScore::Top2Sum;
    let mut group_score = [0.0f32; MAX_EXPERT_GROUPS];
    for (g, chunk) in group_score.iter_mut().zip(select.chunks_exact(per_group.max(1))) {
        *g = if top2 {
            top2_sum(chunk)
        } else {
            chunk.iter().copied().fold(f32::NEG_INFINITY, f32::max)
        };
    }
    let group_score = group_score.get(..n_group).unwrap_or(&[]);
    let mut kept = [0usize; MAX_EXPERT_GROUPS];
    let kept = kept.get_mut(..cfg.topk_group.min(n_group)).unwrap_or(&mut []);
    for j in 0..kept.len() {
        let (done, _) = kept.split_at(j);
        let best = argmax_excluding(group_score, done);
        if let Some(slot) = kept.get_mut(j) {
            *slot = best;
        }
    }
    // V3 masks dropped groups with -inf; V2 (transformers) with 0.0, which softmax scores
    // (all > 0) never win against.
    let masked = match cfg.gating {
        Gating::Sigmoid => f32::NEG_INFINITY,
        Gating::Softmax => 0.0,
    };
    for (g, chunk) in select.chunks_exact_mut(per_group.max(1)).enumerate() {
        if !kept.contains(&g) {
            chunk.fill(masked);
        }
    }
}

/// Sum of the two largest values (the single value for a one-element slice).
fn top2_sum(v: &[f32]) -> f32 {
    let (mut a, mut b) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
    for &x in v {
        if x > a {
            b = a;
            a = x;
        } else if x > b {
            b = x;
        }
    }
    if b == f32::NEG_INFINITY {
        a
    } else {
        a + b
    }
}

/// Index of the largest value not in `exclude`; ties and NaNs resolve to the lowest index.
fn argmax_excluding(v: &[f32], exclude: &[usize]) -> usize {
    let mut best: Option<(usize, f32)> = None;
    for (i, &x) in v.iter().enumerate() {
        if exclude.contains(&i) {
            continue;
        }
        // `x > bx` is false for NaN on either side, so NaNs never displace a choice.
        let is_better = best.is_none_or(|(_, bx)| x > bx);
        if is_better {
            best = Some((i, x));
        }
    }
    best.map_or(0, |(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_skips_excluded_and_prefers_lowest_on_ties() {
        assert_eq!(argmax_excluding(&[1.0, 3.0, 3.0, 2.0], &[]), 1);
        assert_eq!(argmax_excluding(&[1.0, 3.0, 3.0, 2.0], &[1]), 2);
        assert_eq!(argmax_excluding(&[f32::NAN, f32::NAN], &[0]), 1);
    }

    #[test]
    fn top2_sum_of_group() {
        assert_eq!(top2_sum(&[0.1, 0.5, 0.3]), 0.8);
        assert_eq!(top2_sum(&[0.5, 0.5]), 1.0);
    }
}

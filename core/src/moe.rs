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
use crate::weights::{Matrix, Vector};

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
    let n_exp = cfg.n_routed_experts;
    let (scores, select) = buf.router.split_at_mut(n_exp.min(buf.router.len()));
    w.router.matvec(x, scores, par);
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
    let mut chosen = [0usize; MAX_EXPERTS_USED];
    let mut weights = [0.0f32; MAX_EXPERTS_USED];
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

    out.fill(0.0);
    let inter = cfg.moe_intermediate_size;
    let hidden_size = out.len();
    for (&e, &wt) in chosen.iter().zip(weights.iter()) {
        let expert = Mlp {
            gate: w.experts.gate.sub_rows(e * inter, inter),
            up: w.experts.up.sub_rows(e * inter, inter),
            down: w.experts.down.sub_rows(e * hidden_size, hidden_size),
        };
        expert.forward(x, buf.hidden, buf.expert_out, par);
        kernels::axpy(out, wt * cfg.routed_scaling_factor, buf.expert_out);
    }
    if let Some(shared) = &w.shared {
        shared.forward(x, buf.hidden, buf.expert_out, par);
        kernels::add_assign(out, buf.expert_out);
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

//! The SwiGLU MLP: `down(silu(gate(x)) * up(x))`, used by dense layers, each routed expert and
//! the fused shared experts.

use crate::kernels;
use crate::parallel::Parallel;
use crate::weights::Matrix;

/// One SwiGLU MLP. `gate`, `up`: `[intermediate][hidden]`; `down`: `[hidden][intermediate]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mlp<'a> {
    pub(crate) gate: Matrix<'a>,
    pub(crate) up: Matrix<'a>,
    pub(crate) down: Matrix<'a>,
}

impl Mlp<'_> {
    /// `out = down(silu(gate(x)) * up(x))`. `hidden` holds at least `2 * intermediate`.
    pub(crate) fn forward(
        &self,
        x: &[f32],
        hidden: &mut [f32],
        out: &mut [f32],
        par: &dyn Parallel,
    ) {
        let inter = self.gate.rows();
        let (g, rest) = hidden.split_at_mut(inter.min(hidden.len()));
        let u = rest.get_mut(..inter).unwrap_or(&mut []);
        self.gate.matvec(x, g, par);
        self.up.matvec(x, u, par);
        for (gi, ui) in g.iter_mut().zip(u.iter()) {
            *gi = kernels::silu(*gi) * ui;
        }
        self.down.matvec(g, out, par);
    }

    /// [`Mlp::forward`] for `n` vectors `xs[t · x_stride ..]` at once, each result
    /// bit-identical to its own call, into `out[t · out_stride ..][.. hidden]`. `hidden` is
    /// `[n][2 · width]` (gate, then up, `width >= intermediate`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn forward_batch(
        &self,
        xs: &[f32],
        x_stride: usize,
        n: usize,
        hidden: &mut [f32],
        width: usize,
        out: &mut [f32],
        out_stride: usize,
        work: (&mut [f32], &mut [u8]),
        par: &dyn Parallel,
    ) {
        let (tmp, blocks) = work;
        let inter = self.gate.rows();
        let stride = 2 * width;
        self.gate.matmul(xs, x_stride, n, hidden, stride, tmp, blocks, par);
        if let Some(up_part) = hidden.get_mut(width..) {
            self.up.matmul(xs, x_stride, n, up_part, stride, tmp, blocks, par);
        }
        // The gating, token rows spread over the threads like a product's rows (`expf` per
        // value costs about what streaming `SILU_COST` weight bytes does).
        const SILU_COST: usize = 16;
        let rows = hidden.get_mut(..n.saturating_mul(stride)).unwrap_or(&mut []);
        crate::parallel::for_each_wide_span(par, rows, stride, SILU_COST, &|span| {
            for h in span.out().chunks_exact_mut(stride.max(1)) {
                let (g, u) = h.split_at_mut(width.min(h.len()));
                for (gi, ui) in g.iter_mut().zip(u.iter()).take(inter) {
                    *gi = kernels::silu(*gi) * ui;
                }
            }
        });
        self.down.matmul(hidden, stride, n, out, out_stride, tmp, blocks, par);
    }
}

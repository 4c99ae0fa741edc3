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
}

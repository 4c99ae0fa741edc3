//! The batched products' last step: their `[rows][n]` results into the callers' `[n][stride]`
//! layout.

use crate::parallel::{self, Parallel};

/// `out[t · out_stride + r] = tmp[r · n + t]`: a batched product's `[rows][n]` results into
/// the callers' `[n][out_stride]` layout, the tokens split over `par`'s threads.
pub(super) fn transpose_into(
    tmp: &[f32],
    n: usize,
    out: &mut [f32],
    out_stride: usize,
    par: &dyn Parallel,
) {
    let (n, stride) = (n.max(1), out_stride.max(1));
    let rows = tmp.len() / n;
    match out.get_mut(..n.saturating_mul(stride)) {
        // Whole output rows for every token: spans of tokens, each copying its own.
        Some(whole) if rows <= stride => {
            parallel::for_each_wide_span(par, whole, stride, 8, &|span| {
                let t0 = span.first_row();
                transpose_span(tmp, n, t0, span.out(), stride);
            });
        }
        _ => transpose_span(tmp, n, 0, out, stride),
    }
}

/// [`transpose_into`] for the tokens `t0 ..` whose output rows `out` holds (`out_stride`
/// apart), eight result rows at a time so that each output row gets 32 contiguous bytes per
/// pass and the eight source rows stay in L1.
fn transpose_span(tmp: &[f32], n: usize, t0: usize, out: &mut [f32], out_stride: usize) {
    const ROWS: usize = 8;
    for (b, block) in tmp.chunks(ROWS * n).enumerate() {
        let r0 = b * ROWS;
        let rows = block.len() / n;
        for (t, dst) in out.chunks_mut(out_stride).enumerate() {
            let Some(dst) = dst.get_mut(r0..r0 + rows) else { continue };
            for (i, d) in dst.iter_mut().enumerate() {
                if let Some(v) = block.get(i * n + t0 + t) {
                    *d = *v;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::transpose_into;
    use crate::parallel::tests::Backwards;

    /// The transpose puts every result where the one-thread copy does, whatever the spans
    /// (sizes large enough to be split, a stride wider than the rows, one token).
    #[test]
    fn transpose_is_the_same_on_any_spans() {
        // Miri (~1000× slower) gets the small shapes.
        let shapes: &[(usize, usize, usize)] = if cfg!(miri) {
            &[(19, 8, 21), (8, 1, 8)]
        } else {
            &[(19, 64, 21), (300, 64, 300), (8, 1, 8), (1000, 33, 1003), (64, 64, 70)]
        };
        for &(rows, n, stride) in shapes {
            let tmp: std::vec::Vec<f32> = (0..rows * n).map(|i| i as f32).collect();
            for ways in [1, 2, 3, 7] {
                let mut out = std::vec![f32::NAN; n * stride];
                transpose_into(&tmp, n, &mut out, stride, &Backwards(ways));
                for t in 0..n {
                    for r in 0..rows {
                        assert_eq!(out[t * stride + r], tmp[r * n + t], "{rows}x{n} ways {ways}");
                    }
                }
            }
        }
    }
}

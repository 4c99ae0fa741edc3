//! The batched product over float rows (F32, F16, BF16): every result exactly as the
//! one-vector product computes it, F16 and BF16 rows a tile of rows × vectors at a time where
//! the kernel table has a tile kernel.

use super::{Matrix, WeightType};
use crate::kernels::{self, F16Tile, Kernels, F16_TILE_ROWS, F16_TILE_VECTORS};

/// A tile kernel of [`Kernels`] (F16 or BF16 rows).
type TileFn = fn(&Kernels, &[&[u8]; F16_TILE_ROWS], &[&[f32]; F16_TILE_VECTORS]) -> Option<F16Tile>;

impl Matrix<'_> {
    /// `out[r · n + t] = row r · vector(t)` for the whole rows in `bytes` (rows of this
    /// matrix's float type), each bit-identical to [`Matrix::matvec_serial`] of that row and
    /// vector. F16 / BF16 rows go in pairs through [`kernels::Kernels::dot_f16_tile`] (each weight
    /// converted once for three vectors, each activation loaded once for two rows); the rest
    /// one by one. Float sums differ between tables, so this takes the active table, as
    /// [`Matrix::matvec_serial`] does, whatever table the integer products were given.
    pub(super) fn float_rows<'x>(
        &self,
        bytes: &[u8],
        n: usize,
        vector: impl Fn(usize) -> &'x [f32],
        out: &mut [f32],
    ) {
        let (rb, n) = (self.row_bytes.max(1), n.max(1));
        let k = kernels::active();
        let one = |row: &[u8], t: usize| {
            let mut result = [0.0f32];
            Matrix { rows: 1, bytes: row, ..*self }.matvec_serial(vector(t), &mut result);
            let [v] = result;
            v
        };
        let tile: Option<TileFn> = match self.ty {
            WeightType::F16 => Some(Kernels::dot_f16_tile),
            WeightType::BF16 => Some(Kernels::dot_bf16_tile),
            _ => None,
        };
        let mut done_rows = 0;
        if let Some(tile) = tile {
            let pairs = bytes.chunks_exact(F16_TILE_ROWS * rb).zip(out.chunks_exact_mut(2 * n));
            for (two, o2) in pairs {
                let (r0, r1) = two.split_at(rb);
                let (o0, o1) = o2.split_at_mut(n);
                let mut t = 0;
                while t + F16_TILE_VECTORS <= n {
                    let xs = [vector(t), vector(t + 1), vector(t + 2)];
                    let Some([a, b]) = tile(k, &[r0, r1], &xs) else { break };
                    if let (Some(d0), Some(d1)) = (o0.get_mut(t..t + 3), o1.get_mut(t..t + 3)) {
                        d0.copy_from_slice(&a);
                        d1.copy_from_slice(&b);
                    }
                    t += F16_TILE_VECTORS;
                }
                for (u, (x0, x1)) in o0.iter_mut().zip(o1.iter_mut()).enumerate().skip(t) {
                    *x0 = one(r0, u);
                    *x1 = one(r1, u);
                }
                done_rows += F16_TILE_ROWS;
            }
        }
        let rest = bytes.get(done_rows * rb..).unwrap_or(&[]);
        let rest_out = out.get_mut(done_rows * n..).unwrap_or(&mut []);
        for (row, o) in rest.chunks_exact(rb).zip(rest_out.chunks_exact_mut(n)) {
            for (t, ot) in o.iter_mut().enumerate() {
                *ot = one(row, t);
            }
        }
    }
}

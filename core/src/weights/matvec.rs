//! Matrix-vector products: one activation vector against every row (decode), the
//! transposed product, and the embedding row lookup.

use super::{bf16_to_f32, with_residual, Matrix, WeightType};
use crate::config::ActivationPrecision;
#[cfg(feature = "block-formats")]
use crate::kernels::SUPER_ROWS4;
use crate::kernels::{self, Kernels};
use crate::parallel::{self, Parallel};
use crate::quant::format::{ActBlocks, BlockFormat};
use crate::quant::{q4_0, q8_0, q8_k, ACT_CHUNK_BLOCKS, ACT_CHUNK_SUPER, QK, QK_K};

/// The chunk of activation blocks for rows of at most this many blocks (256 values): the
/// small models' products, whose 64-block chunk buffer cost more to zero than to use.
const SMALL_CHUNK_BLOCKS: usize = 8;

impl Matrix<'_> {
    /// `out[r] = Σ_c W[r][c] · x[c]` for every row (`out.len()` rows at most), with the rows
    /// spread over `par`. Quantised rows are multiplied by `x` quantised to Q8_0 on the fly,
    /// with integer block sums. Each row's result is independent of how rows are split.
    pub(crate) fn matvec(&self, x: &[f32], out: &mut [f32], par: &dyn Parallel) {
        let out = match out.get_mut(..self.rows) {
            Some(o) => o,
            None => out,
        };
        parallel::for_each_span(par, out, self.row_bytes, &|span| {
            let rows = self.sub_rows(span.first_row(), span.rows());
            rows.matvec_serial(x, span.out());
        });
    }

    /// Several products in one: the rows form groups of `rows_per_group` (one per attention
    /// head), and group `g` is multiplied by its own vector `x[g · x_stride ..][.. cols]`. All
    /// rows are spread over `par` at once, so many small per-head products cost one fork and
    /// join, not one each. Every row is computed exactly as [`Matrix::matvec`] of its group's
    /// rows would compute it.
    pub(crate) fn matvec_grouped(
        &self,
        x: &[f32],
        x_stride: usize,
        rows_per_group: usize,
        out: &mut [f32],
        par: &dyn Parallel,
    ) {
        let out = match out.get_mut(..self.rows) {
            Some(o) => o,
            None => out,
        };
        let per_group = rows_per_group.max(1);
        parallel::for_each_span(par, out, self.row_bytes, &|span| {
            let mut row = span.first_row();
            let mut rest = span.out();
            while !rest.is_empty() {
                let group = row / per_group;
                let n = (per_group - row % per_group).min(rest.len());
                let (part, tail) = rest.split_at_mut(n);
                let start = group.saturating_mul(x_stride);
                let xg = x.get(start..start.saturating_add(self.cols)).unwrap_or(&[]);
                self.sub_rows(row, n).matvec_serial(xg, part);
                row += n;
                rest = tail;
            }
        });
    }

    /// [`Matrix::matvec`] on the calling thread.
    pub(super) fn matvec_serial(&self, x: &[f32], out: &mut [f32]) {
        let rb = self.row_bytes.max(1);
        let rows = self.bytes.chunks_exact(rb);
        let k = kernels::active();
        match self.ty {
            WeightType::F32 => {
                for (o, row) in out.iter_mut().zip(rows) {
                    *o = k.dot_f32_le(row, x);
                }
            }
            WeightType::F16 => {
                for (o, row) in out.iter_mut().zip(rows) {
                    *o = k.dot_f16_le(row, x);
                }
            }
            WeightType::BF16 => {
                for (o, row) in out.iter_mut().zip(rows) {
                    *o = k.dot_bf16_le(row, x);
                }
            }
            WeightType::Q8_0 if self.decodes_packed(k) => self.matvec_packed(k, x, out),
            WeightType::Q8_0 | WeightType::Q4_0 => self.matvec_quantised(x, out),
            WeightType::Blocks(f) => match f.acts() {
                ActBlocks::Q8_0 => self.matvec_quantised(x, out),
                ActBlocks::Q8K => self.matvec_super(k, f, x, out),
            },
        }
    }

    /// Rows of a format taking Q8_K activations: `x` is quantised [`ACT_CHUNK_SUPER`] blocks
    /// at a time on the stack (at Int16 with a residual plane, folded by [`with_residual`])
    /// and every row's partial dot product accumulated per chunk, as the Q8_0 path does.
    #[inline(never)]
    fn matvec_super(&self, k: &Kernels, f: BlockFormat, x: &[f32], out: &mut [f32]) {
        out.fill(0.0);
        let int16 = self.acts == ActivationPrecision::Int16;
        let mut value = [[0u8; q8_k::BLOCK_BYTES]; ACT_CHUNK_SUPER];
        let mut residual = [[0u8; q8_k::BLOCK_BYTES]; ACT_CHUNK_SUPER];
        let chunk_bytes = ACT_CHUNK_SUPER * f.block_bytes();
        for (c, xs) in x.get(..self.cols).unwrap_or(x).chunks(ACT_CHUNK_SUPER * QK_K).enumerate() {
            let n_blocks = xs.len().div_ceil(QK_K);
            let value = value.get_mut(..n_blocks).unwrap_or(&mut []);
            let residual = residual.get_mut(..n_blocks).unwrap_or(&mut []);
            if int16 {
                q8_k::quantize_with_residual(xs, value, residual);
            } else {
                k.quantize_q8_k(xs, value);
            }
            let start = c * chunk_bytes;
            let end = start + n_blocks * f.block_bytes();
            let row_bytes = self.row_bytes.max(1);
            let done = if int16 { 0 } else { self.super_rows4(k, f, value, (start, end), out) };
            let rows = self.bytes.get(done * row_bytes..).unwrap_or(&[]);
            for (o, row) in out.iter_mut().skip(done).zip(rows.chunks_exact(row_bytes)) {
                let w = row.get(start..end).unwrap_or(&[]);
                let v = f.dot_q8_k(k, w, value);
                *o += if int16 { with_residual(v, f.dot_q8_k(k, w, residual)) } else { v };
            }
        }
    }

    /// The first rows of `out` (whole fours) through the table's K-quant rows kernel where it
    /// serves format `f`: `out[r] += f.dot_q8_k(row r's bytes start..end, value)`, bit for bit
    /// as row by row. Returns how many rows it did (0 without such a kernel).
    #[cfg(feature = "block-formats")]
    fn super_rows4(
        &self,
        k: &Kernels,
        f: BlockFormat,
        value: &[q8_k::BlockQ8K],
        (start, end): (usize, usize),
        out: &mut [f32],
    ) -> usize {
        let Some(rows4) = k.block_dots().super_rows4 else {
            return 0;
        };
        let row_bytes = self.row_bytes.max(1);
        // The next call reads the same blocks four rows on.
        let ahead = SUPER_ROWS4 * row_bytes;
        let mut done = 0;
        let fours = self.bytes.chunks_exact(SUPER_ROWS4 * row_bytes);
        for (o, rows) in out.chunks_exact_mut(SUPER_ROWS4).zip(fours) {
            let segs: [&[u8]; SUPER_ROWS4] = core::array::from_fn(|r| {
                rows.get(r * row_bytes + start..r * row_bytes + end).unwrap_or(&[])
            });
            let mut sums = [0.0f32; SUPER_ROWS4];
            if !rows4(f, &segs, value, ahead, &mut sums) {
                break;
            }
            for (o, s) in o.iter_mut().zip(sums) {
                *o += s;
            }
            done += SUPER_ROWS4;
        }
        done
    }

    /// Without the block formats there is no K-quant rows kernel.
    #[cfg(not(feature = "block-formats"))]
    fn super_rows4(
        &self,
        _: &Kernels,
        _: BlockFormat,
        _: &[q8_k::BlockQ8K],
        _: (usize, usize),
        _: &mut [f32],
    ) -> usize {
        0
    }

    /// Quantised rows: `x` is quantised [`ACT_CHUNK_BLOCKS`] blocks at a time on the stack and
    /// every row's partial dot product accumulated per chunk.
    ///
    /// A row of at most [`SMALL_CHUNK_BLOCKS`] blocks takes a chunk buffer of that size: one
    /// chunk either way, so the same sums, without zeroing (and taking stack for) the full
    /// chunk on every call — most products of the small models are that narrow.
    fn matvec_quantised(&self, x: &[f32], out: &mut [f32]) {
        let k = kernels::active();
        let small = self.cols <= SMALL_CHUNK_BLOCKS * QK;
        match (self.acts, k.has_scaled_dots()) {
            (ActivationPrecision::Int8, true) if small => self.matvec_small::<true>(k, x, out),
            (ActivationPrecision::Int8, false) if small => self.matvec_small::<false>(k, x, out),
            (ActivationPrecision::Int8, true) => self.matvec_large::<true>(k, x, out),
            (ActivationPrecision::Int8, false) => self.matvec_large::<false>(k, x, out),
            (ActivationPrecision::Int16, true) => self.matvec_int16::<true>(k, x, out),
            (ActivationPrecision::Int16, false) => self.matvec_int16::<false>(k, x, out),
        }
    }

    /// [`Matrix::matvec_chunks`] at Int8 with a [`SMALL_CHUNK_BLOCKS`] chunk buffer. The
    /// buffers are flat arrays, zeroed by one `memset` (an array of blocks is zeroed block by
    /// block in a size-optimised build). Not inlined on bare metal, so that its frame does
    /// not hold the large chunk's buffers too.
    #[cfg_attr(target_os = "none", inline(never))]
    fn matvec_small<const SCALED: bool>(&self, k: &Kernels, x: &[f32], out: &mut [f32]) {
        let mut act = [0u8; SMALL_CHUNK_BLOCKS * q8_0::BLOCK_BYTES];
        let mut scales = [0.0f32; SMALL_CHUNK_BLOCKS];
        let act = act.as_chunks_mut().0;
        self.matvec_chunks::<SCALED, false, _>(k, x, out, (act, &mut scales), (&mut [], &mut []));
    }

    /// [`Matrix::matvec_chunks`] at Int8 with an [`ACT_CHUNK_BLOCKS`] chunk buffer.
    #[cfg_attr(target_os = "none", inline(never))]
    fn matvec_large<const SCALED: bool>(&self, k: &Kernels, x: &[f32], out: &mut [f32]) {
        let mut act = [0u8; ACT_CHUNK_BLOCKS * q8_0::BLOCK_BYTES];
        let mut scales = [0.0f32; ACT_CHUNK_BLOCKS];
        let act = act.as_chunks_mut().0;
        self.matvec_chunks::<SCALED, false, _>(k, x, out, (act, &mut scales), (&mut [], &mut []));
    }

    /// [`Matrix::matvec_chunks`] with residual blocks. Not inlined, so that the residual
    /// buffers (2,432 bytes) take stack only when this precision runs: the boards' stack
    /// budget counts every byte of the Int8 path.
    #[inline(never)]
    fn matvec_int16<const SCALED: bool>(&self, k: &Kernels, x: &[f32], out: &mut [f32]) {
        let mut act = [0u8; ACT_CHUNK_BLOCKS * q8_0::BLOCK_BYTES];
        let mut act_scales = [0.0f32; ACT_CHUNK_BLOCKS];
        let mut blocks = [0u8; ACT_CHUNK_BLOCKS * q8_0::BLOCK_BYTES];
        let mut scales = [0.0f32; ACT_CHUNK_BLOCKS];
        let (act, blocks) = (act.as_chunks_mut().0, blocks.as_chunks_mut().0);
        self.matvec_chunks::<SCALED, true, _>(
            k,
            x,
            out,
            (act, &mut act_scales),
            (blocks, &mut scales),
        );
    }

    /// [`Matrix::matvec_quantised`]. With `RESIDUAL`, `residual` holds a chunk's residual
    /// blocks and their scales, and every row's chunk sum is [`with_residual`]`(value sum,
    /// residual sum)`, as [`Matrix::matmul`] folds it (without, the Int8 loop carries no
    /// residual code: a second kernel call site in it cost the boards 12–40% per token).
    /// With `SCALED`, the activation scales are converted to f32 once per chunk for all rows
    /// (the table's scaled kernels would otherwise convert them for every row), and Q8_0
    /// rows go through the table's rows kernel where it has one.
    ///
    /// `chunk` is the buffer for one chunk's activation blocks and their scales, `CHUNK` of
    /// each (the callers' flat buffers hold exactly that many blocks), and `residual` is as
    /// long where `RESIDUAL` holds.
    fn matvec_chunks<const SCALED: bool, const RESIDUAL: bool, const CHUNK: usize>(
        &self,
        k: &Kernels,
        x: &[f32],
        out: &mut [f32],
        chunk: (&mut [q8_0::BlockQ8_0], &mut [f32; CHUNK]),
        residual: (&mut [q8_0::BlockQ8_0], &mut [f32]),
    ) {
        let (act_buf, act_scales) = chunk;
        let (res_blocks, res_scales) = residual;
        out.fill(0.0);
        let block_bytes = self.ty.block_bytes();
        let chunk_bytes = CHUNK * block_bytes;
        let rows_fn = match (SCALED && !RESIDUAL, self.ty) {
            (true, WeightType::Q8_0) => k.dot_q8_0_rows(),
            _ => None,
        };
        for (c, xs) in x.get(..self.cols).unwrap_or(x).chunks(CHUNK * QK).enumerate() {
            let n_blocks = xs.len().div_ceil(QK);
            let act = act_buf.get_mut(..n_blocks).unwrap_or(&mut []);
            // The residual chunk: its blocks and their f32 scales.
            let res_blocks = res_blocks.get_mut(..n_blocks).unwrap_or(&mut []);
            if RESIDUAL {
                q8_0::quantize_with_residual(xs, act, res_blocks);
                if SCALED {
                    q8_0::scales(res_blocks, res_scales);
                }
            } else {
                k.quantize_q8_0(xs, act);
            }
            let (res_blocks, res_scales) =
                (&*res_blocks, res_scales.get(..n_blocks).unwrap_or(&[]));
            if SCALED {
                q8_0::scales(act, act_scales);
            }
            let act_scales = act_scales.get(..n_blocks).unwrap_or(&[]);
            let start = c * chunk_bytes;
            let end = start + n_blocks * block_bytes;
            if let Some(rows_fn) = rows_fn {
                // Q8_0 rows are whole blocks: row r's chunk starts `stride · r` blocks on.
                let blocks = self.bytes.as_chunks::<{ q8_0::BLOCK_BYTES }>().0;
                let stride = self.row_bytes / q8_0::BLOCK_BYTES;
                let rows = blocks.get(start / q8_0::BLOCK_BYTES..).unwrap_or(&[]);
                rows_fn(rows, stride, act, act_scales, out);
                continue;
            }
            for (o, row) in out.iter_mut().zip(self.bytes.chunks_exact(self.row_bytes.max(1))) {
                let w = row.get(start..end).unwrap_or(&[]);
                let value = self.dot::<SCALED>(k, w, act, act_scales);
                *o += if RESIDUAL {
                    with_residual(value, self.dot::<SCALED>(k, w, res_blocks, res_scales))
                } else {
                    value
                };
            }
        }
    }

    /// One row segment `w` (whole blocks of this matrix's type) times activation blocks
    /// `act`, through the table's scaled kernels (`scales`: `act`'s scales as f32) or its
    /// plain ones.
    #[inline(always)]
    pub(super) fn dot<const SCALED: bool>(
        &self,
        k: &Kernels,
        w: &[u8],
        act: &[q8_0::BlockQ8_0],
        scales: &[f32],
    ) -> f32 {
        match (self.ty, SCALED) {
            (WeightType::Blocks(f), _) => f.dot_q8_0(k, w, act),
            (WeightType::Q4_0, true) => k.dot_q4_0_scaled(w.as_chunks().0, act, scales),
            (WeightType::Q4_0, false) => k.dot_q4_0(w.as_chunks().0, act),
            (_, true) => k.dot_q8_0_scaled(w.as_chunks().0, act, scales),
            (_, false) => k.dot_q8_0(w.as_chunks().0, act),
        }
    }

    /// `out[c] = Σ_r x[r] · W[r][c]` (the transposed product), `out.len() == cols`.
    pub(crate) fn matvec_transposed(&self, x: &[f32], out: &mut [f32]) {
        out.fill(0.0);
        for (xr, row) in x.iter().zip(self.bytes.chunks_exact(self.row_bytes.max(1))) {
            axpy_row(self.ty, out, *xr, row);
        }
    }

    /// Row `r` converted to `f32` into `out` (the embedding lookup).
    pub(crate) fn row_into(&self, r: usize, out: &mut [f32]) {
        if let WeightType::Blocks(f) = self.ty {
            out.fill(0.0);
            f.dequantize(self.sub_rows(r, 1).bytes, out);
            return;
        }
        out.fill(0.0);
        axpy_row(self.ty, out, 1.0, self.sub_rows(r, 1).bytes);
    }
}

/// `out += a · row` for one stored row.
fn axpy_row(ty: WeightType, out: &mut [f32], a: f32, row: &[u8]) {
    match ty {
        WeightType::F32 => {
            for (o, wb) in out.iter_mut().zip(row.as_chunks::<4>().0) {
                *o += a * f32::from_le_bytes(*wb);
            }
        }
        WeightType::F16 => {
            for (o, wb) in out.iter_mut().zip(row.as_chunks::<2>().0) {
                *o += a * kernels::f16_to_f32(*wb);
            }
        }
        WeightType::BF16 => {
            for (o, wb) in out.iter_mut().zip(row.as_chunks::<2>().0) {
                *o += a * bf16_to_f32(*wb);
            }
        }
        WeightType::Q8_0 => q8_0::axpy(out, a, row.as_chunks().0),
        WeightType::Q4_0 => q4_0::axpy(out, a, row.as_chunks().0),
        WeightType::Blocks(f) => {
            // Block by block through a stack buffer: `out[i] += a · dequant(row)[i]`.
            let mut values = [0.0f32; QK_K];
            let elems = f.block_elems();
            for (block, out) in row.chunks_exact(f.block_bytes()).zip(out.chunks_mut(elems)) {
                let values = values.get_mut(..elems).unwrap_or(&mut []);
                f.dequantize(block, values);
                for (o, v) in out.iter_mut().zip(values.iter()) {
                    *o += a * v;
                }
            }
        }
    }
}

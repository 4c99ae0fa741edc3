//! Weight views: typed, shape-checked windows into the model file's bytes.

use crate::config::ActivationPrecision;
use crate::error::Error;
use crate::kernels::{self, Kernels};
use crate::parallel::{self, Parallel};
use crate::quant::format::{ActBlocks, BlockFormat};
use crate::quant::group8::{self, Group8};
use crate::quant::{
    block_scale, f16_at, q4_0, q8_0, q8_k, ACT_CHUNK_BLOCKS, ACT_CHUNK_SUPER, QK, QK_K,
};
use crate::tensor::{GgmlType, TensorId, TensorView};

/// Storage of a weight matrix this build can compute with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WeightType {
    F32,
    F16,
    BF16,
    /// ggml `Q8_0` blocks; rows are whole blocks.
    Q8_0,
    /// ggml `Q4_0` blocks; rows are whole blocks.
    Q4_0,
    /// Another ggml block format (K-quants, IQ4, Q4_1, Q5_0, Q5_1); rows are whole blocks.
    Blocks(BlockFormat),
}

impl WeightType {
    fn of(t: GgmlType) -> Option<Self> {
        Some(match t {
            GgmlType::F32 => WeightType::F32,
            GgmlType::F16 => WeightType::F16,
            GgmlType::BF16 => WeightType::BF16,
            GgmlType::Q8_0 => WeightType::Q8_0,
            GgmlType::Q4_0 => WeightType::Q4_0,
            other => WeightType::Blocks(BlockFormat::of(other)?),
        })
    }

    /// Bytes per block of a block format (0 for the float types).
    fn block_bytes(self) -> usize {
        match self {
            WeightType::F32 | WeightType::F16 | WeightType::BF16 => 0,
            WeightType::Q8_0 => q8_0::BLOCK_BYTES,
            WeightType::Q4_0 => q4_0::BLOCK_BYTES,
            WeightType::Blocks(f) => f.block_bytes(),
        }
    }

    /// True for the formats multiplied against Q8_0 activation blocks.
    fn takes_q8_0(self) -> bool {
        match self {
            WeightType::Q8_0 | WeightType::Q4_0 => true,
            WeightType::Blocks(f) => f.acts() == ActBlocks::Q8_0,
            WeightType::F32 | WeightType::F16 | WeightType::BF16 => false,
        }
    }

    /// Bytes of a row of `cols` elements (`None` if `cols` is not a whole number of blocks).
    fn row_bytes(self, cols: usize) -> Option<usize> {
        match self {
            WeightType::F32 => cols.checked_mul(4),
            WeightType::F16 | WeightType::BF16 => cols.checked_mul(2),
            WeightType::Q8_0 => cols.is_multiple_of(QK).then(|| cols / QK * q8_0::BLOCK_BYTES),
            WeightType::Q4_0 => cols.is_multiple_of(QK).then(|| cols / QK * q4_0::BLOCK_BYTES),
            WeightType::Blocks(f) => f.row_bytes(cols),
        }
    }
}

/// `bf16` (little-endian bytes) to `f32`: the top half of an `f32`.
#[inline(always)]
fn bf16_to_f32(b: [u8; 2]) -> f32 {
    f32::from_bits(u32::from(u16::from_le_bytes(b)) << 16)
}

/// A row-major matrix `[rows][cols]` borrowed from the file (`ne = [cols, rows]`).
///
/// Invariant: `bytes.len() == rows * ty.row_bytes(cols)`.
#[derive(Clone, Copy)]
pub(crate) struct Matrix<'a> {
    ty: WeightType,
    rows: usize,
    cols: usize,
    row_bytes: usize,
    bytes: &'a [u8],
    /// How quantised rows take their input vector.
    acts: ActivationPrecision,
}

impl core::fmt::Debug for Matrix<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Matrix {{ {:?}, {} x {} }}", self.ty, self.rows, self.cols)
    }
}

impl<'a> Matrix<'a> {
    /// A view of `t` as `rows × cols` if its dims (any trailing dims folded into rows) match.
    pub(crate) fn new(
        id: TensorId,
        t: &TensorView<'a>,
        expected_ne: [u64; 3],
    ) -> Result<Self, Error> {
        let found =
            t.dims3().unwrap_or([t.dims[0], t.dims[1], t.dims[2].saturating_mul(t.dims[3])]);
        if found != expected_ne || t.dims[3] != 1 {
            return Err(Error::ShapeMismatch { tensor: id, expected: expected_ne, found });
        }
        let ty = WeightType::of(t.ggml_type)
            .ok_or(Error::UnsupportedTensorType { tensor: id, ggml_type: t.ggml_type.id() })?;
        let [ne0, ne1, ne2] = expected_ne;
        let to_usize = |v: u64| usize::try_from(v).map_err(|_| Error::SizeOverflow);
        let cols = to_usize(ne0)?;
        let rows = to_usize(ne1)?.checked_mul(to_usize(ne2)?).ok_or(Error::SizeOverflow)?;
        let mismatch = Error::ShapeMismatch { tensor: id, expected: expected_ne, found };
        let row_bytes = ty.row_bytes(cols).ok_or(mismatch)?;
        let len = rows.checked_mul(row_bytes).ok_or(Error::SizeOverflow)?;
        if t.bytes.len() != len {
            return Err(mismatch);
        }
        Ok(Matrix { ty, rows, cols, row_bytes, bytes: t.bytes, acts: ActivationPrecision::Int8 })
    }

    /// The same view, multiplying its input vectors at precision `acts` (quantised rows).
    pub(crate) fn with_activations(self, acts: ActivationPrecision) -> Self {
        Matrix { acts, ..self }
    }

    /// True when every element is finite (quantised blocks: every scale).
    pub(crate) fn is_finite(&self) -> bool {
        match self.ty {
            WeightType::F32 => all_finite_f32(self.bytes),
            WeightType::F16 => {
                self.bytes.as_chunks::<2>().0.iter().all(|b| kernels::f16_to_f32(*b).is_finite())
            }
            WeightType::BF16 => {
                self.bytes.as_chunks::<2>().0.iter().all(|b| bf16_to_f32(*b).is_finite())
            }
            WeightType::Q8_0 => self
                .bytes
                .as_chunks::<{ q8_0::BLOCK_BYTES }>()
                .0
                .iter()
                .all(|b| block_scale(b).is_finite()),
            WeightType::Q4_0 => self
                .bytes
                .as_chunks::<{ q4_0::BLOCK_BYTES }>()
                .0
                .iter()
                .all(|b| block_scale(b).is_finite()),
            WeightType::Blocks(f) => self
                .bytes
                .chunks_exact(f.block_bytes())
                .all(|b| f.scale_offsets().iter().all(|at| f16_at(b, *at).is_finite())),
        }
    }

    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// Rows `start .. start + n` as a matrix (empty if out of range).
    pub(crate) fn sub_rows(&self, start: usize, n: usize) -> Matrix<'a> {
        let rb = self.row_bytes;
        let bytes = start
            .checked_mul(rb)
            .zip(start.checked_add(n).and_then(|e| e.checked_mul(rb)))
            .and_then(|(s, e)| self.bytes.get(s..e));
        match bytes {
            Some(bytes) => Matrix { rows: n, bytes, ..*self },
            None => Matrix { rows: 0, bytes: &[], ..*self },
        }
    }

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
    fn matvec_serial(&self, x: &[f32], out: &mut [f32]) {
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
                    *o = row
                        .as_chunks::<2>()
                        .0
                        .iter()
                        .zip(x)
                        .map(|(b, xi)| bf16_to_f32(*b) * xi)
                        .sum();
                }
            }
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
                q8_k::quantize(xs, value);
            }
            let start = c * chunk_bytes;
            let end = start + n_blocks * f.block_bytes();
            for (o, row) in out.iter_mut().zip(self.bytes.chunks_exact(self.row_bytes.max(1))) {
                let w = row.get(start..end).unwrap_or(&[]);
                let v = f.dot_q8_k(k, w, value);
                *o += if int16 { with_residual(v, f.dot_q8_k(k, w, residual)) } else { v };
            }
        }
    }

    /// Quantised rows: `x` is quantised [`ACT_CHUNK_BLOCKS`] blocks at a time on the stack and
    /// every row's partial dot product accumulated per chunk.
    fn matvec_quantised(&self, x: &[f32], out: &mut [f32]) {
        let k = kernels::active();
        match (self.acts, k.has_scaled_dots()) {
            (ActivationPrecision::Int8, true) => {
                self.matvec_chunks::<true, false>(k, x, out, (&mut [], &mut []));
            }
            (ActivationPrecision::Int8, false) => {
                self.matvec_chunks::<false, false>(k, x, out, (&mut [], &mut []));
            }
            (ActivationPrecision::Int16, true) => self.matvec_int16::<true>(k, x, out),
            (ActivationPrecision::Int16, false) => self.matvec_int16::<false>(k, x, out),
        }
    }

    /// [`Matrix::matvec_chunks`] with residual blocks. Not inlined, so that the residual
    /// buffers (2,432 bytes) take stack only when this precision runs: the boards' stack
    /// budget counts every byte of the Int8 path.
    #[inline(never)]
    fn matvec_int16<const SCALED: bool>(&self, k: &Kernels, x: &[f32], out: &mut [f32]) {
        let mut blocks: [q8_0::BlockQ8_0; ACT_CHUNK_BLOCKS] =
            [[0; q8_0::BLOCK_BYTES]; ACT_CHUNK_BLOCKS];
        let mut scales = [0.0f32; ACT_CHUNK_BLOCKS];
        self.matvec_chunks::<SCALED, true>(k, x, out, (&mut blocks, &mut scales));
    }

    /// [`Matrix::matvec_quantised`]. With `RESIDUAL`, `residual` holds a chunk's residual
    /// blocks and their scales, and every row's chunk sum is [`with_residual`]`(value sum,
    /// residual sum)`, as [`Matrix::matmul`] folds it (without, the Int8 loop carries no
    /// residual code: a second kernel call site in it cost the boards 12–40% per token).
    /// With `SCALED`, the activation scales are converted to f32 once per chunk for all rows
    /// (the table's scaled kernels would otherwise convert them for every row). Without it
    /// the scale buffer is dead and takes no stack, which matters on the boards, whose
    /// tables have no scaled kernels.
    fn matvec_chunks<const SCALED: bool, const RESIDUAL: bool>(
        &self,
        k: &Kernels,
        x: &[f32],
        out: &mut [f32],
        residual: (&mut [q8_0::BlockQ8_0], &mut [f32]),
    ) {
        let (res_blocks, res_scales) = residual;
        out.fill(0.0);
        let block_bytes = self.ty.block_bytes();
        let chunk_bytes = ACT_CHUNK_BLOCKS * block_bytes;
        let mut act: [q8_0::BlockQ8_0; ACT_CHUNK_BLOCKS] =
            [[0; q8_0::BLOCK_BYTES]; ACT_CHUNK_BLOCKS];
        let mut act_scales = [0.0f32; ACT_CHUNK_BLOCKS];
        for (c, xs) in x.get(..self.cols).unwrap_or(x).chunks(ACT_CHUNK_BLOCKS * QK).enumerate() {
            let n_blocks = xs.len().div_ceil(QK);
            let act = act.get_mut(..n_blocks).unwrap_or(&mut []);
            // The residual chunk: its blocks and their f32 scales.
            let res_blocks = res_blocks.get_mut(..n_blocks).unwrap_or(&mut []);
            if RESIDUAL {
                q8_0::quantize_with_residual(xs, act, res_blocks);
                if SCALED {
                    q8_0::scales(res_blocks, res_scales);
                }
            } else {
                q8_0::quantize(xs, act);
            }
            let (res_blocks, res_scales) =
                (&*res_blocks, res_scales.get(..n_blocks).unwrap_or(&[]));
            if SCALED {
                q8_0::scales(act, &mut act_scales);
            }
            let act_scales = act_scales.get(..n_blocks).unwrap_or(&[]);
            let start = c * chunk_bytes;
            let end = start + n_blocks * block_bytes;
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
    fn dot<const SCALED: bool>(
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

    /// The batched product: `out[t][r] = Σ_c W[r][c] · xs[t][c]` for the `n` vectors
    /// `xs[t] = xs[t · x_stride ..][.. cols]`, written to `out[t · out_stride + r]`. Each
    /// result is bit-identical to [`Matrix::matvec`] of the same vector (quantised rows: the
    /// same Q8_0 activation blocks and the same per-chunk sums), while each weight row is read
    /// once for all `n` vectors instead of once per vector.
    ///
    /// Work memory: `tmp` holds `[rows][n]` results; `blocks` holds the quantised vectors of
    /// quantised rows (plain Q8_0 blocks, or packed groups: at most `n · ⌈cols / 256⌉ · 288`
    /// bytes). [`crate::BatchScratch::sizes`] sizes both for every product of a step.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn matmul(
        &self,
        xs: &[f32],
        x_stride: usize,
        n: usize,
        out: &mut [f32],
        out_stride: usize,
        tmp: &mut [f32],
        blocks: &mut [u8],
        par: &dyn Parallel,
    ) {
        self.matmul_with(kernels::active(), xs, x_stride, n, out, out_stride, tmp, blocks, par);
    }

    /// [`Matrix::matmul`] with the kernel table `k` (tests run every table).
    #[allow(clippy::too_many_arguments)]
    fn matmul_with(
        &self,
        k: &Kernels,
        xs: &[f32],
        x_stride: usize,
        n: usize,
        out: &mut [f32],
        out_stride: usize,
        tmp: &mut [f32],
        blocks: &mut [u8],
        par: &dyn Parallel,
    ) {
        let n = n.max(1);
        let vector = |t: usize| {
            let start = t.saturating_mul(x_stride);
            xs.get(start..start.saturating_add(self.cols)).unwrap_or(&[])
        };
        if let WeightType::Blocks(f) = self.ty {
            if f.acts() == ActBlocks::Q8K {
                let (out, vectors) = ((out, out_stride), (xs, x_stride, n));
                return self.matmul_super(k, f, vectors, out, tmp, blocks, par);
            }
        }
        let quantised = self.ty.takes_q8_0();
        let planes = self.acts.planes();
        // `blocks` is sized for Int8 (`BatchScratch::sizes`); at Int16 a vector takes twice
        // the bytes, so the vectors go in batches that fit, or one by one through `matvec`
        // if not even one fits (each result is independent of its batch).
        let most_bytes = ActLayout::new(self.cols / QK, true).bytes.saturating_mul(planes);
        let fit = blocks.len().checked_div(most_bytes).unwrap_or(n);
        if quantised && fit == 0 {
            for (t, o) in out.chunks_mut(out_stride.max(1)).take(n).enumerate() {
                self.matvec(vector(t), o, par);
            }
            return;
        }
        if quantised && fit < n {
            for t0 in (0..n).step_by(fit) {
                let xs = xs.get(t0.saturating_mul(x_stride)..).unwrap_or(&[]);
                let out = match out.get_mut(t0.saturating_mul(out_stride)..) {
                    Some(o) => o,
                    None => &mut [],
                };
                let m = fit.min(n - t0);
                self.matmul_with(k, xs, x_stride, m, out, out_stride, tmp, blocks, par);
            }
            return;
        }
        // Packing pays only with whole groups to multiply; the per-vector table below holds
        // a batch step's most tokens.
        let grouped = matches!(self.ty, WeightType::Q8_0 | WeightType::Q4_0)
            && k.has_group_kernel()
            && self.cols >= GROUP_COLS
            && n <= crate::moe::MAX_BATCH;
        let n_blocks = self.cols / QK;
        let layout = ActLayout::new(n_blocks, grouped);
        // The quantised vectors, `planes` per input vector (value, then residual).
        let n_acts = n * planes;
        debug_assert!(tmp.len() >= self.rows * n, "batch scratch sized for fewer rows");
        debug_assert!(
            !quantised || blocks.len() >= n_acts * layout.bytes,
            "batch scratch too small"
        );
        let acts = match blocks.get_mut(..n_acts.saturating_mul(layout.bytes)) {
            Some(a) if quantised => {
                for (t, act) in a.chunks_exact_mut((planes * layout.bytes).max(1)).enumerate() {
                    layout.quantize(k, vector(t), act);
                }
                &*a
            }
            _ => &[],
        };
        let tmp = match tmp.get_mut(..self.rows.saturating_mul(n)) {
            Some(t) => t,
            None => tmp,
        };
        parallel::for_each_wide_span(par, tmp, n, self.row_bytes, &|span| {
            let first = span.first_row();
            let rows = self.sub_rows(first, span.rows());
            // Group path: each vector's (packed groups, trailing blocks) split once, and one
            // buffer for a packed chunk of a row.
            let empty: (&[Group8], &[q8_0::BlockQ8_0]) = (&[], &[]);
            let mut vectors = [empty; 2 * crate::moe::MAX_BATCH];
            let mut packed = [[0u8; group8::GROUP_BYTES]; GROUPS_PER_CHUNK];
            if grouped {
                for (p, v) in vectors.iter_mut().enumerate().take(n_acts) {
                    *v = layout
                        .split(acts.get(p * layout.bytes..(p + 1) * layout.bytes).unwrap_or(&[]));
                }
            }
            let vectors = vectors.get(..n_acts).unwrap_or(&[]);
            let row_bytes = self.row_bytes.max(1);
            for (row, o) in rows.bytes.chunks_exact(row_bytes).zip(span.out().chunks_exact_mut(n)) {
                if grouped {
                    let n_blocks = layout.n_blocks;
                    self.row_times_groups(k, row, vectors, &mut packed, n_blocks, planes, o);
                } else if quantised {
                    self.row_times_blocks(k, row, acts.as_chunks().0, n_blocks, planes, o);
                } else {
                    for (t, ot) in o.iter_mut().enumerate() {
                        let mut one = [0.0f32];
                        Matrix { rows: 1, bytes: row, ..*self }.matvec_serial(vector(t), &mut one);
                        *ot = one[0];
                    }
                }
            }
        });
        transpose_into(tmp, n, out, out_stride);
    }

    /// One quantised row times every quantised vector of `acts` (`n_blocks` blocks each,
    /// `planes` per result: the value, then at Int16 its residual), into `out` (one result
    /// per `planes` vectors), summed per [`ACT_CHUNK_BLOCKS`] chunk exactly as
    /// [`Matrix::matvec`] sums it. The chunk loop is outside the vector loop, so a chunk of
    /// the row is read from memory once and reused from L1 for every vector.
    fn row_times_blocks(
        &self,
        k: &Kernels,
        row: &[u8],
        acts: &[q8_0::BlockQ8_0],
        n_blocks: usize,
        planes: usize,
        out: &mut [f32],
    ) {
        let block_bytes = self.ty.block_bytes();
        out.fill(0.0);
        let chunks = n_blocks.div_ceil(ACT_CHUNK_BLOCKS);
        for c in 0..chunks {
            let (b0, b1) = (c * ACT_CHUNK_BLOCKS, ((c + 1) * ACT_CHUNK_BLOCKS).min(n_blocks));
            let seg = row.get(b0 * block_bytes..b1 * block_bytes).unwrap_or(&[]);
            let dot = |p: usize| {
                let start = p * n_blocks;
                let act = acts.get(start + b0..start + b1).unwrap_or(&[]);
                self.dot::<false>(k, seg, act, &[])
            };
            for (t, o) in out.iter_mut().enumerate() {
                *o += fold_planes(planes, t, dot);
            }
        }
    }

    /// [`Matrix::row_times_blocks`] with packed groups: each [`ACT_CHUNK_BLOCKS`] chunk of the
    /// row is packed once (into `packed`) and multiplied with every vector's packed chunk
    /// (`vectors[p]`: its groups and trailing plain blocks; `out.len() · planes` of them) by
    /// the group kernel; a chunk's last `n_blocks % 8` blocks continue its sum block by
    /// block. Bit-identical to [`Matrix::row_times_blocks`].
    #[allow(clippy::too_many_arguments)]
    fn row_times_groups(
        &self,
        k: &Kernels,
        row: &[u8],
        vectors: &[(&[Group8], &[q8_0::BlockQ8_0])],
        packed: &mut [Group8; GROUPS_PER_CHUNK],
        n_blocks: usize,
        planes: usize,
        out: &mut [f32],
    ) {
        out.fill(0.0);
        for c in 0..n_blocks.div_ceil(ACT_CHUNK_BLOCKS) {
            let (b0, b1) = (c * ACT_CHUNK_BLOCKS, ((c + 1) * ACT_CHUNK_BLOCKS).min(n_blocks));
            let (g0, g1) = (b0 / group8::BLOCKS, b1 / group8::BLOCKS);
            let tail = g1 * group8::BLOCKS..b1;
            let packed = packed.get_mut(..g1 - g0).unwrap_or(&mut []);
            match self.ty {
                WeightType::Q4_0 => {
                    let blocks = row.get(b0 * q4_0::BLOCK_BYTES..).unwrap_or(&[]).as_chunks().0;
                    for (g, src) in packed.iter_mut().zip(blocks.as_chunks::<8>().0) {
                        k.pack_q4_0(src, g);
                    }
                }
                _ => {
                    let blocks = row.get(b0 * q8_0::BLOCK_BYTES..).unwrap_or(&[]).as_chunks().0;
                    for (g, src) in packed.iter_mut().zip(blocks.as_chunks::<8>().0) {
                        k.pack_q8_0(src, g);
                    }
                }
            }
            let vector = |t: usize| {
                let (groups, tail_blocks) = vectors.get(t).copied().unwrap_or((&[], &[]));
                (groups.get(g0..g1).unwrap_or(&[]), tail_blocks)
            };
            let n = vectors.len();
            let mut sums = [0.0f32; kernels::GROUP_TILE];
            let mut chunk_sums = [0.0f32; 2 * crate::moe::MAX_BATCH];
            for (t, s) in chunk_sums.iter_mut().enumerate().take(n) {
                // Full tiles of vectors go through the tile kernel, the rest one by one.
                let in_tile = t % kernels::GROUP_TILE;
                let tile_start = t - in_tile;
                let mut sum = if tile_start + kernels::GROUP_TILE <= n {
                    if in_tile == 0 {
                        let tile = core::array::from_fn(|i| vector(tile_start + i).0);
                        sums = k.dot_groups_tile(packed, &tile);
                    }
                    sums.get(in_tile).copied().unwrap_or(0.0)
                } else {
                    k.dot_groups(packed, vector(t).0)
                };
                if !tail.is_empty() {
                    // The chunk's trailing blocks continue its sum (from 0 when the chunk
                    // has no groups, as the one-vector kernels' sum starts).
                    let a = vector(t).1;
                    sum = match self.ty {
                        WeightType::Q4_0 => {
                            let w = row.get(tail.start * q4_0::BLOCK_BYTES..).unwrap_or(&[]);
                            k.dot_q4_0_from(sum, w.as_chunks().0, a)
                        }
                        _ => {
                            let w = row.get(tail.start * q8_0::BLOCK_BYTES..).unwrap_or(&[]);
                            k.dot_q8_0_from(sum, w.as_chunks().0, a)
                        }
                    };
                }
                *s = sum;
            }
            let sum = |p: usize| chunk_sums.get(p).copied().unwrap_or(0.0);
            for (t, o) in out.iter_mut().enumerate() {
                *o += fold_planes(planes, t, sum);
            }
        }
    }

    /// [`Matrix::matmul_with`] for a format taking Q8_K activations: each vector quantised
    /// once (`planes` planes of `cols / 256` blocks, in `blocks`), then every row chunk of
    /// [`ACT_CHUNK_SUPER`] super-blocks multiplied with every vector's chunk while it is in
    /// L1, summed per chunk exactly as [`Matrix::matvec_super`] sums it.
    #[allow(clippy::too_many_arguments)]
    fn matmul_super(
        &self,
        k: &Kernels,
        f: BlockFormat,
        (xs, x_stride, n): (&[f32], usize, usize),
        (out, out_stride): (&mut [f32], usize),
        tmp: &mut [f32],
        blocks: &mut [u8],
        par: &dyn Parallel,
    ) {
        let vector = |t: usize| {
            let start = t.saturating_mul(x_stride);
            xs.get(start..start.saturating_add(self.cols)).unwrap_or(&[])
        };
        let planes = self.acts.planes();
        let n_blocks = self.cols / QK_K;
        let plane_bytes = n_blocks * q8_k::BLOCK_BYTES;
        let fit = blocks.len().checked_div(plane_bytes.saturating_mul(planes)).unwrap_or(n);
        if fit == 0 {
            for (t, o) in out.chunks_mut(out_stride.max(1)).take(n).enumerate() {
                self.matvec(vector(t), o, par);
            }
            return;
        }
        if fit < n {
            for t0 in (0..n).step_by(fit) {
                let xs = xs.get(t0.saturating_mul(x_stride)..).unwrap_or(&[]);
                let out = match out.get_mut(t0.saturating_mul(out_stride)..) {
                    Some(o) => o,
                    None => &mut [],
                };
                let m = fit.min(n - t0);
                self.matmul_super(k, f, (xs, x_stride, m), (out, out_stride), tmp, blocks, par);
            }
            return;
        }
        let acts = match blocks.get_mut(..n * planes * plane_bytes) {
            Some(a) => a,
            None => &mut [],
        };
        for (t, act) in acts.chunks_exact_mut((planes * plane_bytes).max(1)).enumerate() {
            let (value, residual) = act.split_at_mut(plane_bytes.min(act.len()));
            if planes == 2 {
                let (v, r) = (value.as_chunks_mut().0, residual.as_chunks_mut().0);
                q8_k::quantize_with_residual(vector(t), v, r);
            } else {
                q8_k::quantize(vector(t), value.as_chunks_mut().0);
            }
        }
        let acts: &[q8_k::BlockQ8K] = acts.as_chunks().0;
        let tmp = match tmp.get_mut(..self.rows.saturating_mul(n)) {
            Some(t) => t,
            None => tmp,
        };
        let bb = f.block_bytes();
        parallel::for_each_wide_span(par, tmp, n, self.row_bytes, &|span| {
            let rows = self.sub_rows(span.first_row(), span.rows());
            for (row, o) in
                rows.bytes.chunks_exact(self.row_bytes.max(1)).zip(span.out().chunks_exact_mut(n))
            {
                o.fill(0.0);
                for b0 in (0..n_blocks).step_by(ACT_CHUNK_SUPER) {
                    let b1 = (b0 + ACT_CHUNK_SUPER).min(n_blocks);
                    let seg = row.get(b0 * bb..b1 * bb).unwrap_or(&[]);
                    let dot = |p: usize| {
                        let act = acts.get(p * n_blocks + b0..p * n_blocks + b1).unwrap_or(&[]);
                        f.dot_q8_k(k, seg, act)
                    };
                    for (t, o) in o.iter_mut().enumerate() {
                        *o += fold_planes(planes, t, dot);
                    }
                }
            }
        });
        transpose_into(tmp, n, out, out_stride);
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

/// A result from its value blocks' dot product and its residual blocks' one
/// ([`q8_0::quantize_with_residual`]); every Int16 product folds its sums with this.
#[inline(always)]
fn with_residual(value: f32, residual: f32) -> f32 {
    value + residual * (1.0 / q8_0::RESIDUAL_SCALE)
}

/// Result `t` of a batched product from the sums of its quantised vectors, `sum(p)` for
/// vector `p`: `planes` (1 or 2) vectors per result, value then residual.
#[inline(always)]
fn fold_planes(planes: usize, t: usize, sum: impl Fn(usize) -> f32) -> f32 {
    match planes {
        2 => with_residual(sum(2 * t), sum(2 * t + 1)),
        _ => sum(t),
    }
}

/// Packed groups per [`ACT_CHUNK_BLOCKS`] chunk.
const GROUPS_PER_CHUNK: usize = ACT_CHUNK_BLOCKS / group8::BLOCKS;
/// Columns of one packed group.
const GROUP_COLS: usize = group8::BLOCKS * QK;

/// `out[t · out_stride + r] = tmp[r · n + t]`: a batched product's `[rows][n]` results into
/// the callers' `[n][out_stride]` layout, eight rows at a time so that each output row gets
/// 32 contiguous bytes per pass and the eight source rows stay in L1.
fn transpose_into(tmp: &[f32], n: usize, out: &mut [f32], out_stride: usize) {
    const ROWS: usize = 8;
    let n = n.max(1);
    for (b, block) in tmp.chunks(ROWS * n).enumerate() {
        let r0 = b * ROWS;
        let rows = block.len() / n;
        for (t, dst) in out.chunks_mut(out_stride.max(1)).take(n).enumerate() {
            let Some(dst) = dst.get_mut(r0..r0 + rows) else { continue };
            for (i, d) in dst.iter_mut().enumerate() {
                if let Some(v) = block.get(i * n + t) {
                    *d = *v;
                }
            }
        }
    }
}

/// Where one vector's quantised blocks go in a batched product's activation bytes: plain
/// Q8_0 blocks, or (for a table with a group kernel) packed [`Group8`]s followed by the last
/// `n_blocks % 8` blocks plain.
#[derive(Debug, Clone, Copy)]
struct ActLayout {
    n_blocks: usize,
    grouped: bool,
    /// Bytes per vector.
    bytes: usize,
}

impl ActLayout {
    fn new(n_blocks: usize, grouped: bool) -> Self {
        let bytes = if grouped {
            n_blocks / group8::BLOCKS * group8::GROUP_BYTES
                + n_blocks % group8::BLOCKS * q8_0::BLOCK_BYTES
        } else {
            n_blocks * q8_0::BLOCK_BYTES
        };
        ActLayout { n_blocks, grouped, bytes }
    }

    /// Quantises `x` into `out`: `self.bytes` of [`q8_0::quantize`]'s blocks, or, when
    /// `out` has room for two vectors, [`q8_0::quantize_with_residual`]'s value blocks and
    /// then its residual blocks.
    fn quantize(&self, k: &Kernels, x: &[f32], out: &mut [u8]) {
        let (value, rest) = out.split_at_mut(self.bytes.min(out.len()));
        let residual = rest.get_mut(..self.bytes).filter(|r| !r.is_empty());
        let group_bytes = self.group_bytes();
        let (groups, tail) = value.split_at_mut(group_bytes.min(value.len()));
        // The residual plane split as the value plane is: packed groups, then plain blocks.
        let (mut r_groups, r_tail) = match residual {
            Some(r) => {
                let (g, t) = r.split_at_mut(group_bytes.min(r.len()));
                (Some(g.as_chunks_mut::<{ group8::GROUP_BYTES }>().0.iter_mut()), Some(t))
            }
            None => (None, None),
        };
        let group_values = group8::BLOCKS * QK;
        let (gx, tail_x) =
            x.split_at(x.len().min(groups.len() / group8::GROUP_BYTES * group_values));
        for (g, xs) in groups
            .as_chunks_mut::<{ group8::GROUP_BYTES }>()
            .0
            .iter_mut()
            .zip(gx.chunks(group_values))
        {
            let mut v = [[0u8; q8_0::BLOCK_BYTES]; group8::BLOCKS];
            match r_groups.as_mut().and_then(Iterator::next) {
                Some(rg) => {
                    let mut r = [[0u8; q8_0::BLOCK_BYTES]; group8::BLOCKS];
                    q8_0::quantize_with_residual(xs, &mut v, &mut r);
                    k.pack_q8_0(&r, rg);
                }
                None => q8_0::quantize(xs, &mut v),
            }
            k.pack_q8_0(&v, g);
        }
        match r_tail {
            Some(r_tail) => q8_0::quantize_with_residual(
                tail_x,
                tail.as_chunks_mut().0,
                r_tail.as_chunks_mut().0,
            ),
            None => q8_0::quantize(tail_x, tail.as_chunks_mut().0),
        }
    }

    /// Bytes of a vector's packed groups (0 in the plain layout).
    fn group_bytes(&self) -> usize {
        if self.grouped {
            self.n_blocks / group8::BLOCKS * group8::GROUP_BYTES
        } else {
            0
        }
    }

    /// A vector's bytes as (packed groups, trailing plain blocks).
    fn split<'b>(&self, act: &'b [u8]) -> (&'b [Group8], &'b [q8_0::BlockQ8_0]) {
        let at = self.group_bytes().min(act.len());
        let (groups, tail) = act.split_at(at);
        (groups.as_chunks().0, tail.as_chunks().0)
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

/// A 1-D `f32` vector (norm weights, biases) borrowed from the file as little-endian bytes.
///
/// Invariant: `bytes.len() == 4 * len`.
#[derive(Clone, Copy)]
pub(crate) struct Vector<'a> {
    bytes: &'a [u8],
}

impl core::fmt::Debug for Vector<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Vector {{ F32, {} }}", self.bytes.len() / 4)
    }
}

impl<'a> Vector<'a> {
    /// A view of `t` if it is a 1-D `F32` tensor of `len` elements.
    pub(crate) fn new(id: TensorId, t: &TensorView<'a>, len: usize) -> Result<Self, Error> {
        let expected = [len as u64, 1, 1];
        let found = t.dims3().unwrap_or([t.dims[0], t.dims[1], t.dims[2]]);
        if found != expected || t.dims[3] != 1 {
            return Err(Error::ShapeMismatch { tensor: id, expected, found });
        }
        if t.ggml_type != GgmlType::F32 {
            return Err(Error::UnsupportedTensorType { tensor: id, ggml_type: t.ggml_type.id() });
        }
        Ok(Vector { bytes: t.bytes })
    }

    /// True when every element is finite.
    pub(crate) fn is_finite(&self) -> bool {
        all_finite_f32(self.bytes)
    }

    /// `out = RMSNorm(x)` with these weights.
    pub(crate) fn rms_norm(&self, out: &mut [f32], x: &[f32], eps: f32) {
        kernels::rms_norm(out, x, self.bytes, eps);
    }

    /// `x = RMSNorm(x)` with these weights.
    pub(crate) fn rms_norm_in_place(&self, x: &mut [f32], eps: f32) {
        kernels::rms_norm_in_place(x, self.bytes, eps);
    }

    /// Element `i` (0.0 past the end).
    pub(crate) fn get(&self, i: usize) -> f32 {
        let (v, _) = self.bytes.as_chunks::<4>();
        v.get(i).map_or(0.0, |b| f32::from_le_bytes(*b))
    }
}

fn all_finite_f32(bytes: &[u8]) -> bool {
    let (v, _) = bytes.as_chunks::<4>();
    v.iter().all(|b| f32::from_le_bytes(*b).is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without the `block-formats` feature, a file in those formats is refused with a typed
    /// error (`cargo test -p tinymla-core --no-default-features --lib`, run by the test
    /// command), while Q8_0 / Q4_0 / float files still load.
    #[cfg(not(feature = "block-formats"))]
    #[test]
    fn block_formats_are_refused_when_compiled_out() {
        for t in [GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::IQ4_XS]
        {
            assert!(WeightType::of(t).is_none(), "{t:?}");
        }
        let q4_k_m = include_bytes!("../../tests/fixtures/kquant/v3_aligned.q4_k_m.gguf");
        let err = crate::Model::load(q4_k_m).unwrap_err();
        assert!(matches!(err, crate::Error::UnsupportedTensorType { .. }), "{err}");
        let q8_0 = include_bytes!("../../tests/fixtures/v3_aligned.q8_0.gguf");
        assert!(crate::Model::load(q8_0).is_ok());
    }
    use crate::parallel::{tests::Backwards, Serial};
    use std::vec::Vec;
    use ActivationPrecision::{Int16, Int8};

    /// The scalar table, the scalar table with the reference group kernel (so the packed path
    /// runs on any machine), and this CPU's SIMD tables (AVX2; NEON, with and without
    /// `dotprod`, under `qemu-aarch64` in scripts/test.sh).
    fn tables() -> Vec<Kernels> {
        let mut t = std::vec![Kernels::SCALAR, Kernels::SCALAR_GROUPS];
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        t.extend(Kernels::x86_avx2());
        #[cfg(all(target_arch = "aarch64", not(miri)))]
        t.extend([Kernels::aarch64_neon(false), Kernels::aarch64_neon(true)].into_iter().flatten());
        t
    }

    /// Uniform values in −1..1 (the kernel tests' generator).
    fn random(n: usize, seed: u64) -> Vec<f32> {
        crate::kernels::tests::sample(n, seed, 1.0)
    }

    /// `rows × cols` weights of type `ty` from random values.
    fn matrix_bytes(ty: WeightType, rows: usize, cols: usize, seed: u64) -> Vec<u8> {
        let w = random(rows * cols, seed);
        match ty {
            WeightType::F32 => w.iter().flat_map(|v| v.to_le_bytes()).collect(),
            WeightType::F16 => {
                w.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect()
            }
            WeightType::Q8_0 => {
                let mut b = std::vec![[0u8; q8_0::BLOCK_BYTES]; rows * cols / QK];
                q8_0::quantize(&w, &mut b);
                b.concat()
            }
            WeightType::Q4_0 => {
                // Random nibbles and scales (the format, not a quantiser, is under test).
                let raw = random(rows * cols / QK * q4_0::BLOCK_BYTES, seed + 1);
                let mut bytes: Vec<u8> = raw.iter().map(|v| (v.to_bits() >> 7) as u8).collect();
                for (i, block) in bytes.chunks_exact_mut(q4_0::BLOCK_BYTES).enumerate() {
                    let d = half::f16::from_f32(0.01 + (i % 7) as f32 * 0.003);
                    block[..2].copy_from_slice(&d.to_le_bytes());
                }
                bytes
            }
            WeightType::BF16 => {
                w.iter().flat_map(|v| ((v.to_bits() >> 16) as u16).to_le_bytes()).collect()
            }
            WeightType::Blocks(f) => {
                // Random bytes with finite scales (the format, not a quantiser, is under test).
                let n_blocks = rows * cols / f.block_elems();
                let raw = random(n_blocks * f.block_bytes(), seed + 1);
                let mut bytes: Vec<u8> = raw.iter().map(|v| (v.to_bits() >> 7) as u8).collect();
                for (i, block) in bytes.chunks_exact_mut(f.block_bytes()).enumerate() {
                    for (j, at) in f.scale_offsets().iter().enumerate() {
                        let d = half::f16::from_f32(0.001 + ((i + j) % 7) as f32 * 0.0003);
                        block[*at..*at + 2].copy_from_slice(&d.to_le_bytes());
                    }
                }
                bytes
            }
        }
    }

    /// The batched product equals one matrix-vector product per vector, bit for bit, for every
    /// weight type, widths with and without whole packed groups, chunk boundaries and trailing
    /// blocks (65 and 67 blocks), batch sizes around the 8-vector tile, and split spans; at
    /// both activation precisions, Int16 with the block buffer sized for Int8 (so in smaller
    /// batches, or vector by vector for one vector) and for Int16.
    #[test]
    fn matmul_equals_matvec_per_vector() {
        let mut types = std::vec![
            WeightType::Q8_0,
            WeightType::Q4_0,
            WeightType::F16,
            WeightType::F32,
            WeightType::BF16,
        ];
        types.extend(BlockFormat::ALL.iter().map(|&f| WeightType::Blocks(f)));
        // Miri (safe scalar code only here, ~1000× slower) gets one small Q8_0 case.
        let types = if cfg!(miri) { types.get(..1).unwrap_or(&[]) } else { &types[..] };
        for &ty in types {
            let widths: &[usize] =
                if cfg!(miri) { &[32] } else { &[32, 96, 256, 2080, 2144, 2304] };
            // Widths that are whole blocks of the type (256 for the K-quants); 2,304 is nine
            // super-blocks, one past a chunk.
            for &cols in widths.iter().filter(|&&c| ty.row_bytes(c).is_some()) {
                let rows = 19;
                let bytes = matrix_bytes(ty, rows, cols, cols as u64);
                let row_bytes = ty.row_bytes(cols).unwrap();
                let m8 = Matrix { ty, rows, cols, row_bytes, bytes: &bytes, acts: Int8 };
                let precisions: &[_] = if cfg!(miri) {
                    &[(Int8, 1), (Int16, 2)]
                } else {
                    &[(Int8, 1), (Int16, 1), (Int16, 2)]
                };
                for (n, &(acts, room)) in [1usize, 5, 8, 13, 32]
                    .into_iter()
                    .filter(|&n| !cfg!(miri) || n == 5)
                    .flat_map(|n| precisions.iter().map(move |p| (n, p)))
                {
                    let m = m8.with_activations(acts);
                    let stride = cols + 3;
                    let xs = random(n * stride, 7 + n as u64);
                    let out_stride = rows + 2;
                    let mut out = std::vec![f32::NAN; n * out_stride];
                    let mut tmp = std::vec![0.0f32; rows * n];
                    let groups = cols.div_ceil(group8::BLOCKS * QK);
                    let per_group = group8::GROUP_BYTES.max(q8_k::BLOCK_BYTES);
                    let mut blocks = std::vec![0u8; room * n * groups * per_group];
                    for (k, par) in tables().iter().flat_map(|k| {
                        [(k, &Serial as &dyn Parallel), (k, &Backwards(5) as &dyn Parallel)]
                    }) {
                        out.fill(f32::NAN);
                        m.matmul_with(
                            k,
                            &xs,
                            stride,
                            n,
                            &mut out,
                            out_stride,
                            &mut tmp,
                            &mut blocks,
                            par,
                        );
                        for t in 0..n {
                            let mut want = std::vec![0.0f32; rows];
                            m.matvec(&xs[t * stride..t * stride + cols], &mut want, &Serial);
                            let got = &out[t * out_stride..t * out_stride + rows];
                            for (r, (g, w)) in got.iter().zip(&want).enumerate() {
                                assert_eq!(
                                    g.to_bits(),
                                    w.to_bits(),
                                    "{k:?} {ty:?} {acts:?} x{room} cols {cols} n {n} t {t} row {r}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    /// Int16 activations track the exact product of the stored weights: on Q8_0 and Q4_0
    /// rows (blocks of wide and narrow dynamic range in the vector), the largest error
    /// relative to `Σ |w x|` is under 2e-5 and at least 100 times below Int8's. Measured:
    /// Q8_0 8.6e-7 vs 2.5e-4, Q4_0 1.4e-6 vs 2.4e-4 (16 × 2,048); Q4_0 5.5e-6 vs 1.1e-3 on
    /// Miri's 2 × 64 (fewer terms average less).
    #[test]
    fn int16_activations_track_the_exact_product() {
        let (rows, cols) = if cfg!(miri) { (2, 64) } else { (16, 2048) };
        let mut types = std::vec![WeightType::Q8_0, WeightType::Q4_0];
        if !cfg!(miri) {
            types.extend(BlockFormat::ALL.iter().map(|&f| WeightType::Blocks(f)));
        }
        for ty in types {
            let bytes = matrix_bytes(ty, rows, cols, 99);
            let row_bytes = ty.row_bytes(cols).unwrap();
            let m8 = Matrix { ty, rows, cols, row_bytes, bytes: &bytes, acts: Int8 };
            // Values spanning 1e-3..1 with a large value in every fourth block.
            let x: Vec<f32> = random(cols, 5)
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v * if (i / QK).is_multiple_of(4) { 1.0 } else { 1e-3 + 0.1 * (i % 7) as f32 }
                })
                .collect();
            let mut w = std::vec![0.0f32; cols];
            let mut worst = |acts: ActivationPrecision| {
                let mut out = std::vec![0.0f32; rows];
                m8.with_activations(acts).matvec(&x, &mut out, &Serial);
                (0..rows)
                    .map(|r| {
                        m8.sub_rows(r, 1).matvec_transposed(&[1.0], &mut w);
                        let exact: f64 =
                            w.iter().zip(&x).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum();
                        let size: f64 =
                            w.iter().zip(&x).map(|(a, b)| f64::from((a * b).abs())).sum();
                        (f64::from(out[r]) - exact).abs() / size
                    })
                    .fold(0.0, f64::max)
            };
            let (e8, e16) = (worst(Int8), worst(Int16));
            std::eprintln!("{ty:?}: Int8 {e8:.2e}, Int16 {e16:.2e}");
            assert!(e16 < 2e-5 && e16 * 100.0 < e8, "{ty:?}: Int16 {e16:e}, Int8 {e8:e}");
        }
    }
}

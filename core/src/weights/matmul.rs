//! The batched product: several activation vectors against every row, each weight row read
//! once for all of them (prefill), bit-identical to one matrix-vector product per vector.

use super::act_layout::ActLayout;
use super::transpose::transpose_into;
use super::{fold_planes, Matrix, WeightType};
use crate::kernels::{self, Kernels, SUPER_ROWS};
use crate::parallel::{self, Parallel};
use crate::quant::format::{ActBlocks, BlockFormat};
use crate::quant::group8::{self, BiasedGroups, Group8};
#[cfg(feature = "block-formats")]
use crate::quant::{iq4_nl, q4_1, q5_0, q5_1};
use crate::quant::{q8_0, q8_k, ACT_CHUNK_BLOCKS, ACT_CHUNK_SUPER, QK, QK_K};

/// Most vectors of one batched product, and so the most tokens of one batched step (the
/// routing of [`crate::moe`] keeps per-token state on the stack for this many: about 48 KiB).
pub(crate) const MAX_BATCH: usize = 64;

/// The fewest vectors a partial tile of the tile kernels is run for (padded with copies of
/// its last vector); fewer go one by one.
const PADDED_TILE_MIN: usize = 2;

impl Matrix<'_> {
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
    pub(super) fn matmul_with(
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
        let grouped = self.takes_groups(k) && n <= MAX_BATCH;
        let n_blocks = self.cols / QK;
        let mut layout = ActLayout::new(n_blocks, grouped);
        layout.biased = grouped && k.takes_biased_groups();
        // The quantised vectors, `planes` per input vector (value, then residual).
        let n_acts = n * planes;
        debug_assert!(tmp.len() >= self.rows * n, "batch scratch sized for fewer rows");
        debug_assert!(
            !quantised || blocks.len() >= n_acts * layout.bytes,
            "batch scratch too small"
        );
        let acts = match blocks.get_mut(..n_acts.saturating_mul(layout.bytes)) {
            Some(a) if quantised => {
                // The vectors are quantised on the threads too, each independently.
                let per_vector = planes * layout.bytes;
                parallel::for_each_item_span(par, a, per_vector, 4 * self.cols, &|span| {
                    let t0 = span.first_row();
                    for (i, act) in span.bytes().chunks_exact_mut(per_vector.max(1)).enumerate() {
                        layout.quantize(k, vector(t0 + i), act);
                    }
                });
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
            let mut vectors = [empty; 2 * MAX_BATCH];
            if grouped {
                for (p, v) in vectors.iter_mut().enumerate().take(n_acts) {
                    *v = layout
                        .split(acts.get(p * layout.bytes..(p + 1) * layout.bytes).unwrap_or(&[]));
                }
                let vectors = (vectors.get(..n_acts).unwrap_or(&[]), layout.biased);
                self.rows_times_groups(k, &rows, vectors, layout.n_blocks, planes, span.out());
                return;
            }
            if !quantised {
                self.float_rows(rows.bytes, n, vector, span.out());
                return;
            }
            let row_bytes = self.row_bytes.max(1);
            let out_rows = span.out().chunks_exact_mut(n);
            for (row, o) in rows.bytes.chunks_exact(row_bytes).zip(out_rows) {
                self.row_times_blocks(k, row, acts.as_chunks().0, n_blocks, planes, o);
            }
        });
        transpose_into(tmp, n, out, out_stride, par);
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
        let mut chunk_sums = [0.0f32; 2 * MAX_BATCH];
        // Rows with a tile kernel go through it, eight vectors per pass over the row.
        let tiled = self.has_blocks_tile(k);
        let chunk_sums = chunk_sums.get_mut(..out.len() * planes).filter(|_| tiled);
        let chunks = n_blocks.div_ceil(ACT_CHUNK_BLOCKS);
        match chunk_sums {
            Some(sums) => {
                for c in 0..chunks {
                    let (b0, b1) =
                        (c * ACT_CHUNK_BLOCKS, ((c + 1) * ACT_CHUNK_BLOCKS).min(n_blocks));
                    let seg = row.get(b0 * block_bytes..b1 * block_bytes).unwrap_or(&[]);
                    let act = |p: usize| {
                        let start = p * n_blocks;
                        acts.get(start + b0..start + b1).unwrap_or(&[])
                    };
                    sums.fill(0.0);
                    self.blocks_into(k, seg, act, sums);
                    let sum = |p: usize| sums.get(p).copied().unwrap_or(0.0);
                    for (t, o) in out.iter_mut().enumerate() {
                        *o += fold_planes(planes, t, sum);
                    }
                }
            }
            None => {
                for c in 0..chunks {
                    let (b0, b1) =
                        (c * ACT_CHUNK_BLOCKS, ((c + 1) * ACT_CHUNK_BLOCKS).min(n_blocks));
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
        }
    }

    /// True when table `k` has a tile kernel over this matrix's plain blocks (see
    /// [`Matrix::blocks_into`]).
    fn has_blocks_tile(&self, k: &Kernels) -> bool {
        match self.ty {
            WeightType::Q8_0 | WeightType::Q4_0 => k.has_blocks_tile(),
            #[cfg(feature = "block-formats")]
            WeightType::Blocks(BlockFormat::Q5_0) => k.block_dots().q5_0_tile.is_some(),
            #[cfg(feature = "block-formats")]
            WeightType::Blocks(BlockFormat::Iq4Nl) => k.block_dots().iq4_nl_tile.is_some(),
            #[cfg(feature = "block-formats")]
            WeightType::Blocks(BlockFormat::Q4_1) => k.block_dots().q4_1_tile.is_some(),
            #[cfg(feature = "block-formats")]
            WeightType::Blocks(BlockFormat::Q5_1) => k.block_dots().q5_1_tile.is_some(),
            _ => false,
        }
    }

    /// `sums[p] += ` the blocks of `seg` (a stretch of a row that packs into groups) times vector `p`'s
    /// blocks `act(p)`, continuing each running sum exactly as the one-vector kernels'
    /// `dot_*_from` continue it: whole tiles of [`kernels::GROUP_TILE`] vectors through the
    /// table's tile kernel (the row's stretch read once per tile), the rest one by one.
    fn blocks_into<'a>(
        &self,
        k: &Kernels,
        seg: &[u8],
        act: impl Fn(usize) -> &'a [q8_0::BlockQ8_0],
        sums: &mut [f32],
    ) {
        const T: usize = kernels::GROUP_TILE;
        let (w4, w8) = (seg.as_chunks().0, seg.as_chunks().0);
        #[cfg(feature = "block-formats")]
        let (q5_0_tile, iq4_nl_tile) = (k.block_dots().q5_0_tile, k.block_dots().iq4_nl_tile);
        let tiled = self.has_blocks_tile(k);
        for (i, part) in sums.chunks_mut(T).enumerate() {
            let m = part.len();
            if m < PADDED_TILE_MIN || !tiled {
                for (j, s) in part.iter_mut().enumerate() {
                    let a = act(i * T + j);
                    *s = match self.ty {
                        WeightType::Q4_0 => k.dot_q4_0_from(*s, w4, a),
                        WeightType::Q8_0 => k.dot_q8_0_from(*s, w8, a),
                        #[cfg(feature = "block-formats")]
                        WeightType::Blocks(BlockFormat::Q5_0) => {
                            q5_0::dot_q8_0_from(*s, seg.as_chunks().0, a)
                        }
                        #[cfg(feature = "block-formats")]
                        WeightType::Blocks(BlockFormat::Iq4Nl) => {
                            iq4_nl::dot_q8_0_from(*s, seg.as_chunks().0, a)
                        }
                        #[cfg(feature = "block-formats")]
                        WeightType::Blocks(BlockFormat::Q4_1) => {
                            q4_1::dot_q8_0_from(*s, seg.as_chunks().0, a)
                        }
                        #[cfg(feature = "block-formats")]
                        WeightType::Blocks(BlockFormat::Q5_1) => {
                            q5_1::dot_q8_0_from(*s, seg.as_chunks().0, a)
                        }
                        // Only formats that pack into groups reach here.
                        _ => *s,
                    };
                }
                continue;
            }
            // A partial tile repeats its last vector in the spare lanes (each lane is computed
            // on its own, so the kept ones are the same bits), which beats `m` single passes.
            let a: [&[q8_0::BlockQ8_0]; T] = core::array::from_fn(|j| act(i * T + j.min(m - 1)));
            let mut start = [0.0f32; T];
            copy_lanes(&mut start, part);
            let got = match self.ty {
                WeightType::Q4_0 => k.dot_q4_0_tile(&start, w4, &a),
                #[cfg(feature = "block-formats")]
                WeightType::Blocks(BlockFormat::Q5_0) => match q5_0_tile {
                    Some(tile) => tile(&start, seg.as_chunks().0, &a),
                    None => start,
                },
                #[cfg(feature = "block-formats")]
                WeightType::Blocks(BlockFormat::Iq4Nl) => match iq4_nl_tile {
                    Some(tile) => tile(&start, seg.as_chunks().0, &a),
                    None => start,
                },
                #[cfg(feature = "block-formats")]
                WeightType::Blocks(BlockFormat::Q4_1) => match k.block_dots().q4_1_tile {
                    Some(tile) => tile(&start, seg.as_chunks().0, &a),
                    None => start,
                },
                #[cfg(feature = "block-formats")]
                WeightType::Blocks(BlockFormat::Q5_1) => match k.block_dots().q5_1_tile {
                    Some(tile) => tile(&start, seg.as_chunks().0, &a),
                    None => start,
                },
                _ => k.dot_q8_0_tile(&start, w8, &a),
            };
            copy_lanes(part, &got);
        }
    }

    /// [`Matrix::row_times_blocks`] with packed groups, for every row of `rows` (a span's
    /// rows; `out` holds `[rows][n]` results, `n = out.len() / rows.rows`): each
    /// [`ACT_CHUNK_BLOCKS`] chunk of a row is packed once (or taken as packed at load) and
    /// multiplied with every vector's packed chunk (`vectors`: each vector's groups and
    /// trailing plain blocks, `n · planes` of them; `biased`: the groups were stored biased,
    /// see [`ActLayout`]) by the group kernel; a chunk's last `n_blocks % 8` blocks continue
    /// its sum block by block. Rows go [`ROWS_PER_PASS`] at a time, and each tile of vectors
    /// is multiplied with all of them while it is in L1 (a tile's chunk is 8 · 2,304 bytes; read
    /// once per row it came from L2). Every result is summed exactly as
    /// [`Matrix::row_times_blocks`] sums it, whatever the order of rows and tiles:
    /// bit-identical.
    fn rows_times_groups(
        &self,
        k: &Kernels,
        rows: &Matrix<'_>,
        (vectors, biased): (&[ActVector<'_>], bool),
        n_blocks: usize,
        planes: usize,
        out: &mut [f32],
    ) {
        let n_out = out.len().checked_div(rows.rows).unwrap_or(0).max(1);
        let row_bytes = self.row_bytes.max(1);
        let mut packed = [[[0u8; group8::GROUP_BYTES]; GROUPS_PER_CHUNK]; ROWS_PER_PASS];
        // Each row's sums of one chunk, per vector: entries `0..n` are all written by the
        // tiles of a chunk before its tail or the fold reads them, so one buffer serves
        // every pass and chunk.
        let mut chunk_sums = [[0.0f32; 2 * MAX_BATCH]; ROWS_PER_PASS];
        let passes = rows.bytes.chunks(ROWS_PER_PASS * row_bytes);
        for (pass, (bytes, out)) in passes.zip(out.chunks_mut(ROWS_PER_PASS * n_out)).enumerate() {
            out.fill(0.0);
            let first = pass * ROWS_PER_PASS;
            for c in 0..n_blocks.div_ceil(ACT_CHUNK_BLOCKS) {
                let (b0, b1) = (c * ACT_CHUNK_BLOCKS, ((c + 1) * ACT_CHUNK_BLOCKS).min(n_blocks));
                let (g0, g1) = (b0 / group8::BLOCKS, b1 / group8::BLOCKS);
                // Each row's packed chunk: packed at load if the model was, else here.
                let mut chunks: [&[Group8]; ROWS_PER_PASS] = [&[]; ROWS_PER_PASS];
                for (r, ((row, buffer), chunk)) in
                    bytes.chunks_exact(row_bytes).zip(&mut packed).zip(&mut chunks).enumerate()
                {
                    *chunk = match rows.packed_groups(first + r, g0, g1) {
                        Some(groups) => groups,
                        None => {
                            let buffer = buffer.get_mut(..g1 - g0).unwrap_or(&mut []);
                            self.pack_chunk(k, row, b0, buffer);
                            buffer
                        }
                    };
                }
                let n_rows = bytes.len() / row_bytes;
                let chunks = chunks.get(..n_rows).unwrap_or(&[]);
                let vector = |t: usize| {
                    let (groups, tail_blocks) = vectors.get(t).copied().unwrap_or((&[], &[]));
                    (groups.get(g0..g1).unwrap_or(&[]), tail_blocks)
                };
                let n = vectors.len();
                // The next pass's rows of this chunk, brought to L2 a piece per tile while this
                // pass computes (weights stream from memory; the packing would wait for them).
                let next: [&[u8]; ROWS_PER_PASS] = core::array::from_fn(|r| {
                    let row = first + ROWS_PER_PASS + r;
                    match rows.packed_groups(row, g0, g1) {
                        Some(groups) => groups.as_flattened(),
                        None => {
                            let bb = self.ty.block_bytes();
                            let start = row * row_bytes + b0 * bb;
                            rows.bytes.get(start..start + (b1 - b0) * bb).unwrap_or(&[])
                        }
                    }
                });
                // A piece of them before each row's kernel call, so that the requests are
                // spread over the pass (all at once, they fill the line-fill queue and stall).
                let pieces = n.div_ceil(kernels::GROUP_TILE).max(1) * ROWS_PER_PASS;
                for tile_start in (0..n).step_by(kernels::GROUP_TILE) {
                    let m = (n - tile_start).min(kernels::GROUP_TILE);
                    let groups = |i: usize| vector(tile_start + i.min(m.max(1) - 1)).0;
                    let biased_groups = |i: usize| BiasedGroups::already_biased(groups(i));
                    for (r, (packed, sums)) in chunks.iter().zip(&mut chunk_sums).enumerate() {
                        let piece = tile_start / kernels::GROUP_TILE * ROWS_PER_PASS + r;
                        for b in next {
                            let len = b.len().div_ceil(pieces);
                            let at = piece * len;
                            let part = b.get(at..(at + len).min(b.len())).unwrap_or(&[]);
                            kernels::prefetch_to_l2(part);
                        }
                        let sums = sums.get_mut(tile_start..tile_start + m).unwrap_or(&mut []);
                        // A tile of vectors through the tile kernel (a partial one padded with
                        // copies of its last vector), a too short one vector by vector.
                        if m >= PADDED_TILE_MIN {
                            let got = if biased {
                                let tile = core::array::from_fn(biased_groups);
                                k.dot_groups_tile_biased(packed, &tile)
                            } else {
                                k.dot_groups_tile(packed, &core::array::from_fn(groups))
                            };
                            copy_lanes(sums, &got);
                        } else {
                            for (i, s) in sums.iter_mut().enumerate() {
                                *s = if biased {
                                    k.dot_groups_biased(packed, biased_groups(i))
                                } else {
                                    k.dot_groups(packed, groups(i))
                                };
                            }
                        }
                    }
                }
                let tail = g1 * group8::BLOCKS..b1;
                let out_rows = out.chunks_mut(n_out);
                let rows_sums = bytes.chunks_exact(row_bytes).zip(&mut chunk_sums).zip(out_rows);
                for ((row, chunk_sums), out) in rows_sums {
                    if !tail.is_empty() {
                        // The chunk's trailing blocks continue its sums (from 0 when the
                        // chunk has no groups, as the one-vector kernels' sum starts).
                        let bb = self.ty.block_bytes();
                        let w = row.get(tail.start * bb..).unwrap_or(&[]);
                        let w = w.get(..tail.len() * bb).unwrap_or(w);
                        let sums = chunk_sums.get_mut(..n).unwrap_or(&mut []);
                        self.blocks_into(k, w, |t| vector(t).1, sums);
                    }
                    let sum = |p: usize| chunk_sums.get(p).copied().unwrap_or(0.0);
                    for (t, o) in out.iter_mut().enumerate() {
                        *o += fold_planes(planes, t, sum);
                    }
                }
            }
        }
    }

    /// Packs the row's groups from block `b0` on into `out` (as many as it holds).
    fn pack_chunk(&self, k: &Kernels, row: &[u8], b0: usize, out: &mut [Group8]) {
        let bb = self.ty.block_bytes();
        let from = row.get(b0 * bb..).unwrap_or(&[]);
        for (g, blocks) in out.iter_mut().zip(from.chunks(group8::BLOCKS * bb)) {
            self.pack_group(k, blocks, g);
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
        // The vectors are quantised on the threads too, each independently.
        let per_vector = planes * plane_bytes;
        parallel::for_each_item_span(par, acts, per_vector, 4 * self.cols, &|span| {
            let t0 = span.first_row();
            for (i, act) in span.bytes().chunks_exact_mut(per_vector.max(1)).enumerate() {
                let (value, residual) = act.split_at_mut(plane_bytes.min(act.len()));
                if planes == 2 {
                    let (v, r) = (value.as_chunks_mut().0, residual.as_chunks_mut().0);
                    q8_k::quantize_with_residual(vector(t0 + i), v, r);
                } else {
                    k.quantize_q8_k(vector(t0 + i), value.as_chunks_mut().0);
                }
            }
        });
        let acts: &[q8_k::BlockQ8K] = acts.as_chunks().0;
        let tmp = match tmp.get_mut(..self.rows.saturating_mul(n)) {
            Some(t) => t,
            None => tmp,
        };
        let bb = f.block_bytes();
        let n_acts = n * planes;
        let tiled = f.has_rows_tile(k) && n_acts >= ROWS_TILE_MIN_VECTORS;
        parallel::for_each_wide_span(par, tmp, n, self.row_bytes, &|span| {
            let rows = self.sub_rows(span.first_row(), span.rows());
            let row_bytes = self.row_bytes.max(1);
            let tile_bytes = SUPER_ROWS * row_bytes;
            let (whole, rest) = if tiled {
                let split = rows.bytes.len() / tile_bytes * tile_bytes;
                (rows.bytes.split_at(split), split / row_bytes * n)
            } else {
                ((&[][..], rows.bytes), 0)
            };
            let out = span.out();
            let at = rest.min(out.len());
            let ((tile_rows, other_rows), (tile_out, other_out)) = (whole, out.split_at_mut(at));
            // Whole tiles of rows: each chunk of the eight rows times every vector's chunk at
            // once, folded per chunk as below.
            for (rows8, o) in
                tile_rows.chunks_exact(tile_bytes).zip(tile_out.chunks_mut(SUPER_ROWS * n))
            {
                o.fill(0.0);
                let mut sums = [[0.0f32; SUPER_ROWS]; 2 * MAX_BATCH];
                let sums = sums.get_mut(..n_acts).unwrap_or(&mut []);
                for b0 in (0..n_blocks).step_by(ACT_CHUNK_SUPER) {
                    let b1 = (b0 + ACT_CHUNK_SUPER).min(n_blocks);
                    let segs: [&[u8]; SUPER_ROWS] = core::array::from_fn(|r| {
                        rows8.get(r * row_bytes + b0 * bb..r * row_bytes + b1 * bb).unwrap_or(&[])
                    });
                    let mut acts8: [&[q8_k::BlockQ8K]; 2 * MAX_BATCH] = [&[]; 2 * MAX_BATCH];
                    for (p, a) in acts8.iter_mut().enumerate().take(n_acts) {
                        *a = acts.get(p * n_blocks + b0..p * n_blocks + b1).unwrap_or(&[]);
                    }
                    f.rows_q8_k(k, &segs, acts8.get(..n_acts).unwrap_or(&[]), sums);
                    for (r, o) in o.chunks_exact_mut(n).enumerate() {
                        let sum =
                            |p: usize| sums.get(p).and_then(|s| s.get(r)).copied().unwrap_or(0.0);
                        for (t, o) in o.iter_mut().enumerate() {
                            *o += fold_planes(planes, t, sum);
                        }
                    }
                }
            }
            for (row, o) in other_rows.chunks_exact(row_bytes).zip(other_out.chunks_exact_mut(n)) {
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
        transpose_into(tmp, n, out, out_stride, par);
    }
}

/// The fewest quantised vectors for which a batched product over K-quant rows takes the row
/// tile: below, repacking each super-block of eight rows costs more than it saves.
const ROWS_TILE_MIN_VECTORS: usize = 4;

/// One quantised vector of a batched product: its packed groups, then its trailing plain
/// blocks (see [`ActLayout::split`]).
type ActVector<'a> = (&'a [Group8], &'a [q8_0::BlockQ8_0]);

/// `dst[i] = src[i]` for the lanes both have: a whole tile as one fixed-size copy (which
/// compiles to two moves; the element-wise loop compiled to a call to `memmove`).
#[inline]
fn copy_lanes(dst: &mut [f32], src: &[f32]) {
    const T: usize = kernels::GROUP_TILE;
    match (<&mut [f32; T]>::try_from(&mut *dst), <&[f32; T]>::try_from(src)) {
        (Ok(d), Ok(s)) => *d = *s,
        _ => dst.iter_mut().zip(src).for_each(|(d, s)| *d = *s),
    }
}

/// Rows the group path multiplies with each tile of activation vectors while the tile is in
/// L1 (see [`Matrix::rows_times_groups`]): their packed chunks take 4 · 2,304 bytes beside
/// the tile's 8 · 2,304.
const ROWS_PER_PASS: usize = 4;

/// Packed groups per [`ACT_CHUNK_BLOCKS`] chunk.
const GROUPS_PER_CHUNK: usize = ACT_CHUNK_BLOCKS / group8::BLOCKS;

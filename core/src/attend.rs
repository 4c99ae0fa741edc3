//! The attention proper of an MLA decode step: every head's absorbed query against the cached
//! latent rows, softmax-weighted latents out.
//!
//! Rows are taken a tile at a time ([`AttnDims::tile`] rows, decoded once to `f32`): the
//! kernel table scores every head against the tile (each row loaded once for all heads),
//! each head rescales its running sums once per tile (online softmax), and the tile's
//! probability-weighted rows are added to every head's latent as a small matrix product.
//!
//! A long cache is cut into partitions of a fixed number of rows, set by the cache's capacity
//! alone ([`part_rows`]). Each partition has its own (max, sum, latent) state, and the states
//! are merged in partition order (flash-decoding). Partitions run on the threads of a
//! [`Parallel`] when there is work memory for all of them, one after another otherwise; the
//! arithmetic is the same either way, so the result is bit-identical for any thread count and
//! any amount of work memory.

use crate::cache::RowFormat;
use crate::kernels;
use crate::parallel::{self, Parallel};

/// Most partitions a cache is cut into (the most threads one token's attention uses).
pub(crate) const MAX_PARTS: usize = 8;
/// Cache rows per partition at least, before a cache is cut into more than one.
const ROWS_PER_PART: usize = 512;

/// Rows per tile for rows of `width` values: 16 for DeepSeek-sized rows (576 values), 4 for
/// the tiny rows of a microcontroller's model, whose work memory is RAM it may not have.
pub(crate) fn tile_rows(width: usize) -> usize {
    if width >= 256 {
        16
    } else {
        4
    }
}

/// Partitions a cache of `capacity` rows is cut into at most: 1 up to 1,023 rows, then one per
/// 512 rows, at most [`MAX_PARTS`].
pub(crate) fn max_parts(capacity: usize) -> usize {
    (capacity / ROWS_PER_PART).clamp(1, MAX_PARTS)
}

/// Rows of one partition for a cache of `capacity` rows: whole tiles, fixed for the cache, so
/// a partition's rows never depend on how many threads there are.
fn part_rows(capacity: usize, tile: usize) -> usize {
    let tile = tile.max(1);
    capacity.div_ceil(max_parts(capacity)).div_ceil(tile).saturating_mul(tile).max(tile)
}

/// The shape of the attention's work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AttnDims {
    pub(crate) heads: usize,
    /// `kv_lora_rank`: the latent part of a row.
    pub(crate) kv: usize,
    /// `kv_lora_rank + qk_rope_head_dim`: a whole row.
    pub(crate) width: usize,
    /// Rows per tile ([`tile_rows`]).
    pub(crate) tile: usize,
}

impl AttnDims {
    /// The dims for `heads` heads over rows of `kv` latent and `rope` key values.
    pub(crate) fn new(heads: usize, kv: usize, rope: usize) -> Option<Self> {
        let width = kv.checked_add(rope)?;
        Some(AttnDims { heads, kv, width, tile: tile_rows(width) })
    }

    /// `f32`s of one partition's work area: the tile's decoded rows `[tile][width]`, its
    /// probabilities `[heads][tile]`, and the partition's state: max and sum `[2][heads]`, and
    /// latent `[heads][kv]`.
    pub(crate) fn part_elems(&self) -> Option<usize> {
        let rows = self.tile.checked_mul(self.width)?;
        let probs = self.heads.checked_mul(self.tile)?;
        let state = self.heads.checked_mul(self.kv.checked_add(2)?)?;
        rows.checked_add(probs)?.checked_add(state)
    }

    /// `f32`s of work memory that lets a cache of `capacity` rows run all its partitions at
    /// once.
    pub(crate) fn work_elems(&self, capacity: usize) -> Option<usize> {
        self.part_elems()?.checked_mul(max_parts(capacity))
    }
}

/// One partition's work area.
struct Part<'a> {
    rows: &'a mut [f32],
    probs: &'a mut [f32],
    maxes: &'a mut [f32],
    sums: &'a mut [f32],
    lat: &'a mut [f32],
}

impl<'a> Part<'a> {
    fn split(d: &AttnDims, area: &'a mut [f32]) -> Self {
        let (rows, rest) = area.split_at_mut((d.tile * d.width).min(area.len()));
        let (probs, rest) = rest.split_at_mut((d.heads * d.tile).min(rest.len()));
        let (maxes, rest) = rest.split_at_mut(d.heads.min(rest.len()));
        let (sums, lat) = rest.split_at_mut(d.heads.min(rest.len()));
        Part { rows, probs, maxes, sums, lat }
    }
}

/// Every head's attention over `rows` (cache rows stored as `format`, in slot order, from a
/// cache of `capacity` rows): `q_abs` `[heads][width]` absorbed queries, scores scaled by
/// `scale`; the normalised softmax-weighted latents go to `lat_out` `[heads][kv]`, and
/// `state` `[2][heads]` ends with each head's max and sum. `work` holds one or more partition
/// areas ([`AttnDims::part_elems`] each); with [`AttnDims::work_elems`] of them and a
/// multi-threaded `par`, partitions run in parallel.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attend(
    d: &AttnDims,
    scale: f32,
    q_abs: &[f32],
    rows: &[u8],
    format: &RowFormat,
    capacity: usize,
    state: &mut [f32],
    lat_out: &mut [f32],
    work: &mut [f32],
    par: &dyn Parallel,
) {
    let row_bytes = format.row_bytes().unwrap_or(0).max(1);
    let n_rows = rows.len() / row_bytes;
    let per_part = part_rows(capacity, d.tile);
    let n_parts = n_rows.div_ceil(per_part);
    let part_elems = d.part_elems().unwrap_or(0).max(1);
    let (maxes, sums) = state.split_at_mut(d.heads.min(state.len()));
    maxes.fill(f32::NEG_INFINITY);
    sums.fill(0.0);
    lat_out.fill(0.0);
    let part_rows_of = |p: usize| {
        let start = p.saturating_mul(per_part).saturating_mul(row_bytes);
        let end = start.saturating_add(per_part.saturating_mul(row_bytes)).min(rows.len());
        rows.get(start..end).unwrap_or(&[])
    };

    let areas = work.len() / part_elems;
    if n_parts > 1 && areas >= n_parts && par.ways() > 1 {
        let all = work.get_mut(..n_parts * part_elems).unwrap_or(&mut []);
        // A partition's work is its rows times every head: count its bytes that way.
        let bytes = per_part.saturating_mul(row_bytes).saturating_mul(d.heads) / part_elems;
        parallel::for_each_wide_span(par, all, part_elems, bytes.max(1), &|span| {
            let first = span.first_row();
            for (k, area) in span.out().chunks_exact_mut(part_elems).enumerate() {
                run_part(d, scale, q_abs, part_rows_of(first + k), format, Part::split(d, area));
            }
        });
        for area in all.chunks_exact_mut(part_elems) {
            merge(d, Part::split(d, area), maxes, sums, lat_out);
        }
    } else if let Some(area) = work.get_mut(..part_elems) {
        if n_parts == 1 {
            // One partition: its state is the result (a merge into the empty state would copy
            // it exactly), so it runs straight into the output.
            let Part { rows: tile_rows, probs, .. } = Part::split(d, area);
            let part = Part { rows: tile_rows, probs, maxes, sums, lat: lat_out };
            run_part(d, scale, q_abs, part_rows_of(0), format, part);
        } else {
            for p in 0..n_parts {
                run_part(d, scale, q_abs, part_rows_of(p), format, Part::split(d, area));
                merge(d, Part::split(d, area), maxes, sums, lat_out);
            }
        }
    }
    for (lat_h, sum) in lat_out.chunks_exact_mut(d.kv.max(1)).zip(sums.iter()) {
        if *sum > 0.0 {
            kernels::scale_in_place(lat_h, 1.0 / *sum);
        }
    }
}

/// One partition: its rows a tile at a time into the area's (max, sum, latent) state.
fn run_part(d: &AttnDims, scale: f32, q_abs: &[f32], rows: &[u8], format: &RowFormat, p: Part<'_>) {
    let k = kernels::active();
    let row_bytes = format.row_bytes().unwrap_or(0).max(1);
    let (width, kv) = (d.width.max(1), d.kv.max(1));
    p.maxes.fill(f32::NEG_INFINITY);
    p.sums.fill(0.0);
    p.lat.fill(0.0);
    for tile in rows.chunks(d.tile.max(1) * row_bytes) {
        let t = tile.len() / row_bytes;
        // f32 rows are read where they are; others are decoded once per tile.
        let x = match format.f32_view(tile) {
            Some(x) => x,
            None => {
                for (row, out) in tile.chunks_exact(row_bytes).zip(p.rows.chunks_exact_mut(width)) {
                    format.decode(row, out);
                }
                p.rows.get(..t * width).unwrap_or(&[])
            }
        };
        let probs = p.probs.get_mut(..d.heads * t).unwrap_or(&mut []);
        k.tile_scores(q_abs, width, x, probs);
        let per_head = probs.chunks_exact_mut(t.max(1)).zip(p.lat.chunks_exact_mut(kv));
        for ((s_h, lat_h), (max, sum)) in per_head.zip(p.maxes.iter_mut().zip(p.sums.iter_mut())) {
            let mut tile_max = f32::NEG_INFINITY;
            for v in s_h.iter_mut() {
                *v *= scale;
                tile_max = tile_max.max(*v);
            }
            if tile_max > *max {
                // Nothing to rescale before the first tile (exp(-inf) = 0).
                if *max > f32::NEG_INFINITY {
                    let rescale = exp(*max - tile_max);
                    kernels::scale_in_place(lat_h, rescale);
                    *sum *= rescale;
                }
                *max = tile_max;
            }
            *sum += k.softmax_weights(s_h, *max);
        }
        k.tile_accumulate(probs, x, width, p.lat, kv);
    }
}

/// `exp(x)` for the softmax's `x <= 0` (the kernels' polynomial: the same bits on every
/// table and board).
fn exp(x: f32) -> f32 {
    kernels::attn::exp_nonpositive(x)
}

/// Folds a partition's state into the running one (`maxes`, `sums` `[heads]`, `lat`
/// `[heads][kv]`): both rescaled to the larger max. Into an empty running state (max -inf,
/// sum and latent 0) this is an exact copy.
fn merge(d: &AttnDims, p: Part<'_>, maxes: &mut [f32], sums: &mut [f32], lat: &mut [f32]) {
    let kv = d.kv.max(1);
    let running = maxes.iter_mut().zip(sums.iter_mut()).zip(lat.chunks_exact_mut(kv));
    let part = p.maxes.iter().zip(p.sums.iter()).zip(p.lat.chunks_exact(kv));
    for (((max, sum), lat_h), ((m, s), part_h)) in running.zip(part) {
        if *s == 0.0 {
            continue;
        }
        let top = max.max(*m);
        // The empty running state (max -inf) gets weight exp(-inf) = 0.
        let a = if *max > f32::NEG_INFINITY { exp(*max - top) } else { 0.0 };
        let b = exp(*m - top);
        *sum = *sum * a + *s * b;
        for (l, x) in lat_h.iter_mut().zip(part_h) {
            *l = *l * a + *x * b;
        }
        *max = top;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_whole_tiles_fixed_by_capacity() {
        assert_eq!(max_parts(256), 1);
        assert_eq!(max_parts(1024), 2);
        assert_eq!(max_parts(32768), MAX_PARTS);
        assert_eq!(part_rows(256, 4), 256);
        assert_eq!(part_rows(1024, 16), 512);
        assert_eq!(part_rows(8192, 16), 1024);
        assert_eq!(part_rows(1000, 16), 1008);
        assert_eq!(part_rows(3, 16), 16);
        assert_eq!(tile_rows(576), 16);
        assert_eq!(tile_rows(48), 4);
    }
}

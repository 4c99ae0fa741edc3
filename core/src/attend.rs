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

/// One partition's work area: a decoded tile `[tile][width]`, its scores `[heads][tile]`, and
/// the partition's softmax state.
struct Part<'a> {
    rows: &'a mut [f32],
    probs: &'a mut [f32],
    state: State<'a>,
}

impl<'a> Part<'a> {
    fn split(d: &AttnDims, area: &'a mut [f32]) -> Self {
        let (rows, rest) = area.split_at_mut((d.tile * d.width).min(area.len()));
        let (probs, rest) = rest.split_at_mut((d.heads * d.tile).min(rest.len()));
        let (maxes, rest) = rest.split_at_mut(d.heads.min(rest.len()));
        let (sums, lat) = rest.split_at_mut(d.heads.min(rest.len()));
        Part { rows, probs, state: State { maxes, sums, lat } }
    }
}

/// Every head's attention over `rows` (cache rows stored as `format`, in slot order, from a
/// cache of `capacity` rows): `q_abs` `[heads][width]` absorbed queries, scores scaled by
/// `scale`; the normalised softmax-weighted latents go to `lat_out` `[heads][kv]`, and
/// `state` `[2][heads]` ends with each head's max and sum. `work` holds one or more partition
/// areas ([`AttnDims::part_elems`] each); with [`AttnDims::work_elems`] of them and a
/// multi-threaded `par`, partitions run in parallel, otherwise one after another as a group of
/// one ([`attend_group`]).
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
    let areas = work.len() / part_elems;
    let parallel = n_parts > 1 && areas >= n_parts && par.ways() > 1;
    if !parallel && areas >= 1 {
        // Partitions one after another on this thread: a group of one token.
        let token = GroupQuery::new(d, q_abs, n_rows, state, lat_out, work);
        attend_group(d, scale, rows, format, capacity, &mut [token]);
        return;
    }
    let (maxes, sums) = state.split_at_mut(d.heads.min(state.len()));
    maxes.fill(f32::NEG_INFINITY);
    sums.fill(0.0);
    lat_out.fill(0.0);
    if !parallel {
        // No work area: the empty result.
        return;
    }
    let part_rows_of = |p: usize| {
        let start = p.saturating_mul(per_part).saturating_mul(row_bytes);
        let end = start.saturating_add(per_part.saturating_mul(row_bytes)).min(rows.len());
        rows.get(start..end).unwrap_or(&[])
    };
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
        merge(d, Part::split(d, area).state, maxes, sums, lat_out);
    }
    normalise(d, sums, lat_out);
}

/// Each head's latent divided by its softmax sum (heads with no rows keep 0).
fn normalise(d: &AttnDims, sums: &[f32], lat: &mut [f32]) {
    for (lat_h, sum) in lat.chunks_exact_mut(d.kv.max(1)).zip(sums.iter()) {
        if *sum > 0.0 {
            kernels::scale_in_place(lat_h, 1.0 / *sum);
        }
    }
}

/// One token of a group attending over shared rows ([`attend_group`]), with the buffers
/// [`attend`] takes.
pub(crate) struct GroupQuery<'a> {
    /// Absorbed queries, `[heads][width]`.
    q_abs: &'a [f32],
    /// The leading rows of the group's rows this token sees.
    n_rows: usize,
    /// The token's result: max and sum `[heads]`, normalised latents `[heads][kv]`.
    out: State<'a>,
    /// One partition's work area ([`AttnDims::part_elems`]).
    part: Part<'a>,
}

impl<'a> GroupQuery<'a> {
    /// A token that sees the first `n_rows` rows of its group: `q_abs`, `state`, `lat_out`
    /// and `work` as [`attend`] takes them (one partition area of `work` is used).
    pub(crate) fn new(
        d: &AttnDims,
        q_abs: &'a [f32],
        n_rows: usize,
        state: &'a mut [f32],
        lat_out: &'a mut [f32],
        work: &'a mut [f32],
    ) -> Self {
        let (maxes, sums) = state.split_at_mut(d.heads.min(state.len()));
        let area = work.len().min(d.part_elems().unwrap_or(0));
        let part = Part::split(d, work.get_mut(..area).unwrap_or(&mut []));
        GroupQuery { q_abs, n_rows, out: State { maxes, sums, lat: lat_out }, part }
    }
}

/// [`attend`] for a group of tokens over the leading rows of one cache's `rows`: token `g`
/// sees the first `group[g].n_rows` of them. Each tile is read (and decoded) once for the
/// whole group, then stepped into every token that sees it; each token's tiles, partitions
/// and merges are those it has alone (a group of one is [`attend`] on one thread), so the
/// results are bit-identical to attending one token at a time.
pub(crate) fn attend_group(
    d: &AttnDims,
    scale: f32,
    rows: &[u8],
    format: &RowFormat,
    capacity: usize,
    group: &mut [GroupQuery<'_>],
) {
    let k = kernels::active();
    let row_bytes = format.row_bytes().unwrap_or(0).max(1);
    let per_part = part_rows(capacity, d.tile);
    let tile = d.tile.max(1);
    let n_rows = group.iter().map(|g| g.n_rows).max().unwrap_or(0).min(rows.len() / row_bytes);
    for g in group.iter_mut() {
        g.n_rows = g.n_rows.min(n_rows);
        g.out.clear();
    }
    // The decoded tile lives in the first token's work area.
    let buf: &mut [f32] = match group.first_mut() {
        Some(g) => core::mem::take(&mut g.part.rows),
        None => return,
    };
    for start in (0..n_rows).step_by(per_part.max(1)) {
        let end = start.saturating_add(per_part).min(n_rows);
        // A token with one partition runs straight into its result (as `attend` does); one
        // with more runs each partition in its area and merges it in order.
        let split = |g: &GroupQuery<'_>| g.n_rows > per_part;
        for g in group.iter_mut().filter(|g| split(g) && g.n_rows > start) {
            g.part.state.clear();
        }
        let mut r = start;
        while r < end {
            let tile_end = r.saturating_add(tile).min(end);
            let bytes = rows.get(r * row_bytes..tile_end * row_bytes).unwrap_or(&[]);
            let x_all = tile_view(d, format, bytes, &mut *buf);
            for g in group.iter_mut().filter(|g| g.n_rows > r) {
                let t = tile_end.min(g.n_rows) - r;
                let x = x_all.get(..t * d.width).unwrap_or(&[]);
                let state = if split(g) { g.part.state.reborrow() } else { g.out.reborrow() };
                tile_step(k, d, scale, g.q_abs, x, t, &mut *g.part.probs, state);
            }
            r = tile_end;
        }
        for g in group.iter_mut().filter(|g| split(g) && g.n_rows > start) {
            merge(d, g.part.state.reborrow(), g.out.maxes, g.out.sums, g.out.lat);
        }
    }
    for g in group.iter_mut() {
        normalise(d, g.out.sums, g.out.lat);
    }
    if let Some(g) = group.first_mut() {
        g.part.rows = buf;
    }
}

/// One partition: its rows a tile at a time into the area's (max, sum, latent) state.
fn run_part(d: &AttnDims, scale: f32, q_abs: &[f32], rows: &[u8], format: &RowFormat, p: Part<'_>) {
    let k = kernels::active();
    let row_bytes = format.row_bytes().unwrap_or(0).max(1);
    let Part { rows: buf, probs, mut state } = p;
    state.clear();
    for tile in rows.chunks(d.tile.max(1) * row_bytes) {
        let t = tile.len() / row_bytes;
        let x = tile_view(d, format, tile, &mut *buf);
        tile_step(k, d, scale, q_abs, x, t, &mut *probs, state.reborrow());
    }
}

/// A tile's rows as `f32`s `[t][width]`: f32 rows where they are, others decoded into `buf`.
fn tile_view<'b>(
    d: &AttnDims,
    format: &RowFormat,
    tile: &'b [u8],
    buf: &'b mut [f32],
) -> &'b [f32] {
    if let Some(x) = format.f32_view(tile) {
        return x;
    }
    let row_bytes = format.row_bytes().unwrap_or(0).max(1);
    let width = d.width.max(1);
    let t = tile.len() / row_bytes;
    for (row, out) in tile.chunks_exact(row_bytes).zip(buf.chunks_exact_mut(width)) {
        format.decode(row, out);
    }
    buf.get(..t * width).unwrap_or(&[])
}

/// One softmax state: max and sum `[heads]`, latent `[heads][kv]`.
struct State<'a> {
    maxes: &'a mut [f32],
    sums: &'a mut [f32],
    lat: &'a mut [f32],
}

impl State<'_> {
    /// The empty state: max -inf, sum and latent 0.
    fn clear(&mut self) {
        self.maxes.fill(f32::NEG_INFINITY);
        self.sums.fill(0.0);
        self.lat.fill(0.0);
    }

    /// The same state, borrowed for a shorter time.
    fn reborrow(&mut self) -> State<'_> {
        State { maxes: &mut *self.maxes, sums: &mut *self.sums, lat: &mut *self.lat }
    }
}

/// One tile `x` (`[t][width]`) into a state: every head's scores (`probs`, `[heads][t]` of
/// work memory), one rescale per head, the weighted rows added.
#[allow(clippy::too_many_arguments)]
fn tile_step(
    k: &kernels::Kernels,
    d: &AttnDims,
    scale: f32,
    q_abs: &[f32],
    x: &[f32],
    t: usize,
    probs: &mut [f32],
    st: State<'_>,
) {
    let kv = d.kv.max(1);
    let probs = probs.get_mut(..d.heads * t).unwrap_or(&mut []);
    k.tile_scores(q_abs, d.width.max(1), x, probs);
    let per_head = probs.chunks_exact_mut(t.max(1)).zip(st.lat.chunks_exact_mut(kv));
    for ((s_h, lat_h), (max, sum)) in per_head.zip(st.maxes.iter_mut().zip(st.sums.iter_mut())) {
        let mut tile_max = f32::NEG_INFINITY;
        for v in s_h.iter_mut() {
            *v *= scale;
            tile_max = kernels::scalar::max_non_nan(tile_max, *v);
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
    k.tile_accumulate(probs, x, d.width.max(1), st.lat, kv);
}

/// `exp(x)` for the softmax's `x <= 0` (the kernels' polynomial: the same bits on every
/// table and board).
fn exp(x: f32) -> f32 {
    kernels::attn::exp_nonpositive(x)
}

/// Folds a partition's state into the running one (`maxes`, `sums` `[heads]`, `lat`
/// `[heads][kv]`): both rescaled to the larger max. Into an empty running state (max -inf,
/// sum and latent 0) this is an exact copy.
fn merge(d: &AttnDims, p: State<'_>, maxes: &mut [f32], sums: &mut [f32], lat: &mut [f32]) {
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
    use crate::cache::CacheStorage;
    use crate::parallel::Serial;

    /// A deterministic value in about [-1, 1).
    fn noise(i: usize, salt: usize) -> f32 {
        let x = (i.wrapping_mul(2_654_435_761) ^ salt.wrapping_mul(40_503)) % 10_007;
        x as f32 / 5_003.5 - 1.0
    }

    #[test]
    fn a_group_attends_as_its_tokens_do_alone() {
        // 3 heads over rows of 40 + 8 values (tile 4); a capacity of 1,100 rows cuts into
        // partitions of 552 rows, so the tokens below see one or two partitions, and
        // most end inside a tile.
        // Under Miri (a thousand times slower) two heads over one partition of 12 rows.
        let (d, capacity, sees): (AttnDims, usize, &[usize]) = if cfg!(miri) {
            (AttnDims::new(2, 16, 8).unwrap(), 12, &[1, 3, 4, 9, 12])
        } else {
            (
                AttnDims::new(3, 40, 8).unwrap(),
                1_100,
                &[1, 3, 4, 551, 552, 553, 555, 1_000, 1_099, 1_100],
            )
        };
        let n_rows = capacity;
        let heads = d.heads;
        for storage in
            [CacheStorage::F32, CacheStorage::F16, CacheStorage::Q8, CacheStorage::Q8Compact]
        {
            let format = RowFormat { storage, kv_lora: d.kv, rope: d.width - d.kv };
            let row_bytes = format.row_bytes().unwrap();
            let mut rows = vec![0u8; n_rows * row_bytes];
            for (r, out) in rows.chunks_exact_mut(row_bytes).enumerate() {
                let x: Vec<f32> = (0..d.width).map(|j| 3.0 * noise(r * d.width + j, 1)).collect();
                format.encode(&x, out);
            }
            let queries: Vec<Vec<f32>> = (0..sees.len())
                .map(|g| (0..heads * d.width).map(|j| noise(j, g + 2)).collect())
                .collect();
            let part = d.part_elems().unwrap();
            let mut alone = Vec::new();
            for (q, &n) in queries.iter().zip(sees) {
                let (mut state, mut lat) = (vec![0.0; 2 * heads], vec![0.0; heads * d.kv]);
                let mut work = vec![0.0; part];
                let rows = &rows[..n * row_bytes];
                attend(
                    &d, 0.3, q, rows, &format, capacity, &mut state, &mut lat, &mut work, &Serial,
                );
                alone.push((state, lat));
            }
            let mut states = vec![vec![7.0f32; 2 * heads]; sees.len()];
            let mut lats = vec![vec![7.0f32; heads * d.kv]; sees.len()];
            let mut works = vec![vec![7.0f32; part]; sees.len()];
            let mut group: Vec<GroupQuery<'_>> = queries
                .iter()
                .zip(sees)
                .zip(states.iter_mut().zip(lats.iter_mut()).zip(works.iter_mut()))
                .map(|((q, &n), ((st, lat), work))| GroupQuery::new(&d, q, n, st, lat, work))
                .collect();
            attend_group(&d, 0.3, &rows, &format, capacity, &mut group);
            drop(group);
            for (g, (state, lat)) in alone.iter().enumerate() {
                let same = states[g].iter().zip(state).all(|(a, b)| a.to_bits() == b.to_bits())
                    && lats[g].iter().zip(lat).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{storage:?}: token {g} (sees {} rows) differs", sees[g]);
                assert!(lat.iter().any(|v| *v != 0.0));
            }
        }
    }

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

//! The hook through which a host spreads matrix-vector rows over threads.
//!
//! The core owns no threads (it runs on microcontrollers too). A large matrix-vector product
//! is cut into at most [`MAX_SPANS`] contiguous row spans, each with its own disjoint slice of
//! the output, and handed to a [`Parallel`] implementation, which runs `work` once per span,
//! on whatever threads it owns. Every output row is computed by the same code whichever span
//! it lands in, so the result is bit-identical for any number of threads.

use heapless::Vec;

/// Most spans one product is cut into (and so the most threads one product can use).
pub const MAX_SPANS: usize = 32;

/// Weight bytes below which a span is not worth handing to another thread.
pub(crate) const MIN_SPAN_BYTES: usize = 16 * 1024;

/// Rows `first_row .. first_row + rows()` of one product, and where their results go (or,
/// from `for_each_item_span`, items of a byte buffer, such as the batch's input vectors to
/// quantise).
#[derive(Debug)]
pub struct RowSpan<'o> {
    first_row: usize,
    rows: usize,
    out: &'o mut [f32],
    /// The span's items, for a span over bytes (empty otherwise).
    bytes: &'o mut [u8],
}

impl<'o> RowSpan<'o> {
    /// A span of rows `first_row .. first_row + out.len()` writing `out` (one result per row):
    /// how a host tests its [`Parallel`] outside the core's products.
    pub fn new(first_row: usize, out: &'o mut [f32]) -> Self {
        RowSpan { first_row, rows: out.len(), out, bytes: &mut [] }
    }

    /// Index of the span's first row in the whole matrix (or its first item).
    pub fn first_row(&self) -> usize {
        self.first_row
    }

    /// Number of rows (or items) in the span.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The span's results (empty for a span over bytes).
    pub fn out(&mut self) -> &mut [f32] {
        self.out
    }

    /// The span's items of a [`for_each_item_span`].
    pub(crate) fn bytes(&mut self) -> &mut [u8] {
        self.bytes
    }
}

/// Runs independent row spans, possibly at the same time.
///
/// Contract: [`Parallel::run`] calls `work` exactly once for every element of `spans` and
/// returns only after all calls have returned. The order and the threads are free.
pub trait Parallel: Sync {
    /// How many spans to cut a large product into (1 means "don't split").
    fn ways(&self) -> usize;

    /// Calls `work(span)` once per span, then returns.
    fn run(&self, spans: &mut [RowSpan<'_>], work: &(dyn Fn(&mut RowSpan<'_>) + Sync));
}

/// Everything on the calling thread: what the core uses unless told otherwise.
#[derive(Debug, Clone, Copy, Default)]
pub struct Serial;

impl Parallel for Serial {
    fn ways(&self) -> usize {
        1
    }

    fn run(&self, spans: &mut [RowSpan<'_>], work: &(dyn Fn(&mut RowSpan<'_>) + Sync)) {
        for span in spans.iter_mut() {
            work(span);
        }
    }
}

/// Cuts `out` (one element per row, `row_bytes` of weights each) into at most `par.ways()`
/// spans of near-equal size, none under [`MIN_SPAN_BYTES`] of weights, and runs `work` on
/// them through `par`. A product too small to split runs inline as one span.
pub(crate) fn for_each_span(
    par: &dyn Parallel,
    out: &mut [f32],
    row_bytes: usize,
    work: &(dyn Fn(&mut RowSpan<'_>) + Sync),
) {
    for_each_wide_span(par, out, 1, row_bytes, work);
}

/// [`for_each_span`] for an output of `per_row` elements per row (`[rows][per_row]`, the
/// layout of a batched product): spans hold whole rows, and a span's worth of work is counted
/// as `per_row` passes over its weights.
pub(crate) fn for_each_wide_span(
    par: &dyn Parallel,
    out: &mut [f32],
    per_row: usize,
    row_bytes: usize,
    work: &(dyn Fn(&mut RowSpan<'_>) + Sync),
) {
    let per_row = per_row.max(1);
    let rows = out.len() / per_row;
    let by_size = rows.saturating_mul(row_bytes).saturating_mul(per_row) / MIN_SPAN_BYTES;
    let ways = par.ways().min(MAX_SPANS).min(by_size).min(rows).max(1);
    if ways == 1 {
        work(&mut RowSpan { first_row: 0, rows, out, bytes: &mut [] });
        return;
    }
    let per_span = rows.div_ceil(ways).max(1);
    let mut spans: Vec<RowSpan<'_>, MAX_SPANS> = Vec::new();
    for (i, chunk) in out.chunks_mut(per_span.saturating_mul(per_row)).enumerate() {
        let rows = chunk.len() / per_row;
        // At most `ways <= MAX_SPANS` chunks, so the push cannot fail.
        let _ = spans.push(RowSpan { first_row: i * per_span, rows, out: chunk, bytes: &mut [] });
    }
    par.run(&mut spans, work);
}

/// Cuts `bytes` into spans of whole items of `item_bytes` each (at most `par.ways()` spans,
/// none worth less than [`MIN_SPAN_BYTES`] when each item costs `item_cost` bytes of reading)
/// and runs `work` on them through `par`: span `s` holds items `first_row() .. first_row() +
/// rows()` in [`RowSpan::bytes`]. A trailing partial item is left alone.
pub(crate) fn for_each_item_span(
    par: &dyn Parallel,
    bytes: &mut [u8],
    item_bytes: usize,
    item_cost: usize,
    work: &(dyn Fn(&mut RowSpan<'_>) + Sync),
) {
    let item_bytes = item_bytes.max(1);
    let items = bytes.len() / item_bytes;
    let bytes = bytes.get_mut(..items * item_bytes).unwrap_or(&mut []);
    let by_size = items.saturating_mul(item_cost) / MIN_SPAN_BYTES;
    let ways = par.ways().min(MAX_SPANS).min(by_size).min(items).max(1);
    if ways == 1 {
        work(&mut RowSpan { first_row: 0, rows: items, out: &mut [], bytes });
        return;
    }
    let per_span = items.div_ceil(ways).max(1);
    let mut spans: Vec<RowSpan<'_>, MAX_SPANS> = Vec::new();
    for (i, chunk) in bytes.chunks_mut(per_span.saturating_mul(item_bytes)).enumerate() {
        let rows = chunk.len() / item_bytes;
        // At most `ways <= MAX_SPANS` chunks, so the push cannot fail.
        let _ = spans.push(RowSpan { first_row: i * per_span, rows, out: &mut [], bytes: chunk });
    }
    par.run(&mut spans, work);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Runs spans in reverse order, to show that order does not matter.
    pub(crate) struct Backwards(pub(crate) usize);

    impl Parallel for Backwards {
        fn ways(&self) -> usize {
            self.0
        }
        fn run(&self, spans: &mut [RowSpan<'_>], work: &(dyn Fn(&mut RowSpan<'_>) + Sync)) {
            for span in spans.iter_mut().rev() {
                work(span);
            }
        }
    }

    #[test]
    fn spans_cover_every_row_once() {
        for rows in [0usize, 1, 7, 64, 1000] {
            for ways in [1usize, 2, 3, 8, 100] {
                let mut out = [0.0f32; 1000];
                let out = &mut out[..rows];
                // 4 KiB per row, so every row could be its own span.
                for_each_span(&Backwards(ways), out, 4096, &|span| {
                    let first = span.first_row();
                    for (i, o) in span.out().iter_mut().enumerate() {
                        *o += (first + i) as f32 + 1.0;
                    }
                });
                for (i, o) in out.iter().enumerate() {
                    assert_eq!(*o, i as f32 + 1.0, "rows {rows} ways {ways}");
                }
            }
        }
    }

    #[test]
    fn item_spans_cover_every_item_once() {
        for items in [0usize, 1, 7, 64] {
            for ways in [1usize, 2, 3, 100] {
                let mut bytes = [0u8; 64 * 3 + 2];
                let len = items * 3 + 2;
                for_each_item_span(&Backwards(ways), &mut bytes[..len], 3, 1 << 20, &|span| {
                    let first = span.first_row();
                    assert_eq!(span.bytes().len(), 3 * span.rows());
                    for (i, item) in span.bytes().chunks_exact_mut(3).enumerate() {
                        item.fill((first + i) as u8 + 1);
                    }
                });
                for (i, item) in bytes[..items * 3].chunks_exact(3).enumerate() {
                    assert_eq!(item, [(i as u8) + 1; 3], "items {items} ways {ways}");
                }
                // The partial item after the last whole one is untouched.
                assert_eq!(bytes[items * 3..len], [0, 0], "items {items} ways {ways}");
            }
        }
    }

    #[test]
    fn small_products_stay_whole() {
        let mut out = [0.0f32; 16];
        let calls = core::sync::atomic::AtomicUsize::new(0);
        for_each_span(&Backwards(8), &mut out, 64, &|span| {
            calls.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
            assert_eq!(span.rows(), 16);
        });
        assert_eq!(calls.into_inner(), 1);
    }
}

//! `Q6_K`: 256 weights per 210-byte super-block — 128 bytes `ql` of low nibbles, 64 bytes
//! `qh` of high bit pairs, 16 `i8` scales (one per 16 weights), then an f16 `d`;
//! `x = d · sc_(i/16) · (q − 32)` with `q` in `0..=63`. Each half `n` of the super-block (128
//! weights) reads `ql[64 n ..][..64]` and `qh[32 n ..][..32]`: for `l < 32`, weight `l` is
//! `ql[l] & 15` with bits `0..2` of `qh[l]`, weight `32 + l` is `ql[32 + l] & 15` with bits
//! `2..4`, weight `64 + l` is `ql[l] >> 4` with bits `4..6`, weight `96 + l` is
//! `ql[32 + l] >> 4` with bits `6..8`. 6.5625 bits per weight.

use super::q8_k::{self, BlockQ8K};
use super::{f16_at, super_term_no_min, QK_K};

/// Bytes per super-block.
pub const BLOCK_BYTES: usize = QK_K / 2 + QK_K / 4 + QK_K / 16 + 2;
/// A super-block as raw bytes: `ql[128]`, `qh[64]`, `scales[16]` (i8), `d` (f16).
pub type BlockQ6K = [u8; BLOCK_BYTES];
const _: () = assert!(core::mem::size_of::<BlockQ6K>() == 210);

/// Byte offset of the scales.
pub(crate) const SCALES: usize = QK_K / 2 + QK_K / 4;
/// Byte offset of `d`.
pub(crate) const D: usize = SCALES + QK_K / 16;

/// The 256 signed values `q − 32` of a super-block, in element order.
#[inline(always)]
fn values(block: &BlockQ6K) -> [i8; QK_K] {
    let mut v = [0i8; QK_K];
    let (ql, rest) = block.split_at(QK_K / 2);
    let qh = rest.get(..QK_K / 4).unwrap_or(&[]);
    for ((out, ql), qh) in v.chunks_exact_mut(128).zip(ql.chunks_exact(64)).zip(qh.chunks_exact(32))
    {
        let (ql0, ql1) = ql.split_at(32);
        for (l, ((h, lo0), lo1)) in qh.iter().zip(ql0).zip(ql1).enumerate() {
            let q = [lo0 & 15, lo1 & 15, lo0 >> 4, lo1 >> 4];
            for (k, q) in q.iter().enumerate() {
                let six = q | (((h >> (2 * k)) & 3) << 4);
                if let Some(o) = out.get_mut(32 * k + l) {
                    // 0..=63 - 32 stays in i8.
                    *o = i8::from_le_bytes([six]) - 32;
                }
            }
        }
    }
    v
}

/// The super-block scale `d`.
#[inline(always)]
pub(crate) fn d(block: &BlockQ6K) -> f32 {
    f16_at(block, D)
}

/// Scale `j` (of weights `16 j .. 16 j + 16`).
#[inline(always)]
pub(crate) fn scale(block: &BlockQ6K, j: usize) -> i8 {
    block.get(SCALES + j).map_or(0, |s| i8::from_le_bytes([*s]))
}

/// `out[i] = dequant(blocks)[i]`, each `(d · sc) · (q − 32)` in `f32`.
pub fn dequantize(blocks: &[BlockQ6K], out: &mut [f32]) {
    for (block, out) in blocks.iter().zip(out.chunks_mut(QK_K)) {
        let d = d(block);
        let q = values(block);
        for (j, (out, q)) in out.chunks_mut(16).zip(q.chunks_exact(16)).enumerate() {
            let dl = d * f32::from(scale(block, j));
            for (o, q) in out.iter_mut().zip(q) {
                *o = dl * f32::from(*q);
            }
        }
    }
}

/// `Σ w[i]·a[i]` over Q6_K weight super-blocks and Q8_K activation blocks: per super-block
/// the exact `sumi = Σ_j sc_j Σ (q − 32)·q_a`, then one `super_term_no_min`.
pub fn dot_q8_k(w: &[BlockQ6K], a: &[BlockQ8K]) -> f32 {
    let mut sum = 0.0f32;
    for (wb, ab) in w.iter().zip(a) {
        let qa = q8_k::values(ab);
        let mut sumi = 0i32;
        for (j, q) in values(wb).chunks_exact(16).enumerate() {
            let mut isum = 0i32;
            for (i, q) in q.iter().enumerate() {
                isum += i32::from(*q) * q8_k::value(qa, 16 * j + i);
            }
            sumi += i32::from(scale(wb, j)) * isum;
        }
        sum += super_term_no_min(q8_k::scale(ab), d(wb), sumi);
    }
    sum
}

//! `Q2_K`: 256 weights per 84-byte super-block — 16 bytes of scales (low nibble a scale,
//! high nibble a min, one byte per 16 weights), 64 bytes `qs` of 2-bit values, then f16 `d`
//! and f16 `dmin`; `x = d · sc_(i/16) · q − dmin · m_(i/16)` with `q` in `0..=3`. Weight
//! `i = 128 n + 32 j + 16 k + l` is bits `2 j .. 2 j + 2` of `qs[32 n + 16 k + l]`.
//! 2.625 bits per weight.

use super::q8_k::{self, BlockQ8K};
use super::{f16_at, super_term, QK_K};

/// Bytes per super-block.
pub const BLOCK_BYTES: usize = QK_K / 16 + QK_K / 4 + 4;
/// A super-block as raw bytes: `scales[16]`, `qs[64]`, `d`, `dmin` (f16).
pub type BlockQ2K = [u8; BLOCK_BYTES];
const _: () = assert!(core::mem::size_of::<BlockQ2K>() == 84);

pub(crate) const QS: usize = QK_K / 16;
pub(crate) const D: usize = QS + QK_K / 4;

/// The 256 unsigned 2-bit values, in element order.
#[inline(always)]
fn values(block: &BlockQ2K) -> [u8; QK_K] {
    let mut v = [0u8; QK_K];
    let qs = block.get(QS..D).unwrap_or(&[]);
    for (i, o) in v.iter_mut().enumerate() {
        let (n, j, kl) = (i / 128, (i / 32) % 4, i % 32);
        *o = qs.get(32 * n + kl).map_or(0, |b| (b >> (2 * j)) & 3);
    }
    v
}

/// The scale/min byte of weights `16 j .. 16 j + 16`.
#[inline(always)]
fn scale_min(block: &BlockQ2K, j: usize) -> (u8, u8) {
    block.get(j).map_or((0, 0), |b| (b & 15, b >> 4))
}

/// `out[i] = dequant(blocks)[i]`, each `(d · sc) · q − dmin · m` in `f32`.
pub fn dequantize(blocks: &[BlockQ2K], out: &mut [f32]) {
    for (block, out) in blocks.iter().zip(out.chunks_mut(QK_K)) {
        let (d, dmin) = (f16_at(block, D), f16_at(block, D + 2));
        for (j, (out, q)) in out.chunks_mut(16).zip(values(block).chunks_exact(16)).enumerate() {
            let (sc, m) = scale_min(block, j);
            let (dl, ml) = (d * f32::from(sc), dmin * f32::from(m));
            for (o, q) in out.iter_mut().zip(q) {
                *o = dl * f32::from(*q) - ml;
            }
        }
    }
}

/// `Σ w[i]·a[i]` over Q2_K weight super-blocks and Q8_K activation blocks: per super-block
/// the exact `sumi = Σ_j sc_j Σ q·q_a` and `summins = Σ_j m_j Σ q_a`, then one
/// `super_term`.
pub fn dot_q8_k(w: &[BlockQ2K], a: &[BlockQ8K]) -> f32 {
    let mut sum = 0.0f32;
    for (wb, ab) in w.iter().zip(a) {
        let qa = q8_k::values(ab);
        let (mut sumi, mut summins) = (0i32, 0i32);
        for (j, q) in values(wb).chunks_exact(16).enumerate() {
            let mut isum = 0i32;
            for (i, q) in q.iter().enumerate() {
                isum += i32::from(*q) * q8_k::value(qa, 16 * j + i);
            }
            let (sc, m) = scale_min(wb, j);
            sumi += i32::from(sc) * isum;
            summins += i32::from(m) * q8_k::bsum(ab, j);
        }
        sum += super_term(q8_k::scale(ab), f16_at(wb, D), f16_at(wb, D + 2), sumi, summins);
    }
    sum
}

//! `Q3_K`: 256 weights per 110-byte super-block — 32 bytes `hmask` of high bits, 64 bytes
//! `qs` of 2-bit pairs, 12 bytes of sixteen 6-bit scales (`scales`), then an f16 `d`;
//! `x = d · (sc_(i/16) − 32) · (q − 4 · (1 − h))` with `q` in `0..=3` and `h` the high bit.
//! Weight `i = 128 n + 32 j + 16 k + l` (`n < 2`, `j < 4`, `k < 2`, `l < 16`) is bits
//! `2 j .. 2 j + 2` of `qs[32 n + 16 k + l]` with high bit `4 n + j` of `hmask[16 k + l]`.
//! 3.4375 bits per weight.

use super::q8_k::{self, BlockQ8K};
use super::{f16_at, super_term_no_min, QK_K};

/// Bytes per super-block.
pub const BLOCK_BYTES: usize = QK_K / 8 + QK_K / 4 + 12 + 2;
/// A super-block as raw bytes: `hmask[32]`, `qs[64]`, `scales[12]`, `d` (f16).
pub type BlockQ3K = [u8; BLOCK_BYTES];
const _: () = assert!(core::mem::size_of::<BlockQ3K>() == 110);

const QS: usize = QK_K / 8;
pub(crate) const SCALES: usize = QS + QK_K / 4;
pub(crate) const D: usize = SCALES + 12;

/// The sixteen scales `sc − 32` (in `-32..=31`) packed in 12 bytes: the low four bits of
/// scale `j < 8` are the low nibble of byte `j`, of scale `j >= 8` the high nibble of byte
/// `j − 8`; the high two bits of scale `j` are bits `2 (j / 4) ..` of byte `8 + j % 4`.
#[inline(always)]
pub(crate) fn scales(block: &BlockQ3K) -> [i8; 16] {
    let s = block.get(SCALES..D).unwrap_or(&[]);
    let mut out = [0i8; 16];
    for (j, o) in out.iter_mut().enumerate() {
        let low = s.get(j % 8).map_or(0, |b| if j < 8 { b & 15 } else { b >> 4 });
        let high = s.get(8 + j % 4).map_or(0, |b| (b >> (2 * (j / 4))) & 3);
        // 0..=63 - 32 stays in i8.
        *o = i8::from_le_bytes([low | (high << 4)]) - 32;
    }
    out
}

/// The 256 signed values `q − 4 · (1 − h)` (in `-4..=3`), in element order.
#[inline(always)]
fn values(block: &BlockQ3K) -> [i8; QK_K] {
    let mut v = [0i8; QK_K];
    let hmask = block.get(..QS).unwrap_or(&[]);
    let qs = block.get(QS..SCALES).unwrap_or(&[]);
    for (i, o) in v.iter_mut().enumerate() {
        let (n, j, k, l) = (i / 128, (i / 32) % 4, (i / 16) % 2, i % 16);
        let q = qs.get(32 * n + 16 * k + l).map_or(0, |b| (b >> (2 * j)) & 3);
        let h = hmask.get(16 * k + l).map_or(0, |b| (b >> (4 * n + j)) & 1);
        // 0..=3 - 0 or 4 stays in i8.
        *o = i8::from_le_bytes([q]) - if h == 1 { 0 } else { 4 };
    }
    v
}

/// `out[i] = dequant(blocks)[i]`, each `(d · (sc − 32)) · q` in `f32`.
pub fn dequantize(blocks: &[BlockQ3K], out: &mut [f32]) {
    for (block, out) in blocks.iter().zip(out.chunks_mut(QK_K)) {
        let d = f16_at(block, D);
        let sc = scales(block);
        for ((out, q), s) in out.chunks_mut(16).zip(values(block).chunks_exact(16)).zip(sc) {
            let dl = d * f32::from(s);
            for (o, q) in out.iter_mut().zip(q) {
                *o = dl * f32::from(*q);
            }
        }
    }
}

/// `Σ w[i]·a[i]` over Q3_K weight super-blocks and Q8_K activation blocks: per super-block
/// the exact `sumi = Σ_j (sc_j − 32) Σ q·q_a`, then one `super_term_no_min`.
pub fn dot_q8_k(w: &[BlockQ3K], a: &[BlockQ8K]) -> f32 {
    let mut sum = 0.0f32;
    for (wb, ab) in w.iter().zip(a) {
        let qa = q8_k::values(ab);
        let mut sumi = 0i32;
        for (j, (q, s)) in values(wb).chunks_exact(16).zip(scales(wb)).enumerate() {
            let mut isum = 0i32;
            for (i, q) in q.iter().enumerate() {
                isum += i32::from(*q) * q8_k::value(qa, 16 * j + i);
            }
            sumi += i32::from(s) * isum;
        }
        sum += super_term_no_min(q8_k::scale(ab), f16_at(wb, D), sumi);
    }
    sum
}

//! `Q5_K`: 256 weights per 176-byte super-block — f16 `d`, f16 `dmin`, 12 bytes of 6-bit
//! scales and mins as Q4_K's, 32 bytes `qh` of fifth bits, then 128 bytes of nibbles as
//! Q4_K's; `x = d · sc_j · q − dmin · m_j` with `q` in `0..=31`. Sub-block `j` (32 weights)
//! takes its fifth bits from bit `j` of `qh[0..32]`. 5.5 bits per weight.

use super::q4_k::{packed_scales, scales_mins};
use super::q8_k::{self, BlockQ8K};
use super::{f16_at, super_term, QK_K};

/// Bytes per super-block.
pub const BLOCK_BYTES: usize = 4 + 12 + QK_K / 8 + QK_K / 2;
/// A super-block as raw bytes: `d`, `dmin` (f16), `scales[12]`, `qh[32]`, `qs[128]`.
pub type BlockQ5K = [u8; BLOCK_BYTES];
const _: () = assert!(core::mem::size_of::<BlockQ5K>() == 176);

/// The 256 unsigned 5-bit values of a super-block, in element order.
#[inline(always)]
fn values(block: &BlockQ5K) -> [u8; QK_K] {
    let mut v = [0u8; QK_K];
    let qh = block.get(16..48).unwrap_or(&[]);
    let qs = block.get(48..).unwrap_or(&[]);
    for (pair, (out, bytes)) in v.chunks_exact_mut(64).zip(qs.chunks_exact(32)).enumerate() {
        let (lo, hi) = out.split_at_mut(32);
        for (((l, h), b), hb) in lo.iter_mut().zip(hi.iter_mut()).zip(bytes).zip(qh) {
            *l = (b & 0x0f) | (((hb >> (2 * pair)) & 1) << 4);
            *h = (b >> 4) | (((hb >> (2 * pair + 1)) & 1) << 4);
        }
    }
    v
}

/// `out[i] = dequant(blocks)[i]`, each `(d · sc) · q − dmin · m` in `f32`.
pub fn dequantize(blocks: &[BlockQ5K], out: &mut [f32]) {
    for (block, out) in blocks.iter().zip(out.chunks_mut(QK_K)) {
        let (d, dmin) = (f16_at(block, 0), f16_at(block, 2));
        let (sc, m) = scales_mins(&packed_scales(block));
        let q = values(block);
        for (j, (out, q)) in out.chunks_mut(32).zip(q.chunks_exact(32)).enumerate() {
            let dl = d * f32::from(sc.get(j).copied().unwrap_or(0));
            let ml = dmin * f32::from(m.get(j).copied().unwrap_or(0));
            for (o, q) in out.iter_mut().zip(q) {
                *o = dl * f32::from(*q) - ml;
            }
        }
    }
}

/// `Σ w[i]·a[i]` over Q5_K weight super-blocks and Q8_K activation blocks, as Q4_K's.
pub fn dot_q8_k(w: &[BlockQ5K], a: &[BlockQ8K]) -> f32 {
    let mut sum = 0.0f32;
    for (wb, ab) in w.iter().zip(a) {
        let (sc, m) = scales_mins(&packed_scales(wb));
        let qa = q8_k::values(ab);
        let (mut sumi, mut summins) = (0i32, 0i32);
        for (j, q) in values(wb).chunks_exact(32).enumerate() {
            let mut isum = 0i32;
            for (i, q) in q.iter().enumerate() {
                isum += i32::from(*q) * q8_k::value(qa, 32 * j + i);
            }
            sumi += i32::from(sc.get(j).copied().unwrap_or(0)) * isum;
            let bsums = q8_k::bsum(ab, 2 * j) + q8_k::bsum(ab, 2 * j + 1);
            summins += i32::from(m.get(j).copied().unwrap_or(0)) * bsums;
        }
        sum += super_term(q8_k::scale(ab), f16_at(wb, 0), f16_at(wb, 2), sumi, summins);
    }
    sum
}

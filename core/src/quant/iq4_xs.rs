//! `IQ4_XS`: 256 weights per 136-byte super-block — f16 `d`, a little-endian `u16`
//! `scales_h`, 4 bytes `scales_l`, then 128 bytes of nibbles (16 per 32-weight sub-block,
//! laid out as IQ4_NL's), each an index into [`IQ4_VALUES`](super::IQ4_VALUES); `x = d · (ls_j − 32) ·
//! IQ4_VALUES[q]`, the 6-bit `ls_j` of sub-block `j` being nibble `j % 2` of `scales_l[j /
//! 2]` with bits `2 j .. 2 j + 2` of `scales_h` above it. 4.25 bits per weight.

use super::iq4_nl::grid_values;
use super::q8_k::{self, BlockQ8K};
use super::{f16_at, super_term_no_min, QK_K};

/// Bytes per super-block.
pub const BLOCK_BYTES: usize = 2 + 2 + QK_K / 64 + QK_K / 2;
/// A super-block as raw bytes: `d` (f16), `scales_h` (u16), `scales_l[4]`, `qs[128]`.
pub type BlockIq4Xs = [u8; BLOCK_BYTES];
const _: () = assert!(core::mem::size_of::<BlockIq4Xs>() == 136);

const QS: usize = 8;

/// The eight sub-block scales `ls − 32` (in `-32..=31`).
#[inline(always)]
pub(crate) fn scales(block: &BlockIq4Xs) -> [i8; 8] {
    let high =
        block.get(2..).and_then(<[u8]>::first_chunk::<2>).map_or(0, |h| u16::from_le_bytes(*h));
    let mut out = [0i8; 8];
    for (j, o) in out.iter_mut().enumerate() {
        let low = block.get(4 + j / 2).map_or(0, |b| (b >> (4 * (j % 2))) & 15);
        let top = u8::try_from((high >> (2 * j)) & 3).unwrap_or(0);
        // 0..=63 - 32 stays in i8.
        *o = i8::from_le_bytes([low | (top << 4)]) - 32;
    }
    out
}

/// `out[i] = dequant(blocks)[i]`, each `(d · (ls − 32)) · grid` in `f32`.
pub fn dequantize(blocks: &[BlockIq4Xs], out: &mut [f32]) {
    for (block, out) in blocks.iter().zip(out.chunks_mut(QK_K)) {
        let d = f16_at(block, 0);
        let qs = block.get(QS..).unwrap_or(&[]);
        for ((out, qs), ls) in out.chunks_mut(32).zip(qs.chunks_exact(16)).zip(scales(block)) {
            let dl = d * f32::from(ls);
            for (o, q) in out.iter_mut().zip(grid_values(qs)) {
                *o = dl * f32::from(q);
            }
        }
    }
}

/// `Σ w[i]·a[i]` over IQ4_XS weight super-blocks and Q8_K activation blocks: per
/// super-block the exact `sumi = Σ_j (ls_j − 32) Σ grid·q_a`, then one
/// `super_term_no_min`.
pub fn dot_q8_k(w: &[BlockIq4Xs], a: &[BlockQ8K]) -> f32 {
    let mut sum = 0.0f32;
    for (wb, ab) in w.iter().zip(a) {
        let qa = q8_k::values(ab);
        let qs = wb.get(QS..).unwrap_or(&[]);
        let mut sumi = 0i32;
        for (j, (qs, ls)) in qs.chunks_exact(16).zip(scales(wb)).enumerate() {
            let mut isum = 0i32;
            for (i, q) in grid_values(qs).iter().enumerate() {
                isum += i32::from(*q) * q8_k::value(qa, 32 * j + i);
            }
            sumi += i32::from(ls) * isum;
        }
        sum += super_term_no_min(q8_k::scale(ab), f16_at(wb, 0), sumi);
    }
    sum
}

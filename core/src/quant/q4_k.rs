//! `Q4_K`: 256 weights per 144-byte super-block — f16 `d`, f16 `dmin`, 12 bytes of 6-bit
//! scales and mins for eight 32-weight sub-blocks (`scales_mins`), then 128 bytes of
//! nibbles; `x = d · sc_j · q − dmin · m_j` with `q` in `0..=15`. Bytes `32 i .. 32 i + 32`
//! hold sub-block `2 i` in their low nibbles and sub-block `2 i + 1` in their high ones.
//! 4.5 bits per weight.

use super::q8_k::{self, BlockQ8K};
use super::{f16_at, super_term, QK_K};

/// Bytes per super-block.
pub const BLOCK_BYTES: usize = 4 + 12 + QK_K / 2;
/// A super-block as raw bytes: `d`, `dmin` (f16), `scales[12]`, `qs[128]`.
pub type BlockQ4K = [u8; BLOCK_BYTES];
const _: () = assert!(core::mem::size_of::<BlockQ4K>() == 144);

/// The eight 6-bit scales and eight 6-bit mins packed in `scales[12]` (ggml's
/// `get_scale_min_k4`): for `j < 4`, `sc = s[j] & 63`, `m = s[j + 4] & 63`; for `j >= 4`,
/// `sc = (s[j + 4] & 15) | (s[j − 4] >> 6) << 4` and `m = (s[j + 4] >> 4) | (s[j] >> 6) << 4`,
/// computed four at a time in `u32` words. Shared by Q5_K and the SIMD kernels.
#[inline(always)]
pub fn scales_mins(s: &[u8; 12]) -> ([u8; 8], [u8; 8]) {
    const LOW6: u32 = 0x3f3f_3f3f;
    const LOW4: u32 = 0x0f0f_0f0f;
    const LOW2: u32 = 0x0303_0303;
    let [a0, a1, a2, a3, b0, b1, b2, b3, c0, c1, c2, c3] = *s;
    let (w0, w1, w2) = (
        u32::from_le_bytes([a0, a1, a2, a3]),
        u32::from_le_bytes([b0, b1, b2, b3]),
        u32::from_le_bytes([c0, c1, c2, c3]),
    );
    let sc_low = w0 & LOW6;
    let sc_high = (w2 & LOW4) | (((w0 >> 6) & LOW2) << 4);
    let m_low = w1 & LOW6;
    let m_high = ((w2 >> 4) & LOW4) | (((w1 >> 6) & LOW2) << 4);
    let [s0, s1, s2, s3] = sc_low.to_le_bytes();
    let [s4, s5, s6, s7] = sc_high.to_le_bytes();
    let [m0, m1, m2, m3] = m_low.to_le_bytes();
    let [m4, m5, m6, m7] = m_high.to_le_bytes();
    ([s0, s1, s2, s3, s4, s5, s6, s7], [m0, m1, m2, m3, m4, m5, m6, m7])
}

/// A super-block's packed scales.
#[inline(always)]
pub(crate) fn packed_scales(block: &[u8]) -> [u8; 12] {
    block.get(4..).and_then(<[u8]>::first_chunk::<12>).copied().unwrap_or([0; 12])
}

/// The 256 unsigned 4-bit values of a super-block, in element order.
#[inline(always)]
fn values(block: &BlockQ4K) -> [u8; QK_K] {
    let mut v = [0u8; QK_K];
    for (out, bytes) in v.chunks_exact_mut(64).zip(block.get(16..).unwrap_or(&[]).chunks_exact(32))
    {
        let (lo, hi) = out.split_at_mut(32);
        for ((l, h), b) in lo.iter_mut().zip(hi.iter_mut()).zip(bytes) {
            *l = b & 0x0f;
            *h = b >> 4;
        }
    }
    v
}

/// `out[i] = dequant(blocks)[i]`, each `(d · sc) · q − dmin · m` in `f32` (ggml's and
/// gguf-py's rounding).
pub fn dequantize(blocks: &[BlockQ4K], out: &mut [f32]) {
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

/// `Σ w[i]·a[i]` over Q4_K weight super-blocks and Q8_K activation blocks (ggml's
/// `vec_dot_q4_K_q8_K`): per super-block the exact `sumi = Σ_j sc_j Σ q·q_a` and
/// `summins = Σ_j m_j Σ q_a`, then one `super_term`.
pub fn dot_q8_k(w: &[BlockQ4K], a: &[BlockQ8K]) -> f32 {
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

#[cfg(test)]
mod tests {
    /// The word-wise unpacking equals ggml's `get_scale_min_k4`, byte by byte, on every
    /// value of each byte position.
    #[test]
    fn scales_mins_equal_get_scale_min_k4() {
        let reference = |q: &[u8; 12], j: usize| -> (u8, u8) {
            if j < 4 {
                (q[j] & 63, q[j + 4] & 63)
            } else {
                ((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
            }
        };
        for pos in 0..12 {
            for v in 0..=255u8 {
                let mut q = [0x5au8; 12];
                q[pos] = v;
                q[(pos + 5) % 12] = v.rotate_left(3);
                let (sc, m) = super::scales_mins(&q);
                for j in 0..8 {
                    assert_eq!((sc[j], m[j]), reference(&q, j), "pos {pos} v {v} j {j}");
                }
            }
        }
    }
}

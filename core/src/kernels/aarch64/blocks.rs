//! NEON dot products of the other block formats: Q4_K, Q5_K, Q6_K and IQ4_XS against Q8_K
//! activation blocks, Q4_1 / Q5_0 / Q5_1 / IQ4_NL against Q8_0 blocks, in two tiers: widening
//! multiplies (`SMULL` + pairwise adds) on any NEON CPU, `SDOT` where `dotprod` is present.
//!
//! Each computes its reference's exact integer sums (every product of a weight level and an
//! `i8` activation fits an `i16`; every sum an `i32`), then rounds each block's or
//! super-block's term with the same `super_term` / `super_term_no_min` / `block_term` /
//! `min_block_term` in the same order, so it is bit-identical to the reference in
//! [`crate::quant`] (tested in `kernels::tests` under `qemu-aarch64`). Q2_K and Q3_K run the
//! references.

use core::arch::aarch64::*;

use super::sdot;
use crate::quant::iq4_nl::BlockIq4Nl;
use crate::quant::iq4_xs::{self, BlockIq4Xs};
use crate::quant::q2_k::{self, BlockQ2K};
use crate::quant::q3_k::{self, BlockQ3K};
use crate::quant::q4_1::BlockQ4_1;
use crate::quant::q4_k::{packed_scales, scales_mins, BlockQ4K};
use crate::quant::q5_0::{self, BlockQ5_0};
use crate::quant::q5_1::{self, BlockQ5_1};
use crate::quant::q5_k::BlockQ5K;
use crate::quant::q6_k::{self, BlockQ6K};
use crate::quant::q8_0::BlockQ8_0;
use crate::quant::q8_k::{self, BlockQ8K};
use crate::quant::{
    block_term, f16_at, min_block_term, super_term, super_term_no_min, IQ4_VALUES, QK,
};

/// `Σ x[i]·y[i]` over 16 lanes, exactly, with widening multiplies.
///
/// # Safety
/// The CPU supports NEON.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn isum16_neon(x: int8x16_t, y: int8x16_t) -> i32 {
    let lo = vmull_s8(vget_low_s8(x), vget_low_s8(y));
    let hi = vmull_high_s8(x, y);
    vaddvq_s32(vpadalq_s16(vpaddlq_s16(lo), hi))
}

/// `Σ x[i]·y[i]` over 16 lanes, exactly, with one `SDOT`.
///
/// # Safety
/// The CPU supports NEON and `dotprod`.
#[inline]
#[target_feature(enable = "neon,dotprod")]
unsafe fn isum16_sdot(x: int8x16_t, y: int8x16_t) -> i32 {
    vaddvq_s32(sdot(vdupq_n_s32(0), x, y))
}

/// 16 bytes at `p` as `i8` lanes.
///
/// # Safety
/// NEON; `p .. p + 16` is readable.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn load16(p: *const u8) -> int8x16_t {
    vreinterpretq_s8_u8(vld1q_u8(p))
}

/// The low and high nibbles of 16 bytes, as `i8` lanes.
///
/// # Safety
/// The CPU supports NEON.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn nibbles(b: uint8x16_t) -> (int8x16_t, int8x16_t) {
    (vreinterpretq_s8_u8(vandq_u8(b, vdupq_n_u8(0x0f))), vreinterpretq_s8_u8(vshrq_n_u8::<4>(b)))
}

/// Safe wrappers `name(w, a)` of the unsafe kernels `super::name`.
macro_rules! entries {
    ($($name:ident($w:ty, $a:ty)),*) => {$(
        pub(in crate::kernels) fn $name(w: &[$w], a: &[$a]) -> f32 {
            // SAFETY: only reachable through a `Kernels` table built after detecting (or
            // compiling with) this tier's features.
            unsafe { super::$name(w, a) }
        }
    )*};
}

/// Defines one tier's kernels over its 16-lane integer sum `$isum16`, with the target
/// features `$features`, and their safe entries in `entry`.
macro_rules! tier {
    ($tier:ident, $features:literal, $isum16:ident) => {
        pub(in crate::kernels) mod $tier {
            use super::*;

            /// `Σ x·y` over 32 lanes given as two halves.
            ///
            /// # Safety
            /// The CPU has this tier's features.
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn isum32(x: (int8x16_t, int8x16_t), y: (int8x16_t, int8x16_t)) -> i32 {
                $isum16(x.0, y.0) + $isum16(x.1, y.1)
            }

            /// The 32 activation values of a Q8_K block at `at`.
            ///
            /// # Safety
            /// This tier's features; `at + 32 <= 256`.
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn act32(a: &BlockQ8K, at: usize) -> (int8x16_t, int8x16_t) {
                // SAFETY: the values are bytes 4..260 of the 292-byte block, at + 32 <= 256.
                let p = a.as_ptr().add(q8_k::QS + at);
                (load16(p), load16(p.add(16)))
            }

            /// The 32 values of a Q8_0 block.
            ///
            /// # Safety
            /// This tier's features.
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn act_q8_0(a: &BlockQ8_0) -> (int8x16_t, int8x16_t) {
                // SAFETY: bytes 2..34 of the 34-byte block.
                (load16(a.as_ptr().add(2)), load16(a.as_ptr().add(18)))
            }

            /// `Σ q_a` of a Q8_0 block's values.
            ///
            /// # Safety
            /// This tier's features.
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn act_sum(a: (int8x16_t, int8x16_t)) -> i32 {
                i32::from(vaddlvq_s8(a.0)) + i32::from(vaddlvq_s8(a.1))
            }

            /// One Q4_K / Q5_K super-block's term, its eight 32-value groups of levels given.
            ///
            /// # Safety
            /// This tier's features; `wb` holds `d`, `dmin` and the packed scales at 0..16.
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn k4_term(
                wb: &[u8],
                ab: &BlockQ8K,
                groups: [(int8x16_t, int8x16_t); 8],
            ) -> f32 {
                let (sc, m) = scales_mins(&packed_scales(wb));
                let (mut sumi, mut summins) = (0i32, 0i32);
                for (j, ((q, sc), m)) in groups.into_iter().zip(sc).zip(m).enumerate() {
                    sumi += i32::from(sc) * isum32(q, act32(ab, 32 * j));
                    let bsums = q8_k::bsum(ab, 2 * j) + q8_k::bsum(ab, 2 * j + 1);
                    summins += i32::from(m) * bsums;
                }
                super_term(q8_k::scale(ab), f16_at(wb, 0), f16_at(wb, 2), sumi, summins)
            }

            /// [`crate::quant::q4_k::dot_q8_k`].
            ///
            /// # Safety
            /// This tier's features.
            #[target_feature(enable = $features)]
            pub(in crate::kernels) unsafe fn dot_q4_k(w: &[BlockQ4K], a: &[BlockQ8K]) -> f32 {
                let mut sum = 0.0f32;
                for (wb, ab) in w.iter().zip(a) {
                    let zero = (vdupq_n_s8(0), vdupq_n_s8(0));
                    let mut groups = [zero; 8];
                    for (pair, g) in groups.chunks_exact_mut(2).enumerate() {
                        // SAFETY: bytes 16 + 32 pair .. + 32 of the 144-byte block.
                        let p = wb.as_ptr().add(16 + 32 * pair);
                        let (l0, h0) = nibbles(vld1q_u8(p));
                        let (l1, h1) = nibbles(vld1q_u8(p.add(16)));
                        if let [lo, hi] = g {
                            (*lo, *hi) = ((l0, l1), (h0, h1));
                        }
                    }
                    sum += k4_term(wb, ab, groups);
                }
                sum
            }

            /// [`crate::quant::q5_k::dot_q8_k`]: Q4_K's nibbles with the fifth bits from
            /// `qh` (bit `j` of byte `l` for value `l` of group `j`).
            ///
            /// # Safety
            /// This tier's features.
            #[target_feature(enable = $features)]
            pub(in crate::kernels) unsafe fn dot_q5_k(w: &[BlockQ5K], a: &[BlockQ8K]) -> f32 {
                let mut sum = 0.0f32;
                let sixteen = vdupq_n_u8(16);
                for (wb, ab) in w.iter().zip(a) {
                    // SAFETY: qh is bytes 16..48 of the 176-byte block.
                    let qh = (vld1q_u8(wb.as_ptr().add(16)), vld1q_u8(wb.as_ptr().add(32)));
                    let zero = (vdupq_n_s8(0), vdupq_n_s8(0));
                    let mut groups = [zero; 8];
                    for (j, g) in groups.iter_mut().enumerate() {
                        // SAFETY: qs bytes 48 + 32 (j / 2) .. + 32 of the 176-byte block.
                        let p = wb.as_ptr().add(48 + 32 * (j / 2));
                        let (b0, b1) = (vld1q_u8(p), vld1q_u8(p.add(16)));
                        let low = |b: uint8x16_t| {
                            if j % 2 == 0 {
                                vandq_u8(b, vdupq_n_u8(0x0f))
                            } else {
                                vshrq_n_u8::<4>(b)
                            }
                        };
                        let bit = vdupq_n_u8(1 << j);
                        let high = |h: uint8x16_t| vandq_u8(vtstq_u8(h, bit), sixteen);
                        *g = (
                            vreinterpretq_s8_u8(vorrq_u8(low(b0), high(qh.0))),
                            vreinterpretq_s8_u8(vorrq_u8(low(b1), high(qh.1))),
                        );
                    }
                    sum += k4_term(wb, ab, groups);
                }
                sum
            }

            /// [`crate::quant::q6_k::dot_q8_k`].
            ///
            /// # Safety
            /// This tier's features.
            #[target_feature(enable = $features)]
            pub(in crate::kernels) unsafe fn dot_q6_k(w: &[BlockQ6K], a: &[BlockQ8K]) -> f32 {
                let mut sum = 0.0f32;
                let (low4, three, bias) = (vdupq_n_u8(0x0f), vdupq_n_u8(3), vdupq_n_s8(32));
                for (wb, ab) in w.iter().zip(a) {
                    let mut sumi = 0i32;
                    for half in 0..2 {
                        // SAFETY: ql is bytes 0..128, qh bytes 128..192 of the 210-byte block.
                        let ql = wb.as_ptr().add(64 * half);
                        let qh = wb.as_ptr().add(128 + 32 * half);
                        for lane in 0..2 {
                            let (l0, l1) =
                                (vld1q_u8(ql.add(16 * lane)), vld1q_u8(ql.add(32 + 16 * lane)));
                            let h = vld1q_u8(qh.add(16 * lane));
                            let parts = [
                                (vandq_u8(l0, low4), vandq_u8(h, three)),
                                (vandq_u8(l1, low4), vandq_u8(vshrq_n_u8::<2>(h), three)),
                                (vshrq_n_u8::<4>(l0), vandq_u8(vshrq_n_u8::<4>(h), three)),
                                (vshrq_n_u8::<4>(l1), vshrq_n_u8::<6>(h)),
                            ];
                            for (k, (lo, hi)) in parts.into_iter().enumerate() {
                                let six = vorrq_u8(lo, vshlq_n_u8::<4>(hi));
                                let q = vsubq_s8(vreinterpretq_s8_u8(six), bias);
                                // Values 128 half + 32 k + 16 lane .. + 16: one scale group.
                                let at = 128 * half + 32 * k + 16 * lane;
                                // SAFETY: at + 16 <= 256 values of the 292-byte block.
                                let y = load16(ab.as_ptr().add(q8_k::QS + at));
                                sumi += i32::from(q6_k::scale(wb, at / 16)) * $isum16(q, y);
                            }
                        }
                    }
                    sum += super_term_no_min(q8_k::scale(ab), f16_at(wb, 208), sumi);
                }
                sum
            }

            /// [`crate::quant::q2_k::dot_q8_k`].
            ///
            /// # Safety
            /// This tier's features.
            #[target_feature(enable = $features)]
            pub(in crate::kernels) unsafe fn dot_q2_k(w: &[BlockQ2K], a: &[BlockQ8K]) -> f32 {
                let mut sum = 0.0f32;
                let three = vdupq_n_u8(3);
                for (wb, ab) in w.iter().zip(a) {
                    let (mut sumi, mut summins) = (0i32, 0i32);
                    for half in 0..2 {
                        for lane in 0..2 {
                            // SAFETY: qs is bytes 16..80 of the 84-byte block.
                            let q = vld1q_u8(wb.as_ptr().add(q2_k::QS + 32 * half + 16 * lane));
                            let parts = [
                                vandq_u8(q, three),
                                vandq_u8(vshrq_n_u8::<2>(q), three),
                                vandq_u8(vshrq_n_u8::<4>(q), three),
                                vshrq_n_u8::<6>(q),
                            ];
                            for (k, v) in parts.into_iter().enumerate() {
                                // Values 128 half + 32 k + 16 lane .. + 16: one scale group.
                                let at = 128 * half + 32 * k + 16 * lane;
                                // SAFETY: at + 16 <= 256 values of the 292-byte block.
                                let y = load16(ab.as_ptr().add(q8_k::QS + at));
                                let sc = wb.get(at / 16).map_or(0, |b| b & 15);
                                sumi += i32::from(sc) * $isum16(vreinterpretq_s8_u8(v), y);
                            }
                        }
                    }
                    for (j, b) in wb.iter().take(16).enumerate() {
                        summins += i32::from(b >> 4) * q8_k::bsum(ab, j);
                    }
                    let (d, dmin) = (f16_at(wb, q2_k::D), f16_at(wb, q2_k::D + 2));
                    sum += super_term(q8_k::scale(ab), d, dmin, sumi, summins);
                }
                sum
            }

            /// [`crate::quant::q3_k::dot_q8_k`].
            ///
            /// # Safety
            /// This tier's features.
            #[target_feature(enable = $features)]
            pub(in crate::kernels) unsafe fn dot_q3_k(w: &[BlockQ3K], a: &[BlockQ8K]) -> f32 {
                let mut sum = 0.0f32;
                let (three, one, four) = (vdupq_n_u8(3), vdupq_n_u8(1), vdupq_n_s8(4));
                for (wb, ab) in w.iter().zip(a) {
                    let scales = q3_k::scales(wb);
                    let mut sumi = 0i32;
                    for half in 0..2 {
                        for lane in 0..2 {
                            // SAFETY: hmask is bytes 0..32 and qs bytes 32..96 of the 110-byte
                            // block.
                            let hm = vld1q_u8(wb.as_ptr().add(16 * lane));
                            let q = vld1q_u8(wb.as_ptr().add(32 + 32 * half + 16 * lane));
                            let low =
                                [q, vshrq_n_u8::<2>(q), vshrq_n_u8::<4>(q), vshrq_n_u8::<6>(q)];
                            for (k, low) in low.into_iter().enumerate() {
                                // Bit 4 half + k of each hmask byte: 1 keeps the value, 0
                                // takes 4 off it.
                                let shift = i8::try_from(4 * half + k).unwrap_or(0);
                                let h = vandq_u8(vshlq_u8(hm, vdupq_n_s8(-shift)), one);
                                let u = vorrq_u8(vandq_u8(low, three), vshlq_n_u8::<2>(h));
                                let v = vsubq_s8(vreinterpretq_s8_u8(u), four);
                                let at = 128 * half + 32 * k + 16 * lane;
                                // SAFETY: at + 16 <= 256 values of the 292-byte block.
                                let y = load16(ab.as_ptr().add(q8_k::QS + at));
                                let sc = scales.get(at / 16).copied().unwrap_or(0);
                                sumi += i32::from(sc) * $isum16(v, y);
                            }
                        }
                    }
                    sum += super_term_no_min(q8_k::scale(ab), f16_at(wb, q3_k::D), sumi);
                }
                sum
            }

            /// [`crate::quant::iq4_xs::dot_q8_k`].
            ///
            /// # Safety
            /// This tier's features.
            #[target_feature(enable = $features)]
            pub(in crate::kernels) unsafe fn dot_iq4_xs(w: &[BlockIq4Xs], a: &[BlockQ8K]) -> f32 {
                let mut sum = 0.0f32;
                // SAFETY: the 16-entry grid.
                let grid = vld1q_s8(IQ4_VALUES.as_ptr());
                for (wb, ab) in w.iter().zip(a) {
                    let ls = iq4_xs::scales(wb);
                    let mut sumi = 0i32;
                    for (j, &l) in ls.iter().enumerate() {
                        // SAFETY: qs bytes 8 + 16 j .. + 16 of the 136-byte block.
                        let b = vld1q_u8(wb.as_ptr().add(8 + 16 * j));
                        let (lo, hi) = nibbles(b);
                        let q = (
                            vqtbl1q_s8(grid, vreinterpretq_u8_s8(lo)),
                            vqtbl1q_s8(grid, vreinterpretq_u8_s8(hi)),
                        );
                        sumi += i32::from(l) * isum32(q, act32(ab, 32 * j));
                    }
                    sum += super_term_no_min(q8_k::scale(ab), f16_at(wb, 0), sumi);
                }
                sum
            }

            /// [`crate::quant::q4_1::dot_q8_0`].
            ///
            /// # Safety
            /// This tier's features.
            #[target_feature(enable = $features)]
            pub(in crate::kernels) unsafe fn dot_q4_1(w: &[BlockQ4_1], a: &[BlockQ8_0]) -> f32 {
                let mut sum = 0.0f32;
                for (wb, ab) in w.iter().zip(a) {
                    // SAFETY: qs is bytes 4..20 of the 20-byte block.
                    let q = nibbles(vld1q_u8(wb.as_ptr().add(4)));
                    let y = act_q8_0(ab);
                    let (isum, asum) = (isum32(q, y), act_sum(y));
                    sum += min_block_term(f16_at(wb, 0), f16_at(wb, 2), ab, isum, asum);
                }
                sum
            }

            /// [`crate::quant::q5_0::dot_q8_0`].
            ///
            /// # Safety
            /// This tier's features.
            #[target_feature(enable = $features)]
            pub(in crate::kernels) unsafe fn dot_q5_0(w: &[BlockQ5_0], a: &[BlockQ8_0]) -> f32 {
                let mut sum = 0.0f32;
                for (wb, ab) in w.iter().zip(a) {
                    let v = q5_0::values(wb);
                    // SAFETY: the 32-value local array.
                    let q = (vld1q_s8(v.as_ptr()), vld1q_s8(v.as_ptr().add(QK / 2)));
                    sum += block_term(wb, ab, isum32(q, act_q8_0(ab)));
                }
                sum
            }

            /// [`crate::quant::q5_1::dot_q8_0`].
            ///
            /// # Safety
            /// This tier's features.
            #[target_feature(enable = $features)]
            pub(in crate::kernels) unsafe fn dot_q5_1(w: &[BlockQ5_1], a: &[BlockQ8_0]) -> f32 {
                let mut sum = 0.0f32;
                for (wb, ab) in w.iter().zip(a) {
                    let v = q5_1::values(wb);
                    // SAFETY: the 32-value local array.
                    let q = (load16(v.as_ptr()), load16(v.as_ptr().add(QK / 2)));
                    let y = act_q8_0(ab);
                    let (isum, asum) = (isum32(q, y), act_sum(y));
                    sum += min_block_term(f16_at(wb, 0), f16_at(wb, 2), ab, isum, asum);
                }
                sum
            }

            /// [`crate::quant::iq4_nl::dot_q8_0`].
            ///
            /// # Safety
            /// This tier's features.
            #[target_feature(enable = $features)]
            pub(in crate::kernels) unsafe fn dot_iq4_nl(w: &[BlockIq4Nl], a: &[BlockQ8_0]) -> f32 {
                let mut sum = 0.0f32;
                // SAFETY: the 16-entry grid.
                let grid = vld1q_s8(IQ4_VALUES.as_ptr());
                for (wb, ab) in w.iter().zip(a) {
                    // SAFETY: qs is bytes 2..18 of the 18-byte block.
                    let (lo, hi) = nibbles(vld1q_u8(wb.as_ptr().add(2)));
                    let q = (
                        vqtbl1q_s8(grid, vreinterpretq_u8_s8(lo)),
                        vqtbl1q_s8(grid, vreinterpretq_u8_s8(hi)),
                    );
                    sum += block_term(wb, ab, isum32(q, act_q8_0(ab)));
                }
                sum
            }

            /// Safe entries, installed in a kernel table only once this tier's features are
            /// known.
            pub(in crate::kernels) mod entry {
                use super::*;

                entries!(
                    dot_q2_k(BlockQ2K, BlockQ8K),
                    dot_q3_k(BlockQ3K, BlockQ8K),
                    dot_q4_k(BlockQ4K, BlockQ8K),
                    dot_q5_k(BlockQ5K, BlockQ8K),
                    dot_q6_k(BlockQ6K, BlockQ8K),
                    dot_iq4_xs(BlockIq4Xs, BlockQ8K),
                    dot_q4_1(BlockQ4_1, BlockQ8_0),
                    dot_q5_0(BlockQ5_0, BlockQ8_0),
                    dot_q5_1(BlockQ5_1, BlockQ8_0),
                    dot_iq4_nl(BlockIq4Nl, BlockQ8_0)
                );
            }
        }
    };
}

tier!(widening, "neon", isum16_neon);
tier!(dotprod, "neon,dotprod", isum16_sdot);

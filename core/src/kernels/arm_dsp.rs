//! Arm DSP-extension (Cortex-M4/M7/M33/M55, and every v7-A core) variants of the integer dot
//! products: `SXTB16` spreads the even and odd bytes of a 32-bit word into two sign-extended
//! `i16` pairs and `SMLAD` multiplies both pairs and adds them to an `i32` accumulator, so four
//! `i8` products cost two word loads, four `SXTB16` and two `SMLAD` (CMSIS-NN's
//! `read_and_pad` + `__SMLAD` scheme). The scalar reference compiles to `LDRSB, LDRSB, SMLABB`
//! per product on thumbv7em.
//!
//! `core::arch::arm::{__smlad, __sxtb16}` are unstable (`stdarch_arm_dsp`) and LLVM does not
//! form `SMLAD` from byte data on its own, so the two instructions are `asm!`. The kernel body
//! is generic over [`Dsp`]: [`Hw`] issues the instructions (built when `build.rs` finds the DSP
//! extension and sets `cfg(tinymla_arm_dsp)`), [`Model`] is a portable model of them, so the
//! host tests run the very same body (word loads, rotation, pairing, accumulation order) against
//! the scalar reference; `scripts/test.sh` also runs the hardware version under `qemu-arm`.
//!
//! Block sums are exact for every `i8` input (|Σ| ≤ 32 · 2^14 = 2^19, and `SMLAD` wraps only
//! past 2^31), and the scales are applied in the reference's order, so the results are
//! bit-identical to [`crate::quant::q8_0::dot_q8_0`] and [`crate::quant::q4_0::dot_q8_0`].
#![cfg_attr(tinymla_arm_dsp, allow(unsafe_code))]

use crate::quant::{block_scale, block_term, q4_0::BlockQ4_0, q8_0::BlockQ8_0};

/// The two DSP instructions the kernels use.
pub(crate) trait Dsp {
    /// `SXTB16 x`: bytes 0 and 2 of `x`, sign-extended into the low and high halfwords.
    fn sxtb16(x: u32) -> u32;
    /// `SXTB16 x, ROR #8`: bytes 1 and 3 of `x`, likewise.
    fn sxtb16_ror8(x: u32) -> u32;
    /// `SMLAD`: `acc + lo(a)·lo(b) + hi(a)·hi(b)` over signed halfwords (wrapping).
    fn smlad(a: u32, b: u32, acc: i32) -> i32;

    /// `(acc0 + x0·y, acc1 + x1·y)` over the four signed bytes of each word: `y` spread once
    /// for both rows (the order [`Hw::two_rows_block`]'s instructions follow).
    #[inline(always)]
    fn two_rows_word(acc: (i32, i32), x0: u32, x1: u32, y: u32) -> (i32, i32) {
        let (y_even, y_odd) = (Self::sxtb16(y), Self::sxtb16_ror8(y));
        let acc0 = Self::smlad(Self::sxtb16(x0), y_even, acc.0);
        let acc0 = Self::smlad(Self::sxtb16_ror8(x0), y_odd, acc0);
        let acc1 = Self::smlad(Self::sxtb16(x1), y_even, acc.1);
        let acc1 = Self::smlad(Self::sxtb16_ror8(x1), y_odd, acc1);
        (acc0, acc1)
    }

    /// The exact block sums `(x0·y, x1·y)` of two rows' Q8_0 blocks against one activation
    /// block: [`Dsp::two_rows_word`] over the 8 words. [`Hw`] issues the whole block as one
    /// block of instructions, loads included (the size-optimised boards' builds otherwise
    /// hoist all 24 loads and spill them).
    #[inline(always)]
    fn two_rows_block(x0: &BlockQ8_0, x1: &BlockQ8_0, y: &BlockQ8_0) -> (i32, i32) {
        let mut acc = (0, 0);
        for ((p, r), q) in words(x0).iter().zip(words(x1)).zip(words(y)) {
            acc = Self::two_rows_word(
                acc,
                u32::from_le_bytes(*p),
                u32::from_le_bytes(*r),
                u32::from_le_bytes(*q),
            );
        }
        acc
    }
}

/// A portable model of the instructions (bit-exact, by their Arm ARM pseudocode).
pub(crate) struct Model;

impl Dsp for Model {
    #[inline(always)]
    fn sxtb16(x: u32) -> u32 {
        let [b0, _, b2, _] = x.to_le_bytes();
        let lo = i16::from(i8::from_le_bytes([b0])).to_le_bytes();
        let hi = i16::from(i8::from_le_bytes([b2])).to_le_bytes();
        u32::from_le_bytes([lo[0], lo[1], hi[0], hi[1]])
    }

    #[inline(always)]
    fn sxtb16_ror8(x: u32) -> u32 {
        Self::sxtb16(x.rotate_right(8))
    }

    #[inline(always)]
    fn smlad(a: u32, b: u32, acc: i32) -> i32 {
        let halves = |v: u32| {
            let [l0, l1, h0, h1] = v.to_le_bytes();
            (i32::from(i16::from_le_bytes([l0, l1])), i32::from(i16::from_le_bytes([h0, h1])))
        };
        let ((al, ah), (bl, bh)) = (halves(a), halves(b));
        acc.wrapping_add(al * bl).wrapping_add(ah * bh)
    }
}

/// The instructions themselves.
#[cfg(tinymla_arm_dsp)]
pub(crate) struct Hw;

/// [`Hw::two_rows_block`]'s instructions for the word at byte offset `$off` of the blocks.
#[cfg(tinymla_arm_dsp)]
macro_rules! two_rows_word {
    ($off:literal) => {
        concat!(
            "ldr {y}, [{py}, #",
            $off,
            "]\n",
            "ldr {x0}, [{p0}, #",
            $off,
            "]\n",
            "ldr {x1}, [{p1}, #",
            $off,
            "]\n",
            "sxtb16 {ye}, {y}\n",
            "sxtb16 {yo}, {y}, ror #8\n",
            "sxtb16 {y}, {x0}\n",
            "smlad {a0}, {y}, {ye}, {a0}\n",
            "sxtb16 {y}, {x0}, ror #8\n",
            "smlad {a0}, {y}, {yo}, {a0}\n",
            "sxtb16 {y}, {x1}\n",
            "smlad {a1}, {y}, {ye}, {a1}\n",
            "sxtb16 {y}, {x1}, ror #8\n",
            "smlad {a1}, {y}, {yo}, {a1}",
        )
    };
}

#[cfg(tinymla_arm_dsp)]
impl Dsp for Hw {
    #[inline(always)]
    fn sxtb16(x: u32) -> u32 {
        let out: u32;
        // SAFETY: a register-only instruction of the DSP extension, which `cfg(tinymla_arm_dsp)`
        // says the target has (build.rs).
        unsafe {
            core::arch::asm!("sxtb16 {o}, {x}", o = lateout(reg) out, x = in(reg) x,
                options(pure, nomem, nostack, preserves_flags));
        }
        out
    }

    #[inline(always)]
    fn sxtb16_ror8(x: u32) -> u32 {
        let out: u32;
        // SAFETY: as in `sxtb16`.
        unsafe {
            core::arch::asm!("sxtb16 {o}, {x}, ror #8", o = lateout(reg) out, x = in(reg) x,
                options(pure, nomem, nostack, preserves_flags));
        }
        out
    }

    #[inline(always)]
    fn smlad(a: u32, b: u32, acc: i32) -> i32 {
        let out: i32;
        // SAFETY: register-only DSP instruction, as in `sxtb16`. It may set the sticky Q flag on
        // overflow (not the condition flags), which nothing here reads.
        unsafe {
            core::arch::asm!("smlad {o}, {a}, {b}, {c}", o = lateout(reg) out, a = in(reg) a,
                b = in(reg) b, c = in(reg) acc, options(pure, nomem, nostack, preserves_flags));
        }
        out
    }

    #[inline(always)]
    fn two_rows_block(x0: &BlockQ8_0, x1: &BlockQ8_0, y: &BlockQ8_0) -> (i32, i32) {
        let (mut acc0, mut acc1) = (0i32, 0i32);
        // SAFETY: the loads read bytes 2..34 of the three 34-byte blocks, which the references
        // make valid for reads (word loads at 2-byte-aligned addresses: M-profile `LDR` takes
        // unaligned addresses, and the compiler's own code does the same); the rest is
        // register-only DSP instructions, as in `sxtb16`, in `two_rows_word`'s order.
        unsafe {
            core::arch::asm!(
                two_rows_word!(2),
                two_rows_word!(6),
                two_rows_word!(10),
                two_rows_word!(14),
                two_rows_word!(18),
                two_rows_word!(22),
                two_rows_word!(26),
                two_rows_word!(30),
                a0 = inout(reg) acc0,
                a1 = inout(reg) acc1,
                p0 = in(reg) x0.as_ptr(),
                p1 = in(reg) x1.as_ptr(),
                py = in(reg) y.as_ptr(),
                x0 = out(reg) _,
                x1 = out(reg) _,
                y = out(reg) _,
                ye = out(reg) _,
                yo = out(reg) _,
                options(pure, readonly, nostack, preserves_flags),
            );
        }
        (acc0, acc1)
    }
}

/// `Σ x[i]·y[i]` over 32 `i8` values, four at a time from little-endian words (any order of
/// exact `i32` additions gives the same sum).
#[inline(always)]
fn isum32<D: Dsp>(x: &[[u8; 4]], y: &[[u8; 4]]) -> i32 {
    let mut acc = 0i32;
    for (xc, yc) in x.iter().zip(y) {
        acc = word_step::<D>(acc, *xc, *yc);
    }
    acc
}

/// `acc` plus the four products of two words' signed bytes.
#[inline(always)]
fn word_step<D: Dsp>(acc: i32, x: [u8; 4], y: [u8; 4]) -> i32 {
    let (xw, yw) = (u32::from_le_bytes(x), u32::from_le_bytes(y));
    let acc = D::smlad(D::sxtb16(xw), D::sxtb16(yw), acc);
    D::smlad(D::sxtb16_ror8(xw), D::sxtb16_ror8(yw), acc)
}

/// A block's 32 values (after the 2-byte scale) as 8 words.
#[inline(always)]
fn words(block: &[u8]) -> &[[u8; 4]] {
    block.get(2..).unwrap_or(&[]).as_chunks::<4>().0
}

/// A Q8_0 block's 32 values as 8 words, for the unrolled bodies.
#[inline(always)]
fn block_words(block: &BlockQ8_0) -> [[u8; 4]; 8] {
    let [_, _, q0, q1, q2, q3, q4, q5, q6, q7, q8, q9, q10, q11, q12, q13, q14, q15, q16, q17, q18, q19, q20, q21, q22, q23, q24, q25, q26, q27, q28, q29, q30, q31] =
        *block;
    [
        [q0, q1, q2, q3],
        [q4, q5, q6, q7],
        [q8, q9, q10, q11],
        [q12, q13, q14, q15],
        [q16, q17, q18, q19],
        [q20, q21, q22, q23],
        [q24, q25, q26, q27],
        [q28, q29, q30, q31],
    ]
}

/// [`isum32`] of two whole Q8_0 blocks, written out word by word (the size-optimised builds
/// of the boards do not unroll the loop themselves).
#[inline(always)]
fn isum_block<D: Dsp>(x: &BlockQ8_0, y: &BlockQ8_0) -> i32 {
    let ([x0, x1, x2, x3, x4, x5, x6, x7], [y0, y1, y2, y3, y4, y5, y6, y7]) =
        (block_words(x), block_words(y));
    let acc = word_step::<D>(0, x0, y0);
    let acc = word_step::<D>(acc, x1, y1);
    let acc = word_step::<D>(acc, x2, y2);
    let acc = word_step::<D>(acc, x3, y3);
    let acc = word_step::<D>(acc, x4, y4);
    let acc = word_step::<D>(acc, x5, y5);
    let acc = word_step::<D>(acc, x6, y6);
    word_step::<D>(acc, x7, y7)
}

/// One block's term given the activation scale as `f32`: `(d_w · d_a) · isum`, rounded as
/// [`block_term`] rounds it.
#[inline(always)]
#[allow(clippy::cast_precision_loss)] // |isum| <= 32 · 128 · 128 < 2^24: exact
fn scaled_term(w: &[u8], d_a: f32, isum: i32) -> f32 {
    (block_scale(w) * d_a) * isum as f32
}

/// Q8_0 × Q8_0 with `SXTB16` + `SMLAD`.
#[inline(always)]
pub(crate) fn dot_q8_0_with<D: Dsp>(w: &[BlockQ8_0], a: &[BlockQ8_0]) -> f32 {
    let mut sum = 0.0f32;
    for (wb, ab) in w.iter().zip(a) {
        sum += block_term(wb, ab, isum_block::<D>(wb, ab));
    }
    sum
}

/// [`dot_q8_0_with`] given the activation scales as `f32` (`a_scales[i]` for `a[i]`).
#[inline(always)]
pub(crate) fn dot_q8_0_scaled_with<D: Dsp>(
    w: &[BlockQ8_0],
    a: &[BlockQ8_0],
    a_scales: &[f32],
) -> f32 {
    let mut sum = 0.0f32;
    for ((wb, ab), d_a) in w.iter().zip(a).zip(a_scales) {
        sum += scaled_term(wb, *d_a, isum_block::<D>(wb, ab));
    }
    sum
}

/// The first `n` blocks of a row's chunk (all of them if fewer).
#[inline(always)]
fn head(r: &[BlockQ8_0], n: usize) -> &[BlockQ8_0] {
    r.get(..n).unwrap_or(r)
}

/// Every row of a chunk ([`crate::kernels::RowsFn`]: `out[r] += dot_q8_0_scaled(row r's
/// blocks, a, a_scales)`, row `r`'s blocks starting at `rows[r · stride]`), two rows at a time:
/// each activation word is loaded and spread once for both rows. Each row's sum is
/// bit-identical to the one-row kernel's (the same block sums, added in the same order, from
/// 0, then added to `out[r]`); an odd last row runs alone.
#[inline(always)]
pub(crate) fn dot_q8_0_rows_with<D: Dsp>(
    rows: &[BlockQ8_0],
    stride: usize,
    a: &[BlockQ8_0],
    a_scales: &[f32],
    out: &mut [f32],
) {
    let n = a.len().min(a_scales.len());
    let stride = stride.max(1);
    let pair_len = stride.saturating_mul(2);
    // Whole pairs of rows (fixed-size steps: no per-pair length arithmetic), then the rest.
    let pairs = rows.chunks_exact(pair_len);
    let mut outs = out.chunks_exact_mut(2);
    for ([o0, o1], pair) in (&mut outs).filter_map(|o| o.first_chunk_mut::<2>()).zip(pairs) {
        let (first, second) = pair.split_at(stride);
        let (first, second) = (head(first, n), head(second, n));
        let (mut sum0, mut sum1) = (0.0f32, 0.0f32);
        for (((b0, b1), ab), d_a) in first.iter().zip(second).zip(a).zip(a_scales) {
            let (i0, i1) = D::two_rows_block(b0, b1, ab);
            sum0 += scaled_term(b0, *d_a, i0);
            sum1 += scaled_term(b1, *d_a, i1);
        }
        *o0 += sum0;
        *o1 += sum1;
    }
    // Rows left: an odd last row, or rows whose pair `rows` cuts short.
    let done = 2 * (rows.len() / pair_len).min(out.len() / 2);
    let left = out.get_mut(done..).unwrap_or(&mut []);
    let rest = rows.get(done.saturating_mul(stride)..).unwrap_or(&[]);
    for (o, row) in left.iter_mut().zip(rest.chunks(stride)) {
        *o += dot_q8_0_scaled_with::<D>(head(row, n), a, a_scales);
    }
}

/// Four nibbles of a Q4_0 word minus 8, as signed bytes: each byte is 0..=15, so adding 0x78
/// never carries into the next byte, and flipping bit 7 turns `n + 0x78` into `n − 8` (i8).
#[inline(always)]
fn minus_8(nibbles: u32) -> [u8; 4] {
    (nibbles.wrapping_add(0x7878_7878) ^ 0x8080_8080).to_le_bytes()
}

/// Q4_0 weights × Q8_0 activations: each weight word yields its low nibbles (elements `j..j+4`)
/// and high nibbles (elements `16+j..16+j+4`), recentred bytewise, then the Q8_0 body.
#[inline(always)]
pub(crate) fn dot_q4_0_with<D: Dsp>(w: &[BlockQ4_0], a: &[BlockQ8_0]) -> f32 {
    let mut sum = 0.0f32;
    for (wb, ab) in w.iter().zip(a) {
        sum += block_term(wb, ab, q4_isum::<D>(wb, ab));
    }
    sum
}

/// The exact sum of a Q4_0 block's products with a Q8_0 block.
#[inline(always)]
fn q4_isum<D: Dsp>(wb: &BlockQ4_0, ab: &BlockQ8_0) -> i32 {
    let mut lo = [[0u8; 4]; 4];
    let mut hi = [[0u8; 4]; 4];
    for ((l, h), q) in lo.iter_mut().zip(hi.iter_mut()).zip(words(wb)) {
        let q = u32::from_le_bytes(*q);
        *l = minus_8(q & 0x0f0f_0f0f);
        *h = minus_8((q >> 4) & 0x0f0f_0f0f);
    }
    let (y_lo, y_hi) = words(ab).split_at(4.min(words(ab).len()));
    isum32::<D>(&lo, y_lo) + isum32::<D>(&hi, y_hi)
}

/// [`dot_q4_0_with`] given the activation scales as `f32`.
#[inline(always)]
pub(crate) fn dot_q4_0_scaled_with<D: Dsp>(
    w: &[BlockQ4_0],
    a: &[BlockQ8_0],
    a_scales: &[f32],
) -> f32 {
    let mut sum = 0.0f32;
    for ((wb, ab), d_a) in w.iter().zip(a).zip(a_scales) {
        sum += scaled_term(wb, *d_a, q4_isum::<D>(wb, ab));
    }
    sum
}

/// Safe entry points with the real instructions, installed by [`super::Kernels::compile_time`]
/// on DSP targets.
#[cfg(tinymla_arm_dsp)]
pub(super) mod entry {
    use super::*;

    pub(in crate::kernels) fn dot_q8_0(w: &[BlockQ8_0], a: &[BlockQ8_0]) -> f32 {
        dot_q8_0_with::<Hw>(w, a)
    }

    pub(in crate::kernels) fn dot_q4_0(w: &[BlockQ4_0], a: &[BlockQ8_0]) -> f32 {
        dot_q4_0_with::<Hw>(w, a)
    }

    pub(in crate::kernels) fn dot_q8_0_scaled(w: &[BlockQ8_0], a: &[BlockQ8_0], s: &[f32]) -> f32 {
        dot_q8_0_scaled_with::<Hw>(w, a, s)
    }

    pub(in crate::kernels) fn dot_q4_0_scaled(w: &[BlockQ4_0], a: &[BlockQ8_0], s: &[f32]) -> f32 {
        dot_q4_0_scaled_with::<Hw>(w, a, s)
    }

    pub(in crate::kernels) fn dot_q8_0_rows(
        rows: &[BlockQ8_0],
        stride: usize,
        a: &[BlockQ8_0],
        s: &[f32],
        out: &mut [f32],
    ) {
        dot_q8_0_rows_with::<Hw>(rows, stride, a, s, out);
    }
}

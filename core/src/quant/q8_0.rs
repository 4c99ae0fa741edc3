//! `Q8_0`: 32 weights per 34-byte block — an f16 scale `d`, then 32 `i8` values `q`;
//! `x = d · q`. 8.5 bits per weight. Also the activation format of the integer dot products.

use super::{block_scale, block_term, max_non_nan, QK};

/// Bytes per block.
pub const BLOCK_BYTES: usize = 2 + QK;
/// A block as raw bytes: `d` (f16, little-endian), then `qs[32]`.
pub type BlockQ8_0 = [u8; BLOCK_BYTES];
const _: () = assert!(core::mem::size_of::<BlockQ8_0>() == 34);

/// ggml's `quantize_row_q8_0_ref`: per block `d = max|x| / 127`, `q = round(x / d)`. A
/// partial last block is zero-padded. Blocks past the end of `x` are left alone.
pub fn quantize(x: &[f32], out: &mut [BlockQ8_0]) {
    quantize_inlined(x, out);
}

/// [`quantize`], inlined into its caller: a kernel table compiles it for its own features
/// (the same operations on wider vectors, so the same bytes).
#[inline(always)]
pub(crate) fn quantize_inlined(x: &[f32], out: &mut [BlockQ8_0]) {
    for (block, xs) in out.iter_mut().zip(x.chunks(QK)) {
        if let Some((scale, qs)) = block.split_first_chunk_mut::<2>() {
            quantize_block_inlined(xs, scale, qs);
        }
    }
}

/// What a residual block holds, relative to the value it corrects: `RESIDUAL_SCALE` times the
/// rounding residual (a power of two, so scaling and unscaling are exact). It lifts the
/// residual's scale (at most `max|x| / 254`) out of f16's subnormal range for any block
/// whose value scale is normal.
pub const RESIDUAL_SCALE: f32 = 256.0;

/// Quantises `x` twice over, for [`crate::ActivationPrecision::Int16`]: `value` gets exactly
/// [`quantize`]'s blocks, and each `residual` block quantises `RESIDUAL_SCALE · (x − d · q)`
/// of its value block (`d` the stored f16 scale, so `d · q` is what the dot products see).
/// Then `x ≈ d · q + d_r · q_r / RESIDUAL_SCALE` to about `max|x| / 64,516` per block.
/// Blocks past the end of `x`, or past the shorter of `value` and `residual`, are left alone.
pub fn quantize_with_residual(x: &[f32], value: &mut [BlockQ8_0], residual: &mut [BlockQ8_0]) {
    for ((v, r), xs) in value.iter_mut().zip(residual.iter_mut()).zip(x.chunks(QK)) {
        let (Some((v_scale, v_qs)), Some((r_scale, r_qs))) =
            (v.split_first_chunk_mut::<2>(), r.split_first_chunk_mut::<2>())
        else {
            continue;
        };
        quantize_block(xs, v_scale, v_qs);
        let d = super::f16::f16_to_f32(*v_scale);
        let mut rest = [0.0f32; QK];
        for ((e, x), q) in rest.iter_mut().zip(xs).zip(v_qs.iter()) {
            *e = (x - d * f32::from(i8::from_le_bytes([*q]))) * RESIDUAL_SCALE;
        }
        quantize_block(rest.get(..xs.len()).unwrap_or(&rest), r_scale, r_qs);
    }
}

/// One block of int8 values with an f16 scale, the rounding every int8 format here shares:
/// `d = max|xs| / 127` into `scale`, `q = round(x / d)` into `qs` (its bytes past `xs.len()`
/// zeroed). `q` is always in `-127..=127`.
pub(crate) fn quantize_block(xs: &[f32], scale: &mut [u8; 2], qs: &mut [u8]) {
    quantize_block_inlined(xs, scale, qs);
}

/// [`quantize_block`], inlined into its caller (see [`quantize_inlined`]).
#[inline(always)]
fn quantize_block_inlined(xs: &[f32], scale: &mut [u8; 2], qs: &mut [u8]) {
    // A whole block (every block but a row's partial last one) as fixed-size arrays, so LLVM
    // vectorises both loops; the general loop below computes the same values.
    if let (Ok(x), Some(q)) = (<&[f32; QK]>::try_from(xs), qs.first_chunk_mut::<QK>()) {
        let id = inverse_scale(amax(x), scale);
        for (q, v) in q.iter_mut().zip(x) {
            *q = quantize_value(*v, id);
        }
        return;
    }
    let id = inverse_scale(amax(xs), scale);
    qs.fill(0);
    for (q, v) in qs.iter_mut().zip(xs) {
        *q = quantize_value(*v, id);
    }
}

/// `max |x|` over the values, ignoring NaN (as a fold of `f32::max` from 0 does), computed in
/// eight independent lanes over fixed-size chunks, which LLVM vectorises where one running
/// fold cannot.
#[inline(always)]
pub(crate) fn amax(xs: &[f32]) -> f32 {
    // `max_non_nan` keeps the running maximum against NaN, and `|x|` of every non-NaN value
    // is compared exactly, so the lanes' order does not change the result.
    // Whole chunks of eight as fixed-size arrays (one vector step each), then the rest.
    let (whole, rest) = xs.as_chunks::<8>();
    let mut lanes = [0.0f32; 8];
    if cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
        for chunk in whole {
            for (m, v) in lanes.iter_mut().zip(chunk) {
                *m = max_non_nan(*m, v.abs());
            }
        }
    } else {
        // Without vector units (the boards, built for size), eight named lanes stay in
        // registers where the array above stays in memory; the same maxima either way.
        let [mut m0, mut m1, mut m2, mut m3, mut m4, mut m5, mut m6, mut m7] = lanes;
        for [x0, x1, x2, x3, x4, x5, x6, x7] in whole {
            m0 = max_non_nan(m0, x0.abs());
            m1 = max_non_nan(m1, x1.abs());
            m2 = max_non_nan(m2, x2.abs());
            m3 = max_non_nan(m3, x3.abs());
            m4 = max_non_nan(m4, x4.abs());
            m5 = max_non_nan(m5, x5.abs());
            m6 = max_non_nan(m6, x6.abs());
            m7 = max_non_nan(m7, x7.abs());
        }
        lanes = [m0, m1, m2, m3, m4, m5, m6, m7];
    }
    for (m, v) in lanes.iter_mut().zip(rest) {
        *m = max_non_nan(*m, v.abs());
    }
    lanes.iter().fold(0.0f32, |m, v| max_non_nan(m, *v))
}

/// Writes `d = amax / 127` (f16) into `scale` and returns `1 / d` (0 for `d == 0`).
#[inline(always)]
fn inverse_scale(amax: f32, scale: &mut [u8; 2]) -> f32 {
    let d = amax / 127.0;
    *scale = super::f16::f32_to_f16(d);
    if d != 0.0 {
        1.0 / d
    } else {
        0.0
    }
}

/// `round(v · id)` as an `i8` byte. `|v · id| <= 127` for finite scales; the clamp covers a
/// subnormal `d` whose inverse overflows, and NaN becomes 0.
#[inline(always)]
fn quantize_value(v: f32, id: f32) -> u8 {
    round_to_i8(v * id).to_le_bytes()[0]
}

/// `roundf(y).clamp(-127.0, 127.0) as i8` (halves away from zero; NaN to 0), in arithmetic
/// that LLVM vectorises (`libm::roundf` is a call per value, and a checked float-to-int cast
/// is scalar code on x86): [`round_to_i8_clamped`] where there are vector units (x86_64,
/// aarch64, Helium), else [`round_to_i8_doubled`] (the same results: the test checks both
/// against `libm::roundf`). The doubled form, vectorised for Helium, gave wrong bytes under
/// QEMU's Cortex-M55 (an LLVM or QEMU fault not tracked down; the firmware's self-test
/// checks the quantiser on every board).
#[inline(always)]
pub(crate) fn round_to_i8(y: f32) -> i8 {
    if cfg!(any(target_arch = "x86_64", target_arch = "aarch64", tinymla_arm_mve)) {
        round_to_i8_clamped(y)
    } else {
        round_to_i8_doubled(y)
    }
}

/// [`round_to_i8`] for vector units: NaN becomes 0 and `y` is clamped to `-128..=128` first
/// (the final clamp gives the same result for anything beyond); `t` is `y` truncated toward
/// zero, and `y - t` is exact.
#[inline(always)]
#[allow(unsafe_code)]
pub(crate) fn round_to_i8_clamped(y: f32) -> i8 {
    let y = if y.is_nan() { 0.0 } else { y.clamp(-128.0, 128.0) };
    // SAFETY: `y` is finite and within -128..=128, so its truncation fits an `i32` (the one
    // condition of `to_int_unchecked`); the checked `as` would be scalar code per value.
    let t: i32 = unsafe { y.to_int_unchecked() };
    #[allow(clippy::cast_precision_loss)] // |t| <= 128
    let frac = y - t as f32;
    let r = t + i32::from(frac >= 0.5) - i32::from(frac <= -0.5);
    #[allow(clippy::cast_possible_truncation)] // clamped into i8's range
    let q = r.clamp(-127, 127) as i8;
    q
}

/// [`round_to_i8`] in integers after one conversion, for cores without vector units:
/// `k = trunc(2y)` is exact (doubling is), and rounding halves away from zero is then
/// `(k + 1) / 2` for `k >= 0` and `(k − 1) / 2` for `k < 0`, both truncated, which are
/// `(k + 1) >> 1` and `k >> 1` (arithmetic shifts). The cast saturates and takes NaN to 0
/// (one `VCVT` on Arm); clamping `k` to ±254 clamps the result to ±127 (|2y| >= 254 means
/// |y| >= 127).
#[inline(always)]
pub(crate) fn round_to_i8_doubled(y: f32) -> i8 {
    #[allow(clippy::cast_possible_truncation)] // saturating by definition of `as`
    let k = ((y + y) as i32).clamp(-254, 254);
    #[allow(clippy::cast_possible_truncation)] // |(k + 1) >> 1| <= 127
    let q = ((k + i32::from(k >= 0)) >> 1) as i8;
    q
}

/// Each block's scale as `f32` into `out` (`out[i]` for `blocks[i]`, exact conversions).
pub fn scales(blocks: &[BlockQ8_0], out: &mut [f32]) {
    for (o, b) in out.iter_mut().zip(blocks) {
        *o = block_scale(b);
    }
}

/// The values of `blocks` into `out` (32 per block, as many as `out` holds): `0 + d · q`, the
/// bits `axpy` with `p = 1` gives into zeros (a zero value is `+0` whatever the scale's sign).
pub fn dequantize(blocks: &[BlockQ8_0], out: &mut [f32]) {
    for (block, out) in blocks.iter().zip(out.chunks_mut(QK)) {
        let d = block_scale(block);
        for (o, q) in out.iter_mut().zip(block.iter().skip(2)) {
            *o = 0.0 + d * f32::from(i8::from_le_bytes([*q]));
        }
    }
}

/// `acc[i] += p · dequant(blocks)[i]`.
pub fn axpy(acc: &mut [f32], p: f32, blocks: &[BlockQ8_0]) {
    for (block, out) in blocks.iter().zip(acc.chunks_mut(QK)) {
        let scale = p * block_scale(block);
        for (o, q) in out.iter_mut().zip(block.iter().skip(2)) {
            *o += scale * f32::from(i8::from_le_bytes([*q]));
        }
    }
}

/// `Σ w[i]·a[i]` over Q8_0 weight blocks and Q8_0 activation blocks: an `i32` sum per block
/// and one scale multiply per block (ggml's `vec_dot_q8_0_q8_0`).
#[inline]
pub fn dot_q8_0(w: &[BlockQ8_0], a: &[BlockQ8_0]) -> f32 {
    dot_q8_0_from(0.0, w, a)
}

/// [`dot_q8_0`] continuing a running sum `sum` (the blocks' terms are added to it in order).
#[inline]
pub(crate) fn dot_q8_0_from(mut sum: f32, w: &[BlockQ8_0], a: &[BlockQ8_0]) -> f32 {
    for (wb, ab) in w.iter().zip(a) {
        sum += block_term(wb, ab, block_isum(wb, ab));
    }
    sum
}

/// [`dot_q8_0`] given the activation blocks' scales as `f32` (`a_scales[i]` the scale of
/// `a[i]`, as [`scales`] converts them once for all rows of a product): the same terms,
/// `(d_w · d_a) · isum`, added in the same order, so bit-identical.
#[allow(clippy::cast_precision_loss)] // |isum| <= 32 · 128 · 128 < 2^24: exact
pub fn dot_q8_0_scaled(w: &[BlockQ8_0], a: &[BlockQ8_0], a_scales: &[f32]) -> f32 {
    let mut sum = 0.0f32;
    for ((wb, ab), d_a) in w.iter().zip(a).zip(a_scales) {
        sum += (block_scale(wb) * d_a) * block_isum(wb, ab) as f32;
    }
    sum
}

/// The exact `Σ x[i] · y[i]` over two blocks' 32 `i8` values, four products per step with
/// the four named, so that a build that neither vectorises nor unrolls (the boards'
/// size-optimised ones) still does without per-byte loop overhead.
#[inline(always)]
fn block_isum(w: &BlockQ8_0, a: &BlockQ8_0) -> i32 {
    let (Some(wq), Some(aq)) = (w.last_chunk::<QK>(), a.last_chunk::<QK>()) else {
        return 0;
    };
    let product =
        |x: u8, y: u8| i32::from(i8::from_le_bytes([x])) * i32::from(i8::from_le_bytes([y]));
    let mut isum = 0i32;
    for ([x0, x1, x2, x3], [y0, y1, y2, y3]) in
        wq.as_chunks::<4>().0.iter().zip(aq.as_chunks::<4>().0)
    {
        isum += (product(*x0, *y0) + product(*x1, *y1)) + (product(*x2, *y2) + product(*x3, *y3));
    }
    isum
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `round_to_i8` equals `libm::roundf` then clamp and cast: every
    /// value within a few ulps of each half-integer in -130..=130 (where the ties are), a
    /// stride through all 2^32 bit patterns (NaN, infinities, subnormals, huge), and the
    /// values past `i32`'s range.
    #[test]
    fn rounding_equals_roundf_after_the_clamp() {
        let want = |y: f32| libm::roundf(y).clamp(-127.0, 127.0) as i8;
        let mut checked = 0u64;
        let mut check = |y: f32| {
            for (name, q) in [
                ("clamped", round_to_i8_clamped as fn(f32) -> i8),
                ("doubled", round_to_i8_doubled),
            ] {
                assert_eq!(q(y), want(y), "{name}: y = {y:e} ({:#010x})", y.to_bits());
            }
            checked += 1;
        };
        for h in -260i32..=260 {
            let centre = h as f32 / 2.0;
            let bits = centre.to_bits();
            for d in 0..=if cfg!(miri) { 1 } else { 8u32 } {
                check(f32::from_bits(bits.wrapping_add(d)));
                check(f32::from_bits(bits.wrapping_sub(d)));
            }
        }
        let stride = if cfg!(miri) { 0x00ff_ffff } else { 0x0000_1fff };
        let mut bits = 0u32;
        while let Some(next) = bits.checked_add(stride) {
            check(f32::from_bits(bits));
            bits = next;
        }
        for y in [2.2e9f32, -2.2e9, 3e38, -3e38, f32::INFINITY, f32::NEG_INFINITY, f32::NAN] {
            check(y);
        }
        assert!(checked > if cfg!(miri) { 2_000 } else { 9_000 });
    }

    /// `quantize_with_residual`: the value blocks are `quantize`'s; each residual block is
    /// `quantize` of `256 · (x − d · q)`, written out plainly; and value plus residual gives
    /// back every value to within `max|x| / 32,000` of its block (whole and partial blocks,
    /// blocks of wide range, all-zero blocks).
    #[test]
    fn residual_blocks_quantise_the_rounding_error() {
        for len in [QK, 4 * QK, 2 * QK + 5] {
            let mut x: std::vec::Vec<f32> = crate::kernels::tests::sample(len, len as u64, 1.0);
            for (i, v) in x.iter_mut().enumerate() {
                *v *= [1.0, 1e-3, 50.0, 0.0][i / QK % 4];
            }
            let blocks = len.div_ceil(QK);
            let mut value = std::vec![[0u8; BLOCK_BYTES]; blocks];
            let mut residual = std::vec![[0u8; BLOCK_BYTES]; blocks];
            quantize_with_residual(&x, &mut value, &mut residual);
            let mut want = std::vec![[0u8; BLOCK_BYTES]; blocks];
            quantize(&x, &mut want);
            assert_eq!(value, want, "value blocks, len {len}");
            for (b, xs) in x.chunks(QK).enumerate() {
                let d = block_scale(&value[b]);
                let rest: std::vec::Vec<f32> = xs
                    .iter()
                    .zip(&value[b][2..])
                    .map(|(v, q)| (v - d * f32::from(*q as i8)) * 256.0)
                    .collect();
                let mut want = [[0u8; BLOCK_BYTES]];
                quantize(&rest, &mut want);
                assert_eq!(residual[b], want[0], "residual block {b}, len {len}");
                let dr = block_scale(&residual[b]);
                let amax = xs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                for (i, v) in xs.iter().enumerate() {
                    let back = d * f32::from(value[b][2 + i] as i8)
                        + dr * f32::from(residual[b][2 + i] as i8) / 256.0;
                    assert!(
                        (back - v).abs() <= amax / 32_000.0,
                        "len {len} block {b} value {i}: {v} vs {back}"
                    );
                }
            }
        }
    }

    /// The block quantiser as first written (a float `max` fold, `libm::roundf`): the
    /// vectorised one must equal it byte for byte.
    fn quantize_block_plain(xs: &[f32], scale: &mut [u8; 2], qs: &mut [u8]) {
        let amax = xs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        *scale = half::f16::from_f32(d).to_le_bytes();
        qs.fill(0);
        for (q, v) in qs.iter_mut().zip(xs) {
            *q = (libm::roundf(v * id).clamp(-127.0, 127.0) as i8).to_le_bytes()[0];
        }
    }

    /// Whole and partial blocks of random values, halves, signed zeros, subnormals, huge
    /// values, infinities and NaN (anywhere in the block, including the maximum's place).
    #[test]
    fn quantize_block_equals_the_plain_definition() {
        let specials = [
            0.0f32,
            -0.0,
            0.5,
            -0.5,
            1e-40,
            -1e-40,
            3e38,
            -3e38,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            126.5,
            -126.5,
            1.0,
        ];
        let mut s = 0x1234_5678_9abc_def1u64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        // Miri interprets every value: a few dozen blocks there, thousands natively.
        let cases = if cfg!(miri) { 60 } else { 4000 };
        for case in 0..cases {
            let len = if case % 3 == 0 { 1 + (next() % QK as u64) as usize } else { QK };
            let xs: std::vec::Vec<f32> = (0..len)
                .map(|_| match next() % 8 {
                    0 => specials[(next() % specials.len() as u64) as usize],
                    1 => f32::from_bits(next() as u32),
                    _ => ((next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0) * 10.0,
                })
                .collect();
            let (mut scale, mut qs) = ([0u8; 2], [0xaau8; QK]);
            let (mut want_scale, mut want_qs) = ([0u8; 2], [0x55u8; QK]);
            quantize_block(&xs, &mut scale, &mut qs);
            quantize_block_plain(&xs, &mut want_scale, &mut want_qs);
            assert_eq!((scale, qs), (want_scale, want_qs), "case {case}: {xs:?}");
        }
    }
}

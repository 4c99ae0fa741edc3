//! Start-up check, on the target itself, of the integer dot-product kernels this build
//! selected (`arm-dsp`, `arm-mve` or `scalar`; their one-row, scaled and rows forms) against
//! the portable references: random blocks
//! (every byte value, `-128` included, random finite scales) and constant extreme blocks, for
//! every length from 0 to [`MAX_BLOCKS`] blocks, compared bit for bit. The host tests run the
//! same comparison for the host's kernels; this is where the Arm DSP and Helium instructions
//! themselves are checked (QEMU in CI, or a real board). The f16 conversions (`VCVTB` on
//! cores with an FPU) are checked against the portable references too: every binary16 value,
//! and `f32` values around every rounding boundary of binary16. So is the activation
//! quantiser, which each target compiles its own way (vectorised on Helium), against a
//! value-by-value computation of the same rounding.

use tinymla_core::kernels::{self, Kernels};
use tinymla_core::quant::f16::{
    f16_to_f32, f16_to_f32_reference, f32_to_f16, f32_to_f16_reference, HARDWARE_CONVERSIONS,
};
use tinymla_core::quant::{q4_0, q8_0, QK};

use crate::exit::exit;

/// Longest row tried, in blocks (odd, past two 8-block chunks).
const MAX_BLOCKS: usize = 17;
/// Random rows per length.
const ROUNDS: usize = 4;

/// xorshift64: reproducible bytes without an RNG crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A finite f16 scale (exponent 3..=26 of 31), either sign, as little-endian bytes.
    fn scale(&mut self) -> [u8; 2] {
        let r = self.next();
        let bits = (r & 0x83ff) as u16 | ((3 + (r >> 16) % 24) as u16) << 10;
        bits.to_le_bytes()
    }

    fn fill<const B: usize>(&mut self, blocks: &mut [[u8; B]]) {
        for b in blocks {
            let (d, qs) = b.split_at_mut(2);
            d.copy_from_slice(&self.scale());
            for q in qs {
                *q = self.next() as u8;
            }
        }
    }
}

/// Blocks whose values are all `v` (scale 1.0).
fn constant<const B: usize>(blocks: &mut [[u8; B]], v: u8) {
    for b in blocks {
        let (d, qs) = b.split_at_mut(2);
        d.copy_from_slice(&0x3c00u16.to_le_bytes());
        qs.fill(v);
    }
}

/// Runs the check; logs the kernel table's name and the number of products compared, or
/// logs the first mismatch and exits with status 4. Out of line, so its ~1.5 KB of test blocks
/// live in its own frame, gone before loading, not in the caller's for the whole run.
#[inline(never)]
pub fn kernels() {
    f16_conversions();
    quantiser();
    let k = kernels::active();
    let reference = Kernels::SCALAR;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut w8 = [[0u8; q8_0::BLOCK_BYTES]; MAX_BLOCKS];
    let mut w4 = [[0u8; q4_0::BLOCK_BYTES]; MAX_BLOCKS];
    let mut a = [[0u8; q8_0::BLOCK_BYTES]; MAX_BLOCKS];
    let mut products = 0usize;
    // Rounds 0..ROUNDS are random; the last three are constant extremes.
    for round in 0..ROUNDS + 3 {
        match round.checked_sub(ROUNDS) {
            None => {
                rng.fill(&mut w8);
                rng.fill(&mut w4);
                rng.fill(&mut a);
            }
            Some(extreme) => {
                let (wv, av) = [(0x80, 0x80), (0x7f, 0x81), (0xff, 0x7f)][extreme];
                constant(&mut w8, wv);
                constant(&mut w4, wv);
                constant(&mut a, av);
            }
        }
        for n in 0..=MAX_BLOCKS {
            let (w8, w4, a) = (&w8[..n], &w4[..n], &a[..n]);
            let mut scales = [0.0f32; MAX_BLOCKS];
            let scales = &mut scales[..n];
            q8_0::scales(a, scales);
            let q8 = (k.dot_q8_0(w8, a), reference.dot_q8_0(w8, a));
            let q4 = (k.dot_q4_0(w4, a), reference.dot_q4_0(w4, a));
            let q8_scaled = (k.dot_q8_0_scaled(w8, a, scales), q8.1);
            let q4_scaled = (k.dot_q4_0_scaled(w4, a, scales), q4.1);
            // A chunk of three rows (the weights, the activations, the weights again: odd, so
            // both the paired and the single-row paths), where the table has the kernel.
            let mut rows = [[0u8; q8_0::BLOCK_BYTES]; 3 * MAX_BLOCKS];
            for (r, row) in [w8, a, w8].into_iter().enumerate() {
                rows[r * n..][..n].copy_from_slice(row);
            }
            let mut sums = [0.0f32; 3];
            match k.dot_q8_0_rows() {
                Some(rows_fn) => rows_fn(&rows[..3 * n], n, a, scales, &mut sums),
                None => sums = [q8.0, reference.dot_q8_0(a, a), q8.0],
            }
            let self_dot = reference.dot_q8_0(a, a);
            let row_sums = [(sums[0], q8.1), (sums[1], self_dot), (sums[2], q8.1)];
            for (what, (got, want)) in [
                ("q8_0", q8),
                ("q4_0", q4),
                ("q8_0 scaled", q8_scaled),
                ("q4_0 scaled", q4_scaled),
                ("q8_0 rows[0]", row_sums[0]),
                ("q8_0 rows[1]", row_sums[1]),
                ("q8_0 rows[2]", row_sums[2]),
            ] {
                if got.to_bits() != want.to_bits() {
                    defmt::error!(
                        "tinymla: kernels {=str} self-test FAILED: {=str} round {=usize} n={=usize}: {=f32} != reference {=f32}",
                        k.name(),
                        what,
                        round,
                        n,
                        got,
                        want
                    );
                    exit(4);
                }
                products += 1;
            }
        }
    }
    defmt::info!(
        "tinymla: kernels {=str} self-test ok: {=usize} q8_0/q4_0 products (plain, scaled, rows) bit-identical to the reference",
        k.name(),
        products
    );
}

/// Both f16 conversions against their references, bit for bit (NaN for NaN), or exit 4:
/// every binary16 value to `f32`, and for each of the 2^19 `f32` sign/exponent/upper-mantissa patterns one
/// value of its low 13 mantissa bits (binary16's rounding position for normal results), taken
/// in turn from just below, at and just above the halfway point, the ends, and random bits.
#[inline(never)]
fn f16_conversions() {
    for h in 0..=u16::MAX {
        let (got, want) = (f16_to_f32(h.to_le_bytes()), f16_to_f32_reference(h.to_le_bytes()));
        // NaNs need only stay NaN (the hardware quiets a signalling one).
        let same = got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan());
        if !same {
            defmt::error!(
                "tinymla: f16 -> f32 self-test FAILED: {=u16:#06x} gave {=u32:#010x}, reference {=u32:#010x}",
                h,
                got.to_bits(),
                want.to_bits()
            );
            exit(4);
        }
    }
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for high in 0..1u32 << 19 {
        let low = [0, 1, 0x0fff, 0x1000, 0x1001, 0x1fff][(high % 8) as usize % 6];
        let low = if high % 8 >= 6 { rng.next() as u32 & 0x1fff } else { low };
        let x = f32::from_bits(high << 13 | low);
        let (got, want) = (f32_to_f16(x), f32_to_f16_reference(x));
        if got != want {
            defmt::error!(
                "tinymla: f32 -> f16 self-test FAILED: {=u32:#010x} gave {=[u8]}, reference {=[u8]}",
                x.to_bits(),
                got[..],
                want[..]
            );
            exit(4);
        }
    }
    defmt::info!(
        "tinymla: f16 conversions self-test ok ({=str}): 65,536 halves and 524,288 floats bit-identical to the reference",
        if HARDWARE_CONVERSIONS { "FPU" } else { "portable" }
    );
}

/// `kernels::active().quantize_q8_0` against the definition computed one value at a time
/// (`black_box` keeps it scalar): per block `d = max|x| / 127` stored as f16, and
/// `q = round(x / d)` with halves away from zero, clamped to ±127 — on blocks whose values
/// sit at and next to every half-integer of the quantised range, and on NaN, infinities and
/// zeros. Exits 4 on the first difference.
#[inline(never)]
fn quantiser() {
    use core::hint::black_box;
    const BLOCKS: usize = 8;
    let k = kernels::active();
    let mut x = [0.0f32; BLOCKS * QK];
    let mut out = [[0u8; q8_0::BLOCK_BYTES]; BLOCKS];
    let mut checked = 0usize;
    // Values `(h / 2) · d` for half-integers h in -260..=260 (with d = 1 the block's max is
    // 127, so `x / d` lands on and next to each rounding boundary), in blocks of 32, each
    // nudged by -1, 0 or +1 ulp; then the special values.
    for round in 0..4 {
        for (i, v) in x.iter_mut().enumerate() {
            let h = (i % 255) as f32 - 127.0 + if i % 2 == 0 { 0.5 } else { 0.0 };
            let base = if i % QK == 0 { 127.0 } else { h };
            let bits = base.to_bits();
            *v = match round {
                0 => base,
                1 => f32::from_bits(bits.wrapping_add(1)),
                2 => f32::from_bits(bits.wrapping_sub(1)),
                _ => [f32::NAN, f32::INFINITY, 0.0, -0.0, 1e-30, -3.5, 2.5, 126.5][i % 8],
            };
        }
        k.quantize_q8_0(&x, &mut out);
        for (block, xs) in out.iter().zip(x.chunks(QK)) {
            let amax = xs.iter().fold(0.0f32, |m, v| if v.abs() > m { v.abs() } else { m });
            let d = black_box(amax) / 127.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            let scale = f32_to_f16_reference(d);
            let mut ok = block[..2] == scale;
            for (q, v) in block[2..].iter().zip(xs) {
                let y = black_box(*v * id);
                let y = if y.is_nan() { 0.0 } else { y.clamp(-128.0, 128.0) };
                let t = black_box(y) as i32;
                let frac = y - t as f32;
                let r = (t + i32::from(frac >= 0.5) - i32::from(frac <= -0.5)).clamp(-127, 127);
                ok &= *q == r as i8 as u8;
                checked += 1;
            }
            if !ok {
                defmt::error!(
                    "tinymla: quantiser self-test FAILED ({=str}) round {=usize}: block {=[u8]} for values {=[?]}",
                    k.name(),
                    round,
                    block[..],
                    xs
                );
                exit(4);
            }
        }
    }
    defmt::info!("tinymla: quantiser self-test ok: {=usize} values", checked);
}

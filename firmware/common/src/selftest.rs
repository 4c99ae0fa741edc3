//! Start-up check, on the target itself, of the integer dot-product kernels this build
//! selected (`arm-dsp`, `arm-mve` or `scalar`) against the portable references: random blocks
//! (every byte value, `-128` included, random finite scales) and constant extreme blocks, for
//! every length from 0 to [`MAX_BLOCKS`] blocks, compared bit for bit. The host tests run the
//! same comparison for the host's kernels; this is where the Arm DSP and Helium instructions
//! themselves are checked (QEMU in CI, or a real board).

use tinymla_core::kernels::{self, Kernels};
use tinymla_core::quant::{q4_0, q8_0};

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
            let q8 = (k.dot_q8_0(w8, a), reference.dot_q8_0(w8, a));
            let q4 = (k.dot_q4_0(w4, a), reference.dot_q4_0(w4, a));
            for (what, (got, want)) in [("q8_0", q8), ("q4_0", q4)] {
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
        "tinymla: kernels {=str} self-test ok: {=usize} q8_0/q4_0 products bit-identical to the reference",
        k.name(),
        products
    );
}

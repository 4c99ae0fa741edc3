//! Every kernel table against the scalar reference, on random data and awkward sizes.

use super::*;
use crate::quant::{q4_0, q8_0};
use std::vec::Vec;

mod attention;
mod blocks;

/// The tables this machine can run (scalar always; SIMD variants skipped at runtime, not
/// compiled out, when the CPU lacks them), plus the Arm DSP kernels over the portable model of
/// `SXTB16`/`SMLAD` (the same kernel body the hardware table runs).
fn tables() -> Vec<Kernels> {
    // The model is safe code, so Miri (slow) skips it.
    let mut t = std::vec![Kernels::SCALAR];
    if !cfg!(miri) {
        t.push(DSP_MODEL);
    }
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    t.extend(
        [Kernels::x86_avx2(), Kernels::x86_vnni(false), Kernels::x86_vnni(true)]
            .into_iter()
            .flatten(),
    );
    #[cfg(all(target_arch = "aarch64", not(miri)))]
    t.extend([Kernels::aarch64_neon(false), Kernels::aarch64_neon(true)].into_iter().flatten());
    #[cfg(tinymla_arm_dsp)]
    t.push(Kernels::ARM_DSP);
    t
}

const DSP_MODEL: Kernels = Kernels {
    name: "arm-dsp (portable model)",
    dot_q8_0: arm_dsp::dot_q8_0_with::<arm_dsp::Model>,
    dot_q4_0: arm_dsp::dot_q4_0_with::<arm_dsp::Model>,
    dot_q8_0_scaled: Some(arm_dsp::dot_q8_0_scaled_with::<arm_dsp::Model>),
    dot_q4_0_scaled: Some(arm_dsp::dot_q4_0_scaled_with::<arm_dsp::Model>),
    dot_q8_0_rows: Some(arm_dsp::dot_q8_0_rows_with::<arm_dsp::Model>),
    ..Kernels::SCALAR
};

/// xorshift64 bytes.
fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 32) as u8
        })
        .collect()
}

/// f16 scales from zero and subnormal up to 65504 (NaN/Inf-free, as a validated model is).
const SCALES: [f32; 7] = [0.0, 6e-8, 1e-4, 0.01, 1.0, 300.0, 65504.0];

/// `n_blocks` blocks of `BYTES` bytes with random values, scales cycling through [`SCALES`]
/// (negated on odd blocks), and `0x80` (−128) bytes replaced when `no_min` holds.
fn random_blocks<const BYTES: usize>(n_blocks: usize, seed: u64, no_min: bool) -> Vec<[u8; BYTES]> {
    let raw = bytes(n_blocks * BYTES, seed);
    raw.chunks_exact(BYTES)
        .enumerate()
        .map(|(i, c)| {
            let mut b: [u8; BYTES] = c.try_into().unwrap();
            let d =
                SCALES[(i + seed as usize) % SCALES.len()] * if i % 2 == 1 { -1.0 } else { 1.0 };
            b[..2].copy_from_slice(&half::f16::from_f32(d).to_le_bytes());
            if no_min {
                b[2..].iter_mut().filter(|q| **q == 0x80).for_each(|q| *q = 0x81);
            }
            b
        })
        .collect()
}

/// Block counts to test: empty, one, odd, past the 8-block batches of the AVX2 kernels. Fewer
/// under Miri, which only has the portable tables and runs ~1000× slower.
const BLOCK_COUNTS: &[usize] =
    if cfg!(miri) { &[0, 1, 3, 9] } else { &[0, 1, 2, 3, 7, 8, 17, 64, 65, 257] };
/// Random inputs per block count.
const SEEDS: u64 = if cfg!(miri) { 1 } else { 4 };

/// `n` xorshift values, uniform in `−scale..scale` (`seed | 1` seeds the generator).
pub(crate) fn sample(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

const SIZES: [usize; 10] = [0, 1, 7, 8, 9, 31, 32, 33, 257, 1000];

#[test]
fn float_dots_agree_with_scalar() {
    for k in tables() {
        for &n in &SIZES {
            for scale in [1.0f32, 1e-3, 3e4] {
                let (w, x) = (sample(n, 1, scale), sample(n, 2, 1.0));
                let bound: f32 = w.iter().zip(&x).map(|(a, b)| (a * b).abs()).sum::<f32>() + 1e-30;
                let w32: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
                let w16: Vec<u8> =
                    w.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect();
                let w16b: Vec<u8> =
                    w.iter().flat_map(|v| half::bf16::from_f32(*v).to_le_bytes()).collect();
                let cases = [
                    (k.dot_f32_le(&w32, &x), scalar::dot_f32_le(&w32, &x)),
                    (k.dot_f16_le(&w16, &x), scalar::dot_f16_le(&w16, &x)),
                    (k.dot_bf16_le(&w16b, &x), scalar::dot_bf16_le(&w16b, &x)),
                    (k.dot(&w, &x), scalar::dot(&w, &x)),
                ];
                for (i, (got, want)) in cases.into_iter().enumerate() {
                    assert!(
                        (got - want).abs() <= TOL_DOT_REL * bound,
                        "{k:?} case {i} n={n} scale={scale}: {got} vs {want}"
                    );
                }
                assert_eq!(k.dot(&w, &x).to_bits(), scalar::dot(&w, &x).to_bits(), "{k:?} f32 dot");
            }
        }
    }
}

#[test]
fn q8_0_dot_is_bit_identical_to_scalar() {
    for k in tables() {
        for n_blocks in [0usize, 1, 2, 3, 17, 64] {
            for scale in [1.0f32, 1e-4, 6e4] {
                let n = n_blocks * 32;
                let (w, x) = (sample(n, 3, scale), sample(n, 4, 1.0));
                let mut wq = std::vec![[0u8; 34]; n_blocks];
                let mut xq = std::vec![[0u8; 34]; n_blocks];
                q8_0::quantize(&w, &mut wq);
                q8_0::quantize(&x, &mut xq);
                assert_eq!(
                    k.dot_q8_0(&wq, &xq).to_bits(),
                    q8_0::dot_q8_0(&wq, &xq).to_bits(),
                    "{k:?} blocks={n_blocks} scale={scale}"
                );
            }
            // Extremes: every value ±127 and an all-zero block.
            let mut wq = std::vec![[0u8; 34]; n_blocks];
            for (i, b) in wq.iter_mut().enumerate() {
                b[..2].copy_from_slice(&half::f16::from_f32(0.5).to_le_bytes());
                for (j, q) in b[2..].iter_mut().enumerate() {
                    *q = if (i + j) % 3 == 0 {
                        0
                    } else if (i + j) % 2 == 0 {
                        127
                    } else {
                        0x81
                    };
                }
            }
            assert_eq!(k.dot_q8_0(&wq, &wq).to_bits(), q8_0::dot_q8_0(&wq, &wq).to_bits(), "{k:?}");
        }
    }
}

/// Also the running-sum forms (`dot_q8_0_from`, `dot_q4_0_from`) from a random start, and
/// the forms given the activation scales as `f32` (`dot_q8_0_scaled`, `dot_q4_0_scaled`,
/// and the rows kernel `dot_q8_0_rows` where a table has it).
#[test]
fn integer_dots_are_bit_identical_on_random_bytes_and_extreme_scales() {
    for k in tables() {
        for &n in BLOCK_COUNTS {
            for seed in 0..SEEDS {
                // AVX2's Q8_0 sign trick needs activations in −127..=127, which is all
                // `q8_0::quantize` writes; every other kernel is exact on all bytes.
                let w8 = random_blocks::<34>(n, seed, true);
                let a8 = random_blocks::<34>(n, seed + 100, sign_transfer(&k));
                let w4 = random_blocks::<18>(n, seed + 200, false);
                let a = random_blocks::<34>(n, seed + 300, false);
                let (got, want) = (k.dot_q8_0(&w8, &a8), q8_0::dot_q8_0(&w8, &a8));
                assert_eq!(got.to_bits(), want.to_bits(), "{k:?} q8_0 n={n} seed={seed}");
                let (got, want) = (k.dot_q4_0(&w4, &a), q4_0::dot_q8_0(&w4, &a));
                assert_eq!(got.to_bits(), want.to_bits(), "{k:?} q4_0 n={n} seed={seed}");
                // With the activation scales given as f32.
                let mut scales = std::vec![0.0f32; n];
                q8_0::scales(&a8, &mut scales);
                let got = k.dot_q8_0_scaled(&w8, &a8, &scales);
                let want = q8_0::dot_q8_0(&w8, &a8);
                assert_eq!(got.to_bits(), want.to_bits(), "{k:?} q8_0 scaled n={n} seed={seed}");
                // A chunk of rows at once, where the table has the kernel: 0 to 5 rows (odd
                // and even counts) with a stride past the chunk, each row as its own product
                // added to its output's start value.
                if let Some(rows_fn) = k.dot_q8_0_rows() {
                    let stride = n + 3;
                    let rows = random_blocks::<34>(5 * stride, seed + 500, false);
                    for count in 0..=5 {
                        let start = sample(count, seed + 600, 1e3);
                        let mut got = start.clone();
                        rows_fn(&rows, stride, &a8, &scales, &mut got);
                        for (r, (g, s0)) in got.iter().zip(&start).enumerate() {
                            let row = &rows[r * stride..][..n];
                            let want = s0 + q8_0::dot_q8_0(row, &a8);
                            assert_eq!(g.to_bits(), want.to_bits(), "{k:?} rows {r}/{count} n={n}");
                        }
                    }
                }
                q8_0::scales(&a, &mut scales);
                let got = k.dot_q4_0_scaled(&w4, &a, &scales);
                let want = q4_0::dot_q8_0(&w4, &a);
                assert_eq!(got.to_bits(), want.to_bits(), "{k:?} q4_0 scaled n={n} seed={seed}");
                // Continuing a running sum (the trailing blocks after packed groups).
                let start = sample(1, seed + 400, 1e3)[0];
                let got = k.dot_q8_0_from(start, &w8, &a8);
                let want = q8_0::dot_q8_0_from(start, &w8, &a8);
                assert_eq!(got.to_bits(), want.to_bits(), "{k:?} q8_0 from n={n} seed={seed}");
                let got = k.dot_q4_0_from(start, &w4, &a);
                let want = q4_0::dot_q8_0_from(start, &w4, &a);
                assert_eq!(got.to_bits(), want.to_bits(), "{k:?} q4_0 from n={n} seed={seed}");
            }
        }
    }
}

/// The tile of plain blocks (one weight row, [`GROUP_TILE`] activation vectors, running sums)
/// equals the one-vector kernels continuing each sum, on every table, at every block count,
/// with extreme scales; a vector shorter than the row goes one by one and still matches.
#[test]
fn blocks_tile_equals_one_vector_dots() {
    for k in tables() {
        for &n in BLOCK_COUNTS {
            for seed in 0..SEEDS {
                let w8 = random_blocks::<34>(n, seed, true);
                let w4 = random_blocks::<18>(n, seed + 1, false);
                let acts: Vec<Vec<[u8; 34]>> = (0..GROUP_TILE as u64)
                    .map(|t| random_blocks::<34>(n, seed * 16 + t + 100, sign_transfer(&k)))
                    .collect();
                let mut tile: [&[[u8; 34]]; GROUP_TILE] = core::array::from_fn(|t| &acts[t][..]);
                let starts: [f32; GROUP_TILE] =
                    sample(GROUP_TILE, seed + 7, 1e3).try_into().unwrap();
                for short in [false, true] {
                    if short && n > 0 {
                        tile[5] = &acts[5][..n - 1];
                    }
                    let got = k.dot_q8_0_tile(&starts, &w8, &tile);
                    let got4 = k.dot_q4_0_tile(&starts, &w4, &tile);
                    for t in 0..GROUP_TILE {
                        let want = q8_0::dot_q8_0_from(starts[t], &w8, tile[t]);
                        assert_eq!(got[t].to_bits(), want.to_bits(), "{k:?} q8_0 n={n} t={t}");
                        let want = q4_0::dot_q8_0_from(starts[t], &w4, tile[t]);
                        assert_eq!(got4[t].to_bits(), want.to_bits(), "{k:?} q4_0 n={n} t={t}");
                    }
                }
            }
        }
        std::println!("blocks tile checked on table {}", k.name());
    }
}

/// True for the x86 tables, whose one-vector Q8_0 kernels move the weight's sign onto the
/// activation (exact for activations in −127..=127, all that Q8_0 quantisation writes).
fn sign_transfer(k: &Kernels) -> bool {
    k.name().starts_with("avx")
}

/// Every table's packing equals the reference byte for byte: Q8_0 (every byte, −128
/// included) and Q4_0, scales from [`SCALES`].
#[test]
fn packing_equals_the_reference() {
    use crate::quant::group8::{self, GROUP_BYTES};
    for k in tables() {
        for seed in 0..8 * SEEDS {
            let w8 = random_blocks::<34>(8, seed, false);
            let w4 = random_blocks::<18>(8, seed + 200, false);
            let (w8, w4) = (w8.as_chunks::<8>().0[0], w4.as_chunks::<8>().0[0]);
            let (mut got, mut want) = ([0u8; GROUP_BYTES], [0u8; GROUP_BYTES]);
            k.pack_q8_0(&w8, &mut got);
            group8::pack_q8_0(&w8, &mut want);
            assert_eq!(got, want, "{k:?} q8_0 seed {seed}");
            k.pack_q4_0(&w4, &mut got);
            group8::pack_q4_0(&w4, &mut want);
            assert_eq!(got, want, "{k:?} q4_0 seed {seed}");
        }
    }
}

/// Packed groups: every table's `dot_groups` equals the one-vector reference on the blocks
/// packed, bit for bit, for Q8_0 weights (every byte, −128 included) and Q4_0 weights.
#[test]
fn group_dots_equal_block_dots() {
    use crate::quant::group8::{self, Group8, GROUP_BYTES};
    fn packed<const B: usize>(
        blocks: &[[u8; B]],
        pack: fn(&[[u8; B]; 8], &mut Group8),
    ) -> Vec<Group8> {
        blocks
            .as_chunks::<8>()
            .0
            .iter()
            .map(|c| {
                let mut g = [0u8; GROUP_BYTES];
                pack(c, &mut g);
                g
            })
            .collect()
    }
    for k in tables() {
        for n_groups in [0usize, 1, 2, 5, 8] {
            for seed in 0..SEEDS {
                let n = 8 * n_groups;
                let w8 = random_blocks::<34>(n, seed, false);
                let w4 = random_blocks::<18>(n, seed + 200, false);
                let a = random_blocks::<34>(n, seed + 300, true);
                let (w8g, w4g, ag) = (
                    packed(&w8, group8::pack_q8_0),
                    packed(&w4, group8::pack_q4_0),
                    packed(&a, group8::pack_q8_0),
                );
                let want8 = q8_0::dot_q8_0(&w8, &a);
                assert_eq!(group8::dot(&w8g, &ag).to_bits(), want8.to_bits(), "reference q8_0");
                assert_eq!(k.dot_groups(&w8g, &ag).to_bits(), want8.to_bits(), "{k:?} q8_0 n={n}");
                let want4 = q4_0::dot_q8_0(&w4, &a);
                assert_eq!(group8::dot(&w4g, &ag).to_bits(), want4.to_bits(), "reference q4_0");
                assert_eq!(k.dot_groups(&w4g, &ag).to_bits(), want4.to_bits(), "{k:?} q4_0 n={n}");
                // The tile: four different activation vectors, one of them short once.
                let others: Vec<Vec<Group8>> = (0..GROUP_TILE as u64)
                    .map(|t| {
                        packed(&random_blocks::<34>(n, seed + 400 + t, true), group8::pack_q8_0)
                    })
                    .collect();
                let mut tile: [&[Group8]; GROUP_TILE] =
                    core::array::from_fn(|t| others[t].as_slice());
                if seed == 1 && n_groups > 0 {
                    tile[1] = &others[1][..n_groups - 1];
                }
                for wg in [&w8g, &w4g] {
                    let got = k.dot_groups_tile(wg, &tile);
                    for t in 0..GROUP_TILE {
                        let want = group8::dot(wg, tile[t]);
                        assert_eq!(got[t].to_bits(), want.to_bits(), "{k:?} tile n={n} t={t}");
                    }
                }
                // Biased activations (prefill's on the VNNI tables): the same bits as the
                // plain groups, through the tile and one vector at a time, one short once.
                let mut biased_store = others.clone();
                let biased: Vec<BiasedGroups> =
                    biased_store.iter_mut().map(|o| BiasedGroups::bias_in_place(o)).collect();
                let mut biased_tile: [BiasedGroups; GROUP_TILE] =
                    core::array::from_fn(|t| biased[t]);
                if seed == 1 && n_groups > 0 {
                    biased_tile[1] = biased[1].take(n_groups - 1);
                }
                for wg in [&w8g, &w4g] {
                    let got = k.dot_groups_tile_biased(wg, &biased_tile);
                    for t in 0..GROUP_TILE {
                        let want = group8::dot(wg, tile[t]).to_bits();
                        assert_eq!(got[t].to_bits(), want, "{k:?} biased tile n={n} t={t}");
                        let one = k.dot_groups_biased(wg, biased_tile[t]).to_bits();
                        assert_eq!(one, want, "{k:?} biased n={n} t={t}");
                        let reference = group8::dot_biased(wg, biased_tile[t]).to_bits();
                        assert_eq!(reference, want, "reference biased n={n} t={t}");
                    }
                }
                // The `vpdpbusd` group kernels are exact for every activation byte too.
                if k.name().contains("vnni") {
                    let any = packed(&random_blocks::<34>(n, seed + 600, false), group8::pack_q8_0);
                    let want = group8::dot(&w8g, &any);
                    assert_eq!(k.dot_groups(&w8g, &any).to_bits(), want.to_bits(), "{k:?} n={n}");
                    let tile = [any.as_slice(); GROUP_TILE];
                    for got in k.dot_groups_tile(&w8g, &tile) {
                        assert_eq!(got.to_bits(), want.to_bits(), "{k:?} any-byte tile n={n}");
                    }
                    let mut any_biased = any.clone();
                    let any_biased = BiasedGroups::bias_in_place(&mut any_biased);
                    for got in k.dot_groups_tile_biased(&w8g, &[any_biased; GROUP_TILE]) {
                        assert_eq!(got.to_bits(), want.to_bits(), "{k:?} any-byte biased n={n}");
                    }
                }
                // Decode's tile: one activation vector against eight weight rows with every
                // byte (−128 included), Q8_0 and Q4_0 rows mixed, one row short once.
                let rows: Vec<Vec<Group8>> = (0..GROUP_TILE as u64)
                    .map(|t| match t % 2 {
                        0 => packed(
                            &random_blocks::<34>(n, seed + 500 + t, false),
                            group8::pack_q8_0,
                        ),
                        _ => packed(
                            &random_blocks::<18>(n, seed + 500 + t, false),
                            group8::pack_q4_0,
                        ),
                    })
                    .collect();
                let mut rows_tile: [&[Group8]; GROUP_TILE] =
                    core::array::from_fn(|t| rows[t].as_slice());
                if seed == 2 && n_groups > 0 {
                    rows_tile[3] = &rows[3][..n_groups - 1];
                }
                let got = k.dot_rows_tile(&ag, &rows_tile);
                for t in 0..GROUP_TILE {
                    let want = group8::dot(rows_tile[t], &ag);
                    assert_eq!(got[t].to_bits(), want.to_bits(), "{k:?} rows tile n={n} t={t}");
                }
            }
        }
    }
}

#[test]
fn q4_0_dot_is_bit_identical_on_extremes() {
    for k in tables() {
        for &n in BLOCK_COUNTS {
            // Every nibble 0 (−8) or 15 (+7), activations ±127 and −128, scale at f16's max.
            for (wq, aq) in [(0x00u8, 0x80u8), (0xff, 0x7f), (0x0f, 0x81), (0xf0, 0x80)] {
                let mut w = std::vec![[wq; 18]; n];
                let mut a = std::vec![[aq; 34]; n];
                for (i, (wb, ab)) in w.iter_mut().zip(&mut a).enumerate() {
                    let d = half::f16::from_f32(if i % 2 == 0 { 65504.0 } else { -1e-4 });
                    wb[..2].copy_from_slice(&d.to_le_bytes());
                    ab[..2].copy_from_slice(&d.to_le_bytes());
                }
                let (got, want) = (k.dot_q4_0(&w, &a), q4_0::dot_q8_0(&w, &a));
                assert_eq!(got.to_bits(), want.to_bits(), "{k:?} n={n} {wq:#x} {aq:#x}");
            }
        }
    }
}

#[test]
fn dsp_model_matches_the_instruction_definitions() {
    use arm_dsp::{Dsp, Model};
    assert_eq!(Model::sxtb16(0x7f80_01ff), 0xff80_ffff);
    assert_eq!(Model::sxtb16_ror8(0x7f80_01ff), 0x007f_0001);
    // SMLAD: lo·lo + hi·hi + acc over signed halfwords.
    assert_eq!(Model::smlad(0xff80_0002, 0xff80_0003, 10), 10 + 6 + (-128 * -128));
    assert_eq!(Model::smlad(0x8000_8000, 0x8000_8000, 0), i32::MIN); // wraps like the hardware
                                                                     // And the hardware agrees with the model where it exists.
    #[cfg(tinymla_arm_dsp)]
    for x in bytes(4096, 9).chunks_exact(8) {
        let (a, b) = (
            u32::from_le_bytes(x[..4].try_into().unwrap()),
            u32::from_le_bytes(x[4..].try_into().unwrap()),
        );
        use arm_dsp::Hw;
        assert_eq!(Hw::sxtb16(a), Model::sxtb16(a));
        assert_eq!(Hw::sxtb16_ror8(a), Model::sxtb16_ror8(a));
        assert_eq!(Hw::smlad(a, b, 12345), Model::smlad(a, b, 12345));
    }
}

#[test]
fn the_active_table_is_one_of_the_tables() {
    let name = active().name();
    assert!(tables().iter().any(|k| k.name() == name), "{name}");
}

/// `scripts/test.sh` runs the suite under emulated CPUs with and without optional features and
/// states which tables must then be chosen (`TINYMLA_EXPECT_DETECT`: runtime detection;
/// `TINYMLA_EXPECT_COMPILE_TIME`: what the build's target features select), so a detection bug
/// cannot silently test the scalar path twice.
#[test]
fn the_expected_tables_are_chosen() {
    let names: Vec<&str> = tables().iter().map(|k| k.name()).collect();
    let (detected, compiled) = (Kernels::detect().name(), Kernels::compile_time().name());
    std::eprintln!("tables: {names:?}; detected: {detected}; compile time: {compiled}");
    if let Ok(want) = std::env::var("TINYMLA_EXPECT_DETECT") {
        assert_eq!(detected, want);
    }
    if let Ok(want) = std::env::var("TINYMLA_EXPECT_COMPILE_TIME") {
        assert_eq!(compiled, want);
    }
}

/// Every table's block-format dot products are bit-identical to the references, on random
/// bytes with f16 scales from 0 and subnormal to 65504 (negated on odd blocks), activations
/// at several magnitudes plus blocks of all +127 / all −127 (the extremes of the integer
/// sums), for block counts around the 8-block chunks. Prints which tables ran.
#[test]
fn block_format_dots_are_bit_identical_on_every_table() {
    use crate::quant::format::{ActBlocks, BlockFormat};
    use crate::quant::{q8_k, QK, QK_K};
    let formats = BlockFormat::ALL;
    let counts: &[usize] = if cfg!(miri) { &[1, 2] } else { &[0, 1, 2, 7, 8, 9, 17] };
    let names: Vec<&str> = tables().iter().map(Kernels::name).collect();
    std::eprintln!("block-format dots checked on: {names:?}");
    for f in formats {
        for &n in counts {
            for seed in 0..SEEDS {
                let mut w = bytes(n * f.block_bytes(), seed + 31 * n as u64);
                for (i, block) in w.chunks_exact_mut(f.block_bytes()).enumerate() {
                    for (j, at) in f.scale_offsets().iter().enumerate() {
                        let d = SCALES[(i + j + seed as usize) % SCALES.len()]
                            * if i % 2 == 1 { -1.0 } else { 1.0 };
                        block[*at..*at + 2].copy_from_slice(&half::f16::from_f32(d).to_le_bytes());
                    }
                }
                let values = n * f.block_elems();
                let mut x = sample(values, seed + 7, 10f32.powi(seed as i32 - 2));
                // Extremes: the first block all at the largest magnitude, the second alternating.
                for (i, v) in x.iter_mut().enumerate().take(2 * f.block_elems()) {
                    *v = if i < f.block_elems() || i % 2 == 0 { 1.0 } else { -1.0 };
                }
                for k in tables() {
                    let (got, want) = match f.acts() {
                        ActBlocks::Q8_0 => {
                            let mut a = std::vec![[0u8; q8_0::BLOCK_BYTES]; values / QK];
                            q8_0::quantize(&x, &mut a);
                            (f.dot_q8_0(&k, &w, &a), f.dot_q8_0(&Kernels::SCALAR, &w, &a))
                        }
                        ActBlocks::Q8K => {
                            let mut a = std::vec![[0u8; q8_k::BLOCK_BYTES]; values / QK_K];
                            q8_k::quantize(&x, &mut a);
                            (f.dot_q8_k(&k, &w, &a), f.dot_q8_k(&Kernels::SCALAR, &w, &a))
                        }
                    };
                    assert_eq!(
                        got.to_bits(),
                        want.to_bits(),
                        "{} {f:?} x{n} seed {seed}: {got} vs {want}",
                        k.name()
                    );
                }
            }
        }
    }
}

/// The activation quantisers give the reference's bytes on every table: whole and partial
/// blocks, tiny, huge, subnormal, infinite and NaN values, and blocks of zeros.
#[test]
fn activation_quantisers_are_identical_on_every_table() {
    use crate::quant::q8_k;
    let n = if cfg!(miri) { 300 } else { 3 * 256 + 77 };
    let mut x = sample(n, 91, 3.0);
    let specials = [f32::NAN, f32::INFINITY, -f32::INFINITY, 1e-40, -3e-39, 6e4, -1e30, 0.5];
    for (i, s) in specials.iter().enumerate() {
        if let Some(v) = x.get_mut(37 * i + 5) {
            *v = *s;
        }
    }
    // A block of tiny values (its scale a subnormal f16) and a block of zeros.
    for (i, v) in x.iter_mut().enumerate().skip(64).take(32) {
        *v = (i as f32 - 80.0) * 1e-9;
    }
    for v in x.iter_mut().skip(96).take(32) {
        *v = 0.0;
    }
    for k in tables() {
        for len in [n, n - 77, 33, 31, 1, 0] {
            let xs = &x[..len];
            let blocks = len.div_ceil(32);
            let (mut got, mut want) = (std::vec![[7u8; 34]; blocks], std::vec![[7u8; 34]; blocks]);
            k.quantize_q8_0(xs, &mut got);
            q8_0::quantize(xs, &mut want);
            assert_eq!(got, want, "{}: q8_0, {len} values", k.name());
            let blocks = len.div_ceil(256);
            let mut got = std::vec![[7u8; q8_k::BLOCK_BYTES]; blocks];
            let mut want = got.clone();
            k.quantize_q8_k(xs, &mut got);
            q8_k::quantize(xs, &mut want);
            assert_eq!(got, want, "{}: q8_k, {len} values", k.name());
        }
        std::println!("activation quantisers checked on table {}", k.name());
    }
}

//! The block formats' packers, tiles and row tiles against their references.

use super::*;

/// The block formats the batched product packs into groups (Q5_0, IQ4_NL): every table's
/// packing equals the reference's bytes; the group dot of the packed blocks equals the
/// format's own reference dot, bit for bit (the reason they may be packed at all); and every
/// table's tile kernel over plain blocks equals `dot_q8_0_from` per vector, from a running sum.
#[cfg(feature = "block-formats")]
#[test]
fn packed_block_formats_equal_their_references() {
    use crate::quant::group8::{self, Group8, GROUP_BYTES};
    use crate::quant::{iq4_nl, q5_0};
    type Pack<const B: usize> = fn(&[[u8; B]; 8], &mut Group8);
    fn check<const B: usize>(
        name: &str,
        pack: fn(&Kernels) -> Pack<B>,
        tile: fn(&Kernels) -> Option<super::BlocksTileFn<[u8; B]>>,
        from: fn(f32, &[[u8; B]], &[BlockQ8_0]) -> f32,
    ) {
        let names: Vec<&str> = tables().iter().map(Kernels::name).collect();
        std::eprintln!("{name} packing and tiles checked on: {names:?}");
        for k in tables() {
            for seed in 0..SEEDS {
                let n = 24;
                let w = random_blocks::<B>(n, seed + 40, false);
                let a = random_blocks::<34>(n, seed + 300, true);
                let mut packed = std::vec![[0u8; GROUP_BYTES]; n / 8];
                let mut a_packed = packed.clone();
                for ((g, ag), (wc, ac)) in packed
                    .iter_mut()
                    .zip(&mut a_packed)
                    .zip(w.as_chunks::<8>().0.iter().zip(a.as_chunks::<8>().0))
                {
                    let mut want = [0u8; GROUP_BYTES];
                    pack(&Kernels::SCALAR)(wc, &mut want);
                    pack(&k)(wc, g);
                    assert_eq!(*g, want, "{k:?} {name} packing, seed {seed}");
                    group8::pack_q8_0(ac, ag);
                }
                let want = from(0.0, &w, &a);
                let got = group8::dot(&packed, &a_packed);
                assert_eq!(got.to_bits(), want.to_bits(), "{name} groups vs blocks, seed {seed}");
                let Some(tile) = tile(&k) else { continue };
                for len in [1usize, 3, 7, 8, 9, 24] {
                    let others: Vec<Vec<BlockQ8_0>> = (0..GROUP_TILE as u64)
                        .map(|t| random_blocks::<34>(n, seed + 500 + 17 * t, true))
                        .collect();
                    let acts: [&[BlockQ8_0]; GROUP_TILE] = core::array::from_fn(|t| &others[t][..]);
                    let sums: [f32; GROUP_TILE] = core::array::from_fn(|t| t as f32 * 0.37 - 1.1);
                    let got = tile(&sums, &w[..len], &acts);
                    for t in 0..GROUP_TILE {
                        let want = from(sums[t], &w[..len], acts[t]);
                        assert_eq!(
                            got[t].to_bits(),
                            want.to_bits(),
                            "{k:?} {name} tile {len} t {t}"
                        );
                    }
                }
            }
        }
    }
    check::<{ q5_0::BLOCK_BYTES }>(
        "Q5_0",
        |k| k.block_dots().pack_q5_0,
        |k| k.block_dots().q5_0_tile,
        q5_0::dot_q8_0_from,
    );
    check::<{ iq4_nl::BLOCK_BYTES }>(
        "IQ4_NL",
        |k| k.block_dots().pack_iq4_nl,
        |k| k.block_dots().iq4_nl_tile,
        iq4_nl::dot_q8_0_from,
    );
}

/// `count` rows of `n_blocks` random blocks of K-quant format `f`, their f16 scales cycling
/// through [`SCALES`] (finite, as a validated model's are).
#[cfg(feature = "block-formats")]
fn k_rows(
    f: crate::quant::format::BlockFormat,
    count: usize,
    n_blocks: usize,
    seed: u64,
) -> Vec<Vec<u8>> {
    (0..count as u64)
        .map(|r| {
            let mut w = bytes(n_blocks * f.block_bytes(), seed * 100 + r);
            for (i, block) in w.chunks_exact_mut(f.block_bytes()).enumerate() {
                for (j, at) in f.scale_offsets().iter().enumerate() {
                    let d = SCALES[(i + j + r as usize) % SCALES.len()];
                    block[*at..*at + 2].copy_from_slice(&half::f16::from_f32(d).to_le_bytes());
                }
            }
            w
        })
        .collect()
}

/// K-quant row tiles: eight rows against every vector, each result bit-identical to the
/// format's reference dot of that row and vector, on every table that has a tile (random
/// blocks with finite scales; activations with the extreme values ±127 in the first vector).
#[cfg(feature = "block-formats")]
#[test]
fn k_quant_row_tiles_equal_the_reference() {
    use super::SUPER_ROWS;
    use crate::quant::format::BlockFormat;
    use crate::quant::{q8_k, QK_K};
    for f in [BlockFormat::Q4K, BlockFormat::Q5K, BlockFormat::Q6K] {
        let with_tile: Vec<Kernels> = tables().into_iter().filter(|k| f.has_rows_tile(k)).collect();
        let names: Vec<&str> = with_tile.iter().map(Kernels::name).collect();
        std::eprintln!("{f:?} row tiles checked on: {names:?}");
        for k in with_tile {
            for n_blocks in [1usize, 2, 8, 9] {
                for seed in 0..SEEDS {
                    let rows = k_rows(f, SUPER_ROWS, n_blocks, seed);
                    for n_vectors in [1usize, 3, 33] {
                        let acts: Vec<Vec<[u8; q8_k::BLOCK_BYTES]>> = (0..n_vectors)
                            .map(|t| {
                                let mut x = sample(n_blocks * QK_K, seed + 7 * t as u64, 3.0);
                                if t == 0 {
                                    x.iter_mut().enumerate().for_each(|(i, v)| {
                                        *v = if i % 3 == 0 { -1.0 } else { 1.0 };
                                    });
                                }
                                let mut a = std::vec![[0u8; q8_k::BLOCK_BYTES]; n_blocks];
                                q8_k::quantize(&x, &mut a);
                                a
                            })
                            .collect();
                        let row_refs: [&[u8]; SUPER_ROWS] = core::array::from_fn(|r| &rows[r][..]);
                        let act_refs: Vec<&[[u8; q8_k::BLOCK_BYTES]]> =
                            acts.iter().map(Vec::as_slice).collect();
                        let mut got = std::vec![[f32::NAN; SUPER_ROWS]; n_vectors];
                        f.rows_q8_k(&k, &row_refs, &act_refs, &mut got);
                        for (t, got) in got.iter().enumerate() {
                            for (r, g) in got.iter().enumerate() {
                                let want = f.dot_q8_k(&Kernels::SCALAR, &rows[r], &acts[t]);
                                assert_eq!(
                                g.to_bits(),
                                want.to_bits(),
                                "{k:?} {f:?} x{n_blocks} seed {seed} vector {t} row {r}: {g} vs {want}"
                            );
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The tiles of the formats with a min (Q4_1, Q5_1; not packed into groups): every table's
/// tile equals `dot_q8_0_from` per vector, from running sums, for lengths around the blocks'
/// batching, and `dot_q8_0_from(0.0, …)` is `dot_q8_0`.
#[cfg(feature = "block-formats")]
#[test]
fn min_format_tiles_equal_their_references() {
    use crate::quant::{q4_1, q5_1};
    fn check<const B: usize>(
        name: &str,
        tile: fn(&Kernels) -> Option<super::super::BlocksTileFn<[u8; B]>>,
        from: fn(f32, &[[u8; B]], &[BlockQ8_0]) -> f32,
        dot: fn(&[[u8; B]], &[BlockQ8_0]) -> f32,
    ) {
        let with_tile: Vec<Kernels> = tables().into_iter().filter(|k| tile(k).is_some()).collect();
        let names: Vec<&str> = with_tile.iter().map(Kernels::name).collect();
        std::eprintln!("{name} tiles checked on: {names:?}");
        for seed in 0..SEEDS {
            // Random blocks: d and m are the first two f16 (`random_blocks` sets d; m random).
            let mut w = random_blocks::<B>(24, seed + 60, false);
            for (i, b) in w.iter_mut().enumerate() {
                let m = SCALES[(i + 3) % SCALES.len()] * if i % 3 == 0 { -1.0 } else { 1.0 };
                b[2..4].copy_from_slice(&half::f16::from_f32(m).to_le_bytes());
            }
            let others: Vec<Vec<BlockQ8_0>> = (0..GROUP_TILE as u64)
                .map(|t| random_blocks::<34>(24, seed + 700 + 13 * t, true))
                .collect();
            let acts: [&[BlockQ8_0]; GROUP_TILE] = core::array::from_fn(|t| &others[t][..]);
            assert_eq!(from(0.0, &w, acts[0]).to_bits(), dot(&w, acts[0]).to_bits(), "{name}");
            let sums: [f32; GROUP_TILE] = core::array::from_fn(|t| t as f32 * 0.41 - 1.3);
            for k in &with_tile {
                let tile = tile(k).unwrap();
                for len in [1usize, 3, 8, 9, 24] {
                    let got = tile(&sums, &w[..len], &acts);
                    for t in 0..GROUP_TILE {
                        let want = from(sums[t], &w[..len], acts[t]);
                        assert_eq!(got[t].to_bits(), want.to_bits(), "{k:?} {name} {len} t {t}");
                    }
                }
            }
        }
    }
    check::<{ q4_1::BLOCK_BYTES }>(
        "Q4_1",
        |k| k.block_dots().q4_1_tile,
        q4_1::dot_q8_0_from,
        q4_1::dot_q8_0,
    );
    check::<{ q5_1::BLOCK_BYTES }>(
        "Q5_1",
        |k| k.block_dots().q5_1_tile,
        q5_1::dot_q8_0_from,
        q5_1::dot_q8_0,
    );
}

/// Decode's K-quant rows kernel: four rows against one vector, each result bit-identical to
/// the format's reference dot, on every table that has the kernel, for block counts around
/// its eight-block groups (and a row shorter than the vector, which takes the one-row path);
/// formats it does not serve are refused with `out` untouched.
#[cfg(feature = "block-formats")]
#[test]
fn k_quant_rows_of_four_equal_the_reference() {
    use super::SUPER_ROWS4;
    use crate::quant::format::BlockFormat;
    use crate::quant::{q8_k, QK_K};
    let with_kernel: Vec<Kernels> =
        tables().into_iter().filter(|k| k.block_dots().super_rows4.is_some()).collect();
    let names: Vec<&str> = with_kernel.iter().map(Kernels::name).collect();
    std::eprintln!("K-quant rows of four checked on: {names:?}");
    for k in with_kernel {
        let Some(rows4) = k.block_dots().super_rows4 else { continue };
        let mut out = [1.5f32; SUPER_ROWS4];
        let refused = !rows4(BlockFormat::Q2K, &[&[]; SUPER_ROWS4], &[], 0, &mut out);
        assert!(refused && out == [1.5; SUPER_ROWS4], "{k:?} Q2_K is not served");
        for f in [BlockFormat::Q4K, BlockFormat::Q5K, BlockFormat::Q6K] {
            for n_blocks in [0usize, 1, 7, 8, 9, 17] {
                for seed in 0..SEEDS {
                    let rows = k_rows(f, SUPER_ROWS4, n_blocks, seed);
                    let mut x = sample(n_blocks * QK_K, seed + 7, 3.0);
                    if seed == 0 {
                        x.iter_mut().enumerate().for_each(|(i, v)| {
                            *v = if i % 3 == 0 { -1.0 } else { 1.0 };
                        });
                    }
                    let mut a = std::vec![[0u8; q8_k::BLOCK_BYTES]; n_blocks];
                    q8_k::quantize(&x, &mut a);
                    // All four rows whole, then the last one a block short.
                    for short in [false, true] {
                        let cut = |r: usize| {
                            let len = rows[r].len();
                            if short && r == 3 {
                                len.saturating_sub(f.block_bytes())
                            } else {
                                len
                            }
                        };
                        let refs: [&[u8]; SUPER_ROWS4] =
                            core::array::from_fn(|r| &rows[r][..cut(r)]);
                        let mut got = [f32::NAN; SUPER_ROWS4];
                        assert!(rows4(f, &refs, &a, 4096, &mut got), "{k:?} {f:?} served");
                        for (r, g) in got.iter().enumerate() {
                            let want = f.dot_q8_k(&Kernels::SCALAR, refs[r], &a);
                            assert_eq!(
                                g.to_bits(),
                                want.to_bits(),
                                "{k:?} {f:?} x{n_blocks} seed {seed} short {short} row {r}"
                            );
                        }
                    }
                }
            }
        }
    }
}

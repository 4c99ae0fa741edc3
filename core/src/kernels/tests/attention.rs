//! The attention kernels and the cache-row decoders on every table against the references.

use super::*;

/// The attention tile kernels on every table: scores bit-identical to one [`scalar::dot`] per
/// (head, row), accumulation bit-identical to one `axpy` per row and head, for head counts
/// and widths that are and are not multiples of the kernels' blocking, and partial tiles.
#[test]
fn attention_tile_kernels_match_the_reference_on_every_table() {
    let cases: &[(usize, usize, usize, usize)] = if cfg!(miri) {
        &[(3, 20, 6, 5), (4, 32, 16, 4)]
    } else {
        &[
            (16, 512, 64, 16),
            (16, 512, 64, 7),
            (3, 20, 6, 5),
            (4, 32, 16, 4),
            (5, 18, 4, 1),
            (2, 14, 4, 3),
        ]
    };
    for k in tables() {
        for (ci, &(heads, kv, rope, t)) in cases.iter().enumerate() {
            let width = kv + rope;
            let seed = ci as u64 * 10;
            let q = sample(heads * width, seed + 1, 1.0);
            let rows = sample(t * width, seed + 2, 2.0);
            let mut scores = std::vec![f32::NAN; heads * t];
            k.tile_scores(&q, width, &rows, &mut scores);
            for h in 0..heads {
                for r in 0..t {
                    let want = scalar::dot(
                        &q[h * width..(h + 1) * width],
                        &rows[r * width..(r + 1) * width],
                    );
                    assert_eq!(
                        scores[h * t + r].to_bits(),
                        want.to_bits(),
                        "{}: {ci} h{h} r{r}",
                        k.name()
                    );
                }
            }
            let p = sample(heads * t, seed + 3, 1.0);
            let mut lat = sample(heads * kv, seed + 4, 1.0);
            let mut want = lat.clone();
            for r in 0..t {
                for h in 0..heads {
                    let (lat_h, row) =
                        (&mut want[h * kv..(h + 1) * kv], &rows[r * width..r * width + kv]);
                    scalar::axpy(lat_h, p[h * t + r], row);
                }
            }
            k.tile_accumulate(&p, &rows, width, &mut lat, kv);
            let same = lat.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{}: accumulate case {ci}", k.name());
        }
        std::println!("attention tile kernels checked on table {}", k.name());
    }
}

/// The softmax's `exp`: within 3 ulp-ish (4e-7 relative) of `f64::exp` over `[-87, 0]`, 0..=1,
/// and every table's `softmax_weights` bit-identical to the reference, sums included.
#[test]
fn softmax_exp_is_accurate_and_identical_on_every_table() {
    let steps = if cfg!(miri) { 2_000 } else { 400_000 };
    let mut worst = 0.0f64;
    for i in 0..=steps {
        let x = -87.0 * i as f32 / steps as f32;
        let got = attn::exp_nonpositive(x);
        let want = f64::from(x).exp();
        let rel = (f64::from(got) - want).abs() / want;
        worst = worst.max(rel);
        assert!((0.0..=1.0).contains(&got), "exp({x}) = {got}");
    }
    assert!(worst < 4e-7, "worst relative error {worst:e}");
    assert_eq!(attn::exp_nonpositive(0.0), 1.0);
    assert_eq!(attn::exp_nonpositive(5.0), 1.0);
    assert!(attn::exp_nonpositive(f32::NAN) < 1e-37);
    for k in tables() {
        for n in [0usize, 1, 7, 8, 16, 33] {
            let base = sample(n, n as u64 + 5, 30.0);
            let max = base.iter().copied().fold(f32::NEG_INFINITY, f32::max).max(0.0);
            let (mut a, mut b) = (base.clone(), base.clone());
            let sa = k.softmax_weights(&mut a, max);
            let sb = attn::softmax_weights(&mut b, max);
            assert_eq!(sa.to_bits(), sb.to_bits(), "{}: sum n={n}", k.name());
            assert!(
                a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
                "{} n={n}",
                k.name()
            );
        }
    }
}

/// Every table's cache-row decoders bit-identical to the references: every non-NaN half
/// (all 63,488 finite ones, subnormals and ±0 among them, and ±Inf; a sample under Miri) at lengths with and
/// without a tail, and
/// Q8_0 blocks with random values and scales from 0 and subnormal to ±65504 (a zero value
/// stays `+0` under a negative scale) and q8-compact blocks with a short last block, into
/// outputs shorter than the blocks too.
#[test]
fn row_decoders_match_the_reference_on_every_table() {
    // Miri (about 1.6 ms per conversion) takes every 251st half and the edge cases.
    let step = if cfg!(miri) { 251 } else { 1 };
    let edges = [0x0000u16, 0x8000, 0x0001, 0x03ff, 0x0400, 0x7bff, 0xfbff, 0x7c00, 0xfc00];
    let halves: Vec<u8> = (0..=u16::MAX)
        .step_by(step)
        .chain(if cfg!(miri) { &edges[..] } else { &[] }.iter().copied())
        .filter(|h| h & 0x7c00 != 0x7c00 || h & 0x03ff == 0)
        .flat_map(u16::to_le_bytes)
        .collect();
    let blocks: Vec<BlockQ8_0> = random_blocks::<{ q8_0::BLOCK_BYTES }>(37, 11, false);
    for k in tables() {
        for n in [halves.len() / 2, 13, 8, 1, 0] {
            let (mut got, mut want) = (std::vec![f32::NAN; n], std::vec![0.0f32; n]);
            k.f16s_to_f32(&halves[..2 * n], &mut got);
            scalar::f16s_to_f32(&halves[..2 * n], &mut want);
            let same = got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{}: f16 halves, n = {n}", k.name());
        }
        for n in [37 * 32, 36 * 32 + 5, 32, 7, 0] {
            let (mut got, mut want) = (std::vec![f32::NAN; n], std::vec![0.0f32; n]);
            k.dequantize_q8_0(&blocks, &mut got);
            q8_0::dequantize(&blocks, &mut want);
            let same = got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{}: q8_0 values, n = {n}", k.name());
            let mut axpy = std::vec![0.0f32; n];
            q8_0::axpy(&mut axpy, 1.0, &blocks);
            assert!(axpy.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()));
        }
        // q8-compact rows: 9 whole blocks and a last one of 20 values (as a 596-value row).
        let mut compact: Vec<u8> = random_blocks::<66>(10, 12, false).concat();
        compact.truncate(9 * 66 + 2 + 20);
        for n in [9 * 64 + 20, 9 * 64, 100, 64, 5, 0] {
            let (mut got, mut want) = (std::vec![f32::NAN; n], std::vec![0.0f32; n]);
            k.dequantize_compact(&compact, &mut got);
            crate::quant::q8_compact::dequantize_compact(&compact, &mut want);
            let same = got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{}: q8-compact values, n = {n}", k.name());
        }
        std::println!("row decoders checked on table {}", k.name());
    }
}

/// The F16 and BF16 tiles (rows × vectors) give each pair exactly their table's `dot_f16_le`
/// / `dot_bf16_le`, on lengths around every step of the kernel's loops, with large and tiny
/// weights; mismatched lengths get `None`. Prints the tables that have the tiles.
#[test]
fn f16_tile_is_identical_to_the_one_vector_kernel() {
    use crate::kernels::{F16_TILE_ROWS, F16_TILE_VECTORS};
    let lens: &[usize] =
        if cfg!(miri) { &[0, 9] } else { &[0, 1, 7, 8, 9, 31, 32, 33, 100, 257, 1000] };
    for k in tables() {
        for bf16 in [false, true] {
            let mut ran = false;
            for &n in lens {
                let rows: Vec<Vec<u8>> = (0..F16_TILE_ROWS)
                    .map(|r| {
                        let mut w = sample(n, 40 + r as u64, 2.0);
                        if let Some(v) = w.get_mut(3) {
                            *v = if r == 0 { 60000.0 } else { 3e-7 };
                        }
                        if bf16 {
                            w.iter().flat_map(|v| half::bf16::from_f32(*v).to_le_bytes()).collect()
                        } else {
                            w.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect()
                        }
                    })
                    .collect();
                let xs: Vec<Vec<f32>> =
                    (0..F16_TILE_VECTORS).map(|v| sample(n, 70 + v as u64, 3.0)).collect();
                let row_refs: [&[u8]; F16_TILE_ROWS] = core::array::from_fn(|r| rows[r].as_slice());
                let x_refs: [&[f32]; F16_TILE_VECTORS] = core::array::from_fn(|v| xs[v].as_slice());
                let tile = |x: &[&[f32]; F16_TILE_VECTORS]| {
                    if bf16 {
                        k.dot_bf16_tile(&row_refs, x)
                    } else {
                        k.dot_f16_tile(&row_refs, x)
                    }
                };
                let Some(got) = tile(&x_refs) else { continue };
                ran = true;
                for (r, row) in row_refs.iter().enumerate() {
                    for (v, x) in x_refs.iter().enumerate() {
                        let want = if bf16 { k.dot_bf16_le(row, x) } else { k.dot_f16_le(row, x) };
                        let what =
                            std::format!("{} bf16 {bf16}: n {n}, row {r}, vector {v}", k.name());
                        assert_eq!(got[r][v].to_bits(), want.to_bits(), "{what}");
                    }
                }
                if n > 0 {
                    let short: [&[f32]; F16_TILE_VECTORS] = [&xs[0][..n - 1], x_refs[1], x_refs[2]];
                    assert!(tile(&short).is_none(), "{}: n {n}", k.name());
                }
            }
            let what = if bf16 { "bf16" } else { "f16" };
            if ran {
                std::println!("{what} tile checked on table {}", k.name());
            } else {
                std::println!("table {} has no {what} tile", k.name());
            }
        }
    }
}

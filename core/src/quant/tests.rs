//! Quantised dot products against the f64 dot of their dequantised values.

use super::*;
use super::{format, q8_k};
use std::vec::Vec;

fn sample(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| ((i as u32).wrapping_mul(2654435761) ^ seed) % 2001)
        .map(|v| v as f32 / 500.0 - 2.0)
        .collect()
}

fn dequant_q8(blocks: &[q8_0::BlockQ8_0], n: usize) -> Vec<f32> {
    let mut v = vec![0.0; n];
    q8_0::axpy(&mut v, 1.0, blocks);
    v
}

/// Writes Q4_0 blocks with the reference quantiser (`quantize_row_q4_0_ref`).
fn quantize_q4(x: &[f32]) -> Vec<q4_0::BlockQ4_0> {
    x.chunks(QK)
        .map(|xs| {
            let (mut amax, mut max) = (0.0f32, 0.0f32);
            for &v in xs {
                if v.abs() > amax {
                    amax = v.abs();
                    max = v;
                }
            }
            let d = max / -8.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            let mut b = [0u8; 18];
            b[..2].copy_from_slice(&half::f16::from_f32(d).to_le_bytes());
            for j in 0..QK / 2 {
                let q = |v: f32| ((v * id + 8.5) as i8).min(15) as u8;
                b[2 + j] = q(xs[j]) | (q(xs[j + QK / 2]) << 4);
            }
            b
        })
        .collect()
}

#[test]
fn q8_0_dot_matches_dequantised_values_exactly_in_integers() {
    for n_blocks in [1usize, 2, 7, 64] {
        let n = n_blocks * QK;
        let (w, x) = (sample(n, 1), sample(n, 2));
        let mut wq = vec![[0u8; 34]; n_blocks];
        let mut xq = vec![[0u8; 34]; n_blocks];
        q8_0::quantize(&w, &mut wq);
        q8_0::quantize(&x, &mut xq);
        let (wd, xd) = (dequant_q8(&wq, n), dequant_q8(&xq, n));
        let want: f64 = wd.iter().zip(&xd).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum();
        let got = q8_0::dot_q8_0(&wq, &xq);
        assert!(
            (f64::from(got) - want).abs() <= 1e-4 * want.abs().max(1.0),
            "{n}: {got} vs {want}"
        );
        // And close to the unquantised dot (8-bit error).
        let exact: f64 = w.iter().zip(&x).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum();
        assert!(
            (f64::from(got) - exact).abs() <= 0.02 * (n as f64).sqrt(),
            "{n}: {got} vs {exact}"
        );
    }
}

#[test]
fn q4_0_dot_matches_dequantised_values() {
    for n_blocks in [1usize, 3, 64] {
        let n = n_blocks * QK;
        let (w, x) = (sample(n, 5), sample(n, 6));
        let wq = quantize_q4(&w);
        let mut xq = vec![[0u8; 34]; n_blocks];
        q8_0::quantize(&x, &mut xq);
        let mut wd = vec![0.0; n];
        q4_0::axpy(&mut wd, 1.0, &wq);
        let xd = dequant_q8(&xq, n);
        let want: f64 = wd.iter().zip(&xd).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum();
        let got = q4_0::dot_q8_0(&wq, &xq);
        assert!(
            (f64::from(got) - want).abs() <= 1e-4 * want.abs().max(1.0),
            "{n}: {got} vs {want}"
        );
        // The element layout: low nibbles are elements 0..16, high nibbles 16..32.
        let i = 17;
        assert!((wd[i] - w[i]).abs() <= 0.25 * 2.0, "element {i}: {} vs {}", wd[i], w[i]);
    }
}

#[test]
fn zero_and_extreme_blocks() {
    let mut b = [[0u8; 34]; 1];
    q8_0::quantize(&[0.0; 32], &mut b);
    assert_eq!(q8_0::dot_q8_0(&b, &b), 0.0);
    let mut x = [0.0f32; 32];
    x[3] = 6e4;
    x[9] = -6e4;
    q8_0::quantize(&x, &mut b);
    let d = dequant_q8(&b, 32);
    assert!((d[3] - 6e4).abs() < 60.0 && (d[9] + 6e4).abs() < 60.0);
}

/// Random blocks of format `f` (random bytes; every f16 scale a finite value from tiny to
/// large, negative on odd blocks).
fn random_format_blocks(f: format::BlockFormat, n_blocks: usize, seed: u32) -> Vec<u8> {
    let mut s = seed.wrapping_mul(2654435761) | 1;
    let mut bytes: Vec<u8> = (0..n_blocks * f.block_bytes())
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 24) as u8
        })
        .collect();
    let scales = [0.0f32, 6e-8, 1e-3, 0.02, 1.0, 7.5];
    for (i, block) in bytes.chunks_exact_mut(f.block_bytes()).enumerate() {
        for (j, at) in f.scale_offsets().iter().enumerate() {
            let d = scales[(i + j + seed as usize) % scales.len()]
                * if i % 2 == 1 { -1.0 } else { 1.0 };
            block[*at..*at + 2].copy_from_slice(&half::f16::from_f32(d).to_le_bytes());
        }
    }
    bytes
}

/// Every format's integer dot product equals the f64 dot of its dequantised weights and the
/// dequantised activation blocks, to f32 rounding of the per-block terms: within 2e-6 of
/// `Σ |w a|` (the integer sums are exact; what remains is a few roundings per block).
#[test]
fn block_format_dots_equal_the_dot_of_dequantised_values() {
    let k = crate::kernels::Kernels::SCALAR;
    for &f in format::BlockFormat::ALL {
        // Miri (~1000× slower) gets one block per format.
        let cases: &[(usize, u32)] =
            if cfg!(miri) { &[(1, 1)] } else { &[(1, 1), (3, 2), (9, 3), (16, 4)] };
        for &(n_blocks, seed) in cases {
            let n = n_blocks * f.block_elems();
            let w_bytes = random_format_blocks(f, n_blocks, seed);
            let mut w = vec![0.0f32; n];
            f.dequantize(&w_bytes, &mut w);
            let x = sample(n, seed + 10);
            let (got, a): (f32, Vec<f64>) = match f.acts() {
                format::ActBlocks::Q8_0 => {
                    let mut blocks = vec![[0u8; q8_0::BLOCK_BYTES]; n / QK];
                    q8_0::quantize(&x, &mut blocks);
                    let a = dequant_q8(&blocks, n).iter().map(|v| f64::from(*v)).collect();
                    (f.dot_q8_0(&k, &w_bytes, &blocks), a)
                }
                format::ActBlocks::Q8K => {
                    let mut blocks = vec![[0u8; q8_k::BLOCK_BYTES]; n / QK_K];
                    q8_k::quantize(&x, &mut blocks);
                    let a = blocks
                        .iter()
                        .flat_map(|b| {
                            let d = f64::from(q8_k::scale(b));
                            (0..QK_K).map(move |i| d * f64::from(q8_k::value(q8_k::values(b), i)))
                        })
                        .collect();
                    (f.dot_q8_k(&k, &w_bytes, &blocks), a)
                }
            };
            let exact: f64 = w.iter().zip(&a).map(|(w, a)| f64::from(*w) * a).sum();
            let size: f64 = w.iter().zip(&a).map(|(w, a)| (f64::from(*w) * a).abs()).sum();
            let err = (f64::from(got) - exact).abs();
            assert!(
                err <= 2e-6 * size + 1e-30,
                "{f:?} x{n_blocks}: {got} vs {exact} (size {size})"
            );
        }
    }
}

/// Q8_K blocks: `d = max|x| / 127` in f32, values within half a step of `x / d`, and each
/// 16-value sum the sum of its values; a partial block is zero-padded.
#[test]
fn q8_k_quantises_with_sums() {
    let x = sample(256 + 100, 5);
    let mut blocks = vec![[0xAAu8; q8_k::BLOCK_BYTES]; 2];
    q8_k::quantize(&x, &mut blocks);
    for (b, xs) in blocks.iter().zip(x.chunks(QK_K)) {
        let amax = xs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = q8_k::scale(b);
        assert_eq!(d, amax / 127.0);
        let qs = q8_k::values(b);
        for i in 0..QK_K {
            let q = q8_k::value(qs, i) as f32;
            let want = xs.get(i).map_or(0.0, |v| v / d);
            assert!((q - want).abs() <= 0.5 + 1e-4, "{i}: {q} vs {want}");
        }
        for j in 0..q8_k::BSUMS {
            let sum: i32 = (16 * j..16 * j + 16).map(|i| q8_k::value(qs, i)).sum();
            assert_eq!(q8_k::bsum(b, j), sum);
        }
    }
}

//! Quantised dot products against the f64 dot of their dequantised values.

use super::*;
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

//! Every kernel table against the scalar reference, on random data and awkward sizes.

use super::*;
use crate::quant::q8_0;
use std::vec::Vec;

/// The tables this machine can run (scalar always; SIMD variants skipped at runtime, not
/// compiled out, when the CPU lacks them).
fn tables() -> Vec<Kernels> {
    let mut t = std::vec![Kernels::SCALAR];
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    if let Some(k) = Kernels::x86_avx2() {
        t.push(k);
    }
    t
}

fn sample(n: usize, seed: u64, scale: f32) -> Vec<f32> {
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
                let cases = [
                    (k.dot_f32_le(&w32, &x), scalar::dot_f32_le(&w32, &x)),
                    (k.dot_f16_le(&w16, &x), scalar::dot_f16_le(&w16, &x)),
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

#[test]
fn the_active_table_is_one_of_the_tables() {
    let name = active().name();
    assert!(tables().iter().any(|k| k.name() == name), "{name}");
}

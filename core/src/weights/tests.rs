//! Tests of the weight views and their products.

use super::*;
use crate::kernels::Kernels;
use crate::parallel::Parallel;
use crate::quant::{group8, q8_k};

/// Without the `block-formats` feature, a file in those formats is refused with a typed
/// error (`cargo test -p tinymla-core --no-default-features --lib`, run by the test
/// command), while Q8_0 / Q4_0 / float files still load.
#[cfg(not(feature = "block-formats"))]
#[test]
fn block_formats_are_refused_when_compiled_out() {
    for t in [GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::IQ4_XS] {
        assert!(WeightType::of(t).is_none(), "{t:?}");
    }
    let q4_k_m = include_bytes!("../../../tests/fixtures/kquant/v3_aligned.q4_k_m.gguf");
    let err = crate::Model::load(q4_k_m).unwrap_err();
    assert!(matches!(err, crate::Error::UnsupportedTensorType { .. }), "{err}");
    let q8_0 = include_bytes!("../../../tests/fixtures/v3_aligned.q8_0.gguf");
    assert!(crate::Model::load(q8_0).is_ok());
}
use crate::parallel::{tests::Backwards, Serial};
use std::vec::Vec;
use ActivationPrecision::{Int16, Int8};

/// The scalar table, the scalar table with the reference group kernel (so the packed path
/// runs on any machine) and, on x86_64, with the reference biased-activation kernels too (the
/// path the VNNI tables take; kept off the QEMU and Miri runs, where it only costs minutes:
/// `kernels::tests` checks the reference itself everywhere), and this CPU's SIMD tables (AVX2,
/// AVX-VNNI and AVX-512 VNNI where the CPU has them; NEON, with and without `dotprod`, under
/// `qemu-aarch64` in scripts/test.sh).
fn tables() -> Vec<Kernels> {
    let mut t = std::vec![Kernels::SCALAR, Kernels::SCALAR_GROUPS];
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    t.push(Kernels::SCALAR_BIASED);
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    t.extend(
        [Kernels::x86_avx2(), Kernels::x86_vnni(false), Kernels::x86_vnni(true)]
            .into_iter()
            .flatten(),
    );
    #[cfg(all(target_arch = "aarch64", not(miri)))]
    t.extend([Kernels::aarch64_neon(false), Kernels::aarch64_neon(true)].into_iter().flatten());
    t
}

/// Uniform values in −1..1 (the kernel tests' generator).
fn random(n: usize, seed: u64) -> Vec<f32> {
    crate::kernels::tests::sample(n, seed, 1.0)
}

/// `rows × cols` weights of type `ty` from random values.
fn matrix_bytes(ty: WeightType, rows: usize, cols: usize, seed: u64) -> Vec<u8> {
    let w = random(rows * cols, seed);
    match ty {
        WeightType::F32 => w.iter().flat_map(|v| v.to_le_bytes()).collect(),
        WeightType::F16 => w.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect(),
        WeightType::Q8_0 => {
            let mut b = std::vec![[0u8; q8_0::BLOCK_BYTES]; rows * cols / QK];
            q8_0::quantize(&w, &mut b);
            b.concat()
        }
        WeightType::Q4_0 => {
            // Random nibbles and scales (the format, not a quantiser, is under test).
            let raw = random(rows * cols / QK * q4_0::BLOCK_BYTES, seed + 1);
            let mut bytes: Vec<u8> = raw.iter().map(|v| (v.to_bits() >> 7) as u8).collect();
            for (i, block) in bytes.chunks_exact_mut(q4_0::BLOCK_BYTES).enumerate() {
                let d = half::f16::from_f32(0.01 + (i % 7) as f32 * 0.003);
                block[..2].copy_from_slice(&d.to_le_bytes());
            }
            bytes
        }
        WeightType::BF16 => {
            w.iter().flat_map(|v| ((v.to_bits() >> 16) as u16).to_le_bytes()).collect()
        }
        WeightType::Blocks(f) => {
            // Random bytes with finite scales (the format, not a quantiser, is under test).
            let n_blocks = rows * cols / f.block_elems();
            let raw = random(n_blocks * f.block_bytes(), seed + 1);
            let mut bytes: Vec<u8> = raw.iter().map(|v| (v.to_bits() >> 7) as u8).collect();
            for (i, block) in bytes.chunks_exact_mut(f.block_bytes()).enumerate() {
                for (j, at) in f.scale_offsets().iter().enumerate() {
                    let d = half::f16::from_f32(0.001 + ((i + j) % 7) as f32 * 0.0003);
                    block[*at..*at + 2].copy_from_slice(&d.to_le_bytes());
                }
            }
            bytes
        }
    }
}

/// The batched product equals one matrix-vector product per vector, bit for bit, for every
/// weight type, widths with and without whole packed groups, chunk boundaries and trailing
/// blocks (65 and 67 blocks), batch sizes around the 8-vector tile, and split spans; at
/// both activation precisions, Int16 with the block buffer sized for Int8 (so in smaller
/// batches, or vector by vector for one vector) and for Int16.
#[test]
fn matmul_equals_matvec_per_vector() {
    let mut types = std::vec![
        WeightType::Q8_0,
        WeightType::Q4_0,
        WeightType::F16,
        WeightType::F32,
        WeightType::BF16,
    ];
    types.extend(BlockFormat::ALL.iter().map(|&f| WeightType::Blocks(f)));
    // Miri (safe scalar code only here, ~1000× slower) gets one small Q8_0 case.
    let types = if cfg!(miri) { types.get(..1).unwrap_or(&[]) } else { &types[..] };
    for &ty in types {
        let widths: &[usize] = if cfg!(miri) { &[32] } else { &[32, 96, 256, 2080, 2144, 2304] };
        // Widths that are whole blocks of the type (256 for the K-quants); 2,304 is nine
        // super-blocks, one past a chunk.
        for &cols in widths.iter().filter(|&&c| ty.row_bytes(c).is_some()) {
            let rows = 19;
            let bytes = matrix_bytes(ty, rows, cols, cols as u64);
            let row_bytes = ty.row_bytes(cols).unwrap();
            let m8 = Matrix {
                ty,
                rows,
                cols,
                row_bytes,
                bytes: &bytes,
                acts: Int8,
                packed: super::packed::NONE,
            };
            let precisions: &[_] = if cfg!(miri) {
                &[(Int8, 1), (Int16, 2)]
            } else {
                &[(Int8, 1), (Int16, 1), (Int16, 2)]
            };
            for (n, &(acts, room)) in [1usize, 5, 8, 13, 32, 64]
                .into_iter()
                .filter(|&n| !cfg!(miri) || n == 5)
                .flat_map(|n| precisions.iter().map(move |p| (n, p)))
            {
                let m = m8.with_activations(acts);
                let stride = cols + 3;
                let xs = random(n * stride, 7 + n as u64);
                let out_stride = rows + 2;
                let mut out = std::vec![f32::NAN; n * out_stride];
                let mut tmp = std::vec![0.0f32; rows * n];
                let groups = cols.div_ceil(group8::BLOCKS * QK);
                let per_group = group8::GROUP_BYTES.max(q8_k::BLOCK_BYTES);
                let mut blocks = std::vec![0u8; room * n * groups * per_group];
                for (k, par) in tables().iter().flat_map(|k| {
                    [(k, &Serial as &dyn Parallel), (k, &Backwards(5) as &dyn Parallel)]
                }) {
                    out.fill(f32::NAN);
                    m.matmul_with(
                        k,
                        &xs,
                        stride,
                        n,
                        &mut out,
                        out_stride,
                        &mut tmp,
                        &mut blocks,
                        par,
                    );
                    for t in 0..n {
                        let mut want = std::vec![0.0f32; rows];
                        m.matvec(&xs[t * stride..t * stride + cols], &mut want, &Serial);
                        let got = &out[t * out_stride..t * out_stride + rows];
                        for (r, (g, w)) in got.iter().zip(&want).enumerate() {
                            assert_eq!(
                                g.to_bits(),
                                w.to_bits(),
                                "{k:?} {ty:?} {acts:?} x{room} cols {cols} n {n} t {t} row {r}"
                            );
                        }
                    }
                }
            }
        }
    }
}

/// Int16 activations track the exact product of the stored weights: on Q8_0 and Q4_0
/// rows (blocks of wide and narrow dynamic range in the vector), the largest error
/// relative to `Σ |w x|` is under 2e-5 and at least 100 times below Int8's. Measured:
/// Q8_0 8.6e-7 vs 2.5e-4, Q4_0 1.4e-6 vs 2.4e-4 (16 × 2,048); Q4_0 5.5e-6 vs 1.1e-3 on
/// Miri's 2 × 64 (fewer terms average less).
#[test]
fn int16_activations_track_the_exact_product() {
    let (rows, cols) = if cfg!(miri) { (2, 64) } else { (16, 2048) };
    let mut types = std::vec![WeightType::Q8_0, WeightType::Q4_0];
    if !cfg!(miri) {
        types.extend(BlockFormat::ALL.iter().map(|&f| WeightType::Blocks(f)));
    }
    for ty in types {
        let bytes = matrix_bytes(ty, rows, cols, 99);
        let row_bytes = ty.row_bytes(cols).unwrap();
        let m8 = Matrix {
            ty,
            rows,
            cols,
            row_bytes,
            bytes: &bytes,
            acts: Int8,
            packed: super::packed::NONE,
        };
        // Values spanning 1e-3..1 with a large value in every fourth block.
        let x: Vec<f32> = random(cols, 5)
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v * if (i / QK).is_multiple_of(4) { 1.0 } else { 1e-3 + 0.1 * (i % 7) as f32 }
            })
            .collect();
        let mut w = std::vec![0.0f32; cols];
        let mut worst = |acts: ActivationPrecision| {
            let mut out = std::vec![0.0f32; rows];
            m8.with_activations(acts).matvec(&x, &mut out, &Serial);
            (0..rows)
                .map(|r| {
                    m8.sub_rows(r, 1).matvec_transposed(&[1.0], &mut w);
                    let exact: f64 =
                        w.iter().zip(&x).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum();
                    let size: f64 = w.iter().zip(&x).map(|(a, b)| f64::from((a * b).abs())).sum();
                    (f64::from(out[r]) - exact).abs() / size
                })
                .fold(0.0, f64::max)
        };
        let (e8, e16) = (worst(Int8), worst(Int16));
        std::eprintln!("{ty:?}: Int8 {e8:.2e}, Int16 {e16:.2e}");
        assert!(e16 < 2e-5 && e16 * 100.0 < e8, "{ty:?}: Int16 {e16:e}, Int8 {e8:e}");
    }
}

/// Decode over rows packed at load ([`Matrix::matvec_packed`], which tables without a rows
/// kernel take for packed Q8_0 rows) equals the unpacked product bit for bit, on every table
/// with group kernels: one group and a 2-block tail, a whole chunk and one block more, a
/// chunk, one group and a 3-block tail; 19 rows (two eight-row tiles and three rows alone).
#[cfg(feature = "packed-weights")]
#[test]
fn packed_decode_equals_matvec() {
    let widths: &[usize] = if cfg!(miri) { &[320] } else { &[320, 2080, 2400] };
    let mut packed_tables = 0;
    for k in tables() {
        for &cols in widths {
            let rows = 19;
            let bytes = matrix_bytes(WeightType::Q8_0, rows, cols, cols as u64);
            let m = Matrix {
                ty: WeightType::Q8_0,
                rows,
                cols,
                row_bytes: WeightType::Q8_0.row_bytes(cols).unwrap(),
                bytes: &bytes,
                acts: Int8,
                packed: super::packed::NONE,
            };
            let mut mem = std::vec![0u8; m.packed_len(&k)];
            if mem.is_empty() {
                continue;
            }
            packed_tables += 1;
            let packed = m.pack_into(&k, &mut &mut mem[..]);
            let x = random(cols, 7);
            let (mut got, mut want) = (std::vec![0.0f32; rows], std::vec![0.0f32; rows]);
            packed.matvec_packed(&k, &x, &mut got);
            m.matvec_serial(&x, &mut want);
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "{k:?} cols {cols}");
        }
    }
    assert!(packed_tables > 0, "no table packed (the scalar-groups table always does)");
}

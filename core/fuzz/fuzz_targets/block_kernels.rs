//! Every block format's kernels on arbitrary weight bytes (the bytes a hostile GGUF holds,
//! NaN and infinite scales included) and arbitrary activations: the detected kernel table
//! (AVX2 here; NEON / DSP where the fuzzer runs there) must give the scalar reference's
//! result bit for bit, dequantisation must never panic, and a block format's integer dot of
//! finite blocks must be finite.
//!
//! Input: byte 0 picks the format, byte 1 the number of blocks (1..=4), then the weight
//! blocks' bytes, then little-endian `f32` activations (missing bytes are zeros).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tinymla_core::kernels::Kernels;
use tinymla_core::quant::format::{ActBlocks, BlockFormat};
use tinymla_core::quant::{q4_0, q8_0, q8_k};
use tinymla_core::GgmlType;

/// The formats in byte 0's order: Q8_0 and Q4_0 (their own kernel entries), then every
/// [`BlockFormat`].
const TYPES: [GgmlType; 12] = [
    GgmlType::Q8_0,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::IQ4_NL,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
    GgmlType::IQ4_XS,
];

/// Equal bits, or both NaN (NaN payloads may differ between instruction sequences).
fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

fuzz_target!(|data: &[u8]| {
    let [sel, n, rest @ ..] = data else { return };
    let ty = TYPES[usize::from(*sel) % TYPES.len()];
    let n_blocks = usize::from(*n % 4) + 1;
    let (block_elems, block_bytes) = ty.block_layout();
    let (block_elems, block_bytes) = (block_elems as usize, block_bytes as usize);
    let w_len = n_blocks * block_bytes;
    let mut w = rest.get(..w_len.min(rest.len())).unwrap_or_default().to_vec();
    w.resize(w_len, 0);
    let cols = n_blocks * block_elems;
    let mut x: Vec<f32> = rest
        .get(w_len..)
        .unwrap_or_default()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    x.resize(cols, 0.0);

    let simd = Kernels::detect();
    let scalar = Kernels::SCALAR;
    match ty {
        GgmlType::Q8_0 | GgmlType::Q4_0 => {
            let mut a = vec![[0u8; q8_0::BLOCK_BYTES]; n_blocks];
            q8_0::quantize(&x, &mut a);
            let (s, v) = if ty == GgmlType::Q8_0 {
                let w = w.as_chunks().0;
                (scalar.dot_q8_0(w, &a), simd.dot_q8_0(w, &a))
            } else {
                let w = w.as_chunks::<{ q4_0::BLOCK_BYTES }>().0;
                (scalar.dot_q4_0(w, &a), simd.dot_q4_0(w, &a))
            };
            assert!(same(s, v), "{ty:?} on {}: {v} vs scalar {s}", simd.name());
        }
        _ => {
            let f = BlockFormat::of(ty).unwrap();
            let mut deq = vec![f32::NAN; cols];
            f.dequantize(&w, &mut deq);
            let (s, v) = match f.acts() {
                ActBlocks::Q8_0 => {
                    let mut a = vec![[0u8; q8_0::BLOCK_BYTES]; n_blocks];
                    q8_0::quantize(&x, &mut a);
                    (f.dot_q8_0(&scalar, &w, &a), f.dot_q8_0(&simd, &w, &a))
                }
                ActBlocks::Q8K => {
                    let mut a = vec![[0u8; q8_k::BLOCK_BYTES]; n_blocks];
                    q8_k::quantize(&x, &mut a);
                    (f.dot_q8_k(&scalar, &w, &a), f.dot_q8_k(&simd, &w, &a))
                }
            };
            assert!(same(s, v), "{ty:?} on {}: {v} vs scalar {s}", simd.name());
            let finite = deq.iter().all(|v| v.is_finite()) && x.iter().all(|v| v.is_finite());
            // Finite weights and activations of moderate size give a finite dot. Q8_0
            // activation blocks keep their scale in f16, so their values must stay below
            // 65504 · 127 ≈ 8.3e6 (llama.cpp's Q8_0 has the same range); Q8_K's is an f32.
            let x_max = match f.acts() {
                ActBlocks::Q8_0 => 8e6,
                ActBlocks::Q8K => 1e15,
            };
            if finite && x.iter().all(|v| v.abs() < x_max) && deq.iter().all(|v| v.abs() < 1e15) {
                assert!(s.is_finite(), "{ty:?}: finite blocks gave {s}");
            }
        }
    }
});

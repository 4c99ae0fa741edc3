//! The block formats' integer dot products (K-quants, IQ4, Q4_1 / Q5_x) as matrix-vector
//! products, scalar reference vs the table this CPU gets (`Kernels::detect`).
//!
//! Weights are random rows quantized with `convert`'s quantizers (llama.cpp's); the activation
//! vector is quantized once, outside the loop (Q8_K for the 256-weight formats, Q8_0 for the
//! 32-weight ones), as a matrix-vector product does once per call. Throughput is weight bytes
//! read per product; operations per second (2 per multiply-add) are that times
//! `16 / bits per weight` (Q4_K: 4.5 bits, so 3.56 OP per byte).
//!
//! Shapes (rows × cols): `64x4096` (about 100–220 KB of weights: cache-resident, the kernels'
//! compute speed) and `2048x4096` (3.5–7 MB: around a last-level cache).
//!
//! `cargo bench -p tinymla-host --bench bench_main -- blocks` runs only this group.

use std::time::Duration;

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use tinymla_core::kernels::Kernels;
use tinymla_core::quant::format::{ActBlocks, BlockFormat};
use tinymla_core::quant::{q8_0, q8_k};
use tinymla_core::GgmlType;
use tinymla_host::convert::quantize::{encode_row, row_bytes};

const COLS: usize = 4096;

/// `n` xorshift values uniform in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("blocks");
    group.warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1));
    let tables = [Kernels::SCALAR, Kernels::detect()];
    let x = values(COLS, 7);
    let mut act_k = vec![[0u8; q8_k::BLOCK_BYTES]; COLS / 256];
    q8_k::quantize(&x, &mut act_k);
    let mut act_0 = vec![[0u8; q8_0::BLOCK_BYTES]; COLS / 32];
    q8_0::quantize(&x, &mut act_0);
    // Every ggml type that is one of the block formats.
    let formats =
        (0..64).filter_map(GgmlType::from_id).filter_map(|t| Some((t, BlockFormat::of(t)?)));
    for (ty, f) in formats {
        let rb = row_bytes(ty, COLS);
        for rows in [64usize, 2048] {
            let mut w = Vec::with_capacity(rows * rb);
            for r in 0..rows {
                encode_row(ty, &values(COLS, 100 + r as u64), &mut w).unwrap();
            }
            group.throughput(Throughput::Bytes((rows * rb) as u64));
            let shape = format!("{}/{rows}x{COLS}", ty.name());
            for k in tables {
                let mut out = vec![0.0f32; rows];
                group.bench_with_input(BenchmarkId::new(k.name(), &shape), &w, |b, w| {
                    b.iter(|| {
                        for (o, row) in out.iter_mut().zip(w.chunks_exact(rb)) {
                            *o = match f.acts() {
                                ActBlocks::Q8K => f.dot_q8_k(&k, row, &act_k),
                                ActBlocks::Q8_0 => f.dot_q8_0(&k, row, &act_0),
                            };
                        }
                        std::hint::black_box(&out);
                    });
                });
            }
        }
    }
    group.finish();
}

criterion_group!(benches, bench);

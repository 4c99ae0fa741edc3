//! The attention tile kernels (`core/src/attend.rs`) on DeepSeek-V2-Lite's shapes: 16 heads,
//! rows of 512 latent + 64 RoPE values, 16-row tiles, scalar reference vs the AVX2 table (on
//! x86_64) and the table this CPU gets (`Kernels::detect`). The operands stay in L1/L2, as one tile's do during decode.
//! Elements are operations (2 per multiply-add; one per `exp`), so criterion's `elem/s`
//! reads as OP/s.
//!
//! `cargo bench -p tinymla-host --bench bench_main -- attention_tile` runs only this group.

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use tinymla_core::kernels::Kernels;
use tinymla_core::quant::{q8_0, QK};

const HEADS: usize = 16;
const KV: usize = 512;
const WIDTH: usize = KV + 64;
const TILE: usize = 16;

fn values(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s % 2000) as f32 / 1000.0 - 1.0
        })
        .collect()
}

fn attention_tile(c: &mut Criterion) {
    let mut group = c.benchmark_group("attention_tile");
    let q = values(HEADS * WIDTH, 1);
    let rows = values(TILE * WIDTH, 2);
    let probs = values(HEADS * TILE, 3);
    let mut tables = vec![Kernels::SCALAR];
    #[cfg(target_arch = "x86_64")]
    tables.extend(Kernels::x86_avx2());
    tables.push(Kernels::detect());
    tables.dedup_by_key(|k| k.name());
    for k in tables {
        group.throughput(Throughput::Elements((2 * HEADS * TILE * WIDTH) as u64));
        let mut out = vec![0.0f32; HEADS * TILE];
        group.bench_function(BenchmarkId::new("scores", k.name()), |b| {
            b.iter(|| {
                k.tile_scores(&q, WIDTH, &rows, &mut out);
                out[0]
            })
        });
        group.throughput(Throughput::Elements((2 * HEADS * TILE * KV) as u64));
        let mut lat = vec![0.0f32; HEADS * KV];
        group.bench_function(BenchmarkId::new("accumulate", k.name()), |b| {
            b.iter(|| {
                k.tile_accumulate(&probs, &rows, WIDTH, &mut lat, KV);
                lat[0]
            })
        });
        group.throughput(Throughput::Elements((HEADS * TILE) as u64));
        let mut s = probs.clone();
        group.bench_function(BenchmarkId::new("softmax_weights", k.name()), |b| {
            b.iter(|| {
                s.copy_from_slice(&probs);
                s.chunks_exact_mut(TILE).map(|h| k.softmax_weights(h, 1.0)).sum::<f32>()
            })
        });
        // One tile's rows decoded for the kernels (f16, int8 `q8` latents, `q8-compact`).
        group.throughput(Throughput::Elements((TILE * WIDTH) as u64));
        let halves: Vec<u8> =
            rows.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect();
        let mut decoded = vec![0.0f32; TILE * WIDTH];
        group.bench_function(BenchmarkId::new("decode_f16", k.name()), |b| {
            b.iter(|| {
                k.f16s_to_f32(&halves, &mut decoded);
                decoded[0]
            })
        });
        let mut q8 = vec![[0u8; q8_0::BLOCK_BYTES]; TILE * WIDTH / QK];
        q8_0::quantize(&rows, &mut q8);
        group.bench_function(BenchmarkId::new("decode_q8_0", k.name()), |b| {
            b.iter(|| {
                k.dequantize_q8_0(&q8, &mut decoded);
                decoded[0]
            })
        });
        // 64-value blocks: an f16 scale then the values (the layout of a `q8-compact` row).
        let compact: Vec<u8> = q8
            .chunks_exact(2)
            .flat_map(|pair| pair[0][..2].iter().chain(&pair[0][2..]).chain(&pair[1][2..]))
            .copied()
            .collect();
        group.bench_function(BenchmarkId::new("decode_q8_compact", k.name()), |b| {
            b.iter(|| {
                k.dequantize_compact(&compact, &mut decoded);
                decoded[0]
            })
        });
    }
    group.finish();
}

criterion_group!(benches, attention_tile);

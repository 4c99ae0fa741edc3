//! Dot-product kernels as matrix-vector products, scalar reference vs the table this CPU gets
//! (`Kernels::detect`), per weight type, from cache-resident to memory-bound sizes.
//!
//! Throughput is reported twice per case: bytes = weight bytes streamed per product (the
//! activation vector stays in L1/L2), elements = operations (2 per multiply-add), so criterion's
//! `elem/s` reads as OP/s. Quantised cases time the integer dots only: the activation is
//! quantised to Q8_0 once, outside the loop (the model does that once per matvec too).
//!
//! Shapes (rows × cols): `l1` 8×512 (≤ 16 KB of weights), `l2` 64×1024 (≤ 256 KB),
//! `2048x2048` (16 MB f32, 8 MB f16, 4.25 MB Q8_0, 2.25 MB Q4_0: around this machine's 8 MB
//! L3), and `64MB` (4096 columns, as many rows as make 64 MB of weights: DRAM-bound), plus
//! `read_bandwidth/64MB`, a plain streaming read of 64 MB, for the memory ceiling.
//!
//! For Q8_0 and Q4_0, `act_scales` (every shape) times the one-vector kernel as `matvec` calls
//! it, with the activation scales converted to f32 once per vector, and `rows` (Q8_0, tables
//! with a rows kernel) the kernel `matvec` calls instead for a chunk of rows. At `2048x2048`,
//! `groups1` times rows packed into 8-block groups against one vector, and `groups_tile8` the
//! batched product's kernel: packed rows against 8 activation vectors per call.
//!
//! `cargo bench -p tinymla-host --bench bench_main -- kernels` runs only this group.

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use tinymla_core::kernels::{Kernels, GROUP_TILE};
use tinymla_core::quant::group8::{self, Group8};
use tinymla_core::quant::{q4_0, q8_0, QK};

#[derive(Clone, Copy, Debug)]
enum Kind {
    F32,
    F16,
    Q8_0,
    Q4_0,
}

impl Kind {
    fn row_bytes(self, cols: usize) -> usize {
        match self {
            Kind::F32 => 4 * cols,
            Kind::F16 => 2 * cols,
            Kind::Q8_0 => cols / QK * q8_0::BLOCK_BYTES,
            Kind::Q4_0 => cols / QK * q4_0::BLOCK_BYTES,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::F32 => "f32",
            Kind::F16 => "f16",
            Kind::Q8_0 => "q8_0",
            Kind::Q4_0 => "q4_0",
        }
    }
}

/// xorshift64 stream.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// `rows` rows of random weights of `kind` (valid values: finite floats, small scales).
fn weights(kind: Kind, rows: usize, cols: usize, rng: &mut Rng) -> Vec<u8> {
    let n = rows * kind.row_bytes(cols);
    let mut w = Vec::with_capacity(n);
    match kind {
        Kind::F32 => (0..rows * cols).for_each(|_| w.extend(rng.unit().to_le_bytes())),
        Kind::F16 => {
            (0..rows * cols).for_each(|_| w.extend(half::f16::from_f32(rng.unit()).to_le_bytes()))
        }
        Kind::Q8_0 | Kind::Q4_0 => {
            let block =
                if matches!(kind, Kind::Q8_0) { q8_0::BLOCK_BYTES } else { q4_0::BLOCK_BYTES };
            for _ in 0..rows * cols / QK {
                w.extend(half::f16::from_f32(0.01 * rng.unit()).to_le_bytes());
                // Q8_0 values in −127..=127, as ggml's quantiser writes them.
                w.extend((2..block).map(|_| ((rng.next() % 255) as i32 - 127) as i8 as u8));
            }
        }
    }
    debug_assert_eq!(w.len(), n);
    w
}

/// `out[r] = row_r · x` with table `k`.
fn matvec(
    k: &Kernels,
    kind: Kind,
    w: &[u8],
    row_bytes: usize,
    x: &[f32],
    xq: &[q8_0::BlockQ8_0],
    out: &mut [f32],
) {
    let rows = w.chunks_exact(row_bytes);
    match kind {
        Kind::F32 => out.iter_mut().zip(rows).for_each(|(o, r)| *o = k.dot_f32_le(r, x)),
        Kind::F16 => out.iter_mut().zip(rows).for_each(|(o, r)| *o = k.dot_f16_le(r, x)),
        Kind::Q8_0 => {
            out.iter_mut().zip(rows).for_each(|(o, r)| *o = k.dot_q8_0(r.as_chunks().0, xq))
        }
        Kind::Q4_0 => {
            out.iter_mut().zip(rows).for_each(|(o, r)| *o = k.dot_q4_0(r.as_chunks().0, xq))
        }
    }
}

/// The packed-group kernels: every row packed into groups ([`group8`]) and multiplied with one
/// packed activation vector per call (`groups1`, `dot_groups`: what a matrix-vector product
/// over pre-packed rows would run) and with [`GROUP_TILE`] per call (`groups_tile8`,
/// `dot_groups_tile`: the batched product's kernel). Throughput counts the weight bytes once
/// per vector, so the GiB/s compare with the one-vector rows. Packing is outside the timing (a
/// batched product packs a row chunk once per step).
fn packed_groups(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    tables: &[Kernels],
    kind: Kind,
    w: &[u8],
    rows: usize,
    cols: usize,
    xq: &[q8_0::BlockQ8_0],
) {
    let wg: Vec<Group8> = match kind {
        Kind::Q4_0 => w
            .as_chunks::<{ q4_0::BLOCK_BYTES }>()
            .0
            .as_chunks::<8>()
            .0
            .iter()
            .map(|c| {
                let mut g = [0u8; group8::GROUP_BYTES];
                group8::pack_q4_0(c, &mut g);
                g
            })
            .collect(),
        _ => pack_q8_0(w),
    };
    let ag = pack_q8_0(&xq.concat());
    let per_row = cols / (QK * group8::BLOCKS);
    let tile: [&[Group8]; GROUP_TILE] = [&ag; GROUP_TILE];
    let mut outs = vec![[0.0f32; GROUP_TILE]; rows];
    group.throughput(Throughput::ElementsAndBytes {
        elements: 2 * (rows * cols) as u64,
        bytes: w.len() as u64,
    });
    let mut outs1 = vec![0.0f32; rows];
    for k in tables {
        let id = BenchmarkId::new(format!("{}/{}/groups1", kind.name(), k.name()), "2048x2048");
        group.bench_function(id, |b| {
            b.iter(|| {
                for (o, row) in outs1.iter_mut().zip(wg.chunks_exact(per_row)) {
                    *o = k.dot_groups(row, &ag);
                }
                outs1[0]
            })
        });
    }
    group.throughput(Throughput::ElementsAndBytes {
        elements: 2 * (rows * cols * GROUP_TILE) as u64,
        bytes: (w.len() * GROUP_TILE) as u64,
    });
    // Decode over rows packed at load: one activation vector, eight rows per call. Bytes are
    // the weight bytes once, as for one vector.
    group.throughput(Throughput::ElementsAndBytes {
        elements: 2 * (rows * cols) as u64,
        bytes: w.len() as u64,
    });
    for k in tables {
        let id = BenchmarkId::new(
            format!("{}/{}/rows_tile{GROUP_TILE}", kind.name(), k.name()),
            "2048x2048",
        );
        group.bench_function(id, |b| {
            b.iter(|| {
                for (o, rows8) in outs.iter_mut().zip(wg.chunks_exact(per_row * GROUP_TILE)) {
                    let tile: [&[Group8]; GROUP_TILE] =
                        core::array::from_fn(|t| &rows8[t * per_row..(t + 1) * per_row]);
                    *o = k.dot_rows_tile(&ag, &tile);
                }
                outs[0][0]
            })
        });
    }
    group.throughput(Throughput::ElementsAndBytes {
        elements: 2 * (rows * cols * GROUP_TILE) as u64,
        bytes: (w.len() * GROUP_TILE) as u64,
    });
    for k in tables {
        let id = BenchmarkId::new(
            format!("{}/{}/groups_tile{GROUP_TILE}", kind.name(), k.name()),
            "2048x2048",
        );
        group.bench_function(id, |b| {
            b.iter(|| {
                for (o, row) in outs.iter_mut().zip(wg.chunks_exact(per_row)) {
                    *o = k.dot_groups_tile(row, &tile);
                }
                outs[0][0]
            })
        });
    }
    // Plain (unpacked) blocks, one row × 8 vectors per call: rows too short for groups.
    let row_bytes = w.len() / rows;
    let xs: [&[[u8; q8_0::BLOCK_BYTES]]; GROUP_TILE] = [xq; GROUP_TILE];
    for k in tables {
        let id = BenchmarkId::new(
            format!("{}/{}/blocks_tile{GROUP_TILE}", kind.name(), k.name()),
            "2048x2048",
        );
        group.bench_function(id, |b| {
            b.iter(|| {
                for (o, row) in outs.iter_mut().zip(w.chunks_exact(row_bytes)) {
                    *o = match kind {
                        Kind::Q4_0 => k.dot_q4_0_tile(&[0.0; GROUP_TILE], row.as_chunks().0, &xs),
                        _ => k.dot_q8_0_tile(&[0.0; GROUP_TILE], row.as_chunks().0, &xs),
                    };
                }
                outs[0][0]
            })
        });
    }
}

/// Q8_0 blocks (as bytes: weight rows or a quantised activation vector) packed into groups.
fn pack_q8_0(blocks: &[u8]) -> Vec<Group8> {
    blocks
        .as_chunks::<{ q8_0::BLOCK_BYTES }>()
        .0
        .as_chunks::<8>()
        .0
        .iter()
        .map(|c| {
            let mut g = [0u8; group8::GROUP_BYTES];
            group8::pack_q8_0(c, &mut g);
            g
        })
        .collect()
}

fn kernels(c: &mut Criterion) {
    // The reference and every SIMD table this CPU runs (on x86: AVX2, and the VNNI tables
    // where present), so that the tables are timed side by side on one machine.
    let mut tables = vec![Kernels::SCALAR];
    #[cfg(target_arch = "x86_64")]
    tables.extend(
        [Kernels::x86_avx2(), Kernels::x86_vnni(false), Kernels::x86_vnni(true)]
            .into_iter()
            .flatten(),
    );
    let best = Kernels::detect();
    if !tables.iter().any(|k| k.name() == best.name()) {
        tables.push(best);
    }
    let mut group = c.benchmark_group("kernels");
    group.sample_size(10);
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for kind in [Kind::F32, Kind::F16, Kind::Q8_0, Kind::Q4_0] {
        let big_rows = (64 << 20) / kind.row_bytes(4096);
        for (shape, rows, cols) in
            [("l1", 8, 512), ("l2", 64, 1024), ("2048x2048", 2048, 2048), ("64MB", big_rows, 4096)]
        {
            let row_bytes = kind.row_bytes(cols);
            let w = weights(kind, rows, cols, &mut rng);
            let x: Vec<f32> = (0..cols).map(|_| rng.unit()).collect();
            let mut xq = vec![[0u8; q8_0::BLOCK_BYTES]; cols / QK];
            q8_0::quantize(&x, &mut xq);
            let mut out = vec![0.0f32; rows];
            group.throughput(Throughput::ElementsAndBytes {
                elements: 2 * (rows * cols) as u64,
                bytes: w.len() as u64,
            });
            for k in &tables {
                let id = BenchmarkId::new(format!("{}/{}", kind.name(), k.name()), shape);
                group.bench_function(id, |b| {
                    b.iter(|| {
                        matvec(k, kind, &w, row_bytes, &x, &xq, &mut out);
                        out[0]
                    })
                });
            }
            if matches!(kind, Kind::Q8_0 | Kind::Q4_0) {
                // The activation scales converted once per vector (what matvec does).
                let mut a_scales = vec![0.0f32; xq.len()];
                q8_0::scales(&xq, &mut a_scales);
                for k in &tables {
                    let id =
                        BenchmarkId::new(format!("{}/{}/act_scales", kind.name(), k.name()), shape);
                    group.bench_function(id, |b| {
                        b.iter(|| {
                            for (o, r) in out.iter_mut().zip(w.chunks_exact(row_bytes)) {
                                *o = match kind {
                                    Kind::Q4_0 => {
                                        k.dot_q4_0_scaled(r.as_chunks().0, &xq, &a_scales)
                                    }
                                    _ => k.dot_q8_0_scaled(r.as_chunks().0, &xq, &a_scales),
                                };
                            }
                            out[0]
                        })
                    });
                }
                // Decode's rows kernel where a table has one, per 64-block chunk as `matvec`
                // calls it.
                let blocks = w.as_chunks::<{ q8_0::BLOCK_BYTES }>().0;
                let stride = row_bytes / q8_0::BLOCK_BYTES;
                let rows_kernels = tables.iter().filter_map(|k| Some((k, k.dot_q8_0_rows()?)));
                for (k, rows_fn) in rows_kernels.filter(|_| matches!(kind, Kind::Q8_0)) {
                    let id = BenchmarkId::new(format!("{}/{}/rows", kind.name(), k.name()), shape);
                    group.bench_function(id, |b| {
                        b.iter(|| {
                            out.fill(0.0);
                            for c0 in (0..stride).step_by(64) {
                                let c1 = (c0 + 64).min(stride);
                                let (a, s) = (&xq[c0..c1], &a_scales[c0..c1]);
                                rows_fn(&blocks[c0..], stride, a, s, &mut out);
                            }
                            out[0]
                        })
                    });
                }
            }
            if matches!(kind, Kind::Q8_0 | Kind::Q4_0) && shape == "2048x2048" {
                packed_groups(&mut group, &tables, kind, &w, rows, cols, &xq);
                group.throughput(Throughput::ElementsAndBytes {
                    elements: 2 * (rows * cols) as u64,
                    bytes: w.len() as u64,
                });
            }
        }
    }
    // The ceiling for the `64MB` cases: this machine's streaming read bandwidth, measured as a
    // wrapping `u64` sum over 64 MB (LLVM vectorises it; no kernel can stream faster).
    let buf: Vec<u64> = (0..(64u64 << 20) / 8).collect();
    group.throughput(Throughput::Bytes(64 << 20));
    group.bench_function(BenchmarkId::new("read_bandwidth", "64MB"), |b| {
        b.iter(|| buf.iter().fold(0u64, |s, v| s.wrapping_add(*v)))
    });
    group.finish();
}

criterion_group!(benches, kernels);

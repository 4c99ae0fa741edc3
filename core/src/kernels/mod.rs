//! Numeric kernels: the only place hot loops live.
//!
//! Each kernel has one safe function in [`scalar`] (or [`crate::quant`]), the reference
//! implementation, written so LLVM vectorises it (fixed-width chunks, several independent
//! accumulators, no early exits). Arch-specific variants (`x86.rs`: AVX2 + FMA + F16C, and `x86/vnni.rs`: AVX-512 VNNI and AVX-VNNI;
//! `aarch64.rs`: NEON, with `SDOT` where `dotprod` is present; `arm_dsp.rs`: `SMLAD` on
//! Cortex-M4/M7/M33; `arm_mve.rs`: Helium `VMLADAV` on Cortex-M55/M85) are installed in a [`Kernels`] table chosen once per process and
//! tested against the references.
//! Weight operands are raw little-endian bytes borrowed from the model file, so no alignment
//! is assumed.

pub mod attn;
mod block_dots;
mod formats;
pub mod scalar;
mod tables;
// Reached through runtime detection (`std`) or compile-time target features; a plain no_std
// x86 build without AVX2 enabled uses neither, hence the allowance.
#[cfg(all(target_arch = "x86_64", not(miri)))]
#[allow(dead_code)]
mod x86;
// Same for aarch64 targets without NEON (`aarch64-unknown-none-softfloat`).
#[cfg(all(target_arch = "aarch64", not(miri)))]
#[allow(dead_code)]
mod aarch64;
// `cfg(tinymla_arm_dsp)` comes from build.rs. The portable model of the instructions is
// compiled for the host tests too.
#[cfg(any(tinymla_arm_dsp, test))]
#[allow(dead_code)]
mod arm_dsp;
// `cfg(tinymla_arm_mve)` (Helium) also comes from build.rs, and implies `tinymla_arm_dsp`.
#[cfg(tinymla_arm_mve)]
mod arm_mve;

#[cfg(feature = "block-formats")]
pub(crate) use block_dots::super_rows_by_pair;
pub use block_dots::{BlockDots, SuperRows4Fn, SuperRowsFn, SUPER_ROWS, SUPER_ROWS4};
pub use scalar::{
    add_assign, axpy, bf16_to_f32, dot, dot_f16_le, dot_f32_le, f16_to_f32, rms_norm,
    rms_norm_in_place, scale_in_place, silu, softmax_in_place,
};

use crate::quant::group8::{self, BiasedGroups, Group8};
use crate::quant::q4_0::{self, BlockQ4_0};
use crate::quant::q8_0::{self, BlockQ8_0};
use crate::quant::q8_k::{self, BlockQ8K};

/// The dot-product kernels the model calls, chosen once per process. Every entry computes
/// the same result as the scalar reference: bit-identical for the integer Q8_0 / Q4_0 paths
/// and the f32×f32 dot, within [`TOL_DOT_REL`] for the float weight paths (different summation
/// order).
#[derive(Clone, Copy)]
pub struct Kernels {
    name: &'static str,
    dot: fn(&[f32], &[f32]) -> f32,
    dot_f32_le: fn(&[u8], &[f32]) -> f32,
    dot_f16_le: fn(&[u8], &[f32]) -> f32,
    /// `Σ w[i]·x[i]` for little-endian `bf16` weights (reference [`scalar::dot_bf16_le`]).
    dot_bf16_le: fn(&[u8], &[f32]) -> f32,
    dot_q8_0: fn(&[BlockQ8_0], &[BlockQ8_0]) -> f32,
    dot_q4_0: fn(&[BlockQ4_0], &[BlockQ8_0]) -> f32,
    /// `dot_q8_0` continuing a running sum: the trailing blocks after packed groups (the
    /// reference `q8_0::dot_q8_0_from` where the table has none of its own).
    dot_q8_0_from: Option<DotFromFn<BlockQ8_0>>,
    /// `dot_q4_0` continuing a running sum (reference `q4_0::dot_q8_0_from`).
    dot_q4_0_from: Option<DotFromFn<BlockQ4_0>>,
    /// `dot_q8_0` with the activation scales given as `f32` (one per activation block).
    dot_q8_0_scaled: Option<ScaledFn<BlockQ8_0>>,
    /// `dot_q4_0` with the activation scales given as `f32`.
    dot_q4_0_scaled: Option<ScaledFn<BlockQ4_0>>,
    /// A chunk of Q8_0 rows against one activation vector with its scales as `f32`, where
    /// the table beats one `dot_q8_0_scaled` per row (Arm DSP; x86 AVX2 and AVX-512, four rows).
    dot_q8_0_rows: Option<RowsFn>,
    /// Packs eight Q8_0 blocks into a [`Group8`] (reference [`group8::pack_q8_0`]).
    pack_q8_0: fn(&[BlockQ8_0; group8::BLOCKS], &mut Group8),
    /// Packs eight Q4_0 blocks (reference [`group8::pack_q4_0`]).
    pack_q4_0: fn(&[BlockQ4_0; group8::BLOCKS], &mut Group8),
    /// A kernel for packed groups ([`group8`]), where the table has one that beats its
    /// one-vector kernels on reused data (the batched product packs only then).
    dot_groups: Option<GroupFn>,
    /// The group kernel for [`GROUP_TILE`] activation vectors at once.
    dot_groups_tile: Option<GroupTileFn>,
    /// `dot_groups` with activation groups stored biased ([`BiasedGroups`]), where the
    /// table's kernels take them so (VNNI: the unsigned operand as it is). A batched product
    /// biases its activations once when the table has both biased kernels.
    dot_groups_biased: Option<GroupBiasedFn>,
    /// `dot_groups_tile` with biased activation groups.
    dot_groups_tile_biased: Option<GroupTileBiasedFn>,
    /// The group kernel for one activation vector against [`GROUP_TILE`] weight rows
    /// (decode over packed rows).
    dot_rows_tile: Option<GroupTileFn>,
    /// `dot_q8_0_from` for [`GROUP_TILE`] activation vectors against one row's blocks.
    dot_q8_0_tile: Option<BlocksTileFn<BlockQ8_0>>,
    /// `dot_q4_0_from` for [`GROUP_TILE`] activation vectors against one row's blocks.
    dot_q4_0_tile: Option<BlocksTileFn<BlockQ4_0>>,
    /// Every head's scores against a tile of cache rows (reference [`attn::tile_scores`]).
    tile_scores: TileScoresFn,
    /// A tile's probability-weighted rows added to every head's latent (reference
    /// [`attn::tile_accumulate`]).
    tile_accumulate: TileAccumulateFn,
    /// One head's tile of softmax weights and their sum (reference
    /// [`attn::softmax_weights`]).
    softmax_weights: fn(&mut [f32], f32) -> f32,
    /// Little-endian `f16` bytes to `f32` values (reference [`scalar::f16s_to_f32`]).
    f16s_to_f32: fn(&[u8], &mut [f32]),
    /// Q8_0 blocks to their `f32` values (reference [`q8_0::dequantize`]).
    dequantize_q8_0: fn(&[BlockQ8_0], &mut [f32]),
    /// `q8-compact` cache blocks (an f16 scale, then up to 64 `i8` values) to their `f32`
    /// values (reference `quant::q8_compact::dequantize_compact`).
    dequantize_compact: fn(&[u8], &mut [f32]),
    /// F16 rows times activation vectors, a tile at a time, each result bit-identical to
    /// this table's `dot_f16_le` (batched products over F16 weights), where the table has one.
    dot_f16_tile: Option<F16TileFn>,
    /// The same for BF16 rows (each result bit-identical to this table's `dot_bf16_le`).
    dot_bf16_tile: Option<F16TileFn>,
    /// Activations to Q8_0 blocks (reference [`q8_0::quantize`], compiled for the table's
    /// features).
    quantize_q8_0: fn(&[f32], &mut [BlockQ8_0]),
    /// Activations to Q8_K blocks (reference [`q8_k::quantize`], likewise).
    quantize_q8_k: fn(&[f32], &mut [BlockQ8K]),
    /// The integer dot products of the other block formats.
    #[cfg(feature = "block-formats")]
    block_dots: BlockDots,
}

/// Rows per F16 tile ([`Kernels::dot_f16_tile`]).
pub const F16_TILE_ROWS: usize = 2;
/// Activation vectors per F16 tile.
pub const F16_TILE_VECTORS: usize = 3;
/// An F16 tile's results, `[row][vector]`.
pub type F16Tile = [[f32; F16_TILE_VECTORS]; F16_TILE_ROWS];
type F16TileFn = fn(&[&[u8]; F16_TILE_ROWS], &[&[f32]; F16_TILE_VECTORS]) -> Option<F16Tile>;

type TileScoresFn = fn(&[f32], usize, &[f32], &mut [f32]);
type TileAccumulateFn = fn(&[f32], &[f32], usize, &mut [f32], usize);

/// Activation vectors one call of [`Kernels::dot_groups_tile`] serves.
pub const GROUP_TILE: usize = 8;

type ScaledFn<W> = fn(&[W], &[BlockQ8_0], &[f32]) -> f32;
/// `(rows, stride, a, a_scales, out)`: `out[r] += dot_q8_0_scaled(rows[r · stride ..][..
/// a.len()], a, a_scales)`, bit for bit, for every `r < out.len()` whose blocks `rows` holds.
pub type RowsFn = fn(&[BlockQ8_0], usize, &[BlockQ8_0], &[f32], &mut [f32]);
type DotFromFn<W> = fn(f32, &[W], &[BlockQ8_0]) -> f32;
type GroupFn = fn(&[Group8], &[Group8]) -> f32;
type GroupTileFn = fn(&[Group8], &[&[Group8]; GROUP_TILE]) -> [f32; GROUP_TILE];
type GroupBiasedFn = fn(&[Group8], BiasedGroups<'_>) -> f32;
type GroupTileBiasedFn = fn(&[Group8], &[BiasedGroups<'_>; GROUP_TILE]) -> [f32; GROUP_TILE];
/// A tile kernel over plain blocks: `[from(sums[t], w, a[t]); GROUP_TILE]`.
pub type BlocksTileFn<W> =
    fn(&[f32; GROUP_TILE], &[W], &[&[BlockQ8_0]; GROUP_TILE]) -> [f32; GROUP_TILE];

/// `[from(sums[0], w, a[0]), …]`: a blocks tile computed vector by vector (a table without a
/// tile kernel, or a vector shorter than the row).
pub(crate) fn tile_by_vector<W>(
    sums: &[f32; GROUP_TILE],
    w: &[W],
    a: &[&[BlockQ8_0]; GROUP_TILE],
    from: impl Fn(f32, &[W], &[BlockQ8_0]) -> f32,
) -> [f32; GROUP_TILE] {
    let mut out = *sums;
    for (o, at) in out.iter_mut().zip(a) {
        *o = from(*o, w, at);
    }
    out
}

/// Asks the CPU to bring `bytes` into its L2 cache ahead of use (x86_64: one `prefetcht1` per
/// 64-byte line; elsewhere nothing). A hint only: it changes no result and never faults.
#[inline]
pub fn prefetch_to_l2(bytes: &[u8]) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    for line in bytes.chunks(64) {
        // SAFETY: `prefetcht1` is SSE (every x86_64 has it) and only hints at an address
        // inside `line`, which is valid memory.
        #[allow(unsafe_code)]
        unsafe {
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T1 }>(
                line.as_ptr().cast::<i8>(),
            );
        }
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    let _ = bytes;
}

/// Relative tolerance between a SIMD float dot product and the scalar reference, relative to
/// `Σ |w_i x_i|` (only the summation order differs).
pub const TOL_DOT_REL: f32 = 1e-5;

impl core::fmt::Debug for Kernels {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Kernels({})", self.name)
    }
}

impl Kernels {
    /// The best kernels the compile-time target features allow (what `no_std` builds use:
    /// an MCU's ISA is fixed at build time).
    pub const fn compile_time() -> Kernels {
        COMPILE_TIME
    }

    /// The best kernels for this CPU: runtime detection with `std`, else [`Self::compile_time`].
    pub fn detect() -> Kernels {
        #[cfg(all(target_arch = "x86_64", not(miri), any(feature = "std", test)))]
        if let Some(k) = Self::x86_vnni(true).or_else(|| Self::x86_vnni(false)) {
            return k;
        }
        #[cfg(all(target_arch = "x86_64", not(miri), any(feature = "std", test)))]
        if let Some(k) = Self::x86_avx2() {
            return k;
        }
        #[cfg(all(target_arch = "aarch64", not(miri), any(feature = "std", test)))]
        if let Some(k) = Self::aarch64_neon(true).or_else(|| Self::aarch64_neon(false)) {
            return k;
        }
        Self::compile_time()
    }

    /// The table called `name` if this CPU can run it (`"scalar"` always): what
    /// [`active`] installs when the `TINYMLA_KERNELS` environment variable names a table,
    /// so that the tables can be timed against each other on one machine.
    #[cfg(feature = "std")]
    pub fn by_name(name: &str) -> Option<Kernels> {
        let mut runnable = std::vec![Some(Self::SCALAR)];
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        runnable.extend([Self::x86_avx2(), Self::x86_vnni(false), Self::x86_vnni(true)]);
        #[cfg(all(target_arch = "aarch64", not(miri)))]
        runnable.extend([Self::aarch64_neon(false), Self::aarch64_neon(true)]);
        runnable.into_iter().flatten().find(|k| k.name == name)
    }

    /// The table's name (`"scalar"`, `"avx2+fma+f16c"`, `"avx2+avx-vnni"`, `"avx512vnni"`,
    /// `"neon"`, `"neon+dotprod"`, `"arm-dsp"`, `"arm-mve"`).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The integer dot products of the block formats beyond Q8_0 / Q4_0.
    #[cfg(feature = "block-formats")]
    #[inline]
    pub fn block_dots(&self) -> &BlockDots {
        &self.block_dots
    }

    /// `Σ a[i]·b[i]`.
    #[inline]
    pub fn dot(&self, a: &[f32], b: &[f32]) -> f32 {
        (self.dot)(a, b)
    }

    /// `out[h][r] = q[h] · rows[r]`: `q` `[heads][width]`, `rows` `[t][width]`, `out`
    /// `[heads][t]`; each score is exactly [`scalar::dot`]'s.
    #[inline]
    pub fn tile_scores(&self, q: &[f32], width: usize, rows: &[f32], out: &mut [f32]) {
        (self.tile_scores)(q, width, rows, out);
    }

    /// `lat[h][j] += Σ_r p[h][r] · rows[r][j]` for `j < kv`: `p` `[heads][t]`, `rows`
    /// `[t][width]`, `lat` `[heads][kv]`; rows added in order, as one `axpy` per row and head.
    #[inline]
    pub fn tile_accumulate(
        &self,
        p: &[f32],
        rows: &[f32],
        width: usize,
        lat: &mut [f32],
        kv: usize,
    ) {
        (self.tile_accumulate)(p, rows, width, lat, kv);
    }

    /// `s[i] = exp(s[i] - max)` (for `s[i] <= max`), returning their sum added in order;
    /// exactly [`attn::softmax_weights`].
    #[inline]
    pub fn softmax_weights(&self, s: &mut [f32], max: f32) -> f32 {
        (self.softmax_weights)(s, max)
    }

    /// `out[i] = f16(bytes[2i..2i + 2])` as `f32` (exact) for the values both hold; exactly
    /// [`scalar::f16s_to_f32`] for every non-NaN half.
    #[inline]
    pub fn f16s_to_f32(&self, bytes: &[u8], out: &mut [f32]) {
        (self.f16s_to_f32)(bytes, out);
    }

    /// The values of Q8_0 `blocks` into `out` (32 per block, for the values `out` holds);
    /// exactly [`q8_0::dequantize`].
    #[inline]
    pub fn dequantize_q8_0(&self, blocks: &[BlockQ8_0], out: &mut [f32]) {
        (self.dequantize_q8_0)(blocks, out);
    }

    /// The values of `q8-compact` cache blocks (`bytes`: 2-byte f16 scale, then 64 `i8`
    /// values, a last block shorter) into `out`, `d · q` each, for the values `out` holds;
    /// exactly the reference in `cache::row`.
    #[inline]
    pub fn dequantize_compact(&self, bytes: &[u8], out: &mut [f32]) {
        (self.dequantize_compact)(bytes, out);
    }

    /// `[dot_f16_le(rows[r], xs[v])]` for a tile of rows and vectors, bit-identical to
    /// [`Kernels::dot_f16_le`] of this table; `None` where the table has no tile kernel or the
    /// lengths differ (every row `2 n` bytes, every vector `n` values).
    pub fn dot_f16_tile(
        &self,
        rows: &[&[u8]; F16_TILE_ROWS],
        xs: &[&[f32]; F16_TILE_VECTORS],
    ) -> Option<F16Tile> {
        self.dot_f16_tile.and_then(|f| f(rows, xs))
    }

    /// [`Kernels::dot_f16_tile`] for BF16 rows, bit-identical to [`Kernels::dot_bf16_le`].
    pub fn dot_bf16_tile(
        &self,
        rows: &[&[u8]; F16_TILE_ROWS],
        xs: &[&[f32]; F16_TILE_VECTORS],
    ) -> Option<F16Tile> {
        self.dot_bf16_tile.and_then(|f| f(rows, xs))
    }

    /// [`q8_0::quantize`]: the same blocks, byte for byte, on every table (a SIMD table runs
    /// the reference's own code compiled for its features).
    pub fn quantize_q8_0(&self, x: &[f32], out: &mut [BlockQ8_0]) {
        (self.quantize_q8_0)(x, out);
    }

    /// [`q8_k::quantize`], byte for byte (as [`Kernels::quantize_q8_0`]).
    pub fn quantize_q8_k(&self, x: &[f32], out: &mut [BlockQ8K]) {
        (self.quantize_q8_k)(x, out);
    }

    /// `Σ w[i]·x[i]`, `w` little-endian `f32` bytes.
    #[inline]
    pub fn dot_f32_le(&self, w: &[u8], x: &[f32]) -> f32 {
        (self.dot_f32_le)(w, x)
    }

    /// `Σ w[i]·x[i]`, `w` little-endian `f16` bytes.
    #[inline]
    pub fn dot_f16_le(&self, w: &[u8], x: &[f32]) -> f32 {
        (self.dot_f16_le)(w, x)
    }

    /// `Σ w[i]·x[i]`, `w` little-endian `bf16` bytes.
    #[inline]
    pub fn dot_bf16_le(&self, w: &[u8], x: &[f32]) -> f32 {
        (self.dot_bf16_le)(w, x)
    }

    /// Q8_0 weight blocks × Q8_0 activation blocks.
    #[inline]
    pub fn dot_q8_0(&self, w: &[BlockQ8_0], a: &[BlockQ8_0]) -> f32 {
        (self.dot_q8_0)(w, a)
    }

    /// Q4_0 weight blocks × Q8_0 activation blocks.
    #[inline]
    pub fn dot_q4_0(&self, w: &[BlockQ4_0], a: &[BlockQ8_0]) -> f32 {
        (self.dot_q4_0)(w, a)
    }

    /// `sum` plus the terms of `dot_q8_0(w, a)`, added to it block by block in order
    /// (bit-identical to the reference `quant::q8_0::dot_q8_0_from`).
    #[inline]
    pub fn dot_q8_0_from(&self, sum: f32, w: &[BlockQ8_0], a: &[BlockQ8_0]) -> f32 {
        match self.dot_q8_0_from {
            Some(f) => f(sum, w, a),
            None => q8_0::dot_q8_0_from(sum, w, a),
        }
    }

    /// `sum` plus the terms of `dot_q4_0(w, a)` in order (reference `quant::q4_0::dot_q8_0_from`).
    #[inline]
    pub fn dot_q4_0_from(&self, sum: f32, w: &[BlockQ4_0], a: &[BlockQ8_0]) -> f32 {
        match self.dot_q4_0_from {
            Some(f) => f(sum, w, a),
            None => q4_0::dot_q8_0_from(sum, w, a),
        }
    }

    /// [`Kernels::dot_q8_0`] given also the activation blocks' scales as `f32`
    /// (`a_scales[i] = f16 scale of a[i]`, see [`q8_0::scales`]), which a matrix-vector
    /// product converts once for all its rows. Bit-identical to `dot_q8_0(w, a)`.
    #[inline]
    pub fn dot_q8_0_scaled(&self, w: &[BlockQ8_0], a: &[BlockQ8_0], a_scales: &[f32]) -> f32 {
        match self.dot_q8_0_scaled {
            Some(f) => f(w, a, a_scales),
            None => self.dot_q8_0(w, a),
        }
    }

    /// The table's Q8_0 rows kernel ([`RowsFn`]: each row's sum bit-identical to
    /// [`Kernels::dot_q8_0_scaled`] of its row), where it has one.
    #[inline]
    pub fn dot_q8_0_rows(&self) -> Option<RowsFn> {
        self.dot_q8_0_rows
    }

    /// [`Kernels::dot_q4_0`] given also the activation scales (see
    /// [`Kernels::dot_q8_0_scaled`]). Bit-identical to `dot_q4_0(w, a)`.
    #[inline]
    pub fn dot_q4_0_scaled(&self, w: &[BlockQ4_0], a: &[BlockQ8_0], a_scales: &[f32]) -> f32 {
        match self.dot_q4_0_scaled {
            Some(f) => f(w, a, a_scales),
            None => self.dot_q4_0(w, a),
        }
    }

    /// Packs eight Q8_0 blocks into `out`, byte for byte as [`group8::pack_q8_0`] (finite
    /// scales).
    #[inline]
    pub fn pack_q8_0(&self, blocks: &[BlockQ8_0; group8::BLOCKS], out: &mut Group8) {
        (self.pack_q8_0)(blocks, out);
    }

    /// Packs eight Q4_0 blocks into `out`, byte for byte as [`group8::pack_q4_0`].
    #[inline]
    pub fn pack_q4_0(&self, blocks: &[BlockQ4_0; group8::BLOCKS], out: &mut Group8) {
        (self.pack_q4_0)(blocks, out);
    }

    /// `[dot_groups(w, a[0]), …, dot_groups(w, a[GROUP_TILE - 1])]`, bit-identical to those
    /// calls, in one pass over `w` where the table has a tile kernel.
    #[inline]
    pub fn dot_groups_tile(&self, w: &[Group8], a: &[&[Group8]; GROUP_TILE]) -> [f32; GROUP_TILE] {
        match self.dot_groups_tile {
            Some(f) => f(w, a),
            None => a.map(|at| self.dot_groups(w, at)),
        }
    }

    /// `[dot_groups(rows[0], x), …, dot_groups(rows[GROUP_TILE - 1], x)]` for one activation
    /// vector `x` (values in −127..=127, as Q8_0 quantisation writes them) and weight rows
    /// with any bytes, bit-identical to those calls, in one pass over `x` where the table has
    /// a tile kernel (decode over packed rows).
    #[inline]
    pub fn dot_rows_tile(&self, x: &[Group8], rows: &[&[Group8]; GROUP_TILE]) -> [f32; GROUP_TILE] {
        match self.dot_rows_tile {
            Some(f) => f(x, rows),
            None => rows.map(|r| self.dot_groups(r, x)),
        }
    }

    /// `[dot_q8_0_from(sums[0], w, a[0]), …]` for [`GROUP_TILE`] activation vectors against
    /// one row's blocks, bit-identical to those calls, reading `w` once where the table has a
    /// tile kernel.
    #[inline]
    pub fn dot_q8_0_tile(
        &self,
        sums: &[f32; GROUP_TILE],
        w: &[BlockQ8_0],
        a: &[&[BlockQ8_0]; GROUP_TILE],
    ) -> [f32; GROUP_TILE] {
        match self.dot_q8_0_tile {
            Some(f) => f(sums, w, a),
            None => tile_by_vector(sums, w, a, |s, w, a| self.dot_q8_0_from(s, w, a)),
        }
    }

    /// [`Kernels::dot_q8_0_tile`] for Q4_0 weights (`dot_q4_0_from` per vector).
    #[inline]
    pub fn dot_q4_0_tile(
        &self,
        sums: &[f32; GROUP_TILE],
        w: &[BlockQ4_0],
        a: &[&[BlockQ8_0]; GROUP_TILE],
    ) -> [f32; GROUP_TILE] {
        match self.dot_q4_0_tile {
            Some(f) => f(sums, w, a),
            None => tile_by_vector(sums, w, a, |s, w, a| self.dot_q4_0_from(s, w, a)),
        }
    }

    /// True when this table has a tile kernel for plain Q8_0 / Q4_0 blocks
    /// ([`Kernels::dot_q8_0_tile`]); without one, a batched product runs vector by vector.
    pub fn has_blocks_tile(&self) -> bool {
        self.dot_q8_0_tile.is_some()
    }

    /// True when this table has the kernels that take the activation scales as `f32`
    /// ([`Kernels::dot_q8_0_scaled`]); without them, converting the scales first only costs.
    pub fn has_scaled_dots(&self) -> bool {
        self.dot_q8_0_scaled.is_some() && self.dot_q4_0_scaled.is_some()
    }

    /// True when this table has a packed-group kernel: a batched product then packs its
    /// blocks into [`Group8`]s.
    pub fn has_group_kernel(&self) -> bool {
        self.dot_groups.is_some()
    }

    /// True when this table multiplies biased activation groups ([`BiasedGroups`]): a
    /// batched product then biases its packed activations once.
    pub fn takes_biased_groups(&self) -> bool {
        self.dot_groups_biased.is_some() && self.dot_groups_tile_biased.is_some()
    }

    /// [`Kernels::dot_groups`] with biased activation groups (the reference
    /// [`group8::dot_biased`] where the table has no kernel of its own): the same bits as
    /// `dot_groups` of the groups before biasing.
    #[inline]
    pub fn dot_groups_biased(&self, w: &[Group8], a: BiasedGroups<'_>) -> f32 {
        match self.dot_groups_biased {
            Some(f) => f(w, a),
            None => group8::dot_biased(w, a),
        }
    }

    /// [`Kernels::dot_groups_tile`] with biased activation groups.
    #[inline]
    pub fn dot_groups_tile_biased(
        &self,
        w: &[Group8],
        a: &[BiasedGroups<'_>; GROUP_TILE],
    ) -> [f32; GROUP_TILE] {
        match self.dot_groups_tile_biased {
            Some(f) => f(w, a),
            None => a.map(|at| self.dot_groups_biased(w, at)),
        }
    }

    /// Packed weight groups × packed activation groups (the reference [`group8::dot`] where
    /// the table has no kernel of its own). Bit-identical to the one-vector integer dots of the
    /// blocks packed.
    #[inline]
    pub fn dot_groups(&self, w: &[Group8], a: &[Group8]) -> f32 {
        match self.dot_groups {
            Some(f) => f(w, a),
            None => group8::dot(w, a),
        }
    }
}

#[cfg(all(
    target_arch = "x86_64",
    not(miri),
    target_feature = "avx2",
    target_feature = "fma",
    target_feature = "f16c"
))]
const COMPILE_TIME: Kernels = Kernels::AVX2;
#[cfg(all(
    target_arch = "aarch64",
    not(miri),
    target_feature = "neon",
    target_feature = "dotprod"
))]
const COMPILE_TIME: Kernels = Kernels::NEON_DOTPROD;
#[cfg(all(
    target_arch = "aarch64",
    not(miri),
    target_feature = "neon",
    not(target_feature = "dotprod")
))]
const COMPILE_TIME: Kernels = Kernels::NEON;
#[cfg(all(tinymla_arm_dsp, not(tinymla_arm_mve)))]
const COMPILE_TIME: Kernels = Kernels::ARM_DSP;
#[cfg(tinymla_arm_mve)]
const COMPILE_TIME: Kernels = Kernels::ARM_MVE;
#[cfg(not(any(
    all(
        target_arch = "x86_64",
        not(miri),
        target_feature = "avx2",
        target_feature = "fma",
        target_feature = "f16c"
    ),
    all(target_arch = "aarch64", not(miri), target_feature = "neon"),
    tinymla_arm_dsp
)))]
const COMPILE_TIME: Kernels = Kernels::SCALAR;

/// The environment variable that picks a kernel table by name ([`Kernels::by_name`]) instead
/// of the detected best; a name this CPU cannot run is ignored here (the CLI refuses it).
#[cfg(feature = "std")]
pub const KERNELS_ENV: &str = "TINYMLA_KERNELS";

/// The kernels in force: detected once on first use with `std` (or the table
/// the `TINYMLA_KERNELS` environment variable names), fixed at compile time without.
pub fn active() -> &'static Kernels {
    #[cfg(feature = "std")]
    {
        static ACTIVE: std::sync::OnceLock<Kernels> = std::sync::OnceLock::new();
        ACTIVE.get_or_init(|| {
            let named = std::env::var(KERNELS_ENV).ok();
            named.and_then(|n| Kernels::by_name(&n)).unwrap_or_else(Kernels::detect)
        })
    }
    #[cfg(not(feature = "std"))]
    {
        static ACTIVE: Kernels = Kernels::compile_time();
        &ACTIVE
    }
}

#[cfg(test)]
pub(crate) mod tests;

//! Safe entry points, installed in [`crate::kernels::Kernels`] only once the features are known.

use super::attn256::*;
use super::floats::*;
use super::groups::*;
use super::*;
use crate::quant::iq4_nl::BlockIq4Nl;
use crate::quant::iq4_xs::BlockIq4Xs;
use crate::quant::q2_k::BlockQ2K;
use crate::quant::q3_k::BlockQ3K;
use crate::quant::q4_1::BlockQ4_1;
use crate::quant::q4_k::BlockQ4K;
use crate::quant::q5_0::BlockQ5_0;
use crate::quant::q5_1::BlockQ5_1;
use crate::quant::q5_k::BlockQ5K;
use crate::quant::q6_k::BlockQ6K;
use crate::quant::q8_k::BlockQ8K;

pub(in crate::kernels) fn softmax_weights(s: &mut [f32], max: f32) -> f32 {
    // SAFETY: only reachable through a `Kernels` table built after detecting (or compiling
    // with) avx2; see `Kernels::x86_avx2`.
    unsafe { softmax_weights_avx2(s, max) }
}

pub(in crate::kernels) fn tile_scores(q: &[f32], width: usize, rows: &[f32], out: &mut [f32]) {
    // SAFETY: only reachable through a `Kernels` table built after detecting (or compiling
    // with) avx2 and fma; see `Kernels::x86_avx2`.
    unsafe { tile_scores_avx2(q, width, rows, out) }
}

pub(in crate::kernels) fn f16s_to_f32(bytes: &[u8], out: &mut [f32]) {
    // SAFETY: as above (avx2 implies avx; f16c).
    unsafe { f16s_to_f32_f16c(bytes, out) }
}

pub(in crate::kernels) fn dequantize_q8_0(blocks: &[BlockQ8_0], out: &mut [f32]) {
    // SAFETY: as above (avx2, f16c).
    unsafe { dequantize_q8_0_avx2(blocks, out) }
}

pub(in crate::kernels) fn quantize_q8_0(x: &[f32], out: &mut [BlockQ8_0]) {
    // SAFETY: as above (avx2, fma, f16c).
    unsafe { quantize_q8_0_avx2(x, out) }
}

pub(in crate::kernels) fn quantize_q8_k(x: &[f32], out: &mut [crate::quant::q8_k::BlockQ8K]) {
    // SAFETY: as above (avx2, fma, f16c).
    unsafe { quantize_q8_k_avx2(x, out) }
}

pub(in crate::kernels) fn dequantize_compact(bytes: &[u8], out: &mut [f32]) {
    // SAFETY: as above (avx2, f16c).
    unsafe { dequantize_compact_avx2(bytes, out) }
}

pub(in crate::kernels) fn tile_accumulate(
    p: &[f32],
    rows: &[f32],
    width: usize,
    lat: &mut [f32],
    kv: usize,
) {
    // SAFETY: as above (avx2).
    unsafe { tile_accumulate_avx2(p, rows, width, lat, kv) }
}

pub(in crate::kernels) fn dot_f32_le(w: &[u8], x: &[f32]) -> f32 {
    // SAFETY: only reachable through a `Kernels` table built after detecting (or compiling
    // with) avx2 and fma; see `Kernels::x86_avx2`.
    unsafe { dot_f32_le_avx2(w, x) }
}

pub(in crate::kernels) fn dot_f16_le(w: &[u8], x: &[f32]) -> f32 {
    // SAFETY: as above, with f16c also required by `Kernels::x86_avx2`.
    unsafe { dot_f16_le_avx2(w, x) }
}

pub(in crate::kernels) fn dot_bf16_le(w: &[u8], x: &[f32]) -> f32 {
    // SAFETY: as above (avx2, fma).
    unsafe { dot_bf16_le_avx2(w, x) }
}

pub(in crate::kernels) fn dot_q8_0(w: &[BlockQ8_0], a: &[BlockQ8_0]) -> f32 {
    // SAFETY: as above (avx2, f16c).
    unsafe { dot_q8_0_avx2(0.0, w, a, None) }
}

pub(in crate::kernels) fn dot_q8_0_from(sum: f32, w: &[BlockQ8_0], a: &[BlockQ8_0]) -> f32 {
    // SAFETY: as above (avx2, f16c).
    unsafe { dot_q8_0_avx2(sum, w, a, None) }
}

pub(in crate::kernels) fn dot_q4_0(w: &[BlockQ4_0], a: &[BlockQ8_0]) -> f32 {
    // SAFETY: as above (avx2, f16c).
    unsafe { dot_q4_0_avx2(0.0, w, a, None) }
}

pub(in crate::kernels) fn dot_q8_0_tile(
    sums: &[f32; GROUP_TILE],
    w: &[BlockQ8_0],
    a: &[&[BlockQ8_0]; GROUP_TILE],
) -> [f32; GROUP_TILE] {
    if a.iter().any(|at| at.len() < w.len()) {
        return crate::kernels::tile_by_vector(sums, w, a, dot_q8_0_from);
    }
    // SAFETY: as above (avx2, f16c); every vector covers `w`, checked just above.
    unsafe { dot_q8_0_tile_avx2(*sums, w, a) }
}

pub(in crate::kernels) fn dot_q4_0_tile(
    sums: &[f32; GROUP_TILE],
    w: &[BlockQ4_0],
    a: &[&[BlockQ8_0]; GROUP_TILE],
) -> [f32; GROUP_TILE] {
    if a.iter().any(|at| at.len() < w.len()) {
        return crate::kernels::tile_by_vector(sums, w, a, dot_q4_0_from);
    }
    // SAFETY: as above (avx2, f16c); every vector covers `w`, checked just above.
    unsafe { dot_q4_0_tile_avx2(*sums, w, a) }
}

pub(in crate::kernels) fn dot_q4_0_from(sum: f32, w: &[BlockQ4_0], a: &[BlockQ8_0]) -> f32 {
    // SAFETY: as above (avx2, f16c).
    unsafe { dot_q4_0_avx2(sum, w, a, None) }
}

pub(in crate::kernels) fn dot_groups(w: &[Group8], a: &[Group8]) -> f32 {
    // SAFETY: as above (avx2).
    unsafe { dot_groups_avx2(w, a) }
}

pub(in crate::kernels) fn dot_groups_tile(
    w: &[Group8],
    a: &[&[Group8]; GROUP_TILE],
) -> [f32; GROUP_TILE] {
    if a.iter().any(|at| at.len() < w.len()) {
        return a.map(|at| dot_groups(w, at));
    }
    // SAFETY: as above (avx2); every vector covers `w`, checked just above.
    unsafe { dot_groups_tile_avx2::<false>(w, a) }
}

pub(in crate::kernels) fn dot_rows_tile(
    x: &[Group8],
    rows: &[&[Group8]; GROUP_TILE],
) -> [f32; GROUP_TILE] {
    if rows.iter().any(|r| r.len() < x.len()) {
        return rows.map(|r| dot_groups(r, x));
    }
    // SAFETY: as above (avx2); every row covers `x`, checked just above.
    unsafe { dot_groups_tile_avx2::<true>(x, rows) }
}

pub(in crate::kernels) fn pack_q8_0(blocks: &[BlockQ8_0; 8], out: &mut Group8) {
    // SAFETY: as above (avx2, f16c).
    unsafe { pack_q8_0_avx2(blocks, out) }
}

pub(in crate::kernels) fn pack_q4_0(blocks: &[BlockQ4_0; 8], out: &mut Group8) {
    // SAFETY: as above (avx2, f16c).
    unsafe { pack_q4_0_avx2(blocks, out) }
}

pub(in crate::kernels) fn dot_q8_0_scaled(w: &[BlockQ8_0], a: &[BlockQ8_0], s: &[f32]) -> f32 {
    // SAFETY: as above (avx2, f16c). Through the target-feature function, so that
    // `dot_blocks` and its helpers inline into code compiled for AVX2.
    unsafe { dot_q8_0_avx2(0.0, w, a, Some(s)) }
}

pub(in crate::kernels) fn dot_q4_0_scaled(w: &[BlockQ4_0], a: &[BlockQ8_0], s: &[f32]) -> f32 {
    // SAFETY: as above (avx2, f16c).
    unsafe { dot_q4_0_avx2(0.0, w, a, Some(s)) }
}

pub(in crate::kernels) fn dot(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: as above (avx2).
    unsafe { dot_avx2(a, b) }
}

pub(in crate::kernels) fn dot_q4_k(w: &[BlockQ4K], a: &[BlockQ8K]) -> f32 {
    // SAFETY: as above (avx2, f16c).
    unsafe { super::blocks::dot_q4_k_avx2(w, a) }
}

pub(in crate::kernels) fn dot_q5_k(w: &[BlockQ5K], a: &[BlockQ8K]) -> f32 {
    // SAFETY: as above (avx2, f16c).
    unsafe { super::blocks::dot_q5_k_avx2(w, a) }
}

pub(in crate::kernels) fn dot_q6_k(w: &[BlockQ6K], a: &[BlockQ8K]) -> f32 {
    // SAFETY: as above (avx2, f16c).
    unsafe { super::blocks::dot_q6_k_avx2(w, a) }
}

pub(in crate::kernels) fn dot_iq4_xs(w: &[BlockIq4Xs], a: &[BlockQ8K]) -> f32 {
    // SAFETY: as above (avx2, f16c).
    unsafe { super::blocks::dot_iq4_xs_avx2(w, a) }
}

pub(in crate::kernels) fn dot_q4_1(w: &[BlockQ4_1], a: &[BlockQ8_0]) -> f32 {
    // SAFETY: as above (avx2).
    unsafe { super::blocks::dot_q4_1_avx2(w, a) }
}

pub(in crate::kernels) fn dot_q5_0(w: &[BlockQ5_0], a: &[BlockQ8_0]) -> f32 {
    // SAFETY: as above (avx2, f16c).
    unsafe { super::blocks::dot_q5_0_avx2(w, a) }
}

pub(in crate::kernels) fn dot_q5_1(w: &[BlockQ5_1], a: &[BlockQ8_0]) -> f32 {
    // SAFETY: as above (avx2).
    unsafe { super::blocks::dot_q5_1_avx2(w, a) }
}

pub(in crate::kernels) fn dot_iq4_nl(w: &[BlockIq4Nl], a: &[BlockQ8_0]) -> f32 {
    // SAFETY: as above (avx2, f16c).
    unsafe { super::blocks::dot_iq4_nl_avx2(w, a) }
}

pub(in crate::kernels) fn pack_q5_0(blocks: &[BlockQ5_0; 8], out: &mut Group8) {
    // SAFETY: as above (avx2, f16c).
    unsafe { super::blocks::pack_q5_0_avx2(blocks, out) }
}

pub(in crate::kernels) fn pack_iq4_nl(blocks: &[BlockIq4Nl; 8], out: &mut Group8) {
    // SAFETY: as above (avx2, f16c).
    unsafe { super::blocks::pack_iq4_nl_avx2(blocks, out) }
}

pub(in crate::kernels) fn dot_q5_0_tile(
    sums: &[f32; GROUP_TILE],
    w: &[BlockQ5_0],
    a: &[&[BlockQ8_0]; GROUP_TILE],
) -> [f32; GROUP_TILE] {
    // SAFETY: only reachable through a table built after detecting avx2 and f16c.
    unsafe {
        checked_tile(
            sums,
            w,
            a,
            crate::quant::q5_0::dot_q8_0_from,
            super::blocks::dot_q5_0_tile_avx2,
        )
    }
}

pub(in crate::kernels) fn dot_iq4_nl_tile(
    sums: &[f32; GROUP_TILE],
    w: &[BlockIq4Nl],
    a: &[&[BlockQ8_0]; GROUP_TILE],
) -> [f32; GROUP_TILE] {
    // SAFETY: only reachable through a table built after detecting avx2 and f16c.
    unsafe {
        checked_tile(
            sums,
            w,
            a,
            crate::quant::iq4_nl::dot_q8_0_from,
            super::blocks::dot_iq4_nl_tile_avx2,
        )
    }
}

pub(in crate::kernels) fn dot_q2_k(w: &[BlockQ2K], a: &[BlockQ8K]) -> f32 {
    // SAFETY: as above (avx2, f16c).
    unsafe { super::k_low::dot_q2_k_avx2(w, a) }
}

pub(in crate::kernels) fn dot_q3_k(w: &[BlockQ3K], a: &[BlockQ8K]) -> f32 {
    // SAFETY: as above (avx2, f16c).
    unsafe { super::k_low::dot_q3_k_avx2(w, a) }
}

pub(in crate::kernels) fn dot_q4_1_tile(
    sums: &[f32; GROUP_TILE],
    w: &[BlockQ4_1],
    a: &[&[BlockQ8_0]; GROUP_TILE],
) -> [f32; GROUP_TILE] {
    // SAFETY: only reachable through a table built after detecting avx2 and f16c.
    unsafe {
        checked_tile(
            sums,
            w,
            a,
            crate::quant::q4_1::dot_q8_0_from,
            super::min_tile::dot_q4_1_tile_avx2,
        )
    }
}

pub(in crate::kernels) fn dot_q5_1_tile(
    sums: &[f32; GROUP_TILE],
    w: &[BlockQ5_1],
    a: &[&[BlockQ8_0]; GROUP_TILE],
) -> [f32; GROUP_TILE] {
    // SAFETY: only reachable through a table built after detecting avx2 and f16c.
    unsafe {
        checked_tile(
            sums,
            w,
            a,
            crate::quant::q5_1::dot_q8_0_from,
            super::min_tile::dot_q5_1_tile_avx2,
        )
    }
}

/// An unchecked tile kernel over plain blocks (every vector covering the row).
type UnsafeTile<W> =
    unsafe fn([f32; GROUP_TILE], &[W], &[&[BlockQ8_0]; GROUP_TILE]) -> [f32; GROUP_TILE];

/// A tile kernel `kernel` over plain blocks, or `from` vector by vector where a vector is
/// shorter than the row (the kernel's contract: every vector covers `w`).
///
/// # Safety
/// The CPU supports what `kernel` needs.
#[inline(always)]
unsafe fn checked_tile<W>(
    sums: &[f32; GROUP_TILE],
    w: &[W],
    a: &[&[BlockQ8_0]; GROUP_TILE],
    from: fn(f32, &[W], &[BlockQ8_0]) -> f32,
    kernel: UnsafeTile<W>,
) -> [f32; GROUP_TILE] {
    if a.iter().any(|at| at.len() < w.len()) {
        return crate::kernels::tile_by_vector(sums, w, a, from);
    }
    // SAFETY: every vector covers `w` (checked just above); the features are the caller's.
    unsafe { kernel(*sums, w, a) }
}

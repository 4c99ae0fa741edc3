//! AVX2 kernels over packed groups ([`Group8`]): packing Q8_0 / Q4_0 blocks of 8 rows into
//! one group, and the group dot products (one vector, and a tile of vectors).

use core::arch::x86_64::*;

use super::*;

/// Stores eight blocks' 32 values (`rows[j]`, as 8 four-byte words) and scales into a
/// [`Group8`]: the scales as `f32`, then the 8×8 word transpose (`qs[g][j]` = word `g` of
/// block `j`) by two rounds of unpacks and one of 128-bit lane moves.
///
/// # Safety
/// The CPU supports AVX2.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn store_group(rows: [__m256i; 8], scales: __m256, out: &mut Group8) {
    let [r0, r1, r2, r3, r4, r5, r6, r7] = rows;
    // Per 128-bit half: words (w0, w1 | w4, w5) and (w2, w3 | w6, w7) of two blocks.
    let (t0, t1) = (_mm256_unpacklo_epi32(r0, r1), _mm256_unpackhi_epi32(r0, r1));
    let (t2, t3) = (_mm256_unpacklo_epi32(r2, r3), _mm256_unpackhi_epi32(r2, r3));
    let (t4, t5) = (_mm256_unpacklo_epi32(r4, r5), _mm256_unpackhi_epi32(r4, r5));
    let (t6, t7) = (_mm256_unpacklo_epi32(r6, r7), _mm256_unpackhi_epi32(r6, r7));
    // Word w of blocks 0..4 (low half: w in 0..4, high half: w + 4), then blocks 4..8.
    let lo = [
        _mm256_unpacklo_epi64(t0, t2),
        _mm256_unpackhi_epi64(t0, t2),
        _mm256_unpacklo_epi64(t1, t3),
        _mm256_unpackhi_epi64(t1, t3),
    ];
    let hi = [
        _mm256_unpacklo_epi64(t4, t6),
        _mm256_unpackhi_epi64(t4, t6),
        _mm256_unpacklo_epi64(t5, t7),
        _mm256_unpackhi_epi64(t5, t7),
    ];
    let p = out.as_mut_ptr();
    // SAFETY: a group is 288 bytes: 32 of scales, then 8 rows of 32; stores are unaligned.
    _mm256_storeu_ps(p.cast::<f32>(), scales);
    for (w, (l, h)) in lo.into_iter().zip(hi).enumerate() {
        _mm256_storeu_si256(
            p.add(32 + 32 * w).cast::<__m256i>(),
            _mm256_permute2x128_si256::<0x20>(l, h),
        );
        _mm256_storeu_si256(
            p.add(32 + 32 * (w + 4)).cast::<__m256i>(),
            _mm256_permute2x128_si256::<0x31>(l, h),
        );
    }
}

/// [`crate::quant::group8::pack_q8_0`], byte for byte (finite scales).
///
/// # Safety
/// The CPU supports AVX2 and F16C.
#[target_feature(enable = "avx2,f16c")]
pub(super) unsafe fn pack_q8_0_avx2(blocks: &[BlockQ8_0; 8], out: &mut Group8) {
    prefetch_ahead::<{ q8_0::BLOCK_BYTES }>(blocks.as_ptr().cast::<u8>());
    // SAFETY: each block is 34 bytes; bytes 2..34 are the 32 values; loads are unaligned.
    let rows = blocks.each_ref().map(|b| _mm256_loadu_si256(b.as_ptr().add(2).cast::<__m256i>()));
    store_group(rows, scales8(blocks), out);
}

/// [`crate::quant::group8::pack_q4_0`], byte for byte (finite scales): each block's nibbles
/// spread to 32 bytes in element order (as [`q4_0_lanes`] does) and recentred to `q − 8`.
///
/// # Safety
/// The CPU supports AVX2 and F16C.
#[target_feature(enable = "avx2,f16c")]
pub(super) unsafe fn pack_q4_0_avx2(blocks: &[BlockQ4_0; 8], out: &mut Group8) {
    let rows = blocks.each_ref().map(|b| {
        // SAFETY: a Q4_0 block is 18 bytes, nibbles at 2..18; the load is unaligned.
        let nib = _mm_loadu_si128(b.as_ptr().add(2).cast::<__m128i>());
        let spread =
            _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(nib), _mm_srli_epi16(nib, 4));
        _mm256_sub_epi8(_mm256_and_si256(spread, _mm256_set1_epi8(0x0f)), _mm256_set1_epi8(8))
    });
    store_group(rows, scales8(blocks), out);
}

/// Packed groups (see [`crate::quant::group8`]), bit-identical to
/// [`crate::quant::group8::dot`]: lane `j`
/// of every multiply-add belongs to block `j`, so eight `maddubs`/`madd` steps with vertical
/// adds give the eight exact block sums with no horizontal reduction (weights in −128..=127,
/// activations in −127..=127, as for [`q8_0_lanes`]).
///
/// # Safety
/// The CPU supports AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn dot_groups_avx2(w: &[Group8], a: &[Group8]) -> f32 {
    let ones = _mm256_set1_epi16(1);
    let mut sum = 0.0f32;
    for (wg, ag) in w.iter().zip(a) {
        let (wp, ap) = (wg.as_ptr(), ag.as_ptr());
        let mut acc = _mm256_setzero_si256();
        // SAFETY (all loads): a group is 288 bytes, 32 of scales then 8 rows of 32 values;
        // loads are unaligned.
        for g in 0..8 {
            let qx = _mm256_loadu_si256(wp.add(32 + 32 * g).cast::<__m256i>());
            let qy = _mm256_loadu_si256(ap.add(32 + 32 * g).cast::<__m256i>());
            let pairs = _mm256_maddubs_epi16(_mm256_abs_epi8(qx), _mm256_sign_epi8(qy, qx));
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, ones));
        }
        let d = _mm256_mul_ps(_mm256_loadu_ps(wp.cast::<f32>()), _mm256_loadu_ps(ap.cast::<f32>()));
        // |isum| < 2^24: the conversion is exact.
        sum = add_lanes_in_order(sum, _mm256_mul_ps(d, _mm256_cvtepi32_ps(acc)));
    }
    sum
}

/// [`dot_groups_avx2`] of one weight row against [`GROUP_TILE`] activation vectors at once:
/// each weight row of a group is loaded and `abs`-ed once for all of them, and the vectors'
/// running sums are independent dependency chains that overlap. A group's eight block
/// products of the eight vectors are transposed (8×8), so that lane `t` of one register holds
/// vector `t`'s running sum and eight vertical adds add each vector's block products in block
/// order: the additions [`add_lanes_in_order`] makes one lane at a time, for all vectors at
/// once. Each result is bit-identical to [`dot_groups_avx2`]'s.
///
/// # Safety
/// The CPU supports AVX2, and every `a[t]` holds at least `w.len()` groups.
///
/// With `SHARED_ACTIVATION` the roles of the sign transfer swap: `w` is then one activation
/// vector (values in −127..=127) and each `a[t]` a weight row with any byte (decode's tile
/// over 8 rows), and lane `t` is `dot_groups_avx2(a[t], w)`, the same bits.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn dot_groups_tile_avx2<const SHARED_ACTIVATION: bool>(
    w: &[Group8],
    a: &[&[Group8]; GROUP_TILE],
) -> [f32; GROUP_TILE] {
    const _: () = assert!(GROUP_TILE == 8, "one f32 lane per vector of the tile");
    let ones = _mm256_set1_epi16(1);
    // Lane `t`: vector `t`'s running sum.
    let mut sums = _mm256_setzero_ps();
    let bases: [*const u8; GROUP_TILE] = a.map(|at| at.as_ptr().cast::<u8>());
    for (i, wg) in w.iter().enumerate() {
        // SAFETY: `i < w.len() <= a[t].len()` (the caller's contract), so group `i` of every
        // vector is in bounds.
        let ap: [*const u8; GROUP_TILE] = bases.map(|b| b.add(i * GROUP_BYTES));
        let wp = wg.as_ptr();
        let mut acc = [_mm256_setzero_si256(); GROUP_TILE];
        // SAFETY (all loads): groups are 288 bytes, 32 of scales then 8 rows of 32 values;
        // loads are unaligned.
        for g in 0..8 {
            let qx = _mm256_loadu_si256(wp.add(32 + 32 * g).cast::<__m256i>());
            let ax = _mm256_abs_epi8(qx);
            for (acc_t, ap_t) in acc.iter_mut().zip(ap) {
                let qy = _mm256_loadu_si256(ap_t.add(32 + 32 * g).cast::<__m256i>());
                let pairs = if SHARED_ACTIVATION {
                    _mm256_maddubs_epi16(_mm256_abs_epi8(qy), _mm256_sign_epi8(qx, qy))
                } else {
                    _mm256_maddubs_epi16(ax, _mm256_sign_epi8(qy, qx))
                };
                *acc_t = _mm256_add_epi32(*acc_t, _mm256_madd_epi16(pairs, ones));
            }
        }
        let dw = _mm256_loadu_ps(wp.cast::<f32>());
        // Lane `j` of `products[t]`: vector `t`'s block `j`, as `dot_groups_avx2` computes it.
        let mut products = [_mm256_setzero_ps(); GROUP_TILE];
        for ((p, acc_t), ap_t) in products.iter_mut().zip(acc).zip(ap) {
            let d = _mm256_mul_ps(dw, _mm256_loadu_ps(ap_t.cast::<f32>()));
            // |isum| < 2^24: the conversion is exact.
            *p = _mm256_mul_ps(d, _mm256_cvtepi32_ps(acc_t));
        }
        for block in transpose8_ps(products) {
            sums = _mm256_add_ps(sums, block);
        }
    }
    let mut out = [0.0f32; GROUP_TILE];
    // SAFETY: `out` holds eight f32; the store is unaligned.
    _mm256_storeu_ps(out.as_mut_ptr(), sums);
    out
}

/// The 8×8 transpose of eight `f32` rows: lane `t` of result `j` is lane `j` of `rows[t]`.
///
/// # Safety
/// The CPU supports AVX.
#[inline]
#[target_feature(enable = "avx")]
pub(super) unsafe fn transpose8_ps(rows: [__m256; 8]) -> [__m256; 8] {
    let [r0, r1, r2, r3, r4, r5, r6, r7] = rows;
    // Per 128-bit half: (r0[0], r1[0], r0[1], r1[1]) and so on.
    let (t0, t1) = (_mm256_unpacklo_ps(r0, r1), _mm256_unpackhi_ps(r0, r1));
    let (t2, t3) = (_mm256_unpacklo_ps(r2, r3), _mm256_unpackhi_ps(r2, r3));
    let (t4, t5) = (_mm256_unpacklo_ps(r4, r5), _mm256_unpackhi_ps(r4, r5));
    let (t6, t7) = (_mm256_unpacklo_ps(r6, r7), _mm256_unpackhi_ps(r6, r7));
    // Per half: column k of rows 0..4 (or 4..8).
    let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    [
        _mm256_permute2f128_ps::<0x20>(u0, u4),
        _mm256_permute2f128_ps::<0x20>(u1, u5),
        _mm256_permute2f128_ps::<0x20>(u2, u6),
        _mm256_permute2f128_ps::<0x20>(u3, u7),
        _mm256_permute2f128_ps::<0x31>(u0, u4),
        _mm256_permute2f128_ps::<0x31>(u1, u5),
        _mm256_permute2f128_ps::<0x31>(u2, u6),
        _mm256_permute2f128_ps::<0x31>(u3, u7),
    ]
}

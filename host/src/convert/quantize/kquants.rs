//! The 256-weight K-quant super-blocks' reference quantizers (ggml's `quantize_row_q2_K_ref`
//! … `quantize_row_q6_K_ref`, which `llama_model_quantize` runs when no importance matrix is
//! given): one super-block from 256 values. Layouts as in `ggml-common.h`.

use tinymla_core::quant::{q2_k, q3_k, q4_k, q5_k, q6_k, QK_K};

use super::search::{
    from_f16, make_q3_quants, make_qkx2_quants, make_qx_quants, nearest_int, to_f16, Qkx2,
    GROUP_MAX_EPS,
};

/// Packs 2-bit levels as Q2_K / Q3_K store them: each 128 values fill 32 bytes, value
/// `j + l + 32 k` in bits `2k` of byte `j / 4 + l`.
fn pack_2bit(levels: &[u8; QK_K], qs: &mut [u8]) {
    for j in (0..QK_K).step_by(128) {
        for l in 0..32 {
            qs[j / 4 + l] = levels[j + l]
                | (levels[j + l + 32] << 2)
                | (levels[j + l + 64] << 4)
                | (levels[j + l + 96] << 6);
        }
    }
}

/// `nearest_int` as C stores it into a `uint8_t` (modulo 256).
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn low_byte(l: i32) -> u8 {
    l as u8
}

/// Q2_K: sixteen 16-value groups, each fitted with [`make_qkx2_quants`] (levels 0..=3,
/// absolute errors weighted by `|x|`); 4-bit scales and mins relative to the largest, then
/// every value re-quantized with the stored scales.
pub(super) fn q2_k(x: &[f32; QK_K]) -> [u8; q2_k::BLOCK_BYTES] {
    const P: Qkx2 = Qkx2 { nmax: 3, rmin: -0.5, rdelta: 0.1, nstep: 15, use_mad: true };
    let mut levels = [0u8; QK_K];
    let (mut scales, mut mins) = ([0.0f32; 16], [0.0f32; 16]);
    let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
    for j in 0..QK_K / 16 {
        let xs = &x[16 * j..16 * j + 16];
        let mut weights = [0.0f32; 16];
        for (w, &v) in weights.iter_mut().zip(xs) {
            *w = v.abs();
        }
        let (scale, min) = make_qkx2_quants(P, xs, &weights, &mut levels[16 * j..16 * j + 16]);
        (scales[j], mins[j]) = (scale, min);
        if scale > max_scale {
            max_scale = scale;
        }
        if min > max_min {
            max_min = min;
        }
    }
    let mut block = [0u8; q2_k::BLOCK_BYTES];
    let (sc, rest) = block.split_at_mut(16);
    let (qs, dd) = rest.split_at_mut(64);
    if max_scale > 0.0 {
        let iscale = 15.0 / max_scale;
        for (s, &scale) in sc.iter_mut().zip(&scales) {
            *s = low_byte(nearest_int(iscale * scale));
        }
        dd[..2].copy_from_slice(&to_f16(max_scale / 15.0));
    } else {
        dd[..2].copy_from_slice(&to_f16(0.0));
    }
    if max_min > 0.0 {
        let iscale = 15.0 / max_min;
        for (s, &min) in sc.iter_mut().zip(&mins) {
            *s |= low_byte(nearest_int(iscale * min) << 4);
        }
        dd[2..].copy_from_slice(&to_f16(max_min / 15.0));
    } else {
        dd[2..].copy_from_slice(&to_f16(0.0));
    }
    let (d_all, m_all) = (from_f16([dd[0], dd[1]]), from_f16([dd[2], dd[3]]));
    for j in 0..QK_K / 16 {
        let d = d_all * f32::from(sc[j] & 0x0f);
        if d == 0.0 {
            continue;
        }
        let dm = m_all * f32::from(sc[j] >> 4);
        for ii in 0..16 {
            let l = nearest_int((x[16 * j + ii] + dm) / d).clamp(0, 3);
            levels[16 * j + ii] = low_byte(l);
        }
    }
    pack_2bit(&levels, qs);
    block
}

/// Q3_K: sixteen 16-value groups, each fitted with [`make_q3_quants`] (levels −4..=3); 6-bit
/// signed scales relative to the largest magnitude; values re-quantized with the stored
/// scales; the third bit of each level in `hmask`.
pub(super) fn q3_k(x: &[f32; QK_K]) -> [u8; q3_k::BLOCK_BYTES] {
    let mut levels = [0i8; QK_K];
    let mut scales = [0.0f32; 16];
    let (mut max_scale, mut amax) = (0.0f32, 0.0f32);
    for j in 0..QK_K / 16 {
        let scale = make_q3_quants(4, &x[16 * j..16 * j + 16], &mut levels[16 * j..16 * j + 16]);
        scales[j] = scale;
        if scale.abs() > amax {
            amax = scale.abs();
            max_scale = scale;
        }
    }
    let mut block = [0u8; q3_k::BLOCK_BYTES];
    let (hmask, rest) = block.split_at_mut(32);
    let (qs, rest) = rest.split_at_mut(64);
    let (sc, d_bytes) = rest.split_at_mut(12);
    if max_scale != 0.0 {
        let iscale = -32.0 / max_scale;
        for (j, &scale) in scales.iter().enumerate() {
            // `int8_t l = nearest_int(…)`, clamped to −32..=31, plus 32.
            #[allow(clippy::cast_possible_truncation)]
            let l = i32::from(nearest_int(iscale * scale) as i8).clamp(-32, 31) + 32;
            let l = low_byte(l);
            if j < 8 {
                sc[j] = l & 0x0f;
            } else {
                sc[j - 8] |= (l & 0x0f) << 4;
            }
            sc[j % 4 + 8] |= (l >> 4) << (2 * (j / 4));
        }
        d_bytes.copy_from_slice(&to_f16(1.0 / iscale));
    } else {
        d_bytes.copy_from_slice(&to_f16(0.0));
    }
    let d_all = from_f16([d_bytes[0], d_bytes[1]]);
    for j in 0..QK_K / 16 {
        let low = if j < 8 { sc[j] & 0x0f } else { sc[j - 8] >> 4 };
        let s = i32::from(low | (((sc[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
        let d = d_all * s as f32;
        if d == 0.0 {
            continue;
        }
        for ii in 0..16 {
            let l = nearest_int(x[16 * j + ii] / d).clamp(-4, 3);
            // In 0..=7.
            #[allow(clippy::cast_possible_truncation)]
            let stored = (l + 4) as i8;
            levels[16 * j + ii] = stored;
        }
    }
    let mut low = [0u8; QK_K];
    let (mut m, mut hm) = (0usize, 1u8);
    for (lo, &l) in low.iter_mut().zip(&levels) {
        #[allow(clippy::cast_sign_loss)]
        let mut l = l as u8;
        if l > 3 {
            hmask[m] |= hm;
            l -= 4;
        }
        *lo = l;
        m += 1;
        if m == QK_K / 8 {
            m = 0;
            hm <<= 1;
        }
    }
    pack_2bit(&low, qs);
    block
}

/// Q4_K and Q5_K share everything but the level range and the search's trials: eight
/// 32-value groups fitted with [`make_qkx2_quants`] (weights `rms + |x|`), 6-bit scales and
/// mins relative to the largest, then values re-quantized with the stored ones. Returns the
/// header (`d`, `dmin`, `scales[12]`) and the levels.
fn k_groups_of_32(x: &[f32], p: Qkx2) -> ([u8; 16], [u8; QK_K]) {
    let mut levels = [0u8; QK_K];
    let (mut scales, mut mins) = ([0.0f32; 8], [0.0f32; 8]);
    let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
    for j in 0..QK_K / 32 {
        let xs = &x[32 * j..32 * j + 32];
        let mut sum_x2 = 0.0f32;
        for &v in xs {
            sum_x2 += v * v;
        }
        let av_x = (sum_x2 / 32.0).sqrt();
        let mut weights = [0.0f32; 32];
        for (w, &v) in weights.iter_mut().zip(xs) {
            *w = av_x + v.abs();
        }
        let (scale, min) = make_qkx2_quants(p, xs, &weights, &mut levels[32 * j..32 * j + 32]);
        (scales[j], mins[j]) = (scale, min);
        if scale > max_scale {
            max_scale = scale;
        }
        if min > max_min {
            max_min = min;
        }
    }
    let mut head = [0u8; 16];
    let inv_scale = if max_scale > 0.0 { 63.0 / max_scale } else { 0.0 };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    {
        let s = &mut head[4..];
        for j in 0..QK_K / 32 {
            let ls = low_byte(nearest_int(inv_scale * scales[j])).min(63);
            let lm = low_byte(nearest_int(inv_min * mins[j])).min(63);
            if j < 4 {
                s[j] = ls;
                s[j + 4] = lm;
            } else {
                s[j + 4] = (ls & 0x0f) | ((lm & 0x0f) << 4);
                s[j - 4] |= (ls >> 4) << 6;
                s[j] |= (lm >> 4) << 6;
            }
        }
    }
    head[..2].copy_from_slice(&to_f16(max_scale / 63.0));
    head[2..4].copy_from_slice(&to_f16(max_min / 63.0));
    let (d_all, m_all) = (from_f16([head[0], head[1]]), from_f16([head[2], head[3]]));
    let mut packed = [0u8; 12];
    packed.copy_from_slice(&head[4..]);
    let (scs, ms) = q4_k::scales_mins(&packed);
    for (j, (sc, m)) in scs.into_iter().zip(ms).enumerate() {
        let d = d_all * f32::from(sc);
        if d == 0.0 {
            continue;
        }
        let dm = m_all * f32::from(m);
        for ii in 0..32 {
            let l = nearest_int((x[32 * j + ii] + dm) / d).clamp(0, p.nmax);
            levels[32 * j + ii] = low_byte(l);
        }
    }
    (head, levels)
}

/// Q4_K: [`k_groups_of_32`] with levels 0..=15; nibbles of groups `2i` and `2i + 1` share
/// bytes `32 i ..`.
pub(super) fn q4_k(x: &[f32; QK_K]) -> [u8; q4_k::BLOCK_BYTES] {
    const P: Qkx2 = Qkx2 { nmax: 15, rmin: -1.0, rdelta: 0.1, nstep: 20, use_mad: false };
    let (head, levels) = k_groups_of_32(x, P);
    let mut block = [0u8; q4_k::BLOCK_BYTES];
    block[..16].copy_from_slice(&head);
    let qs = &mut block[16..];
    for (n, chunk) in (0..QK_K).step_by(64).zip(qs.chunks_exact_mut(32)) {
        for (l, q) in chunk.iter_mut().enumerate() {
            *q = levels[n + l] | (levels[n + l + 32] << 4);
        }
    }
    block
}

/// Q5_K: [`k_groups_of_32`] with levels 0..=31; low nibbles as Q4_K's, fifth bits in `qh`
/// (bits `2i` and `2i + 1` of byte `l` for groups `2i`, `2i + 1`).
pub(super) fn q5_k(x: &[f32; QK_K]) -> [u8; q5_k::BLOCK_BYTES] {
    const P: Qkx2 = Qkx2 { nmax: 31, rmin: -0.5, rdelta: 0.1, nstep: 15, use_mad: false };
    let (head, levels) = k_groups_of_32(x, P);
    let mut block = [0u8; q5_k::BLOCK_BYTES];
    block[..16].copy_from_slice(&head);
    let (qh, ql) = block[16..].split_at_mut(32);
    let (mut m1, mut m2) = (1u8, 2u8);
    for (n, chunk) in (0..QK_K).step_by(64).zip(ql.chunks_exact_mut(32)) {
        for (j, q) in chunk.iter_mut().enumerate() {
            let mut l1 = levels[n + j];
            if l1 > 15 {
                l1 -= 16;
                qh[j] |= m1;
            }
            let mut l2 = levels[n + j + 32];
            if l2 > 15 {
                l2 -= 16;
                qh[j] |= m2;
            }
            *q = l1 | (l2 << 4);
        }
        m1 <<= 2;
        m2 <<= 2;
    }
    block
}

/// Q6_K: sixteen 16-value groups fitted with [`make_qx_quants`] (levels −32..=31); 8-bit
/// signed scales relative to the largest magnitude; values re-quantized with the stored
/// scales; low nibbles in `ql`, high 2 bits in `qh`.
pub(super) fn q6_k(x: &[f32; QK_K]) -> [u8; q6_k::BLOCK_BYTES] {
    let mut levels = [0i8; QK_K];
    let mut scales = [0.0f32; 16];
    let (mut max_scale, mut max_abs_scale) = (0.0f32, 0.0f32);
    for ib in 0..QK_K / 16 {
        let scale =
            make_qx_quants(32, &x[16 * ib..16 * ib + 16], &mut levels[16 * ib..16 * ib + 16]);
        scales[ib] = scale;
        if scale.abs() > max_abs_scale {
            max_abs_scale = scale.abs();
            max_scale = scale;
        }
    }
    let mut block = [0u8; q6_k::BLOCK_BYTES];
    if max_abs_scale < GROUP_MAX_EPS {
        return block;
    }
    let (ql, rest) = block.split_at_mut(128);
    let (qh, rest) = rest.split_at_mut(64);
    let (sc, d_bytes) = rest.split_at_mut(16);
    let iscale = -128.0 / max_scale;
    d_bytes.copy_from_slice(&to_f16(1.0 / iscale));
    for (s, &scale) in sc.iter_mut().zip(&scales) {
        // `int8_t` of `MIN(127, l)`; `l >= −128` since `|scale| <= max_abs_scale`.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let stored = nearest_int(iscale * scale).min(127) as i8 as u8;
        *s = stored;
    }
    let d_all = from_f16([d_bytes[0], d_bytes[1]]);
    for j in 0..QK_K / 16 {
        #[allow(clippy::cast_possible_wrap)]
        let d = d_all * f32::from(sc[j] as i8);
        if d == 0.0 {
            continue;
        }
        for ii in 0..16 {
            let l = nearest_int(x[16 * j + ii] / d).clamp(-32, 31);
            // In 0..=63.
            #[allow(clippy::cast_possible_truncation)]
            let stored = (l + 32) as i8;
            levels[16 * j + ii] = stored;
        }
    }
    #[allow(clippy::cast_sign_loss)]
    let level = |i: usize| levels[i] as u8;
    for (n, (ql, qh)) in
        (0..QK_K).step_by(128).zip(ql.chunks_exact_mut(64).zip(qh.chunks_exact_mut(32)))
    {
        for l in 0..32 {
            let (q1, q2, q3, q4) =
                (level(n + l), level(n + l + 32), level(n + l + 64), level(n + l + 96));
            ql[l] = (q1 & 0x0f) | ((q3 & 0x0f) << 4);
            ql[l + 32] = (q2 & 0x0f) | ((q4 & 0x0f) << 4);
            qh[l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
        }
    }
    block
}

#[cfg(test)]
mod tests {
    use super::*;
    use tinymla_core::quant::format::BlockFormat;

    /// 256 values of several magnitudes and both signs, one group all zero.
    fn sample(seed: u32) -> Vec<f32> {
        let mut s = seed | 1;
        (0..QK_K)
            .map(|i| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                let u = (s % 20_001) as f32 / 10_000.0 - 1.0;
                if (32..48).contains(&i) {
                    0.0
                } else {
                    u * [0.01f32, 1.0, 30.0][i % 3]
                }
            })
            .collect()
    }

    /// Each super-block dequantizes (by the engine's own dequantizer) close to its input: the
    /// error is a few percent of the largest magnitude, where a misplaced level or scale bit
    /// would be far larger.
    #[test]
    fn super_blocks_round_trip_through_the_engine() {
        for seed in 1..4 {
            let x: [f32; QK_K] = sample(seed).try_into().unwrap();
            let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let cases: [(BlockFormat, Vec<u8>, f32); 5] = [
                (BlockFormat::Q2K, q2_k(&x).to_vec(), 0.35),
                (BlockFormat::Q3K, q3_k(&x).to_vec(), 0.2),
                (BlockFormat::Q4K, q4_k(&x).to_vec(), 0.1),
                (BlockFormat::Q5K, q5_k(&x).to_vec(), 0.05),
                (BlockFormat::Q6K, q6_k(&x).to_vec(), 0.03),
            ];
            for (format, bytes, rel) in cases {
                let mut out = vec![0.0f32; QK_K];
                format.dequantize(&bytes, &mut out);
                let worst = x.iter().zip(&out).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
                assert!(worst <= rel * amax, "{format:?} seed {seed}: {worst} vs {amax}");
                assert!(out[32..48].iter().all(|v| v.abs() <= rel * amax));
            }
        }
    }

    #[test]
    fn an_all_zero_super_block_is_all_zero_bytes_in_q6_k() {
        assert!(q6_k(&[0.0; QK_K]).iter().all(|&b| b == 0));
    }
}

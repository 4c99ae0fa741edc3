//! The non-linear 4-bit formats' quantizer (ggml's `quantize_row_iq4_nl_impl`, as
//! `quantize_iq4_nl` / `quantize_iq4_xs` call it without an importance matrix: weights `x²`,
//! 7 trial scales each way): IQ4_NL blocks of 32 values and IQ4_XS super-blocks of 256, each
//! value an index into the 16-value grid [`IQ4_VALUES`].

use tinymla_core::quant::{iq4_nl, iq4_xs, IQ4_VALUES, QK, QK_K};

use super::search::{inverse, nearest_int, signed_absmax, to_f16, GROUP_MAX_EPS};

/// Trial inverse scales each side of the first guess (ggml's `ntry`).
const NTRY: i32 = 7;

/// ggml's `best_index_int8`: the index of the grid value nearest `x` (the upper one on a
/// tie, the ends for values beyond them).
fn best_index(x: f32) -> u8 {
    let value = |i: usize| f32::from(IQ4_VALUES[i]);
    if x <= value(0) {
        return 0;
    }
    if x >= value(15) {
        return 15;
    }
    let (mut lo, mut hi) = (0usize, 15usize);
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if x < value(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    // In 0..=15.
    #[allow(clippy::cast_possible_truncation)]
    let pick = if x - value(hi - 1) < value(hi) - x { hi - 1 } else { hi } as u8;
    pick
}

/// The scale of one 32-value group: the least-squares scale (weights `x²`) of the grid
/// indices at the first guess `max / 127`, kept or replaced by the best of 15 trial inverse
/// scales `(t − 127) / max`; 0 for an all-zero group.
fn group_scale(xb: &[f32]) -> f32 {
    let (max, amax) = signed_absmax(xb);
    if amax < GROUP_MAX_EPS {
        return 0.0;
    }
    let first = f32::from(IQ4_VALUES[0]);
    let sums = |id: f32| {
        let (mut sumqx, mut sumq2) = (0.0f32, 0.0f32);
        for &v in xb {
            let q = f32::from(IQ4_VALUES[usize::from(best_index(id * v))]);
            let w = v * v;
            sumqx += w * q * v;
            sumq2 += w * q * q;
        }
        (sumqx, sumq2)
    };
    let d = -max / first;
    let (sumqx, sumq2) = sums(1.0 / d);
    let mut d = sumqx / sumq2;
    let mut best = d * sumqx;
    for itry in -NTRY..=NTRY {
        let id = (itry + i32::from(IQ4_VALUES[0])) as f32 / max;
        let (sumqx, sumq2) = sums(id);
        if sumq2 > 0.0 && sumqx * sumqx > best * sumq2 {
            d = sumqx / sumq2;
            best = d * sumqx;
        }
    }
    d
}

/// Writes the indices of `levels` as IQ4_NL / IQ4_XS store them: per 32 values, byte `j`
/// holds `l[j] | l[j + 16] << 4`.
fn pack(levels: &[u8], qs: &mut [u8]) {
    for (l, q) in levels.chunks_exact(QK).zip(qs.chunks_exact_mut(QK / 2)) {
        for j in 0..QK / 2 {
            q[j] = l[j] | (l[j + QK / 2] << 4);
        }
    }
}

/// IQ4_NL: one 32-value block with its own f16 scale.
pub(super) fn iq4_nl(xb: &[f32; QK]) -> [u8; iq4_nl::BLOCK_BYTES] {
    let d = group_scale(xb);
    let id = inverse(d);
    let mut levels = [0u8; QK];
    for (l, &v) in levels.iter_mut().zip(xb) {
        *l = best_index(id * v);
    }
    let mut block = [0u8; iq4_nl::BLOCK_BYTES];
    block[..2].copy_from_slice(&to_f16(d));
    pack(&levels, &mut block[2..]);
    block
}

/// IQ4_XS: eight 32-value groups whose scales are stored as 6-bit multiples of one f16 `d`
/// (`d = −max_scale / 32`); each group's indices chosen for its stored scale.
pub(super) fn iq4_xs(x: &[f32; QK_K]) -> [u8; iq4_xs::BLOCK_BYTES] {
    let mut scales = [0.0f32; QK_K / QK];
    let (mut max_scale, mut amax_scale) = (0.0f32, 0.0f32);
    for (s, xb) in scales.iter_mut().zip(x.chunks_exact(QK)) {
        *s = group_scale(xb);
        if s.abs() > amax_scale {
            amax_scale = s.abs();
            max_scale = *s;
        }
    }
    let mut block = [0u8; iq4_xs::BLOCK_BYTES];
    let d = -max_scale / 32.0;
    block[..2].copy_from_slice(&to_f16(d));
    let id = inverse(d);
    let mut levels = [0u8; QK_K];
    let mut scales_h = 0u16;
    for (ib, (&s, xb)) in scales.iter().zip(x.chunks_exact(QK)).enumerate() {
        let l = nearest_int(id * s).clamp(-32, 31);
        let dl = d * l as f32;
        let idl = inverse(dl);
        for (lv, &v) in levels[ib * QK..(ib + 1) * QK].iter_mut().zip(xb) {
            *lv = best_index(idl * v);
        }
        // In 0..=63.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let l = (l + 32) as u8;
        let (low, high) = (l & 0x0f, l >> 4);
        if ib % 2 == 0 {
            block[4 + ib / 2] = low;
        } else {
            block[4 + ib / 2] |= low << 4;
        }
        scales_h |= u16::from(high) << (2 * (ib % 8));
    }
    block[2..4].copy_from_slice(&scales_h.to_le_bytes());
    pack(&levels, &mut block[8..]);
    block
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_index_picks_the_nearest_grid_value() {
        assert_eq!(best_index(-200.0), 0);
        assert_eq!(best_index(200.0), 15);
        assert_eq!(best_index(0.0), 8); // 1 (index 8) is nearer than −10 (index 7)
        assert_eq!(best_index(-115.5), 1); // halfway between −127 and −104: the upper
        assert_eq!(best_index(-115.6), 0);
    }
}

//! The sampler's tests: each filter against its definition, seeded reproducibility, the
//! work buffer's index types and sizes.

use super::*;

/// The boards' heapsort orders exactly as the host's sort does, on random keys with many
/// ties (broken by index, as the sampler's order is).
#[test]
fn heapsort_orders_as_the_standard_sort() {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for n in [0usize, 1, 2, 3, 7, 64, 257, 1000] {
        let keys: std::vec::Vec<u32> = (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state % 17) as u32
            })
            .collect();
        let order = |a: &u32, b: &u32| {
            let (ka, kb) = (keys[*a as usize], keys[*b as usize]);
            kb.cmp(&ka).then(a.cmp(b))
        };
        let mut want: std::vec::Vec<u32> = (0..n as u32).collect();
        let mut got = want.clone();
        want.sort_unstable_by(order);
        super::heapsort_by(&mut got, |a, b| order(a, b).is_lt());
        assert_eq!(got, want, "n = {n}");
    }
}

fn logits() -> Vec<f32> {
    vec![1.0, 3.0, 2.0, f32::NAN, 2.5, -1.0]
}

#[test]
fn greedy_is_argmax_and_ignores_nan() {
    let mut s = Sampler::new(SamplerConfig::default());
    assert_eq!(s.sample(&mut logits(), &mut [0u32; 0]).unwrap(), 1);
    assert_eq!(argmax(&[f32::NAN, f32::NAN]), 0);
    assert_eq!(argmax(&[f32::NAN, -5.0]), 1);
}

#[test]
fn top_k_1_is_greedy_and_seeds_reproduce() {
    let cfg = SamplerConfig { temperature: 1.0, top_k: 1, ..Default::default() };
    let mut work = vec![0u32; 6];
    for seed in 1..20 {
        let mut s = Sampler::new(SamplerConfig { seed, ..cfg });
        assert_eq!(s.sample(&mut logits(), &mut work).unwrap(), 1);
    }
    let cfg = SamplerConfig { temperature: 1.0, seed: 7, ..Default::default() };
    let run = |cfg| {
        let mut s = Sampler::new(cfg);
        (0..50).map(|_| s.sample(&mut logits(), &mut work.clone()).unwrap()).collect::<Vec<_>>()
    };
    assert_eq!(run(cfg), run(cfg));
    assert_ne!(run(cfg), run(SamplerConfig { seed: 8, ..cfg }));
}

#[test]
fn top_p_keeps_only_the_nucleus_and_frequencies_follow_probabilities() {
    // Probabilities ~ [0.09, 0.67, 0.24, 0, ...] at temperature 1 over [1, 3, 2].
    let cfg = SamplerConfig { temperature: 1.0, top_p: 0.6, seed: 3, ..Default::default() };
    let mut s = Sampler::new(cfg);
    let mut work = vec![0u32; 3];
    for _ in 0..100 {
        assert_eq!(s.sample(&mut [1.0, 3.0, 2.0], &mut work).unwrap(), 1);
    }
    let mut s = Sampler::new(SamplerConfig { temperature: 1.0, seed: 11, ..Default::default() });
    let mut counts = [0usize; 3];
    for _ in 0..20_000 {
        counts[s.sample(&mut [1.0, 3.0, 2.0], &mut work).unwrap() as usize] += 1;
    }
    let p1 = counts[1] as f32 / 20_000.0;
    assert!((p1 - 0.665).abs() < 0.02, "{counts:?}");
}

/// Random logits with distinct values (ties at a cut are a matter of convention).
fn random_logits(n: usize, seed: u64) -> Vec<f32> {
    let mut s = Sampler::new(SamplerConfig { seed, ..Default::default() });
    (0..n).map(|i| s.uniform() * 8.0 - 4.0 + i as f32 * 1e-4).collect()
}

/// Which tokens survive, computed as transformers' warpers do, step after step on f64
/// scores: temperature, then top-k (`scores < k-th largest` -> -inf), top-p (ascending
/// cumulative softmax `<= 1 - top_p` removed, the most likely always kept), min-p (softmax
/// `< min_p * max` removed).
fn reference_kept(logits: &[f32], c: &SamplerConfig) -> Vec<bool> {
    let mut scores: Vec<f64> =
        logits.iter().map(|l| f64::from(*l) / f64::from(c.temperature)).collect();
    let softmax = |s: &[f64]| {
        let m = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = s.iter().map(|v| (v - m).exp()).collect();
        let z: f64 = e.iter().sum();
        e.into_iter().map(|v| v / z).collect::<Vec<f64>>()
    };
    if c.top_k > 0 && c.top_k < scores.len() {
        let mut sorted = scores.clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        let kth = sorted[c.top_k - 1];
        scores.iter_mut().filter(|v| **v < kth).for_each(|v| *v = f64::NEG_INFINITY);
    }
    if c.top_p < 1.0 {
        let probs = softmax(&scores);
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|a, b| probs[*a].total_cmp(&probs[*b]));
        let mut cum = 0.0;
        for (j, &i) in order.iter().enumerate() {
            cum += probs[i];
            if cum <= 1.0 - f64::from(c.top_p) && j + 1 < order.len() {
                scores[i] = f64::NEG_INFINITY;
            }
        }
    }
    if c.min_p > 0.0 {
        let probs = softmax(&scores);
        let max = probs.iter().copied().fold(0.0, f64::max);
        for (s, p) in scores.iter_mut().zip(&probs) {
            if *p < f64::from(c.min_p) * max {
                *s = f64::NEG_INFINITY;
            }
        }
    }
    scores.iter().map(|s| s.is_finite()).collect()
}

#[test]
fn top_k_top_p_min_p_keep_what_transformers_keeps() {
    // Miri interprets every float operation: a few seeds there, all of them natively.
    let seeds = if cfg!(miri) { 3 } else { 40 };
    let mut checked = 0;
    for seed in 1..seeds {
        let logits = random_logits(50, seed);
        for (temperature, top_k, top_p, min_p) in [
            (1.0, 0, 1.0, 0.05),
            (0.8, 0, 1.0, 0.2),
            (0.8, 40, 0.95, 0.05),
            (1.3, 10, 0.5, 0.0),
            (0.7, 0, 0.9, 0.1),
            (1.0, 5, 1.0, 0.5),
            (0.5, 20, 0.8, 0.01),
        ] {
            let c = SamplerConfig { temperature, top_k, top_p, min_p, ..Default::default() };
            let mut probs = logits.clone();
            // The sampler's own softmax, as `sample_after` runs it.
            let max = probs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let sum: f32 = probs
                .iter_mut()
                .map(|v| {
                    *v = libm::expf((*v - max) / temperature);
                    *v
                })
                .sum();
            probs.iter_mut().for_each(|v| *v /= sum);
            let mut idx = vec![0u32; probs.len()];
            let kept = truncate(&probs, &mut idx, &c, 1.0 / sum);
            let mut got = vec![false; probs.len()];
            kept.iter().for_each(|i| got[*i as usize] = true);
            assert_eq!(got, reference_kept(&logits, &c), "seed {seed} {c:?}");
            // Most likely first.
            assert!(kept.windows(2).all(|w| probs[w[0] as usize] >= probs[w[1] as usize]));
            checked += 1;
        }
    }
    assert_eq!(checked, (seeds - 1) * 7);
}

#[test]
fn min_p_draws_follow_the_renormalised_survivors() {
    // Probabilities at temperature 1 over [1, 3, 2, 0]: ~[0.087, 0.644, 0.237, 0.032];
    // min-p 0.1 keeps tokens with p >= 0.0644: 1, 2 and 0.
    let cfg = SamplerConfig { temperature: 1.0, min_p: 0.1, seed: 5, ..Default::default() };
    let mut s = Sampler::new(cfg);
    let mut work = vec![0u32; 4];
    let mut counts = [0usize; 4];
    let draws = if cfg!(miri) { 2_000 } else { 30_000 };
    for _ in 0..draws {
        counts[s.sample(&mut [1.0, 3.0, 2.0, 0.0], &mut work).unwrap() as usize] += 1;
    }
    assert_eq!(counts[3], 0, "{counts:?}");
    let e = [1.0f64.exp(), 3.0f64.exp(), 2.0f64.exp()];
    let z: f64 = e.iter().sum();
    // About 4 standard deviations of a frequency over `draws`.
    let tol = 2.0 / (draws as f64).sqrt();
    for t in 0..3 {
        let f = counts[t] as f64 / draws as f64;
        assert!((f - e[t] / z).abs() < tol, "token {t}: {f} vs {}: {counts:?}", e[t] / z);
    }
}

#[test]
fn repetition_penalty_matches_its_definition() {
    let logits = vec![2.0f32, -1.0, 0.5, 3.0, -0.25, 0.0, 1.5];
    // Duplicates count once; 99 is past the vocabulary; only the last 5 are looked at.
    let history = [3u32, 3, 1, 6, 99, 4, 1, 3];
    let (penalty, last_n) = (1.3f32, 5usize);
    let window = &history[history.len() - last_n..];
    let want: Vec<f32> = logits
        .iter()
        .enumerate()
        .map(|(t, &l)| match window.contains(&(t as u32)) {
            true if l > 0.0 => l / penalty,
            true => l * penalty,
            false => l,
        })
        .collect();
    let cfg =
        SamplerConfig { repeat_penalty: penalty, repeat_last_n: last_n, ..Default::default() };
    let mut got = logits.clone();
    let mut work = vec![7u32; logits.len()];
    let token = Sampler::new(cfg).sample_after(&mut got, &mut work, &history).unwrap();
    assert_eq!(got, want);
    // Greedy picks the best penalised logit: 3.0 / 1.3 = 2.31 > 2.0.
    assert_eq!(token, 3);
    let cfg = SamplerConfig { repeat_penalty: 2.0, ..cfg };
    assert_eq!(
        Sampler::new(cfg).sample_after(&mut logits.clone(), &mut work, &history).unwrap(),
        0
    );
    // A penalty of 1, or no history, leaves greedy as it was and needs no work buffer.
    let off = SamplerConfig { repeat_penalty: 1.0, ..cfg };
    assert_eq!(
        Sampler::new(off).sample_after(&mut logits.clone(), &mut [0u32; 0], &history).unwrap(),
        3
    );
    assert_eq!(
        Sampler::new(cfg).sample_after(&mut logits.clone(), &mut [0u32; 0], &[]).unwrap(),
        3
    );
    assert!(Sampler::new(cfg).sample_after(&mut logits.clone(), &mut [0u32; 0], &history).is_err());
}

/// A `u16` work buffer gives the very tokens a `u32` one does, for every kind of
/// truncation and the penalty, and refuses a vocabulary it cannot index.
#[test]
fn u16_indices_sample_as_u32_ones_do() {
    // Under Miri (~1000x slower) a smaller vocabulary and fewer draws.
    let (n, steps) = if cfg!(miri) { (120, 2) } else { (3_000, 50) };
    let logits: Vec<f32> = (0..n).map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 90.0).collect();
    let history: Vec<u32> = (0..40).map(|i| (i * 37 % n) as u32).collect();
    let configs = [
        SamplerConfig { temperature: 0.8, top_p: 0.95, ..Default::default() },
        SamplerConfig {
            temperature: 1.2,
            top_k: 40,
            top_p: 0.9,
            min_p: 0.05,
            ..Default::default()
        },
        SamplerConfig {
            temperature: 0.7,
            repeat_penalty: 1.1,
            repeat_last_n: 64,
            ..Default::default()
        },
        SamplerConfig {
            temperature: 0.0,
            repeat_penalty: 1.3,
            repeat_last_n: 16,
            ..Default::default()
        },
    ];
    for (c, cfg) in configs.into_iter().enumerate() {
        let (mut wide, mut narrow) = (Sampler::new(cfg), Sampler::new(cfg));
        let (mut w32, mut w16) = (vec![0u32; n], vec![0u16; n]);
        for step in 0..steps {
            let a = wide.sample_after(&mut logits.clone(), &mut w32, &history).unwrap();
            let b = narrow.sample_after(&mut logits.clone(), &mut w16, &history).unwrap();
            assert_eq!(a, b, "config {c} step {step}");
        }
    }
    // The largest vocabulary u16 indexes is sampled (top-k 1: no sort over it); one more is
    // refused before any work.
    let mut s = Sampler::new(SamplerConfig { temperature: 0.8, top_k: 1, ..Default::default() });
    let big = 65_537;
    assert_eq!(
        s.sample(&mut vec![0.0; big], &mut vec![0u16; big]),
        Err(Error::SamplerIndexTooNarrow { vocab: big, max: 65_536 })
    );
    if !cfg!(miri) {
        assert!(s.sample(&mut vec![0.0; big - 1], &mut vec![0u16; big - 1]).is_ok());
    }
}

#[test]
fn short_work_buffer_is_an_error() {
    let mut s = Sampler::new(SamplerConfig { temperature: 0.8, ..Default::default() });
    assert!(matches!(
        s.sample(&mut logits(), &mut [0u32; 2]),
        Err(Error::BufferTooSmall { buffer: BufferKind::SamplerWork, needed: 6, given: 2 })
    ));
}

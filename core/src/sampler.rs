//! [`Sampler`]: picks the next token from logits — greedy, or temperature with top-k, top-p
//! (nucleus) and min-p truncation — after an optional repetition penalty over the last tokens,
//! with a seeded xorshift generator, so a seed reproduces a run on every target.
//!
//! The steps and their order are those of transformers' `generate`: repetition penalty
//! (`RepetitionPenaltyLogitsProcessor`), then temperature, top-k, top-p, min-p (the warpers),
//! then a draw. Each truncation keeps a prefix of the tokens sorted by probability, top-p
//! measures its mass within what top-k kept, and min-p compares with the most likely token
//! (so it does not depend on the others' cuts).

use crate::error::{BufferKind, Error};

/// Sampling settings.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SamplerConfig {
    /// Softmax temperature; `0.0` (or below) means greedy (argmax).
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens; `0` keeps all.
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose probability (within what top-k kept)
    /// reaches `top_p`; `1.0` (or above) keeps all.
    pub top_p: f32,
    /// Keep only tokens at least `min_p` times as likely as the most likely one; `0.0` keeps
    /// all.
    pub min_p: f32,
    /// Repetition penalty: the logit `l` of each distinct token among the last
    /// `repeat_last_n` becomes `l / penalty` if positive, `l * penalty` otherwise (as
    /// transformers and llama.cpp define it); `1.0` is off.
    pub repeat_penalty: f32,
    /// How many of the latest tokens the penalty looks at; `0` is off.
    pub repeat_last_n: usize,
    /// Generator seed (any value; 0 is remapped, xorshift needs a non-zero state).
    pub seed: u64,
}

impl Default for SamplerConfig {
    /// Greedy, nothing truncated, no penalty.
    fn default() -> Self {
        SamplerConfig {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repeat_penalty: 1.0,
            repeat_last_n: 0,
            seed: 0x5eed,
        }
    }
}

/// Next-token sampler with its own generator state.
#[derive(Debug, Clone)]
pub struct Sampler {
    config: SamplerConfig,
    state: u64,
}

impl Sampler {
    /// A sampler with `config`.
    pub fn new(config: SamplerConfig) -> Self {
        let state = if config.seed == 0 { 0x9e37_79b9_7f4a_7c15 } else { config.seed };
        Sampler { config, state }
    }

    /// The settings in force.
    pub fn config(&self) -> &SamplerConfig {
        &self.config
    }

    /// True when sampling is greedy.
    pub fn is_greedy(&self) -> bool {
        // NaN temperatures count as greedy too.
        self.config.temperature.partial_cmp(&0.0) != Some(core::cmp::Ordering::Greater)
    }

    /// True when the repetition penalty is on (a penalty other than 1 over at least one
    /// token).
    pub fn penalizes(&self) -> bool {
        self.config.repeat_last_n > 0 && self.config.repeat_penalty != 1.0
    }

    /// [`Self::sample_after`] with no earlier tokens (no repetition penalty).
    ///
    /// # Errors
    /// As [`Self::sample_after`].
    pub fn sample<I: SamplerIndex>(
        &mut self,
        logits: &mut [f32],
        work: &mut [I],
    ) -> Result<u32, Error> {
        self.sample_after(logits, work, &[])
    }

    /// Picks a token from `logits` (overwritten: penalised, then probabilities when not
    /// greedy) following `history`, the tokens so far (prompt and generated, oldest first), of
    /// which the last `repeat_last_n` are penalised. `work` holds at least `logits.len()`
    /// indices unless sampling is greedy without a penalty: `u32`, or `u16` for vocabularies
    /// of up to 65,536 tokens (half the memory; the same tokens). NaN logits never win.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] if `work` is too short; [`Error::SamplerIndexTooNarrow`] if
    /// its index type cannot address every token.
    pub fn sample_after<I: SamplerIndex>(
        &mut self,
        logits: &mut [f32],
        work: &mut [I],
        history: &[u32],
    ) -> Result<u32, Error> {
        let n = logits.len();
        let needs_work = !self.is_greedy() || (self.penalizes() && !history.is_empty());
        if !needs_work {
            return Ok(argmax(logits));
        }
        if n.checked_sub(1).is_some_and(|last| I::from_index(last).is_none()) {
            return Err(Error::SamplerIndexTooNarrow { vocab: n, max: I::ADDRESSABLE });
        }
        let given = work.len();
        let idx = work.get_mut(..n).ok_or(Error::BufferTooSmall {
            buffer: BufferKind::SamplerWork,
            needed: n,
            given,
        })?;
        if self.penalizes() {
            let window = history.len().saturating_sub(self.config.repeat_last_n);
            penalize(logits, history.get(window..).unwrap_or(&[]), self.config.repeat_penalty, idx);
        }
        if self.is_greedy() {
            return Ok(argmax(logits));
        }
        // Temperature softmax; NaN becomes probability 0.
        let inv_t = 1.0 / self.config.temperature;
        let max = logits.iter().copied().filter(|v| !v.is_nan()).fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0f32;
        for v in logits.iter_mut() {
            *v = if v.is_nan() { 0.0 } else { libm::expf((*v - max) * inv_t) };
            sum += *v;
        }
        if !(sum > 0.0 && sum.is_finite()) {
            return Ok(argmax(logits));
        }
        // The most likely token has exp(0) = 1 before normalising.
        let p_max = 1.0 / sum;
        for v in logits.iter_mut() {
            *v /= sum;
        }
        let kept = truncate(logits, idx, &self.config, p_max);
        let total: f32 = kept.iter().map(|i| prob(logits, *i)).sum();
        let r = self.uniform() * total;
        let mut acc = 0.0f32;
        for i in kept.iter() {
            acc += prob(logits, *i);
            if r < acc {
                return Ok(i.token());
            }
        }
        Ok(kept.last().map_or(0, |i| i.token()))
    }

    /// Uniform in `[0, 1)` from xorshift64*.
    fn uniform(&mut self) -> f32 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let bits = self.state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40; // 24 bits
        #[allow(clippy::cast_possible_truncation)] // 24 bits fit an f32 exactly
        let r = bits as u32 as f32 / (1u32 << 24) as f32;
        r
    }
}

/// The index type of the sampler's work buffer: `u32`, or `u16` where the vocabulary has at
/// most 65,536 tokens (the boards: half the memory).
pub trait SamplerIndex: Copy + Ord {
    /// How many distinct tokens it addresses (saturated at `usize::MAX`).
    const ADDRESSABLE: usize;
    /// Token `i` as an index, if it fits.
    fn from_index(i: usize) -> Option<Self>;
    /// The index as a `usize` position.
    fn position(self) -> usize;
    /// The index as a token id.
    fn token(self) -> u32;
}

impl SamplerIndex for u32 {
    const ADDRESSABLE: usize = if usize::BITS > 32 { 1 << 32 } else { usize::MAX };
    #[inline]
    fn from_index(i: usize) -> Option<Self> {
        u32::try_from(i).ok()
    }
    #[inline]
    fn position(self) -> usize {
        self as usize
    }
    #[inline]
    fn token(self) -> u32 {
        self
    }
}

impl SamplerIndex for u16 {
    const ADDRESSABLE: usize = 1 << 16;
    #[inline]
    fn from_index(i: usize) -> Option<Self> {
        u16::try_from(i).ok()
    }
    #[inline]
    fn position(self) -> usize {
        usize::from(self)
    }
    #[inline]
    fn token(self) -> u32 {
        u32::from(self)
    }
}

/// Probability of token `i` (0 for an index out of range).
fn prob<I: SamplerIndex>(probs: &[f32], i: I) -> f32 {
    probs.get(i.position()).copied().unwrap_or(0.0)
}

/// The repetition penalty on each distinct token of `recent` (ids past `logits` ignored);
/// `seen` (`logits.len()` long) marks the tokens done, so each is penalised once in
/// `O(recent)`.
fn penalize<I: SamplerIndex>(logits: &mut [f32], recent: &[u32], penalty: f32, seen: &mut [I]) {
    let (Some(unmarked), Some(marked)) = (I::from_index(0), I::from_index(1)) else {
        return;
    };
    for &t in recent {
        if let Some(s) = seen.get_mut(t as usize) {
            *s = unmarked;
        }
    }
    for &t in recent {
        if let (Some(s), Some(l)) = (seen.get_mut(t as usize), logits.get_mut(t as usize)) {
            if *s == unmarked {
                *s = marked;
                *l = if *l > 0.0 { *l / penalty } else { *l * penalty };
            }
        }
    }
}

/// The tokens top-k, top-p and min-p keep from `probs` (normalised; the largest is `p_max`),
/// most likely first, as a prefix of `idx`.
fn truncate<'i, I: SamplerIndex>(
    probs: &[f32],
    idx: &'i mut [I],
    config: &SamplerConfig,
    p_max: f32,
) -> &'i [I] {
    let n = idx.len();
    let by_prob_desc = |a: &I, b: &I| prob(probs, *b).total_cmp(&prob(probs, *a)).then(a.cmp(b));
    let min_p_floor = config.min_p * p_max;
    let top_k = config.top_k > 0 && config.top_k < n;
    // Candidates: all tokens, or (without top-k, whose mass top-p needs) only those min-p
    // keeps, so the sort below is over the survivors, not the vocabulary.
    let mut candidates = 0;
    for id in (0..n).filter_map(I::from_index) {
        if top_k || prob(probs, id) >= min_p_floor {
            if let Some(slot) = idx.get_mut(candidates) {
                *slot = id;
            }
            candidates += 1;
        }
    }
    let idx = idx.get_mut(..candidates).unwrap_or(&mut []);
    // `by_prob_desc` is a strict total order (ties broken by id), so every sort below gives
    // the same order: the boards' small heapsort and the host's pdqsort pick the same tokens.
    // Bare metal sorts the whole candidate list with a heapsort (a few hundred bytes of code
    // instead of ~12 KB for core's pdqsort and median-of-medians selection; the boards'
    // vocabularies are small), so top-k is its prefix; the host selects the top k first.
    #[cfg(target_os = "none")]
    heapsort_by(idx, |a, b| by_prob_desc(a, b).is_lt());
    #[cfg(not(target_os = "none"))]
    if top_k {
        idx.select_nth_unstable_by(config.top_k, by_prob_desc);
    }
    // Top-k: the k most likely are at the front; top-p then measures within their mass.
    let (kept, mass) = if top_k {
        let kept = idx.get_mut(..config.top_k).unwrap_or(&mut []);
        let mass: f32 = kept.iter().map(|i| prob(probs, *i)).sum();
        (kept, mass)
    } else {
        (idx, 1.0)
    };
    #[cfg(not(target_os = "none"))]
    kept.sort_unstable_by(by_prob_desc);
    // Top-p: the shortest prefix whose mass reaches top_p of the kept mass.
    let mut cut = kept.len();
    if config.top_p < 1.0 {
        let mut acc = 0.0f32;
        for (j, i) in kept.iter().enumerate() {
            acc += prob(probs, *i);
            if acc >= config.top_p * mass {
                cut = j + 1;
                break;
            }
        }
    }
    // Min-p: the prefix at least min_p times as likely as the most likely token.
    let cut = kept.iter().take(cut).position(|i| prob(probs, *i) < min_p_floor).unwrap_or(cut);
    let kept: &'i [I] = kept;
    kept.get(..cut.max(1)).unwrap_or(&[])
}

/// Index of the largest value; the first on ties; NaNs never win (0 if all are NaN).
pub fn argmax(v: &[f32]) -> u32 {
    let mut best: Option<(usize, f32)> = None;
    for (i, &x) in v.iter().enumerate() {
        if !x.is_nan() && best.is_none_or(|(_, b)| x > b) {
            best = Some((i, x));
        }
    }
    best.map_or(0, |(i, _)| u32::try_from(i).unwrap_or(u32::MAX))
}

/// Sorts `v` in place by `is_less` (a strict weak order): heapsort, no recursion, no
/// allocation, O(n log n) comparisons, and small code.
#[cfg_attr(not(any(target_os = "none", test)), allow(dead_code))]
fn heapsort_by<T: Copy>(v: &mut [T], is_less: impl Fn(&T, &T) -> bool) {
    let less = |v: &[T], i: usize, j: usize| match (v.get(i), v.get(j)) {
        (Some(a), Some(b)) => is_less(a, b),
        _ => false,
    };
    // Moves `v[root]` down the max-heap `v[..end]` until both children are not greater.
    let sift_down = |v: &mut [T], mut root: usize, end: usize| loop {
        let mut child = 2 * root + 1;
        if child >= end {
            break;
        }
        if child + 1 < end && less(v, child, child + 1) {
            child += 1;
        }
        if !less(v, root, child) {
            break;
        }
        v.swap(root, child);
        root = child;
    };
    let n = v.len();
    for root in (0..n / 2).rev() {
        sift_down(v, root, n);
    }
    for end in (1..n).rev() {
        v.swap(0, end);
        sift_down(v, 0, end);
    }
}

#[cfg(test)]
mod tests {
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

    use super::*;

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
        let mut s =
            Sampler::new(SamplerConfig { temperature: 1.0, seed: 11, ..Default::default() });
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
        assert!(Sampler::new(cfg)
            .sample_after(&mut logits.clone(), &mut [0u32; 0], &history)
            .is_err());
    }

    /// A `u16` work buffer gives the very tokens a `u32` one does, for every kind of
    /// truncation and the penalty, and refuses a vocabulary it cannot index.
    #[test]
    fn u16_indices_sample_as_u32_ones_do() {
        let n = 3_000;
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
            for step in 0..50 {
                let a = wide.sample_after(&mut logits.clone(), &mut w32, &history).unwrap();
                let b = narrow.sample_after(&mut logits.clone(), &mut w16, &history).unwrap();
                assert_eq!(a, b, "config {c} step {step}");
            }
        }
        let mut s = Sampler::new(SamplerConfig { temperature: 0.8, ..Default::default() });
        let big = 65_537;
        assert_eq!(
            s.sample(&mut vec![0.0; big], &mut vec![0u16; big]),
            Err(Error::SamplerIndexTooNarrow { vocab: big, max: 65_536 })
        );
        assert!(s.sample(&mut vec![0.0; big - 1], &mut vec![0u16; big - 1]).is_ok());
    }

    #[test]
    fn short_work_buffer_is_an_error() {
        let mut s = Sampler::new(SamplerConfig { temperature: 0.8, ..Default::default() });
        assert!(matches!(
            s.sample(&mut logits(), &mut [0u32; 2]),
            Err(Error::BufferTooSmall { buffer: BufferKind::SamplerWork, needed: 6, given: 2 })
        ));
    }
}

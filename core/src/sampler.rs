//! [`Sampler`]: picks the next token from logits — greedy, or temperature with top-k and
//! top-p (nucleus) truncation — with a seeded xorshift generator, so a seed reproduces a run
//! on every target.

use crate::error::{BufferKind, Error};

/// Sampling settings.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SamplerConfig {
    /// Softmax temperature; `0.0` (or below) means greedy (argmax).
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens; `0` keeps all.
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose probability reaches `top_p`;
    /// `1.0` (or above) keeps all.
    pub top_p: f32,
    /// Generator seed (any value; 0 is remapped, xorshift needs a non-zero state).
    pub seed: u64,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig { temperature: 0.0, top_k: 0, top_p: 1.0, seed: 0x5eed }
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

    /// True when sampling is greedy (needs no work buffer).
    pub fn is_greedy(&self) -> bool {
        // NaN temperatures count as greedy too.
        self.config.temperature.partial_cmp(&0.0) != Some(core::cmp::Ordering::Greater)
    }

    /// Picks a token from `logits` (overwritten with probabilities when not greedy). `work`
    /// holds at least `logits.len()` indices unless sampling is greedy. NaN logits never win.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] if `work` is too short for non-greedy sampling.
    pub fn sample(&mut self, logits: &mut [f32], work: &mut [u32]) -> Result<u32, Error> {
        if self.is_greedy() {
            return Ok(argmax(logits));
        }
        let n = logits.len();
        let given = work.len();
        let idx = work.get_mut(..n).ok_or(Error::BufferTooSmall {
            buffer: BufferKind::SamplerWork,
            needed: n,
            given,
        })?;
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
        for v in logits.iter_mut() {
            *v /= sum;
        }

        for (i, slot) in idx.iter_mut().enumerate() {
            *slot = u32::try_from(i).unwrap_or(u32::MAX);
        }
        let prob = |i: &u32| logits.get(*i as usize).copied().unwrap_or(0.0);
        let by_prob_desc = |a: &u32, b: &u32| prob(b).total_cmp(&prob(a)).then(a.cmp(b));
        // Top-k: move the k most likely to the front.
        let mut keep = n;
        if self.config.top_k > 0 && self.config.top_k < n {
            idx.select_nth_unstable_by(self.config.top_k, by_prob_desc);
            keep = self.config.top_k;
        }
        let kept = idx.get_mut(..keep).unwrap_or(&mut []);
        kept.sort_unstable_by(by_prob_desc);
        // Top-p: shortest prefix whose mass reaches top_p.
        let mut mass = 0.0f32;
        let mut cut = kept.len();
        if self.config.top_p < 1.0 {
            for (j, i) in kept.iter().enumerate() {
                mass += prob(i);
                if mass >= self.config.top_p {
                    cut = j + 1;
                    break;
                }
            }
        }
        let kept = kept.get(..cut.max(1)).unwrap_or(&[]);
        let total: f32 = kept.iter().map(prob).sum();
        let r = self.uniform() * total;
        let mut acc = 0.0f32;
        for i in kept {
            acc += prob(i);
            if r < acc {
                return Ok(*i);
            }
        }
        Ok(kept.last().copied().unwrap_or(0))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn logits() -> Vec<f32> {
        vec![1.0, 3.0, 2.0, f32::NAN, 2.5, -1.0]
    }

    #[test]
    fn greedy_is_argmax_and_ignores_nan() {
        let mut s = Sampler::new(SamplerConfig::default());
        assert_eq!(s.sample(&mut logits(), &mut []).unwrap(), 1);
        assert_eq!(argmax(&[f32::NAN, f32::NAN]), 0);
        assert_eq!(argmax(&[f32::NAN, -5.0]), 1);
    }

    #[test]
    fn top_k_1_is_greedy_and_seeds_reproduce() {
        let cfg = SamplerConfig { temperature: 1.0, top_k: 1, ..Default::default() };
        let mut work = vec![0; 6];
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
        let mut work = vec![0; 3];
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

    #[test]
    fn short_work_buffer_is_an_error() {
        let mut s = Sampler::new(SamplerConfig { temperature: 0.8, ..Default::default() });
        assert!(matches!(
            s.sample(&mut logits(), &mut [0; 2]),
            Err(Error::BufferTooSmall { buffer: BufferKind::SamplerWork, needed: 6, given: 2 })
        ));
    }
}

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
mod tests;

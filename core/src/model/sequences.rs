//! One decode step over several independent sequences (a server's sessions): every weight row
//! is read once for all of them, each token attends over its own sequence's cache.

use super::ModelWith;
use crate::batch::BatchScratch;
use crate::cache::LatentCache;
use crate::error::{BufferKind, Error};
use crate::parallel::Parallel;
use crate::scratch::Scratch;

impl<const MAX_LAYERS: usize> ModelWith<'_, MAX_LAYERS> {
    /// Runs `tokens[i]` as the next token of the sequence whose cache is `caches[i]`, for
    /// every `i` at once, and writes each token's next-token logits to
    /// `logits[i * vocab_size ..][..vocab_size]`. Each sequence's logits and cache are
    /// bit-identical to [`ModelWith::forward_with`] run on that sequence alone; the batch only
    /// changes how often the weights are read (once per step, not once per sequence).
    /// `scratch` lends its RoPE frequencies; its logits are not touched.
    ///
    /// Every token and cache is checked before anything is stored: on error every cache is
    /// unchanged.
    ///
    /// # Errors
    /// [`Error::InvalidBatch`] unless `1 <= tokens.len() == caches.len() <=
    /// batch.max_tokens()`; [`Error::BufferTooSmall`] if `logits` is shorter than `tokens.len()
    /// * vocab_size`; otherwise what [`ModelWith::forward`] would return for the first
    /// sequence that fails: [`Error::TokenOutOfRange`], [`Error::CacheMismatch`],
    /// [`Error::PositionBeyondContext`], [`Error::CacheFull`].
    pub fn forward_sequences(
        &self,
        tokens: &[u32],
        caches: &mut [&mut LatentCache<'_>],
        scratch: &Scratch<'_>,
        batch: &mut BatchScratch<'_>,
        logits: &mut [f32],
        par: &dyn Parallel,
    ) -> Result<(), Error> {
        let c = &self.config;
        let n = tokens.len();
        if n == 0 || n != caches.len() || n > batch.max_tokens {
            let max = u32::try_from(batch.max_tokens).unwrap_or(u32::MAX);
            return Err(Error::InvalidBatch { max });
        }
        let vocab = c.vocab_size;
        let needed = n.checked_mul(vocab).ok_or(Error::SizeOverflow)?;
        if logits.len() < needed {
            let given = logits.len();
            return Err(Error::BufferTooSmall { buffer: BufferKind::Logits, needed, given });
        }
        let vocab_size = u32::try_from(vocab).unwrap_or(u32::MAX);
        if let Some(&token) = tokens.iter().find(|&&t| t >= vocab_size) {
            return Err(Error::TokenOutOfRange { token, vocab_size });
        }
        for cache in caches.iter() {
            if !cache.fits(c) {
                return Err(Error::CacheMismatch);
            }
            cache.check_room(1, c.context_length)?;
        }
        // Each cache picks its slot (a full cache under `Shift` shifts here, as a lone token's
        // `begin` would); the checks above make these succeed.
        let mut positions = [0u64; BatchScratch::MAX_TOKENS];
        for (pos, cache) in positions.iter_mut().zip(caches.iter_mut()) {
            *pos = cache.begin(c.context_length)?;
        }

        self.embed_batch(tokens, |i| positions.get(i).copied().unwrap_or(0), scratch, batch);
        self.layers_batch(n, caches, batch, par);
        for cache in caches.iter_mut() {
            cache.commit();
        }
        self.head_batch(n, batch, logits, par);
        Ok(())
    }

    /// The LM head over the `n` residual streams in `b.x`: final norm, then the output matrix
    /// as batched products of at most the batch scratch's rows at a time, into `logits`
    /// (`[n][vocab]`).
    fn head_batch(
        &self,
        n: usize,
        b: &mut BatchScratch<'_>,
        logits: &mut [f32],
        par: &dyn Parallel,
    ) {
        let c = &self.config;
        let h = b.w.hidden.max(1);
        for (xn, x) in b.xn.chunks_exact_mut(h).zip(b.x.chunks_exact(h)).take(n) {
            self.output_norm.rms_norm(xn, x, c.rms_norm_eps);
        }
        let vocab = c.vocab_size;
        let step = b.w.max_rows.max(1);
        for first in (0..vocab).step_by(step) {
            let rows = step.min(vocab - first);
            let head = self.output.sub_rows(first, rows);
            let out = logits.get_mut(first..).unwrap_or(&mut []);
            head.matmul(b.xn, h, n, out, vocab, b.tmp, b.blocks, par);
        }
    }
}

//! A model whose batched products read weights packed once at load (see
//! `crate::weights::packed`): what a host that batches (a server's decode steps, long prompts)
//! trades memory for.

#[cfg(feature = "packed-weights")]
use super::Layer;
use super::{Ffn, ModelWith};
#[cfg(feature = "packed-weights")]
use crate::error::{BufferKind, Error};
use crate::ffn::Mlp;
use crate::kernels;
use crate::mla::QueryProj;
use crate::weights::Matrix;

impl<'a, const MAX_LAYERS: usize> ModelWith<'a, MAX_LAYERS> {
    /// Bytes [`ModelWith::with_packed_weights`] needs with this CPU's kernels: the whole groups
    /// of every Q8_0 / Q4_0 matrix that batched products multiply (about 1.06× those matrices'
    /// bytes for Q8_0, 2.1× for Q4_0). 0 where the kernels have no packed-group product or the
    /// `packed-weights` feature is off.
    pub fn packed_weight_bytes(&self) -> usize {
        let k = kernels::active();
        let mut total = 0usize;
        let mut copy = self.clone();
        copy.for_each_batched_matrix(&mut |m| total = total.saturating_add(m.packed_len(k)));
        total
    }

    /// This model with every batched product's weights packed once into `mem` (at least
    /// [`ModelWith::packed_weight_bytes`] bytes): batched steps
    /// ([`ModelWith::forward_batch`], [`ModelWith::forward_sequences`]) then skip packing each
    /// row chunk per call. Every result is bit-identical to this model's; token-by-token steps
    /// do not change at all.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] if `mem` is shorter than [`ModelWith::packed_weight_bytes`].
    #[cfg(feature = "packed-weights")]
    pub fn with_packed_weights<'p>(
        &self,
        mem: &'p mut [u8],
    ) -> Result<ModelWith<'p, MAX_LAYERS>, Error>
    where
        'a: 'p,
    {
        let needed = self.packed_weight_bytes();
        if mem.len() < needed {
            let given = mem.len();
            return Err(Error::BufferTooSmall { buffer: BufferKind::PackedWeights, needed, given });
        }
        let mut layers = heapless::Vec::new();
        for layer in &self.layers {
            let layer: Layer<'p> = *layer;
            if layers.push(layer).is_err() {
                return Err(crate::ConfigError::InvalidValue(crate::config::KEY_BLOCK_COUNT).into());
            }
        }
        let mut model = ModelWith {
            config: self.config,
            options: self.options,
            token_embd: self.token_embd,
            output_norm: self.output_norm,
            output: self.output,
            is_tied: self.is_tied,
            fingerprint: self.fingerprint,
            layers,
            mla_shape: self.mla_shape,
        };
        let k = kernels::active();
        let mut rest = mem;
        model.for_each_batched_matrix(&mut |m| *m = m.pack_into(k, &mut rest));
        Ok(model)
    }

    /// Calls `f` on every matrix a batched step multiplies with [`Matrix::matmul`]: the
    /// projections, MLPs, routers and experts of every layer, and the LM head. (The latent
    /// up-projections go through per-token products; the embedding is looked up by row.)
    fn for_each_batched_matrix(&mut self, f: &mut impl FnMut(&mut Matrix<'a>)) {
        let mlp = |m: &mut Mlp<'a>, f: &mut dyn FnMut(&mut Matrix<'a>)| {
            f(&mut m.gate);
            f(&mut m.up);
            f(&mut m.down);
        };
        f(&mut self.output);
        for layer in &mut self.layers {
            match &mut layer.attn.q {
                QueryProj::Direct(m) => f(m),
                QueryProj::LoRA { a, b, .. } => {
                    f(a);
                    f(b);
                }
            }
            f(&mut layer.attn.kv_a);
            f(&mut layer.attn.output);
            match &mut layer.ffn {
                Ffn::Dense(m) => mlp(m, f),
                Ffn::Moe(w) => {
                    f(&mut w.router);
                    mlp(&mut w.experts, f);
                    if let Some(shared) = &mut w.shared {
                        mlp(shared, f);
                    }
                }
            }
        }
    }
}

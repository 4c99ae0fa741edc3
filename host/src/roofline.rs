//! The memory roofline of decoding: how many weight bytes one token reads, and how fast this
//! machine can read memory. Decode is a chain of matrix-vector products, each weight byte used
//! once per token, so `bytes/token × tok/s ÷ read bandwidth` says how close a model that does
//! not fit the caches gets to the machine's limit.

use std::time::Instant;

use tinymla_core::{Gguf, ModelConfig};

/// Weight bytes one decode step reads, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeightTraffic {
    /// Every tensor read whole each token: attention, dense FFN, shared experts, router, norms
    /// and the LM head (the embedding table too when the LM head is tied to it).
    pub dense_bytes: u64,
    /// Routed-expert tensors (`*_exps`) at `n_used / n_experts` of their size: the experts a
    /// token picks, on average.
    pub routed_bytes: u64,
    /// One row of the embedding table (0 when it is the tied LM head, already counted whole).
    pub embedding_row_bytes: u64,
    /// Bytes of every tensor in the file.
    pub file_tensor_bytes: u64,
}

impl WeightTraffic {
    /// Of a GGUF file, for the routing its config states (`None` if it is not a runnable
    /// deepseek2 config).
    pub fn of(gguf: &Gguf<'_>) -> Option<Self> {
        let c = ModelConfig::from_gguf(gguf).ok()?;
        let (used, experts) =
            c.moe.map_or((0, 1), |m| (m.num_experts_per_tok as u64, m.n_routed_experts as u64));
        let is_tied = gguf.tensor("output.weight").is_none();
        let mut t = WeightTraffic {
            dense_bytes: 0,
            routed_bytes: 0,
            embedding_row_bytes: 0,
            file_tensor_bytes: 0,
        };
        for v in gguf.tensors() {
            let bytes = v.bytes.len() as u64;
            t.file_tensor_bytes += bytes;
            if v.name == "token_embd.weight" && !is_tied {
                t.embedding_row_bytes = bytes / (c.vocab_size as u64).max(1);
            } else if v.name.ends_with("_exps.weight") {
                t.routed_bytes += bytes * used / experts.max(1);
            } else {
                t.dense_bytes += bytes;
            }
        }
        Some(t)
    }

    /// Weight bytes read per decoded token.
    pub fn per_token(&self) -> u64 {
        self.dense_bytes + self.routed_bytes + self.embedding_row_bytes
    }
}

/// Sum of `buf` as `u64` words (wrapping), with independent accumulators so the loop is bound
/// by memory reads, not by an add chain: the read half of a STREAM-like measurement.
pub fn stream_sum(buf: &[u8]) -> u64 {
    let (words, _) = buf.as_chunks::<8>();
    let (lines, rest) = words.as_chunks::<8>();
    let mut acc = [0u64; 8];
    for line in lines {
        for (a, w) in acc.iter_mut().zip(line) {
            *a = a.wrapping_add(u64::from_ne_bytes(*w));
        }
    }
    let tail = rest.iter().fold(0u64, |s, w| s.wrapping_add(u64::from_ne_bytes(*w)));
    acc.iter().fold(tail, |s, a| s.wrapping_add(*a))
}

/// Reads all of `buf` once with `threads` threads (contiguous equal parts, one per thread) and
/// returns the sum and the seconds it took.
pub fn timed_read(buf: &[u8], threads: usize) -> (u64, f64) {
    // Parts are whole cache lines, so no word is split between two threads.
    let part = buf.len().div_ceil(threads.max(1)).next_multiple_of(64).max(64);
    let start = Instant::now();
    let sum = std::thread::scope(|s| {
        let handles: Vec<_> = buf.chunks(part).map(|c| s.spawn(move || stream_sum(c))).collect();
        handles.into_iter().fold(0u64, |acc, h| acc.wrapping_add(h.join().unwrap_or(0)))
    });
    (sum, start.elapsed().as_secs_f64())
}

/// Best-of-`repeats` read bandwidth in bytes per second over `buf` with `threads` threads.
/// `buf` should be far larger than the last-level cache, and already written (so its pages
/// are mapped).
pub fn read_bandwidth(buf: &[u8], threads: usize, repeats: usize) -> f64 {
    let best = (0..repeats.max(1))
        .map(|_| std::hint::black_box(timed_read(std::hint::black_box(buf), threads)).1)
        .fold(f64::INFINITY, f64::min);
    buf.len() as f64 / best.max(1e-12)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{SynthSpec, WeightType};

    #[test]
    fn stream_sum_counts_every_word() {
        let buf: Vec<u8> = (0..1000u32).flat_map(|i| u64::from(i).to_ne_bytes()).collect();
        assert_eq!(stream_sum(&buf), 999 * 1000 / 2);
        assert_eq!(timed_read(&buf, 3).0, 999 * 1000 / 2);
        assert_eq!(stream_sum(&buf[..8 * 67]), 66 * 67 / 2);
    }

    /// The scaled V2-Lite model at F32: every matrix is 4 bytes per element, so the traffic
    /// follows from the shapes by hand.
    #[test]
    fn traffic_of_synthetic_moe_model() {
        let mut spec = SynthSpec::v2_lite_scaled(WeightType::F32);
        spec.hidden_size = 64;
        spec.vocab_size = 100;
        spec.intermediate_size = 96;
        spec.moe_intermediate_size = 32;
        spec.kv_lora_rank = 32;
        spec.qk_rope_head_dim = 8;
        spec.qk_nope_head_dim = 16;
        spec.v_head_dim = 16;
        spec.num_attention_heads = 2;
        let bytes = spec.to_gguf(3);
        let gguf = Gguf::parse(&bytes).unwrap();
        let t = WeightTraffic::of(&gguf).unwrap();

        let (h, v, l) = (64u64, 100u64, 4u64);
        let attn = h * 2 * 24 + h * 40 + 32 + 2 * 32 * 16 * 2 + 2 * 16 * h + 2 * h;
        let dense_ffn = 3 * h * 96;
        let moe_layers = l - 1;
        let shared = 3 * h * 32 * 2;
        let router = h * 6;
        let dense = 4 * (h + h * v + l * attn + dense_ffn + moe_layers * (shared + router));
        assert_eq!(t.dense_bytes, dense);
        // 6 experts, 2 used: a third of the stacked expert tensors.
        assert_eq!(t.routed_bytes, 4 * moe_layers * 3 * h * 32 * 6 / 3);
        assert_eq!(t.embedding_row_bytes, 4 * h);
        assert_eq!(t.file_tensor_bytes, 4 * spec.n_params() as u64);
        assert_eq!(t.per_token(), dense + t.routed_bytes + 4 * h);
    }

    /// Without `output.weight` the embedding table is the LM head, read whole every token.
    #[test]
    fn tied_head_counts_the_whole_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/v3_dense_tied.gguf");
        let bytes = std::fs::read(path).unwrap();
        let gguf = Gguf::parse(&bytes).unwrap();
        let t = WeightTraffic::of(&gguf).unwrap();
        assert_eq!(t.embedding_row_bytes, 0);
        assert_eq!(t.per_token(), t.file_tensor_bytes);
    }
}

//! Hostile input: thousands of mutated and truncated variants of the fixture GGUFs go through
//! the reader, the loader and a forward step. Every one must end in `Err` or a working model —
//! never a panic, never an out-of-bounds read.

use crate::common::{read_fixture, GOLDEN_MODELS};
use std::panic::{catch_unwind, AssertUnwindSafe};
use tinymla_core::{CacheOptions, Error, Gguf, LatentCache, Model, Scratch};

/// Variants per fixture model; with four fixtures this is > 10,000 in total.
const VARIANTS_PER_MODEL: usize = 2_600;
/// Forward steps run on variants that load; sized to keep allocations small.
const CAPACITY: usize = 3;
/// Largest scratch + cache (in f32 elements) a loaded variant may ask this test for.
const MAX_ELEMS: usize = 1 << 24;

/// Deterministic xorshift64* generator, so a failure names a reproducible variant.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Values that break naive readers when written over a length, count or offset.
const NASTY: [u64; 10] =
    [0, 1, 3, 0xff, 0x7fff_ffff, 0xffff_ffff, 0x1_0000_0000, 1 << 40, 1 << 63, u64::MAX];

/// One mutation of `base`, chosen by `rng`; `header_len` is the metadata + tensor-info part.
fn mutate(base: &[u8], header_len: usize, rng: &mut Rng) -> Vec<u8> {
    let mut v = base.to_vec();
    match rng.below(6) {
        // Truncate anywhere, mostly inside the header.
        0 => {
            let cut =
                if rng.below(4) == 0 { rng.below(v.len()) } else { rng.below(header_len + 1) };
            v.truncate(cut);
        }
        // Flip a few random header bytes.
        1 => {
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(header_len);
                v[i] ^= 1 << rng.below(8);
            }
        }
        // Overwrite a u64 at a random header offset with a nasty value.
        2 => {
            let i = rng.below(header_len.saturating_sub(8));
            let val = NASTY[rng.below(NASTY.len())];
            v[i..i + 8].copy_from_slice(&val.to_le_bytes());
        }
        // Overwrite a u32 with a nasty value.
        3 => {
            let i = rng.below(header_len.saturating_sub(4));
            let val = NASTY[rng.below(NASTY.len())] as u32;
            v[i..i + 4].copy_from_slice(&val.to_le_bytes());
        }
        // Random bytes over a header span.
        4 => {
            let i = rng.below(header_len);
            let n = 1 + rng.below(32);
            for b in v.iter_mut().skip(i).take(n) {
                *b = rng.next() as u8;
            }
        }
        // Corrupt the weights: NaN/Inf/huge floats must not panic either.
        _ => {
            for _ in 0..16 {
                let i = header_len + rng.below(v.len() - header_len - 4);
                let val = [f32::NAN, f32::INFINITY, -f32::INFINITY, 3e38][rng.below(4)];
                v[i..i + 4].copy_from_slice(&val.to_le_bytes());
            }
        }
    }
    v
}

/// Parses, loads and (if it loads) steps a variant. Returns which stage it got to.
fn exercise(bytes: &[u8]) -> Result<&'static str, Error> {
    let gguf = Gguf::parse(bytes)?;
    // Touch every lookup path the host tools use.
    for (_, value) in gguf.metadata() {
        if let Some(a) = value.as_array() {
            a.iter().for_each(drop);
        }
    }
    gguf.tensors().for_each(drop);
    let model = Model::load(bytes)?;
    let cfg = model.config();
    let options = CacheOptions::default();
    let cache_bytes = LatentCache::bytes_needed(cfg, CAPACITY, options.storage)?;
    let scratch_elems = cfg.scratch_elems(CAPACITY)?;
    if cache_bytes / 4 + scratch_elems > MAX_ELEMS {
        return Ok("loaded (too large to step here)");
    }
    let mut cache_mem = vec![0u8; cache_bytes];
    let mut scratch_mem = vec![0.0; scratch_elems];
    let mut cache = LatentCache::new(cfg, CAPACITY, options, &mut cache_mem)?;
    let mut scratch = Scratch::new(cfg, CAPACITY, &mut scratch_mem)?;
    let vocab = cfg.vocab_size as u32;
    assert!(matches!(
        model.forward(vocab, &mut cache, &mut scratch),
        Err(Error::TokenOutOfRange { .. })
    ));
    for token in [0, vocab - 1, vocab / 2] {
        model.forward(token, &mut cache, &mut scratch)?;
    }
    assert!(matches!(model.forward(0, &mut cache, &mut scratch), Err(Error::CacheFull { .. })));
    Ok("stepped")
}

#[test]
fn mutated_and_truncated_fixtures_never_panic() {
    let mut total = 0usize;
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    for (m, name) in GOLDEN_MODELS.iter().enumerate() {
        let base = read_fixture(&format!("{name}.gguf"));
        let header_len = Gguf::parse(&base).expect("fixture parses").data_offset() as usize;
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (m as u64 + 1));
        for i in 0..VARIANTS_PER_MODEL {
            let variant = mutate(&base, header_len, &mut rng);
            let result = catch_unwind(AssertUnwindSafe(|| exercise(&variant)));
            let outcome = match result {
                Ok(Ok(stage)) => stage.to_string(),
                Ok(Err(e)) => {
                    format!("{:?}", e).split(['(', ' ', '{']).next().unwrap_or("").to_string()
                }
                Err(_) => panic!("{name} variant {i} panicked (len {})", variant.len()),
            };
            *outcomes.entry(outcome).or_default() += 1;
            total += 1;
        }
    }
    eprintln!("hostile: {total} variants: {outcomes:?}");
    assert!(total >= 10_000);
}

mod model_validation {
    //! Hand-written hostile models: each one well-formed GGUF with exactly one thing wrong,
    //! asserting the exact error. See: issue #10.

    use crate::common::{read_fixture, rewrite, Edit};
    use tinymla_core::config::*;
    use tinymla_core::gguf::Gguf;
    use tinymla_core::{ConfigError, Error, Model, ModelOptions, TensorId, TensorKind};
    use tinymla_host::gguf_writer::Value;

    fn base() -> Vec<u8> {
        read_fixture("v3_qlora_grouped.gguf")
    }

    /// The fixture with `key` set to `value`.
    fn with_key(key: &'static str, value: Value) -> Vec<u8> {
        let add = if Gguf::parse(&base()).unwrap().get(key).is_some() {
            vec![]
        } else {
            vec![(key, value.clone())]
        };
        rewrite(
            &base(),
            |k| if k == key { Edit::Set(value.clone()) } else { Edit::Keep },
            add,
            Some,
        )
    }

    fn load_err(bytes: &[u8]) -> Error {
        Model::load(bytes).unwrap_err()
    }

    #[test]
    fn the_rewriter_itself_preserves_a_valid_model() {
        let same = rewrite(&base(), |_| Edit::Keep, vec![], Some);
        assert!(Model::load(&same).is_ok());
    }

    #[test]
    fn config_values_out_of_range_are_rejected_by_name() {
        let cases: [(&'static str, Value, ConfigError); 10] = [
            (KEY_VOCAB_SIZE, Value::U32(0), ConfigError::InvalidValue(KEY_VOCAB_SIZE)),
            (KEY_HEAD_COUNT, Value::U32(0), ConfigError::InvalidValue(KEY_HEAD_COUNT)),
            (KEY_BLOCK_COUNT, Value::U32(0), ConfigError::InvalidValue(KEY_BLOCK_COUNT)),
            (KEY_KV_LORA_RANK, Value::U32(37), ConfigError::InvalidValue(KEY_KV_LORA_RANK)),
            (
                KEY_EXPERT_USED_COUNT,
                Value::U32(9),
                ConfigError::InvalidValue(KEY_EXPERT_USED_COUNT),
            ),
            (
                KEY_EXPERT_GROUP_COUNT,
                Value::U32(3),
                ConfigError::InvalidValue(KEY_EXPERT_GROUP_COUNT),
            ),
            (
                KEY_ROPE_DIMENSION_COUNT,
                Value::U32(5),
                ConfigError::InvalidValue(KEY_ROPE_DIMENSION_COUNT),
            ),
            (KEY_RMS_EPS, Value::F32(f32::NAN), ConfigError::InvalidValue(KEY_RMS_EPS)),
            (
                KEY_EXPERT_GATING_FUNC,
                Value::U32(3),
                ConfigError::Unsupported(KEY_EXPERT_GATING_FUNC),
            ),
            (
                KEY_ROPE_SCALING_TYPE,
                Value::Str("longrope".into()),
                ConfigError::Unsupported(KEY_ROPE_SCALING_TYPE),
            ),
        ];
        for (key, value, want) in cases {
            assert_eq!(load_err(&with_key(key, value)), Error::Config(want), "{key}");
        }
    }

    #[test]
    fn wrong_key_types_and_missing_keys_are_named() {
        assert_eq!(
            load_err(&with_key(KEY_HEAD_COUNT, Value::Str("three".into()))),
            Error::Config(ConfigError::WrongKeyType(KEY_HEAD_COUNT))
        );
        let no_heads = rewrite(
            &base(),
            |k| if k == KEY_HEAD_COUNT { Edit::Drop } else { Edit::Keep },
            vec![],
            Some,
        );
        assert_eq!(load_err(&no_heads), Error::Config(ConfigError::MissingKey(KEY_HEAD_COUNT)));
        assert_eq!(
            load_err(&with_key(KEY_ARCHITECTURE, Value::Str("llama".into()))),
            Error::Config(ConfigError::UnsupportedArchitecture)
        );
    }

    #[test]
    fn missing_and_misshapen_tensors_are_named() {
        let missing = rewrite(
            &base(),
            |_| Edit::Keep,
            vec![],
            |t| (t.name != "blk.1.attn_kv_a_mqa.weight").then_some(t),
        );
        assert_eq!(
            load_err(&missing),
            Error::MissingTensor(TensorId::layer(1, TensorKind::AttnKvAMqa))
        );

        // Reshape blk.2.attn_output from [42, 36] to [36, 42]: same bytes, wrong dims.
        let misshapen = rewrite(
            &base(),
            |_| Edit::Keep,
            vec![],
            |mut t| {
                if t.name == "blk.2.attn_output.weight" {
                    t.ne.reverse();
                }
                Some(t)
            },
        );
        let err = load_err(&misshapen);
        assert_eq!(
            err,
            Error::ShapeMismatch {
                tensor: TensorId::layer(2, TensorKind::AttnOutput),
                expected: [42, 36, 1],
                found: [36, 42, 1],
            }
        );
        assert_eq!(err.to_string(), "blk.2.attn_output.weight: expected dims [42, 36, 1] (ggml ne order), found [36, 42, 1]");
    }

    #[test]
    fn expert_tensors_inconsistent_with_the_expert_count_are_rejected() {
        let fewer = rewrite(
            &base(),
            |_| Edit::Keep,
            vec![],
            |mut t| {
                if t.name == "blk.1.ffn_up_exps.weight" {
                    // 7 experts instead of 8 (drop the last expert's rows).
                    t.ne[2] = 7;
                    let keep = t.bytes.len() / 8 * 7;
                    t.bytes.truncate(keep);
                }
                Some(t)
            },
        );
        assert!(matches!(
            load_err(&fewer),
            Error::ShapeMismatch {
                tensor: TensorId { layer: Some(1), kind: TensorKind::FfnUpExps },
                ..
            }
        ));
    }

    #[test]
    fn unsupported_weight_types_are_named() {
        // Declare blk.0.attn_q_a ([36, 22]) as I32 (same byte size as F32): valid GGUF, but
        // not a weight type the engine computes with.
        let i32_weights = rewrite(
            &base(),
            |_| Edit::Keep,
            vec![],
            |mut t| {
                if t.name == "blk.0.attn_q_a.weight" {
                    t.ggml_type = 26;
                }
                Some(t)
            },
        );
        assert_eq!(
            load_err(&i32_weights),
            Error::UnsupportedTensorType {
                tensor: TensorId::layer(0, TensorKind::AttnQA),
                ggml_type: 26
            }
        );
    }

    #[test]
    fn non_finite_weights_are_caught_when_asked() {
        let poisoned = rewrite(
            &base(),
            |_| Edit::Keep,
            vec![],
            |mut t| {
                if t.name == "blk.2.attn_v_b.weight" {
                    t.bytes[8..12].copy_from_slice(&f32::NAN.to_le_bytes());
                }
                Some(t)
            },
        );
        assert!(Model::load(&poisoned).is_ok(), "the check is opt-in");
        let strict = ModelOptions { check_finite_weights: true, ..Default::default() };
        assert_eq!(
            Model::from_gguf(&Gguf::parse(&poisoned).unwrap(), strict).unwrap_err(),
            Error::NonFiniteWeight(TensorId::layer(2, TensorKind::AttnVB))
        );
        assert!(Model::from_gguf(&Gguf::parse(&base()).unwrap(), strict).is_ok());
    }
}

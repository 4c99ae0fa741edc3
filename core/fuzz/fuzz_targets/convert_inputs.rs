//! `convert`'s handling of a hostile Hugging Face checkpoint: `config.json`, `tokenizer.json`
//! (and `tokenizer_config.json`) and a safetensors shard, all arbitrary. Every step the real
//! `convert` takes — config validation, the safetensors header, the tensor plan with its
//! shape checks, the tokenizer keys, the GGUF header, reading and encoding rows — returns
//! `Ok` or a typed error and never panics or allocates beyond what the input's sizes allow.
//!
//! Input: three little-endian u16 lengths (config, tokenizer, tokenizer_config), those three
//! JSON texts, then the safetensors shard's bytes.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use serde_json::Value as Json;
use tinymla_core::GgmlType;
use tinymla_host::convert::checkpoint::Checkpoint;
use tinymla_host::convert::hf_config::HfConfig;
use tinymla_host::convert::{plan, quantize, vocab};
use tinymla_host::gguf_writer::{self, TensorInfo};

/// Rows read and encoded per tensor (the first and the last).
const TYPES: [GgmlType; 4] = [GgmlType::F32, GgmlType::F16, GgmlType::Q8_0, GgmlType::Q4_0];

fn take<'a>(data: &mut &'a [u8], n: usize) -> &'a [u8] {
    let (head, rest) = data.split_at(n.min(data.len()));
    *data = rest;
    head
}

fuzz_target!(|data: &[u8]| {
    let Some((lens, mut rest)) = data.split_first_chunk::<6>() else { return };
    let len = |i: usize| usize::from(u16::from_le_bytes([lens[i], lens[i + 1]]));
    let (config, tok, tc) =
        (take(&mut rest, len(0)), take(&mut rest, len(2)), take(&mut rest, len(4)));
    let shard = rest;

    let Ok(config) = serde_json::from_slice::<Json>(config) else { return };
    let Ok(cfg) = HfConfig::from_json(&config) else { return };
    let _ = cfg.metadata();
    let Ok(ckpt) = Checkpoint::from_buffers([(Path::new("model.safetensors"), shard)]) else {
        return;
    };
    let Ok(tensors) = plan::build(&cfg, &ckpt) else { return };
    if let Ok(tok) = serde_json::from_slice::<Json>(tok) {
        let tc = serde_json::from_slice::<Json>(tc).ok();
        let _ = vocab::metadata_from_json(&tok, tc.as_ref(), &cfg, Path::new("/nonexistent"));
    }
    let mut infos = Vec::new();
    let mut row = Vec::new();
    let mut encoded = Vec::new();
    for (i, t) in tensors.iter().enumerate() {
        let ty = TYPES[i % TYPES.len()];
        let ty = if t.row_len() % 32 == 0 { ty } else { GgmlType::F16 };
        infos.push(TensorInfo {
            name: t.name.clone(),
            ne: t.ne.clone(),
            ggml_type: ty.id(),
            n_bytes: (quantize::row_bytes(ty, t.row_len()) * t.n_rows()) as u64,
        });
        row.resize(t.row_len(), 0.0f32);
        for r in [0, t.n_rows().saturating_sub(1)] {
            if r < t.n_rows() {
                t.read_row(r, &mut row);
                encoded.clear();
                quantize::encode_row(ty, &row, &mut encoded);
            }
        }
    }
    let mut header = Vec::new();
    gguf_writer::write_header(&mut header, &[], &infos).unwrap();
});

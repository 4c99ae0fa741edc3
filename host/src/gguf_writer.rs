//! A minimal GGUF v3 writer: metadata, then tensor infos, then 32-byte-aligned tensor data in
//! the order ggml requires. Used by the synthetic-model generator (benches) and by `convert`,
//! which writes the header with [`write_header`] and then streams each tensor's data.

use std::io::{self, Write};

/// ggml's default alignment, which llama.cpp's writers use.
pub const ALIGNMENT: usize = 32;

/// GGUF metadata value types used by tinymla's writers.
#[derive(Debug, Clone)]
pub enum Value {
    /// type 4
    U32(u32),
    /// type 6
    F32(f32),
    /// type 7
    Bool(bool),
    /// type 8
    Str(String),
    /// type 9 of type 8
    StrArray(Vec<String>),
    /// type 9 of type 5
    I32Array(Vec<i32>),
}

/// One tensor to write: name, dims in ggml `ne` order (fastest first), ggml type id, bytes.
#[derive(Debug, Clone)]
pub struct TensorData {
    /// GGUF tensor name.
    pub name: String,
    /// Dims, fastest-varying first.
    pub ne: Vec<u64>,
    /// ggml type id (0 = F32, 1 = F16, 8 = Q8_0, …).
    pub ggml_type: u32,
    /// The tensor's bytes, already in that type's layout.
    pub bytes: Vec<u8>,
}

/// Collects metadata and tensors, then writes a GGUF file.
#[derive(Debug, Default)]
pub struct GgufWriter {
    metadata: Vec<(String, Value)>,
    tensors: Vec<TensorData>,
}

impl GgufWriter {
    /// An empty file.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a metadata entry (keys must be unique; the reader rejects duplicates).
    pub fn kv(&mut self, key: &str, value: Value) -> &mut Self {
        self.metadata.push((key.to_owned(), value));
        self
    }

    /// Adds a tensor; data is written in the order tensors are added.
    pub fn tensor(&mut self, t: TensorData) -> &mut Self {
        self.tensors.push(t);
        self
    }

    /// Writes the whole file.
    ///
    /// # Errors
    /// Any I/O error from `out`.
    pub fn write(&self, out: &mut impl Write) -> io::Result<()> {
        let infos: Vec<TensorInfo> = self
            .tensors
            .iter()
            .map(|t| TensorInfo {
                name: t.name.clone(),
                ne: t.ne.clone(),
                ggml_type: t.ggml_type,
                n_bytes: t.bytes.len() as u64,
            })
            .collect();
        write_header(out, &self.metadata, &infos)?;
        for t in &self.tensors {
            out.write_all(&t.bytes)?;
            write_padding(out, t.bytes.len() as u64)?;
        }
        Ok(())
    }

    /// The file as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        // Writing to a Vec cannot fail.
        let _ = self.write(&mut v);
        v
    }
}

/// One tensor's entry in the header, for writers that stream the data afterwards.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    /// GGUF tensor name.
    pub name: String,
    /// Dims, fastest-varying first.
    pub ne: Vec<u64>,
    /// ggml type id.
    pub ggml_type: u32,
    /// Bytes of data the caller will write for this tensor (before padding).
    pub n_bytes: u64,
}

/// Writes everything before the tensor data: magic, version, counts, metadata and the tensor
/// infos (offsets assigned in `tensors` order, each padded to [`ALIGNMENT`]), padded to
/// [`ALIGNMENT`]. The caller then writes each tensor's `n_bytes` followed by
/// [`write_padding`], in the same order.
///
/// # Errors
/// Any I/O error from `out`.
pub fn write_header(
    out: &mut impl Write,
    metadata: &[(String, Value)],
    tensors: &[TensorInfo],
) -> io::Result<()> {
    let mut head = Vec::new();
    head.extend_from_slice(b"GGUF");
    head.extend_from_slice(&3u32.to_le_bytes());
    head.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    head.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
    for (key, value) in metadata {
        put_str(&mut head, key);
        put_value(&mut head, value);
    }
    let mut offset = 0u64;
    for t in tensors {
        put_str(&mut head, &t.name);
        head.extend_from_slice(&(t.ne.len() as u32).to_le_bytes());
        for d in &t.ne {
            head.extend_from_slice(&d.to_le_bytes());
        }
        head.extend_from_slice(&t.ggml_type.to_le_bytes());
        head.extend_from_slice(&offset.to_le_bytes());
        offset += padded(t.n_bytes);
    }
    let len = head.len() as u64;
    head.resize(padded(len) as usize, 0);
    out.write_all(&head)
}

/// Writes the zeros that pad `n_bytes` of tensor data to [`ALIGNMENT`].
///
/// # Errors
/// Any I/O error from `out`.
pub fn write_padding(out: &mut impl Write, n_bytes: u64) -> io::Result<()> {
    let zeros = [0u8; ALIGNMENT];
    let pad = (padded(n_bytes) - n_bytes) as usize;
    out.write_all(&zeros[..pad])
}

fn padded(n: u64) -> u64 {
    n.div_ceil(ALIGNMENT as u64) * ALIGNMENT as u64
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, v: &Value) {
    let ty = |out: &mut Vec<u8>, t: u32| out.extend_from_slice(&t.to_le_bytes());
    match v {
        Value::U32(x) => {
            ty(out, 4);
            out.extend_from_slice(&x.to_le_bytes());
        }
        Value::F32(x) => {
            ty(out, 6);
            out.extend_from_slice(&x.to_le_bytes());
        }
        Value::Bool(x) => {
            ty(out, 7);
            out.push(u8::from(*x));
        }
        Value::Str(s) => {
            ty(out, 8);
            put_str(out, s);
        }
        Value::StrArray(items) => {
            ty(out, 9);
            ty(out, 8);
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for s in items {
                put_str(out, s);
            }
        }
        Value::I32Array(items) => {
            ty(out, 9);
            ty(out, 5);
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for x in items {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_files_parse_back() {
        let mut w = GgufWriter::new();
        w.kv("general.architecture", Value::Str("deepseek2".into()))
            .kv("a", Value::U32(7))
            .kv("b", Value::StrArray(vec!["x".into(), "yz".into()]))
            .tensor(TensorData {
                name: "t".into(),
                ne: vec![3, 2],
                ggml_type: 0,
                bytes: vec![1; 24],
            })
            .tensor(TensorData { name: "u".into(), ne: vec![5], ggml_type: 1, bytes: vec![2; 10] });
        let bytes = w.to_bytes();
        let g = tinymla_core::Gguf::parse(&bytes).unwrap();
        assert_eq!(g.get("a").and_then(|v| v.as_u64()), Some(7));
        assert_eq!(g.tensor("u").unwrap().bytes, &[2; 10]);
        assert_eq!(g.tensor("t").unwrap().dims, [3, 2, 1, 1]);
    }
}

//! The checkpoint's `*.safetensors` shards, memory-mapped, and one name → tensor index over all
//! of them. Nothing is copied: rows are converted to f32 straight from the maps.
//!
//! Shards are found through `model.safetensors.index.json` (its `weight_map`) when present,
//! else every `*.safetensors` file in the folder.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use half::{bf16, f16};
use safetensors::{Dtype, SafeTensors};

use super::error::ConvertError;
use super::hf_config::read_json;
use crate::model_file::{ModelFile, OpenError};

/// The memory-mapped shard files (they must outlive every [`Checkpoint`] built on them).
#[derive(Debug)]
pub struct Shards {
    files: Vec<ModelFile>,
}

impl Shards {
    /// Finds and maps the shards of the checkpoint in `dir`.
    ///
    /// # Errors
    /// [`ConvertError::MissingFile`] if the index names a shard that is absent or there is no
    /// `*.safetensors` file; I/O and JSON errors.
    pub fn open(dir: &Path) -> Result<Self, ConvertError> {
        let index = dir.join("model.safetensors.index.json");
        let paths: Vec<PathBuf> = if index.is_file() {
            let json = read_json(&index)?;
            let map = json
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| ConvertError::BadIndex(index.clone()))?;
            let names: BTreeSet<&str> = map.values().filter_map(|v| v.as_str()).collect();
            names.into_iter().map(|n| dir.join(n)).collect()
        } else {
            let entries =
                std::fs::read_dir(dir).map_err(|e| ConvertError::Io(dir.to_owned(), e))?;
            let mut found = Vec::new();
            for entry in entries {
                let path = entry.map_err(|e| ConvertError::Io(dir.to_owned(), e))?.path();
                if path.extension().is_some_and(|x| x == "safetensors") {
                    found.push(path);
                }
            }
            found.sort();
            found
        };
        if paths.is_empty() {
            return Err(ConvertError::MissingFile(dir.join("model.safetensors")));
        }
        let mut files = Vec::with_capacity(paths.len());
        for path in paths {
            if !path.exists() {
                return Err(ConvertError::MissingFile(path));
            }
            files.push(ModelFile::open(&path).map_err(|e| match e {
                OpenError::Io(p, e) => ConvertError::Io(p, e),
                OpenError::IsDirectory(p) => ConvertError::MissingFile(p),
            })?);
        }
        Ok(Shards { files })
    }

    /// Total bytes of all shards.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes().len() as u64).sum()
    }

    /// Number of shard files.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether there are no shards (never true for an opened checkpoint).
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// One source tensor: its element type, torch shape (slowest first) and bytes in a shard map.
#[derive(Debug, Clone)]
pub struct Source<'a> {
    /// Element type: F32, F16 or BF16 (checked when the index is built).
    pub dtype: Dtype,
    /// Torch shape, slowest-varying first.
    pub shape: Vec<usize>,
    /// Little-endian element bytes, row-major.
    pub bytes: &'a [u8],
}

impl Source<'_> {
    /// Bytes per element.
    fn elem_bytes(&self) -> usize {
        match self.dtype {
            Dtype::F32 => 4,
            _ => 2,
        }
    }

    /// Converts `out.len()` consecutive elements starting at element `start` to f32.
    /// The caller keeps `start + out.len()` within the tensor (the plan checks shapes first).
    pub fn read(&self, start: usize, out: &mut [f32]) {
        let w = self.elem_bytes();
        let from = start * w;
        let bytes = self.bytes.get(from..from + out.len() * w).unwrap_or_default();
        match self.dtype {
            Dtype::F32 => {
                for (o, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                    *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
            Dtype::F16 => {
                for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                    *o = f16::from_le_bytes([b[0], b[1]]).to_f32();
                }
            }
            _ => {
                for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                    *o = bf16::from_le_bytes([b[0], b[1]]).to_f32();
                }
            }
        }
    }

    /// One element as f32.
    pub fn elem(&self, index: usize) -> f32 {
        let mut x = [0.0f32];
        self.read(index, &mut x);
        x[0]
    }
}

/// Every tensor of every shard, by Hugging Face name.
#[derive(Debug)]
pub struct Checkpoint<'a> {
    tensors: HashMap<String, Source<'a>>,
}

impl<'a> Checkpoint<'a> {
    /// Parses every shard's header and indexes its tensors.
    ///
    /// # Errors
    /// [`ConvertError::Safetensors`] for a truncated or corrupt shard,
    /// [`ConvertError::DuplicateTensor`], [`ConvertError::UnsupportedDtype`].
    pub fn index(shards: &'a Shards) -> Result<Self, ConvertError> {
        Self::from_buffers(shards.files.iter().map(|f| (f.path(), f.bytes())))
    }

    /// [`Checkpoint::index`] of shards already in memory, as `(path, bytes)` (the path names
    /// the shard in errors).
    ///
    /// # Errors
    /// As [`Checkpoint::index`].
    pub fn from_buffers(
        shards: impl IntoIterator<Item = (&'a Path, &'a [u8])>,
    ) -> Result<Self, ConvertError> {
        let mut tensors = HashMap::new();
        for (path, bytes) in shards {
            let st = SafeTensors::deserialize(bytes)
                .map_err(|e| ConvertError::Safetensors(path.to_owned(), e))?;
            for (name, view) in st.iter() {
                let dtype = view.dtype();
                if !matches!(dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16) {
                    return Err(ConvertError::UnsupportedDtype {
                        tensor: name.to_owned(),
                        dtype: format!("{dtype}"),
                    });
                }
                let source = Source { dtype, shape: view.shape().to_vec(), bytes: view.data() };
                if tensors.insert(name.to_owned(), source).is_some() {
                    return Err(ConvertError::DuplicateTensor(name.to_owned()));
                }
            }
        }
        Ok(Checkpoint { tensors })
    }

    /// The tensor `name` with the torch shape `expected`.
    ///
    /// # Errors
    /// [`ConvertError::MissingTensor`] or [`ConvertError::ShapeMismatch`].
    pub fn get(&self, name: &str, expected: &[usize]) -> Result<Source<'a>, ConvertError> {
        let source = self
            .tensors
            .get(name)
            .cloned()
            .ok_or_else(|| ConvertError::MissingTensor(name.to_owned()))?;
        if source.shape != expected {
            return Err(ConvertError::ShapeMismatch {
                tensor: name.to_owned(),
                expected: expected.to_vec(),
                found: source.shape.to_vec(),
            });
        }
        Ok(source)
    }

    /// Whether the checkpoint has a tensor called `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// All tensor names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.tensors.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}

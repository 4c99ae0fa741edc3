//! A model file mapped into memory read-only; the core borrows weights straight from the map.

use std::fs::File;
use std::path::{Path, PathBuf};

/// A memory-mapped model file.
#[derive(Debug)]
pub struct ModelFile {
    path: PathBuf,
    map: memmap2::Mmap,
}

/// Why a model file could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// The path could not be opened or mapped.
    Io(PathBuf, std::io::Error),
    /// The path is a directory.
    IsDirectory(PathBuf),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            OpenError::IsDirectory(p) => {
                write!(f, "{}: is a directory, not a model file", p.display())
            }
        }
    }
}

impl std::error::Error for OpenError {}

impl ModelFile {
    /// Opens and maps `path` read-only.
    ///
    /// # Errors
    /// [`OpenError`] if the path is missing, unreadable or a directory.
    pub fn open(path: &Path) -> Result<Self, OpenError> {
        if path.is_dir() {
            return Err(OpenError::IsDirectory(path.to_owned()));
        }
        let file = File::open(path).map_err(|e| OpenError::Io(path.to_owned(), e))?;
        // SAFETY: the map is read-only and private to this process. Like every mmap-based model
        // loader we rely on the file not being truncated or rewritten while mapped; all bytes
        // read through it are treated as untrusted input by the core's checks.
        #[allow(unsafe_code)]
        let map =
            unsafe { memmap2::Mmap::map(&file) }.map_err(|e| OpenError::Io(path.to_owned(), e))?;
        Ok(ModelFile { path: path.to_owned(), map })
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

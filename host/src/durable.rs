//! Files the user keeps (`convert`'s GGUF, `synth`'s model), written so that nothing can leave
//! a damaged file under the final name.
//!
//! The bytes go to an unnamed temporary file in the destination's folder (`O_TMPFILE` on Linux;
//! elsewhere a hidden temporary name), which is synced and only then linked and renamed over
//! the destination, and the folder is synced after the rename ([`atomic_write_file`]). So:
//! - a failed write (a full disk, a file-size limit, an error from the producer) leaves the old
//!   file as it was, or no file, and is reported once as an error;
//! - a killed process leaves no partial output at all on Linux (the unnamed file disappears
//!   with the process), and never a truncated file under the final name anywhere.

use std::io::{self, BufWriter, Write};
use std::path::Path;

use atomic_write_file::AtomicWriteFile;

/// Bytes buffered between the producer and the temporary file.
const BUFFER_BYTES: usize = 1 << 20;

/// Writes `path` with what `fill` writes, atomically: the destination either keeps its old
/// contents (on any error) or gets all of the new ones, synced to disk.
///
/// `io_err` turns the I/O errors of opening, flushing, syncing and renaming into the caller's
/// error type; `fill`'s own errors are returned as they are.
///
/// # Errors
/// The first error of opening the temporary file, of `fill`, or of committing it.
pub fn write_atomically<E>(
    path: &Path,
    io_err: impl Fn(io::Error) -> E,
    fill: impl FnOnce(&mut dyn Write) -> Result<(), E>,
) -> Result<(), E> {
    let mut file = AtomicWriteFile::open(path).map_err(&io_err)?;
    let mut out = BufWriter::with_capacity(BUFFER_BYTES, &mut file);
    // On an error the temporary file is dropped, which discards it: the destination is untouched.
    fill(&mut out)?;
    out.flush().map_err(&io_err)?;
    drop(out);
    file.commit().map_err(io_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch_dir(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("tinymla-durable-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_failed_fill_keeps_the_old_file_and_leaves_nothing_else() {
        let dir = scratch_dir("fail");
        let path = dir.join("out.bin");
        std::fs::write(&path, b"old contents").unwrap();
        let result: Result<(), String> = write_atomically(
            &path,
            |e| e.to_string(),
            |w| {
                w.write_all(&[7u8; 3 << 20]).map_err(|e| e.to_string())?;
                Err("producer failed".into())
            },
        );
        assert_eq!(result, Err("producer failed".into()));
        assert_eq!(std::fs::read(&path).unwrap(), b"old contents");
        let names: Vec<_> =
            std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["out.bin"], "a temporary file was left behind");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_successful_fill_replaces_the_file() {
        let dir = scratch_dir("ok");
        let path = dir.join("out.bin");
        std::fs::write(&path, b"old contents").unwrap();
        write_atomically(&path, |e| e, |w| w.write_all(b"new")).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let n = std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(n, 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_folder_is_an_error() {
        let dir = scratch_dir("missing").join("not-there");
        let err = write_atomically(&dir.join("x"), |e| e, |w| w.write_all(b"x")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}

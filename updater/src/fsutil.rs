//! Durable file replacement: write a temporary file, fsync it, rename it over the target, fsync the
//! folder. A power cut leaves either the old or the new content, never a mix.
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Result, UpdaterError};
use crate::fault;

pub fn atomic_write(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.tmp"));
    let context = || format!("writing {}", path.display());
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp)?;
        file.write_all(data)?;
        fault::point("write temporary file");
        file.sync_all()?;
        fault::point("fsync temporary file");
        fs::rename(&temp, path)?;
        fault::point("rename over the target");
        File::open(dir)?.sync_all()?;
        fault::point("fsync folder");
        Ok(())
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&temp);
        UpdaterError::io(context())(e)
    })
}

/// Where the storage at `path` is, links resolved; for a file not created yet, its folder's
/// resolved path and its name. A link to nothing is refused: writing through it would create a
/// file wherever it points, perhaps inside the running group.
pub fn location_of(path: &Path) -> Result<PathBuf> {
    let io = |e| UpdaterError::io(format!("slot {}", path.display()))(e);
    match fs::canonicalize(path) {
        Ok(path) => return Ok(path),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
        Err(_) => {}
    }
    if let Ok(target) = fs::read_link(path) {
        return Err(UpdaterError::Incompatible(format!(
            "slot {} is a link to {}, which does not exist",
            path.display(),
            target.display()
        )));
    }
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(UpdaterError::Incompatible(format!(
            "slot {} names no file",
            path.display()
        )));
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    Ok(fs::canonicalize(parent).map_err(io)?.join(name))
}

/// SHA-256 of the first `size` bytes a file or device holds (past the page cache: see
/// `storage`); `None` if it is shorter.
pub fn sha256_of_prefix(path: &Path, size: u64) -> Result<Option<[u8; 32]>> {
    use sha2::{Digest, Sha256};
    let storage = crate::storage::Storage::open(path)
        .map_err(UpdaterError::io(format!("opening {}", path.display())))?;
    let mut hasher = Sha256::new();
    match std::io::copy(&mut storage.prefix(size), &mut hasher) {
        Ok(_) => Ok(Some(hasher.finalize().into())),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(UpdaterError::io(format!("reading {}", path.display()))(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        atomic_write(&path, b"one").unwrap();
        atomic_write(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn failure_names_the_file() {
        let err = atomic_write(Path::new("/nonexistent-dir/x"), b"x").unwrap_err();
        assert!(
            err.to_string().starts_with("writing /nonexistent-dir/x:"),
            "{err}"
        );
    }
}

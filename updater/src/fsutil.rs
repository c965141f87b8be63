//! Durable file replacement: write a temporary file, fsync it, rename it over the target, fsync the
//! folder. A power cut leaves either the old or the new content, never a mix.
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

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

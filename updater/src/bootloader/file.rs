//! A plain text file of `KEY=value` lines, replaced atomically: the backend for tests and for
//! devices whose boot script reads a file. Variables that are not ours are kept.
use std::fs;
use std::path::PathBuf;

use super::BootloaderError;
use super::{Environment, Vars};
use crate::error::{Result, UpdaterError};
use crate::fsutil::atomic_write;

pub struct FileEnv {
    path: PathBuf,
}

impl FileEnv {
    pub fn new(path: PathBuf) -> Self {
        FileEnv { path }
    }

    fn corrupt(&self, what: &str) -> UpdaterError {
        BootloaderError::corrupt(self.path.display(), what)
    }
}

impl Environment for FileEnv {
    fn read(&self) -> Result<Option<Vars>> {
        let text = match fs::read(&self.path) {
            Ok(bytes) => String::from_utf8(bytes).map_err(|_| self.corrupt("not text"))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(BootloaderError::storage(format!(
                    "reading {}",
                    self.path.display()
                ))(e))
            }
        };
        parse(&text).map(Some).map_err(|e| self.corrupt(&e))
    }

    fn write(&mut self, vars: &Vars) -> Result<()> {
        let mut text = String::from("# boot state written by updater; see docs/boot-flow.md\n");
        for (key, value) in vars {
            text.push_str(&format!("{key}={value}\n"));
        }
        atomic_write(&self.path, text.as_bytes()).map_err(|e| match e {
            // The storage failed: a bootloader failure (exit 8), its cause kept.
            UpdaterError::Io { context, source } => BootloaderError::storage(context)(source),
            other => other,
        })
    }

    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }
}

/// `KEY=value` lines; blank lines and `#` comments are skipped.
pub(crate) fn parse(text: &str) -> std::result::Result<Vars, String> {
    let mut vars = Vars::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("line '{line}' is not KEY=value"))?;
        vars.push((key.to_string(), value.to_string()));
    }
    super::refuse_duplicates(vars.iter().map(|(k, _)| k.as_str()))?;
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bootloader::Bootloader;
    use crate::group::Group;

    #[test]
    fn stores_loads_and_keeps_foreign_variables() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("boot.env");
        let mut backend = Bootloader::new(Box::new(FileEnv::new(path.clone())), "");
        assert_eq!(backend.load().unwrap(), None);
        fs::write(
            &path,
            "vendor_flag=1\nORDER=A B\nA_LEFT=2\nB_LEFT=0\nA_OK=1\nB_OK=0\n",
        )
        .unwrap();
        let mut state = backend.load().unwrap().unwrap();
        state.activate(Group::B, 2);
        backend.store(&state).unwrap();
        assert_eq!(backend.load().unwrap().unwrap(), state);
        assert!(fs::read_to_string(&path)
            .unwrap()
            .contains("vendor_flag=1\n"));
    }

    #[test]
    fn a_corrupt_file_is_an_error_not_a_default() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("boot.env");
        fs::write(&path, "ORDER=A B\ngarbage\n").unwrap();
        let err = Bootloader::new(Box::new(FileEnv::new(path.clone())), "")
            .load()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("is corrupt: line 'garbage' is not KEY=value"),
            "{err}"
        );
        fs::write(&path, "ORDER=A B\n").unwrap();
        let err = Bootloader::new(Box::new(FileEnv::new(path)), "")
            .load()
            .unwrap_err()
            .to_string();
        assert!(err.contains("variable A_LEFT is missing"), "{err}");
    }
}

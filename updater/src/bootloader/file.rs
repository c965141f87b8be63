//! A plain text file of `KEY=value` lines, replaced atomically: the backend for tests and for
//! devices whose boot script reads a file. Variables that are not ours are kept.
use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use super::{BootState, Bootloader};
use crate::error::{Result, UpdaterError};
use crate::fsutil::atomic_write;

pub struct FileBackend {
    path: PathBuf,
}

impl FileBackend {
    pub fn new(path: PathBuf) -> Self {
        FileBackend { path }
    }

    fn read_vars(&self) -> Result<Option<BTreeMap<String, String>>> {
        let text = match fs::read(&self.path) {
            Ok(bytes) => String::from_utf8(bytes).map_err(|_| self.corrupt("not text"))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(UpdaterError::Bootloader(format!(
                    "reading {}: {e}",
                    self.path.display()
                )))
            }
        };
        let mut vars = BTreeMap::new();
        for line in text.lines() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| self.corrupt(&format!("line '{line}' is not KEY=value")))?;
            vars.insert(key.to_string(), value.to_string());
        }
        Ok(Some(vars))
    }

    fn corrupt(&self, what: &str) -> UpdaterError {
        UpdaterError::Bootloader(format!("{} is corrupt: {what}", self.path.display()))
    }
}

impl Bootloader for FileBackend {
    fn load(&self) -> Result<Option<BootState>> {
        match self.read_vars()? {
            None => Ok(None),
            Some(vars) => BootState::from_vars(&vars)
                .map(Some)
                .map_err(|e| self.corrupt(&e.to_string().replace("bootloader: ", ""))),
        }
    }

    fn store(&mut self, state: &BootState) -> Result<()> {
        let mut vars = self.read_vars().unwrap_or_default().unwrap_or_default();
        vars.extend(state.to_vars());
        let mut text = String::from("# boot state written by updater; see docs/boot-flow.md\n");
        for (key, value) in vars {
            text.push_str(&format!("{key}={value}\n"));
        }
        atomic_write(&self.path, text.as_bytes())
            .map_err(|e| UpdaterError::Bootloader(e.to_string()))
    }

    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slots::Group;

    #[test]
    fn stores_loads_and_keeps_foreign_variables() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("boot.env");
        let mut backend = FileBackend::new(path.clone());
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
        let err = FileBackend::new(path.clone())
            .load()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("is corrupt: line 'garbage' is not KEY=value"),
            "{err}"
        );
        fs::write(&path, "ORDER=A B\n").unwrap();
        let err = FileBackend::new(path).load().unwrap_err().to_string();
        assert!(
            err.contains("is corrupt: variable A_LEFT is missing"),
            "{err}"
        );
    }
}

//! Slot groups (A, B and the recovery group R), the slots inside them, and which group is booted.
mod lookup;
#[cfg(any(test, feature = "test-support"))]
pub mod stand_in;
use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::{Result, UpdaterError};

use crate::config::{BlockDevices, Config, SlotFilesystem, SlotSource, SlotSpec};
use crate::group::Group;

/// A slot whose device or file is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub path: PathBuf,
    pub size: Option<u64>,
    pub filesystem: Option<SlotFilesystem>,
}

impl SlotSpec {
    pub fn resolve(&self, devices: &BlockDevices) -> Result<Slot> {
        let path = match &self.source {
            SlotSource::Path(path) => path.clone(),
            SlotSource::Label(label) => devices.by_label(label)?,
            SlotSource::PartUuid(uuid) => devices.by_partuuid(uuid)?,
        };
        Ok(Slot {
            path,
            size: self.size,
            filesystem: self.filesystem.clone(),
        })
    }
}

/// What the updater needs to know about a slot before writing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotInfo {
    pub capacity: Option<u64>,
    /// Device and inode (or device number) naming the storage, when it exists.
    pub identity: Option<(u64, u64)>,
    /// The slot's path with every link resolved; for a file not yet created, its folder's
    /// resolved path and its name. Two slots with the same location are the same storage even
    /// before either exists.
    pub location: PathBuf,
}

impl Slot {
    pub fn inspect(&self) -> Result<SlotInfo> {
        let location = crate::fsutil::location_of(&self.path)?;
        let meta = match fs::metadata(&self.path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(SlotInfo {
                    capacity: self.size,
                    identity: None,
                    location,
                })
            }
            Err(e) => return Err(UpdaterError::io(format!("slot {}", self.path.display()))(e)),
        };
        let file_type = meta.file_type();
        if file_type.is_block_device() {
            let mut device = File::open(&self.path)
                .map_err(UpdaterError::io(format!("slot {}", self.path.display())))?;
            let size = device
                .seek(SeekFrom::End(0))
                .map_err(UpdaterError::io(format!("slot {}", self.path.display())))?;
            Ok(SlotInfo {
                capacity: Some(self.size.map_or(size, |s| s.min(size))),
                identity: Some((u64::MAX, meta.rdev())),
                location,
            })
        } else if file_type.is_dir() {
            Err(UpdaterError::Incompatible(format!(
                "slot {} is a folder",
                self.path.display()
            )))
        } else {
            Ok(SlotInfo {
                capacity: self.size,
                identity: Some((meta.dev(), meta.ino())),
                location,
            })
        }
    }
}

impl Slot {
    /// Opens for writing without truncating: nothing changes until the first chunk is written.
    pub fn open_for_write(&self) -> Result<File> {
        OpenOptions::new()
            .write(true)
            .create(!self.is_block_device())
            .truncate(false)
            .open(&self.path)
            .map_err(UpdaterError::io(format!(
                "opening slot {} for writing",
                self.path.display()
            )))
    }

    pub fn is_regular_file(&self) -> bool {
        fs::metadata(&self.path).is_ok_and(|m| m.is_file())
    }

    fn is_block_device(&self) -> bool {
        fs::metadata(&self.path).is_ok_and(|m| m.file_type().is_block_device())
    }
}

/// Which group runs is the boot state's business, so it is decided here, not in the config.
impl Config {
    /// The kernel command line's `updater.slot=` wins: it is what the bootloader booted. A
    /// `[boot] booted` that disagrees with it is an error naming both, never silently believed,
    /// since it would make the running group look like the inactive one.
    pub fn booted_group(&self) -> Result<Group> {
        let from_kernel = match read_kernel_cmdline(&self.boot.cmdline) {
            Ok(cmdline) => booted_from_cmdline(&cmdline)?,
            Err(_) if self.boot.booted.is_some() => None,
            Err(e) => return Err(e),
        };
        match (from_kernel, self.boot.booted) {
            (Some(kernel), Some(configured)) if kernel != configured => {
                return Err(UpdaterError::UnknownBootedGroup(format!(
                    "{} says updater.slot={kernel}, but [boot] booted = \"{configured}\" in {}; remove the booted line",
                    self.boot.cmdline.display(),
                    self.path.display()
                )))
            }
            (Some(group), _) | (None, Some(group)) => return Ok(group),
            (None, None) => {}
        }
        Err(UpdaterError::UnknownBootedGroup(format!(
            "{} has no updater.slot= and [boot] booted is not set",
            self.boot.cmdline.display()
        )))
    }
}

/// The booted group from a kernel command line: `updater.slot=X`, or RAUC's `rauc.slot=X`.
pub fn booted_from_cmdline(cmdline: &str) -> Result<Option<Group>> {
    for word in cmdline.split_ascii_whitespace() {
        if let Some(value) = word
            .strip_prefix("updater.slot=")
            .or_else(|| word.strip_prefix("rauc.slot="))
        {
            return value.parse().map(Some).map_err(|e| {
                UpdaterError::UnknownBootedGroup(format!("kernel command line: {e}"))
            });
        }
    }
    Ok(None)
}

pub fn read_kernel_cmdline(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(UpdaterError::io(format!("reading {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_names_the_booted_group() {
        assert_eq!(
            booted_from_cmdline("root=/dev/vda2 updater.slot=B quiet").unwrap(),
            Some(Group::B)
        );
        assert_eq!(booted_from_cmdline("rauc.slot=A").unwrap(), Some(Group::A));
        assert_eq!(booted_from_cmdline("quiet").unwrap(), None);
        let err = booted_from_cmdline("updater.slot=C")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "cannot tell which group is booted: kernel command line: 'C' is not a slot group (A, B or R)");
    }

    #[test]
    fn file_slot_capacity_comes_from_config_and_identity_from_the_inode() {
        let dir = tempfile::tempdir().unwrap();
        let spec = Slot {
            path: dir.path().join("a.img"),
            size: Some(10),
            filesystem: None,
        };
        assert_eq!(
            spec.inspect().unwrap(),
            SlotInfo {
                capacity: Some(10),
                identity: None,
                location: fs::canonicalize(dir.path()).unwrap().join("a.img"),
            }
        );
        fs::write(&spec.path, b"x").unwrap();
        assert!(spec.inspect().unwrap().identity.is_some());
        let dir_spec = Slot {
            path: dir.path().to_path_buf(),
            size: None,
            filesystem: None,
        };
        assert!(dir_spec
            .inspect()
            .unwrap_err()
            .to_string()
            .contains("is a folder"));
    }
}

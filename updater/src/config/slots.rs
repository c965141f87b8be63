//! `[slots.*]`: the slots of each group, by path, GPT label or GPT partition GUID.
use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::group::Group;

/// How the config names a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotSource {
    /// A block device or a plain file (tests, images on a data partition).
    Path(PathBuf),
    /// The GPT partition with this name (PARTLABEL).
    Label(String),
    /// The GPT partition with this unique GUID (PARTUUID).
    PartUuid(String),
}

/// A slot as configured; `resolve` finds its device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotSpec {
    pub source: SlotSource,
    /// Capacity limit; a block device's capacity is its size.
    pub size: Option<u64>,
    /// The file system the slot holds: its hooks get it mounted, an archive is extracted into a
    /// fresh one.
    pub filesystem: Option<SlotFilesystem>,
}

/// A slot's file system, and how to make one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotFilesystem {
    pub kind: Filesystem,
    /// The file system's label (`mkfs.ext4 -L`, `mkfs.vfat -n`).
    pub label: Option<String>,
    /// Given to `mkfs.ext4` or `mkfs.vfat` before the device (`["-O", "^has_journal"]`).
    pub mkfs_options: Vec<String>,
}

/// A file system a slot can hold (docs/config.md, `filesystem`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Filesystem {
    Ext4,
    Vfat,
}

impl Filesystem {
    /// The name `mount -t` and `mkfs.` take.
    pub fn name(self) -> &'static str {
        match self {
            Filesystem::Ext4 => "ext4",
            Filesystem::Vfat => "vfat",
        }
    }
}

/// The slots of one group, by slot class (rootfs, app, ...).
pub type GroupSlots = BTreeMap<String, SlotSpec>;

/// Where the kernel's block devices are seen: /sys and /dev, or a stand-in for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockDevices {
    pub sysfs: PathBuf,
    pub dev: PathBuf,
    /// The running root file system, whose disk wins when a name matches on several disks.
    pub root: PathBuf,
}

impl Default for BlockDevices {
    fn default() -> Self {
        BlockDevices {
            sysfs: "/sys".into(),
            dev: "/dev".into(),
            root: "/".into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawSlot {
    Path(PathBuf),
    Table {
        path: Option<PathBuf>,
        label: Option<String>,
        partuuid: Option<String>,
        size: Option<u64>,
        filesystem: Option<Filesystem>,
        fs_label: Option<String>,
        mkfs_options: Option<Vec<String>>,
    },
}

/// Two slots named by path that are one file, even one not created yet (`a.img`, `./a.img`,
/// `x/../a.img`, a link to it): an install into one would overwrite the other.
pub(super) fn refuse_shared_paths(slots: &BTreeMap<Group, GroupSlots>) -> Result<(), String> {
    let mut seen: Vec<(PathBuf, String)> = Vec::new();
    for (group, specs) in slots {
        for (class, spec) in specs {
            let SlotSource::Path(path) = &spec.source else {
                continue;
            };
            // A location that cannot be worked out yet (missing folder, dangling link) is refused
            // by the install that would write it.
            let Ok(location) = crate::fsutil::location_of(path) else {
                continue;
            };
            let name = format!("slots.{group}.{class}");
            if let Some((_, other)) = seen.iter().find(|(l, _)| *l == location) {
                return Err(format!(
                    "{name} and {other} are the same file {}",
                    location.display()
                ));
            }
            seen.push((location, name));
        }
    }
    Ok(())
}

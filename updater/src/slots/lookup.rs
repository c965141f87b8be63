//! Finds a GPT partition by label or unique GUID without udev: the kernel lists every partition
//! in /sys/class/block with its number and GPT name (uevent: DEVNAME, PARTN, PARTNAME); the GUID
//! comes from the disk's own partition table (the `gpt` crate).
//!
//! A USB stick or SD card may carry a partition with the same name (a factory image, say). When a
//! name or GUID matches on several disks, the one on the disk the running root file system lives
//! on is taken: the kernel tells which that is (the device number of `/`, looked up in
//! /sys/dev/block).
use std::fs;
use std::path::{Path, PathBuf};

use crate::config::BlockDevices;
use crate::error::{Result, UpdaterError};

#[derive(Debug, Clone)]
struct Partition {
    devname: String,
    number: u32,
    name: Option<String>,
    disk: String,
}

impl BlockDevices {
    pub fn by_label(&self, label: &str) -> Result<PathBuf> {
        let found: Vec<Partition> = self
            .partitions()?
            .into_iter()
            .filter(|p| p.name.as_deref() == Some(label))
            .collect();
        self.exactly_one(found, &format!("labelled '{label}'"))
    }

    pub fn by_partuuid(&self, uuid: &str) -> Result<PathBuf> {
        let partitions = self.partitions()?;
        let mut disks: Vec<&str> = partitions.iter().map(|p| p.disk.as_str()).collect();
        disks.sort_unstable();
        disks.dedup();
        let mut found = Vec::new();
        for disk in disks {
            let Some(numbers) = gpt_numbers_with_guid(&self.dev.join(disk), uuid) else {
                continue;
            };
            found.extend(
                partitions
                    .iter()
                    .filter(|p| p.disk == disk && numbers.contains(&p.number))
                    .cloned(),
            );
        }
        self.exactly_one(found, &format!("with PARTUUID {uuid}"))
    }

    fn exactly_one(&self, mut found: Vec<Partition>, what: &str) -> Result<PathBuf> {
        if found.len() > 1 {
            if let Some(root_disk) = self.root_disk() {
                let on_root: Vec<Partition> = found
                    .iter()
                    .filter(|p| p.disk == root_disk)
                    .cloned()
                    .collect();
                if on_root.len() == 1 {
                    tracing::info!(
                        what,
                        disk = %root_disk,
                        others = found.len() - 1,
                        "partition taken from the disk of the running root"
                    );
                    found = on_root;
                }
            }
        }
        let paths: Vec<PathBuf> = found.iter().map(|p| self.dev.join(&p.devname)).collect();
        match &paths[..] {
            [one] => Ok(one.clone()),
            [] => Err(UpdaterError::SlotNotFound(format!("no partition {what}"))),
            many => Err(UpdaterError::AmbiguousSlot(format!(
                "{} partitions {what}: {}",
                many.len(),
                many.iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// The disk holding the running root file system, when the kernel says: `/` is on a partition
    /// (or a whole disk) listed in /sys/dev/block. Not known for a root on tmpfs, overlay or
    /// device-mapper.
    fn root_disk(&self) -> Option<String> {
        let st = nix::sys::stat::stat(&self.root).ok()?;
        #[allow(clippy::unnecessary_cast)] // dev_t is u64 here, not everywhere
        let dev = st.st_dev as u64;
        let (major, minor) = (nix::sys::stat::major(dev), nix::sys::stat::minor(dev));
        let node = fs::canonicalize(self.sysfs.join(format!("dev/block/{major}:{minor}"))).ok()?;
        let is_partition = node.join("partition").exists();
        let disk = if is_partition { node.parent()? } else { &node };
        disk.file_name().map(|n| n.to_string_lossy().into_owned())
    }

    fn partitions(&self) -> Result<Vec<Partition>> {
        let class = self.sysfs.join("class/block");
        let entries = fs::read_dir(&class)
            .map_err(UpdaterError::io(format!("listing {}", class.display())))?;
        let mut partitions = Vec::new();
        for entry in entries.flatten() {
            let Ok(uevent) = fs::read_to_string(entry.path().join("uevent")) else {
                continue;
            };
            let field = |key: &str| {
                uevent
                    .lines()
                    .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
                    .map(str::to_string)
            };
            if field("DEVTYPE").as_deref() != Some("partition") {
                continue;
            }
            let (Some(devname), Some(number)) = (
                field("DEVNAME"),
                field("PARTN").and_then(|n| n.parse().ok()),
            ) else {
                continue;
            };
            // /sys/class/block/vda2 -> .../block/vda/vda2: the parent folder is the disk.
            let disk = fs::canonicalize(entry.path()).ok().and_then(|p| {
                p.parent()
                    .and_then(Path::file_name)
                    .map(|n| n.to_string_lossy().into_owned())
            });
            let Some(disk) = disk else { continue };
            partitions.push(Partition {
                devname,
                number,
                name: field("PARTNAME"),
                disk,
            });
        }
        partitions.sort_by(|a, b| a.devname.cmp(&b.devname));
        Ok(partitions)
    }
}

/// Partition numbers on `disk` whose unique GUID is `uuid`; None when the disk has no GPT.
fn gpt_numbers_with_guid(disk: &Path, uuid: &str) -> Option<Vec<u32>> {
    for block_size in [
        gpt::disk::LogicalBlockSize::Lb512,
        gpt::disk::LogicalBlockSize::Lb4096,
    ] {
        let Ok(table) = gpt::GptConfig::new()
            .writable(false)
            .logical_block_size(block_size)
            .open(disk)
        else {
            continue;
        };
        return Some(
            table
                .partitions()
                .iter()
                .filter(|(_, p)| p.part_guid.to_string().eq_ignore_ascii_case(uuid))
                .map(|(n, _)| *n)
                .collect(),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;
    use crate::slots::stand_in;

    const GUID_B: &str = "3c2b1a0e-5d4f-4e3a-9b8c-7d6e5f4a3b2c";

    /// A stand-in for /sys and /dev: disk vda with partitions rootA, rootB (GUID_B) in a real GPT,
    /// and disk vdb whose partition 1 is labelled `vdb_label`.
    fn devices(vdb_label: &str) -> (tempfile::TempDir, BlockDevices) {
        let dir = tempfile::tempdir().unwrap();
        let devices = stand_in::create(
            dir.path(),
            &[
                ("vda", &[(1, "rootA"), (2, "rootB")]),
                ("vdb", &[(1, vdb_label)]),
            ],
        );
        let disk = devices.dev.join("vda");
        fs::write(&disk, vec![0u8; 8 << 20]).unwrap();
        let status = Command::new("sgdisk")
            .args([
                "-o", "-n", "1:1M:+2M", "-c", "1:rootA", "-n", "2:0:+2M", "-c", "2:rootB", "-u",
            ])
            .arg(format!("2:{GUID_B}"))
            .arg(&disk)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("sgdisk (package gdisk) is installed");
        assert!(status.success());
        (dir, devices)
    }

    #[test]
    fn a_second_disk_with_the_same_label_defers_to_the_disk_of_the_running_root() {
        // A USB stick (vdb) carries a partition labelled rootB too; the root runs from vda1.
        let (_dir, d) = devices("rootB");
        stand_in::root_on(&d, "vda1");
        assert_eq!(d.by_label("rootB").unwrap(), d.dev.join("vda2"));
        assert_eq!(d.by_label("rootA").unwrap(), d.dev.join("vda1"));
        // Running from the stick itself, vdb1 is the one.
        let (_dir, d) = devices("rootB");
        stand_in::root_on(&d, "vdb1");
        assert_eq!(d.by_label("rootB").unwrap(), d.dev.join("vdb1"));
    }

    #[test]
    fn finds_partitions_by_label_and_by_guid() {
        let (_dir, d) = devices("data");
        assert_eq!(d.by_label("rootB").unwrap(), d.dev.join("vda2"));
        assert_eq!(d.by_partuuid(GUID_B).unwrap(), d.dev.join("vda2"));
        assert_eq!(
            d.by_partuuid(&GUID_B.to_uppercase()).unwrap(),
            d.dev.join("vda2")
        );
    }

    #[test]
    fn missing_and_duplicate_labels_are_errors() {
        let (_dir, d) = devices("rootB");
        let err = d.by_label("rootB").unwrap_err().to_string();
        assert!(
            err.contains("2 partitions labelled 'rootB'")
                && err.contains("vda2")
                && err.contains("vdb1"),
            "{err}"
        );
        let err = d.by_label("rootC").unwrap_err().to_string();
        assert!(err.contains("no partition labelled 'rootC'"), "{err}");
        let err = d
            .by_partuuid("00000000-0000-0000-0000-000000000000")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no partition with PARTUUID"), "{err}");
    }
}

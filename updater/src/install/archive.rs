//! Archive payloads (docs/bundle-format.md, `kind = "archive"`): the slot gets a fresh file system
//! (`mkfs` of its configured `filesystem`) and the tar is extracted into it as its verified chunks
//! stream in; no copy of the archive is stored anywhere. ext4 is mounted and filled through the
//! kernel, keeping owners, modes, extended attributes and links; vfat, which has none of those, is
//! written by the updater itself (the fatfs crate), so it needs neither a mount nor a FAT driver.
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Component, Path};
use std::process::Command;
use std::thread::JoinHandle;

use crate::config::{Filesystem, SlotFilesystem};
use crate::error::{Result, UpdaterError};
use crate::mount::Mounted;
use crate::slots::Slot;

/// An extraction running into a mounted slot.
pub struct Extraction {
    name: String,
    thread: JoinHandle<Result<()>>,
    mounted: Option<Mounted>,
}

/// Formats `slot` (named `name`, "B/app", in messages), mounts it at `mount_dir` and starts the
/// extraction. Returns the pipe to write the archive into, in order; closing it ends the archive.
pub fn start(slot: &Slot, name: &str, mount_dir: &Path) -> Result<(File, Extraction)> {
    let filesystem = slot.filesystem.as_ref().ok_or_else(|| {
        UpdaterError::Incompatible(format!(
            "slot {name} is filled from an archive but its config names no filesystem"
        ))
    })?;
    format(slot, filesystem, name)?;
    let (reader, writer) = io::pipe().map_err(UpdaterError::io("making a pipe"))?;
    let label = name.to_string();
    let (thread, mounted) = match filesystem.kind {
        Filesystem::Ext4 => {
            let mounted = Mounted::new(&slot.path, filesystem.kind, mount_dir)?;
            let dir = mounted.path().to_path_buf();
            let thread = std::thread::spawn(move || extract_unix(reader, &dir, &label));
            (thread, Some(mounted))
        }
        Filesystem::Vfat => {
            let device = slot.path.clone();
            let thread = std::thread::spawn(move || extract_fat(reader, &device, &label));
            (thread, None)
        }
    };
    Ok((
        File::from(OwnedFd::from(writer)),
        Extraction {
            name: name.to_string(),
            thread,
            mounted,
        },
    ))
}

impl Extraction {
    /// Waits for the extraction to end (the pipe must be closed), and unmounts, which writes the
    /// file system out.
    pub fn finish(self) -> Result<()> {
        let result = self.thread.join().unwrap_or_else(|_| {
            Err(UpdaterError::Refused(format!(
                "the extraction into slot {} stopped unexpectedly",
                self.name
            )))
        });
        let unmounted = self.mounted.map_or(Ok(()), Mounted::unmount);
        result.and(unmounted)
    }
}

/// Makes a fresh file system on the slot: a file slot is first made its configured size.
fn format(slot: &Slot, filesystem: &SlotFilesystem, name: &str) -> Result<()> {
    if !slot.path.exists() || slot.is_regular_file() {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&slot.path)
            .map_err(UpdaterError::io(format!("opening slot {name}")))?;
        let size = match slot.size {
            Some(size) => size,
            None => file
                .metadata()
                .map_err(UpdaterError::io(format!("opening slot {name}")))?
                .len(),
        };
        if size == 0 {
            return Err(UpdaterError::Incompatible(format!(
                "slot {name} is a file of no size: give it a size in the config to make a file system in it"
            )));
        }
        file.set_len(size)
            .map_err(UpdaterError::io(format!("sizing slot {name}")))?;
    }
    let (mut command, label_flag) = match filesystem.kind {
        Filesystem::Ext4 => {
            let mut c = Command::new("mkfs.ext4");
            c.args(["-q", "-F"]);
            (c, "-L")
        }
        Filesystem::Vfat => (Command::new("mkfs.vfat"), "-n"),
    };
    if let Some(label) = &filesystem.label {
        command.args([label_flag, label]);
    }
    command.args(&filesystem.mkfs_options).arg(&slot.path);
    crate::process::run_tool(&mut command).map_err(UpdaterError::io(format!(
        "making a file system in slot {name}"
    )))
}

fn extract_unix(source: impl Read, dir: &Path, name: &str) -> Result<()> {
    let failed = UpdaterError::io(format!("extracting the archive into slot {name}"));
    let mut source = BufReader::with_capacity(1 << 20, source);
    let mut archive = tar::Archive::new(&mut source);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_unpack_xattrs(true);
    archive.set_preserve_mtime(true);
    archive.set_overwrite(true);
    match archive.unpack(dir) {
        Ok(()) => drain(source, name),
        Err(e) => Err(failed(e)),
    }
}

/// Fills a fresh FAT file system from the tar: folders and regular files (their times are not
/// kept: the crate stamps 1980-01-01); a link or a device node cannot be kept on FAT and fails the
/// extraction, naming it.
fn extract_fat(source: impl Read, device: &Path, name: &str) -> Result<()> {
    let failed = || UpdaterError::io(format!("extracting the archive into slot {name}"));
    let mut source = BufReader::with_capacity(1 << 20, source);
    let disk = OpenOptions::new()
        .read(true)
        .write(true)
        .open(device)
        .map_err(failed())?;
    let fs = fatfs::FileSystem::new(disk, fatfs::FsOptions::new()).map_err(failed())?;
    let mut archive = tar::Archive::new(&mut source);
    for entry in archive.entries().map_err(failed())? {
        let mut entry = entry.map_err(failed())?;
        let path = entry.path().map_err(failed())?.into_owned();
        let Some(inside) = fat_path(&path) else {
            return Err(failed()(io::Error::other(format!(
                "entry {} leaves the archive's folder",
                path.display()
            ))));
        };
        if inside.is_empty() {
            continue;
        }
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            fs.root_dir().create_dir(&inside).map_err(failed())?;
        } else if kind.is_file() || kind.is_contiguous() {
            let mut file = fs.root_dir().create_file(&inside).map_err(failed())?;
            file.truncate().map_err(failed())?;
            io::copy(&mut entry, &mut file).map_err(failed())?;
            file.flush().map_err(failed())?;
        } else {
            return Err(failed()(io::Error::other(format!(
                "entry {} is a {kind:?}, which a FAT file system cannot hold",
                path.display()
            ))));
        }
    }
    fs.unmount().map_err(failed())?;
    drain(source, name)
}

/// The entry's path inside the file system, '/'-separated, or None when it would leave it.
fn fat_path(path: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::Normal(p) => parts.push(p.to_str()?.to_string()),
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.join("/"))
}

/// Whatever follows the end marker (tar's record padding) must still be taken, or the writer
/// would wait on a full pipe.
fn drain(mut source: impl Read, name: &str) -> Result<()> {
    io::copy(&mut source, &mut io::sink())
        .map(drop)
        .map_err(UpdaterError::io(format!(
            "extracting the archive into slot {name}"
        )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fat_paths_stay_inside() {
        assert_eq!(fat_path(Path::new("./a/b.txt")).as_deref(), Some("a/b.txt"));
        assert_eq!(fat_path(Path::new(".")).as_deref(), Some(""));
        assert_eq!(fat_path(Path::new("a/../../x")), None);
        assert_eq!(fat_path(Path::new("/etc/passwd")), None);
    }
}

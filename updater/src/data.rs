//! Data that follows its group (docs/data.md): each group keeps its own copy of the application's
//! data in `<data.dir>/<group>`. An install makes the target group's copy from the booted group's
//! (reflinked where the file system can), the new version's `migrate-data` hook adapts it, and a
//! fallback finds the old group's data exactly as that version left it.
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;

use crate::error::{Result, UpdaterError};
use crate::group::Group;

/// The link that always names the booted group's data (`<data.dir>/current`).
pub const CURRENT: &str = "current";

pub fn group_dir(dir: &Path, group: Group) -> PathBuf {
    dir.join(group.to_string())
}

/// Makes `to`'s data a copy of `from`'s: the old copy of `to` (the group being overwritten) is
/// removed first, the new one appears under its name only once complete. A group without data yet
/// (a factory image) gives an empty folder.
pub fn copy_for(dir: &Path, from: Group, to: Group) -> Result<PathBuf> {
    let target = group_dir(dir, to);
    let temp = dir.join(format!(".{to}.new"));
    remove(&target)?;
    remove(&temp)?;
    let source = group_dir(dir, from);
    if source.is_dir() {
        copy_tree(&source, &temp)?;
    } else {
        fs::create_dir_all(&temp).map_err(io("creating", &temp))?;
    }
    fs::rename(&temp, &target).map_err(io("renaming to", &target))?;
    Ok(target)
}

/// Points `<dir>/current` at the booted group's data (atomically: a new link renamed over it).
pub fn link_current(dir: &Path, booted: Group) -> Result<()> {
    let link = dir.join(CURRENT);
    if fs::read_link(&link).is_ok_and(|to| to == Path::new(&booted.to_string())) {
        return Ok(());
    }
    fs::create_dir_all(group_dir(dir, booted)).map_err(io("creating", &group_dir(dir, booted)))?;
    let temp = dir.join(format!(".{CURRENT}.new"));
    let _ = fs::remove_file(&temp);
    std::os::unix::fs::symlink(booted.to_string(), &temp).map_err(io("linking", &temp))?;
    fs::rename(&temp, &link).map_err(io("renaming to", &link))
}

/// A group's data as `updater status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct GroupData {
    pub path: PathBuf,
    /// Bytes of the files (None when the group has no data folder).
    pub bytes: Option<u64>,
}

pub fn describe(dir: &Path, group: Group) -> GroupData {
    let path = group_dir(dir, group);
    let bytes = path.is_dir().then(|| usage(&path));
    GroupData { path, bytes }
}

/// Bytes in the files under `path` (each hard-linked file once, links not followed).
fn usage(path: &Path) -> u64 {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() && seen.insert((meta.dev(), meta.ino())) {
                total += meta.len();
            }
        }
    }
    total
}

/// `cp -a`: owners, modes, times, extended attributes, symbolic and hard links kept; with GNU cp,
/// `--reflink=auto` shares the blocks where the file system can (btrfs, XFS). Busybox's cp has
/// no `--reflink` and copies.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let attempt = |reflink: bool| {
        let mut command = Command::new("cp");
        command.arg("-a");
        if reflink {
            command.arg("--reflink=auto");
        }
        command.arg(from).arg(to).output()
    };
    let mut output = attempt(true).map_err(io("copying data to", to))?;
    if !output.status.success() && String::from_utf8_lossy(&output.stderr).contains("reflink") {
        let _ = fs::remove_dir_all(to);
        output = attempt(false).map_err(io("copying data to", to))?;
    }
    if output.status.success() {
        return Ok(());
    }
    let _ = fs::remove_dir_all(to);
    let said = String::from_utf8_lossy(&output.stderr);
    Err(io("copying data to", to)(std::io::Error::other(
        said.lines()
            .last()
            .unwrap_or("cp failed")
            .trim()
            .to_string(),
    )))
}

fn remove(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("removing", path)(e)),
        _ => Ok(()),
    }
}

fn io(doing: &str, path: &Path) -> impl FnOnce(std::io::Error) -> UpdaterError {
    UpdaterError::io(format!("{doing} {}", path.display()))
}

//! Data that follows its group (docs/data.md): each group keeps its own copy of the application's
//! data (`<data.dir>/<group>`, or a location per group such as a partition of its own). An install
//! makes the target group's copy from the booted group's (reflinked where the file system can),
//! the new version's `migrate-data` hook adapts it, and a fallback finds the old group's data
//! exactly as that version left it.
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;

use crate::config::DataConfig;
use crate::error::{Result, UpdaterError};
use crate::group::Group;

/// Makes `to`'s data a copy of `from`'s. What `to` held (the data of the version being replaced)
/// is removed first; its folder itself stays, as it may be a mount point. A group without data yet
/// (a factory image, or R without a location) gives an empty folder. Returns `to`'s location, or
/// None when the config gives `to` none (R may have no data of its own).
pub fn copy_for(data: &DataConfig, from: Group, to: Group) -> Result<Option<PathBuf>> {
    let Some(target) = data.of(to) else {
        return Ok(None);
    };
    fs::create_dir_all(target).map_err(io("creating", target))?;
    empty(target)?;
    if let Some(source) = data.of(from).filter(|s| s.is_dir()) {
        copy_tree(source, target)?;
    }
    Ok(Some(target.to_path_buf()))
}

/// Points the link at the booted group's data, atomically (a new link renamed over it): by name
/// when both are in one folder (`current -> A`), else by full path.
pub fn link_current(data: &DataConfig, booted: Group) -> Result<()> {
    let target = location(data, booted)?;
    fs::create_dir_all(target).map_err(io("creating", target))?;
    let link = &data.link;
    let parent = link.parent().unwrap_or(Path::new("."));
    let points_to = match target.strip_prefix(parent) {
        Ok(name) if target.parent() == Some(parent) => name.to_path_buf(),
        _ => target.to_path_buf(),
    };
    if fs::read_link(link).is_ok_and(|to| to == points_to) {
        return Ok(());
    }
    let name = link
        .file_name()
        .map_or("data".into(), |n| n.to_string_lossy().into_owned());
    let temp = parent.join(format!(".{name}.new"));
    let _ = fs::remove_file(&temp);
    std::os::unix::fs::symlink(&points_to, &temp).map_err(io("linking", &temp))?;
    fs::rename(&temp, link).map_err(io("renaming to", link))
}

fn location(data: &DataConfig, group: Group) -> Result<&Path> {
    data.of(group)
        .ok_or_else(|| UpdaterError::Refused(format!("[data] names no location for group {group}")))
}

/// A group's data as `updater status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct GroupData {
    pub path: PathBuf,
    /// Bytes of the files (None when the group has no data folder).
    pub bytes: Option<u64>,
}

pub fn describe(data: &DataConfig, group: Group) -> Option<GroupData> {
    let path = data.of(group)?.to_path_buf();
    let bytes = path.is_dir().then(|| usage(&path));
    Some(GroupData { path, bytes })
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

/// `cp -a FROM/. TO`: the folder's content with owners, modes, times, extended attributes,
/// symbolic and hard links kept; with GNU cp, `--reflink=auto` shares the blocks where the file
/// system can (btrfs, XFS). Busybox's cp has no `--reflink` and copies.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let copy = |reflink: bool| {
        let mut command = Command::new("cp");
        command.arg("-a");
        if reflink {
            command.arg("--reflink=auto");
        }
        crate::process::run_tool(command.arg(from.join(".")).arg(to))
    };
    // busybox cp knows no --reflink, and says so before its usage text, so the failure's last
    // line does not tell: any failure is tried once more as a plain copy, from an empty target;
    // a real failure then fails that copy too and is reported from it.
    if copy(true).is_ok() {
        return Ok(());
    }
    empty(to)?;
    copy(false).map_err(io("copying data to", to))
}

/// Removes everything inside the folder `dir`, but not the folder.
fn empty(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir).map_err(io("reading", dir))? {
        let path = entry.map_err(io("reading", dir))?.path();
        let meta = path.symlink_metadata().map_err(io("removing", &path))?;
        let removed = match meta.is_dir() {
            true => fs::remove_dir_all(&path),
            false => fs::remove_file(&path),
        };
        removed.map_err(io("removing", &path))?;
    }
    Ok(())
}

fn io(doing: &str, path: &Path) -> impl FnOnce(std::io::Error) -> UpdaterError {
    UpdaterError::io(format!("{doing} {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_that_fails_names_the_target_and_cps_reason_and_leaves_it_empty() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("B");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("stale"), "old").unwrap();
        let err = copy_tree(&dir.path().join("missing"), &target)
            .unwrap_err()
            .to_string();
        assert!(err.contains("copying data to"), "{err}");
        assert!(err.contains(&target.display().to_string()), "{err}");
        assert!(err.contains("No such file or directory"), "{err}");
        assert_eq!(fs::read_dir(&target).unwrap().count(), 0);
    }
}

//! Mounting a slot's file system for a while (its hooks, filling it from an archive), with the
//! system's `mount` and `umount`: they set up a loop device for a file slot, as busybox's do too.
use std::path::{Path, PathBuf};
use std::process::Command;

use tracing::warn;

use crate::config::Filesystem;
use crate::error::{Result, UpdaterError};

/// A file system mounted at `dir` until `unmount` (or, failing that, the drop) takes it away.
#[derive(Debug)]
pub struct Mounted {
    dir: PathBuf,
    mounted: bool,
}

impl Mounted {
    /// Mounts `device` (a block device or an image file) read-write at `dir`, which is created.
    pub fn new(device: &Path, filesystem: Filesystem, dir: &Path) -> Result<Mounted> {
        std::fs::create_dir_all(dir).map_err(UpdaterError::io(format!(
            "creating mount point {}",
            dir.display()
        )))?;
        let mut command = Command::new("mount");
        command.args(["-t", filesystem.name()]);
        if device.is_file() {
            command.args(["-o", "loop"]);
        }
        command.arg(device).arg(dir);
        run(&mut command, &format!("mounting {}", device.display()))?;
        Ok(Mounted {
            dir: dir.to_path_buf(),
            mounted: true,
        })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Unmounts, writing everything back; an error means the slot may be incomplete.
    pub fn unmount(mut self) -> Result<()> {
        self.mounted = false;
        run(
            Command::new("umount").arg(&self.dir),
            &format!("unmounting {}", self.dir.display()),
        )?;
        let _ = std::fs::remove_dir(&self.dir);
        Ok(())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if self.mounted {
            // An error already ends the install; the mount must not outlive it.
            if let Err(e) = run(Command::new("umount").arg(&self.dir), "unmounting") {
                warn!("{e}");
            }
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
}

fn run(command: &mut Command, doing: &str) -> Result<()> {
    crate::process::run_tool(command).map_err(UpdaterError::io(doing.to_string()))
}

//! `[bootloader]`: where the boot state lives and in which format.
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootloaderConfig {
    File { path: PathBuf },
    Grub { path: PathBuf },
    Uboot { copies: Vec<Location> },
}

/// Where one copy lives: the same facts as a line of /etc/fw_env.config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub path: PathBuf,
    pub offset: u64,
    pub size: usize,
}

#[derive(Deserialize, Clone, Copy, Debug)]
#[serde(rename_all = "lowercase")]
pub(super) enum Backend {
    File,
    Grub,
    Uboot,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBootloader {
    backend: Backend,
    path: PathBuf,
    offset: Option<u64>,
    size: Option<usize>,
    redundant_offset: Option<u64>,
    redundant_path: Option<PathBuf>,
}

pub(super) fn bootloader_config(
    raw: &RawBootloader,
    resolve: &dyn Fn(&Path) -> PathBuf,
) -> std::result::Result<BootloaderConfig, String> {
    let uboot_only = raw.offset.is_some()
        || raw.size.is_some()
        || raw.redundant_offset.is_some()
        || raw.redundant_path.is_some();
    match raw.backend {
        Backend::File | Backend::Grub if uboot_only => {
            Err("offset, size and redundant_* belong to backend \"uboot\" only".into())
        }
        Backend::File => Ok(BootloaderConfig::File {
            path: resolve(&raw.path),
        }),
        Backend::Grub => Ok(BootloaderConfig::Grub {
            path: resolve(&raw.path),
        }),
        Backend::Uboot => {
            let size = raw
                .size
                .ok_or("backend \"uboot\" needs size (bytes of one copy)")?;
            if !(16..=16 << 20).contains(&size) {
                return Err(format!("bootloader.size {size} is out of range"));
            }
            let mut copies = vec![Location {
                path: resolve(&raw.path),
                offset: raw.offset.unwrap_or(0),
                size,
            }];
            match (raw.redundant_offset, &raw.redundant_path) {
                (None, None) => {}
                (offset, path) => copies.push(Location {
                    path: path.as_deref().map_or_else(|| resolve(&raw.path), resolve),
                    offset: offset.unwrap_or(0),
                    size,
                }),
            }
            if copies.len() == 2 && copies[0] == copies[1] {
                return Err("the redundant copy is at the same place as the first".into());
            }
            Ok(BootloaderConfig::Uboot { copies })
        }
    }
}

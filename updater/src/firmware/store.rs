//! Each group's firmware, kept in the state folder beside the group's system: written and verified
//! at install like a slot, listed in `firmware.json` once the install is complete.
use std::fs;
use std::path::{Path, PathBuf};

use bundle::{ComponentKind, FirmwareTarget, Manifest};
use serde::{Deserialize, Serialize};

use super::FirmwareError;
use crate::error::{Result, UpdaterError};
use crate::fsutil::atomic_write;
use crate::group::Group;

const LIST: &str = "firmware.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredFirmware {
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub size: u64,
    pub target: FirmwareTarget,
}

pub fn group_dir(state_dir: &Path, group: Group) -> PathBuf {
    state_dir.join("firmware").join(group.as_str())
}

pub fn image_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.fw"))
}

/// Empties the group's firmware folder (creating it when missing).
pub fn clear(dir: &Path) -> Result<()> {
    if dir.exists() {
        fs::remove_dir_all(dir).map_err(UpdaterError::io(format!("clearing {}", dir.display())))?;
    }
    fs::create_dir_all(dir).map_err(UpdaterError::io(format!("creating {}", dir.display())))
}

/// Lists the bundle's firmware for the group; called once every image is verified.
pub fn record(dir: &Path, manifest: &Manifest) -> Result<()> {
    let list: Vec<StoredFirmware> = manifest
        .components
        .iter()
        .filter(|c| c.kind == ComponentKind::Firmware)
        .map(|c| StoredFirmware {
            name: c.name.clone(),
            version: c.firmware_version.clone().unwrap_or_default(),
            sha256: hex::encode(c.sha256),
            size: c.size,
            target: c.target.clone().expect("validated: firmware has a target"),
        })
        .collect();
    let json = serde_json::to_vec_pretty(&list).expect("firmware list serializes");
    atomic_write(&dir.join(LIST), &json)
}

/// The firmware the group carries; none when it was installed without any.
pub fn load(dir: &Path) -> Result<Vec<StoredFirmware>> {
    let path = dir.join(LIST);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| UpdaterError::Firmware {
            target: "the group's firmware list".into(),
            cause: FirmwareError::Stored(format!("{}: {e}", path.display())),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(UpdaterError::io(format!("reading {}", path.display()))(e)),
    }
}

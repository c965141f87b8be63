//! `updater firmware sync`: the microcontrollers run the firmware of the booted group. A target is
//! flashed when the hash of what was last flashed and verified there differs from the group's, so
//! after an update the new firmware goes on, and after a fallback the old one goes back. The check
//! costs nothing at boot when nothing changed; its limit: a device reflashed behind the updater's
//! back is not noticed (docs/firmware.md).

use serde::Serialize;

use super::store::{self, StoredFirmware};
use super::{flash, FirmwareError};
use crate::config::Config;
use crate::error::{Result, UpdaterError};
use crate::progress::Progress;
use crate::state::{now, EventKind, Flashed, State, StateDir};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    AlreadyRunning(String),
    Flashed(String),
}

/// Flashes what the booted group carries and the targets do not run. Stops at the first failure.
pub fn sync(
    config: &Config,
    store_dir: &StateDir,
    state: &mut State,
    progress: &Progress,
) -> Result<Vec<Outcome>> {
    let booted = config.booted_group()?;
    let dir = store::group_dir(&config.state_dir, booted);
    let mut outcomes = Vec::new();
    for fw in store::load(&dir)? {
        if state
            .firmware
            .get(&fw.name)
            .is_some_and(|f| f.sha256 == fw.sha256)
        {
            outcomes.push(Outcome::AlreadyRunning(fw.name.clone()));
            continue;
        }
        let image = read_verified(&dir, &fw)?;
        let target = &fw.target;
        flash(target, &image, progress).map_err(|e| match e {
            UpdaterError::Firmware { target, cause } => UpdaterError::Firmware {
                target: format!("'{}' {} on {target}", fw.name, fw.version),
                cause,
            },
            other => other,
        })?;
        state.firmware.insert(
            fw.name.clone(),
            Flashed {
                version: fw.version.clone(),
                sha256: fw.sha256.clone(),
                group: booted,
                time: now(),
            },
        );
        state.record(
            EventKind::FirmwareFlashed,
            booted,
            Some(&fw.version),
            Some(fw.name.clone()),
        );
        store_dir.save(state)?;
        outcomes.push(Outcome::Flashed(fw.name.clone()));
    }
    Ok(outcomes)
}

/// The stored image, checked against the hash recorded at install (storage can rot).
fn read_verified(dir: &std::path::Path, fw: &StoredFirmware) -> Result<Vec<u8>> {
    let path = store::image_path(dir, &fw.name);
    let image =
        std::fs::read(&path).map_err(UpdaterError::io(format!("reading {}", path.display())))?;
    if hex::encode(bundle::hash_chunk(&image)) != fw.sha256 {
        return Err(UpdaterError::Firmware {
            target: format!("'{}' {}", fw.name, fw.version),
            cause: FirmwareError::Stored(format!(
                "{} does not match its recorded SHA-256",
                path.display()
            )),
        });
    }
    Ok(image)
}

/// For `updater firmware status`: per firmware of the booted group, what is expected and what
/// was last flashed.
#[derive(Debug, Clone, Serialize)]
pub struct TargetStatus {
    pub name: String,
    pub target: String,
    pub expected_version: String,
    pub expected_sha256: String,
    pub flashed: Option<Flashed>,
    pub in_sync: bool,
}

pub fn status(config: &Config, state: &State) -> Result<Vec<TargetStatus>> {
    let booted = config.booted_group()?;
    store::load(&store::group_dir(&config.state_dir, booted))?
        .into_iter()
        .map(|fw| {
            let flashed = state.firmware.get(&fw.name).cloned();
            Ok(TargetStatus {
                target: fw.target.describe(),
                in_sync: flashed.as_ref().is_some_and(|f| f.sha256 == fw.sha256),
                name: fw.name,
                expected_version: fw.version,
                expected_sha256: fw.sha256,
                flashed,
            })
        })
        .collect()
}

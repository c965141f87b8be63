//! `updater firmware sync`: the microcontrollers run the firmware of the booted group. A target is
//! flashed when the hash of what was last flashed and verified there differs from the group's, so
//! after an update the new firmware goes on, and after a fallback the old one goes back. The check
//! costs nothing at boot when nothing changed; its limit: a device reflashed behind the updater's
//! back is not noticed (docs/firmware.md).

use serde::Serialize;

use super::store::{self, StoredFirmware};
use super::{flash, Parity, Target};
use crate::config::Config;
use crate::error::{Result, UpdaterError};
use crate::progress::Progress;
use crate::state::{now, Flashed, State, StateDir};

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
        let target = target_of(&fw)?;
        flash(&target, &image, progress)
            .map_err(|e| UpdaterError::Firmware(format!("'{}' {}: {e}", fw.name, fw.version)))?;
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
            "firmware-flashed",
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
    if store::hex(&bundle::hash_chunk(&image)) != fw.sha256 {
        return Err(UpdaterError::Firmware(format!(
            "{} does not match its recorded SHA-256",
            path.display()
        )));
    }
    Ok(image)
}

pub fn target_of(fw: &StoredFirmware) -> Result<Target> {
    let t = &fw.target;
    let bad = |what: &str| UpdaterError::Firmware(format!("'{}': {what}", fw.name));
    let usb = || -> Result<(u16, u16)> {
        let text = t.usb.as_deref().ok_or_else(|| bad("no usb"))?;
        let (v, p) = text
            .split_once(':')
            .ok_or_else(|| bad("usb must be VENDOR:PRODUCT"))?;
        let parse = |x: &str| {
            u16::from_str_radix(x, 16).map_err(|_| bad("usb must be VENDOR:PRODUCT in hex"))
        };
        Ok((parse(v)?, parse(p)?))
    };
    Ok(match t.protocol.as_str() {
        "stm32-serial" => Target::Stm32Serial {
            port: t.port.clone().ok_or_else(|| bad("no port"))?,
            baud: t.baud.unwrap_or(57_600),
            parity: if t.parity.as_deref() == Some("none") {
                Parity::None
            } else {
                Parity::Even
            },
            address: t.address.ok_or_else(|| bad("no address"))?,
        },
        "dfu" => {
            let (vendor, product) = usb()?;
            Target::Dfu {
                vendor,
                product,
                serial: t.serial.clone(),
                alt: t.alt.unwrap_or(0),
            }
        }
        "dfuse" => {
            let (vendor, product) = usb()?;
            Target::DfuSe {
                vendor,
                product,
                serial: t.serial.clone(),
                alt: t.alt.unwrap_or(0),
                address: t.address.ok_or_else(|| bad("no address"))?,
            }
        }
        other => return Err(bad(&format!("unknown protocol {other}"))),
    })
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
                target: target_of(&fw)?.describe(),
                in_sync: flashed.as_ref().is_some_and(|f| f.sha256 == fw.sha256),
                name: fw.name,
                expected_version: fw.version,
                expected_sha256: fw.sha256,
                flashed,
            })
        })
        .collect()
}

//! Whether a verified manifest may be installed on this device, into this group: decided before
//! anything is written.
use bundle::{ComponentKind, Manifest};

use crate::error::{Result, UpdaterError};
use std::collections::BTreeMap;

use crate::group::Group;
use crate::slots::{Slot, SlotInfo};
use crate::state::State;

pub struct Policy<'a> {
    pub compatible: &'a str,
    pub booted: Group,
    pub allow_downgrade: bool,
}

impl Policy<'_> {
    pub fn check(&self, manifest: &Manifest, state: &State) -> Result<()> {
        if manifest.compatible != self.compatible {
            return Err(UpdaterError::Incompatible(format!(
                "bundle is for '{}', this device is '{}'",
                manifest.compatible, self.compatible
            )));
        }
        if manifest.security_version < state.security_floor {
            return Err(UpdaterError::Incompatible(format!(
                "bundle security version {} is below this device's floor {} (never allowed)",
                manifest.security_version, state.security_floor
            )));
        }
        if let Some(running) = state.version_of(self.booted) {
            let running = semver::Version::parse(running).map_err(|e| {
                UpdaterError::Incompatible(format!(
                    "recorded version '{running}' of group {}: {e}",
                    self.booted
                ))
            })?;
            if manifest.version < running && !self.allow_downgrade {
                return Err(UpdaterError::Incompatible(format!(
                    "version {} is older than the running {running} (pass --allow-downgrade to install it anyway)",
                    manifest.version
                )));
            }
        }
        Ok(())
    }
}

/// Every image must have a slot of its class in the target group, and fit in it; and the bundle
/// must carry an image for every slot of the group. A group boots only when all of its slots hold
/// one verified release: a slot the bundle left out would keep whatever an earlier, perhaps failed,
/// install left in it.
pub fn check_slots(
    manifest: &Manifest,
    target: Group,
    slots: &BTreeMap<String, Slot>,
    info: &[SlotInfo],
) -> Result<()> {
    for component in &manifest.components {
        // Firmware goes to the state folder, not to a slot.
        let Some(class) = component.slot_class.as_deref() else {
            continue;
        };
        let Some(index) = slots.keys().position(|k| k == class) else {
            return Err(UpdaterError::Incompatible(format!(
                "bundle has an image for slot class '{class}', but group {target} has no such slot (it has: {})",
                slots.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        };
        if component.kind == ComponentKind::Archive {
            // The archive makes a file system of the slot's size; whether its files fit shows
            // only as they are extracted.
            if slots[class].filesystem.is_none() {
                return Err(UpdaterError::Incompatible(format!(
                    "bundle fills slot {target}/{class} from an archive, but the slot's config \
                     names no filesystem to make (filesystem = \"ext4\" or \"vfat\")"
                )));
            }
            continue;
        }
        if let Some(capacity) = info[index].capacity {
            if component.size > capacity {
                return Err(UpdaterError::Incompatible(format!(
                    "image '{}' is {} bytes, slot {target}/{class} holds only {capacity}",
                    component.name, component.size
                )));
            }
        }
    }
    let carried: Vec<&str> = manifest
        .components
        .iter()
        .filter_map(|c| c.slot_class.as_deref())
        .collect();
    if let Some(missing) = slots
        .keys()
        .find(|class| !carried.contains(&class.as_str()))
    {
        return Err(UpdaterError::Incompatible(format!(
            "bundle has no image for slot class '{missing}' of group {target}; a group boots only \
             when every one of its slots ({}) holds the same release",
            slots.keys().cloned().collect::<Vec<_>>().join(", ")
        )));
    }
    Ok(())
}

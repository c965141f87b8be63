//! `updater status`: the boot state and the recorded state, read together.
use std::collections::BTreeMap;

use serde::Serialize;

use crate::bootloader;
use crate::config::Config;
use crate::data::GroupData;
use crate::error::Result;
use crate::group::Group;
use crate::runtime_health::RuntimeHealth;
use crate::state::{ComponentRecord, InstallRecord, StateDir};

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub compatible: String,
    pub booted: Group,
    pub next: Group,
    pub slots: BTreeMap<Group, GroupStatus>,
    pub security_floor: u64,
    pub last_install: Option<InstallRecord>,
    pub bootloader: String,
    /// What the last boot-check found wrong in what both groups share.
    pub warnings: Vec<String>,
    /// The daemon's last run of the health checks on this boot (`boot_check.runtime_interval`).
    pub runtime_health: Option<RuntimeHealth>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupStatus {
    pub bootable: bool,
    /// None for R: the last resort has no good flag and no attempt counter (JSON null).
    pub good: Option<bool>,
    pub tries: Option<u8>,
    pub version: Option<String>,
    /// Each component's version (images carry the bundle's, firmware its own).
    pub components: Vec<ComponentRecord>,
    /// The group's own data (`[data]`; left out when the config gives the group no location).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<GroupData>,
}

/// The status with the updater's own version: what `GET /health`, the C library and fleet reports
/// answer.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    pub updater_version: &'static str,
    #[serde(flatten)]
    pub status: Status,
}

pub fn health(config: &Config) -> Result<Health> {
    Ok(Health {
        updater_version: env!("CARGO_PKG_VERSION"),
        status: status(config)?,
    })
}

pub fn status(config: &Config) -> Result<Status> {
    let booted = config.booted_group()?;
    let state = StateDir::open_read_only(&config.state_dir).load()?;
    let bootloader = bootloader::open(&config.bootloader);
    let boot = bootloader::load_or_initial(&bootloader, booted, config.boot.tries)?;
    let slots = config
        .groups()
        .map(|group| {
            let counters = boot.group(group).copied();
            let status = GroupStatus {
                bootable: boot.is_bootable(group),
                good: counters.map(|c| c.good),
                tries: counters.map(|c| c.tries),
                version: state.version_of(group).map(Into::into),
                components: state
                    .groups
                    .get(&group)
                    .map(|g| g.components.clone())
                    .unwrap_or_default(),
                data: config
                    .data
                    .as_ref()
                    .and_then(|data| crate::data::describe(data, group)),
            };
            (group, status)
        })
        .collect();
    Ok(Status {
        compatible: config.compatible.clone(),
        booted,
        next: boot.next_boot(),
        slots,
        security_floor: state.security_floor,
        last_install: state.last_install,
        bootloader: bootloader.describe(),
        warnings: state.warnings,
        runtime_health: crate::runtime_health::load(&config.state_dir, booted),
    })
}

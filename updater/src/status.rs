//! `updater status`, `mark-good` and `mark-bad`: the boot state and the recorded state, read
//! together and changed together.
use std::collections::BTreeMap;

use serde::Serialize;

use crate::bootloader::{self, BootState};
use crate::config::Config;
use crate::error::{Result, UpdaterError};
use crate::slots::Group;
use crate::state::{InstallRecord, StateDir};

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub compatible: String,
    pub booted: Group,
    pub next: Group,
    pub slots: BTreeMap<Group, GroupStatus>,
    pub security_floor: u64,
    pub last_install: Option<InstallRecord>,
    pub bootloader: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupStatus {
    pub bootable: bool,
    /// R is the last resort and has no good flag or counter: it reports good and 0 tries.
    pub good: bool,
    pub tries: u8,
    pub version: Option<String>,
}

pub fn status(config: &Config) -> Result<Status> {
    let booted = config.booted_group()?;
    let state = StateDir::open_read_only(&config.state_dir).load()?;
    let bootloader = bootloader::open(config);
    let boot = bootloader::load_or_initial(&bootloader, booted, config.boot.tries)?;
    let slots = config
        .groups()
        .map(|group| {
            let counters = boot.group(group).copied();
            let status = GroupStatus {
                bootable: boot.is_bootable(group),
                good: counters.map_or(true, |c| c.good),
                tries: counters.map_or(0, |c| c.tries),
                version: state.version_of(group).map(Into::into),
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
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Good,
    Bad,
}

/// Marks `group` (default: the booted one). Marking good raises the security floor to the group's
/// security version: only a group that has booted healthy may lock older bundles out.
pub fn mark(config: &Config, group: Option<Group>, mark: Mark) -> Result<Group> {
    let booted = config.booted_group()?;
    let group = group.unwrap_or(booted);
    if group == Group::R {
        return Err(UpdaterError::Refused("R has no boot state to mark".into()));
    }
    let store = StateDir::lock(&config.state_dir)?;
    let mut state = store.load()?;
    let mut bootloader = bootloader::open(config);
    let mut boot: BootState = bootloader::load_or_initial(&bootloader, booted, config.boot.tries)?;
    let version = state.version_of(group).map(str::to_string);
    match mark {
        Mark::Good => {
            boot.mark_good(group, config.boot.tries);
            bootloader.store(&boot)?;
            let carried = state.groups.get(&group).map_or(0, |g| g.security_version);
            state.security_floor = state.security_floor.max(carried);
            state.record("mark-good", group, version.as_deref(), None);
        }
        Mark::Bad => {
            boot.mark_bad(group);
            bootloader.store(&boot)?;
            state.record("mark-bad", group, version.as_deref(), None);
        }
    }
    store.save(&state)?;
    Ok(group)
}

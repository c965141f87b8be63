//! After a boot: is this system healthy? `boot-check` runs the self-test and the configured health
//! checks, notices a fallback that happened, and marks the booted group good, or bad (and reboots,
//! as configured) so that the bootloader falls back without waiting. `mark-good` and `mark-bad`
//! are the same transitions by hand.
mod checks;
mod self_test;

use std::process::Command;

use tracing::{info, warn};

use crate::bootloader::{self, BootState};
use crate::config::{BootCheckConfig, Config, HttpSettings, OnFailure, Scope};
use crate::error::{Result, UpdaterError};
use crate::group::Group;
use crate::progress::{Progress, Style};
use crate::state::{now, EventKind, InstallResult, State, StateDir};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub scope: Scope,
    pub message: String,
}

impl Failure {
    pub fn group(message: impl Into<String>) -> Self {
        Failure {
            scope: Scope::Group,
            message: message.into(),
        }
    }

    pub fn shared(message: impl Into<String>) -> Self {
        Failure {
            scope: Scope::Shared,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.scope {
            Scope::Group => f.write_str(&self.message),
            Scope::Shared => write!(
                f,
                "{} (shared by both groups; not a reason to fall back)",
                self.message
            ),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// `force`: even a group whose last install did not complete.
    Good {
        force: bool,
    },
    Bad,
    /// Boot it next, with its attempts back (RAUC's `mark-active`); it keeps its good flag, so an
    /// unconfirmed group still has to pass boot-check.
    Active,
}

/// Marks `group` (default: the booted one). Marking good raises the security floor to the group's
/// security version: only a group that has booted healthy may lock older bundles out.
pub fn mark(config: &Config, group: Option<Group>, mark: Mark) -> Result<Group> {
    mark_with_reason(config, group, mark, None)
}

/// [`mark`], with the reason recorded in the event log.
pub fn mark_with_reason(
    config: &Config,
    group: Option<Group>,
    mark: Mark,
    why: Option<String>,
) -> Result<Group> {
    let booted = config.booted_group()?;
    let group = group.unwrap_or(booted);
    if group == Group::R {
        return Err(UpdaterError::Refused("R has no boot state to mark".into()));
    }
    let store = StateDir::lock(&config.state_dir)?;
    let mut state = store.load()?;
    let torn = state
        .groups
        .get(&group)
        .is_some_and(|g| g.version.is_none());
    if torn && mark == Mark::Active {
        return Err(UpdaterError::Refused(format!(
            "the last install into group {group} did not complete, so its slots may hold torn data; \
             install a bundle into it before activating it"
        )));
    }
    if torn && mark == (Mark::Good { force: false }) {
        return Err(UpdaterError::Refused(format!(
            "the last install into group {group} did not complete, so its slots may hold torn data; \
             install a bundle into it, or pass --force if you know it is whole"
        )));
    }
    let mut bootloader = bootloader::open(&config.bootloader);
    let mut boot = bootloader::load_or_initial(&bootloader, booted, config.boot.tries)?;
    apply_mark(config, &mut boot, &mut state, group, mark, why);
    bootloader.store(&boot)?;
    store.save(&state)?;
    Ok(group)
}

fn apply_mark(
    config: &Config,
    boot: &mut BootState,
    state: &mut State,
    group: Group,
    mark: Mark,
    why: Option<String>,
) {
    let version = state.version_of(group).map(str::to_string);
    match mark {
        Mark::Good { .. } => {
            boot.mark_good(group, config.boot.tries);
            let carried = state.groups.get(&group).map_or(0, |g| g.security_version);
            state.security_floor = state.security_floor.max(carried);
            state.record(EventKind::MarkGood, group, version.as_deref(), why);
        }
        Mark::Bad => {
            boot.mark_bad(group);
            state.record(EventKind::MarkBad, group, version.as_deref(), why);
        }
        Mark::Active => {
            boot.prefer(group, config.boot.tries);
            state.record(EventKind::MarkActive, group, version.as_deref(), why);
        }
    }
}

#[derive(Debug, Clone)]
pub struct BootCheckReport {
    pub booted: Group,
    /// Every failure; the group was confirmed when none of them is the group's own.
    pub failures: Vec<Failure>,
    /// Set when this boot is a fallback from a group that was installed and never confirmed.
    pub rolled_back_from: Option<Group>,
    pub reboot: bool,
}

/// Runs the self-test and every health check, then marks the booted group. Safe to run again.
/// When the report says `reboot`, the caller reports the failures and then calls [`reboot`].
pub fn boot_check(config: &Config) -> Result<BootCheckReport> {
    let booted = config.booted_group()?;
    let store = StateDir::lock(&config.state_dir)?;
    let mut state = store.load()?;
    let mut bootloader = bootloader::open(&config.bootloader);
    let loaded = bootloader.load()?;
    let mut boot = loaded
        .clone()
        .unwrap_or_else(|| BootState::initial(booted, config.boot.tries));
    if loaded.is_none() {
        warn!(%booted, "the bootloader environment was never initialised; initialising it from this boot");
    }

    let rolled_back_from = detect_fallback(&boot, &mut state, booted);
    // The application finds the booted group's data at the link, whichever group that is (also set
    // earlier by updater-data.service). The data partition is shared: a fallback would not mend it.
    let mut failures = Vec::new();
    if let Some(data) = &config.data {
        if let Err(e) = crate::data::link_current(data, booted) {
            failures.push(Failure::shared(format!("data: {e}")));
        }
    }

    failures.extend(self_test::run(
        config,
        booted,
        &mut bootloader,
        &boot,
        &store,
    ));
    // The microcontrollers must run this group's firmware before the system counts as healthy.
    let quiet = Progress::new(Style::Quiet);
    if let Err(e) = crate::firmware::sync::sync(config, &store, &mut state, &quiet) {
        failures.push(Failure::group(e.to_string()));
    }
    failures.extend(health_checks(&config.boot_check, &config.http));

    let own: Vec<&Failure> = failures
        .iter()
        .filter(|f| f.scope == Scope::Group)
        .collect();
    let confirmed = own.is_empty();
    let before = boot.clone();
    if booted != Group::R {
        let why = (!confirmed).then(|| join(&own));
        let mark = if confirmed {
            Mark::Good { force: true }
        } else {
            Mark::Bad
        };
        if confirmed || config.boot_check.on_failure == OnFailure::Fallback {
            apply_mark(config, &mut boot, &mut state, booted, mark, why);
        }
        settle_last_install(&mut state, booted, confirmed, &own);
    }
    let shared: Vec<&Failure> = failures
        .iter()
        .filter(|f| f.scope == Scope::Shared)
        .collect();
    if !shared.is_empty() {
        state.record(
            EventKind::BootCheckWarning,
            booted,
            None,
            Some(join(&shared)),
        );
    }
    state.warnings = shared.iter().map(|f| f.message.clone()).collect();
    // The record that explains a change goes first: a group is never marked bad without it. A
    // healthy group is still confirmed when its record cannot be written (a full data partition
    // must not make a good group fall back).
    if let Err(e) = store.save(&state) {
        failures.push(Failure::shared(format!("recording the boot-check: {e}")));
        if !confirmed {
            boot = before.clone();
        }
    }
    if boot != before {
        if let Err(e) = bootloader.store(&boot) {
            failures.push(Failure::shared(format!("storing the boot state: {e}")));
        }
    }

    let reboot =
        !confirmed && booted != Group::R && config.boot_check.on_failure != OnFailure::Report;
    info!(%booted, confirmed, "boot-check done");
    Ok(BootCheckReport {
        booted,
        failures,
        rolled_back_from,
        reboot,
    })
}

/// Runs the configured health checks; one failure per check that did not pass.
pub fn health_checks(settings: &BootCheckConfig, http: &HttpSettings) -> Vec<Failure> {
    settings
        .checks
        .iter()
        .filter_map(|check| {
            check.run(http).err().map(|why| Failure {
                scope: check.scope,
                message: format!("check '{}': {why}", check.name),
            })
        })
        .collect()
}

impl BootCheckReport {
    /// No failure of the group's own: it was marked good (shared failures are only reported).
    pub fn confirmed(&self) -> bool {
        self.failures.iter().all(|f| f.scope == Scope::Shared)
    }
}

fn join(failures: &[&Failure]) -> String {
    failures
        .iter()
        .map(|f| f.message.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

/// We booted `booted` although another group was first in line and has now spent its attempts
/// without being confirmed: its update failed and the bootloader fell back.
fn detect_fallback(boot: &BootState, state: &mut State, booted: Group) -> Option<Group> {
    let last = state.last_install.as_mut()?;
    let activated = matches!(
        last.result,
        InstallResult::Installed | InstallResult::Unhealthy
    );
    if !activated || last.target == booted {
        return None;
    }
    let failed = boot.group(last.target)?;
    if failed.tries > 0 || failed.good {
        return None; // not tried yet (no reboot since the install), or confirmed
    }
    let target = last.target;
    let version = last.version.clone();
    let why = last
        .error
        .as_deref()
        .map(|e| format!(" ({e})"))
        .unwrap_or_default();
    let message = format!(
        "the update to {version} in group {target} did not boot healthy{why}; fell back to group {booted}"
    );
    last.result = InstallResult::RolledBack;
    last.time = now();
    last.error = Some(message.clone());
    warn!("{message}");
    state.record(EventKind::Rollback, target, Some(&version), Some(message));
    Some(target)
}

fn settle_last_install(state: &mut State, booted: Group, confirmed: bool, failures: &[&Failure]) {
    let Some(last) = state.last_install.as_mut() else {
        return;
    };
    if last.target != booted || last.result != InstallResult::Installed {
        return;
    }
    last.time = now();
    if confirmed {
        last.result = InstallResult::Confirmed;
    } else {
        last.result = InstallResult::Unhealthy;
        last.error = Some(format!("boot-check failed: {}", join(failures)));
    }
}

/// Reboots with `command` (`boot_check.reboot_command`).
pub fn reboot(command: &[String]) -> Result<()> {
    warn!(?command, "rebooting");
    let (program, args) = command
        .split_first()
        .ok_or_else(|| UpdaterError::Usage("boot_check.reboot_command is empty".into()))?;
    let status = Command::new(program)
        .args(args)
        .status()
        .map_err(UpdaterError::io(format!("running {program}")))?;
    if !status.success() {
        return Err(UpdaterError::RebootFailed {
            command: command.join(" "),
            status,
        });
    }
    Ok(())
}

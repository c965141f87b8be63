//! Health while the system runs: `updater daemon` runs the configured health checks again every
//! `boot_check.runtime_interval`, because a version can pass boot-check and fail later (a leak,
//! a service that hangs after a day). The last result is kept in the state folder, where
//! `updater status`, `GET /health` and fleet reports read it.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::assess::{self, health_checks, Failure, Mark};
use crate::config::{Config, OnRuntimeFailure, Scope};
use crate::error::Result;
use crate::group::Group;
use crate::state::now;

const FILE: &str = "runtime-health.json";

/// The last run of the checks on the booted group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeHealth {
    pub time: String,
    pub group: Group,
    pub healthy: bool,
    /// One line per failed check.
    pub failures: Vec<String>,
    /// Runs in a row that found a failure (0 when healthy).
    pub failing_runs: u32,
}

/// What to do after a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response {
    Nothing,
    /// Mark the booted group bad and reboot: it fails its own checks and was never confirmed.
    FallBack,
}

/// `Reboot` acts only on the group's own failures, and only while the group is not yet good: a
/// confirmed group is never sent back by a runtime check, and a shared failure (the network, the
/// data partition) is not cured by falling back.
pub fn response(policy: OnRuntimeFailure, failures: &[Failure], group_good: bool) -> Response {
    let own = failures.iter().any(|f| f.scope == Scope::Group);
    if policy == OnRuntimeFailure::Reboot && own && !group_good {
        Response::FallBack
    } else {
        Response::Nothing
    }
}

fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

/// The last result for `booted`; a file left from another group (before a reboot) is not shown.
pub fn load(state_dir: &Path, booted: Group) -> Option<RuntimeHealth> {
    let bytes = std::fs::read(path(state_dir)).ok()?;
    serde_json::from_slice::<RuntimeHealth>(&bytes)
        .ok()
        .filter(|h| h.group == booted)
}

/// Forgets the last result: the daemon starts afresh on every boot.
pub fn clear(state_dir: &Path) {
    let _ = std::fs::remove_file(path(state_dir));
}

/// Runs the checks once, keeps the result, and answers as configured. Returns the result and
/// whether it changed from healthy to failing or back.
pub fn run_once(
    config: &Config,
    previous: Option<&RuntimeHealth>,
) -> Result<(RuntimeHealth, bool)> {
    let booted = config.booted_group()?;
    let failures = health_checks(&config.boot_check, &config.http);
    let health = RuntimeHealth {
        time: now(),
        group: booted,
        healthy: failures.is_empty(),
        failures: failures.iter().map(ToString::to_string).collect(),
        failing_runs: match (failures.is_empty(), previous) {
            (true, _) => 0,
            (false, Some(p)) => p.failing_runs + 1,
            (false, None) => 1,
        },
    };
    let changed = previous.is_none_or(|p| p.healthy != health.healthy);
    if health.healthy {
        if changed {
            info!(group = %booted, "runtime health checks pass");
        }
    } else {
        // One line on stderr (the journal) at any log level, every run that fails.
        eprintln!(
            "updater: runtime health: {} (run {} failing in a row)",
            crate::display::escaped(&health.failures.join("; ")),
            health.failing_runs
        );
    }
    let bytes = serde_json::to_vec_pretty(&health).expect("the runtime health serializes");
    let kept = std::fs::create_dir_all(&config.state_dir)
        .map_err(crate::error::UpdaterError::io(format!(
            "creating {}",
            config.state_dir.display()
        )))
        .and_then(|()| crate::fsutil::atomic_write(&path(&config.state_dir), &bytes));
    if let Err(err) = kept {
        warn!(%err, "could not keep the runtime health result");
    }
    let good = crate::status::status(config)?
        .slots
        .get(&booted)
        .and_then(|g| g.good)
        .unwrap_or(true);
    if response(config.boot_check.on_runtime_failure, &failures, good) == Response::FallBack {
        let why = format!(
            "runtime health check failed before the group was confirmed: {}",
            health.failures.join("; ")
        );
        eprintln!("updater: {why}; marking group {booted} bad and rebooting");
        assess::mark_with_reason(config, Some(booted), Mark::Bad, Some(why))?;
        assess::reboot(&config.boot_check.reboot_command)?;
    }
    Ok((health, changed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_unconfirmed_groups_own_failure_falls_back_and_only_when_asked() {
        let own = [Failure::group("check 'api': refused")];
        let shared = [Failure::shared("check 'net': down")];
        use OnRuntimeFailure::{Reboot, Report};
        for (policy, failures, good, expected) in [
            (Reboot, &own[..], false, Response::FallBack),
            (Reboot, &own[..], true, Response::Nothing),
            (Reboot, &shared[..], false, Response::Nothing),
            (Reboot, &[][..], false, Response::Nothing),
            (Report, &own[..], false, Response::Nothing),
        ] {
            assert_eq!(
                response(policy, failures, good),
                expected,
                "{policy:?} {failures:?} good={good}"
            );
        }
    }

    #[test]
    fn a_result_of_another_group_is_not_shown() {
        let dir = tempfile::tempdir().unwrap();
        let health = RuntimeHealth {
            time: now(),
            group: Group::A,
            healthy: true,
            failures: Vec::new(),
            failing_runs: 0,
        };
        std::fs::write(path(dir.path()), serde_json::to_vec(&health).unwrap()).unwrap();
        assert_eq!(load(dir.path(), Group::A), Some(health));
        assert_eq!(load(dir.path(), Group::B), None);
        clear(dir.path());
        assert_eq!(load(dir.path(), Group::A), None);
    }
}

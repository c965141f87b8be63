//! `[boot_check]`: what boot-check runs after a boot and what it does when a check fails.
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::http::is_url;

/// What boot-check does when a check fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Mark the booted group bad and reboot: the bootloader falls back at once.
    #[default]
    Fallback,
    /// Reboot without marking: the group gets its remaining attempts.
    Retry,
    /// Only report (exit non-zero); for bring-up.
    Report,
}

/// What the daemon does when a health check fails while the system runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnRuntimeFailure {
    /// Log it, show it in `/health` and `status`, and send it in reports.
    #[default]
    Report,
    /// As `report`, and while the booted group is not yet good, mark it bad and reboot, so the
    /// bootloader falls back. A group already confirmed is never sent back by a runtime check.
    Reboot,
}

/// Whether a group that has not been confirmed yet must fetch and verify its release index
/// (`[fleet]` devices) before it is marked good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IndexCheck {
    /// A new group that cannot reach its index within `index_time_limit` is not confirmed.
    #[default]
    Require,
    /// Reported only: for devices that boot without network.
    Warn,
    Off,
}

#[derive(Debug, Clone)]
pub struct BootCheckConfig {
    pub on_failure: OnFailure,
    pub reboot_command: Vec<String>,
    pub checks: Vec<Check>,
    pub index: IndexCheck,
    /// How long the self-test keeps trying to fetch the index (the network may still be coming up).
    pub index_time_limit: Duration,
    /// How often `updater daemon` runs the checks again while the system runs; None: never.
    pub runtime_interval: Option<Duration>,
    pub on_runtime_failure: OnRuntimeFailure,
}

impl Default for BootCheckConfig {
    fn default() -> Self {
        BootCheckConfig {
            on_failure: OnFailure::default(),
            reboot_command: vec!["systemctl".into(), "reboot".into()],
            checks: Vec::new(),
            index: IndexCheck::default(),
            index_time_limit: Duration::from_secs(60),
            runtime_interval: None,
            on_runtime_failure: OnRuntimeFailure::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: String,
    pub kind: CheckKind,
    /// Limit for one attempt.
    pub timeout: Duration,
    /// Keep retrying failed attempts until this much time has passed since the first one.
    pub retry_for: Duration,
    /// Whether a failure is the booted group's own (marks it bad) or shared (reported only).
    pub scope: Scope,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    Command(Vec<String>),
    Http { url: String, expect_status: u16 },
}

/// Whose problem a failed check is (docs/boot-flow.md). Only the booted group's own problems mark
/// it bad: falling back fixes those, and nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// The booted group's root filesystem, updater, application or firmware.
    Group,
    /// What both groups share: the data partition, the boot environment, another disk, the
    /// network.
    Shared,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBootCheck {
    on_failure: Option<OnFailure>,
    reboot_command: Option<Vec<String>>,
    index: Option<IndexCheck>,
    /// Seconds.
    index_time_limit: Option<f64>,
    /// E.g. "10m".
    runtime_interval: Option<String>,
    on_runtime_failure: Option<OnRuntimeFailure>,
    #[serde(default)]
    check: Vec<RawCheck>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    name: String,
    command: Option<Vec<String>>,
    http: Option<String>,
    expect_status: Option<u16>,
    /// Seconds for one attempt.
    timeout: Option<f64>,
    /// Seconds during which failed attempts are retried.
    retry_for: Option<f64>,
    /// "group" (default): a failure marks the booted group bad; "shared": only reported.
    scope: Option<Scope>,
}

pub(super) fn boot_check_config(raw: RawBootCheck) -> std::result::Result<BootCheckConfig, String> {
    let seconds = |name: &str, value: Option<f64>, default: f64| {
        let v = value.unwrap_or(default);
        if v.is_finite() && (0.0..=3600.0).contains(&v) {
            Ok(Duration::from_secs_f64(v))
        } else {
            Err(format!("check '{name}': times are seconds from 0 to 3600"))
        }
    };
    let reboot_command = raw
        .reboot_command
        .unwrap_or_else(|| BootCheckConfig::default().reboot_command);
    if reboot_command
        .first()
        .is_none_or(|program| program.is_empty())
    {
        return Err("boot_check.reboot_command must name a program".into());
    }
    let mut checks = Vec::new();
    for c in raw.check {
        let kind = match (c.command, c.http) {
            (Some(argv), None) if !argv.is_empty() => CheckKind::Command(argv),
            (None, Some(url)) if is_url(&url) => CheckKind::Http {
                url,
                expect_status: c.expect_status.unwrap_or(200),
            },
            (None, Some(url)) => {
                return Err(format!(
                    "check '{}': {url} is not an http:// or https:// URL",
                    c.name
                ))
            }
            _ => {
                return Err(format!(
                    "check '{}' needs either command = [...] or http = \"...\"",
                    c.name
                ))
            }
        };
        checks.push(Check {
            timeout: seconds(&c.name, c.timeout, 10.0)?,
            retry_for: seconds(&c.name, c.retry_for, 0.0)?,
            scope: c.scope.unwrap_or(Scope::Group),
            name: c.name,
            kind,
        });
    }
    let defaults = BootCheckConfig::default();
    let index_time_limit = match raw.index_time_limit {
        None => defaults.index_time_limit,
        Some(s) if s.is_finite() && s > 0.0 && s <= 3600.0 => Duration::from_secs_f64(s),
        Some(s) => {
            return Err(format!(
                "boot_check.index_time_limit = {s}: seconds, more than 0 and at most 3600"
            ))
        }
    };
    let runtime_interval = super::duration(
        "boot_check.runtime_interval",
        raw.runtime_interval.as_deref(),
    )?;
    if runtime_interval.is_some_and(|i| i < Duration::from_secs(1)) {
        return Err("boot_check.runtime_interval must be at least 1s".into());
    }
    if runtime_interval.is_some() && checks.is_empty() {
        return Err(
            "boot_check.runtime_interval is set, but there is no [[boot_check.check]] to run"
                .into(),
        );
    }
    Ok(BootCheckConfig {
        on_failure: raw.on_failure.unwrap_or_default(),
        reboot_command,
        checks,
        index: raw.index.unwrap_or_default(),
        index_time_limit,
        runtime_interval,
        on_runtime_failure: raw.on_runtime_failure.unwrap_or_default(),
    })
}

//! What the updater remembers between runs, in `<state_dir>/state.json`: the version installed in
//! each group, the security-version floor, the last install's outcome and an event log. Every
//! change replaces the file atomically.
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::error::{Result, UpdaterError};
use crate::fsutil::atomic_write;
use crate::group::Group;
use crate::names::named;

const STATE_FILE: &str = "state.json";
const LOCK_FILE: &str = "lock";
/// The event log keeps this many entries, newest last.
const MAX_EVENTS: usize = 200;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    #[serde(default)]
    pub groups: BTreeMap<Group, GroupRecord>,
    /// Bundles with a lower security_version are refused; raised only by mark-good.
    #[serde(default)]
    pub security_floor: u64,
    #[serde(default)]
    pub last_install: Option<InstallRecord>,
    #[serde(default)]
    pub events: Vec<Event>,
    /// The highest release index serial seen, by "channel/compatible": an older index is refused.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub index_serials: BTreeMap<String, u64>,
    /// Problems the last boot-check found in what both groups share (docs/boot-flow.md): reported
    /// here, never a reason to mark a group bad.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// What was last flashed and verified on each microcontroller, by firmware name.
    #[serde(default)]
    pub firmware: FlashedMap,
}

/// What was last flashed and verified on a target, by firmware name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flashed {
    pub version: String,
    pub sha256: String,
    pub group: Group,
    pub time: String,
}

pub type FlashedMap = BTreeMap<String, Flashed>;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecord {
    /// None while the group is being written or after a failed install.
    pub version: Option<String>,
    #[serde(default)]
    pub security_version: u64,
    pub installed_at: Option<String>,
    /// What the group holds, component by component.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<ComponentRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentRecord {
    pub name: String,
    /// The slot class of an image; None for firmware.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot_class: Option<String>,
    /// Images carry the bundle's version, firmware its own.
    pub version: String,
    /// The image's SHA-256 (hex), as its bundle signed it: what a delta's base is matched with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl ComponentRecord {
    pub fn of(component: &bundle::Component, bundle_version: &semver::Version) -> Self {
        ComponentRecord {
            name: component.name.clone(),
            slot_class: component.slot_class.clone(),
            version: component
                .firmware_version
                .clone()
                .unwrap_or_else(|| bundle_version.to_string()),
            sha256: component
                .slot_class
                .as_ref()
                .map(|_| hex::encode(component.sha256)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallRecord {
    pub target: Group,
    pub version: String,
    pub result: InstallResult,
    pub time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Bytes of the bundle read or received, and bytes of the images reused from the device
    /// instead (an adaptive install), once the install is complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downloaded_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reused_bytes: Option<u64>,
    /// The withdrawn version this install left, when a release index rolled the device back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_from: Option<String>,
}

named! {
    pub enum InstallResult {
        Installing = "installing",
        /// Written and activated; waiting for the reboot and boot-check.
        Installed = "installed",
        /// Booted and passed boot-check.
        Confirmed = "confirmed",
        /// Booted, but boot-check failed.
        Unhealthy = "unhealthy",
        /// Did not boot healthy; the bootloader went back to the previous group.
        RolledBack = "rolled-back",
        /// The install itself failed; the group stays unbootable.
        Failed = "failed",
    }
}

named! {
    /// What an entry of the event log records.
    pub enum EventKind {
        Install = "install",
        InstallFailed = "install-failed",
        MarkGood = "mark-good",
        MarkBad = "mark-bad",
        MarkActive = "mark-active",
        /// boot-check found a problem of what both groups share.
        BootCheckWarning = "boot-check-warning",
        /// The bootloader fell back from a group whose update failed.
        Rollback = "rollback",
        FirmwareFlashed = "firmware-flashed",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub time: String,
    pub event: String,
    pub group: Group,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

pub fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// The state folder, held exclusively while an updater command changes anything.
pub struct StateDir {
    path: PathBuf,
    _lock: Option<Flock<File>>,
}

impl StateDir {
    /// For reading only (status): no lock, no folder created.
    pub fn open_read_only(path: &Path) -> StateDir {
        StateDir {
            path: path.to_path_buf(),
            _lock: None,
        }
    }

    /// For changes: creates the folder and takes the lock, or says who holds it.
    pub fn lock(path: &Path) -> Result<StateDir> {
        fs::create_dir_all(path).map_err(UpdaterError::io(format!(
            "creating state folder {}",
            path.display()
        )))?;
        let lock_path = path.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(UpdaterError::io(format!("opening {}", lock_path.display())))?;
        let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|_| {
            UpdaterError::Busy(format!("another updater holds {}", lock_path.display()))
        })?;
        Ok(StateDir {
            path: path.to_path_buf(),
            _lock: Some(lock),
        })
    }

    pub fn load(&self) -> Result<State> {
        let path = self.path.join(STATE_FILE);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| UpdaterError::Io {
                context: format!("reading {}", path.display()),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(UpdaterError::io(format!("reading {}", path.display()))(e)),
        }
    }

    /// Proves the folder takes a durable write (self-test).
    pub fn probe_writable(&self) -> Result<()> {
        atomic_write(&self.path.join(".probe"), b"ok")
    }

    pub fn save(&self, state: &State) -> Result<()> {
        debug_assert!(self._lock.is_some(), "state saved without the lock");
        let json = serde_json::to_vec_pretty(state).expect("state serializes");
        atomic_write(&self.path.join(STATE_FILE), &json)
    }
}

impl State {
    pub fn record(
        &mut self,
        event: EventKind,
        group: Group,
        version: Option<&str>,
        message: Option<String>,
    ) {
        self.events.push(Event {
            time: now(),
            // Stored as text: an older updater (after a fallback) must still read newer kinds.
            event: event.to_string(),
            group,
            version: version.map(Into::into),
            message,
        });
        let excess = self.events.len().saturating_sub(MAX_EVENTS);
        self.events.drain(..excess);
    }

    pub fn version_of(&self, group: Group) -> Option<&str> {
        self.groups.get(&group).and_then(|g| g.version.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_loads_and_caps_the_event_log() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateDir::lock(dir.path()).unwrap();
        assert_eq!(store.load().unwrap(), State::default());
        let mut state = State::default();
        for _ in 0..MAX_EVENTS + 5 {
            state.record(EventKind::MarkGood, Group::A, Some("1.0.0"), None);
        }
        store.save(&state).unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(loaded.events.len(), MAX_EVENTS);
        assert_eq!(loaded, state);
    }

    #[test]
    fn a_second_writer_is_told_the_folder_is_busy() {
        let dir = tempfile::tempdir().unwrap();
        let _first = StateDir::lock(dir.path()).unwrap();
        let err = StateDir::lock(dir.path()).err().unwrap();
        assert!(
            err.to_string().starts_with("another updater holds"),
            "{err}"
        );
    }
}

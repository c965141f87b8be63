//! The device configuration (`/etc/updater/system.toml`); docs/config.md documents every key.
//! Relative paths are relative to the folder of the config file.
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;

mod boot_check;
mod bootloader;
mod data;
mod fleet;
mod hooks;
mod http;
mod slots;

pub use boot_check::{
    BootCheckConfig, Check, CheckKind, IndexCheck, OnFailure, OnRuntimeFailure, Scope,
};
pub use bootloader::{BootloaderConfig, Location};
pub use data::DataConfig;
pub use fleet::{
    AfterInstall, ApiConfig, DeviceId, FleetConfig, Pin, DEFAULT_INTERVAL, DEFAULT_LISTEN,
};
pub use hooks::{HooksConfig, DEFAULT_HOOK_TIMEOUT};
pub use http::{is_url, HttpSettings};
pub use slots::{BlockDevices, Filesystem, GroupSlots, SlotFilesystem, SlotSource, SlotSpec};

use crate::error::{Result, UpdaterError};
use crate::group::Group;
use boot_check::{boot_check_config, RawBootCheck};
use bootloader::{bootloader_config, RawBootloader};
use data::RawData;
use fleet::{api_config, fleet_config, RawApi, RawFleet};
use hooks::RawHooks;
use http::RawHttp;
use slots::{refuse_shared_paths, RawSlot};

pub const DEFAULT_PATH: &str = "/etc/updater/system.toml";
/// Boot attempts a freshly installed or freshly confirmed group gets.
pub const DEFAULT_TRIES: u8 = 2;

#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub compatible: String,
    pub keyring: PathBuf,
    pub state_dir: PathBuf,
    pub bootloader: BootloaderConfig,
    pub boot: BootConfig,
    pub slots: BTreeMap<Group, GroupSlots>,
    pub boot_check: BootCheckConfig,
    pub block_devices: BlockDevices,
    /// None when no `[fleet] url` is set: the device takes updates only when told.
    pub fleet: Option<FleetConfig>,
    pub api: ApiConfig,
    pub dbus: DbusConfig,
    /// Time limits and trusted CAs of every HTTP(S) request.
    pub http: HttpSettings,
    pub hooks: HooksConfig,
    /// `[data]`: each group's own copy of the application's data (docs/data.md).
    pub data: Option<DataConfig>,
}

#[derive(Debug, Clone)]
pub struct BootConfig {
    /// Fixed booted group, for tests; otherwise read from the kernel command line.
    pub booted: Option<Group>,
    pub cmdline: PathBuf,
    pub tries: u8,
}

impl Default for BootConfig {
    fn default() -> Self {
        BootConfig {
            booted: None,
            cmdline: PathBuf::from("/proc/cmdline"),
            tries: DEFAULT_TRIES,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    compatible: String,
    keyring: PathBuf,
    state_dir: PathBuf,
    bootloader: RawBootloader,
    #[serde(default)]
    boot: RawBoot,
    slots: BTreeMap<String, BTreeMap<String, RawSlot>>,
    #[serde(default)]
    boot_check: RawBootCheck,
    #[serde(default)]
    fleet: RawFleet,
    #[serde(default)]
    api: RawApi,
    #[serde(default)]
    http: RawHttp,
    #[serde(default)]
    dbus: DbusConfig,
    #[serde(default)]
    hooks: RawHooks,
    #[serde(default)]
    data: RawData,
    /// Stand-ins for /sys and /dev (tests, containers).
    sysfs_root: Option<PathBuf>,
    dev_root: Option<PathBuf>,
}

/// `[dbus]`: RAUC's D-Bus service interface (docs/rauc-migration.md).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbusConfig {
    /// `updater daemon` owns `de.pengutronix.rauc` on the system bus.
    #[serde(default)]
    pub enable: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawBoot {
    booted: Option<String>,
    cmdline: Option<PathBuf>,
    tries: Option<u8>,
}

impl Config {
    /// A configuration made in code (embedding, tests) rather than read from a file: what every
    /// device must say, and every other setting at its documented default. The fields are public
    /// for what differs.
    pub fn new(
        compatible: &str,
        keyring: PathBuf,
        state_dir: PathBuf,
        bootloader: BootloaderConfig,
        slots: BTreeMap<Group, GroupSlots>,
    ) -> Config {
        Config {
            path: PathBuf::from("(made in code)"),
            compatible: compatible.into(),
            keyring,
            state_dir,
            bootloader,
            boot: BootConfig::default(),
            slots,
            boot_check: BootCheckConfig::default(),
            block_devices: BlockDevices::default(),
            fleet: None,
            api: ApiConfig::default(),
            http: HttpSettings::default(),
            dbus: DbusConfig::default(),
            hooks: HooksConfig::default(),
            data: None,
        }
    }
}

/// A TOML mistake in one line: where it is and what is wrong ("line 12: unknown variant ...").
fn at_line(text: &str, err: &toml::de::Error) -> String {
    let message = err.message().trim_end();
    match err.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {message}")
        }
        None => message.to_string(),
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config> {
        let text = fs::read_to_string(path).map_err(UpdaterError::config_unreadable(path))?;
        let raw: RawConfig =
            toml::from_str(&text).map_err(|e| UpdaterError::config(path, at_line(&text, &e)))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &Path| base.join(p);
        let bad = |msg: String| UpdaterError::config(path, msg);

        if raw.compatible.is_empty() {
            return Err(bad("compatible must not be empty".into()));
        }
        let bootloader = bootloader_config(&raw.bootloader, &resolve).map_err(bad)?;
        let booted = raw
            .boot
            .booted
            .map(|b| {
                b.parse::<Group>()
                    .map_err(|e| bad(format!("boot.booted: {e}")))
            })
            .transpose()?;
        let tries = raw.boot.tries.unwrap_or(DEFAULT_TRIES);
        if !(1..=3).contains(&tries) {
            return Err(bad(format!("boot.tries must be 1, 2 or 3, not {tries}")));
        }

        let mut slots = BTreeMap::new();
        for (group, classes) in raw.slots {
            let group: Group = group.parse().map_err(|e| bad(format!("slots.{e}")))?;
            let mut resolved = GroupSlots::new();
            for (class, slot) in classes {
                let spec = match slot {
                    RawSlot::Path(p) => SlotSpec {
                        source: SlotSource::Path(resolve(&p)),
                        size: None,
                        filesystem: None,
                    },
                    RawSlot::Table {
                        path,
                        label,
                        partuuid,
                        size,
                        filesystem,
                        fs_label,
                        mkfs_options,
                    } => {
                        let source = match (path, label, partuuid) {
                            (Some(p), None, None) => SlotSource::Path(resolve(&p)),
                            (None, Some(l), None) => SlotSource::Label(l),
                            (None, None, Some(u)) => SlotSource::PartUuid(u),
                            _ => {
                                return Err(bad(format!(
                                "slots.{group}.{class}: give exactly one of path, label, partuuid"
                            )))
                            }
                        };
                        let filesystem = match (filesystem, fs_label, mkfs_options) {
                            (Some(kind), label, options) => Some(SlotFilesystem {
                                kind,
                                label,
                                mkfs_options: options.unwrap_or_default(),
                            }),
                            (None, None, None) => None,
                            (None, _, _) => {
                                return Err(bad(format!(
                                    "slots.{group}.{class}: fs_label and mkfs_options need a \
                                     filesystem"
                                )))
                            }
                        };
                        SlotSpec {
                            source,
                            size,
                            filesystem,
                        }
                    }
                };
                resolved.insert(class, spec);
            }
            slots.insert(group, resolved);
        }
        for needed in [Group::A, Group::B] {
            if !slots.contains_key(&needed) {
                return Err(bad(format!("[slots.{needed}] is missing")));
            }
        }
        let classes_a: Vec<_> = slots[&Group::A].keys().collect();
        let classes_b: Vec<_> = slots[&Group::B].keys().collect();
        if classes_a != classes_b {
            return Err(bad("groups A and B must hold the same slot classes".into()));
        }
        refuse_shared_paths(&slots).map_err(bad)?;

        let boot_check = boot_check_config(raw.boot_check).map_err(bad)?;
        let keyring = resolve(&raw.keyring);
        let fleet = fleet_config(raw.fleet, &keyring, &resolve).map_err(bad)?;
        let api = api_config(raw.api).map_err(bad)?;
        let http = raw.http.settings(&resolve).map_err(bad)?;
        let hooks = raw.hooks.settings(&resolve).map_err(bad)?;
        let data = raw.data.settings(&resolve).map_err(bad)?;
        let defaults = BlockDevices::default();
        let block_devices = BlockDevices {
            sysfs: raw.sysfs_root.map_or(defaults.sysfs, |p| resolve(&p)),
            dev: raw.dev_root.map_or(defaults.dev, |p| resolve(&p)),
            root: defaults.root,
        };
        Ok(Config {
            block_devices,
            boot_check,
            path: path.to_path_buf(),
            compatible: raw.compatible,
            keyring,
            fleet,
            api,
            http,
            hooks,
            data,
            dbus: raw.dbus,
            state_dir: resolve(&raw.state_dir),
            bootloader,
            boot: BootConfig {
                booted,
                cmdline: raw
                    .boot
                    .cmdline
                    .map_or_else(|| BootConfig::default().cmdline, |p| resolve(&p)),
                tries,
            },
            slots,
        })
    }

    pub fn groups(&self) -> impl Iterator<Item = Group> + '_ {
        self.slots.keys().copied()
    }
}

/// A time written for people ("6h", "30m", "90s"), for the key named `key`.
fn duration(key: &str, text: Option<&str>) -> Result<Option<std::time::Duration>, String> {
    text.map(|text| {
        humantime::parse_duration(text)
            .map_err(|e| format!("{key} '{text}': {e} (e.g. \"6h\", \"30m\")"))
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// The documented example (docs/config.md), as shipped with the demo.
    const EXAMPLE: &str = include_str!("../../../examples/acme-robot/system.toml");

    fn load(text: &str) -> Result<Config> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("system.toml");
        fs::write(&path, text).unwrap();
        Config::load(&path)
    }

    #[test]
    fn the_documented_example_loads_with_paths_beside_the_config() {
        let config = load(EXAMPLE).unwrap();
        let base = config.path.parent().unwrap().to_path_buf();
        assert_eq!(config.keyring, base.join("keys"));
        assert_eq!(
            config.bootloader,
            BootloaderConfig::File {
                path: base.join("state/bootloader.env")
            }
        );
        assert_eq!(config.booted_group().unwrap(), Group::A);
        assert_eq!(
            config.slots[&Group::B]["rootfs"].source,
            SlotSource::Path(base.join("slots/rootfs-b.img"))
        );
        assert_eq!(config.boot.tries, DEFAULT_TRIES);
    }

    #[test]
    fn uboot_backend_with_a_redundant_copy() {
        let text = EXAMPLE.replace(
            "backend = \"file\"\npath = \"state/bootloader.env\"",
            "backend = \"uboot\"\npath = \"/dev/mmcblk0\"\noffset = 0x3e0000\nsize = 0x20000\nredundant_offset = 0x400000",
        );
        let config = load(&text).unwrap();
        let copy = |offset| Location {
            path: "/dev/mmcblk0".into(),
            offset,
            size: 0x20000,
        };
        assert_eq!(
            config.bootloader,
            BootloaderConfig::Uboot {
                copies: vec![copy(0x3e0000), copy(0x400000)]
            }
        );
    }

    #[test]
    fn the_index_self_test_settings() {
        let config = load(EXAMPLE).unwrap();
        assert_eq!(config.boot_check.index, IndexCheck::Require);
        assert_eq!(config.boot_check.index_time_limit, Duration::from_secs(60));
        let text = format!("{EXAMPLE}\n[boot_check]\nindex = \"warn\"\nindex_time_limit = 7.5\n");
        let config = load(&text).unwrap();
        assert_eq!(config.boot_check.index, IndexCheck::Warn);
        assert_eq!(
            config.boot_check.index_time_limit,
            Duration::from_millis(7500)
        );
        for (setting, says) in [
            (
                "index_time_limit = 0",
                "boot_check.index_time_limit = 0: seconds, more than 0 and at most 3600",
            ),
            (
                "index_time_limit = 4000",
                "boot_check.index_time_limit = 4000: seconds, more than 0 and at most 3600",
            ),
            ("index = \"always\"", "unknown variant `always`"),
        ] {
            let err = load(&format!("{EXAMPLE}\n[boot_check]\n{setting}\n")).unwrap_err();
            assert!(err.to_string().contains(says), "{setting}: {err}");
        }
    }

    #[test]
    fn runtime_health_settings() {
        let config = load(EXAMPLE).unwrap();
        assert_eq!(config.boot_check.runtime_interval, None);
        assert_eq!(
            config.boot_check.on_runtime_failure,
            OnRuntimeFailure::Report
        );
        let check =
            "[[boot_check.check]]\nname = \"api\"\nhttp = \"http://127.0.0.1:8080/health\"\n";
        let text = format!(
            "{EXAMPLE}\n[boot_check]\nruntime_interval = \"5m\"\non_runtime_failure = \"reboot\"\n{check}"
        );
        let config = load(&text).unwrap();
        assert_eq!(
            config.boot_check.runtime_interval,
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            config.boot_check.on_runtime_failure,
            OnRuntimeFailure::Reboot
        );
        for (setting, says) in [
            (
                format!("runtime_interval = \"soon\"\n{check}"),
                "boot_check.runtime_interval 'soon': ",
            ),
            (
                format!("runtime_interval = \"10ms\"\n{check}"),
                "boot_check.runtime_interval must be at least 1s",
            ),
            (
                "runtime_interval = \"5m\"".to_string(),
                "boot_check.runtime_interval is set, but there is no [[boot_check.check]] to run",
            ),
            (
                "on_runtime_failure = \"panic\"".to_string(),
                "unknown variant `panic`",
            ),
        ] {
            let err = load(&format!("{EXAMPLE}\n[boot_check]\n{setting}\n")).unwrap_err();
            assert!(err.to_string().contains(says), "{setting}: {err}");
        }
    }

    #[test]
    fn health_checks() {
        let text = format!(
            "{EXAMPLE}\n[boot_check]\non_failure = \"retry\"\n\n[[boot_check.check]]\nname = \"api\"\nhttp = \"http://127.0.0.1:8080/health\"\nretry_for = 60\n\n[[boot_check.check]]\nname = \"motor\"\ncommand = [\"/usr/bin/check-motor\"]\ntimeout = 5\n"
        );
        let config = load(&text).unwrap();
        assert_eq!(config.boot_check.on_failure, OnFailure::Retry);
        assert_eq!(config.boot_check.checks.len(), 2);
        assert_eq!(
            config.boot_check.checks[0].kind,
            CheckKind::Http {
                url: "http://127.0.0.1:8080/health".into(),
                expect_status: 200
            }
        );
        assert_eq!(
            config.boot_check.checks[0].retry_for,
            Duration::from_secs(60)
        );
        assert_eq!(config.boot_check.checks[1].timeout, Duration::from_secs(5));
        let bad = format!("{EXAMPLE}\n[[boot_check.check]]\nname = \"x\"\n");
        assert!(load(&bad)
            .unwrap_err()
            .to_string()
            .contains("check 'x' needs either command"));
        let bad = format!("{EXAMPLE}\n[boot_check]\non_failure = \"panic\"\n");
        assert!(load(&bad)
            .unwrap_err()
            .to_string()
            .contains("unknown variant `panic`, expected one of `fallback`, `retry`, `report`"));
        // A TOML mistake says on which line of the file it is.
        let lines_before = EXAMPLE.lines().count() + 2;
        assert!(load(&bad).unwrap_err().to_string().contains(&format!(
            "line {}: unknown variant `panic`",
            lines_before + 1
        )));
    }

    #[test]
    fn slots_by_gpt_label_or_partuuid() {
        let text = EXAMPLE
            .replace(
                "rootfs = \"slots/rootfs-a.img\"",
                "rootfs = { label = \"rootA\" }",
            )
            .replace(
                "rootfs = \"slots/rootfs-b.img\"",
                "rootfs = { partuuid = \"3c2b1a0e-5d4f-4e3a-9b8c-7d6e5f4a3b2c\" }",
            );
        let config = load(&text).unwrap();
        assert_eq!(
            config.slots[&Group::A]["rootfs"].source,
            SlotSource::Label("rootA".into())
        );
        assert!(matches!(
            config.slots[&Group::B]["rootfs"].source,
            SlotSource::PartUuid(_)
        ));
        let both = EXAMPLE.replace(
            "rootfs = \"slots/rootfs-a.img\"",
            "rootfs = { label = \"rootA\", path = \"x\" }",
        );
        assert!(load(&both)
            .unwrap_err()
            .to_string()
            .contains("give exactly one of path, label, partuuid"));
    }

    #[test]
    fn slot_with_a_size_limit() {
        let text = EXAMPLE.replace(
            "rootfs = \"slots/rootfs-b.img\"",
            "rootfs = { path = \"slots/rootfs-b.img\", size = 4096 }",
        );
        assert_eq!(
            load(&text).unwrap().slots[&Group::B]["rootfs"].size,
            Some(4096)
        );
    }

    #[test]
    fn mistakes_are_named() {
        let cases = [
            (
                EXAMPLE.replace("backend = \"file\"", "backend = \"lilo\""),
                "unknown variant `lilo`, expected one of `file`, `grub`, `uboot`",
            ),
            (
                EXAMPLE.replace("backend = \"file\"", "backend = \"uboot\""),
                "backend \"uboot\" needs size",
            ),
            (
                EXAMPLE.replace("backend = \"file\"", "backend = \"grub\"\noffset = 4"),
                "offset, size and redundant_* belong to backend \"uboot\"",
            ),
            (
                EXAMPLE.replace("booted = \"A\"", "booted = \"C\""),
                "boot.booted: 'C' is not a slot group",
            ),
            (
                EXAMPLE.replace("[slots.B]\nrootfs = \"slots/rootfs-b.img\"\n", ""),
                "[slots.B] is missing",
            ),
            (
                EXAMPLE.replace("[slots.B]\n", "[slots.B]\napp = \"x\"\n"),
                "must hold the same slot classes",
            ),
            (
                EXAMPLE.replace("state_dir", "statedir"),
                "unknown field `statedir`",
            ),
            (
                EXAMPLE.replace("[boot]", "[boot]\ntries = 9"),
                "boot.tries must be 1, 2 or 3",
            ),
            (
                format!("{EXAMPLE}\n[boot_check]\nreboot_command = []\n"),
                "boot_check.reboot_command must name a program",
            ),
        ];
        for (text, message) in cases {
            let err = load(&text).unwrap_err().to_string();
            assert!(
                err.contains(message),
                "'{err}' does not contain '{message}'"
            );
        }
        let err = Config::load(Path::new("/nonexistent/system.toml")).unwrap_err();
        assert_eq!(err.exit_code(), crate::error::exit::CONFIG);
        assert!(
            err.to_string()
                .starts_with("config /nonexistent/system.toml: No such file"),
            "{err}"
        );
    }

    #[test]
    fn the_kernel_command_line_names_the_booted_group_over_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let cmdline = dir.path().join("cmdline");
        let text = EXAMPLE.replace(
            "booted = \"A\"",
            &format!("booted = \"A\"\ncmdline = \"{}\"", cmdline.display()),
        );
        let path = dir.path().join("system.toml");
        fs::write(&path, &text).unwrap();
        let config = Config::load(&path).unwrap();
        // No updater.slot=: the configured value stands in (tests, bring-up).
        fs::write(&cmdline, "root=/dev/vda2 quiet\n").unwrap();
        assert_eq!(config.booted_group().unwrap(), Group::A);
        fs::write(&cmdline, "root=/dev/vda3 updater.slot=A\n").unwrap();
        assert_eq!(config.booted_group().unwrap(), Group::A);
        // After a fallback to B, a config that still says A must not make A the install target.
        fs::write(&cmdline, "root=/dev/vda3 updater.slot=B\n").unwrap();
        let err = config.booted_group().unwrap_err().to_string();
        assert!(
            err.contains("says updater.slot=B, but [boot] booted = \"A\""),
            "{err}"
        );
        let without = Config::load(&{
            fs::write(&path, text.replace("booted = \"A\"\n", "")).unwrap();
            path.clone()
        })
        .unwrap();
        assert_eq!(without.booted_group().unwrap(), Group::B);
    }
}

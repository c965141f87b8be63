//! Install hooks (docs/hooks.md): the bundle's signed hook and the device's hooks run at every
//! event with their context; a refusal, a failure or a timeout stops the install in the right
//! state; a hook the bundle lacks or that was changed after signing is refused before anything is
//! written.
mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bundle::craft::{assemble, entries_of, RawEntry};
use bundle::{CreateOptions, HookEvent};
use common::device::{assert_fails, assert_refused_untouched, assert_safe, image, Device, CONFIG};
use common::web::Nginx;

const HOOK_EXIT: i32 = 15;

/// A hook script that appends "<source> <event> <context>" to `log` and then runs `then`.
fn script(log: &Path, then: &str) -> String {
    format!(
        "#!/bin/sh\n\
         echo \"$UPDATER_HOOK_SOURCE $1 target=$UPDATER_TARGET_GROUP booted=$UPDATER_BOOTED_GROUP \
         version=$UPDATER_BUNDLE_VERSION current=$UPDATER_CURRENT_VERSION \
         compatible=$UPDATER_BUNDLE_COMPATIBLE/$UPDATER_SYSTEM_COMPATIBLE \
         class=$UPDATER_SLOT_CLASS device=$UPDATER_SLOT_DEVICE \
         mount=$UPDATER_SLOT_MOUNT_POINT\" >> {}\n\
         {then}\n",
        log.display()
    )
}

fn executable(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

struct Setup {
    device: Device,
    log: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        Self::with_config(CONFIG)
    }

    fn with_config(config: &str) -> Setup {
        let device = Device::with_config(config);
        let log = device.path("hooks.log");
        Setup { device, log }
    }

    /// A bundle of version `version` whose hook runs `then` after logging, for `events`.
    fn bundle(&self, version: &str, then: &str, events: &[HookEvent]) -> PathBuf {
        self.bundle_of(version, then, events, &CreateOptions::default())
    }

    fn bundle_of(
        &self,
        version: &str,
        then: &str,
        events: &[HookEvent],
        options: &CreateOptions,
    ) -> PathBuf {
        let rootfs = self.device.path(&format!("rootfs-{version}.img"));
        fs::write(&rootfs, image(300_000, version.as_bytes()[0])).unwrap();
        let hook = script(&self.log, then);
        self.make(
            &format!("v{version}.zst"),
            version,
            rootfs,
            &hook,
            events,
            options,
        )
    }

    fn make(
        &self,
        name: &str,
        version: &str,
        rootfs: PathBuf,
        hook: &str,
        events: &[HookEvent],
        options: &CreateOptions,
    ) -> PathBuf {
        self.device
            .bundle_with_hook(name, version, rootfs, hook, events, options)
    }

    fn log(&self) -> Vec<String> {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn events(&self) -> Vec<String> {
        self.log()
            .iter()
            .map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" "))
            .collect()
    }
}

fn succeeded(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn with_hooks_dir(config: &str, extra: &str) -> String {
    format!("{config}\n[hooks]\ndir = \"hooks.d\"\n{extra}")
}

#[test]
fn every_event_runs_device_hooks_then_the_bundles_with_the_context() {
    let s = Setup::with_config(&with_hooks_dir(CONFIG, ""));
    let hooks_d = s.device.path("hooks.d");
    fs::create_dir(&hooks_d).unwrap();
    executable(&hooks_d.join("20-second"), &script(&s.log, ""));
    executable(
        &hooks_d.join("10-first"),
        &script(&s.log, "echo from-10 >> /dev/null"),
    );
    // Neither a file without an execute bit nor a hidden one is a hook.
    fs::write(hooks_d.join("30-not-executable"), "#!/bin/sh\nexit 1\n").unwrap();
    executable(&hooks_d.join(".hidden"), "#!/bin/sh\nexit 1\n");
    let bundle = s.bundle(
        "2.0.0",
        "",
        &[
            HookEvent::PreInstall,
            HookEvent::SlotPostInstall,
            HookEvent::PostInstall,
        ],
    );
    succeeded(&s.device.install(&bundle));
    assert_eq!(
        s.events(),
        [
            "device pre-install",
            "device pre-install",
            "bundle pre-install",
            "device slot-post-install",
            "device slot-post-install",
            "bundle slot-post-install",
            "device post-install",
            "device post-install",
            "bundle post-install",
        ]
    );
    let log = s.log();
    let slot = s.device.path("slots/rootfs-b.img");
    assert!(
        log[2].contains(
            "target=B booted=A version=2.0.0 current= compatible=acme-robot/acme-robot class= "
        ),
        "{}",
        log[2]
    );
    assert!(
        log[5].contains(&format!("class=rootfs device={} mount=", slot.display())),
        "{}",
        log[5]
    );
    let status = s.device.status();
    assert_eq!(status["next"], "B");
    // The bundle's hook was written out for the install only.
    assert!(!s.device.path("state/bundle-hook").exists());
}

#[test]
fn a_hook_runs_only_for_the_events_the_manifest_names_and_sees_the_running_version() {
    let s = Setup::new();
    succeeded(
        &s.device
            .install(&s.bundle("2.0.0", "", &[HookEvent::PostInstall])),
    );
    assert_eq!(s.events(), ["bundle post-install"]);
    // Now running B with 2.0.0, installing into A.
    s.device.set_booted("B");
    succeeded(&s.device.updater(&["mark-good"]));
    succeeded(
        &s.device
            .install(&s.bundle("3.0.0", "", &[HookEvent::PreInstall])),
    );
    let log = s.log();
    assert_eq!(s.events()[1], "bundle pre-install");
    assert!(
        log[1].contains("target=A booted=B version=3.0.0 current=2.0.0"),
        "{}",
        log[1]
    );
}

#[test]
fn a_refusing_pre_install_hook_changes_nothing_and_its_last_line_is_the_cause() {
    let s = Setup::new();
    let bundle = s.bundle(
        "2.0.0",
        "echo checking the motors; echo 'robot is moving' >&2; exit 3",
        &[HookEvent::PreInstall, HookEvent::PostInstall],
    );
    assert_refused_untouched(
        &s.device,
        &bundle,
        HOOK_EXIT,
        "bundle hook failed at pre-install: exited with 3: robot is moving",
    );
    assert_eq!(s.events(), ["bundle pre-install"], "nothing ran after it");
}

#[test]
fn a_refusing_device_hook_is_named_and_the_bundle_hook_does_not_run() {
    let s = Setup::with_config(&with_hooks_dir(CONFIG, ""));
    let hooks_d = s.device.path("hooks.d");
    fs::create_dir(&hooks_d).unwrap();
    executable(
        &hooks_d.join("50-site-policy"),
        &script(
            &s.log,
            "[ \"$1\" = pre-install ] && { echo 'not during a shift'; exit 1; }; exit 0",
        ),
    );
    let bundle = s.bundle("2.0.0", "", &[HookEvent::PreInstall]);
    assert_refused_untouched(
        &s.device,
        &bundle,
        HOOK_EXIT,
        &format!(
            "device hook {} failed at pre-install: exited with 1: not during a shift",
            hooks_d.join("50-site-policy").display()
        ),
    );
    assert_eq!(s.events(), ["device pre-install"]);
}

#[test]
fn a_failing_post_install_hook_leaves_the_group_unbootable() {
    for (event, name) in [
        (HookEvent::SlotPostInstall, "slot-post-install"),
        (HookEvent::PostInstall, "post-install"),
    ] {
        let s = Setup::new();
        let bundle = s.bundle("2.0.0", "echo 'migration failed' >&2; exit 2", &[event]);
        let out = s.device.install(&bundle);
        assert_fails(
            &out,
            HOOK_EXIT,
            &format!("bundle hook failed at {name}: exited with 2: migration failed"),
        );
        assert_safe(&s.device);
        let status = s.device.status();
        assert_eq!(status["last_install"]["result"], "failed", "{status}");
        assert!(status["last_install"]["error"]
            .as_str()
            .unwrap()
            .contains("migration failed"));
    }
}

#[test]
fn a_hook_that_runs_past_its_time_is_killed_with_what_it_started() {
    let s = Setup::with_config(&format!("{CONFIG}\n[hooks]\ntimeout = \"1s\"\n"));
    let marker = s.device.path("still-running");
    let bundle = s.bundle(
        "2.0.0",
        &format!(
            "echo waiting for the robot; (sleep 3; touch {}) & sleep 60",
            marker.display()
        ),
        &[HookEvent::PostInstall],
    );
    let started = Instant::now();
    let out = s.device.install(&bundle);
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_fails(
        &out,
        HOOK_EXIT,
        "bundle hook failed at post-install: did not finish within 1 s: waiting for the robot",
    );
    assert_safe(&s.device);
    std::thread::sleep(Duration::from_secs(4));
    assert!(!marker.exists(), "the hook's own child outlived it");
}

#[test]
fn a_hook_the_bundle_names_but_lacks_or_that_was_changed_is_refused_untouched() {
    let s = Setup::new();
    let bundle = fs::read(s.bundle("2.0.0", "", &[HookEvent::PreInstall])).unwrap();
    let entries = entries_of(&bundle);
    assert_eq!(entries[2].name, "hooks", "the hook follows the signature");

    let mut missing = entries.clone();
    missing.remove(2);
    let missing = s.device.write_bundle("missing.zst", &assemble(&missing));
    assert_refused_untouched(
        &s.device,
        &missing,
        4,
        "unexpected archive entry 'rootfs.img' (expected 'hooks')",
    );

    let mut changed = entries.clone();
    changed[2] = RawEntry::new("hooks", b"#!/bin/sh\nexit 0\n".to_vec());
    let changed = s.device.write_bundle("changed.zst", &assemble(&changed));
    assert_refused_untouched(
        &s.device,
        &changed,
        4,
        "archive entry 'hooks' does not match its signed size and SHA-256",
    );
    assert!(s.log().is_empty(), "no hook ran");
}

#[test]
fn a_hook_that_cannot_start_fails_the_install_before_anything_is_written() {
    let s = Setup::new();
    let rootfs = s.device.path("rootfs.img");
    fs::write(&rootfs, image(300_000, 5)).unwrap();
    let bundle = s.make(
        "broken.zst",
        "2.0.0",
        rootfs,
        "#!/nonexistent/sh\nexit 0\n",
        &[HookEvent::PreInstall],
        &CreateOptions::default(),
    );
    assert_refused_untouched(
        &s.device,
        &bundle,
        HOOK_EXIT,
        "bundle hook failed at pre-install: could not be started: No such file or directory",
    );
}

#[test]
fn hooks_run_for_adaptive_and_delta_installs_too() {
    let s = Setup::new();
    let options = CreateOptions::for_format(bundle::FORMAT_WITH_BLOCKS);
    let v1 = s.bundle_of("1.0.0", "", &[HookEvent::PostInstall], &options);
    let v2 = s.bundle_of("2.0.0", "", &[HookEvent::PreInstall], &options);
    let nginx = Nginx::serve(s.device.dir.path());
    // Adaptive: the manifest and the hook come first, the images in parts.
    succeeded(&s.device.install_source(&nginx.url("v1.0.0.zst")));
    assert_eq!(s.events(), ["bundle post-install"]);
    // The delta carries the new version's hook.
    s.device.set_booted("B");
    succeeded(&s.device.updater(&["mark-good"]));
    let delta = s.device.delta(&v1, &v2, &s.device.key, "delta.zst");
    succeeded(&s.device.install(&delta));
    assert_eq!(s.events(), ["bundle post-install", "bundle pre-install"]);
    assert!(s.log()[1].contains("target=A booted=B version=2.0.0 current=1.0.0"));
    drop(nginx);
}

#[test]
fn a_slot_holding_a_file_system_is_mounted_read_write_for_its_hooks() {
    let config = CONFIG.replace(
        "rootfs = \"slots/rootfs-b.img\"",
        "rootfs = { path = \"slots/rootfs-b.img\", filesystem = \"ext4\" }",
    );
    let s = Setup::with_config(&config);
    // An ext4 image to install, made as a build system would.
    let tree = s.device.path("tree");
    fs::create_dir(&tree).unwrap();
    fs::write(tree.join("os-release"), "VERSION=2\n").unwrap();
    let rootfs = s.device.path("rootfs-ext4.img");
    common::run(
        "mke2fs",
        &[
            "-q",
            "-F",
            "-t",
            "ext4",
            "-d",
            tree.to_str().unwrap(),
            rootfs.to_str().unwrap(),
            "8M",
        ],
    );
    let hook = script(
        &s.log,
        "cat \"$UPDATER_SLOT_MOUNT_POINT/os-release\" >> \"$UPDATER_SLOT_MOUNT_POINT/seen\"",
    );
    let events = [HookEvent::SlotPostInstall];
    let options = CreateOptions::default();
    let bundle = s.make("ext4.zst", "2.0.0", rootfs, &hook, &events, &options);
    succeeded(&s.device.install(&bundle));
    let log = s.log();
    let mount_point = s.device.path("state/mnt-B-rootfs");
    assert!(
        log[0].contains(&format!("mount={}", mount_point.display())),
        "{}",
        log[0]
    );
    assert!(!mount_point.exists(), "unmounted and removed afterwards");
    // What the hook wrote is in the slot's file system.
    let seen = common::run(
        "debugfs",
        &[
            "-R",
            "cat /seen",
            s.device.path("slots/rootfs-b.img").to_str().unwrap(),
        ],
    );
    assert_eq!(seen, "VERSION=2\n");
    assert_eq!(s.device.status()["next"], "B");
}

#[test]
fn a_bad_hooks_setting_is_a_config_error() {
    let s = Setup::with_config(&format!("{CONFIG}\n[hooks]\ntimeout = \"soon\"\n"));
    let out = s.device.updater(&["status"]);
    assert_fails(&out, 3, "hooks.timeout 'soon'");
    let s = Setup::with_config(&format!("{CONFIG}\n[hooks]\ntimeout = \"0s\"\n"));
    assert_fails(
        &s.device.updater(&["status"]),
        3,
        "hooks.timeout must be more than 0",
    );
}

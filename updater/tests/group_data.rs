//! Data that follows its group (docs/data.md): an install copies the booted group's data for the
//! target group (owners, modes, extended attributes, links kept), the new version's migrate-data
//! hook adapts the copy, a fallback finds the old group's data as it was, and the next install
//! starts from the data of the group that runs then.
mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use bundle::{CreateOptions, HookEvent};
use common::device::{assert_fails, assert_safe, image, Device, CONFIG};

/// Renames the settings key `speed` to `velocity` in the target group's copy.
const MIGRATE: &str = "#!/bin/sh\n\
    [ \"$1\" = migrate-data ] || exit 0\n\
    echo \"migrating $UPDATER_DATA_SOURCE to $UPDATER_DATA_TARGET\"\n\
    sed -i 's/^speed/velocity/' \"$UPDATER_DATA_TARGET/settings.toml\"\n";

fn device() -> Device {
    Device::with_config(&format!("{CONFIG}\n[data]\ndir = \"data\"\n"))
}

fn bundle(device: &Device, version: &str, hook: &str) -> std::path::PathBuf {
    let rootfs = device.path(&format!("rootfs-{version}.img"));
    fs::write(&rootfs, image(200_000, version.as_bytes()[0])).unwrap();
    device.bundle_with_hook(
        &format!("v{version}.zst"),
        version,
        rootfs,
        hook,
        &[HookEvent::MigrateData],
        &CreateOptions::default(),
    )
}

fn succeeded(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap()
}

/// Group A's data as its application left it: settings, a folder, a private file owned by
/// another user with an extended attribute, a symbolic and a hard link.
fn populate_a(device: &Device) {
    let a = device.path("data/A");
    fs::create_dir_all(a.join("db")).unwrap();
    fs::write(a.join("settings.toml"), "speed = 3\n").unwrap();
    fs::write(a.join("db/records"), "one\ntwo\n").unwrap();
    fs::set_permissions(a.join("db/records"), fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(a.join("db/records"), Some(1234), Some(4321)).unwrap();
    common::set_xattr(&a.join("db/records"), "user.origin", "factory");
    std::os::unix::fs::symlink("db/records", a.join("latest")).unwrap();
    fs::hard_link(a.join("db/records"), a.join("db/records.bak")).unwrap();
}

#[test]
fn data_follows_its_group_across_install_good_boot_fallback_and_a_second_install() {
    let device = device();
    populate_a(&device);
    succeeded(&device.install(&bundle(&device, "2.0.0", MIGRATE)));

    // B's copy is migrated; A's is as A left it.
    let (a, b) = (device.path("data/A"), device.path("data/B"));
    assert_eq!(read(&b.join("settings.toml")), "velocity = 3\n");
    assert_eq!(read(&a.join("settings.toml")), "speed = 3\n");
    // Everything else came along exactly.
    let records = fs::metadata(b.join("db/records")).unwrap();
    assert_eq!(records.mode() & 0o777, 0o600);
    assert_eq!((records.uid(), records.gid()), (1234, 4321));
    assert_eq!(
        common::xattr(&b.join("db/records"), "user.origin"),
        "factory"
    );
    assert_eq!(
        fs::read_link(b.join("latest")).unwrap(),
        Path::new("db/records")
    );
    assert_eq!(
        fs::metadata(b.join("db/records.bak")).unwrap().ino(),
        records.ino(),
        "a hard link stays one file"
    );
    let status = device.status();
    assert_eq!(
        status["slots"]["B"]["data"]["path"],
        b.display().to_string()
    );
    // Settings and records, counted once: the hard link and the symbolic link add nothing.
    assert_eq!(status["slots"]["A"]["data"]["bytes"], 10 + 8);
    assert_eq!(status["slots"]["B"]["data"]["bytes"], 13 + 8);
    assert!(status["slots"]["R"]["data"]["bytes"].is_null());

    // B boots: before its application starts, `current` names B's data; the application changes
    // it. (boot-check sets the link too, for a system without updater-data.service.)
    device.set_booted("B");
    let linked = device.updater(&["data-link"]);
    succeeded(&linked);
    let current = device.path("data/current");
    assert_eq!(fs::read_link(&current).unwrap(), Path::new("B"));
    assert!(String::from_utf8_lossy(&linked.stdout).ends_with("data/current -> B\n"));
    succeeded(&device.updater(&["boot-check", "--no-reboot"]));
    assert_eq!(fs::read_link(&current).unwrap(), Path::new("B"));
    fs::write(current.join("settings.toml"), "velocity = 9\n").unwrap();

    // B fails later and the device falls back to A: A's data is exactly as A left it.
    device.set_booted("A");
    succeeded(&device.updater(&["boot-check", "--no-reboot"]));
    assert_eq!(fs::read_link(&current).unwrap(), Path::new("A"));
    assert_eq!(read(&current.join("settings.toml")), "speed = 3\n");

    // Running B again (confirmed), the next install into A starts from B's data; A's old copy
    // is replaced only now, when the install needs it.
    device.set_booted("B");
    succeeded(&device.updater(&["mark-good"]));
    let keep_as_is = "#!/bin/sh\nexit 0\n";
    succeeded(&device.install(&bundle(&device, "3.0.0", keep_as_is)));
    assert_eq!(read(&a.join("settings.toml")), "velocity = 9\n");
    assert!(!device.path("data/.A.new").exists());
}

#[test]
fn a_failing_migration_leaves_the_group_unbootable_and_the_running_data_untouched() {
    let device = device();
    populate_a(&device);
    let failing = "#!/bin/sh\necho 'settings version 7 is unknown' >&2\nexit 4\n";
    let out = device.install(&bundle(&device, "2.0.0", failing));
    assert_fails(
        &out,
        15,
        "bundle hook failed at migrate-data: exited with 4: settings version 7 is unknown",
    );
    assert_safe(&device);
    assert_eq!(read(&device.path("data/A/settings.toml")), "speed = 3\n");
}

#[test]
fn data_link_needs_a_data_folder_in_the_config() {
    let device = Device::new();
    assert_fails(
        &device.updater(&["data-link"]),
        3,
        "[data] is not set: there is no data to link",
    );
}

/// A location per group (here B's is a file system of its own, mounted: as a partition per group
/// would be) and a link elsewhere.
#[test]
fn each_group_may_have_a_location_of_its_own_even_a_mount_point() {
    let device = Device::with_config(&format!(
        "{CONFIG}\n[data]\nA = \"data-a\"\nB = \"data-b\"\nlink = \"app-data\"\n"
    ));
    fs::create_dir_all(device.path("data-a")).unwrap();
    fs::write(device.path("data-a/settings.toml"), "speed = 3\n").unwrap();
    fs::create_dir_all(device.path("data-b")).unwrap();
    common::run(
        "mount",
        &[
            "-t",
            "tmpfs",
            "tmpfs",
            device.path("data-b").to_str().unwrap(),
        ],
    );
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _mounted = Unmount(device.path("data-b"));
    fs::write(device.path("data-b/stale"), "from an older B").unwrap();

    succeeded(&device.install(&bundle(&device, "2.0.0", MIGRATE)));
    assert_eq!(read(&device.path("data-b/settings.toml")), "velocity = 3\n");
    assert!(
        !device.path("data-b/stale").exists(),
        "B's old data is gone"
    );
    assert_eq!(read(&device.path("data-a/settings.toml")), "speed = 3\n");
    device.set_booted("B");
    succeeded(&device.updater(&["data-link"]));
    assert_eq!(
        fs::read_link(device.path("app-data")).unwrap(),
        Path::new("data-b")
    );
    let status = device.status();
    assert_eq!(
        status["slots"]["B"]["data"]["path"],
        device.path("data-b").display().to_string()
    );
    assert!(status["slots"]["R"]["data"].is_null(), "R has no location");
}

#[test]
fn a_half_given_data_config_is_refused() {
    for (data, message) in [
        (
            "dir = \"d\"\nA = \"a\"",
            "give either dir or A, B (R) and link",
        ),
        ("A = \"a\"\nlink = \"l\"", "A and B are both needed"),
        ("A = \"a\"\nB = \"b\"", "link is needed with A and B"),
        ("A = \"a\"\nB = \"a\"\nlink = \"l\"", "overlap"),
        ("A = \"a\"\nB = \"a/b\"\nlink = \"l\"", "overlap"),
        ("A = \"a\"\nB = \"b\"\nlink = \"b/current\"", "overlap"),
        (
            "A = \"/\"\nB = \"b\"\nlink = \"l\"",
            "/ cannot be a group's data",
        ),
    ] {
        let device = Device::with_config(&format!("{CONFIG}\n[data]\n{data}\n"));
        assert_fails(&device.updater(&["status"]), 3, message);
    }
}

#[test]
fn a_group_without_data_yet_gives_the_target_an_empty_folder() {
    let device = device();
    let hook =
        "#!/bin/sh\nls -A \"$UPDATER_DATA_TARGET\" | wc -l > \"$UPDATER_DATA_TARGET/../count\"\n";
    succeeded(&device.install(&bundle(&device, "2.0.0", hook)));
    assert_eq!(read(&device.path("data/count")).trim(), "0");
    assert!(device.path("data/B").is_dir());
    assert!(!device.path("data/A").exists(), "the source is not created");
}

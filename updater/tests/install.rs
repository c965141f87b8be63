//! `updater` as a device runs it: the example config from docs/config.md, real files as slots, the
//! binary itself. Every refused install is checked for its exit code, its one-line message, and
//! that the running system and the recovery group were not touched.
mod common;
use std::fs;
use std::process::Command;

use bundle::craft::{assemble, assemble_framed, entries_of, signature_entry, RawEntry};
use bundle::{SeekTable, SigningKey};
use common::device::{
    assert_fails, assert_refused_untouched, assert_safe, image, two_slot_config, Device, CONFIG,
};
use serde_json::Value;

#[test]
fn install_writes_the_inactive_group_byte_for_byte_and_makes_it_next() {
    let device = Device::new();
    let (bundle, rootfs) = device.bundle("1.1.0");
    let out = device.install(&bundle);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("installed 1.1.0 into group B"));
    assert_eq!(device.slot("b"), rootfs);
    assert_eq!(device.slot("a"), b"running system A");
    assert_eq!(device.slot("r"), b"recovery");
    let status = device.status();
    assert_eq!(status["booted"], "A");
    assert_eq!(status["next"], "B");
    assert_eq!(
        status["slots"]["B"],
        serde_json::json!({
            "bootable": true, "good": false, "tries": 2, "version": "1.1.0",
            "components": [{"name": "rootfs", "slot_class": "rootfs", "version": "1.1.0",
                            "sha256": hex::encode(bundle::hash_chunk(&rootfs))}]
        })
    );
    assert_eq!(status["slots"]["A"]["good"], true);
    assert_eq!(status["slots"]["R"]["bootable"], true);
    assert!(
        status["slots"]["R"]["good"].is_null() && status["slots"]["R"]["tries"].is_null(),
        "R has no good flag or counter: {}",
        status["slots"]["R"]
    );
    assert_eq!(status["last_install"]["result"], "installed");
}

#[test]
fn install_from_standard_input() {
    let device = Device::new();
    let (bundle, rootfs) = device.bundle("1.1.0");
    let out = device.install_stdin(&fs::read(bundle).unwrap());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("install: 100%"),
        "plain progress lines off a terminal"
    );
    assert_eq!(device.slot("b"), rootfs);
}

#[test]
fn mark_good_after_booting_the_new_group_and_mark_bad_falls_back() {
    let device = Device::new();
    let (bundle, _) = device.bundle("1.1.0");
    assert!(device.install(&bundle).status.success());
    device.set_booted("B");
    assert!(device.updater(&["mark-good"]).status.success());
    let status = device.status();
    assert_eq!(status["slots"]["B"]["good"], true);
    assert_eq!(status["next"], "B");
    assert!(device.updater(&["mark-bad", "B"]).status.success());
    let status = device.status();
    assert_eq!(status["slots"]["B"]["bootable"], false);
    assert_eq!(status["next"], "A");
    assert_fails(
        &device.updater(&["mark-good", "R"]),
        1,
        "R has no boot state",
    );
}

/// RAUC's mark-active: the group boots next with its attempts back, and keeps its good flag, so a
/// group never confirmed still has to pass boot-check.
#[test]
fn mark_active_brings_a_group_back_first_without_confirming_it() {
    let device = Device::new();
    let (bundle, _) = device.bundle("1.1.0");
    assert!(device.install(&bundle).status.success());
    assert!(device.updater(&["mark-bad", "B"]).status.success());
    assert_eq!(device.status()["next"], "A");
    let out = device.updater(&["mark-active", "B"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "group B boots next"
    );
    let status = device.status();
    assert_eq!(status["next"], "B");
    assert_eq!(status["slots"]["B"]["bootable"], true);
    assert_eq!(status["slots"]["B"]["good"], false);
    assert_eq!(
        status["slots"]["A"]["good"], true,
        "A is still the way back"
    );
    assert!(device.updater(&["mark-active"]).status.success());
    assert_eq!(device.status()["next"], "A");
    assert_fails(
        &device.updater(&["mark-active", "R"]),
        1,
        "R has no boot state",
    );
}

#[test]
fn wrong_key_is_refused_untouched() {
    let device = Device::new();
    let (bundle, _) = device.bundle("1.1.0");
    let (other, _) = SigningKey::generate().unwrap();
    fs::write(device.path("keys/release.pub"), other.public_key().to_pem()).unwrap();
    assert_refused_untouched(&device, &bundle, 5, "signed by untrusted key");
}

#[test]
fn manifest_modified_after_signing_is_refused_untouched() {
    let device = Device::new();
    let (bundle, _) = device.bundle("1.1.0");
    let mut entries = entries_of(&fs::read(&bundle).unwrap());
    let text = String::from_utf8(entries[0].data.clone()).unwrap();
    entries[0].data = text.replace("1.1.0", "9.9.9").into_bytes();
    let forged = device.write_bundle("forged.zst", &assemble(&entries));
    assert_refused_untouched(&device, &forged, 5, "modified after it was signed");
}

#[test]
fn a_flipped_payload_byte_leaves_the_target_unbootable_and_the_failure_recorded() {
    let device = Device::new();
    let (bundle, _) = device.bundle("1.1.0");
    let good = fs::read(&bundle).unwrap();
    let table = SeekTable::from_bundle_tail(&good).unwrap();
    // Frame 3 holds the whole rootfs (three chunks): flip a byte in its first chunk's part of the
    // frame, and one in its last's.
    let (offset, entry) = table.offsets().nth(3).unwrap();
    for at in [offset + 64, offset + u64::from(entry.compressed) * 7 / 8] {
        let mut bad = good.clone();
        bad[at as usize] ^= 1;
        let path = device.write_bundle("flipped.zst", &bad);
        assert_fails(&device.install(&path), 4, "bundle is corrupt");
        assert_safe(&device);
        let status = device.status();
        assert_eq!(status["last_install"]["result"], "failed");
        assert_eq!(status["slots"]["B"]["version"], Value::Null);
    }
}

#[test]
fn truncated_bundles_are_refused() {
    let device = Device::new();
    let (bundle, _) = device.bundle("1.1.0");
    let good = fs::read(&bundle).unwrap();
    let table = SeekTable::from_bundle_tail(&good).unwrap();
    let mut cuts: Vec<usize> = table.offsets().map(|(o, _)| o as usize).skip(1).collect();
    cuts.extend(
        table
            .offsets()
            .map(|(o, e)| (o + u64::from(e.compressed) / 2) as usize),
    );
    cuts.push(good.len() - table.encode().len());
    cuts.push(good.len() - 3);
    for cut in cuts {
        let path = device.write_bundle("cut.zst", &good[..cut]);
        assert_fails(&device.install(&path), 4, "bundle is truncated");
        assert_safe(&device);
    }
}

#[test]
fn malformed_archives_are_refused_untouched() {
    let device = Device::new();
    let (bundle, _) = device.bundle("1.1.0");
    let good = entries_of(&fs::read(&bundle).unwrap());
    let variant = |edit: &dyn Fn(&mut Vec<RawEntry>)| {
        let mut e = good.clone();
        edit(&mut e);
        assemble(&e)
    };
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            variant(&|e| e.insert(0, RawEntry::new("evil.sh", "x"))),
            "unexpected archive entry 'evil.sh'",
        ),
        (
            variant(&|e| e.insert(1, e[0].clone())),
            "unexpected archive entry 'manifest.toml' (expected 'manifest.sig')",
        ),
        (
            variant(&|e| e[0].name = "../manifest.toml".into()),
            "archive entry '../manifest.toml' has an unsafe path",
        ),
        (
            variant(&|e| e[1].data = vec![b'#'; 100_000]),
            "more than the 65536 allowed",
        ),
    ];
    for (bytes, message) in cases {
        let path = device.write_bundle("bad.zst", &bytes);
        assert_refused_untouched(&device, &path, 4, message);
    }
    // A duplicate image entry is only found once the first copy was written: the target stays
    // unbootable and the failure is recorded.
    let duplicate = device.write_bundle("dup.zst", &variant(&|e| e.insert(3, e[2].clone())));
    assert_fails(
        &device.install(&duplicate),
        4,
        "unexpected archive entry 'rootfs.img' (expected the end of the archive)",
    );
    assert_safe(&device);
}

#[test]
fn a_signed_manifest_that_does_not_parse_or_names_an_unknown_class_is_refused_untouched() {
    let device = Device::new();
    let (bundle, _) = device.bundle("1.1.0");
    let mut entries = entries_of(&fs::read(&bundle).unwrap());
    entries[0].data = b"compatible = \"acme-robot\"\nversion = ".to_vec();
    entries[1].data = signature_entry(&entries[0].data, &device.key);
    let unparsable = device.write_bundle("unparsable.zst", &assemble(&entries));
    assert_refused_untouched(&device, &unparsable, 4, "manifest is invalid");

    let app = device.bundle_with(
        "app.zst",
        "acme-robot",
        "1.1.0",
        0,
        &[("app", image(1000, 1))],
    );
    assert_refused_untouched(
        &device,
        &app,
        6,
        "image for slot class 'app', but group B has no such slot",
    );
}

#[test]
fn another_device_s_bundle_is_refused_untouched() {
    let device = Device::new();
    let other = device.bundle_with(
        "other.zst",
        "other-robot",
        "1.1.0",
        0,
        &[("rootfs", image(1000, 1))],
    );
    assert_refused_untouched(
        &device,
        &other,
        6,
        "bundle is for 'other-robot', this device is 'acme-robot'",
    );
}

#[test]
fn downgrades_need_permission_and_the_security_floor_is_never_crossed() {
    let device = Device::new();
    let v2 = device.bundle_with(
        "v2.zst",
        "acme-robot",
        "2.0.0",
        1,
        &[("rootfs", image(5000, 2))],
    );
    assert!(device.install(&v2).status.success());
    device.set_booted("B");
    // The floor rises only when the group carrying security version 1 is marked good.
    assert_eq!(device.status()["security_floor"], 0);
    assert!(device.updater(&["mark-good"]).status.success());
    assert_eq!(device.status()["security_floor"], 1);

    let v1 = device.bundle_with(
        "v1.zst",
        "acme-robot",
        "1.5.0",
        1,
        &[("rootfs", image(5000, 1))],
    );
    let before = device.snapshot();
    assert_fails(
        &device.install(&v1),
        6,
        "version 1.5.0 is older than the running 2.0.0",
    );
    assert_eq!(device.snapshot(), before);
    let out = device.updater(&["install", "--allow-downgrade", v1.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(device.slot("a"), image(5000, 1));

    let insecure = device.bundle_with(
        "v0.zst",
        "acme-robot",
        "3.0.0",
        0,
        &[("rootfs", image(5000, 0))],
    );
    let before = device.snapshot();
    let out = device.updater(&["install", "--allow-downgrade", insecure.to_str().unwrap()]);
    assert_fails(&out, 6, "security version 0 is below this device's floor 1");
    assert_eq!(device.snapshot(), before);
}

#[test]
fn an_image_larger_than_its_slot_is_refused_untouched() {
    let config = CONFIG.replace(
        "rootfs = \"slots/rootfs-b.img\"",
        "rootfs = { path = \"slots/rootfs-b.img\", size = 1048576 }",
    );
    let device = Device::with_config(&config);
    let (bundle, _) = device.bundle("1.1.0");
    assert_refused_untouched(
        &device,
        &bundle,
        6,
        "image 'rootfs' is 2101473 bytes, slot B/rootfs holds only 1048576",
    );
}

#[test]
fn an_unwritable_slot_is_refused() {
    let config = CONFIG.replace("slots/rootfs-b.img", "slots/rootfs-a.img/b.img");
    let device = Device::with_config(&config);
    let (bundle, _) = device.bundle("1.1.0");
    let before = device.snapshot();
    assert_fails(
        &device.install(&bundle),
        7,
        "rootfs-a.img/b.img: Not a directory",
    );
    assert_eq!(device.snapshot(), before);
    assert_safe(&device);

    // sysfs refuses writers even to root: a read-only device node behaves the same.
    let config = CONFIG.replace("slots/rootfs-b.img", "/sys/kernel/notes");
    let device = Device::with_config(&config);
    let (bundle, _) = device.bundle("1.1.0");
    let before = device.snapshot();
    assert_fails(
        &device.install(&bundle),
        7,
        "opening slot /sys/kernel/notes for writing: Permission denied",
    );
    assert_eq!(device.snapshot(), before);
    assert_safe(&device);
}

#[test]
fn a_full_disk_leaves_the_target_unbootable() {
    let config = CONFIG.replace("slots/rootfs-b.img", "/dev/full");
    let device = Device::with_config(&config);
    let (bundle, _) = device.bundle("1.1.0");
    assert_fails(
        &device.install(&bundle),
        7,
        "writing slot B/rootfs: No space left on device",
    );
    assert_safe(&device);
    assert_eq!(device.status()["last_install"]["result"], "failed");
}

#[test]
fn missing_config_or_keyring_is_a_config_error() {
    let device = Device::new();
    let (bundle, _) = device.bundle("1.1.0");
    fs::remove_dir_all(device.path("keys")).unwrap();
    assert_refused_untouched(&device, &bundle, 3, "keyring: keyring");
    fs::create_dir(device.path("keys")).unwrap();
    assert_refused_untouched(&device, &bundle, 3, "no trusted public key in");
    fs::remove_file(device.path("system.toml")).unwrap();
    let out = device.install(&bundle);
    assert_fails(&out, 3, "system.toml: No such file or directory");
}

#[test]
fn recovery_is_written_only_when_named_and_the_booted_group_never() {
    let device = Device::new();
    let (bundle, rootfs) = device.bundle("1.1.0");
    assert_fails(
        &device.updater(&["install", "--target", "A", bundle.to_str().unwrap()]),
        1,
        "group A is the booted group",
    );
    assert_eq!(device.slot("r"), b"recovery");
    let out = device.updater(&["install", "--target", "R", bundle.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(device.slot("r"), rootfs);
    assert_eq!(device.slot("a"), b"running system A");
    assert_eq!(device.slot("b"), b"old B");
}

/// The example device with an `app` slot next to rootfs in A and B.
fn two_slot_device() -> Device {
    Device::with_config(&two_slot_config())
}

#[test]
fn a_group_with_rootfs_and_app_slots_takes_both_images() {
    let device = two_slot_device();
    let rootfs = image(3_000_000, 5);
    let app = image(1_500_000, 6);
    let bundle = device.bundle_with(
        "both.zst",
        "acme-robot",
        "1.1.0",
        0,
        &[("rootfs", rootfs.clone()), ("app", app.clone())],
    );
    let out = device.install(&bundle);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(device.slot("b"), rootfs);
    assert_eq!(fs::read(device.path("slots/app-b.img")).unwrap(), app);
}

#[test]
fn a_slot_shared_with_the_running_group_is_refused() {
    let config = CONFIG.replace("slots/rootfs-b.img", "slots/../slots/rootfs-a.img");
    let device = Device::with_config(&config);
    let (bundle, _) = device.bundle("1.1.0");
    let before = device.snapshot();
    assert_fails(
        &device.install(&bundle),
        3,
        "slots.B.rootfs and slots.A.rootfs are the same file",
    );
    assert_eq!(device.snapshot(), before, "something was written");
}

#[test]
fn a_slot_named_by_a_missing_gpt_label_is_a_config_error() {
    // Top-level keys go before the first table.
    let config = format!(
        "sysfs_root = \"fake-sys\"\ndev_root = \"fake-dev\"\n{}",
        CONFIG.replace(
            "rootfs = \"slots/rootfs-b.img\"",
            "rootfs = { label = \"rootB\" }"
        )
    );
    let device = Device::with_config(&config);
    fs::create_dir_all(device.path("fake-sys/class/block")).unwrap();
    let (bundle, _) = device.bundle("1.1.0");
    assert_refused_untouched(
        &device,
        &bundle,
        3,
        "slot not found: no partition labelled 'rootB'",
    );
}

#[test]
fn updater_log_selects_what_is_logged() {
    let logs = |filter: Option<&str>| {
        let device = Device::new();
        let (bundle, _) = device.bundle("1.1.0");
        let mut command = Command::new(env!("CARGO_BIN_EXE_updater"));
        command
            .arg("--config")
            .arg(device.path("system.toml"))
            .args(["--quiet", "install"])
            .arg(&bundle)
            .env_remove("UPDATER_LOG");
        if let Some(filter) = filter {
            command.env("UPDATER_LOG", filter);
        }
        let out = command.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let verified = "bundle signature verified";
    assert!(!logs(None).contains(verified), "warnings only by default");
    assert!(logs(Some("info")).contains(verified));
    assert!(logs(Some("warn,updater::install=info")).contains(verified));
    assert!(!logs(Some("info,updater::install=warn")).contains(verified));
    assert!(
        !logs(Some("not a {filter")).contains(verified),
        "an unreadable filter falls back to warnings"
    );
}

#[test]
fn defect_04_a_boot_environment_naming_a_variable_twice_is_corrupt() {
    let device = Device::new();
    let (bundle, _) = device.bundle("1.1.0");
    fs::create_dir_all(device.path("state")).unwrap();
    // A failed install's B_LEFT=0 first, a stale B_LEFT=2 later: the boot script reads the last.
    fs::write(
        device.path("state/bootloader.env"),
        "ORDER=A B\nA_LEFT=2\nB_LEFT=0\nA_OK=1\nB_OK=0\nB_LEFT=2\nB_OK=1\n",
    )
    .unwrap();
    let before = device.snapshot();
    assert_fails(
        &device.install(&bundle),
        8,
        "is corrupt: variable B_LEFT is set twice",
    );
    assert_eq!(device.snapshot(), before, "something was written");
    assert_fails(
        &device.updater(&["mark-good"]),
        8,
        "variable B_LEFT is set twice",
    );
    assert_eq!(device.snapshot(), before);
}

#[test]
fn defect_05_a_partial_bundle_cannot_activate_a_torn_group() {
    let device = two_slot_device();
    let rootfs = image(3_000_000, 5);
    let app = image(3_000_000, 6);
    let both = device.bundle_with(
        "both.zst",
        "acme-robot",
        "1.1.0",
        0,
        &[("rootfs", rootfs.clone()), ("app", app)],
    );
    // Fail inside app's second chunk: B/app now holds a mix of old and new bytes.
    let good = fs::read(&both).unwrap();
    let table = SeekTable::from_bundle_tail(&good).unwrap();
    // Frames: three of the head, rootfs, app's header, app (both chunks): flip in the middle.
    let (offset, entry) = table.offsets().nth(3 + 1 + 1).unwrap();
    assert_eq!(entry.decompressed, 3_000_000, "app's frame");
    let mut bad = good.clone();
    bad[(offset + u64::from(entry.compressed) / 2) as usize] ^= 1;
    let path = device.write_bundle("torn.zst", &bad);
    assert_fails(&device.install(&path), 4, "bundle is corrupt");
    assert_safe(&device);

    // A valid bundle for rootfs alone is refused: it would leave app torn.
    let rootfs_only = device.bundle_with(
        "rootfs-only.zst",
        "acme-robot",
        "1.2.0",
        0,
        &[("rootfs", rootfs)],
    );
    let before = device.snapshot();
    assert_fails(
        &device.install(&rootfs_only),
        6,
        "bundle has no image for slot class 'app' of group B",
    );
    assert_eq!(device.snapshot(), before, "something was written");
    assert_safe(&device);

    // Neither can mark-good make the torn group bootable, unless forced, nor mark-active at all.
    assert_fails(
        &device.updater(&["mark-good", "B"]),
        1,
        "the last install into group B did not complete",
    );
    assert_eq!(device.snapshot(), before);
    assert_safe(&device);
    assert_fails(
        &device.updater(&["mark-active", "B"]),
        1,
        "install a bundle into it before activating it",
    );
    assert_eq!(device.snapshot(), before);
    assert_safe(&device);
    let out = device.updater(&["mark-good", "B", "--force"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn defect_11_a_dangling_link_cannot_write_into_the_running_group() {
    // A runs from a file that is not there yet (created by its own first install, say); B's slot
    // is a link to that very name.
    let config = CONFIG
        .replace("slots/rootfs-a.img", "slots/new-a.img")
        .replace("slots/rootfs-b.img", "slots/link-b.img");
    let device = Device::with_config(&config);
    std::os::unix::fs::symlink("new-a.img", device.path("slots/link-b.img")).unwrap();
    let (bundle, _) = device.bundle("1.1.0");
    let out = device.install(&bundle);
    assert_fails(&out, 6, "is a link to new-a.img, which does not exist");
    assert!(
        !device.path("slots/new-a.img").exists(),
        "A's file was created"
    );
}

#[test]
fn two_groups_naming_one_file_not_yet_created_are_refused_at_config_load() {
    for b in [
        "slots/new-a.img",
        "./slots/new-a.img",
        "slots/../slots/new-a.img",
    ] {
        let config = CONFIG
            .replace("slots/rootfs-a.img", "slots/new-a.img")
            .replace("slots/rootfs-b.img", b);
        let device = Device::with_config(&config);
        let (bundle, _) = device.bundle("1.1.0");
        assert_fails(
            &device.install(&bundle),
            3,
            "slots.B.rootfs and slots.A.rootfs are the same file",
        );
        assert!(
            !device.path("slots/new-a.img").exists(),
            "{b}: A's file was created"
        );
    }
}

/// Peak resident memory (KiB) of `updater install BUNDLE` into group B, by GNU time.
fn install_peak_kib(device: &Device, bundle_bytes: &[u8]) -> u64 {
    fs::remove_dir_all(device.path("state")).ok();
    let path = device.write_bundle("b.zst", bundle_bytes);
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(env!("CARGO_BIN_EXE_updater"))
        .arg("--config")
        .arg(device.path("system.toml"))
        .args(["--quiet", "install"])
        .arg(&path)
        .output()
        .expect("/usr/bin/time (scripts/setup.sh installs it)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    stderr.lines().last().unwrap().trim().parse().unwrap()
}

#[test]
fn defect_06_memory_does_not_grow_with_the_number_of_frames() {
    let device = Device::new();
    let plain = device.bundle_with(
        "plain.zst",
        "acme-robot",
        "1.1.0",
        0,
        &[("rootfs", image(4096, 3))],
    );
    // A manifest padded to 600 kB, signed, and the whole archive in one-byte frames: over half a
    // million frames, most of them before the signature is checked.
    let mut entries = entries_of(&fs::read(&plain).unwrap());
    let mut manifest = entries[0].data.clone();
    manifest.extend_from_slice(format!("\n# {}\n", "x".repeat(600_000)).as_bytes());
    entries[1].data = signature_entry(&manifest, &device.key);
    entries[0].data = manifest;
    let padded = assemble(&entries);
    let framed = assemble_framed(&entries, 1);
    let (few, many) = (
        install_peak_kib(&device, &padded),
        install_peak_kib(&device, &framed),
    );
    println!("peak RSS: {few} KiB in 1 MiB frames, {many} KiB in one-byte frames");
    // Eight bytes a frame kept until the end would be about 5 MiB more.
    assert!(
        many < few + 2048,
        "{many} KiB with a frame per byte against {few} KiB"
    );
}

#[test]
fn from_dir_skips_what_the_install_would_refuse_with_the_reason() {
    // B holds at most 3 MB; the stick has an installable 1.1.0, a newer 1.3.0 for a slot class
    // this device lacks, and a newer 1.2.0 too large for its slot.
    let config = CONFIG.replace(
        "rootfs = \"slots/rootfs-b.img\"",
        "rootfs = { path = \"slots/rootfs-b.img\", size = 3000000 }",
    );
    let device = Device::with_config(&config);
    let stick = device.path("stick");
    fs::create_dir_all(&stick).unwrap();
    let (good, rootfs) = device.bundle("1.1.0");
    fs::copy(&good, stick.join("a-1.1.0.zst")).unwrap();
    let other_class = device.bundle_with(
        "x.zst",
        "acme-robot",
        "1.3.0",
        0,
        &[("rootfs", image(1000, 1)), ("app", image(1000, 2))],
    );
    fs::copy(&other_class, stick.join("b-1.3.0.zst")).unwrap();
    let too_large = device.bundle_with(
        "y.zst",
        "acme-robot",
        "1.2.0",
        0,
        &[("rootfs", image(3_500_000, 4))],
    );
    fs::copy(&too_large, stick.join("c-1.2.0.zst")).unwrap();
    let out = device.updater(&["install", "--from-dir", stick.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("chose") && stderr.contains("a-1.1.0.zst"),
        "{stderr}"
    );
    assert!(stderr.contains("group B has no such slot"), "{stderr}");
    assert!(stderr.contains("holds only 3000000"), "{stderr}");
    assert_eq!(device.slot("b"), rootfs);
}

#[test]
fn file_names_cannot_forge_output_lines() {
    let device = Device::new();
    let (bundle, _) = device.bundle("1.1.0");
    let stick = device.path("stick");
    fs::create_dir_all(&stick).unwrap();
    let evil = "evil\nupdater: installed 7.7.7 into B\n.zst";
    fs::write(stick.join(evil), b"not a bundle").unwrap();
    fs::copy(&bundle, stick.join("ok-1.1.0.zst")).unwrap();
    let out = device.updater(&["install", "--from-dir", stick.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr
            .lines()
            .any(|l| l.starts_with("updater: installed 7.7.7")),
        "a forged line: {stderr}"
    );
    assert!(
        stderr.contains("evil\\nupdater: installed 7.7.7 into B\\n.zst"),
        "{stderr}"
    );
    // An error naming the file is one line too.
    let missing = stick.join(format!("missing-{evil}"));
    let out = device.install_source(&missing.display().to_string());
    assert_fails(
        &out,
        7,
        "missing-evil\\nupdater: installed 7.7.7 into B\\n.zst",
    );
}

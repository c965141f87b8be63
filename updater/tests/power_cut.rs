//! The power-cut campaign: an install, a mark-good, a boot-check and a mark-bad are cut right after
//! every write, fsync, truncation and rename they make (the `fault-injection` feature's cut
//! points), on each boot-state backend (file, GRUB, redundant U-Boot). After every cut the state is loaded as the
//! next boot would find it and the boot selection is run: the group it picks must hold whole data
//! (a group with torn slots must never be picked), some group other than R must still boot, and
//! the device must take the update again afterwards.
//!
//! Run: cargo test -p updater --features fault-injection --test power_cut -- --nocapture
#![cfg(feature = "fault-injection")]
mod common;
use std::fs;
use std::path::Path;
use std::process::Output;

use bundle::{create_bundle, BundleInput, CreateOptions, ImageInput};
use common::device::{image, two_slot_config, Device};
use common::run;
use updater::bootloader;
use updater::group::Group;
use updater::Config;

const CUT_EXIT: i32 = 99;
/// 64 KiB chunks, the smallest: many writes, so many cut points.
const CHUNK: u32 = 64 << 10;

#[derive(Clone, Copy, Debug)]
enum Backend {
    File,
    Grub,
    UbootRedundant,
}

impl Backend {
    fn config(self) -> String {
        let two_slots = two_slot_config();
        let bootloader = match self {
            Backend::File => return two_slots,
            Backend::Grub => "backend = \"grub\"\npath = \"state/grubenv\"\n",
            Backend::UbootRedundant => {
                "backend = \"uboot\"\npath = \"state/uboot.env\"\nsize = 0x4000\nredundant_offset = 0x4000\n"
            }
        };
        two_slots.replace(
            "backend = \"file\"\npath = \"state/bootloader.env\"\n",
            bootloader,
        )
    }

    /// The factory boot state: A runs and is good, B was never installed.
    fn prepare(self, device: &Device) {
        fs::create_dir_all(device.path("state")).unwrap();
        match self {
            Backend::File => fs::write(
                device.path("state/bootloader.env"),
                "ORDER=A B\nA_LEFT=2\nB_LEFT=0\nA_OK=1\nB_OK=0\n",
            )
            .unwrap(),
            Backend::Grub => {
                let env = device.path("state/grubenv");
                let env = env.to_str().unwrap();
                run("grub-editenv", &[env, "create"]);
                run(
                    "grub-editenv",
                    &[
                        env,
                        "set",
                        "ORDER=A B",
                        "A_LEFT=2",
                        "B_LEFT=0",
                        "A_OK=1",
                        "B_OK=0",
                    ],
                );
            }
            Backend::UbootRedundant => {
                fs::write(device.path("state/uboot.env"), vec![0u8; 0x8000]).unwrap();
                let out = device.updater(&["mark-good"]);
                assert!(out.status.success(), "{}", stderr(&out));
            }
        }
        fs::write(device.path("slots/app-a.img"), "app A").unwrap();
        fs::write(device.path("slots/app-b.img"), "old app B").unwrap();
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

struct Release {
    rootfs: Vec<u8>,
    app: Vec<u8>,
    bundle: std::path::PathBuf,
}

fn release(device: &Device) -> Release {
    let rootfs = image(2_500_000, 3);
    let app = image(1_500_000, 5);
    let mut images = Vec::new();
    for (class, data) in [("rootfs", &rootfs), ("app", &app)] {
        let path = device.path(&format!("new-{class}.img"));
        fs::write(&path, data).unwrap();
        images.push(ImageInput {
            slot_class: class.into(),
            path,
            archive: false,
        });
    }
    let bundle = device.path("v1.1.0.zst");
    let input = BundleInput {
        compatible: "acme-robot".into(),
        version: "1.1.0".parse().unwrap(),
        security_version: 0,
        images,
        firmware: vec![],
        hooks: None,
    };
    let options = CreateOptions {
        chunk_size: CHUNK,
        ..CreateOptions::default()
    };
    create_bundle(&input, &[&device.key], &bundle, &options).unwrap();
    Release {
        rootfs,
        app,
        bundle,
    }
}

/// Runs `args` with the cut at point `at` (0: no cut, and the points passed are logged).
fn updater_cut(device: &Device, args: &[&str], at: usize) -> Output {
    let log = device.path("cut.log");
    let _ = fs::remove_file(&log);
    std::process::Command::new(env!("CARGO_BIN_EXE_updater"))
        .arg("--config")
        .arg(device.path("system.toml"))
        .arg("--quiet")
        .args(args)
        .env("UPDATER_CUT_AT", at.to_string())
        .env("UPDATER_CUT_LOG", &log)
        .output()
        .unwrap()
}

fn points_passed(device: &Device) -> Vec<String> {
    fs::read_to_string(device.path("cut.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// What the bootloader would do at the next power-on: load the state and pick a group.
fn next_boot(device: &Device) -> Group {
    let config = Config::load(&device.path("system.toml")).unwrap();
    let state = bootloader::open(&config.bootloader)
        .load()
        .unwrap_or_else(|e| panic!("the boot state does not load after the cut: {e}"))
        .expect("the boot state exists");
    let mut selection = state.clone();
    let group = selection.spend_try();
    assert_eq!(group, state.next_boot());
    group
}

fn slot(device: &Device, name: &str) -> Vec<u8> {
    fs::read(device.path(&format!("slots/{name}.img"))).unwrap()
}

/// The group that boots holds whole data: A its old system, B the new release in every slot.
fn assert_boots_whole(device: &Device, new: &Release, context: &str) -> Group {
    let group = next_boot(device);
    match group {
        Group::A => {
            assert_eq!(slot(device, "rootfs-a"), b"running system A", "{context}");
            assert_eq!(slot(device, "app-a"), b"app A", "{context}");
        }
        Group::B => {
            assert!(
                slot(device, "rootfs-b") == new.rootfs,
                "{context}: B boots with a torn rootfs"
            );
            assert!(
                slot(device, "app-b") == new.app,
                "{context}: B boots with a torn app"
            );
        }
        Group::R => panic!("{context}: no group but R boots"),
    }
    group
}

/// A fresh device of this backend with the release bundle; returns it with the release.
fn device(backend: Backend) -> (Device, Release) {
    let device = Device::with_config(&backend.config());
    backend.prepare(&device);
    let new = release(&device);
    (device, new)
}

/// Copies the device's slots and state to `snapshot`, or back.
fn copy_tree(from: &Path, to: &Path) {
    let _ = fs::remove_dir_all(to);
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn save(device: &Device) -> tempfile::TempDir {
    let snapshot = tempfile::tempdir().unwrap();
    for part in ["slots", "state"] {
        copy_tree(&device.path(part), &snapshot.path().join(part));
    }
    snapshot
}

fn restore(device: &Device, snapshot: &tempfile::TempDir) {
    for part in ["slots", "state"] {
        copy_tree(&snapshot.path().join(part), &device.path(part));
    }
}

/// Cuts `args` at each of its points; after each cut checks the boot selection and, every
/// `retry_every` cuts, that the interrupted operation completes when run again. Returns the
/// number of cut points.
fn campaign(
    device: &Device,
    new: &Release,
    args: &[&str],
    retry_every: usize,
    after_cut: impl Fn(&Device, usize),
) -> usize {
    let before = save(device);
    let full = updater_cut(device, args, 0);
    assert!(full.status.success(), "{args:?}: {}", stderr(&full));
    let points = points_passed(device);
    assert!(!points.is_empty(), "{args:?} passed no cut point");
    for at in 1..=points.len() {
        restore(device, &before);
        let out = updater_cut(device, args, at);
        let context = format!("{args:?} cut after {}", points[at - 1]);
        assert_eq!(
            out.status.code(),
            Some(CUT_EXIT),
            "{context}: {}",
            stderr(&out)
        );
        assert_boots_whole(device, new, &context);
        after_cut(device, at);
        if at % retry_every == 0 {
            let again = updater_cut(device, args, usize::MAX);
            assert!(
                again.status.success(),
                "{context}, then again: {}",
                stderr(&again)
            );
        }
    }
    restore(device, &before);
    points.len()
}

#[test]
fn no_power_cut_leaves_a_torn_group_bootable_or_no_group_bootable() {
    let mut total = 0;
    for backend in [Backend::File, Backend::Grub, Backend::UbootRedundant] {
        let (device, new) = device(backend);
        let bundle = new.bundle.to_str().unwrap().to_string();

        // Install: B may boot only once it is whole; A stays bootable throughout.
        let install = campaign(&device, &new, &["install", &bundle], 7, |_, _| {});

        // Mark-good and mark-bad of the new group after its first boot.
        let out = device.updater(&["install", &bundle]);
        assert!(out.status.success(), "{}", stderr(&out));
        device.set_booted("B");
        let good = campaign(&device, &new, &["mark-good"], 3, |device, _| {
            assert_eq!(next_boot(device), Group::B);
        });
        let check = campaign(
            &device,
            &new,
            &["boot-check", "--no-reboot"],
            3,
            |device, _| {
                assert_eq!(next_boot(device), Group::B);
            },
        );
        let bad = campaign(&device, &new, &["mark-bad"], 3, |device, _| {
            // Either still B, or marked bad and falling back to the whole A.
            let _ = next_boot(device);
        });
        println!(
            "{backend:?}: {install} cut points in install, {good} in mark-good, {check} in boot-check, {bad} in mark-bad"
        );
        total += install + good + check + bad;
    }
    println!("power-cut campaign: {total} cut points tried, each followed by a boot selection");
    assert!(total >= 200, "only {total} cut points");
}

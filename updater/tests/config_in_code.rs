//! The library without a TOML file: a device described in code installs a bundle, boots into it
//! and confirms it with boot-check, as an application embedding the updater would.
mod common;
use std::collections::BTreeMap;
use std::fs::{self, File};

use common::device::Device;
use updater::assess::boot_check;
use updater::config::{BootloaderConfig, SlotSource, SlotSpec};
use updater::group::Group;
use updater::install::{install, InstallOptions};
use updater::progress::{Progress, Style};
use updater::Config;

#[test]
fn install_and_boot_check_from_a_config_made_in_code() {
    // The device's files (keys, slots, a signing key); its system.toml is never read.
    let device = Device::new();
    let at = |rel: &str| device.path(rel);
    fs::write(at("cmdline"), "quiet\n").unwrap();
    let slot = |file: &str| {
        BTreeMap::from([(
            "rootfs".to_string(),
            SlotSpec {
                source: SlotSource::Path(at(file)),
                size: None,
                filesystem: None,
            },
        )])
    };
    let mut config = Config::new(
        "acme-robot",
        at("keys"),
        at("state"),
        BootloaderConfig::File {
            path: at("state/bootloader.env"),
        },
        BTreeMap::from([
            (Group::A, slot("slots/rootfs-a.img")),
            (Group::B, slot("slots/rootfs-b.img")),
        ]),
    );
    config.boot.cmdline = at("cmdline");
    config.boot.booted = Some(Group::A);
    let (bundle, image) = device.bundle("1.1.0");

    let quiet = Progress::new(Style::Quiet);
    let report = install(
        &config,
        File::open(bundle).unwrap(),
        &InstallOptions::default(),
        &quiet,
    )
    .unwrap();
    assert_eq!(report.target, Group::B);
    assert_eq!(device.slot("b"), image);

    // The bootloader starts B; boot-check confirms it.
    config.boot.booted = Some(Group::B);
    let checked = boot_check(&config).unwrap();
    assert!(checked.confirmed(), "{:?}", checked.failures);
    assert_eq!(checked.booted, Group::B);
}

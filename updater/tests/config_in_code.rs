//! The library without a TOML file: a device described in code installs a bundle, boots into it
//! and confirms it with boot-check, as an application embedding the updater would.
use std::collections::BTreeMap;
use std::fs::{self, File};

use bundle::{create_bundle, BundleInput, CreateOptions, ImageInput, SigningKey};
use updater::assess::boot_check;
use updater::config::{BootloaderConfig, SlotSource, SlotSpec};
use updater::group::Group;
use updater::install::{install, InstallOptions};
use updater::progress::{Progress, Style};
use updater::Config;

#[test]
fn install_and_boot_check_from_a_config_made_in_code() {
    let dir = tempfile::tempdir().unwrap();
    let at = |rel: &str| dir.path().join(rel);
    fs::create_dir_all(at("keys")).unwrap();
    fs::create_dir_all(at("slots")).unwrap();
    let (key, _) = SigningKey::generate().unwrap();
    fs::write(at("keys/release.pub"), key.public_key().to_pem()).unwrap();
    fs::write(at("slots/a.img"), "running system A").unwrap();
    fs::write(at("cmdline"), "quiet\n").unwrap();
    let slot = |file: &str| {
        BTreeMap::from([(
            "rootfs".to_string(),
            SlotSpec {
                source: SlotSource::Path(at(file)),
                size: None,
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
            (Group::A, slot("slots/a.img")),
            (Group::B, slot("slots/b.img")),
        ]),
    );
    config.boot.cmdline = at("cmdline");
    config.boot.booted = Some(Group::A);

    let image: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    fs::write(at("rootfs.img"), &image).unwrap();
    let input = BundleInput {
        compatible: "acme-robot".into(),
        version: "1.1.0".parse().unwrap(),
        security_version: 0,
        images: vec![ImageInput {
            slot_class: "rootfs".into(),
            path: at("rootfs.img"),
        }],
        firmware: vec![],
    };
    create_bundle(&input, &[&key], &at("b.zst"), &CreateOptions::default()).unwrap();

    let quiet = Progress::new(Style::Quiet);
    let report = install(
        &config,
        File::open(at("b.zst")).unwrap(),
        &InstallOptions::default(),
        &quiet,
    )
    .unwrap();
    assert_eq!(report.target, Group::B);
    assert_eq!(fs::read(at("slots/b.img")).unwrap(), image);

    // The bootloader starts B; boot-check confirms it.
    config.boot.booted = Some(Group::B);
    let checked = boot_check(&config).unwrap();
    assert!(checked.confirmed(), "{:?}", checked.failures);
    assert_eq!(checked.booted, Group::B);
}

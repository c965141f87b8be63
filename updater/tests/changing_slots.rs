//! A slot that changes after the adaptive install read it (a mounted filesystem written to, bit
//! rot): the chunks assembled from it no longer match their signed hashes, so they are fetched
//! instead, and the installed image is still exactly the release.
//!
//! Run: cargo test -p updater --features fault-injection --test changing_slots
#![cfg(feature = "fault-injection")]
mod common;
use std::fs;

use bundle::{CreateOptions, FORMAT_WITH_BLOCKS};
use common::device::Device;
use common::pair::pair;
use common::web::Nginx;

#[test]
fn blocks_that_change_after_they_were_read_are_fetched_instead() {
    let device = Device::new();
    let (v1, v2) = pair();
    fs::write(device.path("slots/rootfs-a.img"), &v1).unwrap();
    device.bundle_of_format(
        "v2.zst",
        "acme-robot",
        "1.1.0",
        0,
        &[("rootfs", v2.clone())],
        &CreateOptions::for_format(FORMAT_WITH_BLOCKS),
    );
    let nginx = Nginx::serve(device.dir.path());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_updater"))
        .arg("--config")
        .arg(device.path("system.toml"))
        .args(["install", &nginx.url("v2.zst")])
        .env(
            "UPDATER_CHANGE_AFTER_PLAN",
            device.path("slots/rootfs-a.img"),
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("blocks on this device changed since they were read"),
        "{stderr}"
    );
    assert_eq!(device.slot("b"), v2);
    let status = device.status();
    assert_eq!(status["next"], "B");
    // The first MiB of A changed: the chunks that took blocks from it were downloaded after all.
    let reused = status["last_install"]["reused_bytes"].as_u64().unwrap();
    assert!(reused < v2.len() as u64 * 9 / 10, "reused {reused}");
}

#[test]
fn a_delta_base_that_changes_while_it_is_read_leaves_the_group_unbootable() {
    let device = Device::new();
    let (v1, v2) = pair();
    fs::write(device.path("slots/rootfs-a.img"), &v1).unwrap();
    let format2 = CreateOptions::for_format(FORMAT_WITH_BLOCKS);
    let old = device.bundle_of_format(
        "v1.zst",
        "acme-robot",
        "1.0.0",
        0,
        &[("rootfs", v1)],
        &format2,
    );
    let new = device.bundle_of_format(
        "v2.zst",
        "acme-robot",
        "1.1.0",
        0,
        &[("rootfs", v2)],
        &format2,
    );
    let delta = device.path("d.zst");
    bundle::delta::create(&bundle::delta::DeltaRequest {
        from: &old,
        to: &new,
        keyring: None,
        keys: &[&device.key],
        output: &delta,
        level: 3,
        threads: Some(2),
    })
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_updater"))
        .arg("--config")
        .arg(device.path("system.toml"))
        .args(["--quiet", "install"])
        .arg(&delta)
        .env(
            "UPDATER_CHANGE_AFTER_PLAN",
            device.path("slots/rootfs-a.img"),
        )
        .output()
        .unwrap();
    common::device::assert_fails(&out, 6, "the base changed while it was read");
    let status = device.status();
    assert_eq!(status["slots"]["B"]["bootable"], false);
    assert_eq!(status["next"], "A");
    assert_eq!(status["last_install"]["result"], "failed");
}

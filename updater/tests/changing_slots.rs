//! A slot that changes after an install read it (a mounted filesystem written to, bit rot): the
//! chunks an adaptive install assembled from it no longer match their signed hashes, so they are
//! fetched instead, and the installed image is still exactly the release; a delta's base that
//! changes fails the install with the group left unbootable.
//!
//! Run: cargo test -p updater --features fault-injection --test changing_slots
#![cfg(feature = "fault-injection")]
mod common;
use std::fs;

use common::device::{assert_fails, Device};
use common::pair::pair;
use common::web::Nginx;

const CHANGE: &str = "UPDATER_CHANGE_AFTER_PLAN";

/// A device running v1 in A, and v1 and v2 as format-2 bundles.
fn device_running_v1() -> (Device, Vec<u8>, Vec<u8>) {
    let device = Device::new();
    let (v1, v2) = pair();
    fs::write(device.path("slots/rootfs-a.img"), &v1).unwrap();
    device.format2_bundle("v1.zst", "1.0.0", &v1);
    device.format2_bundle("v2.zst", "1.1.0", &v2);
    (device, v1, v2)
}

#[test]
fn blocks_that_change_after_they_were_read_are_fetched_instead() {
    let (device, _, v2) = device_running_v1();
    let nginx = Nginx::serve(device.dir.path());
    let slot_a = device.path("slots/rootfs-a.img");
    let out = device.updater_with_env(&["install", &nginx.url("v2.zst")], &[(CHANGE, &slot_a)]);
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
    let (device, _, _) = device_running_v1();
    let delta = device.delta(
        &device.path("v1.zst"),
        &device.path("v2.zst"),
        &device.key,
        "d.zst",
    );
    let slot_a = device.path("slots/rootfs-a.img");
    let delta = delta.to_str().unwrap();
    let out = device.updater_with_env(&["--quiet", "install", delta], &[(CHANGE, &slot_a)]);
    assert_fails(&out, 6, "the base changed while it was read");
    let status = device.status();
    assert_eq!(status["slots"]["B"]["bootable"], false);
    assert_eq!(status["next"], "A");
    assert_eq!(status["last_install"]["result"], "failed");
}

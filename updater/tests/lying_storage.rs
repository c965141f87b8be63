//! Storage that acknowledges writes it did not keep: the read-back catches it wherever the lie is,
//! in the chunks read back while later ones are still written and in the last ones, read back
//! after the fsync. The group stays unbootable and the failure is recorded.
//!
//! Run: cargo test -p updater --features fault-injection --test lying_storage
#![cfg(feature = "fault-injection")]
mod common;
use std::process::{Command, Output};

use common::device::{assert_fails, assert_safe, image, Device};

/// 12 chunks of 1 MiB: more than the read-back's lag, so both of its phases are exercised.
const CHUNKS: usize = 12;

fn install_on_lying_storage(device: &Device, lie_at: usize) -> Output {
    let bundle = device.bundle_with(
        "v1.1.0.zst",
        "acme-robot",
        "1.1.0",
        0,
        &[("rootfs", image(CHUNKS << 20, 3))],
    );
    Command::new(env!("CARGO_BIN_EXE_updater"))
        .arg("--config")
        .arg(device.path("system.toml"))
        .arg("--quiet")
        .arg("install")
        .arg(&bundle)
        .env("UPDATER_LYING_STORAGE", lie_at.to_string())
        .output()
        .unwrap()
}

#[test]
fn a_chunk_the_storage_did_not_keep_is_caught_while_later_ones_are_written() {
    let device = Device::new();
    let out = install_on_lying_storage(&device, 2);
    assert_fails(
        &out,
        7,
        "read-back of B/rootfs: chunk 1 differs from what was written",
    );
    assert_safe(&device);
    assert_eq!(device.status()["last_install"]["result"], "failed");
}

#[test]
fn the_last_chunk_is_read_back_after_the_fsync() {
    let device = Device::new();
    let out = install_on_lying_storage(&device, CHUNKS);
    assert_fails(
        &out,
        7,
        &format!("read-back of B/rootfs: chunk {} differs", CHUNKS - 1),
    );
    assert_safe(&device);
}

#[test]
fn honest_storage_installs() {
    let device = Device::new();
    let out = install_on_lying_storage(&device, 0);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(device.slot("b"), image(CHUNKS << 20, 3));
}

//! Delta bundles (`bundle-tool delta`): a device that holds the base rebuilds the new image from
//! it and the few new blocks, from a file, stdin or a URL; any other device, or one whose base
//! changed, refuses the delta before anything is written.
mod common;
use std::fs;
use std::path::PathBuf;
use std::process::Output;

use bundle::SigningKey;
use common::device::{assert_fails, assert_refused_untouched, Device};
use common::pair::pair;
use common::web::Nginx;

struct Setup {
    device: Device,
    v1: Vec<u8>,
    v2: Vec<u8>,
    delta: PathBuf,
}

/// A device running v1 in A; full bundles of v1 and v2, and the delta from one to the other.
fn setup() -> Setup {
    let device = Device::new();
    let (v1, v2) = pair();
    fs::write(device.path("slots/rootfs-a.img"), &v1).unwrap();
    let old = device.format2_bundle("v1.zst", "1.0.0", &v1);
    let new = device.format2_bundle("v2.zst", "1.1.0", &v2);
    let delta = device.delta(&old, &new, &device.key, "v1-v2.zst");
    Setup {
        device,
        v1,
        v2,
        delta,
    }
}

fn succeeded(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn assert_installed(s: &Setup) {
    assert_eq!(s.device.slot("b"), s.v2);
    let status = s.device.status();
    assert_eq!(status["next"], "B");
    let last = &status["last_install"];
    assert_eq!(last["result"], "installed");
    assert_eq!(
        last["downloaded_bytes"].as_u64(),
        Some(fs::metadata(&s.delta).unwrap().len())
    );
    assert!(
        last["reused_bytes"].as_u64().unwrap() > s.v2.len() as u64 * 9 / 10,
        "{last}"
    );
}

#[test]
fn a_delta_holds_only_the_new_blocks_and_rebuilds_the_new_image_from_the_base() {
    let s = setup();
    let full = fs::metadata(s.device.path("v2.zst")).unwrap().len();
    let delta = fs::metadata(&s.delta).unwrap().len();
    // 40 new blocks of 2048: the delta is a few percent of the full bundle.
    assert!(delta * 10 < full, "delta {delta}, full {full}");
    succeeded(&s.device.install(&s.delta));
    assert_installed(&s);
}

#[test]
fn a_delta_installs_from_stdin_and_from_a_url() {
    let s = setup();
    succeeded(&s.device.install_stdin(&fs::read(&s.delta).unwrap()));
    assert_installed(&s);

    fs::write(s.device.path("slots/rootfs-b.img"), "old B").unwrap();
    let nginx = Nginx::serve(s.device.dir.path());
    succeeded(&s.device.install_source(&nginx.url("v1-v2.zst")));
    assert_installed(&s);
}

#[test]
fn a_device_without_the_base_refuses_the_delta_untouched() {
    let s = setup();
    fs::write(s.device.path("slots/rootfs-a.img"), "running system A").unwrap();
    assert_refused_untouched(
        &s.device,
        &s.delta,
        6,
        "which no slot holds (A/rootfs, B/rootfs checked)",
    );
}

#[test]
fn a_base_changed_since_it_was_installed_is_refused_untouched() {
    let s = setup();
    let mut rotten = s.v1.clone();
    rotten[5000] ^= 1;
    fs::write(s.device.path("slots/rootfs-a.img"), &rotten).unwrap();
    let before = s.device.snapshot();
    assert_fails(&s.device.install(&s.delta), 6, "which no slot holds");
    assert_eq!(s.device.snapshot(), before, "something was written");
}

#[test]
fn a_delta_that_would_need_two_steps_is_refused_untouched() {
    // The device runs v1; the delta goes from v2 to v3.
    let s = setup();
    let mut v3 = s.v2.clone();
    v3[..4096].fill(b'z');
    let v3 = s.device.format2_bundle("v3.zst", "1.2.0", &v3);
    let later = s
        .device
        .delta(&s.device.path("v2.zst"), &v3, &s.device.key, "v2-v3.zst");
    let before = s.device.snapshot();
    assert_fails(&s.device.install(&later), 6, "which no slot holds");
    assert_eq!(s.device.snapshot(), before, "something was written");
}

#[test]
fn a_truncated_or_resigned_delta_is_refused() {
    let s = setup();
    let bytes = fs::read(&s.delta).unwrap();
    let cut = s
        .device
        .write_bundle("cut.zst", &bytes[..bytes.len() * 2 / 3]);
    let out = s.device.install(&cut);
    assert_fails(&out, 4, "truncated");
    let status = s.device.status();
    assert_eq!(status["slots"]["B"]["bootable"], false);
    assert_eq!(status["next"], "A");
    assert_eq!(s.device.slot("a"), s.v1);

    let (stranger, _) = SigningKey::generate().unwrap();
    let resigned = s.device.delta(
        &s.device.path("v1.zst"),
        &s.device.path("v2.zst"),
        &stranger,
        "resigned.zst",
    );
    let before = s.device.snapshot();
    assert_fails(&s.device.install(&resigned), 5, "signature");
    assert_eq!(s.device.snapshot(), before, "something was written");
}

#[test]
fn a_base_in_the_target_slot_works_unless_it_would_be_overwritten_first() {
    let s = setup();
    // A runs something else; B holds v1, the base.
    fs::write(s.device.path("slots/rootfs-a.img"), "running system A").unwrap();
    fs::write(s.device.path("slots/rootfs-b.img"), &s.v1).unwrap();
    // v2 moves v1's blocks around: rebuilding it in place would read blocks already overwritten.
    let before = s.device.snapshot();
    assert_fails(&s.device.install(&s.delta), 6, "would be overwritten first");
    assert_eq!(s.device.snapshot(), before, "something was written");

    // A release that changes blocks where they are rebuilds in place.
    let mut patched = s.v1.clone();
    for at in [10_000, 3_000_000, 7_000_000] {
        patched[at..at + 100].fill(b'#');
    }
    let new = s.device.format2_bundle("p.zst", "1.1.0", &patched);
    let delta = s
        .device
        .delta(&s.device.path("v1.zst"), &new, &s.device.key, "v1-p.zst");
    succeeded(&s.device.install(&delta));
    assert_eq!(s.device.slot("b"), patched);
    assert_eq!(s.device.status()["next"], "B");
}

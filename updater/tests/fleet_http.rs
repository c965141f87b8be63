//! Updates from a real web server: nginx serves a signed release index and bundles on loopback;
//! `updater check`, `update` and `install URL` take them, through a proxy that cuts or corrupts
//! the first response where the test says so. Every refusal is checked for its exit code, its
//! message, and that nothing was written.
mod common;
use std::fs;

use bundle::release::{bucket, in_rollout, Release, ReleaseIndex, Rollout};
use bundle::SigningKey;
use common::device::{assert_fails, assert_safe, image, release_of, Device, CONFIG};
use std::path::Path;

use common::web::{Fault, Nginx, Proxy};
use serde_json::Value;

struct Fleet {
    web: Nginx,
    _root: tempfile::TempDir,
    device: Device,
}

const DEVICE_ID: &str = "robot-0001";

impl Fleet {
    fn new() -> Fleet {
        Self::with_fleet_config("")
    }

    /// `extra` goes into the device's [fleet] table.
    fn with_fleet_config(extra: &str) -> Fleet {
        let root = tempfile::tempdir().unwrap();
        let web = Nginx::serve(root.path());
        let config = format!(
            "{CONFIG}\n[fleet]\nurl = \"{}\"\nchannel = \"stable\"\ndevice_id = \"{DEVICE_ID}\"\n{extra}",
            web.url("fleet")
        );
        fs::create_dir_all(root.path().join("fleet")).unwrap();
        let device = Device::with_config(&config);
        Fleet {
            web,
            _root: root,
            device,
        }
    }

    fn dir(&self) -> std::path::PathBuf {
        self.web.root.join("fleet")
    }

    /// Builds a bundle and puts it on the server; returns what an index says of it.
    fn release(&self, version: &str) -> (Release, Vec<u8>) {
        let (path, rootfs) = self.device.bundle(version);
        let name = format!("acme-{version}.zst");
        fs::copy(&path, self.dir().join(&name)).unwrap();
        (release_of(&path, &name), rootfs)
    }

    fn publish(&self, index: &ReleaseIndex, key: &SigningKey) {
        fs::write(self.dir().join("stable.toml"), index.to_signed(&[key])).unwrap();
    }

    fn index(&self, serial: u64) -> ReleaseIndex {
        ReleaseIndex {
            serial,
            published: "2026-11-24T12:00:00Z".into(),
            ..ReleaseIndex::new("stable", "acme-robot")
        }
    }

    fn check(&self) -> Value {
        let out = self.device.updater(&["check", "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn set_running(&self, version: &str) {
        fs::create_dir_all(self.device.path("state")).unwrap();
        let state =
            serde_json::json!({ "groups": { "A": { "version": version, "installed_at": null } } });
        fs::write(self.device.path("state/state.json"), state.to_string()).unwrap();
    }
}

#[test]
fn check_then_update_installs_the_suggested_release_from_the_server() {
    let fleet = Fleet::new();
    fleet.set_running("1.0.0");
    let (release, rootfs) = fleet.release("1.1.0");
    fleet.publish(
        &ReleaseIndex {
            suggested: Some(release),
            ..fleet.index(1)
        },
        &fleet.device.key,
    );
    let check = fleet.check();
    assert_eq!(check["update"], true, "{check}");
    assert_eq!(check["version"], "1.1.0");
    assert_eq!(check["reason"], "suggested");
    assert_eq!(check["url"], fleet.web.url("fleet/acme-1.1.0.zst"));

    let out = fleet.device.updater(&["update"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fleet.device.slot("b"), rootfs);
    assert_eq!(fleet.device.status()["next"], "B");
    let check = fleet.check();
    assert_eq!(
        (&check["update"], &check["reason"]),
        (&Value::Bool(false), &Value::from("awaiting-reboot"))
    );
}

#[test]
fn install_from_a_url_streams_and_resumes_a_cut_connection() {
    let fleet = Fleet::new();
    let (release, rootfs) = fleet.release("1.1.0");
    // Cut the first response a third of the way in; the updater resumes with a Range request.
    let proxy = Proxy::start(fleet.web.port, Fault::CutAfter(release.size as usize / 3));
    let out = fleet
        .device
        .install_source(&proxy.url("fleet/acme-1.1.0.zst"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fleet.device.slot("b"), rootfs);
    assert_eq!(proxy.connections(), 2, "one cut, one resume");
    assert_eq!(fleet.web.statuses(), vec![200, 206]);
}

#[test]
fn wrong_bytes_from_the_server_are_caught_by_the_chunk_hashes() {
    let fleet = Fleet::new();
    let (release, _) = fleet.release("1.1.0");
    let proxy = Proxy::start(fleet.web.port, Fault::FlipAt(release.size as usize / 2));
    let out = fleet
        .device
        .install_source(&proxy.url("fleet/acme-1.1.0.zst"));
    assert_fails(&out, 4, "bundle is corrupt");
    assert_safe(&fleet.device);
}

#[test]
fn a_missing_bundle_or_index_is_a_network_error_and_nothing_is_written() {
    let fleet = Fleet::new();
    let before = fleet.device.snapshot();
    let out = fleet
        .device
        .install_source(&fleet.web.url("fleet/nothing-here.zst"));
    assert_fails(&out, 13, "HTTP 404");
    let out = fleet.device.updater(&["check"]);
    assert_fails(&out, 13, "stable.toml: HTTP 404");
    assert_eq!(fleet.device.snapshot(), before, "something was written");
}

#[test]
fn a_server_serving_another_bundle_than_the_index_names_is_refused_untouched() {
    let fleet = Fleet::new();
    fleet.set_running("1.0.0");
    let (named, _) = fleet.release("1.1.0");
    // The server's file is a correctly signed bundle, but not the one the index names.
    let (other, _) = fleet.device.bundle("1.1.0-rebuilt");
    fs::copy(&other, fleet.dir().join("acme-1.1.0.zst")).unwrap();
    fleet.publish(
        &ReleaseIndex {
            suggested: Some(named),
            ..fleet.index(1)
        },
        &fleet.device.key,
    );
    let before = fleet.device.snapshot();
    let out = fleet.device.updater(&["update"]);
    assert_fails(&out, 4, "not the bundle the release index names");
    assert_eq!(fleet.device.snapshot(), before, "something was written");
}

#[test]
fn an_index_with_a_bad_signature_is_refused() {
    let fleet = Fleet::new();
    let (release, _) = fleet.release("1.1.0");
    let index = ReleaseIndex {
        suggested: Some(release),
        ..fleet.index(1)
    };
    let (stranger, _) = SigningKey::generate().unwrap();
    fleet.publish(&index, &stranger);
    assert_fails(
        &fleet.device.updater(&["check"]),
        5,
        "release index signature is not valid for any trusted key (signed by untrusted key",
    );

    let signed = String::from_utf8(index.to_signed(&[&fleet.device.key])).unwrap();
    let tampered = signed.replace("serial = 1", "serial = 2");
    fs::write(fleet.dir().join("stable.toml"), tampered).unwrap();
    let before = fleet.device.snapshot();
    assert_fails(
        &fleet.device.updater(&["update"]),
        5,
        "the release index was modified after it was signed",
    );
    assert_eq!(fleet.device.snapshot(), before, "something was written");
}

#[test]
fn an_older_index_than_one_seen_is_refused() {
    let fleet = Fleet::new();
    fleet.set_running("1.1.0");
    let (release, _) = fleet.release("1.1.0");
    let at = |serial| ReleaseIndex {
        suggested: Some(release.clone()),
        ..fleet.index(serial)
    };
    fleet.publish(&at(5), &fleet.device.key);
    assert_eq!(fleet.check()["reason"], "newest");
    fleet.publish(&at(4), &fleet.device.key);
    assert_fails(
        &fleet.device.updater(&["check"]),
        13,
        "has serial 4, older than serial 5 seen before",
    );
}

/// A device id that is inside (or outside) a rollout of `percent` under `seed`.
fn device_in(seed: &str, percent: u32, inside: bool) -> String {
    (0..)
        .map(|i| format!("robot-{i:04}"))
        .find(|id| in_rollout(bucket(seed, id), percent * 100) == inside)
        .unwrap()
}

#[test]
fn a_rollout_reaches_the_devices_in_its_share_and_canaries() {
    let outside = device_in("r1", 5, false);
    let inside = device_in("r1", 5, true);
    for (id, pin, update, reason) in [
        (&outside, "none", false, "not-in-rollout"),
        (&inside, "none", true, "in-rollout"),
        (&outside, "canary", true, "in-rollout"),
        (&inside, "conservative", false, "not-in-rollout"),
    ] {
        let fleet = Fleet::with_fleet_config(&format!("pin = \"{pin}\"\n"));
        let config = fs::read_to_string(fleet.device.path("system.toml")).unwrap();
        fs::write(
            fleet.device.path("system.toml"),
            config.replace(DEVICE_ID, id),
        )
        .unwrap();
        fleet.set_running("1.0.0");
        let (stable, _) = fleet.release("1.0.0");
        let (next, _) = fleet.release("1.1.0");
        fleet.publish(
            &ReleaseIndex {
                suggested: Some(stable),
                rollout: Some(Rollout {
                    seed: "r1".into(),
                    percent: 5.0,
                    release: next,
                }),
                ..fleet.index(1)
            },
            &fleet.device.key,
        );
        let check = fleet.check();
        assert_eq!(
            (&check["update"], &check["reason"], &check["version"]),
            (
                &Value::Bool(update),
                &Value::from(reason),
                &Value::from("1.1.0")
            ),
            "{id} pinned {pin}: {check}"
        );
    }
}

/// A channel that published 1.0.0 and then 1.1.0 at 100 %, then changed as `change` says (serial
/// 2), served with both bundles. Returns the index and 1.0.0's image.
fn fleet_with_two_releases(
    change: impl FnOnce(&mut ReleaseIndex),
) -> (Fleet, ReleaseIndex, Vec<u8>) {
    let fleet = Fleet::new();
    let (stable, stable_rootfs) = fleet.release("1.0.0");
    let (next, _) = fleet.release("1.1.0");
    let index = ReleaseIndex {
        suggested: Some(stable),
        rollout: Some(Rollout {
            seed: "r1".into(),
            percent: 100.0,
            release: next,
        }),
        ..fleet.index(2)
    };
    let mut index = index;
    change(&mut index);
    fleet.publish(&index, &fleet.device.key);
    (fleet, index, stable_rootfs)
}

fn roll_back_to_1_0_0(index: &mut ReleaseIndex) {
    index.rollback_to(&"1.0.0".parse().unwrap()).unwrap();
}

/// Checks, and asserts what the device decided.
fn expect_decision(fleet: &Fleet, update: bool, reason: &str, version: &str) -> Value {
    let check = fleet.check();
    assert_eq!(
        (&check["update"], &check["reason"], &check["version"]),
        (
            &Value::Bool(update),
            &Value::from(reason),
            &Value::from(version)
        ),
        "{check}"
    );
    check
}

fn update(fleet: &Fleet) -> String {
    let out = fleet.device.updater(&["update"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `updater update` says why it does nothing, and writes nothing.
fn update_writes_nothing(fleet: &Fleet, says: &str) {
    let before = fleet.device.snapshot();
    let out = update(fleet);
    assert!(out.contains(says), "{out}");
    assert_eq!(fleet.device.snapshot(), before, "something was written");
}

#[test]
fn a_halted_rollout_starts_on_no_further_device_until_resumed() {
    let (fleet, mut index, _) = fleet_with_two_releases(|index| index.halt().unwrap());
    fleet.set_running("1.0.0");
    expect_decision(&fleet, false, "halted", "1.1.0");
    update_writes_nothing(&fleet, "the rollout of 1.1.0 is halted (at 100%)");

    // A device that has it keeps it.
    fleet.set_running("1.1.0");
    assert_eq!(fleet.check()["reason"], "newest");

    // Resumed with a higher serial, it goes on where it stopped.
    index.resume().unwrap();
    index.serial = 3;
    fleet.publish(&index, &fleet.device.key);
    fleet.set_running("1.0.0");
    expect_decision(&fleet, true, "in-rollout", "1.1.0");
}

#[test]
fn a_rollback_takes_devices_off_the_withdrawn_release_and_is_recorded() {
    let (fleet, _, stable_rootfs) = fleet_with_two_releases(roll_back_to_1_0_0);
    fleet.set_running("1.1.0");
    let check = expect_decision(&fleet, true, "rollback", "1.0.0");
    assert_eq!(
        check["message"],
        "runs 1.1.0, which was withdrawn: back to 1.0.0"
    );
    update(&fleet);
    assert_eq!(fleet.device.slot("b"), stable_rootfs);
    let status = fleet.device.status();
    assert_eq!(status["next"], "B");
    assert_eq!(status["last_install"]["version"], "1.0.0");
    assert_eq!(status["last_install"]["rollback_from"], "1.1.0", "{status}");
    let text = fleet.device.updater(&["status"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("last install: 1.0.0 into B (rollback from the withdrawn 1.1.0): installed"),
        "{text}"
    );
    let state = fs::read_to_string(fleet.device.path("state/state.json")).unwrap();
    assert!(
        state.contains("rollback from the withdrawn 1.1.0"),
        "{state}"
    );

    // A device that never took the withdrawn release stays; none takes it again.
    fleet.set_running("1.0.0");
    assert_eq!(fleet.check()["reason"], "newest");
}

#[test]
fn a_rollback_below_the_security_floor_is_blocked_and_nothing_is_written() {
    let (fleet, _, _) = fleet_with_two_releases(roll_back_to_1_0_0);
    // 1.0.0 has security version 0; this device has raised its floor to 1.
    fs::create_dir_all(fleet.device.path("state")).unwrap();
    let state = serde_json::json!({
        "groups": { "A": { "version": "1.1.0", "installed_at": null } },
        "security_floor": 1
    });
    fs::write(fleet.device.path("state/state.json"), state.to_string()).unwrap();
    expect_decision(&fleet, false, "rollback-blocked", "1.0.0");
    update_writes_nothing(
        &fleet,
        "1.0.0 has security version 0, below this device's floor 1: it stays",
    );
    assert_safe(&fleet.device);
}

#[test]
fn install_from_dir_picks_the_newest_acceptable_bundle() {
    let fleet = Fleet::new();
    let stick = fleet.device.path("stick");
    fs::create_dir_all(&stick).unwrap();
    let (v11, rootfs11) = fleet.device.bundle("1.1.0");
    fs::copy(&v11, stick.join("a-1.1.0.zst")).unwrap();
    let (v10, _) = fleet.device.bundle("1.0.0");
    fs::copy(&v10, stick.join("b-1.0.0.zst")).unwrap();
    let foreign = fleet.device.bundle_with(
        "foreign.zst",
        "other-robot",
        "9.0.0",
        0,
        &[("rootfs", image(1000, 1))],
    );
    fs::copy(&foreign, stick.join("c-foreign-9.0.0.zst")).unwrap();
    // Signed with a key this device does not trust.
    let stranger = Device::new();
    let (untrusted, _) = stranger.bundle("8.0.0");
    fs::copy(untrusted, stick.join("d-untrusted-8.0.0.zst")).unwrap();
    fs::write(stick.join("e-garbage.zst"), b"not a bundle").unwrap();

    let out = fleet
        .device
        .updater(&["install", "--from-dir", stick.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("chose") && stderr.contains("a-1.1.0.zst"),
        "{stderr}"
    );
    for why in [
        "is for 'other-robot'",
        "untrusted key",
        "1.0.0 is not the newest",
        "e-garbage.zst",
    ] {
        assert!(stderr.contains(why), "'{why}' missing: {stderr}");
    }
    assert_eq!(fleet.device.slot("b"), rootfs11);

    let empty = fleet.device.path("empty");
    fs::create_dir_all(&empty).unwrap();
    fs::copy(stick.join("c-foreign-9.0.0.zst"), empty.join("x.zst")).unwrap();
    let out = fleet
        .device
        .updater(&["install", "--from-dir", empty.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds no bundle this device accepts"));
}

#[test]
fn https_with_a_private_ca_named_in_the_config() {
    let fleet = Fleet::new();
    let (_, rootfs) = fleet.release("1.1.0");
    let pki = tempfile::tempdir().unwrap();
    common::web::private_ca(pki.path());
    let tls = Nginx::serve_tls(
        &fleet.web.root,
        &pki.path().join("server.pem"),
        &pki.path().join("server.key"),
    );
    let url = tls.https_url("fleet/acme-1.1.0.zst");

    // Not trusted by the Mozilla roots alone: refused before anything is written.
    let before = fleet.device.snapshot();
    assert_fails(&fleet.device.install_source(&url), 13, "certificate");
    assert_eq!(fleet.device.snapshot(), before, "something was written");

    let config = fs::read_to_string(fleet.device.path("system.toml")).unwrap();
    let with_ca = |ca: &Path| format!("{config}\n[http]\nca_file = \"{}\"\n", ca.display());
    fs::write(
        fleet.device.path("system.toml"),
        with_ca(&pki.path().join("missing.pem")),
    )
    .unwrap();
    assert_fails(&fleet.device.install_source(&url), 3, "missing.pem");
    fs::write(
        fleet.device.path("system.toml"),
        with_ca(&pki.path().join("ca.pem")),
    )
    .unwrap();
    let out = fleet.device.install_source(&url);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fleet.device.slot("b"), rootfs);
}

#[test]
fn defect_03_another_products_index_does_not_raise_this_devices_serial() {
    let fleet = Fleet::new();
    let (release, _) = fleet.release("1.1.0");
    let foreign = ReleaseIndex {
        compatible: "other-robot".into(),
        suggested: Some(release.clone()),
        ..fleet.index(7)
    };
    fleet.publish(&foreign, &fleet.device.key);
    let check = fleet.check();
    assert_eq!(
        (&check["update"], &check["reason"]),
        (&Value::Bool(false), &Value::from("incompatible")),
        "{check}"
    );
    fleet.publish(
        &ReleaseIndex {
            suggested: Some(release),
            ..fleet.index(2)
        },
        &fleet.device.key,
    );
    let check = fleet.check();
    assert_eq!(check["update"], true, "{check}");
    assert_eq!(check["index_serial"], 2);
    // The genuine index's serial is what counts from now on.
    fleet.publish(&fleet.index(1), &fleet.device.key);
    assert_fails(
        &fleet.device.updater(&["check"]),
        13,
        "has serial 1, older than serial 2 seen before",
    );
}

/// A device that installed v1 into A (recorded with its image's SHA-256) and runs it; v1 and v2
/// of the pair as format-2 bundles, and the delta from v1 to v2, on the server.
fn fleet_with_a_delta(delta_from: &[u8]) -> (Fleet, Vec<u8>, Release, u64) {
    let fleet = Fleet::new();
    let (v1, v2) = common::pair::pair();
    let device = &fleet.device;
    fs::write(device.path("slots/rootfs-a.img"), &v1).unwrap();
    fs::create_dir_all(device.path("state")).unwrap();
    let state = serde_json::json!({ "groups": { "A": { "version": "1.0.0", "installed_at": null,
        "components": [{ "name": "rootfs", "slot_class": "rootfs", "version": "1.0.0",
                         "sha256": hex::encode(bundle::hash_chunk(&v1)) }] } } });
    fs::write(device.path("state/state.json"), state.to_string()).unwrap();
    let base = device.format2_bundle("base.zst", "1.0.0", delta_from);
    let new = device.format2_bundle("new.zst", "1.1.0", &v2);
    let delta = device.delta(&base, &new, &device.key, "acme-1.0.0-1.1.0.zst");
    fs::copy(&delta, fleet.dir().join("acme-1.0.0-1.1.0.zst")).unwrap();
    fs::copy(&new, fleet.dir().join("acme-1.1.0.zst")).unwrap();
    let delta_entry = release_of(&delta, "acme-1.0.0-1.1.0.zst");
    let release = Release {
        deltas: vec![bundle::release::DeltaArtifact {
            url: delta_entry.url,
            size: delta_entry.size,
            manifest_sha256: delta_entry.manifest_sha256,
            // What the index says the delta needs: v1, whatever it was made from.
            base: [(
                "rootfs".to_string(),
                bundle::release::BaseImage {
                    sha256: bundle::hash_chunk(&v1),
                    size: v1.len() as u64,
                },
            )]
            .into(),
        }],
        ..release_of(&new, "acme-1.1.0.zst")
    };
    let delta_size = fs::metadata(&delta).unwrap().len();
    (fleet, v2, release, delta_size)
}

#[test]
fn update_takes_the_delta_when_the_booted_group_holds_its_base() {
    let (v1, _) = common::pair::pair();
    let (fleet, v2, release, delta_size) = fleet_with_a_delta(&v1);
    fleet.publish(
        &ReleaseIndex {
            suggested: Some(release),
            ..fleet.index(1)
        },
        &fleet.device.key,
    );
    let check = fleet.check();
    assert_eq!(check["fetch"], "delta", "{check}");
    assert_eq!(check["url"], fleet.web.url("fleet/acme-1.0.0-1.1.0.zst"));
    let out = fleet.device.updater(&["update"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fleet.device.slot("b"), v2);
    let last = &fleet.device.status()["last_install"];
    assert_eq!(
        last["downloaded_bytes"].as_u64(),
        Some(delta_size),
        "{last}"
    );

    // Once B runs, the index's delta from v1 no longer applies to it: the full bundle does.
    fleet.device.set_booted("B");
    let check = fleet.check();
    assert_eq!(check["fetch"], "full", "{check}");
}

#[test]
fn a_delta_whose_base_the_index_misnames_falls_back_to_the_full_bundle() {
    // The index says the delta is from v1 (which the device runs); it was made from another image.
    let (fleet, v2, release, _) = fleet_with_a_delta(&image(8 << 20, 9));
    fleet.publish(
        &ReleaseIndex {
            suggested: Some(release),
            ..fleet.index(1)
        },
        &fleet.device.key,
    );
    assert_eq!(fleet.check()["fetch"], "delta");
    let out = fleet.device.updater(&["update"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("the delta does not apply"), "{stderr}");
    assert!(stderr.contains("which no slot holds"), "{stderr}");
    assert_eq!(fleet.device.slot("b"), v2);
    assert_eq!(fleet.device.status()["next"], "B");
}

#[test]
fn a_group_the_updater_did_not_install_is_recognised_as_a_delta_base_by_its_content() {
    let (v1, _) = common::pair::pair();
    let (fleet, _, release, _) = fleet_with_a_delta(&v1);
    // A factory image: the state knows the version, not the image's hash.
    fleet.set_running("1.0.0");
    fleet.publish(
        &ReleaseIndex {
            suggested: Some(release),
            ..fleet.index(1)
        },
        &fleet.device.key,
    );
    assert_eq!(fleet.check()["fetch"], "delta");
    // Another image in A: no delta.
    fs::write(fleet.device.path("slots/rootfs-a.img"), image(8 << 20, 5)).unwrap();
    assert_eq!(fleet.check()["fetch"], "full");
}

/// A fleet device with 1.1.0 installed into B and just booted into it; boot-check not run yet.
/// `boot_check` goes into its [boot_check] table.
fn new_group_on_a_fleet(boot_check: &str) -> Fleet {
    let fleet = Fleet::with_fleet_config(&format!(
        "[boot_check]\nreboot_command = [\"true\"]\nindex_time_limit = 2\n{boot_check}"
    ));
    let (bundle, _) = fleet.device.bundle("1.1.0");
    let out = fleet.device.install(&bundle);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    fleet.device.set_booted("B");
    fleet
}

fn boot_check(fleet: &Fleet) -> (Option<i32>, String) {
    let out = fleet.device.updater(&["boot-check", "--no-reboot"]);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Issue 17: a new group's updater must reach its release index and verify it before the group
/// is confirmed; once it can, the group is.
#[test]
fn a_new_group_is_confirmed_only_when_its_updater_reaches_the_signed_index() {
    let fleet = new_group_on_a_fleet("");
    fleet.publish(&fleet.index(1), &fleet.device.key);
    let (code, stderr) = boot_check(&fleet);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(fleet.device.status()["slots"]["B"]["good"], true);

    // The same with no index on the server: not confirmed, after trying for the time limit.
    let fleet = new_group_on_a_fleet("");
    let started = std::time::Instant::now();
    let stderr = index_keeps_new_group_unconfirmed(&fleet);
    assert!(stderr.contains("(within 2s)"), "{stderr}");
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "retried while the network may come up: {:?} {stderr}",
        started.elapsed()
    );
}

/// Runs boot-check in the new group, which the index item must keep from being confirmed;
/// returns what it printed.
fn index_keeps_new_group_unconfirmed(fleet: &Fleet) -> String {
    let (code, stderr) = boot_check(fleet);
    assert_eq!(code, Some(11), "{stderr}");
    assert!(stderr.contains("self-test: release index:"), "{stderr}");
    assert_eq!(fleet.device.status()["slots"]["B"]["bootable"], false);
    stderr
}

/// An index this group's keyring does not verify (the new version ships another key) fails at
/// once: waiting would not change it.
#[test]
fn a_new_group_whose_keyring_rejects_the_index_is_not_confirmed() {
    let fleet = new_group_on_a_fleet("");
    let (other, _) = SigningKey::generate().unwrap();
    fleet.publish(&fleet.index(1), &other);
    let started = std::time::Instant::now();
    index_keeps_new_group_unconfirmed(&fleet);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

/// `index = "warn"` (devices that boot without network) and a confirmed group: only a warning.
#[test]
fn an_unreachable_index_only_warns_when_so_configured_or_once_the_group_is_confirmed() {
    let fleet = new_group_on_a_fleet("index = \"warn\"\n");
    let (code, stderr) = boot_check(&fleet);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("self-test: release index:"), "{stderr}");
    assert_eq!(fleet.device.status()["slots"]["B"]["good"], true);

    let fleet = new_group_on_a_fleet("");
    fleet.device.set_booted("A");
    let (code, stderr) = boot_check(&fleet);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("self-test: release index:"), "{stderr}");
    assert_eq!(fleet.device.status()["slots"]["A"]["good"], true);
}

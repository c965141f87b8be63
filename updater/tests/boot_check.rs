//! `updater boot-check` on a simulated device (file slots, file boot state): confirms a healthy
//! update, marks an unhealthy one bad and reboots, notices a fallback the bootloader made, and
//! initialises an environment that was never written.
mod common;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Output;

use bundle::{create_bundle, BundleInput, CreateOptions, ImageInput, SigningKey};
use serde_json::Value;

const CONFIG: &str = include_str!("../../examples/acme-robot/system.toml");

struct Device {
    dir: tempfile::TempDir,
}

impl Device {
    /// A device running A, with a 1.1.0 bundle installed into B (not rebooted yet).
    fn with_update(checks: &str) -> Device {
        let dir = tempfile::tempdir().unwrap();
        let d = Device { dir };
        let (key, _) = SigningKey::generate().unwrap();
        fs::create_dir_all(d.path("keys")).unwrap();
        fs::create_dir_all(d.path("slots")).unwrap();
        fs::write(d.path("keys/k.pub"), key.public_key().to_pem()).unwrap();
        fs::write(d.path("slots/rootfs-a.img"), "A").unwrap();
        let reboot = d.path("rebooted");
        let config = format!(
            "{CONFIG}\n[boot_check]\nreboot_command = [\"touch\", \"{}\"]\n{checks}",
            reboot.display()
        );
        fs::write(d.path("system.toml"), config).unwrap();
        fs::write(d.path("rootfs.img"), vec![7u8; 100_000]).unwrap();
        let input = BundleInput {
            compatible: "acme-robot".into(),
            version: "1.1.0".parse().unwrap(),
            security_version: 3,
            images: vec![ImageInput {
                slot_class: "rootfs".into(),
                path: d.path("rootfs.img"),
                archive: false,
            }],
            firmware: vec![],
            hooks: None,
        };
        create_bundle(&input, &[&key], &d.path("b.zst"), &CreateOptions::default()).unwrap();
        let out = d.updater(&["install", d.path("b.zst").to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        d
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn updater(&self, args: &[&str]) -> Output {
        common::updater(&self.path("system.toml"), args)
    }

    fn status(&self) -> Value {
        serde_json::from_slice(&self.updater(&["status", "--json"]).stdout).unwrap()
    }

    /// The bootloader picks B and spends a try, as the boot script does.
    fn reboot_into(&self, group: &str, b_left: u8) {
        let env = fs::read_to_string(self.path("state/bootloader.env")).unwrap();
        let env: String = env
            .lines()
            .map(|l| {
                if l.starts_with("B_LEFT=") {
                    format!("B_LEFT={b_left}")
                } else {
                    l.to_string()
                }
            })
            .map(|l| l + "\n")
            .collect();
        fs::write(self.path("state/bootloader.env"), env).unwrap();
        let config = fs::read_to_string(self.path("system.toml")).unwrap();
        let config = config.replacen("booted = \"A\"", &format!("booted = \"{group}\""), 1);
        fs::write(self.path("system.toml"), config).unwrap();
    }

    fn reboot_into_from(&self, from: &str, to: &str) {
        let config = fs::read_to_string(self.path("system.toml")).unwrap();
        let config = config.replacen(
            &format!("booted = \"{from}\""),
            &format!("booted = \"{to}\""),
            1,
        );
        fs::write(self.path("system.toml"), config).unwrap();
    }

    fn rebooted(&self) -> bool {
        self.path("rebooted").exists()
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_healthy_update_is_confirmed_and_raises_the_security_floor() {
    let d = Device::with_update("[[boot_check.check]]\nname = \"ok\"\ncommand = [\"true\"]\n");
    d.reboot_into("B", 1);
    let out = d.updater(&["boot-check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("boot-check passed: group B is good"));
    let s = d.status();
    assert_eq!(
        s["slots"]["B"],
        serde_json::json!({
            "bootable": true, "good": true, "tries": 2, "version": "1.1.0",
            "components": [{"name": "rootfs", "slot_class": "rootfs", "version": "1.1.0",
                            "sha256": hex::encode(bundle::hash_chunk(&[7u8; 100_000]))}]
        })
    );
    assert_eq!(s["last_install"]["result"], "confirmed");
    assert_eq!(s["security_floor"], 3);
    assert!(!d.rebooted());
    // Idempotent: a second run (a restarted unit) changes nothing that matters.
    assert!(d.updater(&["boot-check"]).status.success());
    assert_eq!(d.status()["slots"]["B"]["good"], true);
}

#[test]
fn an_unhealthy_update_is_marked_bad_and_the_device_reboots() {
    let d = Device::with_update("[[boot_check.check]]\nname = \"api\"\ncommand = [\"false\"]\n");
    d.reboot_into("B", 1);
    let out = d.updater(&["boot-check"]);
    assert_eq!(out.status.code(), Some(11), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("check 'api': false exit status: 1"),
        "{}",
        stderr(&out)
    );
    assert!(d.rebooted(), "the reboot command ran");
    let s = d.status();
    assert_eq!(s["slots"]["B"]["bootable"], false);
    assert_eq!(s["next"], "A");
    assert_eq!(s["last_install"]["result"], "unhealthy");
    assert_eq!(
        s["security_floor"], 0,
        "an unconfirmed group never raises the floor"
    );
    // Back in A (whose checks pass), boot-check tells what happened to B.
    d.reboot_into_from("B", "A");
    let config = fs::read_to_string(d.path("system.toml")).unwrap();
    fs::write(
        d.path("system.toml"),
        config.replace("[\"false\"]", "[\"true\"]"),
    )
    .unwrap();
    assert!(d.updater(&["boot-check"]).status.success());
    let s = d.status();
    assert_eq!(s["last_install"]["result"], "rolled-back");
    let error = s["last_install"]["error"].as_str().unwrap();
    assert!(
        error.contains("(boot-check failed: check 'api': false exit status: 1)"),
        "{error}"
    );
}

#[test]
fn retry_policy_reboots_without_marking_and_no_reboot_is_honoured() {
    let d = Device::with_update(
        "on_failure = \"retry\"\n[[boot_check.check]]\nname = \"api\"\ncommand = [\"false\"]\n",
    );
    d.reboot_into("B", 1);
    let out = d.updater(&["boot-check", "--no-reboot"]);
    assert_eq!(out.status.code(), Some(11));
    assert!(!d.rebooted());
    let s = d.status();
    assert_eq!(s["slots"]["B"]["tries"], 1, "B keeps its last attempt");
    assert_eq!(s["next"], "B");
}

#[test]
fn a_hanging_check_is_cut_off() {
    let d = Device::with_update(
        "[[boot_check.check]]\nname = \"slow\"\ncommand = [\"sleep\", \"60\"]\ntimeout = 0.5\n",
    );
    d.reboot_into("B", 1);
    let out = d.updater(&["boot-check", "--no-reboot"]);
    assert_eq!(out.status.code(), Some(11));
    assert!(
        stderr(&out).contains("check 'slow': sleep did not finish within 0.5 s"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn http_health_endpoint_of_the_application() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(2) {
            let mut conn = conn.unwrap();
            let mut buf = [0u8; 1024];
            let n = conn.read(&mut buf).unwrap();
            let ok = String::from_utf8_lossy(&buf[..n]).starts_with("GET /health ");
            let status = if ok { "200 OK" } else { "404 Not Found" };
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    let checks = format!(
        "[[boot_check.check]]\nname = \"api\"\nhttp = \"http://127.0.0.1:{port}/health\"\n\n[[boot_check.check]]\nname = \"wrong\"\nhttp = \"http://127.0.0.1:{port}/nope\"\n"
    );
    let d = Device::with_update(&checks);
    d.reboot_into("B", 1);
    let out = d.updater(&["boot-check", "--no-reboot"]);
    let err = stderr(&out);
    assert!(!err.contains("check 'api'"), "{err}");
    assert!(
        err.contains(&format!(
            "check 'wrong': GET http://127.0.0.1:{port}/nope answered 404, expected 200"
        )),
        "{err}"
    );
}

#[test]
fn a_fallback_by_the_bootloader_is_recorded_as_a_rollback() {
    let d = Device::with_update("");
    // B was tried twice and never confirmed; the bootloader went back to A.
    d.reboot_into("A", 0);
    let out = d.updater(&["boot-check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("the update in group B failed and was rolled back"));
    let s = d.status();
    assert_eq!(s["last_install"]["result"], "rolled-back");
    let error = s["last_install"]["error"].as_str().unwrap();
    assert!(
        error.contains("the update to 1.1.0 in group B did not boot healthy; fell back to group A"),
        "{error}"
    );
    let text = String::from_utf8_lossy(&d.updater(&["status"]).stdout).into_owned();
    assert!(
        text.contains("last install: 1.1.0 into B: rolled-back at"),
        "{text}"
    );
    let recovery: Vec<&str> = text
        .lines()
        .find(|line| line.starts_with("R "))
        .unwrap_or_else(|| panic!("no row for R: {text}"))
        .split_whitespace()
        .collect();
    assert_eq!(recovery[..4], ["R", "yes", "-", "-"], "{text}");
}

#[test]
fn an_environment_never_written_is_initialised_by_the_first_boot_check() {
    let d = Device::with_update("");
    fs::remove_file(d.path("state/bootloader.env")).unwrap();
    let out = d.updater(&["boot-check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let env = fs::read_to_string(d.path("state/bootloader.env")).unwrap();
    assert!(
        env.contains("A_OK=1") && env.contains("A_LEFT=2") && env.contains("B_LEFT=0"),
        "{env}"
    );
}

#[test]
fn a_broken_keyring_fails_the_self_test() {
    let d = Device::with_update("");
    d.reboot_into("B", 1);
    fs::remove_file(d.path("keys/k.pub")).unwrap();
    let out = d.updater(&["boot-check", "--no-reboot"]);
    assert_eq!(out.status.code(), Some(11));
    assert!(
        stderr(&out).contains("self-test: keyring: no trusted public key in"),
        "{}",
        stderr(&out)
    );
    assert_eq!(d.status()["slots"]["B"]["bootable"], false);
}

#[test]
fn recovery_is_never_marked_or_rebooted() {
    let d = Device::with_update("[[boot_check.check]]\nname = \"api\"\ncommand = [\"false\"]\n");
    d.reboot_into("R", 0);
    let out = d.updater(&["boot-check"]);
    assert_eq!(out.status.code(), Some(11));
    assert!(!d.rebooted(), "rebooting out of R would loop");
}

#[test]
fn https_checks_trust_the_private_ca_of_the_config() {
    let pki = tempfile::tempdir().unwrap();
    common::web::private_ca(pki.path());
    let site = tempfile::tempdir().unwrap();
    fs::write(site.path().join("health"), "ok").unwrap();
    let tls = common::web::Nginx::serve_tls(
        site.path(),
        &pki.path().join("server.pem"),
        &pki.path().join("server.key"),
    );
    let check = format!(
        "[[boot_check.check]]\nname = \"api\"\nhttp = \"{}\"\n",
        tls.https_url("health")
    );

    let untrusting = Device::with_update(&check);
    untrusting.reboot_into("B", 1);
    let out = untrusting.updater(&["boot-check", "--no-reboot"]);
    assert_eq!(out.status.code(), Some(11), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("check 'api'") && stderr(&out).contains("certificate"),
        "{}",
        stderr(&out)
    );

    let trusting = Device::with_update(&format!(
        "{check}\n[http]\nca_file = \"{}\"\n",
        pki.path().join("ca.pem").display()
    ));
    trusting.reboot_into("B", 1);
    let out = trusting.updater(&["boot-check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(trusting.status()["slots"]["B"]["good"], true);
}

#[test]
fn a_reboot_command_that_fails_is_named_after_the_group_was_marked() {
    let d = Device::with_update("[[boot_check.check]]\nname = \"broken\"\ncommand = [\"false\"]\n");
    let config = fs::read_to_string(d.path("system.toml")).unwrap();
    let touch = format!(
        "reboot_command = [\"touch\", \"{}\"]",
        d.path("rebooted").display()
    );
    fs::write(
        d.path("system.toml"),
        config.replace(&touch, "reboot_command = [\"false\"]"),
    )
    .unwrap();
    d.reboot_into("B", 1);
    let out = d.updater(&["boot-check"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let last = stderr(&out).lines().last().unwrap_or_default().to_string();
    assert!(
        last.starts_with("updater: error: the reboot command 'false' failed: exit status: 1"),
        "{last}"
    );
    // The decision stands although the reboot did not happen: B falls back at the next boot.
    assert_eq!(d.status()["slots"]["B"]["bootable"], false);
}

/// A device with an update in B whose API port is held by a program that is not the updater (the
/// listener returned, never answering).
fn api_port_taken() -> (Device, u16, TcpListener) {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let d = Device::with_update(&format!("[api]\nlisten = \"127.0.0.1:{port}\"\n"));
    (d, port, taken)
}

/// Issue 17: the self-test tries the update path of the updater that booted. A port its local API
/// cannot listen on (here: held by a program that is not the updater) keeps a new group from being
/// confirmed...
#[test]
fn a_new_group_whose_api_cannot_listen_is_not_confirmed() {
    let (d, port, _taken) = api_port_taken();
    d.reboot_into("B", 1);
    let out = d.updater(&["boot-check", "--no-reboot"]);
    assert_eq!(out.status.code(), Some(11), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "self-test: local API: cannot listen on 127.0.0.1:{port}"
        )),
        "{}",
        stderr(&out)
    );
    assert_eq!(d.status()["slots"]["B"]["bootable"], false);
}

/// ...but a confirmed group is only warned: marking it bad would send both groups to recovery for
/// a port conflict that falling back does not fix.
#[test]
fn a_confirmed_group_whose_api_cannot_listen_is_only_warned() {
    let (d, _, _taken) = api_port_taken();
    let out = d.updater(&["boot-check", "--no-reboot"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("self-test: local API"),
        "{}",
        stderr(&out)
    );
    assert_eq!(d.status()["slots"]["A"]["good"], true);
    assert_eq!(
        d.status()["warnings"][0]
            .as_str()
            .map(|w| w.contains("local API")),
        Some(true)
    );
}

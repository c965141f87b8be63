//! RAUC's D-Bus API, driven by the real `rauc` client (Debian's rauc 1.8) and by `gdbus`, on a
//! private system bus that enforces the policy file the updater ships: `updater daemon` with
//! `[dbus] enable = true` must look like RAUC's service to software written for RAUC.
#![cfg(feature = "dbus")]
mod common;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::device::{two_slot_config, Device, CONFIG};
use common::web::{free_port, wait_for_port, Nginx};
use serde_json::Value;

const POLICY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../bootloader-hooks/dbus/de.pengutronix.rauc.conf"
);

/// A private `dbus-daemon` configured as a system bus: the stock default policy (deny owning
/// names and calling methods) plus only the updater's policy file.
struct Bus {
    child: Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl Bus {
    fn start() -> Bus {
        Bus::with_policy(&format!("<include>{POLICY}</include>"))
    }

    /// A bus that lets anyone call anything: only the updater itself stands in the way.
    fn permissive() -> Bus {
        Bus::with_policy(
            r#"<policy context="default"><allow own="*"/><allow send_type="method_call"/></policy>"#,
        )
    }

    fn with_policy(policy: &str) -> Bus {
        let dir = tempfile::tempdir().unwrap();
        // Readable by the unprivileged user the permission test runs as.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let socket = dir.path().join("system_bus_socket");
        let config = dir.path().join("system.conf");
        fs::write(
            &config,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
  {policy}
</busconfig>
"#,
                socket = socket.display()
            ),
        )
        .unwrap();
        let mut child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--print-address"])
            .stdout(Stdio::piped())
            // Its refusals of the unprivileged calls, kept out of the test output.
            .stderr(fs::File::create(dir.path().join("bus.log")).unwrap())
            .spawn()
            .expect("dbus-daemon (Debian package dbus-daemon)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        fs::set_permissions(&socket, fs::Permissions::from_mode(0o777)).unwrap();
        Bus {
            child,
            address: line.trim().to_string(),
            _dir: dir,
        }
    }

    /// A command that talks to this bus as its system bus.
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command.env("DBUS_SYSTEM_BUS_ADDRESS", &self.address);
        command.env_remove("DBUS_STARTER_BUS_TYPE");
        command
    }

    /// `rauc ARGS`, as root; a client still waiting after two minutes is stopped (exit 124),
    /// so a missing `Completed` fails the test instead of hanging it.
    fn rauc(&self, args: &[&str]) -> Output {
        self.command("timeout")
            .args(["120", "rauc"])
            .args(args)
            .output()
            .expect("rauc")
    }

    /// `ARGS` run as the unprivileged user 65534 (nobody).
    fn as_nobody(&self, args: &[&str]) -> Output {
        self.command("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .args(args)
            .output()
            .unwrap()
    }

    /// `gdbus call` of an Installer method, as root.
    fn call(&self, method: &str, args: &[&str]) -> Output {
        self.command("gdbus")
            .args(["call", "--system", "--dest", "de.pengutronix.rauc"])
            .args(["--object-path", "/", "--method"])
            .arg(format!("de.pengutronix.rauc.Installer.{method}"))
            .args(args)
            .output()
            .unwrap()
    }

    fn has_owner(&self) -> bool {
        let out = self
            .command("gdbus")
            .args([
                "call",
                "--system",
                "--dest",
                "org.freedesktop.DBus",
                "--object-path",
                "/org/freedesktop/DBus",
                "--method",
                "org.freedesktop.DBus.NameHasOwner",
                "de.pengutronix.rauc",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains("true")
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        // dbus-daemon stops cleanly on TERM.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// `updater daemon` on a file-backed device with `[dbus] enable = true`.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(bus: &Bus, device: &Device) -> Daemon {
        let log = device.path("daemon.log");
        let child = bus
            .command(env!("CARGO_BIN_EXE_updater"))
            .arg("--config")
            .arg(device.path("system.toml"))
            .arg("daemon")
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let daemon = Daemon { child, log };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !bus.has_owner() {
            assert!(
                Instant::now() < deadline,
                "the daemon did not take the name: {}",
                daemon.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
        daemon
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The example device with `[dbus]` on and the local API as `api` says (off unless given).
fn dbus_device(api: &str) -> Device {
    dbus_device_of(CONFIG, api)
}

fn dbus_device_of(config: &str, api: &str) -> Device {
    let api = match api {
        "" => "enabled = false",
        listen => listen,
    };
    Device::with_config(&format!(
        "{config}\n[dbus]\nenable = true\n\n[api]\n{api}\n"
    ))
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn rauc_json(bus: &Bus, detailed: bool) -> Value {
    let mut args = vec!["status", "--output-format=json"];
    if detailed {
        args.push("--detailed");
    }
    let out = bus.rauc(&args);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
}

/// RAUC's JSON lists slots as one-key objects; this finds one by name.
fn slot<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["slots"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|s| s.get(name))
        .unwrap_or_else(|| panic!("no slot {name} in {status}"))
}

/// What `rauc status` says of each group must be what `updater status --json` says.
fn assert_agree(rauc: &Value, ours: &Value) {
    assert_eq!(rauc["compatible"], ours["compatible"]);
    assert_eq!(rauc["booted"], ours["booted"]);
    let index = |g: &str| match g {
        "A" => 0,
        "B" => 1,
        _ => 2,
    };
    let next = ours["next"].as_str().unwrap();
    assert_eq!(rauc["boot_primary"], format!("rootfs.{}", index(next)));
    for group in ["A", "B", "R"] {
        let entry = slot(rauc, &format!("rootfs.{}", index(group)));
        let bootable = ours["slots"][group]["bootable"].as_bool().unwrap();
        assert_eq!(entry["bootname"], group);
        assert_eq!(entry["class"], "rootfs");
        assert_eq!(entry["boot_status"], if bootable { "good" } else { "bad" });
        let booted = ours["booted"] == group;
        assert_eq!(entry["state"], if booted { "booted" } else { "inactive" });
    }
}

#[test]
fn rauc_status_reports_what_updater_status_does() {
    let bus = Bus::start();
    let device = dbus_device("");
    let _daemon = Daemon::start(&bus, &device);
    let status = rauc_json(&bus, false);
    assert_eq!(status["compatible"], "acme-robot");
    assert_eq!(status["variant"], "");
    assert_eq!(status["booted"], "A");
    assert_agree(&status, &device.status());
    let entry = slot(&status, "rootfs.1");
    assert!(
        entry["device"]
            .as_str()
            .unwrap()
            .ends_with("slots/rootfs-b.img"),
        "{entry}"
    );
    assert_eq!(entry["type"], "raw");

    let out = bus.rauc(&["status"]);
    let readable = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(&out));
    assert!(readable.contains("Compatible:  acme-robot"), "{readable}");
    assert!(readable.contains("Booted from: rootfs.0 (A)"), "{readable}");
    assert!(readable.contains("Activated: rootfs.0 (A)"), "{readable}");
}

/// A second slot class is a child of rootfs, as RAUC's `parent=` makes it: no bootname, the
/// parent named, `active` in the booted group. (RAUC's client aborts on a parent it cannot find.)
#[test]
fn other_slot_classes_are_children_of_rootfs() {
    let bus = Bus::start();
    let device = dbus_device_of(&two_slot_config(), "");
    let _daemon = Daemon::start(&bus, &device);
    let status = rauc_json(&bus, true);
    for (name, parent, state) in [
        ("app.0", "rootfs.0", "active"),
        ("app.1", "rootfs.1", "inactive"),
    ] {
        let entry = slot(&status, name);
        assert_eq!(entry["class"], "app", "{entry}");
        assert_eq!(entry["parent"], parent, "{entry}");
        assert_eq!(entry["state"], state, "{entry}");
        assert_eq!(entry["bootname"], Value::Null, "{entry}");
        assert_eq!(entry["boot_status"], Value::Null, "{entry}");
    }
    let out = bus.rauc(&["status"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("app.1"),
        "{}",
        text(&out)
    );
}

/// `rauc install URL` streams the bundle from a server, as `updater install URL` does.
#[test]
fn rauc_install_takes_a_url() {
    let bus = Bus::start();
    let device = dbus_device("");
    let (bundle, rootfs) = device.bundle("2.0.0");
    let web = Nginx::serve(bundle.parent().unwrap());
    let url = web.url(bundle.file_name().unwrap().to_str().unwrap());
    let daemon = Daemon::start(&bus, &device);
    let out = bus.rauc(&["install", &url]);
    assert!(out.status.success(), "{}\n{}", text(&out), daemon.log());
    assert_eq!(device.status()["slots"]["B"]["version"], "2.0.0");
    assert_eq!(device.slot("b"), rootfs);

    let out = bus.rauc(&["install", &web.url("missing.zst")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("LastError: "), "{}", text(&out));
    assert!(text(&out).contains("404"), "{}", text(&out));
}

#[test]
fn rauc_install_writes_b_and_rauc_status_shows_it() {
    let bus = Bus::start();
    let device = dbus_device("");
    let (bundle, rootfs) = device.bundle("2.0.0");
    let daemon = Daemon::start(&bus, &device);

    let out = bus.rauc(&["install", bundle.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}\n{}", text(&out), daemon.log());
    assert!(stdout.contains("% Installing"), "no progress: {stdout}");
    assert!(stdout.contains("100% Installing done."), "{stdout}");
    assert!(stdout.contains("succeeded"), "{stdout}");

    let ours = device.status();
    assert_eq!(ours["next"], "B");
    assert_eq!(ours["slots"]["B"]["version"], "2.0.0");
    assert_eq!(device.slot("b"), rootfs);
    let detailed = rauc_json(&bus, true);
    assert_agree(&detailed, &ours);
    let b = &slot(&detailed, "rootfs.1")["slot_status"];
    assert_eq!(b["bundle"]["version"], "2.0.0", "{detailed}");
    assert_eq!(b["bundle"]["compatible"], "acme-robot");
    assert_eq!(b["status"], "ok");
    assert_eq!(b["activated"]["count"], 1);
    let sha256 = ours["slots"]["B"]["components"][0]["sha256"].clone();
    assert_eq!(b["checksum"]["sha256"], sha256);
}

#[test]
fn a_tampered_bundle_fails_rauc_install_with_our_error_and_writes_nothing_bootable() {
    let bus = Bus::start();
    let device = dbus_device("");
    let (bundle, _) = device.bundle("2.0.0");
    let mut bytes = fs::read(&bundle).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    let tampered = device.write_bundle("tampered.zst", &bytes);
    let twin = dbus_device("");
    let (twin_bundle, _) = twin.bundle("2.0.0");
    let mut twin_bytes = fs::read(&twin_bundle).unwrap();
    twin_bytes[middle] ^= 0x55;
    let expected = twin.install(&twin.write_bundle("tampered.zst", &twin_bytes));
    let cli_error = String::from_utf8_lossy(&expected.stderr)
        .trim()
        .trim_start_matches("updater: error: ")
        .to_string();
    assert!(!cli_error.is_empty());

    let _daemon = Daemon::start(&bus, &device);
    let out = bus.rauc(&["install", tampered.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = text(&out);
    assert!(all.contains(&format!("LastError: {cli_error}")), "{all}");
    assert!(all.contains("failed"), "{all}");
    let status = device.status();
    assert_eq!(status["next"], "A");
    assert_eq!(status["slots"]["B"]["bootable"], false);
}

#[test]
fn rauc_marks_change_the_boot_state_as_updater_marks_do() {
    let bus = Bus::start();
    let device = dbus_device("");
    let twin = dbus_device("");
    let (bundle, _) = device.bundle("2.0.0");
    assert!(twin.install(&twin.bundle("2.0.0").0).status.success());
    let daemon = Daemon::start(&bus, &device);
    let out = bus.rauc(&["install", bundle.to_str().unwrap()]);
    assert!(out.status.success(), "{}\n{}", text(&out), daemon.log());

    let groups = |d: &Device| d.status()["slots"].clone();
    let steps: [(&[&str], &[&str], &str); 4] = [
        (
            &["status", "mark-bad", "other"],
            &["mark-bad", "B"],
            "marked slot rootfs.1 as bad",
        ),
        (
            &["status", "mark-active", "other"],
            &["mark-active", "B"],
            "activated slot rootfs.1",
        ),
        (
            &["status", "mark-good"],
            &["mark-good"],
            "marked slot rootfs.0 as good",
        ),
        (
            &["status", "mark-bad", "rootfs.1"],
            &["mark-bad", "B"],
            "marked slot rootfs.1 as bad",
        ),
    ];
    for (rauc_args, updater_args, says) in steps {
        let out = bus.rauc(rauc_args);
        assert!(out.status.success(), "{rauc_args:?}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(&format!("rauc status: {says}")),
            "{}",
            text(&out)
        );
        let by_cli = twin.updater(updater_args);
        assert!(by_cli.status.success(), "{}", text(&by_cli));
        assert_eq!(groups(&device), groups(&twin), "after {rauc_args:?}");
        assert_eq!(device.status()["next"], twin.status()["next"]);
    }

    let out = bus.rauc(&["status", "mark-good", "rootfs.7"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("no slot named 'rootfs.7'"),
        "{}",
        text(&out)
    );
    let out = bus.rauc(&["status", "mark-good", "rootfs.2"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("R has no boot state"), "{}", text(&out));
}

/// The flow a product's own software follows with nothing but the interface: call
/// `InstallBundle`, watch `Progress` change, wait for `Completed`.
#[test]
fn a_plain_dbus_client_installs_and_hears_progress_and_completed() {
    let bus = Bus::start();
    let device = dbus_device("");
    let (bundle, _) = device.bundle("2.0.0");
    let _daemon = Daemon::start(&bus, &device);
    let gdbus_call = |method: &str, args: &[&str]| bus.call(method, args);
    let info = gdbus_call("Info", &[bundle.to_str().unwrap()]);
    assert!(info.status.success(), "{}", text(&info));
    assert_eq!(
        String::from_utf8_lossy(&info.stdout).trim(),
        "('acme-robot', '2.0.0')"
    );
    let stranger = Device::new();
    let foreign = stranger.bundle("2.0.0").0;
    let info = gdbus_call("Info", &[foreign.to_str().unwrap()]);
    assert!(!info.status.success());
    assert!(text(&info).contains("signature"), "{}", text(&info));
    let mut monitor = bus
        .command("gdbus")
        .args(["monitor", "--system", "--dest", "de.pengutronix.rauc"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Lines through a channel, so that a signal that never comes fails the test, not hangs it.
    let (sender, lines) = std::sync::mpsc::channel();
    let stdout = monitor.stdout.take().unwrap();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let next_line = || lines.recv_timeout(Duration::from_secs(60)).ok();
    // gdbus says who owns the name once it listens.
    loop {
        match next_line() {
            Some(line) if line.contains("is owned by") => break,
            Some(_) => {}
            None => panic!("gdbus monitor did not start"),
        }
    }
    let call = gdbus_call("InstallBundle", &[bundle.to_str().unwrap(), "{}"]);
    assert!(call.status.success(), "{}", text(&call));
    let mut seen = Vec::new();
    while let Some(line) = next_line() {
        let done = line.contains("Installer.Completed");
        seen.push(line);
        if done {
            break;
        }
    }
    let _ = monitor.kill();
    let _ = monitor.wait();
    let all = seen.join("\n");
    assert!(all.contains("'Progress'"), "{all}");
    assert!(all.contains("'Installing done.'"), "{all}");
    assert!(all.contains("Installer.Completed (0,)"), "{all}");
    assert_eq!(device.status()["next"], "B");
}

/// One install at a time, whoever asks: D-Bus, the local API or the CLI. An install from a FIFO
/// waits for its bundle, so the others meet it running.
#[test]
fn a_second_install_from_anywhere_is_refused_while_one_runs() {
    let bus = Bus::start();
    let port = free_port();
    let device = dbus_device(&format!("listen = \"127.0.0.1:{port}\""));
    let (bundle, _) = device.bundle("2.0.0");
    let fifo = device.path("slow.zst");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let daemon = Daemon::start(&bus, &device);
    wait_for_port(port);
    let first = bus
        .command("rauc")
        .args(["install", fifo.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !daemon.log().contains("D-Bus: installing from") {
        assert!(Instant::now() < deadline, "{}", daemon.log());
        thread::sleep(Duration::from_millis(50));
    }

    let second = bus.rauc(&["install", bundle.to_str().unwrap()]);
    assert_ne!(second.status.code(), Some(0));
    assert!(
        text(&second).contains("an update is already running"),
        "{}",
        text(&second)
    );
    let cli = device.install(&bundle);
    assert!(
        String::from_utf8_lossy(&cli.stderr).contains("another updater holds"),
        "{}",
        text(&cli)
    );
    let api = Command::new("curl")
        .args(["-sS", "-X", "POST", "--data-binary"])
        .arg(format!("@{}", bundle.display()))
        .arg(format!("http://127.0.0.1:{port}/update"))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&api.stdout).contains("already running"),
        "{}",
        text(&api)
    );

    fs::OpenOptions::new()
        .write(true)
        .open(&fifo)
        .unwrap()
        .write_all(&fs::read(&bundle).unwrap())
        .unwrap();
    let out = first.wait_with_output().unwrap();
    assert!(out.status.success(), "{}\n{}", text(&out), daemon.log());
    assert_eq!(device.status()["slots"]["B"]["version"], "2.0.0");
}

/// The shipped policy: anyone may read the properties; only root may install or mark.
#[test]
fn only_root_may_install_or_mark_but_anyone_may_read_properties() {
    let bus = Bus::start();
    let device = dbus_device("");
    let (bundle, _) = device.bundle("2.0.0");
    let _daemon = Daemon::start(&bus, &device);
    let read = bus.as_nobody(&[
        "gdbus",
        "call",
        "--system",
        "--dest",
        "de.pengutronix.rauc",
        "--object-path",
        "/",
        "--method",
        "org.freedesktop.DBus.Properties.Get",
        "de.pengutronix.rauc.Installer",
        "Compatible",
    ]);
    assert!(read.status.success(), "{}", text(&read));
    assert!(text(&read).contains("acme-robot"), "{}", text(&read));
    assert_nobody_refused(&bus, &device, &bundle, "Rejected send message");
}

/// `rauc install` and `rauc status mark-bad` as nobody fail saying `says`, and write nothing.
fn assert_nobody_refused(bus: &Bus, device: &Device, bundle: &std::path::Path, says: &str) {
    let before = device.snapshot();
    for args in [
        &["rauc", "install", bundle.to_str().unwrap()][..],
        &["rauc", "status", "mark-bad", "booted"][..],
    ] {
        let out = bus.as_nobody(args);
        assert_ne!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
        assert!(text(&out).contains(says), "{}", text(&out));
    }
    assert_eq!(device.snapshot(), before, "something was written");
}

/// With a bus that lets everyone through (a policy file missing or written too openly), the
/// updater itself still refuses installs and marks from anyone but root.
#[test]
fn the_updater_refuses_non_root_callers_even_on_an_open_bus() {
    let bus = Bus::permissive();
    let device = dbus_device("");
    let (bundle, _) = device.bundle("2.0.0");
    let _daemon = Daemon::start(&bus, &device);
    assert_nobody_refused(
        &bus,
        &device,
        &bundle,
        "only root may install or mark slots (the caller is uid 65534)",
    );
    let out = bus.rauc(&["status", "mark-good"]);
    assert!(out.status.success(), "root may: {}", text(&out));
}

#[test]
fn a_daemon_without_a_bus_stops_and_says_which() {
    let device = dbus_device("");
    let out = Command::new(env!("CARGO_BIN_EXE_updater"))
        .env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/bus")
        .arg("--config")
        .arg(device.path("system.toml"))
        .arg("daemon")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("serving de.pengutronix.rauc on the D-Bus system bus"),
        "{stderr}"
    );
}

#[test]
fn bad_install_arguments_and_a_taken_name_are_refused_with_the_reason() {
    let bus = Bus::start();
    let device = dbus_device("");
    let (bundle, _) = device.bundle("2.0.0");
    let daemon = Daemon::start(&bus, &device);
    let before = device.snapshot();
    let out = bus.rauc(&["install", "--ignore-compatible", bundle.to_str().unwrap()]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out).contains("never installs a bundle made for another device"),
        "{}",
        text(&out)
    );
    assert_eq!(device.snapshot(), before, "something was written");
    for (method, args, says) in [
        ("InstallBundle", &["-", "{}"][..], "not standard input"),
        (
            "InstallBundle",
            &[bundle.to_str().unwrap(), "{'force': <true>}"][..],
            "unknown argument 'force'",
        ),
        (
            "Mark",
            &["broken", "booted"][..],
            "unknown mark 'broken': give good, bad or active",
        ),
        ("Mark", &["good", "other.7"][..], "no slot named 'other.7'"),
    ] {
        let out = bus.call(method, args);
        assert!(!out.status.success(), "{method} {args:?}: {}", text(&out));
        assert!(
            text(&out).contains(says),
            "{method} {args:?}: {}",
            text(&out)
        );
    }
    assert_eq!(device.snapshot(), before, "something was written");

    let second = bus
        .command(env!("CARGO_BIN_EXE_updater"))
        .arg("--config")
        .arg(device.path("system.toml"))
        .arg("daemon")
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(10), "{}", text(&second));
    assert!(
        String::from_utf8_lossy(&second.stderr)
            .contains("another process owns de.pengutronix.rauc"),
        "{}",
        text(&second)
    );
    drop(daemon);
}

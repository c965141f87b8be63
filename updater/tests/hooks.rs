//! The bootloader hooks build with the real tools: the U-Boot script compiles with mkimage and the
//! systemd unit passes `systemd-analyze verify`.
use std::fs;
use std::path::PathBuf;
use std::process::Command;

fn hooks() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../bootloader-hooks")
}

#[test]
fn u_boot_script_compiles_with_mkimage() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("mkimage")
        .args([
            "-A", "x86", "-O", "linux", "-T", "script", "-C", "none", "-d",
        ])
        .arg(hooks().join("u-boot/boot.cmd"))
        .arg(dir.path().join("boot.scr"))
        .output()
        .expect("mkimage (u-boot-tools) is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let script = fs::read_to_string(hooks().join("u-boot/boot.cmd")).unwrap();
    for group in ["A", "B"] {
        for left in 1..=9 {
            let step = format!(
                "test \"${{BOOT_{group}_LEFT}}\" = \"{left}\"; then setenv BOOT_{group}_LEFT {}",
                left - 1
            );
            assert!(script.contains(&step), "missing: {step}");
        }
    }
}

#[test]
fn the_systemd_units_verify() {
    for name in [
        "updater-boot-check.service",
        "updater.service",
        "updater-data.service",
    ] {
        verify_unit(name);
    }
}

/// Both units enabled as their `[Install]` sections say: systemd must be able to order the boot
/// without deleting a job. (updater.service once left its order against multi-user.target
/// implicit; the target was then ordered after the daemon, the daemon after boot-check and
/// boot-check after the target, and systemd dropped the daemon's start to break the cycle.)
#[test]
fn the_enabled_units_order_without_a_cycle() {
    let dir = tempfile::tempdir().unwrap();
    for (name, target) in [
        ("updater-boot-check.service", "multi-user.target"),
        ("updater.service", "multi-user.target"),
        ("updater-data.service", "basic.target"),
    ] {
        let wants = dir.path().join(format!("{target}.wants"));
        fs::create_dir_all(&wants).unwrap();
        let unit = fs::read_to_string(hooks().join("systemd").join(name)).unwrap();
        let unit = unit.replace("/usr/bin/updater", env!("CARGO_BIN_EXE_updater"));
        fs::write(dir.path().join(name), unit).unwrap();
        std::os::unix::fs::symlink(format!("../{name}"), wants.join(name)).unwrap();
    }
    let stderr = verify_boot(dir.path());
    assert!(!stderr.contains("ordering cycle"), "{stderr}");
    // The check can fail: without the explicit order, the same units form the cycle.
    let old = fs::read_to_string(dir.path().join("updater.service"))
        .unwrap()
        .replace(
            "After=network-online.target multi-user.target ",
            "After=network-online.target ",
        );
    fs::write(dir.path().join("updater.service"), old).unwrap();
    assert!(verify_boot(dir.path()).contains("ordering cycle"));
}

/// What `systemd-analyze verify multi-user.target` says with the units of `dir` (then systemd's
/// own unit folders, the trailing colon) enabled.
fn verify_boot(dir: &std::path::Path) -> String {
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no", "multi-user.target"])
        .env("SYSTEMD_UNIT_PATH", format!("{}:", dir.display()))
        .output()
        .expect("systemd-analyze is installed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn verify_unit(name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let unit = fs::read_to_string(hooks().join("systemd").join(name)).unwrap();
    let unit = unit.replace("/usr/bin/updater", env!("CARGO_BIN_EXE_updater"));
    let path = dir.path().join(name);
    fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("systemd-analyze is installed");
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).trim().is_empty(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

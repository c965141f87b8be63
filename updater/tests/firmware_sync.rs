//! Firmware that travels with its group: installed with the bundle, flashed by `firmware sync`
//! (and by boot-check) when the booted group's firmware is not what runs, and flashed back after a
//! fallback. The microcontroller is the simulated STM32 bootloader on a pseudo-terminal.
mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use bundle::{
    create_bundle, BundleInput, CreateOptions, FirmwareInput, FirmwareTarget, ImageInput, Parity,
    SigningKey,
};
use common::stm32_sim::{self, Faults};
use serde_json::Value;

const CONFIG: &str = include_str!("../../examples/acme-robot/system.toml");

fn firmware(version: u8) -> Vec<u8> {
    (0..3000).map(|i| (i as u8).wrapping_mul(version)).collect()
}

struct Device {
    dir: tempfile::TempDir,
    key: SigningKey,
}

impl Device {
    fn new() -> Device {
        let dir = tempfile::tempdir().unwrap();
        let (key, _) = SigningKey::generate().unwrap();
        fs::create_dir_all(dir.path().join("keys")).unwrap();
        fs::create_dir_all(dir.path().join("slots")).unwrap();
        fs::write(dir.path().join("keys/k.pub"), key.public_key().to_pem()).unwrap();
        fs::write(dir.path().join("system.toml"), CONFIG).unwrap();
        Device { dir, key }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn bundle(&self, version: u8, port: &Path) -> PathBuf {
        fs::write(
            self.path(&format!("rootfs{version}.img")),
            vec![version; 10_000],
        )
        .unwrap();
        fs::write(self.path(&format!("motor{version}.bin")), firmware(version)).unwrap();
        let input = BundleInput {
            compatible: "acme-robot".into(),
            version: format!("{version}.0.0").parse().unwrap(),
            security_version: 0,
            images: vec![ImageInput {
                slot_class: "rootfs".into(),
                path: self.path(&format!("rootfs{version}.img")),
                archive: false,
            }],
            firmware: vec![FirmwareInput {
                name: "motor".into(),
                version: format!("{version}.0"),
                path: self.path(&format!("motor{version}.bin")),
                target: FirmwareTarget::Stm32Serial {
                    port: port.display().to_string(),
                    baud: 115_200,
                    parity: Parity::Even,
                    address: 0x0800_0000,
                },
            }],
            hooks: None,
        };
        let out = self.path(&format!("v{version}.zst"));
        create_bundle(&input, &[&self.key], &out, &CreateOptions::default()).unwrap();
        out
    }

    fn updater(&self, args: &[&str]) -> Output {
        common::updater(&self.path("system.toml"), args)
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.updater(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn boot_into(&self, group: &str) {
        let text = fs::read_to_string(self.path("system.toml")).unwrap();
        let start = text.find("booted = \"").unwrap() + "booted = \"".len();
        let text = format!("{}{group}{}", &text[..start], &text[start + 1..]);
        fs::write(self.path("system.toml"), text).unwrap();
    }
}

#[test]
fn firmware_follows_the_booted_group_through_update_and_fallback() {
    let sim = stm32_sim::start(Faults::default());
    let d = Device::new();
    let v1 = d.bundle(1, &sim.port);
    let v2 = d.bundle(2, &sim.port);

    d.ok(&["install", v1.to_str().unwrap()]);
    assert!(d.path("state/firmware/B/motor.fw").exists());
    d.boot_into("B");
    let out = d.ok(&["firmware", "sync"]);
    assert!(out.contains("motor: flashed and verified"), "{out}");
    assert_eq!(&sim.flash.lock().unwrap()[..3000], &firmware(1)[..]);
    let status: Value = serde_json::from_str(&d.ok(&["firmware", "status", "--json"])).unwrap();
    assert_eq!(status[0]["in_sync"], true);
    assert_eq!(status[0]["flashed"]["version"], "1.0");
    // Nothing to do the second time.
    assert!(d.ok(&["firmware", "sync"]).contains("motor: already runs"));
    d.ok(&["boot-check"]);

    // The update to 2.0.0 brings motor 2.0; boot-check flashes it before confirming A.
    d.ok(&["install", v2.to_str().unwrap()]);
    d.boot_into("A");
    d.ok(&["boot-check"]);
    assert_eq!(&sim.flash.lock().unwrap()[..3000], &firmware(2)[..]);

    // Fallback to B: its firmware goes back on.
    d.boot_into("B");
    let out = d.ok(&["firmware", "sync"]);
    assert!(out.contains("motor: flashed and verified"), "{out}");
    assert_eq!(&sim.flash.lock().unwrap()[..3000], &firmware(1)[..]);
    let text = d.ok(&["firmware", "status"]);
    assert!(
        text.contains("motor (stm32-serial")
            && text.contains("expects 1.0, flashed 1.0 from group B"),
        "{text}"
    );
}

#[test]
fn a_microcontroller_that_cannot_be_flashed_fails_the_boot_check() {
    let sim = stm32_sim::start(Faults {
        silent_after_writes: Some(1),
        ..Default::default()
    });
    let d = Device::new();
    let v1 = d.bundle(1, &sim.port);
    d.ok(&["install", v1.to_str().unwrap()]);
    d.boot_into("B");
    let out = d.updater(&["boot-check", "--no-reboot"]);
    assert_eq!(out.status.code(), Some(11));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("firmware: 'motor' 1.0 on stm32-serial"),
        "{err}"
    );
    let status: Value = serde_json::from_str(&d.ok(&["firmware", "status", "--json"])).unwrap();
    assert_eq!(status[0]["in_sync"], false);
}

#[test]
fn a_stored_firmware_image_that_rotted_is_not_flashed() {
    let sim = stm32_sim::start(Faults::default());
    let d = Device::new();
    let v1 = d.bundle(1, &sim.port);
    d.ok(&["install", v1.to_str().unwrap()]);
    d.boot_into("B");
    let stored = d.path("state/firmware/B/motor.fw");
    let mut bytes = fs::read(&stored).unwrap();
    bytes[100] ^= 0xFF;
    fs::write(&stored, bytes).unwrap();
    let out = d.updater(&["firmware", "sync"]);
    assert_eq!(out.status.code(), Some(12));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("motor.fw does not match its recorded SHA-256"),
        "{err}"
    );
    assert!(
        sim.flash.lock().unwrap().iter().all(|&b| b == 0xFF),
        "nothing was flashed"
    );
}

/// With a real STM32 in bootloader mode on UPDATER_TEST_STM32_PORT (and optional
/// UPDATER_TEST_STM32_BAUD): `cargo test -p updater --test firmware_sync -- --ignored`.
#[test]
#[ignore = "needs hardware: an STM32 in bootloader mode on UPDATER_TEST_STM32_PORT"]
fn hardware_stm32_flash() {
    let port = std::env::var("UPDATER_TEST_STM32_PORT").expect("UPDATER_TEST_STM32_PORT");
    let baud = std::env::var("UPDATER_TEST_STM32_BAUD").unwrap_or_else(|_| "57600".into());
    let d = Device::new();
    fs::write(d.path("fw.bin"), firmware(3)).unwrap();
    d.ok(&[
        "firmware",
        "flash",
        "--protocol",
        "stm32-serial",
        "--port",
        &port,
        "--baud",
        &baud,
        "--address",
        "0x08000000",
        d.path("fw.bin").to_str().unwrap(),
    ]);
}

/// With a real DFU device: UPDATER_TEST_DFU_USB=VID:PID (UPDATER_TEST_DFU_PROTOCOL=dfu|dfuse,
/// UPDATER_TEST_DFU_ADDRESS for dfuse): `cargo test -p updater --test firmware_sync -- --ignored`.
#[test]
#[ignore = "needs hardware: a USB DFU device named by UPDATER_TEST_DFU_USB"]
fn hardware_dfu_flash() {
    let usb = std::env::var("UPDATER_TEST_DFU_USB").expect("UPDATER_TEST_DFU_USB");
    let protocol = std::env::var("UPDATER_TEST_DFU_PROTOCOL").unwrap_or_else(|_| "dfu".into());
    let address = std::env::var("UPDATER_TEST_DFU_ADDRESS").unwrap_or_else(|_| "0x08000000".into());
    let d = Device::new();
    fs::write(d.path("fw.bin"), firmware(3)).unwrap();
    d.ok(&[
        "firmware",
        "flash",
        "--protocol",
        &protocol,
        "--usb",
        &usb,
        "--address",
        &address,
        d.path("fw.bin").to_str().unwrap(),
    ]);
}

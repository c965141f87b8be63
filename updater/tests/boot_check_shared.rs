//! Boot-check marks the booted group bad only for a failure a fallback can fix. What both groups
//! share (another disk, the data partition, the network) is reported and the healthy group stays
//! good: these are the cases where a healthy device used to end up in recovery.
mod common;
use std::fs;
use std::path::Path;
use std::process::Command;

use common::device::{Device, CONFIG};
use updater::config::BlockDevices;
use updater::slots::stand_in;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The boot disk vda (vda1 rootA, vda2 rootB) and a USB stick vdb whose partition 1 is labelled
/// `stick_label`, in the device's stand-in /sys and /dev.
fn block_devices(device: &Device, stick_label: &str) -> BlockDevices {
    stand_in::create(
        &device.path("fake"),
        &[
            ("vda", &[(1, "rootA"), (2, "rootB")]),
            ("vdb", &[(1, stick_label)]),
        ],
    )
}

fn labelled_device() -> Device {
    let config = format!(
        "sysfs_root = \"fake/sys\"\ndev_root = \"fake/dev\"\n{}",
        CONFIG
            .replace(
                "rootfs = \"slots/rootfs-a.img\"",
                "rootfs = { label = \"rootA\" }"
            )
            .replace(
                "rootfs = \"slots/rootfs-b.img\"",
                "rootfs = { label = \"rootB\" }"
            )
    );
    let device = Device::with_config(&config);
    fs::create_dir_all(device.path("state")).unwrap();
    fs::write(
        device.path("state/bootloader.env"),
        "ORDER=A B\nA_LEFT=2\nB_LEFT=0\nA_OK=1\nB_OK=0\n",
    )
    .unwrap();
    device
}

fn env(device: &Device) -> String {
    fs::read_to_string(device.path("state/bootloader.env")).unwrap()
}

#[test]
fn a_stick_labelled_like_a_slot_does_not_send_a_healthy_device_to_recovery() {
    for stick in ["rootB", "rootA"] {
        // The kernel does not say where the root is (a root on overlay, say): the ambiguity is
        // reported, and A stays good.
        let device = labelled_device();
        block_devices(&device, stick);
        let out = device.updater(&["boot-check", "--no-reboot"]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(0), "{stick}: {err}");
        assert!(
            err.contains(&format!("2 partitions labelled '{stick}'")) && err.contains("shared"),
            "{stick}: {err}"
        );
        let env = env(&device);
        assert!(
            env.contains("A_LEFT=2") && env.contains("A_OK=1"),
            "{stick}: {env}"
        );
        assert!(!env.contains("B_LEFT=2"), "{stick}: {env}");
        let status = device.status();
        assert_eq!(status["next"], "A", "{stick}");
        assert!(
            status["warnings"][0]
                .as_str()
                .is_some_and(|w| w.contains("partitions labelled")),
            "{status}"
        );

        // The kernel says the root is on vda1: the boot disk's partitions win, nothing to report.
        let device = labelled_device();
        stand_in::root_on(&block_devices(&device, stick), "vda1");
        let out = device.updater(&["boot-check", "--no-reboot"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(stderr(&out), "", "{stick}");
    }
}

/// A small tmpfs at `path`, unmounted on drop.
struct SmallFs(std::path::PathBuf);

impl SmallFs {
    fn mount(path: &Path, size: &str) -> SmallFs {
        fs::create_dir_all(path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "mounting a tmpfs needs root (CI runs as root)"
        );
        SmallFs(path.to_path_buf())
    }

    fn fill(&self) {
        // Writes until the file system says it is full.
        let _ = fs::write(self.0.join("filler"), vec![0u8; 16 << 20]);
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_data_partition_is_reported_and_the_group_stays_good() {
    // The state folder on a full file system; the boot environment elsewhere (the ESP).
    let config = CONFIG.replace("state_dir = \"state\"", "state_dir = \"data/state\"");
    let check = "\n[[boot_check.check]]\nname = \"app\"\ncommand = [\"false\"]\n";
    for (extra, healthy) in [("", true), (check, false)] {
        let device = Device::with_config(&format!("{config}{extra}"));
        fs::create_dir_all(device.path("state")).unwrap();
        let data = SmallFs::mount(&device.path("data"), "64k");
        fs::create_dir_all(device.path("data/state")).unwrap();
        fs::write(
            device.path("state/bootloader.env"),
            "ORDER=A B\nA_LEFT=1\nB_LEFT=0\nA_OK=1\nB_OK=0\n",
        )
        .unwrap();
        data.fill();
        let out = device.updater(&["boot-check", "--no-reboot"]);
        let err = stderr(&out);
        assert!(err.contains("No space left on device"), "{err}");
        if healthy {
            // Confirmed: the bootloader gets its tries back although nothing could be recorded.
            assert_eq!(out.status.code(), Some(0), "{err}");
            assert!(env(&device).contains("A_LEFT=2\n"), "{}", env(&device));
            assert!(env(&device).contains("A_OK=1\n"));
        } else {
            // The application fails, but the record that would explain marking A bad cannot be
            // written: the boot state stays as it was (the bootloader's own count still runs).
            assert_eq!(out.status.code(), Some(11), "{err}");
            let env = env(&device);
            assert!(
                env.contains("A_LEFT=1\n") && env.contains("A_OK=1\n"),
                "the boot state changed without a record: {env}"
            );
        }
    }
}

//! Archive payloads (`kind = "archive"`): the slot gets a fresh ext4 or vfat file system and the
//! tar is extracted into it as it streams, owners, modes, extended attributes and links kept; what
//! cannot be made leaves the group unbootable with the cause named.
mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use bundle::{create_bundle, BundleInput, CreateOptions, ImageInput};
use common::device::{
    assert_fails, assert_refused_untouched, assert_safe, image, two_slot_config, Device,
};

const SLOT_SIZE: u64 = 64 << 20;

/// The two-slot device with B's app slot a file of `size` bytes holding `filesystem`.
fn device(filesystem: Option<&str>, size: u64) -> Device {
    let table = match filesystem {
        Some(fs) => {
            format!(
                "{{ path = \"slots/app-b.img\", size = {size}, filesystem = \"{fs}\", \
                 fs_label = \"APP\" }}"
            )
        }
        None => format!("{{ path = \"slots/app-b.img\", size = {size} }}"),
    };
    let config = two_slot_config().replace("app = \"slots/app-b.img\"", &format!("app = {table}"));
    let device = Device::with_config(&config);
    fs::write(device.path("slots/app-a.img"), "app A").unwrap();
    device
}

/// A tree with what a tar must carry faithfully, archived by GNU tar with extended attributes.
fn tree_archive(device: &Device) -> PathBuf {
    let tree = device.path("tree");
    fs::create_dir_all(tree.join("etc/app")).unwrap();
    fs::write(tree.join("etc/app/settings.toml"), "speed = 3\n").unwrap();
    fs::write(tree.join("run.sh"), "#!/bin/sh\necho app\n").unwrap();
    fs::set_permissions(tree.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(tree.join("etc/app"), fs::Permissions::from_mode(0o750)).unwrap();
    let secret = tree.join("etc/app/secret");
    fs::write(&secret, "s3cret\n").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::chown(&secret, Some(1234), Some(4321)).unwrap();
    common::run(
        "setfattr",
        &[
            "-n",
            "user.origin",
            "-v",
            "factory",
            secret.to_str().unwrap(),
        ],
    );
    std::os::unix::fs::symlink("etc/app/settings.toml", tree.join("settings")).unwrap();
    fs::hard_link(tree.join("run.sh"), tree.join("start.sh")).unwrap();
    let archive = device.path("app.tar");
    common::tar_of(&tree, &archive, &["--xattrs", "--numeric-owner"]);
    archive
}

fn bundle(device: &Device, name: &str, archive: &Path) -> PathBuf {
    let rootfs = device.path("rootfs.img");
    fs::write(&rootfs, image(100_000, 7)).unwrap();
    let input = BundleInput {
        compatible: "acme-robot".into(),
        version: "2.0.0".parse().unwrap(),
        security_version: 0,
        images: vec![
            ImageInput {
                slot_class: "rootfs".into(),
                path: rootfs,
                archive: false,
            },
            ImageInput {
                slot_class: "app".into(),
                path: archive.to_path_buf(),
                archive: true,
            },
        ],
        firmware: vec![],
        hooks: None,
    };
    let out = device.path(name);
    create_bundle(&input, &[&device.key], &out, &CreateOptions::default()).unwrap();
    out
}

/// The slot's file system, mounted read-only for looking at, unmounted when dropped.
struct Look(PathBuf);

impl Look {
    fn at(device: &Device, filesystem: &str) -> Look {
        let dir = device.path("look");
        fs::create_dir_all(&dir).unwrap();
        common::run(
            "mount",
            &[
                "-t",
                filesystem,
                "-o",
                "loop,ro",
                device.path("slots/app-b.img").to_str().unwrap(),
                dir.to_str().unwrap(),
            ],
        );
        Look(dir)
    }
}

impl Drop for Look {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn succeeded(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_archive_fills_a_fresh_ext4_keeping_owners_modes_xattrs_and_links() {
    let device = device(Some("ext4"), SLOT_SIZE);
    // Whatever the slot held before is gone: the file system is made anew.
    fs::write(device.path("slots/app-b.img"), "old app B").unwrap();
    let archive = tree_archive(&device);
    succeeded(&device.install(&bundle(&device, "v2.zst", &archive)));
    assert_eq!(
        fs::metadata(device.path("slots/app-b.img")).unwrap().len(),
        SLOT_SIZE
    );
    let status = device.status();
    assert_eq!(status["next"], "B");
    assert_eq!(status["slots"]["B"]["version"], "2.0.0");
    assert_eq!(fs::read(device.path("slots/app-a.img")).unwrap(), b"app A");

    let look = Look::at(&device, "ext4");
    let root = &look.0;
    assert_eq!(
        fs::read_to_string(root.join("etc/app/settings.toml")).unwrap(),
        "speed = 3\n"
    );
    let secret = fs::metadata(root.join("etc/app/secret")).unwrap();
    assert_eq!(secret.mode() & 0o7777, 0o640);
    assert_eq!((secret.uid(), secret.gid()), (1234, 4321));
    assert_eq!(
        fs::metadata(root.join("etc/app")).unwrap().mode() & 0o7777,
        0o750
    );
    assert_eq!(
        common::xattr(&root.join("etc/app/secret"), "user.origin"),
        "factory"
    );
    assert_eq!(
        fs::read_link(root.join("settings")).unwrap(),
        Path::new("etc/app/settings.toml")
    );
    let run = fs::metadata(root.join("run.sh")).unwrap();
    assert_eq!(run.mode() & 0o7777, 0o755);
    assert_eq!(
        fs::metadata(root.join("start.sh")).unwrap().ino(),
        run.ino(),
        "a hard link stays one file"
    );
    drop(look);
    assert!(!device.path("state/mnt-B-app").exists(), "unmounted");
    let slot = device.path("slots/app-b.img");
    assert_eq!(common::run("e2label", &[slot.to_str().unwrap()]), "APP\n");
}

#[test]
fn an_archive_fills_a_fresh_vfat_with_its_files() {
    let device = device(Some("vfat"), 16 << 20);
    let tree = device.path("tree");
    fs::create_dir_all(tree.join("firmware")).unwrap();
    fs::write(tree.join("firmware/motor.bin"), vec![7u8; 70_000]).unwrap();
    fs::write(tree.join("readme.txt"), "v2\n").unwrap();
    let archive = device.path("app.tar");
    common::tar_of(&tree, &archive, &[]);
    succeeded(&device.install(&bundle(&device, "v2.zst", &archive)));
    // Read with mtools, as any other system would read the partition.
    let slot = device.path("slots/app-b.img");
    let image = format!("{}", slot.display());
    let motor = Command::new("mtype")
        .args(["-i", &image, "::/firmware/motor.bin"])
        .output()
        .unwrap();
    assert_eq!(motor.stdout, vec![7u8; 70_000]);
    assert_eq!(
        common::run("mtype", &["-i", &image, "::/readme.txt"]),
        "v2\n"
    );
    assert_eq!(fs::metadata(&slot).unwrap().len(), 16 << 20);
    assert_eq!(common::run("fatlabel", &[&image]).trim(), "APP");
    assert_eq!(device.status()["next"], "B");
}

#[test]
fn a_link_in_an_archive_for_vfat_leaves_the_group_unbootable_naming_it() {
    let device = device(Some("vfat"), 16 << 20);
    let tree = device.path("tree");
    fs::create_dir_all(&tree).unwrap();
    fs::write(tree.join("a.txt"), "a\n").unwrap();
    std::os::unix::fs::symlink("a.txt", tree.join("b.txt")).unwrap();
    let archive = device.path("app.tar");
    common::tar_of(&tree, &archive, &[]);
    let out = device.install(&bundle(&device, "v2.zst", &archive));
    assert_fails(
        &out,
        7,
        "entry ./b.txt is a Symlink, which a FAT file system cannot hold",
    );
    assert_safe(&device);
}

#[test]
fn a_slot_without_a_filesystem_in_its_config_is_refused_untouched() {
    let device = device(None, SLOT_SIZE);
    fs::write(device.path("slots/app-b.img"), "old app B").unwrap();
    let archive = tree_archive(&device);
    let bundle = bundle(&device, "v2.zst", &archive);
    assert_refused_untouched(
        &device,
        &bundle,
        6,
        "bundle fills slot B/app from an archive, but the slot's config names no filesystem",
    );
    assert_eq!(
        fs::read(device.path("slots/app-b.img")).unwrap(),
        b"old app B"
    );
}

#[test]
fn an_archive_larger_than_its_file_system_leaves_the_group_unbootable() {
    let device = device(Some("ext4"), 2 << 20);
    let tree = device.path("tree");
    fs::create_dir_all(&tree).unwrap();
    fs::write(tree.join("big"), image(4 << 20, 3)).unwrap();
    let archive = device.path("app.tar");
    common::tar_of(&tree, &archive, &[]);
    let out = device.install(&bundle(&device, "v2.zst", &archive));
    assert_fails(&out, 7, "extracting the archive into slot B/app");
    assert_safe(&device);
    assert!(!device.path("state/mnt-B-app").exists(), "unmounted");
}

#[test]
fn an_archive_that_is_not_a_tar_leaves_the_group_unbootable() {
    let device = device(Some("ext4"), SLOT_SIZE);
    let archive = device.path("app.tar");
    fs::write(&archive, image(100_000, 9)).unwrap();
    let out = device.install(&bundle(&device, "v2.zst", &archive));
    assert_fails(&out, 7, "extracting the archive into slot B/app");
    assert_safe(&device);
}

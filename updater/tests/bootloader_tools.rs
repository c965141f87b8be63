//! Our GRUB and U-Boot environments against the real tools: what we write, grub-editenv and
//! fw_printenv read; what grub-editenv and fw_setenv write, we read; torn writes of a redundant
//! U-Boot environment leave the previous state readable by both.
mod common;
use common::run;
use std::fs;
use std::path::Path;

use updater::bootloader::{BootState, Bootloader, GrubEnv, UbootEnv, UBOOT_PREFIX};
use updater::config::Location;
use updater::group::Group;

/// Names the first differing offset instead of printing kilobytes.
fn assert_same_bytes(theirs: &[u8], ours: &[u8]) {
    assert_eq!(theirs.len(), ours.len(), "lengths differ");
    if let Some(at) = theirs.iter().zip(ours).position(|(a, b)| a != b) {
        let show = |b: &[u8]| {
            String::from_utf8_lossy(&b[at.saturating_sub(8)..(at + 24).min(b.len())]).into_owned()
        };
        panic!(
            "first difference at byte {at:#x}: theirs {:?}, ours {:?}",
            show(theirs),
            show(ours)
        );
    }
}

fn installed_b() -> BootState {
    let mut s = BootState::initial(Group::A, 2);
    s.activate(Group::B, 2);
    s
}

#[test]
fn grubenv_we_write_is_what_grub_editenv_writes() {
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("ours.env");
    let theirs = dir.path().join("theirs.env");
    for f in [&ours, &theirs] {
        let f = f.to_str().unwrap();
        run("grub-editenv", &[f, "create"]);
        run("grub-editenv", &[f, "set", "vendor=keep me", "path=C:\\x"]);
    }
    let mut grub = Bootloader::new(Box::new(GrubEnv::new(ours.clone())), "");
    grub.store(&installed_b()).unwrap();
    run(
        "grub-editenv",
        &[
            theirs.to_str().unwrap(),
            "set",
            "ORDER=B A",
            "A_LEFT=2",
            "B_LEFT=2",
            "A_OK=1",
            "B_OK=0",
        ],
    );
    assert_same_bytes(&fs::read(&theirs).unwrap(), &fs::read(&ours).unwrap());
    let listed = run("grub-editenv", &[ours.to_str().unwrap(), "list"]);
    assert!(
        listed.contains("vendor=keep me\n") && listed.contains("ORDER=B A\n"),
        "{listed}"
    );

    // A later change keeps every variable in its place, as grub-editenv does.
    let mut state = installed_b();
    state.mark_good(Group::B, 2);
    grub.store(&state).unwrap();
    run("grub-editenv", &[theirs.to_str().unwrap(), "set", "B_OK=1"]);
    assert_same_bytes(&fs::read(&theirs).unwrap(), &fs::read(&ours).unwrap());
}

#[test]
fn grubenv_written_by_grub_editenv_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("grubenv");
    let f = env.to_str().unwrap();
    run("grub-editenv", &[f, "create"]);
    let grub = Bootloader::new(Box::new(GrubEnv::new(env.clone())), "");
    assert_eq!(
        grub.load().unwrap(),
        None,
        "no variables yet: never initialised"
    );
    // The boot script spent one try of B.
    run(
        "grub-editenv",
        &[
            f,
            "set",
            "ORDER=B A",
            "A_LEFT=2",
            "B_LEFT=1",
            "A_OK=1",
            "B_OK=0",
        ],
    );
    let state = grub.load().unwrap().unwrap();
    assert_eq!(state.order, [Group::B, Group::A]);
    assert_eq!(state.b.tries, 1);
    assert!(state.a.good && !state.b.good);

    fs::write(&env, vec![b'x'; 1024]).unwrap();
    let err = grub.load().unwrap_err().to_string();
    assert!(
        err.contains("is corrupt: no GRUB environment block header"),
        "{err}"
    );
    fs::remove_file(&env).unwrap();
    let err = grub.load().unwrap_err().to_string();
    assert!(err.contains("grub-editenv FILE create"), "{err}");
}

fn uboot_config(dir: &Path, redundant: bool) -> (std::path::PathBuf, UbootEnv) {
    let bin = dir.join("env.bin");
    fs::write(&bin, vec![0u8; 0x8000]).unwrap();
    let mut config = format!("{} 0x0 0x4000\n", bin.display());
    let mut copies = vec![Location {
        path: bin.clone(),
        offset: 0,
        size: 0x4000,
    }];
    if redundant {
        config.push_str(&format!("{} 0x4000 0x4000\n", bin.display()));
        copies.push(Location {
            path: bin.clone(),
            offset: 0x4000,
            size: 0x4000,
        });
    }
    let config_path = dir.join("fw_env.config");
    fs::write(&config_path, config).unwrap();
    fs::write(
        dir.join("default.env"),
        "bootdelay=2\nbootcmd=run distro_bootcmd\n",
    )
    .unwrap();
    (config_path, UbootEnv::new(copies))
}

fn fw_setenv(dir: &Path, config: &Path, args: &[&str]) {
    let default = dir.join("default.env");
    let mut all = vec![
        "-c",
        config.to_str().unwrap(),
        "-f",
        default.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    run("fw_setenv", &all);
}

fn fw_printenv(config: &Path) -> String {
    run("fw_printenv", &["-c", config.to_str().unwrap()])
}

#[test]
fn uboot_env_round_trips_with_fw_setenv_and_fw_printenv() {
    for redundant in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (config, env) = uboot_config(dir.path(), redundant);
        fw_setenv(dir.path(), &config, &["vendor", "keep me"]);
        let mut uboot = Bootloader::new(Box::new(env), UBOOT_PREFIX);
        assert_eq!(uboot.load().unwrap(), None);
        uboot.store(&installed_b()).unwrap();
        let printed = fw_printenv(&config);
        for line in [
            "vendor=keep me",
            "bootcmd=run distro_bootcmd",
            "BOOT_ORDER=B A",
            "BOOT_B_LEFT=2",
            "BOOT_A_OK=1",
        ] {
            assert!(
                printed.lines().any(|l| l == line),
                "redundant={redundant}: {line} missing in {printed}"
            );
        }
        // The boot script spent a try; fw_setenv does the same here.
        fw_setenv(dir.path(), &config, &["BOOT_B_LEFT", "1"]);
        let state = uboot.load().unwrap().unwrap();
        assert_eq!(state.b.tries, 1, "redundant={redundant}");
        assert_eq!(state.order, [Group::B, Group::A]);
    }
}

#[test]
fn uboot_variable_area_matches_libubootenv_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let (config, env) = uboot_config(dir.path(), false);
    fw_setenv(dir.path(), &config, &["vendor", "x"]);
    let mut uboot = Bootloader::new(Box::new(env), UBOOT_PREFIX);
    uboot.store(&installed_b()).unwrap();
    let ours = fs::read(dir.path().join("env.bin")).unwrap();
    // fw_setenv rewrites the whole environment when it sets a variable to its current value.
    fw_setenv(dir.path(), &config, &["vendor", "x"]);
    let theirs = fs::read(dir.path().join("env.bin")).unwrap();
    // Up to the empty string that ends the list; libubootenv leaves whatever its buffer held
    // after that (covered by its CRC), so only the list itself can be compared.
    let end = 4 + ours[4..].windows(2).position(|w| w == [0, 0]).unwrap() + 2;
    assert_same_bytes(&theirs[4..end], &ours[4..end]);
    assert_eq!(
        uboot.load().unwrap().unwrap(),
        installed_b(),
        "we read what fw_setenv wrote"
    );
}

#[test]
fn a_torn_write_of_one_redundant_copy_leaves_the_previous_state() {
    let dir = tempfile::tempdir().unwrap();
    let (config, env) = uboot_config(dir.path(), true);
    fw_setenv(dir.path(), &config, &["vendor", "x"]);
    let mut uboot = Bootloader::new(Box::new(env), UBOOT_PREFIX);
    let before = installed_b();
    uboot.store(&before).unwrap();
    let bin = dir.path().join("env.bin");
    let good = fs::read(&bin).unwrap();

    let mut after = before.clone();
    after.mark_good(Group::B, 2);
    uboot.store(&after).unwrap();
    let written = fs::read(&bin).unwrap();
    let changed = (0..2)
        .find(|&c| good[c * 0x4000..(c + 1) * 0x4000] != written[c * 0x4000..(c + 1) * 0x4000])
        .unwrap();
    // Power cut: only the first half of the new copy reached the storage.
    let mut torn = written.clone();
    let start = changed * 0x4000;
    torn[start + 0x2000..start + 0x4000].copy_from_slice(&good[start + 0x2000..start + 0x4000]);
    torn[start + 20] ^= 0xff;
    fs::write(&bin, &torn).unwrap();
    assert_eq!(uboot.load().unwrap().unwrap(), before);
    assert!(fw_printenv(&config).lines().any(|l| l == "BOOT_B_OK=0"));
    // The next write repairs it by writing the torn copy again.
    uboot.store(&after).unwrap();
    assert_eq!(uboot.load().unwrap().unwrap(), after);
    assert!(fw_printenv(&config).lines().any(|l| l == "BOOT_B_OK=1"));
}

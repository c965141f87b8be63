//! bootloader-hooks/grub/select.cfg run by real GRUB (grub-emu from Debian), on a grubenv inside a
//! FAT image as on a device's ESP: for every sequence of updater actions and boots up to a bounded
//! length, GRUB picks the group the reference model (`BootState::spend_try`) picks and leaves the
//! same counters behind.
mod common;
use common::run;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use updater::bootloader::{BootState, Bootloader, GrubEnv};
use updater::group::Group;

struct Esp {
    dir: tempfile::TempDir,
}

impl Esp {
    fn new() -> Esp {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
        run("mkfs.vfat", &["-C", &p("esp.img"), "4096"]);
        run("grub-editenv", &[&p("grubenv"), "create"]);
        run("mcopy", &["-i", &p("esp.img"), &p("grubenv"), "::/grubenv"]);
        fs::write(
            dir.path().join("device.map"),
            format!("(hd0) {}\n", p("esp.img")),
        )
        .unwrap();
        let select =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../bootloader-hooks/grub/select.cfg");
        let select = select.canonicalize().unwrap();
        fs::create_dir(dir.path().join("grub")).unwrap();
        fs::write(
            dir.path().join("grub/grub.cfg"),
            format!(
                "set envfile=(hd0)/grubenv\nsource (host){}\necho \"SELECTED=$slot\"\nhalt\n",
                select.display()
            ),
        )
        .unwrap();
        Esp { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// One power-on: GRUB runs the selection and saves the spent try.
    fn boot(&self) -> Group {
        let out = Command::new("timeout")
            .args(["20", "grub-emu", "-m"])
            .arg(self.path("device.map"))
            .arg("-d")
            .arg(self.path("grub"))
            .stdin(std::process::Stdio::null())
            .output()
            .expect("grub-emu is installed");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.contains("error:"), "GRUB reported an error: {text}");
        let line = text
            .split(['\r', '\n'])
            .find_map(|l| l.split("SELECTED=").nth(1))
            .unwrap_or_else(|| panic!("no selection in {text}"));
        line.trim().parse().unwrap()
    }

    /// The updater's side, on the same grubenv, as the booted system sees it.
    fn updater<T>(&self, action: impl FnOnce(&mut Bootloader) -> T) -> T {
        let env = self.path("grubenv").to_str().unwrap().to_string();
        let img = self.path("esp.img").to_str().unwrap().to_string();
        run("mcopy", &["-o", "-n", "-i", &img, "::/grubenv", &env]);
        let mut bootloader = Bootloader::new(Box::new(GrubEnv::new(env.clone().into())), "");
        let result = action(&mut bootloader);
        run("mcopy", &["-o", "-i", &img, &env, "::/grubenv"]);
        result
    }
}

#[derive(Debug, Clone, Copy)]
enum Step {
    Boot,
    Install,
    MarkGood,
    MarkBad,
}

#[test]
fn grub_follows_the_model_for_every_short_sequence() {
    let steps = [Step::Boot, Step::Install, Step::MarkGood, Step::MarkBad];
    let length = 3;
    for n in 0..steps.len().pow(length) {
        let sequence: Vec<Step> = (0..length)
            .map(|i| steps[n / steps.len().pow(i) % steps.len()])
            .collect();
        let esp = Esp::new();
        let mut model = BootState::initial(Group::A, 2);
        esp.updater(|b| b.store(&model).unwrap());
        let mut running = Group::A;
        for step in sequence.iter().copied().chain([Step::Boot]) {
            match step {
                Step::Boot => {
                    running = esp.boot();
                    assert_eq!(running, model.spend_try(), "{sequence:?}");
                }
                Step::Install => {
                    let target = running.other();
                    model.make_unbootable(target);
                    model.activate(target, 2);
                    esp.updater(|b| b.store(&model).unwrap());
                }
                Step::MarkGood if running != Group::R => {
                    model.mark_good(running, 2);
                    esp.updater(|b| b.store(&model).unwrap());
                }
                Step::MarkBad if running != Group::R => {
                    model.mark_bad(running);
                    esp.updater(|b| b.store(&model).unwrap());
                }
                Step::MarkGood | Step::MarkBad => {}
            }
            let stored = esp.updater(|b| b.load().unwrap().unwrap());
            assert_eq!(stored, model, "after {step:?} in {sequence:?}");
        }
    }
}

#[test]
fn a_failing_update_falls_back_after_two_tries_and_both_failing_boot_r() {
    let esp = Esp::new();
    let mut model = BootState::initial(Group::A, 2);
    model.activate(Group::B, 2);
    esp.updater(|b| b.store(&model).unwrap());
    let boots: Vec<Group> = (0..6).map(|_| esp.boot()).collect();
    assert_eq!(
        boots,
        [Group::B, Group::B, Group::A, Group::A, Group::R, Group::R]
    );
}

#[test]
fn an_environment_never_initialised_boots_a_without_counting() {
    let esp = Esp::new();
    assert_eq!(esp.boot(), Group::A);
    assert_eq!(esp.boot(), Group::A);
    assert_eq!(esp.updater(|b| b.load().unwrap()), None);
}

/// GRUB can only rewrite its block in place, so a power cut can leave the first bytes of the new
/// block over the rest of the old one. The updater's variables have fixed widths, so any such mix
/// is a mixture of whole old and new values: it must parse, and GRUB must boot what the old or
/// the new state would boot, for every transition of an install cycle.
#[test]
fn a_torn_grubenv_write_boots_what_the_old_or_the_new_state_boots() {
    let mut states = vec![BootState::initial(Group::A, 2)];
    let mut s = states[0].clone();
    s.make_unbootable(Group::B);
    states.push(s.clone());
    s.activate(Group::B, 2);
    states.push(s.clone());
    s.spend_try();
    states.push(s.clone());
    s.mark_good(Group::B, 2);
    states.push(s.clone());
    s.mark_bad(Group::B);
    states.push(s);

    let esp = Esp::new();
    let block_of = |state: &BootState| {
        esp.updater(|b| b.store(state).unwrap());
        let env = esp.path("grubenv");
        run(
            "mcopy",
            &[
                "-o",
                "-n",
                "-i",
                esp.path("esp.img").to_str().unwrap(),
                "::/grubenv",
                env.to_str().unwrap(),
            ],
        );
        fs::read(env).unwrap()
    };
    let blocks: Vec<Vec<u8>> = states.iter().map(block_of).collect();
    for (pair, states) in blocks.windows(2).zip(states.windows(2)) {
        let (old, new) = (&pair[0], &pair[1]);
        let expected: Vec<Group> = states.iter().map(|s| s.clone().spend_try()).collect();
        let mut mixes: Vec<Vec<u8>> = (0..=old.len())
            .map(|cut| [&new[..cut], &old[cut..]].concat())
            .collect();
        mixes.dedup();
        for mix in mixes {
            let env = esp.path("grubenv");
            fs::write(&env, &mix).unwrap();
            let read = Bootloader::new(Box::new(GrubEnv::new(env.clone())), "").load();
            assert!(
                matches!(read, Ok(Some(_))),
                "a torn block does not parse: {read:?}"
            );
            run(
                "mcopy",
                &[
                    "-o",
                    "-i",
                    esp.path("esp.img").to_str().unwrap(),
                    env.to_str().unwrap(),
                    "::/grubenv",
                ],
            );
            let booted = esp.boot();
            assert!(
                expected.contains(&booted),
                "torn write between {states:?} booted {booted:?}"
            );
        }
    }
}

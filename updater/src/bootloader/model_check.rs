//! Exhaustive check of the boot-state model: every sequence of installs (of good and bad
//! software), boot attempts, boot-check results and power cuts up to a bounded length keeps two
//! promises: the bootloader never starts a group that is being written, and the device always
//! comes back to a group that works (A, B, or at worst R) by booting on its own.
use super::BootState;
use crate::group::Group;

const TRIES: u8 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Content {
    Works,
    /// Boots but fails its health check, or hangs until the watchdog resets it.
    Broken,
    /// Being written by an install that has not finished.
    Partial,
}

#[derive(Debug, Clone)]
struct Device {
    boot: BootState,
    a: Content,
    b: Content,
    /// The running group; None while the device is off or between boots.
    running: Option<Group>,
    /// The group an unfinished install is writing.
    installing: Option<Group>,
}

#[derive(Debug, Clone, Copy)]
enum Event {
    /// `updater install` starts writing the other group with software that works or not.
    InstallStart(Content),
    /// The install finishes: verified, read back, activated.
    InstallFinish,
    /// Power cut or reset at any moment; the bootloader then picks a group.
    PowerCutAndBoot,
    /// boot-check runs: marks good if the group works, else marks bad and reboots.
    BootCheck,
    /// `mark-active other` by hand (or over D-Bus): refused for a group being written.
    MarkActiveOther,
}

const EVENTS: [Event; 6] = [
    Event::InstallStart(Content::Works),
    Event::InstallStart(Content::Broken),
    Event::InstallFinish,
    Event::PowerCutAndBoot,
    Event::BootCheck,
    Event::MarkActiveOther,
];

impl Device {
    fn new() -> Self {
        Device {
            boot: BootState::initial(Group::A, TRIES),
            a: Content::Works,
            b: Content::Broken,
            running: Some(Group::A),
            installing: None,
        }
    }

    fn content(&self, g: Group) -> Content {
        match g {
            Group::A => self.a,
            Group::B => self.b,
            Group::R => Content::Works,
        }
    }

    fn set_content(&mut self, g: Group, c: Content) {
        match g {
            Group::A => self.a = c,
            Group::B => self.b = c,
            Group::R => panic!("install never writes R"),
        }
    }

    /// Applies an event; returns false when it cannot happen in this state.
    fn apply(&mut self, event: Event, pending: &mut Option<Content>) -> bool {
        match event {
            Event::InstallStart(content) => {
                let Some(running) = self.running else {
                    return false;
                };
                if self.installing.is_some() {
                    return false;
                }
                let target = running.other();
                self.boot.make_unbootable(target);
                self.set_content(target, Content::Partial);
                self.installing = Some(target);
                *pending = Some(content);
                true
            }
            Event::InstallFinish => {
                let (Some(target), Some(content)) = (self.installing, *pending) else {
                    return false;
                };
                if self.running.is_none() {
                    return false;
                }
                self.set_content(target, content);
                self.boot.activate(target, TRIES);
                self.installing = None;
                true
            }
            Event::PowerCutAndBoot => {
                // An install cut short stays partial: its group is unbootable until reinstalled.
                self.installing = None;
                *pending = None;
                let chosen = self.boot.spend_try();
                assert_ne!(
                    self.content(chosen),
                    Content::Partial,
                    "booted a half-written group: {self:?}"
                );
                self.running = Some(chosen);
                true
            }
            Event::BootCheck => {
                let Some(running) = self.running else {
                    return false;
                };
                match self.content(running) {
                    Content::Works => self.boot.mark_good(running, TRIES),
                    _ => {
                        self.boot.mark_bad(running);
                        self.running = None;
                    }
                }
                true
            }
            Event::MarkActiveOther => {
                let Some(running) = self.running else {
                    return false;
                };
                let other = running.other();
                if self.content(other) == Content::Partial {
                    return false;
                }
                self.boot.prefer(other, TRIES);
                true
            }
        }
    }

    /// Left alone, the device boots and checks itself until a working group runs.
    fn recovers(&self) -> bool {
        let mut d = self.clone();
        let mut pending = None;
        for _ in 0..8 {
            d.apply(Event::PowerCutAndBoot, &mut pending);
            let running = d.running.expect("just booted");
            if d.content(running) == Content::Works {
                return true;
            }
            d.apply(Event::BootCheck, &mut pending);
        }
        false
    }
}

fn explore(device: &Device, pending: Option<Content>, depth: usize, visited: &mut u64) {
    *visited += 1;
    assert!(
        device.recovers(),
        "no way back to a working group from {device:?}"
    );
    if depth == 0 {
        return;
    }
    for event in EVENTS {
        let mut next = device.clone();
        let mut next_pending = pending;
        if next.apply(event, &mut next_pending) {
            explore(&next, next_pending, depth - 1, visited);
        }
    }
}

#[test]
fn every_sequence_of_installs_boots_checks_and_power_cuts_recovers() {
    let mut visited = 0;
    explore(&Device::new(), None, 9, &mut visited);
    assert!(visited > 100_000, "explored {visited} states");
}

#[test]
fn a_good_group_survives_one_power_cut_during_boot_and_a_bad_one_falls_back_after_two() {
    let mut d = Device::new();
    let mut pending = None;
    for event in [Event::InstallStart(Content::Broken), Event::InstallFinish] {
        assert!(d.apply(event, &mut pending));
    }
    d.apply(Event::PowerCutAndBoot, &mut pending);
    assert_eq!(d.running, Some(Group::B));
    d.apply(Event::PowerCutAndBoot, &mut pending);
    assert_eq!(d.running, Some(Group::B), "second try of B");
    d.apply(Event::PowerCutAndBoot, &mut pending);
    assert_eq!(d.running, Some(Group::A), "B exhausted: back to A");
    d.apply(Event::BootCheck, &mut pending);
    assert_eq!(d.boot.a.tries, TRIES, "A confirmed again");
}

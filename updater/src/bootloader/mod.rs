//! The boot state every backend stores: an order over A and B, boot attempts left and a good flag
//! per group; R boots when neither A nor B can. The bootloader spends one attempt before every boot;
//! the updater only ever changes the state through the transitions below, each of which leaves a
//! group either unbootable or fully written and verified.
pub(crate) mod file;
pub(crate) mod grub;
#[cfg(test)]
mod model_check;
pub(crate) mod uboot;

use std::collections::BTreeMap;

pub use file::FileEnv;
pub use grub::GrubEnv;
pub use uboot::UbootEnv;

use crate::config::BootloaderConfig;
pub use crate::error::BootloaderError;
use crate::error::{Result, UpdaterError};
use crate::group::Group;

fn bad_state(what: String) -> UpdaterError {
    UpdaterError::Bootloader(BootloaderError::BadState(what))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupBoot {
    /// Boot attempts left; a group with none is skipped.
    pub tries: u8,
    /// Set by mark-good after a healthy boot, cleared by install and mark-bad.
    pub good: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootState {
    /// A and B, the one to try first at the front.
    pub order: [Group; 2],
    pub a: GroupBoot,
    pub b: GroupBoot,
}

impl BootState {
    /// The state of a device that has only ever run `booted`.
    pub fn initial(booted: Group, tries: u8) -> Self {
        let first = if booted == Group::R { Group::A } else { booted };
        let mut state = BootState {
            order: [first, first.other()],
            a: GroupBoot::default(),
            b: GroupBoot::default(),
        };
        if booted != Group::R {
            *state.group_mut(booted) = GroupBoot { tries, good: true };
        }
        state
    }

    pub fn group(&self, group: Group) -> Option<&GroupBoot> {
        match group {
            Group::A => Some(&self.a),
            Group::B => Some(&self.b),
            Group::R => None,
        }
    }

    fn group_mut(&mut self, group: Group) -> &mut GroupBoot {
        match group {
            Group::A => &mut self.a,
            Group::B => &mut self.b,
            Group::R => unreachable!("R has no boot counter"),
        }
    }

    pub fn is_bootable(&self, group: Group) -> bool {
        self.group(group).is_none_or(|g| g.tries > 0)
    }

    /// The group the bootloader will pick next.
    pub fn next_boot(&self) -> Group {
        self.order
            .into_iter()
            .find(|&g| self.is_bootable(g))
            .unwrap_or(Group::R)
    }

    /// What the boot scripts in bootloader-hooks/ do before every boot: take the first group in
    /// the order with attempts left and spend one; with none left, boot R. This is the reference
    /// the scripts are tested against.
    pub fn spend_try(&mut self) -> Group {
        for group in self.order {
            let counters = self.group_mut(group);
            if counters.tries > 0 {
                counters.tries -= 1;
                return group;
            }
        }
        Group::R
    }

    /// Before anything is written to `group`: it must not boot, and it is no longer good.
    pub fn make_unbootable(&mut self, group: Group) {
        if group != Group::R {
            *self.group_mut(group) = GroupBoot::default();
        }
    }

    /// After `group` was written and verified: boot it next, with `tries` attempts.
    pub fn activate(&mut self, group: Group, tries: u8) {
        if group != Group::R {
            *self.group_mut(group) = GroupBoot { tries, good: false };
            self.order = [group, group.other()];
        }
    }

    /// `mark-active` (RAUC's name): boot `group` next with `tries` attempts, keeping its good flag.
    /// Only for a group known to be whole; the caller refuses one whose install did not complete.
    pub fn prefer(&mut self, group: Group, tries: u8) {
        if group != Group::R {
            self.group_mut(group).tries = tries;
            self.order = [group, group.other()];
        }
    }

    /// After a healthy boot of `group`: it is good and has its attempts back.
    pub fn mark_good(&mut self, group: Group, tries: u8) {
        if group != Group::R {
            *self.group_mut(group) = GroupBoot { tries, good: true };
        }
    }

    pub fn mark_bad(&mut self, group: Group) {
        self.make_unbootable(group);
    }

    /// The variables a bootloader script reads: `<prefix>ORDER`, `<prefix>A_LEFT`,
    /// `<prefix>B_LEFT`, `<prefix>A_OK`, `<prefix>B_OK`. GRUB and the file backend use no prefix
    /// (RAUC's GRUB names), U-Boot uses `BOOT_` (RAUC's U-Boot names).
    pub fn to_vars(&self, prefix: &str) -> Vec<(String, String)> {
        vec![
            (
                format!("{prefix}ORDER"),
                format!("{} {}", self.order[0], self.order[1]),
            ),
            (format!("{prefix}A_LEFT"), self.a.tries.to_string()),
            (format!("{prefix}B_LEFT"), self.b.tries.to_string()),
            (format!("{prefix}A_OK"), u8::from(self.a.good).to_string()),
            (format!("{prefix}B_OK"), u8::from(self.b.good).to_string()),
        ]
    }

    /// Reads the state back from those variables. `None` when none of them is set (an
    /// environment that was never initialised); anything partial or malformed is an error, never
    /// silently replaced by a default that could make a group bootable.
    pub fn from_vars(vars: &BTreeMap<String, String>, prefix: &str) -> Result<Option<Self>> {
        let names = ["ORDER", "A_LEFT", "B_LEFT", "A_OK", "B_OK"].map(|n| format!("{prefix}{n}"));
        if names.iter().all(|n| !vars.contains_key(n)) {
            return Ok(None);
        }
        let get = |key: &str| {
            vars.get(key).ok_or_else(|| {
                BootloaderError::invalid("boot state", format!("variable {key} is missing"))
            })
        };
        let [order_key, a_left, b_left, a_ok, b_ok] = &names;
        // The boot scripts walk ORDER and then "A B", so a group missing from ORDER, or named
        // twice (a torn in-place write of "A B" over "B A" gives "A A"), still comes after the
        // one named first. Read it the same way; only unknown names are an error.
        let mut order = Vec::with_capacity(2);
        for name in get(order_key)?.split_ascii_whitespace() {
            let group: Group = name
                .parse()
                .map_err(|e| BootloaderError::invalid(order_key, e))?;
            if group != Group::R && !order.contains(&group) {
                order.push(group);
            }
        }
        for group in [Group::A, Group::B] {
            if !order.contains(&group) {
                order.push(group);
            }
        }
        let order = [order[0], order[1]];
        let tries = |key: &str| -> Result<u8> {
            get(key)?
                .parse::<u8>()
                .ok()
                .filter(|t| *t <= 9)
                .ok_or_else(|| bad_state(format!("{key} is not a count of attempts")))
        };
        let flag = |key: &str| -> Result<bool> {
            match get(key)?.as_str() {
                "0" => Ok(false),
                "1" => Ok(true),
                other => Err(bad_state(format!("{key}={other} is not 0 or 1"))),
            }
        };
        Ok(Some(BootState {
            order,
            a: GroupBoot {
                tries: tries(a_left)?,
                good: flag(a_ok)?,
            },
            b: GroupBoot {
                tries: tries(b_left)?,
                good: flag(b_ok)?,
            },
        }))
    }
}

/// Writes `bytes` at `offset` of an existing file or device with one write, then fsync: how GRUB
/// and U-Boot environments are updated in place.
fn write_in_place(path: &std::path::Path, offset: u64, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::FileExt;
    let file =
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(BootloaderError::storage(format!(
                "opening {}",
                path.display()
            )))?;
    let doing = format!("writing {}", path.display());
    file.write_all_at(bytes, offset)
        .map_err(BootloaderError::storage(doing.clone()))?;
    crate::fault::point("write environment in place");
    file.sync_all().map_err(BootloaderError::storage(doing))?;
    crate::fault::point("fsync environment");
    Ok(())
}

/// RAUC's U-Boot variable names: `BOOT_ORDER`, `BOOT_A_LEFT`, ...
pub const UBOOT_PREFIX: &str = "BOOT_";

/// Variables in the order the environment keeps them.
pub type Vars = Vec<(String, String)>;

/// An environment that names a variable twice is corrupt: bootloaders read the last copy, and a
/// writer that changes only one of them leaves the other in force. Every backend's parser refuses
/// it, as it refuses a bad CRC.
pub(crate) fn refuse_duplicates<'a>(
    names: impl IntoIterator<Item = &'a str>,
) -> std::result::Result<(), String> {
    let mut seen = std::collections::HashSet::new();
    for name in names {
        if !seen.insert(name) {
            return Err(format!("variable {name} is set twice"));
        }
    }
    Ok(())
}

/// One bootloader environment's storage: reads and writes variables, keeping the ones that are
/// not ours. `read` returns `None` when the storage holds no environment at all (never written).
pub trait Environment {
    fn read(&self) -> Result<Option<Vars>>;
    fn write(&mut self, vars: &Vars) -> Result<()>;
    fn describe(&self) -> String;
}

/// The boot state on top of one environment, under the backend's variable names.
pub struct Bootloader {
    env: Box<dyn Environment>,
    prefix: &'static str,
}

impl Bootloader {
    pub fn new(env: Box<dyn Environment>, prefix: &'static str) -> Self {
        Bootloader { env, prefix }
    }

    /// `None` when the environment holds none of our variables (never initialised).
    pub fn load(&self) -> Result<Option<BootState>> {
        match self.env.read()? {
            None => Ok(None),
            Some(vars) => BootState::from_vars(&vars.into_iter().collect(), self.prefix),
        }
    }

    /// Writes our variables, keeping every other variable and its position.
    pub fn store(&mut self, state: &BootState) -> Result<()> {
        let mut vars = self.env.read()?.unwrap_or_default();
        for (key, value) in state.to_vars(self.prefix) {
            match vars.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => vars.push((key, value)),
            }
        }
        self.env.write(&vars)
    }

    pub fn describe(&self) -> String {
        self.env.describe()
    }
}

pub fn open(config: &BootloaderConfig) -> Bootloader {
    match config {
        BootloaderConfig::File { path } => {
            Bootloader::new(Box::new(FileEnv::new(path.clone())), "")
        }
        BootloaderConfig::Grub { path } => {
            Bootloader::new(Box::new(GrubEnv::new(path.clone())), "")
        }
        BootloaderConfig::Uboot { copies } => {
            Bootloader::new(Box::new(UbootEnv::new(copies.clone())), UBOOT_PREFIX)
        }
    }
}

/// Loads the state, or starts from the state of a device that has only run the booted group.
pub fn load_or_initial(bootloader: &Bootloader, booted: Group, tries: u8) -> Result<BootState> {
    Ok(bootloader
        .load()?
        .unwrap_or_else(|| BootState::initial(booted, tries)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_cycle_moves_the_next_boot_only_after_activation() {
        let mut s = BootState::initial(Group::A, 2);
        assert_eq!(s.next_boot(), Group::A);
        s.make_unbootable(Group::B);
        assert_eq!(s.next_boot(), Group::A);
        s.activate(Group::B, 2);
        assert_eq!(s.next_boot(), Group::B);
        assert!(!s.b.good);
        s.mark_good(Group::B, 2);
        assert!(s.b.good);
        s.mark_bad(Group::B);
        assert_eq!(s.next_boot(), Group::A);
        s.mark_bad(Group::A);
        assert_eq!(s.next_boot(), Group::R);
    }

    #[test]
    fn vars_round_trip_and_garbage_is_refused() {
        let mut s = BootState::initial(Group::B, 2);
        s.activate(Group::A, 3);
        let vars: BTreeMap<_, _> = s.to_vars("").into_iter().collect();
        assert_eq!(BootState::from_vars(&vars, "").unwrap(), Some(s));
        assert_eq!(BootState::from_vars(&BTreeMap::new(), "").unwrap(), None);
        for (key, value, message) in [
            ("ORDER", "A X", "ORDER: 'X' is not a slot group"),
            ("A_LEFT", "-1", "A_LEFT is not a count"),
            ("B_OK", "yes", "B_OK=yes is not 0 or 1"),
        ] {
            let mut bad = vars.clone();
            bad.insert(key.into(), value.into());
            let err = BootState::from_vars(&bad, "").unwrap_err().to_string();
            assert!(err.contains(message), "{err}");
        }
        for (order, first) in [
            ("A A", Group::A),
            ("B B", Group::B),
            ("B", Group::B),
            ("", Group::A),
        ] {
            let mut torn = vars.clone();
            torn.insert("ORDER".into(), order.into());
            let state = BootState::from_vars(&torn, "").unwrap().unwrap();
            assert_eq!(state.order, [first, first.other()], "ORDER={order}");
        }
        let mut missing = vars.clone();
        missing.remove("B_LEFT");
        assert!(BootState::from_vars(&missing, "")
            .unwrap_err()
            .to_string()
            .contains("B_LEFT is missing"));
    }
}

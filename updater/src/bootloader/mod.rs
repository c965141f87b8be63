//! The boot state every backend stores: an order over A and B, boot attempts left and a good flag
//! per group; R boots when neither A nor B can. The bootloader spends one attempt before every boot;
//! the updater only ever changes the state through the transitions below, each of which leaves a
//! group either unbootable or fully written and verified.
mod file;

use std::collections::BTreeMap;

pub use file::FileBackend;

use crate::config::{BootloaderConfig, Config};
use crate::error::{Result, UpdaterError};
use crate::slots::Group;

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
        self.group(group).map_or(true, |g| g.tries > 0)
    }

    /// The group the bootloader will pick next.
    pub fn next_boot(&self) -> Group {
        self.order
            .into_iter()
            .find(|&g| self.is_bootable(g))
            .unwrap_or(Group::R)
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

    /// After a healthy boot of `group`: it is good and has its attempts back.
    pub fn mark_good(&mut self, group: Group, tries: u8) {
        if group != Group::R {
            *self.group_mut(group) = GroupBoot { tries, good: true };
        }
    }

    pub fn mark_bad(&mut self, group: Group) {
        self.make_unbootable(group);
    }

    /// The variables a bootloader script reads: `ORDER`, `A_LEFT`, `B_LEFT`, `A_OK`, `B_OK`
    /// (RAUC's names for order and attempts).
    pub fn to_vars(&self) -> Vec<(String, String)> {
        vec![
            (
                "ORDER".into(),
                format!("{} {}", self.order[0], self.order[1]),
            ),
            ("A_LEFT".into(), self.a.tries.to_string()),
            ("B_LEFT".into(), self.b.tries.to_string()),
            ("A_OK".into(), u8::from(self.a.good).to_string()),
            ("B_OK".into(), u8::from(self.b.good).to_string()),
        ]
    }

    /// Reads the state back from those variables; anything missing or malformed is an error,
    /// never silently replaced by a default that could make a group bootable.
    pub fn from_vars(vars: &BTreeMap<String, String>) -> Result<Self> {
        let get = |key: &str| {
            vars.get(key)
                .ok_or_else(|| UpdaterError::Bootloader(format!("variable {key} is missing")))
        };
        let order: Vec<Group> = get("ORDER")?
            .split_ascii_whitespace()
            .filter(|g| *g != "R")
            .map(|g| {
                g.parse::<Group>()
                    .map_err(|e| UpdaterError::Bootloader(format!("ORDER: {e}")))
            })
            .collect::<Result<_>>()?;
        let order = match order[..] {
            [first, second] if first != second && first != Group::R && second != Group::R => {
                [first, second]
            }
            _ => {
                return Err(UpdaterError::Bootloader(
                    "ORDER must name A and B once each".into(),
                ))
            }
        };
        let tries = |key: &str| -> Result<u8> {
            get(key)?
                .parse::<u8>()
                .ok()
                .filter(|t| *t <= 9)
                .ok_or_else(|| {
                    UpdaterError::Bootloader(format!("{key} is not a count of attempts"))
                })
        };
        let flag = |key: &str| -> Result<bool> {
            match get(key)?.as_str() {
                "0" => Ok(false),
                "1" => Ok(true),
                other => Err(UpdaterError::Bootloader(format!(
                    "{key}={other} is not 0 or 1"
                ))),
            }
        };
        Ok(BootState {
            order,
            a: GroupBoot {
                tries: tries("A_LEFT")?,
                good: flag("A_OK")?,
            },
            b: GroupBoot {
                tries: tries("B_LEFT")?,
                good: flag("B_OK")?,
            },
        })
    }
}

/// One bootloader environment. `load` returns `None` when the environment was never written.
pub trait Bootloader {
    fn load(&self) -> Result<Option<BootState>>;
    fn store(&mut self, state: &BootState) -> Result<()>;
    fn describe(&self) -> String;
}

pub fn open(config: &Config) -> Box<dyn Bootloader> {
    match &config.bootloader {
        BootloaderConfig::File { path } => Box::new(FileBackend::new(path.clone())),
    }
}

/// Loads the state, or starts from the state of a device that has only run the booted group.
pub fn load_or_initial(bootloader: &dyn Bootloader, booted: Group, tries: u8) -> Result<BootState> {
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
        let vars: BTreeMap<_, _> = s.to_vars().into_iter().collect();
        assert_eq!(BootState::from_vars(&vars).unwrap(), s);
        for (key, value, message) in [
            ("ORDER", "A A", "ORDER must name A and B once each"),
            ("ORDER", "A X", "ORDER: 'X' is not a slot group"),
            ("A_LEFT", "-1", "A_LEFT is not a count"),
            ("B_OK", "yes", "B_OK=yes is not 0 or 1"),
        ] {
            let mut bad = vars.clone();
            bad.insert(key.into(), value.into());
            let err = BootState::from_vars(&bad).unwrap_err().to_string();
            assert!(err.contains(message), "{err}");
        }
        let mut missing = vars.clone();
        missing.remove("B_LEFT");
        assert!(BootState::from_vars(&missing)
            .unwrap_err()
            .to_string()
            .contains("B_LEFT is missing"));
    }
}

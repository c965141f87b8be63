//! "Can this system take the next update?" Checked at every boot, so that a device whose keyring,
//! bootloader environment or state folder is broken says so while it still runs a good system,
//! instead of failing at the next install (Mender's orphaned fleet, whose environment had never been
//! written, is the lesson).
//!
//! Every item declares whose problem it is (docs/boot-flow.md): the booted group's own (its root
//! filesystem holds the keyring and the configuration of its slots), or shared by both groups
//! (the boot environment, the data partition with the state folder, the other groups' slots,
//! which a foreign disk can make ambiguous). Only the first kind can be fixed by falling back.
use bundle::Keyring;

use super::Failure;
use crate::bootloader::{BootState, Bootloader};
use crate::config::Config;
use crate::error::UpdaterError;
use crate::group::Group;
use crate::state::StateDir;

pub fn run(
    config: &Config,
    booted: Group,
    bootloader: &mut Bootloader,
    boot: &BootState,
    store: &StateDir,
) -> Vec<Failure> {
    let mut failures = Vec::new();
    if let Err(e) = Keyring::load(&config.keyring) {
        failures.push(Failure::group(format!("self-test: keyring: {e}")));
    }
    // Writing the state back proves the environment is writable, and initialises one that never was.
    if let Err(e) = bootloader.store(boot) {
        failures.push(Failure::shared(format!(
            "self-test: cannot write the boot state: {e}"
        )));
    } else {
        match bootloader.load() {
            Ok(Some(read)) if read == *boot => {}
            Ok(_) => failures.push(Failure::shared(
                "self-test: the boot state reads back different from what was written",
            )),
            Err(e) => failures.push(Failure::shared(format!(
                "self-test: cannot read the boot state back: {e}"
            ))),
        }
    }
    for group in config.groups() {
        let Err(e) = crate::install::resolve_group(config, group) else {
            continue;
        };
        let message = format!("self-test: slots of group {group}: {e}");
        // Only the booted group's own configuration is its problem; a name that another disk
        // answers to as well, or another group's slot, is not fixed by falling back.
        let own = group == booted && !matches!(e, UpdaterError::AmbiguousSlot(_));
        failures.push(if own {
            Failure::group(message)
        } else {
            Failure::shared(message)
        });
    }
    if let Err(e) = store.probe_writable() {
        failures.push(Failure::shared(format!("self-test: state folder: {e}")));
    }
    failures
}

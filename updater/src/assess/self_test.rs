//! "Can this system take the next update?" Checked at every boot, so that a device whose keyring,
//! bootloader environment or state folder is broken says so while it still runs a good system,
//! instead of failing at the next install (Mender's orphaned fleet, whose environment had never been
//! written, is the lesson).
use bundle::Keyring;

use crate::bootloader::{BootState, Bootloader};
use crate::config::Config;
use crate::state::StateDir;

/// Returns the failures, each one line.
pub fn run(
    config: &Config,
    bootloader: &mut Bootloader,
    boot: &BootState,
    store: &StateDir,
) -> Vec<String> {
    let mut failures = Vec::new();
    if let Err(e) = Keyring::load(&config.keyring) {
        failures.push(format!("self-test: keyring: {e}"));
    }
    // Writing the state back proves the environment is writable, and initialises one that never was.
    if let Err(e) = bootloader.store(boot) {
        failures.push(format!("self-test: cannot write the boot state: {e}"));
    } else {
        match bootloader.load() {
            Ok(Some(read)) if read == *boot => {}
            Ok(_) => failures.push(
                "self-test: the boot state reads back different from what was written".into(),
            ),
            Err(e) => failures.push(format!("self-test: cannot read the boot state back: {e}")),
        }
    }
    for group in config.groups() {
        if let Err(e) = crate::install::resolve_group(config, group) {
            failures.push(format!("self-test: slots of group {group}: {e}"));
        }
    }
    if let Err(e) = store.probe_writable() {
        failures.push(format!("self-test: state folder: {e}"));
    }
    failures
}

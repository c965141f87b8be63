//! Boot environments as they lie in storage, for each backend: a grubenv block, a U-Boot
//! environment's variable area and the file backend's text. Parse or refuse, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| updater::fuzzing::boot_environments(data));

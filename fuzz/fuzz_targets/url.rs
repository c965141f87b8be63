//! The URLs the updater fetches, from configurations, indexes and redirects: parsed, resolved
//! against each other, and read back as themselves. Nothing may panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| updater::fuzzing::url(data));

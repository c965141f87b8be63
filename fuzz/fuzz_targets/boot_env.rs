//! Bootloader environment variables from untrusted bytes: parse or refuse, never panic, and never
//! produce a state that does not survive a round trip.
#![no_main]
use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use updater::bootloader::BootState;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let vars: BTreeMap<String, String> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if let Ok(Some(state)) = BootState::from_vars(&vars, "") {
        let again: BTreeMap<String, String> = state.to_vars("").into_iter().collect();
        assert_eq!(BootState::from_vars(&again, "").expect("round trip"), Some(state));
    }
});

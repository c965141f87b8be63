//! A keyring file and a signature entry from outside: the bytes before the first NUL are a public
//! key's PEM text, the rest a signature entry over a fixed message. Loading must refuse weak and
//! malformed keys, and checking must never panic nor accept the forgery classics.
#![no_main]
use std::path::Path;

use bundle::{verify_signature, Keyring, PublicKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (pem, entry) = data.split_at(split);
    let Ok(pem) = std::str::from_utf8(pem) else { return };
    let Ok(key) = PublicKey::from_pem(pem, Path::new("fuzz.pub")) else { return };
    let keyring = Keyring::from_keys(vec![key], Path::new("fuzz")).expect("one key");
    // A fuzzer cannot find a valid signature without the private key: any acceptance is a forgery.
    assert!(
        verify_signature(b"manifest", entry.get(1..).unwrap_or_default(), &keyring).is_err(),
        "a signature verified without its private key"
    );
});

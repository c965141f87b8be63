//! The release index comes from a web server: splitting off its signatures, checking them and
//! parsing the body must never panic, whatever the bytes.
#![no_main]
use std::path::Path;
use std::sync::OnceLock;

use bundle::release::ReleaseIndex;
use bundle::{Keyring, SigningKey};
use libfuzzer_sys::fuzz_target;

fn keyring() -> &'static Keyring {
    static RING: OnceLock<Keyring> = OnceLock::new();
    RING.get_or_init(|| {
        let (key, _) = SigningKey::generate().expect("key");
        Keyring::from_keys(vec![key.public_key()], Path::new("fuzz")).expect("keyring")
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(index) = ReleaseIndex::parse_unverified(data) {
        // Whatever parses must serialize and parse back to the same index.
        let again = ReleaseIndex::parse(index.to_toml().as_bytes()).expect("round trip");
        assert_eq!(again, index);
    }
    let _ = ReleaseIndex::verify(data, keyring());
});

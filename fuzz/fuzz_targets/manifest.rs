//! Manifest text, signature entries and seek tables from untrusted bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(manifest) = bundle::Manifest::parse(data) {
        // Whatever parses must serialize and parse back to the same manifest.
        let again = bundle::Manifest::parse(manifest.to_toml().as_bytes()).expect("round trip");
        assert_eq!(again, manifest);
    }
    let _ = bundle::SeekTable::parse_payload(data);
    let _ = bundle::SeekTable::from_bundle_tail(data);
});

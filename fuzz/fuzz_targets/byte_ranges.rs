//! What a server answers to a request for several ranges (`multipart/byteranges`), read the way
//! an adaptive install reads it, and a delta's ops decoded from the same bytes. Nothing may panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| updater::fuzzing::byte_ranges(data));

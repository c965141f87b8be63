//! A request to the daemon's local API comes from any local process: the head, its framing
//! (Content-Length, chunked) and the body must parse or be refused, never panic or allocate what
//! the headers claim.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| updater::fuzzing::api_request(data));

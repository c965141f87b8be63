//! What a web server, mirror or man in the middle answers: the response parsed, then what the
//! updater decides from it (redirect target, file identity, whether a Range answer continues the
//! download) and its body read with its own framing. Nothing may panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| updater::fuzzing::http_response(data));

//! Any byte string through the streaming reader: it must end in Ok or an error, never a panic,
//! a hang or unbounded memory.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = bundle::BundleReader::open_unverified(data) else { return };
    let mut buf = Vec::new();
    loop {
        match reader.next_chunk(buf) {
            Ok(Some(chunk)) => match chunk.verify() {
                Ok(verified) => buf = verified.into_buffer(),
                Err((_, b)) => buf = b,
            },
            Ok(None) => {
                let _ = reader.finish();
                return;
            }
            Err(_) => return,
        }
    }
});

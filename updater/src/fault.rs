//! Test hooks, all of them, compiled only with the `fault-injection` feature (the test suite's and
//! the QEMU rig's builds); release builds compile them to nothing.
//!
//! Power-cut points for the campaign in tests/power_cut.rs: every write, fsync, truncation and
//! rename of an install and of a boot-state store passes one, and a run can be ended right after
//! the Nth, as a power cut would end it: no further write, no clean-up.

/// `UPDATER_CUT_AT=N` ends the process (exit 99) right after the Nth point; `UPDATER_CUT_LOG=FILE`
/// appends one line per point passed, to count them.
#[cfg(feature = "fault-injection")]
pub fn point(what: &str) {
    use std::io::Write;
    use std::sync::atomic::{AtomicU64, Ordering};
    static PASSED: AtomicU64 = AtomicU64::new(0);
    let n = PASSED.fetch_add(1, Ordering::SeqCst) + 1;
    if let Some(log) = std::env::var_os("UPDATER_CUT_LOG") {
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            let _ = writeln!(file, "{n} {what}");
        }
    }
    let cut_at = std::env::var("UPDATER_CUT_AT")
        .ok()
        .and_then(|v| v.parse::<u64>().ok());
    if cut_at == Some(n) {
        std::process::exit(99);
    }
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn point(_what: &str) {}

/// The QEMU rig cuts the power between recording the new version and activating the group; this
/// holds the install there when UPDATER_PAUSE_BEFORE_ACTIVATE is set, so the cut lands exactly.
#[cfg(feature = "fault-injection")]
pub fn pause_before_activation() {
    if std::env::var_os("UPDATER_PAUSE_BEFORE_ACTIVATE").is_some() {
        eprintln!("updater: paused before activation");
        std::thread::sleep(std::time::Duration::from_secs(120));
    }
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn pause_before_activation() {}

/// Storage that acknowledges a write it did not keep: `UPDATER_LYING_STORAGE=N` changes the first
/// byte of the Nth chunk written, on the device, right after the real write.
#[cfg(feature = "fault-injection")]
pub fn lying_storage(file: &std::fs::File, offset: u64, data: &[u8]) {
    use std::os::unix::fs::FileExt;
    use std::sync::atomic::{AtomicU64, Ordering};
    static WRITTEN: AtomicU64 = AtomicU64::new(0);
    let n = WRITTEN.fetch_add(1, Ordering::SeqCst) + 1;
    let lie_at = std::env::var("UPDATER_LYING_STORAGE")
        .ok()
        .and_then(|v| v.parse::<u64>().ok());
    if let (Some(first), true) = (data.first(), lie_at == Some(n)) {
        let _ = file.write_all_at(&[!first], offset);
    }
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn lying_storage(_file: &std::fs::File, _offset: u64, _data: &[u8]) {}

/// A slot that changes after an install read it (a mounted filesystem written to, bit rot):
/// `UPDATER_CHANGE_AFTER_PLAN=FILE` overwrites FILE's first MiB once the adaptive plan is made or
/// a delta's base is found.
#[cfg(feature = "fault-injection")]
pub fn change_after_plan() {
    if let Some(path) = std::env::var_os("UPDATER_CHANGE_AFTER_PLAN") {
        use std::os::unix::fs::FileExt;
        let file = std::fs::OpenOptions::new().write(true).open(path);
        if let Ok(file) = file {
            let _ = file.write_all_at(&vec![0x5a; 1 << 20], 0);
        }
    }
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn change_after_plan() {}

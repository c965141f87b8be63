//! Power-cut points for the fault-injection campaign (tests/power_cut.rs). Every write, fsync,
//! truncation and rename of an install and of a boot-state store passes one; with the
//! `fault-injection` feature a run can be ended right after the Nth point, as a power cut would end
//! it: no further write, no clean-up. Release builds compile the points to nothing.

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

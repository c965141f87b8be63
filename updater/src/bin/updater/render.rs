//! How `updater` shows results: one line or a table for people, JSON with `--json`.
use serde::Serialize;
use updater::display::escaped;
use updater::firmware::sync::{Outcome, TargetStatus};
use updater::fleet::CheckReport;
use updater::install::InstallReport;
use updater::status::Status;

pub fn json<T: Serialize + ?Sized>(value: &T) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("plain data serializes")
    );
}

/// JSON when `--json` asked for it, else the text `as_text` prints.
pub fn as_asked<T: Serialize + ?Sized>(json: bool, value: &T, as_text: fn(&T)) {
    if json {
        self::json(value);
    } else {
        as_text(value);
    }
}

pub fn installed(report: &InstallReport) {
    let reuse = match report.reused {
        0 => String::new(),
        reused => format!(
            "; {} bytes were on this device already, {} downloaded",
            reused, report.downloaded
        ),
    };
    println!(
        "installed {} into group {} ({} bytes, verified and read back{reuse}); reboot to start it",
        report.version, report.target, report.bytes
    );
}

pub fn check(report: &CheckReport) {
    let d = &report.decision;
    let verdict = if d.update { "update" } else { "no update" };
    println!("{verdict}: {}", d.message);
}

pub fn firmware_outcome(outcome: &Outcome) {
    match outcome {
        Outcome::AlreadyRunning(name) => {
            println!("{name}: already runs the booted group's firmware")
        }
        Outcome::Flashed(name) => println!("{name}: flashed and verified"),
    }
}

pub fn firmware_targets(targets: &[TargetStatus]) {
    for t in targets {
        let flashed = t.flashed.as_ref().map_or("never flashed".to_string(), |f| {
            format!("flashed {} from group {} at {}", f.version, f.group, f.time)
        });
        let sync = if t.in_sync { "in sync" } else { "NOT in sync" };
        println!(
            "{} ({}): expects {}, {flashed}: {sync}",
            t.name, t.target, t.expected_version
        );
    }
}

pub fn status(s: &Status) {
    println!(
        "compatible: {}   booted: {}   next boot: {}",
        s.compatible, s.booted, s.next
    );
    println!(
        "{:<6} {:<9} {:<5} {:<6} version",
        "group", "bootable", "good", "tries"
    );
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    for (group, g) in &s.slots {
        println!(
            "{:<6} {:<9} {:<5} {:<6} {}",
            group.to_string(),
            yes_no(g.bootable),
            g.good.map_or("-", yes_no),
            g.tries.map_or_else(|| "-".to_owned(), |t| t.to_string()),
            g.version.as_deref().unwrap_or("-")
        );
    }
    println!("security floor: {}", s.security_floor);
    if let Some(last) = &s.last_install {
        let error = last
            .error
            .as_deref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        let rollback = last
            .rollback_from
            .as_deref()
            .map(|from| format!(" (rollback from the withdrawn {from})"))
            .unwrap_or_default();
        println!(
            "last install: {} into {}{rollback}: {} at {}{error}",
            last.version,
            last.target,
            last.result.as_str(),
            last.time
        );
    }
    if let Some(h) = &s.runtime_health {
        if h.healthy {
            println!("runtime health: healthy at {}", h.time);
        } else {
            println!(
                "runtime health: failing at {} ({} runs in a row): {}",
                h.time,
                h.failing_runs,
                escaped(&h.failures.join("; "))
            );
        }
    }
    for warning in &s.warnings {
        println!("warning (shared by both groups): {}", escaped(warning));
    }
}

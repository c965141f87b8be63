//! What `updater` and `bundle-tool` share as command-line tools: one exit code per failure class,
//! numbered once for both (docs/exit-codes.md), and the log set-up.
#![forbid(unsafe_code)]
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::prelude::*;

/// Exit codes, one per failure class (docs/exit-codes.md).
pub mod exit {
    use bundle::ErrorClass;

    /// A request refused, or a failure of no other class.
    pub const OTHER: u8 = 1;
    /// Options that do not fit together (clap exits with 2 for its own usage errors too).
    pub const USAGE: u8 = 2;
    pub const CONFIG: u8 = 3;
    pub const BAD_BUNDLE: u8 = 4;
    pub const BAD_SIGNATURE: u8 = 5;
    pub const INCOMPATIBLE: u8 = 6;
    pub const IO: u8 = 7;
    pub const BOOTLOADER: u8 = 8;
    /// A malformed key file or input manifest (bundle-tool).
    pub const BAD_INPUT: u8 = 9;
    pub const BUSY: u8 = 10;
    /// boot-check: a health check or the self-test failed.
    pub const UNHEALTHY: u8 = 11;
    /// Flashing a microcontroller failed.
    pub const FIRMWARE: u8 = 12;
    /// A server could not be reached or answered with an error.
    pub const NETWORK: u8 = 13;
    /// The install was cancelled (local API, C library).
    pub const CANCELLED: u8 = 14;
    /// An install hook refused the bundle, failed or ran out of time.
    pub const HOOK: u8 = 15;

    /// The code of a bundle library failure.
    pub fn of(class: ErrorClass) -> u8 {
        match class {
            ErrorClass::BadBundle => BAD_BUNDLE,
            ErrorClass::BadSignature => BAD_SIGNATURE,
            ErrorClass::Io => IO,
            ErrorClass::BadKey | ErrorClass::BadInput => BAD_INPUT,
        }
    }
}

/// Logs to stderr, at the level `env_var` asks for (the usual "warn,updater=debug" syntax;
/// default: warnings). `Targets` parses it without EnvFilter's regex engine, which would add a
/// quarter of a megabyte to each binary.
pub fn init_logging(env_var: &str) {
    let filter = std::env::var(env_var)
        .ok()
        .and_then(|directives| directives.parse::<Targets>().ok())
        .unwrap_or_else(|| {
            // fatfs warns that mkfs.vfat's layout "is incompatible with some implementations"
            // (more reserved sectors than MS-DOS wrote): true of every mkfs.vfat volume, so noise.
            Targets::new()
                .with_default(LevelFilter::WARN)
                .with_target("fatfs", LevelFilter::ERROR)
        });
    let to_journal = stderr_is_journal();
    let format = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal: not in log files, pipes or the journal.
        .with_ansi(!to_journal && std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // The journal stamps every line itself; a second time stamp would only crowd it.
    if to_journal {
        format.without_time().finish().with(filter).init();
    } else {
        format.finish().with(filter).init();
    }
}

/// Whether stderr is the journal stream systemd gave this service: `JOURNAL_STREAM` names that
/// stream's device and inode, and it is inherited by children whose stderr may be elsewhere.
fn stderr_is_journal() -> bool {
    let stderr = std::fs::metadata("/proc/self/fd/2").ok();
    names_stream(
        std::env::var_os("JOURNAL_STREAM").as_deref(),
        stderr.as_ref(),
    )
}

fn names_stream(
    journal_stream: Option<&std::ffi::OsStr>,
    stream: Option<&std::fs::Metadata>,
) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (journal_stream.and_then(|s| s.to_str()), stream) {
        (Some(named), Some(stream)) => named == format!("{}:{}", stream.dev(), stream.ino()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::names_stream;
    use std::ffi::OsStr;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn journal_stream_must_name_this_very_stream() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let meta = file.as_file().metadata().unwrap();
        let own = format!("{}:{}", meta.dev(), meta.ino());
        assert!(names_stream(Some(OsStr::new(&own)), Some(&meta)));
        let other = format!("{}:{}", meta.dev(), meta.ino() + 1);
        assert!(!names_stream(Some(OsStr::new(&other)), Some(&meta)));
        assert!(!names_stream(None, Some(&meta)));
        assert!(!names_stream(Some(OsStr::new(&own)), None));
    }
}

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
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::WARN));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .finish()
        .with(filter)
        .init();
}

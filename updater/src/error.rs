use std::io;
use std::path::Path;

use bundle::BundleError;

/// Exit codes, one per failure class (docs/exit-codes.md). Bundle errors use the bundle crate's.
pub const EXIT_OTHER: u8 = 1;
/// As clap exits for an unknown option.
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_CONFIG: u8 = 3;
pub const EXIT_INCOMPATIBLE: u8 = 6;
pub const EXIT_IO: u8 = 7;
pub const EXIT_BOOTLOADER: u8 = 8;
pub const EXIT_BUSY: u8 = 10;
/// Flashing a microcontroller failed.
pub const EXIT_FIRMWARE: u8 = 12;
/// boot-check: a health check or the self-test failed.
pub const EXIT_UNHEALTHY: u8 = 11;
/// A server could not be reached or answered with an error.
pub const EXIT_NETWORK: u8 = 13;
/// The install was cancelled (local API, C library).
pub const EXIT_CANCELLED: u8 = 14;
/// Bad bundle, as the bundle crate numbers it.
const EXIT_BAD_BUNDLE: u8 = 4;

#[derive(Debug, thiserror::Error)]
pub enum UpdaterError {
    #[error("config {path}: {message}")]
    Config { path: String, message: String },
    #[error("keyring: {0}")]
    Keyring(#[source] BundleError),
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error("incompatible bundle: {0}")]
    Incompatible(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("read-back of {slot}: chunk {chunk} differs from what was written")]
    ReadBack { slot: String, chunk: u64 },
    #[error("bootloader: {0}")]
    Bootloader(String),
    #[error("slot not found: {0}")]
    SlotNotFound(String),
    /// More than one partition answers to a slot's name: another disk carries it too.
    #[error("slot ambiguous: {0}")]
    AmbiguousSlot(String),
    #[error("cannot tell which group is booted: {0}")]
    UnknownBootedGroup(String),
    /// A request the updater will not carry out: it would break an invariant.
    #[error("refused: {0}")]
    Refused(String),
    /// Arguments or settings that do not fit together.
    #[error("{0}")]
    Usage(String),
    #[error("the reboot command '{command}' failed: {status}")]
    RebootFailed {
        command: String,
        status: std::process::ExitStatus,
    },
    #[error("firmware: {0}")]
    Firmware(String),
    #[error("{0}; try again when it is done")]
    Busy(String),
    #[error("network: {0}")]
    Network(String),
    #[error("install cancelled; group {0} stays unbootable")]
    Cancelled(crate::group::Group),
    #[error("not the bundle the release index names: {0}")]
    WrongBundle(String),
}

impl UpdaterError {
    pub fn exit_code(&self) -> u8 {
        match self {
            UpdaterError::Config { .. }
            | UpdaterError::Keyring(_)
            | UpdaterError::UnknownBootedGroup(_)
            | UpdaterError::SlotNotFound(_)
            | UpdaterError::AmbiguousSlot(_) => EXIT_CONFIG,
            UpdaterError::Bundle(e) => e.class().exit_code(),
            UpdaterError::Incompatible(_) => EXIT_INCOMPATIBLE,
            UpdaterError::Io { .. } | UpdaterError::ReadBack { .. } => EXIT_IO,
            UpdaterError::Bootloader(_) => EXIT_BOOTLOADER,
            UpdaterError::Refused(_) | UpdaterError::RebootFailed { .. } => EXIT_OTHER,
            UpdaterError::Usage(_) => EXIT_USAGE,
            UpdaterError::Busy(_) => EXIT_BUSY,
            UpdaterError::Firmware(_) => EXIT_FIRMWARE,
            UpdaterError::Network(_) => EXIT_NETWORK,
            UpdaterError::Cancelled(_) => EXIT_CANCELLED,
            UpdaterError::WrongBundle(_) => EXIT_BAD_BUNDLE,
        }
    }

    pub fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> UpdaterError {
        let context = context.into();
        move |source| UpdaterError::Io { context, source }
    }

    pub fn config(path: &Path, message: impl Into<String>) -> UpdaterError {
        UpdaterError::Config {
            path: path.display().to_string(),
            message: message.into(),
        }
    }
}

pub type Result<T, E = UpdaterError> = std::result::Result<T, E>;

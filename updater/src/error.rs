use std::io;
use std::path::{Path, PathBuf};

use bundle::BundleError;

pub use cli_support::exit;

#[derive(Debug, thiserror::Error)]
pub enum UpdaterError {
    #[error("config {}: {problem}", path.display())]
    Config {
        path: PathBuf,
        #[source]
        problem: ConfigProblem,
    },
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
    Bootloader(#[source] crate::bootloader::BootloaderError),
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
    /// `target` names the microcontroller (and the firmware, when flashing a group's).
    #[error("firmware: {target}: {cause}")]
    Firmware {
        target: String,
        #[source]
        cause: crate::firmware::FirmwareError,
    },
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
            | UpdaterError::AmbiguousSlot(_) => exit::CONFIG,
            UpdaterError::Bundle(e) => exit::of(e.class()),
            UpdaterError::Incompatible(_) => exit::INCOMPATIBLE,
            UpdaterError::Io { .. } | UpdaterError::ReadBack { .. } => exit::IO,
            UpdaterError::Bootloader(_) => exit::BOOTLOADER,
            UpdaterError::Refused(_) | UpdaterError::RebootFailed { .. } => exit::OTHER,
            UpdaterError::Usage(_) => exit::USAGE,
            UpdaterError::Busy(_) => exit::BUSY,
            UpdaterError::Firmware { .. } => exit::FIRMWARE,
            UpdaterError::Network(_) => exit::NETWORK,
            UpdaterError::Cancelled(_) => exit::CANCELLED,
            UpdaterError::WrongBundle(_) => exit::BAD_BUNDLE,
        }
    }

    pub fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> UpdaterError {
        let context = context.into();
        move |source| UpdaterError::Io { context, source }
    }

    /// A setting (or a file a setting names) that is wrong, in the device config at `path`.
    pub fn config(path: &Path, message: impl Into<String>) -> UpdaterError {
        UpdaterError::Config {
            path: path.to_path_buf(),
            problem: ConfigProblem::Invalid(message.into()),
        }
    }

    /// The config, or a file it names, cannot be read.
    pub fn config_unreadable(path: &Path) -> impl FnOnce(io::Error) -> UpdaterError {
        let path = path.to_path_buf();
        move |e| UpdaterError::Config {
            path,
            problem: ConfigProblem::Unreadable(e),
        }
    }
}

/// What is wrong with a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigProblem {
    #[error("{0}")]
    Unreadable(#[source] io::Error),
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = UpdaterError> = std::result::Result<T, E>;

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
    Bootloader(#[source] BootloaderError),
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
        cause: FirmwareError,
    },
    #[error("{0}; try again when it is done")]
    Busy(String),
    #[error("network: {0}")]
    Network(String),
    #[error("install cancelled; group {0} stays unbootable")]
    Cancelled(crate::group::Group),
    #[error("not the bundle the release index names: {0}")]
    WrongBundle(String),
    /// A hook refused the bundle (pre-install) or failed after the slots were written.
    #[error("{hook} failed at {event}: {failure}")]
    Hook {
        hook: String,
        event: bundle::HookEvent,
        #[source]
        failure: crate::hooks::HookFailure,
    },
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
            UpdaterError::Hook { .. } => exit::HOOK,
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

/// Why the boot state cannot be read or written (exit 8).
#[derive(Debug, thiserror::Error)]
pub enum BootloaderError {
    /// The environment's storage failed: `doing` says what was done where.
    #[error("{doing}: {source}{hint}")]
    Storage {
        doing: String,
        #[source]
        source: io::Error,
        /// What to do about it, when there is something to say.
        hint: &'static str,
    },
    /// The environment holds what no bootloader or updater writes.
    #[error("{place} is corrupt: {what}")]
    Corrupt { place: String, what: String },
    /// The variables do not fit the environment.
    #[error("{place}: {what}")]
    Invalid { place: String, what: String },
    /// The variables make no boot state: one is missing or has a value no writer gives it.
    #[error("{0}")]
    BadState(String),
}

impl BootloaderError {
    pub fn storage(doing: impl Into<String>) -> impl FnOnce(io::Error) -> UpdaterError {
        let doing = doing.into();
        move |source| {
            UpdaterError::Bootloader(BootloaderError::Storage {
                doing,
                source,
                hint: "",
            })
        }
    }

    pub fn corrupt(place: impl std::fmt::Display, what: impl Into<String>) -> UpdaterError {
        UpdaterError::Bootloader(BootloaderError::Corrupt {
            place: place.to_string(),
            what: what.into(),
        })
    }

    pub fn invalid(place: impl std::fmt::Display, what: impl Into<String>) -> UpdaterError {
        UpdaterError::Bootloader(BootloaderError::Invalid {
            place: place.to_string(),
            what: what.into(),
        })
    }
}

/// Why a microcontroller could not be flashed, or its stored firmware not used.
#[derive(Debug, thiserror::Error)]
pub enum FirmwareError {
    #[error("{0}")]
    Serial(#[from] serialport::Error),
    #[error("{0}")]
    Stm32(#[from] crate::firmware::stm32::Stm32Error),
    #[error("{0}")]
    Dfu(#[from] crate::firmware::dfu::DfuError),
    /// The image kept in the state folder is not what the install recorded.
    #[error("{0}")]
    Stored(String),
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

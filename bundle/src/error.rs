use std::io;

/// What kind of failure an error is, so a front end can map it to an exit code
/// (`cli_support::exit::of`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The bundle is malformed, truncated or corrupt.
    BadBundle,
    /// The signature does not verify against any trusted key, or no key is trusted.
    BadSignature,
    /// Reading or writing a file failed.
    Io,
    /// A key file is malformed.
    BadKey,
    /// The creator's input (manifest or image files) is unusable.
    BadInput,
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("bundle is truncated: {0}")]
    Truncated(String),
    #[error("bundle is corrupt: {0}")]
    Corrupt(String),
    #[error("unexpected archive entry '{found}' (expected {expected})")]
    UnexpectedEntry { found: String, expected: String },
    #[error("archive entry '{name}' has an unsafe path")]
    UnsafePath { name: String },
    #[error("archive entry '{name}' is {size} bytes, more than the {limit} allowed")]
    OversizedEntry { name: String, size: u64, limit: u64 },
    #[error("manifest is invalid: {0}")]
    InvalidManifest(String),
    #[error("release index is invalid: {0}")]
    InvalidIndex(String),
    #[error("bundle is corrupt: chunk {chunk} of component '{component}' does not match its signed SHA-256")]
    ChunkMismatch { component: String, chunk: u64 },
    #[error("{what} signature is not valid for any trusted key{detail}")]
    SignatureInvalid { what: String, detail: String },
    #[error("no trusted public key in {0}")]
    EmptyKeyring(String),
    #[error("key file {path}: {reason}")]
    BadKey { path: String, reason: String },
    #[error("{0}")]
    BadInput(String),
}

impl BundleError {
    pub fn class(&self) -> ErrorClass {
        match self {
            BundleError::Io { .. } => ErrorClass::Io,
            BundleError::SignatureInvalid { .. } | BundleError::EmptyKeyring(_) => {
                ErrorClass::BadSignature
            }
            BundleError::BadKey { .. } => ErrorClass::BadKey,
            BundleError::BadInput(_) => ErrorClass::BadInput,
            BundleError::Truncated(_)
            | BundleError::Corrupt(_)
            | BundleError::UnexpectedEntry { .. }
            | BundleError::UnsafePath { .. }
            | BundleError::OversizedEntry { .. }
            | BundleError::InvalidManifest(_)
            | BundleError::InvalidIndex(_)
            | BundleError::ChunkMismatch { .. } => ErrorClass::BadBundle,
        }
    }

    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> BundleError {
        let context = context.into();
        move |source| BundleError::Io { context, source }
    }
}

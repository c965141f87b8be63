//! The update bundle format: a zstd-compressed tar archive whose first entry is a TOML manifest,
//! whose second entry is an Ed25519 signature over that manifest, and whose remaining entries are
//! the component images, compressed in one independent zstd frame per chunk and followed by a
//! seek table. `docs/bundle-format.md` specifies it byte for byte.
//!
//! Reading is one forward pass with bounded memory ([`BundleReader`]); every chunk comes out as an
//! [`UnverifiedChunk`] that must be turned into a [`VerifiedChunk`] against the signed manifest
//! before anybody may write it.
#![forbid(unsafe_code)]

mod chunk;
#[cfg(any(test, feature = "test-support"))]
pub mod craft;
pub mod delta;
mod error;
mod frame;
mod keys;
mod manifest;
mod reader;
pub mod release;
mod seek_table;
mod signature;
mod tar;
mod writer;

pub use chunk::{hash_chunk, ChunkDigest, ImageHasher, UnverifiedChunk, VerifiedChunk};
pub use error::{BundleError, ErrorClass};
pub use frame::{decode_chunk_frame, max_frame_len};
pub use keys::{KeyId, Keyring, PublicKey, SigningKey};
pub use manifest::{
    block_key, Component, ComponentKind, FirmwareTarget, HookEvent, Hooks, Manifest, Parity,
    TargetFields, UsbId, BLOCK_SIZE, DEFAULT_BAUD, FORMAT_VERSION, FORMAT_WITH_BLOCKS,
};
pub use reader::BundleReader;
pub use seek_table::{SeekEntry, SeekTable};
pub use writer::{
    create_bundle, create_delta_bundle, BundleInput, CreateOptions, CreateReport, DeltaImage,
    FirmwareInput, HooksInput, ImageInput, BLOCK_INDEXED_LEVEL, DEFAULT_FRAME_SIZE, DEFAULT_LEVEL,
};

/// Checks a signature entry (the format of a bundle's `manifest.sig`) over `message`; returns the
/// trusted key that signed it.
pub fn verify_signature(
    message: &[u8],
    signature_entry: &[u8],
    keyring: &Keyring,
) -> Result<KeyId, BundleError> {
    signature::verify(message, signature_entry, keyring, "message")
}

/// Bytes of uncompressed image data per chunk and per zstd frame, unless the creator asks otherwise.
pub const DEFAULT_CHUNK_SIZE: u32 = 1 << 20;
/// Format 2's chunk size: the unit a device fetches when it lacks content.
pub const BLOCK_INDEXED_CHUNK_SIZE: u32 = 64 << 10;
/// The smallest and largest chunk sizes a reader accepts; the upper bound caps reader memory.
pub const MIN_CHUNK_SIZE: u32 = 64 << 10;
pub const MAX_CHUNK_SIZE: u32 = 4 << 20;
/// The manifest is read into memory whole, so it is capped: a 64 GiB image needs about 4.5 MiB in
/// format 1; format 2's block index takes about 3.9 MiB per GiB of image, so up to 8 GiB.
pub const MAX_MANIFEST_SIZE: u64 = 32 << 20;
/// The signature entry holds a few lines of text.
pub const MAX_SIGNATURE_SIZE: u64 = 64 << 10;
/// Archive entry names of the two leading entries.
pub const MANIFEST_ENTRY: &str = "manifest.toml";
pub const SIGNATURE_ENTRY: &str = "manifest.sig";
/// The archive entry of the hook executable, when the manifest names one; read into memory whole.
pub const HOOKS_ENTRY: &str = "hooks";
pub const MAX_HOOKS_SIZE: u64 = 16 << 20;

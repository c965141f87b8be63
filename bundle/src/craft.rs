//! Building blocks for tests that need bundles no honest creator would make: archives with extra,
//! missing, reordered or malformed entries, manifests edited after signing. Compiled for this
//! crate's tests and, with the `test-support` feature, for other crates' tests.
use std::io::Read;

use crate::seek_table::{SeekEntry, SeekTable};
use crate::tar::{self, BLOCK};
use crate::{signature, SigningKey, DEFAULT_CHUNK_SIZE};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEntry {
    pub name: String,
    pub data: Vec<u8>,
}

impl RawEntry {
    pub fn new(name: &str, data: impl Into<Vec<u8>>) -> Self {
        RawEntry {
            name: name.into(),
            data: data.into(),
        }
    }
}

/// Signs manifest text the way `create_bundle` does.
pub fn signature_entry(manifest: &[u8], key: &SigningKey) -> Vec<u8> {
    signature::sign(manifest, &[key])
}

/// Lays entries out as a bundle: ustar entries in frames of at most one default chunk, the end
/// marker, the seek table.
pub fn assemble(entries: &[RawEntry]) -> Vec<u8> {
    assemble_framed(entries, DEFAULT_CHUNK_SIZE as usize)
}

/// `assemble`, with frames of `frame_len` decompressed bytes (1 makes a frame of every byte).
pub fn assemble_framed(entries: &[RawEntry], frame_len: usize) -> Vec<u8> {
    let mut archive = Vec::new();
    for e in entries {
        archive.extend_from_slice(&tar::encode_header(&e.name, e.data.len() as u64));
        archive.extend_from_slice(&e.data);
        archive.resize(archive.len() + tar::padding(e.data.len() as u64), 0);
    }
    archive.resize(archive.len() + 2 * BLOCK, 0);
    let mut out = Vec::new();
    let mut table = SeekTable::default();
    for piece in archive.chunks(frame_len) {
        let frame = zstd::bulk::compress(piece, 1).expect("zstd compresses");
        table.entries.push(SeekEntry {
            compressed: frame.len() as u32,
            decompressed: piece.len() as u32,
        });
        out.extend_from_slice(&frame);
    }
    out.extend_from_slice(&table.encode());
    out
}

/// The entries of a well-formed bundle, decompressed with the plain zstd stream decoder.
pub fn entries_of(bundle: &[u8]) -> Vec<RawEntry> {
    let mut archive = Vec::new();
    zstd::stream::read::Decoder::new(bundle)
        .expect("decoder")
        .read_to_end(&mut archive)
        .expect("a well-formed bundle decompresses");
    let mut entries = Vec::new();
    let mut at = 0;
    while at + BLOCK <= archive.len() {
        let block: &[u8; BLOCK] = archive[at..at + BLOCK].try_into().expect("block");
        let Some(header) = tar::decode_header(block).expect("valid header") else {
            break;
        };
        at += BLOCK;
        let data = archive[at..at + header.size as usize].to_vec();
        at += header.size as usize + tar::padding(header.size);
        entries.push(RawEntry {
            name: header.name,
            data,
        });
    }
    entries
}

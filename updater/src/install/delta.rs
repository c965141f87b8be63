//! Installing a delta bundle: each delta image is rebuilt, chunk by chunk and in order, from its
//! ops: blocks copied from the base image (which a slot of this device must hold exactly: checked
//! by SHA-256 before anything changes) and new blocks streamed from the bundle (checked against
//! their own signed hashes as they arrive). Every rebuilt chunk is checked against the new image's
//! signed chunk hash before it is written.
use std::io::Read;

use bundle::delta::{Delta, Op};
use bundle::{
    BundleError, BundleReader, Component, Manifest, UnverifiedChunk, VerifiedChunk, BLOCK_SIZE,
};
use tracing::info;

use super::pipeline::Incoming;
use crate::error::{Result, UpdaterError};
use crate::storage::Storage;

/// Where the device holds a delta's base.
pub struct Base {
    pub name: String,
    /// Read past the page cache (see `storage`): a mounted base shows other bytes through it.
    pub storage: Storage,
    /// The base is the slot being written: its blocks must be read before they are overwritten.
    pub is_target: bool,
}

/// A candidate slot for a base: its name, its path, and whether it is the target slot.
pub struct Candidate<'a> {
    pub name: String,
    pub path: &'a std::path::Path,
    pub is_target: bool,
}

/// Finds the base of `component`, whose `delta` this is, among `candidates` (the booted group's
/// slot first) by the XXH3-128 of their first `base_size` bytes as the storage holds them. None of
/// them holding it is an incompatible bundle: nothing has changed yet.
pub fn find_base(
    component: &Component,
    delta: &Delta,
    candidates: &[Candidate],
    chunk_size: u32,
) -> Result<Base> {
    for candidate in candidates {
        let Ok(storage) = Storage::open(candidate.path) else {
            continue;
        };
        let reading = UpdaterError::io(format!("reading {} for a delta's base", candidate.name));
        let fingerprint =
            match bundle::delta::fingerprint(storage.prefix(delta.base_size), delta.base_size) {
                Ok(fingerprint) => fingerprint,
                // Shorter than the base: not it.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => None,
                Err(e) => return Err(reading(e)),
            };
        if fingerprint == Some(delta.base_xxh3) {
            info!(slot = %candidate.name, component = %component.name, "delta base found");
            let base = Base {
                name: candidate.name.clone(),
                storage,
                is_target: candidate.is_target,
            };
            if base.is_target {
                check_in_place(component.size, delta, chunk_size, &base)?;
            }
            return Ok(base);
        }
    }
    let names: Vec<&str> = candidates.iter().map(|c| c.name.as_str()).collect();
    Err(UpdaterError::Incompatible(format!(
        "this delta updates {} image {} ({} bytes), which no slot holds ({} checked): install \
         the full bundle",
        component.slot_class.as_deref().unwrap_or("?"),
        hex::encode(&delta.base_sha256[..8]),
        delta.base_size,
        names.join(", ")
    )))
}

/// A base in the slot being written works only if no chunk copies a block that an earlier chunk
/// has overwritten by then (chunks are written in order, each rebuilt whole before it is
/// written); otherwise it is refused before anything changes.
fn check_in_place(image_size: u64, delta: &Delta, chunk_size: u32, base: &Base) -> Result<()> {
    let per_chunk = u64::from(chunk_size / BLOCK_SIZE);
    let mut at = 0u64;
    for op in delta.decoded_ops(image_size)? {
        match op {
            Op::Copy { from, count } => {
                let overwritten = (0..count).any(|i| (from + i) / per_chunk < (at + i) / per_chunk);
                if overwritten {
                    return Err(UpdaterError::Incompatible(format!(
                        "the base of this delta is in {}, the slot it would write, and the new \
                         image needs blocks of it that would be overwritten first: install the \
                         full bundle",
                        base.name
                    )));
                }
                at += count;
            }
            Op::New { count } => at += count,
        }
    }
    Ok(())
}

/// Rebuilds the chunks of every component in order, for the install's pipeline: a delta
/// component from its ops, any other from the bundle as it comes.
pub struct Producer<'a, R> {
    reader: BundleReader<R>,
    manifest: &'a Manifest,
    /// Per component: its ops and base, when it is a delta.
    deltas: Vec<Option<(Vec<Op>, Base)>>,
    next: (usize, u64),
    /// Where chunk `next` starts in the ops: op index and blocks of it used.
    cursor: (usize, u64),
    /// The verified data chunk being taken from, and how much of it is used.
    data: Option<(VerifiedChunk, usize)>,
}

impl<'a, R: Read> Producer<'a, R> {
    pub fn new(
        reader: BundleReader<R>,
        manifest: &'a Manifest,
        bases: Vec<Option<Base>>,
    ) -> Result<Self> {
        let deltas = manifest
            .components
            .iter()
            .zip(bases)
            .map(|(c, base)| match (&c.delta, base) {
                (Some(delta), Some(base)) => Ok(Some((delta.decoded_ops(c.size)?, base))),
                _ => Ok(None),
            })
            .collect::<Result<_>>()?;
        Ok(Producer {
            reader,
            manifest,
            deltas,
            next: (0, 0),
            cursor: (0, 0),
            data: None,
        })
    }

    pub fn next(&mut self, mut buffer: Vec<u8>) -> Result<Option<Incoming>> {
        loop {
            let (c, k) = self.next;
            let Some(component) = self.manifest.components.get(c) else {
                return Ok(None);
            };
            if k == component.chunks.len() as u64 {
                self.next = (c + 1, 0);
                self.cursor = (0, 0);
                continue;
            }
            self.next = (c, k + 1);
            if self.deltas[c].is_none() {
                return match self.reader.next_chunk(buffer)? {
                    Some(chunk) => Ok(Some(Incoming::Unverified(chunk))),
                    None => Err(UpdaterError::Bundle(BundleError::Truncated(format!(
                        "component '{}' ends early",
                        component.name
                    )))),
                };
            }
            let len = component.chunk_len(self.manifest.chunk_size, k);
            buffer.resize(len, 0);
            self.rebuild(c, &mut buffer)?;
            // Checked by the pipeline's verify stage, beside the rebuilding of the next chunk.
            return Ok(Some(Incoming::Unverified(UnverifiedChunk::of(
                self.manifest,
                c,
                k,
                buffer,
            ))));
        }
    }

    /// Fills `buffer` (the next chunk of delta component `c`) from the ops at the cursor.
    fn rebuild(&mut self, c: usize, buffer: &mut [u8]) -> Result<()> {
        let mut at = 0;
        while at < buffer.len() {
            let (ops, base) = self.deltas[c].as_ref().expect("a delta component");
            let (index, used) = self.cursor;
            let op = *ops.get(index).ok_or_else(|| {
                UpdaterError::Bundle(BundleError::Corrupt("the ops end early".into()))
            })?;
            let (count, from) = match op {
                Op::Copy { from, count } => (count, Some(from)),
                Op::New { count } => (count, None),
            };
            let blocks =
                (count - used).min(((buffer.len() - at) as u64).div_ceil(u64::from(BLOCK_SIZE)));
            let len = ((blocks * u64::from(BLOCK_SIZE)) as usize).min(buffer.len() - at);
            let piece = &mut buffer[at..at + len];
            match from {
                Some(from) => base
                    .storage
                    .read_exact_at_ahead(
                        piece,
                        (from + used) * u64::from(BLOCK_SIZE),
                        ((count - used) * u64::from(BLOCK_SIZE)) as usize,
                    )
                    .map_err(UpdaterError::io(format!(
                        "reading the base in {}",
                        base.name
                    )))?,
                None => self.take_data(piece)?,
            }
            at += len;
            self.cursor = if used + blocks == count {
                (index + 1, 0)
            } else {
                (index, used + blocks)
            };
        }
        Ok(())
    }

    /// The next bytes of the current component's new blocks, verified chunk by chunk.
    fn take_data(&mut self, mut out: &mut [u8]) -> Result<()> {
        while !out.is_empty() {
            let (chunk, used) = match self.data.take() {
                Some((chunk, used)) if used < chunk.data().len() => (chunk, used),
                previous => {
                    let buffer = previous
                        .map(|(chunk, _)| chunk.into_buffer())
                        .unwrap_or_default();
                    let chunk = self.reader.next_chunk(buffer)?.ok_or_else(|| {
                        UpdaterError::Bundle(BundleError::Truncated(
                            "the delta's new blocks end early".into(),
                        ))
                    })?;
                    let chunk = chunk.verify().map_err(|(e, _)| {
                        UpdaterError::Bundle(BundleError::Corrupt(format!(
                            "the delta's new blocks: {}",
                            e.to_string().trim_start_matches("bundle is corrupt: ")
                        )))
                    })?;
                    (chunk, 0)
                }
            };
            let n = out.len().min(chunk.data().len() - used);
            out[..n].copy_from_slice(&chunk.data()[used..used + n]);
            out = &mut out[n..];
            self.data = Some((chunk, used + n));
        }
        Ok(())
    }

    /// Where the bases are, for messages.
    pub fn base_names(&self) -> String {
        let names: Vec<&str> = self
            .deltas
            .iter()
            .flatten()
            .map(|(_, base)| base.name.as_str())
            .collect();
        names.join(", ")
    }

    /// Checks the end of the bundle once every chunk is made; returns the bundle's length.
    pub fn finish(mut self) -> Result<u64> {
        if self.reader.next_chunk(Vec::new())?.is_some() {
            return Err(UpdaterError::Bundle(BundleError::Corrupt(
                "the bundle holds more than its components".into(),
            )));
        }
        Ok(self.reader.finish()?)
    }
}

/// A rebuilt chunk that does not match its signed hash means the base changed after it was
/// checked (a mounted file system written to, failing storage): said as such.
pub fn base_changed(err: UpdaterError, bases: &str) -> UpdaterError {
    match err {
        UpdaterError::Bundle(BundleError::ChunkMismatch { component, chunk }) => {
            UpdaterError::Incompatible(format!(
                "chunk {chunk} of '{component}', rebuilt from its base in {bases}, does not match \
                 its signed hash: the base changed while it was read"
            ))
        }
        other => other,
    }
}

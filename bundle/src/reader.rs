//! One forward pass over a bundle: manifest, signature (checked before the manifest is even
//! parsed), the hook executable when the manifest names one, then every chunk of every component in manifest order, then the end of the archive and
//! the seek table. Memory stays bounded by the manifest and one frame.
use std::io::Read;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::frame::FrameStream;
use crate::tar::{self, EntryHeader, BLOCK};
use crate::{
    signature, BundleError, Component, ImageHasher, KeyId, Keyring, Manifest, UnverifiedChunk,
    HOOKS_ENTRY, MANIFEST_ENTRY, MAX_CHUNK_SIZE, MAX_HOOKS_SIZE, MAX_MANIFEST_SIZE,
    MAX_SIGNATURE_SIZE, SIGNATURE_ENTRY,
};

pub struct BundleReader<R> {
    frames: FrameStream<R>,
    manifest: Manifest,
    signer: Option<KeyId>,
    manifest_sha256: [u8; 32],
    /// The hook executable, verified against the manifest, when it names one.
    hooks: Option<Arc<[u8]>>,
    /// Where the archive's component entries start (their data), in the decompressed archive.
    data_offsets: Vec<u64>,
    names: Vec<Arc<str>>,
    position: Position,
}

#[derive(Clone, Copy)]
enum Position {
    BeforeComponent(usize),
    InComponent { component: usize, chunk: u64 },
    Done,
}

impl<R> BundleReader<R> {
    /// The same reader with its source replaced and the old one dropped (closing a download):
    /// for an installer that goes on by other means once it has the verified manifest, such as
    /// fetching chunk frames by Range.
    pub fn with_source<S>(self, source: S) -> BundleReader<S> {
        BundleReader {
            frames: self.frames.with_source(source),
            manifest: self.manifest,
            signer: self.signer,
            manifest_sha256: self.manifest_sha256,
            hooks: self.hooks,
            data_offsets: self.data_offsets,
            names: self.names,
            position: self.position,
        }
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// SHA-256 of the manifest entry's exact bytes: what a release index names a bundle by, so a
    /// server cannot swap in another correctly signed bundle.
    pub fn manifest_sha256(&self) -> [u8; 32] {
        self.manifest_sha256
    }

    /// The hook executable the manifest names, checked against its signed SHA-256.
    pub fn hooks(&self) -> Option<&Arc<[u8]>> {
        self.hooks.as_ref()
    }

    /// Where each component's data starts in the decompressed archive (its header just before):
    /// with the seek table, where each chunk's frame is in the bundle file.
    pub fn data_offsets(&self) -> &[u64] {
        &self.data_offsets
    }

    /// The key whose signature verified, if the bundle was opened with a keyring.
    pub fn signer(&self) -> Option<KeyId> {
        self.signer
    }
}

impl<R: Read> BundleReader<R> {
    /// Reads the manifest and its signature and checks the signature against the keyring.
    pub fn open(source: R, keyring: &Keyring) -> Result<Self, BundleError> {
        Self::start(source, Some(keyring))
    }

    /// Reads the manifest without checking its signature: for showing what a bundle claims.
    /// Chunks read afterwards are still checked against the (unverified) manifest.
    pub fn open_unverified(source: R) -> Result<Self, BundleError> {
        Self::start(source, None)
    }

    fn start(source: R, keyring: Option<&Keyring>) -> Result<Self, BundleError> {
        let mut frames = FrameStream::new(source, MAX_CHUNK_SIZE as usize)?;
        let manifest_bytes = read_small_entry(&mut frames, MANIFEST_ENTRY, MAX_MANIFEST_SIZE)?;
        let signature_bytes = read_small_entry(&mut frames, SIGNATURE_ENTRY, MAX_SIGNATURE_SIZE)?;
        let signer = match keyring {
            Some(keyring) => Some(signature::verify(
                &manifest_bytes,
                &signature_bytes,
                keyring,
                "bundle",
            )?),
            None => None,
        };
        let manifest = Manifest::parse(&manifest_bytes)?;
        let manifest_sha256 = Sha256::digest(&manifest_bytes).into();
        let mut at = tar::entry_len(manifest_bytes.len() as u64)
            + tar::entry_len(signature_bytes.len() as u64);
        let hooks = match &manifest.hooks {
            Some(expected) => {
                let bytes = read_small_entry(&mut frames, HOOKS_ENTRY, MAX_HOOKS_SIZE)?;
                if bytes.len() as u64 != expected.size
                    || Sha256::digest(&bytes)[..] != expected.sha256
                {
                    return Err(BundleError::Corrupt(format!(
                        "archive entry '{HOOKS_ENTRY}' does not match its signed size and SHA-256"
                    )));
                }
                at += tar::entry_len(expected.size);
                Some(Arc::from(bytes))
            }
            None => None,
        };
        let data_offsets = manifest
            .components
            .iter()
            .map(|c| {
                let data = at + BLOCK as u64;
                at += tar::entry_len(c.entry_size());
                data
            })
            .collect();
        let names = manifest
            .components
            .iter()
            .map(|c| Arc::from(c.name.as_str()))
            .collect();
        Ok(BundleReader {
            frames,
            manifest,
            signer,
            manifest_sha256,
            hooks,
            data_offsets,
            names,
            position: Position::BeforeComponent(0),
        })
    }

    /// The next chunk in bundle order, read into `buf` (which is reused), or `None` after the
    /// last chunk of the last component.
    pub fn next_chunk(&mut self, mut buf: Vec<u8>) -> Result<Option<UnverifiedChunk>, BundleError> {
        loop {
            match self.position {
                Position::Done => return Ok(None),
                Position::BeforeComponent(i) if i == self.manifest.components.len() => {
                    self.read_end_marker()?;
                    self.position = Position::Done;
                    return Ok(None);
                }
                Position::BeforeComponent(i) => {
                    let expected = &self.manifest.components[i];
                    let header = read_header(&mut self.frames, &format!("'{}'", expected.entry))?;
                    check_component_header(&header, expected)?;
                    self.position = Position::InComponent {
                        component: i,
                        chunk: 0,
                    };
                }
                Position::InComponent { component, chunk } => {
                    let c = &self.manifest.components[component];
                    if chunk == c.entry_chunks().len() as u64 {
                        read_padding(&mut self.frames, &c.entry, c.entry_size())?;
                        self.position = Position::BeforeComponent(component + 1);
                        continue;
                    }
                    let len = entry_chunk_len(c, self.manifest.chunk_size, chunk);
                    buf.resize(len, 0);
                    let name = &self.names[component];
                    self.frames
                        .fill(&mut buf, &|| format!("chunk {chunk} of component '{name}'"))?;
                    let offset = chunk * u64::from(self.manifest.chunk_size);
                    let expected = c.entry_chunks()[chunk as usize];
                    self.position = Position::InComponent {
                        component,
                        chunk: chunk + 1,
                    };
                    return Ok(Some(UnverifiedChunk::new(
                        buf,
                        name.clone(),
                        chunk,
                        offset,
                        expected,
                    )));
                }
            }
        }
    }

    /// Reads the rest of the bundle, handing each verified chunk's data to `sink` with the index
    /// of its component; checks every archive entry whole against its signed SHA-256, and the end
    /// of the bundle.
    pub fn read_all(
        mut self,
        mut sink: impl FnMut(usize, &[u8]) -> Result<(), BundleError>,
    ) -> Result<(), BundleError> {
        let mut hashers: Vec<ImageHasher> = self
            .manifest
            .components
            .iter()
            .map(|_| ImageHasher::new())
            .collect();
        let mut buf = Vec::new();
        let mut component = 0;
        while let Some(chunk) = self.next_chunk(buf)? {
            let chunk = chunk.verify().map_err(|(e, _)| e)?;
            while *self.names[component] != *chunk.component() {
                component += 1;
            }
            hashers[component].update(chunk.data());
            sink(component, chunk.data())?;
            buf = chunk.into_buffer();
        }
        for (c, hasher) in self.manifest.components.iter().zip(hashers) {
            if hasher.finish() != c.entry_sha256() {
                return Err(BundleError::Corrupt(format!(
                    "component '{}': its chunks verify but its whole-image SHA-256 does not",
                    c.name
                )));
            }
        }
        self.finish().map(drop)
    }

    /// Checks that the archive ended where the manifest says and that the seek table is intact;
    /// returns the bundle's length in bytes. Call after `next_chunk` returned `None`.
    pub fn finish(self) -> Result<u64, BundleError> {
        if !matches!(self.position, Position::Done) {
            return Err(BundleError::BadInput(
                "finish() called before every chunk was read".into(),
            ));
        }
        self.frames.finish()
    }

    fn read_end_marker(&mut self) -> Result<(), BundleError> {
        let mut block = [0u8; BLOCK * 2];
        self.frames
            .fill(&mut block, &|| "the end-of-archive marker".to_string())?;
        let first: &[u8; BLOCK] = block[..BLOCK].try_into().expect("one block");
        if let Some(header) = tar::decode_header(first)? {
            return Err(BundleError::UnexpectedEntry {
                found: header.name,
                expected: "the end of the archive".into(),
            });
        }
        if block[BLOCK..].iter().any(|&b| b != 0) {
            return Err(BundleError::Corrupt(
                "malformed end-of-archive marker".into(),
            ));
        }
        Ok(())
    }
}

/// Size of chunk `index` of the component's archive entry.
fn entry_chunk_len(c: &Component, chunk_size: u32, index: u64) -> usize {
    let start = index * u64::from(chunk_size);
    (c.entry_size() - start).min(u64::from(chunk_size)) as usize
}

fn read_header<R: Read>(
    frames: &mut FrameStream<R>,
    expected: &str,
) -> Result<EntryHeader, BundleError> {
    let mut block = [0u8; BLOCK];
    frames.fill(&mut block, &|| format!("the archive header of {expected}"))?;
    tar::decode_header(&block)?.ok_or_else(|| {
        BundleError::Truncated(format!("the archive ends where {expected} should be"))
    })
}

fn check_component_header(header: &EntryHeader, expected: &Component) -> Result<(), BundleError> {
    if header.name != expected.entry {
        return Err(BundleError::UnexpectedEntry {
            found: header.name.clone(),
            expected: format!("'{}'", expected.entry),
        });
    }
    if header.size != expected.entry_size() {
        return Err(BundleError::Corrupt(format!(
            "archive entry '{}' is {} bytes but the manifest says {}",
            header.name,
            header.size,
            expected.entry_size()
        )));
    }
    Ok(())
}

fn read_small_entry<R: Read>(
    frames: &mut FrameStream<R>,
    name: &str,
    limit: u64,
) -> Result<Vec<u8>, BundleError> {
    let header = read_header(frames, &format!("'{name}'"))?;
    if header.name != name {
        return Err(BundleError::UnexpectedEntry {
            found: header.name,
            expected: format!("'{name}'"),
        });
    }
    if header.size > limit {
        return Err(BundleError::OversizedEntry {
            name: header.name,
            size: header.size,
            limit,
        });
    }
    let mut data = vec![0u8; header.size as usize];
    frames.fill(&mut data, &|| format!("'{name}'"))?;
    read_padding(frames, name, header.size)?;
    Ok(data)
}

fn read_padding<R: Read>(
    frames: &mut FrameStream<R>,
    name: &str,
    size: u64,
) -> Result<(), BundleError> {
    let mut pad = [0u8; BLOCK];
    let pad = &mut pad[..tar::padding(size)];
    frames.fill(pad, &|| format!("the padding after '{name}'"))?;
    if pad.iter().any(|&b| b != 0) {
        return Err(BundleError::Corrupt(format!(
            "non-zero padding after '{name}'"
        )));
    }
    Ok(())
}

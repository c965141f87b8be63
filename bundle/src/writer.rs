//! Creates a bundle in one pass over each image: on all cores, every frame's worth of image is
//! read once, its chunks hashed and the frame compressed (an independent zstd frame), while one
//! more thread hashes the whole image. The frames wait in an unlinked scratch file until the
//! manifest, which must come first, is written and signed; then they are copied after it (in the
//! kernel) and the seek table closes the bundle. The output appears under its final name only
//! once it is complete.
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::delta::Delta;
use crate::manifest::check_identifier;
use crate::seek_table::{SeekEntry, SeekTable};
use crate::tar::{self, BLOCK};
use crate::{
    block_key, hash_chunk, signature, BundleError, ChunkDigest, Component, ComponentKind,
    FirmwareTarget, HookEvent, Hooks, KeyId, Manifest, SigningKey, BLOCK_INDEXED_CHUNK_SIZE,
    BLOCK_SIZE, DEFAULT_CHUNK_SIZE, FORMAT_VERSION, FORMAT_WITH_BLOCKS, HOOKS_ENTRY,
    MANIFEST_ENTRY, MAX_CHUNK_SIZE, MAX_HOOKS_SIZE, SIGNATURE_ENTRY,
};

/// What a release engineer asks for (the input manifest of `bundle-tool create`).
#[derive(Debug, Clone)]
pub struct BundleInput {
    pub compatible: String,
    pub version: semver::Version,
    pub security_version: u64,
    pub images: Vec<ImageInput>,
    pub firmware: Vec<FirmwareInput>,
    pub hooks: Option<HooksInput>,
}

/// The hook executable to carry, and the events it handles.
#[derive(Debug, Clone)]
pub struct HooksInput {
    pub path: PathBuf,
    pub events: Vec<HookEvent>,
}

/// Microcontroller firmware to carry in the bundle.
#[derive(Debug, Clone)]
pub struct FirmwareInput {
    pub name: String,
    pub version: String,
    pub target: FirmwareTarget,
    pub path: PathBuf,
}

#[derive(Debug, Clone)]
pub struct ImageInput {
    pub slot_class: String,
    pub path: PathBuf,
    /// A tar archive to fill the slot's file system with, rather than a raw image.
    pub archive: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputFile {
    compatible: String,
    version: String,
    #[serde(default)]
    security_version: u64,
    #[serde(default)]
    image: Vec<InputImage>,
    #[serde(default)]
    firmware: Vec<InputFirmware>,
    hooks: Option<InputHooks>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputHooks {
    file: PathBuf,
    events: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputFirmware {
    name: String,
    version: String,
    file: PathBuf,
    #[serde(flatten)]
    target: FirmwareTarget,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputImage {
    slot_class: String,
    file: PathBuf,
    #[serde(default)]
    kind: InputKind,
}

#[derive(Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum InputKind {
    #[default]
    Image,
    Archive,
}

impl BundleInput {
    /// Reads an input manifest; image paths are relative to the manifest's folder.
    pub fn load(path: &Path) -> Result<Self, BundleError> {
        let bad = |msg: String| BundleError::BadInput(format!("{}: {msg}", path.display()));
        let text = fs::read_to_string(path)
            .map_err(BundleError::io(format!("reading {}", path.display())))?;
        let file: InputFile = toml::from_str(&text).map_err(|e| bad(e.message().to_string()))?;
        let version = semver::Version::parse(&file.version)
            .map_err(|e| bad(format!("version '{}' is not semver ({e})", file.version)))?;
        if file.image.is_empty() && file.firmware.is_empty() {
            return Err(bad("no [[image]] or [[firmware]] given".into()));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let images = file
            .image
            .into_iter()
            .map(|i| ImageInput {
                slot_class: i.slot_class,
                path: base.join(i.file),
                archive: i.kind == InputKind::Archive,
            })
            .collect();
        let firmware = file
            .firmware
            .into_iter()
            .map(|f| FirmwareInput {
                path: base.join(f.file),
                name: f.name,
                version: f.version,
                target: f.target,
            })
            .collect();
        let hooks = file
            .hooks
            .map(|h| -> Result<HooksInput, BundleError> {
                Ok(HooksInput {
                    path: base.join(h.file),
                    events: h
                        .events
                        .iter()
                        .map(|e| e.parse().map_err(|e| bad(format!("[hooks] {e}"))))
                        .collect::<Result<_, _>>()?,
                })
            })
            .transpose()?;
        Ok(BundleInput {
            compatible: file.compatible,
            version,
            security_version: file.security_version,
            images,
            firmware,
            hooks,
        })
    }
}

/// The compression level of a format-1 bundle: its 4 MiB frames at level 3 are no larger than a
/// single-stream `zstd -3` of the image (bench/run prints both sizes).
pub const DEFAULT_LEVEL: i32 = 3;
/// Format 2 fetches every 64 KiB chunk as a frame of its own; frames that small cannot match
/// across each other, so they need level 6 to come near `zstd -3` of the whole image.
pub const BLOCK_INDEXED_LEVEL: i32 = 6;
/// Bytes of image per zstd frame in format 1: four chunks. Fewer frames compress better (a frame
/// cannot refer to the one before); a reader's memory is bounded by `MAX_CHUNK_SIZE` per frame.
pub const DEFAULT_FRAME_SIZE: u32 = 4 * DEFAULT_CHUNK_SIZE;

#[derive(Debug, Clone, Copy)]
pub struct CreateOptions {
    /// 1, or 2 for a block index in the manifest (adaptive installs; docs/bundle-format.md).
    pub format: u32,
    pub chunk_size: u32,
    /// Bytes of image per zstd frame: a multiple of `chunk_size`, at most `MAX_CHUNK_SIZE`.
    /// Format 2 needs a frame per chunk, as a device fetches chunks alone.
    pub frame_size: u32,
    pub level: i32,
    pub threads: usize,
}

impl CreateOptions {
    /// The defaults of `format`: format 2 fetches content in 64 KiB chunks, so that a device that
    /// lacks one 4 KiB block does not download a whole megabyte for it.
    pub fn for_format(format: u32) -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        match format >= FORMAT_WITH_BLOCKS {
            true => CreateOptions {
                format,
                chunk_size: BLOCK_INDEXED_CHUNK_SIZE,
                frame_size: BLOCK_INDEXED_CHUNK_SIZE,
                level: BLOCK_INDEXED_LEVEL,
                threads,
            },
            false => CreateOptions {
                format,
                chunk_size: DEFAULT_CHUNK_SIZE,
                frame_size: DEFAULT_FRAME_SIZE,
                level: DEFAULT_LEVEL,
                threads,
            },
        }
    }

    fn check(&self) -> Result<(), BundleError> {
        let chunk = self.chunk_size;
        let frame = self.frame_size;
        if frame == 0 || !frame.is_multiple_of(chunk) || frame > MAX_CHUNK_SIZE {
            return Err(BundleError::BadInput(format!(
                "a frame of {frame} bytes must hold whole chunks of {chunk} and at most \
                 {MAX_CHUNK_SIZE} bytes"
            )));
        }
        if self.format >= FORMAT_WITH_BLOCKS && frame != chunk {
            return Err(BundleError::BadInput(
                "format 2 needs a frame per chunk (devices fetch chunks alone)".into(),
            ));
        }
        Ok(())
    }
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions::for_format(FORMAT_VERSION)
    }
}

#[derive(Debug)]
pub struct CreateReport {
    pub manifest: Manifest,
    pub bundle_size: u64,
    pub signers: Vec<KeyId>,
}

/// An image of a delta bundle: its input's `path` holds the new blocks (`delta::diff`'s data), this
/// says what they rebuild.
#[derive(Debug, Clone)]
pub struct DeltaImage {
    pub slot_class: String,
    pub base_sha256: ChunkDigest,
    pub base_size: u64,
    pub base_xxh3: u128,
    pub ops: Vec<u8>,
    /// The new image's size and signed hashes (from its own bundle).
    pub size: u64,
    pub sha256: ChunkDigest,
    pub chunks: Vec<ChunkDigest>,
}

pub fn create_bundle(
    input: &BundleInput,
    keys: &[&SigningKey],
    output: &Path,
    options: &CreateOptions,
) -> Result<CreateReport, BundleError> {
    create_delta_bundle(input, &[], keys, output, options)
}

/// A bundle in which the images named in `deltas` are deltas from a base (format 2).
pub fn create_delta_bundle(
    input: &BundleInput,
    deltas: &[DeltaImage],
    keys: &[&SigningKey],
    output: &Path,
    options: &CreateOptions,
) -> Result<CreateReport, BundleError> {
    if keys.is_empty() {
        return Err(BundleError::BadInput("no signing key given".into()));
    }
    options.check()?;
    let threads = options.threads.max(1);
    let mut components = Vec::new();
    // The archive after the head, built in the same pass that hashes the images.
    let mut payload = FrameWriter::new(
        BufWriter::with_capacity(1 << 20, scratch_file(output)?),
        options,
    );
    let sources = input
        .images
        .iter()
        .map(|i| {
            let (suffix, kind) = match i.archive {
                true => ("tar", ComponentKind::Archive),
                false => ("img", ComponentKind::Image),
            };
            (
                i.slot_class.clone(),
                format!("{}.{suffix}", i.slot_class),
                &i.path,
                kind,
                None,
            )
        })
        .chain(input.firmware.iter().map(|f| {
            let entry = format!("{}.fw", f.name);
            (
                f.name.clone(),
                entry,
                &f.path,
                ComponentKind::Firmware,
                Some(f),
            )
        }));
    for (name, entry, path, kind, firmware) in sources {
        if firmware.is_none() {
            check_identifier("slot class", &name)?;
        }
        let file =
            File::open(path).map_err(BundleError::io(format!("image {}", path.display())))?;
        let meta = file
            .metadata()
            .map_err(BundleError::io(format!("image {}", path.display())))?;
        if !meta.is_file() {
            return Err(BundleError::BadInput(format!(
                "image {} is not a regular file",
                path.display()
            )));
        }
        let delta = deltas
            .iter()
            .find(|d| firmware.is_none() && d.slot_class == name);
        let entry = match delta {
            Some(_) => format!("{name}.delta"),
            None => entry,
        };
        let with_blocks = options.format >= FORMAT_WITH_BLOCKS && delta.is_none();
        let size = meta.len();
        payload
            .structure
            .extend_from_slice(&tar::encode_header(&entry, size));
        payload.flush_structure()?;
        let (sha256, chunks, blocks) = pack_image(
            &file,
            size,
            options,
            with_blocks,
            threads,
            path,
            &mut payload,
        )?;
        payload
            .structure
            .resize(payload.structure.len() + tar::padding(size), 0);
        components.push(Component {
            kind,
            slot_class: firmware.is_none().then(|| name.clone()),
            firmware_version: firmware.map(|f| f.version.clone()),
            target: firmware.map(|f| f.target.clone()),
            name,
            entry,
            size: delta.map_or(size, |d| d.size),
            sha256: delta.map_or(sha256, |d| d.sha256),
            chunks: delta.map_or_else(|| chunks.clone(), |d| d.chunks.clone()),
            blocks: with_blocks.then_some(blocks),
            delta: delta.map(|d| Delta {
                base_sha256: d.base_sha256,
                base_size: d.base_size,
                base_xxh3: d.base_xxh3,
                ops: d.ops.clone(),
                data_size: size,
                data_sha256: sha256,
                data_chunks: chunks,
            }),
        });
    }
    payload
        .structure
        .resize(payload.structure.len() + 2 * BLOCK, 0);
    payload.flush_structure()?;
    let hook_bytes = input.hooks.as_ref().map(read_hooks).transpose()?;
    let manifest = Manifest {
        format: options.format,
        compatible: input.compatible.clone(),
        version: input.version.clone(),
        security_version: input.security_version,
        chunk_size: options.chunk_size,
        hooks: input
            .hooks
            .as_ref()
            .zip(hook_bytes.as_ref())
            .map(|(h, bytes)| Hooks {
                size: bytes.len() as u64,
                sha256: Sha256::digest(bytes).into(),
                events: h.events.clone(),
            }),
        components,
    };
    manifest
        .validate()
        .map_err(|e| BundleError::BadInput(e.to_string()))?;
    let manifest_text = manifest.to_toml();
    let signature_entry = signature::sign(manifest_text.as_bytes(), keys);

    let temp = temp_path(output);
    let result = (|| {
        let file =
            File::create(&temp).map_err(BundleError::io(format!("creating {}", temp.display())))?;
        let mut out = FrameWriter::new(BufWriter::with_capacity(1 << 20, file), options);
        out.entry(MANIFEST_ENTRY, manifest_text.as_bytes())?;
        out.entry(SIGNATURE_ENTRY, &signature_entry)?;
        if let Some(bytes) = &hook_bytes {
            out.entry(HOOKS_ENTRY, bytes)?;
        }
        out.append(payload)?;
        let size = out.finish()?;
        fs::rename(&temp, output)
            .map_err(BundleError::io(format!("renaming to {}", output.display())))?;
        Ok(size)
    })();
    match result {
        Ok(bundle_size) => Ok(CreateReport {
            manifest,
            bundle_size,
            signers: keys.iter().map(|k| k.public_key().id()).collect(),
        }),
        Err(e) => {
            let _ = fs::remove_file(&temp);
            Err(e)
        }
    }
}

/// The hook executable's bytes; it must be a regular file the bundle can carry whole.
fn read_hooks(hooks: &HooksInput) -> Result<Vec<u8>, BundleError> {
    let path = &hooks.path;
    let bytes = fs::read(path).map_err(BundleError::io(format!("hooks {}", path.display())))?;
    if bytes.is_empty() || bytes.len() as u64 > MAX_HOOKS_SIZE {
        return Err(BundleError::BadInput(format!(
            "hooks {} is {} bytes; a hook executable must be 1 to {MAX_HOOKS_SIZE}",
            path.display(),
            bytes.len()
        )));
    }
    Ok(bytes)
}

fn temp_path(output: &Path) -> PathBuf {
    sibling(output, "tmp")
}

fn sibling(output: &Path, suffix: &str) -> PathBuf {
    let name = output
        .file_name()
        .map_or("bundle".into(), |n| n.to_string_lossy().into_owned());
    output.with_file_name(format!(".{name}.{}.{suffix}", std::process::id()))
}

/// A scratch file beside the output for the frames until the head is written; unlinked at once,
/// so nothing is left behind whatever happens.
fn scratch_file(output: &Path) -> Result<File, BundleError> {
    let path = sibling(output, "frames");
    let file = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(BundleError::io(format!("creating {}", path.display())))?;
    fs::remove_file(&path).map_err(BundleError::io(format!("removing {}", path.display())))?;
    Ok(file)
}

/// The image's SHA-256, each chunk's, and (when `with_blocks`) each block's key.
type ImageDigests = (ChunkDigest, Vec<ChunkDigest>, Vec<u64>);

/// One frame's worth of an image, hashed and compressed.
struct Packed {
    frame: Vec<u8>,
    len: usize,
    chunks: Vec<ChunkDigest>,
    blocks: Vec<u64>,
}

/// The single pass over an image: `threads` workers each read a frame's worth, hash its chunks
/// (and key its blocks) and compress it, while one more thread reads the image in order for the
/// whole image's digest (sharing the workers' buffers with it, in order, was slower: they are no
/// longer in the cache by then). The frames go to `out` in order.
fn pack_image(
    file: &File,
    size: u64,
    options: &CreateOptions,
    with_blocks: bool,
    threads: usize,
    path: &Path,
    out: &mut FrameWriter,
) -> Result<ImageDigests, BundleError> {
    let chunk_size = options.chunk_size as usize;
    let frame_size = u64::from(options.frame_size);
    let count = size.div_ceil(frame_size);
    let next = AtomicU64::new(0);
    let io_err = || BundleError::io(format!("reading image {}", path.display()));
    // Most images have long runs of zeros: their chunks all have this digest.
    let zero_digest = hash_chunk(&vec![0u8; chunk_size]);
    std::thread::scope(|scope| {
        let whole = scope.spawn(|| hash_whole(file, size, path));
        let (tx, rx) = mpsc::sync_channel(threads * 2);
        for _ in 0..threads {
            let tx = tx.clone();
            let (next, zero_digest) = (&next, &zero_digest);
            scope.spawn(move || {
                let mut packer = match Packer::new(options, with_blocks, zero_digest) {
                    Ok(packer) => packer,
                    Err(e) => {
                        let _ = tx.send((0, Err(e)));
                        return;
                    }
                };
                let mut data = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        break;
                    }
                    let offset = i * frame_size;
                    let len = (size - offset).min(frame_size);
                    let result = match is_hole(file, offset, len) {
                        true => packer.pack_hole(len as usize),
                        false => read_piece(file, size, frame_size, i, &mut data)
                            .map_err(io_err())
                            .and_then(|()| packer.pack(&data)),
                    };
                    if tx.send((i, result)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut waiting = BTreeMap::new();
        let mut expected = 0u64;
        let (mut chunks, mut blocks) = (Vec::new(), Vec::new());
        for (i, result) in rx {
            waiting.insert(i, result?);
            while let Some(packed) = waiting.remove(&expected) {
                out.frame(&packed.frame, packed.len)?;
                chunks.extend(packed.chunks);
                blocks.extend(packed.blocks);
                expected += 1;
            }
        }
        if expected != count {
            return Err(BundleError::BadInput("compression stopped early".into()));
        }
        let whole = whole.join().expect("hashing thread panicked")?;
        Ok((whole, chunks, blocks))
    })
}

/// A worker's hashing and compression of frames.
struct Packer<'a> {
    compressor: zstd::bulk::Compressor<'static>,
    chunk_size: usize,
    frame_size: usize,
    with_blocks: bool,
    zero_digest: &'a ChunkDigest,
    /// A whole frame of zeros, compressed: images have many.
    zero_frame: Option<Vec<u8>>,
    zero_block_key: u64,
}

impl<'a> Packer<'a> {
    fn new(
        options: &CreateOptions,
        with_blocks: bool,
        zero_digest: &'a ChunkDigest,
    ) -> Result<Self, BundleError> {
        Ok(Packer {
            compressor: zstd::bulk::Compressor::new(options.level)
                .map_err(BundleError::io("creating a zstd compressor"))?,
            chunk_size: options.chunk_size as usize,
            frame_size: options.frame_size as usize,
            with_blocks,
            zero_digest,
            zero_frame: None,
            zero_block_key: block_key(&[0u8; BLOCK_SIZE as usize]),
        })
    }

    /// `len` bytes of zeros that a sparse image does not store: nothing to read or scan.
    fn pack_hole(&mut self, len: usize) -> Result<Packed, BundleError> {
        match &self.zero_frame {
            Some(frame) if len == self.frame_size => Ok(Packed {
                frame: frame.clone(),
                len,
                chunks: vec![*self.zero_digest; len / self.chunk_size],
                blocks: match self.with_blocks {
                    true => vec![self.zero_block_key; len / BLOCK_SIZE as usize],
                    false => Vec::new(),
                },
            }),
            _ => self.pack(&vec![0u8; len]),
        }
    }

    fn pack(&mut self, data: &[u8]) -> Result<Packed, BundleError> {
        let mut all_zero = data.len() == self.frame_size;
        let chunks = data
            .chunks(self.chunk_size)
            .map(|c| match c.len() == self.chunk_size && is_zero(c) {
                true => *self.zero_digest,
                false => {
                    all_zero = false;
                    hash_chunk(c)
                }
            })
            .collect();
        let blocks = match self.with_blocks {
            true => data.chunks(BLOCK_SIZE as usize).map(block_key).collect(),
            false => Vec::new(),
        };
        let frame = match (all_zero, &self.zero_frame) {
            (true, Some(frame)) => frame.clone(),
            _ => {
                let frame = self
                    .compressor
                    .compress(data)
                    .map_err(BundleError::io("compressing a chunk"))?;
                if all_zero {
                    self.zero_frame = Some(frame.clone());
                }
                frame
            }
        };
        Ok(Packed {
            frame,
            len: data.len(),
            chunks,
            blocks,
        })
    }
}

fn is_zero(data: &[u8]) -> bool {
    data.chunks(4096)
        .all(|piece| piece.iter().fold(0u8, |acc, &b| acc | b) == 0)
}

/// The whole image's SHA-256, read in order (holes of a sparse image are zeros without reading
/// them); the image must not change size meanwhile.
fn hash_whole(file: &File, size: u64, path: &Path) -> Result<ChunkDigest, BundleError> {
    const PIECE: u64 = 1 << 20;
    let changed = || {
        BundleError::BadInput(format!(
            "image {} changed while it was read",
            path.display()
        ))
    };
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; PIECE as usize];
    let zeros = vec![0u8; PIECE as usize];
    let mut at = 0;
    while at < size {
        let len = (size - at).min(PIECE);
        if is_hole(file, at, len) {
            hasher.update(&zeros[..len as usize]);
        } else {
            let piece = &mut buf[..len as usize];
            file.read_exact_at(piece, at).map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => changed(),
                _ => BundleError::io(format!("reading image {}", path.display()))(e),
            })?;
            hasher.update(&*piece);
        }
        at += len;
    }
    let now = file
        .metadata()
        .map_err(BundleError::io(format!("reading image {}", path.display())))?;
    if now.len() != size {
        return Err(changed());
    }
    Ok(hasher.finalize().into())
}

/// Whether `len` bytes from `offset` lie in a hole of a sparse file, which reads as zeros. Where
/// the file system cannot say, the bytes are data.
fn is_hole(file: &File, offset: u64, len: u64) -> bool {
    use nix::unistd::{lseek, Whence};
    use std::os::fd::AsRawFd;
    let Ok(start) = i64::try_from(offset) else {
        return false;
    };
    match lseek(file.as_raw_fd(), start, Whence::SeekData) {
        Ok(data) => u64::try_from(data).is_ok_and(|data| data >= offset + len),
        // No data from `offset` to the end.
        Err(nix::errno::Errno::ENXIO) => true,
        Err(_) => false,
    }
}

/// Reads piece `index` of `piece_size` bytes (the last one may be shorter) into `buf`.
fn read_piece(
    file: &File,
    size: u64,
    piece_size: u64,
    index: u64,
    buf: &mut Vec<u8>,
) -> std::io::Result<()> {
    let offset = index * piece_size;
    buf.resize((size - offset).min(piece_size) as usize, 0);
    file.read_exact_at(buf, offset)
}

/// Writes frames and remembers their sizes for the seek table. Archive structure (headers,
/// padding, the end marker) collects in `structure` and goes out in frames of its own.
struct FrameWriter {
    out: BufWriter<File>,
    table: SeekTable,
    structure: Vec<u8>,
    level: i32,
    max_frame: usize,
    written: u64,
}

impl FrameWriter {
    fn new(out: BufWriter<File>, options: &CreateOptions) -> Self {
        FrameWriter {
            out,
            table: SeekTable::default(),
            structure: Vec::new(),
            level: options.level,
            max_frame: options.chunk_size as usize,
            written: 0,
        }
    }

    fn entry(&mut self, name: &str, data: &[u8]) -> Result<(), BundleError> {
        self.structure
            .extend_from_slice(&tar::encode_header(name, data.len() as u64));
        self.structure.extend_from_slice(data);
        self.structure
            .resize(self.structure.len() + tar::padding(data.len() as u64), 0);
        self.flush_structure()
    }

    fn flush_structure(&mut self) -> Result<(), BundleError> {
        let data = std::mem::take(&mut self.structure);
        for piece in data.chunks(self.max_frame) {
            let frame =
                zstd::bulk::compress(piece, self.level).map_err(BundleError::io("compressing"))?;
            self.frame(&frame, piece.len())?;
        }
        Ok(())
    }

    fn frame(&mut self, frame: &[u8], content: usize) -> Result<(), BundleError> {
        self.out
            .write_all(frame)
            .map_err(BundleError::io("writing the bundle"))?;
        self.written += frame.len() as u64;
        self.table.entries.push(SeekEntry {
            compressed: frame.len() as u32,
            decompressed: content as u32,
        });
        Ok(())
    }

    /// Copies `other`'s frames after these (in the kernel where the file system can).
    fn append(&mut self, other: FrameWriter) -> Result<(), BundleError> {
        let io_err = BundleError::io("writing the bundle");
        let mut frames = other
            .out
            .into_inner()
            .map_err(|e| BundleError::io("writing the bundle")(e.into_error()))?;
        self.out
            .flush()
            .map_err(BundleError::io("writing the bundle"))?;
        frames
            .seek(SeekFrom::Start(0))
            .map_err(BundleError::io("reading back the frames"))?;
        let copied = std::io::copy(&mut frames, self.out.get_mut()).map_err(io_err)?;
        if copied != other.written {
            return Err(BundleError::BadInput(
                "the frames changed while they were copied".into(),
            ));
        }
        self.written += copied;
        self.table.entries.extend(other.table.entries);
        Ok(())
    }

    fn finish(mut self) -> Result<u64, BundleError> {
        let table = self.table.encode();
        self.out
            .write_all(&table)
            .map_err(BundleError::io("writing the bundle"))?;
        let file = self
            .out
            .into_inner()
            .map_err(|e| BundleError::io("writing the bundle")(e.into_error()))?;
        file.sync_all()
            .map_err(BundleError::io("syncing the bundle"))?;
        Ok(self.written + table.len() as u64)
    }
}

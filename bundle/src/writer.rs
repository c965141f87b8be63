//! Creates a bundle: hashes every image (whole and per chunk), writes and signs the manifest, then
//! compresses the chunks on all cores, one independent zstd frame each, and closes with the seek
//! table. The output appears under its final name only once it is complete.
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
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
    MANIFEST_ENTRY, MAX_HOOKS_SIZE, SIGNATURE_ENTRY,
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

/// Per-chunk frames cannot match across chunks, so level 6 is what it takes to be no larger than a
/// single-stream `zstd -3` (bench/run prints both sizes).
pub const DEFAULT_LEVEL: i32 = 6;

#[derive(Debug, Clone, Copy)]
pub struct CreateOptions {
    /// 1, or 2 for a block index in the manifest (adaptive installs; docs/bundle-format.md).
    pub format: u32,
    pub chunk_size: u32,
    pub level: i32,
    pub threads: usize,
}

impl CreateOptions {
    /// The defaults of `format`: format 2 fetches content in 64 KiB chunks, so that a device that
    /// lacks one 4 KiB block does not download a whole megabyte for it.
    pub fn for_format(format: u32) -> Self {
        CreateOptions {
            format,
            chunk_size: if format >= FORMAT_WITH_BLOCKS {
                BLOCK_INDEXED_CHUNK_SIZE
            } else {
                DEFAULT_CHUNK_SIZE
            },
            ..CreateOptions::default()
        }
    }
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            format: FORMAT_VERSION,
            chunk_size: DEFAULT_CHUNK_SIZE,
            level: DEFAULT_LEVEL,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
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
    let threads = options.threads.max(1);
    let mut files = Vec::new();
    let mut components = Vec::new();
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
        let (sha256, chunks, blocks) = hash_image(
            &file,
            meta.len(),
            options.chunk_size,
            with_blocks,
            threads,
            path,
        )?;
        components.push(Component {
            kind,
            slot_class: firmware.is_none().then(|| name.clone()),
            firmware_version: firmware.map(|f| f.version.clone()),
            target: firmware.map(|f| f.target.clone()),
            name,
            entry,
            size: delta.map_or(meta.len(), |d| d.size),
            sha256: delta.map_or(sha256, |d| d.sha256),
            chunks: delta.map_or_else(|| chunks.clone(), |d| d.chunks.clone()),
            blocks: with_blocks.then_some(blocks),
            delta: delta.map(|d| Delta {
                base_sha256: d.base_sha256,
                base_size: d.base_size,
                base_xxh3: d.base_xxh3,
                ops: d.ops.clone(),
                data_size: meta.len(),
                data_sha256: sha256,
                data_chunks: chunks,
            }),
        });
        files.push(file);
    }
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
        for (component, file) in manifest.components.iter().zip(&files) {
            let size = component.entry_size();
            out.structure
                .extend_from_slice(&tar::encode_header(&component.entry, size));
            out.flush_structure()?;
            compress_chunks(file, size, options, threads, &mut out)?;
            out.structure
                .resize(out.structure.len() + tar::padding(size), 0);
        }
        out.structure.resize(out.structure.len() + 2 * BLOCK, 0);
        out.flush_structure()?;
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
    let name = output
        .file_name()
        .map_or("bundle".into(), |n| n.to_string_lossy().into_owned());
    output.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// The image's SHA-256, each chunk's, and (when `with_blocks`) each block's key.
type ImageDigests = (ChunkDigest, Vec<ChunkDigest>, Vec<u64>);

/// Hashes the whole image in one thread while the others hash its chunks (and their blocks).
fn hash_image(
    file: &File,
    size: u64,
    chunk_size: u32,
    with_blocks: bool,
    threads: usize,
    path: &Path,
) -> Result<ImageDigests, BundleError> {
    let count = size.div_ceil(u64::from(chunk_size));
    let next = AtomicU64::new(0);
    let io_err = || BundleError::io(format!("reading image {}", path.display()));
    std::thread::scope(|scope| {
        let whole = scope.spawn(|| -> Result<ChunkDigest, BundleError> {
            let mut hasher = Sha256::new();
            let mut reader = file.try_clone().map_err(io_err())?;
            let mut buf = vec![0u8; 1 << 20];
            let mut total = 0u64;
            loop {
                let n = reader.read(&mut buf).map_err(io_err())?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                total += n as u64;
            }
            if total != size {
                return Err(BundleError::BadInput(format!(
                    "image {} changed while it was read",
                    path.display()
                )));
            }
            Ok(hasher.finalize().into())
        });
        let (tx, rx) = mpsc::channel();
        for _ in 0..threads.saturating_sub(1).max(1) {
            let tx = tx.clone();
            let next = &next;
            scope.spawn(move || {
                let mut buf = vec![0u8; chunk_size as usize];
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        break;
                    }
                    let result = read_chunk(file, size, chunk_size, i, &mut buf)
                        .map(|len| {
                            let data = &buf[..len];
                            let keys: Vec<u64> = match with_blocks {
                                true => data.chunks(BLOCK_SIZE as usize).map(block_key).collect(),
                                false => Vec::new(),
                            };
                            (hash_chunk(data), keys)
                        })
                        .map_err(io_err());
                    if tx.send((i, result)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut chunks = vec![[0u8; 32]; count as usize];
        let mut chunk_blocks = vec![Vec::new(); count as usize];
        for (i, result) in rx {
            let (digest, keys) = result?;
            chunks[i as usize] = digest;
            chunk_blocks[i as usize] = keys;
        }
        let whole = whole.join().expect("hashing thread panicked")?;
        Ok((whole, chunks, chunk_blocks.concat()))
    })
}

fn read_chunk(
    file: &File,
    size: u64,
    chunk_size: u32,
    index: u64,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    let offset = index * u64::from(chunk_size);
    let len = (size - offset).min(u64::from(chunk_size)) as usize;
    file.read_exact_at(&mut buf[..len], offset)?;
    Ok(len)
}

/// Compresses a component's chunks on `threads` workers and writes the frames in order.
fn compress_chunks(
    file: &File,
    size: u64,
    options: &CreateOptions,
    threads: usize,
    out: &mut FrameWriter,
) -> Result<(), BundleError> {
    let chunk_size = options.chunk_size;
    let count = size.div_ceil(u64::from(chunk_size));
    let next = AtomicU64::new(0);
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::sync_channel(threads * 2);
        for _ in 0..threads {
            let tx = tx.clone();
            let next = &next;
            scope.spawn(move || {
                let mut buf = vec![0u8; chunk_size as usize];
                let mut compressor = match zstd::bulk::Compressor::new(options.level) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = tx.send((0, Err(BundleError::io("creating a zstd compressor")(e))));
                        return;
                    }
                };
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        break;
                    }
                    let result = read_chunk(file, size, chunk_size, i, &mut buf)
                        .map_err(BundleError::io("reading an image"))
                        .and_then(|len| {
                            let frame = compressor
                                .compress(&buf[..len])
                                .map_err(BundleError::io("compressing a chunk"))?;
                            Ok((frame, len))
                        });
                    if tx.send((i, result)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut waiting = BTreeMap::new();
        let mut expected = 0u64;
        for (i, result) in rx {
            waiting.insert(i, result?);
            while let Some((frame, len)) = waiting.remove(&expected) {
                out.frame(&frame, len)?;
                expected += 1;
            }
        }
        if expected != count {
            return Err(BundleError::BadInput("compression stopped early".into()));
        }
        Ok(())
    })
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

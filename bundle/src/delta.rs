//! Delta images: a new image described as runs of blocks copied from a base image the device
//! holds, and runs of new blocks carried in the bundle. The ops are part of the signed manifest;
//! every chunk a device rebuilds from them is checked against the new image's signed chunk
//! hashes before it is written.
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{
    create_delta_bundle, BundleInput, BundleReader, ComponentKind, CreateOptions, DeltaImage,
    FirmwareInput, HooksInput, ImageInput, Keyring, Manifest, SigningKey, FORMAT_WITH_BLOCKS,
};
use crate::{BundleError, ChunkDigest, BLOCK_SIZE, HOOKS_ENTRY};

/// A run of the new image's blocks, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `count` blocks equal to the base's blocks from `from` on.
    Copy { from: u64, count: u64 },
    /// `count` blocks that follow next in the component's data entry.
    New { count: u64 },
}

/// What a delta component needs and carries, beside the new image's size and hashes (the
/// component's own `size`, `sha256` and `chunks`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delta {
    /// The image the copies come from: the device must hold exactly this.
    #[serde(with = "crate::manifest::hex_digest")]
    pub base_sha256: ChunkDigest,
    pub base_size: u64,
    /// XXH3-128 of the base, hex: how a device recognises the base, at memory speed (what it
    /// copies from it is checked against the signed chunk hashes whatever this says).
    #[serde(with = "fingerprint_text")]
    pub base_xxh3: u128,
    /// The ops, encoded (`encode`), in base64.
    #[serde(with = "ops_text")]
    pub ops: Vec<u8>,
    /// The archive entry (named by the component's `entry`): the new blocks, one after another.
    pub data_size: u64,
    #[serde(with = "crate::manifest::hex_digest")]
    pub data_sha256: ChunkDigest,
    #[serde(with = "crate::manifest::hex_digests")]
    pub data_chunks: Vec<ChunkDigest>,
}

impl Delta {
    /// The ops, checked against the sizes they must describe: `image_size` bytes of blocks,
    /// copies inside the base, and exactly the data entry's bytes of new blocks.
    pub fn decoded_ops(&self, image_size: u64) -> Result<Vec<Op>, BundleError> {
        let ops = decode(&self.ops)?;
        let blocks = image_size.div_ceil(u64::from(BLOCK_SIZE));
        let base_blocks = self.base_size.div_ceil(u64::from(BLOCK_SIZE));
        let (mut at, mut new_bytes) = (0u64, 0u64);
        for op in &ops {
            let count = match *op {
                Op::Copy { from, count } => {
                    if from.checked_add(count).is_none_or(|end| end > base_blocks) {
                        return Err(invalid("a copy reaches past the end of the base"));
                    }
                    count
                }
                Op::New { count } => {
                    let end = at.saturating_add(count).min(blocks);
                    new_bytes += block_bytes(image_size, at, end);
                    count
                }
            };
            if count == 0 {
                return Err(invalid("an op of no blocks"));
            }
            at = at.saturating_add(count);
            if at > blocks {
                return Err(invalid("the ops describe more blocks than the image has"));
            }
        }
        if at != blocks {
            return Err(invalid("the ops describe fewer blocks than the image has"));
        }
        if new_bytes != self.data_size {
            return Err(invalid(
                "the ops' new blocks do not add up to the data entry",
            ));
        }
        Ok(ops)
    }
}

/// XXH3-128 of the first `size` bytes of `input` (None if it is shorter): a delta's
/// `base_xxh3`.
pub fn fingerprint(input: impl Read, size: u64) -> io::Result<Option<u128>> {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    let mut input = input.take(size);
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((total == size).then(|| hasher.digest128()))
}

/// Bytes of blocks `start..end` of an image of `size` bytes (the last block may be short).
fn block_bytes(size: u64, start: u64, end: u64) -> u64 {
    (end * u64::from(BLOCK_SIZE)).min(size) - (start * u64::from(BLOCK_SIZE)).min(size)
}

fn invalid(why: &str) -> BundleError {
    BundleError::InvalidManifest(format!("delta: {why}"))
}

/// LEB128 varints: per op, `count << 1 | copy`, then for a copy the base block it starts at.
pub fn encode(ops: &[Op]) -> Vec<u8> {
    let mut out = Vec::new();
    for op in ops {
        match *op {
            Op::Copy { from, count } => {
                varint(&mut out, count << 1 | 1);
                varint(&mut out, from);
            }
            Op::New { count } => varint(&mut out, count << 1),
        }
    }
    out
}

pub fn decode(mut bytes: &[u8]) -> Result<Vec<Op>, BundleError> {
    let mut ops = Vec::new();
    while !bytes.is_empty() {
        let head = read_varint(&mut bytes)?;
        ops.push(match head & 1 {
            1 => Op::Copy {
                from: read_varint(&mut bytes)?,
                count: head >> 1,
            },
            _ => Op::New { count: head >> 1 },
        });
    }
    Ok(ops)
}

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn read_varint(bytes: &mut &[u8]) -> Result<u64, BundleError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes
            .split_first()
            .ok_or_else(|| invalid("the ops end inside a number"))?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f)
            .checked_shl(shift)
            .filter(|v| v >> shift == u64::from(byte & 0x7f))
            .ok_or_else(|| invalid("a number in the ops is too large"))?;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(invalid("a number in the ops is too long"))
}

/// Describes `new` (read once, front to back) by the blocks of `base` (held in memory as an
/// index of block contents, about 40 bytes per block): returns the ops and writes the blocks
/// the base lacks to `data`, in order.
pub fn diff(
    base: impl Read,
    new: impl Read,
    data: &mut impl Write,
) -> Result<Vec<Op>, BundleError> {
    let mut index: HashMap<ChunkDigest, u64> = HashMap::new();
    let mut block = vec![0u8; BLOCK_SIZE as usize];
    let mut base = io::BufReader::with_capacity(1 << 20, base);
    let mut at = 0u64;
    loop {
        let n =
            read_block(&mut base, &mut block).map_err(BundleError::io("reading the base image"))?;
        if n == 0 {
            break;
        }
        index.entry(crate::hash_chunk(&block[..n])).or_insert(at);
        at += 1;
    }
    let mut ops: Vec<Op> = Vec::new();
    let mut new = io::BufReader::with_capacity(1 << 20, new);
    loop {
        let n =
            read_block(&mut new, &mut block).map_err(BundleError::io("reading the new image"))?;
        if n == 0 {
            break;
        }
        let op = match index.get(&crate::hash_chunk(&block[..n])) {
            Some(&from) => Op::Copy { from, count: 1 },
            None => {
                data.write_all(&block[..n])
                    .map_err(BundleError::io("writing the delta's data"))?;
                Op::New { count: 1 }
            }
        };
        match (ops.last_mut(), op) {
            (Some(Op::Copy { from, count }), Op::Copy { from: next, .. })
                if *from + *count == next =>
            {
                *count += 1
            }
            (Some(Op::New { count }), Op::New { .. }) => *count += 1,
            _ => ops.push(op),
        }
    }
    Ok(ops)
}

/// Fills `block` as far as the input goes; returns how many bytes (short only at the end).
fn read_block(input: &mut impl Read, block: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < block.len() {
        match input.read(&mut block[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

mod fingerprint_text {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{value:032x}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        let text = String::deserialize(d)?;
        match text.len() {
            32 => u128::from_str_radix(&text, 16).ok(),
            _ => None,
        }
        .ok_or_else(|| D::Error::custom("base_xxh3 is not 32 hex digits"))
    }
}

mod ops_text {
    use base64::Engine;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    const ENGINE: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

    pub fn serialize<S: Serializer>(ops: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&ENGINE.encode(ops))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        ENGINE
            .decode(text.as_bytes())
            .map_err(|_| D::Error::custom("ops is not base64"))
    }
}

// --- Delta bundles: made from two full bundles ---

/// A delta is streamed whole, never fetched in parts, so its chunks need not be as small as format
/// 2's: the device writes, checks and reads back the image it rebuilds in 256 KiB pieces rather
/// than in the new bundle's 64 KiB ones, a quarter of the work per byte at the same memory (the
/// chunk hashes are the new image's, computed here from the new bundle's checked content, and
/// signed with the delta).
pub const DELTA_CHUNK_SIZE: u32 = 256 << 10;

/// What `create` makes a delta bundle of, and how.
pub struct DeltaRequest<'a> {
    pub from: &'a Path,
    pub to: &'a Path,
    pub keyring: Option<&'a Path>,
    pub keys: &'a [&'a SigningKey],
    pub output: &'a Path,
    pub level: i32,
    pub threads: Option<usize>,
}

/// A folder next to the output for the unpacked images, removed however the command ends.
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Writes a delta bundle from `from` to `to` (full bundles, read whole and checked chunk by
/// chunk; signatures too when a keyring is given). Returns both bundles' manifests: the base's,
/// and the delta's.
pub fn create(args: &DeltaRequest) -> Result<(Manifest, Manifest, u64), BundleError> {
    let name = args
        .output
        .file_name()
        .map_or("delta".into(), |n| n.to_string_lossy().into_owned());
    let work = WorkDir(
        args.output
            .with_file_name(format!(".{name}.{}.work", std::process::id())),
    );
    fs::create_dir_all(&work.0)
        .map_err(BundleError::io(format!("creating {}", work.0.display())))?;
    let keyring = args.keyring.map(Keyring::load).transpose()?;
    let (old, old_files) = unpack(args.from, keyring.as_ref(), &work.0.join("old"))?;
    let new_dir = work.0.join("new");
    let (new, new_files) = unpack(args.to, keyring.as_ref(), &new_dir)?;
    if old.is_delta() || new.is_delta() {
        return Err(bad(
            "a delta is made from two full bundles, not from a delta",
        ));
    }
    if old.compatible != new.compatible {
        return Err(bad(&format!(
            "the bundles are for different devices ('{}' and '{}')",
            old.compatible, new.compatible
        )));
    }
    let mut images = Vec::new();
    let mut firmware = Vec::new();
    let mut deltas = Vec::new();
    for (component, path) in new.components.iter().zip(&new_files) {
        let Some(class) = &component.slot_class else {
            firmware.push(FirmwareInput {
                path: path.clone(),
                name: component.name.clone(),
                version: component.firmware_version.clone().unwrap_or_default(),
                target: component
                    .target
                    .clone()
                    .ok_or_else(|| bad("firmware without a target"))?,
            });
            continue;
        };
        let archive = component.kind == ComponentKind::Archive;
        // An archive is carried whole: it makes a file system, not blocks a base would hold.
        let base = old.components.iter().zip(&old_files).find(|(c, _)| {
            !archive && c.kind == ComponentKind::Image && c.slot_class.as_ref() == Some(class)
        });
        let mut input = ImageInput {
            slot_class: class.clone(),
            path: path.clone(),
            archive,
        };
        if let Some((base, base_path)) = base {
            let data_path = work.0.join(format!("{class}.delta"));
            let io = |what: &str| BundleError::io(format!("{what} {}", data_path.display()));
            let mut data = BufWriter::new(File::create(&data_path).map_err(io("creating"))?);
            let ops = diff(open(base_path)?, open(path)?, &mut data)?;
            data.flush().map_err(io("writing"))?;
            let base_xxh3 = fingerprint(open(base_path)?, base.size)
                .map_err(io("reading"))?
                .ok_or_else(|| bad("the base image changed while it was read"))?;
            deltas.push(DeltaImage {
                slot_class: class.clone(),
                base_sha256: base.sha256,
                base_size: base.size,
                base_xxh3,
                ops: encode(&ops),
                size: component.size,
                sha256: component.sha256,
                chunks: chunk_digests(path, component.size, DELTA_CHUNK_SIZE)?,
            });
            input.path = data_path;
        }
        images.push(input);
    }
    if deltas.is_empty() {
        return Err(bad(
            "the base bundle has no image of a slot class the new one has: nothing to make a \
             delta of",
        ));
    }
    let input = BundleInput {
        compatible: new.compatible.clone(),
        version: new.version.clone(),
        security_version: new.security_version,
        images,
        firmware,
        // The new version's hooks run for its delta as for its full bundle.
        hooks: new.hooks.as_ref().map(|h| HooksInput {
            path: new_dir.join(HOOKS_ENTRY),
            events: h.events.clone(),
        }),
    };
    let mut options = CreateOptions {
        format: FORMAT_WITH_BLOCKS,
        chunk_size: DELTA_CHUNK_SIZE,
        frame_size: DELTA_CHUNK_SIZE,
        level: args.level,
        ..CreateOptions::default()
    };
    if let Some(threads) = args.threads {
        options.threads = threads;
    }
    let report = create_delta_bundle(&input, &deltas, args.keys, args.output, &options)?;
    Ok((old, report.manifest, report.bundle_size))
}

/// The SHA-256 of every `chunk_size` piece of the `size`-byte image at `path`.
fn chunk_digests(path: &Path, size: u64, chunk_size: u32) -> Result<Vec<ChunkDigest>, BundleError> {
    let mut file = open(path)?;
    let mut buf = vec![0u8; chunk_size as usize];
    let mut digests = Vec::with_capacity(size.div_ceil(u64::from(chunk_size)) as usize);
    let mut left = size;
    while left > 0 {
        let piece = &mut buf[..left.min(u64::from(chunk_size)) as usize];
        file.read_exact(piece)
            .map_err(BundleError::io(format!("reading {}", path.display())))?;
        digests.push(crate::hash_chunk(piece));
        left -= piece.len() as u64;
    }
    Ok(digests)
}

/// Every component of a bundle into its own file under `dir`, each chunk checked on the way
/// (and the signature, when a keyring is given).
fn unpack(
    path: &Path,
    keyring: Option<&Keyring>,
    dir: &Path,
) -> Result<(Manifest, Vec<PathBuf>), BundleError> {
    let source = io::BufReader::with_capacity(256 << 10, open(path)?);
    let reader = match keyring {
        Some(keyring) => BundleReader::open(source, keyring),
        None => BundleReader::open_unverified(source),
    }?;
    let manifest = reader.manifest().clone();
    let io = |what: &str| BundleError::io(format!("{what} {}", dir.display()));
    fs::create_dir_all(dir).map_err(io("creating"))?;
    if let Some(hooks) = reader.hooks() {
        fs::write(dir.join(HOOKS_ENTRY), hooks).map_err(io("writing in"))?;
    }
    let paths: Vec<PathBuf> = manifest
        .components
        .iter()
        .map(|c| dir.join(&c.entry))
        .collect();
    let mut files = paths
        .iter()
        .map(|p| File::create(p).map(BufWriter::new))
        .collect::<Result<Vec<_>, _>>()
        .map_err(io("writing in"))?;
    reader
        .read_all(|component, data| files[component].write_all(data).map_err(io("writing in")))?;
    for file in &mut files {
        file.flush().map_err(io("writing in"))?;
    }
    Ok((manifest, paths))
}

fn open(path: &Path) -> Result<File, BundleError> {
    File::open(path).map_err(BundleError::io(format!("opening {}", path.display())))
}

fn bad(why: &str) -> BundleError {
    BundleError::BadInput(why.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(seeds: &[u8]) -> Vec<u8> {
        seeds
            .iter()
            .flat_map(|&s| vec![s; BLOCK_SIZE as usize])
            .collect()
    }

    #[test]
    fn ops_round_trip_through_their_encoding() {
        let ops = vec![
            Op::Copy { from: 0, count: 3 },
            Op::New { count: 1 },
            Op::Copy {
                from: 1 << 40,
                count: 300,
            },
        ];
        assert_eq!(decode(&encode(&ops)).unwrap(), ops);
    }

    #[test]
    fn malformed_ops_are_refused() {
        assert!(decode(&[0x81])
            .unwrap_err()
            .to_string()
            .contains("inside a number"));
        assert!(decode(&[0xff; 11]).unwrap_err().to_string().contains("too"));
    }

    #[test]
    fn diff_copies_what_the_base_has_anywhere_and_carries_the_rest() {
        let base = blocks(&[1, 2, 3, 4]);
        let mut new = blocks(&[3, 4, 9, 1]);
        new.extend_from_slice(&[7; 100]);
        let mut data = Vec::new();
        let ops = diff(&base[..], &new[..], &mut data).unwrap();
        assert_eq!(
            ops,
            vec![
                Op::Copy { from: 2, count: 2 },
                Op::New { count: 1 },
                Op::Copy { from: 0, count: 1 },
                Op::New { count: 1 },
            ]
        );
        assert_eq!(data.len(), 4096 + 100);
        let delta = Delta {
            base_sha256: [0; 32],
            base_size: base.len() as u64,
            base_xxh3: 0,
            ops: encode(&ops),
            data_size: data.len() as u64,
            data_sha256: [0; 32],
            data_chunks: vec![],
        };
        delta.decoded_ops(new.len() as u64).unwrap();
        let err = |ops: &[Op], size: u64| {
            Delta {
                ops: encode(ops),
                ..delta.clone()
            }
            .decoded_ops(size)
            .unwrap_err()
            .to_string()
        };
        assert!(err(&ops, new.len() as u64 + 5000).contains("fewer blocks"));
        assert!(err(&ops, 4096 * 4).contains("more blocks"));
        assert!(err(&[Op::Copy { from: 3, count: 2 }], 8192).contains("past the end of the base"));
        assert!(err(&[Op::New { count: 0 }], 0).contains("no blocks"));
        assert!(err(&[Op::New { count: 2 }], 8192).contains("do not add up"));
    }
}

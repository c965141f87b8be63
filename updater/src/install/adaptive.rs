//! Installing from a server that answers Range requests, downloading only what the device lacks.
//!
//! A format-2 bundle carries a key for every 4 KiB block of every image. Before anything changes,
//! the device reads the booted group's slots and the target slots, keys their blocks, and plans
//! each chunk: already in place in the target slot (its SHA-256 matches: an interrupted install
//! of the same bundle, or unchanged content), assembled from blocks the device holds, or fetched
//! (its own zstd frame, by Range, many per request). However a chunk is made, it is checked
//! against the signed chunk SHA-256 before it is written; an assembled chunk that does not match
//! (a block changed since it was read) is fetched instead.
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;

use bundle::{
    block_key, decode_chunk_frame, max_frame_len, BundleError, BundleReader, Manifest, SeekTable,
    UnverifiedChunk, BLOCK_SIZE,
};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use super::pipeline::Incoming;
use super::readback;
use crate::error::{Result, UpdaterError};
use crate::net::ranges::RangedFile;
use crate::progress::Progress;

/// What the first Range request asks for, the end of the file: the seek table of a bundle of up to about 1 GiB of
/// 64 KiB chunks; a longer table takes one more request.
pub const TAIL: u64 = 128 << 10;
/// Frames closer than this are fetched as one range: the bytes between cost less than a part.
const JOIN_GAP: u64 = 4 << 10;
/// The device is read in pieces of this size (a multiple of every chunk size up to it).
const SCAN_PIECE: usize = 1 << 20;
/// Fetched chunks waiting for the writer.
const FETCHED_IN_FLIGHT: usize = 8;
const NOWHERE: u64 = u64::MAX;

/// A bundle on a Range-capable server, with the place of every chunk's frame.
pub struct Remote {
    file: Arc<RangedFile>,
    /// Bytes received for the head (manifest and signature) before the file was fetched in parts.
    head: u64,
    /// Per component, per chunk: where its frame is in the bundle file.
    frames: Vec<Vec<Frame>>,
}

#[derive(Debug, Clone, Copy)]
struct Frame {
    offset: u64,
    len: u64,
}

impl Remote {
    /// Reads the seek table (with the file's last bytes, or one more request if it is longer) and
    /// finds the frame of every chunk. `None` when the server does not answer the Range request
    /// after all. A bundle whose chunks are not frames of their own is refused.
    pub fn locate<R>(
        file: RangedFile,
        head: u64,
        reader: &BundleReader<R>,
    ) -> Result<Option<Remote>> {
        let Some(tail) = file.tail(TAIL)? else {
            return Ok(None);
        };
        let table_len = SeekTable::len_from_tail(&tail)?;
        if table_len > file.length() {
            return Err(corrupt("its seek table is longer than the file"));
        }
        let tail = if table_len > tail.len() as u64 {
            file.range(file.length() - table_len, file.length())?
        } else {
            tail
        };
        let table = SeekTable::from_bundle_tail(&tail)?;
        let compressed: u64 = table.entries.iter().map(|e| u64::from(e.compressed)).sum();
        if compressed + table_len != file.length() {
            return Err(corrupt("its seek table does not describe the file"));
        }
        let manifest = reader.manifest();
        let mut frames = table.offsets().scan(0u64, |archive_at, (offset, entry)| {
            let at = *archive_at;
            *archive_at += u64::from(entry.decompressed);
            Some((at, offset, entry))
        });
        let mut located = Vec::new();
        for (c, data_start) in manifest.components.iter().zip(reader.data_offsets()) {
            let mut chunks = Vec::with_capacity(c.chunks.len());
            for k in 0..c.chunks.len() as u64 {
                let wanted = data_start + k * u64::from(manifest.chunk_size);
                let len = c.chunk_len(manifest.chunk_size, k) as u64;
                let frame = frames
                    .find(|(at, _, _)| *at >= wanted)
                    // The table is the server's word: the frame must hold exactly the chunk and
                    // be no larger than zstd makes one (it is fetched into memory).
                    .filter(|(at, _, e)| {
                        *at == wanted
                            && u64::from(e.decompressed) == len
                            && e.compressed as usize <= max_frame_len(len as usize)
                    });
                let Some((_, offset, entry)) = frame else {
                    return Err(corrupt(&format!(
                        "chunk {k} of '{}' is not a frame of its own, so it cannot be fetched alone",
                        c.name
                    )));
                };
                chunks.push(Frame {
                    offset,
                    len: u64::from(entry.compressed),
                });
            }
            located.push(chunks);
        }
        Ok(Some(Remote {
            file: Arc::new(file),
            head,
            frames: located,
        }))
    }

    pub fn downloaded(&self) -> u64 {
        self.head + self.file.downloaded()
    }
}

fn corrupt(why: &str) -> UpdaterError {
    UpdaterError::Bundle(BundleError::Corrupt(why.to_string()))
}

/// Storage the device holds: a slot of the booted group, or a slot of the target group (which is
/// about to be written: see `Plan::usable`).
pub struct Local {
    pub name: String,
    pub file: File,
    /// For a target slot: the component that will be written into it.
    pub target_of: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    /// The target slot holds the chunk already; nothing to write.
    InPlace,
    /// Every block is somewhere on the device.
    Assemble,
    Fetch,
}

/// How each chunk will be made, decided before anything changes.
pub struct Plan {
    ways: Vec<Vec<Way>>,
    /// The blocks the bundle needs (sorted, unique) and where the device holds each: a packed
    /// `source << 56 | offset`, or `NOWHERE`.
    keys: Vec<u64>,
    places: Vec<u64>,
    sources: Vec<Local>,
    pub reused: u64,
    pub to_fetch: u64,
}

impl Plan {
    /// Reads every source once (one thread each) and plans every chunk.
    pub fn make(manifest: &Manifest, remote: &Remote, sources: Vec<Local>) -> Result<Plan> {
        let mut keys: Vec<u64> = manifest
            .components
            .iter()
            .filter(|c| c.slot_class.is_some())
            .flat_map(|c| c.blocks.iter().flatten().copied())
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let scans = std::thread::scope(|scope| {
            let workers: Vec<_> = sources
                .iter()
                .enumerate()
                .map(|(i, source)| {
                    let keys = &keys;
                    scope.spawn(move || scan(i, source, keys, manifest))
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().expect("scan thread panicked"))
                .collect::<Result<Vec<_>>>()
        })?;
        // The booted group's blocks are preferred: they do not change during the install.
        let mut places = vec![NOWHERE; keys.len()];
        let mut in_place: Vec<Vec<bool>> = manifest
            .components
            .iter()
            .map(|c| vec![false; c.chunks.len()])
            .collect();
        let mut order: Vec<usize> = (0..sources.len()).collect();
        order.sort_by_key(|&i| sources[i].target_of.is_some());
        for i in order {
            let scanned = &scans[i];
            for (place, found) in places.iter_mut().zip(&scanned.places) {
                if *place == NOWHERE {
                    *place = *found;
                }
            }
            if let Some(c) = sources[i].target_of {
                in_place[c] = scanned.in_place.clone();
            }
        }
        let mut plan = Plan {
            ways: Vec::new(),
            keys,
            places,
            sources,
            reused: 0,
            to_fetch: 0,
        };
        for (c, component) in manifest.components.iter().enumerate() {
            let mut ways = Vec::with_capacity(component.chunks.len());
            for k in 0..component.chunks.len() as u64 {
                let way = if in_place[c][k as usize] {
                    Way::InPlace
                } else if plan.blocks_of(manifest, c, k).all(|(place, _)| {
                    place != NOWHERE && plan.usable(manifest, &in_place, place, c, k)
                }) {
                    Way::Assemble
                } else {
                    Way::Fetch
                };
                match way {
                    Way::Fetch => plan.to_fetch += remote.frames[c][k as usize].len,
                    _ => plan.reused += component.chunk_len(manifest.chunk_size, k) as u64,
                }
                ways.push(way);
            }
            plan.ways.push(ways);
        }
        Ok(plan)
    }

    /// Where the device holds each block of chunk `k` of component `c` (or `NOWHERE`), with the
    /// block's length.
    fn blocks_of<'a>(
        &'a self,
        manifest: &'a Manifest,
        c: usize,
        k: u64,
    ) -> impl Iterator<Item = (u64, usize)> + 'a {
        let component = &manifest.components[c];
        let per_chunk = (manifest.chunk_size / BLOCK_SIZE) as usize;
        let first = k as usize * per_chunk;
        let len = component.chunk_len(manifest.chunk_size, k);
        let keys = component.blocks.as_deref().unwrap_or_default();
        let count = if keys.is_empty() {
            0
        } else {
            len.div_ceil(BLOCK_SIZE as usize)
        };
        let lens =
            (0..count).map(move |b| (len - b * BLOCK_SIZE as usize).min(BLOCK_SIZE as usize));
        let places = keys[first.min(keys.len())..].iter().take(count).map(|key| {
            match self.keys.binary_search(key) {
                Ok(i) => self.places[i],
                Err(_) => NOWHERE,
            }
        });
        // A component without a block index has no block to find: one NOWHERE stands for all.
        let none = (count == 0).then_some((NOWHERE, 0));
        places.zip(lens).chain(none)
    }

    /// Whether a block of a target slot is still what was read when chunk `k` of component `c` is
    /// made: chunks are written in order, so a block in a chunk written before (and not left in
    /// place) has been overwritten.
    fn usable(
        &self,
        manifest: &Manifest,
        in_place: &[Vec<bool>],
        place: u64,
        c: usize,
        k: u64,
    ) -> bool {
        let (source, offset) = unpack(place);
        let Some(owner) = self.sources[source].target_of else {
            return true;
        };
        let chunk = offset / u64::from(manifest.chunk_size);
        let written_before = match owner.cmp(&c) {
            std::cmp::Ordering::Less => true,
            std::cmp::Ordering::Equal => chunk < k,
            std::cmp::Ordering::Greater => false,
        };
        !written_before
            || offset >= manifest.components[owner].size
            || in_place[owner][chunk as usize]
    }
}

fn pack(source: usize, offset: u64) -> u64 {
    (source as u64) << 56 | offset
}

fn unpack(place: u64) -> (usize, u64) {
    ((place >> 56) as usize, place & ((1 << 56) - 1))
}

struct Scanned {
    places: Vec<u64>,
    /// For a target slot: which chunks of its component it holds already.
    in_place: Vec<bool>,
}

/// Keys every block of `source` and notes where each needed key is first found; in a target
/// slot, also which chunks are in place. The target slot's cached pages are dropped first, so
/// that what counts as in place was read from the storage itself.
fn scan(index: usize, source: &Local, keys: &[u64], manifest: &Manifest) -> Result<Scanned> {
    let io_err = || UpdaterError::io(format!("reading {} for reusable blocks", source.name));
    let len = (&source.file).seek_end().map_err(io_err())?;
    let target = source.target_of.map(|c| &manifest.components[c]);
    if target.is_some() {
        readback::drop_cached(&source.file, 0, 0).map_err(io_err())?;
    }
    let chunk_size = manifest.chunk_size as usize;
    let piece = SCAN_PIECE.max(chunk_size);
    let mut buf = vec![0u8; piece];
    let mut places = vec![NOWHERE; keys.len()];
    let mut in_place = vec![false; target.map_or(0, |c| c.chunks.len())];
    let mut at = 0u64;
    while at < len {
        let n = piece.min((len - at) as usize);
        source
            .file
            .read_exact_at(&mut buf[..n], at)
            .map_err(io_err())?;
        let mut piece_keys = Vec::with_capacity(n / BLOCK_SIZE as usize + 1);
        for (b, block) in buf[..n].chunks(BLOCK_SIZE as usize).enumerate() {
            let key = block_key(block);
            piece_keys.push(key);
            if let Ok(i) = keys.binary_search(&key) {
                if places[i] == NOWHERE {
                    places[i] = pack(index, at + (b * BLOCK_SIZE as usize) as u64);
                }
            }
        }
        if let Some(component) = target {
            let expected = component.blocks.as_deref().unwrap_or_default();
            for (j, data) in buf[..n].chunks(chunk_size).enumerate() {
                let k = at / chunk_size as u64 + j as u64;
                if k >= component.chunks.len() as u64 {
                    break;
                }
                let want = component.chunk_len(manifest.chunk_size, k);
                if data.len() < want {
                    break;
                }
                // The block keys are a cheap first test; the SHA-256 decides.
                let per_chunk = chunk_size / BLOCK_SIZE as usize;
                let first = k as usize * per_chunk;
                let full = want / BLOCK_SIZE as usize;
                let candidate = expected.is_empty()
                    || piece_keys[j * per_chunk..j * per_chunk + full]
                        == expected[first..first + full];
                if candidate
                    && Sha256::digest(&data[..want]).as_slice() == component.chunks[k as usize]
                {
                    in_place[k as usize] = true;
                }
            }
        }
        at += n as u64;
    }
    Ok(Scanned { places, in_place })
}

trait SeekEnd {
    fn seek_end(self) -> io::Result<u64>;
}

impl SeekEnd for &File {
    /// The length of a file or a block device alike.
    fn seek_end(mut self) -> io::Result<u64> {
        io::Seek::seek(&mut self, io::SeekFrom::End(0))
    }
}

/// Makes the chunks in order, as the install's pipeline asks for them.
pub struct Producer<'a> {
    manifest: &'a Manifest,
    remote: &'a Remote,
    plan: &'a Plan,
    progress: &'a Progress,
    next: (usize, u64),
    fetched: Option<Receiver<Result<Fetched>>>,
    /// Assembled chunks that did not verify: fetched after the rest.
    refetch: Vec<(usize, u64)>,
    refetching: Option<std::vec::IntoIter<(usize, u64)>>,
    pub reused: u64,
}

struct Fetched {
    component: usize,
    chunk: u64,
    data: Vec<u8>,
}

impl<'a> Producer<'a> {
    pub fn new(
        manifest: &'a Manifest,
        remote: &'a Remote,
        plan: &'a Plan,
        progress: &'a Progress,
    ) -> Result<Self> {
        let wanted = plan
            .ways
            .iter()
            .enumerate()
            .flat_map(|(c, ways)| {
                ways.iter()
                    .enumerate()
                    .filter(|(_, w)| **w == Way::Fetch)
                    .map(move |(k, _)| (c, k as u64))
            })
            .collect();
        Ok(Producer {
            manifest,
            remote,
            plan,
            progress,
            next: (0, 0),
            fetched: Some(start_fetching(manifest, remote, wanted)?),
            refetch: Vec::new(),
            refetching: None,
            reused: 0,
        })
    }

    /// Bytes received from the server: the head, the seek table and every fetched frame.
    pub fn downloaded(&self) -> u64 {
        self.remote.downloaded()
    }

    /// The next chunk to write, or `None` when every chunk is written or in place.
    pub fn next(&mut self, mut buffer: Vec<u8>) -> Result<Option<Incoming>> {
        loop {
            if let Some(refetching) = &mut self.refetching {
                return match refetching.next() {
                    Some(expected) => self.take_fetched(expected).map(Some),
                    None => Ok(None),
                };
            }
            let (c, k) = self.next;
            let Some(ways) = self.plan.ways.get(c) else {
                self.start_refetch()?;
                continue;
            };
            let Some(&way) = ways.get(k as usize) else {
                self.next = (c + 1, 0);
                continue;
            };
            self.next = (c, k + 1);
            let len = self.manifest.components[c].chunk_len(self.manifest.chunk_size, k);
            match way {
                Way::InPlace => {
                    self.reused += len as u64;
                    self.progress.advance(len as u64);
                }
                Way::Fetch => return self.take_fetched((c, k)).map(Some),
                Way::Assemble => {
                    buffer.resize(len, 0);
                    self.assemble(c, k, &mut buffer)?;
                    match UnverifiedChunk::of(self.manifest, c, k, buffer).verify() {
                        Ok(chunk) => {
                            self.reused += len as u64;
                            return Ok(Some(Incoming::Verified(chunk)));
                        }
                        Err((_, back)) => {
                            self.refetch.push((c, k));
                            buffer = back;
                        }
                    }
                }
            }
        }
    }

    /// Reads chunk `k` of component `c` from the places the plan found its blocks, one read per
    /// run of blocks that lie one after another in one source.
    fn assemble(&self, c: usize, k: u64, buffer: &mut [u8]) -> Result<()> {
        let mut runs: Vec<(u64, usize, usize)> = Vec::new(); // place, start in buffer, length
        let mut at = 0;
        for (place, len) in self.plan.blocks_of(self.manifest, c, k) {
            match runs.last_mut() {
                Some((start, _, run))
                    if place == *start + *run as u64 && unpack(place).0 == unpack(*start).0 =>
                {
                    *run += len
                }
                _ => runs.push((place, at, len)),
            }
            at += len;
        }
        for (start, from, len) in runs {
            let (source, offset) = unpack(start);
            let local = &self.plan.sources[source];
            local
                .file
                .read_exact_at(&mut buffer[from..from + len], offset)
                .map_err(UpdaterError::io(format!("reading {}", local.name)))?;
        }
        Ok(())
    }

    fn take_fetched(&mut self, (c, k): (usize, u64)) -> Result<Incoming> {
        let received = self.fetched.as_ref().and_then(|r| r.recv().ok());
        let fetched = match received {
            Some(result) => result?,
            None => return Err(UpdaterError::Network("the download stopped".into())),
        };
        if (fetched.component, fetched.chunk) != (c, k) {
            return Err(UpdaterError::Network(format!(
                "fetched chunk {} of component {} where chunk {k} of component {c} was due",
                fetched.chunk, fetched.component
            )));
        }
        Ok(Incoming::Unverified(UnverifiedChunk::of(
            self.manifest,
            c,
            k,
            fetched.data,
        )))
    }

    fn start_refetch(&mut self) -> Result<()> {
        let again = std::mem::take(&mut self.refetch);
        if !again.is_empty() {
            warn!(
                chunks = again.len(),
                "blocks on this device changed since they were read; fetching those chunks"
            );
            self.fetched = Some(start_fetching(self.manifest, self.remote, again.clone())?);
        }
        self.refetching = Some(again.into_iter());
        Ok(())
    }
}

/// Fetches the frames of `wanted` (in file order) on a thread of its own, decompressed, in order.
fn start_fetching(
    manifest: &Manifest,
    remote: &Remote,
    wanted: Vec<(usize, u64)>,
) -> Result<Receiver<Result<Fetched>>> {
    let jobs: Vec<(usize, u64, Frame, usize)> = wanted
        .into_iter()
        .map(|(c, k)| {
            let len = manifest.components[c].chunk_len(manifest.chunk_size, k);
            (c, k, remote.frames[c][k as usize], len)
        })
        .collect();
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for (_, _, frame, _) in &jobs {
        match ranges.last_mut() {
            Some((_, end)) if frame.offset.saturating_sub(*end) <= JOIN_GAP => {
                *end = frame.offset + frame.len
            }
            _ => ranges.push((frame.offset, frame.offset + frame.len)),
        }
    }
    let names: Vec<String> = manifest.components.iter().map(|c| c.name.clone()).collect();
    let file = Arc::clone(&remote.file);
    let (tx, rx) = mpsc::sync_channel(FETCHED_IN_FLIGHT);
    std::thread::Builder::new()
        .name("fetch".into())
        .spawn(move || {
            let mut next = 0;
            let result = file.fetch(&ranges, |start, part, len| {
                let mut at = start;
                while let Some(&(c, k, frame, chunk_len)) = jobs.get(next) {
                    if frame.offset + frame.len > start + len {
                        break;
                    }
                    io::copy(&mut (&mut *part).take(frame.offset - at), &mut io::sink())
                        .map_err(network)?;
                    let mut compressed = vec![0u8; frame.len as usize];
                    part.read_exact(&mut compressed).map_err(network)?;
                    at = frame.offset + frame.len;
                    let data = decode_chunk_frame(&compressed, chunk_len).map_err(|_| {
                        corrupt(&format!(
                            "chunk {k} of '{}': its frame does not hold {chunk_len} bytes",
                            names[c]
                        ))
                    })?;
                    next += 1;
                    let fetched = Fetched {
                        component: c,
                        chunk: k,
                        data,
                    };
                    if tx.send(Ok(fetched)).is_err() {
                        return Err(UpdaterError::Network("the install stopped".into()));
                    }
                }
                Ok(())
            });
            if let Err(err) = result {
                let _ = tx.send(Err(err));
            }
        })
        .map_err(UpdaterError::io("starting the fetch thread"))?;
    Ok(rx)
}

fn network(err: io::Error) -> UpdaterError {
    UpdaterError::Network(err.to_string())
}

/// Logs the plan in one line.
pub fn log_plan(manifest: &Manifest, plan: &Plan, head: u64) {
    let total: u64 = manifest.components.iter().map(|c| c.size).sum();
    info!(
        reused_bytes = plan.reused,
        fetch_bytes = plan.to_fetch,
        head_bytes = head,
        image_bytes = total,
        "adaptive install: the device holds {:.1} % of the content",
        plan.reused as f64 * 100.0 / total.max(1) as f64
    );
}

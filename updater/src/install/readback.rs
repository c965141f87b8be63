//! Every written chunk is read back from the device and compared with the signed manifest before
//! the group can boot. Catches storage that acknowledges writes it did not keep (RAUC and Mender
//! do not read back; see docs/threat-model.md).
//!
//! The read-back trails the writer so that it costs little time: a chunk written [`LAG`] chunks
//! ago is flushed to the device, dropped from the page cache and read back while later chunks are
//! still being decompressed, hashed and written. What is left (the last chunks, and all of a slot
//! whose driver cannot flush a range) is read back after the final fsync.
use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Mutex;

use bundle::{ChunkDigest, VerifiedChunk};
use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};
use sha2::{Digest, Sha256};

use crate::error::{Result, UpdaterError};
use crate::progress::Progress;

/// Chunks between the writer and the read-back: by the time the read-back waits for a chunk to
/// reach the device, the kernel has usually written it already.
pub const LAG: usize = 8;
/// A chunk is read back and hashed in pieces of this size: each read-back thread's buffer.
const PIECE: usize = 256 << 10;

/// A slot being written, with a second handle opened only for reading it back.
pub struct SlotTarget {
    /// "B/rootfs", for messages.
    pub name: String,
    /// The slot, written at each chunk's offset; or, for an archive, the pipe to its extraction,
    /// written in order.
    pub file: File,
    /// None for an archive: its file system is made by the extraction, not read back by chunk.
    pub reader: Option<File>,
}

impl SlotTarget {
    pub fn is_archive(&self) -> bool {
        self.reader.is_none()
    }
}

/// A chunk that was written and is still to be read back.
#[derive(Debug, Clone, Copy)]
pub struct Written {
    pub target: usize,
    pub index: u64,
    pub offset: u64,
    pub len: usize,
    pub digest: ChunkDigest,
}

impl Written {
    pub fn of(target: usize, chunk: &VerifiedChunk) -> Written {
        Written {
            target,
            index: chunk.index(),
            offset: chunk.offset(),
            len: chunk.data().len(),
            digest: chunk.digest(),
        }
    }
}

/// Holds the last [`LAG`] written chunks back from the read-back.
#[derive(Default)]
pub struct Trailing(VecDeque<Written>);

impl Trailing {
    /// Notes a chunk just written; returns the one now far enough behind to be read back.
    pub fn push(&mut self, written: Written) -> Option<Written> {
        self.0.push_back(written);
        (self.0.len() > LAG).then(|| self.0.pop_front()).flatten()
    }

    pub fn into_rest(self) -> Vec<Written> {
        self.0.into()
    }
}

/// Asks the kernel to start writing a range to the device now rather than at its leisure, so the
/// final fsync has little left to do. Only a hint: a driver that cannot do it loses nothing.
pub fn start_writeback(file: &File, offset: u64, len: usize) {
    let _ = sync_file_range(file, offset, len, libc::SYNC_FILE_RANGE_WRITE);
}

/// Waits until a range is on the device and drops it from the page cache, so reading it reaches
/// the device. Fails for files that cannot flush a range (pipes, some character devices).
fn settle(file: &File, offset: u64, len: usize) -> io::Result<()> {
    sync_file_range(
        file,
        offset,
        len,
        libc::SYNC_FILE_RANGE_WAIT_BEFORE
            | libc::SYNC_FILE_RANGE_WRITE
            | libc::SYNC_FILE_RANGE_WAIT_AFTER,
    )?;
    drop_cached(file, offset as i64, len as i64)
}

pub(super) fn drop_cached(file: &File, offset: i64, len: i64) -> io::Result<()> {
    posix_fadvise(
        file.as_raw_fd(),
        offset,
        len,
        PosixFadviseAdvice::POSIX_FADV_DONTNEED,
    )
    .map_err(io::Error::from)
}

#[allow(unsafe_code)]
fn sync_file_range(file: &File, offset: u64, len: usize, flags: libc::c_uint) -> io::Result<()> {
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    };
    // SAFETY: plain integers and a descriptor that `file` keeps open for the whole call; the
    // kernel reads no memory of ours.
    let rc = unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, flags) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// fsync, then drop the cached pages so the read-back after it reaches the device.
pub fn make_durable(file: &File, name: &str) -> Result<()> {
    file.sync_all()
        .map_err(UpdaterError::io(format!("syncing slot {name}")))?;
    crate::fault::point("fsync slot");
    // Not every file supports the advice (pipes, some character devices); the fsync is what counts.
    let _ = drop_cached(file, 0, 0);
    Ok(())
}

fn check(target: &SlotTarget, chunk: &Written, buf: &mut [u8]) -> Result<()> {
    // An archive's chunks are never queued for reading back.
    let Some(reader) = &target.reader else {
        return Ok(());
    };
    let mut hasher = Sha256::new();
    let end = chunk.offset + chunk.len as u64;
    let mut at = chunk.offset;
    while at < end {
        let len = (end - at).min(buf.len() as u64) as usize;
        let piece = &mut buf[..len];
        reader
            .read_exact_at(piece, at)
            .map_err(UpdaterError::io(format!(
                "reading back slot {}",
                target.name
            )))?;
        hasher.update(&*piece);
        at += piece.len() as u64;
    }
    // What was read back is not needed again: left cached, a whole slot's worth would crowd out
    // the application's pages (and, under systemd's MemoryMax=, the updater's own).
    let _ = drop_cached(reader, chunk.offset as i64, chunk.len as i64);
    if ChunkDigest::from(hasher.finalize()) == chunk.digest {
        Ok(())
    } else {
        Err(UpdaterError::ReadBack {
            slot: target.name.clone(),
            chunk: chunk.index,
        })
    }
}

/// Runs `work` on `threads` threads, each with a read buffer of its own; the first error wins.
fn on_threads(threads: usize, work: impl Fn(&mut [u8]) -> Result<()> + Sync) -> Result<()> {
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|_| scope.spawn(|| work(&mut vec![0u8; PIECE])))
            .collect();
        let results: Vec<Result<()>> = workers
            .into_iter()
            .map(|w| w.join().expect("read-back thread panicked"))
            .collect();
        results.into_iter().collect()
    })
}

/// The read-back that runs beside the writer, on `threads` threads so that one chunk is read from
/// the device while another is hashed. Returns the chunks it could not read back yet: those of
/// slots that cannot flush a range, for after the fsync.
pub fn trail(
    targets: &[SlotTarget],
    written: Receiver<Written>,
    threads: usize,
) -> Result<Vec<Written>> {
    let written = Mutex::new(written);
    let unflushable: Vec<AtomicBool> = targets.iter().map(|_| AtomicBool::new(false)).collect();
    let left = Mutex::new(Vec::new());
    on_threads(threads, |buf| loop {
        let next = written.lock().expect("read-back queue").recv();
        let Ok(chunk) = next else { return Ok(()) };
        let target = &targets[chunk.target];
        let cannot_flush = &unflushable[chunk.target];
        if !cannot_flush.load(Ordering::Relaxed)
            && settle(&target.file, chunk.offset, chunk.len).is_ok()
        {
            check(target, &chunk, buf)?;
        } else {
            cannot_flush.store(true, Ordering::Relaxed);
            left.lock().expect("read-back list").push(chunk);
        }
    })?;
    Ok(left.into_inner().expect("read-back list"))
}

/// After the fsync: reads back what the trailing read-back left, on `threads` threads.
pub fn finish(
    targets: &[SlotTarget],
    left: &[Written],
    threads: usize,
    progress: &Progress,
) -> Result<()> {
    let next = AtomicUsize::new(0);
    on_threads(threads, |buf| loop {
        let Some(chunk) = left.get(next.fetch_add(1, Ordering::Relaxed)) else {
            return Ok(());
        };
        if let Err(e) = check(&targets[chunk.target], chunk, buf) {
            // The others stop at their next chunk.
            next.store(left.len(), Ordering::Relaxed);
            return Err(e);
        }
        progress.advance(chunk.len as u64);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(index: u64) -> Written {
        Written {
            target: 0,
            index,
            offset: index * 4,
            len: 4,
            digest: [0; 32],
        }
    }

    #[test]
    fn the_last_chunks_wait_for_the_fsync() {
        let mut trailing = Trailing::default();
        let released: Vec<u64> = (0..20)
            .filter_map(|i| trailing.push(written(i)))
            .map(|w| w.index)
            .collect();
        assert_eq!(released, (0..20 - LAG as u64).collect::<Vec<_>>());
        let rest: Vec<u64> = trailing.into_rest().iter().map(|w| w.index).collect();
        assert_eq!(rest, (20 - LAG as u64..20).collect::<Vec<_>>());
    }

    #[test]
    fn a_pipe_cannot_flush_a_range_so_its_chunks_wait() {
        let (read_end, write_end) = nix::unistd::pipe().unwrap();
        let target = SlotTarget {
            name: "B/pipe".into(),
            file: File::from(write_end),
            reader: Some(File::from(read_end)),
        };
        let (tx, rx) = std::sync::mpsc::channel();
        tx.send(written(0)).unwrap();
        tx.send(written(1)).unwrap();
        drop(tx);
        let left = trail(&[target], rx, 2).unwrap();
        assert_eq!(left.len(), 2);
    }

    #[test]
    fn a_chunk_that_reads_back_different_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("slot");
        std::fs::write(&path, b"abcdefgh").unwrap();
        let target = SlotTarget {
            name: "B/rootfs".into(),
            file: std::fs::OpenOptions::new().write(true).open(&path).unwrap(),
            reader: Some(File::open(&path).unwrap()),
        };
        let mut chunk = written(1);
        chunk.digest = bundle::hash_chunk(b"efgh");
        let (tx, rx) = std::sync::mpsc::channel();
        tx.send(chunk).unwrap();
        chunk.digest = bundle::hash_chunk(b"EFGH");
        tx.send(chunk).unwrap();
        drop(tx);
        let err = trail(&[target], rx, 2).unwrap_err();
        assert!(
            matches!(err, UpdaterError::ReadBack { chunk: 1, .. }),
            "{err}"
        );
    }

    #[test]
    fn a_chunk_longer_than_the_read_buffer_is_checked_to_its_last_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("slot");
        let good: Vec<u8> = (0..PIECE * 2 + 1000).map(|i| (i % 251) as u8).collect();
        let mut slot = good.clone();
        let last = slot.len() - 1;
        slot[last] ^= 1;
        std::fs::write(&path, &slot).unwrap();
        let target = SlotTarget {
            name: "B/rootfs".into(),
            file: std::fs::OpenOptions::new().write(true).open(&path).unwrap(),
            reader: Some(File::open(&path).unwrap()),
        };
        let chunk = Written {
            target: 0,
            index: 0,
            offset: 0,
            len: good.len(),
            digest: bundle::hash_chunk(&good),
        };
        let mut buf = vec![0u8; PIECE];
        assert!(matches!(
            check(&target, &chunk, &mut buf),
            Err(UpdaterError::ReadBack { chunk: 0, .. })
        ));
        std::fs::write(&path, &good).unwrap();
        check(&target, &chunk, &mut buf).unwrap();
    }
}

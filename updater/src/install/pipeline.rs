//! The streaming stage of an install: read and decompress (this thread), hash (a second thread),
//! write (a third) and read back what was written a few chunks ago (a fourth), overlapping,
//! through a fixed pool of chunk buffers. A chunk reaches the writer only as a `VerifiedChunk`, so
//! no unverified byte can be written.
use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::sync::mpsc;

use bundle::{UnverifiedChunk, VerifiedChunk};

use super::readback::{self, SlotTarget, Trailing, Written};
use crate::error::{Result, UpdaterError};
use crate::progress::Progress;

/// Buffers in flight: one being read, one or two queued for hashing, one or two for writing, one
/// being written.
const BUFFERS: usize = 5;
const QUEUE: usize = 2;

/// A chunk on its way to the writer: as read from a bundle (the verify stage checks it), or checked
/// already by whoever assembled it from the device's own blocks.
pub enum Incoming {
    Unverified(UnverifiedChunk),
    Verified(VerifiedChunk),
}

/// Writes every chunk that `next` produces (given a buffer to fill; `None` after the last) into
/// the target of its component (by component name). Returns the written chunks that are still to
/// be read back, after the fsync.
pub fn stream(
    mut next: impl FnMut(Vec<u8>) -> Result<Option<Incoming>>,
    chunk_size: usize,
    targets: &[SlotTarget],
    route: &HashMap<String, usize>,
    read_back_threads: usize,
    progress: &Progress,
) -> Result<Vec<Written>> {
    std::thread::scope(|scope| {
        let (pool_tx, pool_rx) = mpsc::sync_channel::<Vec<u8>>(BUFFERS);
        for _ in 0..BUFFERS {
            pool_tx
                .send(Vec::with_capacity(chunk_size))
                .expect("pool has room");
        }
        let (verify_tx, verify_rx) = mpsc::sync_channel::<Incoming>(QUEUE);
        let (write_tx, write_rx) = mpsc::sync_channel::<VerifiedChunk>(QUEUE);
        // Bounded: a chunk waiting here is still in the page cache, so a writer far ahead of the
        // read-back would hold a whole slot's worth of memory (and, under systemd's MemoryMax=,
        // push the updater against its limit). The device's write speed sets the pace anyway.
        let (trail_tx, trail_rx) = mpsc::sync_channel::<Written>(readback::LAG);

        let verifier = scope.spawn(move || -> Result<()> {
            for chunk in verify_rx {
                let verified = match chunk {
                    Incoming::Unverified(chunk) => {
                        chunk.verify().map_err(|(e, _)| UpdaterError::from(e))?
                    }
                    Incoming::Verified(chunk) => chunk,
                };
                if write_tx.send(verified).is_err() {
                    break;
                }
            }
            Ok(())
        });
        let trail = scope.spawn(move || readback::trail(targets, trail_rx, read_back_threads));
        let writer = scope.spawn(move || -> Result<Vec<Written>> {
            let mut trailing = Trailing::default();
            for chunk in write_rx {
                let index = route[chunk.component()];
                let target = &targets[index];
                if target.is_archive() {
                    // Chunks come in order; the extraction reads them as one stream.
                    (&target.file)
                        .write_all(chunk.data())
                        .map_err(UpdaterError::io(format!(
                            "extracting into slot {}",
                            target.name
                        )))?;
                    progress.advance(chunk.data().len() as u64);
                    let _ = pool_tx.send(chunk.into_buffer());
                    continue;
                }
                target
                    .file
                    .write_all_at(chunk.data(), chunk.offset())
                    .map_err(UpdaterError::io(format!("writing slot {}", target.name)))?;
                crate::fault::point("write slot chunk");
                crate::fault::lying_storage(&target.file, chunk.offset(), chunk.data());
                readback::start_writeback(&target.file, chunk.offset(), chunk.data().len());
                progress.advance(chunk.data().len() as u64);
                let due = trailing.push(Written::of(index, &chunk));
                // The reader may have stopped already; then the buffer is simply dropped.
                let _ = pool_tx.send(chunk.into_buffer());
                // A stopped read-back found a mismatch; its error is the one to report.
                if due.is_some_and(|due| trail_tx.send(due).is_err()) {
                    break;
                }
            }
            Ok(trailing.into_rest())
        });

        let read_result = (|| -> Result<()> {
            // A closed pool or queue means a later stage stopped; its error is the one to report.
            while let Ok(buffer) = pool_rx.recv() {
                match next(buffer)? {
                    Some(chunk) => {
                        if verify_tx.send(chunk).is_err() {
                            break;
                        }
                    }
                    None => break,
                }
            }
            Ok(())
        })();
        drop(verify_tx);
        let verify_result = verifier.join().expect("verify thread panicked");
        let write_result = writer.join().expect("write thread panicked");
        let trail_result = trail.join().expect("read-back thread panicked");
        verify_result?;
        let mut left = trail_result?;
        left.extend(write_result?);
        read_result?;
        Ok(left)
    })
}

//! The streaming stage of an install: read and decompress (this thread), hash (a second thread),
//! write (a third), overlapping, through a fixed pool of chunk buffers. A chunk reaches the writer
//! only as a `VerifiedChunk`, so no unverified byte can be written.
use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::sync::mpsc;

use bundle::{BundleReader, UnverifiedChunk, VerifiedChunk};

use crate::error::{Result, UpdaterError};
use crate::progress::Progress;

/// Buffers in flight: one being read, two queued for hashing, two for writing, one being written.
const BUFFERS: usize = 6;
const QUEUE: usize = 2;

pub struct SlotTarget {
    /// "B/rootfs", for messages.
    pub name: String,
    pub file: File,
}

/// Streams every chunk of the bundle into the target of its component (by component name).
pub fn stream<R: Read>(
    reader: &mut BundleReader<R>,
    targets: &[SlotTarget],
    route: &HashMap<String, usize>,
    progress: &Progress,
) -> Result<()> {
    let chunk_size = reader.manifest().chunk_size as usize;
    std::thread::scope(|scope| {
        let (pool_tx, pool_rx) = mpsc::sync_channel::<Vec<u8>>(BUFFERS);
        for _ in 0..BUFFERS {
            pool_tx
                .send(Vec::with_capacity(chunk_size))
                .expect("pool has room");
        }
        let (verify_tx, verify_rx) = mpsc::sync_channel::<UnverifiedChunk>(QUEUE);
        let (write_tx, write_rx) = mpsc::sync_channel::<VerifiedChunk>(QUEUE);

        let verifier = scope.spawn(move || -> Result<()> {
            for chunk in verify_rx {
                let verified = chunk.verify().map_err(|(e, _)| UpdaterError::from(e))?;
                if write_tx.send(verified).is_err() {
                    break;
                }
            }
            Ok(())
        });
        let writer = scope.spawn(move || -> Result<()> {
            for chunk in write_rx {
                let target = &targets[route[chunk.component()]];
                target
                    .file
                    .write_all_at(chunk.data(), chunk.offset())
                    .map_err(UpdaterError::io(format!("writing slot {}", target.name)))?;
                crate::fault::point("write slot chunk");
                progress.advance(chunk.data().len() as u64);
                // The reader may have stopped already; then the buffer is simply dropped.
                let _ = pool_tx.send(chunk.into_buffer());
            }
            Ok(())
        });

        let read_result = (|| -> Result<()> {
            // A closed pool or queue means a later stage stopped; its error is the one to report.
            while let Ok(buffer) = pool_rx.recv() {
                match reader.next_chunk(buffer)? {
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
        verify_result.and(write_result).and(read_result)
    })
}

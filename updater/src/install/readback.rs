//! After writing: make it durable, drop it from the page cache, and read it back from the device,
//! comparing every chunk with the signed manifest. Catches storage that acknowledges writes it did
//! not keep (RAUC and Mender do not read back; see docs/threat-model.md).
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use bundle::{hash_chunk, Component};
use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};

use crate::error::{Result, UpdaterError};
use crate::progress::Progress;

/// fsync, then ask the kernel to forget the cached pages so the read-back reaches the device.
pub fn make_durable(file: &File, name: &str) -> Result<()> {
    file.sync_all()
        .map_err(UpdaterError::io(format!("syncing slot {name}")))?;
    crate::fault::point("fsync slot");
    // Not every file supports the advice (pipes, some character devices); the fsync is what counts.
    let _ = posix_fadvise(
        file.as_raw_fd(),
        0,
        0,
        PosixFadviseAdvice::POSIX_FADV_DONTNEED,
    );
    Ok(())
}

/// Reads `component` back from `path` on `threads` threads.
pub fn verify(
    path: &Path,
    name: &str,
    component: &Component,
    chunk_size: u32,
    threads: usize,
    progress: &Progress,
) -> Result<()> {
    let file = File::open(path).map_err(UpdaterError::io(format!("reading back slot {name}")))?;
    let next = AtomicU64::new(0);
    let count = component.chunks.len() as u64;
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    let mut buf = vec![0u8; chunk_size as usize];
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        if index >= count {
                            return Ok(());
                        }
                        let len = component.chunk_len(chunk_size, index);
                        file.read_exact_at(&mut buf[..len], index * u64::from(chunk_size))
                            .map_err(UpdaterError::io(format!("reading back slot {name}")))?;
                        if hash_chunk(&buf[..len]) != component.chunks[index as usize] {
                            next.store(count, Ordering::Relaxed);
                            return Err(UpdaterError::ReadBack {
                                slot: name.to_string(),
                                chunk: index,
                            });
                        }
                        progress.advance(len as u64);
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("read-back thread panicked"))
            .collect::<Result<Vec<()>>>()
            .map(drop)
    })
}

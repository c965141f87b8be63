//! Reading what a slot's storage holds, not what the page cache shows of it. A mounted file
//! system keeps some of its metadata in the block device's page cache and changes it there (ext4
//! updates its superblock in memory even when mounted read-only), so a booted slot read through
//! the cache differs from the image that was written to it. A delta's base is compared and copied
//! with `O_DIRECT` reads instead, which bypass the cache; where the kernel refuses them (tmpfs),
//! plain reads serve, since nothing is mounted from such a file.
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// Direct reads must start, end and land in memory on multiples of the device's logical block
/// size; 4 KiB covers every device in use.
const ALIGN: usize = 4096;

pub struct Storage {
    file: File,
    direct: bool,
    /// The last window read directly (start, bytes): copies from a base mostly run forwards, and
    /// direct reads have no readahead.
    window: std::cell::RefCell<Window>,
}

/// Bytes read directly, held in place: `buffer[begin..begin + len]` is the storage from `start`
/// (`begin` puts them on an aligned address, as direct reads need).
#[derive(Default)]
struct Window {
    start: u64,
    buffer: Vec<u8>,
    begin: usize,
    len: usize,
}

impl Window {
    fn bytes(&self) -> &[u8] {
        &self.buffer[self.begin..self.begin + self.len]
    }
}

/// Bytes a direct read fetches at least, for the reads after it.
const WINDOW: usize = 256 << 10;

impl Storage {
    pub fn open(path: &Path) -> io::Result<Storage> {
        match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
        {
            Ok(file) => Ok(Storage {
                file,
                direct: true,
                window: Default::default(),
            }),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(Storage {
                file: File::open(path)?,
                direct: false,
                window: Default::default(),
            }),
            Err(e) => Err(e),
        }
    }

    /// Fills `out` from `offset`; short only where the storage ends (an error then).
    pub fn read_exact_at(&self, out: &mut [u8], offset: u64) -> io::Result<()> {
        self.read_exact_at_ahead(out, offset, WINDOW)
    }

    /// [`Self::read_exact_at`] for a caller that knows its reads run on for `ahead` bytes from
    /// `offset` and then jump elsewhere (a delta's copy op): a direct read then fetches what will
    /// be used, not a whole window past it.
    pub fn read_exact_at_ahead(&self, out: &mut [u8], offset: u64, ahead: usize) -> io::Result<()> {
        if !self.direct {
            return self.file.read_exact_at(out, offset);
        }
        let mut window = self.window.borrow_mut();
        let end = offset + out.len() as u64;
        if offset < window.start || end > window.start + window.len as u64 {
            let from = offset - offset % ALIGN as u64;
            let head = (offset - from) as usize;
            let len = ((end - from) as usize).max(head + ahead.min(WINDOW));
            self.read_direct(&mut window, from, len)?;
        }
        let at = (offset - window.start) as usize;
        let got = window
            .bytes()
            .get(at..at + out.len())
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        out.copy_from_slice(got);
        Ok(())
    }

    /// Fills `window` with up to `want` bytes from the aligned offset `start` (fewer where the
    /// storage ends), reusing its buffer.
    fn read_direct(&self, window: &mut Window, start: u64, want: usize) -> io::Result<()> {
        let len = want.div_ceil(ALIGN) * ALIGN;
        if window.buffer.len() < len + ALIGN {
            window.buffer = vec![0u8; len + ALIGN];
        }
        // Empty until the read succeeds, so a failed read leaves no stale bytes behind.
        window.len = 0;
        let at = window.buffer.as_ptr().align_offset(ALIGN);
        let aligned = &mut window.buffer[at..at + len];
        let mut filled = 0;
        while filled < len {
            match self
                .file
                .read_at(&mut aligned[filled..], start + filled as u64)
            {
                Ok(0) => break,
                Ok(n) => {
                    filled += n;
                    // A direct read ends short, and unaligned, only at the end of the storage.
                    if filled % ALIGN != 0 {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        *window = Window {
            start,
            buffer: std::mem::take(&mut window.buffer),
            begin: at,
            len: filled,
        };
        Ok(())
    }

    /// The first `size` bytes in order, in pieces, for hashing; reading past the storage's end is
    /// an error.
    pub fn prefix(&self, size: u64) -> Prefix<'_> {
        Prefix {
            storage: self,
            at: 0,
            size,
        }
    }
}

/// The bytes of a storage from its start up to a size, as `Read`.
pub struct Prefix<'a> {
    storage: &'a Storage,
    at: u64,
    size: u64,
}

impl Read for Prefix<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (buf.len().min(1 << 20) as u64).min(self.size - self.at) as usize;
        if n == 0 {
            return Ok(0);
        }
        self.storage.read_exact_at(&mut buf[..n], self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_at_any_offset_and_length_equal_plain_reads() {
        // Under target/, not /tmp: tmpfs refuses direct reads, and this should exercise them.
        let dir = tempfile::tempdir_in(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")).unwrap();
        let path = dir.path().join("slot");
        let data: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let storage = Storage::open(&path).unwrap();
        for (offset, len) in [(0, 4096), (1, 10), (4095, 2), (8192, 60_000), (69_990, 10)] {
            let mut out = vec![0u8; len];
            storage.read_exact_at(&mut out, offset as u64).unwrap();
            assert_eq!(out, data[offset..offset + len], "{offset}+{len}");
        }
        // Short windows (a delta's scattered copies) refill as the reads move on.
        for ahead in [1, 4096, 5000] {
            for (offset, len) in [
                (0, 4096),
                (4000, 200),
                (4100, 5000),
                (12_288, 4096),
                (1, 10),
            ] {
                let mut out = vec![0u8; len];
                storage
                    .read_exact_at_ahead(&mut out, offset as u64, ahead)
                    .unwrap();
                assert_eq!(
                    out,
                    data[offset..offset + len],
                    "{offset}+{len}, ahead {ahead}"
                );
            }
        }
        let mut out = [0u8; 20];
        assert!(storage.read_exact_at(&mut out, 69_990).is_err());
        assert!(storage.read_exact_at_ahead(&mut out, 69_990, 1).is_err());
        let mut all = Vec::new();
        storage
            .prefix(data.len() as u64)
            .read_to_end(&mut all)
            .unwrap();
        assert_eq!(all, data);
    }
}

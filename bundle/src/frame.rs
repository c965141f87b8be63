//! Splits the compressed bundle into zstd frames and decompresses them one at a time, so the
//! reader's memory is bounded by the largest frame it accepts, whatever the input claims. Every data
//! frame must declare its content size; the seek table that closes the bundle must list exactly the
//! frames that were read, so a bundle cut at a frame boundary is caught like one cut inside a frame.
use std::io::{ErrorKind, Read};

use sha2::{Digest, Sha256};

use crate::seek_table::{SeekEntry, FOOTER_LEN, MAX_TABLE_LEN, SEEKABLE_MAGIC, SKIPPABLE_MAGIC};
use crate::BundleError;

const ZSTD_MAGIC: u32 = 0xFD2F_B528;
const SKIPPABLE_MASK: u32 = 0xFFFF_FFF0;
const MAX_BLOCK: usize = 128 << 10;

/// The most bytes a zstd frame of `content` bytes takes (zstd's own bound plus the frame's
/// header): a frame that claims more is refused before anything is read or allocated for it.
pub fn max_frame_len(content: usize) -> usize {
    content + content / 128 + 1024
}

/// Decompresses one chunk's frame fetched on its own (by Range): it must hold exactly `len`
/// bytes. What it holds is then checked like any chunk, against the signed manifest.
pub fn decode_chunk_frame(frame: &[u8], len: usize) -> Result<Vec<u8>, BundleError> {
    zstd::bulk::decompress(frame, len)
        .ok()
        .filter(|data| data.len() == len)
        .ok_or_else(|| BundleError::Corrupt(format!("a chunk's frame does not hold {len} bytes")))
}

pub(crate) struct FrameStream<R> {
    source: R,
    /// Bytes consumed from `source`, for error messages.
    offset: u64,
    max_content: usize,
    compressed: Vec<u8>,
    pending: Vec<u8>,
    pending_pos: usize,
    decompressor: zstd::bulk::Decompressor<'static>,
    seen: SeenFrames,
}

/// The frames read so far, as a count and a digest rather than a list: memory stays the same
/// however many frames a bundle has (a crafted one could have millions of one-byte frames).
#[derive(Default)]
struct SeenFrames {
    count: u64,
    digest: Sha256,
}

impl SeenFrames {
    fn push(&mut self, entry: &SeekEntry) {
        self.count += 1;
        self.digest.update(entry.compressed.to_le_bytes());
        self.digest.update(entry.decompressed.to_le_bytes());
    }

    fn matches(self, other: SeenFrames) -> bool {
        self.count == other.count && self.digest.finalize() == other.digest.finalize()
    }
}

enum Next {
    Data {
        content_size: usize,
    },
    /// A seek table of this many payload bytes follows; not read yet.
    SeekTable {
        payload_len: u32,
        start: u64,
    },
    End,
}

impl<R> FrameStream<R> {
    /// The same stream state over another source; the old source is dropped.
    pub(crate) fn with_source<S>(self, source: S) -> FrameStream<S> {
        FrameStream {
            source,
            offset: self.offset,
            max_content: self.max_content,
            compressed: self.compressed,
            pending: self.pending,
            pending_pos: self.pending_pos,
            decompressor: self.decompressor,
            seen: self.seen,
        }
    }
}

impl<R: Read> FrameStream<R> {
    pub(crate) fn new(source: R, max_content: usize) -> Result<Self, BundleError> {
        let decompressor = zstd::bulk::Decompressor::new()
            .map_err(BundleError::io("creating a zstd decompressor"))?;
        Ok(FrameStream {
            source,
            offset: 0,
            max_content,
            compressed: Vec::new(),
            pending: Vec::new(),
            pending_pos: 0,
            decompressor,
            seen: SeenFrames::default(),
        })
    }

    /// Fills `buf` with the next decompressed bytes. `what` names what is being read, for the
    /// message when the bundle ends first.
    pub(crate) fn fill(
        &mut self,
        buf: &mut [u8],
        what: &dyn Fn() -> String,
    ) -> Result<(), BundleError> {
        let mut filled = 0;
        while filled < buf.len() {
            if self.pending_pos < self.pending.len() {
                let n = (self.pending.len() - self.pending_pos).min(buf.len() - filled);
                buf[filled..filled + n]
                    .copy_from_slice(&self.pending[self.pending_pos..self.pending_pos + n]);
                self.pending_pos += n;
                filled += n;
                continue;
            }
            let content_size = match self.next_frame()? {
                Next::Data { content_size } => content_size,
                Next::SeekTable { .. } | Next::End => {
                    return Err(BundleError::Truncated(format!("it ends inside {}", what())))
                }
            };
            let rest = &mut buf[filled..];
            if rest.len() >= content_size {
                // Whole frame fits: decompress straight into the caller's buffer, no extra copy.
                self.decompress_into(content_size, Target::Caller(&mut rest[..content_size]))?;
                filled += content_size;
            } else {
                self.decompress_into(content_size, Target::Pending)?;
            }
        }
        Ok(())
    }

    /// Call after the archive's end marker: nothing may follow but the seek table, which must
    /// describe exactly the frames read, and then the end of the input. The table is checked as it
    /// streams past, entry by entry; returns how many bytes the input held.
    pub(crate) fn finish(mut self) -> Result<u64, BundleError> {
        if self.pending_pos < self.pending.len() {
            return Err(BundleError::Corrupt(
                "data after the end of the archive".into(),
            ));
        }
        let listed = match self.next_frame()? {
            Next::SeekTable { payload_len, start } => self.stream_table(payload_len, start)?,
            Next::Data { .. } => {
                return Err(BundleError::Corrupt(
                    "data after the end of the archive".into(),
                ))
            }
            Next::End => return Err(BundleError::Truncated("the seek table is missing".into())),
        };
        let mut probe = [0u8; 1];
        if read_some(&mut self.source, &mut probe)? != 0 {
            return Err(BundleError::Corrupt("bytes after the seek table".into()));
        }
        if !std::mem::take(&mut self.seen).matches(listed) {
            return Err(BundleError::Corrupt(
                "the seek table does not match the frames of the bundle".into(),
            ));
        }
        Ok(self.offset)
    }

    /// Reads a seek table payload of `len` bytes, in the format `SeekTable::encode` writes,
    /// without holding it: its entries are summed up like the frames that were read.
    fn stream_table(&mut self, len: u32, start: u64) -> Result<SeenFrames, BundleError> {
        let corrupt = |what: &str| BundleError::Corrupt(format!("seek table: {what}"));
        let len = len as usize;
        if len < FOOTER_LEN || !(len - FOOTER_LEN).is_multiple_of(8) {
            return Err(corrupt("wrong length"));
        }
        let mut listed = SeenFrames::default();
        for _ in 0..(len - FOOTER_LEN) / 8 {
            let entry: [u8; 8] = self.read_array(start)?;
            listed.push(&SeekEntry {
                compressed: u32::from_le_bytes([entry[0], entry[1], entry[2], entry[3]]),
                decompressed: u32::from_le_bytes([entry[4], entry[5], entry[6], entry[7]]),
            });
        }
        let footer: [u8; FOOTER_LEN] = self.read_array(start)?;
        let count = u32::from_le_bytes([footer[0], footer[1], footer[2], footer[3]]);
        let magic = u32::from_le_bytes([footer[5], footer[6], footer[7], footer[8]]);
        if magic != SEEKABLE_MAGIC {
            return Err(corrupt("bad magic"));
        }
        if footer[4] != 0 || u64::from(count) != listed.count {
            return Err(corrupt("unsupported descriptor or wrong frame count"));
        }
        Ok(listed)
    }

    fn next_frame(&mut self) -> Result<Next, BundleError> {
        let start = self.offset;
        let mut magic = [0u8; 4];
        let got = self.read_up_to(&mut magic)?;
        if got == 0 {
            return Ok(Next::End);
        }
        if got < 4 {
            return Err(self.cut_off(start));
        }
        let magic = u32::from_le_bytes(magic);
        if magic & SKIPPABLE_MASK == SKIPPABLE_MAGIC & SKIPPABLE_MASK {
            let len = u32::from_le_bytes(self.read_array(start)?);
            if magic != SKIPPABLE_MAGIC || len > MAX_TABLE_LEN {
                return Err(BundleError::Corrupt(format!(
                    "unexpected skippable frame at byte {start}"
                )));
            }
            return Ok(Next::SeekTable {
                payload_len: len,
                start,
            });
        }
        if magic != ZSTD_MAGIC {
            return Err(BundleError::Corrupt(format!(
                "no zstd frame at byte {start} (is this a bundle?)"
            )));
        }
        self.compressed.clear();
        self.compressed.extend_from_slice(&magic.to_le_bytes());
        let content_size = self.read_frame_header(start)?;
        // zstd never expands data by more than this (its compressBound is smaller).
        let limit = max_frame_len(content_size);
        loop {
            let header: [u8; 3] = self.read_array(start)?;
            self.compressed.extend_from_slice(&header);
            let header =
                u32::from(header[0]) | u32::from(header[1]) << 8 | u32::from(header[2]) << 16;
            let last = header & 1 == 1;
            let size = (header >> 3) as usize;
            let body = match (header >> 1) & 3 {
                0 | 2 if size <= MAX_BLOCK => size,
                1 => 1,
                _ => return Err(self.bad_frame(start, "invalid block")),
            };
            if self.compressed.len() + body > limit {
                return Err(self.bad_frame(start, "larger than its content"));
            }
            self.append_from_source(body, start)?;
            if last {
                break;
            }
        }
        if self.compressed[4] & 0b100 != 0 {
            self.append_from_source(4, start)?;
        }
        let compressed = u32::try_from(self.compressed.len()).expect("bounded by limit");
        self.seen.push(&SeekEntry {
            compressed,
            decompressed: content_size as u32,
        });
        Ok(Next::Data { content_size })
    }

    /// Reads the frame header after the magic; returns the declared content size.
    fn read_frame_header(&mut self, start: u64) -> Result<usize, BundleError> {
        let [descriptor]: [u8; 1] = self.read_array(start)?;
        self.compressed.push(descriptor);
        let fcs_flag = descriptor >> 6;
        let single_segment = descriptor & 0b10_0000 != 0;
        if descriptor & 0b1000 != 0 {
            return Err(self.bad_frame(start, "reserved bit set"));
        }
        if descriptor & 0b11 != 0 {
            return Err(self.bad_frame(start, "needs a dictionary"));
        }
        if !single_segment {
            self.append_from_source(1, start)?;
        }
        let fcs_len = match (fcs_flag, single_segment) {
            (0, false) => return Err(self.bad_frame(start, "does not declare its size")),
            (0, true) => 1,
            (1, _) => 2,
            (2, _) => 4,
            _ => 8,
        };
        let at = self.compressed.len();
        self.append_from_source(fcs_len, start)?;
        let mut raw = [0u8; 8];
        raw[..fcs_len].copy_from_slice(&self.compressed[at..]);
        let mut size = u64::from_le_bytes(raw);
        if fcs_len == 2 {
            size += 256;
        }
        if size == 0 || size > self.max_content as u64 {
            return Err(self.bad_frame(start, "declares a content size out of range"));
        }
        Ok(size as usize)
    }

    fn decompress_into(
        &mut self,
        content_size: usize,
        target: Target<'_>,
    ) -> Result<(), BundleError> {
        let out: &mut [u8] = match target {
            Target::Caller(buf) => buf,
            Target::Pending => {
                self.pending.resize(content_size, 0);
                self.pending_pos = 0;
                &mut self.pending[..]
            }
        };
        let start = self.offset - self.compressed.len() as u64;
        match self
            .decompressor
            .decompress_to_buffer(&self.compressed, out)
        {
            Ok(n) if n == content_size => Ok(()),
            Ok(_) => Err(BundleError::Corrupt(format!(
                "zstd frame at byte {start} is shorter than it declares"
            ))),
            Err(e) => Err(BundleError::Corrupt(format!(
                "zstd frame at byte {start}: {e}"
            ))),
        }
    }

    fn bad_frame(&self, start: u64, what: &str) -> BundleError {
        BundleError::Corrupt(format!("zstd frame at byte {start} {what}"))
    }

    fn cut_off(&self, start: u64) -> BundleError {
        BundleError::Truncated(format!("it ends inside the frame at byte {start}"))
    }

    fn append_from_source(&mut self, n: usize, start: u64) -> Result<(), BundleError> {
        let at = self.compressed.len();
        self.compressed.resize(at + n, 0);
        let mut tail = std::mem::take(&mut self.compressed);
        let result = self.read_exact_at(&mut tail[at..], start);
        self.compressed = tail;
        result
    }

    fn read_array<const N: usize>(&mut self, start: u64) -> Result<[u8; N], BundleError> {
        let mut out = [0u8; N];
        self.read_exact_at(&mut out, start)?;
        Ok(out)
    }

    fn read_exact_at(&mut self, buf: &mut [u8], start: u64) -> Result<(), BundleError> {
        if self.read_up_to(buf)? < buf.len() {
            return Err(self.cut_off(start));
        }
        Ok(())
    }

    fn read_up_to(&mut self, buf: &mut [u8]) -> Result<usize, BundleError> {
        let mut got = 0;
        while got < buf.len() {
            let n = read_some(&mut self.source, &mut buf[got..])?;
            if n == 0 {
                break;
            }
            got += n;
        }
        self.offset += got as u64;
        Ok(got)
    }
}

enum Target<'a> {
    Caller(&'a mut [u8]),
    Pending,
}

fn read_some<R: Read>(source: &mut R, buf: &mut [u8]) -> Result<usize, BundleError> {
    loop {
        match source.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(BundleError::Io {
                    context: "reading the bundle".into(),
                    source: e,
                })
            }
        }
    }
}

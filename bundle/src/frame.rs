//! Splits the compressed bundle into zstd frames and decompresses them as a stream, so the reader's
//! memory is bounded by the largest window it accepts (that of a frame of `max_content` bytes),
//! whatever the input claims. Every data frame must declare its content size, and no frame may be
//! larger than zstd makes one of that size; the seek table that closes the bundle must list exactly
//! the frames that were read, so a bundle cut at a frame boundary is caught like one cut inside a
//! frame. A frame may hold several chunks: the caller asks for bytes, not frames.
use std::io::{ErrorKind, Read};

use sha2::{Digest, Sha256};
use zstd::stream::raw::{Decoder, InBuffer, Operation, OutBuffer};
use zstd::zstd_safe::DParameter;

use crate::seek_table::{SeekEntry, FOOTER_LEN, MAX_TABLE_LEN, SEEKABLE_MAGIC, SKIPPABLE_MAGIC};
use crate::BundleError;

const ZSTD_MAGIC: u32 = 0xFD2F_B528;
const SKIPPABLE_MASK: u32 = 0xFFFF_FFF0;
/// Compressed bytes read from the source at a time.
const INPUT_BUFFER: usize = 128 << 10;
/// The longest frame header: magic, descriptor, window descriptor, 8-byte content size.
const MAX_FRAME_HEADER: usize = 14;

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
    input: Box<[u8]>,
    /// `input[pos..end]` is read from the source and not yet consumed.
    pos: usize,
    end: usize,
    /// Bytes consumed, for error messages and the total.
    offset: u64,
    max_content: usize,
    decoder: Decoder<'static>,
    /// The data frame being decompressed, once its header was checked.
    open: Option<OpenFrame>,
    seen: SeenFrames,
}

struct OpenFrame {
    start: u64,
    content_size: usize,
    produced: usize,
    compressed: usize,
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
    Data,
    /// A seek table of this many payload bytes follows; not read yet.
    SeekTable {
        payload_len: u32,
        start: u64,
    },
    End,
}

impl<R> FrameStream<R> {
    /// The same stream state over another source; the old source, and what was read from it
    /// ahead of the caller, is dropped.
    pub(crate) fn with_source<S>(self, source: S) -> FrameStream<S> {
        FrameStream {
            source,
            input: self.input,
            pos: 0,
            end: 0,
            offset: self.offset,
            max_content: self.max_content,
            decoder: self.decoder,
            open: self.open,
            seen: self.seen,
        }
    }
}

impl<R: Read> FrameStream<R> {
    pub(crate) fn new(source: R, max_content: usize) -> Result<Self, BundleError> {
        let mut decoder = Decoder::new().map_err(BundleError::io("creating a zstd decoder"))?;
        // A frame may not ask for a window larger than the largest content accepted: that bounds
        // the decoder's memory.
        let window_log = (max_content.max(1 << 10) as u64)
            .next_power_of_two()
            .ilog2();
        decoder
            .set_parameter(DParameter::WindowLogMax(window_log))
            .map_err(BundleError::io("setting up the zstd decoder"))?;
        Ok(FrameStream {
            source,
            input: vec![0u8; INPUT_BUFFER].into_boxed_slice(),
            pos: 0,
            end: 0,
            offset: 0,
            max_content,
            decoder,
            open: None,
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
            if self.open.is_none() {
                match self.next_frame()? {
                    Next::Data => {}
                    Next::SeekTable { .. } | Next::End => {
                        return Err(BundleError::Truncated(format!("it ends inside {}", what())))
                    }
                }
            }
            filled += self.decode(&mut buf[filled..])?;
        }
        Ok(())
    }

    /// Decompresses from the open frame into `out`, as much as the frame still holds; closes the
    /// frame when it is done. Returns how many bytes were produced.
    fn decode(&mut self, out: &mut [u8]) -> Result<usize, BundleError> {
        let Some(mut frame) = self.open.take() else {
            return Ok(0);
        };
        let want = out.len().min(frame.content_size - frame.produced);
        let mut produced = 0;
        loop {
            let mut input = InBuffer::around(&self.input[self.pos..self.end]);
            let mut output = OutBuffer::around(&mut out[produced..want]);
            let remaining = self
                .decoder
                .run(&mut input, &mut output)
                .map_err(|e| bad_frame(frame.start, &format!("cannot be decoded: {e}")))?;
            let (consumed, made) = (input.pos(), output.pos());
            self.consume(consumed);
            frame.compressed += consumed;
            frame.produced += made;
            produced += made;
            if frame.compressed > max_frame_len(frame.content_size) {
                return Err(bad_frame(frame.start, "larger than its content"));
            }
            if remaining == 0 {
                if frame.produced != frame.content_size {
                    return Err(bad_frame(frame.start, "shorter than it declares"));
                }
                let compressed = u32::try_from(frame.compressed)
                    .map_err(|_| bad_frame(frame.start, "larger than its content"))?;
                self.seen.push(&SeekEntry {
                    compressed,
                    decompressed: frame.content_size as u32,
                });
                return Ok(produced);
            }
            if want > 0 && produced == want {
                self.open = Some(frame);
                return Ok(produced);
            }
            if consumed == 0 && made == 0 {
                if self.pos < self.end {
                    // Its declared content is out, and the decoder still has more.
                    return Err(bad_frame(frame.start, "longer than it declares"));
                }
                if self.refill()? == 0 {
                    return Err(cut_off(frame.start));
                }
            }
        }
    }

    /// Reads more of the source into the input buffer; returns how many bytes came.
    fn refill(&mut self) -> Result<usize, BundleError> {
        if self.pos == self.end {
            self.pos = 0;
            self.end = 0;
        } else if self.pos > 0 {
            self.input.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
        let n = read_some(&mut self.source, &mut self.input[self.end..])?;
        self.end += n;
        Ok(n)
    }

    /// Makes at least `n` bytes available in the input buffer if the source has them; returns
    /// what is available (fewer only at the end of the source).
    fn peek(&mut self, n: usize) -> Result<&[u8], BundleError> {
        while self.end - self.pos < n {
            if self.refill()? == 0 {
                break;
            }
        }
        Ok(&self.input[self.pos..self.end])
    }

    fn consume(&mut self, n: usize) {
        self.pos += n;
        self.offset += n as u64;
    }

    /// Call after the archive's end marker: nothing may follow but the seek table, which must
    /// describe exactly the frames read, and then the end of the input. The table is checked as it
    /// streams past, entry by entry; returns how many bytes the input held.
    pub(crate) fn finish(mut self) -> Result<u64, BundleError> {
        let data_after = || BundleError::Corrupt("data after the end of the archive".into());
        if let Some(frame) = &self.open {
            if frame.produced < frame.content_size {
                return Err(data_after());
            }
            // The end marker's frame may still have its checksum to be read.
            self.decode(&mut [])?;
        }
        let listed = match self.next_frame()? {
            Next::SeekTable { payload_len, start } => self.stream_table(payload_len, start)?,
            Next::Data => return Err(data_after()),
            Next::End => return Err(BundleError::Truncated("the seek table is missing".into())),
        };
        if !self.peek(1)?.is_empty() {
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

    /// Looks at what comes next. A data frame's header is checked and the frame opened for
    /// `decode` (which consumes it from its first byte); a seek table's header is consumed.
    fn next_frame(&mut self) -> Result<Next, BundleError> {
        let start = self.offset;
        let max_content = self.max_content;
        let head = self.peek(MAX_FRAME_HEADER)?;
        if head.is_empty() {
            return Ok(Next::End);
        }
        if head.len() < 4 {
            return Err(cut_off(start));
        }
        let magic = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        if magic & SKIPPABLE_MASK == SKIPPABLE_MAGIC & SKIPPABLE_MASK {
            let Some(len) = head.get(4..8) else {
                return Err(cut_off(start));
            };
            let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]);
            if magic != SKIPPABLE_MAGIC || len > MAX_TABLE_LEN {
                return Err(BundleError::Corrupt(format!(
                    "unexpected skippable frame at byte {start}"
                )));
            }
            self.consume(8);
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
        let content_size =
            declared_content_size(&head[4..], max_content).map_err(|why| why.at(start))?;
        self.open = Some(OpenFrame {
            start,
            content_size,
            produced: 0,
            compressed: 0,
        });
        Ok(Next::Data)
    }

    fn read_array<const N: usize>(&mut self, start: u64) -> Result<[u8; N], BundleError> {
        let Some(out) = self
            .peek(N)?
            .get(..N)
            .and_then(|bytes| <[u8; N]>::try_from(bytes).ok())
        else {
            return Err(cut_off(start));
        };
        self.consume(N);
        Ok(out)
    }
}

/// Why a frame header is refused, before the frame's place is known.
enum BadHeader {
    CutOff,
    Bad(&'static str),
}

impl BadHeader {
    fn at(self, start: u64) -> BundleError {
        match self {
            BadHeader::CutOff => cut_off(start),
            BadHeader::Bad(what) => bad_frame(start, what),
        }
    }
}

/// The content size a frame header (after the magic) declares; it must declare one, of 1 to
/// `max_content` bytes, and need no dictionary.
fn declared_content_size(header: &[u8], max_content: usize) -> Result<usize, BadHeader> {
    let descriptor = *header.first().ok_or(BadHeader::CutOff)?;
    let fcs_flag = descriptor >> 6;
    let single_segment = descriptor & 0b10_0000 != 0;
    if descriptor & 0b1000 != 0 {
        return Err(BadHeader::Bad("reserved bit set"));
    }
    if descriptor & 0b11 != 0 {
        return Err(BadHeader::Bad("needs a dictionary"));
    }
    let fcs_len = match (fcs_flag, single_segment) {
        (0, false) => return Err(BadHeader::Bad("does not declare its size")),
        (0, true) => 1,
        (1, _) => 2,
        (2, _) => 4,
        _ => 8,
    };
    let at = if single_segment { 1 } else { 2 };
    let field = header.get(at..at + fcs_len).ok_or(BadHeader::CutOff)?;
    let mut raw = [0u8; 8];
    raw[..fcs_len].copy_from_slice(field);
    let mut size = u64::from_le_bytes(raw);
    if fcs_len == 2 {
        size += 256;
    }
    if size == 0 || size > max_content as u64 {
        return Err(BadHeader::Bad("declares a content size out of range"));
    }
    Ok(size as usize)
}

fn bad_frame(start: u64, what: &str) -> BundleError {
    BundleError::Corrupt(format!("zstd frame at byte {start} {what}"))
}

fn cut_off(start: u64) -> BundleError {
    BundleError::Truncated(format!("it ends inside the frame at byte {start}"))
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

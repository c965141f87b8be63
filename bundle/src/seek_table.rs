//! The seek table at the end of a bundle, in the zstd seekable format
//! (zstd's contrib/seekable_format): a skippable frame listing each frame's compressed and
//! decompressed size, so a reader with random access (a file, HTTP Range) can find any chunk's
//! frame without decompressing what comes before it. `zstd -d` skips it.
use crate::BundleError;

pub(crate) const SKIPPABLE_MAGIC: u32 = 0x184D_2A5E;
pub(crate) const SEEKABLE_MAGIC: u32 = 0x8F92_EAB1;
pub(crate) const FOOTER_LEN: usize = 9;
/// A table larger than this is refused; 16 MiB is about two million frames.
pub(crate) const MAX_TABLE_LEN: u32 = 16 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeekEntry {
    pub compressed: u32,
    pub decompressed: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeekTable {
    pub entries: Vec<SeekEntry>,
}

impl SeekTable {
    /// The whole skippable frame, magic and length included.
    pub fn encode(&self) -> Vec<u8> {
        let payload_len = self.entries.len() * 8 + FOOTER_LEN;
        let mut out = Vec::with_capacity(8 + payload_len);
        out.extend_from_slice(&SKIPPABLE_MAGIC.to_le_bytes());
        out.extend_from_slice(&(payload_len as u32).to_le_bytes());
        for e in &self.entries {
            out.extend_from_slice(&e.compressed.to_le_bytes());
            out.extend_from_slice(&e.decompressed.to_le_bytes());
        }
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        out.push(0); // descriptor: no per-frame checksums
        out.extend_from_slice(&SEEKABLE_MAGIC.to_le_bytes());
        out
    }

    /// Parses the payload of the skippable frame (what follows its magic and length).
    pub fn parse_payload(payload: &[u8]) -> Result<Self, BundleError> {
        let corrupt = |what: &str| BundleError::Corrupt(format!("seek table: {what}"));
        if payload.len() < FOOTER_LEN || !(payload.len() - FOOTER_LEN).is_multiple_of(8) {
            return Err(corrupt("wrong length"));
        }
        let (body, footer) = payload.split_at(payload.len() - FOOTER_LEN);
        let count = u32::from_le_bytes(footer[..4].try_into().expect("4 bytes")) as usize;
        let descriptor = footer[4];
        let magic = u32::from_le_bytes(footer[5..9].try_into().expect("4 bytes"));
        if magic != SEEKABLE_MAGIC {
            return Err(corrupt("bad magic"));
        }
        if descriptor != 0 || count * 8 != body.len() {
            return Err(corrupt("unsupported descriptor or wrong frame count"));
        }
        let entries = body
            .chunks_exact(8)
            .map(|e| SeekEntry {
                compressed: u32::from_le_bytes(e[..4].try_into().expect("4 bytes")),
                decompressed: u32::from_le_bytes(e[4..].try_into().expect("4 bytes")),
            })
            .collect();
        Ok(SeekTable { entries })
    }

    /// How many bytes from the end of the bundle the table takes, read from its last bytes (at
    /// least the footer's): what a reader fetching the tail over HTTP needs to ask for.
    pub fn len_from_tail(tail: &[u8]) -> Result<u64, BundleError> {
        if tail.len() < FOOTER_LEN {
            return Err(BundleError::Truncated("no seek table".into()));
        }
        let footer = &tail[tail.len() - FOOTER_LEN..];
        let count = u32::from_le_bytes(footer[..4].try_into().expect("4 bytes"));
        Ok(8 + u64::from(count) * 8 + FOOTER_LEN as u64)
    }

    /// Reads the table from the end of a complete bundle held in memory or mapped.
    pub fn from_bundle_tail(tail: &[u8]) -> Result<Self, BundleError> {
        if tail.len() < 8 + FOOTER_LEN {
            return Err(BundleError::Truncated("no seek table".into()));
        }
        let footer = &tail[tail.len() - FOOTER_LEN..];
        let count = u32::from_le_bytes(footer[..4].try_into().expect("4 bytes")) as usize;
        let frame_len = 8 + count * 8 + FOOTER_LEN;
        if frame_len > tail.len() {
            return Err(BundleError::Truncated("seek table is cut off".into()));
        }
        let frame = &tail[tail.len() - frame_len..];
        if u32::from_le_bytes(frame[..4].try_into().expect("4 bytes")) != SKIPPABLE_MAGIC {
            return Err(BundleError::Corrupt("seek table: bad frame magic".into()));
        }
        Self::parse_payload(&frame[8..])
    }

    /// Compressed offset of each frame, for fetching one frame with a Range request.
    pub fn offsets(&self) -> impl Iterator<Item = (u64, SeekEntry)> + '_ {
        self.entries.iter().scan(0u64, |offset, e| {
            let start = *offset;
            *offset += u64::from(e.compressed);
            Some((start, *e))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_locates_frames() {
        let table = SeekTable {
            entries: vec![
                SeekEntry {
                    compressed: 100,
                    decompressed: 2048,
                },
                SeekEntry {
                    compressed: 50,
                    decompressed: 512,
                },
            ],
        };
        let bytes = table.encode();
        assert_eq!(SeekTable::parse_payload(&bytes[8..]).unwrap(), table);
        let mut bundle = vec![0u8; 150];
        bundle.extend_from_slice(&bytes);
        assert_eq!(SeekTable::from_bundle_tail(&bundle).unwrap(), table);
        let offsets: Vec<u64> = table.offsets().map(|(o, _)| o).collect();
        assert_eq!(offsets, vec![0, 100]);
        assert!(SeekTable::parse_payload(&bytes[8..bytes.len() - 1]).is_err());
    }
}

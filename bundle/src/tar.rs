//! The few ustar records a bundle uses: regular-file headers with plain names and the
//! end-of-archive marker. Parsing is strict, because the archive is untrusted: anything that is not
//! exactly such a record is refused, never skipped.
use crate::BundleError;

pub(crate) const BLOCK: usize = 512;
/// The largest size the 11 octal digits of a ustar header hold; larger sizes use GNU base-256,
/// which GNU tar, bsdtar and Python's tarfile read, so images have no 8 GiB (or 4 GiB) limit.
const MAX_OCTAL_SIZE: u64 = 0o77777777777;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EntryHeader {
    pub name: String,
    pub size: u64,
}

/// Bytes of zero padding after an entry of `size` bytes.
pub(crate) fn padding(size: u64) -> usize {
    (BLOCK as u64 - size % BLOCK as u64) as usize % BLOCK
}

/// Bytes an entry of `size` takes in the archive: header, data and padding.
pub fn entry_len(size: u64) -> u64 {
    BLOCK as u64 + size + padding(size) as u64
}

pub(crate) fn encode_header(name: &str, size: u64) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    if size <= MAX_OCTAL_SIZE {
        h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    } else {
        h[124] = 0x80;
        h[128..136].copy_from_slice(&size.to_be_bytes());
    }
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

/// `Ok(None)` for an all-zero block (the end-of-archive marker).
pub(crate) fn decode_header(h: &[u8; BLOCK]) -> Result<Option<EntryHeader>, BundleError> {
    if h.iter().all(|&b| b == 0) {
        return Ok(None);
    }
    let corrupt = |what: &str| BundleError::Corrupt(format!("archive header: {what}"));
    let stored = parse_octal(&h[148..156]).ok_or_else(|| corrupt("bad checksum field"))?;
    let sum: u64 = h
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(b)
            }
        })
        .sum();
    if stored != sum {
        return Err(corrupt("checksum mismatch"));
    }
    if &h[257..263] != b"ustar\0" || &h[263..265] != b"00" {
        return Err(corrupt("not a ustar header"));
    }
    let name = cstr(&h[..100]).ok_or_else(|| corrupt("name is not text"))?;
    let prefix = cstr(&h[345..500]).ok_or_else(|| corrupt("prefix is not text"))?;
    let full_name = if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}/{name}")
    };
    if !prefix.is_empty() || name.contains('/') || name == ".." || name == "." || name.is_empty() {
        return Err(BundleError::UnsafePath { name: full_name });
    }
    if h[156] != b'0' && h[156] != 0 {
        return Err(BundleError::Corrupt(format!(
            "archive entry '{full_name}' is not a regular file"
        )));
    }
    let size = if h[124] == 0x80 {
        if h[125..128].iter().any(|&b| b != 0) {
            return Err(corrupt("size out of range"));
        }
        u64::from_be_bytes(h[128..136].try_into().expect("8 bytes"))
    } else {
        parse_octal(&h[124..136]).ok_or_else(|| corrupt("bad size field"))?
    };
    Ok(Some(EntryHeader {
        name: full_name,
        size,
    }))
}

fn cstr(field: &[u8]) -> Option<&str> {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    std::str::from_utf8(&field[..end]).ok()
}

fn parse_octal(field: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(field).ok()?;
    let digits = text.trim_matches(|c| c == ' ' || c == '\0');
    if digits.is_empty() {
        return None;
    }
    u64::from_str_radix(digits, 8).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_small_and_huge_sizes() {
        for size in [0, 1, 511, 512, MAX_OCTAL_SIZE, MAX_OCTAL_SIZE + 1, 1 << 40] {
            let h = encode_header("rootfs.img", size);
            let got = decode_header(&h).unwrap().unwrap();
            assert_eq!(
                got,
                EntryHeader {
                    name: "rootfs.img".into(),
                    size
                }
            );
        }
        assert_eq!(decode_header(&[0; BLOCK]).unwrap(), None);
    }

    #[test]
    fn refuses_bad_checksum_links_and_traversal() {
        let mut h = encode_header("a.img", 5);
        h[0] = b'b';
        assert!(decode_header(&h)
            .unwrap_err()
            .to_string()
            .contains("checksum mismatch"));

        let mut link = encode_header("a.img", 0);
        link[156] = b'2';
        fix_checksum(&mut link);
        assert!(decode_header(&link)
            .unwrap_err()
            .to_string()
            .contains("not a regular file"));

        let mut evil = encode_header("x", 0);
        evil[..6].copy_from_slice(b"../etc");
        fix_checksum(&mut evil);
        assert_eq!(
            decode_header(&evil).unwrap_err().to_string(),
            "archive entry '../etc' has an unsafe path"
        );
    }

    fn fix_checksum(h: &mut [u8; BLOCK]) {
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    }

    #[test]
    fn padding_rounds_up_to_blocks() {
        assert_eq!(padding(0), 0);
        assert_eq!(padding(1), 511);
        assert_eq!(padding(512), 0);
        assert_eq!(padding(1 << 20), 0);
    }
}

//! The U-Boot environment as U-Boot and libubootenv (`fw_printenv`/`fw_setenv`) keep it: a CRC32
//! (little-endian) over the data area, for a redundant environment a flags byte, then `name=value`
//! strings each ended by NUL, an empty string, and zero fill. With two copies, a write always goes
//! to the copy that is not current, with the flags counter one higher, so a write torn by a power
//! cut leaves the other copy, and the previous state, intact.
use std::fs::File;
use std::os::unix::fs::FileExt;

use super::BootloaderError;
use super::{Environment, Vars};
use crate::config::Location;
use crate::error::Result;

pub struct UbootEnv {
    copies: Vec<Location>,
}

struct Copy {
    valid: bool,
    flags: u8,
    data: Vec<u8>,
    blank: bool,
}

impl UbootEnv {
    /// One location for a single environment, two for a redundant one.
    pub fn new(copies: Vec<Location>) -> Self {
        assert!(matches!(copies.len(), 1 | 2), "one or two copies");
        UbootEnv { copies }
    }

    fn redundant(&self) -> bool {
        self.copies.len() == 2
    }

    fn header_len(&self) -> usize {
        if self.redundant() {
            5
        } else {
            4
        }
    }

    fn read_copy(&self, loc: &Location) -> Result<Copy> {
        let mut raw = vec![0u8; loc.size];
        File::open(&loc.path)
            .and_then(|f| f.read_exact_at(&mut raw, loc.offset))
            .map_err(BootloaderError::storage(format!(
                "reading {} at {:#x}",
                loc.path.display(),
                loc.offset
            )))?;
        let crc = u32::from_le_bytes(raw[..4].try_into().expect("4 bytes"));
        let data = raw[self.header_len()..].to_vec();
        Ok(Copy {
            // A copy that does not parse (duplicate names ...) counts as invalid like a bad CRC,
            // so the other copy is used and the next write replaces this one.
            valid: crc32fast::hash(&data) == crc && parse(&data).is_ok(),
            flags: if self.redundant() { raw[4] } else { 0 },
            blank: raw.iter().all(|&b| b == 0) || raw.iter().all(|&b| b == 0xff),
            data,
        })
    }

    /// The index of the current copy, as U-Boot decides it, or `None` when no copy is valid.
    fn current(copies: &[Copy]) -> Option<usize> {
        match copies {
            [one] => one.valid.then_some(0),
            [a, b] => match (a.valid, b.valid) {
                (true, false) => Some(0),
                (false, true) => Some(1),
                (false, false) => None,
                // The counter wraps: 0 after 255 is newer.
                (true, true) => Some(match (a.flags, b.flags) {
                    (255, 0) => 1,
                    (0, 255) => 0,
                    (fa, fb) if fb > fa => 1,
                    _ => 0,
                }),
            },
            _ => unreachable!("one or two copies"),
        }
    }

    /// "U-Boot environment /dev/mmcblk0 at 0x3e0000 ...", for messages.
    fn place(&self) -> String {
        format!("U-Boot environment {}", self.describe_locations())
    }

    fn describe_locations(&self) -> String {
        self.copies
            .iter()
            .map(|l| format!("{}@{:#x}+{:#x}", l.path.display(), l.offset, l.size))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Environment for UbootEnv {
    fn read(&self) -> Result<Option<Vars>> {
        let copies = self
            .copies
            .iter()
            .map(|l| self.read_copy(l))
            .collect::<Result<Vec<_>>>()?;
        match Self::current(&copies) {
            Some(i) => parse(&copies[i].data)
                .map(Some)
                .map_err(|e| BootloaderError::invalid(self.place(), e)),
            None if copies.iter().all(|c| c.blank) => Ok(None),
            None => Err(BootloaderError::invalid(
                self.place(),
                "no copy has a valid CRC (refusing to replace it with defaults)",
            )),
        }
    }

    fn write(&mut self, vars: &Vars) -> Result<()> {
        let copies = self
            .copies
            .iter()
            .map(|l| self.read_copy(l))
            .collect::<Result<Vec<_>>>()?;
        let (target, flags) = match Self::current(&copies) {
            _ if !self.redundant() => (0, 0),
            Some(i) => (1 - i, copies[i].flags.wrapping_add(1)),
            None => (1, 1),
        };
        let loc = &self.copies[target];
        let data = render(vars, loc.size - self.header_len())
            .map_err(|e| BootloaderError::invalid(self.place(), e))?;
        let mut raw = crc32fast::hash(&data).to_le_bytes().to_vec();
        if self.redundant() {
            raw.push(flags);
        }
        raw.extend_from_slice(&data);
        super::write_in_place(&loc.path, loc.offset, &raw)
    }

    fn describe(&self) -> String {
        format!("uboot {}", self.describe_locations())
    }
}

pub(crate) fn parse(data: &[u8]) -> std::result::Result<Vars, String> {
    let mut vars = Vars::new();
    for entry in data.split(|&b| b == 0) {
        if entry.is_empty() {
            super::refuse_duplicates(vars.iter().map(|(k, _)| k.as_str()))?;
            return Ok(vars);
        }
        let text = std::str::from_utf8(entry).map_err(|_| "a variable is not text".to_string())?;
        let (k, v) = text
            .split_once('=')
            .ok_or_else(|| format!("entry '{text}' is not name=value"))?;
        vars.push((k.to_string(), v.to_string()));
    }
    Err("the variable list is not terminated".into())
}

/// Sorted by name, as libubootenv and U-Boot's `env export` write it.
fn render(vars: &Vars, size: usize) -> std::result::Result<Vec<u8>, String> {
    let mut sorted: Vec<&(String, String)> = vars.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut data = Vec::with_capacity(size);
    for (k, v) in sorted {
        if k.is_empty() || k.contains(['=', '\0']) || v.contains('\0') {
            return Err(format!("'{k}' cannot be stored"));
        }
        data.extend_from_slice(k.as_bytes());
        data.push(b'=');
        data.extend_from_slice(v.as_bytes());
        data.push(0);
    }
    if data.len() + 1 > size {
        return Err(format!(
            "the variables need {} bytes, the environment has {size}",
            data.len() + 1
        ));
    }
    data.resize(size, 0);
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(dir: &std::path::Path, redundant: bool) -> UbootEnv {
        let path = dir.join("env.bin");
        std::fs::write(&path, vec![0u8; 0x4000]).unwrap();
        let mut copies = vec![Location {
            path: path.clone(),
            offset: 0,
            size: 0x2000,
        }];
        if redundant {
            copies.push(Location {
                path,
                offset: 0x2000,
                size: 0x2000,
            });
        }
        UbootEnv::new(copies)
    }

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn blank_storage_is_uninitialised_and_writes_alternate_copies() {
        let dir = tempfile::tempdir().unwrap();
        let mut e = env(dir.path(), true);
        assert_eq!(e.read().unwrap(), None);
        e.write(&vars(&[("b", "2"), ("a", "1")])).unwrap();
        assert_eq!(e.read().unwrap().unwrap(), vars(&[("a", "1"), ("b", "2")]));
        let raw = std::fs::read(dir.path().join("env.bin")).unwrap();
        assert_eq!(
            raw[0x2004], 1,
            "first write goes to the second copy with flags 1"
        );
        e.write(&vars(&[("a", "3")])).unwrap();
        let raw = std::fs::read(dir.path().join("env.bin")).unwrap();
        assert_eq!(raw[4], 2);
        assert_eq!(e.read().unwrap().unwrap(), vars(&[("a", "3")]));
    }

    #[test]
    fn a_torn_write_falls_back_to_the_other_copy() {
        let dir = tempfile::tempdir().unwrap();
        let mut e = env(dir.path(), true);
        e.write(&vars(&[("a", "1")])).unwrap();
        e.write(&vars(&[("a", "2")])).unwrap();
        // The next write goes to the second copy; a power cut leaves it half written.
        let path = dir.path().join("env.bin");
        let mut raw = std::fs::read(&path).unwrap();
        raw[0x2000..0x2010].copy_from_slice(&[0x5a; 16]);
        std::fs::write(&path, raw).unwrap();
        assert_eq!(e.read().unwrap().unwrap(), vars(&[("a", "2")]));
    }

    #[test]
    fn garbage_is_an_error_not_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let e = env(dir.path(), false);
        std::fs::write(dir.path().join("env.bin"), vec![0x42u8; 0x4000]).unwrap();
        let err = e.read().unwrap_err().to_string();
        assert!(err.contains("no copy has a valid CRC"), "{err}");
    }

    #[test]
    fn flag_counter_wraps() {
        let copy = |flags| Copy {
            valid: true,
            flags,
            data: vec![],
            blank: false,
        };
        assert_eq!(UbootEnv::current(&[copy(255), copy(0)]), Some(1));
        assert_eq!(UbootEnv::current(&[copy(0), copy(255)]), Some(0));
        assert_eq!(UbootEnv::current(&[copy(4), copy(5)]), Some(1));
    }
}

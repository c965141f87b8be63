//! GRUB's environment block (`grubenv`): `# GRUB Environment Block\n`, then `name=value\n` lines
//! (backslash escapes `\\` and newline) and comment lines, padded with `#` to the block's size,
//! normally 1024 bytes. GRUB's `save_env` can only rewrite the block in place, so that is how it is
//! written here too: one write of the whole block, then fsync. Byte-compatible with
//! `grub-editenv` (tests run it): comments stay, changed variables keep their place, new ones go
//! at the end.
use std::fs;
use std::path::PathBuf;

use super::BootloaderError;
use super::{Environment, Vars};
use crate::error::{Result, UpdaterError};

const HEADER: &str = "# GRUB Environment Block";

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Line {
    Comment(String),
    Var(String, String),
}

pub struct GrubEnv {
    path: PathBuf,
}

impl GrubEnv {
    pub fn new(path: PathBuf) -> Self {
        GrubEnv { path }
    }

    fn read_block(&self) -> Result<Vec<u8>> {
        fs::read(&self.path).map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::NotFound {
                " (the image must create it: grub-editenv FILE create)"
            } else {
                ""
            };
            UpdaterError::Bootloader(BootloaderError::Storage {
                doing: format!("reading {}", self.path.display()),
                source: e,
                hint,
            })
        })
    }

    fn corrupt(&self, what: String) -> UpdaterError {
        BootloaderError::corrupt(self.path.display(), what)
    }
}

impl Environment for GrubEnv {
    fn read(&self) -> Result<Option<Vars>> {
        let lines = parse(&self.read_block()?).map_err(|e| self.corrupt(e))?;
        Ok(Some(
            lines
                .into_iter()
                .filter_map(|l| match l {
                    Line::Var(k, v) => Some((k, v)),
                    Line::Comment(_) => None,
                })
                .collect(),
        ))
    }

    fn write(&mut self, vars: &Vars) -> Result<()> {
        let block = self.read_block()?;
        let old = parse(&block).map_err(|e| self.corrupt(e))?;
        let mut lines = Vec::new();
        for line in old {
            match line {
                Line::Comment(c) => lines.push(Line::Comment(c)),
                Line::Var(k, _) => {
                    if let Some((_, v)) = vars.iter().find(|(name, _)| *name == k) {
                        lines.push(Line::Var(k, v.clone()));
                    }
                }
            }
        }
        for (k, v) in vars {
            if !lines
                .iter()
                .any(|l| matches!(l, Line::Var(name, _) if name == k))
            {
                lines.push(Line::Var(k.clone(), v.clone()));
            }
        }
        let new = render(&lines, block.len())
            .map_err(|e| BootloaderError::invalid(self.path.display(), e))?;
        super::write_in_place(&self.path, 0, &new)
    }

    fn describe(&self) -> String {
        format!("grub {}", self.path.display())
    }
}

pub(crate) fn parse(block: &[u8]) -> std::result::Result<Vec<Line>, String> {
    let text = std::str::from_utf8(block).map_err(|_| "not text".to_string())?;
    if !text.starts_with(HEADER) || block.len() < 512 {
        return Err("no GRUB environment block header".into());
    }
    let mut lines = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        if rest.starts_with('#') {
            match rest.find('\n') {
                Some(end) => {
                    lines.push(Line::Comment(rest[..end].to_string()));
                    rest = &rest[end + 1..];
                }
                None if rest.bytes().all(|b| b == b'#') => break,
                None => return Err("padding is not all '#'".into()),
            }
            continue;
        }
        let eq = rest
            .find(['=', '\n'])
            .filter(|&i| rest.as_bytes()[i] == b'=')
            .ok_or_else(|| {
                format!(
                    "line '{}' is not name=value",
                    rest.lines().next().unwrap_or("")
                )
            })?;
        let name = &rest[..eq];
        let mut value = String::new();
        let mut chars = rest[eq + 1..].char_indices();
        let mut consumed = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, escaped)) => value.push(escaped),
                    None => return Err(format!("value of {name} ends in a backslash")),
                },
                '\n' => {
                    consumed = Some(eq + 1 + i + 1);
                    break;
                }
                c => value.push(c),
            }
        }
        let consumed =
            consumed.ok_or_else(|| format!("value of {name} runs into the end of the block"))?;
        lines.push(Line::Var(name.to_string(), value));
        rest = &rest[consumed..];
    }
    super::refuse_duplicates(lines.iter().filter_map(|l| match l {
        Line::Var(name, _) => Some(name.as_str()),
        Line::Comment(_) => None,
    }))?;
    match lines.first() {
        Some(Line::Comment(c)) if c == HEADER => Ok(lines),
        _ => Err("no GRUB environment block header".into()),
    }
}

fn render(lines: &[Line], size: usize) -> std::result::Result<Vec<u8>, String> {
    let mut out = String::new();
    for line in lines {
        match line {
            Line::Comment(c) => out.push_str(c),
            Line::Var(k, v) => {
                if k.is_empty() || k.contains(['=', '\n', '#']) {
                    return Err(format!("'{k}' cannot be a variable name"));
                }
                out.push_str(k);
                out.push('=');
                for c in v.chars() {
                    if c == '\\' || c == '\n' {
                        out.push('\\');
                    }
                    out.push(c);
                }
            }
        }
        out.push('\n');
    }
    if out.len() > size {
        return Err(format!(
            "the variables need {} bytes, the block has {size}",
            out.len()
        ));
    }
    let mut bytes = out.into_bytes();
    bytes.resize(size, b'#');
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(body: &str) -> Vec<u8> {
        let mut b = format!("{HEADER}\n{body}").into_bytes();
        b.resize(1024, b'#');
        b
    }

    #[test]
    fn parses_escapes_and_comments_and_renders_them_back() {
        let b = block("# note\nx=a\\\\b\ny=l1\\\nl2\nz=\n");
        let lines = parse(&b).unwrap();
        assert_eq!(lines[2], Line::Var("x".into(), "a\\b".into()));
        assert_eq!(lines[3], Line::Var("y".into(), "l1\nl2".into()));
        assert_eq!(lines[4], Line::Var("z".into(), String::new()));
        assert_eq!(render(&lines, 1024).unwrap(), b);
    }

    #[test]
    fn refuses_garbage_and_overflow() {
        assert!(parse(&[b'#'; 1024]).unwrap_err().contains("header"));
        assert!(parse(&block("novalue\n"))
            .unwrap_err()
            .contains("not name=value"));
        let mut torn = block("x=1\n");
        torn[1000] = b'x';
        assert!(parse(&torn).unwrap_err().contains("padding"));
        assert!(parse(&block("x=unterminated")).is_err());
        let big = vec![Line::Var("x".into(), "v".repeat(2000))];
        assert!(render(&big, 1024)
            .unwrap_err()
            .contains("the block has 1024"));
    }
}

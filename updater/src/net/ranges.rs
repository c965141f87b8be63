//! Parts of one file over HTTP Range requests (RFC 9110 §14): the tail, a window, or many ranges
//! in one request, answered as `multipart/byteranges`. What comes back is checked against what
//! was asked (every range, in order, of the same file) before anybody reads it; the bytes
//! themselves are checked by whoever asked for them, against the signed manifest.
use std::io::{self, BufRead, BufReader, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{header, Client, Served};
use crate::cancel::CancelToken;
use crate::error::{Result, UpdaterError};

/// Ranges asked in one request: about 2 KiB of header, well inside what servers accept (nginx: 8
/// KiB per header line).
const MAX_RANGES_PER_REQUEST: usize = 96;
/// A header line of a part is short; anything longer is not a multipart answer.
const MAX_PART_LINE: u64 = 1024;

/// A file on a server that answers Range requests.
pub struct RangedFile {
    client: Client,
    /// After redirects: the ranges are asked where the file is.
    url: String,
    length: u64,
    /// A strong ETag or Last-Modified: every later request carries it as `If-Range`, so a file
    /// replaced meanwhile is answered whole (200) and refused instead of spliced.
    validator: Option<String>,
    downloaded: AtomicU64,
    cancel: Arc<CancelToken>,
}

/// `Content-Range: bytes START-END/LENGTH`, END inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentRange {
    pub start: u64,
    pub end: u64,
    pub length: u64,
}

impl ContentRange {
    pub fn parse(value: &str) -> Option<ContentRange> {
        let rest = value.trim().strip_prefix("bytes ")?;
        let (span, length) = rest.split_once('/')?;
        let (start, end) = span.split_once('-')?;
        let range = ContentRange {
            start: start.trim().parse().ok()?,
            end: end.trim().parse().ok()?,
            length: length.trim().parse().ok()?,
        };
        (range.start <= range.end && range.end < range.length).then_some(range)
    }

    /// Bytes in the range (never zero: END is inclusive).
    pub fn bytes(&self) -> u64 {
        self.end - self.start + 1
    }
}

impl RangedFile {
    /// The file a download found, when its server said it answers ranges and how long it is.
    pub fn of(client: &Client, served: &Served, cancel: Arc<CancelToken>) -> Option<RangedFile> {
        Some(RangedFile {
            client: client.clone(),
            url: served.url.clone(),
            length: served.length.filter(|_| served.ranges)?,
            validator: served.validator.clone(),
            downloaded: AtomicU64::new(0),
            cancel,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The file's length in bytes.
    pub fn length(&self) -> u64 {
        self.length
    }

    /// Bytes received from the server so far, answers' framing included.
    pub fn downloaded(&self) -> u64 {
        self.downloaded.load(Ordering::Relaxed)
    }

    /// The last `len` bytes of the file (all of it if shorter), or `None` when the server answers
    /// the first Range request with the whole file after all.
    pub fn tail(&self, len: u64) -> Result<Option<Vec<u8>>> {
        let start = self.length.saturating_sub(len);
        let response = self.get_ranges(&format!("{start}-"))?;
        if response.status().as_u16() != 206 {
            return Ok(None);
        }
        let range = header(response.headers(), "Content-Range").and_then(ContentRange::parse);
        if range.map(|r| (r.start, r.length)) != Some((start, self.length)) {
            return Err(self.broken(&format!(
                "asked for bytes {start}- of {}, the answer says {:?}",
                self.length,
                header(response.headers(), "Content-Range")
            )));
        }
        let mut out = Vec::new();
        Counted {
            inner: response.into_body().into_reader(),
            count: &self.downloaded,
        }
        .take(self.length - start)
        .read_to_end(&mut out)
        .map_err(|e| self.broken(&e.to_string()))?;
        if out.len() as u64 != self.length - start {
            return Err(self.broken("the answer ended early"));
        }
        Ok(Some(out))
    }

    /// Bytes `start..end` of the file, into memory (for small ranges).
    pub fn range(&self, start: u64, end: u64) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity((end - start) as usize);
        self.fetch(&[(start, end)], |_, part, _| {
            part.read_to_end(&mut out)
                .map_err(|e| self.broken(&e.to_string()))?;
            Ok(())
        })?;
        Ok(out)
    }

    /// Fetches `ranges` (`[start, end)`, sorted, not overlapping, not empty), many per request.
    /// `part` gets each part of the answers in order: where it starts (always where one of the
    /// ranges asked starts), its bytes, and how many; a part may cover several neighbouring ranges
    /// when the server joins them. Every range asked is answered or this fails.
    pub fn fetch(
        &self,
        ranges: &[(u64, u64)],
        mut part: impl FnMut(u64, &mut dyn Read, u64) -> Result<()>,
    ) -> Result<()> {
        for batch in ranges.chunks(MAX_RANGES_PER_REQUEST) {
            self.fetch_batch(batch, &mut part)?;
        }
        Ok(())
    }

    fn fetch_batch(
        &self,
        batch: &[(u64, u64)],
        part: &mut impl FnMut(u64, &mut dyn Read, u64) -> Result<()>,
    ) -> Result<()> {
        if self.cancel.is_cancelled() {
            return Err(UpdaterError::Network(format!("{}: cancelled", self.url)));
        }
        let spec = batch
            .iter()
            .map(|(start, end)| format!("{start}-{}", end - 1))
            .collect::<Vec<_>>()
            .join(",");
        let response = self.get_ranges(&spec)?;
        let status = response.status().as_u16();
        if status != 206 {
            return Err(UpdaterError::Network(format!(
                "{}: answered ranges with HTTP {status}; the file changed on the server, or the \
                 server stopped answering ranges",
                self.url
            )));
        }
        let content_type = header(response.headers(), "Content-Type").unwrap_or("");
        let boundary = multipart_boundary(content_type);
        let single = header(response.headers(), "Content-Range").and_then(ContentRange::parse);
        let body = Counted {
            inner: response.into_body().into_reader(),
            count: &self.downloaded,
        };
        let mut body = BufReader::with_capacity(64 << 10, body);
        let mut check = Coverage {
            asked: batch,
            next: 0,
        };
        match (boundary, single) {
            (Some(boundary), _) => {
                let mut parts = Parts::new(&mut body, &boundary);
                while let Some(range) = parts.next_part().map_err(|e| self.broken(&e))? {
                    self.deliver(&mut check, range, parts.body(), part)?;
                }
            }
            (None, Some(range)) => self.deliver(&mut check, range, &mut body, part)?,
            (None, None) => {
                return Err(self.broken("a 206 answer with neither a Content-Range nor parts"))
            }
        }
        check.finish().map_err(|e| self.broken(&e))
    }

    /// GET with `Range: bytes=SPEC`, and `If-Range` so that a replaced file is not spliced.
    fn get_ranges(&self, spec: &str) -> Result<super::Response> {
        let range = format!("bytes={spec}");
        let mut headers = vec![("Range", range.as_str())];
        if let Some(validator) = &self.validator {
            headers.push(("If-Range", validator.as_str()));
        }
        Ok(self.client.get(&self.url, &headers, None)?.1)
    }

    fn deliver(
        &self,
        check: &mut Coverage,
        range: ContentRange,
        body: &mut dyn BufRead,
        part: &mut impl FnMut(u64, &mut dyn Read, u64) -> Result<()>,
    ) -> Result<()> {
        if range.length != self.length {
            return Err(self.broken(&format!(
                "the file is now {} bytes, it was {}",
                range.length, self.length
            )));
        }
        check.accept(&range).map_err(|e| self.broken(&e))?;
        let mut data = body.take(range.bytes());
        part(range.start, &mut data, range.bytes())?;
        // Whatever the receiver left of the part is skipped, so the next part's header follows.
        io::copy(&mut data, &mut io::sink()).map_err(|e| self.broken(&e.to_string()))?;
        if data.limit() != 0 {
            return Err(self.broken("a part ended early"));
        }
        Ok(())
    }

    fn broken(&self, why: &str) -> UpdaterError {
        UpdaterError::Network(format!("{}: {why}", self.url))
    }
}

/// The boundary of a `multipart/byteranges` answer.
fn multipart_boundary(content_type: &str) -> Option<String> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/byteranges") {
        return None;
    }
    params.split(';').find_map(|p| {
        let (name, value) = p.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"').to_string())
            .filter(|b| !b.is_empty() && b.len() <= 70)
    })
}

/// Checks that the parts of an answer are the ranges asked, in order, each whole.
struct Coverage<'a> {
    asked: &'a [(u64, u64)],
    next: usize,
}

impl Coverage<'_> {
    fn accept(&mut self, range: &ContentRange) -> std::result::Result<(), String> {
        let Some(&(start, _)) = self.asked.get(self.next) else {
            return Err(format!(
                "sent bytes {}-{} beyond the ranges asked",
                range.start, range.end
            ));
        };
        if range.start != start {
            return Err(format!(
                "sent bytes {}-{} where bytes from {start} were asked next",
                range.start, range.end
            ));
        }
        let end = range.end + 1;
        let covered = self.asked[self.next..]
            .iter()
            .take_while(|(_, e)| *e <= end)
            .count();
        if covered == 0 {
            return Err(format!(
                "sent bytes {}-{}, less than the range asked",
                range.start, range.end
            ));
        }
        self.next += covered;
        Ok(())
    }

    fn finish(&self) -> std::result::Result<(), String> {
        if self.next == self.asked.len() {
            Ok(())
        } else {
            Err(format!(
                "answered {} of {} ranges asked",
                self.next,
                self.asked.len()
            ))
        }
    }
}

/// The parts of a `multipart/byteranges` body: each a delimiter line, header lines, an empty line
/// and the part's bytes; then the closing delimiter.
pub struct Parts<'a, R> {
    body: &'a mut R,
    delimiter: String,
    done: bool,
}

impl<'a, R: BufRead> Parts<'a, R> {
    pub fn new(body: &'a mut R, boundary: &str) -> Self {
        Parts {
            body,
            delimiter: format!("--{boundary}"),
            done: false,
        }
    }

    /// The next part's range, or `None` after the closing delimiter. Its bytes are then read
    /// from [`Parts::body`].
    pub fn next_part(&mut self) -> std::result::Result<Option<ContentRange>, String> {
        if self.done {
            return Ok(None);
        }
        let delimiter = loop {
            let line = self.line()?;
            if !line.is_empty() {
                break line;
            }
        };
        if delimiter == format!("{}--", self.delimiter) {
            self.done = true;
            return Ok(None);
        }
        if delimiter != self.delimiter {
            return Err("a part does not start with the boundary".into());
        }
        let mut range = None;
        loop {
            let line = self.line()?;
            if line.is_empty() {
                break;
            }
            let (name, value) = line
                .split_once(':')
                .ok_or("a part's header line without a colon")?;
            if name.trim().eq_ignore_ascii_case("content-range") {
                range = Some(
                    ContentRange::parse(value)
                        .ok_or("a part's Content-Range is not bytes START-END/LENGTH")?,
                );
            }
        }
        range
            .map(Some)
            .ok_or_else(|| "a part without a Content-Range".into())
    }

    pub fn body(&mut self) -> &mut R {
        self.body
    }

    /// One line without its CRLF (or LF); the body must not end inside the parts.
    fn line(&mut self) -> std::result::Result<String, String> {
        let mut line = Vec::new();
        (&mut *self.body)
            .take(MAX_PART_LINE)
            .read_until(b'\n', &mut line)
            .map_err(|e| e.to_string())?;
        if line.last() != Some(&b'\n') {
            return Err(if line.is_empty() {
                "the answer ended inside the parts".into()
            } else {
                "a part's line is too long or unterminated".into()
            });
        }
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        String::from_utf8(line).map_err(|_| "a part's header is not text".into())
    }
}

/// Counts what the server sent.
struct Counted<'a, R> {
    inner: R,
    count: &'a AtomicU64,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(body: &str, boundary: &str) -> std::result::Result<Vec<(u64, String)>, String> {
        let mut reader = io::Cursor::new(body.as_bytes().to_vec());
        let mut parts = Parts::new(&mut reader, boundary);
        let mut out = Vec::new();
        while let Some(range) = parts.next_part()? {
            let mut data = String::new();
            parts
                .body()
                .take(range.bytes())
                .read_to_string(&mut data)
                .map_err(|e| e.to_string())?;
            out.push((range.start, data));
        }
        Ok(out)
    }

    #[test]
    fn multipart_answers_parse_as_nginx_writes_them() {
        let body = "\r\n--0001\r\nContent-Type: application/zstd\r\nContent-Range: bytes 0-3/20\r\n\r\nabcd\r\n--0001\r\nContent-Range: bytes 10-11/20\r\n\r\nxy\r\n--0001--\r\n";
        assert_eq!(
            parse_all(body, "0001").unwrap(),
            vec![(0, "abcd".into()), (10, "xy".into())]
        );
    }

    #[test]
    fn broken_multipart_answers_are_refused_with_a_reason() {
        let cases = [
            (
                "--x\r\nContent-Range: bytes 0-3/20\r\n\r\nab",
                "ended inside the parts",
            ),
            ("--y\r\n\r\n", "does not start with the boundary"),
            (
                "--x\r\nContent-Range: bytes 5-3/20\r\n\r\n",
                "not bytes START-END/LENGTH",
            ),
            ("--x\r\nno colon\r\n\r\n", "without a colon"),
            ("--x\r\nContent-Type: a\r\n\r\n", "without a Content-Range"),
        ];
        for (body, expected) in cases {
            let err = parse_all(body, "x").unwrap_err();
            assert!(err.contains(expected), "{body:?}: {err}");
        }
        let long = format!("--x\r\n{}\r\n", "a".repeat(2000));
        assert!(parse_all(&long, "x").unwrap_err().contains("too long"));
    }

    #[test]
    fn content_ranges_parse_only_when_consistent() {
        assert_eq!(
            ContentRange::parse("bytes 2-5/10"),
            Some(ContentRange {
                start: 2,
                end: 5,
                length: 10
            })
        );
        for bad in [
            "bytes 2-5/*",
            "bytes 5-2/10",
            "bytes 2-10/10",
            "items 1-2/3",
            "bytes -1/2",
        ] {
            assert_eq!(ContentRange::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn boundaries_come_from_multipart_byteranges_only() {
        assert_eq!(
            multipart_boundary("multipart/byteranges; boundary=00000000001").as_deref(),
            Some("00000000001")
        );
        assert_eq!(
            multipart_boundary("Multipart/ByteRanges; boundary=\"a b\"").as_deref(),
            Some("a b")
        );
        assert_eq!(multipart_boundary("application/octet-stream"), None);
        assert_eq!(multipart_boundary("multipart/mixed; boundary=x"), None);
    }

    #[test]
    fn coverage_accepts_joined_ranges_and_refuses_gaps_and_strays() {
        let asked = [(0, 10), (20, 30), (40, 50)];
        let r = |start, end| ContentRange {
            start,
            end,
            length: 100,
        };
        let mut c = Coverage {
            asked: &asked,
            next: 0,
        };
        c.accept(&r(0, 29)).unwrap();
        c.accept(&r(40, 49)).unwrap();
        c.finish().unwrap();
        let mut c = Coverage {
            asked: &asked,
            next: 0,
        };
        assert!(c
            .accept(&r(20, 29))
            .unwrap_err()
            .contains("where bytes from 0"));
        c.accept(&r(0, 9)).unwrap();
        assert!(c
            .finish()
            .unwrap_err()
            .contains("answered 1 of 3 ranges asked"));
        assert!(c
            .accept(&r(20, 25))
            .unwrap_err()
            .contains("less than the range"));
    }
}

//! Entry points for the fuzz targets under fuzz/: the parsers of untrusted input that are private
//! to their modules. Each runs the parser to its end and discards the result; a panic is the bug.
use std::io::{self, BufReader};

use crate::bootloader::{file, grub, uboot};
use crate::daemon::http_server::read_request;
use ureq::http::{HeaderMap, HeaderName, HeaderValue};

use crate::net::{continues_at, file_identity, redirect_target};
use crate::url::HttpUrl;

/// A request to the local API, head and body, as a client on loopback would send it.
pub fn api_request(bytes: &[u8]) {
    if let Ok(mut request) = read_request(BufReader::new(bytes), None) {
        let _ = request.header("Authorization");
        let _ = io::copy(request.body(), &mut io::sink());
    }
}

/// An HTTP response head as a server would send it, parsed by httparse (the parser ureq uses),
/// then what the updater decides from it: where a redirect goes, what identifies the file, whether
/// a Range answer continues it at some offset.
pub fn http_response(bytes: &[u8]) {
    let mut slots = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut slots);
    let Ok(httparse::Status::Complete(_)) = response.parse(bytes) else {
        return;
    };
    let status = response.code.unwrap_or(0);
    let mut headers = HeaderMap::new();
    for h in response.headers.iter() {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_bytes(h.value),
        ) {
            headers.append(name, value);
        }
    }
    let base = HttpUrl::parse("http://updates.example/fleet/stable.toml").expect("a valid URL");
    let _ = redirect_target(&base, status, &headers);
    let (_, length) = file_identity(&headers);
    for offset in [0, length.unwrap_or(0) / 2, length.unwrap_or(u64::MAX)] {
        let _ = continues_at(status, &headers, offset);
    }
}

/// Boot environments in each backend's storage format.
pub fn boot_environments(bytes: &[u8]) {
    let _ = grub::parse(bytes);
    let _ = uboot::parse(bytes);
    if let Ok(text) = std::str::from_utf8(bytes) {
        let _ = file::parse(text);
    }
}

/// A `multipart/byteranges` body as a server or a man in the middle sends it (first line: the
/// boundary), read part by part the way an adaptive install reads it; and the same bytes as a
/// delta's ops.
pub fn byte_ranges(bytes: &[u8]) {
    use std::io::Read;
    if let Ok(ops) = bundle::delta::decode(bytes) {
        let _ = ops.len();
    }
    let Some(split) = bytes.iter().position(|&b| b == b'\n') else {
        return;
    };
    let Ok(boundary) = std::str::from_utf8(&bytes[..split]) else {
        return;
    };
    let _ = crate::net::ranges::ContentRange::parse(boundary);
    let mut body = std::io::BufReader::new(&bytes[split + 1..]);
    let mut parts = crate::net::ranges::Parts::new(&mut body, boundary);
    while let Ok(Some(range)) = parts.next_part() {
        let mut sink = Vec::new();
        if parts
            .body()
            .take(range.bytes())
            .read_to_end(&mut sink)
            .is_err()
        {
            return;
        }
    }
}

/// A URL from a configuration, an index or a Location header, and a reference to resolve against
/// it (the input split at its first NUL). Whatever comes out must read back as itself.
pub fn url(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let (base, reference) = text.split_once('\0').unwrap_or((&text, ""));
    let Ok(base) = HttpUrl::parse(base) else {
        return;
    };
    assert_eq!(
        HttpUrl::parse(base.as_str()).as_ref(),
        Ok(&base),
        "{base} reads back"
    );
    if let Ok(joined) = base.join(reference) {
        assert_eq!(
            HttpUrl::parse(joined.as_str()).as_ref(),
            Ok(&joined),
            "{joined} reads back"
        );
    }
}

#[cfg(test)]
mod tests {
    /// Inputs the fuzzers once crashed on, kept so that they never come back.
    #[test]
    fn past_crashes_stay_fixed() {
        // A redirect to a host that percent-decodes to a byte beyond ASCII among upper-case
        // letters: the IDNA back end once pinned for size (idna_adapter 1.0) asserted on it.
        let host = format!(
            "cateNt-.{w17}'..t{w18},{w20}'..t{w62}%80{w25}.-e",
            w17 = "W".repeat(17),
            w18 = "W".repeat(18),
            w20 = "W".repeat(20),
            w62 = "W".repeat(62),
            w25 = "W".repeat(25),
        );
        let response = format!("HTTP/1.1 302 FoLoca\nLocation://{host}\n\r\nLength:e2th");
        super::http_response(response.as_bytes());
    }
}

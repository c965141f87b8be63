//! Entry points for the fuzz targets under fuzz/: the parsers of untrusted input that are private
//! to their modules. Each runs the parser to its end and discards the result; a panic is the bug.
use std::io::{self, BufReader, Read};

use crate::bootloader::{file, grub, uboot};
use crate::daemon::http_server::read_request;
use crate::fleet::http::{continues_at, file_identity, redirect_target};

/// A request to the local API, head and body, as a client on loopback would send it.
pub fn api_request(bytes: &[u8]) {
    if let Ok(mut request) = read_request(BufReader::new(bytes), None) {
        let _ = request.header("Authorization");
        let _ = io::copy(request.body(), &mut io::sink());
    }
}

/// An HTTP response as a server would send it, through what the updater decides from one:
/// where a redirect goes, what identifies the file, whether a resume continues it; then its body
/// read with the framing it declares.
pub fn http_response(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let Ok(response) = text.parse::<ureq::Response>() else {
        return;
    };
    let base = url::Url::parse("http://updates.example/fleet/stable.toml").expect("a valid URL");
    let _ = redirect_target(&base, &response);
    let (_, length) = file_identity(&response);
    let _ = continues_at(&response, length.unwrap_or(0) / 2);
    let _ = io::copy(&mut response.into_reader().take(1 << 20), &mut io::sink());
}

/// Boot environments in each backend's storage format.
pub fn boot_environments(bytes: &[u8]) {
    let _ = grub::parse(bytes);
    let _ = uboot::parse(bytes);
    if let Ok(text) = std::str::from_utf8(bytes) {
        let _ = file::parse(text);
    }
}

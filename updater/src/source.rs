//! Where a bundle comes from: a file, standard input (`-`) or an http(s):// URL. Every source is a
//! plain forward stream, so memory stays bounded whatever the bundle's size.
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use crate::cancel::CancelToken;
use crate::config::HttpSettings;
use crate::error::{Result, UpdaterError};
use crate::net::{self as http, Client, Download, CANCELLED};

const BUFFER: usize = 256 << 10;

/// Where a bundle is, as a user names it: `-`, an http(s):// URL, or else a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleSource {
    Stdin,
    Url(String),
    File(PathBuf),
}

impl FromStr for BundleSource {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> std::result::Result<Self, Self::Err> {
        Ok(if text == "-" {
            BundleSource::Stdin
        } else if http::is_url(text) {
            BundleSource::Url(text.to_string())
        } else {
            BundleSource::File(PathBuf::from(text))
        })
    }
}

impl fmt::Display for BundleSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BundleSource::Stdin => f.write_str("-"),
            BundleSource::Url(url) => f.write_str(url),
            BundleSource::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// The bundle's bytes, in order.
pub type Stream = Box<dyn Read + Send>;

/// `http`: time limits and trusted CAs for URLs; `cancel` ends a download even while its server
/// stalls.
pub fn open(
    source: &BundleSource,
    http: &HttpSettings,
    cancel: Option<Arc<CancelToken>>,
) -> Result<Stream> {
    Ok(match source {
        BundleSource::Stdin => Box::new(BufReader::with_capacity(BUFFER, io::stdin())),
        // Buffered already: it hands over the pieces its thread received.
        BundleSource::Url(url) => Box::new(Download::start(&Client::new(http)?, url, cancel)?),
        BundleSource::File(path) => {
            let file = File::open(path).map_err(UpdaterError::io(format!(
                "opening bundle {}",
                path.display()
            )))?;
            Box::new(BufReader::with_capacity(BUFFER, file))
        }
    })
}

/// Ends the stream with an error once cancelled, which ends the install that reads it.
pub struct Cancellable<R> {
    pub inner: R,
    pub cancel: Arc<CancelToken>,
}

impl<R: Read> Read for Cancellable<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancel.is_cancelled() {
            return Err(io::Error::other(CANCELLED));
        }
        self.inner.read(buf)
    }
}

//! Where a bundle comes from: a file, standard input (`-`) or an http(s):// URL. Every source is a
//! plain forward stream, so memory stays bounded whatever the bundle's size.
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::sync::Arc;

use crate::cancel::CancelToken;
use crate::config::HttpSettings;
use crate::error::{Result, UpdaterError};
use crate::net::{self as http, Client, Download, CANCELLED};

const BUFFER: usize = 256 << 10;

pub type Source = Box<dyn Read + Send>;

/// `http`: time limits and trusted CAs for URLs; `cancel` ends a download even while its server
/// stalls.
pub fn open(source: &str, http: &HttpSettings, cancel: Option<Arc<CancelToken>>) -> Result<Source> {
    if source == "-" {
        return Ok(Box::new(BufReader::with_capacity(BUFFER, io::stdin())));
    }
    if http::is_url(source) {
        // Buffered already: it hands over the pieces its thread received.
        return Ok(Box::new(Download::start(
            &Client::new(http)?,
            source,
            cancel,
        )?));
    }
    let file = File::open(source).map_err(|e| UpdaterError::Io {
        context: format!("opening bundle {source}"),
        source: e,
    })?;
    Ok(Box::new(BufReader::with_capacity(BUFFER, file)))
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

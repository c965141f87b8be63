//! Where a bundle comes from: a file, standard input (`-`) or an http(s):// URL. Every source is a
//! plain forward stream, so memory stays bounded whatever the bundle's size.
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::error::{Result, UpdaterError};
use crate::fleet::http::{self, Download};

const BUFFER: usize = 256 << 10;

pub type Source = Box<dyn Read + Send>;

/// `ca_file`: extra CA certificates for https:// (the config's `http.ca_file`).
pub fn open(source: &str, ca_file: Option<&Path>) -> Result<Source> {
    if source == "-" {
        return Ok(Box::new(BufReader::with_capacity(BUFFER, io::stdin())));
    }
    if http::is_url(source) {
        let download = Download::start(http::agent(ca_file)?, source)?;
        return Ok(Box::new(BufReader::with_capacity(BUFFER, download)));
    }
    let file = File::open(source).map_err(|e| UpdaterError::Io {
        context: format!("opening bundle {source}"),
        source: e,
    })?;
    Ok(Box::new(BufReader::with_capacity(BUFFER, file)))
}

/// Ends the stream with an error once `cancel` is set, which ends the install that reads it.
pub struct Cancellable<R> {
    pub inner: R,
    pub cancel: Arc<AtomicBool>,
}

impl<R: Read> Read for Cancellable<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(io::Error::other("cancelled"));
        }
        self.inner.read(buf)
    }
}

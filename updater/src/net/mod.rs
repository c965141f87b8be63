//! HTTP(S) for the updater: release indexes, bundle downloads, reports and health checks.
//!
//! Whatever a server sends ends in an error, never in a crash: redirects are followed here, not
//! inside the HTTP library, and only to http(s) URLs with a host (ureq 2 panicked on a `file:` or
//! `data:` Location, and on a header line without a colon, which is why this is ureq 3, whose
//! parser is httparse); every request has a deadline, and a bundle download that falls below a
//! minimum rate is broken off. A download that breaks off is resumed where it stopped with a Range request;
//! `If-Range` makes the server send the whole file instead if it changed meanwhile, which is
//! refused rather than spliced. Whatever bytes arrive, the bundle reader checks them against the
//! signed chunk hashes.
use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use tracing::warn;
use ureq::http::HeaderMap;
use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};

use crate::cancel::CancelToken;
pub use crate::config::{is_url, HttpSettings};
use crate::error::{Result, UpdaterError};
use crate::url::{HttpUrl, UrlError};

pub mod ranges;

/// A download breaks off at most this many times before the install gives up.
const MAX_RESUMES: u32 = 8;
/// Redirects followed for one request, as browsers and curl's `--max-redirs` defaults go.
pub const MAX_REDIRECTS: usize = 5;
const USER_AGENT: &str = concat!("updater/", env!("CARGO_PKG_VERSION"));
/// How often a reader waiting for the download checks whether it was cancelled.
const CANCEL_POLL: Duration = Duration::from_millis(200);
/// Pieces of a download in flight between the network thread and the install.
const PIECES_IN_FLIGHT: usize = 4;
const PIECE: usize = 256 << 10;
/// Bytes a download may hold beyond what its reader took (see `Transfer::wait_for_reader`).
const MIN_LEAD: u64 = 64 << 10;
const MAX_LEAD: u64 = 1 << 20;

/// A response with its body still to be read.
pub type Response = ureq::http::Response<ureq::Body>;

/// An HTTP(S) client with the updater's settings. HTTPS trusts the Mozilla roots and, when given,
/// the CA certificates in `ca_file`, for fleets served under a private CA.
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    settings: HttpSettings,
}

impl Client {
    pub fn new(settings: &HttpSettings) -> Result<Client> {
        let tls = TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .root_certs(root_certs(settings.ca_file.as_deref())?)
            .build();
        let config = ureq::Agent::config_builder()
            .user_agent(USER_AGENT)
            .max_redirects(0)
            .http_status_as_error(false)
            // A fresh connection per request: the updater makes a handful, and a pooled one that
            // the server has closed meanwhile would fail the next request.
            .max_idle_connections(0)
            .max_idle_connections_per_host(0)
            .timeout_connect(Some(settings.connect_timeout))
            .timeout_recv_response(Some(settings.timeout))
            .timeout_per_read(Some(settings.stall_time))
            .tls_config(tls)
            .build();
        Ok(Client {
            agent: ureq::Agent::new_with_config(config),
            settings: settings.clone(),
        })
    }

    pub fn settings(&self) -> &HttpSettings {
        &self.settings
    }

    /// GET `url`, following redirects to http(s) URLs. `deadline` bounds the whole exchange, body
    /// included (for small documents: see `fetch_small`); without it, the answer's headers must
    /// come within `timeout` and every read within `stall_time`. Answers with a status of 400 or
    /// more are errors; the final URL comes back with the response.
    pub fn get(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        deadline: Option<Instant>,
    ) -> Result<(String, Response)> {
        self.get_raw(url, headers, deadline)
            .map_err(|f| UpdaterError::Network(f.into_message()))
    }

    fn get_raw(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        deadline: Option<Instant>,
    ) -> Result<(String, Response), Failure> {
        let mut url = checked_url(url).map_err(|e| Failure::Refused(e.to_string()))?;
        for _ in 0..=MAX_REDIRECTS {
            let mut request = self.agent.get(url.as_str());
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            if let Some(deadline) = deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Failure::Transport(format!("{url}: deadline passed")));
                }
                request = request.config().timeout_global(Some(left)).build();
            }
            let response = request
                .call()
                .map_err(|e| Failure::of(url.as_str(), e, &self.settings))?;
            let status = response.status();
            if status.as_u16() >= 400 {
                return Err(Failure::Refused(format!(
                    "{url}: HTTP {} {}",
                    status.as_u16(),
                    status.canonical_reason().unwrap_or("")
                )));
            }
            if !status.is_redirection() {
                return Ok((url.to_string(), response));
            }
            url = redirect_target(&url, status.as_u16(), response.headers())
                .map_err(Failure::Refused)?;
        }
        Err(Failure::Refused(format!(
            "{url}: more than {MAX_REDIRECTS} redirects"
        )))
    }

    /// A small document (a release index), read whole within `timeout`; larger answers are
    /// refused.
    pub fn fetch_small(&self, url: &str, limit: u64) -> Result<Vec<u8>> {
        let deadline = Instant::now() + self.settings.timeout;
        let (url, response) = self.get(url, &[], Some(deadline))?;
        let mut body = Vec::new();
        let read = response
            .into_body()
            .into_reader()
            .take(limit + 1)
            .read_to_end(&mut body);
        if let Err(e) = read {
            return Err(UpdaterError::Network(if Instant::now() >= deadline {
                format!(
                    "{url}: not complete within {} s",
                    self.settings.timeout.as_secs()
                )
            } else {
                format!("{url}: {e}")
            }));
        }
        if body.len() as u64 > limit {
            return Err(UpdaterError::Network(format!(
                "{url}: more than {limit} bytes; not a release index"
            )));
        }
        Ok(body)
    }

    /// POSTs a JSON document within `timeout`; redirects are not followed (a report goes where it
    /// is configured to go). Returns the status.
    pub fn post_json(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<u16, String> {
        let url = checked_url(url).map_err(|e| e.to_string())?;
        let mut request = self
            .agent
            .post(url.as_str())
            .config()
            .timeout_global(Some(self.settings.timeout))
            .build()
            .header("Content-Type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request
            .send(body)
            .map_err(|e| Failure::of(url.as_str(), e, &self.settings).into_message())?;
        match response.status().as_u16() {
            code @ 400.. => Err(format!(
                "{url}: HTTP {code} {}",
                response.status().canonical_reason().unwrap_or("")
            )),
            code => Ok(code),
        }
    }

    /// The status a GET answers within `timeout` (redirects are answers too), for health checks.
    pub fn status_of(&self, url: &str, timeout: Duration) -> Result<u16, String> {
        let url = checked_url(url).map_err(|e| e.to_string())?;
        self.agent
            .get(url.as_str())
            .config()
            .timeout_global(Some(timeout))
            .build()
            .call()
            .map(|response| response.status().as_u16())
            .map_err(|e| format!("GET {url}: {e}"))
    }
}

/// Where a redirect answer sends the request next: only to an http(s) URL with a host.
pub fn redirect_target(url: &HttpUrl, status: u16, headers: &HeaderMap) -> Result<HttpUrl, String> {
    let location = header(headers, "Location")
        .ok_or_else(|| format!("{url}: HTTP {status} without a usable Location"))?;
    url.join(location).map_err(|e| match e {
        UrlError::Scheme => format!("{url}: redirect refused: '{location}': {e}"),
        e => format!("{url}: redirect to an invalid URL: {e}"),
    })
}

/// A header's value when it is text.
pub(crate) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// What a first answer says about the file: a validator (a strong ETag, else Last-Modified) that
/// a resume must match, and the length.
pub fn file_identity(headers: &HeaderMap) -> (Option<String>, Option<u64>) {
    let validator = header(headers, "ETag")
        .filter(|tag| !tag.starts_with("W/"))
        .or_else(|| header(headers, "Last-Modified"))
        .map(str::to_string);
    let length = header(headers, "Content-Length").and_then(|l| l.parse().ok());
    (validator, length)
}

/// Whether an answer to `Range: bytes=OFFSET-` continues the same file at `offset`.
pub fn continues_at(status: u16, headers: &HeaderMap, offset: u64) -> bool {
    let expected = format!("bytes {offset}-");
    status == 206 && header(headers, "Content-Range").is_some_and(|r| r.starts_with(&expected))
}

/// Only http and https URLs with a host reach the HTTP library.
pub fn checked_url(url: &str) -> Result<HttpUrl> {
    HttpUrl::parse(url).map_err(|e| UpdaterError::Network(format!("'{url}': {e}")))
}

/// The Mozilla roots and the CA certificates (PEM) in `ca_file`. One set of roots serves both
/// cases (ureq's own, a second copy of the same roots, is left out of the build).
fn root_certs(ca_file: Option<&Path>) -> Result<RootCerts> {
    let private = ca_file.map(private_cas).transpose()?.unwrap_or_default();
    let roots = webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .chain(&private)
        .map(|der| Certificate::from_der(der.as_ref()).to_owned())
        .collect::<Vec<_>>();
    Ok(RootCerts::new_with_certs(&roots))
}

/// The CA certificates (PEM) in `ca_file`; each must be usable as a root.
fn private_cas(ca_file: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let bad = |message: String| UpdaterError::config(ca_file, message);
    let private = CertificateDer::pem_file_iter(ca_file)
        .map_err(|e| match e {
            rustls_pki_types::pem::Error::Io(e) => UpdaterError::config_unreadable(ca_file)(e),
            other => bad(other.to_string()),
        })?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if private.is_empty() {
        return Err(bad("holds no PEM certificate".into()));
    }
    let mut check = rustls::RootCertStore::empty();
    for certificate in &private {
        check
            .add(certificate.clone())
            .map_err(|e| bad(format!("not a usable CA certificate: {e}")))?;
    }
    Ok(private)
}

/// Why a request failed: the server refused (an HTTP error, a bad redirect), or the transport
/// broke (worth another try when resuming).
enum Failure {
    Refused(String),
    Transport(String),
}

impl Failure {
    /// The HTTP library's own time limits are ours (`settings`), so they are said in our words:
    /// whichever of it and our own watch notices first, the message is the same.
    fn of(url: &str, err: ureq::Error, settings: &HttpSettings) -> Failure {
        let seconds = |d: Duration| d.as_secs_f64();
        match err {
            ureq::Error::StatusCode(code) => Failure::Refused(format!("{url}: HTTP {code}")),
            ureq::Error::Timeout(ureq::Timeout::RecvResponse) => Failure::Transport(format!(
                "{url}: no answer within {} s",
                seconds(settings.timeout)
            )),
            ureq::Error::Timeout(ureq::Timeout::Connect) => Failure::Transport(format!(
                "{url}: no connection within {} s",
                seconds(settings.connect_timeout)
            )),
            ureq::Error::Timeout(ureq::Timeout::PerRead) => Failure::Transport(format!(
                "{url}: nothing received for {} s",
                seconds(settings.stall_time)
            )),
            other => Failure::Transport(format!("{url}: {other}")),
        }
    }

    fn into_message(self) -> String {
        match self {
            Failure::Refused(m) | Failure::Transport(m) => m,
        }
    }
}

/// A bundle as a stream of bytes that survives dropped connections. The transfer runs on its own
/// thread, so a reader that is cancelled returns within `CANCEL_POLL` even while the server
/// stalls, and no request goes out after the cancel. A server that sends nothing at all (not even
/// the headers of a resume, which no rate window watches) is given up on after `timeout` plus
/// `stall_time`.
pub struct Download {
    served: Served,
    /// Bytes the download thread has received, whether read yet or not, and bytes handed to the
    /// reader: the thread stays at most `lead` ahead.
    received: Arc<AtomicU64>,
    taken: Arc<AtomicU64>,
    pieces: Receiver<io::Result<Vec<u8>>>,
    piece: Vec<u8>,
    at: usize,
    cancel: Arc<CancelToken>,
    finished: bool,
    /// How long the reader waits for the next piece before it gives up.
    patience: Duration,
}

/// What the first answer to a download said about the file.
#[derive(Debug, Clone, Default)]
pub struct Served {
    /// After redirects.
    pub url: String,
    /// A strong ETag or Last-Modified, which a later Range request must match.
    pub validator: Option<String>,
    pub length: Option<u64>,
    /// `Accept-Ranges: bytes`: parts of the file can be fetched alone.
    pub ranges: bool,
}

impl Download {
    pub fn served(&self) -> &Served {
        &self.served
    }

    /// Bytes the download has received so far (read or not), also after it is dropped.
    pub fn received(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.received)
    }

    /// Starts the download; an unreachable server or an HTTP error (404 ...) fails here, before
    /// anything else happens, and so does a server that does not answer within `timeout`.
    pub fn start(client: &Client, url: &str, cancel: Option<Arc<CancelToken>>) -> Result<Download> {
        let cancel = cancel.unwrap_or_default();
        let settings = client.settings.clone();
        let (answered, answer) = mpsc::sync_channel::<Result<Served>>(1);
        let received = Arc::new(AtomicU64::new(0));
        let taken = Arc::new(AtomicU64::new(0));
        let (counter, reader_took) = (Arc::clone(&received), Arc::clone(&taken));
        let (sender, pieces) = mpsc::sync_channel(PIECES_IN_FLIGHT);
        let (client, first_url, token) = (client.clone(), url.to_string(), Arc::clone(&cancel));
        thread::Builder::new()
            .name("download".into())
            .spawn(move || {
                let (url, response) = match client.get(&first_url, &[], None) {
                    Ok(answer) => answer,
                    Err(err) => {
                        let _ = answered.send(Err(err));
                        return;
                    }
                };
                let (validator, length) = file_identity(response.headers());
                let served = Served {
                    url: url.clone(),
                    validator: validator.clone(),
                    length,
                    ranges: header(response.headers(), "Accept-Ranges")
                        .is_some_and(|r| r.trim().eq_ignore_ascii_case("bytes")),
                };
                if answered.send(Ok(served)).is_err() {
                    return; // the caller gave up waiting
                }
                let transfer = Transfer {
                    client,
                    url,
                    validator,
                    length,
                    offset: 0,
                    resumes: 0,
                    cancel: token,
                    rate: RateWatch::default(),
                    reconnect: None,
                    received: counter,
                    taken: reader_took,
                };
                transfer.run(response.into_body().into_reader(), sender);
            })
            .map_err(UpdaterError::io("starting the download thread"))?;
        let deadline = Instant::now() + settings.timeout;
        let served = loop {
            if cancel.is_cancelled() {
                return Err(UpdaterError::Network(format!("{url}: cancelled")));
            }
            match answer.recv_timeout(CANCEL_POLL) {
                Ok(Ok(served)) => break served,
                Ok(Err(err)) => return Err(err),
                Err(RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
                Err(_) => {
                    return Err(UpdaterError::Network(format!(
                        "{url}: no answer within {} s",
                        settings.timeout.as_secs_f64()
                    )))
                }
            }
        };
        Ok(Download {
            served,
            received,
            taken,
            pieces,
            piece: Vec::new(),
            at: 0,
            cancel,
            finished: false,
            patience: settings.timeout + settings.stall_time,
        })
    }
}

impl Read for Download {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let since = Instant::now();
        while self.at == self.piece.len() {
            if self.finished || buf.is_empty() {
                return Ok(0);
            }
            if self.cancel.is_cancelled() {
                return Err(cancelled());
            }
            match self.pieces.recv_timeout(CANCEL_POLL) {
                Ok(Ok(piece)) if piece.is_empty() => self.finished = true,
                Ok(Ok(piece)) => {
                    self.taken
                        .fetch_add(piece.len() as u64, AtomicOrdering::Relaxed);
                    (self.piece, self.at) = (piece, 0);
                }
                Ok(Err(e)) => return Err(e),
                Err(RecvTimeoutError::Timeout) if since.elapsed() < self.patience => {}
                Err(RecvTimeoutError::Timeout) => {
                    return Err(failed(format!(
                        "nothing arrived for {} s",
                        self.patience.as_secs()
                    )))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(io::Error::other("the download thread stopped"))
                }
            }
        }
        let n = buf.len().min(self.piece.len() - self.at);
        buf[..n].copy_from_slice(&self.piece[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Why a download failed for good (the server refused, resuming gave up, nothing arrived), carried
/// inside the `io::Error` the reader returns so the install reports it as a network failure
/// (exit 13).
#[derive(Debug)]
pub struct DownloadFailed(pub String);

impl std::fmt::Display for DownloadFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DownloadFailed {}

fn failed(message: String) -> io::Error {
    io::Error::other(DownloadFailed(message))
}

/// The download failure behind an install error, if that is what it is.
pub fn download_failure(err: &UpdaterError) -> Option<String> {
    let UpdaterError::Bundle(bundle::BundleError::Io { source, .. }) = err else {
        return None;
    };
    source
        .get_ref()
        .and_then(|e| e.downcast_ref::<DownloadFailed>())
        .map(|e| e.0.clone())
}

/// What a cancelled download reads; the install turns it into `UpdaterError::Cancelled`.
fn cancelled() -> io::Error {
    io::Error::other(CANCELLED)
}

pub const CANCELLED: &str = "cancelled";

/// The network side of a `Download`.
struct Transfer {
    client: Client,
    url: String,
    /// ETag or Last-Modified of the first response: a resume must get the same file.
    validator: Option<String>,
    length: Option<u64>,
    offset: u64,
    resumes: u32,
    cancel: Arc<CancelToken>,
    rate: RateWatch,
    /// Why the connection must be replaced before the next read.
    reconnect: Option<String>,
    received: Arc<AtomicU64>,
    taken: Arc<AtomicU64>,
}

/// Bytes over the time spent waiting for them (not waiting for the install to take them), to
/// tell a trickle from a transfer.
#[derive(Default)]
struct RateWatch {
    waited: Duration,
    bytes: u64,
}

impl RateWatch {
    /// `Some(reason)` once a whole window of waiting passed below the minimum rate.
    fn add(&mut self, bytes: usize, waited: Duration, settings: &HttpSettings) -> Option<String> {
        self.bytes += bytes as u64;
        self.waited += waited;
        if self.waited < settings.stall_time {
            return None;
        }
        let rate = self.bytes as f64 / self.waited.as_secs_f64();
        *self = RateWatch::default();
        (rate < settings.min_rate as f64).then(|| {
            format!(
                "{rate:.0} bytes/s over {} s, below the minimum of {} bytes/s",
                settings.stall_time.as_secs(),
                settings.min_rate
            )
        })
    }
}

type Body = Box<dyn Read + Send>;

impl Transfer {
    /// How far the download may run ahead of its reader: little at first, so that a reader that
    /// stops after the head of a bundle (to fetch the rest in parts) leaves little unused, and
    /// up to `MAX_LEAD` once it streams. Waits until the reader has taken enough; returns the size
    /// of the next piece.
    fn wait_for_reader(&self) -> io::Result<usize> {
        loop {
            let taken = self.taken.load(AtomicOrdering::Relaxed);
            let lead = (taken / 2).clamp(MIN_LEAD, MAX_LEAD);
            let room = (taken + lead).saturating_sub(self.offset);
            if room > 0 {
                return Ok(room.min(PIECE as u64) as usize);
            }
            // The reader is gone: nobody will take more.
            if self.cancel.is_cancelled() || Arc::strong_count(&self.taken) == 1 {
                return Err(cancelled());
            }
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// Sends pieces until the end (an empty piece) or an error; stops when the reader is gone.
    fn run(mut self, body: impl Read + Send + 'static, sender: SyncSender<io::Result<Vec<u8>>>) {
        let mut body: Body = Box::new(body);
        loop {
            let piece = self.next_piece(&mut body);
            let last = !matches!(&piece, Ok(p) if !p.is_empty());
            if sender.send(piece).is_err() || last {
                return;
            }
        }
    }

    fn next_piece(&mut self, body: &mut Body) -> io::Result<Vec<u8>> {
        let mut piece = vec![0u8; self.wait_for_reader()?];
        loop {
            if self.cancel.is_cancelled() {
                return Err(cancelled());
            }
            if let Some(why) = self.reconnect.take() {
                *body = self.resume(&why)?;
            }
            let started = Instant::now();
            let outcome = body.read(&mut piece);
            let got = *outcome.as_ref().unwrap_or(&0);
            self.reconnect = self.rate.add(got, started.elapsed(), &self.client.settings);
            match outcome {
                Ok(0) if self.length.is_some_and(|len| self.offset < len) => {
                    self.reconnect = Some("connection closed early".into());
                }
                Ok(n) => {
                    self.offset += n as u64;
                    self.received.fetch_add(n as u64, AtomicOrdering::Relaxed);
                    piece.truncate(n);
                    return Ok(piece);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => self.reconnect = Some(e.to_string()),
            }
        }
    }

    fn resume(&mut self, why: &str) -> io::Result<Body> {
        self.rate = RateWatch::default();
        let Some(validator) = self.validator.clone() else {
            return Err(failed(format!(
                "download of {} broke off at byte {} ({why}) and cannot resume: the server sends no ETag or Last-Modified",
                self.url, self.offset
            )));
        };
        loop {
            if self.resumes == MAX_RESUMES {
                return Err(failed(format!(
                    "download of {} broke off at byte {} ({why}); gave up after {MAX_RESUMES} resumes",
                    self.url, self.offset
                )));
            }
            self.resumes += 1;
            warn!(url = %self.url, offset = self.offset, why, attempt = self.resumes, "download broke off; resuming");
            self.sleep_unless_cancelled(backoff(self.resumes))?;
            let range = format!("bytes={}-", self.offset);
            let headers = [("Range", range.as_str()), ("If-Range", validator.as_str())];
            // No deadline: ureq would apply it to the whole resumed body. A server that stays
            // silent here is given up on by the reader's patience.
            let response = match self.client.get_raw(&self.url, &headers, None) {
                Ok((_, response)) => response,
                Err(Failure::Transport(e)) => {
                    warn!(url = %self.url, error = %e, "resume failed; retrying");
                    continue;
                }
                Err(Failure::Refused(e)) => return Err(failed(e)),
            };
            if !continues_at(response.status().as_u16(), response.headers(), self.offset) {
                return Err(failed(format!(
                    "{} changed on the server during the download (or the server ignores Range); start again",
                    self.url
                )));
            }
            return Ok(Box::new(response.into_body().into_reader()));
        }
    }

    fn sleep_unless_cancelled(&self, pause: Duration) -> io::Result<()> {
        let until = Instant::now() + pause;
        while Instant::now() < until {
            if self.cancel.is_cancelled() {
                return Err(cancelled());
            }
            thread::sleep(CANCEL_POLL.min(until.saturating_duration_since(Instant::now())));
        }
        Ok(())
    }
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250 << attempt.min(7))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_urls_with_a_host_are_fetched() {
        for bad in [
            "file:///etc/passwd",
            "data:text/plain,x",
            "mailto:a@b.c",
            "unix:/run/x.sock",
            "http://",
            "ftp://host/x",
        ] {
            assert!(checked_url(bad).is_err(), "{bad} passed");
        }
        assert!(checked_url("https://updates.example/x.toml").is_ok());
        assert!(checked_url("http://127.0.0.1:8/x").is_ok());
    }
}

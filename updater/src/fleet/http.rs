//! HTTP(S) downloads with bounded memory. A bundle download that breaks off is resumed where it
//! stopped with a Range request; `If-Range` makes the server send the whole file instead if it
//! changed meanwhile, which is refused rather than spliced. Whatever bytes arrive, the bundle
//! reader checks them against the signed chunk hashes.
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use tracing::warn;

use crate::error::{Result, UpdaterError};

/// A download breaks off at most this many times before the install gives up.
const MAX_RESUMES: u32 = 8;
const USER_AGENT: &str = concat!("updater/", env!("CARGO_PKG_VERSION"));

/// An HTTP(S) client. HTTPS trusts the Mozilla roots (webpki-roots) and, when given, the CA
/// certificates in `ca_file` (PEM), for fleets served under a private CA.
pub fn agent(ca_file: Option<&Path>) -> Result<ureq::Agent> {
    Ok(agent_builder(ca_file)?
        .timeout_connect(Duration::from_secs(30))
        .timeout_read(Duration::from_secs(60))
        .build())
}

/// The client settings every request of the updater shares (user agent, trusted CAs), for
/// callers that set their own time limits.
pub fn agent_builder(ca_file: Option<&Path>) -> Result<ureq::AgentBuilder> {
    let builder = ureq::AgentBuilder::new().user_agent(USER_AGENT);
    Ok(match ca_file {
        Some(path) => builder.tls_config(Arc::new(tls_config(path)?)),
        None => builder,
    })
}

fn tls_config(ca_file: &Path) -> Result<rustls::ClientConfig> {
    let bad = |message: String| UpdaterError::Config {
        path: ca_file.display().to_string(),
        message,
    };
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let certificates = CertificateDer::pem_file_iter(ca_file)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certificates.is_empty() {
        return Err(bad("holds no PEM certificate".into()));
    }
    for certificate in certificates {
        roots
            .add(certificate)
            .map_err(|e| bad(format!("not a usable CA certificate: {e}")))?;
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
        .map_err(|e| bad(e.to_string()))
}

pub fn is_url(source: &str) -> bool {
    source.starts_with("http://") || source.starts_with("https://")
}

/// A failed request as one line: `what` (the URL, or what was being done) and the cause.
pub(crate) fn network(what: &str, err: ureq::Error) -> UpdaterError {
    match err {
        ureq::Error::Status(code, response) => {
            UpdaterError::Network(format!("{what}: HTTP {code} {}", response.status_text()))
        }
        ureq::Error::Transport(t) => UpdaterError::Network(format!("{what}: {t}")),
    }
}

/// A small document (a release index), read whole; larger answers are refused.
pub fn fetch_small(agent: &ureq::Agent, url: &str, limit: u64) -> Result<Vec<u8>> {
    let response = agent.get(url).call().map_err(|e| network(url, e))?;
    let mut body = Vec::new();
    response
        .into_reader()
        .take(limit + 1)
        .read_to_end(&mut body)
        .map_err(|e| UpdaterError::Network(format!("{url}: {e}")))?;
    if body.len() as u64 > limit {
        return Err(UpdaterError::Network(format!(
            "{url}: more than {limit} bytes; not a release index"
        )));
    }
    Ok(body)
}

/// A bundle as a stream of bytes that survives dropped connections.
pub struct Download {
    agent: ureq::Agent,
    url: String,
    /// ETag or Last-Modified of the first response: a resume must get the same file.
    validator: Option<String>,
    length: Option<u64>,
    offset: u64,
    body: Option<Box<dyn Read + Send + Sync>>,
    resumes: u32,
}

impl Download {
    /// Starts the download; an unreachable server or an HTTP error (404 ...) fails here, before
    /// anything else happens.
    pub fn start(agent: ureq::Agent, url: &str) -> Result<Download> {
        let response = agent.get(url).call().map_err(|e| network(url, e))?;
        let validator = response
            .header("ETag")
            .filter(|tag| !tag.starts_with("W/"))
            .or_else(|| response.header("Last-Modified"))
            .map(str::to_string);
        let length = response
            .header("Content-Length")
            .and_then(|l| l.parse().ok());
        Ok(Download {
            agent,
            url: url.to_string(),
            validator,
            length,
            offset: 0,
            body: Some(Box::new(response.into_reader())),
            resumes: 0,
        })
    }

    /// How often the download was resumed.
    pub fn resumes(&self) -> u32 {
        self.resumes
    }

    fn resume(&mut self, why: &str) -> io::Result<()> {
        self.body = None;
        let Some(validator) = self.validator.clone() else {
            return Err(io::Error::other(format!(
                "download of {} broke off at byte {} ({why}) and cannot resume: the server sends no ETag or Last-Modified",
                self.url, self.offset
            )));
        };
        loop {
            if self.resumes == MAX_RESUMES {
                return Err(io::Error::other(format!(
                    "download of {} broke off at byte {} ({why}); gave up after {MAX_RESUMES} resumes",
                    self.url, self.offset
                )));
            }
            self.resumes += 1;
            warn!(url = %self.url, offset = self.offset, why, attempt = self.resumes, "download broke off; resuming");
            thread::sleep(backoff(self.resumes));
            let request = self
                .agent
                .get(&self.url)
                .set("Range", &format!("bytes={}-", self.offset))
                .set("If-Range", &validator);
            let response = match request.call() {
                Ok(response) => response,
                Err(ureq::Error::Transport(t)) => {
                    warn!(url = %self.url, error = %t, "resume failed; retrying");
                    continue;
                }
                Err(err) => return Err(io::Error::other(network(&self.url, err).to_string())),
            };
            let expected = format!("bytes {}-", self.offset);
            let ranged = response.status() == 206
                && response
                    .header("Content-Range")
                    .is_some_and(|r| r.starts_with(&expected));
            if !ranged {
                return Err(io::Error::other(format!(
                    "{} changed on the server during the download (or the server ignores Range); start again",
                    self.url
                )));
            }
            self.body = Some(Box::new(response.into_reader()));
            return Ok(());
        }
    }
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250 << attempt.min(7))
}

impl Read for Download {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let Some(body) = self.body.as_mut() else {
                self.resume("no connection")?;
                continue;
            };
            match body.read(buf) {
                Ok(0) if self.length.is_some_and(|len| self.offset < len) => {
                    self.resume("connection closed early")?;
                }
                Ok(n) => {
                    self.offset += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => self.resume(&e.to_string())?,
            }
        }
    }
}

//! `[http]`: time limits and trust for every HTTP(S) request.
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Time limits and trust for every request (docs/config.md, `[http]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// Extra CA certificates (PEM) trusted besides the Mozilla roots.
    pub ca_file: Option<PathBuf>,
    /// Connecting to a server, TLS included.
    pub connect_timeout: Duration,
    /// A whole request for a small document (index, report): headers and body.
    pub timeout: Duration,
    /// A bundle download slower than `min_rate` bytes per second over `stall_time` is broken off
    /// and resumed; so is one that receives nothing for `stall_time`.
    pub min_rate: u64,
    pub stall_time: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            ca_file: None,
            connect_timeout: Duration::from_secs(30),
            timeout: Duration::from_secs(120),
            min_rate: 1024,
            stall_time: Duration::from_secs(60),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    ca_file: Option<PathBuf>,
    /// Seconds.
    connect_timeout: Option<f64>,
    timeout: Option<f64>,
    /// Bytes per second.
    min_rate: Option<u64>,
    /// Seconds.
    stall_time: Option<f64>,
}

impl RawHttp {
    pub(super) fn settings(
        self,
        resolve: &impl Fn(&Path) -> PathBuf,
    ) -> Result<HttpSettings, String> {
        let defaults = HttpSettings::default();
        let seconds = |key: &str, value: Option<f64>, default: Duration| match value {
            None => Ok(default),
            Some(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => Ok(Duration::from_secs_f64(s)),
            Some(s) => Err(format!("http.{key} = {s}: seconds between 0 and 86400")),
        };
        Ok(HttpSettings {
            ca_file: self.ca_file.map(|p| resolve(&p)),
            connect_timeout: seconds(
                "connect_timeout",
                self.connect_timeout,
                defaults.connect_timeout,
            )?,
            timeout: seconds("timeout", self.timeout, defaults.timeout)?,
            min_rate: self.min_rate.unwrap_or(defaults.min_rate),
            stall_time: seconds("stall_time", self.stall_time, defaults.stall_time)?,
        })
    }
}

/// Whether a source or a check names an http(s) URL rather than a file.
pub fn is_url(source: &str) -> bool {
    source.starts_with("http://") || source.starts_with("https://")
}

//! `[fleet]` and `[api]` of the device configuration (docs/config.md).
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// How often the daemon looks at the index unless `interval` says otherwise.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(3600);
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7681";
const MACHINE_ID: &str = "/etc/machine-id";

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFleet {
    url: Option<String>,
    channel: Option<String>,
    device_id: Option<String>,
    machine_id_file: Option<PathBuf>,
    pin: Option<String>,
    interval: Option<String>,
    jitter: Option<String>,
    poll: Option<bool>,
    after_install: Option<String>,
    keyring: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApi {
    enabled: Option<bool>,
    listen: Option<String>,
    token: Option<String>,
}

#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// The folder that holds the indexes and bundles, ending in '/'.
    pub url: String,
    pub channel: String,
    pub device_id: DeviceId,
    pub pin: Pin,
    pub interval: Duration,
    pub jitter: Duration,
    /// The daemon polls only when true; `updater check` works either way.
    pub poll: bool,
    pub after_install: AfterInstall,
    /// Keys the index must be signed by; default: the bundle keyring.
    pub keyring: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceId {
    Fixed(String),
    File(PathBuf),
}

/// A device's own standing in rollouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pin {
    /// Its bucket decides.
    None,
    /// In every rollout from its first percent.
    Canary,
    /// Never in a rollout: only suggested releases (and the minimum version) move it.
    Conservative,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterInstall {
    /// Reboot at once into the new group.
    Reboot,
    /// Wait: the device's software reboots when it suits (`POST /reboot`, or its own means).
    Wait,
}

#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub enabled: bool,
    pub listen: SocketAddr,
    pub token: Option<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            enabled: true,
            listen: DEFAULT_LISTEN.parse().expect("valid default"),
            token: None,
        }
    }
}

fn duration(key: &str, text: Option<&str>, default: Duration) -> Result<Duration, String> {
    match text {
        None => Ok(default),
        Some(text) => humantime::parse_duration(text)
            .map_err(|e| format!("fleet.{key} '{text}': {e} (e.g. \"6h\", \"30m\")")),
    }
}

pub(crate) fn fleet_config(
    raw: RawFleet,
    main_keyring: &Path,
    resolve: &dyn Fn(&Path) -> PathBuf,
) -> Result<Option<FleetConfig>, String> {
    let Some(mut url) = raw.url else {
        if raw.channel.is_some() || raw.poll == Some(true) {
            return Err("[fleet] needs url (the folder that holds the release indexes)".into());
        }
        return Ok(None);
    };
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!(
            "fleet.url '{url}' is not an http:// or https:// URL"
        ));
    }
    if !url.ends_with('/') {
        url.push('/');
    }
    let channel = raw.channel.unwrap_or_else(|| "stable".into());
    if !bundle::release::valid_seed(&channel) {
        return Err(format!(
            "fleet.channel '{channel}' must be letters, digits, '.', '_' or '-'"
        ));
    }
    let device_id = match (raw.device_id, raw.machine_id_file) {
        (Some(_), Some(_)) => return Err("give fleet.device_id or fleet.machine_id_file".into()),
        (Some(id), None) if !id.trim().is_empty() => DeviceId::Fixed(id),
        (Some(_), None) => return Err("fleet.device_id must not be empty".into()),
        (None, file) => {
            DeviceId::File(file.map_or_else(|| PathBuf::from(MACHINE_ID), |p| resolve(&p)))
        }
    };
    let pin = match raw.pin.as_deref() {
        None | Some("none") => Pin::None,
        Some("canary") => Pin::Canary,
        Some("conservative") => Pin::Conservative,
        Some(other) => {
            return Err(format!(
                "fleet.pin '{other}' must be canary, conservative or none"
            ))
        }
    };
    let interval = duration("interval", raw.interval.as_deref(), DEFAULT_INTERVAL)?;
    if interval < Duration::from_secs(1) {
        return Err("fleet.interval must be at least 1s".into());
    }
    let jitter = duration("jitter", raw.jitter.as_deref(), interval)?;
    if jitter > interval {
        return Err("fleet.jitter must not exceed fleet.interval".into());
    }
    let after_install = match raw.after_install.as_deref() {
        None | Some("wait") => AfterInstall::Wait,
        Some("reboot") => AfterInstall::Reboot,
        Some(other) => {
            return Err(format!(
                "fleet.after_install '{other}' must be reboot or wait"
            ))
        }
    };
    Ok(Some(FleetConfig {
        url,
        channel,
        device_id,
        pin,
        interval,
        jitter,
        poll: raw.poll.unwrap_or(true),
        after_install,
        keyring: raw
            .keyring
            .map_or_else(|| main_keyring.to_path_buf(), |p| resolve(&p)),
    }))
}

pub(crate) fn api_config(raw: RawApi) -> Result<ApiConfig, String> {
    let defaults = ApiConfig::default();
    let listen = match raw.listen {
        None => defaults.listen,
        Some(text) => text
            .parse()
            .map_err(|_| format!("api.listen '{text}' is not an address:port"))?,
    };
    if raw.token.as_deref().is_some_and(str::is_empty) {
        return Err("api.token must not be empty (leave it out for no token)".into());
    }
    Ok(ApiConfig {
        enabled: raw.enabled.unwrap_or(true),
        listen,
        token: raw.token,
    })
}

impl FleetConfig {
    pub fn index_url(&self) -> String {
        format!("{}{}.toml", self.url, self.channel)
    }
}

impl DeviceId {
    /// The id this device is bucketed by (docs/fleet.md).
    pub fn read(&self) -> Result<String, String> {
        match self {
            DeviceId::Fixed(id) => Ok(id.clone()),
            DeviceId::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    format!(
                        "reading the device id from {}: {e} (or set fleet.device_id)",
                        path.display()
                    )
                })?;
                let id = text.trim();
                if id.is_empty() {
                    return Err(format!("{} is empty", path.display()));
                }
                Ok(id.to_string())
            }
        }
    }
}

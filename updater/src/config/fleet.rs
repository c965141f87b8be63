//! `[fleet]` and `[api]` of the device configuration (docs/config.md).
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::url::HttpUrl;

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
    pin: Option<Pin>,
    interval: Option<String>,
    jitter: Option<String>,
    poll: Option<bool>,
    after_install: Option<AfterInstall>,
    keyring: Option<PathBuf>,
    report_url: Option<String>,
    report_token: Option<String>,
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
    /// Where the daemon POSTs the device's state (docs/fleet.md, "Reports"); absolute.
    pub report_url: Option<String>,
    /// Sent as `Authorization: Bearer <token>` with every report.
    pub report_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceId {
    Fixed(String),
    File(PathBuf),
}

/// A device's own standing in rollouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pin {
    /// Its bucket decides.
    #[default]
    None,
    /// In every rollout from its first percent.
    Canary,
    /// Never in a rollout: only suggested releases (and the minimum version) move it.
    Conservative,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AfterInstall {
    /// Reboot at once into the new group.
    Reboot,
    /// Wait: the device's software reboots when it suits (`POST /reboot`, or its own means).
    #[default]
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
    Ok(super::duration(&format!("fleet.{key}"), text)?.unwrap_or(default))
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
    if !super::is_url(&url) {
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
    let interval = duration("interval", raw.interval.as_deref(), DEFAULT_INTERVAL)?;
    if interval < Duration::from_secs(1) {
        return Err("fleet.interval must be at least 1s".into());
    }
    let jitter = duration("jitter", raw.jitter.as_deref(), interval)?;
    if jitter > interval {
        return Err("fleet.jitter must not exceed fleet.interval".into());
    }
    let report_url = raw
        .report_url
        .map(|report| {
            HttpUrl::parse(&url)
                .and_then(|folder| folder.join(&report))
                .ok()
                .map(String::from)
                .ok_or_else(|| {
                    format!("fleet.report_url '{report}' is not an http:// or https:// URL, nor one relative to fleet.url")
                })
        })
        .transpose()?;
    if raw.report_token.as_deref().is_some_and(str::is_empty) {
        return Err("fleet.report_token must not be empty (leave it out for no token)".into());
    }
    if raw.report_token.is_some() && report_url.is_none() {
        return Err("fleet.report_token is set but fleet.report_url is not".into());
    }
    Ok(Some(FleetConfig {
        url,
        channel,
        device_id,
        pin: raw.pin.unwrap_or_default(),
        interval,
        jitter,
        poll: raw.poll.unwrap_or(true),
        after_install: raw.after_install.unwrap_or_default(),
        keyring: raw
            .keyring
            .map_or_else(|| main_keyring.to_path_buf(), |p| resolve(&p)),
        report_url,
        report_token: raw.report_token,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet(text: &str) -> Result<Option<FleetConfig>, String> {
        let raw: RawFleet = toml::from_str(text).map_err(|e| e.to_string())?;
        fleet_config(raw, Path::new("/keys"), &|p| {
            Path::new("/etc/updater").join(p)
        })
    }

    #[test]
    fn defaults_and_resolution() {
        assert!(fleet("").unwrap().is_none());
        let f = fleet("url = \"https://u.example/acme\"").unwrap().unwrap();
        assert_eq!(f.index_url(), "https://u.example/acme/stable.toml");
        assert_eq!(f.device_id, DeviceId::File(MACHINE_ID.into()));
        assert_eq!((f.interval, f.jitter), (DEFAULT_INTERVAL, DEFAULT_INTERVAL));
        assert_eq!(
            (f.pin, f.after_install, f.poll),
            (Pin::None, AfterInstall::Wait, true)
        );
        assert_eq!(f.keyring, Path::new("/keys"));
        let f = fleet("url = \"http://u/\"\nchannel = \"beta\"\nmachine_id_file = \"id\"\ninterval = \"30m\"\njitter = \"5m\"\npin = \"canary\"\nafter_install = \"reboot\"\nkeyring = \"fleet.pub\"").unwrap().unwrap();
        assert_eq!(f.index_url(), "http://u/beta.toml");
        assert_eq!(f.device_id, DeviceId::File("/etc/updater/id".into()));
        assert_eq!(
            (f.interval, f.jitter),
            (Duration::from_secs(1800), Duration::from_secs(300))
        );
        assert_eq!(
            (f.pin, f.after_install),
            (Pin::Canary, AfterInstall::Reboot)
        );
        assert_eq!(f.keyring, Path::new("/etc/updater/fleet.pub"));
        assert_eq!(f.report_url, None);
        let f = fleet("url = \"https://u.example/acme\"\nreport_url = \"/devices/report\"\nreport_token = \"t\"")
            .unwrap()
            .unwrap();
        assert_eq!(
            f.report_url.as_deref(),
            Some("https://u.example/devices/report")
        );
        assert_eq!(f.report_token.as_deref(), Some("t"));
        let f =
            fleet("url = \"https://u.example/acme\"\nreport_url = \"http://ops.example:8080/r\"")
                .unwrap()
                .unwrap();
        assert_eq!(f.report_url.as_deref(), Some("http://ops.example:8080/r"));
    }

    #[test]
    fn mistakes_are_named() {
        for (text, message) in [
            ("channel = \"beta\"", "[fleet] needs url"),
            ("url = \"ftp://u/\"", "is not an http:// or https:// URL"),
            (
                "url = \"http://u/\"\nchannel = \"a/b\"",
                "fleet.channel 'a/b'",
            ),
            (
                "url = \"http://u/\"\npin = \"first\"",
                "unknown variant `first`, expected one of `none`, `canary`, `conservative`",
            ),
            (
                "url = \"http://u/\"\ninterval = \"soon\"",
                "fleet.interval 'soon'",
            ),
            (
                "url = \"http://u/\"\ninterval = \"1m\"\njitter = \"2m\"",
                "must not exceed",
            ),
            (
                "url = \"http://u/\"\nafter_install = \"never\"",
                "unknown variant `never`, expected `reboot` or `wait`",
            ),
            (
                "url = \"http://u/\"\ndevice_id = \" \"",
                "must not be empty",
            ),
            (
                "url = \"http://u/\"\ndevice_id = \"a\"\nmachine_id_file = \"b\"",
                "give fleet.device_id or",
            ),
            (
                "url = \"http://u/\"\nreport_url = \"ftp://ops/r\"",
                "fleet.report_url 'ftp://ops/r' is not an http://",
            ),
            (
                "url = \"http://u/\"\nreport_url = \"r\"\nreport_token = \"\"",
                "fleet.report_token must not be empty",
            ),
            (
                "url = \"http://u/\"\nreport_token = \"t\"",
                "fleet.report_url is not",
            ),
        ] {
            let err = fleet(text)
                .err()
                .unwrap_or_else(|| panic!("{text} was accepted"));
            assert!(err.contains(message), "{text}: {err}");
        }
        let raw: RawApi = toml::from_str("listen = \"localhost\"").unwrap();
        assert!(api_config(raw).unwrap_err().contains("not an address:port"));
        let raw: RawApi = toml::from_str("token = \"\"").unwrap();
        assert!(api_config(raw).unwrap_err().contains("must not be empty"));
    }

    #[test]
    fn the_device_id_comes_from_the_machine_id_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("machine-id");
        std::fs::write(&file, "0123abcd\n").unwrap();
        assert_eq!(DeviceId::File(file.clone()).read().unwrap(), "0123abcd");
        std::fs::write(&file, "\n").unwrap();
        assert!(DeviceId::File(file)
            .read()
            .unwrap_err()
            .contains("is empty"));
        let missing = DeviceId::File(dir.path().join("none"));
        assert!(missing
            .read()
            .unwrap_err()
            .contains("or set fleet.device_id"));
    }
}

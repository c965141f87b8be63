//! The device's state, sent to the fleet's server when `[fleet] report_url` is set
//! (docs/fleet.md, "Reports"): what runs, what the last install came to, what the last check
//! said. Reports are best effort: a server that is down costs a warning, never an update.

use serde::Serialize;

use super::CheckReport;
use crate::activity::ActivityStatus;
use crate::config::Config;
use crate::config::{FleetConfig, HttpSettings};
use crate::error::{Result, UpdaterError};
use crate::net as http;
use crate::state::now;
use crate::status::{health, Health};

/// Why a report is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Event {
    /// The daemon started: usually a boot, so the report shows how the last update ended
    /// (`last_install.result`: good, rolled-back ...).
    Started,
    /// A poll ended: the check's answer, and the install it led to, if any.
    Polled,
    /// The runtime health checks started failing, or passed again (`runtime_health`).
    RuntimeHealth,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub event: Event,
    pub time: String,
    pub device_id: Option<String>,
    pub channel: String,
    #[serde(flatten)]
    pub health: Health,
    pub activity: ActivityStatus,
    pub check: Option<CheckReport>,
    /// Why the poll failed (index unreachable, bad signature, install failed ...).
    pub error: Option<String>,
}

impl Report {
    pub fn new(
        config: &Config,
        fleet: &FleetConfig,
        event: Event,
        activity: ActivityStatus,
    ) -> Result<Report> {
        Ok(Report {
            event,
            time: now(),
            // A device without an id still reports; the server sees `null` and the error of
            // the check, which needs the id too.
            device_id: fleet.device_id.read().ok(),
            channel: fleet.channel.clone(),
            health: health(config)?,
            activity,
            check: None,
            error: None,
        })
    }
}

/// POSTs the report as JSON. Short time limits: the report must not hold up the next poll.
pub fn send(http_settings: &HttpSettings, fleet: &FleetConfig, report: &Report) -> Result<()> {
    let Some(url) = fleet.report_url.as_deref() else {
        return Ok(());
    };
    let authorization = fleet.report_token.as_ref().map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = authorization
        .as_deref()
        .map(|a| ("Authorization", a))
        .into_iter()
        .collect();
    let body = serde_json::to_string(report).expect("a report is plain data");
    let status = http::Client::new(http_settings)?
        .post_json(url, &headers, &body)
        .map_err(|e| UpdaterError::Network(format!("report to {e}")))?;
    if (300..400).contains(&status) {
        return Err(UpdaterError::Network(format!(
            "report to {url}: HTTP {status}; reports do not follow redirects"
        )));
    }
    Ok(())
}

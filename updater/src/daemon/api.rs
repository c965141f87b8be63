//! The local HTTP API for the device's own software (docs/fleet.md, "Local API"). Bound to
//! loopback unless configured otherwise; with `api.token` set, every request needs
//! `Authorization: Bearer <token>`.
use std::io::Read;
use std::net::TcpListener;
use std::sync::Arc;
use std::thread;

use serde_json::json;
use tracing::{info, warn};

use super::http_server::{self, Request, Response};

use crate::activity::{Activity, CancelAnswer, Phase};
use crate::assess::reboot;
use crate::config::Config;
use crate::display::escaped;
use crate::error::UpdaterError;
use crate::install::{install, InstallOptions};
use crate::status::health;

/// Answers requests until the listener fails.
pub fn serve(listener: TcpListener, config: Arc<Config>, activity: Arc<Activity>) {
    http_server::serve(
        listener,
        Arc::new(move |request: &mut Request| handle(request, &config, &activity)),
    );
}

type Reply = (u16, serde_json::Value);

/// Authentication comes first: an unauthorized request is answered before any of its body is
/// read.
fn handle(request: &mut Request, config: &Config, activity: &Arc<Activity>) -> Response {
    let (code, body) = if !authorized(request, config.api.token.as_deref()) {
        (401, json!({ "error": "missing or wrong bearer token" }))
    } else {
        route(request, config, activity)
    };
    info!(method = %escaped(&request.method), path = %escaped(&request.path), code, "api request");
    Response {
        status: code,
        json: body.to_string(),
    }
}

fn route(request: &mut Request, config: &Config, activity: &Arc<Activity>) -> Reply {
    let path = request.path.clone();
    match (request.method.as_str(), path.as_str()) {
        ("GET", "/health") => match health(config) {
            Ok(health) => (200, json!(health)),
            Err(err) => error_reply(&err),
        },
        ("GET", "/update/status") => (200, json!(activity.status())),
        ("POST", "/update") => upload(request.body(), config, activity),
        ("POST", "/update/cancel") => match activity.cancel() {
            CancelAnswer::Cancelling => (202, json!({ "cancelling": true })),
            CancelAnswer::TooLate => (
                409,
                json!({ "error": "too late to cancel: the update is activating its group" }),
            ),
            CancelAnswer::NothingRuns => (409, json!({ "error": "no update is running" })),
        },
        ("POST", "/reboot") => {
            // Answer first: the reboot takes the process down.
            let config = config.clone();
            thread::spawn(move || {
                thread::sleep(std::time::Duration::from_millis(500));
                if let Err(err) = reboot(&config.boot_check.reboot_command) {
                    warn!(%err, "api: reboot failed");
                }
            });
            (202, json!({ "rebooting": true }))
        }
        (method, "/health" | "/update/status" | "/update" | "/update/cancel" | "/reboot") => (
            405,
            json!({ "error": format!("{} is not allowed on {path}", escaped(method)) }),
        ),
        _ => (
            404,
            json!({ "error": format!("no such endpoint {}", escaped(&path)) }),
        ),
    }
}

/// The request body is the bundle, streamed into the install as it arrives; it is never stored.
fn upload(body: &mut dyn Read, config: &Config, activity: &Arc<Activity>) -> Reply {
    let result = activity.run(
        "upload",
        Phase::Installing,
        &InstallOptions::default(),
        None,
        |options, progress| install(config, body, options, progress),
    );
    match result {
        Ok(report) => (
            200,
            json!({
                "state": "ready-to-reboot",
                "version": report.version.to_string(),
                "target": report.target,
                "bytes": report.bytes,
            }),
        ),
        Err(err) => error_reply(&err),
    }
}

fn error_reply(err: &UpdaterError) -> Reply {
    let code = match err {
        UpdaterError::Busy(_) | UpdaterError::Cancelled(_) => 409,
        UpdaterError::Bundle(_) | UpdaterError::Incompatible(_) | UpdaterError::WrongBundle(_) => {
            422
        }
        _ => 500,
    };
    (
        code,
        json!({ "error": err.to_string(), "exit_code": err.exit_code() }),
    )
}

fn authorized(request: &Request, token: Option<&str>) -> bool {
    let Some(token) = token else {
        return true;
    };
    let expected = format!("Bearer {token}");
    request
        .header("Authorization")
        .is_some_and(|value| constant_time_eq(value.as_bytes(), expected.as_bytes()))
}

/// Compares without stopping at the first difference, so timing does not leak the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

//! The local HTTP API for the device's own software (docs/fleet.md, "Local API"). Bound to
//! loopback unless configured otherwise; with `api.token` set, every request needs
//! `Authorization: Bearer <token>`.
use std::io::Read;
use std::sync::Arc;
use std::thread;

use serde_json::json;
use tiny_http::{Header, Method, Request, Response, Server};
use tracing::{info, warn};

use crate::activity::Activity;
use crate::assess::reboot;
use crate::config::Config;
use crate::error::UpdaterError;
use crate::install::{install, InstallOptions};
use crate::status::health;

/// Answers requests until the server closes; each request on its own thread, since an upload
/// lasts as long as its install.
pub fn serve(server: Server, config: Arc<Config>, activity: Arc<Activity>) {
    for request in server.incoming_requests() {
        let config = Arc::clone(&config);
        let activity = Arc::clone(&activity);
        thread::spawn(move || handle(request, &config, &activity));
    }
}

type Reply = (u16, serde_json::Value);

fn handle(mut request: Request, config: &Config, activity: &Arc<Activity>) {
    let method = request.method().clone();
    let path = request.url().split('?').next().unwrap_or("").to_string();
    let (code, body) = if !authorized(&request, config.api.token.as_deref()) {
        (401, json!({ "error": "missing or wrong bearer token" }))
    } else {
        route(&method, &path, &mut request, config, activity)
    };
    info!(%method, %path, code, "api request");
    let response = Response::from_string(body.to_string())
        .with_status_code(code)
        .with_header(Header::from_bytes("Content-Type", "application/json").expect("valid header"));
    if let Err(err) = request.respond(response) {
        warn!(%err, "api: answering failed");
    }
}

fn route(
    method: &Method,
    path: &str,
    request: &mut Request,
    config: &Config,
    activity: &Arc<Activity>,
) -> Reply {
    match (method, path) {
        (Method::Get, "/health") => match health(config) {
            Ok(health) => (
                200,
                serde_json::to_value(health).expect("health serializes"),
            ),
            Err(err) => error_reply(&err),
        },
        (Method::Get, "/update/status") => (
            200,
            serde_json::to_value(activity.status()).expect("status serializes"),
        ),
        (Method::Post, "/update") => {
            let body = request.as_reader();
            upload(body, config, activity)
        }
        (Method::Post, "/update/cancel") => {
            if activity.cancel() {
                (202, json!({ "cancelling": true }))
            } else {
                (409, json!({ "error": "no update is running" }))
            }
        }
        (Method::Post, "/reboot") => {
            // Answer first: the reboot takes the process down.
            let config = config.clone();
            thread::spawn(move || {
                thread::sleep(std::time::Duration::from_millis(500));
                if let Err(err) = reboot(&config) {
                    warn!(%err, "api: reboot failed");
                }
            });
            (202, json!({ "rebooting": true }))
        }
        (_, "/health" | "/update/status" | "/update" | "/update/cancel" | "/reboot") => (
            405,
            json!({ "error": format!("{method} is not allowed on {path}") }),
        ),
        _ => (404, json!({ "error": format!("no such endpoint {path}") })),
    }
}

/// The request body is the bundle, streamed into the install as it arrives; it is never stored.
fn upload(body: &mut dyn Read, config: &Config, activity: &Arc<Activity>) -> Reply {
    let result = activity.run(
        "upload",
        false,
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
        .headers()
        .iter()
        .find(|h| h.field.equiv("Authorization"))
        .is_some_and(|h| constant_time_eq(h.value.as_str().as_bytes(), expected.as_bytes()))
}

/// Compares without stopping at the first difference, so timing does not leak the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

//! "Can this system take the next update?" Checked at every boot, so that a device whose keyring,
//! bootloader environment or state folder is broken says so while it still runs a good system,
//! instead of failing at the next install (Mender's orphaned fleet, whose environment had never been
//! written, is the lesson).
//!
//! Every item declares whose problem it is (docs/boot-flow.md): the booted group's own (its root
//! filesystem holds the keyring and the configuration of its slots), or shared by both groups
//! (the boot environment, the data partition with the state folder, the other groups' slots,
//! which a foreign disk can make ambiguous). Only the first kind can be fixed by falling back.
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use bundle::Keyring;

use super::Failure;
use crate::bootloader::{BootState, Bootloader};
use crate::config::{Config, HttpSettings, IndexCheck};
use crate::error::UpdaterError;
use crate::group::Group;
use crate::state::StateDir;

pub fn run(
    config: &Config,
    booted: Group,
    bootloader: &mut Bootloader,
    boot: &BootState,
    store: &StateDir,
) -> Vec<Failure> {
    let mut failures = Vec::new();
    if let Err(e) = Keyring::load(&config.keyring) {
        failures.push(Failure::group(format!("self-test: keyring: {e}")));
    }
    // Writing the state back proves the environment is writable, and initialises one that never was.
    if let Err(e) = bootloader.store(boot) {
        failures.push(Failure::shared(format!(
            "self-test: cannot write the boot state: {e}"
        )));
    } else {
        match bootloader.load() {
            Ok(Some(read)) if read == *boot => {}
            Ok(_) => failures.push(Failure::shared(
                "self-test: the boot state reads back different from what was written",
            )),
            Err(e) => failures.push(Failure::shared(format!(
                "self-test: cannot read the boot state back: {e}"
            ))),
        }
    }
    for group in config.groups() {
        let Err(e) = crate::install::resolve_group(config, group) else {
            continue;
        };
        let message = format!("self-test: slots of group {group}: {e}");
        // Only the booted group's own configuration is its problem; a name that another disk
        // answers to as well, or another group's slot, is not fixed by falling back.
        let own = group == booted && !matches!(e, UpdaterError::AmbiguousSlot(_));
        failures.push(if own {
            Failure::group(message)
        } else {
            Failure::shared(message)
        });
    }
    if let Err(e) = store.probe_writable() {
        failures.push(Failure::shared(format!("self-test: state folder: {e}")));
    }
    let confirmed = boot.group(booted).is_some_and(|g| g.good);
    failures.extend(update_path(config, confirmed));
    failures
}

/// The update path of the updater that just booted, beyond its files: its local API can listen
/// where it is configured to, and a `[fleet]` device fetches and verifies its release index in
/// time. These decide only for a group that is not confirmed yet: a new version whose updater
/// cannot take the next update is never marked good, but a confirmed group is not marked bad for
/// an index server that is down (both groups would follow it to recovery); that is a warning.
fn update_path(config: &Config, confirmed: bool) -> Vec<Failure> {
    let failure = |message: String| {
        if confirmed {
            Failure::shared(message)
        } else {
            Failure::group(message)
        }
    };
    let mut failures = Vec::new();
    if config.api.enabled {
        if let Err(e) = api_can_listen(config.api.listen) {
            failures.push(failure(format!("self-test: local API: {e}")));
        }
    }
    if let Some(fleet) = &config.fleet {
        let index = config.boot_check.index;
        if index != IndexCheck::Off {
            if let Err(e) = index_reachable(fleet, &config.http, config.boot_check.index_time_limit)
            {
                let message = format!("self-test: release index: {e}");
                failures.push(if index == IndexCheck::Require {
                    failure(message)
                } else {
                    Failure::shared(message)
                });
            }
        }
    }
    failures
}

/// The daemon's API address is free to bind, or this updater's API already answers there (the
/// daemon is up: boot-check was run again by hand).
fn api_can_listen(listen: SocketAddr) -> Result<(), String> {
    let mut attempt = 1;
    loop {
        match TcpListener::bind(listen) {
            Ok(_) => return Ok(()),
            // Held for a moment by something that lets go (a daemon on its way out, another probe
            // like this one), or for good.
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && attempt < 5 => {
                attempt += 1;
                thread::sleep(Duration::from_millis(200));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && api_answers(listen) => {
                return Ok(())
            }
            Err(e) => return Err(format!("cannot listen on {listen}: {e}")),
        }
    }
}

fn api_answers(listen: SocketAddr) -> bool {
    let ask = || -> std::io::Result<String> {
        let mut stream = TcpStream::connect_timeout(&listen, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream.write_all(b"GET /update/status HTTP/1.0\r\n\r\n")?;
        let mut head = [0u8; 512];
        let n = stream.read(&mut head)?;
        Ok(String::from_utf8_lossy(&head[..n]).into_owned())
    };
    // Answered by the updater's own API (200, or 401 when it has a token).
    ask().is_ok_and(|head| head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.1 401"))
}

/// Fetches and verifies the index, retrying while the network comes up, for at most `limit`.
fn index_reachable(
    fleet: &crate::config::FleetConfig,
    http: &HttpSettings,
    limit: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    let http = HttpSettings {
        connect_timeout: http.connect_timeout.min(limit),
        timeout: http.timeout.min(limit),
        ..http.clone()
    };
    let pause = (limit / 4).min(Duration::from_secs(2));
    loop {
        let error = match crate::fleet::fetch_index(fleet, &http) {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        // Only the network is worth waiting for; a bad signature or keyring will not change.
        let retry = matches!(error, UpdaterError::Network(_) | UpdaterError::Io { .. });
        if !retry || Instant::now() + pause >= deadline {
            return Err(format!(
                "{error} (within {})",
                humantime::format_duration(limit)
            ));
        }
        thread::sleep(pause);
    }
}

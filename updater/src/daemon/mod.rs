//! `updater daemon`: serves the local API and, when `[fleet]` is configured with polling on, looks
//! at the release index on a jittered schedule and installs what applies.
pub mod api;

use std::sync::Arc;
use std::thread;

use tracing::{error, info, warn};

use crate::activity::Activity;
use crate::assess::reboot;
use crate::config::Config;
use crate::error::{Result, UpdaterError};
use crate::fleet::schedule::Schedule;
use crate::fleet::settings::AfterInstall;
use crate::fleet::{check, install_checked};
use crate::install::InstallOptions;
use crate::state::StateDir;

pub fn run(config: &Config) -> Result<()> {
    let config = Arc::new(config.clone());
    let state = StateDir::open_read_only(&config.state_dir).load()?;
    let activity = Arc::new(Activity::from_state(&state));
    let api = if config.api.enabled {
        let server = tiny_http::Server::http(config.api.listen).map_err(|e| UpdaterError::Io {
            context: format!("listening on {}", config.api.listen),
            source: std::io::Error::other(e.to_string()),
        })?;
        eprintln!("updater: local API on http://{}", config.api.listen);
        let (config, activity) = (Arc::clone(&config), Arc::clone(&activity));
        Some(thread::spawn(move || api::serve(server, config, activity)))
    } else {
        None
    };
    match config.fleet.as_ref().filter(|f| f.poll) {
        Some(fleet) => {
            let schedule = Schedule {
                interval: fleet.interval,
                jitter: fleet.jitter,
            };
            eprintln!(
                "updater: polling {} every {} (jitter {})",
                fleet.index_url(),
                humantime::format_duration(fleet.interval),
                humantime::format_duration(fleet.jitter)
            );
            poll_forever(&config, &activity, schedule)
        }
        None => {
            info!("fleet polling is off; serving the local API only");
            match api {
                Some(api) => {
                    let _ = api.join();
                    Ok(())
                }
                None => Err(UpdaterError::config(
                    &config.path,
                    "the daemon has nothing to do: fleet polling is off and api.enabled = false",
                )),
            }
        }
    }
}

fn poll_forever(config: &Config, activity: &Arc<Activity>, schedule: Schedule) -> Result<()> {
    let mut rng = fastrand::Rng::new();
    thread::sleep(schedule.first_delay(&mut rng));
    loop {
        if let Err(err) = poll_once(config, activity) {
            warn!(%err, "update poll failed; trying again at the next poll");
            eprintln!("updater: poll: {err}");
        }
        thread::sleep(schedule.next_delay(&mut rng));
    }
}

fn poll_once(config: &Config, activity: &Arc<Activity>) -> Result<()> {
    let report = check(config)?;
    eprintln!(
        "updater: poll: {}{}",
        if report.decision.update {
            "update: "
        } else {
            "no update: "
        },
        report.decision.message
    );
    if !report.decision.update {
        return Ok(());
    }
    let url = report.url.clone().unwrap_or_default();
    let installed = activity.run(
        &url,
        true,
        &InstallOptions::default(),
        None,
        |options, progress| install_checked(config, &report, options, progress),
    )?;
    eprintln!(
        "updater: installed {} into group {}",
        installed.version, installed.target
    );
    let after = config.fleet.as_ref().map(|f| f.after_install);
    if after == Some(AfterInstall::Reboot) {
        if let Err(err) = reboot(config) {
            error!(%err, "reboot after install failed");
            return Err(err);
        }
    }
    Ok(())
}

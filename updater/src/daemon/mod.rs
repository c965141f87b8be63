//! `updater daemon`: serves the local API and, when `[fleet]` is configured with polling on, looks
//! at the release index on a jittered schedule and installs what applies.
pub mod api;
pub mod http_server;
pub mod watchdog;

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use tracing::info;

use crate::activity::{Activity, Phase};
use crate::assess::reboot;
use crate::config::Config;
use crate::config::{AfterInstall, FleetConfig};
use crate::display::escaped;
use crate::error::{Result, UpdaterError};
use crate::fleet::report::{self, Event, Report};
use crate::fleet::schedule::Schedule;
use crate::fleet::{check, install_checked, CheckReport};
use crate::install::{InstallOptions, InstallReport};
use crate::state::StateDir;
use watchdog::{sleep_beating, Heartbeat};

pub fn run(config: &Config) -> Result<()> {
    let config = Arc::new(config.clone());
    let state = StateDir::open_read_only(&config.state_dir).load()?;
    let activity = Arc::new(Activity::from_state(&state));
    let heartbeat = Heartbeat::new();
    let api = if config.api.enabled {
        let server = std::net::TcpListener::bind(config.api.listen).map_err(UpdaterError::io(
            format!("listening on {}", config.api.listen),
        ))?;
        eprintln!("updater: local API on http://{}", config.api.listen);
        let (config, activity) = (Arc::clone(&config), Arc::clone(&activity));
        let heartbeat = Arc::clone(&heartbeat);
        Some(thread::spawn(move || {
            api::serve(server, config, activity);
            heartbeat.api_stopped();
        }))
    } else {
        None
    };
    let bus = serve_dbus(&config, &activity)?;
    // A result from before this start (or from a config that no longer asks for it) is stale.
    crate::runtime_health::clear(&config.state_dir);
    let runtime = config.boot_check.runtime_interval.map(|interval| {
        let (config, activity) = (Arc::clone(&config), Arc::clone(&activity));
        thread::spawn(move || watch_health(&config, &activity, interval))
    });
    let watchdog = watchdog::timeout();
    let beat = watchdog::beat_interval(watchdog);
    watchdog::ready();
    if let Some(timeout) = watchdog {
        watchdog::spawn(Arc::clone(&heartbeat), timeout);
    }
    let alive = Liveness { heartbeat, beat };
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
            poll_forever(&config, fleet, &activity, schedule, &alive)
        }
        None => {
            info!("fleet polling is off; serving the local API only");
            match api.or(runtime) {
                Some(job) => {
                    while !job.is_finished() {
                        alive.sleep(alive.beat);
                    }
                    let _ = job.join();
                    Ok(())
                }
                // The bus connection serves on its own threads.
                None if bus.is_some() => loop {
                    alive.sleep(alive.beat);
                },
                None => Err(UpdaterError::config(
                    &config.path,
                    "the daemon has nothing to do: fleet polling is off, api.enabled = false, [dbus] is off and no boot_check.runtime_interval is set",
                )),
            }
        }
    }
}

/// RAUC's D-Bus interface, when `[dbus] enable = true`; the connection serves while it is kept.
#[cfg(feature = "dbus")]
fn serve_dbus(
    config: &Arc<Config>,
    activity: &Arc<Activity>,
) -> Result<Option<zbus::blocking::Connection>> {
    config
        .dbus
        .enable
        .then(|| crate::dbus::serve(Arc::clone(config), Arc::clone(activity)))
        .transpose()
}

#[cfg(not(feature = "dbus"))]
fn serve_dbus(config: &Arc<Config>, _: &Arc<Activity>) -> Result<Option<()>> {
    match config.dbus.enable {
        true => Err(UpdaterError::config(
            &config.path,
            "[dbus] enable = true, but this updater was built without D-Bus support (cargo feature `dbus`)",
        )),
        false => Ok(None),
    }
}

/// What the daemon's loops beat while they wait or work, for systemd's watchdog.
struct Liveness {
    heartbeat: Arc<Heartbeat>,
    beat: Duration,
}

impl Liveness {
    fn sleep(&self, total: Duration) {
        sleep_beating(total, &self.heartbeat, self.beat);
    }

    /// An install's progress counts as a heartbeat.
    fn observer(&self) -> crate::progress::Observer {
        let heartbeat = Arc::clone(&self.heartbeat);
        Arc::new(move |_| heartbeat.beat())
    }
}

/// The report after a start comes within this time (or the first poll, if sooner), so the
/// server learns soon how a boot went, while a fleet that starts at once still reports spread out.
const START_REPORT_SPREAD: Duration = Duration::from_secs(300);

fn poll_forever(
    config: &Config,
    fleet: &FleetConfig,
    activity: &Arc<Activity>,
    schedule: Schedule,
    alive: &Liveness,
) -> Result<()> {
    let mut rng = fastrand::Rng::new();
    let first_poll = schedule.first_delay(&mut rng);
    if fleet.report_url.is_some() {
        let start_report = random_below(&mut rng, first_poll.min(START_REPORT_SPREAD));
        alive.sleep(start_report);
        report(config, fleet, activity, Event::Started, None, None);
        alive.sleep(first_poll - start_report);
    } else {
        alive.sleep(first_poll);
    }
    loop {
        let (check, result) = poll_once(config, activity, alive);
        // One line each on stderr (the journal), at any log level; the next poll tries again.
        if let Err(err) = &result {
            eprintln!("updater: poll: {}", escaped(&err.to_string()));
        }
        report(
            config,
            fleet,
            activity,
            Event::Polled,
            check,
            result.as_ref().err(),
        );
        if matches!(result, Ok(Some(_))) && fleet.after_install == AfterInstall::Reboot {
            if let Err(err) = reboot(&config.boot_check.reboot_command) {
                eprintln!("updater: reboot: {}", escaped(&err.to_string()));
            }
        }
        alive.sleep(schedule.next_delay(&mut rng));
    }
}

/// Runs the health checks every `interval`, for as long as the daemon runs. A change between
/// healthy and failing is reported to the fleet's server at once (a first healthy run is no news).
fn watch_health(config: &Config, activity: &Activity, interval: Duration) {
    let mut previous = None;
    loop {
        thread::sleep(interval);
        match crate::runtime_health::run_once(config, previous.as_ref()) {
            Ok((health, changed)) => {
                let news = changed && !(previous.is_none() && health.healthy);
                if let Some(fleet) = config.fleet.as_ref().filter(|_| news) {
                    report(config, fleet, activity, Event::RuntimeHealth, None, None);
                }
                previous = Some(health);
            }
            Err(err) => eprintln!("updater: runtime health: {}", escaped(&err.to_string())),
        }
    }
}

fn random_below(rng: &mut fastrand::Rng, limit: Duration) -> Duration {
    Duration::from_millis(rng.u64(0..=limit.as_millis() as u64))
}

/// One look at the index, and the install it calls for. Returns the check's answer (when the
/// index could be read) and the install, if one was made.
fn poll_once(
    config: &Config,
    activity: &Arc<Activity>,
    alive: &Liveness,
) -> (Option<CheckReport>, Result<Option<InstallReport>>) {
    let report = match check(config) {
        Ok(report) => report,
        Err(err) => return (None, Err(err)),
    };
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
        return (Some(report), Ok(None));
    }
    let url = report.url.clone().unwrap_or_default();
    let installed = activity.run(
        &url,
        Phase::Downloading,
        &InstallOptions::default(),
        Some(alive.observer()),
        |options, progress| install_checked(config, &report, options, progress),
    );
    if let Ok(installed) = &installed {
        eprintln!(
            "updater: installed {} into group {}",
            installed.version, installed.target
        );
    }
    (Some(report), installed.map(Some))
}

/// Sends a report when `report_url` is set; a failed report is logged and otherwise ignored.
fn report(
    config: &Config,
    fleet: &FleetConfig,
    activity: &Activity,
    event: Event,
    check: Option<CheckReport>,
    error: Option<&UpdaterError>,
) {
    if fleet.report_url.is_none() {
        return;
    }
    let sent = Report::new(config, fleet, event, activity.status()).and_then(|mut report| {
        report.check = check;
        report.error = error.map(ToString::to_string);
        report::send(&config.http, fleet, &report)
    });
    if let Err(err) = sent {
        eprintln!("updater: report: {}", escaped(&err.to_string()));
    }
}

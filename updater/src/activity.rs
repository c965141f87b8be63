//! What the updater is doing right now, for the local API and the C library: one install at a
//! time, its phase and progress, the last error, and a way to cancel it.
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::cancel::CancelToken;
use crate::error::{Result, UpdaterError};
use crate::install::{InstallOptions, InstallReport};
use crate::names::named;
use crate::progress::{Observer, Progress, Step, Style, Tick};
use crate::state::{now, InstallResult, State};

named! {
    pub enum Phase {
        Idle = "idle",
        /// Streaming a bundle from a server into the target group.
        Downloading = "downloading",
        /// Writing a bundle from a file or an upload, or reading back what was written.
        Installing = "installing",
        /// Installed and activated; the next boot starts it.
        ReadyToReboot = "ready-to-reboot",
        /// The last install failed or was cancelled (`last_error` says which).
        Failed = "failed",
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ActivityStatus {
    pub state: Phase,
    /// Where the running or last install reads its bundle from.
    pub source: Option<String>,
    /// The version being or last installed, once its manifest is verified.
    pub version: Option<String>,
    /// `install` (streaming, verifying, reading back) or `read-back` (the rest, after the fsync).
    pub step: Option<Step>,
    pub done: u64,
    pub total: u64,
    pub percent: u8,
    pub last_error: Option<String>,
    pub since: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelAnswer {
    Cancelling,
    /// The install has verified everything and is activating its group.
    TooLate,
    NothingRuns,
}

pub struct Activity {
    status: Mutex<ActivityStatus>,
    cancel: Mutex<Option<Arc<CancelToken>>>,
}

impl Activity {
    /// Starts from what the state folder says: an installed, not yet booted update is ready.
    pub fn from_state(state: &State) -> Activity {
        let last = state.last_install.as_ref();
        let (phase, error) = match last.map(|l| l.result) {
            Some(InstallResult::Installed) => (Phase::ReadyToReboot, None),
            Some(InstallResult::Failed) => (Phase::Failed, last.and_then(|l| l.error.clone())),
            _ => (Phase::Idle, None),
        };
        Activity {
            status: Mutex::new(ActivityStatus {
                state: phase,
                source: None,
                version: last.map(|l| l.version.clone()),
                step: None,
                done: 0,
                total: 0,
                percent: 0,
                last_error: error,
                since: now(),
            }),
            cancel: Mutex::new(None),
        }
    }

    pub fn status(&self) -> ActivityStatus {
        self.status.lock().expect("activity lock").clone()
    }

    /// Asks the running install to stop. An acknowledged cancel means its group will not be
    /// activated.
    pub fn cancel(&self) -> CancelAnswer {
        match self.cancel.lock().expect("activity lock").as_ref() {
            Some(token) if token.cancel() => CancelAnswer::Cancelling,
            Some(_) => CancelAnswer::TooLate,
            None => CancelAnswer::NothingRuns,
        }
    }

    /// Runs one install, refusing to start while another runs. `install` gets options that carry
    /// the cancel flag and a progress that feeds this status (and `also`, when given).
    pub fn run(
        self: &Arc<Self>,
        source: &str,
        starts_as: Phase,
        options: &InstallOptions,
        also: Option<Observer>,
        install: impl FnOnce(&InstallOptions, &Progress) -> Result<InstallReport>,
    ) -> Result<InstallReport> {
        self.reserve()?
            .run(source, starts_as, options, also, install)
    }

    /// Claims the one install slot now, for an install that starts later on another thread (a
    /// D-Bus call answers at once): a second caller is refused here, not after its reply.
    pub fn reserve(self: &Arc<Self>) -> Result<Reservation> {
        let flag = Arc::new(CancelToken::default());
        let mut cancel = self.cancel.lock().expect("activity lock");
        if cancel.is_some() {
            let status = self.status();
            return Err(UpdaterError::Busy(format!(
                "an update is already running ({} {} from {})",
                status.state.as_str(),
                status.version.as_deref().unwrap_or("a bundle"),
                status.source.as_deref().unwrap_or("?")
            )));
        }
        *cancel = Some(flag.clone());
        Ok(Reservation {
            activity: Arc::clone(self),
            flag,
        })
    }

    fn set(&self, change: impl FnOnce(&mut ActivityStatus)) {
        change(&mut self.status.lock().expect("activity lock"));
    }
}

/// The install slot, held from [`Activity::reserve`] until its install ends or it is dropped.
pub struct Reservation {
    activity: Arc<Activity>,
    flag: Arc<CancelToken>,
}

impl Reservation {
    /// Runs the install this slot was reserved for; see [`Activity::run`].
    pub fn run(
        self,
        source: &str,
        starts_as: Phase,
        options: &InstallOptions,
        also: Option<Observer>,
        install: impl FnOnce(&InstallOptions, &Progress) -> Result<InstallReport>,
    ) -> Result<InstallReport> {
        let me = &self.activity;
        me.set(|s| {
            *s = ActivityStatus {
                state: starts_as,
                source: Some(source.to_string()),
                version: None,
                step: None,
                done: 0,
                total: 0,
                percent: 0,
                last_error: None,
                since: now(),
            }
        });
        let observer = {
            let me = Arc::clone(me);
            Arc::new(move |tick: &Tick| {
                me.set(|s| {
                    if tick.step != Step::Install {
                        s.state = Phase::Installing;
                    }
                    s.step = Some(tick.step);
                    if s.version.is_none() {
                        s.version = tick.subject.map(str::to_string);
                    }
                    s.done = tick.done;
                    s.total = tick.total;
                    s.percent = tick.percent().unwrap_or(0) as u8;
                });
                if let Some(also) = &also {
                    also(tick);
                }
            })
        };
        let progress = Progress::observed(Style::Quiet, observer);
        let options = InstallOptions {
            cancel: Some(Arc::clone(&self.flag)),
            ..options.clone()
        };
        let result = install(&options, &progress);
        me.set(|s| {
            match &result {
                Ok(report) => {
                    s.state = Phase::ReadyToReboot;
                    s.version = Some(report.version.to_string());
                }
                Err(err) => {
                    s.state = Phase::Failed;
                    s.last_error = Some(err.to_string());
                }
            }
            s.since = now();
        });
        result
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        *self.activity.cancel.lock().expect("activity lock") = None;
    }
}

//! Tells systemd how the daemon is (sd_notify): `READY=1` once it serves, then `WATCHDOG=1` for as
//! long as it is alive, so that a hung daemon is killed and restarted (`WatchdogSec=` in
//! updater.service). Alive means: the poll loop (or, with polling off, the main thread) has beaten
//! its heart within the watchdog's time, an install in progress reports progress, and the local
//! API's thread still runs. A thread that pinged on a timer alone would keep a stuck daemon alive.
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use sd_notify::NotifyState;
use tracing::{info, warn};

/// When the daemon last showed that it makes progress.
#[derive(Debug)]
pub struct Heartbeat {
    start: Instant,
    last_ms: AtomicU64,
    api_running: AtomicBool,
}

impl Heartbeat {
    pub fn new() -> Arc<Heartbeat> {
        Arc::new(Heartbeat {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            api_running: AtomicBool::new(true),
        })
    }

    pub fn beat(&self) {
        let now = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(now, Ordering::Relaxed);
    }

    fn age(&self) -> Duration {
        let now = self.start.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }

    /// The local API's thread ends only when it can no longer serve.
    pub fn api_stopped(&self) {
        self.api_running.store(false, Ordering::Relaxed);
    }

    fn alive(&self, timeout: Duration) -> bool {
        alive(
            self.age(),
            timeout,
            self.api_running.load(Ordering::Relaxed),
        )
    }
}

fn alive(age: Duration, timeout: Duration, api_running: bool) -> bool {
    api_running && age < timeout
}

/// The watchdog time systemd gave this process, if any (`WATCHDOG_USEC` for our PID).
pub fn timeout() -> Option<Duration> {
    let mut usec = 0;
    (sd_notify::watchdog_enabled(false, &mut usec) && usec > 0).then(|| Duration::from_micros(usec))
}

/// How long the daemon's loops may sleep between heartbeats: a quarter of the watchdog time, so
/// a beat is never older than the watchdog allows while the daemon is well.
pub fn beat_interval(timeout: Option<Duration>) -> Duration {
    timeout.map_or(Duration::from_secs(60), |t| {
        (t / 4).max(Duration::from_millis(10))
    })
}

/// `READY=1`: the daemon serves its API and is about to poll. Without systemd (no
/// `NOTIFY_SOCKET`) nothing is sent.
pub fn ready() {
    if let Err(err) = sd_notify::notify(false, &[NotifyState::Ready]) {
        warn!(%err, "telling systemd that the daemon is ready");
    }
}

/// Starts the thread that pings systemd's watchdog while `heartbeat` shows the daemon alive.
pub fn spawn(heartbeat: Arc<Heartbeat>, timeout: Duration) {
    info!(?timeout, "systemd watchdog on");
    thread::spawn(move || loop {
        if heartbeat.alive(timeout) {
            if let Err(err) = sd_notify::notify(false, &[NotifyState::Watchdog]) {
                warn!(%err, "pinging systemd's watchdog");
            }
        }
        thread::sleep(timeout / 2);
    });
}

/// Sleeps for `total`, beating `heartbeat` at least every `beat`.
pub fn sleep_beating(total: Duration, heartbeat: &Heartbeat, beat: Duration) {
    let until = Instant::now() + total;
    loop {
        heartbeat.beat();
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        thread::sleep(left.min(beat));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alive_only_with_a_fresh_beat_and_a_running_api() {
        let timeout = Duration::from_secs(60);
        assert!(alive(Duration::from_secs(1), timeout, true));
        assert!(!alive(Duration::from_secs(60), timeout, true));
        assert!(!alive(Duration::from_secs(1), timeout, false));
    }

    #[test]
    fn a_heartbeat_ages_until_the_next_beat() {
        let heartbeat = Heartbeat::new();
        heartbeat.beat();
        assert!(heartbeat.alive(Duration::from_secs(5)));
        thread::sleep(Duration::from_millis(30));
        assert!(!heartbeat.alive(Duration::from_millis(20)));
        heartbeat.beat();
        assert!(heartbeat.alive(Duration::from_millis(20)));
        heartbeat.api_stopped();
        assert!(!heartbeat.alive(Duration::from_secs(5)));
    }

    #[test]
    fn sleeping_beats_on_the_way() {
        let heartbeat = Heartbeat::new();
        let started = Instant::now();
        sleep_beating(
            Duration::from_millis(50),
            &heartbeat,
            Duration::from_millis(10),
        );
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert!(heartbeat.age() < Duration::from_millis(15));
    }

    #[test]
    fn beats_come_four_times_per_watchdog_period() {
        assert_eq!(
            beat_interval(Some(Duration::from_secs(20))),
            Duration::from_secs(5)
        );
        assert_eq!(beat_interval(None), Duration::from_secs(60));
    }
}

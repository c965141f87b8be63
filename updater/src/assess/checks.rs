//! Health checks: a command that must exit 0, or an HTTP GET that must answer with the expected
//! status, each within a time limit and retried until a deadline, because the application may
//! still be starting when boot-check runs.
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::config::{Check, CheckKind, HttpSettings};
use crate::net::Client;
use crate::process::{self, Ended};

const RETRY_PAUSE: Duration = Duration::from_millis(500);

impl Check {
    /// `Err` says why the last attempt failed. `http`: time limits and extra CAs for http(s)
    /// checks (the config's `[http]`).
    pub fn run(&self, http: &HttpSettings) -> Result<(), String> {
        let started = Instant::now();
        loop {
            let result = match &self.kind {
                CheckKind::Command(argv) => run_command(argv, self.timeout),
                CheckKind::Http { url, expect_status } => {
                    http_get(url, *expect_status, self.timeout, http)
                }
            };
            match result {
                Ok(()) => return Ok(()),
                Err(why) if started.elapsed() + RETRY_PAUSE >= self.retry_for => return Err(why),
                Err(why) => {
                    tracing::info!(check = %self.name, %why, "health check failed; retrying");
                    sleep(RETRY_PAUSE);
                }
            }
        }
    }
}

/// Runs the command with a time limit; nothing it started outlives the check.
fn run_command(argv: &[String], timeout: Duration) -> Result<(), String> {
    let (program, args) = argv.split_first().ok_or("empty command")?;
    match process::run(Command::new(program).args(args), timeout) {
        Err(e) => Err(format!("cannot run {program}: {e}")),
        Ok(Ended::Exited(status)) if status.success() => Ok(()),
        Ok(Ended::Exited(status)) => Err(format!("{program} {status}")),
        Ok(Ended::TimedOut) => Err(format!(
            "{program} did not finish within {} s",
            timeout.as_secs_f32()
        )),
    }
}

fn http_get(url: &str, expect: u16, timeout: Duration, http: &HttpSettings) -> Result<(), String> {
    let status = Client::new(http)
        .map_err(|e| e.to_string())?
        .status_of(url, timeout)?;
    if status == expect {
        Ok(())
    } else {
        Err(format!("GET {url} answered {status}, expected {expect}"))
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    use super::*;

    fn check(kind: CheckKind, timeout_ms: u64) -> Check {
        Check {
            name: "t".into(),
            kind,
            timeout: Duration::from_millis(timeout_ms),
            retry_for: Duration::ZERO,
            scope: super::super::Scope::Group,
        }
    }

    fn argv(s: &[&str]) -> CheckKind {
        CheckKind::Command(s.iter().map(|a| a.to_string()).collect())
    }

    #[test]
    fn commands_pass_fail_and_time_out() {
        assert_eq!(
            check(argv(&["true"]), 5000).run(&HttpSettings::default()),
            Ok(())
        );
        assert_eq!(
            check(argv(&["false"]), 5000)
                .run(&HttpSettings::default())
                .unwrap_err(),
            "false exit status: 1"
        );
        let started = Instant::now();
        let err = check(argv(&["sleep", "30"]), 300)
            .run(&HttpSettings::default())
            .unwrap_err();
        assert!(err.contains("did not finish within 0.3 s"), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a hanging check is killed"
        );
        assert!(check(argv(&["/nonexistent"]), 100)
            .run(&HttpSettings::default())
            .unwrap_err()
            .starts_with("cannot run /nonexistent"));
    }

    /// Whether a process whose command line is exactly `cmdline` still runs a moment later (a
    /// SIGKILL takes effect asynchronously).
    fn running(cmdline: &str) -> bool {
        let alive = || {
            std::fs::read_dir("/proc").unwrap().flatten().any(|p| {
                std::fs::read(p.path().join("cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).replace('\0', " ").trim() == cmdline)
            })
        };
        let deadline = Instant::now() + Duration::from_secs(2);
        while alive() {
            if Instant::now() > deadline {
                return true;
            }
            sleep(Duration::from_millis(20));
        }
        false
    }

    #[test]
    fn a_check_leaves_no_process_behind_on_timeout_or_success() {
        // Odd durations name these sleeps among whatever else runs.
        let started = Instant::now();
        let err = check(argv(&["sh", "-c", "sleep 123.25 & sleep 124.25"]), 1000)
            .run(&HttpSettings::default())
            .unwrap_err();
        assert!(err.contains("did not finish within 1 s"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(!running("sleep 123.25") && !running("sleep 124.25"));
        assert_eq!(
            check(argv(&["sh", "-c", "sleep 125.25 & true"]), 5000).run(&HttpSettings::default()),
            Ok(())
        );
        assert!(
            !running("sleep 125.25"),
            "what a passing check started lives on"
        );
    }

    /// Serves the given statuses, one connection each, on a loopback port.
    fn server(statuses: Vec<u16>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/health", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for status in statuses {
                let (mut conn, _) = listener.accept().unwrap();
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf);
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
        url
    }

    #[test]
    fn http_checks_want_the_expected_status_and_retry_until_it_comes() {
        let url = server(vec![200]);
        assert_eq!(
            check(
                CheckKind::Http {
                    url,
                    expect_status: 200
                },
                2000
            )
            .run(&HttpSettings::default()),
            Ok(())
        );
        let url = server(vec![503]);
        let err = check(
            CheckKind::Http {
                url: url.clone(),
                expect_status: 200,
            },
            2000,
        )
        .run(&HttpSettings::default())
        .unwrap_err();
        assert_eq!(err, format!("GET {url} answered 503, expected 200"));
        let url = server(vec![503, 503, 200]);
        let mut patient = check(
            CheckKind::Http {
                url,
                expect_status: 200,
            },
            2000,
        );
        patient.retry_for = Duration::from_secs(10);
        assert_eq!(patient.run(&HttpSettings::default()), Ok(()));
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let err = check(
            CheckKind::Http {
                url: format!("http://{closed}/"),
                expect_status: 200,
            },
            500,
        )
        .run(&HttpSettings::default())
        .unwrap_err();
        assert!(err.contains("Connection refused"), "{err}");
    }
}

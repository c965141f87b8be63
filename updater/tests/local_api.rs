//! The daemon's local HTTP API, driven with curl as a device's own software would: upload and
//! watch, refuse a second upload, cancel, tokens; and the daemon polling a real server by itself.
mod common;
use std::fs;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use bundle::release::ReleaseIndex;
use common::device::{release_of, Device, CONFIG};
use common::web::{free_port, wait_for_port, Nginx, ReportServer};
use serde_json::Value;

struct Daemon {
    child: Child,
    port: u16,
    token: Option<String>,
    log: std::path::PathBuf,
}

impl Daemon {
    fn start(device: &Device, port: u16, token: Option<&str>) -> Daemon {
        let mut command = Command::new(env!("CARGO_BIN_EXE_updater"));
        command
            .arg("--config")
            .arg(device.path("system.toml"))
            .arg("daemon");
        Daemon::spawn(device, port, token, command)
    }

    /// As systemd starts a `Type=notify` service: `NOTIFY_SOCKET`, and with `watchdog_usec` the
    /// watchdog time and `WATCHDOG_PID`, which must name the daemon (the shell's PID, which `exec`
    /// hands on).
    fn under_systemd(
        device: &Device,
        port: u16,
        notify: &Path,
        watchdog_usec: Option<&str>,
    ) -> Daemon {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(match watchdog_usec {
                Some(_) => "WATCHDOG_PID=$$ exec \"$0\" --config \"$1\" daemon",
                None => "exec \"$0\" --config \"$1\" daemon",
            })
            .arg(env!("CARGO_BIN_EXE_updater"))
            .arg(device.path("system.toml"))
            .env("NOTIFY_SOCKET", notify);
        if let Some(usec) = watchdog_usec {
            command.env("WATCHDOG_USEC", usec);
        }
        Daemon::spawn(device, port, None, command)
    }

    fn spawn(device: &Device, port: u16, token: Option<&str>, mut command: Command) -> Daemon {
        let log = device.path("daemon.log");
        let child = command
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        wait_for_port(port);
        Daemon {
            child,
            port,
            token: token.map(Into::into),
            log,
        }
    }

    /// What the daemon wrote to stderr so far.
    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs curl against the API; returns the HTTP status and the JSON body.
    fn curl(&self, method: &str, path: &str, extra: &[&str]) -> (u16, Value) {
        let out = self.curl_command(method, path, extra).output().unwrap();
        parse_curl(&out.stdout)
    }

    fn curl_command(&self, method: &str, path: &str, extra: &[&str]) -> Command {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "-X", method, "-w", "\n%{http_code}"]);
        if let Some(token) = &self.token {
            cmd.args(["-H", &format!("Authorization: Bearer {token}")]);
        }
        cmd.args(extra)
            .arg(format!("http://127.0.0.1:{}{path}", self.port))
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        cmd
    }

    fn status(&self) -> Value {
        let (code, body) = self.curl("GET", "/update/status", &[]);
        assert_eq!(code, 200, "{body}");
        body
    }

    /// Polls the status until `done` says so; returns every state seen.
    fn watch(&self, done: impl Fn(&Value) -> bool) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen: Vec<String> = Vec::new();
        loop {
            let status = self.status();
            let state = status["state"].as_str().unwrap().to_string();
            if seen.last() != Some(&state) {
                seen.push(state);
            }
            if done(&status) {
                return seen;
            }
            assert!(Instant::now() < deadline, "still {status} after 60 s");
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse_curl(stdout: &[u8]) -> (u16, Value) {
    let text = String::from_utf8_lossy(stdout);
    let (body, code) = text
        .trim_end()
        .rsplit_once('\n')
        .unwrap_or(("", text.trim()));
    let body = serde_json::from_str(body).unwrap_or(Value::String(body.to_string()));
    (code.parse().unwrap_or(0), body)
}

fn device_with_api(extra: &str) -> (Device, u16) {
    let port = free_port();
    let device = Device::with_config(&format!(
        "{CONFIG}\n[api]\nlisten = \"127.0.0.1:{port}\"\n{extra}"
    ));
    (device, port)
}

#[test]
fn an_upload_with_curl_installs_and_the_status_goes_to_ready() {
    let (device, port) = device_with_api("");
    let daemon = Daemon::start(&device, port, None);
    let (code, health) = daemon.curl("GET", "/health", &[]);
    assert_eq!(code, 200, "{health}");
    assert_eq!(health["booted"], "A");
    assert_eq!(health["updater_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(daemon.status()["state"], "idle");

    let (bundle, rootfs) = device.bundle("1.1.0");
    let upload = daemon
        .curl_command(
            "POST",
            "/update",
            &["--data-binary", &format!("@{}", bundle.display())],
        )
        .spawn()
        .unwrap();
    let seen = daemon.watch(|s| s["state"] == "ready-to-reboot");
    let (code, body) = parse_curl(&upload.wait_with_output().unwrap().stdout);
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["version"], "1.1.0");
    assert_eq!(seen.last().unwrap(), "ready-to-reboot", "{seen:?}");
    assert_eq!(device.slot("b"), rootfs);

    let (_, health) = daemon.curl("GET", "/health", &[]);
    assert_eq!(health["next"], "B");
    assert_eq!(health["slots"]["B"]["version"], "1.1.0");
    assert_eq!(health["slots"]["B"]["components"][0]["name"], "rootfs");
    assert_eq!(health["slots"]["B"]["components"][0]["version"], "1.1.0");

    let (code, body) = daemon.curl("POST", "/update", &["--data-binary", "not a bundle"]);
    assert_eq!(code, 422, "{body}");
    assert!(body["error"].as_str().unwrap().contains("bundle"), "{body}");
    let (code, _) = daemon.curl("GET", "/nothing", &[]);
    assert_eq!(code, 404);
    let (code, _) = daemon.curl("DELETE", "/update", &[]);
    assert_eq!(code, 405);
}

#[test]
fn a_second_upload_is_refused_and_cancel_leaves_the_target_unbootable() {
    let (device, port) = device_with_api("");
    let daemon = Daemon::start(&device, port, None);
    let (bundle, _) = device.bundle("1.1.0");
    // Slow enough to act while it runs: the whole upload takes about 8 s.
    let rate = (fs::metadata(&bundle).unwrap().len() / 8)
        .max(1024)
        .to_string();
    let slow = daemon
        .curl_command(
            "POST",
            "/update",
            &[
                "--limit-rate",
                &rate,
                "--data-binary",
                &format!("@{}", bundle.display()),
            ],
        )
        .spawn()
        .unwrap();
    // The version shows as soon as the bundle's signed manifest is verified.
    daemon.watch(|s| s["state"] == "installing" && s["version"] == "1.1.0");

    let (code, body) = daemon.curl(
        "POST",
        "/update",
        &["--data-binary", &format!("@{}", bundle.display())],
    );
    assert_eq!(code, 409, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("an update is already running (installing 1.1.0 from"),
        "{error}"
    );

    let (code, body) = daemon.curl("POST", "/update/cancel", &[]);
    assert_eq!(code, 202, "{body}");
    let (code, body) = parse_curl(&slow.wait_with_output().unwrap().stdout);
    assert_eq!(code, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("install cancelled"),
        "{body}"
    );
    let status = daemon.status();
    assert_eq!(status["state"], "failed");
    assert!(status["last_error"]
        .as_str()
        .unwrap()
        .contains("group B stays unbootable"));
    let (code, _) = daemon.curl("POST", "/update/cancel", &[]);
    assert_eq!(code, 409);

    // The booted group is intact and still boots next; the target does not boot.
    assert_eq!(device.slot("a"), b"running system A");
    let status = device.status();
    assert_eq!(status["next"], "A");
    assert_eq!(status["slots"]["B"]["bootable"], false);
    assert_eq!(status["last_install"]["result"], "failed");
}

fn wait_for_file(path: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} did not appear",
            path.display()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn reboot_asks_the_configured_command() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("rebooted");
    let (device, port) = device_with_api(&format!(
        "[boot_check]\nreboot_command = [\"touch\", \"{}\"]\n",
        marker.display()
    ));
    let daemon = Daemon::start(&device, port, None);
    let (code, body) = daemon.curl("POST", "/reboot", &[]);
    assert_eq!(code, 202, "{body}");
    wait_for_file(&marker);
}

#[test]
fn with_a_token_every_request_needs_it() {
    let (device, port) = device_with_api("token = \"s3cret\"\n");
    let mut daemon = Daemon::start(&device, port, None);
    let (code, body) = daemon.curl("GET", "/health", &[]);
    assert_eq!(code, 401, "{body}");
    daemon.token = Some("wrong".into());
    assert_eq!(daemon.curl("GET", "/update/status", &[]).0, 401);
    daemon.token = Some("s3cret".into());
    assert_eq!(daemon.curl("GET", "/health", &[]).0, 200);
}

#[test]
fn the_daemon_polls_the_server_and_installs_by_itself() {
    let root = tempfile::tempdir().unwrap();
    let web = Nginx::serve(root.path());
    let marker = root.path().join("rebooted");
    let (device, port) = device_with_api(&format!(
        "[fleet]\nurl = \"{}\"\ndevice_id = \"robot-7\"\ninterval = \"2s\"\njitter = \"1s\"\n\
         after_install = \"reboot\"\n[boot_check]\nreboot_command = [\"touch\", \"{}\"]\n",
        web.url(""),
        marker.display()
    ));
    let (bundle, rootfs) = device.bundle("1.1.0");
    fs::copy(&bundle, root.path().join("acme-1.1.0.zst")).unwrap();
    let index = ReleaseIndex {
        serial: 1,
        suggested: Some(release_of(&bundle, "acme-1.1.0.zst")),
        ..ReleaseIndex::new("stable", "acme-robot")
    };
    fs::write(
        root.path().join("stable.toml"),
        index.to_signed(&[&device.key]),
    )
    .unwrap();

    let daemon = Daemon::start(&device, port, None);
    let seen = daemon.watch(|s| s["state"] == "ready-to-reboot");
    assert!(seen.contains(&"ready-to-reboot".to_string()), "{seen:?}");
    assert_eq!(device.slot("b"), rootfs);
    wait_for_file(&marker);
    fs::remove_file(&marker).unwrap();
    // Later polls see the release waiting for the reboot and leave it alone.
    thread::sleep(Duration::from_secs(3));
    assert!(!marker.exists(), "rebooted again for the same release");
    assert_eq!(daemon.status()["state"], "ready-to-reboot");
    assert!(web.statuses().iter().filter(|&&s| s == 200).count() >= 2);
}

/// Serves `device`'s 1.1.0 bundle and, when `with_index`, the signed index naming it.
fn publish(device: &Device, root: &std::path::Path, with_index: bool) -> Vec<u8> {
    let (bundle, rootfs) = device.bundle("1.1.0");
    fs::copy(&bundle, root.join("acme-1.1.0.zst")).unwrap();
    if with_index {
        let index = ReleaseIndex {
            serial: 1,
            suggested: Some(release_of(&bundle, "acme-1.1.0.zst")),
            ..ReleaseIndex::new("stable", "acme-robot")
        };
        fs::write(root.join("stable.toml"), index.to_signed(&[&device.key])).unwrap();
    }
    rootfs
}

#[test]
fn the_daemon_reports_its_start_a_failed_poll_and_an_install() {
    let root = tempfile::tempdir().unwrap();
    let web = Nginx::serve(root.path());
    let server = ReportServer::start(204);
    let (device, port) = device_with_api(&format!(
        "[fleet]\nurl = \"{}\"\ndevice_id = \"robot-7\"\ninterval = \"2s\"\njitter = \"1s\"\n\
         report_url = \"{}\"\nreport_token = \"fleet-s3cret\"\n",
        web.url(""),
        server.url()
    ));
    let daemon = Daemon::start(&device, port, None);

    // No index yet: the first poll fails, and the report says why.
    let reports = server.wait_for(|r| r["event"] == "polled");
    let started = &reports[0].body;
    assert_eq!(started["event"], "started", "{started}");
    assert_eq!(started["device_id"], "robot-7");
    assert_eq!(started["channel"], "stable");
    assert_eq!(started["booted"], "A");
    assert_eq!(started["updater_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(started["activity"]["state"], "idle");
    assert!(started["last_install"].is_null() && started["check"].is_null());
    let failed = &reports
        .iter()
        .find(|r| r.body["event"] == "polled")
        .unwrap()
        .body;
    assert!(failed["check"].is_null(), "{failed}");
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("stable.toml: HTTP 404"),
        "{failed}"
    );

    let rootfs = publish(&device, root.path(), true);
    let reports = server.wait_for(|r| r["activity"]["state"] == "ready-to-reboot");
    let installed = &reports.last().unwrap().body;
    assert_eq!(installed["event"], "polled");
    assert_eq!(installed["check"]["update"], true, "{installed}");
    assert_eq!(installed["check"]["version"], "1.1.0");
    assert_eq!(installed["last_install"]["result"], "installed");
    assert_eq!(installed["last_install"]["version"], "1.1.0");
    assert_eq!(installed["slots"]["B"]["version"], "1.1.0");
    assert!(installed["error"].is_null(), "{installed}");
    assert_eq!(device.slot("b"), rootfs);
    for report in &reports {
        assert_eq!(report.authorization.as_deref(), Some("Bearer fleet-s3cret"));
        assert_eq!(report.content_type.as_deref(), Some("application/json"));
    }
    assert_eq!(daemon.status()["state"], "ready-to-reboot");
}

#[test]
fn a_report_server_that_fails_does_not_stop_the_update() {
    let root = tempfile::tempdir().unwrap();
    let web = Nginx::serve(root.path());
    let server = ReportServer::start(500);
    let (device, port) = device_with_api(&format!(
        "[fleet]\nurl = \"{}\"\ndevice_id = \"robot-7\"\ninterval = \"2s\"\njitter = \"1s\"\n\
         report_url = \"{}\"\n",
        web.url(""),
        server.url()
    ));
    let rootfs = publish(&device, root.path(), true);
    let daemon = Daemon::start(&device, port, None);
    daemon.watch(|s| s["state"] == "ready-to-reboot");
    assert_eq!(device.slot("b"), rootfs);
    let reports = server.wait_for(|r| r["activity"]["state"] == "ready-to-reboot");
    assert!(reports.iter().all(|r| r.authorization.is_none()));
    // The daemon logs the failure after the server answered; give it a moment.
    let expected = format!("report to {}: HTTP 500", server.url());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !daemon.log().contains(&expected) {
        assert!(Instant::now() < deadline, "{}", daemon.log());
        thread::sleep(Duration::from_millis(50));
    }
}

/// Sends `request` as raw bytes and returns the status line of the answer.
fn raw_request(port: u16, request: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

#[test]
fn defect_02_a_huge_content_length_is_refused_without_reading_or_allocating() {
    let (device, port) = device_with_api("token = \"s3cret\"\n");
    let daemon = Daemon::start(&device, port, Some("s3cret"));
    let huge = b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 4611686018427387904\r\n\r\n";
    assert_eq!(raw_request(port, huge), "HTTP/1.1 401 Unauthorized");
    // Authorized, on an endpoint that does not read a body: answered, the body left unread.
    let with_token = b"GET /health HTTP/1.1\r\nAuthorization: Bearer s3cret\r\nContent-Length: 4611686018427387904\r\n\r\n";
    assert_eq!(raw_request(port, with_token), "HTTP/1.1 200 OK");
    let smuggled = b"POST /update HTTP/1.1\r\nAuthorization: Bearer s3cret\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n";
    assert_eq!(raw_request(port, smuggled), "HTTP/1.1 400 Bad Request");
    let mut giant_head = b"GET /health HTTP/1.1\r\nX: ".to_vec();
    giant_head.extend(std::iter::repeat_n(b'a', 100_000));
    assert_eq!(
        raw_request(port, &giant_head),
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    // Still alive and answering.
    assert_eq!(daemon.curl("GET", "/health", &[]).0, 200);
}

#[test]
fn defect_02_idle_connections_beyond_the_cap_are_turned_away_and_the_api_recovers() {
    let (device, port) = device_with_api("");
    let daemon = Daemon::start(&device, port, None);
    // Let the start-up probe's connection end, so that it holds no place.
    thread::sleep(Duration::from_millis(300));
    // Connections that never send a request hold their threads until the head timeout.
    let idle: Vec<_> = (0..20)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    thread::sleep(Duration::from_millis(300));
    assert_eq!(
        raw_request(port, b"GET /health HTTP/1.1\r\n\r\n"),
        "HTTP/1.1 503 Service Unavailable",
        "{}",
        daemon.log()
    );
    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(15);
    while daemon.curl("GET", "/health", &[]).0 != 200 {
        assert!(Instant::now() < deadline, "the API did not recover");
        thread::sleep(Duration::from_millis(100));
    }
}

/// The notify socket of a test standing in for systemd: the messages the daemon sends.
struct NotifySocket {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    socket: UnixDatagram,
}

impl NotifySocket {
    fn new() -> NotifySocket {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).unwrap();
        NotifySocket {
            _dir: dir,
            path,
            socket,
        }
    }

    /// The next message within `wait`, if one comes.
    fn next(&self, wait: Duration) -> Option<String> {
        self.socket.set_read_timeout(Some(wait)).unwrap();
        let mut buf = [0u8; 256];
        let n = self.socket.recv(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// Drops what has arrived so far.
    fn drain(&self) {
        while self.next(Duration::from_millis(50)).is_some() {}
    }
}

fn signal(daemon: &Daemon, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &daemon.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn under_systemd_the_daemon_says_ready_and_pings_the_watchdog_while_it_runs() {
    let (device, port) = device_with_api("");
    let notify = NotifySocket::new();
    let daemon = Daemon::under_systemd(&device, port, &notify.path, Some("400000"));
    assert_eq!(
        notify.next(Duration::from_secs(10)).as_deref(),
        Some("READY=1\n")
    );
    for _ in 0..3 {
        assert_eq!(
            notify.next(Duration::from_secs(2)).as_deref(),
            Some("WATCHDOG=1\n"),
            "{}",
            daemon.log()
        );
    }
    // A daemon that does not run (stopped here, hung in the field) falls silent, so systemd's
    // watchdog fires; it pings again once it runs.
    signal(&daemon, "-STOP");
    thread::sleep(Duration::from_millis(100));
    notify.drain();
    assert_eq!(notify.next(Duration::from_secs(1)), None);
    signal(&daemon, "-CONT");
    assert_eq!(
        notify.next(Duration::from_secs(2)).as_deref(),
        Some("WATCHDOG=1\n")
    );
}

#[test]
fn without_a_watchdog_time_the_daemon_only_says_ready() {
    let (device, port) = device_with_api("");
    let notify = NotifySocket::new();
    let daemon = Daemon::under_systemd(&device, port, &notify.path, None);
    assert_eq!(
        notify.next(Duration::from_secs(10)).as_deref(),
        Some("READY=1\n")
    );
    assert_eq!(
        notify.next(Duration::from_secs(1)),
        None,
        "{}",
        daemon.log()
    );
}

/// A device whose daemon runs the check "app" every second: it fails while `broken` exists.
fn device_with_runtime_checks(broken: &Path, marker: &Path, extra: &str) -> (Device, u16) {
    device_with_api(&format!(
        "[boot_check]\nruntime_interval = \"1s\"\non_runtime_failure = \"reboot\"\n\
         reboot_command = [\"touch\", \"{}\"]\n\n\
         [[boot_check.check]]\nname = \"app\"\ncommand = [\"sh\", \"-c\", \"! test -e {}\"]\n{extra}",
        marker.display(),
        broken.display()
    ))
}

/// Reads `updater status --json` until `done` holds for its `runtime_health`.
fn wait_for_runtime_health(device: &Device, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = device.status();
        if done(&status["runtime_health"]) {
            return status;
        }
        assert!(Instant::now() < deadline, "still {status} after 30 s");
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_runtime_check_that_fails_on_an_unconfirmed_group_marks_it_bad_and_reboots() {
    let dir = tempfile::tempdir().unwrap();
    let (broken, marker) = (dir.path().join("broken"), dir.path().join("rebooted"));
    let (device, port) = device_with_runtime_checks(&broken, &marker, "");
    let (bundle, _) = device.bundle("1.1.0");
    assert!(device.install(&bundle).status.success());
    device.set_booted("B");
    let daemon = Daemon::start(&device, port, None);
    let status = wait_for_runtime_health(&device, |h| h["healthy"] == true);
    assert_eq!(status["runtime_health"]["group"], "B");
    assert_eq!(status["slots"]["B"]["good"], false, "{status}");

    fs::write(&broken, "").unwrap();
    wait_for_file(&marker);
    let status = device.status();
    let health = &status["runtime_health"];
    assert_eq!(health["healthy"], false, "{status}");
    assert!(
        health["failures"][0]
            .as_str()
            .unwrap()
            .starts_with("check 'app': sh exit status: 1"),
        "{health}"
    );
    assert_eq!(status["slots"]["B"]["bootable"], false, "{status}");
    assert_eq!(status["next"], "A");
    let state = fs::read_to_string(device.path("state/state.json")).unwrap();
    assert!(
        state.contains("runtime health check failed before the group was confirmed"),
        "{state}"
    );
    assert!(daemon.log().contains("marking group B bad and rebooting"));
    // GET /health carries it too.
    let (code, body) = daemon.curl("GET", "/health", &[]);
    assert_eq!(code, 200);
    assert_eq!(body["runtime_health"]["healthy"], false, "{body}");
}

#[test]
fn a_confirmed_group_that_fails_a_runtime_check_is_reported_not_sent_back() {
    let dir = tempfile::tempdir().unwrap();
    let (broken, marker) = (dir.path().join("broken"), dir.path().join("rebooted"));
    let server = ReportServer::start(204);
    let (device, port) = device_with_runtime_checks(
        &broken,
        &marker,
        &format!(
            "\n[fleet]\nurl = \"http://127.0.0.1:9/\"\npoll = false\ndevice_id = \"robot-7\"\nreport_url = \"{}\"\n",
            server.url()
        ),
    );
    fs::write(&broken, "").unwrap();
    let daemon = Daemon::start(&device, port, None);
    let status = wait_for_runtime_health(&device, |h| h["failing_runs"].as_u64() >= Some(2));
    assert_eq!(status["slots"]["A"]["good"], true, "{status}");
    assert!(!marker.exists(), "a confirmed group was rebooted");
    let text = device.updater(&["status"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("runtime health: failing at") && text.contains("check 'app'"),
        "{text}"
    );
    assert!(daemon
        .log()
        .contains("updater: runtime health: check 'app'"));

    // The server hears of the failure once, and of the recovery.
    let reports = server.wait_for(|r| r["event"] == "runtime-health");
    let failing = &reports.last().unwrap().body;
    assert_eq!(failing["runtime_health"]["healthy"], false, "{failing}");
    fs::remove_file(&broken).unwrap();
    let reports = server
        .wait_for(|r| r["event"] == "runtime-health" && r["runtime_health"]["healthy"] == true);
    let events = reports
        .iter()
        .filter(|r| r.body["event"] == "runtime-health")
        .count();
    assert_eq!(events, 2, "one report per change");
    assert!(!marker.exists());
}

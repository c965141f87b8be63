//! Servers that answer as an attacker or a broken mirror would: redirects to other schemes,
//! endless redirects, a trickle, a stall. Each ends in a one-line error with the network exit code
//! (13) and nothing written, never in a crash (exit 134) or a wait without end.
mod common;
use std::io::Write;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::device::{assert_fails, assert_safe, Device, CONFIG};
use common::web::{Nginx, RawServer};
use updater::cancel::CancelToken;
use updater::config::HttpSettings;
use updater::net::{Client, Download};

const EXIT_NETWORK: i32 = 13;

fn redirect_to(location: &'static str) -> RawServer {
    RawServer::start(move |_, stream| {
        let _ = write!(
            stream,
            "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
    })
}

#[test]
fn defect_01_a_redirect_to_another_scheme_is_refused_not_a_crash() {
    for (location, refusal) in [
        ("file:///etc/passwd", "redirect refused"),
        ("data:text/plain,hello", "redirect refused"),
        ("mailto:root@example.com", "redirect refused"),
        ("unix:/run/updater.sock", "redirect refused"),
        ("http://", "redirect to an invalid URL: empty host"),
    ] {
        let server = redirect_to(location);
        let device = Device::with_config(&format!(
            "{CONFIG}\n[fleet]\nurl = \"{}\"\ndevice_id = \"robot-1\"\n",
            server.url("fleet")
        ));
        let before = device.snapshot();
        let out = device.install_source(&server.url("b.zst"));
        assert_fails(&out, EXIT_NETWORK, refusal);
        assert_eq!(device.snapshot(), before, "something was written");
        assert_safe(&device);
        // The index goes through the same client.
        assert_fails(&device.updater(&["check"]), EXIT_NETWORK, refusal);
    }
}

#[test]
fn defect_01_redirects_are_followed_to_http_and_at_most_five_times() {
    let root = tempfile::tempdir().unwrap();
    let web = Nginx::serve(root.path());
    let device = Device::new();
    let (bundle, rootfs) = device.bundle("1.1.0");
    std::fs::copy(&bundle, root.path().join("b.zst")).unwrap();
    let target = web.url("b.zst");
    let hop = RawServer::start(move |_, stream| {
        let _ = write!(
            stream,
            "HTTP/1.1 301 Moved\r\nLocation: {target}\r\nContent-Length: 0\r\n\r\n"
        );
    });
    let out = device.install_source(&hop.url("b.zst"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(device.slot("b"), rootfs);

    let endless = RawServer::start(|head, stream| {
        let n: u32 = head
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.trim_start_matches('/').parse().ok())
            .unwrap_or(0);
        let _ = write!(
            stream,
            "HTTP/1.1 302 Found\r\nLocation: /{}\r\nContent-Length: 0\r\n\r\n",
            n + 1
        );
    });
    let device = Device::new();
    let before = device.snapshot();
    let out = device.install_source(&endless.url("0"));
    assert_fails(&out, EXIT_NETWORK, "more than 5 redirects");
    assert_eq!(endless.requests().len(), 6);
    assert_eq!(device.snapshot(), before);
}

/// Answers headers at once, then one byte every `pause`, for ever (until the client leaves).
fn trickle(pause: Duration, headers: &'static str) -> RawServer {
    RawServer::start(move |_, stream| {
        let _ = write!(stream, "HTTP/1.1 200 OK\r\n{headers}\r\n");
        while stream.write_all(b"x").is_ok() {
            thread::sleep(pause);
        }
    })
}

#[test]
fn defect_10_an_index_served_one_byte_at_a_time_hits_the_deadline() {
    let server = trickle(Duration::from_millis(300), "Content-Length: 100000\r\n");
    let device = Device::with_config(&format!(
        "{CONFIG}\n[fleet]\nurl = \"{}\"\ndevice_id = \"robot-1\"\n[http]\ntimeout = 2\n",
        server.url("fleet")
    ));
    let started = Instant::now();
    let out = device.updater(&["check"]);
    assert_fails(&out, EXIT_NETWORK, "not complete within 2 s");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn defect_10_a_download_below_the_minimum_rate_is_broken_off() {
    // No ETag: the download cannot resume, so the rate check's verdict is the error.
    let server = trickle(Duration::from_millis(200), "Content-Length: 100000\r\n");
    let settings = HttpSettings {
        min_rate: 1000,
        stall_time: Duration::from_secs(2),
        ..HttpSettings::default()
    };
    let client = Client::new(&settings).unwrap();
    let mut download = Download::start(&client, &server.url("b.zst"), None).unwrap();
    let err = std::io::copy(&mut download, &mut std::io::sink()).unwrap_err();
    assert!(
        err.to_string()
            .contains("below the minimum of 1000 bytes/s"),
        "{err}"
    );
}

#[test]
fn defect_09_cancel_stops_a_stalled_download_within_two_seconds() {
    // An ETag makes the download resumable: after the cancel no Range request may go out.
    let server = trickle(
        Duration::from_secs(30),
        "Content-Length: 100000\r\nETag: \"v1\"\r\n",
    );
    let client = Client::new(&HttpSettings::default()).unwrap();
    let cancel = Arc::new(CancelToken::default());
    let mut download =
        Download::start(&client, &server.url("b.zst"), Some(Arc::clone(&cancel))).unwrap();
    let reader = thread::spawn(move || {
        let started = Instant::now();
        let result = std::io::copy(&mut download, &mut std::io::sink());
        (result, started)
    });
    thread::sleep(Duration::from_millis(500));
    let cancelled_at = Instant::now();
    assert!(cancel.cancel());
    let (result, _) = reader.join().unwrap();
    let err = result.unwrap_err();
    assert_eq!(err.to_string(), "cancelled");
    assert!(cancelled_at.elapsed() < Duration::from_secs(2));
    thread::sleep(Duration::from_millis(500));
    let requests = server.requests();
    assert_eq!(
        requests.len(),
        1,
        "a request went out after the cancel: {requests:?}"
    );
}

#[test]
fn a_download_that_cannot_resume_is_a_network_failure_with_exit_13() {
    // The connection breaks after some bytes; the resume finds another file (no 206).
    let device = Device::new();
    let (bundle, _) = device.bundle("1.1.0");
    let bytes = Arc::new(std::fs::read(&bundle).unwrap());
    let server = RawServer::start(move |head, stream| {
        let first = !head.contains("Range:");
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nETag: \"{}\"\r\n\r\n",
            bytes.len(),
            if first { "v1" } else { "v2" }
        );
        let end = if first { bytes.len() / 2 } else { bytes.len() };
        let _ = stream.write_all(&bytes[..end]);
    });
    let before = device.snapshot();
    let out = device.install_source(&server.url("b.zst"));
    // The resume attempt is logged as a warning; the failure is the last line.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(EXIT_NETWORK), "{stderr}");
    let last = stderr.lines().last().unwrap_or("");
    assert!(
        last.starts_with("updater: error: network: ")
            && last.contains("changed on the server during the download"),
        "{stderr}"
    );
    assert_safe(&device);
    assert_eq!(device.snapshot()[0], before[0], "the running group changed");
}

#[test]
fn defect_10_a_bundle_server_that_trickles_its_headers_is_given_up_on() {
    // One header byte every 300 ms: each read is quick, the answer never complete.
    let server = RawServer::start(|_, stream| {
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: "
            .iter()
            .chain([b'a'; 1000].iter())
        {
            if stream.write_all(&[*byte]).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(300));
        }
    });
    let device = Device::with_config(&format!("{CONFIG}\n[http]\ntimeout = 2\n"));
    let before = device.snapshot();
    let started = Instant::now();
    let out = device.install_source(&server.url("b.zst"));
    assert_fails(&out, EXIT_NETWORK, "no answer within 2 s");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(device.snapshot(), before);
}

#[test]
fn a_header_line_without_a_colon_is_refused_not_a_crash() {
    // ureq 2 panicked on these (found by the http_response fuzz target); every header it looked
    // at itself (Connection, Transfer-Encoding, Content-Length ...) was a way in.
    for header in [
        "Connection",
        "Transfer-Encoding",
        "Content-Length",
        "Content-Encoding",
        "Location",
        "ETag",
    ] {
        let server = RawServer::start(move |_, stream| {
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\n{header}\r\nContent-Length: 5\r\n\r\nhello"
            );
        });
        let device = Device::with_config(&format!(
            "{CONFIG}\n[fleet]\nurl = \"{}\"\ndevice_id = \"robot-1\"\n",
            server.url("fleet")
        ));
        let out = device.updater(&["check"]);
        assert_fails(&out, EXIT_NETWORK, "fleet/stable.toml");
        let before = device.snapshot();
        assert_fails(
            &device.install_source(&server.url("b.zst")),
            EXIT_NETWORK,
            "b.zst",
        );
        assert_eq!(device.snapshot(), before, "{header}: something was written");
    }
}

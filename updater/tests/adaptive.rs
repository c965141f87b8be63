//! Adaptive installs from a real nginx: a device that holds the last release downloads only the
//! content it lacks (found anywhere in its slots, block by block), an interrupted install resumes
//! with what the target slot holds, a server without ranges gets a full download, and a server
//! that answers other ranges than asked changes nothing bootable.
mod common;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::thread;

use common::device::{assert_fails, Device};
use common::pair::pair;
use common::web::{Fault, Nginx, Proxy};
use serde_json::Value;

struct Setup {
    device: Device,
    nginx: Nginx,
    v2: Vec<u8>,
    bundle: PathBuf,
}

/// A device running v1 in A, and v2 as a format-2 bundle on nginx.
fn setup() -> Setup {
    let device = Device::new();
    let (v1, v2) = pair();
    fs::write(device.path("slots/rootfs-a.img"), &v1).unwrap();
    let bundle = device.format2_bundle("v2.zst", "1.1.0", &v2);
    let nginx = Nginx::serve(device.dir.path());
    Setup {
        device,
        nginx,
        v2,
        bundle,
    }
}

fn last_install(device: &Device) -> Value {
    device.status()["last_install"].clone()
}

fn size(path: &Path) -> u64 {
    fs::metadata(path).unwrap().len()
}

fn succeeded(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    stderr
}

#[test]
fn a_device_downloads_only_the_blocks_it_lacks() {
    let s = setup();
    let out = s.device.install_source(&s.nginx.url("v2.zst"));
    succeeded(&out);
    assert_eq!(s.device.slot("b"), s.v2);
    let last = last_install(&s.device);
    let downloaded = last["downloaded_bytes"].as_u64().unwrap();
    let reused = last["reused_bytes"].as_u64().unwrap();
    let bundle = size(&s.bundle);
    // 40 new blocks lie in 40 of 128 chunks; everything else comes from slot A.
    assert!(
        downloaded * 100 < bundle * 40,
        "downloaded {downloaded} of a {bundle}-byte bundle"
    );
    assert!(reused >= s.v2.len() as u64 * 6 / 10, "reused {reused}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("{reused} bytes were on this device already")),
        "{stdout}"
    );
    // The head (a plain GET, left once the manifest is read), then many ranges per request: far
    // fewer requests than fetched chunks.
    let statuses = s.nginx.statuses();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|&s| s == 200 || s == 206),
        "{statuses:?}"
    );
    assert!(statuses.len() < 10, "{} requests", statuses.len());
    assert_eq!(s.device.status()["next"], "B");
}

#[test]
fn an_interrupted_install_resumes_with_what_the_target_slot_holds() {
    let s = setup();
    // Slot A holds nothing of v2: everything is fetched, and the answer breaks off at 60 %.
    fs::write(s.device.path("slots/rootfs-a.img"), "running system A").unwrap();
    let bundle = size(&s.bundle);
    let proxy = Proxy::start_for_all(s.nginx.port, Fault::CutAfter(bundle as usize * 6 / 10));
    let out = s.device.install_source(&proxy.url("v2.zst"));
    assert!(!out.status.success());
    let status = s.device.status();
    assert_eq!(status["slots"]["B"]["bootable"], false);
    assert_eq!(status["last_install"]["result"], "failed");

    succeeded(&s.device.install_source(&s.nginx.url("v2.zst")));
    assert_eq!(s.device.slot("b"), s.v2);
    let downloaded = last_install(&s.device)["downloaded_bytes"]
        .as_u64()
        .unwrap();
    assert!(
        downloaded < bundle / 2,
        "the second run downloaded {downloaded} of {bundle} bytes"
    );
}

#[test]
fn a_file_slot_that_does_not_exist_yet_is_made() {
    let s = setup();
    fs::remove_file(s.device.path("slots/rootfs-b.img")).unwrap();
    succeeded(&s.device.install_source(&s.nginx.url("v2.zst")));
    assert_eq!(s.device.slot("b"), s.v2);
}

#[test]
fn a_server_without_ranges_gets_a_full_download_said_once() {
    let s = setup();
    let nginx = Nginx::serve_with(s.device.dir.path(), "max_ranges 0;");
    let stderr = succeeded(&s.device.install_source(&nginx.url("v2.zst")));
    assert_eq!(s.device.slot("b"), s.v2);
    assert_eq!(
        stderr.matches("downloading the whole bundle").count(),
        1,
        "{stderr}"
    );
    let last = last_install(&s.device);
    assert_eq!(last["downloaded_bytes"].as_u64(), Some(size(&s.bundle)));
    assert_eq!(last["reused_bytes"].as_u64(), Some(0));
}

#[test]
fn a_format_1_bundle_from_a_url_is_downloaded_whole() {
    let s = setup();
    let v1 = s.device.bundle_with(
        "f1.zst",
        "acme-robot",
        "1.1.0",
        0,
        &[("rootfs", s.v2.clone())],
    );
    succeeded(&s.device.install_source(&s.nginx.url("f1.zst")));
    assert_eq!(s.device.slot("b"), s.v2);
    assert_eq!(
        last_install(&s.device)["downloaded_bytes"].as_u64(),
        Some(size(&v1))
    );
}

#[test]
fn a_flipped_byte_in_a_fetched_frame_is_caught_before_it_is_written() {
    let s = setup();
    fs::write(s.device.path("slots/rootfs-a.img"), "running system A").unwrap();
    // Every answer through the proxy has one byte flipped, past the head of a data answer.
    let proxy = Proxy::start_for_all(s.nginx.port, Fault::FlipAt(300_000));
    let out = s.device.install_source(&proxy.url("v2.zst"));
    assert_fails(&out, 4, "bundle is corrupt: chunk ");
    assert_eq!(s.device.status()["slots"]["B"]["bootable"], false);
}

/// Answers Range requests from a file, correctly, except that a request for several ranges gets
/// the bytes one further on than asked.
struct RangeLiar {
    port: u16,
}

impl RangeLiar {
    fn start(file: &Path) -> RangeLiar {
        let data = Arc::new(fs::read(file).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut range = String::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(value) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
                        range = value.trim().to_string();
                    }
                }
                let len = data.len();
                if range.is_empty() {
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nAccept-Ranges: bytes\r\nConnection: close\r\n\r\n"
                    );
                    let _ = stream.write_all(head.as_bytes());
                    let _ = stream.write_all(&data);
                    continue;
                }
                let (start, end) = match range.split(',').next().unwrap().split_once('-') {
                    Some(("", n)) => (len - n.parse::<usize>().unwrap().min(len), len - 1),
                    Some((a, "")) => (a.parse().unwrap(), len - 1),
                    Some((a, b)) => (a.parse().unwrap(), b.parse::<usize>().unwrap()),
                    None => (0, len - 1),
                };
                let shift = usize::from(range.contains(','));
                let (start, end) = (start + shift, (end + shift).min(len - 1));
                let head = format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{end}/{len}\r\nConnection: close\r\n\r\n",
                    end - start + 1
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&data[start..=end]);
                let _ = reader.read(&mut [0u8; 1]);
            }
        });
        RangeLiar { port }
    }
}

#[test]
fn a_server_answering_other_ranges_than_asked_leaves_the_group_unbootable() {
    let s = setup();
    let liar = RangeLiar::start(&s.bundle);
    let out = s
        .device
        .install_source(&format!("http://127.0.0.1:{}/v2.zst", liar.port));
    assert_fails(&out, 13, "where bytes from");
    let status = s.device.status();
    assert_eq!(status["slots"]["B"]["bootable"], false);
    assert_eq!(status["next"], "A");
    assert_eq!(status["last_install"]["result"], "failed");
}

#[test]
fn a_seek_table_claiming_an_oversized_frame_is_refused_before_anything_is_written() {
    let s = setup();
    // Move 40 000 bytes from four chunk frames' entries to another's: the sizes still add up to
    // the file, but one frame now claims more than zstd makes of 64 KiB (it would be fetched whole).
    let mut bytes = fs::read(&s.bundle).unwrap();
    let count = u32::from_le_bytes(bytes[bytes.len() - 9..bytes.len() - 5].try_into().unwrap());
    let table = bytes.len() - 9 - 8 * count as usize;
    let entry = |i: usize| table + 8 * i;
    let chunks: Vec<usize> = (0..count as usize)
        .filter(|&i| bytes[entry(i) + 4..entry(i) + 8] == 65536u32.to_le_bytes())
        .take(5)
        .collect();
    for (n, &i) in chunks.iter().enumerate() {
        let at = entry(i);
        let size = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        let size = if n == 0 { size + 40_000 } else { size - 10_000 };
        bytes[at..at + 4].copy_from_slice(&size.to_le_bytes());
    }
    s.device.write_bundle("lying-table.zst", &bytes);
    let before = s.device.snapshot();
    let out = s.device.install_source(&s.nginx.url("lying-table.zst"));
    assert_fails(&out, 4, "is not a frame of its own");
    assert_eq!(s.device.snapshot(), before, "something was written");
}

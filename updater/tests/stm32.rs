//! The STM32 serial flasher against a simulated bootloader on a pseudo-terminal. The simulator is
//! proved faithful first: Debian's stm32flash writes, reads back and verifies an image through it.
mod common;

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use common::stm32_sim::{self, Faults, FLASH_BASE};
use updater::firmware::stm32::{Bootloader, Stm32Error, Timeouts};

fn image(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

#[test]
fn stm32flash_writes_and_verifies_through_the_simulator() {
    let sim = stm32_sim::start(Faults::default());
    let dir = tempfile::tempdir().unwrap();
    let firmware = image(3000);
    fs::write(dir.path().join("fw.bin"), &firmware).unwrap();
    // A pty cannot keep the parity flag, so stm32flash needs 8n1 here (its default 8e1 fails).
    let out = Command::new("stm32flash")
        .args(["-m", "8n1", "-b", "115200", "-v", "-w"])
        .arg(dir.path().join("fw.bin"))
        .arg(&sim.port)
        .output()
        .expect("stm32flash is installed");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(&sim.flash.lock().unwrap()[..3000], &firmware[..]);
    let read = dir.path().join("back.bin");
    let out = Command::new("stm32flash")
        .args(["-m", "8n1", "-r"])
        .arg(&read)
        .args(["-S", "0x08000000:3000"])
        .arg(&sim.port)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(fs::read(read).unwrap(), firmware);
}

fn open(sim: &stm32_sim::Sim) -> Box<dyn serialport::SerialPort> {
    updater::firmware::open_serial(
        sim.port.to_str().unwrap(),
        115_200,
        updater::firmware::Parity::Even,
    )
    .unwrap()
}

fn quick() -> Timeouts {
    Timeouts {
        answer: Duration::from_millis(300),
        mass_erase: Duration::from_secs(2),
    }
}

/// Connects our flasher to a simulator with `faults` and flashes `len` bytes; returns the result
/// and the simulator, whose flash the caller inspects.
fn flash_through(faults: Faults, firmware: &[u8]) -> (Result<(), Stm32Error>, stm32_sim::Sim) {
    let sim = stm32_sim::start(faults);
    let mut bl = Bootloader::connect(open(&sim), quick()).unwrap();
    assert_eq!(bl.product_id, 0x410);
    (bl.flash(FLASH_BASE, firmware, &mut |_| {}), sim)
}

fn assert_flashed(faults: Faults, len: usize) {
    let firmware = image(len);
    let (result, sim) = flash_through(faults, &firmware);
    result.unwrap();
    assert_eq!(&sim.flash.lock().unwrap()[..len], &firmware[..]);
}

#[test]
fn our_flasher_writes_and_verifies() {
    assert_flashed(Faults::default(), 5000);
}

#[test]
fn nacks_and_corrupted_bytes_are_retried() {
    assert_flashed(
        Faults {
            nack_writes: 1,
            corrupt_writes: 1,
            ..Default::default()
        },
        2000,
    );
}

#[test]
fn a_reset_during_a_write_is_recovered() {
    assert_flashed(
        Faults {
            reset_during_write: Some(3),
            ..Default::default()
        },
        2000,
    );
}

#[test]
fn a_silent_device_fails_with_a_clear_error_in_bounded_time() {
    let started = Instant::now();
    let (result, _sim) = flash_through(
        Faults {
            silent_after_writes: Some(2),
            ..Default::default()
        },
        &image(2000),
    );
    let err = result.unwrap_err();
    assert!(matches!(err, Stm32Error::GaveUp { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("writing failed 3 times at 0x08000200: no answer"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_device_that_drops_writes_is_never_reported_as_flashed() {
    let (result, _sim) = flash_through(
        Faults {
            lose_writes: true,
            ..Default::default()
        },
        &image(600),
    );
    assert_eq!(
        result.unwrap_err().to_string(),
        "verification failed at 0x08000000: flash holds other bytes than the image"
    );
}

#[test]
fn no_device_at_all() {
    // A port where nobody answers: a pseudo-terminal with no simulator behind it.
    let pty = nix::pty::openpty(None, None).unwrap();
    let path = fs::read_link(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&pty.slave)
    ))
    .unwrap();
    let port = updater::firmware::open_serial(
        path.to_str().unwrap(),
        115_200,
        updater::firmware::Parity::Even,
    )
    .unwrap();
    let err = Bootloader::connect(port, quick()).err().unwrap();
    assert!(
        err.to_string().starts_with("no answer from the bootloader"),
        "{err}"
    );
}

fn updater_cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_updater"))
        .arg("--quiet")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn firmware_flash_command_flashes_and_verifies() {
    let sim = stm32_sim::start(Faults::default());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("motor.bin");
    fs::write(&path, image(4000)).unwrap();
    let port = sim.port.to_str().unwrap();
    let out = updater_cli(&[
        "firmware",
        "flash",
        "--protocol",
        "stm32-serial",
        "--port",
        port,
        "--baud",
        "115200",
        "--address",
        "0x08000000",
        path.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout)
        .starts_with("flashed and verified 4000 bytes on stm32-serial"));
    assert_eq!(&sim.flash.lock().unwrap()[..4000], &image(4000)[..]);
}

#[test]
fn firmware_flash_failures_are_one_line_with_their_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fw.bin");
    fs::write(&path, image(100)).unwrap();
    let image_arg = path.to_str().unwrap();
    let check = |out: std::process::Output, code: i32, message: &str| {
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{err}");
        // Log lines (the pty's parity warning) may come before; the failure is one line, the last.
        let errors: Vec<&str> = err
            .lines()
            .filter(|l| l.starts_with("updater: error:"))
            .collect();
        assert_eq!(errors.len(), 1, "{err}");
        assert_eq!(err.lines().last(), Some(errors[0]));
        assert!(errors[0].contains(message), "'{err}' lacks '{message}'");
    };
    let sim = stm32_sim::start(Faults {
        lose_writes: true,
        ..Default::default()
    });
    let port = sim.port.to_str().unwrap();
    check(
        updater_cli(&[
            "firmware",
            "flash",
            "--protocol",
            "stm32-serial",
            "--port",
            port,
            "--address",
            "0x08000000",
            image_arg,
        ]),
        12,
        "firmware: stm32-serial",
    );
    check(
        updater_cli(&[
            "firmware",
            "flash",
            "--protocol",
            "stm32-serial",
            "--address",
            "0x08000000",
            image_arg,
        ]),
        // Options that do not fit together are a usage error, like clap's own.
        2,
        "needs --port",
    );
    let missing_port = updater_cli(&[
        "firmware",
        "flash",
        "--protocol",
        "stm32-serial",
        "--port",
        "/nonexistent/tty",
        "--address",
        "0",
        image_arg,
    ]);
    // A missing port is said plainly, in one line, not as a parity problem first.
    let err = String::from_utf8_lossy(&missing_port.stderr).into_owned();
    assert!(!err.contains("parity") && err.lines().count() == 1, "{err}");
    check(missing_port, 12, "/nonexistent/tty");
    check(
        updater_cli(&[
            "firmware",
            "flash",
            "--protocol",
            "dfu",
            "--usb",
            "0483:df11",
            image_arg,
        ]),
        12,
        "firmware: dfu 0483:df11",
    );
}

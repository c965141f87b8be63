//! DFU 1.1 and DfuSe flashing against a simulated device that follows the specification's state
//! table, including busy polls with bwPollTimeout, status errors and a device left in dfuERROR.
mod common;

use std::time::{Duration, Instant};

use common::dfu_sim::{quick, Faults, SimDfu, BASE};
use updater::firmware::dfu::{Dfu, DfuError, State};

const CAN_DOWNLOAD: u8 = 1;
const CAN_UPLOAD: u8 = 2;
const TOLERANT: u8 = 4;

fn image(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 13 % 256) as u8).collect()
}

fn flash_dfu(sim: SimDfu, data: &[u8]) -> (Result<(), DfuError>, SimDfu) {
    let mut dfu = Dfu::new(sim).with_busy_limit(quick());
    let result = dfu
        .ensure_idle()
        .and_then(|()| dfu.download(data, 0, &mut |_| {}))
        .and_then(|()| {
            dfu.ensure_idle()?;
            dfu.verify_upload(data, 0)
        });
    (result, dfu.into_transport())
}

#[test]
fn download_upload_and_manifestation() {
    let data = image(5000);
    let (result, sim) = flash_dfu(
        SimDfu::new(
            false,
            CAN_DOWNLOAD | CAN_UPLOAD | TOLERANT,
            Faults::default(),
        ),
        &data,
    );
    result.unwrap();
    assert_eq!(&sim.memory[..5000], &data[..]);
    assert_eq!(sim.state, State::Idle);
}

#[test]
fn a_device_that_is_not_manifestation_tolerant_is_reset() {
    let data = image(3000);
    let sim = SimDfu::new(false, CAN_DOWNLOAD | CAN_UPLOAD, Faults::default());
    let mut dfu = Dfu::new(sim).with_busy_limit(quick());
    dfu.download(&data, 0, &mut |_| {}).unwrap();
    let sim = dfu.into_transport();
    assert_eq!(sim.resets, 1);
    assert_eq!(&sim.memory[..3000], &data[..]);
}

#[test]
fn busy_polls_honour_the_poll_timeout() {
    let data = image(2048);
    let faults = Faults {
        busy_polls: 2,
        poll_ms: 50,
        ..Default::default()
    };
    let started = Instant::now();
    let (result, _) = flash_dfu(
        SimDfu::new(false, CAN_DOWNLOAD | CAN_UPLOAD | TOLERANT, faults),
        &data,
    );
    result.unwrap();
    // Two blocks, two busy answers each, 50 ms asked every time.
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn status_errors_are_named() {
    let faults = Faults {
        write_error_at: Some(1),
        ..Default::default()
    };
    let (result, sim) = flash_dfu(
        SimDfu::new(false, CAN_DOWNLOAD | CAN_UPLOAD | TOLERANT, faults),
        &image(3000),
    );
    assert_eq!(
        result.unwrap_err().to_string(),
        "the device reports errWRITE (cannot write memory) in state Error"
    );
    assert_eq!(sim.state, State::Error);

    let faults = Faults {
        verify_error: true,
        ..Default::default()
    };
    let (result, _) = flash_dfu(
        SimDfu::new(false, CAN_DOWNLOAD | CAN_UPLOAD | TOLERANT, faults),
        &image(1000),
    );
    assert!(result.unwrap_err().to_string().contains("errVERIFY"));
}

#[test]
fn stored_bytes_that_differ_fail_the_verification() {
    let faults = Faults {
        corrupt_storage: true,
        ..Default::default()
    };
    let (result, _) = flash_dfu(
        SimDfu::new(false, CAN_DOWNLOAD | CAN_UPLOAD | TOLERANT, faults),
        &image(1000),
    );
    assert_eq!(
        result.unwrap_err().to_string(),
        "verification failed at byte 0: the device holds other bytes than the image"
    );
}

#[test]
fn a_device_busy_for_ever_is_given_up() {
    let faults = Faults {
        stuck: true,
        poll_ms: 10,
        ..Default::default()
    };
    let (result, _) = flash_dfu(
        SimDfu::new(false, CAN_DOWNLOAD | CAN_UPLOAD | TOLERANT, faults),
        &image(1000),
    );
    assert!(result
        .unwrap_err()
        .to_string()
        .starts_with("the device stayed busy for more than"));
}

#[test]
fn a_device_left_in_error_is_cleared_first() {
    let data = image(1500);
    let faults = Faults {
        start_in_error: true,
        ..Default::default()
    };
    let (result, sim) = flash_dfu(
        SimDfu::new(false, CAN_DOWNLOAD | CAN_UPLOAD | TOLERANT, faults),
        &data,
    );
    result.unwrap();
    assert_eq!(&sim.memory[..1500], &data[..]);
}

#[test]
fn a_device_that_cannot_upload_cannot_be_verified() {
    let (result, _) = flash_dfu(
        SimDfu::new(false, CAN_DOWNLOAD | TOLERANT, Faults::default()),
        &image(100),
    );
    assert_eq!(
        result.unwrap_err().to_string(),
        "the device cannot upload (verification)"
    );
}

#[test]
fn dfuse_erases_the_touched_sectors_writes_verifies_and_leaves() {
    let mut sim = SimDfu::new(
        true,
        CAN_DOWNLOAD | CAN_UPLOAD | TOLERANT,
        Faults::default(),
    );
    // Data in a sector the image does not touch must survive.
    sim.memory[0x9000] = 0x42;
    let data = image(6000);
    let mut dfu = Dfu::new(sim).with_busy_limit(quick());
    let mut done = 0;
    dfu.dfuse_flash(BASE, &data, &mut |n| done += n).unwrap();
    let sim = dfu.into_transport();
    assert_eq!(done, 6000);
    assert_eq!(&sim.memory[..6000], &data[..]);
    assert_eq!(sim.erased, vec![BASE, BASE + 0x1000]);
    assert_eq!(sim.memory[0x9000], 0x42);
}

#[test]
fn a_device_in_run_time_mode_is_detached_and_reset_into_dfu_mode() {
    let faults = Faults {
        start_in_runtime: true,
        ..Default::default()
    };
    // Without bitWillDetach the host must reset the device after DETACH.
    let mut dfu = Dfu::new(SimDfu::new(
        false,
        CAN_DOWNLOAD | CAN_UPLOAD | TOLERANT,
        faults,
    ))
    .with_busy_limit(quick());
    assert!(dfu
        .ensure_idle()
        .unwrap_err()
        .to_string()
        .contains("run-time mode"));
    assert!(dfu.detach_if_runtime().unwrap());
    assert_eq!(dfu.into_transport().resets, 1);
    // A device already in DFU mode is left alone.
    let mut dfu = Dfu::new(SimDfu::new(
        false,
        CAN_DOWNLOAD | TOLERANT,
        Faults::default(),
    ));
    assert!(!dfu.detach_if_runtime().unwrap());
}

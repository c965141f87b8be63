//! Flashing one image to one target, verified, with whichever protocol the target speaks.
use crate::error::{Result, UpdaterError};
use crate::progress::{Progress, Step};

use std::time::{Duration, Instant};

use super::dfu::{Dfu, DfuError};
use super::stm32::{Bootloader, Timeouts};
use super::usb::UsbTransport;
use super::{open_serial, FirmwareError};
use bundle::UsbId;

/// Where a microcontroller is and how to reach it: the manifest's own type.
pub use bundle::FirmwareTarget as Target;

/// Opens the DFU interface; a device found in run-time mode is detached first and opened again
/// once it has come back in DFU mode (devices that change their product id there are not
/// followed: name the DFU-mode id).
fn open_dfu(usb: UsbId, serial: Option<&str>, alt: u8) -> Result<Dfu<UsbTransport>, DfuError> {
    let mut dfu = Dfu::new(UsbTransport::open(usb.vendor, usb.product, serial, alt)?);
    if !dfu.detach_if_runtime()? {
        return Ok(dfu);
    }
    drop(dfu);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        std::thread::sleep(Duration::from_millis(500));
        match UsbTransport::open(usb.vendor, usb.product, serial, alt) {
            Ok(usb) => return Ok(Dfu::new(usb)),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => continue,
        }
    }
}

/// Writes `image` to the target and verifies it by reading it back; an error names the target.
pub fn flash(target: &Target, image: &[u8], progress: &Progress) -> Result<()> {
    let fail = |cause: FirmwareError| UpdaterError::Firmware {
        target: target.describe(),
        cause,
    };
    progress.begin(Step::Firmware, image.len() as u64);
    let advance = &mut |n: u64| progress.advance(n);
    match target {
        Target::Stm32Serial {
            port,
            baud,
            parity,
            address,
        } => {
            let link = open_serial(port, *baud, *parity).map_err(|e| fail(e.into()))?;
            let mut bootloader =
                Bootloader::connect(link, Timeouts::default()).map_err(|e| fail(e.into()))?;
            bootloader
                .flash(*address, image, advance)
                .map_err(|e| fail(e.into()))?;
        }
        Target::Dfu { usb, serial, alt } => {
            let mut dfu = open_dfu(*usb, serial.as_deref(), *alt).map_err(|e| fail(e.into()))?;
            let result = dfu
                .ensure_idle()
                .and_then(|()| dfu.download(image, 0, advance));
            result.map_err(|e| fail(e.into()))?;
            // A device that reset itself after manifestation has to be found again to read back.
            let usb = UsbTransport::open(usb.vendor, usb.product, serial.as_deref(), *alt)
                .map_err(|e| fail(e.into()))?;
            let mut dfu = Dfu::new(usb);
            dfu.ensure_idle()
                .and_then(|()| dfu.verify_upload(image, 0))
                .map_err(|e| fail(e.into()))?;
        }
        Target::DfuSe {
            usb,
            serial,
            alt,
            address,
        } => {
            open_dfu(*usb, serial.as_deref(), *alt)
                .map_err(|e| fail(e.into()))?
                .dfuse_flash(*address, image, advance)
                .map_err(|e| fail(e.into()))?;
        }
    }
    progress.end();
    Ok(())
}

//! Firmware for the microcontrollers beside the Linux board.
pub mod dfu;
mod flash;
pub mod stm32;
pub mod store;
pub mod sync;
pub mod usb;

use std::time::Duration;

pub use flash::{flash, Target};

pub use bundle::Parity;

pub use crate::error::FirmwareError;

/// Opens a serial port 8 data bits, 1 stop bit, with the given parity (the STM32 bootloader
/// wants even). A port that cannot keep the parity (a pseudo-terminal, some USB adapters) is used
/// without it, with a warning, instead of failing: the protocol's checksums still protect it.
/// DTR and RTS are left as the kernel sets them.
pub fn open_serial(
    path: &str,
    baud: u32,
    parity: Parity,
) -> serialport::Result<Box<dyn serialport::SerialPort>> {
    let builder = serialport::new(path, baud)
        .data_bits(serialport::DataBits::Eight)
        .stop_bits(serialport::StopBits::One)
        .flow_control(serialport::FlowControl::None)
        .timeout(Duration::from_secs(1));
    let wanted = match parity {
        Parity::Even => serialport::Parity::Even,
        Parity::None => serialport::Parity::None,
    };
    match builder.clone().parity(wanted).open() {
        Ok(port) => {
            if port.parity().ok() != Some(wanted) {
                tracing::warn!(
                    path,
                    "the port did not keep the parity setting; going on without it"
                );
            }
            Ok(port)
        }
        // A port that is not there is not a parity problem: say so plainly.
        Err(e) if e.kind() == serialport::ErrorKind::Io(std::io::ErrorKind::NotFound) => Err(e),
        Err(e) if wanted != serialport::Parity::None => {
            tracing::warn!(path, %e, "cannot set parity; going on without it");
            builder.parity(serialport::Parity::None).open()
        }
        Err(e) => Err(e),
    }
}

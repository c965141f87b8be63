//! The DFU transport on real USB devices (rusb): finds the device by vendor:product (and serial),
//! the DFU interface (class 0xFE, subclass 1) and alternate setting, and reads the functional
//! descriptor that says what the device can do.
use std::time::Duration;

use rusb::{Context, DeviceHandle, UsbContext};

use super::dfu::{DfuError, Functional, Transport};

const TIMEOUT: Duration = Duration::from_secs(5);
const DFU_CLASS: u8 = 0xFE;
const DFU_SUBCLASS: u8 = 0x01;
const FUNCTIONAL_DESCRIPTOR: u8 = 0x21;

pub struct UsbTransport {
    handle: DeviceHandle<Context>,
    interface: u8,
    functional: Functional,
    alt_name: Option<String>,
}

fn usb(e: rusb::Error) -> DfuError {
    DfuError::Usb(e.to_string())
}

impl UsbTransport {
    pub fn open(
        vendor: u16,
        product: u16,
        serial: Option<&str>,
        alt: u8,
    ) -> Result<Self, DfuError> {
        // An explicit context: rusb's global one panics where libusb cannot start (no USB at all).
        let context = Context::new().map_err(|e| DfuError::Usb(format!("cannot use USB: {e}")))?;
        for device in context.devices().map_err(usb)?.iter() {
            let desc = device.device_descriptor().map_err(usb)?;
            if desc.vendor_id() != vendor || desc.product_id() != product {
                continue;
            }
            let handle = device.open().map_err(usb)?;
            if let Some(wanted) = serial {
                if handle
                    .read_serial_number_string_ascii(&desc)
                    .ok()
                    .as_deref()
                    != Some(wanted)
                {
                    continue;
                }
            }
            let config = device.active_config_descriptor().map_err(usb)?;
            for interface in config.interfaces() {
                for setting in interface.descriptors() {
                    if setting.class_code() != DFU_CLASS
                        || setting.sub_class_code() != DFU_SUBCLASS
                        || setting.setting_number() != alt
                    {
                        continue;
                    }
                    let functional = parse_functional(setting.extra())
                        .ok_or_else(|| DfuError::Usb("no DFU functional descriptor".into()))?;
                    let alt_name = setting
                        .description_string_index()
                        .and_then(|i| handle.read_string_descriptor_ascii(i).ok());
                    let number = setting.interface_number();
                    let _ = handle.set_auto_detach_kernel_driver(true);
                    handle.claim_interface(number).map_err(usb)?;
                    handle.set_alternate_setting(number, alt).map_err(usb)?;
                    return Ok(UsbTransport {
                        handle,
                        interface: number,
                        functional,
                        alt_name,
                    });
                }
            }
        }
        Err(DfuError::Usb(format!(
            "no DFU device {vendor:04x}:{product:04x} with alternate setting {alt}"
        )))
    }
}

/// The functional descriptor: bLength 9, type 0x21, bmAttributes, wDetachTimeOut,
/// wTransferSize, bcdDFUVersion.
fn parse_functional(extra: &[u8]) -> Option<Functional> {
    let mut rest = extra;
    while rest.len() >= 2 {
        let len = rest[0] as usize;
        if len < 2 || len > rest.len() {
            return None;
        }
        if rest[1] == FUNCTIONAL_DESCRIPTOR && len >= 7 {
            let d = &rest[..len];
            let version = if len >= 9 {
                u16::from_le_bytes([d[7], d[8]])
            } else {
                0x0100
            };
            return Some(Functional::from_attributes(
                d[2],
                u16::from_le_bytes([d[3], d[4]]),
                u16::from_le_bytes([d[5], d[6]]),
                version,
            ));
        }
        rest = &rest[len..];
    }
    None
}

impl Transport for UsbTransport {
    fn control_out(&mut self, request: u8, value: u16, data: &[u8]) -> Result<usize, DfuError> {
        let request_type = rusb::request_type(
            rusb::Direction::Out,
            rusb::RequestType::Class,
            rusb::Recipient::Interface,
        );
        self.handle
            .write_control(
                request_type,
                request,
                value,
                u16::from(self.interface),
                data,
                TIMEOUT,
            )
            .map_err(usb)
    }

    fn control_in(&mut self, request: u8, value: u16, buf: &mut [u8]) -> Result<usize, DfuError> {
        let request_type = rusb::request_type(
            rusb::Direction::In,
            rusb::RequestType::Class,
            rusb::Recipient::Interface,
        );
        self.handle
            .read_control(
                request_type,
                request,
                value,
                u16::from(self.interface),
                buf,
                TIMEOUT,
            )
            .map_err(usb)
    }

    fn functional(&self) -> Functional {
        self.functional
    }

    fn alt_name(&self) -> Option<String> {
        self.alt_name.clone()
    }

    fn reset(&mut self) -> Result<(), DfuError> {
        self.handle.reset().map_err(usb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_functional_descriptor_among_others() {
        let extra = [
            4, 0x99, 0, 0, 9, 0x21, 0x0B, 0xFF, 0x00, 0x00, 0x08, 0x1A, 0x01,
        ];
        let f = parse_functional(&extra).unwrap();
        assert!(f.can_download && f.can_upload && !f.manifestation_tolerant && f.will_detach);
        assert_eq!(
            (f.detach_timeout_ms, f.transfer_size, f.dfu_version),
            (255, 2048, 0x011A)
        );
        assert_eq!(parse_functional(&[9, 0x21, 0]), None);
    }
}

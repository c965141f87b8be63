//! USB DFU 1.1 and ST's DfuSe extension, over a transport that carries the class requests, so the
//! protocol is tested against a simulated device (updater/tests/dfu.rs) and run on real ones
//! through rusb (`UsbTransport`).
//!
//! Download: DNLOAD each block, then GETSTATUS until the device leaves dfuDNBUSY, sleeping the
//! bwPollTimeout it asks for; a zero-length DNLOAD starts manifestation. Verification uploads the
//! image back (when the device can upload). DfuSe adds commands in block 0 (set address pointer,
//! erase page), data blocks from 2, and leaves DFU mode with a zero-length download.
use std::thread::sleep;
use std::time::{Duration, Instant};

pub const DETACH: u8 = 0;
pub const DNLOAD: u8 = 1;
pub const UPLOAD: u8 = 2;
pub const GETSTATUS: u8 = 3;
pub const CLRSTATUS: u8 = 4;
pub const ABORT: u8 = 6;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    AppIdle = 0,
    AppDetach = 1,
    Idle = 2,
    DnloadSync = 3,
    DnBusy = 4,
    DnloadIdle = 5,
    ManifestSync = 6,
    Manifest = 7,
    ManifestWaitReset = 8,
    UploadIdle = 9,
    Error = 10,
}

impl State {
    pub fn from_u8(v: u8) -> Option<State> {
        use State::*;
        [
            AppIdle,
            AppDetach,
            Idle,
            DnloadSync,
            DnBusy,
            DnloadIdle,
            ManifestSync,
            Manifest,
            ManifestWaitReset,
            UploadIdle,
            Error,
        ]
        .into_iter()
        .find(|s| *s as u8 == v)
    }
}

/// bStatus names from the DFU 1.1 specification, table 6.2.
pub fn status_name(status: u8) -> &'static str {
    match status {
        0x00 => "OK",
        0x01 => "errTARGET (file not for this device)",
        0x02 => "errFILE (file fails vendor checks)",
        0x03 => "errWRITE (cannot write memory)",
        0x04 => "errERASE (memory erase failed)",
        0x05 => "errCHECK_ERASED (erase check failed)",
        0x06 => "errPROG (program memory failed)",
        0x07 => "errVERIFY (programmed memory failed verification)",
        0x08 => "errADDRESS (address out of range)",
        0x09 => "errNOTDONE (download ended before the data was complete)",
        0x0A => "errFIRMWARE (firmware is corrupt)",
        0x0B => "errVENDOR",
        0x0C => "errUSBR (unexpected USB reset)",
        0x0D => "errPOR (unexpected power-on reset)",
        0x0E => "errUNKNOWN",
        0x0F => "errSTALLEDPKT (unexpected request)",
        _ => "an undefined status",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub status: u8,
    pub poll_timeout: Duration,
    pub state: State,
}

/// The DFU functional descriptor's facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Functional {
    pub can_download: bool,
    pub can_upload: bool,
    pub manifestation_tolerant: bool,
    pub will_detach: bool,
    pub detach_timeout_ms: u16,
    pub transfer_size: u16,
    pub dfu_version: u16,
}

impl Functional {
    pub fn from_attributes(
        attributes: u8,
        detach_timeout_ms: u16,
        transfer_size: u16,
        dfu_version: u16,
    ) -> Self {
        Functional {
            can_download: attributes & 1 != 0,
            can_upload: attributes & 2 != 0,
            manifestation_tolerant: attributes & 4 != 0,
            will_detach: attributes & 8 != 0,
            detach_timeout_ms,
            transfer_size,
            dfu_version,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DfuError {
    #[error("USB: {0}")]
    Usb(String),
    #[error("the device reports {status} in state {state:?}")]
    Status { status: &'static str, state: State },
    #[error("the device answered GETSTATUS with {0} bytes, not 6")]
    ShortStatus(usize),
    #[error("the device reports an unknown state {0}")]
    UnknownState(u8),
    #[error("the device stayed busy for more than {0:?}")]
    Stuck(Duration),
    #[error("the device cannot {0}")]
    Unsupported(&'static str),
    #[error("verification failed at byte {offset}: the device holds other bytes than the image")]
    VerifyFailed { offset: usize },
    #[error("{0}")]
    Layout(String),
}

type Result<T> = std::result::Result<T, DfuError>;

/// The class requests to the DFU interface, and a USB reset.
pub trait Transport {
    fn control_out(&mut self, request: u8, value: u16, data: &[u8]) -> Result<usize>;
    fn control_in(&mut self, request: u8, value: u16, buf: &mut [u8]) -> Result<usize>;
    fn functional(&self) -> Functional;
    /// The alternate setting's name, which for DfuSe describes the memory layout.
    fn alt_name(&self) -> Option<String>;
    fn reset(&mut self) -> Result<()>;
}

/// How long a device may stay in dfuDNBUSY (fwupd allows 120 s; erases on DfuSe are slow).
const BUSY_LIMIT: Duration = Duration::from_secs(120);

pub struct Dfu<T: Transport> {
    transport: T,
    busy_limit: Duration,
}

impl<T: Transport> Dfu<T> {
    pub fn new(transport: T) -> Self {
        Dfu {
            transport,
            busy_limit: BUSY_LIMIT,
        }
    }

    /// How long the device may stay busy before giving up (default 120 s).
    pub fn with_busy_limit(mut self, limit: Duration) -> Self {
        self.busy_limit = limit;
        self
    }

    pub fn into_transport(self) -> T {
        self.transport
    }

    pub fn get_status(&mut self) -> Result<Status> {
        let mut buf = [0u8; 6];
        let n = self.transport.control_in(GETSTATUS, 0, &mut buf)?;
        if n != 6 {
            return Err(DfuError::ShortStatus(n));
        }
        let state = State::from_u8(buf[4]).ok_or(DfuError::UnknownState(buf[4]))?;
        let poll = u32::from(buf[1]) | u32::from(buf[2]) << 8 | u32::from(buf[3]) << 16;
        Ok(Status {
            status: buf[0],
            poll_timeout: Duration::from_millis(u64::from(poll)),
            state,
        })
    }

    /// A device in run-time mode (appIDLE) is asked to switch to DFU mode: DETACH, then a USB
    /// reset unless the functional descriptor says it detaches itself. Returns true when it did;
    /// the device then comes back as a new USB device that has to be opened again.
    pub fn detach_if_runtime(&mut self) -> Result<bool> {
        let status = self.get_status()?;
        if !matches!(status.state, State::AppIdle | State::AppDetach) {
            return Ok(false);
        }
        let f = self.transport.functional();
        self.transport
            .control_out(DETACH, f.detach_timeout_ms, &[])?;
        if !f.will_detach {
            self.transport.reset()?;
        }
        Ok(true)
    }

    /// Brings the device to dfuIDLE: clears an error, aborts a transfer left half-done.
    pub fn ensure_idle(&mut self) -> Result<()> {
        let status = self.get_status()?;
        match status.state {
            State::Idle => Ok(()),
            State::Error => {
                self.transport.control_out(CLRSTATUS, 0, &[])?;
                self.expect_idle()
            }
            State::DnloadIdle | State::UploadIdle => {
                self.transport.control_out(ABORT, 0, &[])?;
                self.expect_idle()
            }
            State::AppIdle | State::AppDetach => Err(DfuError::Unsupported(
                "be flashed in run-time mode (detach it first)",
            )),
            state => Err(DfuError::Status {
                status: status_name(status.status),
                state,
            }),
        }
    }

    fn expect_idle(&mut self) -> Result<()> {
        let status = self.get_status()?;
        if status.state == State::Idle {
            Ok(())
        } else {
            Err(DfuError::Status {
                status: status_name(status.status),
                state: status.state,
            })
        }
    }

    /// GETSTATUS until the device is no longer busy, sleeping what it asks for in between.
    fn wait_while_busy(&mut self) -> Result<Status> {
        let started = Instant::now();
        loop {
            let status = self.get_status()?;
            if status.status != 0 || status.state == State::Error {
                return Err(DfuError::Status {
                    status: status_name(status.status),
                    state: status.state,
                });
            }
            if !matches!(
                status.state,
                State::DnBusy | State::DnloadSync | State::ManifestSync | State::Manifest
            ) {
                return Ok(status);
            }
            if started.elapsed() > self.busy_limit {
                return Err(DfuError::Stuck(self.busy_limit));
            }
            sleep(status.poll_timeout);
        }
    }

    /// DFU 1.1 download of a whole image, then manifestation.
    pub fn download(
        &mut self,
        image: &[u8],
        first_block: u16,
        progress: &mut dyn FnMut(u64),
    ) -> Result<()> {
        let f = self.transport.functional();
        if !f.can_download {
            return Err(DfuError::Unsupported("download"));
        }
        let size = usize::from(f.transfer_size.max(1));
        for (i, block) in image.chunks(size).enumerate() {
            self.download_block(first_block.wrapping_add(i as u16), block)?;
            progress(block.len() as u64);
        }
        self.manifest(first_block.wrapping_add(image.len().div_ceil(size) as u16))
    }

    /// A zero-length DNLOAD ends the download. A manifestation-tolerant device comes back to
    /// dfuIDLE; another one may disconnect or wait for a reset, which is then given.
    fn manifest(&mut self, block: u16) -> Result<()> {
        self.transport.control_out(DNLOAD, block, &[])?;
        let tolerant = self.transport.functional().manifestation_tolerant;
        match self.wait_while_busy() {
            Ok(status) if status.state == State::Idle => Ok(()),
            Ok(status) if status.state == State::ManifestWaitReset && !tolerant => {
                self.transport.reset()
            }
            Ok(status) => Err(DfuError::Status {
                status: status_name(status.status),
                state: status.state,
            }),
            // A device that is not manifestation tolerant may drop off the bus here.
            Err(DfuError::Usb(_)) if !tolerant => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Uploads `len` bytes (DFU 1.1 blocks from `first_block`) and compares them with `image`.
    pub fn verify_upload(&mut self, image: &[u8], first_block: u16) -> Result<()> {
        let f = self.transport.functional();
        if !f.can_upload {
            return Err(DfuError::Unsupported("upload (verification)"));
        }
        let size = usize::from(f.transfer_size.max(1));
        let mut buf = vec![0u8; size];
        for (i, expected) in image.chunks(size).enumerate() {
            let n = self.transport.control_in(
                UPLOAD,
                first_block.wrapping_add(i as u16),
                &mut buf[..expected.len()],
            )?;
            if let Some(offset) = (0..expected.len()).find(|&j| j >= n || buf[j] != expected[j]) {
                let _ = self.transport.control_out(ABORT, 0, &[]);
                return Err(DfuError::VerifyFailed {
                    offset: i * size + offset,
                });
            }
        }
        self.transport.control_out(ABORT, 0, &[])?;
        Ok(())
    }

    /// DfuSe: erase the sectors the image touches, write it at `address`, read it back, leave.
    pub fn dfuse_flash(
        &mut self,
        address: u32,
        image: &[u8],
        progress: &mut dyn FnMut(u64),
    ) -> Result<()> {
        self.ensure_idle()?;
        let layout = self.transport.alt_name().ok_or_else(|| {
            DfuError::Layout("the alternate setting has no memory layout name".into())
        })?;
        let sectors = parse_layout(&layout)?;
        let end = u64::from(address) + image.len() as u64;
        let touched = sectors.iter().filter(|(start, len)| {
            u64::from(*start) + u64::from(*len) > u64::from(address) && u64::from(*start) < end
        });
        for (start, _) in touched {
            self.download_block(0, &[&[0x41][..], &start.to_le_bytes()].concat())?;
        }
        let size = usize::from(self.transport.functional().transfer_size.max(1));
        for (i, block) in image.chunks(size).enumerate() {
            self.set_address(address + (i * size) as u32)?;
            self.download_block(2, block)?;
            progress(block.len() as u64);
        }
        self.transport.control_out(ABORT, 0, &[])?;
        self.expect_idle()?;
        self.set_address(address)?;
        self.transport.control_out(ABORT, 0, &[])?;
        self.expect_idle()?;
        self.verify_upload(image, 2)?;
        self.expect_idle()?;
        // Leave DFU mode: point at the image and send a zero-length download.
        self.set_address(address)?;
        self.transport.control_out(DNLOAD, 2, &[])?;
        match self.get_status() {
            Ok(_) | Err(DfuError::Usb(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// DNLOAD one block and wait until the device has taken it (dfuDNLOAD-IDLE). DfuSe commands
    /// are downloads to block 0 that run at the first GETSTATUS.
    fn download_block(&mut self, number: u16, data: &[u8]) -> Result<()> {
        self.transport.control_out(DNLOAD, number, data)?;
        let status = self.wait_while_busy()?;
        if status.state != State::DnloadIdle {
            return Err(DfuError::Status {
                status: status_name(status.status),
                state: status.state,
            });
        }
        Ok(())
    }

    /// DfuSe Set Address Pointer.
    fn set_address(&mut self, address: u32) -> Result<()> {
        self.download_block(0, &[&[0x21][..], &address.to_le_bytes()].concat())
    }
}

/// Parses a DfuSe memory layout such as `@Internal Flash /0x08000000/04*016Kg,01*064Kg,07*128Kg`
/// into (start, size) sectors.
pub fn parse_layout(name: &str) -> Result<Vec<(u32, u32)>> {
    let bad = || DfuError::Layout(format!("cannot read the memory layout '{name}'"));
    let mut fields = name.split('/');
    let _name = fields.next().ok_or_else(bad)?;
    let mut sectors = Vec::new();
    while let (Some(addr), Some(spec)) = (fields.next(), fields.next()) {
        let mut at = u32::from_str_radix(
            addr.trim()
                .trim_start_matches("0x")
                .trim_start_matches("0X"),
            16,
        )
        .map_err(|_| bad())?;
        for group in spec.split(',') {
            let (count, rest) = group.trim().split_once('*').ok_or_else(bad)?;
            let count: u32 = count.trim().parse().map_err(|_| bad())?;
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            let unit = rest[digits.len()..].chars().next().ok_or_else(bad)?;
            let mut size: u32 = digits.parse().map_err(|_| bad())?;
            size *= match unit {
                'K' => 1024,
                'M' => 1024 * 1024,
                'B' | ' ' => 1,
                _ => return Err(bad()),
            };
            for _ in 0..count {
                sectors.push((at, size));
                at = at.checked_add(size).ok_or_else(bad)?;
            }
        }
    }
    if sectors.is_empty() {
        return Err(bad());
    }
    Ok(sectors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_st_memory_layouts() {
        let sectors =
            parse_layout("@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg").unwrap();
        assert_eq!(sectors.len(), 12);
        assert_eq!(sectors[0], (0x0800_0000, 16 * 1024));
        assert_eq!(sectors[4], (0x0801_0000, 64 * 1024));
        assert_eq!(sectors[11], (0x080E_0000, 128 * 1024));
        assert!(parse_layout("@Flash/zz/1*1Kg").is_err());
        assert!(parse_layout("no layout").is_err());
    }
}

//! A simulated USB DFU 1.1 / DfuSe device behind the updater's `Transport` trait, following the
//! DFU 1.1 state table (dfuIDLE, dfuDNLOAD-SYNC, dfuDNBUSY, dfuDNLOAD-IDLE, dfuMANIFEST-SYNC,
//! dfuMANIFEST, dfuMANIFEST-WAIT-RESET, dfuUPLOAD-IDLE, dfuERROR), with injectable faults.
#![allow(dead_code)]

use std::time::Duration;

use updater::firmware::dfu::{
    DfuError, Functional, State, Transport, ABORT, CLRSTATUS, DNLOAD, GETSTATUS, UPLOAD,
};

pub const BASE: u32 = 0x0800_0000;
pub const SIZE: usize = 64 * 1024;
pub const LAYOUT: &str = "@Internal Flash  /0x08000000/04*004Kg,03*016Kg";

#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// GETSTATUS answers dfuDNBUSY this many times per block before the block is done.
    pub busy_polls: u32,
    /// bwPollTimeout the device asks for, in ms.
    pub poll_ms: u32,
    /// Fail this download block (counted from 0) with errWRITE.
    pub write_error_at: Option<usize>,
    /// Fail manifestation with errVERIFY.
    pub verify_error: bool,
    /// Store every written byte with its lowest bit flipped.
    pub corrupt_storage: bool,
    /// Stay busy for ever.
    pub stuck: bool,
    /// Start in dfuERROR (left there by an earlier failed attempt).
    pub start_in_error: bool,
    /// Start in run-time mode (appIDLE).
    pub start_in_runtime: bool,
}

pub struct SimDfu {
    pub memory: Vec<u8>,
    pub state: State,
    pub status: u8,
    pub dfuse: bool,
    pub functional: Functional,
    pub faults: Faults,
    pub resets: u32,
    pub erased: Vec<u32>,
    pending: Option<(u16, Vec<u8>)>,
    busy_left: u32,
    blocks_written: usize,
    address: u32,
    upload_offset: usize,
}

impl SimDfu {
    pub fn new(dfuse: bool, attributes: u8, faults: Faults) -> Self {
        let version = if dfuse { 0x011a } else { 0x0110 };
        SimDfu {
            memory: vec![0xFF; SIZE],
            state: if faults.start_in_error {
                State::Error
            } else if faults.start_in_runtime {
                State::AppIdle
            } else {
                State::Idle
            },
            status: if faults.start_in_error { 0x0E } else { 0 },
            dfuse,
            functional: Functional::from_attributes(attributes, 1000, 1024, version),
            faults,
            resets: 0,
            erased: Vec::new(),
            pending: None,
            busy_left: 0,
            blocks_written: 0,
            address: BASE,
            upload_offset: 0,
        }
    }

    fn stall(&mut self) -> Result<usize, DfuError> {
        self.state = State::Error;
        self.status = 0x0F;
        Err(DfuError::Usb("pipe error (stall)".into()))
    }

    fn fail(&mut self, status: u8) {
        self.state = State::Error;
        self.status = status;
    }

    /// Carries out the pending block when the host asks for the status.
    fn execute(&mut self) {
        let Some((block, data)) = self.pending.take() else {
            return;
        };
        if self.dfuse && block == 0 {
            match (data.first(), data.len()) {
                (Some(0x21), 5) => {
                    self.address = u32::from_le_bytes(data[1..5].try_into().unwrap())
                }
                (Some(0x41), 5) => {
                    let page = u32::from_le_bytes(data[1..5].try_into().unwrap());
                    let (start, size) = self.sector(page);
                    let off = (start - BASE) as usize;
                    self.memory[off..off + size as usize].fill(0xFF);
                    self.erased.push(start);
                }
                _ => return self.fail(0x0F),
            }
            self.state = State::DnloadIdle;
            return;
        }
        if self.faults.write_error_at == Some(self.blocks_written) {
            return self.fail(0x03);
        }
        let offset = if self.dfuse {
            (self.address - BASE) as usize
                + (block as usize - 2) * self.functional.transfer_size as usize
        } else {
            self.blocks_written * self.functional.transfer_size as usize
        };
        if offset + data.len() > SIZE {
            return self.fail(0x08);
        }
        for (cell, b) in self.memory[offset..offset + data.len()]
            .iter_mut()
            .zip(&data)
        {
            *cell = if self.faults.corrupt_storage {
                b ^ 1
            } else {
                *b
            };
        }
        self.blocks_written += 1;
        self.state = State::DnloadIdle;
    }

    fn sector(&self, address: u32) -> (u32, u32) {
        updater::firmware::dfu::parse_layout(LAYOUT)
            .unwrap()
            .into_iter()
            .find(|(s, len)| address >= *s && address < s + len)
            .unwrap_or((address, 0))
    }
}

impl Transport for SimDfu {
    fn control_out(&mut self, request: u8, value: u16, data: &[u8]) -> Result<usize, DfuError> {
        match (request, self.state) {
            (updater::firmware::dfu::DETACH, State::AppIdle) => {
                self.state = State::AppDetach;
                Ok(0)
            }
            (DNLOAD, State::Idle | State::DnloadIdle) if !data.is_empty() => {
                self.pending = Some((value, data.to_vec()));
                self.busy_left = self.faults.busy_polls;
                self.state = State::DnloadSync;
                Ok(data.len())
            }
            (DNLOAD, State::DnloadIdle) => {
                self.state = State::ManifestSync;
                Ok(0)
            }
            (DNLOAD, State::Idle) if self.dfuse => {
                // DfuSe leave request.
                self.state = State::ManifestSync;
                Ok(0)
            }
            (CLRSTATUS, State::Error) => {
                self.state = State::Idle;
                self.status = 0;
                Ok(0)
            }
            (ABORT, State::Idle | State::DnloadIdle | State::UploadIdle) => {
                self.state = State::Idle;
                self.upload_offset = 0;
                Ok(0)
            }
            _ => self.stall(),
        }
    }

    fn control_in(&mut self, request: u8, value: u16, buf: &mut [u8]) -> Result<usize, DfuError> {
        match request {
            GETSTATUS => {
                let mut shown = self.state;
                match self.state {
                    State::DnloadSync | State::DnBusy => {
                        if self.faults.stuck || self.busy_left > 0 {
                            self.busy_left = self.busy_left.saturating_sub(1);
                            self.state = State::DnBusy;
                            shown = State::DnBusy;
                        } else {
                            self.execute();
                            shown = self.state;
                        }
                    }
                    State::ManifestSync => {
                        if self.faults.verify_error {
                            self.fail(0x07);
                        } else if self.functional.manifestation_tolerant {
                            self.state = State::Idle;
                        } else {
                            self.state = State::ManifestWaitReset;
                        }
                        shown = self.state;
                    }
                    _ => {}
                }
                let poll = self.faults.poll_ms.to_le_bytes();
                let reply = [self.status, poll[0], poll[1], poll[2], shown as u8, 0];
                buf[..6].copy_from_slice(&reply);
                Ok(6)
            }
            UPLOAD if matches!(self.state, State::Idle | State::UploadIdle) => {
                let start = if self.dfuse {
                    (self.address - BASE) as usize
                        + (value as usize - 2) * self.functional.transfer_size as usize
                } else {
                    self.upload_offset
                };
                let n = buf.len().min(SIZE.saturating_sub(start));
                buf[..n].copy_from_slice(&self.memory[start..start + n]);
                self.upload_offset = start + n;
                self.state = if n < buf.len() {
                    State::Idle
                } else {
                    State::UploadIdle
                };
                Ok(n)
            }
            _ => self.stall(),
        }
    }

    fn functional(&self) -> Functional {
        self.functional
    }

    fn alt_name(&self) -> Option<String> {
        self.dfuse.then(|| LAYOUT.to_string())
    }

    fn reset(&mut self) -> Result<(), DfuError> {
        self.resets += 1;
        self.state = State::Idle;
        Ok(())
    }
}

pub fn quick() -> Duration {
    Duration::from_secs(2)
}

//! A simulated STM32 bootloader (AN3155) on a pseudo-terminal: 128 KiB of flash at 0x08000000
//! in 1 KiB pages, product id 0x410 (STM32F10x medium density), GET, GET VERSION, GET ID, READ,
//! WRITE, GO, ERASE and EXTENDED ERASE, plus injectable faults. stm32flash accepts it (tests
//! prove that first), so our flasher is tested against a faithful peer.
#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use nix::pty::openpty;
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};

pub const FLASH_BASE: u32 = 0x0800_0000;
pub const FLASH_SIZE: usize = 128 * 1024;
const PAGE: usize = 1024;
const ACK: u8 = 0x79;
const NACK: u8 = 0x1F;

#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// NACK this many WRITE commands before accepting them.
    pub nack_writes: usize,
    /// Flip one bit in the data of this many WRITE frames (the checksum then fails: NACK).
    pub corrupt_writes: usize,
    /// Stop answering for good after this many WRITE commands (a device that died).
    pub silent_after_writes: Option<usize>,
    /// Reset (forget the init, drop the frame) during this WRITE, once.
    pub reset_during_write: Option<usize>,
    /// Keep the written data wrong in flash (a device that acknowledges what it did not store).
    pub lose_writes: bool,
}

pub struct Sim {
    pub flash: Arc<Mutex<Vec<u8>>>,
    pub port: PathBuf,
    _slave: OwnedFd,
}

/// Starts the simulator; returns the tty path to open and the flash contents.
pub fn start(faults: Faults) -> Sim {
    let pty = openpty(None, None).expect("openpty");
    let mut tio = tcgetattr(pty.slave.as_fd()).unwrap();
    cfmakeraw(&mut tio);
    tcsetattr(pty.slave.as_fd(), SetArg::TCSANOW, &tio).unwrap();
    let port = std::fs::read_link(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&pty.slave)
    ))
    .unwrap();
    let flash = Arc::new(Mutex::new(vec![0xFFu8; FLASH_SIZE]));
    let device = Device {
        io: File::from(pty.master),
        flash: flash.clone(),
        faults,
        writes: 0,
        initialised: false,
    };
    std::thread::spawn(move || device.run());
    Sim {
        flash,
        port,
        _slave: pty.slave,
    }
}

struct Device {
    io: File,
    flash: Arc<Mutex<Vec<u8>>>,
    faults: Faults,
    writes: usize,
    initialised: bool,
}

impl Device {
    fn byte(&mut self) -> Option<u8> {
        let mut b = [0u8; 1];
        match self.io.read(&mut b) {
            Ok(1) => Some(b[0]),
            _ => None,
        }
    }

    fn bytes(&mut self, n: usize) -> Option<Vec<u8>> {
        (0..n).map(|_| self.byte()).collect()
    }

    fn send(&mut self, data: &[u8]) {
        let _ = self.io.write_all(data);
    }

    fn address(&mut self) -> Option<u32> {
        let a = self.bytes(5)?;
        if a[..4].iter().fold(0, |x, b| x ^ b) != a[4] {
            self.send(&[NACK]);
            return None;
        }
        let address = u32::from_be_bytes([a[0], a[1], a[2], a[3]]);
        Some(address)
    }

    fn offset(address: u32, len: usize) -> Option<usize> {
        let off = address.checked_sub(FLASH_BASE)? as usize;
        (off + len <= FLASH_SIZE).then_some(off)
    }

    fn run(mut self) {
        while let Some(b) = self.byte() {
            if b == 0x7F {
                self.send(&[if self.initialised { NACK } else { ACK }]);
                self.initialised = true;
                continue;
            }
            if !self.initialised {
                continue;
            }
            let Some(complement) = self.byte() else {
                return;
            };
            if complement != !b {
                self.send(&[NACK]);
                continue;
            }
            match b {
                0x00 => self.send(&[
                    ACK, 11, 0x31, 0x00, 0x01, 0x02, 0x11, 0x21, 0x31, 0x44, 0x63, 0x73, 0x82,
                    0x92, ACK,
                ]),
                0x01 => self.send(&[ACK, 0x31, 0x00, 0x00, ACK]),
                0x02 => self.send(&[ACK, 1, 0x04, 0x10, ACK]),
                0x11 => self.read(),
                0x21 => {
                    self.send(&[ACK]);
                    if self.address().is_some() {
                        self.send(&[ACK]);
                    }
                }
                0x31 => {
                    if !self.write() {
                        return;
                    }
                }
                0x44 => self.extended_erase(),
                _ => self.send(&[NACK]),
            }
        }
    }

    fn read(&mut self) {
        self.send(&[ACK]);
        let Some(address) = self.address() else {
            return;
        };
        self.send(&[ACK]);
        let Some(n) = self.bytes(2) else { return };
        if n[1] != !n[0] {
            self.send(&[NACK]);
            return;
        }
        let len = n[0] as usize + 1;
        let data = match Self::offset(address, len) {
            Some(off) => self.flash.lock().unwrap()[off..off + len].to_vec(),
            // Option bytes and system memory read as erased.
            None => vec![0xFF; len],
        };
        self.send(&[ACK]);
        self.send(&data);
    }

    /// Returns false when the device goes silent for good.
    fn write(&mut self) -> bool {
        self.writes += 1;
        let n = self.writes;
        if self
            .faults
            .silent_after_writes
            .is_some_and(|limit| n > limit)
        {
            // Hung: the line stays open, nothing answers.
            while self.byte().is_some() {}
            return false;
        }
        if self.faults.nack_writes >= n {
            self.send(&[NACK]);
            return true;
        }
        self.send(&[ACK]);
        let Some(address) = self.address() else {
            return true;
        };
        self.send(&[ACK]);
        let Some(len) = self.byte().map(|l| l as usize + 1) else {
            return false;
        };
        let Some(mut data) = self.bytes(len) else {
            return false;
        };
        if self.faults.reset_during_write == Some(n) {
            // Power glitch: the device restarts its bootloader and waits for 0x7F again.
            self.initialised = false;
            let _ = self.bytes(1);
            return true;
        }
        let Some(checksum) = self.byte() else {
            return false;
        };
        if self.faults.corrupt_writes > 0 {
            self.faults.corrupt_writes -= 1;
            data[0] ^= 0x01;
        }
        if data.iter().fold((len - 1) as u8, |x, b| x ^ b) != checksum {
            self.send(&[NACK]);
            return true;
        }
        let Some(off) = Self::offset(address, len) else {
            self.send(&[NACK]);
            return true;
        };
        if !self.faults.lose_writes {
            let mut flash = self.flash.lock().unwrap();
            for (cell, b) in flash[off..off + len].iter_mut().zip(&data) {
                *cell &= *b; // flash can only clear bits until erased
            }
        }
        self.send(&[ACK]);
        true
    }

    fn extended_erase(&mut self) {
        self.send(&[ACK]);
        let Some(head) = self.bytes(2) else { return };
        if head == [0xFF, 0xFF] {
            let Some(_) = self.byte() else { return };
            self.flash.lock().unwrap().fill(0xFF);
            self.send(&[ACK]);
            return;
        }
        let count = u16::from_be_bytes([head[0], head[1]]) as usize + 1;
        let Some(pages) = self.bytes(count * 2) else {
            return;
        };
        let Some(checksum) = self.byte() else { return };
        let sum = head.iter().chain(&pages).fold(0, |x, b| x ^ b);
        if sum != checksum {
            self.send(&[NACK]);
            return;
        }
        let mut flash = self.flash.lock().unwrap();
        for p in pages.chunks(2) {
            let page = u16::from_be_bytes([p[0], p[1]]) as usize;
            if (page + 1) * PAGE <= FLASH_SIZE {
                flash[page * PAGE..(page + 1) * PAGE].fill(0xFF);
            }
        }
        drop(flash);
        self.send(&[ACK]);
    }
}

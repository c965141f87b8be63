//! The STM32 system-memory bootloader over a UART (ST AN3155): 0x7F to let it measure the baud
//! rate, then commands as `code, !code`, each answered ACK (0x79) or NACK (0x1F); addresses
//! big-endian with an XOR checksum; at most 256 bytes per read or write. The commands to erase
//! and write are chosen from what GET says the device supports, every exchange has a time limit,
//! failed blocks are retried a bounded number of times, and what was written is read back.
use std::io::{self, Read, Write};
use std::time::Duration;

const ACK: u8 = 0x79;
const NACK: u8 = 0x1F;
const INIT: u8 = 0x7F;

const GET: u8 = 0x00;
const GET_VERSION: u8 = 0x01;
const GET_ID: u8 = 0x02;
const READ: u8 = 0x11;
const GO: u8 = 0x21;
const WRITE: u8 = 0x31;
const ERASE: u8 = 0x43;
const EXTENDED_ERASE: u8 = 0x44;

const BLOCK: usize = 256;
const ATTEMPTS: usize = 3;

/// What a serial port must do for the protocol: bytes both ways, and a read time limit.
pub trait Link: Read + Write {
    fn set_timeout(&mut self, timeout: Duration) -> io::Result<()>;
}

impl Link for Box<dyn serialport::SerialPort> {
    fn set_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        serialport::SerialPort::set_timeout(self.as_mut(), timeout).map_err(io::Error::from)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Stm32Error {
    #[error("no answer from the bootloader within {0:?} (is the device in bootloader mode?)")]
    Silent(Duration),
    #[error("the bootloader refused {0} (NACK)")]
    Refused(&'static str),
    #[error("unexpected byte {byte:#04x} from the bootloader during {during}")]
    Garbled { byte: u8, during: &'static str },
    #[error("the bootloader does not offer {0}")]
    Unsupported(&'static str),
    #[error("verification failed at {address:#010x}: flash holds other bytes than the image")]
    VerifyFailed { address: u32 },
    #[error("{what} failed {ATTEMPTS} times at {address:#010x}: {last}")]
    GaveUp {
        what: &'static str,
        address: u32,
        last: Box<Stm32Error>,
    },
    #[error("serial port: {0}")]
    Io(#[from] io::Error),
}

type Result<T> = std::result::Result<T, Stm32Error>;

/// Time limits from AN3155 and stm32flash: one second for an ordinary answer, more for erases.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub answer: Duration,
    pub mass_erase: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            answer: Duration::from_secs(1),
            mass_erase: Duration::from_secs(35),
        }
    }
}

pub struct Bootloader<L: Link> {
    link: L,
    timeouts: Timeouts,
    pub version: u8,
    pub commands: Vec<u8>,
    pub product_id: u16,
}

impl<L: Link> Bootloader<L> {
    /// Wakes the bootloader and learns its version, commands and product id.
    pub fn connect(mut link: L, timeouts: Timeouts) -> Result<Self> {
        link.set_timeout(timeouts.answer)?;
        let mut bl = Bootloader {
            link,
            timeouts,
            version: 0,
            commands: Vec::new(),
            product_id: 0,
        };
        let mut last = None;
        for _ in 0..ATTEMPTS {
            bl.link.write_all(&[INIT])?;
            match bl.read_byte("initialisation") {
                // NACK: the bootloader already measured the baud rate earlier; it listens.
                Ok(ACK) | Ok(NACK) => {
                    last = None;
                    break;
                }
                Ok(byte) => {
                    last = Some(Stm32Error::Garbled {
                        byte,
                        during: "initialisation",
                    })
                }
                Err(e) => last = Some(e),
            }
        }
        if let Some(e) = last {
            return Err(e);
        }
        bl.command(GET, "GET")?;
        let n = bl.read_byte("GET")? as usize + 1;
        let mut reply = vec![0u8; n];
        bl.read_exact(&mut reply, "GET")?;
        bl.expect_ack("GET")?;
        bl.version = reply[0];
        bl.commands = reply[1..].to_vec();
        bl.command(GET_ID, "GET ID")?;
        let n = bl.read_byte("GET ID")? as usize + 1;
        let mut id = vec![0u8; n];
        bl.read_exact(&mut id, "GET ID")?;
        bl.expect_ack("GET ID")?;
        if n >= 2 {
            bl.product_id = u16::from_be_bytes([id[0], id[1]]);
        }
        Ok(bl)
    }

    pub fn supports(&self, command: u8) -> bool {
        self.commands.contains(&command)
    }

    pub fn read_memory(&mut self, address: u32, buf: &mut [u8]) -> Result<()> {
        assert!(!buf.is_empty() && buf.len() <= BLOCK);
        self.command(READ, "READ")?;
        self.send_address(address, "READ")?;
        let n = (buf.len() - 1) as u8;
        self.link.write_all(&[n, !n])?;
        self.expect_ack("READ length")?;
        self.read_exact(buf, "READ")
    }

    /// Writes up to 256 bytes at a 4-byte aligned address; the length is padded to a multiple
    /// of 4 with 0xFF, as the bootloader requires.
    pub fn write_memory(&mut self, address: u32, data: &[u8]) -> Result<()> {
        assert!(!data.is_empty() && data.len() <= BLOCK && address.is_multiple_of(4));
        let mut block = data.to_vec();
        block.resize(data.len().div_ceil(4) * 4, 0xFF);
        self.command(WRITE, "WRITE")?;
        self.send_address(address, "WRITE")?;
        let n = (block.len() - 1) as u8;
        let checksum = block.iter().fold(n, |acc, b| acc ^ b);
        self.link.write_all(&[n])?;
        self.link.write_all(&block)?;
        self.link.write_all(&[checksum])?;
        self.expect_ack("WRITE data")
    }

    /// Erases the whole flash, with the erase command this bootloader offers.
    pub fn mass_erase(&mut self) -> Result<()> {
        let frame: &[u8] = if self.supports(EXTENDED_ERASE) {
            self.command(EXTENDED_ERASE, "EXTENDED ERASE")?;
            &[0xFF, 0xFF, 0x00]
        } else if self.supports(ERASE) {
            self.command(ERASE, "ERASE")?;
            &[0xFF, 0x00]
        } else {
            return Err(Stm32Error::Unsupported("an erase command"));
        };
        self.link.write_all(frame)?;
        self.link.set_timeout(self.timeouts.mass_erase)?;
        let result = self.expect_ack("erase");
        self.link.set_timeout(self.timeouts.answer)?;
        result
    }

    pub fn go(&mut self, address: u32) -> Result<()> {
        self.command(GO, "GO")?;
        self.send_address(address, "GO")
    }

    /// Erase, write and read back `image` at `address`; `progress` gets the bytes done.
    pub fn flash(
        &mut self,
        address: u32,
        image: &[u8],
        progress: &mut dyn FnMut(u64),
    ) -> Result<()> {
        self.mass_erase()?;
        for (i, block) in image.chunks(BLOCK).enumerate() {
            let at = address + (i * BLOCK) as u32;
            self.retry("writing", at, |bl| bl.write_memory(at, block))?;
            progress(block.len() as u64);
        }
        let mut readback = [0u8; BLOCK];
        for (i, block) in image.chunks(BLOCK).enumerate() {
            let at = address + (i * BLOCK) as u32;
            let got = &mut readback[..block.len()];
            self.retry("reading back", at, |bl| bl.read_memory(at, got))?;
            if got != block {
                return Err(Stm32Error::VerifyFailed { address: at });
            }
        }
        Ok(())
    }

    /// Retries an exchange after a NACK, a time-out or a garbled answer, re-synchronising first.
    fn retry(
        &mut self,
        what: &'static str,
        address: u32,
        mut exchange: impl FnMut(&mut Self) -> Result<()>,
    ) -> Result<()> {
        let mut last = None;
        for _ in 0..ATTEMPTS {
            match exchange(self) {
                Ok(()) => return Ok(()),
                Err(Stm32Error::Io(e)) if e.kind() != io::ErrorKind::TimedOut => {
                    return Err(Stm32Error::Io(e))
                }
                Err(e) => {
                    tracing::warn!(%e, address, "retrying");
                    self.resync();
                    last = Some(e);
                }
            }
        }
        Err(Stm32Error::GaveUp {
            what,
            address,
            last: Box::new(last.expect("an attempt failed")),
        })
    }

    /// After an error the two sides may disagree about where a frame starts: drain what the
    /// device still sends, and wake it again if it was reset.
    fn resync(&mut self) {
        let mut sink = [0u8; 64];
        let _ = self.link.set_timeout(Duration::from_millis(50));
        while matches!(self.link.read(&mut sink), Ok(n) if n > 0) {}
        let _ = self.link.write_all(&[INIT]);
        while matches!(self.link.read(&mut sink), Ok(n) if n > 0) {}
        let _ = self.link.set_timeout(self.timeouts.answer);
    }

    fn command(&mut self, code: u8, name: &'static str) -> Result<()> {
        if code != GET
            && code != GET_ID
            && code != GET_VERSION
            && !self.commands.is_empty()
            && !self.supports(code)
        {
            return Err(Stm32Error::Unsupported(name));
        }
        self.link.write_all(&[code, !code])?;
        self.expect_ack(name)
    }

    fn send_address(&mut self, address: u32, name: &'static str) -> Result<()> {
        let bytes = address.to_be_bytes();
        let checksum = bytes.iter().fold(0, |acc, b| acc ^ b);
        self.link.write_all(&bytes)?;
        self.link.write_all(&[checksum])?;
        self.expect_ack(name)
    }

    fn expect_ack(&mut self, during: &'static str) -> Result<()> {
        match self.read_byte(during)? {
            ACK => Ok(()),
            NACK => Err(Stm32Error::Refused(during)),
            byte => Err(Stm32Error::Garbled { byte, during }),
        }
    }

    fn read_byte(&mut self, during: &'static str) -> Result<u8> {
        let mut b = [0u8; 1];
        self.read_exact(&mut b, during)?;
        Ok(b[0])
    }

    fn read_exact(&mut self, buf: &mut [u8], _during: &'static str) -> Result<()> {
        let mut got = 0;
        while got < buf.len() {
            match self.link.read(&mut buf[got..]) {
                Ok(0) => return Err(Stm32Error::Silent(self.timeouts.answer)),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    return Err(Stm32Error::Silent(self.timeouts.answer))
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

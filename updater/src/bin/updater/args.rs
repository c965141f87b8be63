//! What `updater` accepts on its command line.
use std::path::PathBuf;

use bundle::{FirmwareTarget, Parity, UsbId, DEFAULT_BAUD};
use clap::{Parser, Subcommand};
use updater::group::Group;
use updater::source::BundleSource;
use updater::UpdaterError;

#[derive(Parser)]
#[command(
    version,
    about = "A/B image updater: install signed bundles, report and mark boot state"
)]
pub struct Cli {
    /// Device configuration.
    #[arg(long, global = true, env = "UPDATER_CONFIG", default_value = updater::config::DEFAULT_PATH)]
    pub config: PathBuf,
    /// No progress output.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Install a bundle (a file, - for standard input, or an http(s):// URL) into the inactive group.
    Install {
        #[command(flatten)]
        from: InstallFrom,
        /// Allow a version older than the running one (never below the security floor).
        #[arg(long)]
        allow_downgrade: bool,
        /// Write this group (R only when named here) instead of the inactive A/B group.
        #[arg(long, value_name = "GROUP")]
        target: Option<Group>,
    },
    /// Ask the channel's release index whether an update applies to this device, and why.
    Check {
        /// Print the decision as JSON (docs/fleet.md) instead of one line.
        #[arg(long)]
        json: bool,
    },
    /// Check, and install the release when an update applies.
    Update,
    /// Poll the release index and serve the local HTTP API (run by updater.service).
    Daemon,
    /// Show the booted group, the next boot and each group's state.
    Status {
        /// Print the status as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Mark a group (default: the booted one) good: it keeps booting.
    MarkGood {
        /// A, B or R; default: the booted group.
        group: Option<Group>,
        /// Even a group whose last install did not complete (its data may be torn).
        #[arg(long)]
        force: bool,
    },
    /// Mark a group (default: the booted one) bad: it will not boot again until reinstalled.
    MarkBad {
        /// A, B or R; default: the booted group.
        group: Option<Group>,
    },
    /// Boot a group (default: the booted one) next, with its attempts back (RAUC's mark-active).
    /// A group not yet confirmed still has to pass boot-check.
    MarkActive {
        /// A or B; default: the booted group.
        group: Option<Group>,
    },
    /// After boot: self-test and health checks, then mark the booted group good, or bad and
    /// reboot (boot_check.on_failure). Run by updater-boot-check.service.
    BootCheck {
        /// Never reboot, whatever boot_check.on_failure says.
        #[arg(long)]
        no_reboot: bool,
    },
    /// Point <data.dir>/current at the booted group's data (docs/data.md); early in every boot,
    /// before the application starts (updater-data.service).
    DataLink,
    /// Microcontroller firmware.
    Firmware {
        #[command(subcommand)]
        command: FirmwareCommand,
    },
}

/// Where `install` takes its bundle from: exactly one of the two.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
pub struct InstallFrom {
    /// The bundle: a file, - for standard input, or an http(s):// URL.
    pub source: Option<BundleSource>,
    /// Install the newest bundle in DIR that this device accepts (signed, compatible, allowed).
    #[arg(long, value_name = "DIR")]
    pub from_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum FirmwareCommand {
    /// Flash one image directly and verify it (bring-up, tests); needs no config.
    Flash(FlashArgs),
    /// Flash the booted group's firmware where the targets do not already run it.
    Sync,
    /// Per target: what the booted group expects and what was last flashed and verified.
    Status {
        /// Print the targets as JSON instead of one line each.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
pub struct FlashArgs {
    /// How the microcontroller is reached.
    #[arg(long, value_enum)]
    protocol: Protocol,
    /// Serial port (stm32-serial).
    #[arg(long)]
    port: Option<String>,
    /// Serial speed in bits per second (stm32-serial).
    #[arg(long, default_value_t = DEFAULT_BAUD)]
    baud: u32,
    /// even, which the STM32 bootloader wants, or none for links that cannot carry it.
    #[arg(long, default_value = "even")]
    parity: Parity,
    /// USB vendor:product in hex, e.g. 0483:df11 (dfu, dfuse).
    #[arg(long)]
    usb: Option<UsbId>,
    /// USB serial number, when several devices share vendor:product.
    #[arg(long)]
    serial: Option<String>,
    /// DFU alternate setting.
    #[arg(long, default_value_t = 0)]
    alt: u8,
    /// Flash address, e.g. 0x08000000 (stm32-serial, dfuse).
    #[arg(long, value_parser = parse_address)]
    address: Option<u32>,
    /// The firmware image to write, as raw bytes.
    pub image: PathBuf,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Protocol {
    #[value(name = "stm32-serial")]
    Stm32Serial,
    Dfu,
    Dfuse,
}

fn parse_address(text: &str) -> Result<u32, String> {
    let hex = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X"));
    match hex {
        Some(h) => u32::from_str_radix(h, 16),
        None => text.parse(),
    }
    .map_err(|_| format!("'{text}' is not an address (e.g. 0x08000000)"))
}

impl FlashArgs {
    /// The target these options name; each protocol needs its own of them.
    pub fn target(&self) -> Result<FirmwareTarget, UpdaterError> {
        let missing = |what: &str| UpdaterError::Usage(format!("this --protocol needs {what}"));
        let usb = || self.usb.ok_or_else(|| missing("--usb"));
        let address = || self.address.ok_or_else(|| missing("--address"));
        Ok(match self.protocol {
            Protocol::Stm32Serial => FirmwareTarget::Stm32Serial {
                port: self.port.clone().ok_or_else(|| missing("--port"))?,
                baud: self.baud,
                parity: self.parity,
                address: address()?,
            },
            Protocol::Dfu => FirmwareTarget::Dfu {
                usb: usb()?,
                serial: self.serial.clone(),
                alt: self.alt,
            },
            Protocol::Dfuse => FirmwareTarget::DfuSe {
                usb: usb()?,
                serial: self.serial.clone(),
                alt: self.alt,
                address: address()?,
            },
        })
    }
}

//! `updater`: the on-device command. One line on stderr per failure, one exit code per failure
//! class (docs/exit-codes.md).
use std::io;
use std::path::PathBuf;
use std::process::ExitCode;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::prelude::*;

use clap::{Parser, Subcommand};
use updater::assess::{boot_check, mark, reboot as reboot_now, Mark};
use updater::daemon;
use updater::display::escaped;
use updater::error::EXIT_UNHEALTHY;
use updater::firmware::sync::{status as firmware_status, sync as firmware_sync, Outcome};
use updater::firmware::{flash, Parity, Target};
use updater::fleet::{check, install_checked, CheckReport};
use updater::group::Group;
use updater::install::{from_dir, install, InstallOptions};
use updater::progress::{Progress, Style};
use updater::source::open as open_source;
use updater::state::StateDir;
use updater::status::{status, Status};
use updater::{Config, UpdaterError};

#[derive(Parser)]
#[command(
    version,
    about = "A/B image updater: install signed bundles, report and mark boot state"
)]
struct Cli {
    /// Device configuration.
    #[arg(long, global = true, env = "UPDATER_CONFIG", default_value = updater::config::DEFAULT_PATH)]
    config: PathBuf,
    /// No progress output.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install a bundle (a file, - for standard input, or an http(s):// URL) into the inactive group.
    Install {
        #[arg(required_unless_present = "from_dir", conflicts_with = "from_dir")]
        source: Option<String>,
        /// Install the newest bundle in DIR that this device accepts (signed, compatible, allowed).
        #[arg(long, value_name = "DIR")]
        from_dir: Option<PathBuf>,
        /// Allow a version older than the running one (never below the security floor).
        #[arg(long)]
        allow_downgrade: bool,
        /// Write this group (R only when named here) instead of the inactive A/B group.
        #[arg(long, value_name = "GROUP")]
        target: Option<Group>,
    },
    /// Ask the channel's release index whether an update applies to this device, and why.
    Check {
        #[arg(long)]
        json: bool,
    },
    /// Check, and install the release when an update applies.
    Update,
    /// Poll the release index and serve the local HTTP API (run by updater.service).
    Daemon,
    /// Show the booted group, the next boot and each group's state.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Mark a group (default: the booted one) good: it keeps booting.
    MarkGood {
        group: Option<Group>,
        /// Even a group whose last install did not complete (its data may be torn).
        #[arg(long)]
        force: bool,
    },
    /// Mark a group (default: the booted one) bad: it will not boot again until reinstalled.
    MarkBad { group: Option<Group> },
    /// After boot: self-test and health checks, then mark the booted group good, or bad and
    /// reboot (boot_check.on_failure). Run by updater-boot-check.service.
    BootCheck {
        /// Never reboot, whatever boot_check.on_failure says.
        #[arg(long)]
        no_reboot: bool,
    },
    /// Microcontroller firmware.
    Firmware {
        #[command(subcommand)]
        command: FirmwareCommand,
    },
}

#[derive(Subcommand)]
enum FirmwareCommand {
    /// Flash one image directly and verify it (bring-up, tests); needs no config.
    Flash(FlashArgs),
    /// Flash the booted group's firmware where the targets do not already run it.
    Sync,
    /// Per target: what the booted group expects and what was last flashed and verified.
    Status {
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
struct FlashArgs {
    #[arg(long, value_enum)]
    protocol: Protocol,
    /// Serial port (stm32-serial).
    #[arg(long)]
    port: Option<String>,
    #[arg(long, default_value_t = 57600)]
    baud: u32,
    /// The STM32 bootloader wants even parity; "none" for links that cannot carry it.
    #[arg(long, value_enum, default_value = "even")]
    parity: ParityArg,
    /// USB vendor:product in hex, e.g. 0483:df11 (dfu, dfuse).
    #[arg(long, value_parser = parse_usb_id)]
    usb: Option<(u16, u16)>,
    /// USB serial number, when several devices share vendor:product.
    #[arg(long)]
    serial: Option<String>,
    /// DFU alternate setting.
    #[arg(long, default_value_t = 0)]
    alt: u8,
    /// Flash address, e.g. 0x08000000 (stm32-serial, dfuse).
    #[arg(long, value_parser = parse_address)]
    address: Option<u32>,
    image: PathBuf,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Protocol {
    #[value(name = "stm32-serial")]
    Stm32Serial,
    Dfu,
    Dfuse,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ParityArg {
    Even,
    None,
}

fn parse_address(text: &str) -> Result<u32, String> {
    let hex = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X"));
    match hex {
        Some(h) => u32::from_str_radix(h, 16),
        None => text.parse(),
    }
    .map_err(|_| format!("'{text}' is not an address (e.g. 0x08000000)"))
}

fn parse_usb_id(text: &str) -> Result<(u16, u16), String> {
    let bad = || format!("'{text}' is not VENDOR:PRODUCT in hex (e.g. 0483:df11)");
    let (v, p) = text.split_once(':').ok_or_else(bad)?;
    Ok((
        u16::from_str_radix(v, 16).map_err(|_| bad())?,
        u16::from_str_radix(p, 16).map_err(|_| bad())?,
    ))
}

impl FlashArgs {
    fn target(&self) -> Result<Target, UpdaterError> {
        let missing = |what: &str| UpdaterError::Usage(format!("this --protocol needs {what}"));
        let usb = || self.usb.ok_or_else(|| missing("--usb"));
        let address = || self.address.ok_or_else(|| missing("--address"));
        Ok(match self.protocol {
            Protocol::Stm32Serial => Target::Stm32Serial {
                port: self.port.clone().ok_or_else(|| missing("--port"))?,
                baud: self.baud,
                parity: match self.parity {
                    ParityArg::Even => Parity::Even,
                    ParityArg::None => Parity::None,
                },
                address: address()?,
            },
            Protocol::Dfu => {
                let (vendor, product) = usb()?;
                Target::Dfu {
                    vendor,
                    product,
                    serial: self.serial.clone(),
                    alt: self.alt,
                }
            }
            Protocol::Dfuse => {
                let (vendor, product) = usb()?;
                Target::DfuSe {
                    vendor,
                    product,
                    serial: self.serial.clone(),
                    alt: self.alt,
                    address: address()?,
                }
            }
        })
    }
}

fn main() -> ExitCode {
    // Targets takes the usual "warn,updater=debug" syntax without EnvFilter's regex engine,
    // which would add a quarter of a megabyte to the binary.
    let filter = std::env::var("UPDATER_LOG")
        .ok()
        .and_then(|directives| directives.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::WARN));
    tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .finish()
        .with(filter)
        .init();
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(err) => {
            // One line, whatever names from outside the message carries.
            eprintln!("updater: error: {}", escaped(&err.to_string()));
            ExitCode::from(err.exit_code())
        }
    }
}

fn run(cli: &Cli) -> Result<ExitCode, UpdaterError> {
    if let Command::Firmware {
        command: FirmwareCommand::Flash(args),
    } = &cli.command
    {
        let target = args.target()?;
        let image = &args.image;
        let data = std::fs::read(image)
            .map_err(UpdaterError::io(format!("reading {}", image.display())))?;
        flash(&target, &data, &progress(cli))?;
        println!(
            "flashed and verified {} bytes on {}",
            data.len(),
            target.describe()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let config = Config::load(&cli.config)?;
    match &cli.command {
        Command::Firmware {
            command: FirmwareCommand::Sync,
        } => {
            let store = StateDir::lock(&config.state_dir)?;
            let mut state = store.load()?;
            for outcome in firmware_sync(&config, &store, &mut state, &progress(cli))? {
                match outcome {
                    Outcome::AlreadyRunning(name) => {
                        println!("{name}: already runs the booted group's firmware")
                    }
                    Outcome::Flashed(name) => println!("{name}: flashed and verified"),
                }
            }
        }
        Command::Firmware {
            command: FirmwareCommand::Status { json },
        } => {
            let state = StateDir::open_read_only(&config.state_dir).load()?;
            let targets = firmware_status(&config, &state)?;
            if *json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&targets).expect("status serializes")
                );
            } else {
                for t in targets {
                    let flashed = t.flashed.as_ref().map_or("never flashed".to_string(), |f| {
                        format!("flashed {} from group {} at {}", f.version, f.group, f.time)
                    });
                    let sync = if t.in_sync { "in sync" } else { "NOT in sync" };
                    println!(
                        "{} ({}): expects {}, {flashed}: {sync}",
                        t.name, t.target, t.expected_version
                    );
                }
            }
        }
        Command::Firmware {
            command: FirmwareCommand::Flash(_),
        } => unreachable!("handled above"),
        Command::Install {
            source,
            from_dir,
            allow_downgrade,
            target,
        } => {
            let options = InstallOptions {
                allow_downgrade: *allow_downgrade,
                target: *target,
                ..Default::default()
            };
            let source = match (source, from_dir) {
                (Some(source), _) => source.clone(),
                (None, Some(dir)) => choose_from_dir(&config, dir, *allow_downgrade)?,
                (None, None) => unreachable!("clap requires one"),
            };
            let report = install(
                &config,
                open_source(&source, &config.http, None)?,
                &options,
                &progress(cli),
            )?;
            print_installed(&report);
        }
        Command::Check { json } => {
            let report = check(&config)?;
            if *json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).expect("report serializes")
                );
            } else {
                print_check(&report);
            }
        }
        Command::Update => {
            let report = check(&config)?;
            print_check(&report);
            if report.decision.update {
                let installed =
                    install_checked(&config, &report, &InstallOptions::default(), &progress(cli))?;
                print_installed(&installed);
            }
        }
        Command::Daemon => daemon::run(&config)?,
        Command::Status { json } => {
            let status = status(&config)?;
            if *json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&status).expect("status serializes")
                );
            } else {
                print_status(&status);
            }
        }
        Command::MarkGood { group, force } => {
            let group = mark(&config, *group, Mark::Good { force: *force })?;
            println!("marked group {group} good");
        }
        Command::MarkBad { group } => {
            let group = mark(&config, *group, Mark::Bad)?;
            println!("marked group {group} bad");
        }
        Command::BootCheck { no_reboot } => {
            let no_reboot = *no_reboot;
            let report = boot_check(&config)?;
            if let Some(from) = report.rolled_back_from {
                println!(
                    "the update in group {from} failed and was rolled back; running group {}",
                    report.booted
                );
            }
            for failure in &report.failures {
                eprintln!("updater: boot-check: {}", escaped(&failure.to_string()));
            }
            if report.confirmed() {
                println!("boot-check passed: group {} is good", report.booted);
            } else {
                let reboot = report.reboot && !no_reboot;
                let action = if reboot { "rebooting" } else { "not rebooting" };
                eprintln!(
                    "updater: boot-check failed for group {} ({action})",
                    report.booted
                );
                if reboot {
                    reboot_now(&config.boot_check.reboot_command)?;
                }
                return Ok(ExitCode::from(EXIT_UNHEALTHY));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn progress(cli: &Cli) -> Progress {
    Progress::new(if cli.quiet {
        Style::Quiet
    } else {
        Style::for_stderr()
    })
}

fn choose_from_dir(
    config: &Config,
    dir: &std::path::Path,
    allow_downgrade: bool,
) -> Result<String, UpdaterError> {
    let choice = from_dir::choose(config, dir, allow_downgrade)?;
    for (path, why) in &choice.skipped {
        eprintln!(
            "updater: skipped {}: {}",
            escaped(&path.display().to_string()),
            escaped(why)
        );
    }
    let (path, version) = choice.chosen.ok_or_else(|| {
        UpdaterError::Refused(format!(
            "{} holds no bundle this device accepts",
            dir.display()
        ))
    })?;
    eprintln!(
        "updater: chose {} ({version})",
        escaped(&path.display().to_string())
    );
    Ok(path.to_string_lossy().into_owned())
}

fn print_installed(report: &updater::install::InstallReport) {
    println!(
        "installed {} into group {} ({} bytes, verified and read back); reboot to start it",
        report.version, report.target, report.bytes
    );
}

fn print_check(report: &CheckReport) {
    let d = &report.decision;
    let verdict = if d.update { "update" } else { "no update" };
    println!("{verdict}: {}", d.message);
}

fn print_status(s: &Status) {
    println!(
        "compatible: {}   booted: {}   next boot: {}",
        s.compatible, s.booted, s.next
    );
    println!(
        "{:<6} {:<9} {:<5} {:<6} version",
        "group", "bootable", "good", "tries"
    );
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    for (group, g) in &s.slots {
        println!(
            "{:<6} {:<9} {:<5} {:<6} {}",
            group.as_str(),
            yes_no(g.bootable),
            g.good.map_or("-", yes_no),
            g.tries.map_or_else(|| "-".to_owned(), |t| t.to_string()),
            g.version.as_deref().unwrap_or("-")
        );
    }
    println!("security floor: {}", s.security_floor);
    if let Some(last) = &s.last_install {
        let error = last
            .error
            .as_deref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        println!(
            "last install: {} into {}: {} at {}{error}",
            last.version,
            last.target,
            last.result.as_str(),
            last.time
        );
    }
    for warning in &s.warnings {
        println!("warning (shared by both groups): {}", escaped(warning));
    }
}

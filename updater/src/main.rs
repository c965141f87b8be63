//! `updater`: the on-device command. One line on stderr per failure, one exit code per failure
//! class (docs/exit-codes.md).
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use updater::assess::{boot_check, mark, reboot as reboot_now, Mark};
use updater::error::EXIT_UNHEALTHY;
use updater::install::{install, InstallOptions};
use updater::progress::{Progress, Style};
use updater::slots::Group;
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
    /// Install a bundle (a file, or - for standard input) into the inactive group.
    Install {
        source: PathBuf,
        /// Allow a version older than the running one (never below the security floor).
        #[arg(long)]
        allow_downgrade: bool,
        /// Write this group (R only when named here) instead of the inactive A/B group.
        #[arg(long, value_name = "GROUP")]
        target: Option<Group>,
    },
    /// Show the booted group, the next boot and each group's state.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Mark a group (default: the booted one) good: it keeps booting.
    MarkGood { group: Option<Group> },
    /// Mark a group (default: the booted one) bad: it will not boot again until reinstalled.
    MarkBad { group: Option<Group> },
    /// After boot: self-test and health checks, then mark the booted group good, or bad and
    /// reboot (boot_check.on_failure). Run by updater-boot-check.service.
    BootCheck {
        /// Never reboot, whatever boot_check.on_failure says.
        #[arg(long)]
        no_reboot: bool,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("UPDATER_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("updater: error: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}

fn run(cli: &Cli) -> Result<ExitCode, UpdaterError> {
    let config = Config::load(&cli.config)?;
    match &cli.command {
        Command::Install {
            source,
            allow_downgrade,
            target,
        } => {
            let style = if cli.quiet {
                Style::Quiet
            } else {
                Style::for_stderr()
            };
            let progress = Progress::new(style);
            let options = InstallOptions {
                allow_downgrade: *allow_downgrade,
                target: *target,
            };
            let report = install(&config, open_source(source)?, &options, &progress)?;
            println!(
                "installed {} into group {} ({} bytes, verified and read back); reboot to start it",
                report.version, report.target, report.bytes
            );
        }
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
        Command::MarkGood { group } => {
            let group = mark(&config, *group, Mark::Good)?;
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
            if report.failures.is_empty() {
                println!("boot-check passed: group {} is good", report.booted);
            } else {
                for failure in &report.failures {
                    eprintln!("updater: boot-check: {failure}");
                }
                let reboot = report.reboot && !no_reboot;
                let action = if reboot { "rebooting" } else { "not rebooting" };
                eprintln!(
                    "updater: boot-check failed for group {} ({action})",
                    report.booted
                );
                if reboot {
                    reboot_now(&config)?;
                }
                return Ok(ExitCode::from(EXIT_UNHEALTHY));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn open_source(source: &PathBuf) -> Result<Box<dyn Read>, UpdaterError> {
    if source.as_os_str() == "-" {
        return Ok(Box::new(BufReader::with_capacity(
            256 << 10,
            io::stdin().lock(),
        )));
    }
    let file = File::open(source).map_err(|e| UpdaterError::Io {
        context: format!("opening bundle {}", source.display()),
        source: e,
    })?;
    Ok(Box::new(BufReader::with_capacity(256 << 10, file)))
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
            yes_no(g.good),
            g.tries,
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
}

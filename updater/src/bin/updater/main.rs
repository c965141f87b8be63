//! `updater`: the on-device command. One line on stderr per failure, one exit code per failure
//! class (docs/exit-codes.md).
mod args;
mod render;

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use updater::assess::{boot_check, mark, reboot, Mark};
use updater::daemon;
use updater::display::escaped;
use updater::error::exit;
use updater::firmware::flash;
use updater::firmware::sync::{status as firmware_status, sync as firmware_sync};
use updater::fleet::{check, install_checked};
use updater::install::{from_dir, install_from, InstallOptions};
use updater::progress::{Progress, Style};
use updater::source::BundleSource;
use updater::state::StateDir;
use updater::status::status;
use updater::{Config, UpdaterError};

use args::{Cli, Command, FirmwareCommand, FlashArgs, InstallFrom};

fn main() -> ExitCode {
    cli_support::init_logging("UPDATER_LOG");
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
    let progress = Progress::new(if cli.quiet {
        Style::Quiet
    } else {
        Style::for_stderr()
    });
    // The one command that needs no device configuration.
    if let Command::Firmware {
        command: FirmwareCommand::Flash(args),
    } = &cli.command
    {
        return flash_directly(args, &progress);
    }
    let config = Config::load(&cli.config)?;
    match &cli.command {
        Command::Firmware { command } => firmware(&config, command, &progress)?,
        Command::Install {
            from,
            allow_downgrade,
            target,
        } => {
            let options = InstallOptions {
                allow_downgrade: *allow_downgrade,
                target: *target,
                ..Default::default()
            };
            let source = install_source(&config, from, *allow_downgrade)?;
            let report = install_from(&config, &source, &options, &progress)?;
            render::installed(&report);
        }
        Command::Check { json } => {
            let report = check(&config)?;
            render::as_asked(*json, &report, render::check);
        }
        Command::Update => {
            let report = check(&config)?;
            render::check(&report);
            if report.decision.update {
                let installed =
                    install_checked(&config, &report, &InstallOptions::default(), &progress)?;
                render::installed(&installed);
            }
        }
        Command::Daemon => daemon::run(&config)?,
        Command::Status { json } => {
            let status = status(&config)?;
            render::as_asked(*json, &status, render::status);
        }
        Command::MarkGood { group, force } => {
            let group = mark(&config, *group, Mark::Good { force: *force })?;
            println!("marked group {group} good");
        }
        Command::MarkBad { group } => {
            let group = mark(&config, *group, Mark::Bad)?;
            println!("marked group {group} bad");
        }
        Command::MarkActive { group } => {
            let group = mark(&config, *group, Mark::Active)?;
            println!("group {group} boots next");
        }
        Command::BootCheck { no_reboot } => return run_boot_check(&config, *no_reboot),
        Command::DataLink => {
            let data = config.data.as_ref().ok_or_else(|| {
                UpdaterError::config(&config.path, "[data] is not set: there is no data to link")
            })?;
            let booted = config.booted_group()?;
            updater::data::link_current(data, booted)?;
            println!("{} -> {booted}", data.link.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn flash_directly(args: &FlashArgs, progress: &Progress) -> Result<ExitCode, UpdaterError> {
    let target = args.target()?;
    let image = &args.image;
    let data =
        std::fs::read(image).map_err(UpdaterError::io(format!("reading {}", image.display())))?;
    flash(&target, &data, progress)?;
    println!(
        "flashed and verified {} bytes on {}",
        data.len(),
        target.describe()
    );
    Ok(ExitCode::SUCCESS)
}

fn firmware(
    config: &Config,
    command: &FirmwareCommand,
    progress: &Progress,
) -> Result<(), UpdaterError> {
    match command {
        FirmwareCommand::Flash(args) => {
            flash_directly(args, progress)?;
        }
        FirmwareCommand::Sync => {
            let store = StateDir::lock(&config.state_dir)?;
            let mut state = store.load()?;
            for outcome in firmware_sync(config, &store, &mut state, progress)? {
                render::firmware_outcome(&outcome);
            }
        }
        FirmwareCommand::Status { json } => {
            let state = StateDir::open_read_only(&config.state_dir).load()?;
            let targets = firmware_status(config, &state)?;
            render::as_asked(*json, targets.as_slice(), render::firmware_targets);
        }
    }
    Ok(())
}

fn run_boot_check(config: &Config, no_reboot: bool) -> Result<ExitCode, UpdaterError> {
    let report = boot_check(config)?;
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
        return Ok(ExitCode::SUCCESS);
    }
    let reboot_now = report.reboot && !no_reboot;
    let action = if reboot_now {
        "rebooting"
    } else {
        "not rebooting"
    };
    eprintln!(
        "updater: boot-check failed for group {} ({action})",
        report.booted
    );
    if reboot_now {
        reboot(&config.boot_check.reboot_command)?;
    }
    Ok(ExitCode::from(exit::UNHEALTHY))
}

/// The bundle to install: the one named, or the newest acceptable one in `--from-dir`.
fn install_source(
    config: &Config,
    from: &InstallFrom,
    allow_downgrade: bool,
) -> Result<BundleSource, UpdaterError> {
    match (&from.source, &from.from_dir) {
        (Some(source), _) => Ok(source.clone()),
        (None, Some(dir)) => choose_from_dir(config, dir, allow_downgrade),
        (None, None) => Err(UpdaterError::Usage(
            "install needs a bundle or --from-dir".into(),
        )),
    }
}

fn choose_from_dir(
    config: &Config,
    dir: &Path,
    allow_downgrade: bool,
) -> Result<BundleSource, UpdaterError> {
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
    Ok(BundleSource::File(path))
}

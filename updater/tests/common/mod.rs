//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test crate uses a part

pub mod device;
pub mod dfu_sim;
pub mod pair;
pub mod stm32_sim;
pub mod web;

use std::path::Path;
use std::process::{Command, Output};

/// Runs a real tool and returns its stdout; a missing tool or a failure ends the test, naming it.
pub fn run(cmd: &str, args: &[&str]) -> String {
    run_in(Path::new("."), cmd, args)
}

/// `run`, in the folder `dir`.
pub fn run_in(dir: &Path, cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e} (scripts/setup.sh installs it)"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs the `updater` binary with `config`, without progress output.
pub fn updater(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_updater"))
        .arg("--config")
        .arg(config)
        .arg("--quiet")
        .args(args)
        .output()
        .unwrap()
}

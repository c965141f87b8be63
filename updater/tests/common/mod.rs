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

/// The value of the extended attribute `name` of `path`, as `getfattr` reads it.
pub fn xattr(path: &Path, name: &str) -> String {
    run(
        "getfattr",
        &["--only-values", "-n", name, path.to_str().unwrap()],
    )
}

/// Sets the extended attribute `name` of `path` with `setfattr`.
pub fn set_xattr(path: &Path, name: &str, value: &str) {
    run(
        "setfattr",
        &["-n", name, "-v", value, path.to_str().unwrap()],
    );
}

/// `tar -cf ARCHIVE [extra...] -C TREE .`: the tree archived by GNU tar.
pub fn tar_of(tree: &Path, archive: &Path, extra: &[&str]) {
    let mut args = extra.to_vec();
    args.extend([
        "-cf",
        archive.to_str().unwrap(),
        "-C",
        tree.to_str().unwrap(),
        ".",
    ]);
    run("tar", &args);
}

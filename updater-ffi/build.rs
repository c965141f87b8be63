//! Generates the C header from the exported functions (tests/c_api.rs checks that the committed
//! include/abupdater.h is the same) and gives the shared library its soname.
use std::env;
use std::path::PathBuf;

/// The C ABI's major version: raised when an exported function changes its signature or meaning or
/// goes away, so programs linked against the old library refuse to start instead of misbehaving.
/// Independent of the crate's version, which moves with the updater.
const ABI_MAJOR: u32 = 0;

fn main() {
    if env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libabupdater.so.{ABI_MAJOR}");
    }
    let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let header = PathBuf::from(env::var("OUT_DIR").expect("set by cargo")).join("abupdater.h");
    let config =
        cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml");
    cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
        .expect("the header generates")
        .write_to_file(&header);
    println!(
        "cargo:rustc-env=ABUPDATER_GENERATED_HEADER={}",
        header.display()
    );
    println!("cargo:rerun-if-changed=src/lib.rs");
    println!("cargo:rerun-if-changed=cbindgen.toml");
}

//! Generates the C header from the exported functions; tests/c_api.rs checks that the committed
//! include/abupdater.h is the same.
use std::env;
use std::path::PathBuf;

fn main() {
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

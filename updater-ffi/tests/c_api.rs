//! The C library as C sees it: the committed header is what cbindgen generates, and a C program
//! compiled against it links to libabupdater.so and installs a bundle.
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use bundle::{create_bundle, BundleInput, CreateOptions, ImageInput, SigningKey};

const HEADER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/include/abupdater.h");

#[test]
fn the_committed_header_is_the_generated_one() {
    let generated = fs::read_to_string(env!("ABUPDATER_GENERATED_HEADER")).unwrap();
    let committed = fs::read_to_string(HEADER).unwrap();
    assert!(
        generated == committed,
        "include/abupdater.h is stale: cp {} {HEADER}",
        env!("ABUPDATER_GENERATED_HEADER")
    );
}

/// Where cargo put libabupdater.so: next to this test in target/<profile>/deps, and (after a
/// `cargo build`) copied up to target/<profile>.
fn library_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    let found = [deps, deps.parent().unwrap()]
        .into_iter()
        .find(|dir| dir.join("libabupdater.so").exists())
        .unwrap_or_else(|| panic!("no libabupdater.so in or above {}", deps.display()))
        .to_path_buf();
    found
}

fn device(dir: &Path) -> (PathBuf, Vec<u8>) {
    let (key, _) = SigningKey::generate().unwrap();
    fs::create_dir_all(dir.join("slots")).unwrap();
    fs::write(dir.join("release.pub"), key.public_key().to_pem()).unwrap();
    for slot in ["a", "b"] {
        fs::write(dir.join(format!("slots/rootfs-{slot}.img")), "old").unwrap();
    }
    fs::write(
        dir.join("system.toml"),
        "compatible = \"acme-robot\"\nkeyring = \"release.pub\"\nstate_dir = \"state\"\n\
         [bootloader]\nbackend = \"file\"\npath = \"state/bootloader.env\"\n\
         [boot]\nbooted = \"A\"\n\
         [slots.A]\nrootfs = \"slots/rootfs-a.img\"\n[slots.B]\nrootfs = \"slots/rootfs-b.img\"\n",
    )
    .unwrap();
    let image: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i % 251) as u8 ^ (i >> 12) as u8)
        .collect();
    fs::write(dir.join("rootfs.img"), &image).unwrap();
    let input = BundleInput {
        compatible: "acme-robot".into(),
        version: "1.1.0".parse().unwrap(),
        security_version: 0,
        images: vec![ImageInput {
            slot_class: "rootfs".into(),
            path: dir.join("rootfs.img"),
        }],
        firmware: vec![],
    };
    let bundle = dir.join("update.zst");
    create_bundle(&input, &[&key], &bundle, &CreateOptions::default()).unwrap();
    (bundle, image)
}

#[test]
fn a_c_program_links_and_installs() {
    let dir = tempfile::tempdir().unwrap();
    let (bundle, image) = device(dir.path());
    let lib = library_dir();
    let program = dir.path().join("smoke");
    let cc = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(Path::new(HEADER).parent().unwrap())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/c/smoke.c"))
        .arg("-L")
        .arg(&lib)
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .args(["-labupdater", "-o"])
        .arg(&program)
        .output()
        .expect("cc (gcc) is installed");
    assert!(
        cc.status.success(),
        "{}",
        String::from_utf8_lossy(&cc.stderr)
    );

    let out = Command::new(&program)
        .arg(dir.path().join("system.toml"))
        .arg(&bundle)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(concat!("libabupdater ", env!("CARGO_PKG_VERSION"))),
        "{stdout}"
    );
    assert!(stdout.contains("ok: "), "{stdout}");
    assert_eq!(
        fs::read(dir.path().join("slots/rootfs-b.img")).unwrap(),
        image
    );
}

//! The C library as C sees it: the committed header is what cbindgen generates, and a C program
//! built against the installed library (install-lib.sh, found with pkg-config) links to it by its
//! soname and installs a bundle.
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use bundle::{create_bundle, BundleInput, CreateOptions, ImageInput, SigningKey};

const HEADER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/include/abupdater.h");
const INSTALL_LIB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/install-lib.sh");
const SONAME: &str = "libabupdater.so.0";

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
            archive: false,
        }],
        firmware: vec![],
        hooks: None,
    };
    let bundle = dir.join("update.zst");
    create_bundle(&input, &[&key], &bundle, &CreateOptions::default()).unwrap();
    (bundle, image)
}

/// Runs install-lib.sh as the Yocto recipe does, with `root` as DESTDIR and /usr as prefix.
fn install_library(library: &Path, root: &Path) -> std::process::Output {
    Command::new("sh")
        .arg(INSTALL_LIB)
        .arg(library)
        .arg(env!("CARGO_PKG_VERSION"))
        .arg(root)
        .args(["/usr", "/usr/lib", "/usr/include"])
        .output()
        .unwrap()
}

/// The entries of one kind (SONAME, NEEDED) in an ELF file's dynamic section.
fn dynamic_entries(elf: &Path, kind: &str) -> Vec<String> {
    let out = Command::new("readelf").arg("-d").arg(elf).output().unwrap();
    assert!(out.status.success(), "readelf -d {}", elf.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|line| line.contains(&format!("({kind})")))
        .filter_map(|line| Some(line.split_once('[')?.1.trim_end_matches(']').to_owned()))
        .collect()
}

fn pkg_config(root: &Path, args: &[&str]) -> Vec<String> {
    let out = Command::new("pkg-config")
        .env("PKG_CONFIG_LIBDIR", root.join("usr/lib/pkgconfig"))
        .env("PKG_CONFIG_SYSROOT_DIR", root)
        .args(args)
        .arg("abupdater")
        .output()
        .expect("pkg-config is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(Into::into)
        .collect()
}

#[test]
fn the_library_installs_with_its_soname_header_and_pkg_config_file() {
    let root = tempfile::tempdir().unwrap();
    let library = library_dir().join("libabupdater.so");
    assert_eq!(dynamic_entries(&library, "SONAME"), [SONAME]);

    let out = install_library(&library, root.path());
    assert!(out.status.success(), "{out:?}");
    let libdir = root.path().join("usr/lib");
    let real = format!("libabupdater.so.{}", env!("CARGO_PKG_VERSION"));
    assert!(libdir.join(&real).is_file());
    assert_eq!(
        fs::read_link(libdir.join(SONAME)).unwrap(),
        Path::new(&real)
    );
    assert_eq!(
        fs::read_link(libdir.join("libabupdater.so")).unwrap(),
        Path::new(SONAME)
    );
    assert_eq!(
        fs::read(root.path().join("usr/include/abupdater.h")).unwrap(),
        fs::read(HEADER).unwrap()
    );
    assert_eq!(
        pkg_config(root.path(), &["--modversion"]),
        [env!("CARGO_PKG_VERSION")]
    );
}

#[test]
fn install_lib_refuses_a_library_without_soname_and_installs_nothing() {
    let root = tempfile::tempdir().unwrap();
    let not_a_library = root.path().join("libabupdater.so");
    fs::write(&not_a_library, "not an ELF file").unwrap();
    let out = install_library(&not_a_library, &root.path().join("image"));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("has no SONAME"), "{stderr}");
    assert!(!root.path().join("image").exists());
}

#[test]
fn a_c_program_links_and_installs() {
    let dir = tempfile::tempdir().unwrap();
    let (bundle, image) = device(dir.path());
    let root = dir.path().join("sysroot");
    let out = install_library(&library_dir().join("libabupdater.so"), &root);
    assert!(out.status.success(), "{out:?}");
    let program = dir.path().join("smoke");
    let cc = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror"])
        .args(pkg_config(&root, &["--cflags"]))
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/c/smoke.c"))
        .args(pkg_config(&root, &["--libs"]))
        .arg(format!("-Wl,-rpath,{}", root.join("usr/lib").display()))
        .arg("-o")
        .arg(&program)
        .output()
        .expect("cc (gcc) is installed");
    assert!(
        cc.status.success(),
        "{}",
        String::from_utf8_lossy(&cc.stderr)
    );
    // Linked by soname, so a compatible library update replaces the file under it.
    assert!(
        dynamic_entries(&program, "NEEDED").contains(&SONAME.to_owned()),
        "{:?}",
        dynamic_entries(&program, "NEEDED")
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

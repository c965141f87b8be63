//! A device made of files: the example config, file slots, a keyring with a fresh key, and
//! the assertions that tell an install changed nothing it must not.
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use bundle::{create_bundle, BundleInput, CreateOptions, ImageInput, SigningKey};
use serde_json::Value;

/// The documented example (docs/config.md), as shipped with the demo.
pub const CONFIG: &str = include_str!("../../../examples/acme-robot/system.toml");

/// The example config with an `app` slot next to rootfs in groups A and B.
pub fn two_slot_config() -> String {
    CONFIG
        .replace(
            "rootfs = \"slots/rootfs-a.img\"",
            "rootfs = \"slots/rootfs-a.img\"\napp = \"slots/app-a.img\"",
        )
        .replace(
            "rootfs = \"slots/rootfs-b.img\"",
            "rootfs = \"slots/rootfs-b.img\"\napp = \"slots/app-b.img\"",
        )
}

pub struct Device {
    pub dir: tempfile::TempDir,
    pub key: SigningKey,
}

pub fn image(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i / 7) as u8).wrapping_mul(seed) ^ (i % 251) as u8)
        .collect()
}

impl Device {
    pub fn new() -> Device {
        Self::with_config(CONFIG)
    }

    pub fn with_config(config: &str) -> Device {
        let dir = tempfile::tempdir().unwrap();
        let (key, _) = SigningKey::generate().unwrap();
        fs::create_dir_all(dir.path().join("keys")).unwrap();
        fs::create_dir_all(dir.path().join("slots")).unwrap();
        fs::write(
            dir.path().join("keys/release.pub"),
            key.public_key().to_pem(),
        )
        .unwrap();
        for (slot, content) in [
            ("rootfs-a.img", "running system A"),
            ("rootfs-b.img", "old B"),
            ("rootfs-r.img", "recovery"),
        ] {
            fs::write(dir.path().join("slots").join(slot), content).unwrap();
        }
        fs::write(dir.path().join("system.toml"), config).unwrap();
        Device { dir, key }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn bundle_with(
        &self,
        name: &str,
        compatible: &str,
        version: &str,
        security: u64,
        images: &[(&str, Vec<u8>)],
    ) -> PathBuf {
        let options = CreateOptions::default();
        self.bundle_of_format(name, compatible, version, security, images, &options)
    }

    pub fn bundle_of_format(
        &self,
        name: &str,
        compatible: &str,
        version: &str,
        security: u64,
        images: &[(&str, Vec<u8>)],
        options: &CreateOptions,
    ) -> PathBuf {
        let mut inputs = Vec::new();
        for (class, data) in images {
            let path = self.path(&format!("{name}-{class}.img"));
            fs::write(&path, data).unwrap();
            inputs.push(ImageInput {
                slot_class: class.to_string(),
                path,
                archive: false,
            });
        }
        let input = BundleInput {
            compatible: compatible.into(),
            version: version.parse().unwrap(),
            security_version: security,
            images: inputs,
            firmware: vec![],
            hooks: None,
        };
        let out = self.path(name);
        create_bundle(&input, &[&self.key], &out, options).unwrap();
        out
    }

    /// A bundle `name` of one rootfs image (the file `rootfs`) and the hook executable `hook`,
    /// run for `events`.
    pub fn bundle_with_hook(
        &self,
        name: &str,
        version: &str,
        rootfs: PathBuf,
        hook: &str,
        events: &[bundle::HookEvent],
        options: &CreateOptions,
    ) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let hook_path = self.path(&format!("{name}.hook"));
        fs::write(&hook_path, hook).unwrap();
        fs::set_permissions(&hook_path, fs::Permissions::from_mode(0o755)).unwrap();
        let input = BundleInput {
            compatible: "acme-robot".into(),
            version: version.parse().unwrap(),
            security_version: 0,
            images: vec![ImageInput {
                slot_class: "rootfs".into(),
                path: rootfs,
                archive: false,
            }],
            firmware: vec![],
            hooks: Some(bundle::HooksInput {
                path: hook_path,
                events: events.to_vec(),
            }),
        };
        let out = self.path(name);
        create_bundle(&input, &[&self.key], &out, options).unwrap();
        out
    }

    /// A format-2 bundle (block index, 64 KiB chunks) of one rootfs image.
    pub fn format2_bundle(&self, name: &str, version: &str, rootfs: &[u8]) -> PathBuf {
        let options = CreateOptions::for_format(bundle::FORMAT_WITH_BLOCKS);
        let images = [("rootfs", rootfs.to_vec())];
        self.bundle_of_format(name, "acme-robot", version, 0, &images, &options)
    }

    /// The delta bundle from `from` to `to`, signed with `key`, written to `name`.
    pub fn delta(&self, from: &Path, to: &Path, key: &SigningKey, name: &str) -> PathBuf {
        let output = self.path(name);
        bundle::delta::create(&bundle::delta::DeltaRequest {
            from,
            to,
            keyring: None,
            keys: &[key],
            output: &output,
            level: 3,
            threads: Some(2),
        })
        .unwrap();
        output
    }

    /// `updater install -` with `bytes` on its standard input.
    pub fn install_stdin(&self, bytes: &[u8]) -> Output {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let mut child = Command::new(env!("CARGO_BIN_EXE_updater"))
            .arg("--config")
            .arg(self.path("system.toml"))
            .args(["install", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(bytes).unwrap();
        child.wait_with_output().unwrap()
    }

    /// The updater on this device's config with extra environment (test hooks).
    pub fn updater_with_env(&self, args: &[&str], env: &[(&str, &Path)]) -> Output {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_updater"));
        command
            .arg("--config")
            .arg(self.path("system.toml"))
            .args(args);
        for (name, value) in env {
            command.env(name, value);
        }
        command.output().unwrap()
    }

    pub fn bundle(&self, version: &str) -> (PathBuf, Vec<u8>) {
        let rootfs = image(2 * 1024 * 1024 + 4321, 3);
        let path = self.bundle_with(
            &format!("v{version}.zst"),
            "acme-robot",
            version,
            0,
            &[("rootfs", rootfs.clone())],
        );
        (path, rootfs)
    }

    pub fn write_bundle(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.path(name);
        fs::write(&path, bytes).unwrap();
        path
    }

    pub fn updater(&self, args: &[&str]) -> Output {
        super::updater(&self.path("system.toml"), args)
    }

    pub fn install_source(&self, source: &str) -> Output {
        self.updater(&["install", source])
    }

    pub fn install(&self, bundle: &Path) -> Output {
        self.updater(&["install", bundle.to_str().unwrap()])
    }

    pub fn status(&self) -> Value {
        let out = self.updater(&["status", "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    pub fn slot(&self, name: &str) -> Vec<u8> {
        fs::read(self.path(&format!("slots/rootfs-{name}.img"))).unwrap()
    }

    /// The group the device runs from now on (the config's `booted`, whatever it was).
    pub fn set_booted(&self, group: &str) {
        let text = fs::read_to_string(self.path("system.toml")).unwrap();
        let text: String = text
            .lines()
            .map(|line| match line.starts_with("booted = ") {
                true => format!("booted = \"{group}\"\n"),
                false => format!("{line}\n"),
            })
            .collect();
        fs::write(self.path("system.toml"), text).unwrap();
    }

    pub fn snapshot(&self) -> Vec<Option<Vec<u8>>> {
        [
            "slots/rootfs-a.img",
            "slots/rootfs-b.img",
            "slots/rootfs-r.img",
            "state/bootloader.env",
        ]
        .iter()
        .map(|p| fs::read(self.path(p)).ok())
        .collect()
    }
}

/// The failure is one line naming the cause, with the class's exit code.
pub fn assert_fails(out: &Output, code: i32, message: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line expected: {stderr}");
    assert!(stderr.starts_with("updater: error: "), "{stderr}");
    assert!(
        stderr.contains(message),
        "'{stderr}' does not contain '{message}'"
    );
}

/// Running system and recovery untouched, target not bootable, next boot still A.
pub fn assert_safe(device: &Device) {
    assert_eq!(device.slot("a"), b"running system A");
    assert_eq!(device.slot("r"), b"recovery");
    let status = device.status();
    assert_eq!(status["next"], "A");
    assert_eq!(status["slots"]["B"]["bootable"], false);
    assert_eq!(status["slots"]["A"]["bootable"], true);
}

/// Refused before anything was written: the device is exactly as it was.
pub fn assert_refused_untouched(device: &Device, bundle: &Path, code: i32, message: &str) {
    let before = device.snapshot();
    assert_fails(&device.install(bundle), code, message);
    assert_eq!(device.snapshot(), before, "something was written");
    assert_safe(device);
}

/// What a release index says of a bundle served at `url`.
pub fn release_of(bundle: &Path, url: &str) -> bundle::release::Release {
    let file = fs::File::open(bundle).unwrap();
    let reader = bundle::BundleReader::open_unverified(std::io::BufReader::new(file)).unwrap();
    bundle::release::Release {
        version: reader.manifest().version.clone(),
        url: url.into(),
        size: fs::metadata(bundle).unwrap().len(),
        manifest_sha256: reader.manifest_sha256(),
        adaptive: None,
        deltas: Vec::new(),
        security_version: reader.manifest().security_version,
    }
}

//! `bundle-tool` as CI runs it, including keys made by OpenSSL and bundles read by zstd and tar.
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn tool(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bundle-tool"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn fails(out: &Output, code: i32, message: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(message),
        "'{stderr}' does not contain '{message}'"
    );
}

/// `bundle-tool create` of bundle format `format`, signed with release.key; must succeed.
fn create(dir: &Path, format: &str, manifest: &str, output: &str) -> String {
    ok(&tool(
        dir,
        &[
            "create",
            "--format",
            format,
            "--manifest",
            manifest,
            "--key",
            "release.key",
            "--output",
            output,
        ],
    ))
}

/// `bundle-tool create` of the input manifest `manifest` (signed with release.key) fails with
/// `code` and `message`, and writes no bundle.
fn create_fails(dir: &Path, manifest: &str, code: i32, message: &str) {
    fs::write(dir.join("bad.toml"), manifest).unwrap();
    fails(
        &tool(
            dir,
            &[
                "create",
                "--manifest",
                "bad.toml",
                "--key",
                "release.key",
                "--output",
                "x.zst",
            ],
        ),
        code,
        message,
    );
    assert!(!dir.join("x.zst").exists());
}

fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let image: Vec<u8> = (0..3_000_000u32).map(|i| (i % 7919 / 31) as u8).collect();
    fs::write(dir.path().join("rootfs.img"), image).unwrap();
    fs::write(
        dir.path().join("m.toml"),
        "compatible = \"acme-robot\"\nversion = \"1.0.0\"\nsecurity_version = 2\n\n[[image]]\nslot_class = \"rootfs\"\nfile = \"rootfs.img\"\n",
    )
    .unwrap();
    dir
}

#[test]
fn keygen_create_verify_info() {
    let dir = workspace();
    let d = dir.path();
    ok(&tool(d, &["keygen", "--out", "release"]));
    let mode = fs::metadata(d.join("release.key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    fails(
        &tool(d, &["keygen", "--out", "release"]),
        1,
        "release.key exists; pass --force",
    );

    let created = ok(&tool(
        d,
        &[
            "create",
            "--manifest",
            "m.toml",
            "--key",
            "release.key",
            "--output",
            "b.zst",
        ],
    ));
    assert!(
        created.starts_with("created b.zst: version 1.0.0"),
        "{created}"
    );
    let verified = ok(&tool(d, &["verify", "--keyring", "release.pub", "b.zst"]));
    assert!(verified.contains("OK (version 1.0.0"), "{verified}");
    let info = ok(&tool(d, &["info", "b.zst"]));
    assert!(
        info.contains("security version: 2") && info.contains("rootfs"),
        "{info}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(&tool(d, &["info", "--json", "b.zst"]))).unwrap();
    assert_eq!(json["components"][0]["size"], 3_000_000);
    assert_eq!(json["components"][0]["chunks"], 3);
    assert_eq!(json["compatible"], "acme-robot");
}

#[test]
fn verify_refuses_with_the_class_exit_code() {
    let dir = workspace();
    let d = dir.path();
    ok(&tool(d, &["keygen", "--out", "a"]));
    ok(&tool(d, &["keygen", "--out", "b"]));
    ok(&tool(
        d,
        &[
            "create",
            "--manifest",
            "m.toml",
            "--key",
            "a.key",
            "--output",
            "b.zst",
        ],
    ));
    fails(
        &tool(d, &["verify", "--keyring", "b.pub", "b.zst"]),
        5,
        "signed by untrusted key",
    );
    let mut bytes = fs::read(d.join("b.zst")).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x10;
    fs::write(d.join("bad.zst"), &bytes).unwrap();
    fails(
        &tool(d, &["verify", "--keyring", "a.pub", "bad.zst"]),
        4,
        "bundle is corrupt",
    );
    fs::write(d.join("junk.zst"), b"junk").unwrap();
    fails(
        &tool(d, &["info", "junk.zst"]),
        4,
        "bundle is corrupt: no zstd frame at byte 0",
    );
    fs::write(d.join("empty.zst"), b"").unwrap();
    fails(&tool(d, &["info", "empty.zst"]), 4, "bundle is truncated");
    fails(
        &tool(d, &["verify", "--keyring", "missing.pub", "b.zst"]),
        7,
        "keyring missing.pub",
    );
}

#[test]
fn create_names_bad_input() {
    let dir = workspace();
    let d = dir.path();
    ok(&tool(d, &["keygen", "--out", "k"]));
    fs::write(d.join("bad.toml"), "compatible = \"x\"\nversion = \"one\"\n[[image]]\nslot_class = \"rootfs\"\nfile = \"rootfs.img\"\n").unwrap();
    fails(
        &tool(
            d,
            &[
                "create",
                "--manifest",
                "bad.toml",
                "--key",
                "k.key",
                "--output",
                "o.zst",
            ],
        ),
        9,
        "version 'one' is not semver",
    );
    fs::write(d.join("missing.toml"), "compatible = \"x\"\nversion = \"1.0.0\"\n[[image]]\nslot_class = \"rootfs\"\nfile = \"nope.img\"\n").unwrap();
    fails(
        &tool(
            d,
            &[
                "create",
                "--manifest",
                "missing.toml",
                "--key",
                "k.key",
                "--output",
                "o.zst",
            ],
        ),
        7,
        "nope.img",
    );
    fs::write(d.join("k2.key"), "not a key").unwrap();
    fails(
        &tool(
            d,
            &[
                "create",
                "--manifest",
                "m.toml",
                "--key",
                "k2.key",
                "--output",
                "o.zst",
            ],
        ),
        9,
        "key file k2.key",
    );
    assert!(!d.join("o.zst").exists());
}

#[test]
fn keys_made_by_openssl_sign_and_verify() {
    let dir = workspace();
    let d = dir.path();
    let run = |args: &[&str]| {
        let status = Command::new("openssl")
            .current_dir(d)
            .args(args)
            .status()
            .expect("openssl is installed");
        assert!(status.success());
    };
    run(&["genpkey", "-algorithm", "ed25519", "-out", "ossl.key"]);
    run(&["pkey", "-in", "ossl.key", "-pubout", "-out", "ossl.pub"]);
    ok(&tool(
        d,
        &[
            "create",
            "--manifest",
            "m.toml",
            "--key",
            "ossl.key",
            "--output",
            "b.zst",
        ],
    ));
    ok(&tool(d, &["verify", "--keyring", "ossl.pub", "b.zst"]));
    // ...and our public key is one OpenSSL reads.
    ok(&tool(d, &["keygen", "--out", "ours"]));
    run(&["pkey", "-pubin", "-in", "ours.pub", "-noout"]);
    run(&["pkey", "-in", "ours.key", "-noout"]);
}

#[test]
fn firmware_in_the_input_manifest() {
    let dir = workspace();
    let d = dir.path();
    ok(&tool(d, &["keygen", "--out", "k"]));
    fs::write(d.join("motor.bin"), vec![7u8; 5000]).unwrap();
    let manifest = fs::read_to_string(d.join("m.toml")).unwrap()
        + "\n[[firmware]]\nname = \"motor\"\nversion = \"3.1\"\nfile = \"motor.bin\"\nprotocol = \"stm32-serial\"\nport = \"/dev/ttyS1\"\naddress = 0x08000000\n";
    fs::write(d.join("fw.toml"), manifest).unwrap();
    ok(&tool(
        d,
        &[
            "create",
            "--manifest",
            "fw.toml",
            "--key",
            "k.key",
            "--output",
            "b.zst",
        ],
    ));
    ok(&tool(d, &["verify", "--keyring", "k.pub", "b.zst"]));
    let json: serde_json::Value =
        serde_json::from_str(&ok(&tool(d, &["info", "--json", "b.zst"]))).unwrap();
    assert_eq!(json["components"][1]["kind"], "firmware");
    assert_eq!(json["components"][1]["firmware_version"], "3.1");
    assert_eq!(json["components"][1]["target"], "stm32-serial");
    let text = ok(&tool(d, &["info", "b.zst"]));
    assert!(text.contains("firmware 3.1 (stm32-serial)"), "{text}");
    // A firmware entry without its device is refused with the reason.
    let broken = fs::read_to_string(d.join("fw.toml"))
        .unwrap()
        .replace("port = \"/dev/ttyS1\"\n", "");
    fs::write(d.join("broken.toml"), broken).unwrap();
    fails(
        &tool(
            d,
            &[
                "create",
                "--manifest",
                "broken.toml",
                "--key",
                "k.key",
                "--output",
                "x.zst",
            ],
        ),
        9,
        "protocol stm32-serial needs port",
    );
}

#[test]
fn hooks_in_the_input_manifest_are_carried_signed_and_shown() {
    let dir = workspace();
    let d = dir.path();
    ok(&tool(d, &["keygen", "--out", "release"]));
    let hook = "#!/bin/sh\necho \"$1\"\n";
    fs::write(d.join("hook.sh"), hook).unwrap();
    let with_hooks = |events: &str, file: &str| {
        fs::read_to_string(d.join("m.toml")).unwrap()
            + &format!("\n[hooks]\nfile = \"{file}\"\nevents = [{events}]\n")
    };
    fs::write(
        d.join("h.toml"),
        with_hooks("\"pre-install\", \"post-install\"", "hook.sh"),
    )
    .unwrap();
    create(d, "1", "h.toml", "b.zst");
    ok(&tool(d, &["verify", "--keyring", "release.pub", "b.zst"]));
    let text = ok(&tool(d, &["info", "b.zst"]));
    assert!(
        text.contains(&format!(
            "hooks:            pre-install, post-install ({} bytes, sha256 ",
            hook.len()
        )),
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(&tool(d, &["info", "--json", "b.zst"]))).unwrap();
    assert_eq!(
        json["hooks"]["events"],
        serde_json::json!(["pre-install", "post-install"])
    );
    assert_eq!(json["hooks"]["size"], hook.len());
    // zstd and tar see the hook as the entry after the signature.
    let listing = Command::new("sh")
        .current_dir(d)
        .args(["-c", "zstd -dc b.zst | tar -t"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&listing.stdout),
        "manifest.toml\nmanifest.sig\nhooks\nrootfs.img\n"
    );
    let extracted = Command::new("sh")
        .current_dir(d)
        .args(["-c", "zstd -dc b.zst | tar -xO hooks"])
        .output()
        .unwrap();
    assert_eq!(extracted.stdout, hook.as_bytes());

    // What cannot be carried is refused, naming why.
    for (manifest, code, message) in [
        (
            with_hooks("\"post-instal\"", "hook.sh"),
            9,
            "[hooks] unknown hook event 'post-instal' (known: pre-install, slot-post-install, \
             migrate-data, post-install)",
        ),
        (with_hooks("", "hook.sh"), 9, "hooks handle no event"),
        (
            with_hooks("\"post-install\", \"post-install\"", "hook.sh"),
            9,
            "hook event 'post-install' is listed twice",
        ),
        (
            with_hooks("\"post-install\"", "empty.sh"),
            9,
            "a hook executable must be 1 to",
        ),
        (with_hooks("\"post-install\"", "nope.sh"), 7, "nope.sh"),
    ] {
        fs::write(d.join("empty.sh"), "").unwrap();
        create_fails(d, &manifest, code, message);
    }
}

#[test]
fn an_archive_in_the_input_manifest_is_carried_as_a_tar() {
    let dir = workspace();
    let d = dir.path();
    ok(&tool(d, &["keygen", "--out", "release"]));
    fs::create_dir(d.join("tree")).unwrap();
    fs::write(d.join("tree/app.conf"), "port = 80\n").unwrap();
    let tar = Command::new("tar")
        .current_dir(d)
        .args(["-cf", "app.tar", "-C", "tree", "."])
        .status()
        .unwrap();
    assert!(tar.success());
    let manifest = fs::read_to_string(d.join("m.toml")).unwrap()
        + "\n[[image]]\nslot_class = \"app\"\nfile = \"app.tar\"\nkind = \"archive\"\n";
    fs::write(d.join("a.toml"), manifest).unwrap();
    create(d, "1", "a.toml", "b.zst");
    let text = ok(&tool(d, &["info", "b.zst"]));
    assert!(text.contains("archive for slot class app"), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(&tool(d, &["info", "--json", "b.zst"]))).unwrap();
    assert_eq!(json["components"][1]["kind"], "archive");
    assert_eq!(json["components"][1]["entry"], "app.tar");
    // The archive is the tar as given, inside the bundle's own tar.
    let inner = Command::new("sh")
        .current_dir(d)
        .args([
            "-c",
            "zstd -dc b.zst | tar -xO app.tar | tar -xO ./app.conf",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&inner.stdout), "port = 80\n");
    let zip = fs::read_to_string(d.join("a.toml"))
        .unwrap()
        .replace("kind = \"archive\"", "kind = \"zip\"");
    create_fails(
        d,
        &zip,
        9,
        "unknown variant `zip`, expected `image` or `archive`",
    );
}

/// A bundle of `version` named `name`, made in `d` with release.key.
fn bundle_of(d: &Path, version: &str, name: &str) {
    let manifest = fs::read_to_string(d.join("m.toml"))
        .unwrap()
        .replace("version = \"1.0.0\"", &format!("version = \"{version}\""));
    fs::write(d.join("m-release.toml"), manifest).unwrap();
    ok(&tool(
        d,
        &[
            "create",
            "--manifest",
            "m-release.toml",
            "--key",
            "release.key",
            "--output",
            name,
        ],
    ));
}

/// `bundle-tool release` into d/www, channel stable, signed with release.key.
fn release(d: &Path, bundle: &str, extra: &[&str]) -> Output {
    let mut args = vec!["--bundle", bundle];
    args.extend_from_slice(extra);
    change_channel(d, &args)
}

/// A workspace with release.key and the bundles acme-1.0.0.zst and acme-1.1.0.zst.
fn release_workspace() -> tempfile::TempDir {
    let dir = workspace();
    let d = dir.path();
    ok(&tool(d, &["keygen", "--out", "release"]));
    bundle_of(d, "1.0.0", "acme-1.0.0.zst");
    bundle_of(d, "1.1.0", "acme-1.1.0.zst");
    dir
}

fn index_of(d: &Path) -> String {
    fs::read_to_string(d.join("www/stable.toml")).unwrap()
}

#[test]
fn release_publishes_bundles_and_rewrites_the_signed_index() {
    let dir = release_workspace();
    let d = dir.path();
    let release = |bundle: &str, extra: &[&str]| release(d, bundle, extra);

    let out = ok(&release("acme-1.0.0.zst", &[]));
    assert!(
        out.contains("serial 1") && out.contains("suggested 1.0.0"),
        "{out}"
    );
    assert_eq!(
        fs::read(d.join("www/acme-1.0.0.zst")).unwrap(),
        fs::read(d.join("acme-1.0.0.zst")).unwrap()
    );
    let index = index_of(d);
    assert!(index.contains("url = \"acme-1.0.0.zst\""), "{index}");
    assert!(
        index.contains("# -----BEGIN SIGNATURES-----\n# ed25519 "),
        "{index}"
    );

    // A 5 % rollout gets a seed made from the version; raising it keeps the seed.
    ok(&release("acme-1.1.0.zst", &["--rollout", "5"]));
    assert!(index_of(d).contains("seed = \"1.1.0\""), "{}", index_of(d));
    let out = ok(&release(
        "acme-1.1.0.zst",
        &["--rollout", "10", "--min-version", "1.0.0"],
    ));
    assert!(
        out.contains("serial 3") && out.contains("rollout 1.1.0 to 10% (seed 1.1.0)"),
        "{out}"
    );
    assert!(out.contains("minimum 1.0.0"), "{out}");
    // Promoting it to everybody ends the rollout.
    let out = ok(&release("acme-1.1.0.zst", &[]));
    assert!(
        out.contains("suggested 1.1.0") && !out.contains("rollout"),
        "{out}"
    );

    // The index is plain TOML for other tools, and its signature holds for the release key.
    let index = index_of(d);
    let body = &index[..index.find("# -----BEGIN SIGNATURES-----").unwrap()];
    let parsed: toml::Value = toml::from_str(body).unwrap();
    assert_eq!(parsed["serial"].as_integer(), Some(4));
    assert_eq!(parsed["suggested"]["version"].as_str(), Some("1.1.0"));
}

/// `bundle-tool release` into d/www, channel stable, signed with release.key, doing what `action`
/// says (--bundle B, --halt, --resume, --rollback-to V).
fn change_channel(d: &Path, action: &[&str]) -> Output {
    let mut args = vec![
        "release",
        "--key",
        "release.key",
        "--dir",
        "www",
        "--channel",
        "stable",
    ];
    args.extend_from_slice(action);
    tool(d, &args)
}

fn index_body(d: &Path) -> toml::Value {
    let index = index_of(d);
    toml::from_str(&index[..index.find("# -----BEGIN SIGNATURES-----").unwrap()]).unwrap()
}

#[test]
fn halt_resume_and_rollback_rewrite_the_signed_index() {
    let dir = release_workspace();
    let d = dir.path();
    bundle_of(d, "1.2.0", "acme-1.2.0.zst");
    ok(&release(d, "acme-1.0.0.zst", &[]));
    ok(&release(d, "acme-1.1.0.zst", &[]));
    ok(&release(d, "acme-1.2.0.zst", &["--rollout", "20"]));

    let out = ok(&change_channel(d, &["--halt"]));
    assert!(
        out.contains("serial 4") && out.contains("halted 1.2.0 at 20%"),
        "{out}"
    );
    let body = index_body(d);
    assert!(body.get("rollout").is_none(), "{body}");
    assert_eq!(body["halted"]["release"]["version"].as_str(), Some("1.2.0"));
    assert_eq!(body["halted"]["percent"].as_float(), Some(20.0));
    assert_eq!(
        body["suggested"]["security_version"].as_integer(),
        Some(2),
        "{body}"
    );
    let halted = index_of(d);
    fails(
        &change_channel(d, &["--halt"]),
        1,
        "the rollout of 1.2.0 is halted already (--resume lifts the halt)",
    );
    fails(
        &release(d, "acme-1.2.0.zst", &["--rollout", "50"]),
        1,
        "the rollout of 1.2.0 is halted; --resume lifts the halt",
    );
    assert_eq!(index_of(d), halted, "a refused change rewrote the index");

    let out = ok(&change_channel(d, &["--resume"]));
    assert!(out.contains("rollout 1.2.0 to 20% (seed 1.2.0)"), "{out}");
    fails(
        &change_channel(d, &["--resume"]),
        1,
        "the channel has no halted rollout to resume",
    );

    let out = ok(&change_channel(d, &["--rollback-to", "1.0.0"]));
    assert!(
        out.contains("serial 6")
            && out.contains("suggested 1.0.0")
            && out.contains("withdrawn 1.1.0, 1.2.0")
            && !out.contains("rollout"),
        "{out}"
    );
    let body = index_body(d);
    let withdrawn: Vec<&str> = body["withdrawn"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(withdrawn, ["1.1.0", "1.2.0"]);
    let rolled_back = index_of(d);
    fails(
        &release(d, "acme-1.1.0.zst", &[]),
        1,
        "1.1.0 was withdrawn from the channel (--rollback-to); publish the fix as a new version",
    );
    fails(
        &change_channel(d, &["--rollback-to", "0.9.0"]),
        1,
        "0.9.0 is not a release of channel 'stable' (it knows: 1.0.0, 1.2.0, 1.1.0)",
    );
    fails(
        &change_channel(d, &["--rollback-to", "1.0.0"]),
        1,
        "no release of channel 'stable' is newer than 1.0.0: there is nothing to roll back",
    );
    assert_eq!(
        index_of(d),
        rolled_back,
        "a refused change rewrote the index"
    );
    // A fix under a new version is published as usual.
    bundle_of(d, "1.2.1", "acme-1.2.1.zst");
    let out = ok(&release(d, "acme-1.2.1.zst", &[]));
    assert!(out.contains("suggested 1.2.1"), "{out}");
}

#[test]
fn halt_and_its_kin_need_a_channel_and_no_bundle_options() {
    let dir = release_workspace();
    let d = dir.path();
    fails(
        &change_channel(d, &["--halt"]),
        1,
        "www/stable.toml does not exist: the channel has no release yet",
    );
    assert!(!d.join("www/stable.toml").exists());
    let out = change_channel(d, &["--halt", "--rollout", "5"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot be used with"), "{stderr}");
    let out = change_channel(d, &["--halt", "--resume"]);
    assert_eq!(out.status.code(), Some(2));
    let out = change_channel(d, &[]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn release_refuses_what_would_mislead_devices() {
    let dir = release_workspace();
    let d = dir.path();
    let release = |bundle: &str, extra: &[&str]| release(d, bundle, extra);
    ok(&release("acme-1.1.0.zst", &[]));
    let before = index_of(d);
    fails(
        &release("acme-1.0.0.zst", &[]),
        1,
        "version 1.0.0 is older than the channel's suggested 1.1.0",
    );
    fails(
        &release("acme-1.1.0.zst", &["--rollout", "5"]),
        1,
        "a rollout must be newer",
    );
    fails(
        &release("acme-1.1.0.zst", &["--rollout", "150"]),
        1,
        "at most 100",
    );
    fails(
        &release("acme-1.1.0.zst", &["--min-version", "2.0.0"]),
        1,
        "--min-version 2.0.0 is above every release",
    );
    // Another file under a published name is never swapped in.
    fs::create_dir_all(d.join("other")).unwrap();
    fs::copy(d.join("acme-1.0.0.zst"), d.join("other/acme-1.1.0.zst")).unwrap();
    fails(
        &release("other/acme-1.1.0.zst", &[]),
        1,
        "is already published with other content",
    );
    let mut corrupt = fs::read(d.join("acme-1.1.0.zst")).unwrap();
    let at = corrupt.len() / 2;
    corrupt[at] ^= 0xff;
    fs::write(d.join("acme-1.2.0.zst"), corrupt).unwrap();
    fails(&release("acme-1.2.0.zst", &[]), 4, "bundle is corrupt");
    assert_eq!(index_of(d), before, "a refused release changed the index");
    assert!(!d.join("www/acme-1.2.0.zst").exists());
}

#[test]
fn a_release_waits_for_another_one_into_the_same_folder() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    use nix::fcntl::{Flock, FlockArg};

    let dir = release_workspace();
    let d = dir.path();
    fs::create_dir(d.join("www")).unwrap();
    let lock = fs::File::create(d.join("www/.release.lock")).unwrap();
    let held = Flock::lock(lock, FlockArg::LockExclusive).unwrap();

    let mut waiting = Command::new(env!("CARGO_BIN_EXE_bundle-tool"))
        .current_dir(d)
        .args(["release", "--key", "release.key", "--dir", "www"])
        .args(["--channel", "stable", "--bundle", "acme-1.0.0.zst"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first_line = String::new();
    BufReader::new(waiting.stderr.as_mut().unwrap())
        .read_line(&mut first_line)
        .unwrap();
    assert!(
        first_line.starts_with("waiting for another bundle-tool release in www"),
        "{first_line}"
    );
    assert!(
        !d.join("www/stable.toml").exists(),
        "wrote while locked out"
    );

    drop(held);
    assert!(waiting.wait().unwrap().success());
    assert!(
        index_of(d).contains("version = \"1.0.0\""),
        "{}",
        index_of(d)
    );
}

#[test]
fn defect_12_release_refuses_a_bundle_the_devices_would_refuse() {
    let dir = release_workspace();
    let d = dir.path();
    // The index key is not the key that signed the bundles.
    ok(&tool(d, &["keygen", "--out", "index"]));
    let args = [
        "release",
        "--key",
        "index.key",
        "--dir",
        "www",
        "--channel",
        "stable",
        "--bundle",
        "acme-1.1.0.zst",
    ];
    let out = tool(d, &args);
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("devices would refuse this bundle"),
        "{stderr}"
    );
    assert!(!d.join("www/stable.toml").exists(), "an index was written");
    assert!(
        !d.join("www/acme-1.1.0.zst").exists(),
        "the bundle was published"
    );
    // With the devices' keyring, which trusts the bundle's key, it goes out.
    let mut with_keyring = args.to_vec();
    with_keyring.extend(["--keyring", "release.pub"]);
    ok(&tool(d, &with_keyring));
    assert!(d.join("www/stable.toml").exists());
    // And a keyring that does not trust it refuses it.
    let mut wrong = args.to_vec();
    wrong.extend(["--keyring", "index.pub", "--rollout", "10"]);
    let out = tool(d, &wrong);
    assert!(!out.status.success());
}

#[test]
fn a_missing_input_is_said_once() {
    let dir = workspace();
    let d = dir.path();
    let out = tool(
        d,
        &[
            "create",
            "--manifest",
            "nope.toml",
            "--key",
            "k.key",
            "--output",
            "x.zst",
        ],
    );
    fails(&out, 7, "reading nope.toml: No such file or directory");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("No such file").count(), 1, "{stderr}");
    assert!(!d.join("x.zst").exists());
}

#[test]
fn delta_from_two_bundles_names_its_base_and_verifies() {
    let dir = workspace();
    let d = dir.path();
    ok(&tool(d, &["keygen", "--out", "release"]));
    let create = |manifest: &str, output: &str| create(d, "2", manifest, output);
    create("m.toml", "v1.zst");
    // v2: the same image with one stretch rewritten and the rest moved on by 3 blocks.
    let mut image = fs::read(d.join("rootfs.img")).unwrap();
    image[100_000..110_000].fill(b'#');
    image.splice(0..0, vec![b'!'; 3 * 4096]);
    fs::write(d.join("rootfs2.img"), &image).unwrap();
    let m2 = fs::read_to_string(d.join("m.toml"))
        .unwrap()
        .replace("1.0.0", "1.1.0")
        .replace("rootfs.img", "rootfs2.img");
    fs::write(d.join("m2.toml"), m2).unwrap();
    create("m2.toml", "v2.zst");

    let made = ok(&tool(
        d,
        &[
            "delta",
            "--from",
            "v1.zst",
            "--to",
            "v2.zst",
            "--key",
            "release.key",
            "--keyring",
            "release.pub",
            "--output",
            "d.zst",
        ],
    ));
    assert!(made.contains("delta from 1.0.0 to 1.1.0"), "{made}");
    let full = fs::metadata(d.join("v2.zst")).unwrap().len();
    let delta = fs::metadata(d.join("d.zst")).unwrap().len();
    assert!(delta * 4 < full, "delta {delta}, full {full}");
    ok(&tool(d, &["verify", "--keyring", "release.pub", "d.zst"]));
    let info = ok(&tool(d, &["info", "d.zst"]));
    assert!(info.contains("delta from base sha256"), "{info}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(&tool(d, &["info", "--json", "d.zst"]))).unwrap();
    let v1: serde_json::Value =
        serde_json::from_str(&ok(&tool(d, &["info", "--json", "v1.zst"]))).unwrap();
    assert_eq!(
        json["components"][0]["base"]["sha256"],
        v1["components"][0]["sha256"]
    );
    // No work folder is left behind next to the output.
    let names: Vec<_> = fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(names.is_empty(), "{names:?}");

    // A delta of a delta, or from a bundle signed by another key, is refused.
    fails(
        &tool(
            d,
            &[
                "delta",
                "--from",
                "d.zst",
                "--to",
                "v2.zst",
                "--key",
                "release.key",
                "--output",
                "dd.zst",
            ],
        ),
        9,
        "a delta is made from two full bundles",
    );
    ok(&tool(d, &["keygen", "--out", "other"]));
    fails(
        &tool(
            d,
            &[
                "delta",
                "--from",
                "v1.zst",
                "--to",
                "v2.zst",
                "--key",
                "release.key",
                "--keyring",
                "other.pub",
                "--output",
                "dx.zst",
            ],
        ),
        5,
        "signature",
    );
    assert!(!d.join("dd.zst").exists() && !d.join("dx.zst").exists());
}

#[test]
fn release_lists_a_format_2_bundle_and_deltas_beside_the_full_bundle() {
    let dir = release_workspace();
    let d = dir.path();
    let create2 = |version: &str, output: &str| {
        let manifest = fs::read_to_string(d.join("m.toml"))
            .unwrap()
            .replace("version = \"1.0.0\"", &format!("version = \"{version}\""));
        fs::write(d.join("m2.toml"), manifest).unwrap();
        ok(&tool(
            d,
            &[
                "create",
                "--format",
                "2",
                "--manifest",
                "m2.toml",
                "--key",
                "release.key",
                "--output",
                output,
            ],
        ));
    };
    create2("1.0.0", "f2-1.0.0.zst");
    create2("1.1.0", "f2-1.1.0.zst");
    ok(&tool(
        d,
        &[
            "delta",
            "--from",
            "f2-1.0.0.zst",
            "--to",
            "f2-1.1.0.zst",
            "--key",
            "release.key",
            "--output",
            "d-1.0.0-1.1.0.zst",
        ],
    ));
    // The wrong kind of bundle in each place, or another version, is refused.
    let refused = [
        (vec!["--delta", "f2-1.1.0.zst"], "not a delta bundle"),
        (
            vec!["--adaptive", "acme-1.1.0.zst"],
            "a full bundle of format 2 is needed",
        ),
        (vec!["--adaptive", "f2-1.0.0.zst"], "is version 1.0.0"),
    ];
    for (extra, message) in refused {
        fails(&release(d, "acme-1.1.0.zst", &extra), 1, message);
        assert!(!d.join("www/stable.toml").exists());
    }
    ok(&release(
        d,
        "acme-1.1.0.zst",
        &["--adaptive", "f2-1.1.0.zst", "--delta", "d-1.0.0-1.1.0.zst"],
    ));
    let index: toml::Value = toml::from_str(&index_of(d)).unwrap();
    let suggested = &index["suggested"];
    assert_eq!(suggested["url"].as_str(), Some("acme-1.1.0.zst"));
    assert_eq!(suggested["adaptive"]["url"].as_str(), Some("f2-1.1.0.zst"));
    let delta = &suggested["delta"][0];
    assert_eq!(delta["url"].as_str(), Some("d-1.0.0-1.1.0.zst"));
    let base: serde_json::Value =
        serde_json::from_str(&ok(&tool(d, &["info", "--json", "f2-1.0.0.zst"]))).unwrap();
    assert_eq!(
        delta["base"]["rootfs"]["sha256"].as_str(),
        base["components"][0]["sha256"].as_str()
    );
    for name in ["acme-1.1.0.zst", "f2-1.1.0.zst", "d-1.0.0-1.1.0.zst"] {
        assert_eq!(
            fs::read(d.join("www").join(name)).unwrap(),
            fs::read(d.join(name)).unwrap()
        );
    }
}

#[test]
fn delta_refuses_bundles_it_cannot_make_a_delta_of() {
    let dir = workspace();
    let d = dir.path();
    ok(&tool(d, &["keygen", "--out", "release"]));
    let create = |manifest: &str, output: &str| create(d, "1", manifest, output);
    create("m.toml", "v1.zst");
    let other = fs::read_to_string(d.join("m.toml")).unwrap();
    fs::write(
        d.join("other.toml"),
        other.replace("acme-robot", "acme-drone"),
    )
    .unwrap();
    create("other.toml", "drone.zst");
    fs::write(
        d.join("app.toml"),
        other.replace("slot_class = \"rootfs\"", "slot_class = \"app\""),
    )
    .unwrap();
    create("app.toml", "app.zst");
    let delta = |from: &str, to: &str| {
        tool(
            d,
            &[
                "delta",
                "--from",
                from,
                "--to",
                to,
                "--key",
                "release.key",
                "--output",
                "d.zst",
            ],
        )
    };
    fails(
        &delta("v1.zst", "drone.zst"),
        9,
        "the bundles are for different devices",
    );
    fails(&delta("v1.zst", "app.zst"), 9, "nothing to make a delta of");
    fails(&delta("v1.zst", "missing.zst"), 7, "missing.zst");
    assert!(!d.join("d.zst").exists());
}

//! `bundle-tool`: makes signing keys, creates signed bundles, verifies and describes them.
use std::fs::{self, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, ensure, Context};
use bundle::{
    create_bundle, BundleError, BundleInput, BundleReader, ComponentKind, CreateOptions, Hooks,
    Keyring, Manifest, SigningKey,
};
use clap::{ArgGroup, Parser, Subcommand};
use cli_support::exit;

mod release;

#[derive(Parser)]
#[command(version, about = "Create, sign, verify and inspect update bundles")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Make an Ed25519 signing key: PREFIX.key (PKCS#8, mode 0600) and PREFIX.pub.
    Keygen {
        /// Where to write: PREFIX.key and PREFIX.pub.
        #[arg(long, value_name = "PREFIX")]
        out: PathBuf,
        /// Replace existing key files.
        #[arg(long)]
        force: bool,
    },
    /// Create a signed bundle from an input manifest.
    Create {
        /// The input manifest: compatible, version, and the images and firmware to carry.
        #[arg(long, value_name = "M.toml")]
        manifest: PathBuf,
        /// Signing key; give it more than once to sign with several keys (key rotation).
        #[arg(long, value_name = "K.key", required = true)]
        key: Vec<PathBuf>,
        /// The bundle to write; it appears under this name only when complete.
        #[arg(long, value_name = "B.zst")]
        output: PathBuf,
        /// zstd compression level [default: 3 for format 1, whose 4 MiB frames are then as small
        /// as zstd -3 of the whole image; 6 for format 2's 64 KiB frames] (docs/performance.md).
        #[arg(long)]
        level: Option<i32>,
        /// Bundle format: 1, or 2 with a block index and 64 KiB chunks, so that a device
        /// installing from a URL downloads only the content it does not hold already
        /// (docs/bundle-format.md; updaters before format 2 cannot read it).
        #[arg(long, default_value_t = bundle::FORMAT_VERSION,
              value_parser = clap::value_parser!(u32).range(1..=2))]
        format: u32,
        /// Compression threads (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Make a delta bundle: only what NEW needs beyond OLD (blocks of OLD's images are copied
    /// on the device, wherever they are); installs on a device that holds OLD's images.
    Delta {
        /// The bundle the device holds (its images are the base).
        #[arg(long, value_name = "OLD.zst")]
        from: PathBuf,
        /// The bundle to update to.
        #[arg(long, value_name = "NEW.zst")]
        to: PathBuf,
        /// Signing key; give it more than once to sign with several keys.
        #[arg(long, value_name = "K.key", required = true)]
        key: Vec<PathBuf>,
        /// The delta bundle to write; it appears under this name only when complete.
        #[arg(long, value_name = "D.zst")]
        output: PathBuf,
        /// Check OLD's and NEW's signatures against this keyring (a .pub file or a folder).
        #[arg(long, value_name = "PATH")]
        keyring: Option<PathBuf>,
        /// zstd compression level of the new blocks.
        #[arg(long, default_value_t = bundle::BLOCK_INDEXED_LEVEL)]
        level: i32,
        /// Compression threads (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Check the signature and every chunk; exit 0 only if all verify.
    Verify {
        /// A .pub file or a folder of them.
        #[arg(long, value_name = "PATH")]
        keyring: PathBuf,
        /// The bundle to check.
        bundle: PathBuf,
    },
    /// Publish a bundle into DIR and rewrite the channel's signed release index there; or halt,
    /// resume or roll back the channel's releases.
    #[command(group(ArgGroup::new("action").required(true).args(["bundle", "halt", "resume", "rollback_to"])))]
    Release {
        /// Key that signs the index; give it more than once to sign with several keys.
        #[arg(long, value_name = "K.key", required = true)]
        key: Vec<PathBuf>,
        /// The folder a web server serves; the bundle is copied here.
        #[arg(long)]
        dir: PathBuf,
        /// The channel whose index (CHANNEL.toml) is rewritten, e.g. stable.
        #[arg(long)]
        channel: String,
        /// The bundle to publish: the release's full bundle, which every updater can install
        /// (format 1 while devices with older updaters remain).
        #[arg(long, value_name = "B.zst")]
        bundle: Option<PathBuf>,
        /// Stop the channel's newest release (its rollout, else the suggested release) where it
        /// stands: devices that run it keep it, no other device starts it.
        #[arg(long)]
        halt: bool,
        /// Lift a halt: the release rolls out again from where it stopped.
        #[arg(long)]
        resume: bool,
        /// Return the channel to VERSION, a release it published before: every newer release is
        /// withdrawn, and devices running one go back to VERSION (never below their security floor).
        #[arg(long, value_name = "VERSION")]
        rollback_to: Option<semver::Version>,
        /// The same release as a format-2 bundle (create --format 2): updaters that can fetch
        /// only what their device lacks take this one.
        #[arg(long, value_name = "A.zst", conflicts_with_all = CHANNEL_CHANGES)]
        adaptive: Option<PathBuf>,
        /// A delta bundle to the release (bundle-tool delta); repeat for several bases. A device
        /// that holds a delta's base in its booted group downloads the delta.
        #[arg(long, value_name = "D.zst", conflicts_with_all = CHANNEL_CHANGES)]
        delta: Vec<PathBuf>,
        /// The keys the devices trust (a .pub file or a folder of them): a bundle that does not
        /// verify against them is refused. Default: the public halves of the --key keys.
        #[arg(long, value_name = "PATH", conflicts_with_all = CHANNEL_CHANGES)]
        keyring: Option<PathBuf>,
        /// Devices below this version update regardless of the rollout.
        #[arg(long, value_name = "V", conflicts_with_all = CHANNEL_CHANGES)]
        min_version: Option<semver::Version>,
        /// Offer the bundle to this share of the devices only (else: to every device).
        #[arg(long, value_name = "PERCENT", conflicts_with_all = CHANNEL_CHANGES)]
        rollout: Option<f64>,
        /// Which devices go first; default: the existing rollout's, or one made from the version.
        #[arg(long, requires = "rollout")]
        seed: Option<String>,
    },
    /// Show the manifest (the signature is not checked; use verify).
    Info {
        /// The bundle to describe.
        bundle: PathBuf,
        /// Print the manifest's facts as JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// The release actions that change the channel without a bundle: a bundle's options go with none.
const CHANNEL_CHANGES: [&str; 3] = ["halt", "resume", "rollback_to"];

fn main() -> ExitCode {
    cli_support::init_logging("BUNDLE_TOOL_LOG");
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bundle-tool: error: {}", one_line(&err));
            let code = err
                .chain()
                .find_map(|e| e.downcast_ref::<BundleError>())
                .map_or(exit::OTHER, |e| exit::of(e.class()));
            ExitCode::from(code)
        }
    }
}

/// The error and its causes in one line, each said once: a library error that already names its
/// cause (`reading m.toml: No such file`) is not followed by that cause again.
fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Keygen { out, force } => keygen(&out, force),
        Command::Create {
            manifest,
            key,
            output,
            level,
            format,
            threads,
        } => {
            let mut options = CreateOptions::for_format(format);
            if let Some(level) = level {
                options.level = level;
            }
            if let Some(threads) = threads {
                options.threads = threads;
            }
            create(&manifest, &key, &output, &options)
        }
        Command::Delta {
            from,
            to,
            key,
            output,
            keyring,
            level,
            threads,
        } => {
            let started = Instant::now();
            let keys = load_keys(&key)?;
            let key_refs: Vec<&SigningKey> = keys.iter().collect();
            let (old, new, size) = bundle::delta::create(&bundle::delta::DeltaRequest {
                from: &from,
                to: &to,
                keyring: keyring.as_deref(),
                keys: &key_refs,
                output: &output,
                level,
                threads,
            })
            .with_context(|| format!("creating {}", output.display()))?;
            println!(
                "created {}: delta from {} to {}, {} bytes in {:.2} s",
                output.display(),
                old.version,
                new.version,
                size,
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::Verify { keyring, bundle } => verify(&keyring, &bundle),
        Command::Info { bundle, json } => info(&bundle, json),
        Command::Release {
            key,
            dir,
            channel,
            bundle,
            halt,
            resume,
            rollback_to,
            adaptive,
            delta,
            keyring,
            min_version,
            rollout,
            seed,
        } => {
            let action = match (bundle.as_deref(), rollback_to) {
                (Some(bundle), _) => release::Action::Publish(release::Publish {
                    keyring: keyring.as_deref(),
                    bundle,
                    adaptive: adaptive.as_deref(),
                    deltas: &delta,
                    min_version,
                    rollout,
                    seed,
                }),
                (None, Some(version)) => release::Action::RollbackTo(version),
                (None, None) if halt => release::Action::Halt,
                (None, None) => {
                    ensure!(resume, "give --bundle, --halt, --resume or --rollback-to");
                    release::Action::Resume
                }
            };
            release::release(&release::Request {
                keys: &key,
                dir: &dir,
                channel: &channel,
                action,
            })
        }
    }
}

fn keygen(prefix: &Path, force: bool) -> anyhow::Result<()> {
    let key_path = with_suffix(prefix, "key");
    let pub_path = with_suffix(prefix, "pub");
    if !force {
        for path in [&key_path, &pub_path] {
            if path.exists() {
                bail!("{} exists; pass --force to replace it", path.display());
            }
        }
    }
    let (key, pem) = SigningKey::generate()?;
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&key_path)
        .with_context(|| format!("creating {}", key_path.display()))?;
    file.write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", key_path.display()))?;
    fs::write(&pub_path, key.public_key().to_pem())
        .with_context(|| format!("writing {}", pub_path.display()))?;
    println!(
        "key {}: private {}, public {}",
        key.public_key().id(),
        key_path.display(),
        pub_path.display()
    );
    Ok(())
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut name = prefix.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

fn load_keys(paths: &[PathBuf]) -> anyhow::Result<Vec<SigningKey>> {
    Ok(paths
        .iter()
        .map(|k| SigningKey::load(k))
        .collect::<Result<Vec<_>, _>>()?)
}

fn create(
    manifest: &Path,
    keys: &[PathBuf],
    output: &Path,
    options: &CreateOptions,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let input = BundleInput::load(manifest)?;
    let keys = load_keys(keys)?;
    let key_refs: Vec<&SigningKey> = keys.iter().collect();
    let report = create_bundle(&input, &key_refs, output, options)
        .with_context(|| format!("creating {}", output.display()))?;
    let image_bytes: u64 = report.manifest.components.iter().map(|c| c.size).sum();
    println!(
        "created {}: version {}, {} component(s), {} -> {} bytes in {:.2} s, signed by {}",
        output.display(),
        report.manifest.version,
        report.manifest.components.len(),
        image_bytes,
        report.bundle_size,
        started.elapsed().as_secs_f64(),
        report
            .signers
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

fn open_bundle(path: &Path) -> anyhow::Result<Box<dyn Read>> {
    if path == Path::new("-") {
        return Ok(Box::new(BufReader::with_capacity(256 << 10, io::stdin())));
    }
    let file =
        fs::File::open(path).with_context(|| format!("opening bundle {}", path.display()))?;
    Ok(Box::new(BufReader::with_capacity(256 << 10, file)))
}

fn verify(keyring: &Path, path: &Path) -> anyhow::Result<()> {
    let keyring = Keyring::load(keyring)?;
    let reader = BundleReader::open(open_bundle(path)?, &keyring)?;
    let manifest = reader.manifest().clone();
    let signer = reader.signer().expect("opened with a keyring");
    check_every_chunk(reader)?;
    println!(
        "{}: OK (version {}, signed by key {}, {} component(s))",
        path.display(),
        manifest.version,
        signer,
        manifest.components.len()
    );
    Ok(())
}

/// Reads the rest of the bundle: every chunk against the manifest, every image whole, the end.
fn check_every_chunk<R: Read>(reader: BundleReader<R>) -> anyhow::Result<()> {
    Ok(reader.read_all(|_, _| Ok(()))?)
}

fn info(path: &Path, json: bool) -> anyhow::Result<()> {
    let reader = BundleReader::open_unverified(open_bundle(path)?)?;
    let m = reader.manifest();
    if json {
        println!("{}", serde_json::to_string_pretty(&manifest_json(m))?);
        return Ok(());
    }
    let note = if m.is_delta() {
        " (delta: installs on a device that holds its base)"
    } else if m.has_block_index() {
        " (block index: installs from a URL fetch only what the device lacks)"
    } else {
        ""
    };
    println!("format:           {}{note}", m.format);
    println!("compatible:       {}", m.compatible);
    println!("version:          {}", m.version);
    println!("security version: {}", m.security_version);
    println!("chunk size:       {} bytes", m.chunk_size);
    println!("signature:        not checked here (bundle-tool verify checks it)");
    if let Some(h) = &m.hooks {
        println!(
            "hooks:            {} ({} bytes, sha256 {})",
            hook_events(h).join(", "),
            h.size,
            hex_string(&h.sha256)
        );
    }
    println!("components:");
    for c in &m.components {
        let role = match (&c.slot_class, &c.target) {
            (Some(class), _) if c.kind == ComponentKind::Archive => {
                format!("archive for slot class {class}")
            }
            (Some(class), _) => format!("image for slot class {class}"),
            (None, Some(t)) => format!(
                "firmware {} ({})",
                c.firmware_version.as_deref().unwrap_or("?"),
                t.protocol()
            ),
            (None, None) => "?".to_string(),
        };
        println!(
            "  {:<10} {:<30} {:>12} bytes  {} chunks  sha256 {}",
            c.name,
            role,
            c.size,
            c.chunks.len(),
            hex_string(&c.sha256)
        );
        if let Some(d) = &c.delta {
            println!(
                "             delta from base sha256 {} ({} bytes); carries {} new bytes",
                hex_string(&d.base_sha256),
                d.base_size,
                d.data_size
            );
        }
    }
    Ok(())
}

fn manifest_json(m: &Manifest) -> serde_json::Value {
    let components: Vec<_> = m
        .components
        .iter()
        .map(|c| {
            serde_json::json!({
                "name": c.name,
                "kind": match c.kind {
                    ComponentKind::Image => "image",
                    ComponentKind::Firmware => "firmware",
                    ComponentKind::Archive => "archive",
                },
                "slot_class": c.slot_class,
                "firmware_version": c.firmware_version,
                "target": c.target.as_ref().map(|t| t.protocol()),
                "entry": c.entry,
                "size": c.size,
                "sha256": hex_string(&c.sha256),
                "chunks": c.chunks.len(),
                "blocks": c.blocks.as_ref().map(Vec::len),
                "base": c.delta.as_ref().map(|d| serde_json::json!({
                    "sha256": hex_string(&d.base_sha256),
                    "size": d.base_size,
                    "new_bytes": d.data_size,
                })),
            })
        })
        .collect();
    serde_json::json!({
        "format": m.format,
        "compatible": m.compatible,
        "version": m.version.to_string(),
        "security_version": m.security_version,
        "chunk_size": m.chunk_size,
        "hooks": m.hooks.as_ref().map(|h| serde_json::json!({
            "events": hook_events(h),
            "size": h.size,
            "sha256": hex_string(&h.sha256),
        })),
        "components": components,
    })
}

fn hook_events(hooks: &Hooks) -> Vec<&'static str> {
    hooks.events.iter().map(|e| e.name()).collect()
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

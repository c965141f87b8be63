//! `bundle-tool release`: publishes a bundle into a folder that any static web server serves, and
//! rewrites the channel's signed index there (docs/fleet.md).
use std::fs::{self, File};
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{ensure, Context};
use bundle::release::{
    valid_seed, BaseImage, ChannelError, DeltaArtifact, Release, ReleaseIndex, Rollout,
};
use bundle::{BundleReader, Keyring, SigningKey};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

pub struct Request<'a> {
    pub keys: &'a [PathBuf],
    pub dir: &'a Path,
    pub channel: &'a str,
    pub action: Action<'a>,
}

/// What a release run does to the channel.
pub enum Action<'a> {
    /// Publish a bundle (and its other forms) as the suggested release or as a rollout.
    Publish(Publish<'a>),
    /// Stop the current rollout where it stands.
    Halt,
    /// Lift the halt.
    Resume,
    /// Return the channel to an earlier release and withdraw every newer one.
    RollbackTo(semver::Version),
}

pub struct Publish<'a> {
    /// What the devices trust; None: the public halves of the signing keys.
    pub keyring: Option<&'a Path>,
    pub bundle: &'a Path,
    /// The same release as a format-2 bundle, fetched in parts by devices that can.
    pub adaptive: Option<&'a Path>,
    /// Delta bundles to the release.
    pub deltas: &'a [PathBuf],
    pub min_version: Option<semver::Version>,
    pub rollout: Option<f64>,
    pub seed: Option<String>,
}

pub fn index_path(dir: &Path, channel: &str) -> PathBuf {
    dir.join(format!("{channel}.toml"))
}

pub fn release(request: &Request) -> anyhow::Result<()> {
    ensure!(
        valid_seed(request.channel),
        "channel '{}' must be letters, digits, '.', '_' or '-'",
        request.channel
    );
    let keys = request
        .keys
        .iter()
        .map(|k| SigningKey::load(k))
        .collect::<Result<Vec<_>, _>>()?;
    let index_path = index_path(request.dir, request.channel);
    let index = match &request.action {
        Action::Publish(publish) => publish_bundle(request, publish, &keys, &index_path)?,
        Action::Halt => rewrite(request.dir, &keys, &index_path, ReleaseIndex::halt)?,
        Action::Resume => rewrite(request.dir, &keys, &index_path, ReleaseIndex::resume)?,
        Action::RollbackTo(version) => rewrite(request.dir, &keys, &index_path, |index| {
            if index.rollback_to(version)? {
                eprintln!("bundle-tool: note: the channel's minimum version is lowered to {version}, the release it returns to");
            }
            Ok(())
        })?,
    };
    println!("{}", describe(&index, &index_path));
    Ok(())
}

fn publish_bundle(
    request: &Request,
    publish: &Publish,
    keys: &[SigningKey],
    index_path: &Path,
) -> anyhow::Result<ReleaseIndex> {
    let keyring = match publish.keyring {
        Some(path) => Keyring::load(path)?,
        None => Keyring::from_keys(
            keys.iter().map(SigningKey::public_key).collect(),
            Path::new("the --key keys"),
        )?,
    };
    let main = Artifact::read(publish.bundle, &keyring)?;
    let manifest = main.manifest.clone();
    let adaptive = publish
        .adaptive
        .map(|path| Artifact::read(path, &keyring))
        .transpose()?;
    let deltas = publish
        .deltas
        .iter()
        .map(|path| Artifact::read(path, &keyring))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for other in adaptive.iter().chain(&deltas) {
        ensure!(
            other.manifest.version == manifest.version
                && other.manifest.compatible == manifest.compatible,
            "{} is version {} for '{}', not the release's {} for '{}'",
            other.path.display(),
            other.manifest.version,
            other.manifest.compatible,
            manifest.version,
            manifest.compatible
        );
    }
    if let Some(adaptive) = &adaptive {
        ensure!(
            adaptive.manifest.fetchable_in_parts(),
            "--adaptive {}: a full bundle of format 2 is needed (bundle-tool create --format 2)",
            adaptive.path.display()
        );
    }
    for delta in &deltas {
        ensure!(
            delta.manifest.is_delta(),
            "--delta {}: not a delta bundle (bundle-tool delta makes one)",
            delta.path.display()
        );
    }
    ensure!(
        !manifest.is_delta(),
        "--bundle {}: a delta cannot be a release's full bundle; give it with --delta",
        publish.bundle.display()
    );
    fs::create_dir_all(request.dir)
        .with_context(|| format!("creating {}", request.dir.display()))?;
    // Held until the index is written, so that two releases into one folder (parallel CI jobs)
    // never lose each other's changes.
    let _lock = lock_folder(request.dir)?;
    let mut index = read_index(index_path)?
        .unwrap_or_else(|| ReleaseIndex::new(request.channel, &manifest.compatible));
    ensure!(
        index.compatible == manifest.compatible,
        "channel '{}' is for '{}', the bundle for '{}'",
        request.channel,
        index.compatible,
        manifest.compatible
    );

    let mut already = Vec::new();
    for artifact in std::iter::once(&main).chain(&adaptive).chain(&deltas) {
        already.push(check_not_replacing(
            artifact.path,
            &request.dir.join(&artifact.name),
            &artifact.manifest_sha256,
        )?);
    }
    let release = Release {
        version: manifest.version.clone(),
        url: main.name.clone(),
        size: main.size,
        manifest_sha256: main.manifest_sha256,
        security_version: manifest.security_version,
        adaptive: adaptive.as_ref().map(Artifact::entry),
        deltas: deltas
            .iter()
            .map(|d| DeltaArtifact {
                base: d
                    .manifest
                    .components
                    .iter()
                    .filter_map(|c| {
                        let base = c.delta.as_ref()?;
                        let image = BaseImage {
                            sha256: base.base_sha256,
                            size: base.base_size,
                        };
                        Some((c.slot_class.clone()?, image))
                    })
                    .collect(),
                ..Artifact::delta_entry(d)
            })
            .collect(),
    };
    update_index(&mut index, release, publish)?;
    for (artifact, published) in std::iter::once(&main)
        .chain(&adaptive)
        .chain(&deltas)
        .zip(already)
    {
        if !published {
            copy_durably(artifact.path, &request.dir.join(&artifact.name))?;
        }
    }
    sign_and_write(&mut index, keys, index_path)?;
    Ok(index)
}

/// The channel's index as it is in the folder, if there is one (its signature is not checked:
/// the folder is the publisher's own).
fn read_index(index_path: &Path) -> anyhow::Result<Option<ReleaseIndex>> {
    match fs::read(index_path) {
        Ok(bytes) => ReleaseIndex::parse_unverified(&bytes)
            .map(Some)
            .with_context(|| format!("reading {}", index_path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", index_path.display())),
    }
}

/// Changes the channel's existing index under the folder's lock, and signs it anew.
fn rewrite(
    dir: &Path,
    keys: &[SigningKey],
    index_path: &Path,
    change: impl FnOnce(&mut ReleaseIndex) -> Result<(), ChannelError>,
) -> anyhow::Result<ReleaseIndex> {
    let missing = || {
        format!(
            "{} does not exist: the channel has no release yet",
            index_path.display()
        )
    };
    ensure!(dir.is_dir(), missing());
    let _lock = lock_folder(dir)?;
    let mut index = read_index(index_path)?.with_context(missing)?;
    change(&mut index)?;
    index.validate().map_err(anyhow::Error::msg)?;
    sign_and_write(&mut index, keys, index_path)?;
    Ok(index)
}

/// A higher serial, the time, the signatures; then the file replaces the old one atomically.
fn sign_and_write(
    index: &mut ReleaseIndex,
    keys: &[SigningKey],
    index_path: &Path,
) -> anyhow::Result<()> {
    index.serial += 1;
    index.published = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let key_refs: Vec<&SigningKey> = keys.iter().collect();
    write_atomically(index_path, &index.to_signed(&key_refs))
}

/// The index after publishing `release`: as a rollout when a percentage is given, else as the
/// suggested version for everybody.
fn update_index(
    index: &mut ReleaseIndex,
    release: Release,
    request: &Publish,
) -> anyhow::Result<()> {
    let version = release.version.clone();
    ensure!(
        !index.is_withdrawn(&version),
        "{version} was withdrawn from the channel (--rollback-to); publish the fix as a new version"
    );
    if let Some(halted) = &index.halted {
        ensure!(
            version != halted.release.version,
            "the rollout of {version} is halted; --resume lifts the halt"
        );
    }
    if let Some(suggested) = &index.suggested {
        ensure!(
            version >= suggested.version,
            "version {version} is older than the channel's suggested {}",
            suggested.version
        );
    }
    match request.rollout {
        Some(percent) => {
            ensure!(
                percent.is_finite() && percent > 0.0 && percent <= 100.0,
                "--rollout {percent}: give a percentage above 0 and at most 100"
            );
            if let Some(suggested) = &index.suggested {
                ensure!(
                    version > suggested.version,
                    "version {version} is already the suggested one; a rollout must be newer"
                );
            }
            let previous = index
                .rollout
                .as_ref()
                .filter(|r| r.release.version == version);
            let seed = match (&request.seed, previous) {
                (Some(seed), _) => seed.clone(),
                (None, Some(previous)) => previous.seed.clone(),
                (None, None) => seed_for(&version),
            };
            ensure!(
                valid_seed(&seed),
                "--seed '{seed}' must be 1 to 128 letters, digits, '.', '_' or '-'"
            );
            if let Some(previous) = previous {
                if previous.seed == seed && percent < previous.percent {
                    eprintln!(
                        "bundle-tool: note: lowering the rollout from {}% to {percent}% stops new devices taking it; devices that installed it keep it",
                        previous.percent
                    );
                }
            }
            let replaced = index.rollout.replace(Rollout {
                seed,
                percent,
                release,
            });
            if let Some(replaced) = replaced.filter(|r| r.release.version != version) {
                index.retire(replaced.release);
            }
        }
        None => {
            ensure!(request.seed.is_none(), "--seed belongs to --rollout");
            if let Some(replaced) = index.suggested.replace(release) {
                if replaced.version != version {
                    index.retire(replaced);
                }
            }
            if index
                .rollout
                .as_ref()
                .is_some_and(|r| r.release.version <= version)
            {
                let ended = index.rollout.take().map(|r| r.release);
                if let Some(older) = ended.filter(|r| r.version != version) {
                    index.retire(older);
                }
            }
        }
    }
    // A newer release supersedes a halted one.
    if index
        .halted
        .as_ref()
        .is_some_and(|h| h.release.version < version)
    {
        if let Some(halted) = index.halted.take() {
            index.retire(halted.release);
        }
    }
    if let Some(min) = &request.min_version {
        let newest = index
            .rollout
            .as_ref()
            .map(|r| &r.release)
            .into_iter()
            .chain(index.suggested.as_ref())
            .map(|r| &r.version)
            .max();
        ensure!(
            newest.is_some_and(|newest| min <= newest),
            "--min-version {min} is above every release of the channel"
        );
        index.min_version = Some(min.clone());
    }
    index.validate().map_err(anyhow::Error::msg)
}

/// A version-derived seed: stable while the same release's percentage is raised, different for
/// every release, so a new release reshuffles who goes first.
fn seed_for(version: &semver::Version) -> String {
    version
        .to_string()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// A bundle to publish, read whole and verified against the devices' keyring.
struct Artifact<'a> {
    path: &'a Path,
    name: String,
    size: u64,
    manifest: bundle::Manifest,
    manifest_sha256: [u8; 32],
}

impl<'a> Artifact<'a> {
    fn read(path: &'a Path, keyring: &Keyring) -> anyhow::Result<Self> {
        let (manifest, manifest_sha256) = read_bundle(path, Some(keyring)).context(
            "devices would refuse this bundle; is it signed by a key they trust (--keyring)?",
        )?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("{} has no file name", path.display()))?
            .to_string();
        Ok(Artifact {
            path,
            name,
            size: fs::metadata(path)?.len(),
            manifest,
            manifest_sha256,
        })
    }

    fn entry(&self) -> bundle::release::Artifact {
        bundle::release::Artifact {
            url: self.name.clone(),
            size: self.size,
            manifest_sha256: self.manifest_sha256,
        }
    }

    fn delta_entry(&self) -> DeltaArtifact {
        DeltaArtifact {
            url: self.name.clone(),
            size: self.size,
            manifest_sha256: self.manifest_sha256,
            base: Default::default(),
        }
    }
}

/// Reads the whole bundle: it must be intact before devices are pointed at it.
/// The bundle's manifest and its digest, every chunk checked; with a keyring, the signature too.
fn read_bundle(
    path: &Path,
    keyring: Option<&Keyring>,
) -> anyhow::Result<(bundle::Manifest, [u8; 32])> {
    let file = File::open(path).with_context(|| format!("opening bundle {}", path.display()))?;
    let input = BufReader::with_capacity(256 << 10, file);
    let reader = match keyring {
        Some(keyring) => BundleReader::open(input, keyring),
        None => BundleReader::open_unverified(input),
    }
    .with_context(|| format!("reading bundle {}", path.display()))?;
    let manifest = reader.manifest().clone();
    let digest = reader.manifest_sha256();
    crate::check_every_chunk(reader).with_context(|| format!("checking {}", path.display()))?;
    Ok((manifest, digest))
}

/// Whether the bundle is published at `dest` already. Another file under that name is an error:
/// a published bundle is never replaced, since caches and devices midway through a download
/// still hold the old bytes.
fn check_not_replacing(
    source: &Path,
    dest: &Path,
    manifest_sha256: &[u8; 32],
) -> anyhow::Result<bool> {
    if !dest.exists() {
        return Ok(false);
    }
    if same_file(source, dest)? {
        return Ok(true);
    }
    let (_, existing) = read_bundle(dest, None)?;
    ensure!(
        &existing == manifest_sha256 && fs::metadata(dest)?.len() == fs::metadata(source)?.len(),
        "{} is already published with other content; published bundles are never replaced (give the new one another file name)",
        dest.display()
    );
    Ok(true)
}

/// The name of the lock file that `bundle-tool release` holds in the release folder.
pub const LOCK_FILE: &str = ".release.lock";

fn lock_folder(dir: &Path) -> anyhow::Result<Flock<File>> {
    let path = dir.join(LOCK_FILE);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    let locked = |result: Result<Flock<File>, (File, Errno)>| {
        result
            .map_err(|(_, e)| e)
            .with_context(|| format!("locking {}", path.display()))
    };
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Err((file, Errno::EWOULDBLOCK)) => {
            eprintln!(
                "waiting for another bundle-tool release in {} to finish",
                dir.display()
            );
            locked(Flock::lock(file, FlockArg::LockExclusive))
        }
        result => locked(result),
    }
}

fn copy_durably(source: &Path, dest: &Path) -> anyhow::Result<()> {
    let tmp = dest.with_extension("zst.partial");
    fs::copy(source, &tmp).with_context(|| format!("copying to {}", tmp.display()))?;
    File::open(&tmp).and_then(|f| f.sync_all())?;
    fs::rename(&tmp, dest).with_context(|| format!("renaming to {}", dest.display()))?;
    Ok(())
}

fn same_file(a: &Path, b: &Path) -> anyhow::Result<bool> {
    Ok(fs::canonicalize(a)? == fs::canonicalize(b)?)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("toml.partial");
    let mut file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

fn describe(index: &ReleaseIndex, path: &Path) -> String {
    let mut out = format!(
        "{} (serial {}): channel {} for {}",
        path.display(),
        index.serial,
        index.channel,
        index.compatible
    );
    if let Some(s) = &index.suggested {
        out.push_str(&format!("; suggested {} ({})", s.version, s.url));
    }
    if let Some(r) = &index.rollout {
        out.push_str(&format!(
            "; rollout {} to {}% (seed {})",
            r.release.version, r.percent, r.seed
        ));
    }
    if let Some(h) = &index.halted {
        out.push_str(&format!("; halted {}", h.release.version));
        if let Some(percent) = h.percent {
            out.push_str(&format!(" at {percent}%"));
        }
    }
    if let Some(min) = &index.min_version {
        out.push_str(&format!("; minimum {min}"));
    }
    if !index.withdrawn.is_empty() {
        let versions: Vec<String> = index.withdrawn.iter().map(ToString::to_string).collect();
        out.push_str(&format!("; withdrawn {}", versions.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_seeds_are_valid_seeds() {
        let v: semver::Version = "1.2.0-rc.1+build.7".parse().unwrap();
        let seed = seed_for(&v);
        assert_eq!(seed, "1.2.0-rc.1-build.7");
        assert!(valid_seed(&seed));
    }
}

//! `bundle-tool release`: publishes a bundle into a folder that any static web server serves, and
//! rewrites the channel's signed index there (docs/fleet.md).
use std::fs::{self, File};
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{ensure, Context};
use bundle::release::{valid_seed, Release, ReleaseIndex, Rollout};
use bundle::{BundleReader, Keyring, SigningKey};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

pub struct Request<'a> {
    pub keys: &'a [PathBuf],
    /// What the devices trust; None: the public halves of `keys`.
    pub keyring: Option<&'a Path>,
    pub dir: &'a Path,
    pub channel: &'a str,
    pub bundle: &'a Path,
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
    let keyring = match request.keyring {
        Some(path) => Keyring::load(path)?,
        None => Keyring::from_keys(
            keys.iter().map(SigningKey::public_key).collect(),
            Path::new("the --key keys"),
        )?,
    };
    let (manifest, manifest_sha256) = read_bundle(request.bundle, Some(&keyring)).context(
        "devices would refuse this bundle; is it signed by a key they trust (--keyring)?",
    )?;
    fs::create_dir_all(request.dir)
        .with_context(|| format!("creating {}", request.dir.display()))?;
    // Held until the index is written, so that two releases into one folder (parallel CI jobs)
    // never lose each other's changes.
    let _lock = lock_folder(request.dir)?;
    let index_path = index_path(request.dir, request.channel);
    let mut index = match fs::read(&index_path) {
        Ok(bytes) => ReleaseIndex::parse_unverified(&bytes)
            .with_context(|| format!("reading {}", index_path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            ReleaseIndex::new(request.channel, &manifest.compatible)
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", index_path.display())),
    };
    ensure!(
        index.compatible == manifest.compatible,
        "channel '{}' is for '{}', the bundle for '{}'",
        request.channel,
        index.compatible,
        manifest.compatible
    );

    let name = request
        .bundle
        .file_name()
        .and_then(|n| n.to_str())
        .context("the bundle path has no file name")?;
    let release = Release {
        version: manifest.version.clone(),
        url: name.to_string(),
        size: fs::metadata(request.bundle)?.len(),
        manifest_sha256,
    };
    let dest = request.dir.join(name);
    let already_published = check_not_replacing(request.bundle, &dest, &manifest_sha256)?;
    update_index(&mut index, release, request)?;
    if !already_published {
        copy_durably(request.bundle, &dest)?;
    }
    index.serial += 1;
    index.published = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let key_refs: Vec<&SigningKey> = keys.iter().collect();
    write_atomically(&index_path, &index.to_signed(&key_refs))?;
    println!("{}", describe(&index, &index_path));
    Ok(())
}

/// The index after publishing `release`: as a rollout when a percentage is given, else as the
/// suggested version for everybody.
fn update_index(
    index: &mut ReleaseIndex,
    release: Release,
    request: &Request,
) -> anyhow::Result<()> {
    let version = release.version.clone();
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
            index.rollout = Some(Rollout {
                seed,
                percent,
                release,
            });
        }
        None => {
            ensure!(request.seed.is_none(), "--seed belongs to --rollout");
            index.suggested = Some(release);
            if index
                .rollout
                .as_ref()
                .is_some_and(|r| r.release.version <= version)
            {
                index.rollout = None;
            }
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
    if let Some(min) = &index.min_version {
        out.push_str(&format!("; minimum {min}"));
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

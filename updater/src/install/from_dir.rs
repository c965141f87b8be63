//! `install --from-dir`: a USB stick or a service laptop's share holds bundles for many devices and
//! versions; the newest one this device accepts is chosen by the same checks an install makes
//! (signature, compatibility, version policy, slot classes, capacity), so the choice never falls
//! on a bundle the install would then refuse.
use std::fs::{self, File};
use std::io::BufReader;
use std::path::{Path, PathBuf};

use bundle::{BundleReader, Keyring};

use super::{check_target, choose_target, resolve_group, Policy};
use crate::config::Config;
use crate::error::{Result, UpdaterError};
use crate::state::StateDir;

#[derive(Debug)]
pub struct Choice {
    pub chosen: Option<(PathBuf, semver::Version)>,
    /// Every bundle passed over, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

/// Reads only each bundle's manifest and signature; the chosen one is read again by the install.
pub fn choose(config: &Config, dir: &Path, allow_downgrade: bool) -> Result<Choice> {
    let keyring = Keyring::load(&config.keyring).map_err(UpdaterError::Keyring)?;
    let state = StateDir::open_read_only(&config.state_dir).load()?;
    let booted = config.booted_group()?;
    let policy = Policy {
        compatible: &config.compatible,
        booted,
        allow_downgrade,
    };
    let target = choose_target(booted, None)?;
    let slots = resolve_group(config, target)?;
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(UpdaterError::io(format!("reading {}", dir.display())))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "zst") && p.is_file())
        .collect();
    paths.sort();
    let mut chosen: Option<(PathBuf, semver::Version)> = None;
    let mut skipped = Vec::new();
    for path in paths {
        let verdict = File::open(&path)
            .map_err(UpdaterError::io("opening"))
            .and_then(|f| Ok(BundleReader::open(BufReader::new(f), &keyring)?))
            .and_then(|reader| {
                policy.check(reader.manifest(), &state)?;
                check_target(config, reader.manifest(), target, &slots)?;
                Ok(reader.manifest().version.clone())
            });
        match verdict {
            Ok(version) if chosen.as_ref().is_none_or(|(_, v)| version > *v) => {
                if let Some((previous, v)) = chosen.replace((path, version)) {
                    skipped.push((previous, format!("{v} is not the newest")));
                }
            }
            Ok(version) => skipped.push((path, format!("{version} is not the newest"))),
            Err(err) => skipped.push((path, err.to_string())),
        }
    }
    Ok(Choice { chosen, skipped })
}

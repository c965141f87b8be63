//! Taking updates from a release index (docs/fleet.md): fetch and verify the channel's signed
//! index, decide from the device's bucket and history, and install the named bundle from its URL.
pub mod decide;
pub mod report;
pub mod schedule;

use bundle::release::{ReleaseIndex, MAX_INDEX_SIZE};
use bundle::{BundleError, KeyId, Keyring};
use serde::Serialize;
use tracing::{info, warn};

use crate::config::Config;
use crate::config::{FleetConfig, HttpSettings};
use crate::error::{Result, UpdaterError};
use crate::install::{install_from, InstallOptions, InstallReport};
use crate::progress::Progress;
use crate::source;
use crate::state::StateDir;
use crate::url::HttpUrl;
use decide::{decide, Decision, Device, Reason};

#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    #[serde(flatten)]
    pub decision: Decision,
    pub channel: String,
    pub index_url: String,
    pub index_serial: u64,
    /// The bundle's absolute URL, when the decision names a release: the first of `fetches`.
    pub url: Option<String>,
    /// How it will be fetched: `delta`, `adaptive` or `full`.
    pub fetch: Option<FetchKind>,
    /// The ways to fetch the release, smallest first: a delta from what the booted group holds,
    /// a format-2 bundle fetched in parts, the full bundle.
    #[serde(skip)]
    pub fetches: Vec<Fetch>,
}

crate::names::named! {
    pub enum FetchKind {
        Delta = "delta",
        Adaptive = "adaptive",
        Full = "full",
    }
}

#[derive(Debug, Clone)]
pub struct Fetch {
    pub kind: FetchKind,
    pub url: String,
    pub manifest_sha256: [u8; 32],
}

/// The ways to fetch `release`, smallest first. A delta applies when every image of its base is
/// what the booted group holds: by the SHA-256 recorded when that group was installed, or else (a
/// group the updater did not install) by hashing the slot.
fn fetches(
    release: &bundle::release::Release,
    index_url: &str,
    held: &mut Held,
) -> Result<Vec<Fetch>> {
    let mut deltas = Vec::new();
    for delta in &release.deltas {
        let mut applies = true;
        for (class, image) in &delta.base {
            applies = applies && held.holds(class, image)?;
        }
        if applies {
            deltas.push((FetchKind::Delta, &delta.url, delta.manifest_sha256));
        }
    }
    let adaptive = release
        .adaptive
        .iter()
        .map(|a| (FetchKind::Adaptive, &a.url, a.manifest_sha256));
    let full = std::iter::once((FetchKind::Full, &release.url, release.manifest_sha256));
    deltas
        .into_iter()
        .take(1)
        .chain(adaptive)
        .chain(full)
        .map(|(kind, url, manifest_sha256)| {
            Ok(Fetch {
                kind,
                url: resolve(index_url, url)?,
                manifest_sha256,
            })
        })
        .collect()
}

/// What the booted group holds, image by image: recorded, or hashed once when asked.
struct Held {
    recorded: std::collections::BTreeMap<String, String>,
    slots: std::collections::BTreeMap<String, crate::slots::Slot>,
    hashed: std::collections::BTreeMap<(String, u64), [u8; 32]>,
}

impl Held {
    fn holds(&mut self, class: &str, image: &bundle::release::BaseImage) -> Result<bool> {
        if let Some(recorded) = self.recorded.get(class) {
            return Ok(*recorded == hex::encode(image.sha256));
        }
        let Some(slot) = self.slots.get(class) else {
            return Ok(false);
        };
        let key = (class.to_string(), image.size);
        if !self.hashed.contains_key(&key) {
            let digest = crate::fsutil::sha256_of_prefix(&slot.path, image.size)?;
            info!(
                class,
                slot = %slot.path.display(),
                bytes = image.size,
                sha256 = %digest.map(hex::encode).unwrap_or_default(),
                "hashed the booted slot to match delta bases"
            );
            self.hashed.insert(key.clone(), digest.unwrap_or_default());
        }
        Ok(self.hashed[&key] == image.sha256)
    }
}

pub fn fleet_config(config: &Config) -> Result<&FleetConfig> {
    config.fleet.as_ref().ok_or_else(|| {
        UpdaterError::config(
            &config.path,
            "no [fleet] url is set; the device does not know where to look for updates",
        )
    })
}

/// Fetches the channel's index and verifies it with the fleet keyring: signature and channel.
/// Returns the index and the key that signed it.
pub fn fetch_index(fleet: &FleetConfig, http: &HttpSettings) -> Result<(ReleaseIndex, KeyId)> {
    let keyring = Keyring::load(&fleet.keyring).map_err(UpdaterError::Keyring)?;
    let index_url = fleet.index_url();
    let bytes = crate::net::Client::new(http)?.fetch_small(&index_url, MAX_INDEX_SIZE)?;
    let (index, signer) = ReleaseIndex::verify(&bytes, &keyring)?;
    if index.channel != fleet.channel {
        return Err(BundleError::InvalidIndex(format!(
            "{index_url} is the index of channel '{}', not '{}'",
            index.channel, fleet.channel
        ))
        .into());
    }
    Ok((index, signer))
}

/// Fetches and verifies the channel's index and decides whether it applies to this device.
pub fn check(config: &Config) -> Result<CheckReport> {
    let fleet = fleet_config(config)?;
    let index_url = fleet.index_url();
    let (index, signer) = fetch_index(fleet, &config.http)?;
    let booted = config.booted_group()?;
    let state = StateDir::open_read_only(&config.state_dir).load()?;
    // Serials count per channel and product: another product's index says nothing about ours.
    let serial_key = format!("{}/{}", fleet.channel, config.compatible);
    let applies = index.compatible == config.compatible;
    if let Some(&seen) = state.index_serials.get(&serial_key).filter(|_| applies) {
        if index.serial < seen {
            return Err(UpdaterError::Network(format!(
                "{index_url} has serial {}, older than serial {seen} seen before (a stale mirror or a replayed index)",
                index.serial
            )));
        }
    }
    let device_id = fleet
        .device_id
        .read()
        .map_err(|e| UpdaterError::config(&config.path, e))?;
    let running = state
        .version_of(booted)
        .and_then(|v| semver::Version::parse(v).ok());
    let decision = decide(
        &index,
        &Device {
            compatible: &config.compatible,
            id: &device_id,
            pin: fleet.pin,
            running: running.as_ref(),
            last_install: state.last_install.as_ref(),
            security_floor: state.security_floor,
        },
    );
    info!(%index_url, serial = index.serial, %signer, update = decision.update, reason = ?decision.reason, "checked the release index");
    let fetches = match &decision.release {
        Some(release) => {
            let mut held = Held {
                recorded: state
                    .groups
                    .get(&booted)
                    .map(|g| {
                        g.components
                            .iter()
                            .filter_map(|c| Some((c.slot_class.clone()?, c.sha256.clone()?)))
                            .collect()
                    })
                    .unwrap_or_default(),
                slots: crate::install::resolve_group(config, booted)?,
                hashed: Default::default(),
            };
            fetches(release, &index_url, &mut held)?
        }
        None => Vec::new(),
    };
    if applies {
        remember_serial(config, &serial_key, index.serial);
    }
    Ok(CheckReport {
        decision,
        channel: fleet.channel.clone(),
        index_url,
        index_serial: index.serial,
        url: fetches.first().map(|f| f.url.clone()),
        fetch: fetches.first().map(|f| f.kind),
        fetches,
    })
}

/// Installs what the check named: the bundle at its URL, which must carry the manifest the
/// signed index names.
pub fn install_checked(
    config: &Config,
    report: &CheckReport,
    options: &InstallOptions,
    progress: &Progress,
) -> Result<InstallReport> {
    let (last, first) = report
        .fetches
        .split_last()
        .ok_or_else(|| UpdaterError::Usage("the check names no release to install".into()))?;
    // The index withdrew the running release: going back to an older one is what it asks for.
    let rollback_from = report
        .decision
        .running
        .as_deref()
        .filter(|_| report.decision.reason == Reason::Rollback)
        .and_then(|running| semver::Version::parse(running).ok());
    let install = |fetch: &Fetch| {
        info!(url = %fetch.url, way = %fetch.kind, "installing");
        let options = InstallOptions {
            expect_manifest: Some(fetch.manifest_sha256),
            allow_downgrade: options.allow_downgrade || rollback_from.is_some(),
            rollback_from: rollback_from.clone(),
            ..options.clone()
        };
        install_from(
            config,
            &source::BundleSource::Url(fetch.url.clone()),
            &options,
            progress,
        )
    };
    for fetch in first {
        match install(fetch) {
            // A delta whose base this device does not hold after all (its slot changed, the
            // index is wrong): the next way still gets the release.
            Err(UpdaterError::Incompatible(why)) if fetch.kind == FetchKind::Delta => {
                warn!(url = %fetch.url, "the delta does not apply ({why}); trying the next way");
            }
            other => return other,
        }
    }
    install(last)
}

/// Relative bundle URLs are relative to the index.
fn resolve(index_url: &str, bundle_url: &str) -> Result<String> {
    let base = HttpUrl::parse(index_url)
        .map_err(|e| UpdaterError::Network(format!("{index_url}: {e}")))?;
    base.join(bundle_url)
        .map(String::from)
        .map_err(|e| BundleError::InvalidIndex(format!("bundle url '{bundle_url}': {e}")).into())
}

/// Raises the recorded serial so that an older index is refused from now on. Skipped while
/// another updater holds the state: the next check records it.
fn remember_serial(config: &Config, key: &str, serial: u64) {
    let Ok(store) = StateDir::lock(&config.state_dir) else {
        return;
    };
    let result = store.load().and_then(|mut state| {
        let seen = state.index_serials.entry(key.to_string()).or_default();
        if *seen >= serial {
            return Ok(());
        }
        *seen = serial;
        store.save(&state)
    });
    if let Err(err) = result {
        warn!(%err, "could not record the release index serial");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_urls_resolve_against_the_index() {
        let index = "http://updates.example/fleet/stable.toml";
        assert_eq!(
            resolve(index, "acme-1.2.0.zst").unwrap(),
            "http://updates.example/fleet/acme-1.2.0.zst"
        );
        assert_eq!(
            resolve(index, "/other/b.zst").unwrap(),
            "http://updates.example/other/b.zst"
        );
        assert_eq!(
            resolve(index, "https://cdn.example/b.zst").unwrap(),
            "https://cdn.example/b.zst"
        );
    }
}

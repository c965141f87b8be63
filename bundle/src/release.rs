//! The release index: one signed TOML file per channel, served as a static file next to the
//! bundles, that tells devices which version to run (docs/fleet.md).
//!
//! The signature travels inside the file, as comment lines after a marker, so a web server or CDN
//! that replaces files one at a time can never pair an index with another index's signature, and
//! the file stays plain TOML for any other tool.
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{signature, BundleError, KeyId, Keyring, SigningKey};

/// The index format this code writes and the only one it reads.
pub const INDEX_FORMAT: u32 = 1;
/// Indexes are small; a device never reads more than this.
pub const MAX_INDEX_SIZE: u64 = 1 << 20;
const SIGNATURE_MARKER: &str = "# -----BEGIN SIGNATURES-----\n";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseIndex {
    pub format: u32,
    pub channel: String,
    /// Must equal the device's `compatible`, like a bundle's.
    pub compatible: String,
    /// Raised by every rewrite; a device refuses an index older than one it has already seen, so a
    /// stale mirror or a replayed file cannot hold it back.
    pub serial: u64,
    /// RFC 3339, informational.
    pub published: String,
    /// Devices running an older version update to the oldest release at or above it, rollout or
    /// not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_version: Option<semver::Version>,
    /// What every device of the channel should run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggested: Option<Release>,
    /// A newer release that only a share of the devices takes yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    /// A release whose rollout was stopped where it stood: devices that run it keep it, no other
    /// device starts it. Kept out of `suggested` and `rollout`, so that updaters that predate
    /// halting (and ignore this field) do not start it either.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halted: Option<Halted>,
    /// Versions taken back: no device installs them again, and a device that runs one returns to
    /// `suggested`, although it is older (never below the device's security floor).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub withdrawn: Vec<semver::Version>,
    /// Releases the channel suggested or rolled out before, newest first (at most
    /// [`MAX_PREVIOUS`]): what a halt or a rollback returns to. Devices do not act on them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous: Vec<Release>,
}

/// How many earlier releases an index remembers.
pub const MAX_PREVIOUS: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub version: semver::Version,
    /// The bundle; relative URLs are relative to the index's own URL.
    pub url: String,
    /// Bytes of the bundle file.
    pub size: u64,
    /// SHA-256 of the bundle's signed manifest (64 hex digits in the index): the device refuses
    /// any other bundle.
    #[serde(with = "hex_digest")]
    pub manifest_sha256: [u8; 32],
    /// The same release as a format-2 bundle, which a device fetches in parts (only what it does
    /// not hold): for fleets whose `url` stays a format-1 bundle for older updaters. Older
    /// updaters ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptive: Option<Artifact>,
    /// Delta bundles to this release, each from the images named in its `base`.
    #[serde(default, rename = "delta", skip_serializing_if = "Vec::is_empty")]
    pub deltas: Vec<DeltaArtifact>,
    /// The bundle's anti-rollback counter, so that a device knows before downloading whether a
    /// rollback would go below its floor. Absent: 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub security_version: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Another bundle of the same release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    pub url: String,
    pub size: u64,
    #[serde(with = "hex_digest")]
    pub manifest_sha256: [u8; 32],
}

/// A delta bundle of a release, and the images (by slot class) a device must hold in its booted
/// group to install it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaArtifact {
    pub url: String,
    pub size: u64,
    #[serde(with = "hex_digest")]
    pub manifest_sha256: [u8; 32],
    pub base: std::collections::BTreeMap<String, BaseImage>,
}

/// An image a delta starts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseImage {
    #[serde(with = "hex_digest")]
    pub sha256: [u8; 32],
    pub size: u64,
}

/// A SHA-256 digest written as 64 hex digits; anything else fails the parse, so a release never
/// exists without the digest that pins its bundle.
mod hex_digest {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(digest: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(digest))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        let mut digest = [0u8; 32];
        hex::decode_to_slice(&text, &mut digest)
            .map_err(|_| D::Error::custom(format!("'{text}' is not 64 hex digits")))?;
        Ok(digest)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    /// Reshuffles which devices go first; keep it while raising `percent`.
    pub seed: String,
    /// Share of the devices that take the release, 0.01 to 100, in steps of 0.01.
    pub percent: f64,
    pub release: Release,
}

/// A stopped rollout, and where it stood: a share of the devices (`seed` and `percent`), or, with
/// neither, every device (it was the suggested release).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Halted {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
    pub release: Release,
}

impl Rollout {
    /// The percentage in hundredths of a percent (basis points), as the bucket test uses it.
    pub fn basis_points(&self) -> u32 {
        (self.percent * 100.0).round() as u32
    }

    /// Whether the device with this id is in the rollout.
    pub fn includes(&self, device_id: &str) -> bool {
        in_rollout(bucket(&self.seed, device_id), self.basis_points())
    }
}

/// A device's place in a rollout, uniform over 0..2^64: the first 8 bytes, big-endian, of
/// SHA-256 over the seed, a colon and the device id (docs/fleet.md).
pub fn bucket(seed: &str, device_id: &str) -> u64 {
    let digest = Sha256::new()
        .chain_update(seed.as_bytes())
        .chain_update(b":")
        .chain_update(device_id.as_bytes())
        .finalize();
    u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// `bucket / 2^64 < basis_points / 10000`, computed exactly; raising the share only adds devices.
pub fn in_rollout(bucket: u64, basis_points: u32) -> bool {
    u128::from(bucket) * 10_000 < u128::from(basis_points) << 64
}

/// The bucket as a fraction in [0, 1), for people.
pub fn bucket_fraction(bucket: u64) -> f64 {
    bucket as f64 / 2f64.powi(64)
}

/// A seed may hold letters, digits, `.`, `_` and `-`: it never contains the separator.
pub fn valid_seed(seed: &str) -> bool {
    !seed.is_empty()
        && seed.len() <= 128
        && seed
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

impl ReleaseIndex {
    pub fn new(channel: &str, compatible: &str) -> Self {
        ReleaseIndex {
            format: INDEX_FORMAT,
            channel: channel.into(),
            compatible: compatible.into(),
            serial: 0,
            published: String::new(),
            min_version: None,
            suggested: None,
            rollout: None,
            halted: None,
            withdrawn: Vec::new(),
            previous: Vec::new(),
        }
    }

    /// The releases devices may be sent to: suggested, rolling out, halted.
    pub fn current(&self) -> impl Iterator<Item = &Release> {
        self.suggested
            .iter()
            .chain(self.rollout.iter().map(|r| &r.release))
            .chain(self.halted.iter().map(|h| &h.release))
    }

    pub fn is_withdrawn(&self, version: &semver::Version) -> bool {
        self.withdrawn.contains(version)
    }

    /// Parses and validates an index body, without looking at signatures.
    pub fn parse(body: &[u8]) -> Result<Self, BundleError> {
        let invalid = |m: String| BundleError::InvalidIndex(m);
        let text = std::str::from_utf8(body).map_err(|_| invalid("not UTF-8 text".into()))?;
        let index: ReleaseIndex =
            toml::from_str(text).map_err(|e| invalid(e.message().trim_end().to_string()))?;
        index.validate().map_err(invalid)?;
        Ok(index)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.format != INDEX_FORMAT {
            return Err(format!(
                "format {} is not supported (this updater reads format {INDEX_FORMAT})",
                self.format
            ));
        }
        if self.channel.is_empty() || self.compatible.is_empty() {
            return Err("channel and compatible must not be empty".into());
        }
        for release in self.current().chain(&self.previous) {
            if release.url.is_empty() {
                return Err(format!("release {} has no url", release.version));
            }
            for delta in &release.deltas {
                if delta.url.is_empty() || delta.base.is_empty() {
                    return Err(format!(
                        "a delta of release {} needs a url and a base",
                        release.version
                    ));
                }
            }
        }
        if let Some(current) = self.current().find(|r| self.is_withdrawn(&r.version)) {
            return Err(format!(
                "release {} is withdrawn, yet offered to devices",
                current.version
            ));
        }
        if let Some(rollout) = &self.rollout {
            check_share(&rollout.seed, rollout.percent)?;
        }
        if let Some(halted) = &self.halted {
            match (&halted.seed, halted.percent) {
                (Some(seed), Some(percent)) => check_share(seed, percent)?,
                (None, None) => {}
                _ => return Err("a halted rollout needs both seed and percent, or neither".into()),
            }
        }
        Ok(())
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("an index always serializes")
    }

    /// The file as served: the TOML body, the marker, and one comment line per signature.
    pub fn to_signed(&self, keys: &[&SigningKey]) -> Vec<u8> {
        let mut out = self.to_toml().into_bytes();
        if !out.ends_with(b"\n") {
            out.push(b'\n');
        }
        let signatures = signature::sign(&out, keys);
        out.extend_from_slice(SIGNATURE_MARKER.as_bytes());
        for line in String::from_utf8(signatures)
            .expect("signature lines are text")
            .lines()
        {
            if !line.starts_with('#') {
                out.extend_from_slice(format!("# {line}\n").as_bytes());
            }
        }
        out
    }

    /// Checks the signature against the keyring, then parses what it covers.
    pub fn verify(file: &[u8], keyring: &Keyring) -> Result<(Self, KeyId), BundleError> {
        let (body, signatures) = split_signed(file)?;
        let signer = signature::verify(body, &signatures, keyring, "release index")?;
        Ok((Self::parse(body)?, signer))
    }

    /// Parses the body without checking the signature: for tools that rewrite the index.
    pub fn parse_unverified(file: &[u8]) -> Result<Self, BundleError> {
        Self::parse(split_signed(file)?.0)
    }
}

fn check_share(seed: &str, percent: f64) -> Result<(), String> {
    if !(percent.is_finite() && (0.0..=100.0).contains(&percent)) {
        return Err(format!(
            "rollout percent {percent} is not between 0 and 100"
        ));
    }
    if !valid_seed(seed) {
        return Err(format!(
            "rollout seed '{seed}' must be 1 to 128 letters, digits, '.', '_' or '-'"
        ));
    }
    Ok(())
}

/// Why a halt, resume or rollback cannot change the channel as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    #[error("the rollout of {0} is halted already (--resume lifts the halt)")]
    AlreadyHalted(semver::Version),
    #[error("the channel has no release to halt")]
    NothingToHalt,
    #[error("the channel has no halted rollout to resume")]
    NotHalted,
    #[error("{rolling} is rolling out now; publish {halted} again to roll it out instead")]
    RolloutInTheWay {
        rolling: semver::Version,
        halted: semver::Version,
    },
    #[error("{0} is withdrawn itself; roll back to a release before it")]
    Withdrawn(semver::Version),
    #[error("{version} is not a release of channel '{channel}' (it knows: {known})")]
    UnknownRelease {
        version: semver::Version,
        channel: String,
        known: String,
    },
    #[error(
        "no release of channel '{channel}' is newer than {version}: there is nothing to roll back"
    )]
    NothingNewer {
        version: semver::Version,
        channel: String,
    },
}

/// The changes a publisher makes to a channel besides publishing: pure functions of the index,
/// so that the tool and the tests share them.
impl ReleaseIndex {
    /// Stops the rollout of the channel's newest release (rolling out, or else suggested) where
    /// it stands. A halted suggested release gives its place back to the release before it.
    pub fn halt(&mut self) -> Result<(), ChannelError> {
        if let Some(halted) = &self.halted {
            return Err(ChannelError::AlreadyHalted(halted.release.version.clone()));
        }
        let halted = match (self.rollout.take(), self.suggested.take()) {
            (Some(rollout), suggested) => {
                self.suggested = suggested;
                Halted {
                    seed: Some(rollout.seed),
                    percent: Some(rollout.percent),
                    release: rollout.release,
                }
            }
            (None, Some(suggested)) => {
                self.suggested = self.take_previous(&suggested.version);
                Halted {
                    seed: None,
                    percent: None,
                    release: suggested,
                }
            }
            (None, None) => return Err(ChannelError::NothingToHalt),
        };
        self.halted = Some(halted);
        Ok(())
    }

    /// Puts a halted release back where it stood.
    pub fn resume(&mut self) -> Result<(), ChannelError> {
        let halted = self.halted.as_ref().ok_or(ChannelError::NotHalted)?;
        if let (Some(_), Some(rollout)) = (&halted.seed, &self.rollout) {
            return Err(ChannelError::RolloutInTheWay {
                rolling: rollout.release.version.clone(),
                halted: halted.release.version.clone(),
            });
        }
        let Some(halted) = self.halted.take() else {
            return Err(ChannelError::NotHalted);
        };
        match (halted.seed, halted.percent) {
            (Some(seed), Some(percent)) => {
                self.rollout = Some(Rollout {
                    seed,
                    percent,
                    release: halted.release,
                });
            }
            _ => {
                if let Some(suggested) = self.suggested.take() {
                    self.retire(suggested);
                }
                self.suggested = Some(halted.release);
            }
        }
        Ok(())
    }

    /// Makes `version`, which the channel published before, the suggested release again, and
    /// withdraws every newer release the channel knows. Returns whether the channel's minimum
    /// version had to come down to `version`.
    pub fn rollback_to(&mut self, version: &semver::Version) -> Result<bool, ChannelError> {
        if self.is_withdrawn(version) {
            return Err(ChannelError::Withdrawn(version.clone()));
        }
        let known: Vec<Release> = self.current().chain(&self.previous).cloned().collect();
        let Some(target) = known.iter().find(|r| r.version == *version).cloned() else {
            let mut versions: Vec<String> = known.iter().map(|r| r.version.to_string()).collect();
            versions.dedup();
            return Err(ChannelError::UnknownRelease {
                version: version.clone(),
                channel: self.channel.clone(),
                known: if versions.is_empty() {
                    "none".into()
                } else {
                    versions.join(", ")
                },
            });
        };
        let newer: Vec<semver::Version> = known
            .iter()
            .map(|r| r.version.clone())
            .filter(|v| v > version && !self.is_withdrawn(v))
            .collect();
        if newer.is_empty() {
            return Err(ChannelError::NothingNewer {
                version: version.clone(),
                channel: self.channel.clone(),
            });
        }
        let leaving = [
            self.suggested.take(),
            self.rollout.take().map(|r| r.release),
            self.halted.take().map(|h| h.release),
        ];
        for release in leaving.into_iter().flatten() {
            self.retire(release);
        }
        self.previous.retain(|r| r.version != *version);
        self.withdrawn.extend(newer);
        self.withdrawn.sort();
        self.withdrawn.dedup();
        let lowered = self.min_version.as_ref().is_some_and(|min| min > version);
        if lowered {
            self.min_version = Some(version.clone());
        }
        self.suggested = Some(target);
        Ok(lowered)
    }

    /// Keeps a release that leaves suggested, rollout or halted among the earlier ones (newest
    /// first, without its deltas, which start from what devices ran before it).
    pub fn retire(&mut self, release: Release) {
        self.previous.retain(|r| r.version != release.version);
        self.previous.push(Release {
            deltas: Vec::new(),
            ..release
        });
        self.previous.sort_by(|a, b| b.version.cmp(&a.version));
        self.previous.truncate(MAX_PREVIOUS);
    }

    /// The newest earlier release below `below` that is not withdrawn, taken out of `previous`.
    fn take_previous(&mut self, below: &semver::Version) -> Option<Release> {
        let at = self
            .previous
            .iter()
            .position(|r| r.version < *below && !self.withdrawn.contains(&r.version))?;
        Some(self.previous.remove(at))
    }
}

/// The signed body, and the signature lines with their comment prefix taken off.
fn split_signed(file: &[u8]) -> Result<(&[u8], Vec<u8>), BundleError> {
    let marker = SIGNATURE_MARKER.as_bytes();
    let at = file
        .windows(marker.len())
        .position(|w| w == marker)
        .filter(|&at| at == 0 || file[at - 1] == b'\n')
        .ok_or_else(|| BundleError::InvalidIndex("it carries no signature block".into()))?;
    let mut signatures = Vec::new();
    for line in file[at + marker.len()..].split(|&b| b == b'\n') {
        let line = line.strip_prefix(b"#").unwrap_or(line);
        signatures.extend_from_slice(line.trim_ascii_start());
        signatures.push(b'\n');
    }
    Ok((&file[..at], signatures))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn release(version: &str) -> Release {
        Release {
            version: version.parse().unwrap(),
            url: format!("acme-{version}.zst"),
            size: 1234,
            manifest_sha256: [0xab; 32],
            adaptive: None,
            deltas: Vec::new(),
            security_version: 0,
        }
    }

    fn example() -> ReleaseIndex {
        ReleaseIndex {
            serial: 7,
            published: "2026-11-24T10:00:00Z".into(),
            min_version: Some("1.0.0".parse().unwrap()),
            suggested: Some(release("1.1.0")),
            rollout: Some(Rollout {
                seed: "r1.2".into(),
                percent: 5.0,
                release: release("1.2.0"),
            }),
            ..ReleaseIndex::new("stable", "acme-robot")
        }
    }

    fn keyring(key: &SigningKey) -> Keyring {
        Keyring::from_keys(vec![key.public_key()], Path::new("test")).unwrap()
    }

    #[test]
    fn a_signed_index_verifies_and_round_trips() {
        let (key, _) = SigningKey::generate().unwrap();
        let file = example().to_signed(&[&key]);
        let (index, signer) = ReleaseIndex::verify(&file, &keyring(&key)).unwrap();
        assert_eq!(index, example());
        assert_eq!(signer, key.public_key().id());
        assert_eq!(ReleaseIndex::parse_unverified(&file).unwrap(), example());
    }

    #[test]
    fn a_changed_or_unsigned_index_is_refused() {
        let (key, _) = SigningKey::generate().unwrap();
        let (other, _) = SigningKey::generate().unwrap();
        let file = example().to_signed(&[&key]);
        let text = String::from_utf8(file.clone()).unwrap();
        let raised = text.replace("percent = 5.0", "percent = 100.0");
        let err = ReleaseIndex::verify(raised.as_bytes(), &keyring(&key)).unwrap_err();
        assert!(
            err.to_string()
                .contains("release index was modified after it was signed"),
            "{err}"
        );
        let err = ReleaseIndex::verify(&file, &keyring(&other)).unwrap_err();
        assert!(err.to_string().contains("untrusted key"), "{err}");
        let body = example().to_toml();
        let err = ReleaseIndex::verify(body.as_bytes(), &keyring(&key)).unwrap_err();
        assert!(
            err.to_string().contains("carries no signature block"),
            "{err}"
        );
    }

    #[test]
    fn invalid_fields_are_named() {
        let mut index = example();
        index.rollout.as_mut().unwrap().seed = "a:b".into();
        assert!(index.validate().unwrap_err().contains("seed 'a:b'"));
        let mut index = example();
        index.rollout.as_mut().unwrap().percent = 101.0;
        assert!(index
            .validate()
            .unwrap_err()
            .contains("not between 0 and 100"));
        let text = example().to_toml().replace(&"ab".repeat(32), "xyz");
        let err = ReleaseIndex::parse(text.as_bytes()).unwrap_err();
        assert!(
            err.to_string().contains("'xyz' is not 64 hex digits"),
            "{err}"
        );
        let err = ReleaseIndex::parse(b"format = 2").unwrap_err();
        assert!(err.to_string().contains("missing field"), "{err}");
    }

    fn versions(releases: &[Release]) -> Vec<String> {
        releases.iter().map(|r| r.version.to_string()).collect()
    }

    fn v(version: &str) -> semver::Version {
        version.parse().unwrap()
    }

    #[test]
    fn a_halted_rollout_resumes_where_it_stood() {
        let mut index = example();
        index.halt().unwrap();
        assert_eq!(index.rollout, None);
        assert_eq!(index.suggested, Some(release("1.1.0")));
        let halted = index.halted.clone().unwrap();
        assert_eq!(
            (
                halted.release.version,
                halted.seed.as_deref(),
                halted.percent
            ),
            (v("1.2.0"), Some("r1.2"), Some(5.0))
        );
        assert_eq!(index.halt(), Err(ChannelError::AlreadyHalted(v("1.2.0"))));
        index.validate().unwrap();
        // Plain TOML that an updater without halting reads as "no rollout".
        let parsed = ReleaseIndex::parse(index.to_toml().as_bytes()).unwrap();
        assert_eq!(parsed, index);
        index.resume().unwrap();
        assert_eq!(index, example());
        assert_eq!(index.resume(), Err(ChannelError::NotHalted));
        // A newer rollout started meanwhile: resuming would replace it, so it is refused as is.
        index.halt().unwrap();
        index.rollout = Some(Rollout {
            seed: "r1.3".into(),
            percent: 1.0,
            release: release("1.3.0"),
        });
        let before = index.clone();
        let err = index.resume().unwrap_err();
        assert_eq!(
            err.to_string(),
            "1.3.0 is rolling out now; publish 1.2.0 again to roll it out instead"
        );
        assert_eq!(index, before);
    }

    #[test]
    fn a_halted_suggested_release_gives_its_place_back_to_the_one_before() {
        let mut index = ReleaseIndex {
            suggested: Some(release("1.2.0")),
            ..ReleaseIndex::new("stable", "acme-robot")
        };
        index.retire(release("1.0.0"));
        index.retire(release("1.1.0"));
        assert_eq!(versions(&index.previous), ["1.1.0", "1.0.0"]);
        index.halt().unwrap();
        assert_eq!(index.suggested, Some(release("1.1.0")));
        assert_eq!(index.halted.as_ref().unwrap().percent, None);
        assert_eq!(versions(&index.previous), ["1.0.0"]);
        index.resume().unwrap();
        assert_eq!(index.suggested, Some(release("1.2.0")));
        assert_eq!(versions(&index.previous), ["1.1.0", "1.0.0"]);
        assert_eq!(index.halted, None);

        let mut empty = ReleaseIndex::new("stable", "acme-robot");
        assert_eq!(empty.halt(), Err(ChannelError::NothingToHalt));
    }

    #[test]
    fn a_rollback_withdraws_every_newer_release() {
        let mut index = example();
        index.retire(release("1.0.0"));
        index.min_version = Some(v("1.1.0"));
        assert!(index.rollback_to(&v("1.0.0")).unwrap(), "minimum lowered");
        assert_eq!(index.suggested, Some(release("1.0.0")));
        assert_eq!((&index.rollout, &index.halted), (&None, &None));
        assert_eq!(index.withdrawn, [v("1.1.0"), v("1.2.0")]);
        assert_eq!(index.min_version, Some(v("1.0.0")));
        assert_eq!(versions(&index.previous), ["1.2.0", "1.1.0"]);
        index.validate().unwrap();
        assert_eq!(
            ReleaseIndex::parse(index.to_toml().as_bytes()).unwrap(),
            index
        );
        assert_eq!(
            index.rollback_to(&v("1.1.0")),
            Err(ChannelError::Withdrawn(v("1.1.0")))
        );
        let unknown = index.rollback_to(&v("0.9.0")).unwrap_err();
        assert_eq!(
            unknown.to_string(),
            "0.9.0 is not a release of channel 'stable' (it knows: 1.0.0, 1.2.0, 1.1.0)"
        );
        assert!(matches!(
            index.rollback_to(&v("1.0.0")),
            Err(ChannelError::NothingNewer { .. })
        ));
        // A halted release is withdrawn like any other newer one.
        let mut index = example();
        index.halt().unwrap();
        assert!(!index.rollback_to(&v("1.1.0")).unwrap());
        assert_eq!(index.withdrawn, [v("1.2.0")]);
        assert_eq!(index.suggested, Some(release("1.1.0")));
    }

    #[test]
    fn an_index_that_offers_a_withdrawn_release_or_half_a_share_is_invalid() {
        let mut index = example();
        index.withdrawn = vec![v("1.2.0")];
        assert!(index
            .validate()
            .unwrap_err()
            .contains("release 1.2.0 is withdrawn, yet offered"));
        let mut index = example();
        index.halt().unwrap();
        index.halted.as_mut().unwrap().percent = None;
        assert!(index
            .validate()
            .unwrap_err()
            .contains("both seed and percent"));
    }

    #[test]
    fn earlier_releases_are_kept_newest_first_without_deltas_and_capped() {
        let mut index = ReleaseIndex::new("stable", "acme-robot");
        for minor in 0..20 {
            let mut r = release(&format!("1.{minor}.0"));
            r.deltas.push(DeltaArtifact {
                url: "d.zst".into(),
                size: 1,
                manifest_sha256: [0; 32],
                base: Default::default(),
            });
            index.retire(r);
        }
        assert_eq!(index.previous.len(), MAX_PREVIOUS);
        assert_eq!(index.previous[0].version, v("1.19.0"));
        assert!(index.previous.iter().all(|r| r.deltas.is_empty()));
    }

    #[test]
    fn the_bucket_is_the_documented_hash() {
        // docs/fleet.md: printf 'seed-1:device-42' | sha256sum, first 16 hex digits.
        let digest = Sha256::digest(b"seed-1:device-42");
        let expected = u64::from_str_radix(&hex::encode(&digest[..8]), 16).unwrap();
        assert_eq!(bucket("seed-1", "device-42"), expected);
        assert!(in_rollout(0, 1));
        assert!(!in_rollout(u64::MAX, 9_999));
        assert!(in_rollout(u64::MAX, 10_000));
        assert!(!in_rollout(1 << 63, 5_000));
        assert!(in_rollout((1 << 63) - 1, 5_000));
    }
}

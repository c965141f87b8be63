//! Whether a release index asks this device to update, and why: a pure function of the index, the
//! running version, the device's bucket and its own install history.
use bundle::release::{bucket, bucket_fraction, in_rollout, Halted, Release, ReleaseIndex};
use semver::Version;
use serde::Serialize;

use crate::config::Pin;
use crate::state::{InstallRecord, InstallResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// The device runs the newest release it may take.
    Newest,
    /// A newer release is rolling out, but not to this device yet.
    NotInRollout,
    /// This device is in the rollout of a newer release.
    InRollout,
    /// A newer release is suggested to every device.
    Suggested,
    /// The device runs a version below the channel's minimum.
    BelowMinimum,
    /// The index is for other devices.
    Incompatible,
    /// The release is installed and waits for the reboot.
    AwaitingReboot,
    /// The release was installed here before and did not boot healthy; it is not retried.
    FailedHere,
    /// The index names no release.
    NoRelease,
    /// A newer release's rollout is halted; the device stays where it is.
    Halted,
    /// The device runs a withdrawn release and returns to the suggested one, although it is older.
    Rollback,
    /// The device runs a withdrawn release, but the one to return to is below its security floor.
    RollbackBlocked,
}

#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub update: bool,
    /// The release the decision is about (the one to install when `update`).
    pub version: Option<String>,
    pub running: Option<String>,
    pub reason: Reason,
    /// One sentence for people.
    pub message: String,
    #[serde(skip)]
    pub release: Option<Release>,
    /// The device's place in the rollout, in [0, 1), when the index has one.
    pub bucket: Option<f64>,
}

pub struct Device<'a> {
    pub compatible: &'a str,
    pub id: &'a str,
    pub pin: Pin,
    pub running: Option<&'a Version>,
    pub last_install: Option<&'a InstallRecord>,
    /// Bundles with a lower security version are never installed here.
    pub security_floor: u64,
}

pub fn decide(index: &ReleaseIndex, device: &Device) -> Decision {
    let running = device.running;
    let verdict =
        |update: bool, release: Option<&Release>, reason: Reason, message: String| Decision {
            update,
            version: release.map(|r| r.version.to_string()),
            running: running.map(ToString::to_string),
            reason,
            message,
            release: release.cloned(),
            bucket: None,
        };
    if index.compatible != device.compatible {
        return verdict(
            false,
            None,
            Reason::Incompatible,
            format!(
                "the index is for '{}', this device is '{}'",
                index.compatible, device.compatible
            ),
        );
    }
    let in_this_rollout = index.rollout.as_ref().map(|r| {
        let b = bucket(&r.seed, device.id);
        let included = match device.pin {
            Pin::Canary => true,
            Pin::Conservative => false,
            Pin::None => in_rollout(b, r.basis_points()),
        };
        (r, b, included)
    });
    let below_minimum = match (&index.min_version, running) {
        (Some(min), Some(running)) => running < min,
        _ => false,
    };

    let (target, reason) = if below_minimum {
        // The oldest release that reaches the minimum: the rollout only when nothing else does.
        let min = index.min_version.as_ref().expect("checked above");
        let mut reaching: Vec<&Release> = index
            .suggested
            .iter()
            .chain(index.rollout.as_ref().map(|r| &r.release))
            .filter(|r| &r.version >= min)
            .collect();
        reaching.sort_by(|a, b| a.version.cmp(&b.version));
        (reaching.first().copied(), Reason::BelowMinimum)
    } else {
        match in_this_rollout {
            Some((r, _, true))
                if index
                    .suggested
                    .as_ref()
                    .is_none_or(|s| r.release.version > s.version) =>
            {
                (Some(&r.release), Reason::InRollout)
            }
            _ => (index.suggested.as_ref(), Reason::Suggested),
        }
    };
    // A device on a withdrawn release goes back to the suggested one, unless a newer one applies.
    let withdrawn = running.filter(|running| index.is_withdrawn(running));
    let (target, reason) = match withdrawn {
        Some(running) if target.is_none_or(|t| t.version <= *running) => {
            (index.suggested.as_ref(), Reason::Rollback)
        }
        _ => (target, reason),
    };
    let bucket = in_this_rollout.map(|(_, b, _)| bucket_fraction(b));
    let with_bucket = |mut d: Decision| {
        d.bucket = bucket;
        d
    };
    let halted = index
        .halted
        .as_ref()
        .filter(|h| running.is_none_or(|running| *running < h.release.version));
    let halted_verdict = |h: &Halted| {
        verdict(
            false,
            Some(&h.release),
            Reason::Halted,
            format!(
                "the rollout of {} is halted ({}); this device stays on {}",
                h.release.version,
                match h.percent {
                    Some(percent) => format!("at {percent}%"),
                    None => "it was suggested to every device".into(),
                },
                running.map_or("its version".into(), ToString::to_string),
            ),
        )
    };
    let Some(target) = target else {
        return with_bucket(match (withdrawn, halted) {
            (Some(running), _) => verdict(
                false,
                None,
                Reason::NoRelease,
                format!("runs {running}, which was withdrawn, but the index names no release to return to"),
            ),
            (None, Some(h)) => halted_verdict(h),
            (None, None) => verdict(
                false,
                None,
                Reason::NoRelease,
                "the index names no release this device may take".into(),
            ),
        });
    };
    if reason == Reason::Rollback && target.security_version < device.security_floor {
        return with_bucket(verdict(
            false,
            Some(target),
            Reason::RollbackBlocked,
            format!(
                "runs {}, which was withdrawn, but {} has security version {}, below this device's floor {}: it stays",
                withdrawn.expect("a rollback leaves a withdrawn version"),
                target.version,
                target.security_version,
                device.security_floor
            ),
        ));
    }
    if reason != Reason::Rollback && running.is_some_and(|running| *running >= target.version) {
        let waiting = in_this_rollout.filter(|(r, _, included)| {
            !included && running.is_some_and(|v| *v < r.release.version)
        });
        if let (None, Some(h)) = (waiting, halted) {
            return with_bucket(halted_verdict(h));
        }
        return with_bucket(match waiting {
            Some((r, b, _)) => verdict(
                false,
                Some(&r.release),
                Reason::NotInRollout,
                format!(
                    "{} is rolling out to {}% of devices; this one is not in yet ({})",
                    r.release.version,
                    r.percent,
                    match device.pin {
                        Pin::Conservative => "pinned conservative".to_string(),
                        _ => format!("bucket {:.4}", bucket_fraction(b)),
                    }
                ),
            ),
            None => verdict(
                false,
                Some(target),
                Reason::Newest,
                match running.filter(|running| **running > target.version) {
                    Some(running) => format!(
                        "runs {running}, newer than the channel's {}",
                        target.version
                    ),
                    None => format!(
                        "already runs {}, the newest for this device",
                        target.version
                    ),
                },
            ),
        });
    }
    let version = target.version.to_string();
    if let Some(last) = device.last_install.filter(|l| l.version == version) {
        match last.result {
            InstallResult::Installed => {
                return with_bucket(verdict(
                    false,
                    Some(target),
                    Reason::AwaitingReboot,
                    format!("{version} is installed in group {} and waits for the reboot", last.target),
                ))
            }
            InstallResult::RolledBack | InstallResult::Unhealthy => {
                return with_bucket(verdict(
                    false,
                    Some(target),
                    Reason::FailedHere,
                    format!(
                        "{version} did not boot healthy here before ({}); it is not retried until a newer release",
                        last.result.as_str()
                    ),
                ))
            }
            _ => {}
        }
    }
    let message = match reason {
        Reason::Rollback => format!(
            "runs {}, which was withdrawn: back to {version}",
            withdrawn.expect("a rollback leaves a withdrawn version")
        ),
        Reason::BelowMinimum => format!(
            "runs {}, below the channel's minimum {}: update to {version}",
            running.map_or("?".into(), ToString::to_string),
            index.min_version.as_ref().expect("below minimum")
        ),
        Reason::InRollout => format!(
            "in the rollout of {version} ({})",
            match device.pin {
                Pin::Canary => "pinned canary".to_string(),
                _ => format!(
                    "bucket {:.4} < {}%",
                    bucket.unwrap_or_default(),
                    index.rollout.as_ref().map_or(0.0, |r| r.percent)
                ),
            }
        ),
        _ => match running {
            Some(running) => format!("{version} is suggested; this device runs {running}"),
            None => format!("{version} is suggested; this device's version is unknown"),
        },
    };
    with_bucket(verdict(true, Some(target), reason, message))
}

#[cfg(test)]
mod tests {
    use bundle::release::Rollout;

    use super::*;
    use crate::group::Group;

    fn release(version: &str) -> Release {
        Release {
            version: version.parse().unwrap(),
            url: format!("{version}.zst"),
            size: 1,
            manifest_sha256: [0; 32],
            adaptive: None,
            deltas: Vec::new(),
            security_version: 0,
        }
    }

    fn index(suggested: &str, rollout: Option<(&str, f64)>, min: Option<&str>) -> ReleaseIndex {
        ReleaseIndex {
            suggested: Some(release(suggested)),
            rollout: rollout.map(|(v, percent)| Rollout {
                seed: "s".into(),
                percent,
                release: release(v),
            }),
            min_version: min.map(|m| m.parse().unwrap()),
            ..ReleaseIndex::new("stable", "acme")
        }
    }

    /// A device id whose bucket under seed "s" is below (inside) or above `percent`.
    fn device_id(inside: bool, percent: f64) -> String {
        (0..)
            .map(|i| format!("dev-{i}"))
            .find(|id| in_rollout(bucket("s", id), (percent * 100.0) as u32) == inside)
            .unwrap()
    }

    fn decide_for(index: &ReleaseIndex, id: &str, pin: Pin, running: &str) -> Decision {
        let running: Version = running.parse().unwrap();
        decide(
            index,
            &Device {
                compatible: "acme",
                id,
                pin,
                running: Some(&running),
                last_install: None,
                security_floor: 0,
            },
        )
    }

    #[test]
    fn each_reason() {
        let idx = index("1.1.0", Some(("1.2.0", 10.0)), Some("1.0.0"));
        let inside = device_id(true, 10.0);
        let outside = device_id(false, 10.0);
        let cases = [
            (
                &inside,
                Pin::None,
                "1.1.0",
                true,
                Reason::InRollout,
                Some("1.2.0"),
            ),
            (
                &outside,
                Pin::None,
                "1.1.0",
                false,
                Reason::NotInRollout,
                Some("1.2.0"),
            ),
            (
                &outside,
                Pin::None,
                "1.0.5",
                true,
                Reason::Suggested,
                Some("1.1.0"),
            ),
            (
                &outside,
                Pin::None,
                "0.9.0",
                true,
                Reason::BelowMinimum,
                Some("1.1.0"),
            ),
            (
                &outside,
                Pin::Canary,
                "1.1.0",
                true,
                Reason::InRollout,
                Some("1.2.0"),
            ),
            (
                &inside,
                Pin::Conservative,
                "1.1.0",
                false,
                Reason::NotInRollout,
                Some("1.2.0"),
            ),
            (
                &inside,
                Pin::None,
                "1.2.0",
                false,
                Reason::Newest,
                Some("1.2.0"),
            ),
        ];
        for (id, pin, running, update, reason, version) in cases {
            let d = decide_for(&idx, id, pin, running);
            assert_eq!(
                (d.update, d.reason, d.version.as_deref()),
                (update, reason, version),
                "{id} {pin:?} {running}: {}",
                d.message
            );
        }
    }

    fn decide_with_floor(index: &ReleaseIndex, running: &str, floor: u64) -> Decision {
        let running: Version = running.parse().unwrap();
        decide(
            index,
            &Device {
                compatible: "acme",
                id: "x",
                pin: Pin::None,
                running: Some(&running),
                last_install: None,
                security_floor: floor,
            },
        )
    }

    #[test]
    fn a_halted_rollout_starts_nowhere_new_and_stays_where_it_is() {
        let mut idx = index("1.1.0", Some(("1.2.0", 100.0)), None);
        idx.halt().unwrap();
        for (running, update, reason, version) in [
            ("1.1.0", false, Reason::Halted, Some("1.2.0")),
            ("1.2.0", false, Reason::Newest, Some("1.1.0")),
            // An older device still reaches the suggested release.
            ("1.0.0", true, Reason::Suggested, Some("1.1.0")),
        ] {
            let d = decide_with_floor(&idx, running, 0);
            assert_eq!(
                (d.update, d.reason, d.version.as_deref()),
                (update, reason, version),
                "{running}: {}",
                d.message
            );
        }
        let d = decide_with_floor(&idx, "1.1.0", 0);
        assert_eq!(
            d.message,
            "the rollout of 1.2.0 is halted (at 100%); this device stays on 1.1.0"
        );
        // A halted suggested release with nothing before it.
        let mut idx = index("1.1.0", None, None);
        idx.halt().unwrap();
        let d = decide_with_floor(&idx, "1.0.0", 0);
        assert_eq!(
            (d.update, d.reason),
            (false, Reason::Halted),
            "{}",
            d.message
        );
        assert!(d.message.contains("it was suggested to every device"));
    }

    #[test]
    fn a_device_on_a_withdrawn_release_goes_back_but_not_below_its_floor() {
        let mut idx = index("1.1.0", Some(("1.2.0", 10.0)), None);
        idx.suggested.as_mut().unwrap().security_version = 3;
        idx.rollback_to(&"1.1.0".parse().unwrap()).unwrap();
        let d = decide_with_floor(&idx, "1.2.0", 3);
        assert_eq!(
            (d.update, d.reason, d.version.as_deref()),
            (true, Reason::Rollback, Some("1.1.0"))
        );
        assert_eq!(d.message, "runs 1.2.0, which was withdrawn: back to 1.1.0");
        let d = decide_with_floor(&idx, "1.2.0", 4);
        assert_eq!((d.update, d.reason), (false, Reason::RollbackBlocked));
        assert_eq!(
            d.message,
            "runs 1.2.0, which was withdrawn, but 1.1.0 has security version 3, below this device's floor 4: it stays"
        );
        // Devices that never took it are not disturbed.
        let d = decide_with_floor(&idx, "1.1.0", 0);
        assert_eq!((d.update, d.reason), (false, Reason::Newest));
        // A fix published after the withdrawal is an update, not a rollback.
        idx.suggested = Some(release("1.2.1"));
        let d = decide_with_floor(&idx, "1.2.0", 9);
        assert_eq!(
            (d.update, d.reason, d.version.as_deref()),
            (true, Reason::Suggested, Some("1.2.1"))
        );
        // Withdrawn with nothing to return to.
        idx.suggested = None;
        let d = decide_with_floor(&idx, "1.2.0", 0);
        assert_eq!((d.update, d.reason), (false, Reason::NoRelease));
        assert!(
            d.message.contains("no release to return to"),
            "{}",
            d.message
        );
    }

    #[test]
    fn below_the_minimum_a_device_takes_the_rollout_when_only_it_reaches_the_minimum() {
        let idx = index("1.1.0", Some(("1.2.0", 1.0)), Some("1.2.0"));
        let d = decide_for(&idx, &device_id(false, 1.0), Pin::Conservative, "1.1.0");
        assert_eq!((d.update, d.reason), (true, Reason::BelowMinimum));
        assert_eq!(d.version.as_deref(), Some("1.2.0"));
    }

    #[test]
    fn incompatible_index_and_failed_or_pending_installs_do_not_update() {
        let mut idx = index("1.1.0", None, None);
        idx.compatible = "other".into();
        let d = decide_for(&idx, "x", Pin::None, "1.0.0");
        assert_eq!((d.update, d.reason), (false, Reason::Incompatible));

        let idx = index("1.1.0", None, None);
        let running: Version = "1.0.0".parse().unwrap();
        for (result, reason) in [
            (InstallResult::Installed, Reason::AwaitingReboot),
            (InstallResult::RolledBack, Reason::FailedHere),
            (InstallResult::Unhealthy, Reason::FailedHere),
        ] {
            let last = InstallRecord {
                target: Group::B,
                version: "1.1.0".into(),
                result,
                time: String::new(),
                error: None,
                downloaded_bytes: None,
                reused_bytes: None,
                rollback_from: None,
            };
            let d = decide(
                &idx,
                &Device {
                    compatible: "acme",
                    id: "x",
                    pin: Pin::None,
                    running: Some(&running),
                    last_install: Some(&last),
                    security_floor: 0,
                },
            );
            assert_eq!((d.update, d.reason), (false, reason), "{}", d.message);
        }
    }
}

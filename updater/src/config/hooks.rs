//! `[hooks]`: the device's own hooks, and the time any hook may take.
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// docs/hooks.md.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HooksConfig {
    /// A folder whose executables run, in name order, at every hook event of every install.
    pub dir: Option<PathBuf>,
    /// How long one run of one hook may take before it is killed and the install fails.
    pub timeout: Duration,
}

pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(300);

impl Default for HooksConfig {
    fn default() -> Self {
        HooksConfig {
            dir: None,
            timeout: DEFAULT_HOOK_TIMEOUT,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHooks {
    dir: Option<PathBuf>,
    /// "90s", "5m".
    timeout: Option<String>,
}

impl RawHooks {
    pub(super) fn settings(
        self,
        resolve: &impl Fn(&Path) -> PathBuf,
    ) -> Result<HooksConfig, String> {
        let timeout = super::duration("hooks.timeout", self.timeout.as_deref())?
            .unwrap_or(DEFAULT_HOOK_TIMEOUT);
        if timeout.is_zero() {
            return Err("hooks.timeout must be more than 0".into());
        }
        Ok(HooksConfig {
            dir: self.dir.map(|d| resolve(&d)),
            timeout,
        })
    }
}

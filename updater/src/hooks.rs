//! Integrators' hooks (docs/hooks.md): the bundle's own hook executable, signed with it, and the
//! device's hooks from `[hooks] dir`, run at the steps of an install with the context in their
//! environment. Each run has a time limit; its output goes to the log; a failure stops the install
//! with the hook's last line in the error.
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bundle::HookEvent;
use tracing::{info, warn};

use crate::config::HooksConfig;
use crate::error::{Result, UpdaterError};
use crate::process::{self, Ended, Output};

/// Why a hook stopped an install.
#[derive(Debug, thiserror::Error)]
pub enum HookFailure {
    #[error("could not be started: {0}")]
    Start(#[source] std::io::Error),
    #[error("exited with {code}{}", said(.last_line))]
    Exit {
        code: i32,
        last_line: Option<String>,
    },
    #[error("was killed by signal {signal}{}", said(.last_line))]
    Signal {
        signal: i32,
        last_line: Option<String>,
    },
    #[error("did not finish within {} s{}", .limit.as_secs_f32(), said(.last_line))]
    TimedOut {
        limit: Duration,
        last_line: Option<String>,
    },
}

fn said(line: &Option<String>) -> String {
    line.as_ref().map_or(String::new(), |l| format!(": {l}"))
}

/// Where a hook comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Bundle,
    Device,
}

#[derive(Debug)]
struct Hook {
    path: PathBuf,
    origin: Origin,
    /// None: every event (device hooks pick their events themselves).
    events: Option<Vec<HookEvent>>,
}

impl Hook {
    fn handles(&self, event: HookEvent) -> bool {
        self.events.as_ref().is_none_or(|e| e.contains(&event))
    }

    /// "bundle hook", "device hook /etc/updater/hooks.d/10-stop-motors": for the log and errors.
    fn label(&self) -> String {
        match self.origin {
            Origin::Bundle => "bundle hook".into(),
            Origin::Device => format!("device hook {}", self.path.display()),
        }
    }
}

/// The hooks of one install, ready to run: the device's first, in name order, then the bundle's.
#[derive(Debug)]
pub struct Hooks {
    hooks: Vec<Hook>,
    timeout: Duration,
    /// The context every run gets (`UPDATER_*`).
    env: Vec<(&'static str, String)>,
    /// The bundle's executable, written out for the install and removed after it.
    written: Option<PathBuf>,
}

/// The bundle's hook executable: the events the manifest names and its verified bytes.
pub struct BundleHook<'a> {
    pub events: &'a [HookEvent],
    pub executable: &'a [u8],
}

impl Hooks {
    /// Lists the device's hooks and writes the bundle's executable into `work_dir` (which must
    /// allow executing it: the state folder).
    pub fn prepare(
        config: &HooksConfig,
        work_dir: &Path,
        bundle: Option<BundleHook<'_>>,
        env: Vec<(&'static str, String)>,
    ) -> Result<Hooks> {
        let mut hooks = match &config.dir {
            Some(dir) => device_hooks(dir)?,
            None => Vec::new(),
        };
        let mut written = None;
        if let Some(bundle) = bundle {
            let path = work_dir.join("bundle-hook");
            write_executable(&path, bundle.executable)?;
            written = Some(path.clone());
            hooks.push(Hook {
                path,
                origin: Origin::Bundle,
                events: Some(bundle.events.to_vec()),
            });
        }
        Ok(Hooks {
            hooks,
            timeout: config.timeout,
            env,
            written,
        })
    }

    /// Whether any hook runs at `event` (so that a slot is mounted only for someone).
    pub fn any_for(&self, event: HookEvent) -> bool {
        self.hooks.iter().any(|h| h.handles(event))
    }

    /// Runs every hook that handles `event`, with `extra` added to the context; the first that
    /// fails stops the rest.
    pub fn run(&self, event: HookEvent, extra: &[(&'static str, String)]) -> Result<()> {
        for hook in self.hooks.iter().filter(|h| h.handles(event)) {
            let label = hook.label();
            info!(hook = %label, %event, "running");
            let mut command = Command::new(&hook.path);
            command
                .arg(event.name())
                .env("UPDATER_HOOK_EVENT", event.name())
                .env(
                    "UPDATER_HOOK_SOURCE",
                    match hook.origin {
                        Origin::Bundle => "bundle",
                        Origin::Device => "device",
                    },
                )
                .envs(self.env.iter().chain(extra).map(|(k, v)| (k, v)));
            run_one(&mut command, self.timeout, &label).map_err(|failure| UpdaterError::Hook {
                hook: label,
                event,
                failure,
            })?;
        }
        Ok(())
    }
}

impl Drop for Hooks {
    fn drop(&mut self) {
        if let Some(path) = &self.written {
            let _ = fs::remove_file(path);
        }
    }
}

/// Runs one hook; its output goes to the log (level info: a failure's cause is in its error).
fn run_one(command: &mut Command, timeout: Duration, label: &str) -> Result<(), HookFailure> {
    let (mut last_out, mut last_err) = (None, None);
    let mut log = |from: Output, line: &str| {
        let line = line.trim_end();
        if line.is_empty() {
            return;
        }
        info!(hook = %label, "{line}");
        match from {
            Output::Stdout => last_out = Some(line.to_string()),
            Output::Stderr => last_err = Some(line.to_string()),
        }
    };
    let ended = spawn_retrying(|| process::run_with_output(command, timeout, &mut log))
        .map_err(HookFailure::Start)?;
    // What the hook said last on stderr names the cause best; else its last word on stdout.
    let last_line = last_err.or(last_out);
    match ended {
        Ended::Exited(status) if status.success() => Ok(()),
        Ended::Exited(status) => match status.code() {
            Some(code) => Err(HookFailure::Exit { code, last_line }),
            None => Err(HookFailure::Signal {
                signal: std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0),
                last_line,
            }),
        },
        Ended::TimedOut => Err(HookFailure::TimedOut {
            limit: timeout,
            last_line,
        }),
    }
}

/// A file just written can be briefly "busy" for exec while another thread's fork still holds its
/// descriptor (ETXTBSY); that passes.
fn spawn_retrying<T>(mut spawn: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    let mut tries = 0;
    loop {
        match spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 50 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// The executables in `dir`, in name order; a missing folder holds none. Files without an execute
/// bit and names starting with '.' are left out, as run-parts does.
fn device_hooks(dir: &Path) -> Result<Vec<Hook>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(UpdaterError::io(format!("reading hooks {}", dir.display()))(e)),
    };
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(UpdaterError::io(format!("reading hooks {}", dir.display())))?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let Ok(meta) = fs::metadata(&path) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        if meta.permissions().mode() & 0o111 == 0 {
            warn!(hook = %path.display(), "not executable: not run");
            continue;
        }
        paths.push(path);
    }
    paths.sort();
    Ok(paths
        .into_iter()
        .map(|path| Hook {
            path,
            origin: Origin::Device,
            events: None,
        })
        .collect())
}

fn write_executable(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = UpdaterError::io(format!("writing the bundle's hook to {}", path.display()));
    let _ = fs::remove_file(path);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o700)
        .open(path)
        .map_err(io)?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(UpdaterError::io(format!(
            "writing the bundle's hook to {}",
            path.display()
        )))
}

//! libabupdater: the updater for the device's own C and C++ software (docs/fleet.md, "C library").
//! The same operations as the CLI and the local API: versions and booted group, check, install
//! from a path or URL with progress, cancel. Calls that fail return NULL or a non-zero code (the
//! CLI's exit code for that class of failure) and leave a one-line message for
//! `abu_last_error()` on the calling thread.
use std::cell::RefCell;
use std::ffi::{c_char, c_void, CStr, CString};
use std::path::Path;
use std::ptr;
use std::sync::Arc;

use updater::activity::{Activity, CancelAnswer, Phase};
use updater::install::{install, InstallOptions};
use updater::progress::{Observer, Tick};
use updater::state::StateDir;
use updater::status::health;
use updater::{fleet, source, Config, UpdaterError};

/// A bad argument (a NULL pointer, a string that is not UTF-8).
pub const ABU_EINVAL: i32 = 2;

/// An opened device configuration. Thread-safe: one thread may install while another reads the
/// status or cancels.
pub struct AbuHandle {
    config: Config,
    activity: Arc<Activity>,
}

/// Told the step (`install`, then `read-back`), the bytes done and the bytes in total. Called from
/// a thread of the library while abu_install runs.
pub type AbuProgressFn =
    Option<unsafe extern "C" fn(step: *const c_char, done: u64, total: u64, user: *mut c_void)>;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_error(message: &str) {
    let text = CString::new(message.replace('\0', " ")).expect("NULs replaced");
    LAST_ERROR.with(|e| *e.borrow_mut() = text);
}

fn fail(err: &UpdaterError) -> i32 {
    set_error(&err.to_string());
    i32::from(err.exit_code())
}

/// # Safety
/// `text` is NULL or a NUL-terminated string.
unsafe fn str_arg<'a>(text: *const c_char, what: &str) -> Option<&'a str> {
    if text.is_null() {
        set_error(&format!("{what} is NULL"));
        return None;
    }
    match CStr::from_ptr(text).to_str() {
        Ok(s) => Some(s),
        Err(_) => {
            set_error(&format!("{what} is not UTF-8"));
            None
        }
    }
}

fn into_c_string(json: String) -> *mut c_char {
    CString::new(json).map_or(ptr::null_mut(), CString::into_raw)
}

fn json_or_null<T: serde::Serialize>(result: Result<T, UpdaterError>) -> *mut c_char {
    match result {
        Ok(value) => into_c_string(serde_json::to_string(&value).expect("serializes")),
        Err(err) => {
            fail(&err);
            ptr::null_mut()
        }
    }
}

/// The library's version, e.g. "0.1.0"; a static string.
#[no_mangle]
pub extern "C" fn abu_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The last failure on this thread, as one line; valid until the next call on this thread.
#[no_mangle]
pub extern "C" fn abu_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// Opens the device configuration (NULL: /etc/updater/system.toml). NULL on failure.
///
/// # Safety
/// `config_path` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn abu_open(config_path: *const c_char) -> *mut AbuHandle {
    let path = if config_path.is_null() {
        updater::config::DEFAULT_PATH
    } else {
        match str_arg(config_path, "config_path") {
            Some(p) => p,
            None => return ptr::null_mut(),
        }
    };
    let opened = Config::load(Path::new(path)).and_then(|config| {
        let state = StateDir::open_read_only(&config.state_dir).load()?;
        Ok(AbuHandle {
            activity: Arc::new(Activity::from_state(&state)),
            config,
        })
    });
    match opened {
        Ok(handle) => Box::into_raw(Box::new(handle)),
        Err(err) => {
            fail(&err);
            ptr::null_mut()
        }
    }
}

/// Closes a handle from abu_open (NULL is ignored). No install may be running on it.
///
/// # Safety
/// `handle` is NULL or from abu_open, and not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn abu_close(handle: *mut AbuHandle) {
    if !handle.is_null() {
        drop(Box::from_raw(handle));
    }
}

/// Frees a string returned by this library (NULL is ignored).
///
/// # Safety
/// `text` is NULL or a string from this library, not freed before.
#[no_mangle]
pub unsafe extern "C" fn abu_free_string(text: *mut c_char) {
    if !text.is_null() {
        drop(CString::from_raw(text));
    }
}

/// # Safety
/// `handle` is NULL or a live handle from abu_open.
unsafe fn handle_ref<'a>(handle: *const AbuHandle) -> Option<&'a AbuHandle> {
    let handle = handle.as_ref();
    if handle.is_none() {
        set_error("handle is NULL");
    }
    handle
}

/// JSON as `GET /health` answers: updater version, booted and next group, each group's state and
/// component versions. Free with abu_free_string; NULL on failure.
///
/// # Safety
/// `handle` is a live handle from abu_open.
#[no_mangle]
pub unsafe extern "C" fn abu_health_json(handle: *const AbuHandle) -> *mut c_char {
    match handle_ref(handle) {
        Some(h) => json_or_null(health(&h.config)),
        None => ptr::null_mut(),
    }
}

/// JSON as `updater check --json` prints: whether an update applies (`update`), to which
/// `version`, and why (`reason`, `message`). Free with abu_free_string; NULL on failure.
///
/// # Safety
/// `handle` is a live handle from abu_open.
#[no_mangle]
pub unsafe extern "C" fn abu_check_json(handle: *const AbuHandle) -> *mut c_char {
    match handle_ref(handle) {
        Some(h) => json_or_null(fleet::check(&h.config)),
        None => ptr::null_mut(),
    }
}

/// JSON as `GET /update/status` answers: state (idle, downloading, installing, ready-to-reboot,
/// failed), progress and the last error of installs made through this handle.
///
/// # Safety
/// `handle` is a live handle from abu_open.
#[no_mangle]
pub unsafe extern "C" fn abu_status_json(handle: *const AbuHandle) -> *mut c_char {
    match handle_ref(handle) {
        Some(h) => json_or_null(Ok::<_, UpdaterError>(h.activity.status())),
        None => ptr::null_mut(),
    }
}

struct UserData(*mut c_void);
// SAFETY: the caller of abu_install promises that `user` may be used from the library's threads.
unsafe impl Send for UserData {}
unsafe impl Sync for UserData {}

impl UserData {
    fn get(&self) -> *mut c_void {
        self.0
    }
}

/// Installs a bundle from a path, "-" (standard input) or an http(s):// URL into the inactive
/// group; blocks until done. 0 on success, else the CLI's exit code for the failure (14 when
/// cancelled). `progress` may be NULL.
///
/// # Safety
/// `handle` is a live handle from abu_open, `source` a NUL-terminated string, `progress` NULL or
/// a function that may be called from another thread with `user`.
#[no_mangle]
pub unsafe extern "C" fn abu_install(
    handle: *const AbuHandle,
    source: *const c_char,
    progress: AbuProgressFn,
    user: *mut c_void,
) -> i32 {
    // The handle first: the error names the first argument that is wrong.
    let Some(h) = handle_ref(handle) else {
        return ABU_EINVAL;
    };
    let Some(source) = str_arg(source, "source") else {
        return ABU_EINVAL;
    };
    let also: Option<Observer> = progress.map(|callback| {
        let user = UserData(user);
        Arc::new(move |tick: &Tick| {
            let step = CString::new(tick.step.as_str()).unwrap_or_default();
            // SAFETY: as promised by the caller of abu_install.
            unsafe { callback(step.as_ptr(), tick.done, tick.total, user.get()) }
        }) as Observer
    });
    let Ok(bundle_source) = source.parse::<source::BundleSource>();
    let starts_as = match bundle_source {
        source::BundleSource::Url(_) => Phase::Downloading,
        _ => Phase::Installing,
    };
    let result = h.activity.run(
        source,
        starts_as,
        &InstallOptions::default(),
        also,
        |options, progress| {
            install(
                &h.config,
                source::open(&bundle_source, &h.config.http, options.cancel.clone())?,
                options,
                progress,
            )
        },
    );
    match result {
        Ok(_) => 0,
        Err(err) => fail(&err),
    }
}

/// Asks the install running on this handle to stop; it returns 14 and leaves the target group
/// unbootable. 0 when the install will stop, 1 when none was running, 2 when it is too late: the
/// install verified everything and is activating its group.
///
/// # Safety
/// `handle` is a live handle from abu_open.
#[no_mangle]
pub unsafe extern "C" fn abu_cancel(handle: *const AbuHandle) -> i32 {
    match handle_ref(handle) {
        Some(h) => match h.activity.cancel() {
            CancelAnswer::Cancelling => 0,
            CancelAnswer::NothingRuns => {
                set_error("no install is running");
                1
            }
            CancelAnswer::TooLate => {
                set_error("too late to cancel: the install is activating its group");
                2
            }
        },
        None => ABU_EINVAL,
    }
}

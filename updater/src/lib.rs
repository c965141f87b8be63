//! The on-device updater: installs signed bundles into the inactive A/B group, keeps the
//! bootloader's try-flags and the device's update state, and reports them.
// One audited call (sync_file_range in install::readback) needs libc; all else is safe code.
#![deny(unsafe_code)]

mod names;

pub mod activity;
pub mod assess;
pub mod bootloader;
pub mod cancel;
pub mod config;
pub mod daemon;
pub mod data;
#[cfg(feature = "dbus")]
pub mod dbus;
pub mod display;
pub mod error;
pub mod fault;
pub mod firmware;
pub mod fleet;
pub mod fsutil;
#[doc(hidden)]
pub mod fuzzing;
pub mod group;
pub mod hooks;
pub mod install;
pub mod mount;
pub mod net;
pub mod process;
pub mod progress;
pub mod runtime_health;
pub mod slots;
pub mod source;
pub mod state;
pub mod status;
pub mod storage;
pub mod url;

pub use config::Config;
pub use error::{Result, UpdaterError};

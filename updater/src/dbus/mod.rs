//! RAUC's D-Bus service interface (`de.pengutronix.rauc.Installer` on `/`, as RAUC 1.8 documents
//! it), so that software written for RAUC (its `rauc` client, rauc-hawkbit-updater, ...) drives
//! this updater unchanged. `updater daemon` serves it on the system bus with `[dbus] enable =
//! true`; docs/rauc-migration.md says what maps to what.
mod args;
pub mod slots;

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;

use bundle::{BundleReader, Keyring};
use futures_lite::future::block_on;
use tracing::{info, warn};
use zbus::fdo::{self, RequestNameFlags};
use zbus::message::Header;
use zbus::object_server::{InterfaceRef, SignalEmitter};
use zbus::zvariant::{OwnedValue, Str};

use crate::activity::{Activity, Phase, Reservation};
use crate::assess::{mark, Mark};
use crate::config::Config;
use crate::display::escaped;
use crate::error::{Result, UpdaterError};
use crate::install::{install_from, InstallOptions};
use crate::progress::Tick;
use crate::source::BundleSource;
use crate::state::StateDir;
use crate::status::status;
use slots::Field;

/// The well-known name RAUC's service owns.
pub const BUS_NAME: &str = "de.pengutronix.rauc";
const OBJECT_PATH: &str = "/";

/// What the properties say; changed only by an install, each change signalled.
struct Shown {
    operation: &'static str,
    last_error: String,
    progress: (i32, String, i32),
}

pub struct Installer {
    config: Arc<Config>,
    activity: Arc<Activity>,
    shown: Arc<Mutex<Shown>>,
}

/// Connects to the system bus (`DBUS_SYSTEM_BUS_ADDRESS` when set), serves the interface and
/// takes the name. The connection serves on its own thread for as long as it is kept.
pub fn serve(config: Arc<Config>, activity: Arc<Activity>) -> Result<zbus::blocking::Connection> {
    let installer = Installer {
        config,
        activity,
        shown: Arc::new(Mutex::new(Shown {
            operation: "idle",
            last_error: String::new(),
            progress: (0, String::new(), 0),
        })),
    };
    let connection = zbus::blocking::connection::Builder::system()
        .and_then(|b| b.serve_at(OBJECT_PATH, installer))
        .and_then(|b| b.build())
        .map_err(bus_error)?;
    // Not queued behind an owner (a RAUC service, a second daemon): refused, and said so.
    connection
        .request_name_with_flags(BUS_NAME, RequestNameFlags::DoNotQueue.into())
        .map_err(bus_error)?;
    eprintln!("updater: D-Bus: serving {BUS_NAME} (RAUC's Installer interface) on the system bus");
    Ok(connection)
}

fn bus_error(err: zbus::Error) -> UpdaterError {
    match err {
        zbus::Error::NameTaken => UpdaterError::Busy(format!(
            "another process owns {BUS_NAME} on the D-Bus system bus \
             (a RAUC service, or a second updater daemon)"
        )),
        err => UpdaterError::Io {
            context: format!("serving {BUS_NAME} on the D-Bus system bus"),
            source: std::io::Error::other(err),
        },
    }
}

/// What changes the device is root's alone, whatever the bus's policy lets through: a bus
/// configured more openly than the shipped policy file must not open installs to everyone.
async fn require_root(connection: &zbus::Connection, header: &Header<'_>) -> fdo::Result<()> {
    let sender = header
        .sender()
        .ok_or_else(|| fdo::Error::AccessDenied("a call without a sender".into()))?;
    let uid = fdo::DBusProxy::new(connection)
        .await?
        .get_connection_unix_user(sender.clone().into())
        .await?;
    match uid {
        0 => Ok(()),
        uid => Err(fdo::Error::AccessDenied(format!(
            "only root may install or mark slots (the caller is uid {uid})"
        ))),
    }
}

fn failed(err: impl std::fmt::Display) -> fdo::Error {
    fdo::Error::Failed(err.to_string())
}

#[zbus::interface(name = "de.pengutronix.rauc.Installer")]
impl Installer {
    /// Starts an install and answers at once; `Progress` follows it and `Completed` ends it.
    async fn install_bundle(
        &self,
        source: String,
        args: HashMap<String, OwnedValue>,
        #[zbus(object_server)] server: &zbus::ObjectServer,
        #[zbus(connection)] connection: &zbus::Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> fdo::Result<()> {
        require_root(connection, &header).await?;
        let options = args::install_options(&args).map_err(fdo::Error::InvalidArgs)?;
        self.begin(&source, options, server).await
    }

    /// RAUC's older form of `InstallBundle`, without arguments.
    async fn install(
        &self,
        source: String,
        #[zbus(object_server)] server: &zbus::ObjectServer,
        #[zbus(connection)] connection: &zbus::Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> fdo::Result<()> {
        require_root(connection, &header).await?;
        self.begin(&source, InstallOptions::default(), server).await
    }

    /// A bundle's compatible and version, from its manifest once the signature is verified (what
    /// `rauc info` cannot do: it reads only RAUC's own bundles, locally).
    #[zbus(out_args("compatible", "version"))]
    fn info(&self, bundle: String) -> fdo::Result<(String, String)> {
        let keyring =
            Keyring::load(&self.config.keyring).map_err(|e| failed(UpdaterError::Keyring(e)))?;
        let file = File::open(&bundle)
            .map_err(|e| failed(UpdaterError::io(format!("opening bundle {bundle}"))(e)))?;
        let reader = BundleReader::open(BufReader::new(file), &keyring)
            .map_err(|e| failed(UpdaterError::from(e)))?;
        let manifest = reader.manifest();
        Ok((manifest.compatible.clone(), manifest.version.to_string()))
    }

    /// `good`, `bad` or `active` for `booted`, `other` or a slot name; answers the parent slot's
    /// name and what was done, in RAUC's words.
    #[zbus(out_args("slot_name", "message"))]
    async fn mark(
        &self,
        state: String,
        slot_identifier: String,
        #[zbus(connection)] connection: &zbus::Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> fdo::Result<(String, String)> {
        require_root(connection, &header).await?;
        let (how, done) = match state.as_str() {
            "good" => (Mark::Good { force: false }, "marked slot {} as good"),
            "bad" => (Mark::Bad, "marked slot {} as bad"),
            "active" => (Mark::Active, "activated slot {}"),
            other => {
                return Err(fdo::Error::InvalidArgs(format!(
                    "unknown mark '{}': give good, bad or active",
                    escaped(other)
                )))
            }
        };
        let booted = self.config.booted_group().map_err(failed)?;
        let group = slots::group_of(&slot_identifier, booted, &self.config)
            .map_err(fdo::Error::InvalidArgs)?;
        mark(&self.config, Some(group), how).map_err(failed)?;
        let name = slots::slot_name(slots::root_class(&self.config), group);
        info!(slot = %name, state = %state, "D-Bus: marked");
        Ok((name.clone(), done.replace("{}", &name)))
    }

    fn get_slot_status(&self) -> fdo::Result<Vec<(String, HashMap<String, OwnedValue>)>> {
        let status = status(&self.config).map_err(failed)?;
        let state = StateDir::open_read_only(&self.config.state_dir)
            .load()
            .map_err(failed)?;
        Ok(slots::entries(&self.config, &status, &state)
            .into_iter()
            .map(|entry| {
                let fields = entry
                    .fields
                    .into_iter()
                    .map(|(key, field)| (key.to_string(), owned(field)))
                    .collect();
                (entry.name, fields)
            })
            .collect())
    }

    /// The parent slot of the group the bootloader starts next.
    fn get_primary(&self) -> fdo::Result<String> {
        let status = status(&self.config).map_err(failed)?;
        Ok(slots::slot_name(
            slots::root_class(&self.config),
            status.next,
        ))
    }

    #[zbus(property)]
    fn operation(&self) -> String {
        self.shown().operation.to_string()
    }

    #[zbus(property)]
    fn last_error(&self) -> String {
        self.shown().last_error.clone()
    }

    #[zbus(property)]
    fn progress(&self) -> (i32, String, i32) {
        self.shown().progress.clone()
    }

    #[zbus(property)]
    fn compatible(&self) -> String {
        self.config.compatible.clone()
    }

    /// This updater has no variants: always empty.
    #[zbus(property)]
    fn variant(&self) -> String {
        String::new()
    }

    /// The booted group's bootname (`A`, `B` or `R`).
    #[zbus(property)]
    fn boot_slot(&self) -> fdo::Result<String> {
        self.config
            .booted_group()
            .map(|g| g.to_string())
            .map_err(failed)
    }

    #[zbus(signal)]
    async fn completed(emitter: &SignalEmitter<'_>, result: i32) -> zbus::Result<()>;
}

/// The properties' values; a panic elsewhere while holding them leaves them readable.
fn lock(shown: &Mutex<Shown>) -> MutexGuard<'_, Shown> {
    shown.lock().unwrap_or_else(|e| e.into_inner())
}

fn owned(field: Field) -> OwnedValue {
    match field {
        Field::Text(text) => OwnedValue::from(Str::from(text)),
        Field::Count(count) => OwnedValue::from(count),
    }
}

impl Installer {
    fn shown(&self) -> MutexGuard<'_, Shown> {
        lock(&self.shown)
    }

    /// Starts an install with a handle on this interface, for the signals it will send.
    async fn begin(
        &self,
        source: &str,
        options: InstallOptions,
        server: &zbus::ObjectServer,
    ) -> fdo::Result<()> {
        let me = server
            .interface::<_, Installer>(OBJECT_PATH)
            .await
            .map_err(failed)?;
        self.start(source, options, me).map_err(failed)
    }

    /// Claims the install slot and the state folder now, so that a second install (over D-Bus,
    /// the local API or the CLI) is refused in this call's answer; then installs on a thread.
    fn start(
        &self,
        source: &str,
        options: InstallOptions,
        me: InterfaceRef<Installer>,
    ) -> Result<()> {
        let source = match source.parse::<BundleSource>() {
            Ok(BundleSource::Stdin) => {
                return Err(UpdaterError::Usage(
                    "a D-Bus install reads a file or an http(s) URL, not standard input".into(),
                ))
            }
            Ok(source) => source,
            Err(never) => match never {},
        };
        let reservation = self.activity.reserve()?;
        drop(StateDir::lock(&self.config.state_dir)?);
        {
            let mut shown = self.shown();
            shown.operation = "installing";
            shown.last_error.clear();
            shown.progress = (0, "Installing".into(), 1);
        }
        emit(&me, Changed::Started);
        eprintln!(
            "updater: D-Bus: installing from {}",
            escaped(&source.to_string())
        );
        let config = Arc::clone(&self.config);
        let shown = Arc::clone(&self.shown);
        thread::Builder::new()
            .name("dbus-install".into())
            .spawn(move || run(&config, reservation, &source, &options, &shown, &me))
            .map_err(UpdaterError::io("starting the D-Bus install"))?;
        Ok(())
    }
}

/// Which properties an update changed.
enum Changed {
    Started,
    Progress,
    Ended { result: i32 },
}

fn emit(me: &InterfaceRef<Installer>, changed: Changed) {
    let emitter = me.signal_emitter();
    let sent = block_on(async {
        let iface = me.get().await;
        match changed {
            Changed::Started => {
                iface.operation_changed(emitter).await?;
                iface.last_error_changed(emitter).await?;
                iface.progress_changed(emitter).await
            }
            Changed::Progress => iface.progress_changed(emitter).await,
            Changed::Ended { result } => {
                iface.progress_changed(emitter).await?;
                // The error before `Completed`: RAUC's client prints it and then leaves.
                iface.last_error_changed(emitter).await?;
                iface.operation_changed(emitter).await?;
                Installer::completed(emitter, result).await
            }
        }
    });
    if let Err(err) = sent {
        warn!(%err, "D-Bus: a signal was not sent");
    }
}

fn run(
    config: &Config,
    reservation: Reservation,
    source: &BundleSource,
    options: &InstallOptions,
    shown: &Arc<Mutex<Shown>>,
    me: &InterfaceRef<Installer>,
) {
    let observer = {
        let (shown, me) = (Arc::clone(shown), me.clone());
        Arc::new(move |tick: &Tick| {
            // 100 only once the install has completed.
            let percent = tick.percent().unwrap_or(0).min(99) as i32;
            let message = match tick.subject {
                Some(version) => format!("Installing {version} ({})", tick.step),
                None => format!("Installing ({})", tick.step),
            };
            let moved = {
                let mut shown = lock(&shown);
                let moved = shown.progress.0 != percent || shown.progress.1 != message;
                shown.progress = (percent, message, 1);
                moved
            };
            // Per percent, not per chunk: the bus carries about a hundred of these per install.
            if moved {
                emit(&me, Changed::Progress);
            }
        })
    };
    let starts_as = match source {
        BundleSource::Url(_) => Phase::Downloading,
        _ => Phase::Installing,
    };
    let result = reservation.run(
        &source.to_string(),
        starts_as,
        options,
        Some(observer),
        |options, progress| install_from(config, source, options, progress),
    );
    let code = {
        let mut shown = lock(shown);
        shown.operation = "idle";
        match &result {
            Ok(report) => {
                eprintln!(
                    "updater: D-Bus: installed {} into group {}",
                    report.version, report.target
                );
                shown.progress = (100, "Installing done.".into(), 1);
                0
            }
            Err(err) => {
                eprintln!("updater: D-Bus: install: {}", escaped(&err.to_string()));
                shown.last_error = err.to_string();
                shown.progress = (100, "Installing failed.".into(), 1);
                1
            }
        }
    };
    emit(me, Changed::Ended { result: code });
}

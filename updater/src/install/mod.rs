//! `updater install`: the guarded path from a bundle to a bootable group.
//!
//! Order, and why (docs/boot-flow.md, "The install's order"):
//! 1. keyring, booted group, boot state and bundle signature, then compatibility, version policy and
//!    slot fit: all before anything changes;
//! 2. the target group is made unbootable before its first byte changes;
//! 3. chunks are verified, then written; the archive must end where the manifest says;
//! 4. every chunk is read back from the device and compared (most while later ones are still being
//!    written, the rest after the fsync); only then is the new version recorded and the group
//!    activated.
mod adaptive;
mod archive;
mod delta;
pub mod from_dir;
mod pipeline;
mod policy;
mod readback;

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bundle::{BundleReader, ComponentKind, HookEvent, Keyring, Manifest};
use tracing::{info, warn};

use crate::bootloader;
use crate::cancel::CancelToken;
use crate::config::Config;
use crate::error::{Result, UpdaterError};
use crate::firmware::store as firmware_store;
use crate::group::Group;
use crate::hooks::{BundleHook, Hooks};
use crate::mount::Mounted;
use crate::net::ranges::RangedFile;
use crate::net::{Client, Download, Served};
use crate::progress::{Progress, Step};
use crate::slots::{Slot, SlotInfo};
use crate::source::{BundleSource, Cancellable, Stream};
use crate::state::{
    now, ComponentRecord, EventKind, GroupRecord, InstallRecord, InstallResult, State, StateDir,
};
use adaptive::{Local, Plan, Producer, Remote};
use pipeline::Incoming;
pub use policy::Policy;
use readback::SlotTarget;

#[derive(Debug, Clone, Default)]
pub struct InstallOptions {
    pub allow_downgrade: bool,
    /// Write this group instead of the other member of the A/B pair (R only when named here).
    pub target: Option<Group>,
    /// SHA-256 of the signed manifest a release index names: any other bundle is refused before
    /// anything is written.
    pub expect_manifest: Option<[u8; 32]>,
    /// Set from another thread to stop the install; the target group stays unbootable.
    pub cancel: Option<Arc<CancelToken>>,
    /// A release index withdrew the running version (this one): the install goes back to an
    /// older release, and is recorded as a rollback.
    pub rollback_from: Option<semver::Version>,
}

impl InstallOptions {
    fn cancelled(&self) -> bool {
        self.cancel.as_ref().is_some_and(|c| c.is_cancelled())
    }

    /// The point of no return; false when a cancel came first.
    fn commit(&self) -> bool {
        self.cancel.as_ref().is_none_or(|c| c.commit())
    }
}

#[derive(Debug, Clone)]
pub struct InstallReport {
    pub target: Group,
    pub version: semver::Version,
    pub bytes: u64,
    /// Bytes of the bundle read (from a file or stdin) or received (from a server).
    pub downloaded: u64,
    /// Bytes of the images the device held already and did not download.
    pub reused: u64,
}

/// Installs the bundle that `source` streams.
pub fn install(
    config: &Config,
    source: impl Read,
    options: &InstallOptions,
    progress: &Progress,
) -> Result<InstallReport> {
    install_opened(config, || Ok(source), options, progress)
}

/// [`install`] of a stream opened only once the device is locked: a source that keeps its reader
/// waiting (a FIFO, a slow pipe) already holds off every other install while it waits.
fn install_opened<R: Read>(
    config: &Config,
    open: impl FnOnce() -> Result<R>,
    options: &InstallOptions,
    progress: &Progress,
) -> Result<InstallReport> {
    run(config, options, progress, |keyring, cancel| {
        let reader = BundleReader::open(
            Cancellable {
                inner: open()?,
                cancel,
            },
            keyring,
        )
        .map_err(|e| network_or(e.into()))?;
        Ok((reader, None))
    })
}

/// Installs from a file, standard input or a URL (`install_url`).
pub fn install_from(
    config: &Config,
    source: &BundleSource,
    options: &InstallOptions,
    progress: &Progress,
) -> Result<InstallReport> {
    match source {
        BundleSource::Url(url) => install_url(config, url, options, progress),
        other => install_opened(
            config,
            || crate::source::open(other, &config.http, options.cancel.clone()),
            options,
            progress,
        ),
    }
}

/// Installs from a URL. When the server answers Range requests and the bundle has a block index
/// (format 2), only what the device does not hold already is downloaded (`adaptive`); otherwise
/// the whole bundle is streamed, and the log says why once.
pub fn install_url(
    config: &Config,
    url: &str,
    options: &InstallOptions,
    progress: &Progress,
) -> Result<InstallReport> {
    let client = Client::new(&config.http)?;
    run(config, options, progress, |keyring, cancel| {
        let download = || -> Result<(BundleReader<Stream>, Served, Arc<AtomicU64>)> {
            let download = Download::start(&client, url, Some(Arc::clone(&cancel)))?;
            let (served, received) = (download.served().clone(), download.received());
            let reader = BundleReader::open(Box::new(download) as Stream, keyring)
                .map_err(|e| network_or(e.into()))?;
            Ok((reader, served, received))
        };
        let (reader, served, received) = download()?;
        if !reader.manifest().fetchable_in_parts() {
            return Ok((reader, None));
        }
        let Some(file) = RangedFile::of(&client, &served, Arc::clone(&cancel)) else {
            warn!(
                "{}: the server does not offer Range requests: downloading the whole bundle",
                served.url
            );
            return Ok((reader, None));
        };
        // The manifest is read and verified: the rest comes in parts, so the download stops.
        let reader = reader.with_source(Box::new(std::io::empty()) as Stream);
        let head = received.load(Ordering::Relaxed);
        match Remote::locate(file, head, &reader)? {
            Some(remote) => Ok((reader, Some(remote))),
            None => {
                warn!(
                    "{}: the server answered a Range request with the whole file: downloading \
                     the whole bundle",
                    served.url
                );
                Ok((download()?.0, None))
            }
        }
    })
}

/// The install proper; `open` opens the bundle once the keyring is loaded and the device is
/// locked, and says whether it can be fetched in parts.
fn run<R: Read>(
    config: &Config,
    options: &InstallOptions,
    progress: &Progress,
    open: impl FnOnce(&Keyring, Arc<CancelToken>) -> Result<(BundleReader<R>, Option<Remote>)>,
) -> Result<InstallReport> {
    let keyring = Keyring::load(&config.keyring).map_err(UpdaterError::Keyring)?;
    let booted = config.booted_group()?;
    let target = choose_target(booted, options.target)?;
    let slots = resolve_group(config, target)?;
    let store = StateDir::lock(&config.state_dir)?;
    let mut state = store.load()?;
    let mut bootloader = bootloader::open(&config.bootloader);
    let mut boot = bootloader::load_or_initial(&bootloader, booted, config.boot.tries)?;

    let cancel = options.cancel.clone().unwrap_or_default();
    let (reader, remote) = open(&keyring, cancel)?;
    let manifest = reader.manifest().clone();
    if let Some(expected) = options.expect_manifest {
        let got = reader.manifest_sha256();
        if got != expected {
            return Err(UpdaterError::WrongBundle(format!(
                "it carries version {} with manifest SHA-256 {}, the index names {}",
                manifest.version,
                hex::encode(got),
                hex::encode(expected)
            )));
        }
    }
    info!(version = %manifest.version, signer = ?reader.signer(), %target, "bundle signature verified");
    Policy {
        compatible: &config.compatible,
        booted,
        allow_downgrade: options.allow_downgrade,
    }
    .check(&manifest, &state)?;
    check_target(config, &manifest, target, &slots)?;
    let hooks = prepare_hooks(
        config,
        &manifest,
        reader.hooks(),
        booted,
        target,
        &slots,
        &state,
    )?;

    // Firmware is kept per group in the state folder, written and verified like a slot.
    let firmware_dir = firmware_store::group_dir(&config.state_dir, target);
    let firmware_slots: Vec<Slot> = manifest
        .components
        .iter()
        .map(|c| Slot {
            path: firmware_store::image_path(&firmware_dir, &c.name),
            size: None,
            filesystem: None,
        })
        .collect();
    let mut specs = Vec::new();
    let mut names = Vec::new();
    for (component, firmware_slot) in manifest.components.iter().zip(&firmware_slots) {
        match component.slot_class.as_deref() {
            Some(class) => {
                names.push(format!("{target}/{class}"));
                specs.push(&slots[class]);
            }
            None => {
                names.push(format!("{target}/firmware {}", component.name));
                specs.push(firmware_slot);
            }
        }
    }
    // A delta's base, and what the device holds already, are found before anything changes, too.
    let bases = match manifest.is_delta() {
        true => {
            let bases = delta_bases(config, booted, &manifest, &specs, &names)?;
            crate::fault::change_after_plan();
            bases
        }
        false => Vec::new(),
    };
    let plan = match &remote {
        Some(remote) => {
            let sources = local_sources(config, booted, &manifest, &specs, &names)?;
            let plan = Plan::make(&manifest, remote, sources)?;
            adaptive::log_plan(&manifest, &plan, remote.downloaded());
            crate::fault::change_after_plan();
            Some(plan)
        }
        None => None,
    };

    // The last word before anything changes: the integrator's checks may refuse the bundle.
    hooks.run(HookEvent::PreInstall, &[])?;

    // Slots are opened (not changed) before anything changes, so an unwritable one changes nothing.
    let mut files: Vec<Option<std::fs::File>> = manifest
        .components
        .iter()
        .zip(&specs)
        .map(|(c, spec)| {
            c.slot_class
                .as_ref()
                .map(|_| spec.open_for_write())
                .transpose()
        })
        .collect::<Result<_>>()?;
    // From here on the target group changes: it must not boot until it is complete and verified.
    boot.make_unbootable(target);
    bootloader.store(&boot)?;
    state.groups.insert(target, GroupRecord::default());
    state.last_install = Some(InstallRecord {
        target,
        version: manifest.version.to_string(),
        result: InstallResult::Installing,
        time: now(),
        error: None,
        downloaded_bytes: None,
        reused_bytes: None,
        rollback_from: options.rollback_from.as_ref().map(ToString::to_string),
    });
    store.save(&state)?;
    // The group's old firmware goes with its old system.
    firmware_store::clear(&firmware_dir)?;
    let mut targets = Vec::new();
    let mut route = HashMap::new();
    let mut extractions = Vec::new();
    for ((component, spec), name) in manifest.components.iter().zip(&specs).zip(names) {
        let index = targets.len();
        route.insert(component.name.clone(), index);
        if let (ComponentKind::Archive, Some(class)) = (component.kind, &component.slot_class) {
            drop(files[index].take());
            let started = archive::start(spec, &name, &mount_dir(config, target, class));
            let (pipe, extraction) = match started {
                Ok(started) => started,
                Err(err) => {
                    record_failure(&store, &mut state, target, &manifest, &err);
                    return Err(err);
                }
            };
            extractions.push(extraction);
            targets.push(SlotTarget {
                name,
                file: pipe,
                reader: None,
            });
            continue;
        }
        let file = match files[index].take() {
            Some(file) => file,
            None => spec.open_for_write()?,
        };
        let reader = std::fs::File::open(&spec.path).map_err(UpdaterError::io(format!(
            "opening slot {name} for reading back"
        )))?;
        targets.push(SlotTarget {
            name,
            file,
            reader: Some(reader),
        });
    }

    let data = match (&remote, &plan) {
        (Some(remote), Some(plan)) => {
            Data::Adaptive(Producer::new(&manifest, remote, plan, progress)?)
        }
        _ if manifest.is_delta() => {
            Data::Delta(Box::new(delta::Producer::new(reader, &manifest, bases)?))
        }
        _ => Data::Stream(Box::new(reader)),
    };
    let written =
        write_and_verify(data, &manifest, &specs, &targets, &route, progress).map_err(network_or);
    // Closing the archives' pipes ends their extractions; an extraction's own error names the
    // cause better than the broken pipe the writer saw.
    drop(targets);
    let extracted = extractions
        .into_iter()
        .map(archive::Extraction::finish)
        .collect::<Result<Vec<()>>>();
    let mut written = match (written, extracted) {
        (Err(UpdaterError::Io { .. }), Err(cause)) => Err(cause),
        (written, extracted) => written.and_then(|transfer| {
            extracted?;
            post_install(config, &hooks, &manifest, &slots, booted, target)?;
            Ok(transfer)
        }),
    };
    // A cancel acknowledged until here wins; from here on the group is activated.
    if options.cancelled() || (written.is_ok() && !options.commit()) {
        written = Err(UpdaterError::Cancelled(target));
    }
    let transfer = match written {
        Ok(transfer) => transfer,
        Err(err) => {
            record_failure(&store, &mut state, target, &manifest, &err);
            return Err(err);
        }
    };

    firmware_store::record(&firmware_dir, &manifest)?;
    state.groups.insert(
        target,
        GroupRecord {
            version: Some(manifest.version.to_string()),
            security_version: manifest.security_version,
            installed_at: Some(now()),
            components: manifest
                .components
                .iter()
                .map(|c| ComponentRecord::of(c, &manifest.version))
                .collect(),
        },
    );
    if let Some(last) = &mut state.last_install {
        last.result = InstallResult::Installed;
        last.time = now();
        last.downloaded_bytes = Some(transfer.downloaded);
        last.reused_bytes = Some(transfer.reused);
    }
    state.record(
        EventKind::Install,
        target,
        Some(&manifest.version.to_string()),
        options
            .rollback_from
            .as_ref()
            .map(|from| format!("rollback from the withdrawn {from}")),
    );
    store.save(&state)?;
    crate::fault::pause_before_activation();
    boot.activate(target, config.boot.tries);
    bootloader.store(&boot)?;
    info!(%target, version = %manifest.version, "installed; group boots next");
    Ok(InstallReport {
        target,
        version: manifest.version.clone(),
        bytes: manifest.components.iter().map(|c| c.size).sum(),
        downloaded: transfer.downloaded,
        reused: transfer.reused,
    })
}

/// The install's hooks, with the context they all get.
fn prepare_hooks(
    config: &Config,
    manifest: &Manifest,
    executable: Option<&Arc<[u8]>>,
    booted: Group,
    target: Group,
    slots: &BTreeMap<String, Slot>,
    state: &State,
) -> Result<Hooks> {
    let current = state
        .groups
        .get(&booted)
        .and_then(|g| g.version.clone())
        .unwrap_or_default();
    let slot_list: Vec<String> = slots
        .iter()
        .map(|(class, slot)| format!("{class}={}", slot.path.display()))
        .collect();
    let env = vec![
        ("UPDATER_TARGET_GROUP", target.to_string()),
        ("UPDATER_BOOTED_GROUP", booted.to_string()),
        ("UPDATER_CURRENT_VERSION", current),
        ("UPDATER_BUNDLE_VERSION", manifest.version.to_string()),
        ("UPDATER_BUNDLE_COMPATIBLE", manifest.compatible.clone()),
        ("UPDATER_SYSTEM_COMPATIBLE", config.compatible.clone()),
        ("UPDATER_TARGET_SLOTS", slot_list.join(" ")),
    ];
    let bundle = manifest
        .hooks
        .as_ref()
        .zip(executable)
        .map(|(hooks, executable)| BundleHook {
            events: &hooks.events,
            executable,
        });
    Hooks::prepare(&config.hooks, &config.state_dir, bundle, env)
}

/// After every slot is written and verified: each image slot's hooks (a slot that holds a file
/// system mounted read-write for them), the target group's data made from the booted group's and
/// migrated, then the group's hooks.
fn post_install(
    config: &Config,
    hooks: &Hooks,
    manifest: &Manifest,
    slots: &BTreeMap<String, Slot>,
    booted: Group,
    target: Group,
) -> Result<()> {
    if hooks.any_for(HookEvent::SlotPostInstall) {
        for class in manifest
            .components
            .iter()
            .filter_map(|c| c.slot_class.as_ref())
        {
            let slot = &slots[class];
            let mut context = vec![
                ("UPDATER_SLOT_CLASS", class.clone()),
                ("UPDATER_SLOT_DEVICE", slot.path.display().to_string()),
            ];
            let mounted = match &slot.filesystem {
                Some(filesystem) => {
                    let dir = mount_dir(config, target, class);
                    let mounted = Mounted::new(&slot.path, filesystem.kind, &dir)?;
                    context.push(("UPDATER_SLOT_MOUNT_POINT", dir.display().to_string()));
                    Some(mounted)
                }
                None => None,
            };
            hooks.run(HookEvent::SlotPostInstall, &context)?;
            if let Some(mounted) = mounted {
                mounted.unmount()?;
            }
        }
    }
    let copied = match &config.data {
        Some(data) => crate::data::copy_for(data, booted, target)?.map(|copy| (data, copy)),
        None => None,
    };
    if let Some((data, target_data)) = copied {
        let source = data.of(booted).map(|p| p.display().to_string());
        let context = [
            ("UPDATER_DATA_SOURCE", source.unwrap_or_default()),
            ("UPDATER_DATA_TARGET", target_data.display().to_string()),
        ];
        hooks.run(HookEvent::MigrateData, &context)?;
    }
    hooks.run(HookEvent::PostInstall, &[])
}

/// Where a slot of the target group is mounted while the install needs it.
fn mount_dir(config: &Config, target: Group, class: &str) -> std::path::PathBuf {
    config.state_dir.join(format!("mnt-{target}-{class}"))
}

/// Where the device may find blocks of `manifest`: the booted group's slots, then the target
/// slots themselves (`names`/`specs` per component).
fn local_sources(
    config: &Config,
    booted: Group,
    manifest: &Manifest,
    specs: &[&Slot],
    names: &[String],
) -> Result<Vec<Local>> {
    let mut sources = Vec::new();
    for (class, slot) in resolve_group(config, booted)? {
        match std::fs::File::open(&slot.path) {
            Ok(file) => sources.push(Local {
                name: format!("{booted}/{class}"),
                file,
                target_of: None,
            }),
            Err(e) => warn!(slot = %slot.path.display(), "not reused: {e}"),
        }
    }
    for (c, component) in manifest.components.iter().enumerate() {
        if component.slot_class.is_none() {
            continue;
        }
        let file = match std::fs::File::open(&specs[c].path) {
            Ok(file) => file,
            // A file slot that does not exist yet holds nothing to reuse.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(UpdaterError::io(format!(
                    "opening slot {} for reading",
                    names[c]
                ))(e))
            }
        };
        sources.push(Local {
            name: names[c].clone(),
            file,
            target_of: Some(c),
        });
    }
    Ok(sources)
}

/// Where the chunks come from: a bundle read front to back, made by an adaptive install, or
/// rebuilt from a delta.
enum Data<'a, R> {
    Stream(Box<BundleReader<R>>),
    Adaptive(Producer<'a>),
    Delta(Box<delta::Producer<'a, R>>),
}

/// For each component of a delta bundle, where its base is: the booted group's slot of its class,
/// or else the target slot itself (None for components carried whole).
fn delta_bases(
    config: &Config,
    booted: Group,
    manifest: &Manifest,
    specs: &[&Slot],
    names: &[String],
) -> Result<Vec<Option<delta::Base>>> {
    let booted_slots = resolve_group(config, booted)?;
    manifest
        .components
        .iter()
        .enumerate()
        .map(|(c, component)| {
            let (Some(delta), Some(class)) = (&component.delta, &component.slot_class) else {
                return Ok(None);
            };
            let mut candidates = Vec::new();
            if let Some(slot) = booted_slots.get(class) {
                candidates.push(delta::Candidate {
                    name: format!("{booted}/{class}"),
                    path: &slot.path,
                    is_target: false,
                });
            }
            candidates.push(delta::Candidate {
                name: names[c].clone(),
                path: &specs[c].path,
                is_target: true,
            });
            delta::find_base(component, delta, &candidates, manifest.chunk_size).map(Some)
        })
        .collect()
}

/// What an install took from the source and what it reused from the device.
#[derive(Debug, Clone, Copy, Default)]
struct Transfer {
    downloaded: u64,
    reused: u64,
}

/// Whether `manifest` may be written into `target`, whose slots are `slots`: every slot class
/// present and covered, every image fits, no slot is another group's storage. Decided before
/// anything is written, by the install and by `--from-dir`'s choice alike.
pub(crate) fn check_target(
    config: &Config,
    manifest: &Manifest,
    target: Group,
    slots: &BTreeMap<String, Slot>,
) -> Result<()> {
    let infos = slots
        .values()
        .map(Slot::inspect)
        .collect::<Result<Vec<_>>>()?;
    policy::check_slots(manifest, target, slots, &infos)?;
    check_not_shared(config, target, &infos)
}

/// The group's slots with their devices found (GPT labels and GUIDs looked up).
pub fn resolve_group(config: &Config, group: Group) -> Result<BTreeMap<String, Slot>> {
    let specs = config
        .slots
        .get(&group)
        .ok_or_else(|| UpdaterError::Refused(format!("group {group} is not configured")))?;
    specs
        .iter()
        .map(|(class, spec)| Ok((class.clone(), spec.resolve(&config.block_devices)?)))
        .collect()
}

pub(crate) fn choose_target(booted: Group, requested: Option<Group>) -> Result<Group> {
    match requested {
        Some(group) if group == booted => Err(UpdaterError::Refused(format!(
            "group {group} is the booted group; it cannot be written while it runs"
        ))),
        Some(group) => Ok(group),
        None => Ok(booted.other()),
    }
}

/// A misconfigured device could name one partition in two groups; writing it would overwrite the
/// running system or the recovery group.
fn check_not_shared(config: &Config, target: Group, target_infos: &[SlotInfo]) -> Result<()> {
    for group in config.groups() {
        if group == target {
            continue;
        }
        for (class, spec) in resolve_group(config, group)? {
            let other = spec.inspect()?;
            let same = |i: &SlotInfo| {
                i.location == other.location
                    || (i.identity.is_some() && i.identity == other.identity)
            };
            if target_infos.iter().any(same) {
                return Err(UpdaterError::Refused(format!(
                    "a slot of group {target} is the same storage as {group}/{class} ({})",
                    spec.path.display()
                )));
            }
        }
    }
    Ok(())
}

fn write_and_verify<R: Read>(
    mut data: Data<'_, R>,
    manifest: &Manifest,
    specs: &[&Slot],
    targets: &[SlotTarget],
    route: &HashMap<String, usize>,
    progress: &Progress,
) -> Result<Transfer> {
    let total: u64 = manifest.components.iter().map(|c| c.size).sum();
    let started = Instant::now();
    progress.set_subject(&manifest.version.to_string());
    progress.begin(Step::Install, total);
    // The read-back's threads, beside the writer and after the fsync alike.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk_size = manifest.chunk_size as usize;
    let bases = match &data {
        Data::Delta(producer) => Some(producer.base_names()),
        _ => None,
    };
    let next: Box<dyn FnMut(Vec<u8>) -> Result<Option<Incoming>> + '_> = match &mut data {
        Data::Stream(reader) => {
            Box::new(|buffer| Ok(reader.next_chunk(buffer)?.map(Incoming::Unverified)))
        }
        Data::Adaptive(producer) => Box::new(|buffer| producer.next(buffer)),
        Data::Delta(producer) => Box::new(|buffer| producer.next(buffer)),
    };
    let left =
        pipeline::stream(next, chunk_size, targets, route, threads, progress).map_err(|e| {
            match &bases {
                Some(bases) => delta::base_changed(e, bases),
                None => e,
            }
        })?;
    progress.end();
    let transfer = match data {
        // The archive must end exactly where the manifest says, seek table included.
        Data::Stream(reader) => Transfer {
            downloaded: reader.finish()?,
            reused: 0,
        },
        Data::Adaptive(producer) => Transfer {
            downloaded: producer.downloaded(),
            reused: producer.reused,
        },
        Data::Delta(producer) => {
            let base_bytes = manifest
                .components
                .iter()
                .filter_map(|c| c.delta.as_ref().map(|d| c.size - d.data_size))
                .sum();
            Transfer {
                downloaded: producer.finish()?,
                reused: base_bytes,
            }
        }
    };
    info!(
        seconds = started.elapsed().as_secs_f64(),
        "streamed, verified and partly read back"
    );
    for ((component, spec), target) in manifest.components.iter().zip(specs).zip(targets) {
        if target.is_archive() {
            // Its file system is written out when it is unmounted.
            continue;
        }
        if spec.is_regular_file() {
            // A file slot holds exactly the image, so it compares byte for byte.
            target
                .file
                .set_len(component.size)
                .map_err(UpdaterError::io(format!("truncating slot {}", target.name)))?;
            crate::fault::point("truncate slot");
        }
        readback::make_durable(&target.file, &target.name)?;
    }
    info!(seconds = started.elapsed().as_secs_f64(), "synced");
    progress.begin(Step::ReadBack, left.iter().map(|w| w.len as u64).sum());
    readback::finish(targets, &left, threads, progress)?;
    progress.end();
    info!(seconds = started.elapsed().as_secs_f64(), "read back");
    Ok(transfer)
}

/// A download that failed for good is a network failure (exit 13), not a read error.
fn network_or(err: UpdaterError) -> UpdaterError {
    match crate::net::download_failure(&err) {
        Some(message) => UpdaterError::Network(message),
        None => err,
    }
}

fn record_failure(
    store: &StateDir,
    state: &mut State,
    target: Group,
    manifest: &Manifest,
    err: &UpdaterError,
) {
    if let Some(last) = &mut state.last_install {
        last.result = InstallResult::Failed;
        last.time = now();
        last.error = Some(err.to_string());
    }
    state.record(
        EventKind::InstallFailed,
        target,
        Some(&manifest.version.to_string()),
        Some(err.to_string()),
    );
    // The install already failed; a state write error must not hide that error.
    let _ = store.save(state);
}

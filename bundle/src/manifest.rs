//! The signed manifest: what the bundle is for and what every byte of every component must hash to.
use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::delta::Delta;
use crate::{
    BundleError, ChunkDigest, HOOKS_ENTRY, MANIFEST_ENTRY, MAX_CHUNK_SIZE, MAX_HOOKS_SIZE,
    MIN_CHUNK_SIZE, SIGNATURE_ENTRY,
};

/// The manifest formats this code reads and writes: 1, and 2, which adds a block index to every
/// component so that a device can find the content it already holds (docs/bundle-format.md).
pub const FORMAT_VERSION: u32 = 1;
pub const FORMAT_WITH_BLOCKS: u32 = 2;
/// Bytes per block of a format-2 block index: the unit in which content is found again.
pub const BLOCK_SIZE: u32 = 4096;

/// A block's key in the index: its XXH3-64. It only finds candidates, so it needs to be fast (a
/// device keys every block of its slots), not collision-resistant: whatever is assembled from
/// candidates is checked against the signed chunk SHA-256 before it is written.
pub fn block_key(block: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(block)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    /// Which devices may install this bundle; must equal the device's configured string.
    pub compatible: String,
    pub version: semver::Version,
    /// Monotonic anti-rollback counter; a device refuses bundles below its floor.
    #[serde(default)]
    pub security_version: u64,
    /// Bytes per chunk (and per zstd frame) of every component.
    pub chunk_size: u32,
    /// The integrator's hook executable carried in the bundle, and the install steps it handles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<Hooks>,
    #[serde(rename = "component")]
    pub components: Vec<Component>,
}

/// A hook executable, in the archive entry `hooks` right after the signature, so that it is at hand
/// (and verified) before any image is read (docs/hooks.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hooks {
    pub size: u64,
    #[serde(with = "hex_digest")]
    pub sha256: ChunkDigest,
    /// The steps it is run for; it is not run for others.
    pub events: Vec<HookEvent>,
}

/// A step of an install at which hooks run (docs/hooks.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookEvent {
    /// Before anything is written; a failure refuses the bundle.
    PreInstall,
    /// After each image slot is written and verified, with the slot (mounted, for a filesystem).
    SlotPostInstall,
    /// After every slot, before the group is activated; a failure leaves the group unbootable.
    PostInstall,
    /// The target group's data was copied from the booted group's; the new version adapts it.
    MigrateData,
}

impl HookEvent {
    pub const ALL: [HookEvent; 4] = [
        HookEvent::PreInstall,
        HookEvent::SlotPostInstall,
        HookEvent::MigrateData,
        HookEvent::PostInstall,
    ];

    /// The name manifests and hooks use (the hook's first argument).
    pub fn name(self) -> &'static str {
        match self {
            HookEvent::PreInstall => "pre-install",
            HookEvent::SlotPostInstall => "slot-post-install",
            HookEvent::PostInstall => "post-install",
            HookEvent::MigrateData => "migrate-data",
        }
    }
}

impl fmt::Display for HookEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for HookEvent {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        HookEvent::ALL
            .into_iter()
            .find(|e| e.name() == text)
            .ok_or_else(|| {
                let known: Vec<&str> = HookEvent::ALL.iter().map(|e| e.name()).collect();
                format!("unknown hook event '{text}' (known: {})", known.join(", "))
            })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ComponentKind {
    /// A raw image for one slot class of the target group (e.g. rootfs, app).
    Image,
    /// Microcontroller firmware that belongs to the group (flashed when the group runs).
    Firmware,
    /// A tar archive that fills a slot of one class with a fresh file system (docs/bundle-format.md).
    Archive,
}

/// Where a firmware component goes and how (docs/firmware.md). Parsed once, from the fields as
/// they are written (`protocol = "dfu"`, `usb = "0483:df11"`, ...), into the variant of its
/// protocol; a target that lacks what its protocol needs does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "TargetFields", into = "TargetFields")]
pub enum FirmwareTarget {
    /// STM32 system bootloader on a UART (AN3155).
    Stm32Serial {
        port: String,
        baud: u32,
        parity: Parity,
        address: u32,
    },
    /// USB DFU 1.1.
    Dfu {
        usb: UsbId,
        serial: Option<String>,
        alt: u8,
    },
    /// ST's DfuSe extension of DFU, with a flash address.
    DfuSe {
        usb: UsbId,
        serial: Option<String>,
        alt: u8,
        address: u32,
    },
}

/// The STM32 bootloader wants even parity; `none` is for links that cannot carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Parity {
    #[default]
    Even,
    None,
}

impl FromStr for Parity {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "even" => Ok(Parity::Even),
            "none" => Ok(Parity::None),
            other => Err(format!("parity '{other}' must be even or none")),
        }
    }
}

/// A USB device id, written `VENDOR:PRODUCT` in hex (`0483:df11`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsbId {
    pub vendor: u16,
    pub product: u16,
}

impl FromStr for UsbId {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("'{text}' is not VENDOR:PRODUCT in hex (e.g. 0483:df11)");
        let (vendor, product) = text.split_once(':').ok_or_else(bad)?;
        Ok(UsbId {
            vendor: u16::from_str_radix(vendor, 16).map_err(|_| bad())?,
            product: u16::from_str_radix(product, 16).map_err(|_| bad())?,
        })
    }
}

impl fmt::Display for UsbId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04x}:{:04x}", self.vendor, self.product)
    }
}

/// The serial speed when a target names none: what stm32flash uses.
pub const DEFAULT_BAUD: u32 = 57_600;

/// A firmware target as written in a manifest; every field that some protocol uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetFields {
    /// `stm32-serial`, `dfu` or `dfuse`.
    pub protocol: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baud: Option<u32>,
    /// `even` (default for stm32-serial) or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parity: Option<String>,
    /// `VENDOR:PRODUCT` in hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usb: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alt: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<u32>,
}

impl TryFrom<TargetFields> for FirmwareTarget {
    type Error = String;

    fn try_from(fields: TargetFields) -> Result<Self, String> {
        let protocol = fields.protocol.as_str();
        let need = |what: &str| format!("protocol {protocol} needs {what}");
        let usb = || -> Result<UsbId, String> {
            fields.usb.as_deref().ok_or_else(|| need("usb"))?.parse()
        };
        let address = || fields.address.ok_or_else(|| need("address"));
        Ok(match protocol {
            "stm32-serial" => FirmwareTarget::Stm32Serial {
                port: fields
                    .port
                    .clone()
                    .filter(|p| !p.trim().is_empty())
                    .ok_or_else(|| need("port"))?,
                baud: fields.baud.unwrap_or(DEFAULT_BAUD),
                parity: fields
                    .parity
                    .as_deref()
                    .map_or(Ok(Parity::Even), str::parse)?,
                address: address()?,
            },
            "dfu" => FirmwareTarget::Dfu {
                usb: usb()?,
                serial: fields.serial.clone(),
                alt: fields.alt.unwrap_or(0),
            },
            "dfuse" => FirmwareTarget::DfuSe {
                usb: usb()?,
                serial: fields.serial.clone(),
                alt: fields.alt.unwrap_or(0),
                address: address()?,
            },
            other => {
                return Err(format!(
                    "unknown firmware protocol '{other}' (known: stm32-serial, dfu, dfuse)"
                ))
            }
        })
    }
}

impl From<FirmwareTarget> for TargetFields {
    fn from(target: FirmwareTarget) -> Self {
        match target {
            FirmwareTarget::Stm32Serial {
                port,
                baud,
                parity,
                address,
            } => TargetFields {
                protocol: "stm32-serial".into(),
                port: Some(port),
                baud: Some(baud),
                parity: (parity == Parity::None).then(|| "none".into()),
                address: Some(address),
                ..TargetFields::default()
            },
            FirmwareTarget::Dfu { usb, serial, alt } => TargetFields {
                protocol: "dfu".into(),
                usb: Some(usb.to_string()),
                serial,
                alt: Some(alt),
                ..TargetFields::default()
            },
            FirmwareTarget::DfuSe {
                usb,
                serial,
                alt,
                address,
            } => TargetFields {
                protocol: "dfuse".into(),
                usb: Some(usb.to_string()),
                serial,
                alt: Some(alt),
                address: Some(address),
                ..TargetFields::default()
            },
        }
    }
}

impl FirmwareTarget {
    /// The protocol's name, as manifests write it.
    pub fn protocol(&self) -> &'static str {
        match self {
            FirmwareTarget::Stm32Serial { .. } => "stm32-serial",
            FirmwareTarget::Dfu { .. } => "dfu",
            FirmwareTarget::DfuSe { .. } => "dfuse",
        }
    }

    /// "stm32-serial /dev/ttyS1 at 115200 baud", "dfu 0483:df11 alt 0": for messages.
    pub fn describe(&self) -> String {
        match self {
            FirmwareTarget::Stm32Serial { port, baud, .. } => {
                format!("stm32-serial {port} at {baud} baud")
            }
            FirmwareTarget::Dfu { usb, alt, .. } | FirmwareTarget::DfuSe { usb, alt, .. } => {
                format!("{} {usb} alt {alt}", self.protocol())
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    pub name: String,
    pub kind: ComponentKind,
    /// For images: the slot class inside a group that receives this image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot_class: Option<String>,
    /// The archive entry holding the data.
    pub entry: String,
    pub size: u64,
    #[serde(with = "hex_digest")]
    pub sha256: ChunkDigest,
    #[serde(with = "hex_digests")]
    pub chunks: Vec<ChunkDigest>,
    /// For firmware: its own version, and where it goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<FirmwareTarget>,
    /// Format 2: the key of every `BLOCK_SIZE` block of the data, in order (base64 of 8 bytes
    /// each); written last because it is the longest.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "block_keys")]
    pub blocks: Option<Vec<u64>>,
    /// Format 2, instead of `blocks`: the image is rebuilt from a base image the device holds and
    /// the new blocks in the archive entry (docs/bundle-format.md, "Delta bundles").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<Delta>,
}

impl Manifest {
    pub fn parse(bytes: &[u8]) -> Result<Self, BundleError> {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| BundleError::InvalidManifest("not UTF-8 text".into()))?;
        // The format first: a later format's new keys must not hide that it is a later format.
        #[derive(Deserialize)]
        struct Format {
            format: Option<u32>,
        }
        if let Ok(Format {
            format: Some(format),
        }) = toml::from_str(text)
        {
            check_format(format)?;
        }
        let manifest: Manifest = toml::from_str(text).map_err(|e| {
            BundleError::InvalidManifest(e.message().trim_end_matches('\n').to_string())
        })?;
        manifest.validate()?;
        Ok(manifest)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a manifest always serializes")
    }

    pub fn validate(&self) -> Result<(), BundleError> {
        let invalid = |msg: String| Err(BundleError::InvalidManifest(msg));
        check_format(self.format)?;
        if self.compatible.is_empty() || self.compatible.chars().any(char::is_control) {
            return invalid("compatible must be a non-empty single-line string".into());
        }
        if !self.chunk_size.is_power_of_two()
            || !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&self.chunk_size)
        {
            return invalid(format!(
                "chunk_size {} must be a power of two from {MIN_CHUNK_SIZE} to {MAX_CHUNK_SIZE}",
                self.chunk_size
            ));
        }
        if self.components.is_empty() {
            return invalid("it names no component".into());
        }
        if let Some(hooks) = &self.hooks {
            hooks.validate()?;
        }
        let mut names = HashSet::new();
        let mut entries = HashSet::new();
        let mut classes = HashSet::new();
        for c in &self.components {
            check_identifier("component name", &c.name)?;
            if !names.insert(&c.name) {
                return invalid(format!("component '{}' is listed twice", c.name));
            }
            check_entry_name(&c.entry)?;
            if !entries.insert(&c.entry) {
                return invalid(format!("archive entry '{}' is listed twice", c.entry));
            }
            match (c.kind, &c.slot_class) {
                (ComponentKind::Image | ComponentKind::Archive, Some(class)) => {
                    check_identifier("slot class", class)?;
                    if !classes.insert(class) {
                        return invalid(format!("two images for slot class '{class}'"));
                    }
                }
                (ComponentKind::Image | ComponentKind::Archive, None) => {
                    return invalid(format!("image '{}' has no slot_class", c.name))
                }
                (ComponentKind::Firmware, Some(_)) => {
                    return invalid(format!("firmware '{}' cannot have a slot_class", c.name))
                }
                (ComponentKind::Firmware, None) => {
                    if c.target.is_none() {
                        return invalid(format!("firmware '{}' has no target", c.name));
                    }
                    if c.firmware_version.is_none() {
                        return invalid(format!("firmware '{}' has no firmware_version", c.name));
                    }
                }
            }
            if c.kind != ComponentKind::Firmware
                && (c.target.is_some() || c.firmware_version.is_some())
            {
                return invalid(format!("image '{}' cannot have a firmware target", c.name));
            }
            let component = format!("component '{}'", c.name);
            let chunk = u64::from(self.chunk_size);
            check_count(&component, c.size, chunk, "chunk hashes", c.chunks.len())?;
            if let Some(delta) = &c.delta {
                if self.format < FORMAT_WITH_BLOCKS || c.kind != ComponentKind::Image {
                    return invalid(format!(
                        "component '{}': only images of format {FORMAT_WITH_BLOCKS} can be deltas",
                        c.name
                    ));
                }
                if c.blocks.is_some() {
                    return invalid(format!("delta component '{}' has a block index", c.name));
                }
                let data = format!("the data of delta {component}");
                check_count(
                    &data,
                    delta.data_size,
                    chunk,
                    "chunk hashes",
                    delta.data_chunks.len(),
                )?;
                delta.decoded_ops(c.size)?;
                continue;
            }
            match (&c.blocks, self.has_block_index()) {
                (None, true) => {
                    return invalid(format!("component '{}' has no block index", c.name))
                }
                (Some(_), false) => {
                    return invalid(format!(
                        "component '{}': a block index needs format {FORMAT_WITH_BLOCKS}",
                        c.name
                    ))
                }
                (Some(blocks), true) => check_count(
                    &component,
                    c.size,
                    BLOCK_SIZE.into(),
                    "block keys",
                    blocks.len(),
                )?,
                (None, false) => {}
            }
        }
        Ok(())
    }

    /// Whether the format carries a block index (format 2): every component has one, except a
    /// delta's.
    pub fn has_block_index(&self) -> bool {
        self.format >= FORMAT_WITH_BLOCKS
    }

    /// Whether every chunk of every image is in the bundle as a frame of its own, with a block
    /// index: then a device can fetch only what it lacks (a delta's chunks are rebuilt instead; an
    /// archive is extracted as it streams, so it is never assembled from the device's blocks).
    pub fn fetchable_in_parts(&self) -> bool {
        self.has_block_index()
            && self
                .components
                .iter()
                .all(|c| c.delta.is_none() && c.kind != ComponentKind::Archive)
    }

    /// Whether any component is a delta from a base image.
    pub fn is_delta(&self) -> bool {
        self.components.iter().any(|c| c.delta.is_some())
    }

    pub fn component_for_class(&self, class: &str) -> Option<&Component> {
        self.components
            .iter()
            .find(|c| c.slot_class.as_deref() == Some(class))
    }
}

impl Hooks {
    fn validate(&self) -> Result<(), BundleError> {
        let invalid = |msg: String| Err(BundleError::InvalidManifest(msg));
        if self.events.is_empty() {
            return invalid("hooks handle no event".into());
        }
        let mut seen = HashSet::new();
        if let Some(twice) = self.events.iter().find(|e| !seen.insert(**e)) {
            return invalid(format!("hook event '{twice}' is listed twice"));
        }
        if self.size == 0 || self.size > MAX_HOOKS_SIZE {
            return invalid(format!(
                "the hook executable is {} bytes; it must be 1 to {MAX_HOOKS_SIZE}",
                self.size
            ));
        }
        Ok(())
    }

    pub fn handles(&self, event: HookEvent) -> bool {
        self.events.contains(&event)
    }
}

impl Component {
    /// Bytes of the component's archive entry: the image, or a delta's new blocks.
    pub fn entry_size(&self) -> u64 {
        self.delta.as_ref().map_or(self.size, |d| d.data_size)
    }

    /// The signed SHA-256 of the whole archive entry.
    pub fn entry_sha256(&self) -> ChunkDigest {
        self.delta.as_ref().map_or(self.sha256, |d| d.data_sha256)
    }

    /// The signed SHA-256 of each chunk of the archive entry.
    pub fn entry_chunks(&self) -> &[ChunkDigest] {
        self.delta.as_ref().map_or(&self.chunks, |d| &d.data_chunks)
    }

    /// Size of chunk `index` of the image (the last one may be short).
    pub fn chunk_len(&self, chunk_size: u32, index: u64) -> usize {
        let start = index * u64::from(chunk_size);
        (self.size - start).min(u64::from(chunk_size)) as usize
    }
}

/// `have` must be the number of `unit`-sized pieces of `size` bytes.
fn check_count(
    what: &str,
    size: u64,
    unit: u64,
    noun: &str,
    have: usize,
) -> Result<(), BundleError> {
    let expected = size.div_ceil(unit);
    if have as u64 == expected {
        return Ok(());
    }
    Err(BundleError::InvalidManifest(format!(
        "{what} of {size} bytes needs {expected} {noun}, has {have}"
    )))
}

fn check_format(format: u32) -> Result<(), BundleError> {
    if (FORMAT_VERSION..=FORMAT_WITH_BLOCKS).contains(&format) {
        return Ok(());
    }
    Err(BundleError::InvalidManifest(format!(
        "format {format} is not supported (this updater reads formats {FORMAT_VERSION} and \
         {FORMAT_WITH_BLOCKS})"
    )))
}

/// Names of components and slot classes: lower-case ASCII letters, digits, '-', '_' and '.',
/// starting with a letter or digit.
pub(crate) fn check_identifier(what: &str, name: &str) -> Result<(), BundleError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(BundleError::InvalidManifest(format!(
            "{what} '{name}' must be 1-64 characters of a-z, 0-9, '-', '_', '.'"
        )))
    }
}

/// An archive entry name must be a plain file name: no folders, no '..', nothing a tar tool could
/// place outside the folder it extracts into.
pub(crate) fn check_entry_name(name: &str) -> Result<(), BundleError> {
    let plain = !name.is_empty()
        && name.len() < 100
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !plain {
        return Err(BundleError::UnsafePath { name: name.into() });
    }
    if name == MANIFEST_ENTRY || name == SIGNATURE_ENTRY || name == HOOKS_ENTRY {
        return Err(BundleError::InvalidManifest(format!(
            "archive entry '{name}' is reserved"
        )));
    }
    Ok(())
}

pub(crate) mod hex_digest {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    use crate::ChunkDigest;

    pub fn serialize<S: Serializer>(digest: &ChunkDigest, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(digest))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ChunkDigest, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map_err(D::Error::custom)
    }

    pub fn parse(text: &str) -> Result<ChunkDigest, String> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out)
            .map_err(|_| format!("'{text}' is not a SHA-256 in hex"))?;
        Ok(out)
    }
}

pub(crate) mod hex_digests {
    use serde::ser::SerializeSeq;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    use crate::ChunkDigest;

    pub fn serialize<S: Serializer>(digests: &[ChunkDigest], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(digests.len()))?;
        for d in digests {
            seq.serialize_element(&hex::encode(d))?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ChunkDigest>, D::Error> {
        let texts = Vec::<String>::deserialize(d)?;
        texts
            .into_iter()
            .map(|t| super::hex_digest::parse(&t).map_err(D::Error::custom))
            .collect()
    }
}

mod block_keys {
    use base64::Engine;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    const ENGINE: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

    pub fn serialize<S: Serializer>(keys: &Option<Vec<u64>>, s: S) -> Result<S::Ok, S::Error> {
        let keys = keys.as_deref().unwrap_or_default();
        let bytes: Vec<u8> = keys.iter().flat_map(|k| k.to_be_bytes()).collect();
        s.serialize_str(&ENGINE.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u64>>, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = ENGINE
            .decode(text.as_bytes())
            .map_err(|_| D::Error::custom("blocks is not base64"))?;
        if bytes.len() % 8 != 0 {
            return Err(D::Error::custom(
                "blocks is not a whole number of 8-byte keys",
            ));
        }
        Ok(Some(
            bytes
                .chunks_exact(8)
                .map(|k| u64::from_be_bytes(k.try_into().expect("8 bytes")))
                .collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            format: FORMAT_VERSION,
            compatible: "acme-robot".into(),
            version: "1.2.3".parse().unwrap(),
            security_version: 2,
            chunk_size: crate::DEFAULT_CHUNK_SIZE,
            hooks: None,
            components: vec![Component {
                name: "rootfs".into(),
                kind: ComponentKind::Image,
                slot_class: Some("rootfs".into()),
                entry: "rootfs.img".into(),
                size: 1_500_000,
                sha256: [1; 32],
                chunks: vec![[2; 32], [3; 32]],
                firmware_version: None,
                target: None,
                blocks: None,
                delta: None,
            }],
        }
    }

    fn error_of(edit: impl FnOnce(&mut Manifest)) -> String {
        let mut m = sample();
        edit(&mut m);
        Manifest::parse(m.to_toml().as_bytes())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn round_trips_through_toml() {
        let m = sample();
        assert_eq!(Manifest::parse(m.to_toml().as_bytes()).unwrap(), m);
    }

    #[test]
    fn a_later_format_is_named_before_its_unknown_keys() {
        let text = sample()
            .to_toml()
            .replace("format = 1", "format = 3\nnew_rule = true");
        let err = Manifest::parse(text.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("format 3 is not supported"), "{err}");
    }

    #[test]
    fn a_block_index_round_trips_and_must_be_base64_of_whole_keys() {
        let mut m = sample();
        m.format = FORMAT_WITH_BLOCKS;
        let blocks = m.components[0].size.div_ceil(u64::from(BLOCK_SIZE));
        m.components[0].blocks = Some((0..blocks).map(|i| i * 0x0101_0101_0101).collect());
        let text = m.to_toml();
        assert_eq!(Manifest::parse(text.as_bytes()).unwrap(), m);
        let damaged = text.replace("blocks = \"", "blocks = \"AAAA");
        let err = Manifest::parse(damaged.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("not a whole number of 8-byte keys"), "{err}");
        let damaged = text.replace("blocks = \"", "blocks = \"!");
        let err = Manifest::parse(damaged.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("blocks is not base64"), "{err}");
    }

    #[test]
    fn refuses_inconsistent_manifests_with_a_reason() {
        assert!(error_of(|m| m.format = 3).contains("format 3 is not supported"));
        assert!(error_of(|m| m.format = 2).contains("component 'rootfs' has no block index"));
        assert!(error_of(|m| m.components[0].blocks = Some(vec![1]))
            .contains("a block index needs format 2"));
        assert!(error_of(|m| {
            m.format = 2;
            m.components[0].blocks = Some(vec![7; 3]);
        })
        .contains("needs 367 block keys, has 3"));
        assert!(error_of(|m| m.chunk_size = 1000).contains("chunk_size 1000"));
        assert!(
            error_of(|m| m.components[0].chunks.pop().map(drop).unwrap())
                .contains("needs 2 chunk hashes, has 1")
        );
        assert!(error_of(|m| m.components[0].entry = "../evil".into())
            .contains("archive entry '../evil' has an unsafe path"));
        assert!(error_of(|m| m.components[0].entry = "manifest.sig".into()).contains("reserved"));
        assert!(
            error_of(|m| m.components[0].slot_class = Some("Root FS".into()))
                .contains("slot class 'Root FS'")
        );
        assert!(error_of(|m| {
            let c = m.components[0].clone();
            m.components.push(c);
        })
        .contains("listed twice"));
        assert!(error_of(|m| m.components.clear()).contains("names no component"));
    }

    #[test]
    fn firmware_components_need_a_valid_target_and_version() {
        let firmware = |target: Option<FirmwareTarget>, version: Option<&str>| {
            let mut m = sample();
            m.components.push(Component {
                name: "motor".into(),
                kind: ComponentKind::Firmware,
                slot_class: None,
                entry: "motor.fw".into(),
                size: 10,
                sha256: [4; 32],
                chunks: vec![[5; 32]],
                firmware_version: version.map(Into::into),
                blocks: None,
                delta: None,
                target,
            });
            Manifest::parse(m.to_toml().as_bytes())
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        let stm32 = FirmwareTarget::Stm32Serial {
            port: "/dev/ttyS1".into(),
            baud: DEFAULT_BAUD,
            parity: Parity::Even,
            address: 0x0800_0000,
        };
        assert_eq!(firmware(Some(stm32.clone()), Some("1.0")), Ok(()));
        assert!(firmware(None, Some("1.0"))
            .unwrap_err()
            .contains("firmware 'motor' has no target"));
        assert!(firmware(Some(stm32), None)
            .unwrap_err()
            .contains("no firmware_version"));
    }

    #[test]
    fn a_firmware_target_parses_into_its_protocol_or_names_what_it_lacks() {
        let fields = |protocol: &str| TargetFields {
            protocol: protocol.into(),
            port: Some("/dev/ttyS1".into()),
            address: Some(0x0800_0000),
            ..TargetFields::default()
        };
        let parse = |f: TargetFields| FirmwareTarget::try_from(f);
        assert_eq!(
            parse(fields("stm32-serial")),
            Ok(FirmwareTarget::Stm32Serial {
                port: "/dev/ttyS1".into(),
                baud: DEFAULT_BAUD,
                parity: Parity::Even,
                address: 0x0800_0000
            })
        );
        let dfuse = TargetFields {
            usb: Some("0483:DF11".into()),
            parity: Some("none".into()),
            ..fields("dfuse")
        };
        let target = parse(dfuse).unwrap();
        assert_eq!(target.describe(), "dfuse 0483:df11 alt 0");
        // What is written is what parses back.
        assert_eq!(parse(TargetFields::from(target.clone())), Ok(target));
        assert!(parse(fields("dfu"))
            .unwrap_err()
            .contains("protocol dfu needs usb"));
        assert!(parse(fields("jtag"))
            .unwrap_err()
            .contains("unknown firmware protocol 'jtag'"));
        let no_port = TargetFields {
            port: Some(" ".into()),
            ..fields("stm32-serial")
        };
        assert!(parse(no_port)
            .unwrap_err()
            .contains("protocol stm32-serial needs port"));
        let bad_parity = TargetFields {
            parity: Some("odd".into()),
            ..fields("stm32-serial")
        };
        assert!(parse(bad_parity).unwrap_err().contains("parity 'odd'"));
        let bad_usb = TargetFields {
            usb: Some("0483-df11".into()),
            ..fields("dfu")
        };
        assert!(parse(bad_usb)
            .unwrap_err()
            .contains("'0483-df11' is not VENDOR:PRODUCT in hex"));
        // In a manifest, the reason reaches the parse error.
        let text = "protocol = \"dfu\"\n";
        let err = toml::from_str::<FirmwareTarget>(text).unwrap_err();
        assert!(err.message().contains("protocol dfu needs usb"), "{err}");
    }

    #[test]
    fn refuses_unparsable_text() {
        let err = Manifest::parse(b"compatible = ").unwrap_err().to_string();
        assert!(err.starts_with("manifest is invalid:"), "{err}");
        let err = Manifest::parse(&[0xff, 0xfe]).unwrap_err().to_string();
        assert_eq!(err, "manifest is invalid: not UTF-8 text");
        let text = sample()
            .to_toml()
            .replace("format = 1", "format = 1\nsurprise = true");
        let err = Manifest::parse(text.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("unknown field `surprise`"), "{err}");
        let text = sample().to_toml().replace("1.2.3", "one");
        assert!(Manifest::parse(text.as_bytes()).is_err());
    }

    #[test]
    fn hooks_must_name_events_once_and_fit() {
        let mut m = sample();
        let hooks = |events: Vec<HookEvent>, size: u64| Hooks {
            size,
            sha256: [0; 32],
            events,
        };
        m.hooks = Some(hooks(
            vec![HookEvent::PreInstall, HookEvent::PostInstall],
            10,
        ));
        assert_eq!(Manifest::parse(m.to_toml().as_bytes()).unwrap(), m);
        for (bad, message) in [
            (hooks(vec![], 10), "hooks handle no event"),
            (
                hooks(vec![HookEvent::PostInstall, HookEvent::PostInstall], 10),
                "hook event 'post-install' is listed twice",
            ),
            (hooks(vec![HookEvent::PostInstall], 0), "must be 1 to"),
            (
                hooks(vec![HookEvent::PostInstall], MAX_HOOKS_SIZE + 1),
                "must be 1 to",
            ),
        ] {
            m.hooks = Some(bad);
            let err = Manifest::parse(m.to_toml().as_bytes()).unwrap_err();
            assert!(err.to_string().contains(message), "{err}");
        }
        m.hooks = Some(hooks(vec![HookEvent::PreInstall], 10));
        let text = m.to_toml().replace("\"pre-install\"", "\"reboot\"");
        let err = Manifest::parse(text.as_bytes()).unwrap_err();
        assert!(
            err.to_string().contains("unknown variant `reboot`"),
            "{err}"
        );
    }
}

//! Our groups and slots under the names a RAUC system.conf would give them: each slot class is a
//! RAUC class, its slot in A is `<class>.0`, in B `<class>.1` and in R `<class>.2`. One class is
//! the bootable parent (`rootfs` when there is one, else the first by name) and carries the
//! bootname (`A`, `B`, `R`); the other classes are its children, as RAUC's `parent=` makes them.
//! Pure functions of the config and the status, so the mapping is tested without a bus.
use crate::config::{Config, SlotSource};
use crate::group::Group;
use crate::state::{EventKind, State};
use crate::status::Status;

/// A value in a slot's status dictionary, typed as RAUC's client reads it (`s`, `u`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Text(String),
    Count(u32),
}

/// One entry of `GetSlotStatus`: the slot's name and its dictionary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotEntry {
    pub name: String,
    pub fields: Vec<(&'static str, Field)>,
}

fn index(group: Group) -> u8 {
    match group {
        Group::A => 0,
        Group::B => 1,
        Group::R => 2,
    }
}

/// `rootfs.1` for the `rootfs` slot of group B.
pub fn slot_name(class: &str, group: Group) -> String {
    format!("{class}.{}", index(group))
}

/// The class that carries the bootname.
pub fn root_class(config: &Config) -> &str {
    let classes = config
        .slots
        .get(&Group::A)
        .into_iter()
        .flat_map(|s| s.keys());
    let mut first = None;
    for class in classes {
        if class == "rootfs" {
            return class;
        }
        first.get_or_insert(class.as_str());
    }
    first.unwrap_or("rootfs")
}

/// The group a `Mark` call means: `booted`, `other` or a slot name such as `rootfs.1`.
pub fn group_of(identifier: &str, booted: Group, config: &Config) -> Result<Group, String> {
    match identifier {
        "booted" => Ok(booted),
        "other" if booted == Group::R => {
            Err("booted from the recovery group R: there is no other slot to mark".into())
        }
        "other" => Ok(booted.other()),
        name => config
            .groups()
            .find(|&group| {
                config.slots[&group]
                    .keys()
                    .any(|class| slot_name(class, group) == name)
            })
            .ok_or_else(|| {
                format!("no slot named '{name}' (slots are named like 'rootfs.0' for A and 'rootfs.1' for B)")
            }),
    }
}

/// Where a slot is, as a RAUC `device=` would say it.
fn device(source: &SlotSource) -> String {
    match source {
        SlotSource::Path(path) => path.display().to_string(),
        SlotSource::Label(label) => format!("/dev/disk/by-partlabel/{label}"),
        SlotSource::PartUuid(uuid) => format!("/dev/disk/by-partuuid/{uuid}"),
    }
}

/// Every slot with what RAUC's clients read. Not filled, since this updater does not keep them:
/// `size` (of the installed image), `bundle.description`, `bundle.build`, `bundle.hash`,
/// `mountpoint`, `installed.transaction`.
pub fn entries(config: &Config, status: &Status, state: &State) -> Vec<SlotEntry> {
    let root = root_class(config);
    let mut entries = Vec::new();
    for (&group, classes) in &config.slots {
        let record = state.groups.get(&group);
        let group_status = status.slots.get(&group);
        for (class, spec) in classes {
            let is_root = class == root;
            let mut fields = vec![
                ("class", Field::Text(class.clone())),
                ("device", Field::Text(device(&spec.source))),
                ("type", Field::Text("raw".into())),
                (
                    "state",
                    Field::Text(slot_state(group, status.booted, is_root)),
                ),
            ];
            if is_root {
                let bootable = group_status.is_none_or(|s| s.bootable);
                fields.push(("bootname", Field::Text(group.to_string())));
                fields.push((
                    "boot-status",
                    Field::Text(if bootable { "good" } else { "bad" }.into()),
                ));
            } else {
                fields.push(("parent", Field::Text(slot_name(root, group))));
            }
            if let Some(record) = record {
                fields.push((
                    "status",
                    Field::Text(
                        if record.version.is_some() {
                            "ok"
                        } else {
                            "failed"
                        }
                        .into(),
                    ),
                ));
                if let Some(version) = &record.version {
                    fields.push(("bundle.version", Field::Text(version.clone())));
                    fields.push(("bundle.compatible", Field::Text(config.compatible.clone())));
                }
                if let Some(time) = &record.installed_at {
                    fields.push(("installed.timestamp", Field::Text(time.clone())));
                }
                let sha256 = record
                    .components
                    .iter()
                    .find(|c| c.slot_class.as_deref() == Some(class.as_str()))
                    .and_then(|c| c.sha256.clone());
                if let Some(sha256) = sha256 {
                    fields.push(("sha256", Field::Text(sha256)));
                }
            }
            fields.extend(counts(state, group));
            entries.push(SlotEntry {
                name: slot_name(class, group),
                fields,
            });
        }
    }
    entries
}

/// RAUC's slot states: the booted group's parent slot is `booted`, its children `active`.
fn slot_state(group: Group, booted: Group, is_root: bool) -> String {
    match (group == booted, is_root) {
        (true, true) => "booted",
        (true, false) => "active",
        (false, _) => "inactive",
    }
    .into()
}

/// Installs and activations of `group`, counted in the event log (its last 200 entries).
fn counts(state: &State, group: Group) -> Vec<(&'static str, Field)> {
    let of_kind = |kinds: &[EventKind]| {
        state
            .events
            .iter()
            .filter(|e| e.group == group && kinds.iter().any(|k| e.event == k.as_str()))
            .collect::<Vec<_>>()
    };
    let installs = of_kind(&[EventKind::Install]);
    let activations = of_kind(&[EventKind::Install, EventKind::MarkActive]);
    let mut fields = Vec::new();
    if !installs.is_empty() {
        fields.push(("installed.count", Field::Count(installs.len() as u32)));
    }
    if let Some(last) = activations.last() {
        fields.push(("activated.timestamp", Field::Text(last.time.clone())));
        fields.push(("activated.count", Field::Count(activations.len() as u32)));
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BootloaderConfig, SlotSpec};
    use std::collections::BTreeMap;

    fn config(classes: &[&str], with_r: bool) -> Config {
        let mut slots = BTreeMap::new();
        let groups: &[Group] = if with_r {
            &Group::ALL
        } else {
            &[Group::A, Group::B]
        };
        for &group in groups {
            let specs = classes
                .iter()
                .map(|class| {
                    let spec = SlotSpec {
                        source: SlotSource::Label(format!("{class}-{group}")),
                        size: None,
                        filesystem: None,
                    };
                    (class.to_string(), spec)
                })
                .collect();
            slots.insert(group, specs);
        }
        Config::new(
            "acme-x1",
            "keys".into(),
            "state".into(),
            BootloaderConfig::File {
                path: "boot.env".into(),
            },
            slots,
        )
    }

    #[test]
    fn names_follow_rauc_with_r_as_the_third_slot() {
        assert_eq!(slot_name("rootfs", Group::A), "rootfs.0");
        assert_eq!(slot_name("app", Group::B), "app.1");
        assert_eq!(slot_name("rootfs", Group::R), "rootfs.2");
    }

    #[test]
    fn rootfs_is_the_parent_class_when_there_is_one() {
        assert_eq!(root_class(&config(&["app", "rootfs"], false)), "rootfs");
        assert_eq!(root_class(&config(&["app", "system"], false)), "app");
    }

    #[test]
    fn identifiers_name_groups() {
        let c = config(&["app", "rootfs"], true);
        assert_eq!(group_of("booted", Group::B, &c), Ok(Group::B));
        assert_eq!(group_of("other", Group::B, &c), Ok(Group::A));
        assert_eq!(group_of("rootfs.1", Group::A, &c), Ok(Group::B));
        assert_eq!(group_of("app.0", Group::B, &c), Ok(Group::A));
        assert_eq!(group_of("rootfs.2", Group::A, &c), Ok(Group::R));
    }

    fn status(booted: Group, bootable_b: bool) -> Status {
        let group = |bootable| crate::status::GroupStatus {
            bootable,
            good: Some(false),
            tries: Some(0),
            version: None,
            components: vec![],
            data: None,
        };
        Status {
            compatible: "acme-x1".into(),
            booted,
            next: booted,
            slots: [(Group::A, group(true)), (Group::B, group(bootable_b))]
                .into_iter()
                .collect(),
            security_floor: 0,
            last_install: None,
            bootloader: "file".into(),
            warnings: vec![],
            runtime_health: None,
        }
    }

    fn field(entries: &[SlotEntry], slot: &str, key: &str) -> Option<Field> {
        let entry = entries.iter().find(|e| e.name == slot)?;
        entry
            .fields
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone())
    }

    fn text(value: &str) -> Option<Field> {
        Some(Field::Text(value.into()))
    }

    #[test]
    fn entries_carry_what_rauc_clients_read_with_their_types() {
        let c = config(&["app", "rootfs"], false);
        let mut state = State::default();
        state.groups.insert(
            Group::B,
            crate::state::GroupRecord {
                version: Some("2.0.0".into()),
                security_version: 0,
                installed_at: Some("2026-12-01T06:00:00Z".into()),
                components: vec![crate::state::ComponentRecord {
                    name: "rootfs".into(),
                    slot_class: Some("rootfs".into()),
                    version: "2.0.0".into(),
                    sha256: Some("ab".repeat(32)),
                }],
            },
        );
        state.record(EventKind::Install, Group::B, Some("2.0.0"), None);
        state.record(EventKind::MarkActive, Group::B, Some("2.0.0"), None);
        let entries = entries(&c, &status(Group::A, true), &state);
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["app.0", "rootfs.0", "app.1", "rootfs.1"]);

        assert_eq!(field(&entries, "rootfs.0", "state"), text("booted"));
        assert_eq!(field(&entries, "rootfs.0", "bootname"), text("A"));
        assert_eq!(field(&entries, "app.0", "state"), text("active"));
        assert_eq!(field(&entries, "app.0", "parent"), text("rootfs.0"));
        assert_eq!(field(&entries, "app.0", "bootname"), None);
        assert_eq!(
            field(&entries, "rootfs.0", "device"),
            text("/dev/disk/by-partlabel/rootfs-A")
        );

        assert_eq!(field(&entries, "rootfs.1", "state"), text("inactive"));
        assert_eq!(field(&entries, "rootfs.1", "boot-status"), text("good"));
        assert_eq!(field(&entries, "rootfs.1", "status"), text("ok"));
        assert_eq!(field(&entries, "rootfs.1", "bundle.version"), text("2.0.0"));
        assert_eq!(
            field(&entries, "rootfs.1", "bundle.compatible"),
            text("acme-x1")
        );
        assert_eq!(
            field(&entries, "rootfs.1", "sha256"),
            Some(Field::Text("ab".repeat(32)))
        );
        assert_eq!(
            field(&entries, "app.1", "sha256"),
            None,
            "no app image recorded"
        );
        assert_eq!(
            field(&entries, "rootfs.1", "installed.count"),
            Some(Field::Count(1))
        );
        assert_eq!(
            field(&entries, "rootfs.1", "activated.count"),
            Some(Field::Count(2))
        );
        assert_eq!(field(&entries, "rootfs.0", "installed.count"), None);
    }

    #[test]
    fn a_torn_group_says_failed_and_an_unbootable_one_bad() {
        let c = config(&["rootfs"], false);
        let mut state = State::default();
        state
            .groups
            .insert(Group::B, crate::state::GroupRecord::default());
        let entries = entries(&c, &status(Group::A, false), &state);
        assert_eq!(field(&entries, "rootfs.1", "status"), text("failed"));
        assert_eq!(field(&entries, "rootfs.1", "bundle.version"), None);
        assert_eq!(field(&entries, "rootfs.1", "boot-status"), text("bad"));
    }

    #[test]
    fn unknown_identifiers_are_refused_with_the_naming_rule() {
        let c = config(&["rootfs"], false);
        let err = group_of("rootfs.2", Group::A, &c).unwrap_err();
        assert!(err.contains("no slot named 'rootfs.2'"), "{err}");
        assert!(err.contains("'rootfs.1' for B"), "{err}");
        let err = group_of("other", Group::R, &c).unwrap_err();
        assert!(err.contains("recovery group R"), "{err}");
    }
}

//! `[data]`: where each group keeps its own copy of the application's data (docs/data.md).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::group::Group;

/// Each group's data location, and the link that names the booted group's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataConfig {
    pub groups: BTreeMap<Group, PathBuf>,
    pub link: PathBuf,
}

impl DataConfig {
    /// The layout of `[data] dir`: `<dir>/A`, `<dir>/B`, `<dir>/R` and the link `<dir>/current`.
    pub fn below(dir: &Path) -> DataConfig {
        DataConfig {
            groups: [Group::A, Group::B, Group::R]
                .into_iter()
                .map(|g| (g, dir.join(g.to_string())))
                .collect(),
            link: dir.join("current"),
        }
    }

    pub fn of(&self, group: Group) -> Option<&Path> {
        self.groups.get(&group).map(PathBuf::as_path)
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawData {
    dir: Option<PathBuf>,
    #[serde(rename = "A")]
    a: Option<PathBuf>,
    #[serde(rename = "B")]
    b: Option<PathBuf>,
    #[serde(rename = "R")]
    r: Option<PathBuf>,
    link: Option<PathBuf>,
}

impl RawData {
    pub(super) fn settings(
        self,
        resolve: &impl Fn(&Path) -> PathBuf,
    ) -> Result<Option<DataConfig>, String> {
        let named = [(Group::A, self.a), (Group::B, self.b), (Group::R, self.r)];
        let any_named = named.iter().any(|(_, p)| p.is_some()) || self.link.is_some();
        match (self.dir, any_named) {
            (None, false) => Ok(None),
            (Some(dir), false) => Ok(Some(DataConfig::below(&resolve(&dir)))),
            (Some(_), true) => Err("[data]: give either dir or A, B (R) and link".into()),
            (None, true) => {
                let groups: BTreeMap<Group, PathBuf> = named
                    .into_iter()
                    .filter_map(|(g, p)| p.map(|p| (g, resolve(&p))))
                    .collect();
                let (Some(a), Some(b)) = (groups.get(&Group::A), groups.get(&Group::B)) else {
                    return Err("[data]: A and B are both needed".into());
                };
                let Some(link) = self.link else {
                    return Err("[data]: link is needed with A and B".into());
                };
                let link = resolve(&link);
                // An install empties the target's location: it must hold nothing else.
                let mut seen: Vec<&PathBuf> = vec![&link];
                for path in [a, b].into_iter().chain(groups.get(&Group::R)) {
                    if path.parent().is_none() {
                        return Err(format!(
                            "[data]: {} cannot be a group's data",
                            path.display()
                        ));
                    }
                    if let Some(other) = seen
                        .iter()
                        .find(|o| o.starts_with(path) || path.starts_with(o))
                    {
                        return Err(format!(
                            "[data]: {} and {} overlap (an install empties a group's location)",
                            path.display(),
                            other.display()
                        ));
                    }
                    seen.push(path);
                }
                Ok(Some(DataConfig { groups, link }))
            }
        }
    }
}

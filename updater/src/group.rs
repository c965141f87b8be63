//! Slot groups: A and B, the pair that takes turns, and the recovery group R.
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Group {
    A,
    B,
    R,
}

impl Group {
    pub const ALL: [Group; 3] = [Group::A, Group::B, Group::R];

    /// The other member of the A/B pair; from R, an install goes to A.
    pub fn other(self) -> Group {
        match self {
            Group::A => Group::B,
            Group::B | Group::R => Group::A,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Group::A => "A",
            Group::B => "B",
            Group::R => "R",
        }
    }
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Group {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "A" | "a" => Ok(Group::A),
            "B" | "b" => Ok(Group::B),
            "R" | "r" => Ok(Group::R),
            _ => Err(format!("'{s}' is not a slot group (A, B or R)")),
        }
    }
}

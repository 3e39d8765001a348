use serde::{Deserialize, Serialize};
use std::fmt;

/// The identity of one replica: the unit that issues dots and stamps.
///
/// It is a number rather than a name so that clocks stay small and compare fast; the shells map
/// region names (`us-east`, `n0`) to ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReplicaId(pub u64);

impl fmt::Display for ReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}", self.0)
    }
}

impl From<u64> for ReplicaId {
    fn from(id: u64) -> Self {
        ReplicaId(id)
    }
}

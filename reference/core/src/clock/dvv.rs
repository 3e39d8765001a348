use crate::{Causality, Dot, VectorClock};
use serde::{Deserialize, Deserializer, Serialize};

/// A dotted version vector (Preguiça, Baquero et al. 2012): the identity and causal past of one
/// write. The write's own event is `dot`; everything it had seen when it was made is `past`.
///
/// Keeping the dot apart from the past is the point: a plain version vector cannot say "I saw
/// events 1..3 of replica A and event 5, but not 4", so it either falsely claims 4 or loses 5. With
/// a DVV, two writes issued by the same replica without seeing each other stay concurrent.
///
/// Invariant: `dot` is not covered by `past` (a write has not seen itself).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Dvv {
    dot: Dot,
    past: VectorClock,
}

impl Dvv {
    /// The DVV of a write with event `dot` that had seen `past`. Returns `None` if `past` already
    /// covers `dot`, which no real write can produce.
    pub fn new(dot: Dot, past: VectorClock) -> Option<Self> {
        (dot.counter > past.get(dot.replica)).then_some(Dvv { dot, past })
    }

    /// The write's own event.
    pub fn dot(&self) -> Dot {
        self.dot
    }

    /// What the write had seen.
    pub fn past(&self) -> &VectorClock {
        &self.past
    }

    /// Whether the write `self` was seen by the write `other` (self happened before other).
    pub fn seen_by(&self, other: &Dvv) -> bool {
        self.dot.counter <= other.past.get(self.dot.replica)
    }

    /// How two writes relate: `Before` if `other` saw `self`, `After` if `self` saw `other`, `Equal`
    /// for the same write, else `Concurrent`.
    pub fn compare(&self, other: &Dvv) -> Causality {
        if self.dot == other.dot {
            Causality::Equal
        } else if self.seen_by(other) {
            Causality::Before
        } else if other.seen_by(self) {
            Causality::After
        } else {
            Causality::Concurrent
        }
    }
}

impl<'de> Deserialize<'de> for Dvv {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            dot: Dot,
            past: VectorClock,
        }
        let raw = Raw::deserialize(deserializer)?;
        Dvv::new(raw.dot, raw.past).ok_or_else(|| {
            serde::de::Error::custom("dotted version vector whose past covers its own dot")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ReplicaId;

    #[test]
    fn two_writes_of_one_replica_that_did_not_see_each_other_stay_concurrent() {
        // Replica A issues write 1, then write 2 for a client that had seen nothing: a version
        // vector {A:2} would claim write 2 saw write 1. The DVV does not.
        let w1 = Dvv::new(Dot::new(1, 1), VectorClock::new()).unwrap();
        let w2 = Dvv::new(Dot::new(1, 2), VectorClock::new()).unwrap();
        assert_eq!(w1.compare(&w2), Causality::Concurrent);
        let w3_past: VectorClock = [(ReplicaId(1), 2)].into_iter().collect();
        let w3 = Dvv::new(Dot::new(2, 1), w3_past).unwrap();
        assert_eq!(w1.compare(&w3), Causality::Before);
        assert_eq!(w3.compare(&w2), Causality::After);
        assert!(Dvv::new(Dot::new(1, 2), w3.past().clone()).is_none());
    }
}

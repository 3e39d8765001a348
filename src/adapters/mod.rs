//! Adapters that put CRDT implementations under the law checker
//! (`converge_conformance::laws::Subject`).
//!
//! The conformance crate knows nothing of converge's own types; this glue is where the two meet.
//! Trace replica `i` is `ReplicaId(i)`, so replica order is id order as the checker requires.

#[cfg(feature = "crdts-adapter")]
pub mod crdts;

use converge_conformance::laws::{Kind, Observation, Op, ReplicaIdx, Subject};
use converge_core::{
    BoundedCounter, GCounter, HlcTimestamp, Lattice, LwwRegister, MvRegister, OrSet, PnCounter,
    ReplicaId,
};
use std::collections::BTreeSet;

fn id(replica: ReplicaIdx) -> ReplicaId {
    ReplicaId(u64::from(replica))
}

/// The parts every converge-core subject shares: join, order, bottom come from [`Lattice`].
macro_rules! lattice_subject {
    ($subject:ident, $state:ty, $name:literal, $kind:expr) => {
        #[doc = concat!("The law checker's view of converge-core's `", stringify!($state), "`.")]
        #[derive(Clone, Copy, Debug, Default)]
        pub struct $subject;

        impl $subject {
            const NAME: &'static str = $name;
        }

        impl Subject for $subject {
            type State = $state;

            fn name(&self) -> String {
                Self::NAME.to_string()
            }

            fn kind(&self) -> Kind {
                $kind
            }

            fn bottom(&self) -> $state {
                <$state as Lattice>::bottom()
            }

            fn join(&self, into: &mut $state, other: &$state) {
                into.join(other.clone());
            }

            fn leq(&self, a: &$state, b: &$state) -> Option<bool> {
                Some(a.leq(b))
            }

            fn has_deltas(&self) -> bool {
                true
            }

            fn apply(&self, state: &mut $state, replica: ReplicaIdx, op: &Op) -> Option<$state> {
                Some(Self::mutate(state, id(replica), op))
            }

            fn read(&self, state: &$state) -> Observation {
                Self::observe(state)
            }
        }
    };
}

lattice_subject!(GCounterSubject, GCounter, "g-counter", Kind::Counter);
lattice_subject!(PnCounterSubject, PnCounter, "pn-counter", Kind::PnCounter);
lattice_subject!(OrSetSubject, OrSet<u8>, "or-set", Kind::AddWinsSet);
lattice_subject!(
    LwwSubject,
    LwwRegister<u64>,
    "lww-register",
    Kind::LwwRegister
);
lattice_subject!(MvSubject, MvRegister<u64>, "mv-register", Kind::MvRegister);
lattice_subject!(
    BoundedSubject,
    BoundedCounter,
    "bounded-counter",
    Kind::BoundedCounter
);

/// The checker passes increments of at most a few units, so a trace cannot overflow a u64 count;
/// an overflow here would be a checker bug worth a loud failure.
const NO_OVERFLOW: &str = "law-checker increments are tiny";

impl GCounterSubject {
    fn mutate(state: &mut GCounter, replica: ReplicaId, op: &Op) -> GCounter {
        match *op {
            Op::Inc(n) => state.increment(replica, n).expect(NO_OVERFLOW),
            _ => GCounter::new(),
        }
    }

    fn observe(state: &GCounter) -> Observation {
        // At most a few hundred tiny increments: far inside i128.
        Observation::Count(state.value() as i128)
    }
}

impl PnCounterSubject {
    fn mutate(state: &mut PnCounter, replica: ReplicaId, op: &Op) -> PnCounter {
        match *op {
            Op::Inc(n) => state.increment(replica, n).expect(NO_OVERFLOW),
            Op::Dec(n) => state.decrement(replica, n).expect(NO_OVERFLOW),
            _ => PnCounter::new(),
        }
    }

    fn observe(state: &PnCounter) -> Observation {
        Observation::Count(state.value())
    }
}

impl OrSetSubject {
    fn mutate(state: &mut OrSet<u8>, replica: ReplicaId, op: &Op) -> OrSet<u8> {
        match *op {
            Op::Add(e) => state.add(replica, e),
            Op::Remove(e) => state.remove(&e),
            _ => OrSet::new(),
        }
    }

    fn observe(state: &OrSet<u8>) -> Observation {
        Observation::Set(state.iter().copied().collect())
    }
}

impl LwwSubject {
    fn mutate(state: &mut LwwRegister<u64>, replica: ReplicaId, op: &Op) -> LwwRegister<u64> {
        match *op {
            Op::Write { value, time } => state.set(replica, HlcTimestamp::new(time, 0), value),
            _ => LwwRegister::new(),
        }
    }

    fn observe(state: &LwwRegister<u64>) -> Observation {
        Observation::Values(state.get().copied().into_iter().collect())
    }
}

impl MvSubject {
    fn mutate(state: &mut MvRegister<u64>, replica: ReplicaId, op: &Op) -> MvRegister<u64> {
        match *op {
            Op::Write { value, .. } => state.write(replica, value),
            _ => MvRegister::new(),
        }
    }

    fn observe(state: &MvRegister<u64>) -> Observation {
        Observation::Values(state.values().copied().collect::<BTreeSet<_>>())
    }
}

impl BoundedSubject {
    /// A refused spend changes nothing, so its delta is the empty counter; the checker's own
    /// specification decides whether the refusal was right.
    fn mutate(state: &mut BoundedCounter, replica: ReplicaId, op: &Op) -> BoundedCounter {
        let result = match *op {
            Op::Inc(n) => state.increment(replica, n),
            Op::Dec(n) => state.decrement(replica, n),
            Op::Transfer { to, amount } => state.transfer(replica, id(to), amount),
            _ => Ok(BoundedCounter::new()),
        };
        match result {
            Ok(delta) => delta,
            Err(converge_core::BoundedError::InsufficientRights { .. }) => BoundedCounter::new(),
            Err(e) => panic!("{NO_OVERFLOW}, and transfers never name their sender: {e}"),
        }
    }

    fn observe(state: &BoundedCounter) -> Observation {
        Observation::Count(state.value())
    }
}

//! Adapters for the `crdts` crate (7.3.2), so the law checker can report on a widely used
//! implementation next to converge's own. Actors are `u64` trace replica indices.
//!
//! What the checker finds here is asserted in `tests/crdts_findings.rs`, never hidden.

use converge_conformance::laws::{Kind, Observation, Op, ReplicaIdx, Subject};
use crdts::{CmRDT, CvRDT, GCounter, LWWReg, MVReg, Orswot, PNCounter};

fn actor(replica: ReplicaIdx) -> u64 {
    u64::from(replica)
}

/// `crdts` reads counters as big integers; the checker's traces stay tiny.
fn small(value: impl ToString) -> i128 {
    value
        .to_string()
        .parse()
        .expect("law-checker counters stay far inside i128")
}

/// `crdts::GCounter<u64>`. Its op is a dot; a counter holding only that dot is its delta.
#[derive(Clone, Copy, Debug, Default)]
pub struct CrdtsGCounter;

impl Subject for CrdtsGCounter {
    type State = GCounter<u64>;

    fn name(&self) -> String {
        "crdts::GCounter".into()
    }
    fn kind(&self) -> Kind {
        Kind::Counter
    }
    fn bottom(&self) -> Self::State {
        GCounter::new()
    }
    fn join(&self, into: &mut Self::State, other: &Self::State) {
        into.merge(other.clone());
    }
    fn has_deltas(&self) -> bool {
        true
    }
    fn apply(&self, state: &mut Self::State, replica: ReplicaIdx, op: &Op) -> Option<Self::State> {
        let Op::Inc(n) = *op else {
            return Some(GCounter::new());
        };
        let dot = state.inc_many(actor(replica), n);
        state.apply(dot);
        let mut delta = GCounter::new();
        delta.apply(dot);
        Some(delta)
    }
    fn read(&self, state: &Self::State) -> Observation {
        Observation::Count(small(state.read()))
    }
}

/// `crdts::PNCounter<u64>`, deltas built the same way as for the G-Counter.
#[derive(Clone, Copy, Debug, Default)]
pub struct CrdtsPnCounter;

impl Subject for CrdtsPnCounter {
    type State = PNCounter<u64>;

    fn name(&self) -> String {
        "crdts::PNCounter".into()
    }
    fn kind(&self) -> Kind {
        Kind::PnCounter
    }
    fn bottom(&self) -> Self::State {
        PNCounter::new()
    }
    fn join(&self, into: &mut Self::State, other: &Self::State) {
        into.merge(other.clone());
    }
    fn has_deltas(&self) -> bool {
        true
    }
    fn apply(&self, state: &mut Self::State, replica: ReplicaIdx, op: &Op) -> Option<Self::State> {
        let op = match *op {
            Op::Inc(n) => state.inc_many(actor(replica), n),
            Op::Dec(n) => state.dec_many(actor(replica), n),
            _ => return Some(PNCounter::new()),
        };
        state.apply(op.clone());
        let mut delta = PNCounter::new();
        delta.apply(op);
        Some(delta)
    }
    fn read(&self, state: &Self::State) -> Observation {
        Observation::Count(small(state.read()))
    }
}

/// `crdts::Orswot<u8, u64>`. Its ops carry version-vector contexts that imply every earlier
/// event of an actor, so a state holding one op is not a delta: replicas exchange whole states.
#[derive(Clone, Copy, Debug, Default)]
pub struct CrdtsOrswot;

impl Subject for CrdtsOrswot {
    type State = Orswot<u8, u64>;

    fn name(&self) -> String {
        "crdts::Orswot".into()
    }
    fn kind(&self) -> Kind {
        Kind::AddWinsSet
    }
    fn bottom(&self) -> Self::State {
        Orswot::new()
    }
    fn join(&self, into: &mut Self::State, other: &Self::State) {
        into.merge(other.clone());
    }
    fn has_deltas(&self) -> bool {
        false
    }
    fn apply(&self, state: &mut Self::State, replica: ReplicaIdx, op: &Op) -> Option<Self::State> {
        let op = match *op {
            Op::Add(e) => state.add(e, state.read_ctx().derive_add_ctx(actor(replica))),
            Op::Remove(e) => state.rm(e, state.contains(&e).derive_rm_ctx()),
            _ => return None,
        };
        state.apply(op);
        None
    }
    fn read(&self, state: &Self::State) -> Observation {
        Observation::Set(state.read().val.into_iter().collect())
    }
}

/// `crdts::LWWReg<u64, u64>` with the write's time as the marker — the crate's documented use.
/// Two replicas writing at the same time produce equal markers.
#[derive(Clone, Copy, Debug, Default)]
pub struct CrdtsLwwReg;

impl Subject for CrdtsLwwReg {
    type State = LWWReg<u64, u64>;

    fn name(&self) -> String {
        "crdts::LWWReg".into()
    }
    fn kind(&self) -> Kind {
        Kind::LwwRegister
    }
    fn bottom(&self) -> Self::State {
        // Trace times start at 1, so marker 0 is "never written".
        LWWReg { val: 0, marker: 0 }
    }
    fn join(&self, into: &mut Self::State, other: &Self::State) {
        into.merge(other.clone());
    }
    fn has_deltas(&self) -> bool {
        true
    }
    fn apply(&self, state: &mut Self::State, _replica: ReplicaIdx, op: &Op) -> Option<Self::State> {
        let Op::Write { value, time } = *op else {
            return None;
        };
        let delta = LWWReg {
            val: value,
            marker: time,
        };
        state.update(value, time);
        Some(delta)
    }
    fn read(&self, state: &Self::State) -> Observation {
        Observation::Values(
            (state.marker > 0)
                .then_some(state.val)
                .into_iter()
                .collect(),
        )
    }
}

/// `crdts::LWWReg<u64, (u64, u64)>` with `(time, actor)` as the marker: the caller-side fix for
/// equal markers, checked so the finding above is shown to be about the marker, not the merge.
#[derive(Clone, Copy, Debug, Default)]
pub struct CrdtsLwwRegTieBroken;

impl Subject for CrdtsLwwRegTieBroken {
    type State = LWWReg<u64, (u64, u64)>;

    fn name(&self) -> String {
        "crdts::LWWReg(time,actor)".into()
    }
    fn kind(&self) -> Kind {
        Kind::LwwRegister
    }
    fn bottom(&self) -> Self::State {
        LWWReg {
            val: 0,
            marker: (0, 0),
        }
    }
    fn join(&self, into: &mut Self::State, other: &Self::State) {
        into.merge(other.clone());
    }
    fn has_deltas(&self) -> bool {
        true
    }
    fn apply(&self, state: &mut Self::State, replica: ReplicaIdx, op: &Op) -> Option<Self::State> {
        let Op::Write { value, time } = *op else {
            return None;
        };
        let marker = (time, actor(replica));
        state.update(value, marker);
        Some(LWWReg { val: value, marker })
    }
    fn read(&self, state: &Self::State) -> Observation {
        Observation::Values(
            (state.marker.0 > 0)
                .then_some(state.val)
                .into_iter()
                .collect(),
        )
    }
}

/// `crdts::MVReg<u64, u64>`. A register holding only a write's op is its delta.
#[derive(Clone, Copy, Debug, Default)]
pub struct CrdtsMvReg;

impl Subject for CrdtsMvReg {
    type State = MVReg<u64, u64>;

    fn name(&self) -> String {
        "crdts::MVReg".into()
    }
    fn kind(&self) -> Kind {
        Kind::MvRegister
    }
    fn bottom(&self) -> Self::State {
        MVReg::new()
    }
    fn join(&self, into: &mut Self::State, other: &Self::State) {
        into.merge(other.clone());
    }
    fn has_deltas(&self) -> bool {
        true
    }
    fn apply(&self, state: &mut Self::State, replica: ReplicaIdx, op: &Op) -> Option<Self::State> {
        let Op::Write { value, .. } = *op else {
            return None;
        };
        let op = state.write(value, state.read_ctx().derive_add_ctx(actor(replica)));
        state.apply(op.clone());
        let mut delta = MVReg::new();
        delta.apply(op);
        Some(delta)
    }
    fn read(&self, state: &Self::State) -> Observation {
        Observation::Values(state.read().val.into_iter().collect())
    }
}

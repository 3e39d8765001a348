//! The simulator's residency check (`converge sim --residency`): keys pinned to some regions
//! must never reach a replica outside them.
//!
//! The harness's workloads know nothing of residency, and a pinned workload key would make the
//! replicas outside its regions refuse the harness's final reads. So the simulator adds traffic
//! of its own on keys under [`PREFIX`], pinned to the first regions ([`pins`]): beside the
//! client requests the harness sends, it writes pinned keys (counters and sets) at whichever
//! replica the request went to, through [`Face::handle_direct`](converge_node::maelstrom::Face),
//! under every fault the seed injects. It then checks, with the replicas' own codec and
//! configuration:
//! - **every transmit**: the payload decodes, and no key it carries (a complete oplog entry, an
//!   anti-entropy state, a routed query, rights ask or consensus message) is one its
//!   destination may not hold ([`leaks`]);
//! - **every reply** to its writes: refused with the definite `NotResident` outside the pin's
//!   regions, applied inside them;
//! - **every store** when a replica is killed and at the end of the run: neither the replica's
//!   keyspace or oplog ([`Replica::forbidden_keys`]) nor its disk holds a pinned key it may not.
//!
//! A violation fails the seed, which prints its replay command like any other failure.

use converge_conformance::harness::rng::SeededDice;
use converge_core::ReplicaId;
use converge_core::replica::{
    ClientError, Config, Consistency, Durable, Op, PeerMsg, Pin, RegionId, Replica, Reply, Request,
    Scalar,
};

/// The prefix of the keys the simulator pins; no workload key starts with it.
pub const PREFIX: &str = "res:";

/// Violations kept per seed; more are counted, not kept.
const VIOLATIONS_MAX: usize = 32;

/// The pins of a run with `regions` regions: [`PREFIX`] to region 0, and to region 1 as well
/// when there are three regions or more, so that pinned entries also replicate between regions
/// and some region is always outside. A full mesh (the simulator's topology) accepts any set.
pub fn pins(regions: usize) -> Vec<Pin> {
    let allowed = if regions >= 3 { 0..2 } else { 0..1 };
    vec![Pin {
        prefix: PREFIX.as_bytes().to_vec(),
        regions: allowed.map(RegionId).collect(),
    }]
}

/// The keys of `payload`, a message to `to`, that `to` may not hold under `config`'s pins; a
/// payload that does not decode is reported as a violation of its own.
pub fn leaks(config: &Config, to: ReplicaId, payload: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let msg = PeerMsg::decode(payload).map_err(|e| format!("undecodable transmit: {e}"))?;
    Ok(msg
        .keys()
        .into_iter()
        .filter(|k| !config.may_hold(to, k))
        .map(<[u8]>::to_vec)
        .collect())
}

/// What one seed's residency traffic did and found.
#[derive(Clone, Debug, Default)]
pub struct ResidencyReport {
    /// Pinned writes sent.
    pub writes: u64,
    /// Of those, refused as outside the pin's regions.
    pub refused: u64,
    /// Transmits checked.
    pub transmits: u64,
    /// What broke residency (at most [`VIOLATIONS_MAX`] kept).
    pub violations: Vec<String>,
    /// Every violation, kept or not.
    pub violation_count: u64,
}

/// The traffic and the checks of one seed.
pub(crate) struct Residency {
    dice: SeededDice,
    pub(crate) report: ResidencyReport,
}

impl Residency {
    pub(crate) fn new(seed: u64) -> Self {
        Residency {
            // A stream of its own, so the pinned traffic never shifts another draw of the seed.
            dice: SeededDice::fork(seed, 0x5EED_0E50),
            report: ResidencyReport::default(),
        }
    }

    fn violation(&mut self, what: String) {
        self.report.violation_count += 1;
        if self.report.violations.len() < VIOLATIONS_MAX {
            self.report.violations.push(what);
        }
    }

    /// A pinned write to send beside a client request, one time in three.
    pub(crate) fn request(&mut self) -> Option<Request> {
        if !self.dice.chance(0.33) {
            return None;
        }
        let k = self.dice.below(4);
        let (key, op) = if self.dice.chance(0.5) {
            (format!("{PREFIX}c{k}"), Op::Incr(1 + self.dice.below(9)))
        } else {
            let member = i64::try_from(self.dice.below(64)).unwrap_or(0);
            (format!("{PREFIX}s{k}"), Op::SetAdd(Scalar::Int(member)))
        };
        self.report.writes += 1;
        Some(Request {
            id: 0,
            key: key.into_bytes().into(),
            op,
            consistency: Consistency::LocalOne,
            token: None,
        })
    }

    /// Checks a transmit of replica `from` (configured by `config`) to `to`.
    pub(crate) fn check_transmit(&mut self, config: &Config, to: ReplicaId, payload: &[u8]) {
        self.report.transmits += 1;
        match leaks(config, to, payload) {
            Ok(keys) => {
                for k in keys {
                    let what = format!(
                        "{} sent pinned key {:?} to {to}, outside its regions",
                        config.me,
                        String::from_utf8_lossy(&k)
                    );
                    self.violation(what);
                }
            }
            Err(e) => self.violation(format!("{} to {to}: {e}", config.me)),
        }
    }

    /// Checks the reply to one of the pinned writes at the replica `config` describes.
    pub(crate) fn check_reply(&mut self, config: &Config, reply: &Reply) {
        let inside = config.may_hold(config.me, PREFIX.as_bytes());
        match (&reply.result, inside) {
            (Ok(_), true) => {}
            (Err(ClientError::NotResident), false) => self.report.refused += 1,
            (result, _) => {
                let what = format!(
                    "{} answered a pinned write with {result:?} (inside the pin's regions: {inside})",
                    config.me
                );
                self.violation(what);
            }
        }
    }

    /// Checks replica `replica`'s state and its disk `disk` (`when`: the moment, for the
    /// report).
    pub(crate) fn check_store(&mut self, replica: &Replica, disk: &Durable, when: &str) {
        let config = replica.config();
        let me = config.me;
        let held = replica.forbidden_keys();
        if !held.is_empty() {
            let keys: Vec<_> = held.iter().map(|k| String::from_utf8_lossy(k)).collect();
            let what = format!("{me} holds pinned keys {keys:?} {when}");
            self.violation(what);
        }
        let stored = disk.keys.keys();
        let logged = disk.oplog.iter().filter(|e| !e.redacted).map(|e| &e.key);
        let on_disk: Vec<_> = stored
            .chain(logged)
            .filter(|k| !config.may_hold(me, k))
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect();
        if !on_disk.is_empty() {
            self.violation(format!("{me} stored pinned keys {on_disk:?} {when}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use converge_core::replica::{Entry, KeyKind, KeyState};
    use converge_core::{HlcTimestamp, VectorClock};

    /// The transmit check finds a complete pinned entry on its way out of the pin's regions,
    /// and lets the same entry redacted, or sent inside them, pass.
    #[test]
    fn a_pinned_entry_leaving_its_regions_is_caught_and_a_redacted_one_is_not() {
        let mut config = Config::grid(0, 3, 1);
        config.residency = pins(3);
        let entry = Entry {
            origin: ReplicaId(0),
            seq: 1,
            stamp: HlcTimestamp::new(1, 0),
            deps: VectorClock::new(),
            key: b"res:c1".as_slice().into(),
            delta: KeyState::empty(KeyKind::Counter),
            redacted: false,
        };
        let complete = PeerMsg::Batch(vec![entry.clone()]).encode();
        let redacted = PeerMsg::Batch(vec![entry.redact()]).encode();
        assert_eq!(
            leaks(&config, ReplicaId(2), &complete),
            Ok(vec![b"res:c1".to_vec()])
        );
        assert_eq!(leaks(&config, ReplicaId(1), &complete), Ok(vec![]));
        assert_eq!(leaks(&config, ReplicaId(2), &redacted), Ok(vec![]));
        assert!(leaks(&config, ReplicaId(2), b"junk").is_err());
        let mut r = Residency::new(1);
        r.check_transmit(&config, ReplicaId(2), &complete);
        assert_eq!(r.report.violation_count, 1);
    }
}

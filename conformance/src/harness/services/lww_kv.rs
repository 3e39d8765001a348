//! `lww-kv`: an eventually consistent store of replicas that merge by last-write-wins.
//!
//! Invariants: every write is stamped `(time, counter)` with a counter that grows with every
//! write, so stamps never tie and a replica's own newest write wins there; a replica's clock
//! never goes back; merging is a join (per key, the larger stamp), so replicas that keep merging
//! agree.

use super::dice::{Dice, pick, roll};
use super::protocol::{Failure, Request, check_cas, read_ok, reply};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// A value as an `lww-kv` replica holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Stamped {
    time: u64,
    counter: u64,
    value: Value,
}

impl Stamped {
    fn stamp(&self) -> (u64, u64) {
        (self.time, self.counter)
    }
}

/// One `lww-kv` replica.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Replica {
    /// The largest write time this replica has seen, from its own writes or merged ones.
    clock: u64,
    pub(super) map: BTreeMap<String, Stamped>,
}

impl Replica {
    /// `self := self ⊔ other`: per key, the entry with the larger stamp.
    fn absorb(&mut self, other: &Replica) {
        self.clock = self.clock.max(other.clock);
        for (key, theirs) in &other.map {
            let newer = self
                .map
                .get(key)
                .is_none_or(|ours| ours.stamp() < theirs.stamp());
            if newer {
                self.map.insert(key.clone(), theirs.clone());
            }
        }
    }
}

/// `lww-kv`'s state.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct LwwKv {
    /// Never empty.
    pub(super) replicas: Vec<Replica>,
    /// Writes so far; the last write's stamp carries it, so stamps never tie.
    counter: u64,
}

impl LwwKv {
    /// `replicas` empty replicas; at least one is kept by the caller.
    pub(super) fn new(replicas: usize) -> Self {
        LwwKv {
            replicas: vec![Replica::default(); replicas],
            counter: 0,
        }
    }

    /// Merges every replica with every other, so that all agree.
    pub(super) fn settle(&mut self) {
        let n = self.replicas.len();
        // Gathering into replica 0 and then spreading from it makes every replica the join of all.
        for i in 1..n {
            self.sync(i, 0);
        }
        for i in 1..n {
            self.sync(0, i);
        }
    }

    fn get(&self, at: usize, key: &str) -> Option<&Value> {
        self.replicas
            .get(at)
            .and_then(|r| r.map.get(key))
            .map(|e| &e.value)
    }

    /// Whether replica `at` answers for `key` otherwise than the newest write any replica holds.
    fn is_stale(&self, at: usize, key: &str) -> bool {
        let newest = self
            .replicas
            .iter()
            .filter_map(|r| r.map.get(key))
            .map(Stamped::stamp)
            .max();
        let here = self
            .replicas
            .get(at)
            .and_then(|r| r.map.get(key))
            .map(Stamped::stamp);
        here != newest
    }

    fn write(&mut self, at: usize, key: String, value: Value, now_ms: u64) {
        self.counter += 1;
        let counter = self.counter;
        if let Some(replica) = self.replicas.get_mut(at) {
            // The replica's clock never goes back, even when the caller's does, and the counter is
            // larger than any before: the write beats everything this replica holds.
            replica.clock = replica.clock.max(now_ms);
            let time = replica.clock;
            replica.map.insert(
                key,
                Stamped {
                    time,
                    counter,
                    value,
                },
            );
        }
    }

    /// Merges replica `from` into replica `to`.
    fn sync(&mut self, from: usize, to: usize) {
        if from == to {
            return;
        }
        let Some(source) = self.replicas.get_mut(from).map(std::mem::take) else {
            return;
        };
        if let Some(target) = self.replicas.get_mut(to) {
            target.absorb(&source);
        }
        if let Some(slot) = self.replicas.get_mut(from) {
            *slot = source;
        }
    }

    /// Answers a request at a replica the dice picks, after merging one random replica into
    /// another with a chance of `sync_percent` percent. A read that the newest write any replica
    /// holds would have answered differently is counted in `stale_reads`.
    pub(super) fn serve(
        &mut self,
        request: Request,
        now_ms: u64,
        dice: &mut dyn Dice,
        sync_percent: u64,
        stale_reads: &mut u64,
    ) -> Result<Map<String, Value>, Failure> {
        let n = self.replicas.len();
        if n >= 2 && roll(dice, 100) < sync_percent {
            let from = pick(dice, n);
            // Adding 1..n modulo n picks any replica but `from`, so no sync is wasted on itself.
            let to = (from + 1 + pick(dice, n - 1)) % n;
            self.sync(from, to);
        }
        let at = pick(dice, n);
        match request {
            Request::Read { key } => {
                let stale = self.is_stale(at, &key);
                *stale_reads += u64::from(stale);
                let value = self.get(at, &key).cloned();
                value.map(read_ok).ok_or_else(Failure::missing)
            }
            Request::Write { key, value } => {
                self.write(at, key, value, now_ms);
                Ok(reply("write_ok"))
            }
            Request::Cas {
                key,
                from,
                to,
                create,
            } => {
                check_cas(self.get(at, &key), &from, create)?;
                self.write(at, key, to, now_ms);
                Ok(reply("cas_ok"))
            }
            Request::Ts => Err(Failure::not_supported("ts")),
        }
    }
}

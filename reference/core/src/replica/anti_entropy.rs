//! Anti-entropy: Merkle-tree rounds that repair what replication missed, and the frontier claim
//! that lets a repaired replica answer session tokens again.
//!
//! # What it owns
//! The puller's rounds in progress (one per neighbour at most), the time of the next periodic
//! rounds and the seeded jitter generator. The responder keeps no state. It reads the store's
//! keys and tree, and changes the store only through `Store::join_key`, `Store::raise_horizon`
//! and `Store::claim_frontier`; a round that claims a frontier says so, and the dispatcher lets
//! the links and the requests move on.
//!
//! # Invariants (checked by [`AntiEntropy::debug_check`])
//! - Periodic rounds are armed exactly when the replica has neighbours.
//! - Every round in progress ends within `ae_timeout_ms` of now (it started no later than now).
//!
//! # The tree
//! Fixed fan-out `2^merkle_fanout_bits` and depth `merkle_depth` (16 × 3 levels by default,
//! 4096 leaves). A key sits in the leaf named by the top bits of `xxh3(key)`; its item hash is
//! `xxh3(canonical state, seed = xxh3(key))`; a node holds the wrapping sum of the item hashes
//! below it. A write only marks its key dirty; before a replica reads node hashes — to start a
//! round, answer a probe or descend a diff — it refreshes the keyspace: rehashes each dirty key
//! once, however often it was written, and moves its leaf and ancestors by the difference
//! (O(depth) each). A write thus costs O(delta), not O(size of the key), and a round rehashes
//! only what changed since the last one. Sums make the tree independent of insertion order; a
//! 64-bit collision is the (accepted) way two different keyspaces could look equal.
//!
//! # A round
//! Every `ae_interval_ms` (plus seeded jitter) a replica *pulls* from each neighbour it is not
//! already pulling from:
//! 1. puller → `AeProbe { level 0, [root] }`;
//! 2. responder → `AeDiff { differing, claim: (F, V) }`: the probed nodes whose hashes differ,
//!    and, on the root level only, its frontier and horizon at that moment `t0`;
//! 3. puller → `AeProbe { level + 1, every child of every differing node }`, and so on: it
//!    descends only into differing subtrees;
//! 4. at the leaves the responder answers `AeKeys`: its states of every key in the differing
//!    leaves (at most `ae_keys_max` of them and half the message limit in bytes; `complete =
//!    false` if cut short) and its current horizon.
//!
//! The puller joins the states (each key that changes is a *repair*) and raises its horizon by
//! the responder's (the states are built from entries below it). The responder keeps no round
//! state. A round not finished by `ae_timeout_ms` is abandoned; any lost message just ends it.
//!
//! # The frontier claim
//! When a round completes — no differing node, or `AeKeys` with `complete` — the puller sets
//! `F := F ⊔ F_resp(t0)` (and `V := V ⊔ V_resp(t0)`). Why that is sound: for every key, either
//! some ancestor node (or its leaf) compared equal — the puller's subtree at the time it sent
//! its hash equalled the responder's at a time after `t0`, and states only grow — or the key's
//! leaf differed and the responder shipped its state after `t0`, which the puller joined. Either
//! way the puller's state is now above the responder's state at `t0`, which is above the delta
//! of every entry `≤ F_resp(t0)`. So the puller holds every entry it claims, which is exactly
//! the frontier invariant session tokens rely on (see `session`). A claim is what un-sticks a
//! replica whose missing entries were truncated everywhere: the oplog cannot resend them, and
//! after the claim neither side needs it to.
//!
//! # Residency
//! Two replicas compare only the keys both may hold: every node hash either side sends or
//! compares is of the tree less the pins one of them may not hold
//! (`Keyspace::node_excluding`, with `Shared::excluded_pins`, which both compute alike), and
//! the responder ships no key outside that set (the puller drops one it should not hold). So no
//! pinned key's name, state or hash reaches a replica outside its regions.
//!
//! The claim then stands on that comparison alone; the responder's frontier also counts the
//! entries it applied redacted, of keys it may not hold. The puller holds none of those keys
//! either, except for a pin that allows the puller and not the responder: entries of that
//! pin's other replicas (`Shared::risky_origins`) may carry its keys, which the round did not
//! compare. So the claim is made only if, for each of those origins, it covers nothing beyond
//! the puller's own frontier: it then adds no entry of theirs, and what it adds of other
//! origins is backed by the comparison as before; the join of two causally closed frontiers is
//! causally closed. Otherwise the round repairs and claims nothing (`ae_claims_withheld`).
//! Forbidden replicas receive a pin's origins' entries through its replicas (the routes), so
//! they are seldom ahead on them, and the pin's replicas claim from one another freely.
//!
//! [`Bug::AeSkipsSubtree`] drops one differing subtree per level and still lets the round
//! complete: the claim then covers keys that were never shipped.

use super::api::Transmit;
use super::config::{Bug, Config};
use super::msg::{AeClaim, AeDiff, AeKeys, AeProbe, PeerMsg};
use super::shared::Ctx;
use super::store::Store;
use crate::ReplicaId;
use std::collections::BTreeMap;

/// The puller's side of anti-entropy.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct AntiEntropy {
    /// When the next rounds start (`None` without neighbours).
    next_at: Option<u64>,
    next_round: u64,
    /// Jitter generator state (seeded from the configuration).
    rng: u64,
    /// The round in progress with each neighbour.
    rounds: BTreeMap<ReplicaId, Round>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Round {
    id: u64,
    /// The level last probed.
    level: u8,
    /// The responder's frontier and horizon at the root probe.
    claim: Option<AeClaim>,
    deadline_ms: u64,
}

impl AntiEntropy {
    pub(crate) fn new(seed: u64) -> Self {
        AntiEntropy {
            next_at: None,
            next_round: 0,
            rng: seed,
            rounds: BTreeMap::new(),
        }
    }

    /// Arms the first exchange, jittered so that replicas started together do not pull in step.
    pub(crate) fn schedule_first(&mut self, now_ms: u64, config: &Config) {
        if config.neighbours(config.me).is_empty() {
            return;
        }
        self.schedule(now_ms, config.ae_interval_ms);
    }

    fn schedule(&mut self, now_ms: u64, interval_ms: u64) {
        let jitter = splitmix64(&mut self.rng) % (interval_ms / 4 + 1);
        self.next_at = Some(now_ms + interval_ms + jitter);
    }

    /// Checks the invariants of the module documentation (debug builds).
    pub(crate) fn debug_check(&self, now_ms: u64, config: &Config, has_neighbours: bool) {
        debug_assert_eq!(
            self.next_at.is_some(),
            has_neighbours,
            "periodic rounds armed without neighbours, or not armed with them"
        );
        debug_assert!(
            self.rounds
                .values()
                .all(|r| r.deadline_ms <= now_ms.saturating_add(config.ae_timeout_ms)),
            "a round outlives its timeout"
        );
    }

    #[inline]
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        let rounds = self.rounds.values().map(|r| r.deadline_ms).min();
        match (self.next_at, rounds) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Abandons overdue rounds and starts the periodic ones.
    #[inline]
    pub(crate) fn timers(&mut self, store: &mut Store, cx: &mut Ctx<'_>) {
        let now = cx.now_ms;
        let overdue: Vec<ReplicaId> = self
            .rounds
            .iter()
            .filter(|(_, r)| r.deadline_ms <= now)
            .map(|(&p, _)| p)
            .collect();
        for p in overdue {
            self.rounds.remove(&p);
            cx.m.ae_rounds_abandoned += 1;
        }
        if self.next_at.is_some_and(|t| t <= now) {
            let shared = cx.shared;
            for &p in &shared.neighbours {
                if !self.rounds.contains_key(&p) {
                    self.start_round(store, cx, p);
                }
            }
            self.schedule(now, shared.config.ae_interval_ms);
        }
    }

    pub(crate) fn start_round(&mut self, store: &mut Store, cx: &mut Ctx<'_>, p: ReplicaId) {
        self.next_round += 1;
        let id = self.next_round;
        self.rounds.insert(
            p,
            Round {
                id,
                level: 0,
                claim: None,
                deadline_ms: cx.now_ms + cx.shared.config.ae_timeout_ms,
            },
        );
        cx.m.ae_rounds += 1;
        store.refresh_keys();
        let excluded = cx.shared.excluded_pins(cx.shared.config.me, p);
        let root = store.keys().node_excluding(0, 0, &excluded).unwrap_or(0);
        let probe = AeProbe {
            round: id,
            level: 0,
            nodes: vec![(0, root)],
        };
        Self::send(cx, p, PeerMsg::AeProbe(probe));
    }

    fn send(cx: &mut Ctx<'_>, to: ReplicaId, msg: PeerMsg) {
        cx.out.push_back(Transmit {
            to,
            payload: msg.encode(),
        });
    }

    /// Responder: compare the probed nodes, answer with the differing ones or their keys.
    pub(crate) fn on_probe(
        &mut self,
        store: &mut Store,
        cx: &mut Ctx<'_>,
        from: ReplicaId,
        probe: AeProbe,
    ) {
        // The comparison must see every write so far (see "The tree").
        store.refresh_keys();
        let tree = store.keys().tree();
        if probe.level > tree.depth()
            || probe
                .nodes
                .iter()
                .any(|&(i, _)| i >= tree.width(probe.level))
        {
            cx.m.invalid_messages += 1;
            return;
        }
        let excluded = cx.shared.excluded_pins(cx.shared.config.me, from);
        let keys = store.keys();
        let mut differing: Vec<u32> = probe
            .nodes
            .iter()
            .filter(|&&(i, h)| keys.node_excluding(probe.level, i, &excluded) != Some(h))
            .map(|&(i, _)| i)
            .collect();
        if cx.shared.config.bug == Some(Bug::AeSkipsSubtree) {
            differing.pop();
        }
        if probe.level < tree.depth() {
            let claim = (probe.level == 0).then(|| AeClaim {
                frontier: store.frontier().clone(),
                horizon: store.horizon().clone(),
            });
            let diff = AeDiff {
                round: probe.round,
                level: probe.level,
                differing,
                claim,
            };
            Self::send(cx, from, PeerMsg::AeDiff(diff));
            return;
        }
        // Bounded in keys and in bytes (half the message limit, so the reply always decodes).
        let max = cx.shared.config.ae_keys_max;
        let bytes_max = cx.shared.config.message_bytes_max / 2;
        let mut bytes = 0;
        let mut states = Vec::new();
        let mut complete = true;
        'leaves: for leaf in differing {
            for (k, s) in store.keys().leaf(leaf) {
                // Residency: only the keys both sides may hold were compared, and only they
                // may travel (see § Residency).
                if cx
                    .shared
                    .config
                    .pin_of(k)
                    .is_some_and(|i| excluded.contains(&i))
                {
                    continue;
                }
                let size = k.len() + s.encode().len();
                if states.len() == max || (!states.is_empty() && bytes + size > bytes_max) {
                    complete = false;
                    break 'leaves;
                }
                bytes += size;
                states.push((k.clone(), s.clone()));
            }
        }
        let keys = AeKeys {
            round: probe.round,
            states,
            horizon: store.horizon().clone(),
            complete,
        };
        Self::send(cx, from, PeerMsg::AeKeys(keys));
    }

    /// Puller: descend into the differing nodes, or finish the round.
    pub(crate) fn on_diff(
        &mut self,
        store: &mut Store,
        cx: &mut Ctx<'_>,
        from: ReplicaId,
        diff: AeDiff,
    ) -> bool {
        let Some(round) = self.rounds.get(&from) else {
            cx.m.stale_replies += 1;
            return false;
        };
        if diff.round != round.id || diff.level != round.level {
            cx.m.stale_replies += 1;
            return false;
        }
        // The child hashes we send must reflect every write so far (see "The tree").
        store.refresh_keys();
        let tree = store.keys().tree();
        let claim_ok = match &diff.claim {
            Some(c) => {
                diff.level == 0
                    && store.plausible(&c.frontier, cx.shared)
                    && store.plausible(&c.horizon, cx.shared)
                    && c.horizon.dominates(&c.frontier)
            }
            None => diff.level != 0,
        };
        if !claim_ok
            || diff.level >= tree.depth()
            || diff.differing.iter().any(|&i| i >= tree.width(diff.level))
        {
            cx.m.invalid_messages += 1;
            self.rounds.remove(&from);
            cx.m.ae_rounds_abandoned += 1;
            return false;
        }
        let level = diff.level + 1;
        let fanout = tree.fanout();
        let excluded = cx.shared.excluded_pins(cx.shared.config.me, from);
        let keyspace = store.keys();
        let nodes: Vec<(u32, u64)> = diff
            .differing
            .iter()
            .flat_map(|&i| (0..fanout).map(move |c| i * fanout + c))
            .map(|i| (i, keyspace.node_excluding(level, i, &excluded).unwrap_or(0)))
            .collect();
        let Some(round) = self.rounds.get_mut(&from) else {
            return false;
        };
        if let Some(c) = diff.claim {
            round.claim = Some(c);
        }
        if nodes.is_empty() {
            return self.complete_round(store, cx, from);
        }
        round.level = level;
        let probe = AeProbe {
            round: round.id,
            level,
            nodes,
        };
        Self::send(cx, from, PeerMsg::AeProbe(probe));
        false
    }

    /// Puller: join the shipped states; a complete answer completes the round.
    pub(crate) fn on_keys(
        &mut self,
        store: &mut Store,
        cx: &mut Ctx<'_>,
        from: ReplicaId,
        keys: AeKeys,
    ) -> bool {
        let Some(round) = self.rounds.get(&from) else {
            cx.m.stale_replies += 1;
            return false;
        };
        if keys.round != round.id || round.level != store.keys().tree().depth() {
            cx.m.stale_replies += 1;
            return false;
        }
        if !store.plausible(&keys.horizon, cx.shared) {
            cx.m.invalid_messages += 1;
            self.rounds.remove(&from);
            cx.m.ae_rounds_abandoned += 1;
            return false;
        }
        let me = cx.shared.config.me;
        for (key, state) in keys.states {
            // A correct responder never ships a key this replica may not hold (residency).
            if !cx.shared.may_hold(me, &key) {
                cx.m.invalid_messages += 1;
                continue;
            }
            let (changed, conflict) = store.join_key(&key, state);
            if changed {
                cx.m.ae_keys_repaired += 1;
            }
            if conflict {
                cx.m.type_conflicts += 1;
            }
        }
        // The shipped states are built from entries below the responder's horizon.
        store.raise_horizon(&keys.horizon);
        if keys.complete {
            return self.complete_round(store, cx, from);
        }
        self.rounds.remove(&from);
        cx.m.ae_rounds_abandoned += 1;
        false
    }

    /// Ends the round with `p` and makes its frontier claim (see the module documentation).
    /// Returns whether the claim moved the frontier: the dispatcher then lets parked entries,
    /// session waits and stuck senders move on.
    fn complete_round(&mut self, store: &mut Store, cx: &mut Ctx<'_>, p: ReplicaId) -> bool {
        let Some(round) = self.rounds.remove(&p) else {
            return false;
        };
        cx.m.ae_rounds_completed += 1;
        let Some(claim) = round.claim else {
            return false;
        };
        // Residency: a claim from a replica that may not hold keys this one may could cover
        // entries never received; it is made only if it covers none of theirs beyond what this
        // replica already holds (see § Residency).
        let risky = cx.shared.risky_origins(cx.shared.config.me, p);
        if risky
            .iter()
            .any(|&o| claim.frontier.get(o) > store.frontier().get(o))
        {
            cx.m.ae_claims_withheld += 1;
            return false;
        }
        store.raise_horizon(&claim.horizon);
        let claimed = store.claim_frontier(&claim.frontier);
        if claimed {
            cx.m.ae_frontier_claims += 1;
        }
        claimed
    }

    /// Whether a round with `p` is in progress.
    #[inline]
    pub(crate) fn is_pulling(&self, p: ReplicaId) -> bool {
        self.rounds.contains_key(&p)
    }
}

/// SplitMix64: a tiny, well-mixed generator for the timer jitter.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use crate::ReplicaId;
    use crate::replica::{Config, Consistency, KeyState, Op, Output, Replica, Request, Scalar};

    fn sadd(r: &mut Replica, now: u64, member: i64) {
        r.handle_request(
            now,
            Request {
                id: member as u64,
                key: (*b"s").into(),
                op: Op::SetAdd(Scalar::Int(member)),
                consistency: Consistency::LocalOne,
                token: None,
            },
        );
    }

    /// Delivers every transmit (except those of replica `mute`, dropped) until none is left.
    fn pump(rs: &mut [Replica], now: u64, mute: Option<usize>) {
        for _ in 0..10_000 {
            let mut moved = false;
            for i in 0..rs.len() {
                rs[i].handle_timeout(now);
                let from = rs[i].id();
                let mut out = Vec::new();
                rs[i].drain(|o| {
                    if let Output::Transmit(t) = o
                        && mute != Some(i)
                    {
                        out.push(t);
                    }
                });
                for t in out {
                    moved = true;
                    rs[t.to.0 as usize].handle_message(now, from, &t.payload);
                }
            }
            if !moved {
                return;
            }
        }
        panic!("the exchange did not settle in 10,000 rounds");
    }

    fn members(r: &Replica) -> usize {
        match r.get(b"s") {
            Some(KeyState::Set(s)) => s.len(),
            _ => 0,
        }
    }

    /// Writes only mark keys dirty; if a replica compared or sent node hashes without
    /// refreshing first, its tree would still show the set as it was at the last round, equal
    /// to the stale peer's, and the round would "complete" — claiming the frontier — without
    /// shipping the missing members.
    #[test]
    fn anti_entropy_sees_every_write_to_a_set_made_since_the_last_round() {
        let mut rs: Vec<Replica> = (0..2)
            .map(|i| {
                let mut c = Config::grid(i, 2, 1);
                // Truncate early, so only anti-entropy can repair; no periodic rounds.
                c.oplog_entries_max = 4;
                c.ae_interval_ms = 1_000_000_000;
                Replica::new(c, 0).expect("valid config")
            })
            .collect();
        let mut now = 1;
        for m in 0..50 {
            sadd(&mut rs[0], now, m);
        }
        pump(&mut rs, now, None);
        // A first round: both trees are read (and refreshed) with 50 members.
        rs[1].start_anti_entropy(now, ReplicaId(0));
        pump(&mut rs, now, None);
        assert_eq!((members(&rs[0]), members(&rs[1])), (50, 50));
        assert_eq!(rs[0].root_hash(), rs[1].root_hash());
        // Many more writes to the same set, none of which reaches replica 1.
        for m in 50..350 {
            sadd(&mut rs[0], now, m);
            if m % 16 == 0 {
                now += 1;
                pump(&mut rs, now, Some(0));
            }
        }
        pump(&mut rs, now, Some(0));
        assert!(
            rs[0].stats().counters.truncated_cap > 0,
            "the cap truncated"
        );
        assert_eq!((members(&rs[0]), members(&rs[1])), (350, 50));
        assert_ne!(rs[0].root_hash(), rs[1].root_hash());
        // Anti-entropy must ship the set.
        now += 1;
        rs[1].start_anti_entropy(now, ReplicaId(0));
        pump(&mut rs, now, None);
        assert!(
            rs[1].stats().counters.ae_keys_repaired > 0,
            "no key was shipped"
        );
        assert_eq!(rs[1].get(b"s"), rs[0].get(b"s"));
        assert_eq!(rs[0].root_hash(), rs[1].root_hash());
        let (k0, k1) = (rs[0].store.keys(), rs[1].store.keys());
        assert!(k0.is_fresh() && k0.check() && k1.check());
    }
}

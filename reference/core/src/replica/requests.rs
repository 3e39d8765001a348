//! The requests: client requests that wait, and the consistency levels they wait for.
//!
//! # What it owns
//! The waiting requests — for their session token to be covered, for a quorum to hold their
//! write, for a quorum of answers to a query — with an index of their deadlines and of the
//! times to re-send a query to its silent targets. It reads the store (frontier, horizon, keys)
//! and the links' known frontiers, writes only through `Store::write` and `Store::write_back`,
//! tells the links of every entry logged at once (so the flush timer is armed as before), and
//! sends and relays the routed query traffic.
//!
//! # Invariants (checked by [`Requests::debug_check`])
//! - At most `pending_max` requests wait, and every one has a deadline in the index: each wait
//!   ends by its deadline, with a reply or a definite error.
//! - `sessions` counts the session waits, so a frontier advance with none costs nothing;
//!   `rights` counts the waits for bounded-counter rights, so an input with none costs nothing.
//!
//! # Levels
//! - `LocalOne`: apply locally, reply. Reads answer from local state.
//! - `LocalQuorum`: a write is acknowledged once a majority of this region's replicas hold it
//!   (their acked frontiers cover `(me, seq)`); a read asks the region's other replicas for the
//!   key and answers once a majority of the region (this replica included) has, joining their
//!   states.
//! - `GlobalQuorum`: the same with a *hierarchical* quorum — a majority of regions, each counted
//!   once a majority of its own replicas hold the write or answered. Two such quorums always
//!   share a region, and within it share a replica, which is what the register protocol below
//!   needs. (Counting a region when any one of its replicas holds the write would not do: a
//!   later read could ask a different replica of that region.)
//!
//! "Holds" means "has applied and made durable": a replica learns it from acks, which carry
//! frontiers — first-hand from neighbours, second-hand through the tables acks carry in
//! topologies other than the full mesh.
//!
//! # Global-quorum registers (ABD)
//! Attiya, Bar-Noy and Dolev's protocol, over lattice states:
//! - A read queries every replica, waits for a global quorum of answers, joins them into the
//!   local state, and — unless every answer already equals the result — writes the result back
//!   as a new oplog entry of this replica and waits until a global quorum holds that entry. Only
//!   then does it reply. A later read's quorum meets the write-back's quorum, so it returns at
//!   least this value. Like any write, the write-back depends on the read's session token (see
//!   `session` § State that bypasses the oplog for what its whole-state delta may expose).
//! - A last-writer-wins write first queries a global quorum and joins the answers, so the local
//!   winner is the highest stamp any completed write left at a quorum; it then stamps its value
//!   above that winner (the HLC is moved past it) and waits until a global quorum holds the new
//!   entry. Every write that completed before it started therefore loses to it.
//!
//! Registers written and read only at `GlobalQuorum` are thus linearizable. Other types at
//! `GlobalQuorum` get the quorum wait on writes and the quorum read with write-back; their joins
//! commute, so no query phase is needed before a write.
//!
//! A level not met by the deadline (`quorum_timeout_ms`) fails with `Unavailable`: never a
//! downgrade. At most `pending_max` requests wait; beyond that, `Overloaded`.
//!
//! # Bounded counters
//! A withdrawal this replica's rights do not cover waits for peers to transfer rights
//! ([`Wait::Rights`]); `escrow` (a child module adding methods to [`Requests`]) asks, grants,
//! re-asks and expires those waits. They count against `pending_max` and sit in the deadline
//! index like every other wait.

use super::api::Transmit;
use super::api::{ClientError, Consistency, Done, Key, KeyKind, Op, Reply, Request, Scalar, Value};
use super::config::Bug;
use super::links::Links;
use super::msg::PeerMsg;
use super::msg::{Routed, RoutedBody};
use super::session::SessionToken;
use super::shared::{Ctx, Shared};
use super::state::KeyState;
use super::store::{Issued, Store};
use crate::{ReplicaId, VectorClock};
use std::collections::{BTreeMap, BTreeSet};

mod escrow;

/// Requests waiting, with an index of their deadlines; see the module documentation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Requests {
    ops: BTreeMap<u64, PendingOp>,
    deadlines: BTreeSet<(u64, u64)>,
    /// When to ask the silent targets of a query again: `(time, op)`.
    resends: BTreeSet<(u64, u64)>,
    next_id: u64,
    sessions: usize,
    /// When to ask peers for rights again for a withdrawal that waits: `(time, op)`.
    asks: BTreeSet<(u64, u64)>,
    /// How many waits are [`Wait::Rights`], so that an input with none costs nothing.
    rights: usize,
}

/// One waiting request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PendingOp {
    request_id: u64,
    /// The request's token: the reply's token is built on it.
    token: VectorClock,
    deadline_ms: u64,
    wait: Wait,
}

/// What a request waits for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Wait {
    /// Its session token to be covered.
    Session(Request),
    /// A quorum to hold this replica's entry `seq`.
    Coverage {
        seq: u64,
        level: Consistency,
        value: Value,
    },
    /// A quorum of answers to a query.
    Query(Query),
    /// Rights to cover a bounded-counter withdrawal (the request, its op a negative
    /// [`Op::BoundedAdd`]); see `escrow`.
    Rights(Request),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Query {
    key: Key,
    level: Consistency,
    /// `Some` for the query phase of a global-quorum register write.
    put: Option<Scalar>,
    /// Every replica asked.
    targets: Vec<ReplicaId>,
    /// The answers so far.
    answers: BTreeMap<ReplicaId, Option<KeyState>>,
    /// Join of the answerers' horizons.
    horizon: VectorClock,
}

impl Requests {
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.ops.len()
    }

    /// Checks the invariants of the module documentation (debug builds; the scan is bounded).
    pub(crate) fn debug_check(&self, shared: &Shared) {
        debug_assert!(self.ops.len() <= shared.config.pending_max);
        debug_assert_eq!(
            self.deadlines.len(),
            self.ops.len(),
            "a wait without a deadline"
        );
        if cfg!(debug_assertions) && self.ops.len() <= 256 {
            let sessions = self
                .ops
                .values()
                .filter(|op| matches!(op.wait, Wait::Session(_)))
                .count();
            debug_assert_eq!(self.sessions, sessions, "session waits miscounted");
            let rights = self
                .ops
                .values()
                .filter(|op| matches!(op.wait, Wait::Rights(_)))
                .count();
            debug_assert_eq!(self.rights, rights, "rights waits miscounted");
        }
    }

    #[inline]
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        let deadline = self.deadlines.first().map(|&(t, _)| t);
        let resend = self.resends.first().map(|&(t, _)| t);
        let ask = self.asks.first().map(|&(t, _)| t);
        [deadline, resend, ask].into_iter().flatten().min()
    }

    fn insert(&mut self, op: PendingOp) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        self.deadlines.insert((op.deadline_ms, id));
        if matches!(op.wait, Wait::Session(_)) {
            self.sessions += 1;
        }
        if matches!(op.wait, Wait::Rights(_)) {
            self.rights += 1;
        }
        self.ops.insert(id, op);
        id
    }

    fn remove(&mut self, id: u64) -> Option<PendingOp> {
        let op = self.ops.remove(&id)?;
        self.deadlines.remove(&(op.deadline_ms, id));
        if matches!(op.wait, Wait::Session(_)) {
            self.sessions -= 1;
        }
        if matches!(op.wait, Wait::Rights(_)) {
            self.rights -= 1;
        }
        Some(op)
    }

    /// Whether no more requests may wait (counted as `overloaded`).
    fn pending_full(&self, cx: &mut Ctx<'_>) -> bool {
        let full = self.len() >= cx.shared.config.pending_max;
        if full {
            cx.m.overloaded += 1;
        }
        full
    }

    /// A client request: wait for its token if needed, then execute it.
    #[inline]
    pub(crate) fn on_request(
        &mut self,
        store: &mut Store,
        links: &mut Links,
        cx: &mut Ctx<'_>,
        request: Request,
    ) {
        let token = request
            .token
            .as_ref()
            .map(|t| t.frontier().clone())
            .unwrap_or_default();
        if !token.iter().all(|(o, _)| cx.shared.members.contains(&o)) {
            Self::reply_err(cx, request.id, ClientError::BadToken);
            return;
        }
        let ignore = cx.shared.config.bug == Some(Bug::ReadIgnoresToken) && !request.op.is_write();
        if !ignore && !store.frontier().dominates(&token) {
            if self.pending_full(cx) {
                Self::reply_err(cx, request.id, ClientError::Overloaded);
                return;
            }
            cx.m.session_waits += 1;
            self.insert(PendingOp {
                request_id: request.id,
                token,
                deadline_ms: cx.now_ms + cx.shared.config.session_wait_ms,
                wait: Wait::Session(request),
            });
            return;
        }
        self.execute(store, links, cx, request, token);
    }

    /// Executes a request whose token is covered.
    fn execute(
        &mut self,
        store: &mut Store,
        links: &mut Links,
        cx: &mut Ctx<'_>,
        request: Request,
        token: VectorClock,
    ) {
        let Request {
            id,
            key,
            op,
            consistency,
            ..
        } = request;
        let single_region_replica = cx.shared.regions[cx.shared.my_region].len() == 1;
        match op {
            Op::Get => {
                if consistency == Consistency::LocalOne
                    || (consistency == Consistency::LocalQuorum && single_region_replica)
                {
                    let value = Self::value_of(store, &key);
                    Self::reply_ok(store, cx, id, value, &token);
                } else {
                    if let Some(op) = self.start_query(cx, id, token, key, consistency, None) {
                        self.check_query(store, links, cx, op);
                    }
                }
            }
            Op::Put(v) if consistency == Consistency::GlobalQuorum => {
                if let Some(op) = self.start_query(cx, id, token, key, consistency, Some(v)) {
                    self.check_query(store, links, cx, op);
                }
            }
            Op::BoundedAdd(n)
                if n < 0 && Self::must_wait_for_rights(store, cx, &key, n.unsigned_abs()) =>
            {
                let request = Request {
                    id,
                    key,
                    op: Op::BoundedAdd(n),
                    consistency,
                    token: None,
                };
                self.withdraw(store, cx, request, token);
            }
            op => {
                if consistency != Consistency::LocalOne && self.pending_full(cx) {
                    Self::reply_err(cx, id, ClientError::Overloaded);
                    return;
                }
                let withdrawal = matches!(op, Op::BoundedAdd(n) if n < 0);
                let written = self.local_write(store, links, cx, key, op, &token);
                if withdrawal && written.is_ok() {
                    cx.m.withdrawals_applied += 1;
                }
                match written {
                    Err(e) => Self::reply_err(cx, id, e),
                    Ok((_, value)) if consistency == Consistency::LocalOne => {
                        Self::reply_ok(store, cx, id, value, &token)
                    }
                    Ok((issued, value)) => {
                        let deadline_ms = cx.now_ms + cx.shared.config.quorum_timeout_ms;
                        self.await_coverage(
                            store,
                            links,
                            cx,
                            PendingOp {
                                request_id: id,
                                token,
                                deadline_ms,
                                wait: Wait::Coverage {
                                    seq: issued.seq,
                                    level: consistency,
                                    value,
                                },
                            },
                        );
                    }
                }
            }
        }
    }

    fn value_of(store: &Store, key: &[u8]) -> Value {
        store.keys().get(key).map_or(Value::Absent, KeyState::value)
    }

    fn reply_ok(store: &Store, cx: &mut Ctx<'_>, id: u64, value: Value, token: &VectorClock) {
        // The reply's token covers everything the local state is built from (`V`), which is all
        // the client can have observed through this reply (see `session`).
        let mut t = token.clone();
        t.merge(store.horizon());
        cx.replies.push_back(Reply {
            id,
            result: Ok(Done {
                value,
                token: SessionToken::from_frontier(t),
            }),
        });
    }

    fn reply_err(cx: &mut Ctx<'_>, id: u64, e: ClientError) {
        cx.replies.push_back(Reply { id, result: Err(e) });
    }

    /// A write served under session token `token`, by the store; the links owe a flush if the
    /// entry was logged. Returns the entry issued and the reply value.
    fn local_write(
        &mut self,
        store: &mut Store,
        links: &mut Links,
        cx: &mut Ctx<'_>,
        key: Key,
        op: Op,
        token: &VectorClock,
    ) -> Result<(Issued, Value), ClientError> {
        let written = store.write(key, op, token, cx.now_ms, cx.shared, cx.m);
        if let Ok((issued, _)) = &written {
            links.logged(cx, issued.logged);
        }
        written
    }

    fn await_coverage(
        &mut self,
        store: &mut Store,
        links: &mut Links,
        cx: &mut Ctx<'_>,
        op: PendingOp,
    ) {
        debug_assert!(matches!(op.wait, Wait::Coverage { .. }));
        self.insert(op);
        self.check_coverage(store, links, cx);
    }

    /// Whether `level` is met when exactly the replicas satisfying `has` count.
    fn quorum_met(shared: &Shared, level: Consistency, has: impl Fn(ReplicaId) -> bool) -> bool {
        let majority = |rs: &[ReplicaId]| rs.iter().filter(|&&r| has(r)).count() * 2 > rs.len();
        match level {
            Consistency::LocalOne => true,
            Consistency::LocalQuorum => majority(&shared.regions[shared.my_region]),
            Consistency::GlobalQuorum => {
                let regions = &shared.regions;
                regions.iter().filter(|g| majority(g)).count() * 2 > regions.len()
            }
        }
    }

    /// Replies to every write whose level is now met.
    pub(crate) fn check_coverage(
        &mut self,
        store: &mut Store,
        links: &mut Links,
        cx: &mut Ctx<'_>,
    ) {
        if self.ops.is_empty() {
            // Nothing waits (every write at LOCAL_ONE): no scan.
            return;
        }
        let me = cx.shared.config.me;
        let done: Vec<u64> = self
            .ops
            .iter()
            .filter(|(_, op)| match &op.wait {
                Wait::Coverage { seq, level, .. } => Self::quorum_met(cx.shared, *level, |r| {
                    r == me || links.known(r).is_some_and(|k| k.get(me) >= *seq)
                }),
                _ => false,
            })
            .map(|(&id, _)| id)
            .collect();
        for id in done {
            if let Some(op) = self.remove(id)
                && let Wait::Coverage { value, .. } = op.wait
            {
                cx.m.quorum_ok += 1;
                Self::reply_ok(store, cx, op.request_id, value, &op.token);
            }
        }
    }

    /// Answers the session waits whose tokens are now covered.
    #[inline]
    pub(crate) fn on_frontier_advanced(
        &mut self,
        store: &mut Store,
        links: &mut Links,
        cx: &mut Ctx<'_>,
    ) {
        if self.sessions == 0 {
            return;
        }
        let ready: Vec<u64> = self
            .ops
            .iter()
            .filter(|(_, op)| {
                matches!(op.wait, Wait::Session(_)) && store.frontier().dominates(&op.token)
            })
            .map(|(&id, _)| id)
            .collect();
        for id in ready {
            if let Some(op) = self.remove(id)
                && let Wait::Session(request) = op.wait
            {
                self.execute(store, links, cx, request, op.token);
            }
        }
    }

    /// Fails every request whose deadline passed.
    #[inline]
    pub(crate) fn expire_pending(&mut self, cx: &mut Ctx<'_>) {
        let now = cx.now_ms;
        while let Some(&(t, id)) = self.deadlines.first() {
            if t > now {
                break;
            }
            let Some(op) = self.remove(id) else {
                self.deadlines.pop_first();
                continue;
            };
            let err = match op.wait {
                Wait::Session(_) => {
                    cx.m.session_timeouts += 1;
                    ClientError::SessionTimeout
                }
                Wait::Coverage { level, .. } => {
                    cx.m.quorum_timeouts += 1;
                    ClientError::Unavailable { level }
                }
                Wait::Query(q) => {
                    cx.m.quorum_timeouts += 1;
                    ClientError::Unavailable { level: q.level }
                }
                // `escrow_timers` expires these first, with what the value shows; should one
                // remain, the rights did not arrive in time.
                Wait::Rights(_) => ClientError::InsufficientRights {
                    short_balance: false,
                },
            };
            Self::reply_err(cx, op.request_id, err);
        }
    }

    /// Asks again the targets of every query that have not answered, every `retransmit_ms`
    /// until the deadline: a lost query or answer costs a retransmission, not the operation.
    #[inline]
    pub(crate) fn resend_queries(&mut self, cx: &mut Ctx<'_>) {
        let now = cx.now_ms;
        while let Some(&(t, op)) = self.resends.first() {
            if t > now {
                break;
            }
            self.resends.pop_first();
            let Some(Wait::Query(q)) = self.ops.get(&op).map(|p| &p.wait) else {
                continue;
            };
            let me = cx.shared.config.me;
            let silent: Vec<ReplicaId> = q
                .targets
                .iter()
                .copied()
                .filter(|t| *t != me && !q.answers.contains_key(t))
                .collect();
            let key = q.key.clone();
            for t in silent {
                Self::send_routed(
                    cx,
                    t,
                    RoutedBody::Query {
                        op,
                        key: key.clone(),
                    },
                );
            }
            self.resends
                .insert((now + cx.shared.config.retransmit_ms, op));
        }
    }

    /// Starts a quorum query for `key`; returns its id, for the caller to check it at once
    /// (our own answer may already make a quorum), or `None` if it was refused.
    fn start_query(
        &mut self,
        cx: &mut Ctx<'_>,
        request_id: u64,
        token: VectorClock,
        key: Key,
        level: Consistency,
        put: Option<Scalar>,
    ) -> Option<u64> {
        if self.pending_full(cx) {
            Self::reply_err(cx, request_id, ClientError::Overloaded);
            return None;
        }
        let me = cx.shared.config.me;
        let targets: Vec<ReplicaId> = match level {
            Consistency::LocalQuorum => cx.shared.regions[cx.shared.my_region].clone(),
            _ => cx.shared.members.iter().copied().collect(),
        };
        let op = self.insert(PendingOp {
            request_id,
            token,
            deadline_ms: cx.now_ms + cx.shared.config.quorum_timeout_ms,
            wait: Wait::Query(Query {
                key: key.clone(),
                level,
                put,
                targets: targets.clone(),
                answers: BTreeMap::new(),
                horizon: VectorClock::new(),
            }),
        });
        self.resends
            .insert((cx.now_ms + cx.shared.config.retransmit_ms, op));
        for t in targets.into_iter().filter(|&t| t != me) {
            Self::send_routed(
                cx,
                t,
                RoutedBody::Query {
                    op,
                    key: key.clone(),
                },
            );
        }
        Some(op)
    }

    /// Sends a routed message towards `dst` through the next hop.
    pub(crate) fn send_routed(cx: &mut Ctx<'_>, dst: ReplicaId, body: RoutedBody) {
        let me = cx.shared.config.me;
        let Some(hop) = cx.shared.routes.next_hop(me, dst) else {
            return;
        };
        let ttl = u8::try_from(cx.shared.members.len()).unwrap_or(u8::MAX);
        let payload = PeerMsg::Routed(Routed {
            src: me,
            dst,
            ttl,
            body,
        })
        .encode();
        cx.out.push_back(Transmit { to: hop, payload });
    }

    /// A routed message: relay it, or answer or record it.
    pub(crate) fn on_routed(
        &mut self,
        store: &mut Store,
        links: &mut Links,
        cx: &mut Ctx<'_>,
        _from: ReplicaId,
        mut m: Routed,
    ) {
        let me = cx.shared.config.me;
        let shared = cx.shared;
        let members = &shared.members;
        if !members.contains(&m.src) || !members.contains(&m.dst) || m.src == me {
            cx.m.invalid_messages += 1;
            return;
        }
        if m.dst != me {
            let Some(hop) = cx.shared.routes.next_hop(me, m.dst) else {
                return;
            };
            if m.ttl == 0 {
                cx.m.invalid_messages += 1;
                return;
            }
            m.ttl -= 1;
            cx.m.relayed += 1;
            let payload = PeerMsg::Routed(m).encode();
            cx.out.push_back(Transmit { to: hop, payload });
            return;
        }
        match m.body {
            RoutedBody::Query { op, key } => {
                let state = store.keys().get(&key).cloned();
                let horizon = store.horizon().clone();
                Self::send_routed(cx, m.src, RoutedBody::QueryReply { op, state, horizon });
            }
            // The dispatcher hands consensus messages for this replica to `strong` before this;
            // one that gets here was not for a replica (it names this one as its source).
            RoutedBody::Consensus(_) => cx.m.invalid_messages += 1,
            RoutedBody::QueryReply { op, state, horizon } => {
                if !store.plausible(&horizon, cx.shared) {
                    cx.m.invalid_messages += 1;
                    return;
                }
                if self.record_answer(cx, m.src, op, state, horizon) {
                    self.check_query(store, links, cx, op);
                }
            }
            RoutedBody::RightsAsk { key, amount, seen } => {
                self.on_rights_ask(store, links, cx, m.src, &key, amount, seen);
            }
        }
    }

    /// Records a quorum query's answer; returns whether it was one the query waits for.
    fn record_answer(
        &mut self,
        cx: &mut Ctx<'_>,
        src: ReplicaId,
        op: u64,
        state: Option<KeyState>,
        horizon: VectorClock,
    ) -> bool {
        let shared = cx.shared;
        let local_region = &shared.regions[shared.my_region];
        let Some(Wait::Query(q)) = self.ops.get_mut(&op).map(|p| &mut p.wait) else {
            cx.m.stale_replies += 1;
            return false;
        };
        if q.level == Consistency::LocalQuorum && !local_region.contains(&src) {
            cx.m.stale_replies += 1;
            return false;
        }
        q.answers.insert(src, state);
        q.horizon.merge(&horizon);
        true
    }

    /// Completes query `op` if a quorum has answered.
    fn check_query(&mut self, store: &mut Store, links: &mut Links, cx: &mut Ctx<'_>, op: u64) {
        let me = cx.shared.config.me;
        let Some(Wait::Query(q)) = self.ops.get(&op).map(|p| &p.wait) else {
            return;
        };
        if !Self::quorum_met(cx.shared, q.level, |r| {
            r == me || q.answers.contains_key(&r)
        }) {
            return;
        }
        let Some(p) = self.remove(op) else {
            return;
        };
        let Wait::Query(q) = p.wait else {
            return;
        };
        // Join every answer: the reply then reflects the whole quorum. The answers are built
        // from entries below the answerers' horizons, so ours rises by them (session invariant).
        for state in q.answers.values().flatten() {
            let (changed, conflict) = store.join_key(&q.key, state.clone());
            if changed {
                cx.m.read_repairs += 1;
            }
            if conflict {
                cx.m.type_conflicts += 1;
            }
        }
        store.raise_horizon(&q.horizon);
        match q.put {
            None => {
                let local = store.keys().get(&q.key);
                let value = local.map_or(Value::Absent, KeyState::value);
                let write_back = q.level == Consistency::GlobalQuorum
                    && q.answers.values().any(|s| s.as_ref() != local);
                match local.cloned() {
                    Some(state) if write_back => {
                        // ABD's second phase: make the value we return held by a quorum first.
                        cx.m.write_backs += 1;
                        let issued = store.write_back(
                            q.key.clone(),
                            state,
                            &p.token,
                            cx.now_ms,
                            cx.shared,
                            cx.m,
                        );
                        links.logged(cx, issued.logged);
                        let seq = issued.seq;
                        self.await_coverage(
                            store,
                            links,
                            cx,
                            PendingOp {
                                request_id: p.request_id,
                                token: p.token,
                                deadline_ms: p.deadline_ms,
                                wait: Wait::Coverage {
                                    seq,
                                    level: q.level,
                                    value,
                                },
                            },
                        );
                    }
                    _ => {
                        cx.m.quorum_ok += 1;
                        Self::reply_ok(store, cx, p.request_id, value, &p.token);
                    }
                }
            }
            Some(v) => {
                if let Some(s) = store.keys().get(&q.key)
                    && s.kind() != KeyKind::Lww
                {
                    let key = s.kind();
                    Self::reply_err(
                        cx,
                        p.request_id,
                        ClientError::WrongType {
                            key,
                            op: KeyKind::Lww,
                        },
                    );
                    return;
                }
                match self.local_write(store, links, cx, q.key, Op::Put(v), &p.token) {
                    Err(e) => Self::reply_err(cx, p.request_id, e),
                    Ok((issued, value)) => self.await_coverage(
                        store,
                        links,
                        cx,
                        PendingOp {
                            request_id: p.request_id,
                            token: p.token,
                            deadline_ms: p.deadline_ms,
                            wait: Wait::Coverage {
                                seq: issued.seq,
                                level: q.level,
                                value,
                            },
                        },
                    ),
                }
            }
        }
    }
}

//! Bounded counters in the replica: withdrawals that wait for rights, the asks that fetch them,
//! and the grants that answer the asks.
//!
//! A key of kind [`KeyKind::Bounded`](super::super::api::KeyKind::Bounded) holds a
//! [`BoundedCounter`](crate::BoundedCounter): every replica may spend only the rights it holds.
//! A deposit (`BoundedAdd(n)`, `n ≥ 0`) always applies and creates `n` rights here; a
//! withdrawal applies at once when this replica's rights cover it (the ordinary write path in
//! `requests`). Otherwise:
//!
//! 1. If the counter's value as known here is already below the amount, no transfer can help:
//!    [`ClientError::InsufficientRights`] at once, with `short_balance`.
//! 2. Otherwise the request waits ([`Wait::Rights`], counted against `pending_max`, with the
//!    deadline `quorum_timeout_ms`) and this replica sends every other member a routed
//!    [`RoutedBody::RightsAsk`] naming the key, its shortfall and what it has seen of that
//!    member's transfers to it; it asks again every `retransmit_ms` while it waits, since asks
//!    and grants can be lost.
//! 3. A member with spare rights (its rights less what its own waiting withdrawals on the key
//!    need) grants some with the counter's transfer mutator, as an ordinary logged δ-write of its
//!    own ([`Store::transfer_rights`]). The δ reaches the asker through normal replication,
//!    retransmission and anti-entropy included: a grant is never lost, only delayed.
//! 4. After every input the waits are checked against the rights now held (rights arrive by
//!    batches, anti-entropy, quorum reads, or local deposits); a covered withdrawal runs through
//!    the ordinary write path, so its consistency level is waited for as for any write.
//! 5. At the deadline the withdrawal fails with `InsufficientRights` and no effect;
//!    `short_balance` says whether the value known then was below the amount.
//!
//! The consistency level never makes a withdrawal safe or unsafe: rights are local, and a
//! replica that spends only its own rights can never drive any replica's value below zero
//! (see `crdt::bounded`). The level only decides how many replicas hold the withdrawal before
//! the reply, as for every write.
//!
//! # How much a peer grants
//! `min(spare, max(shortfall, spare / 2))`: the shortfall if it can, so that one round trip
//! completes the withdrawal, and up to half its spare rights, so that rights drift towards the
//! region that spends them and the next withdrawals there need no ask, while the giver keeps
//! half for its own clients. A giver with less than the shortfall gives all it has spare, so that
//! rights spread over several replicas can still be gathered. Every member is asked at once, so
//! the asker may receive more than it needs; the surplus is rights held here, not lost.
//!
//! A grant is made only if the asker has seen every earlier grant of this giver (its `seen`
//! equals the giver's transfer total to it): duplicated and re-sent asks then cost no second
//! grant while the first is on its way.
//!
//! # Invariants (asserted in debug builds)
//! - No replica's value of a bounded counter reads below zero (checked over small keyspaces
//!   after every input, unless [`Bug::EscrowLocalCheck`] is set).
//! - A replica never spends rights it does not hold: a withdrawal or a grant runs only through
//!   the counter's checked mutators, after a check of this replica's rights (asserted after the
//!   write in `store`).
//! - Every wait ends by its deadline, with the reply or a definite error: the waits sit in the
//!   requests' deadline index, and asks are re-sent only while their wait exists (at most
//!   `quorum_timeout_ms / retransmit_ms` rounds of one ask per member). A withdrawal that got
//!   its rights at a level above `LocalOne` then waits for coverage under a deadline of its own,
//!   so a request waits at most its session wait, then twice `quorum_timeout_ms`.

use super::super::api::{ClientError, Key, Op, Request};
use super::super::config::Bug;
use super::super::links::Links;
use super::super::msg::RoutedBody;
use super::super::shared::{Ctx, Shared};
use super::super::state::KeyState;
use super::super::store::Store;
use super::{PendingOp, Requests, Wait};
use crate::{ReplicaId, VectorClock};

/// The amount a waiting withdrawal takes (its op is a negative `BoundedAdd`).
fn amount(request: &Request) -> u64 {
    match request.op {
        Op::BoundedAdd(n) if n < 0 => n.unsigned_abs(),
        _ => 0,
    }
}

/// This replica's rights on `key` (zero if the key is absent or not a bounded counter).
fn rights(store: &Store, me: ReplicaId, key: &[u8]) -> i128 {
    match store.keys().get(key) {
        Some(KeyState::Bounded(c)) => c.rights(me),
        _ => 0,
    }
}

/// The value of `key` as known here (zero if absent or not a bounded counter).
fn value(store: &Store, key: &[u8]) -> i128 {
    match store.keys().get(key) {
        Some(KeyState::Bounded(c)) => c.value(),
        _ => 0,
    }
}

impl Requests {
    /// Whether a withdrawal of `amount` from `key` must wait for rights: the key is a bounded
    /// counter (or absent) and this replica's rights do not cover it. A key of another kind goes
    /// down the write path, which refuses it with `WrongType`. Under [`Bug::EscrowLocalCheck`]
    /// a withdrawal the local value covers never waits.
    pub(super) fn must_wait_for_rights(
        store: &Store,
        cx: &Ctx<'_>,
        key: &[u8],
        amount: u64,
    ) -> bool {
        let me = cx.shared.config.me;
        let wanted = i128::from(amount);
        match store.keys().get(key) {
            None => true,
            Some(KeyState::Bounded(c)) => {
                let forge = cx.shared.config.bug == Some(Bug::EscrowLocalCheck);
                c.rights(me) < wanted && !(forge && c.value() >= wanted)
            }
            Some(_) => false,
        }
    }

    /// A withdrawal this replica's rights do not cover: refused at once if the value is short
    /// (or nobody could give rights), otherwise a wait and the first asks.
    pub(super) fn withdraw(
        &mut self,
        store: &Store,
        cx: &mut Ctx<'_>,
        request: Request,
        token: VectorClock,
    ) {
        let wanted = amount(&request);
        let short_balance = value(store, &request.key) < i128::from(wanted);
        if short_balance || cx.shared.members.len() < 2 {
            cx.m.withdrawals_refused += 1;
            Self::reply_err(
                cx,
                request.id,
                ClientError::InsufficientRights { short_balance },
            );
            return;
        }
        if self.pending_full(cx) {
            Self::reply_err(cx, request.id, ClientError::Overloaded);
            return;
        }
        let op = self.insert(PendingOp {
            request_id: request.id,
            token,
            deadline_ms: cx.now_ms + cx.shared.config.quorum_timeout_ms,
            wait: Wait::Rights(request),
        });
        cx.m.withdrawals_waited += 1;
        self.ask_for_rights(store, cx, op);
    }

    /// Asks every other member for the rights wait `op` lacks, and schedules the next ask.
    fn ask_for_rights(&mut self, store: &Store, cx: &mut Ctx<'_>, op: u64) {
        let Some(Wait::Rights(request)) = self.ops.get(&op).map(|p| &p.wait) else {
            return;
        };
        let me = cx.shared.config.me;
        let held = rights(store, me, &request.key);
        // Only this wait's own shortfall: summing the whole key's queue would cost a scan of
        // every wait per ask, and the next ask (or the next wait's) asks for the rest.
        let Ok(shortfall) = u64::try_from(i128::from(amount(request)) - held) else {
            // Covered already (or nothing lacking): the check after this input completes it.
            return;
        };
        if shortfall > 0 {
            let key = request.key.clone();
            let peers: Vec<ReplicaId> = cx
                .shared
                .members
                .iter()
                .copied()
                .filter(|&p| p != me)
                .collect();
            for peer in peers {
                let seen = match store.keys().get(&key) {
                    Some(KeyState::Bounded(c)) => c.transferred(peer, me),
                    _ => 0,
                };
                Self::send_routed(
                    cx,
                    peer,
                    RoutedBody::RightsAsk {
                        key: key.clone(),
                        amount: shortfall,
                        seen,
                    },
                );
            }
        }
        self.asks
            .insert((cx.now_ms + cx.shared.config.retransmit_ms, op));
    }

    /// Whether any withdrawal waits for rights.
    #[inline]
    pub(crate) fn waits_for_rights(&self) -> bool {
        self.rights > 0
    }

    /// Runs every waiting withdrawal that this replica's rights now cover, oldest first, each
    /// through the ordinary write path (which waits for its level).
    pub(crate) fn on_rights_changed(
        &mut self,
        store: &mut Store,
        links: &mut Links,
        cx: &mut Ctx<'_>,
    ) {
        if self.rights == 0 {
            return;
        }
        let me = cx.shared.config.me;
        // What the withdrawals chosen so far take from each key's rights.
        let mut taken: Vec<(&Key, i128)> = Vec::new();
        let mut ready = Vec::new();
        for (&id, op) in &self.ops {
            let Wait::Rights(request) = &op.wait else {
                continue;
            };
            let wanted = i128::from(amount(request));
            let spent = match taken.iter_mut().find(|(k, _)| **k == request.key) {
                Some((_, spent)) => spent,
                None => {
                    taken.push((&request.key, 0));
                    &mut taken.last_mut().expect("just pushed").1
                }
            };
            if rights(store, me, &request.key) - *spent >= wanted {
                *spent += wanted;
                ready.push(id);
            }
        }
        for id in ready {
            if let Some(op) = self.remove(id)
                && let Wait::Rights(request) = op.wait
            {
                cx.m.withdrawals_covered_by_transfer += 1;
                self.execute(store, links, cx, request, op.token);
            }
        }
    }

    /// The timers of waiting withdrawals: asks due again, and waits whose deadline passed
    /// (failed with `InsufficientRights`, `short_balance` as the value shows now). Runs before
    /// `expire_pending`, which would otherwise expire them without the value.
    pub(crate) fn escrow_timers(&mut self, store: &Store, cx: &mut Ctx<'_>) {
        let now = cx.now_ms;
        while let Some(&(t, op)) = self.asks.first() {
            if t > now {
                break;
            }
            self.asks.pop_first();
            let deadline = self.ops.get(&op).map(|p| p.deadline_ms);
            if deadline.is_some_and(|d| d > now) {
                self.ask_for_rights(store, cx, op);
            }
        }
        let expired: Vec<u64> = self
            .deadlines
            .iter()
            .take_while(|&&(t, _)| t <= now)
            .filter(|(_, id)| matches!(self.ops.get(id).map(|p| &p.wait), Some(Wait::Rights(_))))
            .map(|&(_, id)| id)
            .collect();
        for id in expired {
            if let Some(op) = self.remove(id)
                && let Wait::Rights(request) = op.wait
            {
                let short_balance = value(store, &request.key) < i128::from(amount(&request));
                cx.m.withdrawals_refused += 1;
                Self::reply_err(
                    cx,
                    op.request_id,
                    ClientError::InsufficientRights { short_balance },
                );
            }
        }
    }

    /// A peer's ask for rights on `key`: grants some of this replica's spare rights (see the
    /// module documentation for how many) unless a grant to it is still on its way.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_rights_ask(
        &mut self,
        store: &mut Store,
        links: &mut Links,
        cx: &mut Ctx<'_>,
        src: ReplicaId,
        key: &[u8],
        shortfall: u64,
        seen: u64,
    ) {
        let me = cx.shared.config.me;
        let Some(KeyState::Bounded(c)) = store.keys().get(key) else {
            // Nothing to give (the key has not reached us yet, or is of another kind).
            return;
        };
        let given = c.transferred(me, src);
        if seen > given {
            // Only this replica writes its transfer totals: the asker claims one never made.
            cx.m.invalid_messages += 1;
            return;
        }
        if given > seen {
            // A grant is on its way; the asker asks again if it is still short once it lands.
            return;
        }
        let reserved: i128 = self
            .ops
            .values()
            .filter_map(|p| match &p.wait {
                Wait::Rights(r) if *r.key == *key => Some(i128::from(amount(r))),
                _ => None,
            })
            .sum();
        let spare = c.rights(me) - reserved;
        if spare <= 0 {
            return;
        }
        let grant = spare.min(i128::from(shortfall).max(spare / 2));
        let Ok(grant) = u64::try_from(grant) else {
            return;
        };
        if let Some(issued) = store.transfer_rights(key, src, grant, cx.now_ms, cx.shared, cx.m) {
            cx.m.rights_granted += 1;
            links.logged(cx, issued.logged);
        }
    }

    /// Checks that no bounded counter here reads below zero and that this replica holds no
    /// negative rights (debug builds, small keyspaces; skipped under the deliberately broken
    /// [`Bug::EscrowLocalCheck`], whose failures the testers must find on their own).
    pub(crate) fn debug_check_escrow(store: &Store, shared: &Shared) {
        if !cfg!(debug_assertions)
            || shared.config.bug == Some(Bug::EscrowLocalCheck)
            || store.keys().len() > 64
        {
            return;
        }
        let me = shared.config.me;
        for (_, state) in store.keys().iter() {
            if let KeyState::Bounded(c) = state {
                debug_assert!(c.value() >= 0, "a bounded counter reads below zero: {c:?}");
                debug_assert!(c.rights(me) >= 0, "negative rights held: {c:?}");
            }
        }
    }
}

//! What a replica counted, and the snapshot [`Stats`] a shell reads.
//!
//! Counters only observe: they are excluded from a replica's equality and hash (see
//! `Metrics`), so that model checkers do not split states by what was counted on the way.

use crate::ReplicaId;

/// Counters of what a replica did. Monotonic; see [`Stats`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Counters {
    /// Oplog entries put in batches (re-sends included).
    pub entries_sent: u64,
    /// Entries applied (first time, in order).
    pub entries_applied: u64,
    /// Entries received again and ignored.
    pub entries_duplicate: u64,
    /// Entries sent redacted to a neighbour that may not hold their key (residency; each send).
    pub entries_redacted: u64,
    /// Entries received ahead of a gap, or waiting for dependencies with no room to park, and
    /// dropped (the sender re-sends them).
    pub entries_out_of_order: u64,
    /// Entries held back because what they depend on had not arrived yet (each time one is
    /// parked; it is applied once its dependencies are, see `links` § Causal delivery).
    pub entries_parked: u64,
    /// Batches sent.
    pub batches_sent: u64,
    /// Batches received.
    pub batches_received: u64,
    /// Bytes of batch bodies before compression.
    pub bytes_raw: u64,
    /// Bytes of batch messages as sent (compressed where it paid).
    pub bytes_sent: u64,
    /// Batches sent compressed.
    pub batches_compressed: u64,
    /// Go-back-N retransmissions (one per timeout per peer).
    pub retransmits: u64,
    /// Acks sent.
    pub acks_sent: u64,
    /// Acks received.
    pub acks_received: u64,
    /// Acks sent on a batch rather than alone (counted in `acks_sent` too).
    pub acks_piggybacked: u64,
    /// Anti-entropy rounds started (as puller).
    pub ae_rounds: u64,
    /// Rounds that completed.
    pub ae_rounds_completed: u64,
    /// Rounds abandoned (timeout, or a reply that did not fit).
    pub ae_rounds_abandoned: u64,
    /// Keys whose state anti-entropy changed.
    pub ae_keys_repaired: u64,
    /// Completed rounds that moved the frontier.
    pub ae_frontier_claims: u64,
    /// Completed rounds whose claim was withheld for residency: it would have covered entries
    /// of a pinned key's writers that this replica does not hold (see `anti_entropy`).
    pub ae_claims_withheld: u64,
    /// Requests that waited for their session token.
    pub session_waits: u64,
    /// Requests that gave up waiting for their token.
    pub session_timeouts: u64,
    /// Peer messages that failed to decode.
    pub decode_errors: u64,
    /// Decoded peer messages refused for breaking an invariant (unknown sender or origin, an
    /// ack claiming writes never issued, a probe of a node that does not exist, ...).
    pub invalid_messages: u64,
    /// Quorum operations that met their level.
    pub quorum_ok: u64,
    /// Quorum operations that missed their deadline.
    pub quorum_timeouts: u64,
    /// Requests refused because too many were pending.
    pub overloaded: u64,
    /// Keys changed by joining quorum replies.
    pub read_repairs: u64,
    /// Global-quorum reads that wrote back.
    pub write_backs: u64,
    /// Joins of two different key types (a type conflict resolved by kind order).
    pub type_conflicts: u64,
    /// Remote HLC stamps not absorbed (beyond the drift bound).
    pub clock_rejects: u64,
    /// Inputs whose `now_ms` was below the last seen time.
    pub time_regressions: u64,
    /// Oplog entries truncated after every child acknowledged them.
    pub truncated_acked: u64,
    /// Oplog entries truncated by the cap before every child had them.
    pub truncated_cap: u64,
    /// Times a peer's cursor was found behind the truncation point (anti-entropy repairs it).
    pub peer_behind_truncation: u64,
    /// Routed messages relayed for others.
    pub relayed: u64,
    /// Quorum replies for an operation that was no longer waiting.
    pub stale_replies: u64,
    /// Consensus-register operations (set, compare-and-set, read through a majority) that
    /// succeeded.
    pub consensus_ok: u64,
    /// Compare-and-sets that found another value (definite).
    pub consensus_precondition_failed: u64,
    /// Consensus operations with no majority in time (definite).
    pub consensus_unavailable: u64,
    /// Consensus operations whose outcome is unknown (indefinite).
    pub consensus_indefinite: u64,
    /// Bounded-counter withdrawals applied (with rights held at once, or after a wait).
    pub withdrawals_applied: u64,
    /// Withdrawals that waited for rights from peers (each wait once).
    pub withdrawals_waited: u64,
    /// Waiting withdrawals the rights arriving from peers then covered.
    pub withdrawals_covered_by_transfer: u64,
    /// Withdrawals refused for want of rights (at once or at the deadline).
    pub withdrawals_refused: u64,
    /// Transfers of rights this replica granted to a peer that asked.
    pub rights_granted: u64,
}

/// A snapshot of a replica's metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Stats {
    /// The counters.
    pub counters: Counters,
    /// Entries retained in the oplog.
    pub oplog_len: usize,
    /// Keys in the keyspace.
    pub keys: usize,
    /// Requests waiting (quorum or session).
    pub pending: usize,
    /// Received entries parked until their dependencies arrive.
    pub parked: usize,
    /// Per neighbour, the entries it still lacks that this replica would send it.
    pub peer_lag: Vec<(ReplicaId, u64)>,
}

/// The counters, excluded from equality and hashing: two replicas in the same state are equal
/// whatever they counted on the way, so model checkers do not split states by metrics.
#[derive(Clone, Debug, Default)]
pub(crate) struct Metrics(pub(crate) Counters);

impl PartialEq for Metrics {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for Metrics {}
impl std::hash::Hash for Metrics {
    fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
}

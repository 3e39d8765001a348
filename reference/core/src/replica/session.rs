//! Session tokens: the causal frontier a client carries from reply to request.
//!
//! # What a token means
//! Every change to a replica's keyspace is the join of the delta of some oplog entry `(origin,
//! seq)` (a client write, a read's write-back) — directly, through a forwarded batch, or inside
//! a key state shipped by anti-entropy or a quorum read. Each replica keeps two vectors over
//! origins:
//!
//! - the **frontier** `F`: it holds (its state is above) the delta of every entry `e ≤ F`. It
//!   advances when entries are applied in per-origin order, and through a completed
//!   anti-entropy round (see `anti_entropy`);
//! - the **horizon** `V ⊒ F`: its state is the join of deltas of entries `e ≤ V` only. It
//!   advances with `F`, and when state arrives outside the oplog (anti-entropy, quorum reads),
//!   by the sender's horizon.
//!
//! A reply from replica `r` carries `T = T_request ⊔ V_r`: an upper bound of everything the
//! client has observed. A replica `z` answers a request with token `T` only once `F_z ⊒ T`
//! (else the request waits, bounded, then fails with `SessionTimeout`). Then `state(z) ⊒
//! ⊔{δ(e) : e ≤ F_z} ⊒ ⊔{δ(e) : e ≤ V_r} ⊒ state(r)` at the earlier reply: `z` reflects everything
//! the client saw. That gives read-your-writes (a write's own entry is `≤ V_r`) and monotonic
//! reads at any replica of any region. Monotonic writes and writes-follow-reads are, first,
//! arbitration properties: a write is served only once its token is covered, so the serving
//! replica has seen every write the session saw; its LWW stamp is chosen above the key's current
//! winner, its OR-set remove sees the adds the session saw, and its MV write names the siblings
//! the session read, so every replica orders the session's writes after what the session saw.
//! They are, second, visibility properties for every *other* reader, token or not: a read that
//! shows a session's write shows what that session had written and read before it. Tokens cannot
//! give that (the other reader does not carry the writer's token); causal delivery, below, does.
//!
//! The argument needs exactly the two invariants `state ⊒ ⊔δ(≤F)` and `state = ⊔δ(S)`, `S ⊆
//! ↓V`; each place that changes state, `F` or `V` says which one it keeps and why.
//!
//! # Causal delivery
//! Origins replicate on independent streams, so without more, replica `C` could apply `B:1` —
//! written by a session that had first written `A:1` at `A` — before `A:1` arrives, and show the
//! second write to a reader that never sees the first. So every entry `e` records its
//! **dependencies** `deps(e)`: the token its write was served under, i.e. everything the writing
//! session had observed (its earlier writes, and the horizons of the replicas it read from). A
//! replica applies an entry it receives only once `F ⊒ deps(e)`, besides its origin's previous
//! entries (in-order application); until then the entry is parked (see `links`). Two invariants
//! follow, checked in debug builds:
//!
//! - **(C1) `F` is causally closed**: `deps(e) ⊑ F` for every entry `e ≤ F`. A local write's
//!   dependencies are its token, covered before it was served; a received entry is applied only
//!   once they are held; an anti-entropy claim joins in the responder's frontier, itself closed;
//!   recovery restores a frontier that was closed when persisted.
//! - **(C2) what arrives through the oplog is visible only after its dependencies**: for every
//!   entry the state received as a write or an applied entry, `deps(e) ⊑ F`, so `state ⊒ ⊔δ(≤
//!   deps(e))`: a reader that sees `e` here sees everything `e`'s session had observed.
//!
//! *Compactness.* An entry names only what is not implied. Never its own origin. Nor what an
//! earlier entry of its origin already named (`deps_sent`): a receiver applying `(o, s)` holds
//! `(o, s − 1)`, so by (C1) it holds the dependencies of every `(o, j)`, `j < s`. A write without
//! a token, or whose token brings nothing new, depends on nothing: one zero byte on the wire, no
//! allocation on either side. `deps_sent` is soft: after a restart entries name more, never less.
//!
//! *Liveness.* A dependency was issued before the entry that names it, so waiting is acyclic and
//! every entry is eventually applied everywhere every stream is delivered (the argument, and the
//! per-origin windows it needs, are in `links`).
//!
//! ## State that bypasses the oplog
//! Anti-entropy ships whole key states, quorum reads join whole key states into the querier, and
//! a global-quorum write-back is an entry whose delta is a whole key state (its dependencies are
//! the read's token). These keep **(C3) per-key closure**: a key's state at any replica contains,
//! with every entry `e` it contains, every entry *of that key* that `e` depends on. A local write
//! keeps it (its dependencies are `≤ F`, whose deltas the state holds), an applied entry keeps it
//! (the same, by the check, and a write-back's delta is itself closed), and the join of two
//! closed key states is closed (each entry of the join comes from one side with its same-key
//! dependencies). A read shows one key, so by (C3) no read, at any level and by any client, shows
//! a write without the writes of that key it depends on — which is what the session guarantees
//! judge when a workload shares one key.
//!
//! The remaining exception is *across keys*, and bounded. A state joined whole can make an entry
//! `e` of key `k` visible here before a dependency `d` of another key is (`d ≤ deps(e)`, `d ≰ F`):
//! - who can observe it: anti-entropy keys and quorum answers arrive with their sender's
//!   horizon, which covers `deps(e)` and raises ours, so any reply that showed `e` carries a
//!   token covering `d` and the session carrying it waits for `d` wherever it goes next; only a
//!   reader that drops its token sees `e` without `d`. A write-back's receivers raise their
//!   horizon by the write-back entry only, so a session that read `k` at one of them may go on
//!   to read the other key without `d` (the session whose read wrote back is covered: its reply
//!   token holds the answers' horizons);
//! - it lasts until `F` covers `d`, through replication or the next anti-entropy claim;
//! - for anti-entropy, a completed round claims the responder's frontier at its root probe,
//!   which covers the dependencies of everything the responder had applied through its oplog by
//!   then: what remains exposed is only what it gained during the round or itself received whole.
//!
//! # Encoding
//! A version byte, then the vector as a count and `(replica, counter)` varint pairs, replicas
//! increasing: three origins with small counts fit in a dozen bytes. The shells base64 or hex it.

use super::codec::{DecodeError, Reader, put_vv, read_vv};
use crate::VectorClock;

/// The version byte of the token encoding.
const TOKEN_VERSION: u8 = 1;

/// An opaque session token: the causal frontier of everything the session has observed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SessionToken(VectorClock);

impl SessionToken {
    /// The token of a session that has observed nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// The token holding `frontier`.
    pub fn from_frontier(frontier: VectorClock) -> Self {
        SessionToken(frontier)
    }

    /// The frontier: for each origin replica, how many of its oplog entries the session depends
    /// on.
    pub fn frontier(&self) -> &VectorClock {
        &self.0
    }

    /// Joins another token into this one (a client that merges two sessions).
    pub fn merge(&mut self, other: &SessionToken) {
        self.0.merge(&other.0);
    }

    /// The compact binary form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + 4 * self.0.len());
        out.push(TOKEN_VERSION);
        put_vv(&mut out, &self.0);
        out
    }

    /// Decodes a token; never panics, refuses malformed or non-canonical input.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != TOKEN_VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let vv = read_vv(&mut r)?;
        r.finish()?;
        Ok(SessionToken(vv))
    }
}

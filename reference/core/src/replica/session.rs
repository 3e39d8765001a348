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
//!   anti-entropy round (see `merkle`);
//! - the **horizon** `V ⊒ F`: its state is the join of deltas of entries `e ≤ V` only. It
//!   advances with `F`, and when state arrives outside the oplog (anti-entropy, quorum reads),
//!   by the sender's horizon.
//!
//! A reply from replica `r` carries `T = T_request ⊔ V_r`: an upper bound of everything the
//! client has observed. A replica `z` answers a request with token `T` only once `F_z ⊒ T`
//! (else the request waits, bounded, then fails with `SessionTimeout`). Then `state(z) ⊒
//! ⊔{δ(e) : e ≤ F_z} ⊒ ⊔{δ(e) : e ≤ V_r} ⊒ state(r)` at the earlier reply: `z` reflects everything
//! the client saw. That gives read-your-writes (a write's own entry is `≤ V_r`) and monotonic
//! reads at any replica of any region. Monotonic writes and writes-follow-reads are arbitration
//! properties here: a write is served only once its token is covered, so the serving replica has
//! seen every write the session saw; its LWW stamp is chosen above the key's current winner, its
//! OR-set remove sees the adds the session saw, and its MV write names the siblings the session
//! read, so every replica orders the session's writes after what the session saw.
//!
//! The argument needs exactly the two invariants `state ⊒ ⊔δ(≤F)` and `state = ⊔δ(S)`, `S ⊆
//! ↓V`; each place that changes state, `F` or `V` says which one it keeps and why.
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

//! The client-facing types: requests, replies, values, errors. The shells (Maelstrom JSON, RESP,
//! the simulator) are written against these, so they change only by addition.

use super::session::SessionToken;
use crate::CausalContext;
use std::fmt;

/// A key: an arbitrary byte string.
///
/// Bytes rather than text because RESP keys are binary-safe; the JSON shells map integer and
/// string keys to their UTF-8 (decimal) bytes.
pub type Key = Box<[u8]>;

/// A value stored in a register or a set: an integer or a byte string.
///
/// Both shells are served without conversion at the edges: the JSON protocol speaks integers
/// (`Int`), RESP speaks byte strings (`Bytes`). The two never compare equal, so `1` and `"1"` are
/// different set elements; the order (every `Int` before every `Bytes`) exists only so that sets
/// and registers can keep their elements sorted.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scalar {
    /// A signed 64-bit integer.
    Int(i64),
    /// A byte string.
    Bytes(Box<[u8]>),
}

impl Scalar {
    /// A byte-string scalar from anything byte-like.
    pub fn bytes(b: impl AsRef<[u8]>) -> Self {
        Scalar::Bytes(b.as_ref().into())
    }
}

impl fmt::Debug for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Int(i) => write!(f, "{i}"),
            Scalar::Bytes(b) => write!(f, "{:?}", String::from_utf8_lossy(b)),
        }
    }
}

impl From<i64> for Scalar {
    fn from(i: i64) -> Self {
        Scalar::Int(i)
    }
}

impl From<&str> for Scalar {
    fn from(s: &str) -> Self {
        Scalar::bytes(s)
    }
}

/// The type of a key, fixed by its first write.
///
/// The declaration order is also the order in which a *type conflict* resolves: if two replicas
/// concurrently create one key with two different types, every replica keeps the state of the
/// later kind in this order and drops the other's (see [`KeyState`](super::KeyState)). Any fixed
/// order would do; what matters is that it is the same everywhere, so the join stays a join.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyKind {
    /// A grow-only counter ([`GCounter`](crate::GCounter)).
    Counter,
    /// A counter that also decrements ([`PnCounter`](crate::PnCounter)).
    PnCounter,
    /// An add-wins set of [`Scalar`]s ([`OrSet`](crate::OrSet)).
    Set,
    /// A last-writer-wins register stamped by the replica's HLC
    /// ([`LwwRegister`](crate::LwwRegister)).
    Lww,
    /// A multi-value register ([`MvRegister`](crate::MvRegister)).
    Mv,
    /// A bounded (escrow) counter that never reads below zero
    /// ([`BoundedCounter`](crate::BoundedCounter)). Last because it came last: new kinds are
    /// appended, so the conflict order among the older kinds never changes and replicas built
    /// before a kind existed resolve every conflict they can see the same way as newer ones.
    Bounded,
}

impl KeyKind {
    /// Every kind, in conflict order.
    pub const ALL: [KeyKind; 6] = [
        KeyKind::Counter,
        KeyKind::PnCounter,
        KeyKind::Set,
        KeyKind::Lww,
        KeyKind::Mv,
        KeyKind::Bounded,
    ];
}

/// What a request does to its key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// Reads the key, whatever its type; an absent key reads as [`Value::Absent`].
    Get,
    /// Adds to a grow-only counter.
    Incr(u64),
    /// Adds a signed amount to a pn-counter (negative amounts decrement).
    PnAdd(i64),
    /// Adds an element to a set.
    SetAdd(Scalar),
    /// Removes an element from a set (the adds of it this replica has seen).
    SetRemove(Scalar),
    /// Writes a last-writer-wins register.
    Put(Scalar),
    /// Writes a multi-value register, replacing exactly the siblings whose dots are in `seen` —
    /// the `context` of [`Value::Siblings`] the client read, possibly at another replica; an empty
    /// context replaces nothing.
    MvPut {
        /// The value written.
        value: Scalar,
        /// What the client had read.
        seen: CausalContext,
    },
    /// Compare-and-set of a consensus register: set `to` if the register holds `from` (`None`:
    /// if it is absent — the seat reservation). Always decided by a majority of replicas
    /// through consensus, whatever the request's level (a weaker level cannot make it safe);
    /// see `replica::strong`.
    Cas {
        /// The value the register must hold.
        from: Option<Scalar>,
        /// The new value.
        to: Scalar,
    },
    /// Sets a consensus register whatever it holds, through consensus, so that the write is
    /// ordered with every compare-and-set of the register.
    StrongSet(Scalar),
    /// Reads a consensus register. At `GlobalQuorum` through a majority (linearizable with the
    /// register's sets and compare-and-sets); at a weaker level, the last decision this replica
    /// has learned, which may be stale.
    StrongGet,
    /// Adds a signed amount to a bounded counter. A deposit (`≥ 0`) always applies and gives
    /// this replica the rights to it; a withdrawal (`< 0`) applies only with rights this replica
    /// holds, waiting (bounded) for peers to transfer the missing ones, or fails with
    /// [`ClientError::InsufficientRights`] and no effect (see `replica::requests::escrow`).
    BoundedAdd(i64),
}

impl Op {
    /// The CRDT key type this operation needs, or `None` for [`Op::Get`], which reads any
    /// type, and for the operations on consensus registers, which are not CRDT keys.
    pub fn kind(&self) -> Option<KeyKind> {
        match self {
            Op::Get | Op::Cas { .. } | Op::StrongSet(_) | Op::StrongGet => None,
            Op::Incr(_) => Some(KeyKind::Counter),
            Op::PnAdd(_) => Some(KeyKind::PnCounter),
            Op::SetAdd(_) | Op::SetRemove(_) => Some(KeyKind::Set),
            Op::Put(_) => Some(KeyKind::Lww),
            Op::MvPut { .. } => Some(KeyKind::Mv),
            Op::BoundedAdd(_) => Some(KeyKind::Bounded),
        }
    }

    /// Whether the operation changes its key.
    pub fn is_write(&self) -> bool {
        !matches!(self, Op::Get | Op::StrongGet)
    }

    /// Whether the operation is on a consensus register (decided by consensus, not merged).
    pub fn is_strong(&self) -> bool {
        matches!(self, Op::Cas { .. } | Op::StrongSet(_) | Op::StrongGet)
    }
}

/// How many replicas must hold a write, or answer a read, before the reply.
///
/// A level that cannot be met before the configured deadline gives
/// [`ClientError::Unavailable`]: a level is never silently downgraded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Consistency {
    /// The local replica alone: reply right after the local apply (writes) or from local state
    /// (reads).
    LocalOne,
    /// A majority of the local region's replicas: a write is acknowledged once they hold it; a
    /// read joins the key's state from such a majority.
    LocalQuorum,
    /// A majority of regions, where a region counts once a majority of *its* replicas hold the
    /// write or answered the read. Any two such quorums share a replica, which is what makes
    /// registers used only at this level linearizable (reads write back, writes read first: see
    /// the module documentation of `replica::quorum`).
    GlobalQuorum,
}

impl Consistency {
    /// Every level, weakest first.
    pub const ALL: [Consistency; 3] = [
        Consistency::LocalOne,
        Consistency::LocalQuorum,
        Consistency::GlobalQuorum,
    ];

    /// The level's one spelling, used by every face (RESP, Maelstrom JSON, the CLI, TOML).
    pub fn name(self) -> &'static str {
        match self {
            Consistency::LocalOne => "LOCAL_ONE",
            Consistency::LocalQuorum => "LOCAL_QUORUM",
            Consistency::GlobalQuorum => "GLOBAL_QUORUM",
        }
    }
}

impl fmt::Display for Consistency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A consistency level name that is none of [`Consistency::ALL`]'s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownConsistency(pub String);

impl fmt::Display for UnknownConsistency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown consistency level {:?} (expected LOCAL_ONE, LOCAL_QUORUM or GLOBAL_QUORUM)",
            self.0
        )
    }
}

impl std::error::Error for UnknownConsistency {}

impl std::str::FromStr for Consistency {
    type Err = UnknownConsistency;

    /// Parses a level's name in any ASCII case (RESP commands are case-insensitive, and one
    /// parser serves every face so that no face accepts a spelling another refuses).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Consistency::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownConsistency(s.to_string()))
    }
}

/// One client request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Request {
    /// Chosen by the caller and echoed in the reply; the replica does not interpret it.
    pub id: u64,
    /// The key.
    pub key: Key,
    /// What to do.
    pub op: Op,
    /// The consistency level.
    pub consistency: Consistency,
    /// The session token of the client's previous reply, if any: the replica answers only once
    /// it covers it (or fails with [`ClientError::SessionTimeout`]).
    pub token: Option<SessionToken>,
}

/// The value in a successful reply.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Value {
    /// A read of a key no write has reached.
    Absent,
    /// A counter's value: the read of a counter, pn-counter or bounded counter, or the value right after an
    /// increment at this replica (as Redis `INCRBY` replies).
    Counter(i128),
    /// A set's elements, sorted.
    Set(Vec<Scalar>),
    /// A last-writer-wins register's value.
    Register(Scalar),
    /// A multi-value register's concurrent values (sorted by their writes' dots), and the context
    /// to pass back with [`Op::MvPut`] to replace exactly them.
    Siblings {
        /// The values.
        values: Vec<Scalar>,
        /// The dots of the values read.
        context: CausalContext,
    },
    /// A set add or remove: whether the element's membership changed at this replica.
    Changed(bool),
    /// A register write.
    Written,
}

/// A successful reply's payload.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Done {
    /// The result.
    pub value: Value,
    /// The session's causal frontier after this request: pass it with the next request.
    pub token: SessionToken,
}

/// Why a request failed. Every failure is definite — the request had no effect
/// ([`WrongType`](ClientError::WrongType), [`Overloaded`](ClientError::Overloaded), ...) —
/// except two: [`Unavailable`](ClientError::Unavailable) on a CRDT write (it may have been
/// applied locally and will replicate, but the level asked for was not confirmed; on a
/// consensus operation it is definite), and [`Indefinite`](ClientError::Indefinite).
#[derive(Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ClientError {
    /// The key holds another type (Redis's `WRONGTYPE`).
    #[error("WRONGTYPE key holds a {key:?}, the operation needs a {op:?}")]
    WrongType {
        /// The key's type.
        key: KeyKind,
        /// The type the operation needs.
        op: KeyKind,
    },
    /// The consistency level could not be met before the deadline (partition, crashed replicas,
    /// lost messages). A write may still have been applied locally and will replicate.
    #[error("consistency level {level:?} not met before the deadline")]
    Unavailable {
        /// The level asked for.
        level: Consistency,
    },
    /// The replica did not cover the request's session token before the deadline; answering
    /// would have risked a stale read.
    #[error("session token not covered before the deadline")]
    SessionTimeout,
    /// The token names a replica this cluster does not have, so no replica can ever cover it.
    #[error("session token names a replica outside this cluster")]
    BadToken,
    /// Too many requests are waiting (for quorums or session tokens) already.
    #[error("too many pending requests")]
    Overloaded,
    /// A counter would overflow.
    #[error("counter overflow")]
    Overflow,
    /// A compare-and-set found the register holding another value than its `from`, as decided
    /// by a majority (never a local copy). Definite: nothing was set.
    #[error("precondition failed: the register holds {current:?}")]
    PreconditionFailed {
        /// The register's value (`None`: absent).
        current: Option<Scalar>,
    },
    /// A set or compare-and-set of a consensus register may or may not have been applied: one
    /// of its proposals reached the accept phase and its fate was not learned before the
    /// attempts ran out. Indefinite: retrying may apply it twice.
    #[error("the outcome is unknown: the set may have been applied")]
    Indefinite,
    /// The key is a consensus register (this replica has seen it decided or voted on it): it is
    /// read and written only through [`Op::StrongGet`], [`Op::StrongSet`] and [`Op::Cas`].
    #[error("WRONGTYPE the key is a consensus register; use CAS operations")]
    ConsensusKey,
    /// A consensus operation on a key that holds a CRDT of this kind.
    #[error("WRONGTYPE key holds a {0:?}, not a consensus register")]
    NotConsensusKey(KeyKind),
    /// The register's current value is stamped further in the future than the drift bound, or
    /// the clock's logical counter ran out; stamping above it would drag this replica's clock.
    #[error("register stamped beyond the clock drift bound")]
    ClockDrift,
    /// The node does not serve yet: its store is new and not every peer has accepted its
    /// identity (a shell's answer; the replica never gives it). Definite: nothing was applied.
    #[error("LOADING the node's store is new; it serves once every peer accepts its identity")]
    Loading,
    /// The region's rights do not cover the withdrawal from a bounded counter: definite, the
    /// withdrawal had no effect. Either the counter's value is itself below the amount, or the
    /// rights to spend it are held by other replicas and did not reach this one by the deadline.
    #[error("the region's rights do not cover the withdrawal")]
    InsufficientRights {
        /// Whether the counter's value, as this replica knew it when it refused, was below the
        /// amount: no transfer could have helped. `false` when the value covered it but the
        /// rights were elsewhere and did not arrive in time (it may succeed later).
        short_balance: bool,
    },
    /// The key is pinned by a residency rule to regions this replica is not in (see
    /// [`Pin`](super::Pin)): it may not hold, read or write it here. Definite: nothing was
    /// applied.
    #[error("RESIDENCY the key may not be held in this region")]
    NotResident,
    /// The operation would carry a residency-pinned key to replicas outside its regions: a
    /// `GlobalQuorum` level, a consensus register or a bounded counter (whose rights travel to
    /// every replica). Definite: nothing was applied.
    #[error("RESIDENCY the operation would take the key outside its regions")]
    ResidencyScope,
}

/// One reply, released by [`Replica::poll_reply`](super::Replica::poll_reply).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reply {
    /// The request's id.
    pub id: u64,
    /// The outcome.
    pub result: Result<Done, ClientError>,
}

/// A message for a peer, released by [`Replica::poll_transmit`](super::Replica::poll_transmit).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Transmit {
    /// The neighbour to send it to.
    pub to: crate::ReplicaId,
    /// The encoded message; the receiver passes it to
    /// [`Replica::handle_message`](super::Replica::handle_message).
    pub payload: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::Consistency;

    #[test]
    fn every_level_parses_back_from_its_name_in_any_case() {
        for level in Consistency::ALL {
            assert_eq!(level.name().parse::<Consistency>(), Ok(level));
            assert_eq!(
                level.name().to_lowercase().parse::<Consistency>(),
                Ok(level)
            );
            assert_eq!(level.to_string(), level.name());
        }
        let err = "ONE".parse::<Consistency>().unwrap_err();
        assert!(err.to_string().contains("LOCAL_QUORUM"), "{err}");
    }
}

//! `seat-consensus`: two clients in two regions race to reserve seat 5A through the real
//! `Replica`'s compare-and-set, and at most one of them is told it holds it; reserved
//! write-local instead, both are (spec MODEL-4, on the real code).
//!
//! # The system
//! The actors of [`cas`]: three regions of one real
//! [`Replica`](converge_core::replica::Replica) each (`Config::grid(_, 3, 1)`, `track_durable`
//! on, each shell persisting `take_durable` before it sends), over stateright's unordered,
//! duplicating network (lossless, for the reason given in `cas`: with no timer firing, a lost
//! message is one never delivered), and two clients, client A at region 0 and client B at
//! region 1, each asking for the seat once.
//! - [`Variant::Consensus`]: each client sends `Op::Cas { from: None, to: its value }` at
//!   `GlobalQuorum` (the seat is the consensus register `x`). A client is told it holds the seat
//!   when its region releases an `Ok` reply to that compare-and-set.
//! - [`Variant::LocalOne`]: the write-local reservation a CRDT store invites: each client reads
//!   the seat (a last-writer-wins register) at `LocalOne` and, if its region shows it absent,
//!   writes its value there at `LocalOne`; told it holds the seat when its region releases an
//!   `Ok` reply to that write.
//!   Replication merges the two writes last-writer-wins, so one client holds a seat it was
//!   told is its own and is not.
//!
//! "Told" is counted when the region releases the reply, not when the network delivers it: the
//! promise is made then, and counting there saves the two deliveries that would otherwise put
//! both reservations' ends beyond the depth bound.
//!
//! Timers as in `cas`: a replica's wake is armed only for a deadline already due, so a
//! compare-and-set that meets the other's higher ballot backs off and waits (no reply), and no
//! retransmission or anti-entropy fires. No replica restarts here: `cas-linearizable` covers the
//! restart. The search is bounded by depth ([`DEPTH`], [`DEPTH_LOCAL_ONE`]): a reservation
//! takes five steps to its released reply (the request, then prepare, promise, accept and
//! accepted with one other region), so within the bound both can run to the end, in every
//! interleaving.
//!
//! The write-local counterexample (6 steps): A reads the seat absent at region 0 and writes
//! it; B reads it absent at region 1, which has not received A's write yet, and writes it too;
//! both are told they hold it.
//!
//! # Properties
//! - `always` [`AT_MOST_ONE_RESERVES`]: at most one client is told it holds the seat. Holds on
//!   consensus; the write-local variant must break it.
//! - `sometimes` [`ONE_RESERVES`]: a client is told it holds the seat.

use crate::cas::{self, Node, Script, State};
use stateright::Expectation;
use stateright::actor::ActorModel;

/// The default depth bound of the consensus variant: stateright checks paths of up to
/// `DEPTH - 2` steps, ten here, room for both reservations to run to their replies (ten steps)
/// in every interleaving.
pub const DEPTH: usize = 12;
/// The default depth bound of the write-local variant: its 6-step counterexample is within
/// `DEPTH_LOCAL_ONE - 2` steps.
pub const DEPTH_LOCAL_ONE: usize = 8;

/// `always`: at most one client is told it holds the seat.
pub const AT_MOST_ONE_RESERVES: &str = "at most one client reserves seat 5A";
/// `sometimes`: a client is told it holds the seat.
pub const ONE_RESERVES: &str = "a client reserves seat 5A";

/// The clients' seat values, client A's first.
const A: i64 = 1;
const B: i64 = 2;
static SCRIPT_A: [cas::CasOp; 1] = [cas::CasOp::Cas { from: None, to: A }];
static SCRIPT_B: [cas::CasOp; 1] = [cas::CasOp::Cas { from: None, to: B }];

/// How a client reserves the seat.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// A set-if-absent compare-and-set, decided by consensus.
    Consensus,
    /// A read then a write of a last-writer-wins register, both at `LocalOne`.
    LocalOne,
}

/// Clients told they hold the seat: a region released a successful reply to their reservation.
pub fn holders(state: &State) -> usize {
    state.history.told_holds.len()
}

/// The seat model of `variant`.
pub fn model(variant: Variant) -> ActorModel<Node, (), cas::Ghost> {
    let (a, b) = match variant {
        Variant::Consensus => (Script::Ops(&SCRIPT_A), Script::Ops(&SCRIPT_B)),
        Variant::LocalOne => (Script::LocalSeat(A), Script::LocalSeat(B)),
    };
    let mut actors = cas::regions(None, false);
    actors.push(Node::Client {
        region: 0,
        script: a,
    });
    actors.push(Node::Client {
        region: 1,
        script: b,
    });
    cas::actor_model(actors)
        .property(Expectation::Always, AT_MOST_ONE_RESERVES, |_, state| {
            holders(state) <= 1
        })
        .property(Expectation::Sometimes, ONE_RESERVES, |_, state| {
            holders(state) >= 1
        })
}

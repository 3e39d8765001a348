//! A message copy on its way through the harness: what it carries ([`Cargo`]) and when and
//! where it arrives ([`InFlight`]).
//!
//! Invariant: copies are ordered by arrival time, then by the order the harness scheduled them
//! (`order` is unique per run), so delivery order is a function of the seed and the cargo is
//! never compared.

use crate::harness::message::Message;

/// What a message copy in flight carries: the line a process node wrote, a parsed message (a
/// service's reply, or an in-process node's message), or an in-process node's opaque payload.
#[derive(Debug)]
pub(super) enum Cargo {
    Line(String),
    // Boxed: the in-flight heap moves its elements on every push and pop, and the common cargo
    // (an in-process node's payload) is a third of a message's size.
    Message(Box<Message>),
    Peer(Vec<u8>),
}

/// A message copy in flight. Ordered by arrival, then by the order the harness scheduled it
/// (`order` is unique), so the cargo itself is never compared.
#[derive(Debug)]
pub(super) struct InFlight {
    pub(super) at: u64,
    pub(super) order: u64,
    pub(super) to: usize,
    pub(super) cargo: Cargo,
    pub(super) from: usize,
    pub(super) sent_seq: u64,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}

impl Eq for InFlight {}

impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.order).cmp(&(other.at, other.order))
    }
}

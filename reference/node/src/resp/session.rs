//! The per-connection state of a RESP connection: [`Session`], and the [`Step`]s it hands the
//! shell.
//!
//! A session turns commands into requests for the replica ([`Session::command`], in
//! `command.rs`) and the replica's replies back into RESP ([`Session::reply`], in `reply.rs`);
//! between the two, a [`Pending`] carries what the reply is to become. This module holds the
//! state they share and the one way both build a request.
//!
//! # Invariants
//! - Replies come back in request order: the shell awaits the replica's replies in the order it
//!   submitted the requests, and a command whose answer depends on earlier replies (an
//!   [`is_barrier`](super::is_barrier) command) is submitted only once every earlier one is
//!   answered.
//! - Every reply's session token is merged into the connection's token and every request carries
//!   it ([`Session::submit`] is the only place requests are built), so a connection never reads
//!   older than what it wrote or read before, even after it moved to another region with
//!   `TOKEN SET`.
//! - The MV-register read contexts are bounded: at most [`MV_CONTEXTS_MAX`] keys, oldest
//!   forgotten first.

use super::encode::Resp;
use converge_core::CausalContext;
use converge_core::replica::{Consistency, Key, Op, Request, Scalar, SessionToken};
use std::collections::{BTreeMap, VecDeque};

/// The value DEL writes into a register: RESP only ever writes byte strings, so the integer 0
/// cannot be a value a client wrote, and reads show it as absent (nil). Being an ordinary
/// last-writer-wins write, a DEL and a concurrent SET resolve by timestamp like two SETs.
pub(super) const TOMBSTONE: Scalar = Scalar::Int(0);

/// How many keys' MV-register read contexts a connection remembers for `MVSET`; beyond it the
/// oldest is forgotten (a later `MVSET` of it then replaces no sibling, which is safe: it adds one).
const MV_CONTEXTS_MAX: usize = 1_024;

/// What the shell does with one command.
#[derive(Debug)]
pub enum Step {
    /// Send this reply (in order).
    Reply(Resp),
    /// Submit this request to the replica; hand its reply and the [`Pending`] back to
    /// [`Session::reply`].
    Submit(Request, Pending),
    /// Send this reply, then close the connection (QUIT).
    Close(Resp),
    /// Nothing to answer (a blank line).
    Nothing,
}

/// A command waiting for the replica: what to make of its reply.
#[derive(Debug)]
pub struct Pending {
    /// What the reply becomes.
    pub(super) kind: Kind,
    /// The level the request ran at, which the next step of a multi-step command keeps.
    pub(super) consistency: Consistency,
}

/// What a command waiting for the replica makes of its reply (and, for a multi-step command,
/// what it still has to send).
#[derive(Debug)]
pub(super) enum Kind {
    /// GET: a register's value, or a counter's as decimal text.
    Get,
    /// SET, MVSET, CAS.SET: `+OK`.
    Ok,
    /// CAS, CAS.SETNX: `:1` if the register was set, `:0` if a majority showed it holding
    /// another value (the replica's `PreconditionFailed`, an answer rather than an error).
    Swapped,
    /// CAS.GET: a consensus register's value, or nil if it was never set.
    StrongGet,
    /// INCRBY and friends: the counter after the increment.
    Counter,
    /// SADD/SREM with members still to send, counting changes.
    SetChange {
        key: Key,
        add: bool,
        rest: VecDeque<Scalar>,
        changed: i64,
    },
    /// SMEMBERS.
    Members,
    /// SISMEMBER.
    IsMember(Scalar),
    /// MVGET: remembers the context for the next MVSET of the key.
    MvGet(Key),
    /// DEL: the key in hand (read, or being cleared by the `writes` still to send), the keys
    /// still to delete, and how many were deleted.
    Del {
        current: Key,
        reading: bool,
        keys: VecDeque<Key>,
        deleted: i64,
        writes: VecDeque<Op>,
    },
}

/// The per-connection state: default consistency, session token, MV-register read contexts.
#[derive(Debug)]
pub struct Session {
    /// The level of commands not run under `WITH`.
    pub(super) consistency: Consistency,
    /// Merged with every reply's token and carried by every request.
    pub(super) token: SessionToken,
    /// The last `MVGET` context of each key, for `MVSET`; at most [`MV_CONTEXTS_MAX`] keys.
    pub(super) mv_contexts: BTreeMap<Key, CausalContext>,
    /// The keys of `mv_contexts`, oldest first, so the oldest is the one forgotten.
    mv_order: VecDeque<Key>,
}

impl Session {
    /// A connection's session, with the node's default consistency level.
    pub fn new(consistency: Consistency) -> Session {
        Session {
            consistency,
            token: SessionToken::new(),
            mv_contexts: BTreeMap::new(),
            mv_order: VecDeque::new(),
        }
    }

    /// The connection's session token.
    pub fn token(&self) -> &SessionToken {
        &self.token
    }

    fn request(&self, key: &[u8], op: Op, consistency: Consistency) -> Request {
        Request {
            id: 0,
            key: key.into(),
            op,
            consistency,
            token: Some(self.token.clone()),
        }
    }

    /// The step that submits `op` on `key` at `consistency`, carrying the session's token, and
    /// hands `kind` back with the reply.
    pub(super) fn submit(&self, key: &[u8], op: Op, consistency: Consistency, kind: Kind) -> Step {
        Step::Submit(
            self.request(key, op, consistency),
            Pending { kind, consistency },
        )
    }

    /// Remembers `key`'s MV read context for the next `MVSET` of it, forgetting the oldest key's
    /// beyond [`MV_CONTEXTS_MAX`].
    pub(super) fn remember_mv(&mut self, key: Key, context: CausalContext) {
        if self.mv_contexts.insert(key.clone(), context).is_none() {
            self.mv_order.push_back(key);
            if self.mv_order.len() > MV_CONTEXTS_MAX
                && let Some(old) = self.mv_order.pop_front()
            {
                self.mv_contexts.remove(&old);
            }
        }
    }
}

#[cfg(test)]
pub(super) mod testing {
    //! Helpers for the unit tests of the session, its commands and its replies.

    use super::{Pending, Session, Step};
    use crate::resp::Resp;
    use converge_core::replica::{Done, Reply, Request, SessionToken, Value};

    /// A command's arguments from text.
    pub(in crate::resp) fn args(a: &[&str]) -> Vec<Vec<u8>> {
        a.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    pub(in crate::resp) fn done(value: Value) -> Reply {
        Reply {
            id: 0,
            result: Ok(Done {
                value,
                token: SessionToken::new(),
            }),
        }
    }

    pub(in crate::resp) fn submit(s: &mut Session, cmd: &[&str]) -> (Request, Pending) {
        match s.command(&args(cmd)) {
            Step::Submit(r, p) => (r, p),
            other => panic!("{cmd:?} gave {other:?}"),
        }
    }

    pub(in crate::resp) fn replied(step: Step) -> Resp {
        match step {
            Step::Reply(r) => r,
            other => panic!("expected a reply, got {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{args, done, replied, submit};
    use super::*;
    use converge_core::replica::Value;

    #[test]
    fn mv_contexts_keep_the_newest_keys_only() {
        let mut s = Session::new(Consistency::LocalOne);
        for i in 0..=MV_CONTEXTS_MAX {
            let (_, p) = submit(&mut s, &["MVGET", &format!("k{i}")]);
            let siblings = Value::Siblings {
                values: vec![Scalar::bytes("v")],
                context: CausalContext::default(),
            };
            assert_eq!(
                replied(s.reply(p, done(siblings))),
                Resp::Array(vec![Resp::Bulk(b"v".to_vec())])
            );
        }
        assert_eq!(s.mv_contexts.len(), MV_CONTEXTS_MAX);
        assert!(!s.mv_contexts.contains_key(&b"k0"[..]));
        assert!(s.mv_contexts.contains_key(&b"k1"[..]));
        // Reading a key again does not make it count twice.
        let (_, p) = submit(&mut s, &["MVGET", "k1"]);
        let _ = s.reply(p, done(Value::Absent));
        assert_eq!(s.mv_order.len(), MV_CONTEXTS_MAX);
        assert_eq!(replied(s.command(&args(&["PING"]))), Resp::Simple("PONG"));
    }
}

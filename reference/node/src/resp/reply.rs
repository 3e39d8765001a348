//! Replies: [`Session::reply`] turns the replica's reply to a submitted request into RESP (or
//! into the next request of a multi-step command), and [`client_error`] maps the replica's
//! errors onto RESP errors.
//!
//! # Invariants
//! - Every reply's session token is merged into the connection's token before anything else, so
//!   the next request carries it whatever this reply becomes.
//! - A reply of the wrong shape for its command (a set for `GET`, a counter for `SMEMBERS`) is
//!   `-WRONGTYPE`, as Redis answers an operation on a key of another type.
//! - A compare-and-set (`CAS`, `CAS.SETNX`) whose precondition failed is `:0`, not an error: a
//!   majority definitely showed another value, which answers the client's question.
//! - The multi-step commands (`SADD`/`SREM` with several members, `DEL`) send one request at a
//!   time, each at the command's level, and answer once, when the last one is answered.
//! - `DEL` writes only what makes a key read as deleted: a register gets [`TOMBSTONE`] (which
//!   reads as nil), a set loses the members read, a counter gets minus the value read, an MV
//!   register's siblings read are replaced by a tombstone.

use super::encode::Resp;
use super::session::{Kind, Pending, Session, Step, TOMBSTONE};
use converge_core::replica::{
    ClientError, Consistency, Done, Key, KeyKind, Op, Reply, Scalar, Value,
};
use std::collections::VecDeque;

/// The RESP error for a replica error.
pub fn client_error(e: &ClientError) -> Resp {
    match e {
        ClientError::WrongType { .. } => {
            Resp::Error("WRONGTYPE Operation against a key holding the wrong kind of value".into())
        }
        ClientError::Unavailable { level } => Resp::Error(format!(
            "UNAVAILABLE consistency level {} not met before the deadline",
            level
        )),
        ClientError::SessionTimeout => {
            Resp::Error("TRYAGAIN session token not covered before the deadline".into())
        }
        ClientError::BadToken => Resp::err("session token names a replica outside this cluster"),
        ClientError::Overloaded => Resp::Error("BUSY too many pending requests".into()),
        // Redis's code for "not serving yet": clients retry it.
        ClientError::Loading => Resp::Error(
            "LOADING the node's store is new; it serves once every peer accepts its identity"
                .into(),
        ),
        ClientError::Overflow => Resp::err("increment or decrement would overflow"),
        ClientError::ClockDrift => Resp::err("register stamped beyond the clock drift bound"),
        ClientError::PreconditionFailed { .. } => {
            Resp::Error("CASFAILED the register does not hold the expected value".into())
        }
        ClientError::Indefinite => Resp::Error(
            "TIMEOUT outcome unknown: the set may have been applied; read before retrying".into(),
        ),
        ClientError::ConsensusKey => Resp::Error(
            "WRONGTYPE the key is a consensus register; use CAS, CAS.SET or CAS.GET".into(),
        ),
        ClientError::NotConsensusKey(_) => Resp::Error(
            "WRONGTYPE the key holds a replicated value, not a consensus register".into(),
        ),
        ClientError::InsufficientRights {
            short_balance: true,
        } => Resp::err("the counter's value does not cover the withdrawal"),
        ClientError::InsufficientRights {
            short_balance: false,
        } => Resp::Error("TRYAGAIN the region's rights do not cover the withdrawal".into()),
        ClientError::NotResident => Resp::Error(
            "RESIDENCY the key is pinned to other regions and may not be held in this one".into(),
        ),
        ClientError::ResidencyScope => Resp::Error(
            "RESIDENCY the operation would take a pinned key outside its regions (use \
             LOCAL_ONE or LOCAL_QUORUM; no CAS or bounded counter on pinned keys)"
                .into(),
        ),
    }
}

fn scalar_bytes(s: &Scalar) -> Vec<u8> {
    match s {
        Scalar::Bytes(b) => b.to_vec(),
        Scalar::Int(i) => i.to_string().into_bytes(),
    }
}

fn counter_int(v: i128) -> Resp {
    match i64::try_from(v) {
        Ok(i) => Resp::Int(i),
        Err(_) => Resp::err("counter value out of the 64-bit range"),
    }
}

fn wrongtype() -> Resp {
    client_error(&ClientError::WrongType {
        key: KeyKind::Lww,
        op: KeyKind::Lww,
    })
}

impl Session {
    /// Takes the replica's reply to a submitted request: the RESP reply, or the next request of
    /// a multi-step command.
    pub fn reply(&mut self, pending: Pending, reply: Reply) -> Step {
        let done = match (reply.result, &pending.kind) {
            (Ok(done), _) => done,
            // A compare-and-set whose precondition failed answers the client's question ("was
            // it set?"), definitely, so it is `:0`, not an error.
            (Err(ClientError::PreconditionFailed { .. }), Kind::Swapped) => {
                return Step::Reply(Resp::Int(0));
            }
            (Err(e), _) => return Step::Reply(client_error(&e)),
        };
        let Done { value, token } = done;
        self.token.merge(&token);
        let level = pending.consistency;
        let out = match (pending.kind, value) {
            (Kind::Get, Value::Absent) => Resp::Nil,
            (Kind::Get, Value::Register(s)) if s == TOMBSTONE => Resp::Nil,
            (Kind::Get, Value::Register(s)) => Resp::Bulk(scalar_bytes(&s)),
            (Kind::Get, Value::Counter(c)) => Resp::Bulk(c.to_string().into_bytes()),
            (Kind::Ok, Value::Written) => Resp::Simple("OK"),
            (Kind::Swapped, Value::Written) => Resp::Int(1),
            (Kind::StrongGet, Value::Absent) => Resp::Nil,
            // No tombstone here: a consensus register is never deleted, and its values are
            // whatever the client set.
            (Kind::StrongGet, Value::Register(s)) => Resp::Bulk(scalar_bytes(&s)),
            (Kind::Counter, Value::Counter(c)) => counter_int(c),
            (
                Kind::SetChange {
                    key,
                    add,
                    mut rest,
                    changed,
                },
                Value::Changed(c),
            ) => {
                let changed = changed + i64::from(c);
                match rest.pop_front() {
                    None => Resp::Int(changed),
                    Some(m) => {
                        let op = if add { Op::SetAdd(m) } else { Op::SetRemove(m) };
                        let kind = Kind::SetChange {
                            key: key.clone(),
                            add,
                            rest,
                            changed,
                        };
                        return self.submit(&key, op, level, kind);
                    }
                }
            }
            (Kind::Members, Value::Absent) => Resp::Array(Vec::new()),
            (Kind::Members, Value::Set(ms)) => {
                Resp::Array(ms.iter().map(|m| Resp::Bulk(scalar_bytes(m))).collect())
            }
            (Kind::IsMember(_), Value::Absent) => Resp::Int(0),
            (Kind::IsMember(m), Value::Set(ms)) => Resp::Int(i64::from(ms.contains(&m))),
            (Kind::MvGet(_), Value::Absent) => Resp::Array(Vec::new()),
            (Kind::MvGet(key), Value::Siblings { values, context }) => {
                self.remember_mv(key, context);
                Resp::Array(
                    values
                        .iter()
                        .filter(|v| **v != TOMBSTONE)
                        .map(|v| Resp::Bulk(scalar_bytes(v)))
                        .collect(),
                )
            }
            (
                Kind::Del {
                    current,
                    reading,
                    keys,
                    deleted,
                    writes,
                },
                value,
            ) => {
                let value = if reading { Some(value) } else { None };
                return self.del_step(current, keys, deleted, writes, value, level);
            }
            _ => wrongtype(),
        };
        Step::Reply(out)
    }

    /// One step of DEL: `current` was read (`value` is its state) or one of its removals was
    /// applied (`writes` holds the rest); once its removals are done the next key is read,
    /// until none is left. A key counts as deleted if the read found it non-empty.
    fn del_step(
        &mut self,
        current: Key,
        mut keys: VecDeque<Key>,
        mut deleted: i64,
        mut writes: VecDeque<Op>,
        value: Option<Value>,
        level: Consistency,
    ) -> Step {
        // `value` is `None` when a removal was applied: nothing to plan.
        match value.unwrap_or(Value::Absent) {
            // A read: plan the removals that make the key read as deleted.
            Value::Absent => {}
            Value::Register(s) if s == TOMBSTONE => {}
            Value::Register(_) => {
                deleted += 1;
                writes.push_back(Op::Put(TOMBSTONE));
            }
            Value::Counter(c) => {
                deleted += 1;
                match i64::try_from(-c) {
                    Ok(by) if by != 0 => writes.push_back(Op::PnAdd(by)),
                    Ok(_) => {}
                    Err(_) => return Step::Reply(client_error(&ClientError::Overflow)),
                }
            }
            Value::Set(ms) => {
                if !ms.is_empty() {
                    deleted += 1;
                }
                writes.extend(ms.into_iter().map(Op::SetRemove));
            }
            Value::Siblings { values, context } => {
                if values.iter().any(|v| *v != TOMBSTONE) {
                    deleted += 1;
                    writes.push_back(Op::MvPut {
                        value: TOMBSTONE,
                        seen: context,
                    });
                }
            }
            // Not the reply to a read.
            Value::Changed(_) | Value::Written => {}
        }
        let next = match writes.pop_front() {
            Some(op) => Some((current, op, false)),
            None => keys.pop_front().map(|k| (k, Op::Get, true)),
        };
        match next {
            None => Step::Reply(Resp::Int(deleted)),
            Some((key, op, reading)) => self.submit(
                &key.clone(),
                op,
                level,
                Kind::Del {
                    current: key,
                    reading,
                    keys,
                    deleted,
                    writes,
                },
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::session::testing::{done, replied, submit};
    use super::*;

    #[test]
    fn multi_member_sadd_is_one_request_per_member() {
        let mut s = Session::new(Consistency::LocalOne);
        let (r, p) = submit(&mut s, &["SADD", "s", "a", "b"]);
        assert_eq!(r.op, Op::SetAdd(Scalar::bytes("a")));
        let Step::Submit(r, p) = s.reply(p, done(Value::Changed(true))) else {
            panic!("expected the second add");
        };
        assert_eq!(r.op, Op::SetAdd(Scalar::bytes("b")));
        assert_eq!(
            replied(s.reply(p, done(Value::Changed(false)))),
            Resp::Int(1)
        );
    }

    #[test]
    fn del_reads_then_clears_each_key() {
        let mut s = Session::new(Consistency::LocalOne);
        let (r, p) = submit(&mut s, &["DEL", "s", "r", "gone"]);
        assert_eq!(r.op, Op::Get);
        let set = Value::Set(vec![Scalar::bytes("a"), Scalar::bytes("b")]);
        let Step::Submit(r, p) = s.reply(p, done(set)) else {
            panic!()
        };
        assert_eq!(
            (&*r.key, r.op),
            (&b"s"[..], Op::SetRemove(Scalar::bytes("a")))
        );
        let Step::Submit(r, p) = s.reply(p, done(Value::Changed(true))) else {
            panic!()
        };
        assert_eq!(r.op, Op::SetRemove(Scalar::bytes("b")));
        let Step::Submit(r, p) = s.reply(p, done(Value::Changed(true))) else {
            panic!()
        };
        assert_eq!((&*r.key, r.op), (&b"r"[..], Op::Get));
        let Step::Submit(r, p) = s.reply(p, done(Value::Register(Scalar::bytes("v")))) else {
            panic!()
        };
        assert_eq!(r.op, Op::Put(TOMBSTONE));
        let Step::Submit(r, p) = s.reply(p, done(Value::Written)) else {
            panic!()
        };
        assert_eq!((&*r.key, r.op), (&b"gone"[..], Op::Get));
        assert_eq!(replied(s.reply(p, done(Value::Absent))), Resp::Int(2));
        // A deleted register reads as nil.
        let (_, p) = submit(&mut s, &["GET", "r"]);
        assert_eq!(
            replied(s.reply(p, done(Value::Register(TOMBSTONE)))),
            Resp::Nil
        );
    }

    fn failed(e: ClientError) -> Reply {
        Reply {
            id: 0,
            result: Err(e),
        }
    }

    #[test]
    fn a_compare_and_set_answers_one_if_set_and_zero_if_the_register_held_another_value() {
        let mut s = Session::new(Consistency::LocalOne);
        for cmd in [&["CAS", "k", "a", "b"][..], &["CAS.SETNX", "k", "b"]] {
            let (_, p) = submit(&mut s, cmd);
            assert_eq!(replied(s.reply(p, done(Value::Written))), Resp::Int(1));
            let (_, p) = submit(&mut s, cmd);
            let held = ClientError::PreconditionFailed {
                current: Some(Scalar::bytes("z")),
            };
            assert_eq!(replied(s.reply(p, failed(held))), Resp::Int(0));
            // An absent register fails `CAS`'s precondition too: still `:0`.
            let (_, p) = submit(&mut s, cmd);
            let absent = ClientError::PreconditionFailed { current: None };
            assert_eq!(replied(s.reply(p, failed(absent))), Resp::Int(0));
        }
        let (_, p) = submit(&mut s, &["CAS.SET", "k", "c"]);
        assert_eq!(
            replied(s.reply(p, done(Value::Written))),
            Resp::Simple("OK")
        );
    }

    #[test]
    fn a_consensus_read_is_the_value_or_nil() {
        let mut s = Session::new(Consistency::GlobalQuorum);
        let (_, p) = submit(&mut s, &["CAS.GET", "k"]);
        assert_eq!(replied(s.reply(p, done(Value::Absent))), Resp::Nil);
        let (_, p) = submit(&mut s, &["CAS.GET", "k"]);
        assert_eq!(
            replied(s.reply(p, done(Value::Register(Scalar::bytes("alice"))))),
            Resp::Bulk(b"alice".to_vec())
        );
        // The integer 0 is the CRDT registers' tombstone, not a consensus register's: shown.
        let (_, p) = submit(&mut s, &["CAS.GET", "k"]);
        assert_eq!(
            replied(s.reply(p, done(Value::Register(Scalar::Int(0))))),
            Resp::Bulk(b"0".to_vec())
        );
        // A reply of another shape is a type clash.
        let (_, p) = submit(&mut s, &["CAS.GET", "k"]);
        assert!(matches!(
            replied(s.reply(p, done(Value::Counter(1)))),
            Resp::Error(e) if e.starts_with("WRONGTYPE")
        ));
    }

    #[test]
    fn consensus_failures_are_errors_that_say_whether_they_are_definite() {
        let cases = [
            (
                ClientError::Unavailable {
                    level: Consistency::GlobalQuorum,
                },
                "UNAVAILABLE consistency level GLOBAL_QUORUM not met before the deadline",
            ),
            (
                ClientError::Indefinite,
                "TIMEOUT outcome unknown: the set may have been applied; read before retrying",
            ),
            (
                ClientError::ConsensusKey,
                "WRONGTYPE the key is a consensus register; use CAS, CAS.SET or CAS.GET",
            ),
            (
                ClientError::NotConsensusKey(KeyKind::Set),
                "WRONGTYPE the key holds a replicated value, not a consensus register",
            ),
            (ClientError::Overloaded, "BUSY too many pending requests"),
        ];
        let mut s = Session::new(Consistency::LocalOne);
        for (e, text) in cases {
            for cmd in [
                &["CAS", "k", "a", "b"][..],
                &["CAS.SETNX", "k", "a"],
                &["CAS.SET", "k", "a"],
                &["CAS.GET", "k"],
            ] {
                let (_, p) = submit(&mut s, cmd);
                assert_eq!(
                    replied(s.reply(p, failed(e.clone()))),
                    Resp::Error(text.into()),
                    "{cmd:?} {e:?}"
                );
            }
        }
        // A CRDT command on a consensus register is refused by the replica with the same error.
        let (_, p) = submit(&mut s, &["GET", "k"]);
        assert!(matches!(
            replied(s.reply(p, failed(ClientError::ConsensusKey))),
            Resp::Error(e) if e.starts_with("WRONGTYPE the key is a consensus register")
        ));
    }

    #[test]
    fn replica_errors_map_to_their_resp_errors() {
        let cases = [
            (
                ClientError::Unavailable {
                    level: Consistency::GlobalQuorum,
                },
                "UNAVAILABLE consistency level GLOBAL_QUORUM not met before the deadline",
            ),
            (
                ClientError::SessionTimeout,
                "TRYAGAIN session token not covered before the deadline",
            ),
            (ClientError::Overloaded, "BUSY too many pending requests"),
            (
                ClientError::Overflow,
                "ERR increment or decrement would overflow",
            ),
        ];
        for (e, text) in cases {
            assert_eq!(client_error(&e), Resp::Error(text.into()), "{e:?}");
        }
        // Residency refusals are definite and say so in their own error class.
        for e in [ClientError::NotResident, ClientError::ResidencyScope] {
            assert!(
                matches!(client_error(&e), Resp::Error(t) if t.starts_with("RESIDENCY ")),
                "{e:?}"
            );
        }
        let mut s = Session::new(Consistency::LocalOne);
        let (_, p) = submit(&mut s, &["GET", "k"]);
        let refused = Reply {
            id: 0,
            result: Err(ClientError::Overloaded),
        };
        assert_eq!(
            replied(s.reply(p, refused)),
            Resp::Error("BUSY too many pending requests".into())
        );
    }
}

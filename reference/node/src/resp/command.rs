//! The command table: [`Session::command`] turns one decoded command into a [`Step`] (a reply
//! now, or the first request of the command for the replica), and [`is_barrier`] tells the shell
//! which commands must wait for every earlier reply.
//!
//! # Invariants
//! - Every command gets exactly one step: an unknown command, a wrong argument count or a bad
//!   argument is an `-ERR` reply (worded as redis-server words it where Redis has the command),
//!   never a panic and never a request.
//! - Only `WITH`, `CONSISTENCY` and `TOKEN` change the session here (its level and token); a
//!   command's level is fixed when it is parsed and kept by every later step of it.
//! - The consensus writes (`CAS`, `CAS.SETNX`, `CAS.SET`) always request `GLOBAL_QUORUM`, the
//!   level the replica runs them at whatever is asked; `CAS.GET` takes the command's level.
//! - Level names are [`Consistency`]'s own (`FromStr`, any ASCII case; `name()` to show one).

use super::encode::Resp;
use super::session::{Kind, Session, Step};
use converge_core::replica::{Consistency, Key, Op, Scalar, SessionToken};
use std::collections::VecDeque;

/// Parses a level named in a command argument (any case: [`Consistency`]'s `FromStr`).
fn parse_consistency(s: &[u8]) -> Option<Consistency> {
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// Whether a command's answer depends on the replies of the commands before it on the
/// connection (the token, an MV read context, a multi-step write), so the shell must have every
/// earlier reply in hand before it runs this one.
pub fn is_barrier(cmd: &[Vec<u8>]) -> bool {
    let Some(name) = cmd.first() else {
        return false;
    };
    let name = name.to_ascii_uppercase();
    match name.as_slice() {
        b"TOKEN" | b"DEL" | b"UNLINK" | b"MVSET" => true,
        // One request per member: only several members make a multi-step command.
        b"SADD" | b"SREM" => cmd.len() > 3,
        b"WITH" => cmd.get(2..).is_some_and(is_barrier),
        _ => false,
    }
}

fn upper(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_ascii_uppercase()
}

fn wrong_args(name: &str) -> Step {
    Step::Reply(Resp::err(format!(
        "wrong number of arguments for '{}' command",
        name.to_ascii_lowercase()
    )))
}

fn parse_i64(b: &[u8]) -> Option<i64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

fn hex(bytes: &[u8]) -> Vec<u8> {
    const H: &[u8; 16] = b"0123456789abcdef";
    bytes
        .iter()
        .flat_map(|b| [H[usize::from(b >> 4)], H[usize::from(b & 15)]])
        .collect()
}

fn unhex(s: &[u8]) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| char::from(c).to_digit(16).map(|d| d as u8);
    s.chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

impl Session {
    /// Runs one command: a reply now, or a request for the replica.
    pub fn command(&mut self, cmd: &[Vec<u8>]) -> Step {
        let Some(name) = cmd.first() else {
            // A blank inline line or an empty array: redis-server answers nothing.
            return Step::Nothing;
        };
        let name = upper(name);
        let args = &cmd[1..];
        if name == "WITH" {
            let (Some(level), Some(rest)) = (args.first(), args.get(1..)) else {
                return wrong_args("with");
            };
            let Some(level) = parse_consistency(level) else {
                return Step::Reply(Resp::err(
                    "WITH takes LOCAL_ONE, LOCAL_QUORUM or GLOBAL_QUORUM",
                ));
            };
            if rest.is_empty() {
                return wrong_args("with");
            }
            return self.run(&upper(&rest[0]), &rest[1..], level);
        }
        let level = self.consistency;
        self.run(&name, args, level)
    }

    fn run(&mut self, name: &str, args: &[Vec<u8>], level: Consistency) -> Step {
        let n = args.len();
        let reply = |r: Resp| Step::Reply(r);
        match name {
            "PING" => match args {
                [] => reply(Resp::Simple("PONG")),
                [m] => reply(Resp::Bulk(m.clone())),
                _ => wrong_args(name),
            },
            "ECHO" => match args {
                [m] => reply(Resp::Bulk(m.clone())),
                _ => wrong_args(name),
            },
            "QUIT" => Step::Close(Resp::Simple("OK")),
            // Clients probe with HELLO for RESP3; an error makes them stay on RESP2.
            "HELLO" => reply(Resp::err("unknown command 'HELLO', this node speaks RESP2")),
            "SELECT" => match args {
                [db] if db.as_slice() == b"0" => reply(Resp::Simple("OK")),
                [_] => reply(Resp::err("DB index is out of range (only 0)")),
                _ => wrong_args(name),
            },
            "CLIENT" => match args.first().map(|a| upper(a)).as_deref() {
                Some("SETNAME") | Some("SETINFO") => reply(Resp::Simple("OK")),
                Some("GETNAME") => reply(Resp::Nil),
                _ => reply(Resp::err("CLIENT supports SETNAME, SETINFO and GETNAME")),
            },
            // redis-benchmark reads `save` and `appendonly`: the node persists every write
            // before acknowledging it, which is closest to `appendonly yes` with `fsync always`.
            "CONFIG" => match (args.first().map(|a| upper(a)).as_deref(), args.get(1)) {
                (Some("GET"), Some(p)) => match upper(p).as_str() {
                    "SAVE" => reply(Resp::Array(vec![
                        Resp::Bulk(b"save".to_vec()),
                        Resp::Bulk(Vec::new()),
                    ])),
                    "APPENDONLY" => reply(Resp::Array(vec![
                        Resp::Bulk(b"appendonly".to_vec()),
                        Resp::Bulk(b"yes".to_vec()),
                    ])),
                    _ => reply(Resp::Array(Vec::new())),
                },
                _ => reply(Resp::err("CONFIG supports GET only")),
            },
            "COMMAND" => reply(Resp::Array(Vec::new())),
            "CONSISTENCY" => match args {
                [] => reply(Resp::Bulk(self.consistency.name().into())),
                [l] => match parse_consistency(l) {
                    Some(c) => {
                        self.consistency = c;
                        reply(Resp::Simple("OK"))
                    }
                    None => reply(Resp::err(
                        "CONSISTENCY takes LOCAL_ONE, LOCAL_QUORUM or GLOBAL_QUORUM",
                    )),
                },
                _ => wrong_args(name),
            },
            "TOKEN" => match args {
                [] => reply(Resp::Bulk(hex(&self.token.encode()))),
                [sub, t] if upper(sub) == "SET" => {
                    match unhex(t).and_then(|b| SessionToken::decode(&b).ok()) {
                        Some(t) => {
                            self.token.merge(&t);
                            reply(Resp::Simple("OK"))
                        }
                        None => reply(Resp::err("invalid session token")),
                    }
                }
                [sub] if upper(sub) == "RESET" => {
                    self.token = SessionToken::new();
                    reply(Resp::Simple("OK"))
                }
                _ => reply(Resp::err("TOKEN takes no argument, SET <token> or RESET")),
            },
            "GET" => match args {
                [k] => self.submit(k, Op::Get, level, Kind::Get),
                _ => wrong_args(name),
            },
            "SET" => match args {
                [k, v] => self.submit(k, Op::Put(Scalar::bytes(v)), level, Kind::Ok),
                [_, _, ..] => reply(Resp::err("syntax error (SET takes no options here)")),
                _ => wrong_args(name),
            },
            "INCR" | "DECR" => match args {
                [k] => {
                    let by = if name == "INCR" { 1 } else { -1 };
                    self.submit(k, Op::PnAdd(by), level, Kind::Counter)
                }
                _ => wrong_args(name),
            },
            "INCRBY" | "DECRBY" => match args {
                [k, by] => {
                    let by = parse_i64(by).and_then(|b| {
                        if name == "DECRBY" {
                            b.checked_neg()
                        } else {
                            Some(b)
                        }
                    });
                    match by {
                        Some(by) => self.submit(k, Op::PnAdd(by), level, Kind::Counter),
                        None => reply(Resp::err("value is not an integer or out of range")),
                    }
                }
                _ => wrong_args(name),
            },
            "SADD" | "SREM" if n >= 2 => {
                let add = name == "SADD";
                let mut rest: VecDeque<Scalar> = args[1..].iter().map(Scalar::bytes).collect();
                let Some(first) = rest.pop_front() else {
                    return wrong_args(name);
                };
                let op = if add {
                    Op::SetAdd(first)
                } else {
                    Op::SetRemove(first)
                };
                let kind = Kind::SetChange {
                    key: args[0].as_slice().into(),
                    add,
                    rest,
                    changed: 0,
                };
                self.submit(&args[0], op, level, kind)
            }
            "SADD" | "SREM" => wrong_args(name),
            "SMEMBERS" => match args {
                [k] => self.submit(k, Op::Get, level, Kind::Members),
                _ => wrong_args(name),
            },
            "SISMEMBER" => match args {
                [k, m] => self.submit(k, Op::Get, level, Kind::IsMember(Scalar::bytes(m))),
                _ => wrong_args(name),
            },
            "MVGET" => match args {
                [k] => self.submit(k, Op::Get, level, Kind::MvGet(k.as_slice().into())),
                _ => wrong_args(name),
            },
            "MVSET" => match args {
                [k, v] => {
                    let seen = self
                        .mv_contexts
                        .get(k.as_slice())
                        .cloned()
                        .unwrap_or_default();
                    let op = Op::MvPut {
                        value: Scalar::bytes(v),
                        seen,
                    };
                    self.submit(k, op, level, Kind::Ok)
                }
                _ => wrong_args(name),
            },
            "DEL" | "UNLINK" if n >= 1 => {
                let mut keys: VecDeque<Key> = args.iter().map(|k| k.as_slice().into()).collect();
                let Some(first) = keys.pop_front() else {
                    return wrong_args(name);
                };
                let kind = Kind::Del {
                    current: first.clone(),
                    reading: true,
                    keys,
                    deleted: 0,
                    writes: VecDeque::new(),
                };
                self.submit(&first, Op::Get, level, kind)
            }
            "DEL" | "UNLINK" => wrong_args(name),
            // The consensus registers. The writes name `GLOBAL_QUORUM` whatever the connection's
            // level, because that is what they run at: the replica decides every one of them
            // through a majority (a weaker level cannot make a compare-and-set safe), and the
            // request says so rather than carrying a level it does not honour.
            "CAS" => match args {
                [k, from, to] => {
                    let op = Op::Cas {
                        from: Some(Scalar::bytes(from)),
                        to: Scalar::bytes(to),
                    };
                    self.submit(k, op, Consistency::GlobalQuorum, Kind::Swapped)
                }
                _ => wrong_args(name),
            },
            // Set-if-absent: the seat reservation. `CAS` never matches an absent register, so
            // this is the only way to claim one.
            "CAS.SETNX" => match args {
                [k, v] => {
                    let op = Op::Cas {
                        from: None,
                        to: Scalar::bytes(v),
                    };
                    self.submit(k, op, Consistency::GlobalQuorum, Kind::Swapped)
                }
                _ => wrong_args(name),
            },
            "CAS.SET" => match args {
                [k, v] => self.submit(
                    k,
                    Op::StrongSet(Scalar::bytes(v)),
                    Consistency::GlobalQuorum,
                    Kind::Ok,
                ),
                _ => wrong_args(name),
            },
            // The read honours the level: linearizable through a majority at `GLOBAL_QUORUM`,
            // the local replica's last learned decision below it.
            "CAS.GET" => match args {
                [k] => self.submit(k, Op::StrongGet, level, Kind::StrongGet),
                _ => wrong_args(name),
            },
            _ => reply(Resp::err(format!(
                "unknown command '{}'",
                name.to_ascii_lowercase()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::session::testing::{args, done, replied, submit};
    use super::*;
    use converge_core::replica::Value;

    #[test]
    fn commands_map_to_requests_and_replies_back() {
        let mut s = Session::new(Consistency::LocalOne);
        assert_eq!(replied(s.command(&args(&["ping"]))), Resp::Simple("PONG"));
        let (r, p) = submit(&mut s, &["INCRBY", "k", "5"]);
        assert_eq!((r.op, r.consistency), (Op::PnAdd(5), Consistency::LocalOne));
        assert_eq!(replied(s.reply(p, done(Value::Counter(5)))), Resp::Int(5));
        let (r, p) = submit(&mut s, &["WITH", "global_quorum", "GET", "k"]);
        assert_eq!((r.op, r.consistency), (Op::Get, Consistency::GlobalQuorum));
        assert_eq!(
            replied(s.reply(p, done(Value::Counter(5)))),
            Resp::Bulk(b"5".to_vec())
        );
        let (_, p) = submit(&mut s, &["GET", "s"]);
        assert_eq!(
            replied(s.reply(p, done(Value::Set(vec![])))),
            Resp::Error("WRONGTYPE Operation against a key holding the wrong kind of value".into())
        );
        assert_eq!(
            replied(s.command(&args(&["CONSISTENCY", "LOCAL_QUORUM"]))),
            Resp::Simple("OK")
        );
        let (r, _) = submit(&mut s, &["GET", "k"]);
        assert_eq!(r.consistency, Consistency::LocalQuorum);
        assert!(matches!(
            replied(s.command(&args(&["NOPE"]))),
            Resp::Error(e) if e.starts_with("ERR unknown command")
        ));
    }

    #[test]
    fn consensus_register_commands_map_to_their_ops_in_any_case() {
        let bytes = Scalar::bytes;
        let mut s = Session::new(Consistency::LocalOne);
        let (r, _) = submit(&mut s, &["cas", "seat", "alice", "bob"]);
        let cas = Op::Cas {
            from: Some(bytes("alice")),
            to: bytes("bob"),
        };
        assert_eq!((&*r.key, r.op), (&b"seat"[..], cas));
        let (r, _) = submit(&mut s, &["Cas.SetNx", "seat", "alice"]);
        let setnx = Op::Cas {
            from: None,
            to: bytes("alice"),
        };
        assert_eq!((&*r.key, r.op), (&b"seat"[..], setnx));
        let (r, _) = submit(&mut s, &["CAS.SET", "seat", "carol"]);
        assert_eq!(r.op, Op::StrongSet(bytes("carol")));
        let (r, _) = submit(&mut s, &["cas.get", "seat"]);
        assert_eq!(r.op, Op::StrongGet);
        // Values are binary-safe byte strings, as for SET: a number stays bytes.
        let (r, _) = submit(&mut s, &["CAS.SET", "n", "5"]);
        assert_eq!(r.op, Op::StrongSet(bytes("5")));
    }

    #[test]
    fn consensus_writes_run_at_global_quorum_and_the_read_at_the_level_asked() {
        for level in Consistency::ALL {
            let mut s = Session::new(level);
            for cmd in [
                &["CAS", "k", "a", "b"][..],
                &["CAS.SETNX", "k", "a"],
                &["CAS.SET", "k", "a"],
            ] {
                let (r, _) = submit(&mut s, cmd);
                assert_eq!(r.consistency, Consistency::GlobalQuorum, "{cmd:?}");
                let with: Vec<&str> = ["WITH", "LOCAL_ONE"].iter().chain(cmd).copied().collect();
                let (r, _) = submit(&mut s, &with);
                assert_eq!(r.consistency, Consistency::GlobalQuorum, "{with:?}");
            }
            let (r, _) = submit(&mut s, &["CAS.GET", "k"]);
            assert_eq!(r.consistency, level);
            let (r, _) = submit(&mut s, &["WITH", "global_quorum", "CAS.GET", "k"]);
            assert_eq!(r.consistency, Consistency::GlobalQuorum);
            let (r, _) = submit(&mut s, &["WITH", "LOCAL_ONE", "CAS.GET", "k"]);
            assert_eq!(r.consistency, Consistency::LocalOne);
        }
    }

    #[test]
    fn consensus_register_commands_refuse_a_wrong_argument_count() {
        let mut s = Session::new(Consistency::LocalOne);
        for (cmd, name) in [
            (&["CAS"][..], "cas"),
            (&["CAS", "k"], "cas"),
            (&["CAS", "k", "a"], "cas"),
            (&["cas", "k", "a", "b", "c"], "cas"),
            (&["CAS.SETNX"], "cas.setnx"),
            (&["CAS.SETNX", "k"], "cas.setnx"),
            (&["cas.setnx", "k", "a", "b"], "cas.setnx"),
            (&["CAS.SET", "k"], "cas.set"),
            (&["CAS.SET", "k", "a", "NX"], "cas.set"),
            (&["CAS.GET"], "cas.get"),
            (&["CAS.GET", "k", "j"], "cas.get"),
            (&["WITH", "GLOBAL_QUORUM", "CAS.GET"], "cas.get"),
        ] {
            assert_eq!(
                replied(s.command(&args(cmd))),
                Resp::Error(format!(
                    "ERR wrong number of arguments for '{name}' command"
                )),
                "{cmd:?}"
            );
        }
        assert_eq!(
            replied(s.command(&args(&["WITH", "STRONG", "CAS.GET", "k"]))),
            Resp::Error("ERR WITH takes LOCAL_ONE, LOCAL_QUORUM or GLOBAL_QUORUM".into())
        );
        assert!(matches!(
            replied(s.command(&args(&["CAS.INCR", "k"]))),
            Resp::Error(e) if e == "ERR unknown command 'cas.incr'"
        ));
        // None of them needs an earlier reply: each is one request.
        for cmd in [
            &["CAS", "k", "a", "b"][..],
            &["CAS.SETNX", "k", "a"],
            &["CAS.SET", "k", "a"],
            &["CAS.GET", "k"],
        ] {
            assert!(!is_barrier(&args(cmd)), "{cmd:?}");
        }
    }

    #[test]
    fn tokens_round_trip_and_are_merged() {
        let mut s = Session::new(Consistency::LocalOne);
        let t = replied(s.command(&args(&["TOKEN"])));
        let Resp::Bulk(t) = t else { panic!() };
        let mut other = Session::new(Consistency::LocalOne);
        let set = vec![b"TOKEN".to_vec(), b"SET".to_vec(), t];
        assert_eq!(replied(other.command(&set)), Resp::Simple("OK"));
        assert!(matches!(
            replied(other.command(&args(&["TOKEN", "SET", "zz"]))),
            Resp::Error(_)
        ));
    }

    #[test]
    fn barriers_are_the_commands_that_need_earlier_replies() {
        for cmd in [
            &["TOKEN"][..],
            &["del", "k"],
            &["UNLINK", "k"],
            &["MVSET", "k", "v"],
            &["SADD", "s", "a", "b"],
            &["srem", "s", "a", "b"],
            &["WITH", "GLOBAL_QUORUM", "DEL", "k"],
        ] {
            assert!(is_barrier(&args(cmd)), "{cmd:?}");
        }
        for cmd in [
            &[][..],
            &["GET", "k"],
            &["SADD", "s", "a"],
            &["WITH", "GLOBAL_QUORUM", "SADD", "s", "a"],
            &["WITH", "DEL"],
        ] {
            assert!(!is_barrier(&args(cmd)), "{cmd:?}");
        }
    }

    #[test]
    fn hex_round_trips_and_refuses_what_is_not_hex() {
        let bytes = [0u8, 1, 0x7f, 0xab, 0xff];
        assert_eq!(hex(&bytes), b"00017fabff");
        assert_eq!(unhex(&hex(&bytes)), Some(bytes.to_vec()));
        assert_eq!(unhex(b"ABff"), Some(vec![0xab, 0xff]));
        assert_eq!(unhex(b"abc"), None);
        assert_eq!(unhex(b"zz"), None);
    }
}

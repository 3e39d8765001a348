//! Client messages: how the face maps a workload's requests onto [`Request`]s for the replica
//! ([`Face::client`]), and the replica's outputs back onto Maelstrom messages ([`Face::drain`]).
//!
//! # Invariants
//! - A request the face refuses (a message the workload does not have, a bad field, an unknown
//!   level or token) is answered at once with a definite error and never reaches the replica.
//! - Every request the face hands the replica is remembered (under the id it gave it) until the
//!   replica's reply arrives, and that reply is answered to the client and message it came from;
//!   a reply for an id the face does not know is logged, never answered.
//! - A write refused for its consistency level is answered *indefinitely* (code 0), since it may
//!   already be applied and replicating; every other refusal had no effect (see [`error_code`]).
//!   A bounded-counter withdrawal refused for want of rights is definite: code 22 when the value
//!   is below the amount, 11 when the rights did not arrive in time.
//! - Transmits leave before replies, in the order the replica produced them.

use super::request::{ClientOp, ClientReply, ClientRequest, ReadField, ReplyKind};
use super::workload::Workload;
use super::{B64, Face, Output, Shape, Waiting, error_code};
use base64::Engine as _;
use converge_core::CausalContext;
use converge_core::replica::{
    ClientError, Consistency, KeyState, Op, Replica, Request, Scalar, SessionToken, Value,
};
use serde_json::{Value as Json, json};

/// A client message mapped onto the replica: the operation, its key (by name, or as bytes for
/// lin-kv's integer keys) and the shape of the reply.
type Mapping = (Op, &'static str, Shape, Option<Vec<u8>>);

impl Face {
    /// Maps a client request onto a replica request, or answers it at once.
    pub(super) fn client(&mut self, now_ms: u64, src: String, request: ClientRequest) {
        let ClientRequest {
            msg_id,
            op,
            consistency,
            token,
        } = request;
        let w = self.config.workload;
        let plain = |op, key, ok| Ok((op, key, Shape::Plain(ok), None));
        let op_key: Result<Mapping, &'static str> = match (w, op) {
            (Workload::Echo, ClientOp::Echo { echo }) => {
                return self.reply(src, msg_id, ReplyKind::EchoOk { echo });
            }
            (Workload::Broadcast, ClientOp::Topology) => {
                // Replication follows the replica's own topology; Maelstrom's map is for
                // nodes that relay by hand.
                return self.reply(src, msg_id, ReplyKind::TopologyOk);
            }
            (Workload::GCounter, ClientOp::Add { delta }) => match u64::try_from(delta) {
                Ok(d) => plain(Op::Incr(d), "counter", ReplyKind::AddOk),
                Err(_) => Err("add needs a non-negative integer delta"),
            },
            (Workload::GCounter, ClientOp::AddElement { .. }) => {
                Err("add needs a non-negative integer delta")
            }
            (Workload::PnCounter, ClientOp::Add { delta }) => {
                plain(Op::PnAdd(delta), "counter", ReplyKind::AddOk)
            }
            (Workload::PnCounter, ClientOp::AddElement { .. }) => Err("add needs an integer delta"),
            (Workload::BoundedCounter, ClientOp::Add { delta }) => {
                plain(Op::BoundedAdd(delta), "counter", ReplyKind::AddOk)
            }
            (Workload::BoundedCounter, ClientOp::AddElement { .. }) => {
                Err("add needs an integer delta")
            }
            (
                Workload::GCounter | Workload::PnCounter | Workload::BoundedCounter,
                ClientOp::Read { .. },
            ) => Ok((Op::Get, "counter", Shape::Read(ReadField::Value), None)),
            (
                Workload::GSet | Workload::OrSet | Workload::Session,
                ClientOp::AddElement { element },
            ) => plain(Op::SetAdd(Scalar::Int(element)), "set", ReplyKind::AddOk),
            (Workload::GSet | Workload::OrSet | Workload::Session, ClientOp::Add { .. }) => {
                Err("add needs an integer element")
            }
            (Workload::OrSet, ClientOp::Remove { element }) => plain(
                Op::SetRemove(Scalar::Int(element)),
                "set",
                ReplyKind::RemoveOk,
            ),
            (Workload::GSet | Workload::OrSet | Workload::Session, ClientOp::Read { .. }) => {
                Ok((Op::Get, "set", Shape::Read(ReadField::Value), None))
            }
            (Workload::Broadcast, ClientOp::Broadcast { message }) => plain(
                Op::SetAdd(Scalar::Int(message)),
                "messages",
                ReplyKind::BroadcastOk,
            ),
            (Workload::Broadcast, ClientOp::Read { .. }) => {
                Ok((Op::Get, "messages", Shape::Read(ReadField::Messages), None))
            }
            (Workload::LwwRegister | Workload::MvRegister, ClientOp::Write { value, .. }) => {
                let op = if w == Workload::LwwRegister {
                    Op::Put(Scalar::Int(value))
                } else {
                    // A write at a node replaces every sibling the node holds.
                    Op::MvPut {
                        value: Scalar::Int(value),
                        seen: self.mv_context(b"r"),
                    }
                };
                plain(op, "r", ReplyKind::WriteOk)
            }
            (Workload::LwwRegister | Workload::MvRegister, ClientOp::Read { .. }) => {
                Ok((Op::Get, "r", Shape::Read(ReadField::Value), None))
            }
            // lin-kv's registers are consensus registers: reads, writes and compare-and-sets
            // all go through a majority (see `converge_core::replica::strong`), so the three are
            // linearizable together. (Registers written by ABD at GLOBAL_QUORUM would make reads
            // and writes linearizable, but not a compare-and-set beside them.)
            (Workload::LinKv, ClientOp::Read { key: Some(k) }) => Ok((
                Op::StrongGet,
                "",
                Shape::Read(ReadField::Value),
                Some(k.to_string().into_bytes()),
            )),
            (
                Workload::LinKv,
                ClientOp::Write {
                    key: Some(k),
                    value,
                },
            ) => Ok((
                Op::StrongSet(Scalar::Int(value)),
                "",
                Shape::Plain(ReplyKind::WriteOk),
                Some(k.to_string().into_bytes()),
            )),
            (
                Workload::LinKv,
                ClientOp::Cas {
                    key: Some(k),
                    from,
                    to,
                },
            ) => Ok((
                Op::Cas {
                    from: Some(Scalar::Int(from)),
                    to: Scalar::Int(to),
                },
                "",
                Shape::Plain(ReplyKind::CasOk),
                Some(k.to_string().into_bytes()),
            )),
            (
                Workload::LinKv,
                ClientOp::Read { key: None }
                | ClientOp::Write { key: None, .. }
                | ClientOp::Cas { key: None, .. },
            ) => Err("lin-kv requests need an integer key"),
            (_, op) => {
                self.stats.refused += 1;
                let text = format!("{} is not part of the {} workload", op.name(), w.name());
                return self.error(src, msg_id, error_code::NOT_SUPPORTED, text);
            }
        };
        let (op, key, shape, key_override) = match op_key {
            Ok(x) => x,
            Err(why) => {
                self.stats.refused += 1;
                return self.error(src, msg_id, error_code::MALFORMED_REQUEST, why.into());
            }
        };
        let consistency = if w == Workload::LinKv {
            Consistency::GlobalQuorum
        } else {
            consistency.unwrap_or(self.config.default_consistency)
        };
        let token = match token {
            None => None,
            Some(t) => match B64
                .decode(&t)
                .ok()
                .and_then(|b| SessionToken::decode(&b).ok())
            {
                Some(t) => Some(t),
                None => {
                    self.stats.refused += 1;
                    return self.error(
                        src,
                        msg_id,
                        error_code::MALFORMED_REQUEST,
                        "token is not one this node issued".into(),
                    );
                }
            },
        };
        let id = self.next_request;
        self.next_request += 1;
        // Whether an `Unavailable` may still take effect: a CRDT write may (it is applied
        // locally and replicates), a consensus operation's is definite (see `error_code`).
        let is_write = op.is_write() && !op.is_strong();
        self.waiting.insert(
            id,
            Waiting {
                client: src,
                msg_id,
                shape,
                is_write,
                with_token: w == Workload::Session,
            },
        );
        let key = key_override.unwrap_or_else(|| key.as_bytes().to_vec());
        let request = Request {
            id,
            key: key.into_boxed_slice(),
            op,
            consistency,
            token,
        };
        if let Some(r) = &mut self.replica {
            r.handle_request(now_ms, request);
        }
    }

    /// The causal context of everything the replica holds for MV register `key`.
    fn mv_context(&self, key: &[u8]) -> CausalContext {
        match self.replica.as_ref().and_then(|r| r.get(key)) {
            Some(KeyState::Mv(reg)) => reg.read_context(),
            _ => CausalContext::default(),
        }
    }

    /// Moves the replica's outputs into lines.
    pub(super) fn drain(&mut self) {
        let Some(r) = self.replica.as_mut() else {
            return;
        };
        // Straight into the output queue, transmits before replies as before, without
        // collecting either first: answering a reply never touches the replica.
        while let Some(t) = r.poll_transmit() {
            self.out.push_back(Output::Peer {
                to: t.to,
                payload: t.payload,
            });
        }
        while let Some(reply) = self.replica.as_mut().and_then(Replica::poll_reply) {
            if reply.id & super::DIRECT_ID != 0 {
                if self.direct.len() >= super::DIRECT_REPLIES_MAX {
                    self.direct.pop_front();
                    self.stats.logs_dropped += 1;
                }
                self.direct.push_back(reply);
                continue;
            }
            let Some(w) = self.waiting.remove(&reply.id) else {
                self.note(format!("reply to unknown request {}", reply.id));
                continue;
            };
            let (kind, token) = match reply.result {
                Ok(done) => {
                    let kind = match w.shape {
                        Shape::Plain(ok) => ok,
                        Shape::Read(_)
                            if self.config.workload == Workload::LinKv
                                && done.value == Value::Absent =>
                        {
                            ReplyKind::Error {
                                code: error_code::KEY_DOES_NOT_EXIST,
                                text: "key does not exist".into(),
                            }
                        }
                        Shape::Read(field) => ReplyKind::ReadOk {
                            field,
                            value: self.json_value(&done.value),
                        },
                    };
                    let token = (w.with_token && !matches!(kind, ReplyKind::Error { .. }))
                        .then(|| B64.encode(done.token.encode()));
                    (kind, token)
                }
                // Maelstrom's lin-kv answers a compare-and-set of a key never written with
                // `key-does-not-exist`, not `precondition-failed`; both are definite.
                Err(ClientError::PreconditionFailed { current: None })
                    if self.config.workload == Workload::LinKv =>
                {
                    (
                        ReplyKind::Error {
                            code: error_code::KEY_DOES_NOT_EXIST,
                            text: "key does not exist".into(),
                        },
                        None,
                    )
                }
                Err(e) => (
                    ReplyKind::Error {
                        code: error_code(&e, w.is_write),
                        text: e.to_string(),
                    },
                    None,
                ),
            };
            self.out.push_back(Output::Client {
                dest: w.client,
                reply: ClientReply {
                    in_reply_to: w.msg_id,
                    kind,
                    token,
                },
            });
        }
    }

    /// A value as the workload's JSON shows it.
    fn json_value(&self, v: &Value) -> Json {
        let scalar = |s: &Scalar| match s {
            Scalar::Int(i) => json!(i),
            Scalar::Bytes(b) => json!(String::from_utf8_lossy(b)),
        };
        match v {
            Value::Absent => match self.config.workload {
                Workload::GCounter | Workload::PnCounter | Workload::BoundedCounter => json!(0),
                Workload::LwwRegister => Json::Null,
                _ => json!([]),
            },
            Value::Counter(c) => {
                // Counters in these workloads stay far inside i64; saturate rather than wrap.
                json!(i64::try_from(*c).unwrap_or(if *c < 0 { i64::MIN } else { i64::MAX }))
            }
            Value::Set(items) => Json::Array(items.iter().map(scalar).collect()),
            Value::Register(s) => scalar(s),
            Value::Siblings { values, .. } => Json::Array(values.iter().map(scalar).collect()),
            Value::Changed(_) | Value::Written => Json::Null,
        }
    }
}

/// The Maelstrom error code for a replica's refusal. A CRDT write refused for its consistency
/// level may already be applied locally and will replicate, so it is *indefinite* (code 0): a
/// definite code would promise the write never happened; a consensus operation's `Unavailable`
/// is definite (the replica reports it only when none of its proposals can be chosen), and its
/// `Indefinite` is code 0. Everything else had no effect.
///
/// A bounded-counter withdrawal the rights do not cover had no effect either way: code 22
/// (precondition failed) when the value this replica knew was below the amount, so that no
/// transfer could have helped; code 11 (temporarily unavailable) when the value covered it but
/// the rights were elsewhere and did not arrive by the deadline, since it may succeed later.
///
/// A request refused by residency (the key is pinned to other regions, or the operation would
/// carry it outside its regions) is code 10 (not supported): definite, and retrying at this
/// node can never succeed.
fn error_code(e: &ClientError, is_write: bool) -> u32 {
    match e {
        ClientError::Unavailable { .. } if is_write => error_code::TIMEOUT,
        ClientError::Indefinite => error_code::TIMEOUT,
        ClientError::PreconditionFailed { .. } => error_code::PRECONDITION_FAILED,
        ClientError::Unavailable { .. }
        | ClientError::SessionTimeout
        | ClientError::Overloaded
        | ClientError::Loading
        | ClientError::ClockDrift => error_code::TEMPORARILY_UNAVAILABLE,
        ClientError::WrongType { .. }
        | ClientError::BadToken
        | ClientError::ConsensusKey
        | ClientError::NotConsensusKey(_) => error_code::MALFORMED_REQUEST,
        ClientError::Overflow => error_code::ABORT,
        ClientError::InsufficientRights {
            short_balance: true,
        } => error_code::PRECONDITION_FAILED,
        ClientError::InsufficientRights {
            short_balance: false,
        } => error_code::TEMPORARILY_UNAVAILABLE,
        ClientError::NotResident | ClientError::ResidencyScope => error_code::NOT_SUPPORTED,
    }
}

#[cfg(test)]
mod tests {
    use super::super::FaceConfig;
    use super::*;
    use converge_core::replica::KeyKind;

    #[test]
    fn only_a_write_refused_for_its_level_is_indefinite() {
        let unavailable = ClientError::Unavailable {
            level: Consistency::GlobalQuorum,
        };
        assert_eq!(error_code(&unavailable, true), 0);
        assert_eq!(error_code(&unavailable, false), 11);
        let wrong_type = ClientError::WrongType {
            key: KeyKind::Lww,
            op: KeyKind::Lww,
        };
        for (e, code) in [
            (ClientError::SessionTimeout, 11),
            (ClientError::Overloaded, 11),
            (ClientError::ClockDrift, 11),
            (wrong_type, 12),
            (ClientError::BadToken, 12),
            (ClientError::Overflow, 14),
            (ClientError::PreconditionFailed { current: None }, 22),
            (ClientError::Indefinite, 0),
            (ClientError::ConsensusKey, 12),
            (ClientError::NotConsensusKey(KeyKind::Set), 12),
            (ClientError::NotResident, 10),
            (ClientError::ResidencyScope, 10),
            (
                ClientError::InsufficientRights {
                    short_balance: true,
                },
                22,
            ),
            (
                ClientError::InsufficientRights {
                    short_balance: false,
                },
                11,
            ),
        ] {
            assert_eq!(error_code(&e, true), code, "{e:?}");
            assert_eq!(error_code(&e, false), code, "{e:?}");
        }
    }

    /// Two faces of a bounded counter, pumped by hand: peer lines go to the other face unless
    /// the link is cut; client replies are collected.
    struct Pair {
        faces: [Face; 2],
        now: u64,
        cut: bool,
        replies: Vec<Json>,
    }

    impl Pair {
        fn new() -> Pair {
            let mut faces =
                [0, 1].map(|_| Face::new(FaceConfig::new(Workload::BoundedCounter), None));
            for (i, face) in faces.iter_mut().enumerate() {
                let init = json!({"src": "c-init", "dest": format!("n{i}"), "body": {
                    "type": "init", "msg_id": 1, "node_id": format!("n{i}"), "node_ids": ["n0", "n1"]}});
                face.handle_line(0, &init.to_string());
                assert!(face.poll_line().is_some_and(|l| l.contains("init_ok")));
            }
            Pair {
                faces,
                now: 0,
                cut: false,
                replies: Vec::new(),
            }
        }

        /// Routes every line written so far; returns whether any was.
        fn route(&mut self) -> bool {
            let mut any = false;
            for i in 0..2 {
                while let Some(line) = self.faces[i].poll_line() {
                    any = true;
                    let msg: Json = serde_json::from_str(&line).expect("the face writes JSON");
                    match msg["dest"].as_str() {
                        Some("n0") | Some("n1") if self.cut => {}
                        Some("n0") => self.faces[0].handle_line(self.now, &line),
                        Some("n1") => self.faces[1].handle_line(self.now, &line),
                        _ => self.replies.push(msg["body"].clone()),
                    }
                }
            }
            any
        }

        /// Runs timers and deliveries until `ms` more have passed.
        fn run_for(&mut self, ms: u64) {
            let until = self.now + ms;
            loop {
                while self.route() {}
                let next = self.faces.iter().filter_map(Face::poll_timeout).min();
                match next {
                    Some(t) if t <= until => {
                        self.now = self.now.max(t);
                        for face in &mut self.faces {
                            face.handle_timeout(self.now);
                        }
                    }
                    _ => break,
                }
            }
            self.now = until;
        }

        /// Sends `body` to node `i` and returns its reply, waiting at most `ms`.
        fn ask(&mut self, i: usize, body: Json, ms: u64) -> Json {
            let line = json!({"src": "c1", "dest": format!("n{i}"), "body": body});
            self.faces[i].handle_line(self.now, &line.to_string());
            let start = self.now;
            while self.route() {}
            while self.replies.is_empty() && self.now < start + ms {
                self.run_for(10);
            }
            assert_eq!(self.replies.len(), 1, "one reply: {:?}", self.replies);
            self.replies.remove(0)
        }
    }

    #[test]
    fn the_bounded_counter_workload_speaks_the_protocol() {
        let mut pair = Pair::new();
        let add = |id: u64, delta: i64| json!({"type": "add", "msg_id": id, "delta": delta});
        assert_eq!(
            pair.ask(0, add(2, 10), 0),
            json!({"type": "add_ok", "in_reply_to": 2})
        );
        // Before replication n1 knows a value of 0: a withdrawal is refused at once, code 22.
        let refused = pair.ask(1, add(3, -4), 0);
        assert_eq!(
            (refused["type"].as_str(), refused["code"].as_u64()),
            (Some("error"), Some(22))
        );
        pair.run_for(500);
        // n1 now knows 10 but holds no rights: it gathers them from n0 and withdraws.
        assert_eq!(
            pair.ask(1, add(4, -4), 1_000),
            json!({"type": "add_ok", "in_reply_to": 4})
        );
        pair.run_for(500);
        let read = pair.ask(0, json!({"type": "read", "msg_id": 5}), 0);
        assert_eq!(
            read,
            json!({"type": "read_ok", "in_reply_to": 5, "value": 6})
        );
        // More than the value: 22 at once, whatever the rights.
        let refused = pair.ask(0, add(6, -7), 0);
        assert_eq!(refused["code"], 22);
        // Cut off from n0, which holds the rights n1 lacks: 11 by the deadline, no effect.
        pair.cut = true;
        let timed_out = pair.ask(1, add(7, -5), 10_000);
        assert_eq!(
            (timed_out["type"].as_str(), timed_out["code"].as_u64()),
            (Some("error"), Some(11))
        );
        pair.cut = false;
        pair.run_for(3_000);
        for i in 0..2 {
            let read = pair.ask(i, json!({"type": "read", "msg_id": 8}), 0);
            assert_eq!(read["value"], 6, "n{i}");
        }
        // Deposits never wait and never fail.
        assert_eq!(pair.ask(1, add(9, 0), 0)["type"], "add_ok");
    }
}

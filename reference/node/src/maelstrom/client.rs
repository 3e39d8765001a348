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
//! - Transmits leave before replies, in the order the replica produced them.

use super::workload::Workload;
use super::{B64, Face, Output, Shape, Waiting, error_code};
use base64::Engine as _;
use converge_core::CausalContext;
use converge_core::replica::{
    ClientError, Consistency, KeyState, Op, Replica, Request, Scalar, SessionToken, Value,
};
use serde_json::{Map, Value as Json, json};

/// A client message mapped onto the replica: the operation, its key (by name, or as bytes for
/// lin-kv's integer keys) and the shape of the reply.
type Mapping = (Op, &'static str, Shape, Option<Vec<u8>>);

impl Face {
    /// Maps a client message onto a replica request, or answers it at once.
    pub(super) fn client(
        &mut self,
        now_ms: u64,
        src: String,
        kind: &str,
        body: &Map<String, Json>,
    ) {
        let msg_id = body.get("msg_id").cloned().unwrap_or(Json::Null);
        let w = self.config.workload;
        let int = |field: &str| body.get(field).and_then(Json::as_i64);
        let op_key: Result<Mapping, &'static str> = match (w, kind) {
            (Workload::Echo, "echo") => {
                let echo = body.get("echo").cloned().unwrap_or(Json::Null);
                return self.reply(&src, &msg_id, json!({"type": "echo_ok", "echo": echo}));
            }
            (Workload::Broadcast, "topology") => {
                // Replication follows the replica's own topology; Maelstrom's map is for
                // nodes that relay by hand.
                return self.reply(&src, &msg_id, json!({"type": "topology_ok"}));
            }
            (Workload::GCounter, "add") => match body.get("delta").and_then(Json::as_u64) {
                Some(d) => Ok((Op::Incr(d), "counter", Shape::Plain("add_ok"), None)),
                None => Err("add needs a non-negative integer delta"),
            },
            (Workload::PnCounter, "add") => match int("delta") {
                Some(d) => Ok((Op::PnAdd(d), "counter", Shape::Plain("add_ok"), None)),
                None => Err("add needs an integer delta"),
            },
            (Workload::GCounter | Workload::PnCounter, "read") => {
                Ok((Op::Get, "counter", Shape::Read("value"), None))
            }
            (Workload::GSet | Workload::OrSet | Workload::Session, "add") => match int("element") {
                Some(e) => Ok((
                    Op::SetAdd(Scalar::Int(e)),
                    "set",
                    Shape::Plain("add_ok"),
                    None,
                )),
                None => Err("add needs an integer element"),
            },
            (Workload::OrSet, "remove") => match int("element") {
                Some(e) => Ok((
                    Op::SetRemove(Scalar::Int(e)),
                    "set",
                    Shape::Plain("remove_ok"),
                    None,
                )),
                None => Err("remove needs an integer element"),
            },
            (Workload::GSet | Workload::OrSet | Workload::Session, "read") => {
                Ok((Op::Get, "set", Shape::Read("value"), None))
            }
            (Workload::Broadcast, "broadcast") => match int("message") {
                Some(m) => Ok((
                    Op::SetAdd(Scalar::Int(m)),
                    "messages",
                    Shape::Plain("broadcast_ok"),
                    None,
                )),
                None => Err("broadcast needs an integer message"),
            },
            (Workload::Broadcast, "read") => {
                Ok((Op::Get, "messages", Shape::Read("messages"), None))
            }
            (Workload::LwwRegister | Workload::MvRegister, "write") => {
                match int("value") {
                    Some(v) => {
                        let op = if w == Workload::LwwRegister {
                            Op::Put(Scalar::Int(v))
                        } else {
                            // A write at a node replaces every sibling the node holds.
                            Op::MvPut {
                                value: Scalar::Int(v),
                                seen: self.mv_context(b"r"),
                            }
                        };
                        Ok((op, "r", Shape::Plain("write_ok"), None))
                    }
                    None => Err("write needs an integer value"),
                }
            }
            (Workload::LwwRegister | Workload::MvRegister, "read") => {
                Ok((Op::Get, "r", Shape::Read("value"), None))
            }
            (Workload::LinKv, "read" | "write") => match int("key") {
                Some(k) => {
                    let key = Some(k.to_string().into_bytes());
                    if kind == "read" {
                        Ok((Op::Get, "", Shape::Read("value"), key))
                    } else {
                        match int("value") {
                            Some(v) => {
                                Ok((Op::Put(Scalar::Int(v)), "", Shape::Plain("write_ok"), key))
                            }
                            None => Err("write needs an integer value"),
                        }
                    }
                }
                None => Err("lin-kv requests need an integer key"),
            },
            (Workload::LinKv, "cas") => {
                // Compare-and-set needs consensus; the replica offers registers that are
                // linearizable for reads and writes (ABD at GLOBAL_QUORUM), not CAS.
                self.stats.refused += 1;
                return self.error(
                    &src,
                    &msg_id,
                    error_code::NOT_SUPPORTED,
                    "cas needs consensus; this replica offers linearizable reads and writes only",
                );
            }
            _ => {
                self.stats.refused += 1;
                return self.error(
                    &src,
                    &msg_id,
                    error_code::NOT_SUPPORTED,
                    &format!("{kind} is not part of the {} workload", w.name()),
                );
            }
        };
        let (op, key, shape, key_override) = match op_key {
            Ok(x) => x,
            Err(why) => {
                self.stats.refused += 1;
                return self.error(&src, &msg_id, error_code::MALFORMED_REQUEST, why);
            }
        };
        let consistency = if w == Workload::LinKv {
            Consistency::GlobalQuorum
        } else {
            match body.get("consistency") {
                None | Some(Json::Null) => self.config.default_consistency,
                Some(level) => match level.as_str().and_then(|l| l.parse().ok()) {
                    Some(c) => c,
                    None => {
                        self.stats.refused += 1;
                        return self.error(
                            &src,
                            &msg_id,
                            error_code::MALFORMED_REQUEST,
                            "consistency must be LOCAL_ONE, LOCAL_QUORUM or GLOBAL_QUORUM",
                        );
                    }
                },
            }
        };
        let token = match body.get("token") {
            None | Some(Json::Null) => None,
            Some(t) => match t
                .as_str()
                .and_then(|s| B64.decode(s).ok())
                .and_then(|b| SessionToken::decode(&b).ok())
            {
                Some(t) => Some(t),
                None => {
                    self.stats.refused += 1;
                    return self.error(
                        &src,
                        &msg_id,
                        error_code::MALFORMED_REQUEST,
                        "token is not one this node issued",
                    );
                }
            },
        };
        let id = self.next_request;
        self.next_request += 1;
        let is_write = op.is_write();
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
            let Some(w) = self.waiting.remove(&reply.id) else {
                self.note(format!("reply to unknown request {}", reply.id));
                continue;
            };
            let body = match reply.result {
                Ok(done) => {
                    let mut body = match w.shape {
                        Shape::Plain(t) => json!({"type": t}),
                        Shape::Read(field) => {
                            if self.config.workload == Workload::LinKv
                                && done.value == Value::Absent
                            {
                                let text = "key does not exist";
                                self.error(
                                    &w.client,
                                    &w.msg_id,
                                    error_code::KEY_DOES_NOT_EXIST,
                                    text,
                                );
                                continue;
                            }
                            let mut b = json!({"type": "read_ok"});
                            b[field] = self.json_value(&done.value);
                            b
                        }
                    };
                    if w.with_token {
                        body["token"] = json!(B64.encode(done.token.encode()));
                    }
                    body
                }
                Err(e) => {
                    let code = error_code(&e, w.is_write);
                    json!({"type": "error", "code": code, "text": e.to_string()})
                }
            };
            self.reply_owned(w.client, w.msg_id, body);
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
                Workload::GCounter | Workload::PnCounter => json!(0),
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

/// The Maelstrom error code for a replica's refusal. A write refused for its consistency level
/// may already be applied locally and will replicate, so it is *indefinite* (code 0): a
/// definite code would promise the write never happened. Everything else had no effect.
fn error_code(e: &ClientError, is_write: bool) -> u32 {
    match e {
        ClientError::Unavailable { .. } if is_write => error_code::TIMEOUT,
        ClientError::Unavailable { .. }
        | ClientError::SessionTimeout
        | ClientError::Overloaded
        | ClientError::ClockDrift => error_code::TEMPORARILY_UNAVAILABLE,
        ClientError::WrongType { .. } | ClientError::BadToken => error_code::MALFORMED_REQUEST,
        ClientError::Overflow => error_code::ABORT,
    }
}

#[cfg(test)]
mod tests {
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
        ] {
            assert_eq!(error_code(&e, true), code, "{e:?}");
            assert_eq!(error_code(&e, false), code, "{e:?}");
        }
    }
}

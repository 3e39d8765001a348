//! The face's messages, typed: the client requests it understands ([`ClientRequest`]) and the
//! replies it sends ([`ClientReply`]). The stdio shell's lines are parsed into the one and printed
//! from the other here, and nowhere else; an in-process shell (the simulator) builds requests and
//! reads replies directly, so no JSON object is built or parsed on its way.
//!
//! # Invariants
//! - Parsing never panics and never guesses: a body whose fields do not fit the request its type
//!   names is refused with the reason ([`Refused`]), which the face answers as a malformed request.
//! - [`ClientReply::to_json`] prints exactly the body `docs/protocol.md` specifies for the reply.

use converge_core::replica::Consistency;
use serde_json::{Map, Value as Json};

/// A client's request.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientRequest {
    /// `msg_id`, answered as `in_reply_to`.
    pub msg_id: Option<u64>,
    /// What is asked.
    pub op: ClientOp,
    /// `consistency`, if the request names a level.
    pub consistency: Option<Consistency>,
    /// `token`, the session token the client last received (base64, as the face issued it).
    pub token: Option<String>,
}

/// What a client request asks.
#[derive(Clone, Debug, PartialEq)]
pub enum ClientOp {
    /// `init`: the node's name and every node's name (checked when the replica starts).
    Init {
        /// `node_id`.
        node_id: String,
        /// `node_ids`.
        node_ids: Vec<String>,
    },
    /// `echo`.
    Echo {
        /// What to send back.
        echo: Json,
    },
    /// `topology` (the replica keeps its own; the map is acknowledged and not used).
    Topology,
    /// `add` of a counter's `delta`.
    Add {
        /// `delta`.
        delta: i64,
    },
    /// `add` of a set's `element`.
    AddElement {
        /// `element`.
        element: i64,
    },
    /// `remove` of a set's `element`.
    Remove {
        /// `element`.
        element: i64,
    },
    /// `broadcast` of a `message`.
    Broadcast {
        /// `message`.
        message: i64,
    },
    /// `read`.
    Read {
        /// `key`, if it is an integer (lin-kv's keys; the other workloads have one key each).
        key: Option<i64>,
    },
    /// `write`.
    Write {
        /// `key`, if it is an integer.
        key: Option<i64>,
        /// `value`.
        value: i64,
    },
    /// `cas`: set `key` to `to` if it holds `from`.
    Cas {
        /// `key`, if it is an integer.
        key: Option<i64>,
        /// `from`.
        from: i64,
        /// `to`.
        to: i64,
    },
    /// A request type this face has no mapping for.
    Unknown(String),
}

impl ClientOp {
    /// `body.type` of the request.
    pub fn name(&self) -> &str {
        match self {
            ClientOp::Init { .. } => "init",
            ClientOp::Echo { .. } => "echo",
            ClientOp::Topology => "topology",
            ClientOp::Add { .. } | ClientOp::AddElement { .. } => "add",
            ClientOp::Remove { .. } => "remove",
            ClientOp::Broadcast { .. } => "broadcast",
            ClientOp::Read { .. } => "read",
            ClientOp::Write { .. } => "write",
            ClientOp::Cas { .. } => "cas",
            ClientOp::Unknown(name) => name,
        }
    }
}

/// A body that is not a request the face can take: the `msg_id` to answer, if it had one, and
/// why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    /// The request's `msg_id`, if it was a number.
    pub msg_id: Option<u64>,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl ClientRequest {
    /// Reads a client request from a message body (the stdio path). `kind` is `body.type`.
    pub fn from_body(kind: &str, body: &Map<String, Json>) -> Result<ClientRequest, Refused> {
        let msg_id = body.get("msg_id").and_then(Json::as_u64);
        let refuse = |reason| Refused { msg_id, reason };
        let int = |field: &str| body.get(field).and_then(Json::as_i64);
        let op = match kind {
            "init" => {
                // Anything that is not a string becomes an empty name, which no replica has:
                // the face refuses it when it starts the replica, with the one message for it.
                let name = |v: &Json| v.as_str().unwrap_or_default().to_string();
                ClientOp::Init {
                    node_id: body.get("node_id").map(name).unwrap_or_default(),
                    node_ids: body
                        .get("node_ids")
                        .and_then(Json::as_array)
                        .map(|ids| ids.iter().map(name).collect())
                        .unwrap_or_default(),
                }
            }
            "echo" => ClientOp::Echo {
                echo: body.get("echo").cloned().unwrap_or(Json::Null),
            },
            "topology" => ClientOp::Topology,
            "add" => match (int("delta"), int("element")) {
                (Some(delta), _) => ClientOp::Add { delta },
                (None, Some(element)) => ClientOp::AddElement { element },
                (None, None) => return Err(refuse("add needs an integer delta or element")),
            },
            "remove" => ClientOp::Remove {
                element: int("element").ok_or_else(|| refuse("remove needs an integer element"))?,
            },
            "broadcast" => ClientOp::Broadcast {
                message: int("message")
                    .ok_or_else(|| refuse("broadcast needs an integer message"))?,
            },
            "read" => ClientOp::Read { key: int("key") },
            "write" => ClientOp::Write {
                key: int("key"),
                value: int("value").ok_or_else(|| refuse("write needs an integer value"))?,
            },
            "cas" => ClientOp::Cas {
                key: int("key"),
                from: int("from").ok_or_else(|| refuse("cas needs an integer from"))?,
                to: int("to").ok_or_else(|| refuse("cas needs an integer to"))?,
            },
            other => ClientOp::Unknown(other.to_string()),
        };
        let consistency = match body.get("consistency") {
            None | Some(Json::Null) => None,
            Some(level) => Some(level.as_str().and_then(|l| l.parse().ok()).ok_or_else(|| {
                refuse("consistency must be LOCAL_ONE, LOCAL_QUORUM or GLOBAL_QUORUM")
            })?),
        };
        let token = match body.get("token") {
            None | Some(Json::Null) => None,
            Some(Json::String(token)) => Some(token.clone()),
            Some(_) => return Err(refuse("token is not one this node issued")),
        };
        Ok(ClientRequest {
            msg_id,
            op,
            consistency,
            token,
        })
    }
}

/// Where a `read_ok` puts what it read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadField {
    /// `value` (every workload but broadcast).
    Value,
    /// `messages` (broadcast).
    Messages,
}

/// What a reply says.
#[derive(Clone, Debug, PartialEq)]
pub enum ReplyKind {
    /// `init_ok`.
    InitOk,
    /// `echo_ok`.
    EchoOk {
        /// What the request asked to echo.
        echo: Json,
    },
    /// `topology_ok`.
    TopologyOk,
    /// `add_ok`.
    AddOk,
    /// `remove_ok`.
    RemoveOk,
    /// `broadcast_ok`.
    BroadcastOk,
    /// `write_ok`.
    WriteOk,
    /// `cas_ok`.
    CasOk,
    /// `read_ok`.
    ReadOk {
        /// The field the value goes in.
        field: ReadField,
        /// What was read, as the workload shows it.
        value: Json,
    },
    /// `error`.
    Error {
        /// Maelstrom's code.
        code: u32,
        /// Why.
        text: String,
    },
}

impl ReplyKind {
    /// `body.type` of the reply.
    pub fn name(&self) -> &'static str {
        match self {
            ReplyKind::InitOk => "init_ok",
            ReplyKind::EchoOk { .. } => "echo_ok",
            ReplyKind::TopologyOk => "topology_ok",
            ReplyKind::AddOk => "add_ok",
            ReplyKind::RemoveOk => "remove_ok",
            ReplyKind::BroadcastOk => "broadcast_ok",
            ReplyKind::WriteOk => "write_ok",
            ReplyKind::CasOk => "cas_ok",
            ReplyKind::ReadOk { .. } => "read_ok",
            ReplyKind::Error { .. } => "error",
        }
    }
}

/// A reply to a client.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientReply {
    /// The request's `msg_id`.
    pub in_reply_to: Option<u64>,
    /// What the reply says.
    pub kind: ReplyKind,
    /// The session token after the request (the session workload's replies carry one).
    pub token: Option<String>,
}

impl ClientReply {
    /// The reply's body as `docs/protocol.md` specifies it (the stdio path).
    pub fn to_json(&self) -> Json {
        let mut body = Map::new();
        body.insert("type".into(), self.kind.name().into());
        if let Some(id) = self.in_reply_to {
            body.insert("in_reply_to".into(), id.into());
        }
        if let Some(token) = &self.token {
            body.insert("token".into(), token.as_str().into());
        }
        match &self.kind {
            ReplyKind::EchoOk { echo } => {
                body.insert("echo".into(), echo.clone());
            }
            ReplyKind::ReadOk { field, value } => {
                let name = match field {
                    ReadField::Value => "value",
                    ReadField::Messages => "messages",
                };
                body.insert(name.into(), value.clone());
            }
            ReplyKind::Error { code, text } => {
                body.insert("code".into(), (*code).into());
                body.insert("text".into(), text.as_str().into());
            }
            ReplyKind::InitOk
            | ReplyKind::TopologyOk
            | ReplyKind::AddOk
            | ReplyKind::RemoveOk
            | ReplyKind::BroadcastOk
            | ReplyKind::WriteOk
            | ReplyKind::CasOk => {}
        }
        Json::Object(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(body: Json) -> Result<ClientRequest, Refused> {
        let body = body.as_object().cloned().unwrap_or_default();
        let kind = body.get("type").and_then(Json::as_str).unwrap_or_default();
        ClientRequest::from_body(kind, &body)
    }

    #[test]
    fn requests_parse_into_their_typed_fields() {
        let r = parse(json!({"type": "add", "msg_id": 3, "delta": -2, "consistency": "LOCAL_QUORUM", "token": "dA=="}))
            .unwrap();
        assert_eq!(r.msg_id, Some(3));
        assert_eq!(r.op, ClientOp::Add { delta: -2 });
        assert_eq!(r.consistency, Some(Consistency::LocalQuorum));
        assert_eq!(r.token.as_deref(), Some("dA=="));
        let r = parse(json!({"type": "read", "key": "r"})).unwrap();
        assert_eq!(r.op, ClientOp::Read { key: None });
        let r = parse(json!({"type": "add", "element": 7})).unwrap();
        assert_eq!(r.op, ClientOp::AddElement { element: 7 });
        assert_eq!(
            parse(json!({"type": "txn"})).unwrap().op,
            ClientOp::Unknown("txn".into())
        );
    }

    #[test]
    fn bad_fields_are_refused_with_the_msg_id_to_answer() {
        for body in [
            json!({"type": "add", "msg_id": 1, "delta": "1"}),
            json!({"type": "write", "msg_id": 1, "value": 1.5}),
            json!({"type": "read", "msg_id": 1, "consistency": "ONE"}),
            json!({"type": "read", "msg_id": 1, "token": 5}),
            json!({"type": "broadcast", "msg_id": 1}),
        ] {
            let refused = parse(body.clone()).expect_err("refused");
            assert_eq!(refused.msg_id, Some(1), "{body}");
        }
    }

    #[test]
    fn replies_print_as_the_protocol_says() {
        let reply = ClientReply {
            in_reply_to: Some(4),
            kind: ReplyKind::ReadOk {
                field: ReadField::Messages,
                value: json!([1, 2]),
            },
            token: Some("t".into()),
        };
        assert_eq!(
            reply.to_json(),
            json!({"type": "read_ok", "in_reply_to": 4, "messages": [1, 2], "token": "t"})
        );
        let error = ClientReply {
            in_reply_to: None,
            kind: ReplyKind::Error {
                code: 12,
                text: "no".into(),
            },
            token: None,
        };
        assert_eq!(
            error.to_json(),
            json!({"type": "error", "code": 12, "text": "no"})
        );
    }
}

//! Maelstrom's message envelope and error codes.
//!
//! Every line a node reads or writes is one JSON object `{"src", "dest", "body"}`; `body.type`
//! names the message, `body.msg_id` numbers requests and `body.in_reply_to` ties a reply to its
//! request. The harness parses every line it is given and refuses (and reports) anything else.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One message between nodes, clients and services.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Sender: `n0`…, `c0`…, or a service name.
    pub src: String,
    /// Receiver.
    pub dest: String,
    /// The payload: `type`, `msg_id`, `in_reply_to` and the workload's fields.
    pub body: Map<String, Value>,
}

/// Why a line from a node is not a message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// Not JSON, or not an object with `src`, `dest` and an object `body`.
    #[error("malformed message: {reason}: {line}")]
    Malformed {
        /// What was wrong.
        reason: String,
        /// The offending line, cut to 200 characters.
        line: String,
    },
    /// The body has no string `type`.
    #[error("message without a body.type: {0}")]
    NoType(String),
}

impl Message {
    /// A message from `src` to `dest` with `body`.
    pub fn new(src: impl Into<String>, dest: impl Into<String>, body: Value) -> Self {
        let body = match body {
            Value::Object(map) => map,
            other => Map::from_iter([("value".to_string(), other)]),
        };
        Message {
            src: src.into(),
            dest: dest.into(),
            body,
        }
    }

    /// Parses one line.
    pub fn parse(line: &str) -> Result<Message, ProtocolError> {
        let cut = || line.chars().take(200).collect::<String>();
        let msg: Message = serde_json::from_str(line).map_err(|e| ProtocolError::Malformed {
            reason: e.to_string(),
            line: cut(),
        })?;
        if msg.kind().is_none() {
            return Err(ProtocolError::NoType(cut()));
        }
        Ok(msg)
    }

    /// The message as one line of JSON (no trailing newline).
    pub fn to_line(&self) -> String {
        // A Message is strings and JSON values: it always serializes.
        serde_json::to_string(self).expect("a message always serializes")
    }

    /// `body.type`.
    pub fn kind(&self) -> Option<&str> {
        self.body.get("type").and_then(Value::as_str)
    }

    /// `body.msg_id`.
    pub fn msg_id(&self) -> Option<u64> {
        self.body.get("msg_id").and_then(Value::as_u64)
    }

    /// `body.in_reply_to`.
    pub fn in_reply_to(&self) -> Option<u64> {
        self.body.get("in_reply_to").and_then(Value::as_u64)
    }

    /// `body.code` of an `error` reply.
    pub fn error_code(&self) -> Option<u64> {
        (self.kind() == Some("error"))
            .then(|| self.body.get("code").and_then(Value::as_u64))
            .flatten()
    }
}

/// Whether an error code means the operation certainly did not happen (definite) or may have
/// (indefinite), as Maelstrom defines them. Codes Maelstrom does not define are indefinite: the
/// harness cannot know what a custom error implies.
pub fn error_is_definite(code: u64) -> bool {
    matches!(code, 1 | 10 | 11 | 12 | 14 | 20 | 21 | 22 | 30)
}

/// Maelstrom's name for an error code.
pub fn error_name(code: u64) -> &'static str {
    match code {
        0 => "timeout",
        1 => "node-not-found",
        10 => "not-supported",
        11 => "temporarily-unavailable",
        12 => "malformed-request",
        13 => "crash",
        14 => "abort",
        20 => "key-does-not-exist",
        21 => "key-already-exists",
        22 => "precondition-failed",
        30 => "txn-conflict",
        _ => "custom",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_a_maelstrom_line_and_refuses_garbage() {
        let m = Message::parse(
            r#"{"src":"c1","dest":"n0","body":{"type":"echo","msg_id":4,"echo":"hi"}}"#,
        )
        .unwrap();
        assert_eq!((m.kind(), m.msg_id()), (Some("echo"), Some(4)));
        assert!(matches!(
            Message::parse("hello"),
            Err(ProtocolError::Malformed { .. })
        ));
        assert!(matches!(
            Message::parse(r#"{"src":"a","dest":"b","body":{"msg_id":1}}"#),
            Err(ProtocolError::NoType(_))
        ));
        let line = Message::new("n0", "c1", json!({"type": "error", "code": 22})).to_line();
        assert_eq!(Message::parse(&line).unwrap().error_code(), Some(22));
    }

    #[test]
    fn definite_and_indefinite_errors_follow_maelstrom() {
        assert!(error_is_definite(22) && error_is_definite(11));
        assert!(!error_is_definite(0) && !error_is_definite(13) && !error_is_definite(1000));
    }
}

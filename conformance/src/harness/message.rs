//! Maelstrom's message envelope and error codes.
//!
//! Every line a node reads or writes is one JSON object `{"src", "dest", "body"}`; `body.type`
//! names the message, `body.msg_id` numbers requests and `body.in_reply_to` ties a reply to its
//! request. The harness parses every line it is given and refuses (and reports) anything else.
//! Parsed, the body is typed ([`Body`]); JSON exists only in the line.

pub use super::body::Body;
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
    pub body: Body,
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

/// A line from a node read only as far as routing needs: who sent it to whom, and its body as the
/// JSON object the node wrote. The harness types a body only where it reads one (a reply to a
/// client); a message between nodes is delivered as its very line, and a service judges the
/// object as the node wrote it, so neither pays for a typed body it would never look at.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Envelope {
    /// Sender.
    pub src: String,
    /// Receiver.
    pub dest: String,
    /// The body, as written.
    pub body: Map<String, Value>,
}

impl Envelope {
    /// Parses one line: a JSON object with `src`, `dest` and an object `body` with a string
    /// `type`.
    pub fn parse(line: &str) -> Result<Envelope, ProtocolError> {
        let cut = || line.chars().take(200).collect::<String>();
        let envelope: Envelope =
            serde_json::from_str(line).map_err(|e| ProtocolError::Malformed {
                reason: e.to_string(),
                line: cut(),
            })?;
        match envelope.body.get("type") {
            Some(Value::String(kind)) if !kind.is_empty() => Ok(envelope),
            _ => Err(ProtocolError::NoType(cut())),
        }
    }

    /// The message, its body typed.
    pub fn into_message(self) -> Message {
        Message {
            src: self.src,
            dest: self.dest,
            body: Body::from_map(self.body),
        }
    }
}

impl Message {
    /// A message from `src` to `dest` with `body`.
    pub fn new(src: impl Into<String>, dest: impl Into<String>, body: impl Into<Body>) -> Self {
        Message {
            src: src.into(),
            dest: dest.into(),
            body: body.into(),
        }
    }

    /// Parses one line ([`Envelope::parse`], then the body typed).
    pub fn parse(line: &str) -> Result<Message, ProtocolError> {
        Envelope::parse(line).map(Envelope::into_message)
    }

    /// The message as one line of JSON (no trailing newline).
    pub fn to_line(&self) -> String {
        // A Message is strings and JSON values: it always serializes.
        serde_json::to_string(self).expect("a message always serializes")
    }

    /// `body.type`, if the body has one.
    pub fn kind(&self) -> Option<&str> {
        Some(self.body.name()).filter(|name| !name.is_empty())
    }

    /// `body.msg_id`.
    pub fn msg_id(&self) -> Option<u64> {
        self.body.msg_id
    }

    /// `body.in_reply_to`.
    pub fn in_reply_to(&self) -> Option<u64> {
        self.body.in_reply_to
    }

    /// `body.code` of an `error` reply.
    pub fn error_code(&self) -> Option<u64> {
        self.body.error_code()
    }
}

/// One of Maelstrom's error codes: the protocol's one table of their numbers, names and
/// definiteness ([`ErrorCode::TABLE`]), for the harness, its services and any node written against
/// the protocol in this workspace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorCode {
    /// 0, `timeout`: the request timed out (indefinite).
    Timeout,
    /// 1, `node-not-found`: the request was sent to a node that does not exist.
    NodeNotFound,
    /// 10, `not-supported`: the receiver does not offer this request type.
    NotSupported,
    /// 11, `temporarily-unavailable`: the operation did not take effect; it may succeed later.
    TemporarilyUnavailable,
    /// 12, `malformed-request`: the request is not well formed.
    MalformedRequest,
    /// 13, `crash`: the receiver failed in an unknown way (indefinite).
    Crash,
    /// 14, `abort`: the operation was aborted and did not take effect.
    Abort,
    /// 20, `key-does-not-exist`: the key has never been written.
    KeyDoesNotExist,
    /// 21, `key-already-exists`: the key exists and the request required it not to.
    KeyAlreadyExists,
    /// 22, `precondition-failed`: e.g. a `cas` found another value than its `from`.
    PreconditionFailed,
    /// 30, `txn-conflict`: a transaction was refused for a conflict.
    TxnConflict,
}

impl ErrorCode {
    /// Every code Maelstrom defines, in the order of the enum, with its number, its name and
    /// whether it is definite (the operation certainly did not happen) rather than indefinite (it
    /// may have). The methods read this table and nothing else, so a code's facts live once.
    pub const TABLE: [(ErrorCode, u64, &'static str, bool); 11] = [
        (ErrorCode::Timeout, 0, "timeout", false),
        (ErrorCode::NodeNotFound, 1, "node-not-found", true),
        (ErrorCode::NotSupported, 10, "not-supported", true),
        (
            ErrorCode::TemporarilyUnavailable,
            11,
            "temporarily-unavailable",
            true,
        ),
        (ErrorCode::MalformedRequest, 12, "malformed-request", true),
        (ErrorCode::Crash, 13, "crash", false),
        (ErrorCode::Abort, 14, "abort", true),
        (ErrorCode::KeyDoesNotExist, 20, "key-does-not-exist", true),
        (ErrorCode::KeyAlreadyExists, 21, "key-already-exists", true),
        (
            ErrorCode::PreconditionFailed,
            22,
            "precondition-failed",
            true,
        ),
        (ErrorCode::TxnConflict, 30, "txn-conflict", true),
    ];

    /// Its number on the wire, `body.code`.
    pub const fn code(self) -> u64 {
        ErrorCode::TABLE[self as usize].1
    }

    /// Maelstrom's name for it.
    pub const fn name(self) -> &'static str {
        ErrorCode::TABLE[self as usize].2
    }

    /// Whether it means the operation certainly did not happen (definite) rather than that it may
    /// have (indefinite).
    pub const fn is_definite(self) -> bool {
        ErrorCode::TABLE[self as usize].3
    }

    /// The code with number `code`, if Maelstrom defines one.
    pub fn from_code(code: u64) -> Option<ErrorCode> {
        ErrorCode::TABLE
            .iter()
            .find(|row| row.1 == code)
            .map(|row| row.0)
    }

    /// Whether the error number `code` means the operation certainly did not happen. Codes
    /// Maelstrom does not define are indefinite: the harness cannot know what a custom error
    /// implies.
    pub fn is_definite_code(code: u64) -> bool {
        ErrorCode::from_code(code).is_some_and(ErrorCode::is_definite)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: serde_json::Value) -> Body {
        Body::from_map(v.as_object().cloned().unwrap_or_default())
    }

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
        let line = Message::new("n0", "c1", body(json!({"type": "error", "code": 22}))).to_line();
        assert_eq!(Message::parse(&line).unwrap().error_code(), Some(22));
    }

    #[test]
    fn definite_and_indefinite_errors_follow_maelstrom() {
        assert!(ErrorCode::is_definite_code(22) && ErrorCode::is_definite_code(11));
        assert!(
            !ErrorCode::is_definite_code(0)
                && !ErrorCode::is_definite_code(13)
                && !ErrorCode::is_definite_code(1000)
        );
    }

    /// The methods index the table by the enum's discriminant, so each row must sit at its own
    /// variant's place, and every number must name one code.
    #[test]
    fn the_table_is_in_enum_order_and_its_numbers_round_trip() {
        for (i, (code, number, name, _)) in ErrorCode::TABLE.into_iter().enumerate() {
            assert_eq!(code as usize, i, "{name}");
            assert_eq!(ErrorCode::from_code(number), Some(code), "{name}");
            assert_eq!(code.to_string(), name);
        }
        assert_eq!(ErrorCode::from_code(1000), None);
    }

    /// `docs/protocol.md` states the codes for node authors; its table must say what this one
    /// says, row for row.
    #[test]
    fn the_protocol_doc_lists_the_same_codes() {
        let doc = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md"));
        // The rows of the table under its header, less the separator and the closing "other" row.
        let rows: Vec<&str> = doc
            .lines()
            .skip_while(|l| *l != "| code | name | definite? |")
            .skip(2)
            .take_while(|l| l.starts_with("| ") && !l.starts_with("| other "))
            .collect();
        let expected: Vec<String> = ErrorCode::TABLE
            .iter()
            .map(|(_, number, name, definite)| {
                let definite = if *definite { "yes" } else { "no" };
                format!("| {number} | {name} | {definite} |")
            })
            .collect();
        assert_eq!(rows, expected);
    }
}

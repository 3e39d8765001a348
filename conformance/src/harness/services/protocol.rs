//! What the services speak, shared by all of them: the [`Service`] names nodes address, Maelstrom's
//! error codes (the protocol's [`ErrorCode`] table), requests validated into [`Request`], error replies ([`Failure`]), reply
//! bodies, and the canonical JSON that keys and `cas` values are compared by.
//!
//! Invariants: parsing never panics and changes nothing; a [`Request`]'s key is already in
//! canonical form, so the stores compare keys as strings; an error reply carries its caller's
//! `msg_id` whenever that was a non-negative integer.

use crate::harness::message::ErrorCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt::Write as _;

/// One of Maelstrom's built-in services.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Service {
    /// `seq-kv`: a sequentially consistent key-value store.
    SeqKv,
    /// `lin-kv`: a linearizable key-value store.
    LinKv,
    /// `lww-kv`: an eventually consistent, last-write-wins key-value store.
    LwwKv,
    /// `lin-tso`: a linearizable timestamp oracle.
    LinTso,
}

impl Service {
    /// Every service, in report order.
    pub const ALL: [Service; 4] = [
        Service::SeqKv,
        Service::LinKv,
        Service::LwwKv,
        Service::LinTso,
    ];

    /// The node id nodes address the service by, e.g. `lin-kv`.
    pub fn name(self) -> &'static str {
        match self {
            Service::SeqKv => "seq-kv",
            Service::LinKv => "lin-kv",
            Service::LwwKv => "lww-kv",
            Service::LinTso => "lin-tso",
        }
    }

    /// The service with this node id.
    pub fn from_name(name: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.name() == name)
    }

    pub(super) fn index(self) -> usize {
        match self {
            Service::SeqKv => 0,
            Service::LinKv => 1,
            Service::LwwKv => 2,
            Service::LinTso => 3,
        }
    }
}

/// A request whose body has been validated. Keys are already canonical.
pub(super) enum Request {
    Read {
        key: String,
    },
    Write {
        key: String,
        value: Value,
    },
    Cas {
        key: String,
        from: Value,
        to: Value,
        create: bool,
    },
    Ts,
}

/// An error reply before its `in_reply_to` is attached.
pub(super) struct Failure {
    code: u64,
    text: String,
}

impl Failure {
    pub(super) fn new(code: u64, text: String) -> Self {
        Failure { code, text }
    }

    pub(super) fn malformed(text: String) -> Self {
        Failure::new(ErrorCode::MalformedRequest.code(), text)
    }

    pub(super) fn not_supported(kind: &str) -> Self {
        Failure::new(
            ErrorCode::NotSupported.code(),
            format!("this service does not support {}", Value::from(kind)),
        )
    }

    pub(super) fn missing() -> Self {
        Failure::new(
            ErrorCode::KeyDoesNotExist.code(),
            "key does not exist".into(),
        )
    }

    pub(super) fn no_such_service(dest: &str) -> Self {
        Failure::new(
            ErrorCode::NodeNotFound.code(),
            format!("no service is named {}", Value::from(dest)),
        )
    }

    pub(super) fn into_body(self) -> Map<String, Value> {
        let mut body = reply("error");
        body.insert("code".into(), self.code.into());
        body.insert("text".into(), self.text.into());
        body
    }
}

/// `body` answering the request numbered `in_reply_to`, if it was numbered.
pub(super) fn with_reply_to(
    mut body: Map<String, Value>,
    in_reply_to: Option<u64>,
) -> Map<String, Value> {
    if let Some(id) = in_reply_to {
        body.insert("in_reply_to".into(), id.into());
    }
    body
}

pub(super) fn reply(kind: &str) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("type".into(), kind.into());
    body
}

pub(super) fn read_ok(value: Value) -> Map<String, Value> {
    let mut body = reply("read_ok");
    body.insert("value".into(), value);
    body
}

/// Validates `body` as a request to `service`: its `msg_id` (if any) and the request. The error
/// side carries the `msg_id` too when it was valid, so that the error reply reaches its caller;
/// an invalid `msg_id` is dropped, as it could not be matched to a request anyway.
pub(super) fn parse(
    service: Service,
    body: &Map<String, Value>,
) -> Result<(Option<u64>, Request), (Option<u64>, Failure)> {
    let in_reply_to = match body.get("msg_id") {
        None | Some(Value::Null) => None,
        Some(id) => match id.as_u64() {
            Some(id) => Some(id),
            None => {
                return Err((
                    None,
                    Failure::malformed(format!("msg_id must be a non-negative integer, not {id}")),
                ));
            }
        },
    };
    parse_request(service, body)
        .map(|request| (in_reply_to, request))
        .map_err(|failure| (in_reply_to, failure))
}

fn parse_request(service: Service, body: &Map<String, Value>) -> Result<Request, Failure> {
    let kind = match body.get("type") {
        Some(Value::String(kind)) => kind.as_str(),
        Some(other) => {
            return Err(Failure::malformed(format!(
                "type must be a string, not {other}"
            )));
        }
        None => return Err(Failure::malformed("the body has no type".into())),
    };
    let field = |name: &str| {
        body.get(name).ok_or_else(|| {
            Failure::malformed(format!(
                "{} requires {}",
                Value::from(kind),
                Value::from(name)
            ))
        })
    };
    match (service, kind) {
        (Service::LinTso, "ts") => Ok(Request::Ts),
        (Service::LinTso, _) | (_, "ts") => Err(Failure::not_supported(kind)),
        (_, "read") => Ok(Request::Read {
            key: canonical(field("key")?),
        }),
        (_, "write") => Ok(Request::Write {
            key: canonical(field("key")?),
            value: field("value")?.clone(),
        }),
        (_, "cas") => {
            let create = match body.get("create_if_not_exists") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(create)) => *create,
                Some(other) => {
                    return Err(Failure::malformed(format!(
                        "create_if_not_exists must be a boolean, not {other}"
                    )));
                }
            };
            Ok(Request::Cas {
                key: canonical(field("key")?),
                from: field("from")?.clone(),
                to: field("to")?.clone(),
                create,
            })
        }
        _ => Err(Failure::not_supported(kind)),
    }
}

/// Whether a `cas` from `from` may act on a key whose value is `current`.
pub(super) fn check_cas(
    current: Option<&Value>,
    from: &Value,
    create: bool,
) -> Result<(), Failure> {
    match current {
        None if create => Ok(()),
        None => Err(Failure::missing()),
        Some(value) if canonical(value) == canonical(from) => Ok(()),
        Some(value) => Err(Failure::new(
            ErrorCode::PreconditionFailed.code(),
            format!("expected {from}, but had {value}"),
        )),
    }
}

/// `value`'s canonical serialization: compact JSON with object members sorted by name, so that
/// JSON-equal values serialize alike whatever order their members came in. serde_json keeps
/// insertion order when any crate in the build enables its `preserve_order` feature, so its own
/// serialization is not canonical on its own.
pub(super) fn canonical(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(members) => {
            let mut members: Vec<_> = members.iter().collect();
            members.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (name, member)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                // Writing to a `String` cannot fail.
                let _ = write!(out, "{}:", Value::from(name.as_str()));
                write_canonical(member, out);
            }
            out.push('}');
        }
        scalar => {
            // Writing to a `String` cannot fail.
            let _ = write!(out, "{scalar}");
        }
    }
}

//! A message body, typed: what workloads build, the harness sends and records, checkers read and
//! an in-process backend hands its nodes — one value from the workload to the checker, with JSON
//! only where a process reads or writes a line.
//!
//! # Shape
//! Maelstrom bodies are flat JSON objects: a `type`, a `msg_id` or `in_reply_to`, and the
//! workload's fields. [`Body`] keeps the envelope as typed fields, the message as a [`Kind`] whose
//! variant carries exactly the fields that message has, and anything else in [`Body::rest`]. The
//! data a node chooses (a read's value, an echoed string, a register's key) stays a JSON
//! [`Value`]: the harness must be able to record and judge whatever a subject answers (a string
//! where a number belongs is a finding, not a parse error), so those fields are typed by name,
//! not by content. What only the harness writes (a counter's delta, a set's element) is typed by
//! content too.
//!
//! # Invariants
//! - **Lossless**: [`Body::from_map`] followed by [`Body::to_map`] gives back the object it was
//!   given, field for field. A field that does not fit its typed slot (a `msg_id` that is not an
//!   unsigned integer, an `add` whose delta is a string) stays in `rest` under its name, and a
//!   message whose required fields do not fit is [`Kind::Other`] with every field in `rest`.
//! - `rest` never holds a name one of the body's typed fields writes, so printing a body never
//!   writes a name twice; it is `None` rather than empty, so equal bodies compare equal.
//! - A body prints, serializes and debug-formats exactly as its JSON object would (fields sorted
//!   by name), so reports and snapshots read the same whichever way the body was built.

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A consistency level a request may ask for (`body.consistency`), as `docs/protocol.md` names
/// them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    /// `LOCAL_ONE`: one replica of the client's region.
    LocalOne,
    /// `LOCAL_QUORUM`: a majority of the client's region.
    LocalQuorum,
    /// `GLOBAL_QUORUM`: a majority of every region.
    GlobalQuorum,
}

impl Level {
    /// Every level, weakest first.
    pub const ALL: [Level; 3] = [Level::LocalOne, Level::LocalQuorum, Level::GlobalQuorum];

    /// Its one spelling on the wire.
    pub const fn name(self) -> &'static str {
        match self {
            Level::LocalOne => "LOCAL_ONE",
            Level::LocalQuorum => "LOCAL_QUORUM",
            Level::GlobalQuorum => "GLOBAL_QUORUM",
        }
    }

    /// The level spelled exactly `name`.
    pub fn from_name(name: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.name() == name)
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The message a body is, with the fields that message has.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// `init`: the node's id and every node's id.
    Init {
        /// `node_id`.
        node_id: String,
        /// `node_ids`.
        node_ids: Vec<String>,
    },
    /// `init_ok`.
    InitOk,
    /// `topology`: each node's neighbours, as the workload drew them.
    Topology {
        /// `topology`, an object of lists of node ids.
        topology: Value,
    },
    /// `topology_ok`.
    TopologyOk,
    /// `echo`.
    Echo {
        /// `echo`: what to send back.
        echo: Value,
    },
    /// `echo_ok`.
    EchoOk {
        /// `echo`: what the node sent back.
        echo: Value,
    },
    /// `add` with a `delta`: a counter's increment (negative for a PN-counter's decrement).
    Add {
        /// `delta`.
        delta: i64,
    },
    /// `add` with an `element`: a set's insertion.
    AddElement {
        /// `element`.
        element: i64,
    },
    /// `add_ok`.
    AddOk,
    /// `remove`: a set's removal.
    Remove {
        /// `element`.
        element: i64,
    },
    /// `remove_ok`.
    RemoveOk,
    /// `broadcast`.
    Broadcast {
        /// `message`.
        message: i64,
    },
    /// `broadcast_ok`.
    BroadcastOk,
    /// `read`, of one key or of the workload's only value.
    Read {
        /// `key`, if the workload has keys.
        key: Option<Value>,
    },
    /// `read_ok` with a `value` (every workload but broadcast), or with neither field.
    ReadOk {
        /// `value`.
        value: Option<Value>,
    },
    /// `read_ok` with `messages` and no `value` (broadcast).
    ReadMessages {
        /// `messages`.
        messages: Value,
    },
    /// `write`.
    Write {
        /// `key`, if the workload has keys.
        key: Option<Value>,
        /// `value`.
        value: Value,
    },
    /// `write_ok`.
    WriteOk,
    /// `cas`: compare-and-set (boxed: the largest message, and a rare one, should not make
    /// every body larger).
    Cas(Box<Cas>),
    /// `cas_ok`.
    CasOk,
    /// `error`: a refusal, with Maelstrom's code.
    Error {
        /// `code`.
        code: u64,
        /// `text`, if the node explained.
        text: Option<String>,
    },
    /// Any other message (a node's own messages to its peers, a service's requests): its type;
    /// every field is in [`Body::rest`].
    Other(Box<str>),
}

/// The fields of a `cas`.
#[derive(Clone, Debug, PartialEq)]
pub struct Cas {
    /// `key`.
    pub key: Value,
    /// `from`: the value expected.
    pub from: Value,
    /// `to`: the value to set.
    pub to: Value,
}

impl Default for Kind {
    fn default() -> Self {
        Kind::Other("".into())
    }
}

impl Kind {
    /// `body.type`.
    pub fn name(&self) -> &str {
        match self {
            Kind::Init { .. } => "init",
            Kind::InitOk => "init_ok",
            Kind::Topology { .. } => "topology",
            Kind::TopologyOk => "topology_ok",
            Kind::Echo { .. } => "echo",
            Kind::EchoOk { .. } => "echo_ok",
            Kind::Add { .. } | Kind::AddElement { .. } => "add",
            Kind::AddOk => "add_ok",
            Kind::Remove { .. } => "remove",
            Kind::RemoveOk => "remove_ok",
            Kind::Broadcast { .. } => "broadcast",
            Kind::BroadcastOk => "broadcast_ok",
            Kind::Read { .. } => "read",
            Kind::ReadOk { .. } | Kind::ReadMessages { .. } => "read_ok",
            Kind::Write { .. } => "write",
            Kind::WriteOk => "write_ok",
            Kind::Cas { .. } => "cas",
            Kind::CasOk => "cas_ok",
            Kind::Error { .. } => "error",
            Kind::Other(name) => name,
        }
    }

    /// Whether this is a request that changes state (anything but a `read`, as the harness counts
    /// updates).
    pub fn is_update(&self) -> bool {
        !matches!(self, Kind::Read { .. })
    }
}

/// One message body: see the module documentation.
#[derive(Clone, Default, PartialEq)]
pub struct Body {
    /// The message and its fields.
    pub kind: Kind,
    /// `msg_id`: numbers a request.
    pub msg_id: Option<u64>,
    /// `in_reply_to`: the request a reply answers.
    pub in_reply_to: Option<u64>,
    /// `consistency`: the level a request asks for.
    pub consistency: Option<Level>,
    /// `token`: a session token, opaque to the harness (whatever the node issued). Boxed, as
    /// only one workload has tokens.
    pub token: Option<Box<Value>>,
    /// Every other field, as it came; `None` when there is none, as for every body the harness
    /// builds (boxed, so a body without one pays a pointer).
    pub rest: Option<Box<Map<String, Value>>>,
}

impl Body {
    /// A body of `kind` with no other field.
    pub fn new(kind: Kind) -> Self {
        Body {
            kind,
            ..Body::default()
        }
    }

    /// The body, numbered `msg_id`.
    pub fn with_msg_id(mut self, msg_id: u64) -> Self {
        self.msg_id = Some(msg_id);
        self
    }

    /// `body.type`.
    pub fn name(&self) -> &str {
        self.kind.name()
    }

    /// `code` of an `error` reply.
    pub fn error_code(&self) -> Option<u64> {
        match self.kind {
            Kind::Error { code, .. } => Some(code),
            _ => None,
        }
    }

    /// What a `read_ok` holds under `field`: `value` or `messages` (the set-like workloads name
    /// the field in their wire shape), or a field no variant types, from `rest`. `None` for a
    /// body that is not a `read_ok` or lacks the field.
    pub fn read_field(&self, field: &str) -> Option<&Value> {
        match (&self.kind, field) {
            (Kind::ReadOk { value }, "value") => value.as_ref(),
            (Kind::ReadMessages { messages }, "messages") => Some(messages),
            (Kind::ReadOk { .. } | Kind::ReadMessages { .. }, other) => self.rest_field(other),
            _ => None,
        }
    }

    /// The field `name` of `rest`.
    pub fn rest_field(&self, name: &str) -> Option<&Value> {
        self.rest.as_ref()?.get(name)
    }

    /// `value` of a `read_ok`.
    pub fn read_value(&self) -> Option<&Value> {
        self.read_field("value")
    }

    /// `delta` of a counter's `add`.
    pub fn delta(&self) -> Option<i64> {
        match self.kind {
            Kind::Add { delta } => Some(delta),
            _ => None,
        }
    }

    /// `element` of a set's `add` or `remove`, or `message` of a `broadcast`: the element a
    /// request puts into (or takes out of) a set.
    pub fn element(&self) -> Option<i64> {
        match self.kind {
            Kind::AddElement { element } | Kind::Remove { element } => Some(element),
            Kind::Broadcast { message } => Some(message),
            _ => None,
        }
    }

    /// The body read from a JSON object: see the module documentation for what goes where.
    pub fn from_map(mut map: Map<String, Value>) -> Body {
        let name = match map.get("type") {
            // An empty name is kept in `rest` like a missing one: `Kind::Other("")` means "no
            // type taken", so it must not stand for a type that was there.
            Some(Value::String(name)) if !name.is_empty() => match map.remove("type") {
                Some(Value::String(name)) => name,
                _ => String::new(),
            },
            // No string type: a kind without a name, every field kept as it came.
            _ => return Body::new(Kind::Other("".into())).with_rest(map),
        };
        let msg_id = take(&mut map, "msg_id", Value::as_u64);
        let in_reply_to = take(&mut map, "in_reply_to", Value::as_u64);
        let consistency = take(&mut map, "consistency", |v| {
            v.as_str().and_then(Level::from_name)
        });
        let token = map.remove("token").map(Box::new);
        let kind = kind_from(&name, &mut map).unwrap_or_else(|| Kind::Other(name.into()));
        Body {
            kind,
            msg_id,
            in_reply_to,
            consistency,
            token,
            rest: None,
        }
        .with_rest(map)
    }

    fn with_rest(mut self, rest: Map<String, Value>) -> Self {
        self.rest = (!rest.is_empty()).then(|| Box::new(rest));
        self
    }

    /// The typed fields, by name in ascending order, without `rest`'s.
    fn typed_fields(&self) -> Fields<'_> {
        let mut fields = Fields::default();
        if !matches!(&self.kind, Kind::Other(name) if name.is_empty()) {
            fields.push(("type", Field::Str(self.kind.name())));
        }
        if let Some(id) = self.msg_id {
            fields.push(("msg_id", Field::U64(id)));
        }
        if let Some(id) = self.in_reply_to {
            fields.push(("in_reply_to", Field::U64(id)));
        }
        if let Some(level) = self.consistency {
            fields.push(("consistency", Field::Str(level.name())));
        }
        if let Some(token) = &self.token {
            fields.push(("token", Field::Json(token)));
        }
        fn json<'a>(fields: &mut Fields<'a>, name: &'static str, value: &'a Option<Value>) {
            if let Some(value) = value {
                fields.push((name, Field::Json(value)));
            }
        }
        match &self.kind {
            Kind::Init { node_id, node_ids } => {
                fields.push(("node_id", Field::Str(node_id)));
                fields.push(("node_ids", Field::Strings(node_ids)));
            }
            Kind::Topology { topology } => fields.push(("topology", Field::Json(topology))),
            Kind::Echo { echo } | Kind::EchoOk { echo } => fields.push(("echo", Field::Json(echo))),
            Kind::Add { delta } => fields.push(("delta", Field::I64(*delta))),
            Kind::AddElement { element } | Kind::Remove { element } => {
                fields.push(("element", Field::I64(*element)));
            }
            Kind::Broadcast { message } => fields.push(("message", Field::I64(*message))),
            Kind::Read { key } => json(&mut fields, "key", key),
            Kind::ReadOk { value } => json(&mut fields, "value", value),
            Kind::ReadMessages { messages } => fields.push(("messages", Field::Json(messages))),
            Kind::Write { key, value } => {
                json(&mut fields, "key", key);
                fields.push(("value", Field::Json(value)));
            }
            Kind::Cas(cas) => {
                fields.push(("key", Field::Json(&cas.key)));
                fields.push(("from", Field::Json(&cas.from)));
                fields.push(("to", Field::Json(&cas.to)));
            }
            Kind::Error { code, text } => {
                fields.push(("code", Field::U64(*code)));
                if let Some(text) = text {
                    fields.push(("text", Field::Str(text)));
                }
            }
            Kind::InitOk
            | Kind::TopologyOk
            | Kind::AddOk
            | Kind::RemoveOk
            | Kind::BroadcastOk
            | Kind::WriteOk
            | Kind::CasOk
            | Kind::Other(_) => {}
        }
        fields
            .as_mut_slice()
            .sort_unstable_by_key(|(name, _)| *name);
        fields
    }

    /// The body as its JSON object.
    pub fn to_map(&self) -> Map<String, Value> {
        let mut map = self.rest.as_deref().cloned().unwrap_or_default();
        for &(name, field) in self.typed_fields().as_mut_slice().iter() {
            map.insert(name.to_string(), field.to_value());
        }
        map
    }
}

/// Takes field `name` out of `map` if `typed` reads it; leaves it there otherwise.
fn take<T>(
    map: &mut Map<String, Value>,
    name: &str,
    typed: impl Fn(&Value) -> Option<T>,
) -> Option<T> {
    let value = typed(map.get(name)?)?;
    map.remove(name);
    Some(value)
}

/// The kind named `name`, taking its fields out of `map`; `None` (with `map` untouched) when a
/// required field is missing or does not fit.
fn kind_from(name: &str, map: &mut Map<String, Value>) -> Option<Kind> {
    let has = |map: &Map<String, Value>, field: &str, fits: fn(&Value) -> bool| {
        map.get(field).is_some_and(fits)
    };
    let any = |_: &Value| true;
    let int = |v: &Value| v.as_i64().is_some();
    let kind = match name {
        "init" => {
            let strings = |v: &Value| {
                v.as_array()
                    .is_some_and(|ids| ids.iter().all(Value::is_string))
            };
            if !(has(map, "node_id", Value::is_string) && has(map, "node_ids", strings)) {
                return None;
            }
            let node_id = take(map, "node_id", |v| v.as_str().map(str::to_string))?;
            let node_ids = take(map, "node_ids", |v| {
                v.as_array().map(|ids| {
                    ids.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
            })?;
            Kind::Init { node_id, node_ids }
        }
        "init_ok" => Kind::InitOk,
        "topology" => Kind::Topology {
            topology: map.remove("topology")?,
        },
        "topology_ok" => Kind::TopologyOk,
        "echo" => Kind::Echo {
            echo: map.remove("echo")?,
        },
        "echo_ok" => Kind::EchoOk {
            echo: map.remove("echo")?,
        },
        "add" if has(map, "delta", int) => Kind::Add {
            delta: take(map, "delta", Value::as_i64)?,
        },
        "add" if has(map, "element", int) => Kind::AddElement {
            element: take(map, "element", Value::as_i64)?,
        },
        "add_ok" => Kind::AddOk,
        "remove" => Kind::Remove {
            element: take(map, "element", Value::as_i64)?,
        },
        "remove_ok" => Kind::RemoveOk,
        "broadcast" => Kind::Broadcast {
            message: take(map, "message", Value::as_i64)?,
        },
        "broadcast_ok" => Kind::BroadcastOk,
        "read" => Kind::Read {
            key: map.remove("key"),
        },
        "read_ok" if !map.contains_key("value") && map.contains_key("messages") => {
            Kind::ReadMessages {
                messages: map.remove("messages")?,
            }
        }
        "read_ok" => Kind::ReadOk {
            value: map.remove("value"),
        },
        "write" if has(map, "value", any) => Kind::Write {
            key: map.remove("key"),
            value: map.remove("value")?,
        },
        "write_ok" => Kind::WriteOk,
        "cas" if ["key", "from", "to"].iter().all(|f| has(map, f, any)) => {
            Kind::Cas(Box::new(Cas {
                key: map.remove("key")?,
                from: map.remove("from")?,
                to: map.remove("to")?,
            }))
        }
        "cas_ok" => Kind::CasOk,
        "error" if has(map, "code", |v| v.as_u64().is_some()) => Kind::Error {
            code: take(map, "code", Value::as_u64)?,
            // A text that is not a string stays in `rest`, under its name.
            text: take(map, "text", |v| v.as_str().map(str::to_string)),
        },
        _ => return None,
    };
    Some(kind)
}

impl From<Map<String, Value>> for Body {
    fn from(map: Map<String, Value>) -> Self {
        Body::from_map(map)
    }
}

impl From<Kind> for Body {
    fn from(kind: Kind) -> Self {
        Body::new(kind)
    }
}

impl Serialize for Body {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // As the JSON object, sorted by name, so reports and snapshots stay as they were; the
        // typed fields are written where they are, without building the object first (every
        // line to a process node is written this way).
        let mut typed = self.typed_fields();
        let typed = typed.as_mut_slice();
        let rest = self.rest.as_deref().into_iter().flatten();
        let len = typed.len() + self.rest.as_ref().map_or(0, |r| r.len());
        let mut out = serializer.serialize_map(Some(len))?;
        let mut typed = typed.iter().copied().peekable();
        for (name, value) in rest {
            while let Some((field, v)) = typed.next_if(|(field, _)| *field < name.as_str()) {
                out.serialize_entry(field, &v)?;
            }
            out.serialize_entry(name, value)?;
        }
        for (field, v) in typed {
            out.serialize_entry(field, &v)?;
        }
        out.end()
    }
}

/// A body's typed fields, on the stack: every line to a process node is printed from them, and
/// a body has at most [`Fields::MAX`] (the envelope's five and a `cas`'s three).
struct Fields<'a> {
    len: usize,
    /// The first `len` are the fields; the others are placeholders, never read.
    items: [(&'static str, Field<'a>); Fields::MAX],
}

impl Default for Fields<'_> {
    fn default() -> Self {
        Fields {
            len: 0,
            items: [("", Field::U64(0)); Fields::MAX],
        }
    }
}

impl<'a> Fields<'a> {
    const MAX: usize = 8;

    fn push(&mut self, field: (&'static str, Field<'a>)) {
        // Every body has at most MAX typed fields by construction (see `typed_fields`); the
        // assertion keeps that true as kinds are added.
        assert!(
            self.len < Fields::MAX,
            "a body with more than {} typed fields",
            Fields::MAX
        );
        self.items[self.len] = field;
        self.len += 1;
    }

    fn as_mut_slice(&mut self) -> &mut [(&'static str, Field<'a>)] {
        &mut self.items[..self.len]
    }
}

/// A typed field's value, borrowed, as it prints.
#[derive(Clone, Copy)]
enum Field<'a> {
    Str(&'a str),
    U64(u64),
    I64(i64),
    Json(&'a Value),
    Strings(&'a [String]),
}

impl Field<'_> {
    fn to_value(self) -> Value {
        match self {
            Field::Str(s) => s.into(),
            Field::U64(n) => n.into(),
            Field::I64(n) => n.into(),
            Field::Json(v) => v.clone(),
            Field::Strings(items) => items.into(),
        }
    }
}

impl Serialize for Field<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match *self {
            Field::Str(s) => serializer.serialize_str(s),
            Field::U64(n) => serializer.serialize_u64(n),
            // As `serde_json` writes a number it holds: non-negative ones as unsigned.
            Field::I64(n) => match u64::try_from(n) {
                Ok(n) => serializer.serialize_u64(n),
                Err(_) => serializer.serialize_i64(n),
            },
            Field::Json(v) => v.serialize(serializer),
            Field::Strings(items) => items.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Body {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Map::<String, Value>::deserialize(deserializer).map(Body::from_map)
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // As the object prints, so reports read the same.
        self.to_map().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    /// Every message the workloads and services use, well formed and not, reads into its typed
    /// fields and prints back to the very object it came from.
    #[test]
    fn every_body_round_trips_through_its_typed_form() {
        let cases = [
            json!({"type": "init", "msg_id": 1, "node_id": "n0", "node_ids": ["n0", "n1"]}),
            json!({"type": "init_ok", "in_reply_to": 1}),
            json!({"type": "topology", "msg_id": 2, "topology": {"n0": ["n1"]}}),
            json!({"type": "echo", "msg_id": 3, "echo": "hi"}),
            json!({"type": "echo_ok", "in_reply_to": 3, "echo": "hi"}),
            json!({"type": "add", "msg_id": 4, "delta": -3}),
            json!({"type": "add", "msg_id": 4, "element": 7, "consistency": "LOCAL_QUORUM"}),
            json!({"type": "add_ok", "in_reply_to": 4, "token": "abc"}),
            json!({"type": "remove", "element": 7}),
            json!({"type": "broadcast", "message": 9}),
            json!({"type": "read", "msg_id": 5}),
            json!({"type": "read", "msg_id": 5, "key": 3}),
            json!({"type": "read_ok", "in_reply_to": 5, "value": [1, 2]}),
            json!({"type": "read_ok", "in_reply_to": 5, "messages": [1, 2]}),
            json!({"type": "read_ok", "in_reply_to": 5, "messages": [1], "value": 2}),
            json!({"type": "read_ok"}),
            json!({"type": "write", "key": "r", "value": 4}),
            json!({"type": "cas", "key": 1, "from": 2, "to": 3, "create_if_not_exists": true}),
            json!({"type": "error", "in_reply_to": 5, "code": 22, "text": "no"}),
            // Fields that do not fit their slots, and messages nobody typed.
            json!({"type": "add", "delta": "3"}),
            json!({"type": "add"}),
            json!({"type": "error", "code": "22"}),
            json!({"type": "error", "code": 11, "text": 5}),
            json!({"type": "add_ok", "msg_id": -1, "consistency": "ONE", "note": [null]}),
            json!({"type": "init", "node_id": 0, "node_ids": []}),
            json!({"type": "gossip", "msg_id": 8, "seen": {"a": 1}}),
            json!({"type": 5, "value": 1}),
            json!({"msg_id": 1}),
            json!({"type": "", "msg_id": 1}),
            json!({}),
        ];
        for case in cases {
            let map = object(case);
            let body = Body::from_map(map.clone());
            assert_eq!(body.to_map(), map, "{body:?}");
            assert_eq!(
                serde_json::to_string(&body).unwrap(),
                serde_json::to_string(&map).unwrap()
            );
            assert_eq!(format!("{body:?}"), format!("{map:?}"));
            let back: Body = serde_json::from_str(&serde_json::to_string(&body).unwrap()).unwrap();
            assert_eq!(back, body);
        }
    }

    #[test]
    fn fields_land_in_their_typed_slots() {
        let body = Body::from_map(object(json!({
            "type": "add", "msg_id": 4, "delta": -3, "consistency": "GLOBAL_QUORUM", "token": "t"
        })));
        assert_eq!(body.kind, Kind::Add { delta: -3 });
        assert_eq!(body.msg_id, Some(4));
        assert_eq!(body.consistency, Some(Level::GlobalQuorum));
        assert_eq!(body.token.as_deref(), Some(&json!("t")));
        assert!(body.rest.is_none());
        let error = Body::from_map(object(json!({"type": "error", "code": 22})));
        assert_eq!(error.error_code(), Some(22));
        // An error without a numeric code is not a refusal the harness can classify.
        let odd = Body::from_map(object(json!({"type": "error", "code": "22"})));
        assert_eq!((odd.error_code(), odd.name()), (None, "error"));
        let unknown = Body::from_map(object(json!({"type": "add", "delta": 1.5})));
        assert_eq!(unknown.kind, Kind::Other("add".into()));
        assert_eq!(unknown.rest_field("delta"), Some(&json!(1.5)));
    }

    /// The history keeps two bodies per operation for the whole run, so their inline size is
    /// most of its memory: the rare and large fields are boxed to keep it at this.
    #[test]
    fn a_body_stays_small() {
        let size = std::mem::size_of::<Body>();
        println!("Body: {size} bytes, Kind: {}", std::mem::size_of::<Kind>());
        assert!(size <= 128, "a body takes {size} bytes");
    }

    #[test]
    fn level_names_round_trip() {
        for level in Level::ALL {
            assert_eq!(Level::from_name(level.name()), Some(level));
            assert_eq!(level.to_string(), level.name());
        }
        assert_eq!(Level::from_name("local_one"), None);
    }
}

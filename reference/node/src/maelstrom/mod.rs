//! The Maelstrom face of a replica, sans IO: JSON lines in, JSON lines out, exactly as
//! `docs/protocol.md` specifies them, around one [`Replica`].
//!
//! The same [`Face`] serves `converge node --stdio` (a thin loop over stdin and stdout) and the
//! simulator (many faces in one process on virtual time), so the protocol mapping exists once.
//!
//! # Call protocol
//! Inputs: [`Face::handle_line`] (one line from stdin) and [`Face::handle_timeout`] (when
//! [`Face::poll_timeout`] says), each with the current time in ms. Outputs, after every input,
//! **in this order**: [`Face::take_durable`] (persist it; `None` when the face does not track
//! durability), then [`Face::poll_line`] until `None` (write them), then [`Face::poll_log`]
//! (diagnostics for stderr). Lines describe durable state only if what `take_durable` returned
//! was made durable before they were written: the replica's ordering rule, passed through.
//!
//! A shell that carries messages in process (the simulator) uses the same protocol without the
//! text: [`Face::handle_message`] (a parsed message) and [`Face::handle_peer`] (a neighbour's
//! payload bytes) in place of `handle_line`, and [`Face::poll_output`] in place of `poll_line`.
//! Both are the same mapping: `handle_line` parses and calls `handle_message`, and `poll_line`
//! prints what `poll_output` would have returned, so the two paths cannot drift apart.
//!
//! # Invariants
//! - Before `init`, the face answers nothing but `init` (the protocol guarantees nothing else
//!   arrives; anything that does is logged and dropped).
//! - Every client request gets exactly one reply: the replica answers every request it accepts
//!   (with a value or an error, by its deadlines), and requests the face refuses are answered at
//!   once with a definite error.
//! - Bad input (not JSON, no `body.type`, bad fields, a peer payload that does not decode) never
//!   panics and never reaches the replica's state: it is answered with error 12 when it is a
//!   request, and counted and logged otherwise.
//!
//! # Module layout
//! This module is the face and its call protocol (`init`, the inputs and outputs above);
//! `workload` the workloads and the face's configuration; `client` the mapping of client
//! messages onto the replica and of its replies back. `client` adds methods to [`Face`] and
//! reads the face's state defined here; this module imports nothing from it, so the modules have
//! no import cycle.

mod client;
mod request;
mod workload;

/// Maelstrom's error codes, as this node answers with them; every code the node sends is named
/// here. The conformance harness has its own table (`converge-conformance`'s `ErrorCode`), and the
/// node deliberately does not use it: the reference and the harness stay independent, so the
/// harness certifies the node black-box against the protocol as `docs/protocol.md` states it.
mod error_code {
    /// Indefinite: the operation may have taken effect.
    pub(super) const TIMEOUT: u32 = 0;
    /// The request type is not part of the workload.
    pub(super) const NOT_SUPPORTED: u32 = 10;
    /// Refused without effect; it may succeed later.
    pub(super) const TEMPORARILY_UNAVAILABLE: u32 = 11;
    /// The request is not well formed.
    pub(super) const MALFORMED_REQUEST: u32 = 12;
    /// Refused without effect, for good (a counter that would overflow).
    pub(super) const ABORT: u32 = 14;
    /// A `lin-kv` read of a key never written.
    pub(super) const KEY_DOES_NOT_EXIST: u32 = 20;
    /// Refused without effect because a precondition does not hold: a `cas` whose `from` is not
    /// the value a majority decided, or a bounded counter's value below the withdrawal.
    pub(super) const PRECONDITION_FAILED: u32 = 22;
}

pub use request::{ClientOp, ClientReply, ClientRequest, ReadField, Refused, ReplyKind};
pub use workload::{FaceConfig, Workload};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use converge_core::ReplicaId;
use converge_core::replica::{Config, Durable, DurableDelta, RegionId, Replica, Reply, Request};
use serde_json::{Map, Value as Json, json};
use std::collections::{BTreeMap, VecDeque};

/// Diagnostics kept for the shell at most; beyond this they are counted, not stored.
const LOG_MAX: usize = 1_000;

/// Replies to direct requests ([`Face::handle_direct`]) kept until polled, at most; beyond it
/// the oldest go (and are counted as dropped logs).
const DIRECT_REPLIES_MAX: usize = 1_024;

/// The bit that marks a direct request's id, so that its reply never meets a client's.
const DIRECT_ID: u64 = 1 << 63;

/// What the face counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaceStats {
    /// Lines that were not a message the face understands.
    pub malformed: u64,
    /// Client requests refused before reaching the replica (bad fields).
    pub refused: u64,
    /// Diagnostics dropped because the log buffer was full.
    pub logs_dropped: u64,
}

/// Something the face sends: what [`Face::poll_line`] prints, before printing.
///
/// The stdio shell only ever sees lines; the simulator takes these with [`Face::poll_output`]
/// so that nothing is printed and parsed again, and a neighbour's payload stays bytes.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// A reply to a client (`c…`, or the harness's `c-init`): its `dest` and the reply.
    Client {
        /// The client.
        dest: String,
        /// The reply.
        reply: ClientReply,
    },
    /// A replica's message to a neighbour: the bytes a `repl` message carries in base64.
    Peer {
        /// The neighbour.
        to: ReplicaId,
        /// For the neighbour's [`Face::handle_peer`].
        payload: Vec<u8>,
    },
}

/// How to shape the reply of a request the replica answers successfully.
#[derive(Clone, Debug)]
enum Shape {
    /// This reply, whatever the replica read.
    Plain(ReplyKind),
    /// A `read_ok` with what the replica read in this field.
    Read(ReadField),
}

/// A client request the replica has not answered yet: whom to answer, and how.
#[derive(Clone, Debug)]
struct Waiting {
    client: String,
    msg_id: Option<u64>,
    shape: Shape,
    is_write: bool,
    with_token: bool,
}

/// One node's face: see the module documentation.
pub struct Face {
    config: FaceConfig,
    /// Durable state to recover from at `init` (a restarted node's disk).
    recovered: Option<Durable>,
    me: Option<(String, ReplicaId)>,
    replica: Option<Replica>,
    out: VecDeque<Output>,
    log: VecDeque<String>,
    waiting: BTreeMap<u64, Waiting>,
    next_request: u64,
    /// Replies to direct requests, until [`Face::poll_direct_reply`] takes them.
    direct: VecDeque<Reply>,
    next_direct: u64,
    stats: FaceStats,
}

impl Face {
    /// A face that has not seen `init`; `recovered` is the durable state of a previous run, if
    /// the shell has one.
    pub fn new(config: FaceConfig, recovered: Option<Durable>) -> Self {
        Face {
            config,
            recovered,
            me: None,
            replica: None,
            out: VecDeque::new(),
            log: VecDeque::new(),
            waiting: BTreeMap::new(),
            next_request: 1,
            direct: VecDeque::new(),
            next_direct: 0,
            stats: FaceStats::default(),
        }
    }

    /// The replica, once `init` has created it.
    pub fn replica(&self) -> Option<&Replica> {
        self.replica.as_ref()
    }

    /// Counters.
    pub fn stats(&self) -> FaceStats {
        self.stats
    }

    /// Input: one line from stdin, at `now_ms`.
    pub fn handle_line(&mut self, now_ms: u64, line: &str) {
        let msg: Json = match serde_json::from_str(line) {
            Ok(m) => m,
            Err(e) => return self.malformed(format!("not JSON ({e}): {}", clip(line))),
        };
        let (Some(src), Some(body)) = (msg["src"].as_str(), msg["body"].as_object()) else {
            return self.malformed(format!("no src or body: {}", clip(line)));
        };
        if body.get("type").and_then(Json::as_str).is_none() {
            return self.malformed(format!("no body.type: {}", clip(line)));
        }
        self.handle_message(now_ms, src, body);
    }

    /// Input: a line the shell could not read (not UTF-8, or over its length limit), refused as
    /// malformed like a line that is not JSON: counted and logged with `why`, and answered with
    /// nothing, since no message id could be read from it.
    pub fn refuse_line(&mut self, why: String) {
        self.malformed(why);
    }

    /// Input: one message's `body` object from `src`: a client's request, or a neighbour's
    /// `repl` carrying base64 as on stdin. [`Face::handle_line`] calls it with what it parsed.
    pub fn handle_message(&mut self, now_ms: u64, src: &str, body: &Map<String, Json>) {
        let Some(kind) = body.get("type").and_then(Json::as_str) else {
            return self.malformed(format!("no body.type from {src}"));
        };
        if kind == "repl" {
            if self.replica.is_none() {
                return self.malformed(format!("{kind} before init"));
            }
            let data = body
                .get("data")
                .and_then(Json::as_str)
                .and_then(|d| B64.decode(d).ok());
            let (Some(from), Some(data)) = (parse_node(src), data) else {
                return self.malformed(format!("repl from {src} without a base64 payload"));
            };
            return self.handle_peer(now_ms, from, &data);
        }
        match ClientRequest::from_body(kind, body) {
            Ok(request) => self.handle_request(now_ms, src, request),
            Err(Refused { msg_id, reason }) => {
                if self.replica.is_none() && kind != "init" {
                    return self.malformed(format!("{kind} before init"));
                }
                self.stats.refused += 1;
                self.error(
                    src.to_string(),
                    msg_id,
                    error_code::MALFORMED_REQUEST,
                    reason.into(),
                );
            }
        }
    }

    /// Input: a client's request from `src`, typed (the simulator's path: no JSON on the way
    /// in or out; [`Face::handle_message`] parses a line's body into the same request).
    pub fn handle_request(&mut self, now_ms: u64, src: &str, request: ClientRequest) {
        if let ClientOp::Init { node_id, node_ids } = &request.op {
            return self.init(now_ms, src, request.msg_id, node_id, node_ids);
        }
        if self.replica.is_none() {
            return self.malformed(format!("{} before init", request.op.name()));
        }
        self.client(now_ms, src.to_string(), request);
        self.drain();
    }

    /// Input: a request for the replica that no Maelstrom client sent (the simulator's own
    /// traffic on residency-pinned keys, which no workload reads). Its id is replaced by one the
    /// clients' never meet, and its reply goes to [`Face::poll_direct_reply`], not to a line.
    /// Ignored before `init`.
    pub fn handle_direct(&mut self, now_ms: u64, mut request: Request) {
        let Some(r) = self.replica.as_mut() else {
            return;
        };
        self.next_direct += 1;
        request.id = DIRECT_ID | self.next_direct;
        r.handle_request(now_ms, request);
        self.drain();
    }

    /// Output: the reply to a direct request ([`Face::handle_direct`]), with the id the face
    /// gave it.
    pub fn poll_direct_reply(&mut self) -> Option<Reply> {
        self.direct.pop_front()
    }

    /// Input: a neighbour's payload, as [`Output::Peer`] gave it (a `repl` message's `data`,
    /// decoded). The replica validates the payload itself, and counts what it refuses.
    pub fn handle_peer(&mut self, now_ms: u64, from: ReplicaId, payload: &[u8]) {
        let Some(r) = self.replica.as_mut() else {
            return self.malformed("repl before init".to_string());
        };
        r.handle_message(now_ms, from, payload);
        self.drain();
    }

    /// Input: the time [`Face::poll_timeout`] named has come.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        if let Some(r) = &mut self.replica {
            r.handle_timeout(now_ms);
            self.drain();
        }
    }

    /// Output: when to call [`Face::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<u64> {
        self.replica.as_ref().and_then(Replica::poll_timeout)
    }

    /// Output: durable changes to persist before writing the lines the same input produced.
    pub fn take_durable(&mut self) -> Option<DurableDelta> {
        self.replica.as_mut().and_then(Replica::take_durable)
    }

    /// Output: the next line for stdout, without its newline.
    pub fn poll_line(&mut self) -> Option<String> {
        let src = self.me.as_ref().map_or("", |(name, _)| name.as_str());
        let line = match self.out.pop_front()? {
            Output::Client { dest, reply } => {
                json!({"src": src, "dest": dest, "body": reply.to_json()})
            }
            Output::Peer { to, payload } => json!({
                "src": src,
                "dest": format!("n{}", to.0),
                "body": {"type": "repl", "data": B64.encode(&payload)},
            }),
        };
        Some(line.to_string())
    }

    /// Output: the next message, unprinted; the alternative to [`Face::poll_line`] for shells
    /// that carry messages in process. Its sender is [`Face::name`].
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// The node's name (`nK`) once `init` has named it.
    pub fn name(&self) -> Option<&str> {
        self.me.as_ref().map(|(name, _)| name.as_str())
    }

    /// Output: the next diagnostic for stderr.
    pub fn poll_log(&mut self) -> Option<String> {
        self.log.pop_front()
    }

    fn note(&mut self, text: String) {
        if self.log.len() < LOG_MAX {
            self.log.push_back(text);
        } else {
            self.stats.logs_dropped += 1;
        }
    }

    fn malformed(&mut self, what: String) {
        self.stats.malformed += 1;
        self.note(format!("dropped input: {what}"));
    }

    fn reply(&mut self, dest: String, msg_id: Option<u64>, kind: ReplyKind) {
        self.out.push_back(Output::Client {
            dest,
            reply: ClientReply {
                in_reply_to: msg_id,
                kind,
                token: None,
            },
        });
    }

    fn error(&mut self, dest: String, msg_id: Option<u64>, code: u32, text: String) {
        self.reply(dest, msg_id, ReplyKind::Error { code, text });
    }

    fn init(
        &mut self,
        now_ms: u64,
        src: &str,
        msg_id: Option<u64>,
        node_id: &str,
        node_ids: &[String],
    ) {
        let src = src.to_string();
        if self.replica.is_some() {
            // A second init is a harness bug or a replay; the first one stands.
            return self.error(
                src,
                msg_id,
                error_code::MALFORMED_REQUEST,
                "already initialised".into(),
            );
        }
        let ids: Option<Vec<ReplicaId>> = node_ids.iter().map(|n| parse_node(n)).collect();
        let me = parse_node(node_id).map(|me| (node_id.to_string(), me));
        let (Some(ids), Some((name, me))) = (ids, me) else {
            self.stats.refused += 1;
            return self.error(
                src,
                msg_id,
                error_code::MALFORMED_REQUEST,
                "init needs node_id and node_ids named nK".into(),
            );
        };
        let per = u64::from(self.config.replicas_per_region.max(1));
        let replicas = ids
            .iter()
            .map(|&id| {
                // Region ids are small by construction: node count / replicas per region.
                let region = u32::try_from(id.0 / per).unwrap_or(u32::MAX);
                (id, RegionId(region))
            })
            .collect();
        let mut config = Config::new(me, replicas);
        config.topology = self.config.topology;
        config.track_durable = self.config.track_durable;
        config.bug = self.config.bug;
        config.seed = self.config.seed;
        config.residency = self.config.residency.clone();
        if let Some(max) = self.config.oplog_entries_max {
            config.oplog_entries_max = max;
        }
        (self.config.tune)(&mut config);
        let replica = match self.recovered.take() {
            Some(durable) => Replica::recover(config, durable, now_ms).map_err(|e| e.to_string()),
            None => Replica::new(config, now_ms).map_err(|e| e.to_string()),
        };
        match replica {
            Ok(r) => {
                self.me = Some((name, me));
                self.replica = Some(r);
                self.reply(src, msg_id, ReplyKind::InitOk);
            }
            Err(e) => {
                self.stats.refused += 1;
                self.note(format!("init refused: {e}"));
                self.error(
                    src,
                    msg_id,
                    error_code::MALFORMED_REQUEST,
                    format!("cannot start the replica: {e}"),
                );
            }
        }
    }
}

/// `nK` → replica `K`.
pub fn parse_node(name: &str) -> Option<ReplicaId> {
    let digits = name.strip_prefix('n')?;
    if digits.is_empty() || (digits.len() > 1 && digits.starts_with('0')) {
        return None;
    }
    digits.parse().ok().map(ReplicaId)
}

/// The start of a line, for a log message.
fn clip(line: &str) -> &str {
    let mut end = line.len().min(200);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    &line[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init(face: &mut Face, me: &str, n: usize) {
        let ids: Vec<String> = (0..n).map(|i| format!("n{i}")).collect();
        face.handle_line(
            0,
            &json!({"src": "c-init", "dest": me, "body": {"type": "init", "msg_id": 1, "node_id": me, "node_ids": ids}}).to_string(),
        );
        let line = face.poll_line().expect("init_ok");
        assert!(line.contains("init_ok"), "{line}");
    }

    fn request(face: &mut Face, now: u64, body: Json) -> Vec<Json> {
        face.handle_line(
            now,
            &json!({"src": "c1", "dest": "n0", "body": body}).to_string(),
        );
        std::iter::from_fn(|| face.poll_line())
            .map(|l| serde_json::from_str(&l).expect("the face writes JSON"))
            .collect()
    }

    #[test]
    fn a_single_node_g_counter_answers_adds_and_reads() {
        let mut face = Face::new(FaceConfig::new(Workload::GCounter), None);
        init(&mut face, "n0", 1);
        let out = request(
            &mut face,
            1,
            json!({"type": "add", "msg_id": 2, "delta": 5}),
        );
        assert_eq!(out[0]["body"], json!({"type": "add_ok", "in_reply_to": 2}));
        let out = request(&mut face, 2, json!({"type": "read", "msg_id": 3}));
        assert_eq!(
            out[0]["body"],
            json!({"type": "read_ok", "value": 5, "in_reply_to": 3})
        );
    }

    #[test]
    fn an_add_past_the_64_bit_range_is_a_definite_error_with_no_effect() {
        for workload in [
            Workload::PnCounter,
            Workload::GCounter,
            Workload::BoundedCounter,
        ] {
            let mut face = Face::new(FaceConfig::new(workload), None);
            init(&mut face, "n0", 1);
            let add = |face: &mut Face, id: u64, delta: i64| {
                let out = request(
                    face,
                    1,
                    json!({"type": "add", "msg_id": id, "delta": delta}),
                );
                out[0]["body"].clone()
            };
            assert_eq!(
                add(&mut face, 2, i64::MAX)["type"],
                "add_ok",
                "{workload:?}"
            );
            let refused = add(&mut face, 3, 1);
            // Abort (14) is definite: the add did not happen, so a client may retry it.
            assert_eq!(refused["code"], 14, "{workload:?}: {refused}");
            let out = request(&mut face, 2, json!({"type": "read", "msg_id": 4}));
            assert_eq!(out[0]["body"]["value"], i64::MAX, "{workload:?}");
            // Nothing was logged: a replica that applied the add would have a second entry.
            let frontier = face.replica().map(|r| r.frontier().get(ReplicaId(0)));
            assert_eq!(frontier, Some(1), "{workload:?}");
        }
    }

    #[test]
    fn bad_requests_get_error_12_and_never_reach_the_replica() {
        let mut face = Face::new(FaceConfig::new(Workload::GCounter), None);
        init(&mut face, "n0", 1);
        let out = request(
            &mut face,
            1,
            json!({"type": "add", "msg_id": 2, "delta": "five"}),
        );
        assert_eq!(out[0]["body"]["code"], 12);
        let out = request(
            &mut face,
            1,
            json!({"type": "add", "msg_id": 3, "delta": -1}),
        );
        assert_eq!(
            out[0]["body"]["code"], 12,
            "a g-counter refuses negative deltas"
        );
        face.handle_line(1, "not json");
        face.handle_line(
            1,
            r#"{"src": "n1", "dest": "n0", "body": {"type": "repl", "data": "!!"}}"#,
        );
        assert_eq!(face.stats().malformed, 2);
        let out = request(&mut face, 2, json!({"type": "read", "msg_id": 4}));
        assert_eq!(out[0]["body"]["value"], 0);
    }

    #[test]
    fn the_typed_path_answers_exactly_as_the_text_path() {
        // Two faces of node n0 in a two-node cluster: one fed lines, one fed parsed messages.
        let mut text = Face::new(FaceConfig::new(Workload::GCounter), None);
        let mut typed = Face::new(FaceConfig::new(Workload::GCounter), None);
        init(&mut text, "n0", 2);
        init(&mut typed, "n0", 2);
        let bodies = [
            json!({"type": "add", "msg_id": 2, "delta": 5}),
            json!({"type": "add", "msg_id": 3, "delta": "five"}),
            json!({"type": "nonsense", "msg_id": 4}),
            json!({"type": "read", "msg_id": 5}),
        ];
        for body in bodies {
            let line = json!({"src": "c1", "dest": "n0", "body": body}).to_string();
            text.handle_line(1, &line);
            let map = body.as_object().cloned().unwrap_or_default();
            let kind = map.get("type").and_then(Json::as_str).unwrap_or_default();
            // What parses goes the typed way; a refusal is only ever made from the object.
            match ClientRequest::from_body(kind, &map) {
                Ok(request) => typed.handle_request(1, "c1", request),
                Err(_) => typed.handle_message(1, "c1", &map),
            }
        }
        let mut now = 1;
        for _ in 0..100 {
            let (Some(a), Some(b)) = (text.poll_timeout(), typed.poll_timeout()) else {
                break;
            };
            assert_eq!(a, b, "the two faces' timers differ");
            now = now.max(a);
            text.handle_timeout(now);
            typed.handle_timeout(now);
        }
        let printed: Vec<String> = std::iter::from_fn(|| text.poll_line()).collect();
        let outputs: Vec<Output> = std::iter::from_fn(|| typed.poll_output()).collect();
        assert_eq!(printed.len(), outputs.len(), "{printed:?}\n{outputs:?}");
        assert!(
            outputs
                .iter()
                .any(|o| matches!(o, Output::Peer { to, .. } if *to == ReplicaId(1))),
            "the add never replicated: {outputs:?}"
        );
        // Each output, printed, is the line the text path wrote; peer payloads are the bytes
        // of the line's base64.
        for (line, output) in printed.iter().zip(outputs) {
            let parsed: Json = serde_json::from_str(line).expect("the face writes JSON");
            assert_eq!(parsed["src"], "n0");
            match output {
                Output::Client { dest, reply } => {
                    assert_eq!(parsed["dest"], dest);
                    assert_eq!(parsed["body"], reply.to_json());
                }
                Output::Peer { to, payload } => {
                    assert_eq!(parsed["dest"], format!("n{}", to.0));
                    let data = parsed["body"]["data"].as_str().unwrap_or_default();
                    assert_eq!(B64.decode(data).ok(), Some(payload));
                }
            }
        }
        // A neighbour fed the bytes reads what one fed the line reads.
        let mut by_line = Face::new(FaceConfig::new(Workload::GCounter), None);
        let mut by_bytes = Face::new(FaceConfig::new(Workload::GCounter), None);
        init(&mut by_line, "n1", 2);
        init(&mut by_bytes, "n1", 2);
        for line in &printed {
            let parsed: Json = serde_json::from_str(line).expect("the face writes JSON");
            if parsed["dest"] == "n1" {
                by_line.handle_line(now, line);
                let data = parsed["body"]["data"].as_str().unwrap_or_default();
                let bytes = B64.decode(data).expect("base64 the face wrote");
                by_bytes.handle_peer(now, ReplicaId(0), &bytes);
            }
        }
        let read = json!({"type": "read", "msg_id": 9});
        let a = request(&mut by_line, now, read.clone());
        let typed_read = ClientRequest {
            msg_id: Some(9),
            op: ClientOp::Read { key: None },
            consistency: None,
            token: None,
        };
        by_bytes.handle_request(now, "c1", typed_read);
        let b: Vec<Json> = std::iter::from_fn(|| by_bytes.poll_line())
            .map(|l| serde_json::from_str(&l).expect("the face writes JSON"))
            .filter(|m: &Json| m["dest"] == "c1")
            .collect();
        let a: Vec<&Json> = a.iter().filter(|m| m["dest"] == "c1").collect();
        assert_eq!(a[0]["body"]["value"], 5, "{a:?}");
        assert_eq!(a[0], &b[0]);
        assert_eq!(by_line.stats(), by_bytes.stats());
    }

    #[test]
    fn node_names_parse_strictly() {
        assert_eq!(parse_node("n0"), Some(ReplicaId(0)));
        assert_eq!(parse_node("n12"), Some(ReplicaId(12)));
        for bad in ["n", "c1", "n01", "n-1", "nx"] {
            assert_eq!(parse_node(bad), None, "{bad}");
        }
    }

    #[test]
    fn lin_kv_serves_cas_by_consensus_and_reports_missing_keys() {
        let mut face = Face::new(FaceConfig::new(Workload::LinKv), None);
        init(&mut face, "n0", 1);
        let body = |out: &[Json]| out[0]["body"].clone();
        let out = request(&mut face, 1, json!({"type": "read", "msg_id": 1, "key": 1}));
        assert_eq!(body(&out)["code"], 20, "{out:?}");
        // A compare-and-set of an absent key fails definitely, as Maelstrom's lin-kv says it.
        let cas =
            |id, from, to| json!({"type": "cas", "msg_id": id, "key": 1, "from": from, "to": to});
        let out = request(&mut face, 1, cas(2, 0, 1));
        assert_eq!(body(&out)["code"], 20, "{out:?}");
        let out = request(
            &mut face,
            1,
            json!({"type": "write", "msg_id": 3, "key": 1, "value": 0}),
        );
        assert_eq!(body(&out)["type"], "write_ok", "{out:?}");
        let out = request(&mut face, 1, cas(4, 0, 1));
        assert_eq!(body(&out)["type"], "cas_ok", "{out:?}");
        let out = request(&mut face, 1, cas(5, 0, 2));
        assert_eq!(body(&out)["code"], 22, "{out:?}");
        let out = request(&mut face, 1, json!({"type": "read", "msg_id": 6, "key": 1}));
        assert_eq!(body(&out)["value"], 1, "{out:?}");
        // A cas without its fields is malformed, not a precondition failure.
        let out = request(&mut face, 1, json!({"type": "cas", "msg_id": 7, "key": 1}));
        assert_eq!(body(&out)["code"], 12, "{out:?}");
    }
}

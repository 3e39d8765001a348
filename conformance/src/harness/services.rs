//! Maelstrom's built-in services as pure, deterministic state machines, so that unchanged
//! Gossip-Glomers-style nodes run against converge's harness.
//!
//! The harness hands every message whose `dest` names a service ([`Services::is_service`]) to
//! [`Services::handle`] and delivers the returned body back to the sender, with `src` and `dest`
//! swapped ([`Services::handle_message`] does the wrapping for a whole envelope).
//!
//! # The services
//! | service | requests | consistency |
//! |---|---|---|
//! | `lin-kv` | `read`, `write`, `cas` | linearizable: one current map |
//! | `seq-kv` | `read`, `write`, `cas` | sequential: reads lag, never behind what the client saw |
//! | `lww-kv` | `read`, `write`, `cas` | eventual: replicas merge by last-write-wins at random |
//! | `lin-tso` | `ts` → `ts_ok {ts}` | linearizable: `0, 1, 2, …` |
//!
//! The key-value operations are Maelstrom's: `read {key}` → `read_ok {value}`;
//! `write {key, value}` → `write_ok`; `cas {key, from, to, create_if_not_exists?}` → `cas_ok`.
//! Keys and values are arbitrary JSON; two keys (or a `cas`'s `from` and the current value) are
//! equal when their canonical serializations — object members sorted by name — are equal.
//!
//! Errors are `{"type": "error", "in_reply_to", "code", "text"}` with Maelstrom's codes
//! ([`error_code`]): 20 when the key does not exist, 22 when a `cas` finds another value, 10 for a
//! request type the service does not offer, 12 for a body that is not a well-formed request, and 1
//! for a `dest` that names no service.
//!
//! # Invariants
//! - Determinism: replies and state depend only on the arguments of the calls made so far,
//!   including what the caller's [`Dice`] rolled. Nothing here reads the OS clock or OS
//!   randomness, and every map is ordered, so no iteration order leaks in.
//! - Totality: no body, however malformed, makes [`Services::handle`] panic, and a request
//!   answered with error 1, 10 or 12 changes no service state (only the request counters).
//! - Replies echo the request's `msg_id` as `in_reply_to` whenever it is a non-negative integer.
//! - `seq-kv`: every write (a `write`, or a `cas` that succeeds) is one step of a single global
//!   history. Writes and `cas` act on the newest state and move their client's *view* to it; a
//!   read returns the state as of a version between its client's view and the newest, picked by
//!   the dice, and moves the view there. Views never move back, so a client never reads an older
//!   state than one it saw, and always reads its own writes. Staleness is bounded by
//!   [`ServiceConfig::seq_kv_window`] versions, like Maelstrom's ring buffer of past states.
//! - `lww-kv`: every write is stamped `(time, counter)`, where `time` is the larger of the
//!   caller's `now_ms` and the replica's clock, and `counter` is unique and grows with every
//!   write, so a replica's own newest write always wins there and stamps never tie. On each
//!   request, with probability [`ServiceConfig::lww_sync_percent`], one random replica merges
//!   another's state into its own by keeping the entry with the larger stamp per key. Merges are
//!   a join, so replicas that keep merging agree on the entry with the largest stamp of every key.
//! - `lin-tso`: the `n`-th `ts` request (from 0) is answered with `n`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The caller's source of randomness: every choice a service makes goes through it, so a seeded
/// dice replays a run exactly.
///
/// Any `FnMut(u64) -> u64` is a dice.
pub trait Dice {
    /// A number in `0..n`; `n` is at least 2. A result out of range is folded into range, so a
    /// careless dice cannot make a service misbehave.
    fn below(&mut self, n: u64) -> u64;
}

impl<F: FnMut(u64) -> u64> Dice for F {
    fn below(&mut self, n: u64) -> u64 {
        self(n)
    }
}

/// The harness's own seeded stream is a dice, so the run loop hands it over as it is.
impl Dice for crate::harness::rng::Dice {
    fn below(&mut self, n: u64) -> u64 {
        crate::harness::rng::Dice::below(self, n)
    }
}

/// Rolls `0..n`. A choice of one is no choice, so the dice is not consulted for it; the dice's
/// answer is folded into range rather than trusted.
fn roll(dice: &mut dyn Dice, n: u64) -> u64 {
    if n <= 1 { 0 } else { dice.below(n) % n }
}

/// Picks an index into a collection of `len` elements.
fn pick(dice: &mut dyn Dice, len: usize) -> usize {
    let n = u64::try_from(len).unwrap_or(u64::MAX);
    // The roll is below `n`, which came from a `usize`, so it converts back.
    usize::try_from(roll(dice, n)).unwrap_or(0)
}

/// Maelstrom's error codes, as far as the services use them.
pub mod error_code {
    /// The `dest` names no service.
    pub const NODE_NOT_FOUND: u64 = 1;
    /// The service does not offer this request type.
    pub const NOT_SUPPORTED: u64 = 10;
    /// The body is not a well-formed request.
    pub const MALFORMED_REQUEST: u64 = 12;
    /// The key has never been written.
    pub const KEY_DOES_NOT_EXIST: u64 = 20;
    /// A `cas` found another value than its `from`.
    pub const PRECONDITION_FAILED: u64 = 22;
}

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

    fn index(self) -> usize {
        match self {
            Service::SeqKv => 0,
            Service::LinKv => 1,
            Service::LwwKv => 2,
            Service::LinTso => 3,
        }
    }
}

/// What one service has answered, for reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ServiceStats {
    /// Requests addressed to the service.
    pub requests: u64,
    /// Requests answered with an error of any code.
    pub errors: u64,
    /// Reads whose answer differs from what the newest state would have given: a past state for
    /// `seq-kv`, a replica that had not heard of the newest write for `lww-kv`. Always 0 for the
    /// linearizable services.
    pub stale_reads: u64,
}

/// How pathological the relaxed services are.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ServiceConfig {
    /// How many versions behind the newest a `seq-kv` read may be (besides never being older
    /// than its client's view). 0 makes `seq-kv` linearizable.
    pub seq_kv_window: u64,
    /// Replicas of `lww-kv`; at least one is kept. One makes `lww-kv` linearizable.
    pub lww_replicas: usize,
    /// Chance, in percent, that an `lww-kv` request first merges one random replica into another.
    pub lww_sync_percent: u64,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            seq_kv_window: 32,
            lww_replicas: 3,
            lww_sync_percent: 50,
        }
    }
}

/// Maelstrom's services, all at once. See the [module documentation](self) for their semantics.
#[derive(Clone, Debug, PartialEq)]
pub struct Services {
    config: ServiceConfig,
    lin: BTreeMap<String, Value>,
    seq: SeqKv,
    lww: LwwKv,
    /// The next timestamp `lin-tso` hands out.
    next_ts: u64,
    /// Indexed by [`Service::index`].
    stats: [ServiceStats; 4],
}

impl Default for Services {
    fn default() -> Self {
        Services::new()
    }
}

impl Services {
    /// Fresh services with the default [`ServiceConfig`]: every store empty, `lin-tso` at 0.
    pub fn new() -> Self {
        Services::with_config(ServiceConfig::default())
    }

    /// Fresh services with `config`.
    pub fn with_config(mut config: ServiceConfig) -> Self {
        config.lww_replicas = config.lww_replicas.max(1);
        Services {
            lin: BTreeMap::new(),
            seq: SeqKv::default(),
            lww: LwwKv {
                replicas: vec![Replica::default(); config.lww_replicas],
                counter: 0,
            },
            next_ts: 0,
            stats: [ServiceStats::default(); 4],
            config,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    /// Whether `dest` is the node id of a service, i.e. whether the harness should route a message
    /// to it through [`Services::handle`].
    pub fn is_service(dest: &str) -> bool {
        Service::from_name(dest).is_some()
    }

    /// Answers the request `body` that node `src` sent to service `dest`, returning the reply
    /// body. `now_ms` is the harness's clock (only `lww-kv` stamps writes with it) and `dice`
    /// makes every random choice. Never panics.
    pub fn handle(
        &mut self,
        src: &str,
        dest: &str,
        body: &Value,
        now_ms: u64,
        dice: &mut dyn Dice,
    ) -> Value {
        let reply = match body.as_object() {
            Some(body) => self.handle_body(src, dest, body, now_ms, dice),
            None => {
                let failure = Failure::malformed("a request body must be a JSON object".into());
                if let Some(service) = Service::from_name(dest) {
                    self.count(service, Err(failure))
                } else {
                    Failure::no_such_service(dest).into_body()
                }
            }
        };
        Value::Object(reply)
    }

    /// [`Services::handle`] for a body that is already a JSON object, as the harness's messages
    /// hold it.
    pub fn handle_body(
        &mut self,
        src: &str,
        dest: &str,
        body: &Map<String, Value>,
        now_ms: u64,
        dice: &mut dyn Dice,
    ) -> Map<String, Value> {
        let Some(service) = Service::from_name(dest) else {
            let in_reply_to = body.get("msg_id").and_then(Value::as_u64);
            return with_reply_to(Failure::no_such_service(dest).into_body(), in_reply_to);
        };
        let (in_reply_to, outcome) = match parse(service, body) {
            Ok((in_reply_to, request)) => {
                (in_reply_to, self.serve(service, src, request, now_ms, dice))
            }
            Err((in_reply_to, failure)) => (in_reply_to, Err(failure)),
        };
        with_reply_to(self.count(service, outcome), in_reply_to)
    }

    /// Counts a request to `service` and turns its outcome into a reply body.
    fn count(
        &mut self,
        service: Service,
        outcome: Result<Map<String, Value>, Failure>,
    ) -> Map<String, Value> {
        let stats = &mut self.stats[service.index()];
        stats.requests += 1;
        outcome.unwrap_or_else(|failure| {
            stats.errors += 1;
            failure.into_body()
        })
    }

    /// Answers a whole message `{"src", "dest", "body"}` addressed to a service, returning the
    /// whole reply message. `None` when the message has no string `src` and `dest` or `dest` names
    /// no service: it is not the services' to answer.
    pub fn handle_message(
        &mut self,
        message: &Value,
        now_ms: u64,
        dice: &mut dyn Dice,
    ) -> Option<Value> {
        let src = message.get("src")?.as_str()?;
        let dest = message.get("dest")?.as_str()?;
        if !Services::is_service(dest) {
            return None;
        }
        let body = message.get("body").unwrap_or(&Value::Null);
        let reply = self.handle(src, dest, body, now_ms, dice);
        let mut envelope = Map::new();
        envelope.insert("src".into(), dest.into());
        envelope.insert("dest".into(), src.into());
        envelope.insert("body".into(), reply);
        Some(Value::Object(envelope))
    }

    /// Requests, errors and stale reads per service, for every service.
    pub fn stats(&self) -> BTreeMap<Service, ServiceStats> {
        Service::ALL
            .into_iter()
            .map(|s| (s, self.stats[s.index()]))
            .collect()
    }

    /// Merges every `lww-kv` replica with every other, as a long quiet spell of gossip would, so
    /// that all replicas agree. A harness calls it before final reads that must see every write.
    pub fn settle(&mut self) {
        let n = self.lww.replicas.len();
        // Gathering into replica 0 and then spreading from it makes every replica the join of all.
        for i in 1..n {
            self.lww.sync(i, 0);
        }
        for i in 1..n {
            self.lww.sync(0, i);
        }
    }

    fn serve(
        &mut self,
        service: Service,
        src: &str,
        request: Request,
        now_ms: u64,
        dice: &mut dyn Dice,
    ) -> Result<Map<String, Value>, Failure> {
        match service {
            Service::LinKv => self.serve_lin(request),
            Service::SeqKv => self.serve_seq(src, request, dice),
            Service::LwwKv => self.serve_lww(request, now_ms, dice),
            Service::LinTso => {
                let ts = self.next_ts;
                self.next_ts += 1;
                let mut reply = reply("ts_ok");
                reply.insert("ts".into(), ts.into());
                Ok(reply)
            }
        }
    }

    fn serve_lin(&mut self, request: Request) -> Result<Map<String, Value>, Failure> {
        match request {
            Request::Read { key } => match self.lin.get(&key) {
                Some(value) => Ok(read_ok(value.clone())),
                None => Err(Failure::missing()),
            },
            Request::Write { key, value } => {
                self.lin.insert(key, value);
                Ok(reply("write_ok"))
            }
            Request::Cas {
                key,
                from,
                to,
                create,
            } => {
                check_cas(self.lin.get(&key), &from, create)?;
                self.lin.insert(key, to);
                Ok(reply("cas_ok"))
            }
            Request::Ts => Err(Failure::not_supported("ts")),
        }
    }

    fn serve_seq(
        &mut self,
        src: &str,
        request: Request,
        dice: &mut dyn Dice,
    ) -> Result<Map<String, Value>, Failure> {
        let window = self.config.seq_kv_window;
        match request {
            Request::Read { key } => {
                let (value, stale) = self.seq.read(src, &key, window, dice);
                self.stats[Service::SeqKv.index()].stale_reads += u64::from(stale);
                value.map(read_ok).ok_or_else(Failure::missing)
            }
            Request::Write { key, value } => {
                self.seq.write(src, key, value, window);
                Ok(reply("write_ok"))
            }
            Request::Cas {
                key,
                from,
                to,
                create,
            } => {
                // A cas acts on the newest state whether it succeeds or not, so its client's view
                // moves there either way: a failed cas has still observed the newest value.
                if let Err(failure) = check_cas(self.seq.current(&key), &from, create) {
                    self.seq.catch_up(src);
                    return Err(failure);
                }
                self.seq.write(src, key, to, window);
                Ok(reply("cas_ok"))
            }
            Request::Ts => Err(Failure::not_supported("ts")),
        }
    }

    fn serve_lww(
        &mut self,
        request: Request,
        now_ms: u64,
        dice: &mut dyn Dice,
    ) -> Result<Map<String, Value>, Failure> {
        let n = self.lww.replicas.len();
        if n >= 2 && roll(dice, 100) < self.config.lww_sync_percent {
            let from = pick(dice, n);
            // Adding 1..n modulo n picks any replica but `from`, so no sync is wasted on itself.
            let to = (from + 1 + pick(dice, n - 1)) % n;
            self.lww.sync(from, to);
        }
        let at = pick(dice, n);
        match request {
            Request::Read { key } => {
                let stale = self.lww.is_stale(at, &key);
                self.stats[Service::LwwKv.index()].stale_reads += u64::from(stale);
                let value = self.lww.get(at, &key).cloned();
                value.map(read_ok).ok_or_else(Failure::missing)
            }
            Request::Write { key, value } => {
                self.lww.write(at, key, value, now_ms);
                Ok(reply("write_ok"))
            }
            Request::Cas {
                key,
                from,
                to,
                create,
            } => {
                check_cas(self.lww.get(at, &key), &from, create)?;
                self.lww.write(at, key, to, now_ms);
                Ok(reply("cas_ok"))
            }
            Request::Ts => Err(Failure::not_supported("ts")),
        }
    }
}

/// A request whose body has been validated. Keys are already canonical.
enum Request {
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
struct Failure {
    code: u64,
    text: String,
}

impl Failure {
    fn new(code: u64, text: String) -> Self {
        Failure { code, text }
    }

    fn malformed(text: String) -> Self {
        Failure::new(error_code::MALFORMED_REQUEST, text)
    }

    fn not_supported(kind: &str) -> Self {
        Failure::new(
            error_code::NOT_SUPPORTED,
            format!("this service does not support {}", Value::from(kind)),
        )
    }

    fn missing() -> Self {
        Failure::new(error_code::KEY_DOES_NOT_EXIST, "key does not exist".into())
    }

    fn no_such_service(dest: &str) -> Self {
        Failure::new(
            error_code::NODE_NOT_FOUND,
            format!("no service is named {}", Value::from(dest)),
        )
    }

    fn into_body(self) -> Map<String, Value> {
        let mut body = reply("error");
        body.insert("code".into(), self.code.into());
        body.insert("text".into(), self.text.into());
        body
    }
}

/// `body` answering the request numbered `in_reply_to`, if it was numbered.
fn with_reply_to(mut body: Map<String, Value>, in_reply_to: Option<u64>) -> Map<String, Value> {
    if let Some(id) = in_reply_to {
        body.insert("in_reply_to".into(), id.into());
    }
    body
}

fn reply(kind: &str) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("type".into(), kind.into());
    body
}

fn read_ok(value: Value) -> Map<String, Value> {
    let mut body = reply("read_ok");
    body.insert("value".into(), value);
    body
}

/// Validates `body` as a request to `service`: its `msg_id` (if any) and the request. The error
/// side carries the `msg_id` too when it was valid, so that the error reply reaches its caller;
/// an invalid `msg_id` is dropped, as it could not be matched to a request anyway.
fn parse(
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
fn check_cas(current: Option<&Value>, from: &Value, create: bool) -> Result<(), Failure> {
    match current {
        None if create => Ok(()),
        None => Err(Failure::missing()),
        Some(value) if canonical(value) == canonical(from) => Ok(()),
        Some(value) => Err(Failure::new(
            error_code::PRECONDITION_FAILED,
            format!("expected {from}, but had {value}"),
        )),
    }
}

/// `value`'s canonical serialization: compact JSON with object members sorted by name, so that
/// JSON-equal values serialize alike whatever order their members came in. serde_json keeps
/// insertion order when any crate in the build enables its `preserve_order` feature, so its own
/// serialization is not canonical on its own.
fn canonical(value: &Value) -> String {
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

/// `seq-kv`'s state: one global history of writes, kept per key, and each client's view.
#[derive(Clone, Debug, Default, PartialEq)]
struct SeqKv {
    /// Writes so far: version `v` is the state after the first `v` writes.
    latest: u64,
    /// Per key, its writes as `(version, value)` in ascending version order; the key's value at
    /// version `v` is the last entry at or before `v`. Entries superseded before every version a
    /// read may still pick are dropped.
    history: BTreeMap<String, Vec<(u64, Value)>>,
    /// Per client, the version it last observed. Never above `latest`, never decreasing.
    views: BTreeMap<String, u64>,
}

impl SeqKv {
    /// The key's value in the newest state.
    fn current(&self, key: &str) -> Option<&Value> {
        self.history.get(key).and_then(|h| h.last()).map(|(_, v)| v)
    }

    /// Reads `key` for `node` at a version picked by `dice` between the node's view (or the
    /// oldest version the window keeps) and the newest, and moves the node's view there. Also
    /// says whether the newest state would have answered differently.
    fn read(
        &mut self,
        node: &str,
        key: &str,
        window: u64,
        dice: &mut dyn Dice,
    ) -> (Option<Value>, bool) {
        let view = self.views.get(node).copied().unwrap_or(0);
        let floor = view.max(self.latest.saturating_sub(window));
        let span = self.latest.saturating_sub(floor);
        let at = floor + roll(dice, span.saturating_add(1));
        self.views.insert(node.to_owned(), at);
        let history = self.history.get(key).map_or(&[][..], Vec::as_slice);
        let seen = history.partition_point(|(v, _)| *v <= at);
        let value = seen
            .checked_sub(1)
            .and_then(|i| history.get(i))
            .map(|(_, v)| v.clone());
        (value, seen != history.len())
    }

    /// Writes `value` to `key` in a new newest state, which `node` then has seen.
    fn write(&mut self, node: &str, key: String, value: Value, window: u64) {
        self.latest += 1;
        let floor = self.latest.saturating_sub(window);
        let history = self.history.entry(key).or_default();
        history.push((self.latest, value));
        // No read picks a version below `floor` any more, and the last entry at or before it
        // answers for all versions from `floor` up to the next entry; the ones before it are dead.
        let dead = history
            .partition_point(|(v, _)| *v <= floor)
            .saturating_sub(1);
        history.drain(..dead);
        self.views.insert(node.to_owned(), self.latest);
    }

    /// Moves `node`'s view to the newest state, which it has just observed.
    fn catch_up(&mut self, node: &str) {
        self.views.insert(node.to_owned(), self.latest);
    }
}

/// A value as an `lww-kv` replica holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamped {
    time: u64,
    counter: u64,
    value: Value,
}

impl Stamped {
    fn stamp(&self) -> (u64, u64) {
        (self.time, self.counter)
    }
}

/// One `lww-kv` replica.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Replica {
    /// The largest write time this replica has seen, from its own writes or merged ones.
    clock: u64,
    map: BTreeMap<String, Stamped>,
}

impl Replica {
    /// `self := self ⊔ other`: per key, the entry with the larger stamp.
    fn absorb(&mut self, other: &Replica) {
        self.clock = self.clock.max(other.clock);
        for (key, theirs) in &other.map {
            let newer = self
                .map
                .get(key)
                .is_none_or(|ours| ours.stamp() < theirs.stamp());
            if newer {
                self.map.insert(key.clone(), theirs.clone());
            }
        }
    }
}

/// `lww-kv`'s state.
#[derive(Clone, Debug, PartialEq)]
struct LwwKv {
    /// Never empty.
    replicas: Vec<Replica>,
    /// Writes so far; the last write's stamp carries it, so stamps never tie.
    counter: u64,
}

impl LwwKv {
    fn get(&self, at: usize, key: &str) -> Option<&Value> {
        self.replicas
            .get(at)
            .and_then(|r| r.map.get(key))
            .map(|e| &e.value)
    }

    /// Whether replica `at` answers for `key` otherwise than the newest write any replica holds.
    fn is_stale(&self, at: usize, key: &str) -> bool {
        let newest = self
            .replicas
            .iter()
            .filter_map(|r| r.map.get(key))
            .map(Stamped::stamp)
            .max();
        let here = self
            .replicas
            .get(at)
            .and_then(|r| r.map.get(key))
            .map(Stamped::stamp);
        here != newest
    }

    fn write(&mut self, at: usize, key: String, value: Value, now_ms: u64) {
        self.counter += 1;
        let counter = self.counter;
        if let Some(replica) = self.replicas.get_mut(at) {
            // The replica's clock never goes back, even when the caller's does, and the counter is
            // larger than any before: the write beats everything this replica holds.
            replica.clock = replica.clock.max(now_ms);
            let time = replica.clock;
            replica.map.insert(
                key,
                Stamped {
                    time,
                    counter,
                    value,
                },
            );
        }
    }

    /// Merges replica `from` into replica `to`.
    fn sync(&mut self, from: usize, to: usize) {
        if from == to {
            return;
        }
        let Some(source) = self.replicas.get_mut(from).map(std::mem::take) else {
            return;
        };
        if let Some(target) = self.replicas.get_mut(to) {
            target.absorb(&source);
        }
        if let Some(slot) = self.replicas.get_mut(from) {
            *slot = source;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// A dice that always picks the last option: the newest `seq-kv` state, no `lww-kv` sync and
    /// always the last `lww-kv` replica. Every service is linearizable under it.
    fn top(n: u64) -> u64 {
        n.saturating_sub(1)
    }

    /// A dice that always picks the first option: the stalest `seq-kv` state allowed.
    fn bottom(_: u64) -> u64 {
        0
    }

    /// A dice that plays back a script, cycling; an empty script always rolls 0.
    struct Script {
        rolls: Vec<u64>,
        at: usize,
    }

    impl Dice for Script {
        fn below(&mut self, n: u64) -> u64 {
            let slot = self.at % self.rolls.len().max(1);
            self.at += 1;
            self.rolls.get(slot).copied().unwrap_or(0) % n
        }
    }

    /// A seeded splitmix64 generator: a fair dice for runs that need many rolls.
    struct SplitMix(u64);

    impl Dice for SplitMix {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)) % n
        }
    }

    const KV: [&str; 3] = ["lin-kv", "seq-kv", "lww-kv"];

    /// The code of an error reply, or `None` for any other reply.
    fn code(reply: &Value) -> Option<u64> {
        (reply["type"] == "error").then(|| reply["code"].as_u64().unwrap_or(u64::MAX))
    }

    /// Everything but the counters, which every request changes.
    fn state(s: &Services) -> (BTreeMap<String, Value>, SeqKv, LwwKv, u64) {
        (s.lin.clone(), s.seq.clone(), s.lww.clone(), s.next_ts)
    }

    #[test]
    fn every_kv_service_reads_writes_and_compares_and_sets() {
        use error_code::{KEY_DOES_NOT_EXIST, PRECONDITION_FAILED};
        for dest in KV {
            let mut s = Services::new();
            let mut req = |body: Value| s.handle("n1", dest, &body, 0, &mut top);

            let r = req(json!({"type": "read", "msg_id": 1, "key": "x"}));
            assert_eq!(code(&r), Some(KEY_DOES_NOT_EXIST), "{dest}: {r}");
            assert_eq!(r["in_reply_to"], 1);
            assert!(r["text"].is_string());
            let r = req(json!({"type": "write", "msg_id": 2, "key": "x", "value": 1}));
            assert_eq!(r, json!({"type": "write_ok", "in_reply_to": 2}), "{dest}");
            let r = req(json!({"type": "read", "msg_id": 3, "key": "x"}));
            assert_eq!(r, json!({"type": "read_ok", "in_reply_to": 3, "value": 1}));

            let r = req(json!({"type": "cas", "msg_id": 4, "key": "x", "from": 1, "to": 2}));
            assert_eq!(r, json!({"type": "cas_ok", "in_reply_to": 4}), "{dest}");
            let r = req(json!({"type": "cas", "key": "x", "from": 1, "to": 3}));
            assert_eq!(code(&r), Some(PRECONDITION_FAILED), "{dest}: {r}");
            assert_eq!(r["text"], "expected 1, but had 2");
            // `create_if_not_exists` only matters for a missing key.
            let r = req(json!({"type": "cas", "key": "x", "from": 1, "to": 3,
                               "create_if_not_exists": true}));
            assert_eq!(code(&r), Some(PRECONDITION_FAILED), "{dest}: {r}");
            let r = req(json!({"type": "read", "key": "x"}));
            assert_eq!(r, json!({"type": "read_ok", "value": 2}), "{dest}");

            let r = req(json!({"type": "cas", "key": "y", "from": 0, "to": 1}));
            assert_eq!(code(&r), Some(KEY_DOES_NOT_EXIST), "{dest}: {r}");
            let r = req(json!({"type": "cas", "key": "y", "from": 0, "to": 1,
                               "create_if_not_exists": false}));
            assert_eq!(code(&r), Some(KEY_DOES_NOT_EXIST), "{dest}: {r}");
            let r = req(json!({"type": "cas", "key": "y", "from": 0, "to": 1,
                               "create_if_not_exists": true}));
            assert_eq!(r, json!({"type": "cas_ok"}), "{dest}");
            let r = req(json!({"type": "read", "key": "y"}));
            assert_eq!(r["value"], 1, "{dest}");
        }
    }

    #[test]
    fn keys_and_values_are_arbitrary_json_compared_by_json_equality() {
        for dest in KV {
            let mut s = Services::new();
            let mut req = |body: Value| s.handle("n1", dest, &body, 0, &mut top);
            let key = json!({"b": 1, "a": [1, "two", null]});
            let value = json!({"nested": [true, {"z": 0.5}]});
            req(json!({"type": "write", "key": key, "value": value}));
            // The same key with its members in another order is the same key.
            let reordered = json!({"a": [1, "two", null], "b": 1});
            let r = req(json!({"type": "read", "key": reordered}));
            assert_eq!(r["value"], value, "{dest}");
            // A string and a number are different keys.
            req(json!({"type": "write", "key": 1, "value": "number"}));
            req(json!({"type": "write", "key": "1", "value": "string"}));
            let r = req(json!({"type": "read", "key": 1}));
            assert_eq!(r["value"], "number", "{dest}");
            // `null` is a value like any other.
            req(json!({"type": "write", "key": "n", "value": null}));
            let r = req(json!({"type": "read", "key": "n"}));
            assert_eq!(r, json!({"type": "read_ok", "value": null}), "{dest}");
            // A cas compares values by JSON equality too.
            let r = req(json!({"type": "cas", "key": key, "to": 7,
                               "from": {"nested": [true, {"z": 0.5}]}}));
            assert_eq!(r, json!({"type": "cas_ok"}), "{dest}");
        }
    }

    /// Member order inside a serde_json object depends on a crate feature, so canonical keys are
    /// checked on objects built in both orders.
    #[test]
    fn canonical_keys_ignore_member_order() {
        let mut ab = Map::new();
        ab.insert("a".into(), 1.into());
        ab.insert("b".into(), json!([{"y": 2, "x": 1}]));
        let mut ba = Map::new();
        ba.insert("b".into(), json!([{"x": 1, "y": 2}]));
        ba.insert("a".into(), 1.into());
        let canonical_ab = canonical(&Value::Object(ab));
        assert_eq!(canonical_ab, canonical(&Value::Object(ba)));
        assert_eq!(canonical_ab, r#"{"a":1,"b":[{"x":1,"y":2}]}"#);
        assert_ne!(canonical(&json!(1)), canonical(&json!(1.0)));
        assert_ne!(canonical(&json!(1)), canonical(&json!("1")));
    }

    #[test]
    fn unsupported_and_malformed_requests_are_answered_with_errors() {
        use error_code::{MALFORMED_REQUEST as MALFORMED, NOT_SUPPORTED};
        let mut cases = vec![
            ("lin-tso", json!({"type": "read", "key": 1}), NOT_SUPPORTED),
            ("lin-tso", json!({"type": "frob"}), NOT_SUPPORTED),
        ];
        for dest in KV {
            cases.extend([
                (dest, json!({"type": "ts"}), NOT_SUPPORTED),
                (dest, json!({"type": "frob"}), NOT_SUPPORTED),
                (dest, json!({"type": "read_ok"}), NOT_SUPPORTED),
                (dest, json!({"type": "read"}), MALFORMED),
                (dest, json!({"type": "write", "key": 1}), MALFORMED),
                (dest, json!({"type": "write", "value": 1}), MALFORMED),
                (dest, json!({"type": "cas", "key": 1, "to": 1}), MALFORMED),
                (dest, json!({"type": "cas", "key": 1, "from": 1}), MALFORMED),
                (dest, json!({"type": "cas", "from": 1, "to": 1}), MALFORMED),
                (
                    dest,
                    json!({"type": "cas", "key": 1, "from": 1, "to": 2,
                           "create_if_not_exists": "yes"}),
                    MALFORMED,
                ),
            ]);
        }
        for dest in Service::ALL.map(Service::name) {
            cases.extend([
                (dest, json!({}), MALFORMED),
                (dest, json!({"type": 3}), MALFORMED),
            ]);
        }
        for (dest, mut body, expected) in cases {
            body["msg_id"] = json!(7);
            let mut s = Services::new();
            let before = state(&s);
            let r = s.handle("n1", dest, &body, 0, &mut top);
            assert_eq!(code(&r), Some(expected), "{dest} {body}: {r}");
            assert_eq!(r["in_reply_to"], 7, "{dest} {body}: {r}");
            assert!(r["text"].is_string());
            assert_eq!(state(&s), before, "{dest} {body} changed the state");
            assert_eq!(
                s.stats()[&Service::from_name(dest).unwrap_or(Service::LinKv)].errors,
                1
            );
        }
        // Without a usable msg_id there is nothing to reply to.
        let unnumbered = [
            json!(5),
            json!([]),
            json!("read"),
            json!(null),
            json!({"type": "ts", "msg_id": -1}),
            json!({"type": "ts", "msg_id": "1"}),
        ];
        for body in unnumbered {
            let r = Services::new().handle("n1", "lin-tso", &body, 0, &mut top);
            assert_eq!(code(&r), Some(MALFORMED), "{body}: {r}");
            assert!(r.get("in_reply_to").is_none(), "{body}: {r}");
        }
        // A request without a msg_id is still served.
        let r = Services::new().handle("n1", "lin-tso", &json!({"type": "ts"}), 0, &mut top);
        assert_eq!(r, json!({"type": "ts_ok", "ts": 0}));
    }

    #[test]
    fn a_dest_that_is_no_service_is_node_not_found_and_not_counted() {
        assert!(Service::ALL.iter().all(|s| Services::is_service(s.name())));
        assert!(!Services::is_service("n1"));
        assert!(!Services::is_service("lin_kv"));
        let mut s = Services::new();
        let r = s.handle(
            "n1",
            "n2",
            &json!({"type": "read", "msg_id": 3}),
            0,
            &mut top,
        );
        assert_eq!(code(&r), Some(error_code::NODE_NOT_FOUND));
        assert_eq!(r["in_reply_to"], 3);
        let r = s.handle("n1", "n2", &json!(null), 0, &mut top);
        assert_eq!(code(&r), Some(error_code::NODE_NOT_FOUND));
        assert!(s.stats().values().all(|st| *st == ServiceStats::default()));
    }

    #[test]
    fn lin_tso_counts_up_from_zero_across_clients() {
        let mut s = Services::new();
        let mut dice = SplitMix(1);
        let mut last = None;
        for i in 0..100u64 {
            let node = format!("n{}", i % 3);
            // Other services' traffic does not disturb the oracle.
            let write = json!({"type": "write", "key": i, "value": i});
            s.handle(&node, "lww-kv", &write, i, &mut dice);
            let r = s.handle(
                &node,
                "lin-tso",
                &json!({"type": "ts", "msg_id": i}),
                i,
                &mut dice,
            );
            assert_eq!(r["type"], "ts_ok");
            assert_eq!(r["in_reply_to"], i);
            let ts = r["ts"].as_u64();
            assert_eq!(ts, Some(i));
            assert!(ts > last);
            last = ts;
        }
        assert_eq!(s.stats()[&Service::LinTso].requests, 100);
    }

    #[test]
    fn seq_kv_reads_may_be_stale_but_never_older_than_what_the_reader_saw() {
        let mut s = Services::new();
        let mut req =
            |node: &str, body: Value, dice: &mut dyn Dice| s.handle(node, "seq-kv", &body, 0, dice);
        let write = |v: u64| json!({"type": "write", "key": "x", "value": v});
        let read = || json!({"type": "read", "key": "x"});
        req("n1", write(1), &mut top);
        req("n2", write(2), &mut top);
        // n3 has seen nothing: the stalest choice is the empty store.
        let r = req("n3", read(), &mut bottom);
        assert_eq!(code(&r), Some(error_code::KEY_DOES_NOT_EXIST), "{r}");
        // n1 saw its own write, so it reads at least that.
        assert_eq!(req("n1", read(), &mut bottom)["value"], 1);
        // Once n3 has seen the newest state, it never reads an older one.
        assert_eq!(req("n3", read(), &mut top)["value"], 2);
        assert_eq!(req("n3", read(), &mut bottom)["value"], 2);
        // A cas acts on the newest state, and its client has seen that state afterwards, even
        // when the cas fails.
        let r = req(
            "n1",
            json!({"type": "cas", "key": "x", "from": 1, "to": 3}),
            &mut bottom,
        );
        assert_eq!(r["text"], "expected 1, but had 2");
        assert_eq!(req("n1", read(), &mut bottom)["value"], 2);
        let stats = s.stats()[&Service::SeqKv];
        assert_eq!(stats.stale_reads, 2, "n3's miss and n1's read of 1");
        assert_eq!((stats.requests, stats.errors), (8, 2));
    }

    #[test]
    fn seq_kv_staleness_is_bounded_by_the_window() {
        let window = |seq_kv_window| {
            Services::with_config(ServiceConfig {
                seq_kv_window,
                ..ServiceConfig::default()
            })
        };
        let read = json!({"type": "read", "key": "x"});
        let mut s = window(3);
        for v in 1..=10u64 {
            let write = json!({"type": "write", "key": "x", "value": v});
            s.handle("n1", "seq-kv", &write, 0, &mut top);
        }
        assert_eq!(s.handle("n2", "seq-kv", &read, 0, &mut bottom)["value"], 7);
        // Pruning keeps exactly the versions the window can still reach.
        assert_eq!(s.seq.history[&canonical(&json!("x"))].len(), 4);
        let mut linear = window(0);
        let write = json!({"type": "write", "key": "x", "value": 1});
        linear.handle("n1", "seq-kv", &write, 0, &mut top);
        assert_eq!(
            linear.handle("n2", "seq-kv", &read, 0, &mut bottom)["value"],
            1
        );
    }

    #[test]
    fn lww_kv_reads_may_be_stale_and_the_later_time_wins() {
        // With syncs off, a request rolls once: for its replica.
        let mut s = Services::with_config(ServiceConfig {
            lww_sync_percent: 0,
            ..ServiceConfig::default()
        });
        let mut req = |body: Value, now: u64, replica: u64| {
            s.handle("n1", "lww-kv", &body, now, &mut |_| replica)
        };
        let write = |v: &str| json!({"type": "write", "key": "x", "value": v});
        let read = || json!({"type": "read", "key": "x"});
        req(write("a"), 10, 0);
        let r = req(read(), 10, 1);
        assert_eq!(code(&r), Some(error_code::KEY_DOES_NOT_EXIST), "{r}");
        // A cas acts on the replica it reaches.
        let r = req(
            json!({"type": "cas", "key": "x", "from": "a", "to": "c"}),
            10,
            2,
        );
        assert_eq!(code(&r), Some(error_code::KEY_DOES_NOT_EXIST), "{r}");
        // Replica 1 writes after replica 0 but with an earlier clock: after gossip, the time
        // decides, and until then replica 1 serves its own write.
        req(write("b"), 5, 1);
        assert_eq!(req(read(), 5, 1)["value"], "b");
        s.settle();
        let mut req = |body: Value, now: u64, replica: u64| {
            s.handle("n1", "lww-kv", &body, now, &mut |_| replica)
        };
        for replica in 0..3 {
            assert_eq!(req(read(), 5, replica)["value"], "a", "replica {replica}");
        }
        // A replica's own newer write wins there even when the caller's clock went back.
        req(write("c"), 1, 1);
        assert_eq!(req(read(), 1, 1)["value"], "c");
        s.settle();
        assert_eq!(
            s.handle("n1", "lww-kv", &read(), 1, &mut bottom)["value"],
            "c"
        );
        // The miss at replica 1 and replica 1's read of its own "b"; a cas is no read.
        assert_eq!(s.stats()[&Service::LwwKv].stale_reads, 2);
    }

    #[test]
    fn one_lww_replica_is_linearizable() {
        let mut s = Services::with_config(ServiceConfig {
            lww_replicas: 0,
            ..ServiceConfig::default()
        });
        assert_eq!(s.lww.replicas.len(), 1);
        let mut dice = SplitMix(5);
        for v in 0..20u64 {
            let write = json!({"type": "write", "key": "x", "value": v});
            s.handle("n1", "lww-kv", &write, 0, &mut dice);
            let r = s.handle(
                "n2",
                "lww-kv",
                &json!({"type": "read", "key": "x"}),
                0,
                &mut dice,
            );
            assert_eq!(r["value"], v);
        }
    }

    #[test]
    fn handle_message_swaps_src_and_dest() {
        let mut s = Services::new();
        let message = json!({"src": "n1", "dest": "lin-tso", "body": {"type": "ts", "msg_id": 4}});
        let reply = s.handle_message(&message, 0, &mut top);
        let expected = json!({"src": "lin-tso", "dest": "n1",
                              "body": {"type": "ts_ok", "in_reply_to": 4, "ts": 0}});
        assert_eq!(reply, Some(expected));
        let to_node = json!({"src": "n1", "dest": "n2", "body": {}});
        assert_eq!(s.handle_message(&to_node, 0, &mut top), None);
        assert_eq!(
            s.handle_message(&json!({"dest": "lin-kv"}), 0, &mut top),
            None
        );
        let reply = s.handle_message(&json!({"src": "n1", "dest": "lin-kv"}), 0, &mut top);
        let malformed = Some(error_code::MALFORMED_REQUEST);
        assert_eq!(reply.and_then(|r| code(&r["body"])), malformed);
    }

    #[test]
    fn the_same_rolls_give_the_same_run() {
        let run = || {
            let mut s = Services::new();
            let mut dice = SplitMix(42);
            let mut replies = Vec::new();
            for i in 0..300u64 {
                let dest = ["lin-kv", "seq-kv", "lww-kv", "lin-tso"][(i % 4) as usize];
                let node = format!("n{}", i % 3);
                let body = match i % 5 {
                    0 | 1 => json!({"type": "write", "key": i % 7, "value": i}),
                    2 => json!({"type": "cas", "key": i % 7, "from": i - 1, "to": i}),
                    _ => json!({"type": "read", "key": i % 7}),
                };
                replies.push(s.handle(&node, dest, &body, i / 10, &mut dice));
            }
            (replies, s)
        };
        let (replies, services) = run();
        let (again, services_again) = run();
        assert_eq!(replies, again);
        assert_eq!(services, services_again);
    }

    /// Field names of requests, and a few others.
    fn field_name() -> impl Strategy<Value = String> {
        let known = [
            "type",
            "msg_id",
            "key",
            "value",
            "from",
            "to",
            "create_if_not_exists",
            "in_reply_to",
        ];
        prop_oneof![
            prop::sample::select(known.to_vec()).prop_map(String::from),
            "[a-z_]{0,8}",
        ]
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let kinds = ["read", "write", "cas", "ts", "read_ok", "error"];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (0u64..4).prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            prop::sample::select(kinds.to_vec()).prop_map(Value::from),
            ".{0,6}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((field_name(), inner), 0..7)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
    }

    /// Bodies that are often nearly requests: an object with some of the request fields.
    fn body() -> impl Strategy<Value = Value> {
        let kinds = ["read", "write", "cas", "ts"];
        let kind = prop_oneof![
            prop::sample::select(kinds.to_vec()).prop_map(Value::from),
            json_value(),
        ];
        let msg_id = prop_oneof![(0u64..100).prop_map(Value::from), json_value()];
        let near = (
            prop::option::of(kind),
            prop::option::of(msg_id),
            prop::collection::vec((field_name(), json_value()), 0..6),
        )
            .prop_map(|(kind, msg_id, mut members)| {
                members.extend(kind.map(|k| ("type".to_owned(), k)));
                members.extend(msg_id.map(|id| ("msg_id".to_owned(), id)));
                Value::Object(members.into_iter().collect())
            });
        prop_oneof![json_value(), near]
    }

    fn dest() -> impl Strategy<Value = String> {
        let known = ["seq-kv", "lin-kv", "lww-kv", "lin-tso", "n1"];
        prop_oneof![
            prop::sample::select(known.to_vec()).prop_map(String::from),
            ".{0,8}",
        ]
    }

    /// The model's value of `key` after the first `at` writes of `log`, a list of `(key, value)`.
    fn value_at(log: &[(u64, u64)], key: u64, at: u64) -> Option<u64> {
        let writes = usize::try_from(at).map_or(log.len(), |at| at.min(log.len()));
        log[..writes]
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 256,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Arbitrary bodies to arbitrary destinations never panic; every reply is a typed object
        /// that echoes a valid msg_id; and error 1, 10 or 12 leaves every service as it was.
        #[test]
        fn arbitrary_bodies_never_panic(
            requests in prop::collection::vec((dest(), ".{0,3}", body(), any::<u64>()), 1..24),
            rolls in prop::collection::vec(any::<u64>(), 0..8),
        ) {
            let mut s = Services::new();
            let mut dice = Script { rolls, at: 0 };
            for (dest, src, body, now) in requests {
                let before = state(&s);
                let r = s.handle(&src, &dest, &body, now, &mut dice);
                prop_assert!(r["type"].is_string(), "{}", r);
                let msg_id = body.get("msg_id").and_then(Value::as_u64);
                prop_assert_eq!(r.get("in_reply_to").and_then(Value::as_u64), msg_id);
                if let Some(c) = code(&r) {
                    prop_assert!(r["text"].is_string());
                    prop_assert!([1, 10, 12, 20, 22].contains(&c), "{}", r);
                    if [1, 10, 12].contains(&c) {
                        prop_assert!(state(&s) == before, "{} changed the state", r);
                    }
                }
            }
        }

        /// seq-kv against a model of its global history: every read returns the state at some
        /// version no older than what its client saw (its own writes included) and no older than
        /// the window allows, and every cas acts on the newest state.
        #[test]
        fn seq_kv_reads_are_monotonic_and_see_own_writes(
            ops in prop::collection::vec(
                (0usize..3, 0u8..3, 0u64..3, any::<bool>(), any::<bool>()),
                1..60,
            ),
            rolls in prop::collection::vec(any::<u64>(), 1..16),
        ) {
            const WINDOW: u64 = 4;
            let mut s = Services::with_config(ServiceConfig {
                seq_kv_window: WINDOW,
                ..ServiceConfig::default()
            });
            let mut dice = Script { rolls, at: 0 };
            // The model: the successful writes in order, and the version each node last saw.
            let mut log: Vec<(u64, u64)> = Vec::new();
            let mut seen = [0u64; 3];
            for (i, (node, op, key, hit, create)) in ops.into_iter().enumerate() {
                let value = 100 + i as u64;
                let name = format!("n{node}");
                let latest = log.len() as u64;
                let body = match op {
                    0 => json!({"type": "write", "key": key, "value": value}),
                    1 => {
                        let current = value_at(&log, key, latest);
                        // A hit names the current value; a miss names one never written.
                        let from = if hit { current.unwrap_or(0) } else { 1 };
                        json!({"type": "cas", "key": key, "from": from, "to": value,
                               "create_if_not_exists": create})
                    }
                    _ => json!({"type": "read", "key": key}),
                };
                let r = s.handle(&name, "seq-kv", &body, 0, &mut dice);
                match op {
                    0 | 1 => {
                        let ok = match value_at(&log, key, latest) {
                            _ if op == 0 => true,
                            Some(current) => body["from"] == current,
                            None => create,
                        };
                        prop_assert_eq!(r["type"] != "error", ok, "{} -> {}", body, r);
                        if ok {
                            log.push((key, value));
                        }
                        seen[node] = log.len() as u64;
                    }
                    _ => {
                        let got = r.get("value").and_then(Value::as_u64);
                        let floor = seen[node].max(latest.saturating_sub(WINDOW));
                        let at = (floor..=latest).find(|&at| value_at(&log, key, at) == got);
                        prop_assert!(at.is_some(), "{} read {} below version {}", name, r, floor);
                        seen[node] = at.unwrap_or(floor);
                    }
                }
            }
        }

        /// lww-kv: replicas that keep gossiping come to hold the join of all their writes, which
        /// is what settling gives.
        #[test]
        fn lww_kv_converges(
            writes in prop::collection::vec((0u64..4, 0u64..4, 0u64..50), 1..40),
            seed in any::<u64>(),
        ) {
            let mut s = Services::new();
            let mut dice = SplitMix(seed);
            for (i, (node, key, now)) in writes.into_iter().enumerate() {
                let write = json!({"type": "write", "key": key, "value": i});
                let r = s.handle(&format!("n{node}"), "lww-kv", &write, now, &mut dice);
                prop_assert_eq!(&r["type"], "write_ok");
            }
            let mut settled = s.clone();
            settled.settle();
            let converged = |s: &Services| s.lww.replicas.windows(2).all(|w| w[0].map == w[1].map);
            prop_assert!(converged(&settled));
            let mut requests = 0;
            while !converged(&s) {
                requests += 1;
                prop_assert!(requests < 10_000, "no convergence after {} requests", requests);
                s.handle("n9", "lww-kv", &json!({"type": "read", "key": 0}), 50, &mut dice);
            }
            for (ours, theirs) in s.lww.replicas.iter().zip(&settled.lww.replicas) {
                prop_assert_eq!(&ours.map, &theirs.map);
            }
        }
    }
}

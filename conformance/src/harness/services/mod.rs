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
//! ([`ErrorCode`](crate::harness::message::ErrorCode)): 20 when the key does not exist, 22 when a `cas` finds another value, 10 for a
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
//!
//! # Layout
//! - `protocol`: what all services share: [`Service`] names, request parsing, error bodies (their
//!   codes from the protocol's [`ErrorCode`](crate::harness::message::ErrorCode) table) and reply
//!   bodies, canonical JSON.
//! - `dice`: the caller's [`Dice`] and the two ways a service rolls it.
//! - `lin`: `lin-kv` (one current map) and `lin-tso` (a counter).
//! - `seq_kv`: `seq-kv`'s global history and client views.
//! - `lww_kv`: `lww-kv`'s replicas and their last-write-wins merge.
//!
//! This file holds [`Services`], which routes a request to its service and keeps the counters.
//! The service files depend on `protocol` and `dice` only, never on each other or on this file.

mod dice;
mod lin;
mod lww_kv;
mod protocol;
mod seq_kv;
#[cfg(test)]
mod tests;

pub use dice::Dice;
pub use protocol::Service;

use lww_kv::LwwKv;
use protocol::{Failure, Request, parse, with_reply_to};
use seq_kv::SeqKv;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

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
            lww: LwwKv::new(config.lww_replicas),
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
        self.lww.settle();
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
            Service::LinKv => lin::serve_kv(&mut self.lin, request),
            Service::SeqKv => {
                let stale_reads = &mut self.stats[Service::SeqKv.index()].stale_reads;
                let window = self.config.seq_kv_window;
                self.seq.serve(src, request, window, dice, stale_reads)
            }
            Service::LwwKv => {
                let stale_reads = &mut self.stats[Service::LwwKv.index()].stale_reads;
                let sync_percent = self.config.lww_sync_percent;
                self.lww
                    .serve(request, now_ms, dice, sync_percent, stale_reads)
            }
            Service::LinTso => Ok(lin::serve_tso(&mut self.next_ts)),
        }
    }
}

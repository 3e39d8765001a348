//! The workloads' checkers hold memory in proportion to the run, not to its square.
//!
//! Each workload's checker runs on a synthetic history of `n` operations and of `4n`, and the
//! peak of the heap it allocates (bytes live at once, counted by dhat's global allocator; the
//! history itself is built before counting starts) must grow at most 4.5 times. The register
//! checker used to keep a pair per write and per value its node had before it, and the session
//! checker a copy of each writer's adds and last read per element: both grew about 16 times.
//!
//! The histories are what a single correct store would give: operations one at a time, round
//! robin over three clients (session clients hop between nodes, as the workload has them), each
//! followed by a message from its node to every other node; then a final read at every node.
//! Every check passes on them, so the measure is of the path a passing run takes. Set-like
//! workloads (`g-set`, `broadcast`, `session`) read the whole set each time, so their histories
//! are quadratic in the run by nature; their checkers must still hold only a few words per
//! operation besides a few parsed reads, so they are held to the same bound.
//!
//! This binary installs dhat's counting allocator (the workspace forbids the `unsafe` a
//! hand-written one needs), so it holds this one test only: a test on another thread would be
//! counted too.

use converge_conformance::harness::check::Verdict;
use converge_conformance::harness::history::{Delivery, Event, History, Outcome, Phase};
use converge_conformance::harness::message::ErrorCode;
use converge_conformance::harness::rng::SeededDice;
use converge_conformance::harness::workload::{self, Workload};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const NODES: usize = 3;
const CLIENTS: usize = 3;

/// The one correct store the synthetic histories read from.
#[derive(Default)]
struct Store {
    counter: i64,
    /// Grow-only set elements (g-set, session, broadcast) and the OR-set's current elements.
    set: BTreeSet<i64>,
    register: Option<i64>,
    kv: BTreeMap<u64, i64>,
}

impl Store {
    /// The outcome of `request` for `workload`, applied to the store.
    fn apply(&mut self, workload: &str, request: &Map<String, Value>, token: u64) -> Outcome {
        let int = |field: &str| request.get(field).and_then(Value::as_i64).unwrap_or(0);
        let kind = request.get("type").and_then(Value::as_str).unwrap_or("");
        let mut reply = match (workload, kind) {
            (_, "echo") => json!({"type": "echo_ok", "echo": request.get("echo")}),
            ("g-counter" | "pn-counter", "add") => {
                self.counter += int("delta");
                json!({"type": "add_ok"})
            }
            ("g-counter" | "pn-counter" | "bounded-counter", "read") => {
                json!({"type": "read_ok", "value": self.counter})
            }
            // An escrow counter refuses a withdrawal the balance does not cover, definitely.
            ("bounded-counter", "add") if self.counter + int("delta") < 0 => {
                return Outcome::Fail {
                    code: ErrorCode::PreconditionFailed.code(),
                };
            }
            ("bounded-counter", "add") => {
                self.counter += int("delta");
                json!({"type": "add_ok"})
            }
            (_, "add") => {
                self.set.insert(int("element"));
                json!({"type": "add_ok"})
            }
            (_, "remove") => {
                self.set.remove(&int("element"));
                json!({"type": "remove_ok"})
            }
            (_, "broadcast") => {
                self.set.insert(int("message"));
                json!({"type": "broadcast_ok"})
            }
            ("broadcast", "read") => json!({"type": "read_ok", "messages": self.set}),
            ("lww-register", "write") | ("mv-register", "write") => {
                self.register = Some(int("value"));
                json!({"type": "write_ok"})
            }
            ("lww-register", "read") => json!({"type": "read_ok", "value": self.register}),
            ("mv-register", "read") => {
                let siblings: Vec<i64> = self.register.into_iter().collect();
                json!({"type": "read_ok", "value": siblings})
            }
            ("lin-kv", _) => {
                let key = request.get("key").and_then(Value::as_u64).unwrap_or(0);
                match kind {
                    "read" => match self.kv.get(&key) {
                        Some(v) => json!({"type": "read_ok", "value": v}),
                        None => {
                            return Outcome::Fail {
                                code: ErrorCode::KeyDoesNotExist.code(),
                            };
                        }
                    },
                    "write" => {
                        self.kv.insert(key, int("value"));
                        json!({"type": "write_ok"})
                    }
                    _ if self.kv.get(&key) == Some(&int("from")) => {
                        self.kv.insert(key, int("to"));
                        json!({"type": "cas_ok"})
                    }
                    _ => {
                        return Outcome::Fail {
                            code: ErrorCode::PreconditionFailed.code(),
                        };
                    }
                }
            }
            (_, "read") => json!({"type": "read_ok", "value": self.set}),
            _ => json!({"type": format!("{kind}_ok")}),
        };
        if workload == "session" {
            reply["token"] = json!(token);
        }
        let Value::Object(reply) = reply else {
            unreachable!("every reply above is an object")
        };
        Outcome::Ok {
            reply: reply.into(),
        }
    }
}

/// A history of `ops` operations of `w` against one correct store, with final reads.
fn history(name: &str, w: &mut dyn Workload, ops: usize) -> History {
    let mut dice = SeededDice::new(7);
    let mut store = Store::default();
    let mut history = History::default();
    let mut seq = 0u64;
    let mut next = || {
        seq += 1;
        seq
    };
    let finals = w.final_read().map_or(0, |_| NODES);
    for k in 0..ops + finals {
        let final_phase = k >= ops;
        let (client, request) = if final_phase {
            let request = w.final_read().unwrap_or_default();
            (CLIENTS + k - ops, request)
        } else {
            let client = k % CLIENTS;
            (client, w.next_op_for(client, &mut dice))
        };
        let node = if final_phase {
            k - ops
        } else {
            w.node_for(client, NODES, &mut dice)
        };
        // The store below reads the request as the JSON a node would.
        let mut request = request.to_map();
        // One store stands for the whole cluster and exchanges no message, so it may only
        // answer at the level that needs none.
        request.remove("consistency");
        let invoke = next();
        let outcome = store.apply(name, &request, invoke);
        if let Outcome::Ok { reply } = &outcome {
            w.observe(client, reply);
        }
        let complete = next();
        history.events.push(Event {
            client,
            node,
            request: request.into(),
            invoke_ms: invoke,
            complete_ms: Some(complete),
            invoke_seq: invoke,
            complete_seq: Some(complete),
            outcome,
            phase: if final_phase {
                Phase::Final
            } else {
                Phase::Main
            },
            during_fault: false,
        });
        for to in (0..NODES).filter(|&to| to != node) {
            let sent_seq = next();
            history.deliveries.push(Delivery {
                from: node,
                to,
                sent_seq,
                delivered_seq: next(),
            });
        }
    }
    history
}

/// The peak of the heap `w.check` allocates on `history`, in bytes, and whether every check
/// passed.
fn peak_of_check(w: &dyn Workload, history: &History) -> (usize, Vec<String>) {
    let profiler = dhat::Profiler::builder().testing().build();
    let checks = w.check(history, NODES);
    let peak = dhat::HeapStats::get().max_bytes;
    drop(profiler);
    let failed = checks
        .iter()
        .filter(|c| c.verdict != Verdict::Pass)
        .map(|c| format!("{}: {:?}", c.name, c.verdict))
        .collect();
    (peak, failed)
}

#[test]
fn checker_memory_per_operation_does_not_grow_with_the_run() {
    // Operations in the smaller history: the set-like workloads' histories are quadratic, so
    // they are kept smaller to stay fast in debug builds.
    let sizes = [
        ("lww-register", 1500),
        ("mv-register", 1500),
        ("g-counter", 1500),
        ("pn-counter", 1500),
        ("bounded-counter", 1500),
        ("lin-kv", 1500),
        ("or-set", 500),
        ("echo", 1500),
        ("session", 300),
        ("g-set", 300),
        ("broadcast", 300),
    ];
    assert_eq!(
        sizes.len(),
        workload::WORKLOADS.len(),
        "every workload is measured"
    );
    let mut grew = Vec::new();
    for (name, n) in sizes {
        let mut peaks = Vec::new();
        for ops in [n, 4 * n] {
            let Some(mut w) = workload::by_name(name) else {
                panic!("{name} is a workload")
            };
            let history = history(name, w.as_mut(), ops);
            let (peak, failed) = peak_of_check(w.as_ref(), &history);
            assert!(failed.is_empty(), "{name}, {ops} ops: {failed:?}");
            peaks.push(peak);
        }
        let ratio = peaks[1] as f64 / peaks[0].max(1) as f64;
        println!(
            "{name:>13}: peak {:>9} bytes at {n:>5} ops ({:>5.1} per op), {:>9} at {:>5} ({:>5.1} per op): ×{ratio:.2}",
            peaks[0],
            peaks[0] as f64 / n as f64,
            peaks[1],
            4 * n,
            peaks[1] as f64 / (4 * n) as f64,
        );
        if ratio > 4.5 {
            grew.push(format!("{name} ×{ratio:.2}"));
        }
    }
    assert!(
        grew.is_empty(),
        "checkers whose peak memory grew more than 4.5 times for 4 times the operations: {grew:?}"
    );
}

//! The `lin-kv` workload's node: a proxy that forwards every client request to the harness's
//! linearizable `lin-kv` service and relays the service's answer, as `tests/nodes/kv_proxy.py`
//! does. It has no bugs; it exists so that every workload has a Rust node.
//!
//! Design: each `read`, `write` or `cas` goes to the service unchanged but for a `msg_id` of this
//! node's own, remembered with the client and the client's `msg_id`; the answer (an `_ok` reply
//! or an error, definite or not, exactly as the service gave it) goes back to that client with
//! the client's `msg_id` as `in_reply_to`. The service is linearizable and every operation takes
//! effect there, once, between the client's request and its reply, so the node is linearizable
//! too. Invariants:
//! - The node keeps nothing but the requests in flight, so a kill loses only those: their
//!   clients time out, and the checker treats them as indefinite, which they are (the service
//!   may or may not have applied them).
//! - Partitions cut nodes from each other, not from services, and the node never talks to
//!   another node, so partitions, loss, duplication and reordering between nodes do not touch it.
//! - The service answers every request it gets, so every remembered request is forgotten once
//!   answered; an answer to a request this process does not remember (one sent by a killed
//!   incarnation) is logged and dropped.

use converge_mutants::{Handler, Message, Node, bug_from_args, run};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::process::ExitCode;

/// The service that holds the data.
const SERVICE: &str = "lin-kv";

#[derive(Default)]
struct LinKv {
    /// The `msg_id` of the next request to the service.
    next_id: u64,
    /// Requests in flight: this node's `msg_id` to the client and the client's `msg_id`.
    waiting: BTreeMap<u64, (String, u64)>,
}

impl Handler for LinKv {
    fn init(&mut self, _node: &Node) {
        *self = LinKv::default();
    }

    fn message(&mut self, node: &Node, msg: Message) {
        if msg.src == SERVICE {
            let answered = msg.get("in_reply_to").and_then(Value::as_u64);
            let Some((client, client_id)) = answered.and_then(|id| self.waiting.remove(&id)) else {
                return eprintln!("dropping an answer to no request in flight: {:?}", msg.body);
            };
            let mut body = Value::Object(msg.body);
            body["in_reply_to"] = json!(client_id);
            return node.send(&client, body);
        }
        match (msg.kind(), msg.msg_id()) {
            ("read" | "write" | "cas", Some(client_id)) => {
                self.next_id += 1;
                self.waiting
                    .insert(self.next_id, (msg.src.clone(), client_id));
                let mut body = Value::Object(msg.body);
                body["msg_id"] = json!(self.next_id);
                node.send(SERVICE, body);
            }
            _ => node.unknown(&msg),
        }
    }
}

fn main() -> ExitCode {
    // No bugs to choose from, but a bad command line is still refused with exit code 2.
    let _: Option<()> = bug_from_args(&[]);
    run(LinKv::default(), None)
}

//! What the loop does with what nodes write: checking the sender, routing node-to-node messages
//! through the network, answering service requests, and completing client requests with the
//! replies; output that is not a well-formed message is counted against its node.
//!
//! Invariants: every message between nodes passes through the network (and the cadence that
//! measures replication); no more than `IN_FLIGHT_MAX` copies are held at once; a reply to a
//! request that already timed out is ignored, never counted twice.

use super::Loop;
use super::flight::{Cargo, InFlight};
use crate::harness::body::Body;
use crate::harness::history::{Delivery, Outcome};
use crate::harness::message::{Envelope, ErrorCode, Message};
use crate::harness::services::{Service, Services};
use crate::harness::workload::Profile;
use serde_json::{Map, Value};
use std::cmp::Reverse;

/// A message's body as it reached the loop: the JSON object of a line a process wrote, or a
/// typed body from an in-process backend. It is typed only where the loop reads it.
pub(super) enum Incoming {
    Object(Map<String, Value>),
    Typed(Body),
}

/// Messages in flight inside the harness before it stops accepting more from nodes: a bound on
/// memory, far above what a correct node produces.
const IN_FLIGHT_MAX: usize = 1_000_000;

impl Loop<'_> {
    pub(super) fn malformed(&mut self, node: usize, what: String) {
        let entry = self.malformed.entry(node).or_insert((0, what));
        entry.0 += 1;
    }

    pub(super) fn handle_line(&mut self, node: usize, line: String) {
        let sent_seq = self.tick();
        let Envelope { src, dest, body } = match Envelope::parse(&line) {
            Ok(m) => m,
            Err(e) => return self.malformed(node, e.to_string()),
        };
        self.handle_message(
            node,
            src,
            dest,
            Incoming::Object(body),
            Some(line),
            sent_seq,
        );
    }

    /// A payload from an in-process node to node `to`: routed like any node-to-node message,
    /// without being read.
    pub(super) fn handle_peer(&mut self, node: usize, to: usize, payload: Vec<u8>) {
        let sent_seq = self.tick();
        if to >= self.config.nodes {
            return self.malformed(node, format!("peer payload to unknown node index {to}"));
        }
        self.route(node, to, Cargo::Peer(payload), sent_seq);
    }

    /// Schedules the copies the network makes of a message from `node` to node `to`.
    fn route(&mut self, node: usize, to: usize, cargo: Cargo, sent_seq: u64) {
        if self.deliveries.len() >= IN_FLIGHT_MAX {
            return self.malformed(
                node,
                format!("more than {IN_FLIGHT_MAX} messages in flight"),
            );
        }
        let now = self.backend.now_ms();
        self.cadence.sent(node, to, now);
        self.last_traffic_ms = now;
        let arrivals = self.net.route(node, to, now);
        if arrivals.is_empty() {
            if let Cargo::Peer(payload) = cargo {
                self.backend.peer_dropped(node, to, payload);
            }
            return;
        }
        // The last copy takes the cargo; only duplicates pay for a clone.
        let mut cargo = Some(cargo);
        for (i, &at) in arrivals.iter().enumerate() {
            let copy = if i + 1 == arrivals.len() {
                cargo.take()
            } else {
                cargo.as_ref().map(|c| match c {
                    Cargo::Line(l) => Cargo::Line(l.clone()),
                    Cargo::Message(m) => Cargo::Message(m.clone()),
                    Cargo::Peer(p) => Cargo::Peer(p.clone()),
                })
            };
            let Some(copy) = copy else {
                break;
            };
            self.delivery_seq += 1;
            self.deliveries.push(Reverse(InFlight {
                at,
                order: self.delivery_seq,
                to,
                cargo: copy,
                from: node,
                sent_seq,
            }));
        }
    }

    /// A message node `node` sent from `src` to `dest`: from `line` if it came as one (a
    /// node-to-node message is then delivered as the very line), or typed from an in-process
    /// backend.
    pub(super) fn handle_message(
        &mut self,
        node: usize,
        src: String,
        dest: String,
        body: Incoming,
        line: Option<String>,
        sent_seq: u64,
    ) {
        if src != self.ids[node] && !self.src_allowed(&src) {
            let shown = line.unwrap_or_else(|| {
                let body = match body {
                    Incoming::Object(map) => Body::from_map(map),
                    Incoming::Typed(body) => body,
                };
                Message::new(src.clone(), dest, body).to_line()
            });
            let cut: String = shown.chars().take(200).collect();
            return self.malformed(
                node,
                format!("src {src:?} is not the sender {}: {cut}", self.ids[node]),
            );
        }
        let now = self.backend.now_ms();
        if let Some(to) = self.ids.iter().position(|id| *id == dest) {
            let cargo = match (line, body) {
                (Some(line), _) => Cargo::Line(line),
                (None, Incoming::Typed(body)) => {
                    Cargo::Message(Box::new(Message { src, dest, body }))
                }
                (None, Incoming::Object(map)) => Cargo::Message(Box::new(Message {
                    src,
                    dest,
                    body: Body::from_map(map),
                })),
            };
            return self.route(node, to, cargo, sent_seq);
        }
        if Services::is_service(&dest) {
            self.last_traffic_ms = now;
            // Services answer at once; the reply reaches the node after the network's minimum
            // latency, like any message. Partitions cut nodes from each other, not from services.
            // Only process nodes call services, and a service judges the object the node wrote,
            // field by field, to say precisely what is wrong with it: it reads the body as JSON.
            let object = match body {
                Incoming::Object(map) => map,
                Incoming::Typed(body) => body.to_map(),
            };
            let reply =
                self.services
                    .handle_body(&src, &dest, &object, now, &mut self.service_dice);
            let party = self.config.nodes
                + Service::ALL
                    .iter()
                    .position(|s| s.name() == dest)
                    .unwrap_or(0);
            let reply = Message {
                src: dest,
                dest: src,
                body: reply.into(),
            };
            // The service read the request when the harness did, and answered at once.
            self.history.deliveries.push(Delivery {
                from: node,
                to: party,
                sent_seq,
                delivered_seq: sent_seq,
            });
            self.delivery_seq += 1;
            self.deliveries.push(Reverse(InFlight {
                at: now + 1,
                order: self.delivery_seq,
                to: node,
                cargo: Cargo::Message(Box::new(reply)),
                from: party,
                sent_seq,
            }));
            return;
        }
        if dest.starts_with('c') {
            // A reply to a client: it completes the pending request it answers, if any. Late
            // replies to requests that already timed out are expected and ignored.
            let body = match body {
                Incoming::Object(map) => Body::from_map(map),
                Incoming::Typed(body) => body,
            };
            let Some(id) = body.in_reply_to else {
                return self.malformed(
                    node,
                    format!("message to client {dest} without in_reply_to"),
                );
            };
            if let Some((pending, _)) = self.pending.remove(&id) {
                let outcome = match body.error_code() {
                    Some(code) if ErrorCode::is_definite_code(code) => Outcome::Fail { code },
                    Some(code) => Outcome::Info {
                        reason: format!("indefinite error {code}").into(),
                    },
                    None => Outcome::Ok { reply: body },
                };
                self.complete(pending, Some(node), now, outcome);
            }
            return;
        }
        self.malformed(node, format!("message to unknown destination {dest:?}"));
    }

    /// Whether a message from one node may name `src` as its sender. The strict profile accepts
    /// only the sender itself: the harness carries every message, so a node that speaks for
    /// another hides who sent what from the causality the checks rest on. Maelstrom accepts any
    /// known node or client id (followers that forward a client's request to the leader keep the
    /// client's `src`, and the leader answers the client directly), so its profile does too.
    fn src_allowed(&self, src: &str) -> bool {
        self.config.profile == Profile::Maelstrom
            && (self.ids.iter().any(|id| id == src)
                || src == "c-init"
                || src
                    .strip_prefix('c')
                    .and_then(|n| n.parse::<usize>().ok())
                    .is_some_and(|n| n < self.config.clients + self.config.nodes))
    }
}

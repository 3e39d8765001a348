//! The `session` workload: clients that hop between nodes and carry session tokens, over a
//! grow-only set of unique elements.
//!
//! Every reply carries an opaque `token`; a client sends the last token it received with its next
//! request, to whichever node that goes to. A node must answer only once it covers the token (or
//! refuse with a definite error), which is what gives a session its guarantees even when it moves
//! between regions. Reads may name a consistency level.
//!
//! Because every element is added once, each guarantee becomes a sound set inclusion:
//! - read-your-writes: a read contains every element its client added before it;
//! - monotonic reads: a client's read contains everything its previous reads returned;
//! - monotonic writes: a read that contains a client's add contains that client's earlier adds;
//! - writes-follow-reads: a read that contains a client's add contains everything that client
//!   had read before making it.
//!
//! This file holds the workload; `check` holds the session checks and the wire names they share
//! with it, and depends on nothing here.

mod check;
#[cfg(test)]
mod tests;

use super::Workload;
use super::set::{canonical, check_sets};
use crate::harness::body::{Kind, Level};
use crate::harness::check::Check;
use crate::harness::history::{Body, History};
use crate::harness::rng::SeededDice;
use check::{SESSION, session_checks};
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Default)]
pub(super) struct Session {
    next_element: i64,
    tokens: BTreeMap<usize, Value>,
}

impl Workload for Session {
    fn name(&self) -> &'static str {
        "session"
    }

    fn next_op(&mut self, dice: &mut SeededDice) -> Body {
        self.next_op_for(0, dice)
    }

    fn next_op_for(&mut self, client: usize, dice: &mut SeededDice) -> Body {
        let mut body = Body::new(if dice.below(2) == 0 {
            self.next_element += 1;
            Kind::AddElement {
                element: self.next_element,
            }
        } else {
            Kind::Read { key: None }
        });
        // Most requests leave the level to the node's default; some name one.
        if dice.below(4) == 0 {
            body.consistency = Some(Level::ALL[dice.below(3) as usize]);
        }
        body.token = self.tokens.get(&client).cloned().map(Box::new);
        body
    }

    fn min_nodes(&self) -> usize {
        // On one node every session guarantee holds trivially: there is nowhere to hop to.
        2
    }

    fn node_for(&mut self, _client: usize, nodes: usize, dice: &mut SeededDice) -> usize {
        // Sessions move: every request goes to a node drawn at random.
        dice.below(nodes as u64) as usize
    }

    fn observe(&mut self, client: usize, reply: &Body) {
        if let Some(token) = &reply.token {
            self.tokens.insert(client, token.as_ref().clone());
        }
    }

    fn order_independent(&self) -> bool {
        true
    }

    fn final_read(&self) -> Option<Body> {
        Some(Kind::Read { key: None }.into())
    }

    fn final_value(&self, reply: &Body) -> Option<Value> {
        canonical(reply, SESSION.read_field)
    }

    fn unexplained_change(&self, _: &History, from: &Value, to: &Value) -> Option<String> {
        super::set::lost_after_agreement(from, to)
    }

    fn check(&self, history: &History, nodes: usize) -> Vec<Check> {
        let mut checks = check_sets(&SESSION, history, nodes);
        checks.extend(session_checks(history));
        checks.push(super::levels::check(
            history,
            nodes,
            super::levels::Layout::Unknown,
        ));
        checks
    }
}

//! Maelstrom's `g-set` workload, and the set analysis it shares with `broadcast`.
//!
//! `add {element}` → `add_ok`; `read` → `read_ok {value: [elements]}`. Broadcast is the same
//! workload under other names (`broadcast {message}`, `read_ok {messages}`), so both are a
//! [`SetWorkload`] with a different [`SetShape`], and the analysis below exists once.
//!
//! Invariants:
//! - Every element the workload adds is a distinct integer, counted up from 0 as Maelstrom does,
//!   so an element in a read names exactly one add request: every inference below is sound.
//! - A read is a set: order and repetition in the reply do not matter, and [`canonical`] turns
//!   it into one sorted list without repeats, so equal states give equal final values.
//! - Acknowledged adds must be visible; indefinite adds may or may not be; an element whose add
//!   failed definitely, or that was never added, must never be.
//!
//! # Layout
//! This file holds the `g-set` workload ([`SetWorkload`] with [`G_SET`]'s names); `wire` holds
//! the wire names ([`SetShape`]) and the parsing of read replies, and `check` the checks that
//! `g-set`, `broadcast` and `session` share. `check` depends on `wire`, neither on this file.

mod check;
#[cfg(test)]
pub(super) mod tests;
mod wire;

pub(super) use check::{check_sets, lost_after_agreement};
pub(super) use wire::{SetShape, canonical, read_set};

use super::Workload;
use crate::harness::body::Kind;
use crate::harness::check::Check;
use crate::harness::history::{Body, History};
use crate::harness::rng::SeededDice;
use serde_json::Value;

/// Maelstrom's `g-set`.
pub(super) const G_SET: SetShape = SetShape {
    name: "g-set",
    add: "add",
    adding: |element| Kind::AddElement { element },
    read_field: "value",
};

/// A workload of unique adds and reads of a grow-only set, checked with [`check_sets`].
pub(super) struct SetWorkload {
    shape: SetShape,
    next: i64,
}

impl SetWorkload {
    /// The workload with these wire names.
    pub(super) fn new(shape: SetShape) -> Self {
        SetWorkload { shape, next: 0 }
    }
}

impl Workload for SetWorkload {
    fn name(&self) -> &'static str {
        self.shape.name
    }

    fn next_op(&mut self, dice: &mut SeededDice) -> Body {
        // Mostly adds, some reads: reads during faults feed `monotonic-reads-per-node`, and
        // every add is a chance to lose an element.
        if dice.below(4) == 0 {
            return Kind::Read { key: None }.into();
        }
        let element = self.next;
        self.next += 1;
        (self.shape.adding)(element).into()
    }

    fn final_read(&self) -> Option<Body> {
        Some(Kind::Read { key: None }.into())
    }

    fn final_value(&self, reply: &Body) -> Option<Value> {
        canonical(reply, self.shape.read_field)
    }

    fn order_independent(&self) -> bool {
        true
    }

    fn unexplained_change(&self, _: &History, from: &Value, to: &Value) -> Option<String> {
        lost_after_agreement(from, to)
    }

    fn check(&self, history: &History, nodes: usize) -> Vec<Check> {
        check_sets(&self.shape, history, nodes)
    }
}

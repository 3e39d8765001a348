//! Maelstrom's `broadcast` workload: `topology {topology}` → `topology_ok` once per node before
//! the workload, then `broadcast {message}` → `broadcast_ok` and `read` → `read_ok {messages}`.
//!
//! Broadcast is a grow-only set under other names, so the operations and checks are
//! [`SetWorkload`]'s; this module adds only the topology.
//!
//! Invariants: the topology is Maelstrom's default 2D grid, which is connected and symmetric
//! (`a` lists `b` exactly when `b` lists `a`), so a node that relays to its neighbours alone
//! can reach every node once the network heals; every node receives the same whole map.

use super::Workload;
use super::set::{SetShape, SetWorkload};
use crate::harness::body::Kind;
use crate::harness::check::Check;
use crate::harness::history::{Body, History};
use crate::harness::rng::SeededDice;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Maelstrom's `broadcast` wire names.
const BROADCAST: SetShape = SetShape {
    name: "broadcast",
    add: "broadcast",
    adding: |message| Kind::Broadcast { message },
    read_field: "messages",
};

/// Maelstrom's `broadcast`: a [`SetWorkload`] preceded by a `topology` request to every node.
pub(super) struct Broadcast {
    set: SetWorkload,
}

impl Default for Broadcast {
    fn default() -> Self {
        Broadcast {
            set: SetWorkload::new(BROADCAST),
        }
    }
}

/// Maelstrom's grid: the nodes in order fill rows of `side = ⌈√n⌉`, the last row possibly short,
/// and each node's neighbours are the nodes below, above, right and left of it, in that order.
/// Every node of the short last row has one above it, so the grid is connected.
pub(super) fn grid(node_ids: &[String]) -> BTreeMap<String, Vec<String>> {
    let n = node_ids.len();
    let mut side = 0;
    while side * side < n {
        side += 1;
    }
    let at = |row: Option<usize>, col: Option<usize>| -> Option<&String> {
        let (row, col) = (row?, col?);
        if col >= side {
            return None;
        }
        node_ids.get(row * side + col)
    };
    node_ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let (row, col) = (i / side, i % side);
            let neighbours = [
                at(Some(row + 1), Some(col)),
                at(row.checked_sub(1), Some(col)),
                at(Some(row), Some(col + 1)),
                at(Some(row), col.checked_sub(1)),
            ];
            (
                id.clone(),
                neighbours.into_iter().flatten().cloned().collect(),
            )
        })
        .collect()
}

impl Workload for Broadcast {
    fn name(&self) -> &'static str {
        self.set.name()
    }

    fn setup(&mut self, node_ids: &[String]) -> Vec<(usize, Body)> {
        // Maelstrom sends every node the whole map, not just its own neighbours.
        let topology: Body = Kind::Topology {
            topology: json!(grid(node_ids)),
        }
        .into();
        (0..node_ids.len()).map(|n| (n, topology.clone())).collect()
    }

    fn next_op(&mut self, dice: &mut SeededDice) -> Body {
        self.set.next_op(dice)
    }

    fn final_read(&self) -> Option<Body> {
        self.set.final_read()
    }

    fn final_value(&self, reply: &Body) -> Option<Value> {
        self.set.final_value(reply)
    }

    fn order_independent(&self) -> bool {
        true
    }

    fn unexplained_change(&self, _: &History, from: &Value, to: &Value) -> Option<String> {
        super::set::lost_after_agreement(from, to)
    }

    fn check(&self, history: &History, nodes: usize) -> Vec<Check> {
        self.set.check(history, nodes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("n{i}")).collect()
    }

    #[test]
    fn the_grid_of_three_nodes_is_the_one_in_the_protocol_docs() {
        let g = grid(&ids(3));
        assert_eq!(
            json!(g),
            json!({"n0": ["n2", "n1"], "n1": ["n0"], "n2": ["n0"]})
        );
    }

    #[test]
    fn the_grid_matches_maelstrom_for_five_nodes() {
        // side 3: row 0 is n0 n1 n2, row 1 is n3 n4.
        let g = grid(&ids(5));
        assert_eq!(g["n0"], ["n3", "n1"]);
        assert_eq!(g["n1"], ["n4", "n2", "n0"]);
        assert_eq!(g["n2"], ["n1"]);
        assert_eq!(g["n3"], ["n0", "n4"]);
        assert_eq!(g["n4"], ["n1", "n3"]);
    }

    #[test]
    fn every_grid_is_symmetric_and_connected() {
        for n in 1..=30 {
            let g = grid(&ids(n));
            assert_eq!(g.len(), n);
            for (a, neighbours) in &g {
                for b in neighbours {
                    assert!(g[b].contains(a), "{n} nodes: {a} lists {b} but not back");
                }
            }
            let mut reached = vec!["n0".to_string()];
            let mut i = 0;
            while let Some(a) = reached.get(i).cloned() {
                for b in &g[&a] {
                    if !reached.contains(b) {
                        reached.push(b.clone());
                    }
                }
                i += 1;
            }
            assert_eq!(reached.len(), n, "{n} nodes: grid not connected: {g:?}");
        }
    }
}

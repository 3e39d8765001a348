//! Maelstrom's `echo` workload.

use super::Workload;
use crate::harness::body::Kind;
use crate::harness::check::Check;
use crate::harness::history::{Body, History, Outcome};
use crate::harness::rng::SeededDice;
use serde_json::Value;

/// Maelstrom's `echo`: every `echo` is answered by an `echo_ok` carrying the same `echo`.
#[derive(Default)]
pub(super) struct Echo {
    next: u64,
}

impl Workload for Echo {
    fn name(&self) -> &'static str {
        "echo"
    }

    fn next_op(&mut self, _dice: &mut SeededDice) -> Body {
        self.next += 1;
        Kind::Echo {
            echo: format!("please echo {}", self.next).into(),
        }
        .into()
    }

    fn final_read(&self) -> Option<Body> {
        None
    }

    fn final_value(&self, _reply: &Body) -> Option<Value> {
        None
    }

    fn check(&self, history: &History, _nodes: usize) -> Vec<Check> {
        let wrong = history.events.iter().find(|e| match &e.outcome {
            Outcome::Ok { reply } => match (&reply.kind, &e.request.kind) {
                (Kind::EchoOk { echo }, Kind::Echo { echo: asked }) => echo != asked,
                _ => true,
            },
            _ => false,
        });
        let answered = history
            .events
            .iter()
            .filter(|e| e.reply().is_some())
            .count();
        vec![
            Check::from_bool("echo", true, wrong.is_none(), || {
                let e = wrong.expect("checked");
                format!("request {:?} answered with {:?}", e.request, e.outcome)
            }),
            Check::from_bool(
                "available",
                true,
                answered > 0 || history.events.is_empty(),
                || "no echo was ever answered".to_string(),
            ),
        ]
    }
}

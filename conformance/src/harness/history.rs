//! The history of a run: every client operation with its invocation, completion and outcome.
//! Checkers read nothing else.

pub use super::body::Body;
use serde::Serialize;
use std::borrow::Cow;

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    /// A reply other than an error: the body.
    Ok {
        /// The reply body.
        reply: Body,
    },
    /// A definite error: the operation did not happen.
    Fail {
        /// Maelstrom error code.
        code: u64,
    },
    /// No reply in time, or an indefinite error: the operation may or may not have happened.
    Info {
        /// Why the outcome is unknown. Borrowed for the fixed reasons: every operation starts
        /// as "no reply" until its reply comes, and that needs no string of its own.
        reason: Cow<'static, str>,
    },
}

/// When in the run an operation was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// The workload, with faults.
    Main,
    /// Reads after the network healed and the cluster went quiet.
    Final,
}

/// One client operation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    /// The client that made it.
    pub client: usize,
    /// The node it was sent to.
    pub node: usize,
    /// The request body.
    pub request: Body,
    /// When it was sent (ms since the run started).
    pub invoke_ms: u64,
    /// When its reply arrived, if one did.
    pub complete_ms: Option<u64>,
    /// Its place in the harness's total order of observations (see [`Delivery`]).
    pub invoke_seq: u64,
    /// The reply's place in that order, if one came.
    pub complete_seq: Option<u64>,
    /// How it ended.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Which phase.
    pub phase: Phase,
    /// Whether a windowed fault (partition, kill, pause) was in force when it was sent.
    pub during_fault: bool,
}

impl Event {
    /// The request's `type`.
    pub fn kind(&self) -> &str {
        self.request.name()
    }

    /// The reply body, if the operation succeeded.
    pub fn reply(&self) -> Option<&Body> {
        match &self.outcome {
            Outcome::Ok { reply } => Some(reply),
            _ => None,
        }
    }
}

/// One node-to-node message copy the harness delivered.
///
/// Times here are places in the harness's total order of observations (`seq`): the harness is one
/// thread, so every line it reads and every line it writes gets the next number. That order is
/// finer than milliseconds and consistent with what each node saw: a node can only have read what
/// the harness wrote to it before it wrote what the harness read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// Sender: a node index, or `nodes + k` for Maelstrom service `k`.
    pub from: usize,
    /// Receiver, numbered the same way.
    pub to: usize,
    /// When the harness read it from the sender.
    pub sent_seq: u64,
    /// When the harness wrote it to the receiver.
    pub delivered_seq: u64,
}

/// A window in which one windowed fault (a partition, a kill, a pause) was in force, placed in the
/// harness's total order of observations like everything else in the history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FaultWindow {
    /// What the nemesis did, as the report names it: `partition:KIND`, `kill:nN`, `pause:nN`.
    pub fault: String,
    /// The fault began after this place in the order of observations (and before the next).
    pub after_seq: u64,
    /// It was healed after this place, or `None` if the run ended with it in force.
    pub healed_after_seq: Option<u64>,
}

/// Every operation of a run, in invocation order, and every message between nodes.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct History {
    /// The operations.
    pub events: Vec<Event>,
    /// Node-to-node message copies, in send order: with them, checkers know which node *could*
    /// have heard of which event when, without looking inside any message.
    pub deliveries: Vec<Delivery>,
    /// The nemesis's fault windows, in the order they began. Checkers do not need them (the
    /// deliveries already show what the network did); reports and diagrams show them.
    pub faults: Vec<FaultWindow>,
}

impl History {
    /// Operations of one phase.
    pub fn phase(&self, phase: Phase) -> impl Iterator<Item = &Event> {
        self.events.iter().filter(move |e| e.phase == phase)
    }
}

impl History {
    /// For each operation (by index in `events`), the latest invocation (as `invoke_seq`) of each
    /// node's operations that its node could have heard of when it was invoked: `reach[op][n]` is
    /// a `t` such that every operation of node `n` invoked at or before `t` may have been known,
    /// and none after. A node has heard of its own past, and of another node's past up to the send
    /// time of a message chain that reached it. `None` means nothing of that node.
    ///
    /// This is Lamport's happened-before over what the harness saw, with operations as events: a
    /// conservative "could have seen", so a check that requires an operation to have been
    /// superseded only by operations that could have seen it is sound.
    ///
    /// Messages to and from Maelstrom's services are deliveries too (a service is a party with
    /// an index at or above `nodes`), because information flows through a shared store as surely
    /// as through a message. The vectors cover every party; index them by node.
    pub fn reach(&self, nodes: usize) -> Vec<Vec<Option<u64>>> {
        let mut reach = vec![Vec::new(); self.events.len()];
        self.reach_each(nodes, |i, known| reach[i] = known.to_vec());
        reach
    }

    /// [`History::reach`] without keeping it: calls `f(i, known)` once for every operation `i`
    /// whose node is below `nodes`, where `known` is `reach(nodes)[i]`. Operations come in
    /// observation order (by `invoke_seq`), not by index.
    ///
    /// A vector per operation is what makes `reach` proportional to operations × parties; a
    /// checker that only folds the vectors (a maximum, a count) needs none of them kept, and then
    /// holds a vector per party and one per message in flight, besides the sweep's order.
    pub fn reach_each(&self, nodes: usize, mut f: impl FnMut(usize, &[Option<u64>])) {
        let parties = self
            .deliveries
            .iter()
            .map(|d| d.from.max(d.to) + 1)
            .max()
            .unwrap_or(0)
            .max(nodes);
        // Sweep sends, deliveries and invocations in observation order.
        #[derive(PartialEq, Eq, PartialOrd, Ord)]
        enum Kind {
            // A service answers in the step it reads a request, so its request's send and
            // delivery share one `seq`: the send must come first.
            Send(usize),
            Deliver(usize),
            Invoke(usize),
        }
        let mut sweep: Vec<(u64, Kind)> =
            Vec::with_capacity(self.events.len() + 2 * self.deliveries.len());
        for (i, d) in self.deliveries.iter().enumerate() {
            sweep.push((d.sent_seq, Kind::Send(i)));
            sweep.push((d.delivered_seq, Kind::Deliver(i)));
        }
        for (i, e) in self.events.iter().enumerate() {
            sweep.push((e.invoke_seq, Kind::Invoke(i)));
        }
        sweep.sort_unstable();
        let mut know: Vec<Vec<Option<u64>>> = vec![vec![None; parties]; parties];
        // What each message in flight carries, from its send to its delivery.
        let mut carried: Vec<Vec<Option<u64>>> = vec![Vec::new(); self.deliveries.len()];
        for (t, kind) in sweep {
            match kind {
                Kind::Send(i) => {
                    let from = self.deliveries[i].from;
                    know[from][from] = Some(t);
                    carried[i] = know[from].clone();
                }
                Kind::Deliver(i) => {
                    let to = self.deliveries[i].to;
                    let payload = std::mem::take(&mut carried[i]);
                    for (k, v) in know[to].iter_mut().zip(payload) {
                        *k = (*k).max(v);
                    }
                }
                Kind::Invoke(i) => {
                    let node = self.events[i].node;
                    if node < nodes {
                        know[node][node] = Some(t);
                        f(i, &know[node]);
                    }
                }
            }
        }
    }
}

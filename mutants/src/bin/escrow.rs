//! A `bounded-counter` node: an escrow counter that never goes below 0 (Balegas et al. 2015,
//! "Putting consistency back into eventual consistency"), replicated by full-state gossip on a
//! timer. A correct one, or one with a classic bug (`--bug NAME`).
//!
//! Design. The counter's value is split into *rights*, each held by one replica, and a replica
//! spends only its own. The state is three grow-only maps, each entry written by one replica
//! only (keyed by [`incarnation`], so a restarted process never writes under its predecessor's
//! totals):
//! - `deposits[i]`: everything deposited at `i` (rights created at `i`);
//! - `withdrawals[i]`: everything withdrawn at `i` (rights `i` spent);
//! - `transfers[i][j]`: everything `i` handed to `j`.
//!
//! The value is `Σ deposits − Σ withdrawals`; `i`'s rights are `deposits[i] + Σ transfers[·][i]
//! − Σ transfers[i][·] − withdrawals[i]`. A deposit is applied and acknowledged at once. A
//! withdrawal is applied at once if this node's rights cover it; refused with 22 if this node's
//! view of the whole value does not cover it; otherwise it waits (at most [`WAIT`]) while the node
//! asks every peer for rights (`want`, resent each gossip round). A peer that has rights to spare
//! and no withdrawal of its own waiting hands some over by raising its `transfers` entry, a
//! state change like any other that reaches the asker by gossip. A waiting withdrawal is applied
//! as soon as the rights arrive, or at its deadline refused with 22 (the value no longer covers
//! it) or 11 (the rights did not come in time).
//!
//! Replication. Every `--gossip-ms` (default 300) the node sends its whole state to each peer
//! that has not confirmed holding all of it; a receiver merges by pointwise maximum and confirms
//! with `state_ok`. A housekeeping tick every [`HOUSEKEEPING`] expires waiting withdrawals, so
//! their answers never wait for a slow gossip round. Invariants:
//! - Merging is idempotent, commutative and associative, so gossip may be lost, duplicated or
//!   reordered; whatever a partition held back arrives within a round of the heal.
//! - A replica's own entries are exact in its own state, and the transfers it received can only
//!   be stale (too low), so it never believes it holds more rights than it does: no replica
//!   spends rights twice, and the sum of all rights, the value, stays at least 0.
//! - States travel whole. Any state a node holds is the join of whole states, each of which held
//!   the rights behind every withdrawal in it, so no node ever reads a negative value, however
//!   stale its view.
//! - Once every peer confirmed the whole state and no withdrawal waits, the node sends nothing:
//!   the cluster goes quiet.
//! - A withdrawal is answered within [`WAIT`] plus a housekeeping tick, well inside the harness's
//!   one-second request timeout, so refusals are definite rather than timeouts.
//! - An add is acknowledged before any peer has it, and peers' confirmations are not forgotten
//!   when a peer restarts, so the node is certified under partitions, loss, duplication,
//!   reordering and pauses, not kills.
//!
//! Bug `local-check`: the same replication, but a withdrawal is applied whenever this node's
//! view of the whole value covers it, without rights: the check a first version of a bounded
//! counter often makes. Two replicas that withdraw within one gossip round, or on two sides of a
//! partition, both spend the same balance: their acknowledged withdrawals exceed the deposits,
//! and once their states merge the value reads below 0. `bound` catches both (`accounting` does
//! not: every withdrawal that was acknowledged did happen).

use converge_mutants::{ErrorCode, Handler, Message, Node, args_from_env, incarnation, run};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Default period between gossip rounds, in milliseconds.
const GOSSIP_MS: u64 = 300;
/// Longest a withdrawal waits for rights from peers before it is refused.
const WAIT: Duration = Duration::from_millis(600);
/// Period of the housekeeping tick that expires waiting withdrawals (and starts gossip rounds).
const HOUSEKEEPING: Duration = Duration::from_millis(50);
/// Most withdrawals waiting at once; one more is refused with 11 at once.
const WAITING_MAX: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bug {
    LocalCheck,
}

const BUGS: &[(&str, Bug)] = &[("local-check", Bug::LocalCheck)];

/// The replicated state: grow-only totals, each entry written by one incarnation only.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Escrow {
    deposits: BTreeMap<String, u64>,
    withdrawals: BTreeMap<String, u64>,
    /// `transfers[from][to]`.
    transfers: BTreeMap<String, BTreeMap<String, u64>>,
}

impl Escrow {
    /// `Σ deposits − Σ withdrawals`, in `i128` so that no sum of `u64`s overflows.
    fn value(&self) -> i128 {
        let sum = |m: &BTreeMap<String, u64>| m.values().map(|&v| i128::from(v)).sum::<i128>();
        sum(&self.deposits) - sum(&self.withdrawals)
    }

    /// The rights `who` holds, as this state knows them.
    fn rights(&self, who: &str) -> i128 {
        let get = |m: &BTreeMap<String, u64>| i128::from(m.get(who).copied().unwrap_or(0));
        let given: i128 = self
            .transfers
            .get(who)
            .map_or(0, |to| to.values().map(|&v| i128::from(v)).sum());
        let received: i128 = self
            .transfers
            .values()
            .filter_map(|to| to.get(who))
            .map(|&v| i128::from(v))
            .sum();
        get(&self.deposits) + received - given - get(&self.withdrawals)
    }

    /// Whether every entry of `self` is at most the same entry of `other`.
    fn covered_by(&self, other: &Escrow) -> bool {
        let under = |mine: &BTreeMap<String, u64>, theirs: &BTreeMap<String, u64>| {
            mine.iter()
                .all(|(k, v)| theirs.get(k).is_some_and(|t| t >= v))
        };
        under(&self.deposits, &other.deposits)
            && under(&self.withdrawals, &other.withdrawals)
            && self.transfers.iter().all(|(from, to)| {
                other
                    .transfers
                    .get(from)
                    .is_some_and(|theirs| under(to, theirs))
            })
    }

    /// Raises every entry to `other`'s where that is higher; says whether anything changed.
    fn merge(&mut self, other: &Escrow) -> bool {
        fn max_into(mine: &mut BTreeMap<String, u64>, theirs: &BTreeMap<String, u64>) -> bool {
            let mut changed = false;
            for (k, &v) in theirs {
                let entry = mine.entry(k.clone()).or_insert(0);
                if v > *entry {
                    *entry = v;
                    changed = true;
                }
            }
            changed
        }
        let mut changed = max_into(&mut self.deposits, &other.deposits);
        changed |= max_into(&mut self.withdrawals, &other.withdrawals);
        for (from, to) in &other.transfers {
            changed |= max_into(self.transfers.entry(from.clone()).or_default(), to);
        }
        changed
    }

    fn to_json(&self) -> Value {
        json!({
            "deposits": self.deposits,
            "withdrawals": self.withdrawals,
            "transfers": self.transfers,
        })
    }

    /// The state in a gossip message; malformed entries are skipped, never trusted.
    fn from_message(msg: &Message) -> Escrow {
        fn totals(value: Option<&Value>) -> BTreeMap<String, u64> {
            value
                .and_then(Value::as_object)
                .into_iter()
                .flat_map(Map::iter)
                .filter_map(|(k, v)| v.as_u64().map(|v| (k.clone(), v)))
                .collect()
        }
        let transfers = msg
            .get("transfers")
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(Map::iter)
            .map(|(from, to)| (from.clone(), totals(Some(to))))
            .collect();
        Escrow {
            deposits: totals(msg.get("deposits")),
            withdrawals: totals(msg.get("withdrawals")),
            transfers,
        }
    }
}

/// Adds `amount` to `who`'s entry of a grow-only map.
fn raise(map: &mut BTreeMap<String, u64>, who: &str, amount: u64) {
    let entry = map.entry(who.to_string()).or_insert(0);
    *entry = entry.saturating_add(amount);
}

/// What this node knows of one peer's copy of the state.
#[derive(Default)]
struct PeerView {
    /// Everything the peer has confirmed holding: its own states, and ours it acknowledged.
    has: Escrow,
    /// The last state sent to it, with its number, until it is acknowledged.
    sent: Option<(u64, Escrow)>,
}

struct EscrowNode {
    bug: Option<Bug>,
    gossip_every: Duration,
    /// This incarnation's name: the key of its own entries.
    me: String,
    state: Escrow,
    peers: BTreeMap<String, PeerView>,
    /// Withdrawals waiting for rights, oldest first: deadline, request and amount.
    waiting: VecDeque<(Instant, Message, u64)>,
    last_gossip: Option<Instant>,
    next_seq: u64,
}

impl EscrowNode {
    fn new(bug: Option<Bug>, gossip_every: Duration) -> Self {
        EscrowNode {
            bug,
            gossip_every,
            me: String::new(),
            state: Escrow::default(),
            peers: BTreeMap::new(),
            waiting: VecDeque::new(),
            last_gossip: None,
            next_seq: 1,
        }
    }

    fn value(&self) -> i64 {
        // A correct node's value is never negative; the bug's may be, and is shown as it is.
        self.state
            .value()
            .clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    /// Handles a withdrawal of `amount` (> 0).
    fn withdraw(&mut self, node: &Node, msg: Message, amount: u64) {
        let covers = |have: i128| have >= i128::from(amount);
        if self.bug == Some(Bug::LocalCheck) {
            if covers(self.state.value()) {
                raise(&mut self.state.withdrawals, &self.me, amount);
                node.reply(&msg, json!({"type": "add_ok"}));
            } else {
                node.error(&msg, ErrorCode::PreconditionFailed, "balance too low");
            }
            return;
        }
        if covers(self.state.rights(&self.me)) {
            raise(&mut self.state.withdrawals, &self.me, amount);
            return node.reply(&msg, json!({"type": "add_ok"}));
        }
        if !covers(self.state.value()) {
            return node.error(&msg, ErrorCode::PreconditionFailed, "balance too low");
        }
        if self.waiting.len() >= WAITING_MAX {
            return node.error(
                &msg,
                ErrorCode::TemporarilyUnavailable,
                "too many withdrawals waiting for rights",
            );
        }
        self.waiting.push_back((Instant::now() + WAIT, msg, amount));
        self.ask(node);
    }

    /// Asks every peer for the rights the waiting withdrawals lack.
    fn ask(&self, node: &Node) {
        let waiting: i128 = self.waiting.iter().map(|w| i128::from(w.2)).sum();
        let need = waiting - self.state.rights(&self.me).max(0);
        let Ok(need) = u64::try_from(need) else {
            return;
        };
        if need == 0 {
            return;
        }
        for peer in node.peers() {
            node.send(peer, json!({"type": "want", "to": self.me, "amount": need}));
        }
    }

    /// A peer's request for rights: hands over some of ours if we have any to spare.
    fn give(&mut self, msg: &Message) {
        let (Some(to), Some(need)) = (
            msg.get("to").and_then(Value::as_str),
            msg.get("amount").and_then(Value::as_u64),
        ) else {
            return;
        };
        // Rights we hold are ours to spend first: a node with withdrawals of its own waiting
        // gives nothing away, and one that never asks keeps nothing back.
        if to == self.me || !self.waiting.is_empty() {
            return;
        }
        let spare = u64::try_from(self.state.rights(&self.me).max(0)).unwrap_or(u64::MAX);
        // At least what was asked for, and half of what we hold if that is more, so that a node
        // that keeps withdrawing does not have to ask before every withdrawal.
        let grant = spare.min(need.max(spare / 2));
        if grant > 0 {
            let given = self.state.transfers.entry(self.me.clone()).or_default();
            raise(given, to, grant);
        }
    }

    /// Applies the waiting withdrawals this node's rights now cover, oldest first.
    fn serve_waiting(&mut self, node: &Node) {
        let mut rights = self.state.rights(&self.me);
        let mut still = VecDeque::with_capacity(self.waiting.len());
        for (deadline, msg, amount) in std::mem::take(&mut self.waiting) {
            if i128::from(amount) <= rights {
                rights -= i128::from(amount);
                raise(&mut self.state.withdrawals, &self.me, amount);
                node.reply(&msg, json!({"type": "add_ok"}));
            } else {
                still.push_back((deadline, msg, amount));
            }
        }
        self.waiting = still;
    }

    /// Refuses the waiting withdrawals whose time is up: with 22 if the value as this node
    /// knows it no longer covers them, else with 11.
    fn expire(&mut self, node: &Node, now: Instant) {
        while let Some((deadline, _, _)) = self.waiting.front()
            && *deadline <= now
        {
            let Some((_, msg, amount)) = self.waiting.pop_front() else {
                break;
            };
            if self.state.value() < i128::from(amount) {
                node.error(&msg, ErrorCode::PreconditionFailed, "balance too low");
            } else {
                node.error(
                    &msg,
                    ErrorCode::TemporarilyUnavailable,
                    "rights did not arrive in time",
                );
            }
        }
    }

    /// One gossip round: the whole state to every peer that has not confirmed all of it.
    fn gossip(&mut self, node: &Node) {
        for peer in node.peers() {
            let view = self.peers.entry(peer.to_string()).or_default();
            if self.state.covered_by(&view.has) {
                continue;
            }
            let seq = self.next_seq;
            self.next_seq += 1;
            let mut body = self.state.to_json();
            body["type"] = json!("state");
            body["seq"] = json!(seq);
            node.send(peer, body);
            view.sent = Some((seq, self.state.clone()));
        }
    }
}

impl Handler for EscrowNode {
    fn init(&mut self, node: &Node) {
        *self = EscrowNode::new(self.bug, self.gossip_every);
        self.me = incarnation(node.id());
        eprintln!("{} starts as {}", node.id(), self.me);
    }

    fn message(&mut self, node: &Node, msg: Message) {
        let from_peer = node.peers().any(|p| p == msg.src);
        match msg.kind() {
            "add" => match msg.get("delta").and_then(Value::as_i64) {
                Some(delta) if delta >= 0 => {
                    raise(&mut self.state.deposits, &self.me, delta.unsigned_abs());
                    node.reply(&msg, json!({"type": "add_ok"}));
                    // A deposit here is rights here: a waiting withdrawal may now be covered.
                    self.serve_waiting(node);
                }
                Some(delta) => self.withdraw(node, msg, delta.unsigned_abs()),
                None => node.error(
                    &msg,
                    ErrorCode::MalformedRequest,
                    "add without an integer delta",
                ),
            },
            "read" => node.reply(&msg, json!({"type": "read_ok", "value": self.value()})),
            "state" if from_peer => {
                let theirs = Escrow::from_message(&msg);
                self.state.merge(&theirs);
                self.peers
                    .entry(msg.src.clone())
                    .or_default()
                    .has
                    .merge(&theirs);
                if let Some(seq) = msg.get("seq").and_then(Value::as_u64) {
                    node.send(&msg.src, json!({"type": "state_ok", "seq": seq}));
                }
                self.serve_waiting(node);
            }
            "state_ok" if from_peer => {
                let seq = msg.get("seq").and_then(Value::as_u64);
                let view = self.peers.entry(msg.src.clone()).or_default();
                if let Some((sent, state)) = view.sent.take() {
                    if Some(sent) == seq {
                        view.has.merge(&state);
                    } else {
                        // An acknowledgement of an older round: the newer one is still owed.
                        view.sent = Some((sent, state));
                    }
                }
            }
            "want" if from_peer => self.give(&msg),
            _ => node.unknown(&msg),
        }
    }

    fn tick(&mut self, node: &Node, now: Instant) {
        self.expire(node, now);
        let due = self
            .last_gossip
            .is_none_or(|last| now.duration_since(last) >= self.gossip_every);
        if !due {
            return;
        }
        self.last_gossip = Some(now);
        self.gossip(node);
        // Asks lost to a partition or to loss are made again every round while anything waits.
        self.ask(node);
    }
}

fn main() -> ExitCode {
    let args = args_from_env(BUGS, &["gossip-ms"]);
    let gossip_every = args.millis("gossip-ms", GOSSIP_MS);
    run(
        EscrowNode::new(args.bug, gossip_every),
        Some(HOUSEKEEPING.min(gossip_every)),
    )
}

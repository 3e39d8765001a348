//! `counter3`: the seed's three-way counter conflict (spec CLK-2, checked here as MODEL-1).
//!
//! Three regions A, B and C start from the pairwise concurrent G-counter states {A:5,B:3,C:2},
//! {A:4,B:6,C:2} and {A:4,B:3,C:7}. Any region may send its current state to any other at any
//! time, and the network keeps every message it was given: a message may be delivered any number
//! of times, in any order, or never. The claim is that the merge is order-insensitive: once every
//! region has merged every other region's initial state, every region reads 18 (5 + 6 + 7), in
//! every interleaving. The states are the real [`converge_core::GCounter`] and merging is its
//! [`Lattice::join`], so the model checks the shipped code.

use converge_core::{GCounter, Lattice, ReplicaId};
use stateright::{Model, Property};

/// Number of regions.
pub const REGIONS: usize = 3;

/// `always`: once every region has merged every other region's state, each reads 18.
pub const ALL_MERGED_IS_18: &str = "all merged => every region reads 18";
/// `always`: no region ever reads more than 18, whatever was duplicated.
pub const NEVER_ABOVE_18: &str = "no region ever reads more than 18";
/// `sometimes`: a state where every region has merged every other's is reachable.
pub const ALL_MERGED: &str = "every region has merged every other";

/// The model; it has no parameters.
#[derive(Clone, Debug)]
pub struct Counter3;

/// A message in flight: a snapshot of a sender's counter, addressed to one region.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Msg {
    /// The receiving region.
    pub to: usize,
    /// The sender's counter when it sent.
    pub state: GCounter,
}

/// The whole system.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    /// Each region's counter.
    pub regions: [GCounter; REGIONS],
    /// Every message ever sent, sorted, without repeats: delivery does not remove a message, so
    /// the network may duplicate it, and any message may be chosen next, so it may reorder.
    pub network: Vec<Msg>,
}

/// A step.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Region `from` sends its current state to region `to`.
    Send {
        /// The sender.
        from: usize,
        /// The receiver.
        to: usize,
    },
    /// The message at this index of the network is delivered (again, perhaps).
    Deliver(usize),
}

/// The initial state of each region: the seed's three vector clocks read as G-counters.
pub fn initial() -> [GCounter; REGIONS] {
    [[5, 3, 2], [4, 6, 2], [4, 3, 7]].map(|counts| {
        let mut counter = GCounter::new();
        for (replica, by) in counts.into_iter().enumerate() {
            // The counts are tiny, so the increments cannot overflow.
            let _ = counter.increment(ReplicaId(replica as u64), by);
        }
        counter
    })
}

fn all_merged(state: &State) -> bool {
    let initial = initial();
    state
        .regions
        .iter()
        .all(|region| initial.iter().all(|other| other.leq(region)))
}

/// Sorts the counters' per-replica counts so that the network has one canonical order: two states
/// holding the same messages in another order are the same state.
fn sort_key(msg: &Msg) -> (usize, [u64; REGIONS]) {
    let counts = std::array::from_fn(|r| msg.state.count_of(ReplicaId(r as u64)));
    (msg.to, counts)
}

impl Model for Counter3 {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![State {
            regions: initial(),
            network: Vec::new(),
        }]
    }

    fn actions(&self, state: &State, actions: &mut Vec<Action>) {
        for from in 0..REGIONS {
            for to in (0..REGIONS).filter(|&to| to != from) {
                actions.push(Action::Send { from, to });
            }
        }
        actions.extend((0..state.network.len()).map(Action::Deliver));
    }

    fn next_state(&self, state: &State, action: Action) -> Option<State> {
        let mut next = state.clone();
        match action {
            Action::Send { from, to } => {
                let msg = Msg {
                    to,
                    state: state.regions[from].clone(),
                };
                // Sending a snapshot the network already holds adds nothing a duplicate delivery
                // could not do, so it is not a new state.
                if next.network.contains(&msg) {
                    return None;
                }
                next.network.push(msg);
                next.network.sort_by_key(sort_key);
            }
            Action::Deliver(index) => {
                let msg = state.network.get(index)?;
                next.regions[msg.to].join(msg.state.clone());
            }
        }
        Some(next)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always(ALL_MERGED_IS_18, |_, state: &State| {
                !all_merged(state) || state.regions.iter().all(|r| r.value() == 18)
            }),
            Property::always(NEVER_ABOVE_18, |_, state: &State| {
                state.regions.iter().all(|r| r.value() <= 18)
            }),
            Property::sometimes(ALL_MERGED, |_, state: &State| all_merged(state)),
        ]
    }
}

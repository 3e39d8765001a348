//! `seat-reservation`: two regions both "reserve seat 5A" under write-local; a global-quorum
//! conditional write does not let them (checked here as MODEL-4).
//!
//! The claim: when every region accepts writes locally and replicates later, two clients in two
//! regions can both be told they hold the same seat, because each region reads the seat free in
//! its own state before the other's reservation has arrived; replication then merges the two
//! writes (last-writer-wins, ties to the higher client), so one of the two clients was told it
//! holds a seat it does not. The design's fix is to make the reservation a conditional write that
//! needs a majority of regions: each region grants the seat to at most one client, and a client
//! is told it holds the seat only once a majority of the regions have granted it. Two majorities
//! of three regions share a region, and that region granted only one of them.
//!
//! This is an abstract model (a plain stateright [`Model`] over its own small state), not a model
//! of the `converge-core` code: it checks the design argument, not the shipped implementation.
//!
//! - Variant [`Variant::WriteLocal`]: two regions, client `c` at region `c`. A client reserves at
//!   its home region, which tells it "you hold the seat" if the seat is free there and writes the
//!   client's name; any region may later replicate its seat to the other. `always` "at most one
//!   client was told it holds the seat" has a counterexample, and `sometimes` "both clients were
//!   told they hold the seat" has an example: the anomaly is exhibited.
//! - Variant [`Variant::GlobalQuorum`]: three regions; a region grants the seat to the first client
//!   that asks it and refuses every other; a client is told it holds the seat once a majority
//!   (two) of the regions have granted it. `always` "at most one client was told it holds the
//!   seat" holds, with `sometimes` "some client holds the seat".

use stateright::{Model, Property};

/// Number of clients, each trying to reserve the one seat.
pub const CLIENTS: usize = 2;

/// `always`: at most one client was told it holds the seat.
pub const AT_MOST_ONE_HOLDS: &str = "at most one client was told it holds the seat";
/// `sometimes`: some client was told it holds the seat.
pub const SOME_CLIENT_HOLDS: &str = "some client holds the seat";
/// `sometimes` (write-local only): both clients were told they hold the seat.
pub const BOTH_TOLD: &str = "both clients were told they hold the seat";

/// How a reservation is accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// Each of two regions accepts a reservation against its own state; replication merges later.
    WriteLocal,
    /// A reservation needs grants from a majority of three regions, each granting at most once.
    GlobalQuorum,
}

impl Variant {
    /// The number of regions the variant models.
    pub fn regions(self) -> usize {
        match self {
            Variant::WriteLocal => 2,
            Variant::GlobalQuorum => 3,
        }
    }
}

/// The model.
#[derive(Clone, Debug)]
pub struct SeatReservation {
    /// How reservations are accepted.
    pub variant: Variant,
}

impl SeatReservation {
    /// The model of `variant`.
    pub fn new(variant: Variant) -> Self {
        SeatReservation { variant }
    }
}

/// The whole system.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    /// Per region: under write-local, the client its copy of the seat names (if any); under
    /// global quorum, the client it granted the seat to (if any).
    pub seat: Vec<Option<usize>>,
    /// Per client: whether it was told it holds the seat.
    pub told: [bool; CLIENTS],
}

/// A step.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Write-local: the client reserves at its home region, which reads its own copy of the seat.
    ReserveLocal(usize),
    /// Write-local: region `from` replicates its copy of the seat to region `to`, which merges it.
    Replicate {
        /// The sending region.
        from: usize,
        /// The receiving region.
        to: usize,
    },
    /// Global quorum: the client's conditional write reaches `region`, which grants it if it has
    /// granted no one else.
    Ask {
        /// The asking client.
        client: usize,
        /// The region asked.
        region: usize,
    },
    /// Global quorum: the client counts its grants and is told it holds the seat on a majority.
    Decide(usize),
}

/// Last-writer-wins merge of two copies of the seat; concurrent writes tie to the higher client.
fn merge(a: Option<usize>, b: Option<usize>) -> Option<usize> {
    a.max(b)
}

impl Model for SeatReservation {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![State {
            seat: vec![None; self.variant.regions()],
            told: [false; CLIENTS],
        }]
    }

    fn actions(&self, _state: &State, actions: &mut Vec<Action>) {
        let regions = self.variant.regions();
        match self.variant {
            Variant::WriteLocal => {
                actions.extend((0..CLIENTS).map(Action::ReserveLocal));
                for from in 0..regions {
                    for to in (0..regions).filter(|&to| to != from) {
                        actions.push(Action::Replicate { from, to });
                    }
                }
            }
            Variant::GlobalQuorum => {
                for client in 0..CLIENTS {
                    for region in 0..regions {
                        actions.push(Action::Ask { client, region });
                    }
                    actions.push(Action::Decide(client));
                }
            }
        }
    }

    fn next_state(&self, state: &State, action: Action) -> Option<State> {
        let mut next = state.clone();
        match action {
            Action::ReserveLocal(client) => {
                // Client `client`'s home region is region `client`; it reads only its own copy.
                if state.told[client] || state.seat[client].is_some() {
                    return None;
                }
                next.seat[client] = Some(client);
                next.told[client] = true;
            }
            Action::Replicate { from, to } => {
                next.seat[to] = merge(state.seat[to], state.seat[from]);
            }
            Action::Ask { client, region } => {
                if state.seat[region].is_some() {
                    return None; // already granted (to this client or another): nothing changes
                }
                next.seat[region] = Some(client);
            }
            Action::Decide(client) => {
                let grants = state.seat.iter().filter(|&&g| g == Some(client)).count();
                if state.told[client] || 2 * grants <= state.seat.len() {
                    return None;
                }
                next.told[client] = true;
            }
        }
        (next != *state).then_some(next)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        let mut properties = vec![
            Property::always(AT_MOST_ONE_HOLDS, |_, state: &State| {
                state.told.iter().filter(|&&t| t).count() <= 1
            }),
            Property::sometimes(SOME_CLIENT_HOLDS, |_, state: &State| {
                state.told.iter().any(|&t| t)
            }),
        ];
        if self.variant == Variant::WriteLocal {
            properties.push(Property::sometimes(BOTH_TOLD, |_, state: &State| {
                state.told.iter().all(|&t| t)
            }));
        }
        properties
    }
}

//! `clock-skew`: last-writer-wins under clock skew (spec CERT-5 and CLK-3, checked here as
//! MODEL-2).
//!
//! Two regions hold one LWW register. Region A's physical clock runs [`SKEW_MS`] ahead of region
//! B's. A client writes 1 at A; the write replicates to B; the client reads 1 at B and then,
//! causally after that read, writes 2 at B, less than the skew later in true time. Time advances
//! in explicit 1 ms steps, up to [`TIME_MAX_MS`], as part of the model state.
//!
//! Stamped with the local physical clock ([`Stamping::Physical`]), B's write carries a smaller
//! stamp than the write it follows and loses everywhere: a counterexample to "the causally later
//! write wins". Stamped with the real [`converge_core::Hlc`] ([`Stamping::Hlc`]), B observed A's
//! stamp when it received the write, so its own stamp is larger and the later write wins in every
//! interleaving. The register is the real [`converge_core::LwwRegister`] in both variants: only the
//! source of the stamp differs.

use converge_core::{Hlc, HlcTimestamp, Lattice, LwwRegister, ReplicaId};
use stateright::{Model, Property};

/// How far region A's physical clock runs ahead of region B's.
pub const SKEW_MS: u64 = 3;
/// The last true time the model reaches; smaller than the skew, so B's clock never catches up.
pub const TIME_MAX_MS: u64 = 2;
/// The HLC's drift bound; larger than the skew, so B absorbs A's stamps.
const MAX_DRIFT_MS: u64 = 500;

/// `always`: a region that holds the causally later write reads it.
pub const LATER_WINS: &str = "the causally later write wins";
/// `sometimes`: both writes are done and both regions hold the later one.
pub const BOTH_HOLD_LATER: &str = "both regions have received the later write";

/// Where write stamps come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stamping {
    /// The local physical clock, as a wall-clock LWW store does: broken under skew.
    Physical,
    /// The region's hybrid logical clock, as `Replica` does.
    Hlc,
}

/// The model: which stamping the regions use.
#[derive(Clone, Debug)]
pub struct ClockSkew {
    stamping: Stamping,
}

impl ClockSkew {
    /// The model with the given stamping.
    pub fn new(stamping: Stamping) -> Self {
        ClockSkew { stamping }
    }
}

/// One region.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Region {
    /// Its clock (used only by [`Stamping::Hlc`]).
    pub hlc: Hlc,
    /// Its copy of the register.
    pub register: LwwRegister<u8>,
    /// Whether write 2 has reached this copy (written here, or joined from a message).
    pub has_later: bool,
}

/// The client's progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Client {
    /// Nothing done yet.
    Start,
    /// Wrote 1 at A.
    WroteAtA,
    /// Read 1 at B.
    ReadAtB,
    /// Wrote 2 at B.
    WroteAtB,
}

/// A message in flight: the sender's register and whether it carries write 2.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Msg {
    /// The receiving region (0 is A, 1 is B).
    pub to: usize,
    /// The sender's register.
    pub register: LwwRegister<u8>,
    /// Whether the sender held write 2.
    pub has_later: bool,
}

/// The whole system.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    /// True time, in ms.
    pub now_ms: u64,
    /// A and B.
    pub regions: [Region; 2],
    /// The client.
    pub client: Client,
    /// Every message sent, in one canonical order; delivery keeps it, so it may be duplicated.
    pub network: Vec<Msg>,
}

/// A step.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// True time advances by 1 ms.
    Tick,
    /// The client writes 1 at A.
    WriteAtA,
    /// The client reads at B and sees 1.
    ReadAtB,
    /// The client writes 2 at B.
    WriteAtB,
    /// A region sends its register to the other.
    Send(usize),
    /// The message at this index is delivered.
    Deliver(usize),
}

fn physical_ms(now_ms: u64, region: usize) -> u64 {
    if region == 0 {
        now_ms + SKEW_MS
    } else {
        now_ms
    }
}

impl ClockSkew {
    fn write(&self, state: &mut State, region: usize, value: u8) -> Option<()> {
        let physical = physical_ms(state.now_ms, region);
        let r = &mut state.regions[region];
        let stamp = match self.stamping {
            Stamping::Physical => HlcTimestamp::new(physical, 0),
            Stamping::Hlc => r.hlc.now(physical).ok()?,
        };
        r.register.set(ReplicaId(region as u64), stamp, value);
        Some(())
    }
}

impl Model for ClockSkew {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        let region = Region {
            hlc: Hlc::new(MAX_DRIFT_MS),
            register: LwwRegister::new(),
            has_later: false,
        };
        vec![State {
            now_ms: 0,
            regions: [region.clone(), region],
            client: Client::Start,
            network: Vec::new(),
        }]
    }

    fn actions(&self, state: &State, actions: &mut Vec<Action>) {
        if state.now_ms < TIME_MAX_MS {
            actions.push(Action::Tick);
        }
        match state.client {
            Client::Start => actions.push(Action::WriteAtA),
            Client::WroteAtA if state.regions[1].register.get() == Some(&1) => {
                actions.push(Action::ReadAtB);
            }
            Client::ReadAtB => actions.push(Action::WriteAtB),
            _ => {}
        }
        actions.extend([Action::Send(0), Action::Send(1)]);
        actions.extend((0..state.network.len()).map(Action::Deliver));
    }

    fn next_state(&self, state: &State, action: Action) -> Option<State> {
        let mut next = state.clone();
        match action {
            Action::Tick => next.now_ms += 1,
            Action::WriteAtA => {
                self.write(&mut next, 0, 1)?;
                next.client = Client::WroteAtA;
            }
            Action::ReadAtB => next.client = Client::ReadAtB,
            Action::WriteAtB => {
                self.write(&mut next, 1, 2)?;
                next.regions[1].has_later = true;
                next.client = Client::WroteAtB;
            }
            Action::Send(from) => {
                let r = &state.regions[from];
                // An empty register has nothing to replicate.
                r.register.get()?;
                let msg = Msg {
                    to: 1 - from,
                    register: r.register.clone(),
                    has_later: r.has_later,
                };
                if next.network.contains(&msg) {
                    return None;
                }
                next.network.push(msg);
                next.network
                    .sort_by(|a, b| (a.to, a.register.entry()).cmp(&(b.to, b.register.entry())));
            }
            Action::Deliver(index) => {
                let msg = state.network.get(index)?.clone();
                let physical = physical_ms(state.now_ms, msg.to);
                let r = &mut next.regions[msg.to];
                // A message that brings nothing new is a duplicate, which a replica's dedup drops
                // before its clock observes it; letting it bump the HLC's logical counter would
                // also make the state space infinite.
                if msg.register.leq(&r.register) && (r.has_later || !msg.has_later) {
                    return None;
                }
                // A refused stamp (beyond the drift bound) is not joined either, as the replica
                // refuses it; with the bound above the skew it never happens.
                if self.stamping == Stamping::Hlc
                    && let Some(entry) = msg.register.entry()
                {
                    r.hlc.observe(entry.stamp, physical).ok()?;
                }
                r.register.join(msg.register);
                r.has_later |= msg.has_later;
            }
        }
        Some(next)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always(LATER_WINS, |_, state: &State| {
                state
                    .regions
                    .iter()
                    .all(|r| !r.has_later || r.register.get() == Some(&2))
            }),
            Property::sometimes(BOTH_HOLD_LATER, |_, state: &State| {
                state.client == Client::WroteAtB && state.regions.iter().all(|r| r.has_later)
            }),
        ]
    }
}

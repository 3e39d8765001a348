//! Stateright models of converge's design claims: the executable spec, checked exhaustively.
//!
//! Each module is one model and states, in its documentation, the claim of `docs/spec.md` it
//! checks. Every `always` property is paired with a `sometimes` property, so that a property
//! cannot pass only because the states that would test it are unreachable. Models use the real
//! types of `converge-core` (the CRDTs, the HLC, the sans-IO `Replica`) wherever they can, so that
//! a model checks this very code rather than a second description of it.
//!
//! [`catalogue`] lists every model and broken variant with what is expected of each property;
//! [`Entry::check`] runs one and says whether each expectation held, and [`Entry::explore`]
//! serves it in stateright's Explorer. The `converge model` command
//! and `tests/models.rs` both go through it, so the CLI and the tests agree by construction.

pub mod anti_entropy;
pub mod bounded_counter;
pub mod cas;
pub mod clock_skew;
pub mod consensus;
pub mod counter3;
pub mod global_quorum;
pub mod replication;
pub mod seat_consensus;
pub mod seat_reservation;
pub mod sessions;
pub mod sessions_actor;

use converge_core::replica::Consistency;
use stateright::{Checker, Expectation, Model};
use std::hash::Hash;
use std::net::{SocketAddr, TcpListener};
use std::time::Instant;

/// What one property of a model is expected to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// An `always` property that must hold in every reachable state.
    Holds,
    /// An `always` property of a deliberately broken variant, which must have a counterexample.
    Counterexample,
    /// A `sometimes` property, whose example must be found.
    Example,
}

/// The outcome of checking one property.
#[derive(Clone, Debug)]
pub struct PropertyReport {
    /// The property's name, as given to stateright.
    pub name: &'static str,
    /// What was expected of it.
    pub expect: Expect,
    /// Whether the checker discovered something: a counterexample for an `always` property, an
    /// example for a `sometimes` one.
    pub discovered: bool,
    /// The discovered path as its actions, if any.
    pub path: Option<String>,
}

impl PropertyReport {
    /// Whether the expectation held.
    pub fn ok(&self) -> bool {
        match self.expect {
            Expect::Holds => !self.discovered,
            Expect::Counterexample | Expect::Example => self.discovered,
        }
    }

    /// A one-line verdict for the CLI.
    pub fn verdict(&self) -> &'static str {
        match (self.expect, self.discovered) {
            (Expect::Holds, false) => "holds",
            (Expect::Holds, true) => "COUNTEREXAMPLE FOUND (unexpected)",
            (Expect::Counterexample, true) => "counterexample found (expected)",
            (Expect::Counterexample, false) => "HOLDS (a counterexample was expected)",
            (Expect::Example, true) => "example found",
            (Expect::Example, false) => "NO EXAMPLE FOUND",
        }
    }
}

/// The outcome of checking one model.
#[derive(Clone, Debug)]
pub struct Report {
    /// The model's name in the catalogue.
    pub name: &'static str,
    /// States generated, duplicates included.
    pub states: usize,
    /// Distinct states.
    pub unique_states: usize,
    /// The deepest path explored.
    pub max_depth: usize,
    /// Wall time of the check.
    pub seconds: f64,
    /// One entry per property, in the model's order.
    pub properties: Vec<PropertyReport>,
}

impl Report {
    /// Whether every expectation held.
    pub fn ok(&self) -> bool {
        self.properties.iter().all(PropertyReport::ok)
    }
}

/// One checkable model (or broken variant of one) in the catalogue.
pub struct Entry {
    /// The name `converge model check NAME` takes.
    pub name: &'static str,
    /// One line on what it checks.
    pub about: &'static str,
    /// The depth bound used when none is given; `None` explores the whole (finite) state space.
    pub default_depth: Option<usize>,
    run: fn(&'static str, Option<usize>) -> Report,
    explore: fn(SocketAddr, Option<usize>),
}

/// Why the explorer could not be served.
#[derive(Debug)]
pub enum ExploreError {
    /// The address is not a loopback address: the explorer has no authentication and lets any
    /// visitor start a full check, so it is served only to this machine.
    NotLoopback(SocketAddr),
    /// The address could not be bound (most often: it is in use).
    Bind(SocketAddr, std::io::Error),
}

impl std::fmt::Display for ExploreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExploreError::NotLoopback(addr) => write!(
                f,
                "{addr} is not a loopback address; the explorer has no authentication, so it \
                 is served on 127.0.0.1 or [::1] only"
            ),
            ExploreError::Bind(addr, e) => write!(f, "cannot listen on {addr}: {e}"),
        }
    }
}

impl std::error::Error for ExploreError {}

impl Entry {
    /// Checks the model breadth-first, up to `depth` steps (`None`: the entry's default).
    pub fn check(&self, depth: Option<usize>) -> Report {
        (self.run)(self.name, depth.or(self.default_depth))
    }

    /// Serves stateright's Explorer (its web UI) for this model on `addr`, exploring on demand
    /// up to `depth` steps (`None`: the entry's default). Returns only with an error: once the
    /// server is about to start, `ready` is called (to tell the user where to look), and it
    /// serves until the process ends.
    ///
    /// Stateright's server panics when it cannot bind, so the address is first bound here and
    /// released, which turns the common failure (the port is in use) into an error. Another
    /// process could still take the port in between; that race ends in stateright's panic.
    pub fn explore(
        &self,
        addr: SocketAddr,
        depth: Option<usize>,
        ready: impl FnOnce(),
    ) -> Result<(), ExploreError> {
        if !addr.ip().is_loopback() {
            return Err(ExploreError::NotLoopback(addr));
        }
        drop(TcpListener::bind(addr).map_err(|e| ExploreError::Bind(addr, e))?);
        ready();
        (self.explore)(addr, depth.or(self.default_depth));
        Ok(())
    }
}

/// Every model and broken variant, in the order `converge model list` prints them.
pub fn catalogue() -> &'static [Entry] {
    &CATALOGUE
}

/// The entry named `name`, if any.
pub fn find(name: &str) -> Option<&'static Entry> {
    CATALOGUE.iter().find(|e| e.name == name)
}

static CATALOGUE: [Entry; 26] = [
    Entry {
        name: "counter3",
        about: "MODEL-1 (CLK-2): three regions' G-counters {A:5,B:3,C:2} {A:4,B:6,C:2} {A:4,B:3,C:7} end at 18",
        default_depth: None,
        run: |name, depth| check(name, counter3::Counter3, depth, &[]),
        explore: |addr, depth| serve(counter3::Counter3, addr, depth),
    },
    Entry {
        name: "clock-skew-physical",
        about: "MODEL-2 (CERT-5): LWW stamped by skewed physical clocks loses the causally later write",
        default_depth: None,
        run: |name, depth| {
            check(
                name,
                clock_skew::ClockSkew::new(clock_skew::Stamping::Physical),
                depth,
                &[clock_skew::LATER_WINS],
            )
        },
        explore: |addr, depth| {
            serve(
                clock_skew::ClockSkew::new(clock_skew::Stamping::Physical),
                addr,
                depth,
            )
        },
    },
    Entry {
        name: "clock-skew-hlc",
        about: "MODEL-2 (CERT-5, CLK-3): LWW stamped by the HLC keeps the causally later write under skew",
        default_depth: None,
        run: |name, depth| {
            check(
                name,
                clock_skew::ClockSkew::new(clock_skew::Stamping::Hlc),
                depth,
                &[],
            )
        },
        explore: |addr, depth| {
            serve(
                clock_skew::ClockSkew::new(clock_skew::Stamping::Hlc),
                addr,
                depth,
            )
        },
    },
    Entry {
        name: "sessions",
        about: "MODEL-3 (REPL-5): the real Replica gives read-your-writes across regions with a token",
        default_depth: Some(sessions::DEPTH),
        run: |name, depth| {
            check(
                name,
                sessions::Sessions::new(sessions::Variant::Correct),
                depth,
                &[],
            )
        },
        explore: |addr, depth| {
            serve(
                sessions::Sessions::new(sessions::Variant::Correct),
                addr,
                depth,
            )
        },
    },
    Entry {
        name: "sessions-no-token",
        about: "MODEL-3 (REPL-5): a client that drops its token reads its write stale (expected counterexample)",
        default_depth: Some(sessions::DEPTH),
        run: |name, depth| {
            check(
                name,
                sessions::Sessions::new(sessions::Variant::DropToken),
                depth,
                &[sessions::READ_YOUR_WRITES],
            )
        },
        explore: |addr, depth| {
            serve(
                sessions::Sessions::new(sessions::Variant::DropToken),
                addr,
                depth,
            )
        },
    },
    Entry {
        name: "sessions-ignores-token",
        about: "MODEL-3 (REPL-5): Bug::ReadIgnoresToken reads stale although the client sends its token",
        default_depth: Some(sessions::DEPTH),
        run: |name, depth| {
            check(
                name,
                sessions::Sessions::new(sessions::Variant::ReadIgnoresToken),
                depth,
                &[sessions::READ_YOUR_WRITES],
            )
        },
        explore: |addr, depth| {
            serve(
                sessions::Sessions::new(sessions::Variant::ReadIgnoresToken),
                addr,
                depth,
            )
        },
    },
    Entry {
        name: "sessions-actor",
        about: "MODEL-3 (REPL-5): read-your-writes with the real Replica as a stateright Actor",
        default_depth: Some(sessions_actor::DEPTH),
        run: |name, depth| {
            check(
                name,
                sessions_actor::model(sessions::Variant::Correct),
                depth,
                &[],
            )
        },
        explore: |addr, depth| {
            serve(
                sessions_actor::model(sessions::Variant::Correct),
                addr,
                depth,
            )
        },
    },
    Entry {
        name: "sessions-actor-no-token",
        about: "MODEL-3 (REPL-5): the actor model without the token reads stale (expected counterexample)",
        default_depth: Some(sessions_actor::DEPTH),
        run: |name, depth| {
            check(
                name,
                sessions_actor::model(sessions::Variant::DropToken),
                depth,
                &[sessions::READ_YOUR_WRITES],
            )
        },
        explore: |addr, depth| {
            serve(
                sessions_actor::model(sessions::Variant::DropToken),
                addr,
                depth,
            )
        },
    },
    Entry {
        name: "sessions-actor-ignores-token",
        about: "MODEL-3 (REPL-5): the actor model with Bug::ReadIgnoresToken reads stale (expected counterexample)",
        default_depth: Some(sessions_actor::DEPTH),
        run: |name, depth| {
            check(
                name,
                sessions_actor::model(sessions::Variant::ReadIgnoresToken),
                depth,
                &[sessions::READ_YOUR_WRITES],
            )
        },
        explore: |addr, depth| {
            serve(
                sessions_actor::model(sessions::Variant::ReadIgnoresToken),
                addr,
                depth,
            )
        },
    },
    Entry {
        name: "seat-consensus",
        about: "MODEL-4: two set-if-absent CAS through three real Replicas (duplicating network) give seat 5A to at most one client",
        default_depth: Some(seat_consensus::DEPTH),
        run: |name, depth| {
            check(
                name,
                seat_consensus::model(seat_consensus::Variant::Consensus),
                depth,
                &[],
            )
        },
        explore: |addr, depth| {
            serve(
                seat_consensus::model(seat_consensus::Variant::Consensus),
                addr,
                depth,
            )
        },
    },
    Entry {
        name: "seat-consensus-local-one",
        about: "MODEL-4: reserved by a LocalOne read then LWW write on real Replicas, both clients get seat 5A (expected counterexample)",
        default_depth: Some(seat_consensus::DEPTH_LOCAL_ONE),
        run: |name, depth| {
            check(
                name,
                seat_consensus::model(seat_consensus::Variant::LocalOne),
                depth,
                &[seat_consensus::AT_MOST_ONE_RESERVES],
            )
        },
        explore: |addr, depth| {
            serve(
                seat_consensus::model(seat_consensus::Variant::LocalOne),
                addr,
                depth,
            )
        },
    },
    Entry {
        name: "seat-reservation-write-local",
        about: "MODEL-4 (abstract design argument): under write-local two regions both reserve seat 5A (expected counterexample)",
        default_depth: None,
        run: |name, depth| {
            check(
                name,
                seat_reservation::SeatReservation::new(seat_reservation::Variant::WriteLocal),
                depth,
                &[seat_reservation::AT_MOST_ONE_HOLDS],
            )
        },
        explore: |addr, depth| {
            serve(
                seat_reservation::SeatReservation::new(seat_reservation::Variant::WriteLocal),
                addr,
                depth,
            )
        },
    },
    Entry {
        name: "seat-reservation-global-quorum",
        about: "MODEL-4 (abstract design argument): a majority-of-regions conditional write gives seat 5A to at most one client",
        default_depth: None,
        run: |name, depth| {
            check(
                name,
                seat_reservation::SeatReservation::new(seat_reservation::Variant::GlobalQuorum),
                depth,
                &[],
            )
        },
        explore: |addr, depth| {
            serve(
                seat_reservation::SeatReservation::new(seat_reservation::Variant::GlobalQuorum),
                addr,
                depth,
            )
        },
    },
    Entry {
        name: "global-quorum",
        about: "MODEL-5: registers at GlobalQuorum on three real Replicas are linearizable",
        default_depth: Some(global_quorum::DEPTH),
        run: |name, depth| {
            check(
                name,
                global_quorum::model(Consistency::GlobalQuorum),
                depth,
                &[],
            )
        },
        explore: |addr, depth| serve(global_quorum::model(Consistency::GlobalQuorum), addr, depth),
    },
    Entry {
        name: "global-quorum-local-one",
        about: "MODEL-5: the same registers at LocalOne are not linearizable (expected counterexample)",
        default_depth: Some(global_quorum::DEPTH),
        run: |name, depth| {
            check(
                name,
                global_quorum::model(Consistency::LocalOne),
                depth,
                &[global_quorum::LINEARIZABLE],
            )
        },
        explore: |addr, depth| serve(global_quorum::model(Consistency::LocalOne), addr, depth),
    },
    Entry {
        name: "replication",
        about: "MODEL-6: writes on the real Replica survive loss, duplication, reordering and crashes, and converge",
        default_depth: Some(replication::DEPTH),
        run: |name, depth| {
            check(
                name,
                replication::model(replication::Variant::Correct),
                depth,
                &[],
            )
        },
        explore: |addr, depth| {
            serve(
                replication::model(replication::Variant::Correct),
                addr,
                depth,
            )
        },
    },
    Entry {
        name: "replication-no-dedup",
        about: "MODEL-6: Bug::ApplyWithoutDedup counts a duplicated batch twice (expected counterexample)",
        default_depth: Some(replication::DEPTH_NO_DEDUP),
        run: |name, depth| {
            check(
                name,
                replication::model(replication::Variant::NoDedup),
                depth,
                &[replication::NEVER_COUNTS_TWICE],
            )
        },
        explore: |addr, depth| {
            serve(
                replication::model(replication::Variant::NoDedup),
                addr,
                depth,
            )
        },
    },
    Entry {
        name: "anti-entropy",
        about: "MODEL-7: after a partition lost the writes and the oplog truncated them, Merkle anti-entropy converges",
        default_depth: None,
        run: |name, depth| {
            check(
                name,
                anti_entropy::model(anti_entropy::Variant::Pulls),
                depth,
                &[],
            )
        },
        explore: |addr, depth| {
            serve(
                anti_entropy::model(anti_entropy::Variant::Pulls),
                addr,
                depth,
            )
        },
    },
    Entry {
        name: "anti-entropy-off",
        about: "MODEL-7: without anti-entropy rounds the same replicas stay apart (expected counterexample)",
        default_depth: None,
        run: |name, depth| {
            check(
                name,
                anti_entropy::model(anti_entropy::Variant::NoPulls),
                depth,
                &[anti_entropy::CONVERGED_WHEN_QUIESCENT],
            )
        },
        explore: |addr, depth| {
            serve(
                anti_entropy::model(anti_entropy::Variant::NoPulls),
                addr,
                depth,
            )
        },
    },
    Entry {
        name: "anti-entropy-skips-subtree",
        about: "MODEL-7: Bug::AeSkipsSubtree claims what it never shipped and stays apart (expected counterexample)",
        default_depth: None,
        run: |name, depth| {
            check(
                name,
                anti_entropy::model(anti_entropy::Variant::SkipsSubtree),
                depth,
                &[anti_entropy::CONVERGED_WHEN_QUIESCENT],
            )
        },
        explore: |addr, depth| {
            serve(
                anti_entropy::model(anti_entropy::Variant::SkipsSubtree),
                addr,
                depth,
            )
        },
    },
    Entry {
        name: "consensus-seat",
        about: "MODEL-9: two set-if-absent CAS on the real Paxos core (3 acceptors, lossy duplicating network, a restart) give seat 5A to at most one client",
        default_depth: Some(consensus::DEPTH),
        run: |name, depth| {
            check(
                name,
                consensus::model(consensus::Variant::Correct),
                depth,
                &[],
            )
        },
        explore: |addr, depth| serve(consensus::model(consensus::Variant::Correct), addr, depth),
    },
    Entry {
        name: "consensus-seat-forgets-promise",
        about: "MODEL-9: an acceptor that forgets its promise on restart lets two values be chosen (expected counterexample)",
        default_depth: Some(consensus::DEPTH_FORGETS_PROMISE),
        run: |name, depth| {
            check(
                name,
                consensus::model(consensus::Variant::ForgetsPromise),
                depth,
                &[consensus::AT_MOST_ONE_CHOSEN],
            )
        },
        explore: |addr, depth| {
            serve(
                consensus::model(consensus::Variant::ForgetsPromise),
                addr,
                depth,
            )
        },
    },
    Entry {
        name: "cas-linearizable",
        about: "MODEL-10: CAS and linearizable reads of a consensus register on three real Replicas (duplication, reordering, a restart) are linearizable",
        default_depth: Some(cas::DEPTH),
        run: |name, depth| check(name, cas::model(cas::Variant::Correct), depth, &[]),
        explore: |addr, depth| serve(cas::model(cas::Variant::Correct), addr, depth),
    },
    Entry {
        name: "cas-linearizable-decided-locally",
        about: "MODEL-10: Bug::CasDecidedLocally lets both set-if-absent CAS succeed: not linearizable (expected counterexample)",
        default_depth: Some(cas::DEPTH_DECIDED_LOCALLY),
        run: |name, depth| {
            check(
                name,
                cas::model(cas::Variant::DecidedLocally),
                depth,
                &[cas::LINEARIZABLE],
            )
        },
        explore: |addr, depth| serve(cas::model(cas::Variant::DecidedLocally), addr, depth),
    },
    Entry {
        name: "bounded-counter",
        about: "MODEL-11: three replicas of the real BoundedCounter (increments, rights transfers, decrements within rights; lossy duplicating network) never read below 0",
        default_depth: None,
        run: |name, depth| {
            check(
                name,
                bounded_counter::model(bounded_counter::Variant::Rights),
                depth,
                &[],
            )
        },
        explore: |addr, depth| {
            serve(
                bounded_counter::model(bounded_counter::Variant::Rights),
                addr,
                depth,
            )
        },
    },
    Entry {
        name: "bounded-counter-value-check",
        about: "MODEL-11: decrements checked against the local value instead of rights read below 0 (expected counterexample)",
        default_depth: None,
        run: |name, depth| {
            check(
                name,
                bounded_counter::model(bounded_counter::Variant::ValueCheck),
                depth,
                &[bounded_counter::NEVER_BELOW_ZERO],
            )
        },
        explore: |addr, depth| {
            serve(
                bounded_counter::model(bounded_counter::Variant::ValueCheck),
                addr,
                depth,
            )
        },
    },
];

/// Serves `model` in stateright's Explorer on `addr` (see [`Entry::explore`]).
fn serve<M>(model: M, addr: SocketAddr, depth: Option<usize>)
where
    M: Model + Send + Sync + 'static,
    M::State: Hash + Send + Sync + Clone + PartialEq + std::fmt::Debug + 'static,
    M::Action: Clone + PartialEq + std::fmt::Debug + Send + Sync,
{
    let mut builder = model.checker();
    if let Some(depth) = depth {
        builder = builder.target_max_depth(depth);
    }
    builder.serve(addr);
}

/// Runs `model` breadth-first on one thread, so that the state counts are deterministic and can
/// be pinned by the tests, and classifies each property against `counterexamples` (the `always`
/// properties the variant is built to break).
fn check<M>(
    name: &'static str,
    model: M,
    depth: Option<usize>,
    counterexamples: &[&'static str],
) -> Report
where
    M: Model + Send + Sync + 'static,
    M::State: Hash + Send + Sync + Clone + PartialEq + 'static,
    M::Action: Clone + PartialEq + std::fmt::Debug,
{
    let properties = model.properties();
    let started = Instant::now();
    let mut builder = model.checker();
    if let Some(depth) = depth {
        builder = builder.target_max_depth(depth);
    }
    let checker = builder.spawn_bfs().join();
    let seconds = started.elapsed().as_secs_f64();
    let properties = properties
        .iter()
        .map(|p| {
            let expect = match p.expectation {
                Expectation::Sometimes => Expect::Example,
                _ if counterexamples.contains(&p.name) => Expect::Counterexample,
                _ => Expect::Holds,
            };
            // The actions alone: the states of the session model hold whole replicas, whose
            // debug rendering would bury the few steps that matter.
            let path = checker.discovery(p.name).map(|path| {
                let steps: Vec<String> = path
                    .into_actions()
                    .iter()
                    .map(|a| format!("{a:?}"))
                    .collect();
                format!("    path: {}", steps.join(" -> "))
            });
            PropertyReport {
                name: p.name,
                expect,
                discovered: path.is_some(),
                path,
            }
        })
        .collect();
    Report {
        name,
        states: checker.state_count(),
        unique_states: checker.unique_state_count(),
        max_depth: checker.max_depth(),
        seconds,
        properties,
    }
}

//! Deterministic multi-replica tests of `Replica`, driven by hand through a tiny message pump.
//!
//! The pump (`Sim`) owns virtual time, the network and each replica's "disk". It jumps to the
//! next event (a delivery or the earliest `poll_timeout`), and draws loss, duplication and
//! latency (hence reordering) from one seeded SplitMix64 stream, so every run is reproducible
//! from its seed; failing proptest cases print theirs. After every input it drains the outputs
//! in the documented order: durable delta first (applied to the replica's `Durable`), then
//! transmits, then replies.
//!
//! `pump` is that pump, `scenarios` the hand-written cases, `properties` the randomized ones,
//! `escrow` the bounded counters (hand-written cases and a seeded randomized run), `residency`
//! the keys pinned to a set of regions (a randomized run that checks every transmit and store).

mod escrow;
mod properties;
mod pump;
mod residency;
mod scenarios;
mod strong;

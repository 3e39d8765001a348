//! Clocks: how converge orders events.
//!
//! - [`VectorClock`]: one counter per replica, the partial order of causality.
//! - [`Hlc`]: the hybrid logical clock, physical time plus a logical counter, used to stamp
//!   last-writer-wins writes so that causally later writes win even under clock skew.
//! - [`Dot`] and [`CausalContext`]: single events and compact sets of them; the backbone of the
//!   add-wins set and the multi-value register.
//! - [`Dvv`]: a dotted version vector, the identity and causal past of one write.

mod dot;
mod dvv;
mod hlc;
mod vector;

pub use dot::{CausalContext, Dot};
pub use dvv::Dvv;
pub use hlc::{ClockError, Hlc, HlcTimestamp};
pub use vector::{Causality, VectorClock};

//! Where the services' randomness comes from: the caller's [`Dice`], and the two ways the
//! services roll it.
//!
//! Invariant: every random choice a service makes goes through [`roll`] or [`pick`], which fold
//! the dice's answer into range and skip the dice for a choice of one, so a seeded dice replays
//! a run exactly and a careless one cannot make a service misbehave.

/// The caller's source of randomness: every choice a service makes goes through it, so a seeded
/// dice replays a run exactly.
///
/// Any `FnMut(u64) -> u64` is a dice.
pub trait Dice {
    /// A number in `0..n`; `n` is at least 2. A result out of range is folded into range, so a
    /// careless dice cannot make a service misbehave.
    fn below(&mut self, n: u64) -> u64;
}

impl<F: FnMut(u64) -> u64> Dice for F {
    fn below(&mut self, n: u64) -> u64 {
        self(n)
    }
}

/// The harness's own seeded stream is a dice, so the run loop hands it over as it is.
impl Dice for crate::harness::rng::SeededDice {
    fn below(&mut self, n: u64) -> u64 {
        crate::harness::rng::SeededDice::below(self, n)
    }
}

/// Rolls `0..n`. A choice of one is no choice, so the dice is not consulted for it; the dice's
/// answer is folded into range rather than trusted.
pub(super) fn roll(dice: &mut dyn Dice, n: u64) -> u64 {
    if n <= 1 { 0 } else { dice.below(n) % n }
}

/// Picks an index into a collection of `len` elements.
pub(super) fn pick(dice: &mut dyn Dice, len: usize) -> usize {
    let n = u64::try_from(len).unwrap_or(u64::MAX);
    // The roll is below `n`, which came from a `usize`, so it converts back.
    usize::try_from(roll(dice, n)).unwrap_or(0)
}

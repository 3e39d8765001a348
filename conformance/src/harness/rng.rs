//! The harness's one source of randomness: a seeded ChaCha stream. Same seed, same decisions.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng as _, SeedableRng};

/// A seeded random stream with the few draws the harness needs. It is one kind of dice: the
/// services roll any [`Dice`](crate::harness::services::Dice), and this is the seeded one the run
/// loop hands them.
#[derive(Clone, Debug)]
pub struct SeededDice {
    rng: ChaCha8Rng,
}

impl SeededDice {
    /// The stream for `seed`.
    pub fn new(seed: u64) -> Self {
        SeededDice {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// An independent stream derived from this seed for one purpose (`salt`), so that adding
    /// draws in one part of the harness does not shift another's decisions.
    pub fn fork(seed: u64, salt: u64) -> Self {
        SeededDice::new(seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// Uniform in `0..n` (`n > 0`), without modulo bias (Lemire's method).
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        loop {
            let m = u128::from(self.rng.next_u64()) * u128::from(n);
            let low = m as u64;
            if low >= n.wrapping_neg() % n {
                return (m >> 64) as u64;
            }
        }
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Exponentially distributed with the given mean.
    pub fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }
}

//! Seeded randomness for the split, the initial weights and the batch order, on top of the
//! crate's `SplitMix64`, so every run draws the same numbers on every platform.

use dion_kernel::SplitMix64;

/// The crate's generator plus the few draws the example needs.
#[derive(Clone, Debug)]
pub struct Rng {
    inner: SplitMix64,
}

impl Rng {
    /// Starts the stream at `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            inner: SplitMix64::new(seed),
        }
    }

    /// Starts an independent stream for one purpose (split, initialisation, batch order), so that
    /// drawing more numbers for one purpose does not change the numbers drawn for another.
    pub fn for_stream(seed: u64, stream: u64) -> Self {
        // Mix the stream id in with an odd multiplier, then take one output as the new seed, so
        // nearby (seed, stream) pairs start far apart in the sequence.
        let mut mixer = SplitMix64::new(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
        Self::new(mixer.next_u64())
    }

    /// Returns the next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }

    /// Returns a uniform `f64` in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        self.inner.next_f64()
    }

    /// Returns a uniform `f64` in `[-bound, bound)`.
    pub fn uniform_symmetric(&mut self, bound: f64) -> f64 {
        (2.0 * self.next_f64() - 1.0) * bound
    }

    /// Returns a uniform integer in `0..n` without modulo bias, by Lemire's multiply-and-reject
    /// method ("Fast random integer generation in an interval", ACM TOMACS 2019).
    ///
    /// # Panics
    /// If `n == 0`.
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "below(0) has no value to return");
        let n = n as u64;
        // 2⁶⁴ mod n: products whose low half falls below it would make small values more likely.
        let threshold = n.wrapping_neg() % n;
        loop {
            let product = u128::from(self.next_u64()) * u128::from(n);
            if (product as u64) >= threshold {
                return (product >> 64) as usize;
            }
        }
    }

    /// Shuffles `items` in place (Fisher–Yates), every permutation equally likely.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

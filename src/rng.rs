//! A small seeded generator for initial factors: the same seed gives the same bits on every
//! target.
//!
//! SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number generators", 2014) for
//! the integers, and the Box-Muller transform in `f64` with libm's `log`, `cos` and `sqrt` for
//! Gaussian values. libm is plain Rust, so x86_64, Arm and RISC-V compute identical values. This
//! is not a cryptographic generator and is not meant for statistics beyond initialisation.

/// SplitMix64: a 64-bit state advanced by a fixed odd constant and mixed by two multiplies.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator started from `seed`.
    pub const fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform value in `[0, 1)` with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A standard normal value (mean 0, variance 1), by Box-Muller; one value per call.
    pub fn next_gaussian(&mut self) -> f64 {
        // 1 − u lies in (0, 1], so the logarithm is finite.
        let u1 = 1.0 - self.next_f64();
        let u2 = self.next_f64();
        libm::sqrt(-2.0 * libm::log(u1)) * libm::cos(core::f64::consts::TAU * u2)
    }

    /// Fills `out` with standard normal values rounded to `T`.
    pub fn fill_gaussian<T: crate::Scalar>(&mut self, out: &mut [T]) {
        for value in out {
            *value = T::from_f64(self.next_gaussian());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SplitMix64;

    #[test]
    fn splitmix_first_outputs() {
        // Reference values of SplitMix64 from seed 0, as published with the algorithm
        // (e.g. the test vectors of the xoshiro authors' splitmix64.c).
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(rng.next_u64(), 0x6e78_9e6a_a1b9_65f4);
    }

    #[test]
    fn gaussian_moments_are_plausible() {
        let mut rng = SplitMix64::new(7);
        let n = 20_000;
        let (mut sum, mut sum_sq) = (0.0, 0.0);
        for _ in 0..n {
            let z = rng.next_gaussian();
            sum += z;
            sum_sq += z * z;
        }
        let mean = sum / n as f64;
        let variance = sum_sq / n as f64 - mean * mean;
        // Standard error of the mean is 1/√n ≈ 0.007; of the variance √(2/n) ≈ 0.01. Five
        // standard errors keep the test deterministic-safe for this fixed seed and still fail
        // for a wrong transform.
        assert!(mean.abs() < 0.035, "mean {mean}");
        assert!((variance - 1.0).abs() < 0.05, "variance {variance}");
    }
}

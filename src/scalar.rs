//! The floating-point element types the crate computes with.

use core::fmt::{Debug, Display};
use core::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Sub, SubAssign};

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// An IEEE 754 binary floating-point type: `f32` or `f64`.
///
/// The trait is sealed: the kernels rely on round-to-nearest arithmetic without fused
/// multiply-add, on `sqrt` being correctly rounded, and on the exponent range of the two IEEE
/// formats (see `scale_exponent`), so other types cannot implement it.
pub trait Scalar:
    sealed::Sealed
    + Copy
    + Default
    + PartialEq
    + PartialOrd
    + Debug
    + Display
    + Send
    + Sync
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
{
    /// Additive identity.
    const ZERO: Self;
    /// Multiplicative identity.
    const ONE: Self;
    /// Machine epsilon: the gap between 1 and the next larger number (2⁻²³ or 2⁻⁵²).
    const EPSILON: Self;
    /// Largest finite value.
    const MAX: Self;
    /// Smallest positive normal value.
    const MIN_POSITIVE: Self;
    /// Largest exponent `e` such that `2^e` is finite (127 or 1023).
    const MAX_EXP2: i32;
    /// Number of bytes of one value, for size reports.
    const BYTES: usize;

    /// Correctly rounded square root, from `libm`.
    fn sqrt(self) -> Self;
    /// Square root where an approximation is acceptable (AdamW's `√v`): micromath's for `f32`
    /// with the `micromath` feature, otherwise the same as [`sqrt`](Self::sqrt).
    fn sqrt_approx(self) -> Self;
    /// Absolute value.
    fn abs(self) -> Self;
    /// `true` unless the value is NaN or ±∞.
    fn is_finite(self) -> bool;
    /// `true` for NaN.
    fn is_nan(self) -> bool;
    /// Converts from `f64`, rounding to nearest.
    fn from_f64(value: f64) -> Self;
    /// Converts to `f64` exactly.
    fn to_f64(self) -> f64;
    /// Converts a count, rounding to nearest (exact below 2²⁴ for `f32`).
    fn from_usize(value: usize) -> Self;
    /// `2^e` for `-MAX_EXP2 + 1 ≤ e ≤ MAX_EXP2`, built from the exponent bits, so it is exact.
    fn exp2i(e: i32) -> Self;
    /// `⌊log₂|self|⌋` for a finite non-zero normal value, read from the exponent bits; subnormal
    /// values return the exponent of the smallest normal value.
    fn exponent(self) -> i32;
    /// The raw bits, zero-extended to 64 bits, for bit-exact comparisons and hashes.
    fn to_bits_u64(self) -> u64;
    /// `max(|self|, |x|)`, and a NaN if either is NaN.
    ///
    /// Compares the bit patterns with the sign bit cleared as unsigned integers: for
    /// non-negative IEEE values integer order is numeric order, and every NaN pattern lies above
    /// that of `+∞`. So a running maximum keeps the first NaN it meets (or a larger NaN pattern)
    /// without a separate NaN test, at the cost of one integer comparison.
    fn max_magnitude(self, x: Self) -> Self;
}

impl Scalar for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const EPSILON: Self = f32::EPSILON;
    const MAX: Self = f32::MAX;
    const MIN_POSITIVE: Self = f32::MIN_POSITIVE;
    const MAX_EXP2: i32 = 127;
    const BYTES: usize = 4;

    #[inline(always)]
    fn sqrt(self) -> Self {
        crate::math::sqrt_f32(self)
    }

    #[inline(always)]
    fn sqrt_approx(self) -> Self {
        crate::math::sqrt_approx_f32(self)
    }

    #[inline(always)]
    fn abs(self) -> Self {
        f32::from_bits(self.to_bits() & 0x7fff_ffff)
    }

    #[inline(always)]
    fn is_finite(self) -> bool {
        f32::is_finite(self)
    }

    #[inline(always)]
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }

    #[inline(always)]
    fn from_f64(value: f64) -> Self {
        value as f32
    }

    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }

    #[inline(always)]
    fn from_usize(value: usize) -> Self {
        value as f32
    }

    #[inline(always)]
    fn exp2i(e: i32) -> Self {
        debug_assert!((-126..=127).contains(&e));
        f32::from_bits(((e + 127) as u32) << 23)
    }

    #[inline(always)]
    fn exponent(self) -> i32 {
        let biased = ((self.to_bits() >> 23) & 0xff) as i32;
        biased.max(1) - 127
    }

    #[inline(always)]
    fn to_bits_u64(self) -> u64 {
        self.to_bits() as u64
    }

    #[inline(always)]
    fn max_magnitude(self, x: Self) -> Self {
        const MAGNITUDE: u32 = 0x7fff_ffff;
        f32::from_bits((self.to_bits() & MAGNITUDE).max(x.to_bits() & MAGNITUDE))
    }
}

impl Scalar for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const EPSILON: Self = f64::EPSILON;
    const MAX: Self = f64::MAX;
    const MIN_POSITIVE: Self = f64::MIN_POSITIVE;
    const MAX_EXP2: i32 = 1023;
    const BYTES: usize = 8;

    #[inline(always)]
    fn sqrt(self) -> Self {
        libm::sqrt(self)
    }

    #[inline(always)]
    fn sqrt_approx(self) -> Self {
        libm::sqrt(self)
    }

    #[inline(always)]
    fn abs(self) -> Self {
        f64::from_bits(self.to_bits() & 0x7fff_ffff_ffff_ffff)
    }

    #[inline(always)]
    fn is_finite(self) -> bool {
        f64::is_finite(self)
    }

    #[inline(always)]
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }

    #[inline(always)]
    fn from_f64(value: f64) -> Self {
        value
    }

    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }

    #[inline(always)]
    fn from_usize(value: usize) -> Self {
        value as f64
    }

    #[inline(always)]
    fn exp2i(e: i32) -> Self {
        debug_assert!((-1022..=1023).contains(&e));
        f64::from_bits(((e + 1023) as u64) << 52)
    }

    #[inline(always)]
    fn exponent(self) -> i32 {
        let biased = ((self.to_bits() >> 52) & 0x7ff) as i32;
        biased.max(1) - 1023
    }

    #[inline(always)]
    fn to_bits_u64(self) -> u64 {
        self.to_bits()
    }

    #[inline(always)]
    fn max_magnitude(self, x: Self) -> Self {
        const MAGNITUDE: u64 = 0x7fff_ffff_ffff_ffff;
        f64::from_bits((self.to_bits() & MAGNITUDE).max(x.to_bits() & MAGNITUDE))
    }
}

#[cfg(test)]
mod tests {
    use super::Scalar;

    #[test]
    fn exp2i_matches_powi() {
        for e in -126..=127 {
            assert_eq!(<f32 as Scalar>::exp2i(e), 2f32.powi(e), "e = {e}");
        }
        for e in -1022..=1023 {
            assert_eq!(<f64 as Scalar>::exp2i(e), 2f64.powi(e), "e = {e}");
        }
    }

    #[test]
    fn exponent_reads_floor_log2() {
        assert_eq!(Scalar::exponent(1.0f32), 0);
        assert_eq!(Scalar::exponent(1.5f32), 0);
        assert_eq!(Scalar::exponent(-3.0f32), 1);
        assert_eq!(Scalar::exponent(f32::MAX), 127);
        assert_eq!(Scalar::exponent(f32::MIN_POSITIVE), -126);
        assert_eq!(Scalar::exponent(1e-45f32), -126);
        assert_eq!(Scalar::exponent(0.25f64), -2);
        assert_eq!(Scalar::exponent(f64::MAX), 1023);
    }

    #[test]
    fn max_magnitude_orders_like_abs() {
        let values = [0.0f32, -0.0, 1e-45, -2.5, 3.0, f32::MAX, f32::NEG_INFINITY];
        for &a in &values {
            for &b in &values {
                let expected = a.abs().max(b.abs());
                assert_eq!(Scalar::max_magnitude(a, b).to_bits(), expected.to_bits());
                let (a, b) = (f64::from(a), f64::from(b));
                let expected = a.abs().max(b.abs());
                assert_eq!(Scalar::max_magnitude(a, b).to_bits(), expected.to_bits());
            }
        }
    }

    #[test]
    fn max_magnitude_keeps_nan() {
        let nan = f32::from_bits(0xffc0_0001); // negative sign, non-default payload
        for x in [0.0f32, 1.0, f32::INFINITY, f32::NAN] {
            assert!(Scalar::max_magnitude(nan, x).is_nan());
            assert!(Scalar::max_magnitude(x, nan).is_nan());
        }
        for x in [0.0f64, 1.0, f64::INFINITY] {
            assert!(Scalar::max_magnitude(f64::NAN, x).is_nan());
            assert!(Scalar::max_magnitude(x, -f64::NAN).is_nan());
        }
    }
}

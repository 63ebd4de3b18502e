//! Overflow- and underflow-safe Euclidean norms.
//!
//! `‖x‖₂ = √(Σ xᵢ²)` computed naively overflows once an entry exceeds `√MAX` (about 1.8e19 for
//! f32) and loses all precision once entries fall below `√MIN_POSITIVE` (about 1.1e-19). Like
//! LAPACK's `xNRM2`, we scale before squaring, but by a power of two chosen from the largest
//! entry: multiplying by `2^e` is exact (unless the product is subnormal, which only happens to
//! entries that contribute less than `2⁻²⁵²` of the sum), so the scaled sum has the same
//! rounding as an unscaled one would without overflow. The cost is one extra pass for the maximum
//! and one multiply per entry.

use crate::scalar::Scalar;

/// A norm stored as `value · 2^exp`, so it exists even when it exceeds `T::MAX`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct ScaledNorm<T> {
    /// The norm of the scaled vector, in `[1, 2√n)` unless the vector is zero.
    pub value: T,
    /// The power of two the vector was divided by before squaring.
    pub exp: i32,
}

impl<T: Scalar> ScaledNorm<T> {
    /// The norm as a plain number; `+∞` if it exceeds `T::MAX`.
    #[inline]
    pub fn to_scalar(self) -> T {
        self.value * T::exp2i(self.exp)
    }

    /// The factor `2^-exp` the entries were multiplied by before squaring (exact).
    #[inline]
    pub fn scale(self) -> T {
        T::exp2i(-self.exp)
    }

    /// Returns `(factor, denominator)` with `x·factor / denominator = x / (‖x‖ + ε)` for the
    /// vector this is the norm of.
    ///
    /// The division runs in the scaled form `(2^-exp, value + ε·2^-exp)`. Scaling by a power of
    /// two is exact, so while `‖x‖` and `‖x‖ + ε` are normal numbers this gives the same bits as
    /// `x / (‖x‖ + ε)`, the reference's formula. It also keeps the direction where the plain
    /// form fails: a norm above `T::MAX` (or `‖x‖ + ε` overflowing) would divide by `∞`, and a
    /// subnormal norm would carry only a few significant bits. Only when `ε·2^-exp` itself
    /// overflows (so `ε ≫ ‖x‖`) does it fall back to `(1, ‖x‖ + ε)`.
    #[inline]
    pub fn normalizer(self, epsilon: T) -> (T, T) {
        let scale = self.scale();
        let scaled_epsilon = epsilon * scale;
        if scaled_epsilon.is_finite() {
            (scale, self.value + scaled_epsilon)
        } else {
            (T::ONE, self.to_scalar() + epsilon)
        }
    }
}

/// The power of two that brings `amax` into `[1, 2)`, clamped so that both it and its inverse
/// are normal numbers.
#[inline]
pub(crate) fn scale_exponent<T: Scalar>(amax: T) -> i32 {
    let limit = T::MAX_EXP2 - 1;
    amax.exponent().clamp(-limit, limit)
}

/// The scaled norm of `n` values produced by `get(0..n)`. NaN in, NaN out; ±∞ in, `+∞` out.
#[inline]
pub(crate) fn scaled_norm_by<T: Scalar>(n: usize, get: impl Fn(usize) -> T) -> ScaledNorm<T> {
    // `max_magnitude` is NaN-sticky: a NaN entry wins and stays, so it cannot hide behind a
    // larger one.
    let mut amax = T::ZERO;
    for i in 0..n {
        amax = amax.max_magnitude(get(i));
    }
    scaled_norm_from_max(amax, |scale| {
        let mut sum = T::ZERO;
        for i in 0..n {
            let x = get(i) * scale;
            sum += x * x;
        }
        sum
    })
}

/// Finishes a scaled norm from `amax`, the largest magnitude of the values (NaN if one is NaN,
/// see [`Scalar::max_magnitude`]), and `sum_of_squares(scale)`, which returns `Σ (xᵢ·scale)²`
/// summed in order from `+0`. ±∞ and NaN pass through as the value, with `exp = 0`.
#[inline(always)]
pub(crate) fn scaled_norm_from_max<T: Scalar>(
    amax: T,
    sum_of_squares: impl FnOnce(T) -> T,
) -> ScaledNorm<T> {
    if amax == T::ZERO || !amax.is_finite() {
        return ScaledNorm {
            value: amax,
            exp: 0,
        };
    }
    let exp = scale_exponent(amax);
    ScaledNorm {
        value: sum_of_squares(T::exp2i(-exp)).sqrt(),
        exp,
    }
}

/// The scaled norm of a contiguous slice.
#[inline]
pub(crate) fn scaled_norm<T: Scalar>(x: &[T]) -> ScaledNorm<T> {
    scaled_norm_by(x.len(), |i| x[i])
}

/// The Euclidean norm of `x`, without overflow or underflow in the intermediate sums.
///
/// The result is `+∞` only when the true norm exceeds `T::MAX`, and NaN if `x` contains a NaN.
///
/// # Example
/// ```
/// let x = [3e30f32, 4e30];
/// assert_eq!(dion_kernel::engine::norm2(&x), 5e30);
/// ```
pub fn norm2<T: Scalar>(x: &[T]) -> T {
    scaled_norm(x).to_scalar()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn norm_of_huge_entries_is_finite() {
        let x = [f32::MAX / 1e10; 4];
        let expected = 2.0 * (f32::MAX / 1e10);
        assert_eq!(norm2(&x), expected);
    }

    #[test]
    fn norm_of_subnormal_entries_is_exact() {
        let tiny = f32::from_bits(3); // 3 · 2⁻¹⁴⁹
        let x = [tiny, tiny, tiny, tiny];
        assert_eq!(norm2(&x), 2.0 * tiny);
    }

    #[test]
    fn norm_of_zero_is_zero() {
        assert_eq!(norm2(&[0.0f64; 3]), 0.0);
        assert_eq!(norm2::<f64>(&[]), 0.0);
    }

    #[test]
    fn norm_propagates_nan() {
        assert!(norm2(&[1.0f32, f32::NAN, 1e30]).is_nan());
        assert!(norm2(&[f32::NAN, 1.0]).is_nan());
    }

    #[test]
    fn norm_of_max_entries_overflows_to_infinity() {
        assert_eq!(norm2(&[f32::MAX, f32::MAX]), f32::INFINITY);
        let scaled = scaled_norm(&[f32::MAX, f32::MAX]);
        assert!(scaled.value.is_finite());
    }

    #[test]
    fn norm_matches_f64_on_ordinary_values() {
        let x = [0.5f32, -1.25, 3.0, 7.5, -0.125];
        let exact: f64 = x
            .iter()
            .map(|&v| (v as f64) * (v as f64))
            .sum::<f64>()
            .sqrt();
        // Five squares and a square root: a few units of roundoff.
        assert!(((norm2(&x) as f64) - exact).abs() <= 4.0 * f32::EPSILON as f64 * exact);
    }
}

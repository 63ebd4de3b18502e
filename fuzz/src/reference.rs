//! Reference computations and rounding-error bounds.
//!
//! Notation (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., §3.1–3.5): `u` is
//! the unit roundoff, half of `EPSILON`; `γₖ = k·u / (1 − k·u)`. A sum of `k` products formed
//! one after the other satisfies `|ŝ − s| ≤ γₖ·Σ|aₚbₚ|` as long as nothing underflows; every
//! multiplication that underflows adds at most half the subnormal spacing `η` in absolute terms,
//! and additions whose result is subnormal are exact. A reference computed in `f64` has its own
//! error, so the bounds below use `u = u_T + u_f64`, which covers both.

use crate::input::Float;

/// Unit roundoff of `T` plus that of the `f64` reference.
pub fn unit<T: Float>() -> f64 {
    T::EPSILON.to_f64() / 2.0 + f64::EPSILON / 2.0
}

/// `γₖ` for the unit roundoff [`unit`]; `+∞` if `k·u ≥ 1`.
pub fn gamma<T: Float>(k: usize) -> f64 {
    let ku = k as f64 * unit::<T>();
    if ku >= 1.0 {
        f64::INFINITY
    } else {
        ku / (1.0 - ku)
    }
}

/// `true` if both are NaN or both have the same bits.
pub fn same_value<T: Float>(a: T, b: T) -> bool {
    (a.is_nan() && b.is_nan()) || a.bits() == b.bits()
}

/// The documented evaluation of one product entry: `((0 + a₀b₀) + a₁b₁) + …` in `T`, a
/// separate multiply and add per term, inner index increasing.
pub fn sequential_dot<T: Float>(terms: impl Iterator<Item = (T, T)>) -> T {
    let mut sum = T::ZERO;
    for (a, b) in terms {
        sum += a * b;
    }
    sum
}

/// `Σ aₚbₚ` and `Σ |aₚbₚ|` in `f64`. Products of two `f32` values are exact in `f64`.
pub fn dot_f64(terms: impl Iterator<Item = (f64, f64)>) -> (f64, f64) {
    let mut sum = 0.0;
    let mut abs_sum = 0.0;
    for (a, b) in terms {
        sum += a * b;
        abs_sum += (a * b).abs();
    }
    (sum, abs_sum)
}

/// Maximum absolute value of finite entries; `None` if any entry is NaN or ±∞.
pub fn max_abs_finite<T: Float>(values: &[T]) -> Option<f64> {
    let mut max = 0.0f64;
    for &v in values {
        if !v.is_finite() {
            return None;
        }
        max = max.max(v.to_f64().abs());
    }
    Some(max)
}

/// Converts to `f64` entry by entry.
pub fn to_f64<T: Float>(values: &[T]) -> Vec<f64> {
    values.iter().map(|v| v.to_f64()).collect()
}

/// `‖x‖₂` of an `f64` vector, scaled so that it neither overflows nor underflows.
pub fn norm_f64(x: impl Iterator<Item = f64> + Clone) -> f64 {
    let max = x.clone().fold(0.0f64, |m, v| m.max(v.abs()));
    if max == 0.0 || !max.is_finite() {
        return max;
    }
    let sum: f64 = x.map(|v| (v / max) * (v / max)).sum();
    max * sum.sqrt()
}

/// The eigenvalues of a symmetric `n × n` matrix (row-major), by cyclic Jacobi rotations
/// (Golub and Van Loan, *Matrix Computations*, 4th ed., §8.5). Accurate to about `n·ε·‖A‖` in
/// absolute terms, which is all the rank checks need.
pub fn symmetric_eigenvalues(mut a: Vec<f64>, n: usize) -> Vec<f64> {
    let off = |a: &[f64]| -> f64 {
        let mut sum = 0.0;
        for i in 0..n {
            for j in 0..n {
                if i != j {
                    sum += a[i * n + j] * a[i * n + j];
                }
            }
        }
        sum
    };
    let total: f64 = a.iter().map(|v| v * v).sum();
    for _sweep in 0..60 {
        if off(&a) <= 1e-30 * total {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                // The rotation that zeroes a[p][q]: t = tan θ is the smaller root of
                // t² + 2τt − 1 = 0.
                let tau = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = tau.signum() / (tau.abs() + (1.0 + tau * tau).sqrt());
                let t = if tau == 0.0 { 1.0 } else { t };
                let c = 1.0 / (1.0 + t * t).sqrt();
                let s = t * c;
                for k in 0..n {
                    let akp = a[k * n + p];
                    let akq = a[k * n + q];
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let apk = a[p * n + k];
                    let aqk = a[q * n + k];
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
            }
        }
    }
    (0..n).map(|i| a[i * n + i]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eigenvalues_of_known_matrix() {
        // [[2, 1], [1, 2]] has eigenvalues 1 and 3.
        let mut values = symmetric_eigenvalues(vec![2.0, 1.0, 1.0, 2.0], 2);
        values.sort_by(f64::total_cmp);
        assert!((values[0] - 1.0).abs() < 1e-14);
        assert!((values[1] - 3.0).abs() < 1e-14);
    }

    #[test]
    fn eigenvalues_of_diagonal_plus_rank_one() {
        // I + e·eᵀ for e = (1, 1, 1): eigenvalues 1, 1, 4.
        let a = vec![2.0, 1.0, 1.0, 1.0, 2.0, 1.0, 1.0, 1.0, 2.0];
        let mut values = symmetric_eigenvalues(a, 3);
        values.sort_by(f64::total_cmp);
        for (value, expected) in values.iter().zip([1.0, 1.0, 4.0]) {
            assert!((value - expected).abs() < 1e-13, "{values:?}");
        }
    }

    #[test]
    fn gamma_grows_with_k() {
        assert_eq!(gamma::<f32>(0), 0.0);
        assert!(gamma::<f32>(10) > 10.0 * 2f64.powi(-24));
        assert!(gamma::<f32>(10) < 10.0 * 2f64.powi(-24) * 1.001);
    }
}

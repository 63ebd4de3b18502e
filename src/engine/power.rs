//! One warm-started power iteration, PowerIter1(B; Q), and the column normalisation of `R`.
//!
//! `P = B·Q`, orthonormalise `P` by [`qr_in_place`](super::qr_in_place), `R = Bᵀ·P`. Then
//! `P Rᵀ = P Pᵀ B` is the projection of `B` onto the span of `P`, the rank-`k` approximation
//! that PowerSGD and Dion build on (Vogels et al., "PowerSGD", 2019; Ahn & Xu, "Dion", 2025).

use super::gemm::{check_shape, gemm_nn, gemm_tn};
use super::norm::scaled_norm_by;
use super::qr::{complete_column, first_non_finite, mgs, QrInfo, QrOptions};
use super::view::{MatMut, MatRef};
use crate::error::{Error, Operand};
use crate::scalar::Scalar;

/// PowerIter1 on `B`: `P = B·Q`, orthonormalise `P`, `R = Bᵀ·P`.
///
/// Shapes: `B` is `n × m`, `Q` is `m × k`, `P` is `n × k`, `R` is `m × k`, with `k ≤ n`.
/// `P` and `R` are outputs only (their old contents are never read).
///
/// # Errors
/// [`Error::ShapeMismatch`] for inconsistent shapes; [`Error::NonFinite`] if `B·Q` is not finite
/// (a NaN or ±∞ in `B` or `Q`, or an overflow). On error `R` is untouched; `P` may hold `B·Q`.
pub fn power_iter1<T: Scalar>(
    b: MatRef<'_, T>,
    q: MatRef<'_, T>,
    p: MatMut<'_, T>,
    r: MatMut<'_, T>,
    options: QrOptions,
) -> Result<QrInfo, Error> {
    let (n, m) = b.shape();
    let k = q.ncols();
    check_shape(Operand::Q, (m, k), q.shape())?;
    check_shape(Operand::P, (n, k), p.shape())?;
    check_shape(Operand::R, (m, k), r.shape())?;
    if k > n {
        return Err(Error::InvalidRank { rank: k, max: n });
    }
    let (mut p, mut r) = (p, r);
    power_iter1_impl::<T, false>(b, b, false, q, &mut p, &mut r, options)
}

/// PowerIter1 on `Bᵀ` without forming it: `P = Bᵀ·Q`, orthonormalise `P`, `R = B·P`.
///
/// Shapes: `B` is `m × n`, `Q` is `m × k`, `P` is `n × k`, `R` is `m × k`, with `k ≤ n`.
///
/// # Errors
/// As for [`power_iter1`].
pub fn power_iter1_transposed<T: Scalar>(
    b: MatRef<'_, T>,
    q: MatRef<'_, T>,
    p: MatMut<'_, T>,
    r: MatMut<'_, T>,
    options: QrOptions,
) -> Result<QrInfo, Error> {
    let (m, n) = b.shape();
    let k = q.ncols();
    check_shape(Operand::Q, (m, k), q.shape())?;
    check_shape(Operand::P, (n, k), p.shape())?;
    check_shape(Operand::R, (m, k), r.shape())?;
    if k > n {
        return Err(Error::InvalidRank { rank: k, max: n });
    }
    let (mut p, mut r) = (p, r);
    power_iter1_impl::<T, false>(b, b, true, q, &mut p, &mut r, options)
}

/// PowerIter1 on `W = B + B2` (or `W = (B + B2)ᵀ` when `transposed`), where `B2` is only read
/// when `ADD` is true. Shapes are checked by the callers.
pub(crate) fn power_iter1_impl<T: Scalar, const ADD: bool>(
    b: MatRef<'_, T>,
    b2: MatRef<'_, T>,
    transposed: bool,
    q: MatRef<'_, T>,
    p: &mut MatMut<'_, T>,
    r: &mut MatMut<'_, T>,
    options: QrOptions,
) -> Result<QrInfo, Error> {
    if transposed {
        gemm_tn::<T, ADD>(p, b, b2, q);
    } else {
        gemm_nn::<T, ADD>(p, b, b2, q);
    }
    if let Some((row, col)) = first_non_finite(p) {
        return Err(Error::NonFinite {
            operand: Operand::P,
            row,
            col,
        });
    }

    let info = mgs(p, None, options, &mut complete_column);

    if transposed {
        gemm_nn::<T, ADD>(r, b, b2, p.as_ref());
    } else {
        gemm_tn::<T, ADD>(r, b, b2, p.as_ref());
    }
    Ok(info)
}

/// Divides each column of `r` by its Euclidean norm plus `epsilon`: `R / (‖R_col‖ + ε)`, as the
/// Dion reference does (ε is added to the norm, not to its square).
///
/// The norms are computed without overflow ([`norm2`](super::norm2)), and a column whose norm
/// exceeds `T::MAX` is divided in scaled form, so it still comes out with norm ≤ 1. A zero column
/// stays zero, also when `epsilon` is 0.
pub fn normalize_columns<T: Scalar>(r: MatMut<'_, T>, epsilon: T) {
    let (n, k) = r.shape();
    for j in 0..k {
        let stride = r.row_stride;
        let data = &*r.data;
        let norm = scaled_norm_by(n, |i| data[i * stride + j]);
        let (factor, denominator) = norm.normalizer(epsilon);
        // A zero column with ε = 0 stays zero instead of becoming 0/0.
        if denominator == T::ZERO {
            continue;
        }
        for i in 0..n {
            let value = &mut r.data[i * stride + j];
            *value = *value * factor / denominator;
        }
    }
}

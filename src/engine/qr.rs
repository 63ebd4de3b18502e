//! Modified Gram-Schmidt QR with optional reorthogonalisation and a deterministic completion.
//!
//! For an `n × k` matrix `A` (`k ≤ n`) the columns are processed left to right. Column `j` is
//! first scaled by a power of two (exact) so that its largest entry lies in `[1, 2)`, then
//! projected against the finished columns `q₀ … q_{j−1}` one at a time, each projection using
//! the already updated column (the "modified" variant). With reorthogonalisation the same sweep
//! runs a second time. Giraud, Langou and Rozložník ("The loss of orthogonality in the
//! Gram-Schmidt process", 2005) show that two sweeps give `‖QᵀQ − I‖ = O(ε)` for any numerically
//! non-singular `A`, where one MGS sweep gives `O(ε·κ(A))`.
//!
//! For speed, the first sweep of 8 columns at a time against all earlier columns runs as passes
//! over whole rows (vectorised across the 8 columns). Each column still sees the same
//! projections in the same order, so the result is bit-identical to the column-by-column loop.
//!
//! # Rank and completion
//!
//! A column whose remaining norm is at most `n·ε` times its original norm (or whose original
//! norm is zero) is declared dependent: its residual is at the level of the rounding error of the
//! projections themselves (`O(n·ε·‖aⱼ‖)` for a length-`n` column), so its direction is noise.
//! It is replaced by a unit vector orthogonal to the previous columns: the standard basis vector
//! `eᵢ` whose row `i` of `[q₀ … q_{j−1}]` has the smallest norm (lowest `i` on ties), projected
//! twice and normalised. That choice has a residual of at least `√((n − j)/n)`, so the
//! completion is never itself ill-conditioned. Its diagonal entry in `R` is 0, so `QR ≈ A` still
//! holds, and [`QrInfo::rank`] counts the columns that were not replaced. The output therefore
//! always has orthonormal, finite columns, as Householder QR's does.

use super::norm::{scaled_norm_by, ScaledNorm};
use super::view::MatMut;
use crate::error::{Error, Operand};
use crate::scalar::Scalar;

/// Options for [`qr_in_place`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct QrOptions {
    /// Run the Gram-Schmidt sweep twice per column ("twice is enough").
    ///
    /// Default `true`: on the ill-conditioned cases measured in `docs/QR.md` a single sweep left
    /// `‖QᵀQ − I‖` proportional to `ε·κ`, two sweeps left it at a few `ε`, for about twice the
    /// projection work (`2nk²` instead of `nk²` flops).
    pub reorthogonalize: bool,
}

impl Default for QrOptions {
    fn default() -> Self {
        Self {
            reorthogonalize: true,
        }
    }
}

/// Result of [`qr_in_place`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct QrInfo {
    /// Numerical rank: how many columns were orthonormalised rather than replaced by the
    /// completion.
    pub rank: usize,
}

/// Orthonormalises the columns of `a` in place, optionally writing the upper-triangular factor.
///
/// On success `a` contains `Q` with `QᵀQ = I` (to a few `ε` with reorthogonalisation) and, if `r`
/// is given, `r` contains the `k × k` upper-triangular `R` with a non-negative diagonal, so that
/// `Q·R ≈ A`. `R` can hold `+∞` only where the exact entry exceeds `T::MAX`; `Q` is finite for
/// every finite input.
///
/// # Errors
/// - [`Error::ShapeMismatch`] if `k > n` or `r` is not `k × k`.
/// - [`Error::NonFinite`] if `a` contains a NaN or ±∞.
///
/// On error neither `a` nor `r` has been written.
///
/// # Example
/// ```
/// use dion_kernel::engine::{qr_in_place, MatMut, QrOptions};
/// let mut a = [1.0f64, 1.0, 1.0, 1.0]; // [[1, 1], [1, 1]]: rank 1
/// let info = qr_in_place(MatMut::from_slice(&mut a, 2, 2)?, None, QrOptions::default())?;
/// assert_eq!(info.rank, 1);
/// let dot = a[0] * a[1] + a[2] * a[3];
/// assert!(dot.abs() < 1e-15);
/// # Ok::<(), dion_kernel::Error>(())
/// ```
pub fn qr_in_place<T: Scalar>(
    a: MatMut<'_, T>,
    r: Option<MatMut<'_, T>>,
    options: QrOptions,
) -> Result<QrInfo, Error> {
    let (n, k) = a.shape();
    if k > n {
        return Err(Error::ShapeMismatch {
            operand: Operand::A,
            expected: (n, n.min(k)),
            found: (n, k),
        });
    }
    if let Some(r) = &r {
        super::gemm::check_shape(Operand::R, (k, k), r.shape())?;
    }
    if let Some((row, col)) = first_non_finite(&a) {
        return Err(Error::NonFinite {
            operand: Operand::A,
            row,
            col,
        });
    }

    let mut a = a;
    let mut r = r;
    if let Some(r) = r.as_mut() {
        r.fill(T::ZERO);
    }
    Ok(mgs(&mut a, r.as_mut(), options, &mut complete_column))
}

pub(crate) fn first_non_finite<T: Scalar>(a: &MatMut<'_, T>) -> Option<(usize, usize)> {
    for i in 0..a.nrows() {
        if let Some(j) = a.row(i).iter().position(|x| !x.is_finite()) {
            return Some((i, j));
        }
    }
    None
}

#[inline(always)]
fn at(stride: usize, i: usize, j: usize) -> usize {
    i * stride + j
}

pub(crate) fn column_norm<T: Scalar>(a: &MatMut<'_, T>, j: usize) -> ScaledNorm<T> {
    let stride = a.row_stride;
    let data = &*a.data;
    scaled_norm_by(a.nrows, |i| data[at(stride, i, j)])
}

/// `aⱼ ← aⱼ − (q_l·aⱼ) q_l` for `from ≤ l < j`, in order, passing each coefficient `q_l·aⱼ`
/// to `coefficients(l, ·)`.
pub(crate) fn project_out<T: Scalar>(
    a: &mut MatMut<'_, T>,
    from: usize,
    j: usize,
    coefficients: &mut dyn FnMut(usize, T),
) {
    if from >= j {
        return;
    }
    let n = a.nrows;
    let stride = a.row_stride;
    let ncols = a.ncols;
    // Every row slice below has `ncols` entries and every index is at most `j`, so this one
    // check lets the compiler drop the bounds checks of the loops. Callers pass `j < ncols`.
    if j >= ncols {
        return;
    }
    let data = &mut *a.data;

    let mut dot = T::ZERO;
    for i in 0..n {
        let row = &data[i * stride..][..ncols];
        dot += row[from] * row[j];
    }
    for l in from..j {
        // The update with q_l and the dot product with q_{l+1} share one pass over the rows:
        // the dot product reads each entry right after its update, so the operations and their
        // order are those of two separate passes, and so are the bits.
        let next = l + 1;
        let mut next_dot = T::ZERO;
        if next < j {
            for i in 0..n {
                let row = &mut data[i * stride..][..ncols];
                let value = row[j] - dot * row[l];
                row[j] = value;
                next_dot += row[next] * value;
            }
        } else {
            for i in 0..n {
                let row = &mut data[i * stride..][..ncols];
                row[j] -= dot * row[l];
            }
        }
        coefficients(l, dot);
        dot = next_dot;
    }
}

/// Columns orthonormalised together as one panel: the projections against all earlier panels
/// run as passes over whole rows (contiguous, vectorised across the panel), only the projections
/// inside a panel walk single columns. 8 keeps the panel's coefficients and norms (about 200
/// bytes for f64) small enough for a microcontroller's stack.
const PANEL: usize = 8;

/// Projects the panel columns `j0..j1` against column `l`, once, in MGS order: all dot products
/// `q_l·a_c` in one pass over the rows, then all updates `a_c −= (q_l·a_c) q_l` in a second.
/// Each dot product is still one sequential sum over the rows.
fn project_panel<T: Scalar>(a: &mut MatMut<'_, T>, l: usize, j0: usize, dots: &mut [T]) {
    let n = a.nrows;
    let stride = a.row_stride;
    let width = dots.len();
    dots.fill(T::ZERO);
    for i in 0..n {
        let row = &a.data[i * stride..i * stride + j0 + width];
        let q = row[l];
        for (dot, &x) in dots.iter_mut().zip(&row[j0..]) {
            *dot += q * x;
        }
    }
    for i in 0..n {
        let row = &mut a.data[i * stride..i * stride + j0 + width];
        let q = row[l];
        for (x, &dot) in row[j0..].iter_mut().zip(dots.iter()) {
            *x -= dot * q;
        }
    }
}

/// The MGS loop on a finite matrix with `k ≤ n`. `r`, if given, is `k × k` and zeroed.
///
/// Columns go in panels of [`PANEL`]. The first sweep of a panel's columns against every earlier
/// panel runs as passes over whole rows; then each column finishes its first sweep inside the
/// panel, runs its second sweep (with reorthogonalisation) over all earlier columns, is checked
/// for dependence and normalised. The operations on each column are those of column-by-column
/// MGS with two sweeps, in the same order, so the result is the same bits.
///
/// `complete(a, j)` must overwrite column `j` with a unit vector orthogonal to columns `0..j`,
/// or with zeros; [`complete_column`] is the default, the Dion step passes one that prefers
/// directions in the range of `B`.
#[inline(never)]
pub(crate) fn mgs<T: Scalar>(
    a: &mut MatMut<'_, T>,
    mut r: Option<&mut MatMut<'_, T>>,
    options: QrOptions,
    complete: &mut dyn FnMut(&mut MatMut<'_, T>, usize),
) -> QrInfo {
    let (n, k) = a.shape();
    let stride = a.row_stride;
    let sweeps = if options.reorthogonalize { 2 } else { 1 };
    // Relative threshold below which a residual is rounding noise (see the module docs).
    let threshold = T::from_usize(n) * T::EPSILON;
    let mut rank = 0;
    let mut dots = [T::ZERO; PANEL];
    let mut originals = [ScaledNorm {
        value: T::ZERO,
        exp: 0,
    }; PANEL];

    let mut j0 = 0;
    while j0 < k {
        let j1 = (j0 + PANEL).min(k);
        let width = j1 - j0;

        // Bring each column to unit scale: exact, and keeps every later sum finite.
        for (c, original) in originals[..width].iter_mut().enumerate() {
            *original = column_norm(a, j0 + c);
            let scale = original.scale();
            for i in 0..n {
                a.data[at(stride, i, j0 + c)] *= scale;
            }
        }

        // First sweep against every earlier panel, as passes over whole rows.
        for l in 0..j0 {
            project_panel(a, l, j0, &mut dots[..width]);
            if let Some(r) = r.as_deref_mut() {
                for (c, &dot) in dots[..width].iter().enumerate() {
                    let entry = r.get(l, j0 + c) + dot * T::exp2i(originals[c].exp);
                    r.set(l, j0 + c, entry);
                }
            }
        }

        for (c, original) in originals[..width].iter().enumerate() {
            let j = j0 + c;
            let unscale = T::exp2i(original.exp);

            // The first sweep finishes inside the panel; the second (with reorthogonalisation)
            // runs over every earlier column again, so it also removes what the in-panel
            // projections put back along earlier panels. A column that is dependent after the
            // first sweep stays dependent, so the second sweep runs only on columns that
            // survive the first, and R keeps the first-sweep coefficients of a dependent column.
            let mut independent = false;
            let mut residual = T::ZERO;
            for sweep in 0..sweeps {
                let from = if sweep == 0 { j0 } else { 0 };
                project_out(a, from, j, &mut |l, dot| {
                    if let Some(r) = r.as_deref_mut() {
                        let entry = r.get(l, j) + dot * unscale;
                        r.set(l, j, entry);
                    }
                });
                residual = column_norm(a, j).to_scalar();
                independent = original.value > T::ZERO && residual > threshold * original.value;
                if !independent {
                    break;
                }
            }

            if independent {
                for i in 0..n {
                    a.data[at(stride, i, j)] /= residual;
                }
                if let Some(r) = r.as_deref_mut() {
                    r.set(j, j, residual * unscale);
                }
                rank += 1;
            } else {
                complete(a, j);
            }
        }
        j0 = j1;
    }
    QrInfo { rank }
}

/// Overwrites column `j` with a unit vector orthogonal to columns `0..j` (see the module docs).
pub(crate) fn complete_column<T: Scalar>(a: &mut MatMut<'_, T>, j: usize) {
    let n = a.nrows;
    let stride = a.row_stride;

    // The row of the finished columns with the smallest norm picks the basis vector.
    let mut best_row = 0;
    let mut best_norm = T::MAX;
    for i in 0..n {
        let mut sum = T::ZERO;
        for l in 0..j {
            let q = a.data[at(stride, i, l)];
            sum += q * q;
        }
        if sum < best_norm {
            best_norm = sum;
            best_row = i;
        }
    }

    for i in 0..n {
        a.data[at(stride, i, j)] = if i == best_row { T::ONE } else { T::ZERO };
    }
    for _ in 0..2 {
        project_out(a, 0, j, &mut |_, _| {});
    }
    let norm = column_norm(a, j).to_scalar();
    for i in 0..n {
        a.data[at(stride, i, j)] /= norm;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qr_of_rank_one_two_by_two() {
        let mut a = [1.0f32, 1.0, 1.0, 1.0];
        let mut r = [f32::NAN; 4];
        let info = qr_in_place(
            MatMut::from_slice(&mut a, 2, 2).unwrap(),
            Some(MatMut::from_slice(&mut r, 2, 2).unwrap()),
            QrOptions::default(),
        )
        .unwrap();
        assert_eq!(info.rank, 1);
        assert_eq!(a[0], core::f32::consts::FRAC_1_SQRT_2);
        assert_eq!(a[2], core::f32::consts::FRAC_1_SQRT_2);
        assert!((a[0] * a[1] + a[2] * a[3]).abs() <= 1e-6);
        assert_eq!(r[2], 0.0);
        assert!(r[3] >= 0.0, "r22 = {}", r[3]);
        assert!(r[3] <= 1e-6, "r22 = {}", r[3]);
    }

    #[test]
    fn qr_rejects_nan_without_writing() {
        let mut a = [1.0f32, f32::NAN, 0.0, 1.0];
        let before = a;
        let err = qr_in_place(
            MatMut::from_slice(&mut a, 2, 2).unwrap(),
            None,
            QrOptions::default(),
        )
        .unwrap_err();
        assert_eq!(
            err,
            Error::NonFinite {
                operand: Operand::A,
                row: 0,
                col: 1
            }
        );
        assert_eq!(a.map(f32::to_bits), before.map(f32::to_bits));
    }

    #[test]
    fn qr_rejects_wide_matrix() {
        let mut a = [1.0f32; 6];
        let err = qr_in_place(
            MatMut::from_slice(&mut a, 2, 3).unwrap(),
            None,
            QrOptions::default(),
        );
        assert!(matches!(err, Err(Error::ShapeMismatch { .. })));
    }
}

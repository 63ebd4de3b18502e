//! `Matrix<T, R, C>`: a fixed-size matrix stored inline, row-major.

use crate::engine::{self, MatMut, MatRef, QrInfo, QrOptions};
use crate::error::Error;
use crate::scalar::Scalar;

/// An `R × C` matrix of `T` stored inline as `[[T; C]; R]`: row-major, rows contiguous.
///
/// Row-major is the order the kernels vectorise along (whole rows of the output at a time), the
/// order of the golden vectors and of PyTorch tensors, so `as_slice()` can be copied to or from
/// either without reordering. The shape is part of the type, so a product of matrices whose
/// inner dimensions differ does not compile.
///
/// A large matrix is large on the stack too (`Matrix<f32, 256, 256>` is 256 KiB): keep such
/// matrices in a `static` or inside a struct that lives where it should.
///
/// # Example
/// ```
/// use dion_kernel::typed::Matrix;
/// let a = Matrix::from_rows([[1.0f32, 2.0], [3.0, 4.0], [5.0, 6.0]]);
/// let b = Matrix::from_rows([[1.0f32, 0.0, 2.0], [0.0, 1.0, 1.0]]);
/// let mut c = Matrix::<f32, 3, 3>::zeros();
/// a.mul_to(&b, &mut c);
/// assert_eq!(c.row(0), &[1.0, 2.0, 4.0]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(transparent)]
pub struct Matrix<T, const R: usize, const C: usize> {
    rows: [[T; C]; R],
}

impl<T: Scalar, const R: usize, const C: usize> Default for Matrix<T, R, C> {
    fn default() -> Self {
        Self::zeros()
    }
}

impl<T: Scalar, const R: usize, const C: usize> Matrix<T, R, C> {
    /// The zero matrix.
    pub const fn zeros() -> Self {
        Self {
            rows: [[T::ZERO; C]; R],
        }
    }

    /// The matrix with the given rows.
    pub const fn from_rows(rows: [[T; C]; R]) -> Self {
        Self { rows }
    }

    /// The matrix whose entry `(i, j)` is `f(i, j)`.
    pub fn from_fn(mut f: impl FnMut(usize, usize) -> T) -> Self {
        Self {
            rows: core::array::from_fn(|i| core::array::from_fn(|j| f(i, j))),
        }
    }

    /// Copies a row-major slice of exactly `R · C` entries.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `data.len() != R · C`.
    pub fn from_slice(data: &[T]) -> Result<Self, Error> {
        if data.len() != R * C {
            return Err(Error::ShapeMismatch {
                operand: crate::Operand::A,
                expected: (R, C),
                found: (data.len() / C.max(1), C),
            });
        }
        Ok(Self::from_fn(|i, j| data[i * C + j]))
    }

    /// Number of rows, `R`.
    pub const fn nrows(&self) -> usize {
        R
    }

    /// Number of columns, `C`.
    pub const fn ncols(&self) -> usize {
        C
    }

    /// The entries in row-major order.
    pub fn as_slice(&self) -> &[T] {
        self.rows.as_flattened()
    }

    /// The entries in row-major order, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        self.rows.as_flattened_mut()
    }

    /// The rows as arrays.
    pub fn rows(&self) -> &[[T; C]; R] {
        &self.rows
    }

    /// The rows as arrays, mutable.
    pub fn rows_mut(&mut self) -> &mut [[T; C]; R] {
        &mut self.rows
    }

    /// Row `i`.
    ///
    /// # Panics
    /// If `i >= R`.
    pub fn row(&self, i: usize) -> &[T; C] {
        &self.rows[i]
    }

    /// The entry `(i, j)`.
    ///
    /// # Panics
    /// If `i >= R` or `j >= C`.
    pub fn get(&self, i: usize, j: usize) -> T {
        self.rows[i][j]
    }

    /// Sets the entry `(i, j)`.
    ///
    /// # Panics
    /// If `i >= R` or `j >= C`.
    pub fn set(&mut self, i: usize, j: usize, value: T) {
        self.rows[i][j] = value;
    }

    /// A runtime-dimension view for the [`engine`](crate::engine) functions.
    pub fn view(&self) -> MatRef<'_, T> {
        MatRef {
            data: self.as_slice(),
            nrows: R,
            ncols: C,
            row_stride: C,
        }
    }

    /// A mutable runtime-dimension view for the [`engine`](crate::engine) functions.
    pub fn view_mut(&mut self) -> MatMut<'_, T> {
        MatMut {
            data: self.as_mut_slice(),
            nrows: R,
            ncols: C,
            row_stride: C,
        }
    }

    /// `out = self · rhs`.
    pub fn mul_to<const K: usize>(&self, rhs: &Matrix<T, C, K>, out: &mut Matrix<T, R, K>) {
        let a = self.view();
        engine::gemm_nn::<T, false>(&mut out.view_mut(), a, a, rhs.view());
    }

    /// `out = selfᵀ · rhs`, reading `self` in place.
    pub fn tr_mul_to<const K: usize>(&self, rhs: &Matrix<T, R, K>, out: &mut Matrix<T, C, K>) {
        let a = self.view();
        engine::gemm_tn::<T, false>(&mut out.view_mut(), a, a, rhs.view());
    }

    /// `self += alpha · a · bᵀ`: a rank-`K` update from two thin factors.
    pub fn rank_update<const K: usize>(
        &mut self,
        alpha: T,
        a: &Matrix<T, R, K>,
        b: &Matrix<T, C, K>,
    ) {
        engine::gemm_nt_update(&mut self.view_mut(), alpha, a.view(), b.view());
    }

    /// Orthonormalises the columns in place by modified Gram-Schmidt and optionally writes the
    /// `C × C` upper-triangular factor; see [`engine::qr_in_place`]. `C > R` does not compile.
    ///
    /// # Errors
    /// [`Error::NonFinite`] if an entry is NaN or ±∞; nothing is written then.
    pub fn qr_in_place(
        &mut self,
        r: Option<&mut Matrix<T, C, C>>,
        options: QrOptions,
    ) -> Result<QrInfo, Error> {
        const { assert!(C <= R, "QR needs at least as many rows as columns") };
        engine::qr_in_place(self.view_mut(), r.map(|r| r.view_mut()), options)
    }
}

//! Borrowed matrix views over caller-provided slices, with runtime dimensions.
//!
//! Storage is row-major: entry `(i, j)` lives at `data[i * row_stride + j]`, and `row_stride ≥
//! ncols`. Row-major matches the golden vectors and PyTorch, and lets every kernel read and write
//! whole contiguous rows, which is the direction the micro-kernels vectorise.

use crate::error::{Error, Operand};

fn check(
    operand: Operand,
    len: usize,
    nrows: usize,
    ncols: usize,
    row_stride: usize,
) -> Result<(), Error> {
    if row_stride < ncols {
        return Err(Error::InvalidStride { row_stride, ncols });
    }
    if nrows == 0 || ncols == 0 {
        return Ok(());
    }
    let required = (nrows - 1)
        .checked_mul(row_stride)
        .and_then(|start| start.checked_add(ncols));
    match required {
        None => Err(Error::ShapeTooLarge {
            rows: nrows,
            cols: ncols,
        }),
        Some(required) if len < required => Err(Error::BufferTooSmall {
            operand,
            required,
            len,
        }),
        Some(_) => Ok(()),
    }
}

/// A read-only row-major matrix view.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a, T> {
    pub(crate) data: &'a [T],
    pub(crate) nrows: usize,
    pub(crate) ncols: usize,
    pub(crate) row_stride: usize,
}

/// A mutable row-major matrix view.
#[derive(Debug)]
pub struct MatMut<'a, T> {
    pub(crate) data: &'a mut [T],
    pub(crate) nrows: usize,
    pub(crate) ncols: usize,
    pub(crate) row_stride: usize,
}

impl<'a, T> MatRef<'a, T> {
    /// Views `data` as a dense `nrows × ncols` matrix (row stride = `ncols`).
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] if `data` has fewer than `nrows · ncols` elements. Extra elements
    /// are ignored.
    pub fn from_slice(data: &'a [T], nrows: usize, ncols: usize) -> Result<Self, Error> {
        Self::from_slice_with_stride(data, nrows, ncols, ncols)
    }

    /// Views `data` as an `nrows × ncols` matrix whose rows start `row_stride` elements apart.
    ///
    /// # Errors
    /// [`Error::InvalidStride`] if `row_stride < ncols`, [`Error::BufferTooSmall`] if `data` is
    /// shorter than `(nrows − 1) · row_stride + ncols`.
    pub fn from_slice_with_stride(
        data: &'a [T],
        nrows: usize,
        ncols: usize,
        row_stride: usize,
    ) -> Result<Self, Error> {
        check(Operand::A, data.len(), nrows, ncols, row_stride)?;
        Ok(Self {
            data,
            nrows,
            ncols,
            row_stride,
        })
    }

    /// Number of rows.
    #[inline]
    pub fn nrows(&self) -> usize {
        self.nrows
    }

    /// Number of columns.
    #[inline]
    pub fn ncols(&self) -> usize {
        self.ncols
    }

    /// Distance in elements between the starts of two consecutive rows.
    #[inline]
    pub fn row_stride(&self) -> usize {
        self.row_stride
    }

    /// `(nrows, ncols)`.
    #[inline]
    pub fn shape(&self) -> (usize, usize) {
        (self.nrows, self.ncols)
    }

    /// Row `i` as a slice of length `ncols`.
    ///
    /// # Panics
    /// If `i >= nrows`.
    #[inline(always)]
    pub fn row(&self, i: usize) -> &'a [T] {
        assert!(
            i < self.nrows,
            "row {i} out of range for {} rows",
            self.nrows
        );
        // A view without columns accepts any stride and buffer, so its rows must not index.
        if self.ncols == 0 {
            return &self.data[..0];
        }
        let start = i * self.row_stride;
        &self.data[start..start + self.ncols]
    }

    /// The entry `(i, j)`.
    ///
    /// # Panics
    /// If `i >= nrows` or `j >= ncols`.
    #[inline(always)]
    pub fn get(&self, i: usize, j: usize) -> T
    where
        T: Copy,
    {
        self.row(i)[j]
    }
}

impl<'a, T> MatMut<'a, T> {
    /// Views `data` as a dense mutable `nrows × ncols` matrix (row stride = `ncols`).
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] if `data` has fewer than `nrows · ncols` elements.
    pub fn from_slice(data: &'a mut [T], nrows: usize, ncols: usize) -> Result<Self, Error> {
        Self::from_slice_with_stride(data, nrows, ncols, ncols)
    }

    /// Views `data` as a mutable `nrows × ncols` matrix whose rows start `row_stride` elements
    /// apart.
    ///
    /// # Errors
    /// As for [`MatRef::from_slice_with_stride`].
    pub fn from_slice_with_stride(
        data: &'a mut [T],
        nrows: usize,
        ncols: usize,
        row_stride: usize,
    ) -> Result<Self, Error> {
        check(Operand::C, data.len(), nrows, ncols, row_stride)?;
        Ok(Self {
            data,
            nrows,
            ncols,
            row_stride,
        })
    }

    /// Number of rows.
    #[inline]
    pub fn nrows(&self) -> usize {
        self.nrows
    }

    /// Number of columns.
    #[inline]
    pub fn ncols(&self) -> usize {
        self.ncols
    }

    /// `(nrows, ncols)`.
    #[inline]
    pub fn shape(&self) -> (usize, usize) {
        (self.nrows, self.ncols)
    }

    /// Reborrows as a read-only view.
    #[inline]
    pub fn as_ref(&self) -> MatRef<'_, T> {
        MatRef {
            data: self.data,
            nrows: self.nrows,
            ncols: self.ncols,
            row_stride: self.row_stride,
        }
    }

    /// Reborrows as a shorter-lived mutable view.
    #[inline]
    pub fn reborrow(&mut self) -> MatMut<'_, T> {
        MatMut {
            data: self.data,
            nrows: self.nrows,
            ncols: self.ncols,
            row_stride: self.row_stride,
        }
    }

    /// Row `i` as a mutable slice of length `ncols`.
    ///
    /// # Panics
    /// If `i >= nrows`.
    #[inline(always)]
    pub fn row_mut(&mut self, i: usize) -> &mut [T] {
        assert!(
            i < self.nrows,
            "row {i} out of range for {} rows",
            self.nrows
        );
        if self.ncols == 0 {
            return &mut self.data[..0];
        }
        let start = i * self.row_stride;
        &mut self.data[start..start + self.ncols]
    }

    /// Row `i` as a slice of length `ncols`.
    ///
    /// # Panics
    /// If `i >= nrows`.
    #[inline(always)]
    pub fn row(&self, i: usize) -> &[T] {
        assert!(
            i < self.nrows,
            "row {i} out of range for {} rows",
            self.nrows
        );
        // A view without columns accepts any stride and buffer, so its rows must not index.
        if self.ncols == 0 {
            return &self.data[..0];
        }
        let start = i * self.row_stride;
        &self.data[start..start + self.ncols]
    }

    /// The entry `(i, j)`.
    ///
    /// # Panics
    /// If `i >= nrows` or `j >= ncols`.
    #[inline(always)]
    pub fn get(&self, i: usize, j: usize) -> T
    where
        T: Copy,
    {
        self.row(i)[j]
    }

    /// Sets the entry `(i, j)`.
    ///
    /// # Panics
    /// If `i >= nrows` or `j >= ncols`.
    #[inline(always)]
    pub fn set(&mut self, i: usize, j: usize, value: T) {
        self.row_mut(i)[j] = value;
    }

    /// Sets every entry to `value`.
    pub fn fill(&mut self, value: T)
    where
        T: Copy,
    {
        for i in 0..self.nrows {
            self.row_mut(i).fill(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_rejects_short_buffer() {
        let data = [0.0f32; 5];
        let err = MatRef::from_slice(&data, 2, 3).unwrap_err();
        assert_eq!(
            err,
            Error::BufferTooSmall {
                operand: Operand::A,
                required: 6,
                len: 5
            }
        );
    }

    #[test]
    fn view_rejects_small_stride() {
        let data = [0.0f32; 16];
        let err = MatRef::from_slice_with_stride(&data, 2, 3, 2).unwrap_err();
        assert_eq!(
            err,
            Error::InvalidStride {
                row_stride: 2,
                ncols: 3
            }
        );
    }

    #[test]
    fn view_rejects_overflowing_shape() {
        let data = [0.0f32; 4];
        assert!(MatRef::from_slice_with_stride(&data, usize::MAX, 2, usize::MAX).is_err());
    }

    #[test]
    fn strided_view_reads_rows() {
        let data = [1.0f32, 2.0, 9.0, 3.0, 4.0];
        let view = MatRef::from_slice_with_stride(&data, 2, 2, 3).unwrap();
        assert_eq!(view.row(1), &[3.0, 4.0]);
        assert_eq!(view.get(0, 1), 2.0);
    }

    #[test]
    fn empty_view_needs_no_data() {
        let data: [f32; 0] = [];
        assert!(MatRef::from_slice(&data, 0, 5).is_ok());
        assert!(MatRef::from_slice(&data, 5, 0).is_ok());
    }
}

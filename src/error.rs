//! The error type returned by every fallible call.

use core::fmt;

/// Which matrix or buffer an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Operand {
    /// The parameter matrix `X`.
    Param,
    /// The gradient `G`.
    Grad,
    /// The error-feedback buffer `M` (Dion) or `E` (PowerSGD).
    Momentum,
    /// The right factor `Q` kept between steps.
    Q,
    /// The left factor `P` (scratch).
    P,
    /// The factor `R = Wᵀ P` (scratch).
    R,
    /// The left operand `A` of a matrix product.
    A,
    /// The right operand `B` of a matrix product.
    B,
    /// The output `C` of a matrix product.
    C,
    /// A vector of a scalar optimizer (AdamW, Lion).
    Vector,
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Operand::Param => "parameter X",
            Operand::Grad => "gradient G",
            Operand::Momentum => "error-feedback buffer M",
            Operand::Q => "right factor Q",
            Operand::P => "left factor P",
            Operand::R => "factor R",
            Operand::A => "operand A",
            Operand::B => "operand B",
            Operand::C => "output C",
            Operand::Vector => "vector",
        };
        f.write_str(name)
    }
}

/// Why a call failed.
///
/// Every step that returns an `Err` has left the parameter and the optimizer state exactly as
/// they were before the call (bit for bit).
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// A hyperparameter is outside its valid range.
    InvalidHyperparameter {
        /// Its name, as in the config struct (`lr`, `momentum`, ...).
        name: &'static str,
        /// The rejected value.
        value: f64,
        /// The valid range, in words.
        expected: &'static str,
    },
    /// A matrix has the wrong number of rows or columns for the operation.
    ShapeMismatch {
        /// The offending operand.
        operand: Operand,
        /// The shape the operation needs, `(rows, cols)`.
        expected: (usize, usize),
        /// The shape that was passed.
        found: (usize, usize),
    },
    /// A slice is too short for the matrix shape and stride it is meant to hold.
    BufferTooSmall {
        /// The offending operand.
        operand: Operand,
        /// The number of elements the shape needs.
        required: usize,
        /// The length of the slice that was passed.
        len: usize,
    },
    /// The row stride is smaller than the number of columns, so rows would overlap.
    InvalidStride {
        /// The row stride that was passed.
        row_stride: usize,
        /// The number of columns.
        ncols: usize,
    },
    /// `rows · cols` (or `max(rows, cols) · rank`) does not fit in `usize`.
    ShapeTooLarge {
        /// The requested rows.
        rows: usize,
        /// The requested columns.
        cols: usize,
    },
    /// The rank is 0 or larger than `min(rows, cols)`.
    InvalidRank {
        /// The requested rank.
        rank: usize,
        /// The largest valid rank, `min(rows, cols)`.
        max: usize,
    },
    /// An input entry is NaN or ±∞.
    NonFinite {
        /// The matrix or vector that contains it.
        operand: Operand,
        /// Its row (0 for vectors).
        row: usize,
        /// Its column (the index, for vectors).
        col: usize,
    },
    /// The inputs are finite, but an intermediate or updated value would exceed the largest
    /// finite value of the scalar type.
    Overflow {
        /// The matrix whose value would overflow.
        operand: Operand,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::InvalidHyperparameter { name, value, expected } => write!(
                f,
                "invalid hyperparameter {name} = {value}: expected {expected}"
            ),
            Error::ShapeMismatch { operand, expected, found } => write!(
                f,
                "shape mismatch for {operand}: expected {}x{}, found {}x{}",
                expected.0, expected.1, found.0, found.1
            ),
            Error::BufferTooSmall { operand, required, len } => write!(
                f,
                "buffer for {operand} too small: the shape needs {required} elements, the slice has {len}"
            ),
            Error::InvalidStride { row_stride, ncols } => write!(
                f,
                "invalid row stride {row_stride}: it must be at least the column count {ncols}"
            ),
            Error::ShapeTooLarge { rows, cols } => write!(
                f,
                "shape {rows}x{cols} too large: its element count does not fit in usize"
            ),
            Error::InvalidRank { rank, max } => write!(
                f,
                "invalid rank {rank}: expected 1 <= rank <= min(rows, cols) = {max}"
            ),
            Error::NonFinite { operand, row, col } => write!(
                f,
                "non-finite value (NaN or infinity) in {operand} at ({row}, {col}); nothing was updated"
            ),
            Error::Overflow { operand } => write!(
                f,
                "finite inputs would overflow in {operand}; scale the gradient or state down; nothing was updated"
            ),
        }
    }
}

impl core::error::Error for Error {}

//! Inline storage for the thin factors `P`, `R` and `Q` of a step.

use crate::engine::StepShape;
use crate::error::{Error, Operand};
use crate::scalar::Scalar;

/// Two `ROWS × RANK` and two `COLS × RANK` blocks that hold `P`, `R` and `Q` in either
/// orientation.
///
/// `P` has `max(ROWS, COLS)` rows and `R`, `Q` have `min(ROWS, COLS)`. Stable Rust cannot size an
/// array by `min(ROWS, COLS)`, so both orientations get a block of each kind and one
/// `max(ROWS, COLS) × RANK` block stays unused.
// NOTE: the unused block costs max(ROWS, COLS)·RANK scalars; it goes away once const
// expressions in array lengths are stable.
#[derive(Clone, Debug)]
pub(crate) struct Factors<T, const ROWS: usize, const COLS: usize, const RANK: usize> {
    rows_a: [[T; RANK]; ROWS],
    rows_b: [[T; RANK]; ROWS],
    cols_a: [[T; RANK]; COLS],
    cols_b: [[T; RANK]; COLS],
}

impl<T: Scalar, const ROWS: usize, const COLS: usize, const RANK: usize>
    Factors<T, ROWS, COLS, RANK>
{
    pub const fn zeros() -> Self {
        Self {
            rows_a: [[T::ZERO; RANK]; ROWS],
            rows_b: [[T::ZERO; RANK]; ROWS],
            cols_a: [[T::ZERO; RANK]; COLS],
            cols_b: [[T::ZERO; RANK]; COLS],
        }
    }

    /// `(Q, P, R)` as row-major slices.
    pub fn split(&mut self, shape: StepShape) -> (&mut [T], &mut [T], &mut [T]) {
        if shape.transposed() {
            (
                self.rows_a.as_flattened_mut(),
                self.cols_a.as_flattened_mut(),
                self.rows_b.as_flattened_mut(),
            )
        } else {
            (
                self.cols_a.as_flattened_mut(),
                self.rows_a.as_flattened_mut(),
                self.cols_b.as_flattened_mut(),
            )
        }
    }

    pub fn q(&self, shape: StepShape) -> &[T] {
        if shape.transposed() {
            self.rows_a.as_flattened()
        } else {
            self.cols_a.as_flattened()
        }
    }

    pub fn q_mut(&mut self, shape: StepShape) -> &mut [T] {
        self.split(shape).0
    }

    pub fn set_q(&mut self, shape: StepShape, q: &[T]) -> Result<(), Error> {
        let target = self.q_mut(shape);
        if q.len() != target.len() {
            return Err(Error::BufferTooSmall {
                operand: Operand::Q,
                required: target.len(),
                len: q.len(),
            });
        }
        if let Some(i) = q.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                operand: Operand::Q,
                row: i / RANK,
                col: i % RANK,
            });
        }
        target.copy_from_slice(q);
        Ok(())
    }
}

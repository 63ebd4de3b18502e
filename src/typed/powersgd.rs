//! `PowerSgd<T, ROWS, COLS, RANK>`: the PowerSGD optimizer state for one parameter.

use super::factors::Factors;
use super::matrix::Matrix;
use crate::engine::{powersgd_step, PowerSgdConfig, StepInfo, StepScratch, StepShape, StepState};
use crate::error::Error;
use crate::rng::SplitMix64;
use crate::scalar::Scalar;

/// PowerSGD state for a `ROWS × COLS` parameter at rank `RANK`: the error-feedback buffer `E`,
/// the warm start `Q` and the scratch for `P` and `R`, all inline.
///
/// Same layout and compile-time shape checks as [`Dion`](super::Dion); see
/// [`powersgd_step`] for the update and how it differs from Dion.
#[derive(Clone, Debug)]
pub struct PowerSgd<T: Scalar, const ROWS: usize, const COLS: usize, const RANK: usize> {
    config: PowerSgdConfig<T>,
    error: Matrix<T, ROWS, COLS>,
    factors: Factors<T, ROWS, COLS, RANK>,
}

impl<T: Scalar, const ROWS: usize, const COLS: usize, const RANK: usize>
    PowerSgd<T, ROWS, COLS, RANK>
{
    const SHAPE: StepShape = match StepShape::new(ROWS, COLS, RANK) {
        Ok(shape) => shape,
        Err(_) => panic!("PowerSgd needs 1 <= RANK <= min(ROWS, COLS)"),
    };

    /// Creates a state with `E = 0` and `Q` standard normal from `seed`.
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] if `config` is invalid.
    pub fn new(config: PowerSgdConfig<T>, seed: u64) -> Result<Self, Error> {
        let _ = Self::SHAPE;
        config.validate()?;
        let mut factors = Factors::zeros();
        SplitMix64::new(seed).fill_gaussian(factors.q_mut(Self::SHAPE));
        Ok(Self {
            config,
            error: Matrix::zeros(),
            factors,
        })
    }

    /// Creates a state with `E = 0` and the given `Q` (`min(ROWS, COLS) × RANK`, row-major).
    ///
    /// # Errors
    /// As for [`Dion::with_q`](super::Dion::with_q).
    pub fn with_q(config: PowerSgdConfig<T>, q: &[T]) -> Result<Self, Error> {
        let _ = Self::SHAPE;
        config.validate()?;
        let mut factors = Factors::zeros();
        factors.set_q(Self::SHAPE, q)?;
        Ok(Self {
            config,
            error: Matrix::zeros(),
            factors,
        })
    }

    /// The hyperparameters.
    pub fn config(&self) -> &PowerSgdConfig<T> {
        &self.config
    }

    /// The error-feedback buffer `E`.
    pub fn error_feedback(&self) -> &Matrix<T, ROWS, COLS> {
        &self.error
    }

    /// The warm start `Q`, `min(ROWS, COLS) × RANK`, row-major.
    pub fn q(&self) -> &[T] {
        self.factors.q(Self::SHAPE)
    }

    /// Runs one PowerSGD step.
    ///
    /// # Errors
    /// As for [`Dion::step`](super::Dion::step); nothing is changed on error.
    pub fn step(
        &mut self,
        weight: &mut Matrix<T, ROWS, COLS>,
        grad: &Matrix<T, ROWS, COLS>,
    ) -> Result<StepInfo, Error> {
        let (q, p, r) = self.factors.split(Self::SHAPE);
        powersgd_step(
            Self::SHAPE,
            &self.config,
            weight.as_mut_slice(),
            grad.as_slice(),
            StepState {
                momentum: self.error.as_mut_slice(),
                q,
            },
            StepScratch { p, r },
        )
    }
}

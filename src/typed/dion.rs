//! `Dion<T, ROWS, COLS, RANK>`: the Dion optimizer state for one `ROWS × COLS` parameter.

use super::factors::Factors;
use super::matrix::Matrix;
use crate::engine::{
    dion_step, DionConfig, DionPhaseP, StepInfo, StepScratch, StepShape, StepState,
};
use crate::error::Error;
use crate::rng::SplitMix64;
use crate::scalar::Scalar;

/// Dion state for a `ROWS × COLS` parameter at rank `RANK`: the error-feedback buffer `M`, the
/// right factor `Q` and the scratch for `P` and `R`, all inline.
///
/// `RANK = 0` or `RANK > min(ROWS, COLS)` does not compile. A step needs no heap and no buffer
/// on the stack beyond a few scalars; the state itself is
/// `size_of::<T>() · (ROWS·COLS + 2·(ROWS + COLS)·RANK)` bytes plus the config.
///
/// # Example
/// ```
/// use dion_kernel::engine::DionConfig;
/// use dion_kernel::typed::{Dion, Matrix};
///
/// let mut weight = Matrix::<f32, 16, 8>::zeros();
/// let mut dion = Dion::<f32, 16, 8, 4>::new(DionConfig::default(), 42)?;
/// let grad = Matrix::from_fn(|i, j| ((i * 8 + j) % 5) as f32 - 2.0);
/// dion.step(&mut weight, &grad)?;
/// assert!(weight.as_slice().iter().all(|w| w.is_finite()));
/// # Ok::<(), dion_kernel::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Dion<T: Scalar, const ROWS: usize, const COLS: usize, const RANK: usize> {
    config: DionConfig<T>,
    momentum: Matrix<T, ROWS, COLS>,
    factors: Factors<T, ROWS, COLS, RANK>,
}

impl<T: Scalar, const ROWS: usize, const COLS: usize, const RANK: usize> Dion<T, ROWS, COLS, RANK> {
    const SHAPE: StepShape = match StepShape::new(ROWS, COLS, RANK) {
        Ok(shape) => shape,
        Err(_) => panic!("Dion needs 1 <= RANK <= min(ROWS, COLS)"),
    };

    /// Creates a state with `M = 0` and `Q` filled with standard normal values from `seed` (the
    /// same bits on every target).
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] if `config` is invalid.
    pub fn new(config: DionConfig<T>, seed: u64) -> Result<Self, Error> {
        let _ = Self::SHAPE;
        config.validate()?;
        let mut factors = Factors::zeros();
        SplitMix64::new(seed).fill_gaussian(factors.q_mut(Self::SHAPE));
        Ok(Self {
            config,
            momentum: Matrix::zeros(),
            factors,
        })
    }

    /// An all-zero state (`M = 0`, `Q = 0`) built at compile time, for a `static` or any place
    /// where a large state must not pass through the stack. Call [`reset`](Self::reset) or
    /// [`set_q`](Self::set_q) before the first step: with `Q = 0` the first step has to find its
    /// directions by the QR's completion. `config` is checked by every step.
    ///
    /// # Example
    /// ```
    /// use dion_kernel::engine::{DionConfig, QrOptions};
    /// use dion_kernel::typed::Dion;
    ///
    /// const CONFIG: DionConfig<f32> = DionConfig {
    ///     lr: 0.01,
    ///     momentum: 0.95,
    ///     weight_decay: 0.01,
    ///     epsilon: 1e-8,
    ///     power_iters: 1,
    ///     qr: QrOptions { reorthogonalize: true },
    /// };
    /// static mut STATE: Dion<f32, 64, 64, 8> = Dion::zeroed(CONFIG);
    /// ```
    pub const fn zeroed(config: DionConfig<T>) -> Self {
        let _ = Self::SHAPE;
        Self {
            config,
            momentum: Matrix::zeros(),
            factors: Factors::zeros(),
        }
    }

    /// Restarts in place: `M = 0` and `Q` standard normal from `seed`, as [`new`](Self::new)
    /// builds it, without moving the state.
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] if the config is invalid; nothing changes then.
    pub fn reset(&mut self, seed: u64) -> Result<(), Error> {
        self.config.validate()?;
        self.momentum.as_mut_slice().fill(T::ZERO);
        SplitMix64::new(seed).fill_gaussian(self.factors.q_mut(Self::SHAPE));
        Ok(())
    }

    /// Replaces `Q` (`min(ROWS, COLS) × RANK`, row-major) and clears `M`.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] for a `q` of the wrong length, [`Error::NonFinite`] for a NaN
    /// or ±∞ in it; nothing changes then.
    pub fn set_q(&mut self, q: &[T]) -> Result<(), Error> {
        self.factors.set_q(Self::SHAPE, q)?;
        self.momentum.as_mut_slice().fill(T::ZERO);
        Ok(())
    }

    /// Creates a state with `M = 0` and the given initial `Q`: `min(ROWS, COLS) × RANK`,
    /// row-major.
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] for a bad config, [`Error::BufferTooSmall`] for a `q` of
    /// the wrong length, [`Error::NonFinite`] for a NaN or ±∞ in `q`.
    pub fn with_q(config: DionConfig<T>, q: &[T]) -> Result<Self, Error> {
        let _ = Self::SHAPE;
        config.validate()?;
        let mut factors = Factors::zeros();
        factors.set_q(Self::SHAPE, q)?;
        Ok(Self {
            config,
            momentum: Matrix::zeros(),
            factors,
        })
    }

    /// The hyperparameters.
    pub fn config(&self) -> &DionConfig<T> {
        &self.config
    }

    /// Replaces the hyperparameters (for a learning-rate schedule, say).
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`]; the old config stays then.
    pub fn set_config(&mut self, config: DionConfig<T>) -> Result<(), Error> {
        config.validate()?;
        self.config = config;
        Ok(())
    }

    /// The error-feedback buffer `M`.
    pub fn momentum(&self) -> &Matrix<T, ROWS, COLS> {
        &self.momentum
    }

    /// The right factor `Q`, `min(ROWS, COLS) × RANK`, row-major.
    pub fn q(&self) -> &[T] {
        self.factors.q(Self::SHAPE)
    }

    /// Returns the shape passed to the engine (transposition, factor sizes).
    pub fn shape(&self) -> StepShape {
        Self::SHAPE
    }

    /// Runs one Dion step: updates `weight` and the state from `grad`.
    ///
    /// # Errors
    /// [`Error::NonFinite`] for a NaN or ±∞ in `grad`, `weight` or the state,
    /// [`Error::Overflow`] when finite inputs would give a non-finite update. `weight`, `M` and
    /// `Q` are bit-identical to before the call on every error.
    pub fn step(
        &mut self,
        weight: &mut Matrix<T, ROWS, COLS>,
        grad: &Matrix<T, ROWS, COLS>,
    ) -> Result<StepInfo, Error> {
        let (q, p, r) = self.factors.split(Self::SHAPE);
        dion_step(
            Self::SHAPE,
            &self.config,
            weight.as_mut_slice(),
            grad.as_slice(),
            StepState {
                momentum: self.momentum.as_mut_slice(),
                q,
            },
            StepScratch { p, r },
        )
    }

    /// Starts a step in phases, for data-parallel training: see [`DionPhaseP`].
    ///
    /// # Errors
    /// As for [`step`](Self::step), and [`Error::InvalidHyperparameter`] unless
    /// `power_iters == 1`.
    pub fn begin<'a>(
        &'a mut self,
        weight: &'a mut Matrix<T, ROWS, COLS>,
        grad: &'a Matrix<T, ROWS, COLS>,
    ) -> Result<DionPhaseP<'a, T>, Error> {
        let (q, p, r) = self.factors.split(Self::SHAPE);
        DionPhaseP::begin(
            Self::SHAPE,
            &self.config,
            weight.as_mut_slice(),
            grad.as_slice(),
            StepState {
                momentum: self.momentum.as_mut_slice(),
                q,
            },
            StepScratch { p, r },
        )
    }
}

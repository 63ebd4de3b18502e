//! The PowerSGD step on caller-provided slices (Vogels, Karimireddy and Jaggi, "PowerSGD:
//! Practical Low-Rank Gradient Compression for Distributed Optimization", NeurIPS 2019).
//!
//! ```text
//! Δ = G + E
//! P = orth(W·Q),  R = Wᵀ·P          W = Δ, or Δᵀ when rows < cols
//! E ← Δ − P Rᵀ                      error feedback keeps everything the step missed
//! X ← (1 − lr·wd)·X − lr·P Rᵀ
//! Q ← R                             warm start for the next step
//! ```
//!
//! The difference from Dion: PowerSGD steps along `P Rᵀ ≈ Σ σᵢ uᵢ vᵢᵀ`, keeping the singular
//! values, so the step length follows the gradient's scale; Dion steps along `P Qᵀ ≈ Σ uᵢ vᵢᵀ`
//! with every singular value set to 1, and its error feedback keeps `μ` times the captured part.
//! Both use the same transposition rule, so `Q` is `min(rows, cols) × rank`.

use super::dion::{check_lr_wd, check_power_iters};
use super::qr::QrOptions;
use super::step::{
    Completion, Core, QUpdate, StepInfo, StepScratch, StepShape, StepState, Update, RUNNING,
};
use crate::error::{Error, Operand};
use crate::scalar::Scalar;

/// Hyperparameters of the PowerSGD step.
///
/// Defaults: `lr = 0.01`, `weight_decay = 0`, one power iteration, QR with reorthogonalisation.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PowerSgdConfig<T> {
    /// Learning rate, `≥ 0` and finite; the step is `lr·P Rᵀ`, in the gradient's units.
    pub lr: T,
    /// Decoupled weight decay, `≥ 0`, applied as `X ← (1 − lr·wd)·X`; `lr·wd ≤ 1`.
    pub weight_decay: T,
    /// Power iterations per step, `1 ≤ power_iters ≤ 16`.
    pub power_iters: usize,
    /// QR options.
    pub qr: QrOptions,
}

impl<T: Scalar> Default for PowerSgdConfig<T> {
    fn default() -> Self {
        Self {
            lr: T::from_f64(0.01),
            weight_decay: T::ZERO,
            power_iters: 1,
            qr: QrOptions::default(),
        }
    }
}

impl<T: Scalar> PowerSgdConfig<T> {
    /// Checks every hyperparameter.
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] naming the first bad value and its valid range.
    pub fn validate(&self) -> Result<(), Error> {
        check_lr_wd(self.lr, self.weight_decay)?;
        check_power_iters(self.power_iters)
    }
}

/// Runs one PowerSGD step; `state.momentum` is the error-feedback buffer `E`.
///
/// Shapes and buffers are those of [`dion_step`](super::dion_step). A column of `R` that is
/// zero (or rounding noise) is left out of the update and its `Q` column is kept, so an all-zero
/// `Δ` only decays `X` and keeps `E = Δ`.
///
/// # Errors
/// As for [`dion_step`](super::dion_step); on error `x`, `E` and `Q` are unchanged.
pub fn powersgd_step<T: Scalar>(
    shape: StepShape,
    config: &PowerSgdConfig<T>,
    x: &mut [T],
    grad: &[T],
    state: StepState<'_, T>,
    scratch: StepScratch<'_, T>,
) -> Result<StepInfo, Error> {
    config.validate()?;
    let mut core = Core::new(shape, x, grad, state, scratch);
    let mut status = RUNNING;
    core.start(&mut status);
    // Between extra power iterations R is normalised only to keep its scale in range; the
    // smallest normal number avoids 0/0 on a zero column without changing the direction.
    core.project(
        config.qr,
        Completion::Range,
        config.power_iters - 1,
        T::MIN_POSITIVE,
        &mut status,
    );
    status?;
    let max_r = core.max_r()?;

    // Bounds for the commit, as in the Dion step: |(P Rᵀ)ᵢⱼ| ≤ ‖Rⱼ‖ ≤ √k·max|R|.
    let scan = core.scan;
    let sqrt_k = T::from_usize(shape.rank()).sqrt();
    let limit = T::MAX / (T::ONE + T::ONE);
    let captured = sqrt_k * max_r;
    if !(scan.max_b + captured <= limit) {
        return Err(Error::Overflow {
            operand: Operand::Momentum,
        });
    }
    let decay = T::ONE - config.lr * config.weight_decay;
    if !(scan.max_x * decay + config.lr * captured <= limit) {
        return Err(Error::Overflow {
            operand: Operand::Param,
        });
    }

    let zero_columns = core.commit_factors(QUpdate::Copy);
    core.update = Update {
        c1: T::ONE,
        decay,
        c2: config.lr,
    };
    core.apply(false);
    Ok(StepInfo {
        qr_rank: core.qr_rank,
        zero_columns,
    })
}

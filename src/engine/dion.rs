//! The Dion step on caller-provided slices.
//!
//! One step, following `dion_update` in microsoft/dion `dion/dion_reference.py`:
//!
//! ```text
//! B  = M + G
//! P  = orth(W·Q),  R = Wᵀ·P          W = B, or Bᵀ when rows < cols
//! M ← B − (1 − μ)·P Rᵀ               error feedback keeps the σ-weighted part
//! Q ← R / (‖R_col‖ + ε)
//! X ← (1 − lr·wd)·X − lr·√(rows/cols)·P Qᵀ
//! ```
//!
//! (products written for the untransposed case; with `W = Bᵀ` they are transposed back.) `P Qᵀ`
//! is `P Rᵀ` with every singular value set to one, the one change from PowerSGD.

use super::qr::QrOptions;
use super::step::{
    record, Completion, Core, QUpdate, Status, StepInfo, StepScratch, StepShape, StepState, Update,
    RUNNING,
};
use crate::error::{Error, Operand};
use crate::scalar::Scalar;

/// Hyperparameters of the Dion step.
///
/// Defaults are the reference's: `lr = 0.01`, `momentum = 0.95`, `weight_decay = 0.01`,
/// `epsilon = 1e-8`, one power iteration, QR with reorthogonalisation.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DionConfig<T> {
    /// Learning rate, `≥ 0` and finite. The step moves `X` by `lr·√(rows/cols)` times an
    /// update whose singular values are all 1.
    pub lr: T,
    /// Momentum `μ` of the error-feedback buffer, `0 ≤ μ < 1`: the buffer keeps the residual
    /// `B − P Rᵀ` plus `μ` times the captured part.
    pub momentum: T,
    /// Decoupled weight decay, `≥ 0`, applied as `X ← (1 − lr·wd)·X`; `lr·wd ≤ 1`.
    pub weight_decay: T,
    /// Added to each column norm of `R` before dividing, `> 0`.
    pub epsilon: T,
    /// Power iterations per step, `1 ≤ power_iters ≤ 16`; the reference uses 1.
    pub power_iters: usize,
    /// QR options.
    pub qr: QrOptions,
}

impl<T: Scalar> Default for DionConfig<T> {
    fn default() -> Self {
        Self {
            lr: T::from_f64(0.01),
            momentum: T::from_f64(0.95),
            weight_decay: T::from_f64(0.01),
            epsilon: T::from_f64(1e-8),
            power_iters: 1,
            qr: QrOptions::default(),
        }
    }
}

/// Largest accepted `power_iters`: more rounds than this only repeat converged work.
pub const MAX_POWER_ITERS: usize = 16;

pub(crate) fn invalid(name: &'static str, value: f64, expected: &'static str) -> Error {
    Error::InvalidHyperparameter {
        name,
        value,
        expected,
    }
}

pub(crate) fn check_lr_wd<T: Scalar>(lr: T, weight_decay: T) -> Result<(), Error> {
    if !(lr.is_finite() && lr >= T::ZERO) {
        return Err(invalid("lr", lr.to_f64(), "a finite value >= 0"));
    }
    if !(weight_decay.is_finite() && weight_decay >= T::ZERO) {
        return Err(invalid(
            "weight_decay",
            weight_decay.to_f64(),
            "a finite value >= 0",
        ));
    }
    // The reference accepts lr·wd > 1, which flips the sign of X every step: reject it.
    if !(lr * weight_decay <= T::ONE) {
        return Err(invalid(
            "weight_decay",
            weight_decay.to_f64(),
            "lr * weight_decay <= 1, so the decay factor 1 - lr * weight_decay stays in [0, 1]",
        ));
    }
    Ok(())
}

pub(crate) fn check_power_iters(power_iters: usize) -> Result<(), Error> {
    if power_iters == 0 || power_iters > MAX_POWER_ITERS {
        return Err(invalid(
            "power_iters",
            power_iters as f64,
            "1 <= power_iters <= 16",
        ));
    }
    Ok(())
}

impl<T: Scalar> DionConfig<T> {
    /// Checks every hyperparameter.
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] naming the first bad value and its valid range.
    // Out of line: inlined into a step, its error paths keep a floating-point register saved in
    // the step's frame (8 bytes more on the Cortex-M4F at opt-level 3).
    #[inline(never)]
    pub fn validate(&self) -> Result<(), Error> {
        check_lr_wd(self.lr, self.weight_decay)?;
        let mu = self.momentum;
        if !(mu >= T::ZERO && mu < T::ONE) {
            return Err(invalid("momentum", mu.to_f64(), "0 <= momentum < 1"));
        }
        let eps = self.epsilon;
        if !(eps.is_finite() && eps > T::ZERO) {
            return Err(invalid("epsilon", eps.to_f64(), "a finite value > 0"));
        }
        check_power_iters(self.power_iters)
    }
}

/// `lr·√(rows/cols)`, the step size of the Dion reference. The square root is taken in `f64`
/// (correctly rounded by libm) and rounded once to `T`, the same on every target.
pub(crate) fn scaled_lr<T: Scalar>(lr: T, shape: StepShape) -> T {
    let ratio = shape.rows() as f64 / shape.cols() as f64;
    lr * T::from_f64(libm::sqrt(ratio))
}

/// Runs one Dion step on `x` with gradient `grad`, updating `state` in place.
///
/// All slices are row-major: `x`, `grad` and `state.momentum` are `rows × cols`, `state.q` is
/// `min(rows, cols) × rank`, `scratch.p` is `max(rows, cols) × rank`, `scratch.r` is
/// `min(rows, cols) × rank` (see [`StepShape`]). Validates `config` on every call (a few
/// comparisons).
///
/// # Errors
/// - [`Error::InvalidHyperparameter`], [`Error::BufferTooSmall`]: bad arguments.
/// - [`Error::NonFinite`]: a NaN or ±∞ in `grad`, `x`, `momentum` or `q`.
/// - [`Error::Overflow`]: finite inputs whose update would not be finite.
///
/// On error `x`, `state.momentum` and `state.q` are exactly as before the call; only the
/// scratch has been written.
///
/// # Example
/// ```
/// use dion_kernel::engine::{dion_step, DionConfig, StepScratch, StepShape, StepState};
/// let shape = StepShape::new(4, 3, 1)?;
/// let mut x = [0.0f32; 12];
/// let grad = [2.0f32, 1.0, 2.0, 4.0, 2.0, 4.0, 4.0, 2.0, 4.0, 8.0, 4.0, 8.0]; // u vᵀ
/// let mut momentum = [0.0f32; 12];
/// let mut q = [1.0f32, 0.0, 0.0];
/// let (mut p, mut r) = ([0.0f32; 4], [0.0f32; 3]);
/// let config = DionConfig { weight_decay: 0.0, ..DionConfig::default() };
/// dion_step(
///     shape,
///     &config,
///     &mut x,
///     &grad,
///     StepState { momentum: &mut momentum, q: &mut q },
///     StepScratch { p: &mut p, r: &mut r },
/// )?;
/// // Q is v / ‖v‖ = [2, 1, 2] / 3 (up to sign) after one step on a rank-1 gradient.
/// assert!((q[1].abs() - 1.0 / 3.0).abs() < 1e-6);
/// # Ok::<(), dion_kernel::Error>(())
/// ```
pub fn dion_step<T: Scalar>(
    shape: StepShape,
    config: &DionConfig<T>,
    x: &mut [T],
    grad: &[T],
    state: StepState<'_, T>,
    scratch: StepScratch<'_, T>,
) -> Result<StepInfo, Error> {
    // The phases run on one `Core` by reference: moving it through the phase types would keep a
    // copy of it per phase in this frame (about 450 bytes on thumbv7em).
    config.validate()?;
    let mut core = Core::new(shape, x, grad, state, scratch);
    let mut status = RUNNING;
    core.start(&mut status);
    core.project(
        config.qr,
        Completion::Range,
        config.power_iters - 1,
        config.epsilon,
        &mut status,
    );
    if status.is_ok() {
        commit_bounds(&mut core, config, &mut status);
    }
    if status.is_ok() {
        status = Ok(commit(&mut core));
    }
    status
}

/// A Dion step after `P = W·Q`, before orthonormalisation: the point where data-parallel
/// workers average `P` ([`p_mut`](Self::p_mut)).
///
/// Workers that average `P` here and `R` in [`DionPhaseR`] end with identical `X` and `Q`, equal
/// to one worker stepping on the mean `B`; each keeps its own `M`. They exchange
/// `(rows + cols)·rank` numbers instead of `rows·cols`. Dropping a phase value abandons the step
/// with `X`, `M` and `Q` untouched.
pub struct DionPhaseP<'a, T: Scalar> {
    core: Core<'a, T>,
    config: DionConfig<T>,
}

/// A Dion step after `R = Wᵀ·P`, before the error feedback: the point where workers average
/// `R` ([`r_mut`](Self::r_mut)), then call [`finish`](Self::finish).
pub struct DionPhaseR<'a, T: Scalar> {
    core: Core<'a, T>,
    config: DionConfig<T>,
}

impl<'a, T: Scalar> DionPhaseP<'a, T> {
    /// Checks the arguments and inputs and computes `P = W·Q` into `scratch.p`.
    ///
    /// The phased step runs exactly one power iteration. A column of the averaged `P` that the
    /// QR finds dependent is dropped from the update (set to zero), a choice made from `P` alone
    /// so that every worker makes the same one.
    // NOTE: so a phased step whose averaged B·Q is zero in some column leaves that direction out
    // (X does not move along it), where the single-worker step picks one from the range of B.
    ///
    /// # Errors
    /// As for [`dion_step`]; also [`Error::InvalidHyperparameter`] if `config.power_iters != 1`.
    pub fn begin(
        shape: StepShape,
        config: &DionConfig<T>,
        x: &'a mut [T],
        grad: &'a [T],
        state: StepState<'a, T>,
        scratch: StepScratch<'a, T>,
    ) -> Result<Self, Error> {
        if config.power_iters != 1 {
            return Err(invalid(
                "power_iters",
                config.power_iters as f64,
                "1 for the phased step (each iteration would need its own exchange)",
            ));
        }
        config.validate()?;
        let mut core = Core::new(shape, x, grad, state, scratch);
        let mut status = RUNNING;
        core.start(&mut status);
        status?;
        Ok(Self {
            core,
            config: *config,
        })
    }

    /// `P = W·Q`, `max(rows, cols) × rank`, row-major; average it across workers here.
    pub fn p_mut(&mut self) -> &mut [T] {
        self.core.scratch.p
    }

    /// Orthonormalises `P` and computes `R = Wᵀ·P` into `scratch.r`.
    ///
    /// # Errors
    /// [`Error::Overflow`] if `P` (after averaging) or `R` is not finite.
    pub fn project(mut self) -> Result<DionPhaseR<'a, T>, Error> {
        let c = self.config;
        let mut status = RUNNING;
        self.core
            .project(c.qr, Completion::Zero, 0, c.epsilon, &mut status);
        status?;
        Ok(DionPhaseR {
            core: self.core,
            config: c,
        })
    }
}

impl<T: Scalar> DionPhaseR<'_, T> {
    /// `R = Wᵀ·P`, `min(rows, cols) × rank`, row-major; average it across workers here.
    pub fn r_mut(&mut self) -> &mut [T] {
        self.core.scratch.r
    }

    /// Checks that the update stays finite, then writes `Q`, `M` and `X`.
    ///
    /// # Errors
    /// [`Error::Overflow`] if `R` (after averaging) is not finite or the new `M` or `X` could
    /// exceed `T::MAX`; nothing is written then.
    pub fn finish(mut self) -> Result<StepInfo, Error> {
        finish(&mut self.core, &self.config)
    }
}

/// Checks that the update stays finite, then writes `Q`, `M` and `X` (see [`DionPhaseR::finish`]).
#[inline(always)]
fn finish<T: Scalar>(core: &mut Core<'_, T>, config: &DionConfig<T>) -> Result<StepInfo, Error> {
    let mut status = RUNNING;
    commit_bounds(core, config, &mut status);
    status?;
    Ok(commit(core))
}

/// Writes `Q`, `M` and `X` once [`commit_bounds`] has passed; nothing here can fail.
#[inline(always)]
fn commit<T: Scalar>(core: &mut Core<'_, T>) -> StepInfo {
    let zero_columns = core.commit_factors(QUpdate::Normalize);
    core.apply(true);
    StepInfo {
        qr_rank: core.qr_rank,
        zero_columns,
    }
}

/// Sets the coefficients of the final pass in `core.update`, once the bounds show that it
/// stays finite.
///
/// Otherwise records [`Error::Overflow`] in `status` (see [`Core::start`]): `R` is not finite,
/// or the new `M` or `X` could exceed `T::MAX`.
#[inline(never)]
fn commit_bounds<T: Scalar>(core: &mut Core<'_, T>, config: &DionConfig<T>, status: &mut Status) {
    record(status, bounds(core, config));
}

/// Runs the checks of [`commit_bounds`].
#[inline(always)]
fn bounds<T: Scalar>(core: &mut Core<'_, T>, config: &DionConfig<T>) -> Result<(), Error> {
    let s = core.shape;
    let scan = core.scan;
    let max_r = core.max_r()?;

    // Bounds for the commit. P has orthonormal columns, so every row of P has norm ≤ 1 and
    // |(P Rᵀ)ᵢⱼ| ≤ ‖Rⱼ‖ ≤ √k·max|R|; the new Q has columns of norm ≤ 1, so
    // |(P Qᵀ)ᵢⱼ| ≤ √k. Half of T::MAX leaves room for the rounding of the sums.
    let sqrt_k = T::from_usize(s.rank()).sqrt();
    let limit = T::MAX / (T::ONE + T::ONE);
    let c1 = T::ONE - config.momentum;
    if !(scan.max_b + c1 * (sqrt_k * max_r) <= limit) {
        return Err(Error::Overflow {
            operand: Operand::Momentum,
        });
    }
    let lr_scaled = scaled_lr(config.lr, s);
    let decay = T::ONE - config.lr * config.weight_decay;
    if !(scan.max_x * decay + lr_scaled * sqrt_k <= limit) {
        return Err(Error::Overflow {
            operand: Operand::Param,
        });
    }
    core.update = Update {
        c1,
        decay,
        c2: lr_scaled,
    };
    Ok(())
}

//! AdamW and Lion for vectors (biases, norm gains), on caller-provided slices.
//!
//! Both follow the reference's rules (microsoft/dion `scalar_opts.py`):
//!
//! ```text
//! AdamW, step t ≥ 1:  m ← β1·m + (1 − β1)·g
//!                     v ← β2·v + (1 − β2)·g²
//!                     x ← (1 − lr·wd)·x − (lr / (1 − β1ᵗ))·m / (√v / √(1 − β2ᵗ) + ε)
//! Lion:               u = sign(β1·m + (1 − β1)·g)
//!                     m ← β2·m + (1 − β2)·g
//!                     x ← (1 − lr·wd)·x − lr·u
//! ```
//!
//! Each step computes every new value first and writes only when all are finite, so an error
//! leaves `x` and the moments bit-identical.

use super::dion::{check_lr_wd, invalid};
use crate::error::{Error, Operand};
use crate::scalar::Scalar;

/// Hyperparameters of AdamW and Lion.
///
/// Defaults: `lr = 0.01`, `beta1 = 0.9`, `beta2 = 0.95`, `epsilon = 1e-8`,
/// `weight_decay = 0.01` (Lion ignores `epsilon`).
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ScalarOptConfig<T> {
    /// Learning rate, `≥ 0` and finite.
    pub lr: T,
    /// First-moment decay, `0 ≤ β1 < 1`.
    pub beta1: T,
    /// Second-moment decay (AdamW) or momentum decay (Lion), `0 ≤ β2 < 1`.
    pub beta2: T,
    /// Added to AdamW's denominator, `> 0` and finite.
    pub epsilon: T,
    /// Decoupled weight decay, `≥ 0`, with `lr·wd ≤ 1`.
    pub weight_decay: T,
}

impl<T: Scalar> Default for ScalarOptConfig<T> {
    fn default() -> Self {
        Self {
            lr: T::from_f64(0.01),
            beta1: T::from_f64(0.9),
            beta2: T::from_f64(0.95),
            epsilon: T::from_f64(1e-8),
            weight_decay: T::from_f64(0.01),
        }
    }
}

impl<T: Scalar> ScalarOptConfig<T> {
    /// Checks every hyperparameter.
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] naming the first bad value and its valid range.
    pub fn validate(&self) -> Result<(), Error> {
        check_lr_wd(self.lr, self.weight_decay)?;
        for (name, beta) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(beta >= T::ZERO && beta < T::ONE) {
                return Err(invalid(name, beta.to_f64(), "0 <= beta < 1"));
            }
        }
        if !(self.epsilon.is_finite() && self.epsilon > T::ZERO) {
            return Err(invalid(
                "epsilon",
                self.epsilon.to_f64(),
                "a finite value > 0",
            ));
        }
        Ok(())
    }
}

fn check_vectors<T: Scalar>(len: usize, vectors: &[&[T]]) -> Result<(), Error> {
    for v in vectors {
        if v.len() != len {
            return Err(Error::BufferTooSmall {
                operand: Operand::Vector,
                required: len,
                len: v.len(),
            });
        }
    }
    for v in vectors {
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            return Err(Error::NonFinite {
                operand: Operand::Vector,
                row: 0,
                col: i,
            });
        }
    }
    Ok(())
}

/// One AdamW step at step number `t` (1 for the first step).
///
/// # Errors
/// [`Error::InvalidHyperparameter`] for a bad config or `t = 0`; [`Error::BufferTooSmall`] if the
/// lengths differ; [`Error::NonFinite`] for a NaN or ±∞ input; [`Error::Overflow`] if a new value
/// would not be finite (for example `g²` above `T::MAX`). Nothing is written on error.
pub fn adamw_step<T: Scalar>(
    config: &ScalarOptConfig<T>,
    t: u32,
    x: &mut [T],
    grad: &[T],
    m: &mut [T],
    v: &mut [T],
) -> Result<(), Error> {
    config.validate()?;
    if t == 0 {
        return Err(invalid("t", 0.0, "the step number, starting at 1"));
    }
    check_vectors(x.len(), &[x, grad, m, v])?;

    let c = *config;
    // 1 − βᵗ in f64 through libm, rounded once: the same bits on every target.
    let bias1 = T::from_f64(1.0 - libm::pow(c.beta1.to_f64(), t as f64));
    let bias2_sqrt = T::from_f64(libm::sqrt(1.0 - libm::pow(c.beta2.to_f64(), t as f64)));
    let step_size = c.lr / bias1;
    let decay = T::ONE - c.lr * c.weight_decay;
    let new_values = |x: T, g: T, m: T, v: T| {
        let m_new = c.beta1 * m + (T::ONE - c.beta1) * g;
        let v_new = c.beta2 * v + (T::ONE - c.beta2) * (g * g);
        let denominator = v_new.sqrt_approx() / bias2_sqrt + c.epsilon;
        let x_new = decay * x - step_size * m_new / denominator;
        (x_new, m_new, v_new)
    };

    for i in 0..x.len() {
        let (x_new, m_new, v_new) = new_values(x[i], grad[i], m[i], v[i]);
        if !(x_new.is_finite() && m_new.is_finite() && v_new.is_finite()) {
            return Err(Error::Overflow {
                operand: Operand::Vector,
            });
        }
    }
    for i in 0..x.len() {
        let (x_new, m_new, v_new) = new_values(x[i], grad[i], m[i], v[i]);
        x[i] = x_new;
        m[i] = m_new;
        v[i] = v_new;
    }
    Ok(())
}

/// One Lion step. `sign(0) = 0`, as `torch.sign`.
///
/// # Errors
/// As for [`adamw_step`] (without `t`). Nothing is written on error.
pub fn lion_step<T: Scalar>(
    config: &ScalarOptConfig<T>,
    x: &mut [T],
    grad: &[T],
    m: &mut [T],
) -> Result<(), Error> {
    config.validate()?;
    check_vectors(x.len(), &[x, grad, m])?;

    let c = *config;
    let decay = T::ONE - c.lr * c.weight_decay;
    let new_values = |x: T, g: T, m: T| {
        let interpolated = c.beta1 * m + (T::ONE - c.beta1) * g;
        let sign = if interpolated > T::ZERO {
            T::ONE
        } else if interpolated < T::ZERO {
            -T::ONE
        } else {
            T::ZERO
        };
        let m_new = c.beta2 * m + (T::ONE - c.beta2) * g;
        (decay * x - c.lr * sign, m_new)
    };

    for i in 0..x.len() {
        let (x_new, m_new) = new_values(x[i], grad[i], m[i]);
        if !(x_new.is_finite() && m_new.is_finite()) {
            return Err(Error::Overflow {
                operand: Operand::Vector,
            });
        }
    }
    for i in 0..x.len() {
        let (x_new, m_new) = new_values(x[i], grad[i], m[i]);
        x[i] = x_new;
        m[i] = m_new;
    }
    Ok(())
}

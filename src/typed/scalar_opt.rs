//! `AdamW<T, N>` and `Lion<T, N>`: scalar optimizers for fixed-size vectors.

use crate::engine::{adamw_step, lion_step, ScalarOptConfig};
use crate::error::Error;
use crate::scalar::Scalar;

/// AdamW state for a vector of `N` entries: both moments and the step count.
///
/// # Example
/// ```
/// use dion_kernel::engine::ScalarOptConfig;
/// use dion_kernel::typed::AdamW;
/// let mut bias = [0.5f32; 3];
/// let mut adamw = AdamW::<f32, 3>::new(ScalarOptConfig::default())?;
/// adamw.step(&mut bias, &[1.0, -1.0, 0.0])?;
/// assert!(bias[0] < 0.5 && bias[1] > 0.5);
/// # Ok::<(), dion_kernel::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct AdamW<T: Scalar, const N: usize> {
    config: ScalarOptConfig<T>,
    m: [T; N],
    v: [T; N],
    t: u32,
}

impl<T: Scalar, const N: usize> AdamW<T, N> {
    /// A fresh state with zero moments.
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] if `config` is invalid.
    pub fn new(config: ScalarOptConfig<T>) -> Result<Self, Error> {
        config.validate()?;
        Ok(Self {
            config,
            m: [T::ZERO; N],
            v: [T::ZERO; N],
            t: 0,
        })
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u32 {
        self.t
    }

    /// Runs one AdamW step.
    ///
    /// # Errors
    /// As for [`adamw_step`]; also [`Error::Overflow`] once the step count would pass `u32::MAX`.
    /// Nothing is changed on error.
    pub fn step(&mut self, x: &mut [T; N], grad: &[T; N]) -> Result<(), Error> {
        let t = self.t.checked_add(1).ok_or(Error::Overflow {
            operand: crate::Operand::Vector,
        })?;
        adamw_step(&self.config, t, x, grad, &mut self.m, &mut self.v)?;
        self.t = t;
        Ok(())
    }
}

/// Lion state for a vector of `N` entries.
#[derive(Clone, Debug)]
pub struct Lion<T: Scalar, const N: usize> {
    config: ScalarOptConfig<T>,
    m: [T; N],
}

impl<T: Scalar, const N: usize> Lion<T, N> {
    /// A fresh state with zero momentum.
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] if `config` is invalid.
    pub fn new(config: ScalarOptConfig<T>) -> Result<Self, Error> {
        config.validate()?;
        Ok(Self {
            config,
            m: [T::ZERO; N],
        })
    }

    /// Runs one Lion step.
    ///
    /// # Errors
    /// As for [`lion_step`]; nothing is changed on error.
    pub fn step(&mut self, x: &mut [T; N], grad: &[T; N]) -> Result<(), Error> {
        lion_step(&self.config, x, grad, &mut self.m)
    }
}

//! The three optimizers compared: SGD with momentum, AdamW, and Dion for the weight matrices.

use dion_kernel::engine::{DionConfig, ScalarOptConfig};
use dion_kernel::typed::{self, Matrix};
use dion_kernel::Error;

use crate::data::{CLASSES, PIXELS};
use crate::mlp::Mlp;
use crate::rng::Rng;
use crate::HIDDEN;

/// The network as the example trains it.
pub type Model = Mlp<f32, HIDDEN>;

/// One update rule for every parameter of the network.
pub trait Optimizer {
    /// Short name for the output lines and the plot legend.
    fn name(&self) -> &'static str;

    /// Applies one update to `model` given the mini-batch gradient `grads`.
    fn step(&mut self, model: &mut Model, grads: &Model) -> Result<(), Error>;
}

/// SGD with heavy-ball momentum, as PyTorch's `torch.optim.SGD` computes it without dampening
/// or Nesterov: `v ← μ·v + g`, `θ ← θ − lr·v`. The crate has no SGD, so it is written here.
pub struct SgdMomentum {
    lr: f32,
    momentum: f32,
    velocity: Box<Model>,
}

impl SgdMomentum {
    /// Starts with zero velocity.
    pub fn new(lr: f32, momentum: f32) -> Self {
        Self {
            lr,
            momentum,
            velocity: Box::new(Model::zeros()),
        }
    }
}

impl Optimizer for SgdMomentum {
    fn name(&self) -> &'static str {
        "sgd"
    }

    fn step(&mut self, model: &mut Model, grads: &Model) -> Result<(), Error> {
        let blocks = model
            .blocks_mut()
            .into_iter()
            .zip(self.velocity.blocks_mut())
            .zip(grads.blocks());
        for ((params, velocity), grad) in blocks {
            for ((p, v), g) in params.iter_mut().zip(velocity.iter_mut()).zip(grad) {
                *v = self.momentum * *v + *g;
                *p -= self.lr * *v;
            }
        }
        Ok(())
    }
}

/// AdamW on every parameter: the crate's `typed::AdamW`, one state per parameter block.
pub struct AdamW {
    w1: Box<typed::AdamW<f32, { HIDDEN * PIXELS }>>,
    b1: typed::AdamW<f32, HIDDEN>,
    w2: Box<typed::AdamW<f32, { CLASSES * HIDDEN }>>,
    b2: typed::AdamW<f32, CLASSES>,
}

impl AdamW {
    /// Starts with zero moments.
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] if `config` is invalid.
    pub fn new(config: ScalarOptConfig<f32>) -> Result<Self, Error> {
        Ok(Self {
            w1: Box::new(typed::AdamW::new(config)?),
            b1: typed::AdamW::new(config)?,
            w2: Box::new(typed::AdamW::new(config)?),
            b2: typed::AdamW::new(config)?,
        })
    }
}

impl Optimizer for AdamW {
    fn name(&self) -> &'static str {
        "adamw"
    }

    fn step(&mut self, model: &mut Model, grads: &Model) -> Result<(), Error> {
        self.w1.step(flat_mut(&mut model.w1), flat(&grads.w1))?;
        self.b1.step(&mut model.b1, &grads.b1)?;
        self.w2.step(flat_mut(&mut model.w2), flat(&grads.w2))?;
        self.b2.step(&mut model.b2, &grads.b2)
    }
}

/// Views the entries of `m` as one array, for the vector optimizers.
fn flat<const R: usize, const C: usize, const N: usize>(m: &Matrix<f32, R, C>) -> &[f32; N] {
    m.as_slice()
        .try_into()
        .expect("N is R·C at every call site")
}

/// Views the entries of `m` as one mutable array, for the vector optimizers.
fn flat_mut<const R: usize, const C: usize, const N: usize>(
    m: &mut Matrix<f32, R, C>,
) -> &mut [f32; N] {
    m.as_mut_slice()
        .try_into()
        .expect("N is R·C at every call site")
}

/// Rank of the Dion factors for the `HIDDEN × 64` hidden-layer weights in the comparison.
pub const RANK_HIDDEN: usize = 8;
/// Rank of the Dion factors for the `10 × HIDDEN` output-layer weights in the comparison.
pub const RANK_OUTPUT: usize = 4;

/// The crate's Dion step on `W₁` at rank `R1` and on `W₂` at rank `R2`, the crate's AdamW on the
/// biases. Ranks above `min(rows, cols)` of a layer do not compile.
pub struct Dion<const R1: usize, const R2: usize> {
    w1: Box<typed::Dion<f32, HIDDEN, PIXELS, R1>>,
    w2: Box<typed::Dion<f32, CLASSES, HIDDEN, R2>>,
    b1: typed::AdamW<f32, HIDDEN>,
    b2: typed::AdamW<f32, CLASSES>,
}

impl<const R1: usize, const R2: usize> Dion<R1, R2> {
    /// Dion with `config` on the weights and AdamW with `bias_config` on the biases; `seed` draws
    /// the initial factors `Q` of both layers.
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] if a config is invalid.
    pub fn new(
        config: DionConfig<f32>,
        bias_config: ScalarOptConfig<f32>,
        seed: u64,
    ) -> Result<Self, Error> {
        let mut seeds = Rng::new(seed);
        Ok(Self {
            w1: Box::new(typed::Dion::new(config, seeds.next_u64())?),
            w2: Box::new(typed::Dion::new(config, seeds.next_u64())?),
            b1: typed::AdamW::new(bias_config)?,
            b2: typed::AdamW::new(bias_config)?,
        })
    }
}

impl<const R1: usize, const R2: usize> Optimizer for Dion<R1, R2> {
    fn name(&self) -> &'static str {
        "dion"
    }

    fn step(&mut self, model: &mut Model, grads: &Model) -> Result<(), Error> {
        self.w1.step(&mut model.w1, &grads.w1)?;
        self.b1.step(&mut model.b1, &grads.b1)?;
        self.w2.step(&mut model.w2, &grads.w2)?;
        self.b2.step(&mut model.b2, &grads.b2)?;
        Ok(())
    }
}

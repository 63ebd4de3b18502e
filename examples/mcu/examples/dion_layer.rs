//! Dion on a realistic layer: a 32 × 64 f32 linear layer (`y = W·a`) at rank 8, trained to
//! imitate a fixed teacher layer from random input batches.
//!
//! Each step draws a batch `A` of 16 inputs, forms the error `E = A·Wᵀ − A·W*ᵀ` and the gradient
//! of the mean squared error `G = Eᵀ·A / 16`, and runs `Dion::step`. Logs the loss every 20
//! steps and exits with status 0 if the loss fell at least 20-fold and the weights stayed finite.
//!
//! ```text
//! cargo run -p dion-kernel-mcu --target thumbv7em-none-eabihf --profile release-mcu --example dion_layer
//! ```
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use dion_kernel::engine::DionConfig;
use dion_kernel::typed::{Dion, Matrix};
use dion_kernel::Error;
use dion_kernel_mcu::exit;

const OUTPUTS: usize = 32;
const INPUTS: usize = 64;
const RANK: usize = 8;
const BATCH: usize = 16;
const STEPS: usize = 200;
/// The loss must fall by at least this factor over the run.
const REQUIRED_LOSS_REDUCTION: f32 = 20.0;

/// A 32-bit LCG (Numerical Recipes constants) giving values uniform in `[-1, 1)`.
struct Lcg(u32);

impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        ((self.0 >> 8) as f32 / (1u32 << 23) as f32) - 1.0
    }
}

struct Layer {
    weight: Matrix<f32, OUTPUTS, INPUTS>,
    teacher: Matrix<f32, OUTPUTS, INPUTS>,
    grad: Matrix<f32, OUTPUTS, INPUTS>,
    inputs: Matrix<f32, BATCH, INPUTS>,
    error: Matrix<f32, BATCH, OUTPUTS>,
    dion: Dion<f32, OUTPUTS, INPUTS, RANK>,
}

impl Layer {
    /// Draws a batch, writes the gradient of `½·mean‖W·a − W*·a‖²` and returns that loss.
    fn loss_and_gradient(&mut self, rng: &mut Lcg) -> f32 {
        for value in self.inputs.as_mut_slice() {
            *value = rng.next();
        }
        // E = A·Wᵀ − A·W*ᵀ, built from two rank updates of a zero matrix.
        self.error = Matrix::zeros();
        self.error.rank_update(1.0, &self.inputs, &self.weight);
        self.error.rank_update(-1.0, &self.inputs, &self.teacher);
        let loss = self.error.as_slice().iter().map(|e| e * e).sum::<f32>() / (2.0 * BATCH as f32);
        // G = Eᵀ·A / BATCH.
        self.error.tr_mul_to(&self.inputs, &mut self.grad);
        for g in self.grad.as_mut_slice() {
            *g /= BATCH as f32;
        }
        loss
    }
}

fn run() -> Result<(f32, f32), Error> {
    let mut rng = Lcg(0x5EED);
    // A teacher of rank 4: (1/16)·L·Rᵀ with L, R uniform in [-1, 1), entries of order 0.05. From
    // W = 0 the first gradients have rank 4, so the QR reports rank 4 until noise fills the rest.
    let mut teacher = Matrix::<f32, OUTPUTS, INPUTS>::zeros();
    let mut left = Matrix::<f32, OUTPUTS, 4>::zeros();
    let mut right = Matrix::<f32, INPUTS, 4>::zeros();
    for value in left.as_mut_slice().iter_mut().chain(right.as_mut_slice()) {
        *value = rng.next();
    }
    teacher.rank_update(1.0 / 16.0, &left, &right);

    let config = DionConfig {
        lr: 0.02,
        weight_decay: 0.0,
        ..DionConfig::default()
    };
    // `?` rather than `unwrap()`: unwrapping a `Result` would link `core::fmt` for its `Debug`.
    let dion = Dion::new(config, 7)?;
    let layer = cortex_m::singleton!(: Layer = Layer {
        weight: Matrix::zeros(),
        teacher,
        grad: Matrix::zeros(),
        inputs: Matrix::zeros(),
        error: Matrix::zeros(),
        dion,
    })
    .unwrap();
    defmt::info!(
        "Dion on a {=usize}x{=usize} layer, rank {=usize}, batch {=usize}; state {=usize} bytes",
        OUTPUTS,
        INPUTS,
        RANK,
        BATCH,
        core::mem::size_of::<Dion<f32, OUTPUTS, INPUTS, RANK>>()
    );

    let first_loss = layer.loss_and_gradient(&mut rng);
    let mut loss = first_loss;
    for step in 1..=STEPS {
        let info = layer.dion.step(&mut layer.weight, &layer.grad)?;
        loss = layer.loss_and_gradient(&mut rng);
        if step % 20 == 0 {
            defmt::info!(
                "step {=usize}  loss {=f32}  qr rank {=usize}",
                step,
                loss,
                info.qr_rank
            );
        }
    }
    if !layer.weight.as_slice().iter().all(|w| w.is_finite()) {
        defmt::error!("weights are not finite");
        exit(false);
    }
    Ok((first_loss, loss))
}

#[entry]
fn main() -> ! {
    match run() {
        Ok((first, last)) if last * REQUIRED_LOSS_REDUCTION <= first => {
            defmt::info!("PASS: loss {=f32} -> {=f32}", first, last);
            exit(true)
        }
        Ok((first, last)) => {
            defmt::error!(
                "FAIL: loss {=f32} -> {=f32}, expected a {=f32}-fold reduction",
                first,
                last,
                REQUIRED_LOSS_REDUCTION
            );
            exit(false)
        }
        Err(error) => {
            defmt::error!("Dion step failed: {}", error);
            exit(false)
        }
    }
}

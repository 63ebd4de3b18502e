//! On-device training: the digits classifier of the host example `digits` (64 → 64 ReLU → 10,
//! softmax cross-entropy), trained on the emulated Cortex-M4F with Dion on both weight matrices
//! and AdamW on the biases.
//!
//! Data: a class-balanced subset of the UCI handwritten digits (8×8 images, pixels 0–16), stored
//! in flash by `build.rs`. Per class, the first 80 images of `examples/data/digits.csv.gz` are the
//! training set (800 in all) and the next 40 the held-out test set (400). Everything the training
//! touches is in static RAM (about 100 KiB, see docs/EMBEDDED.md), well inside the 256 KiB that
//! `memory.x` gives the program.
//!
//! ```text
//! cargo run -p dion-kernel-mcu --target thumbv7em-none-eabihf --profile release-mcu --example digits_train
//! ```
//!
//! Logs the mean training loss and the test loss and accuracy after every epoch, and exits with
//! status 0 only if the final test accuracy reaches `REQUIRED_TEST_ACCURACY`.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use dion_kernel::engine::{DionConfig, ScalarOptConfig};
use dion_kernel::typed::{AdamW, Dion, Matrix};
use dion_kernel::Error;
use dion_kernel_mcu::{exit, paint_stack, stack_top, stack_used};

mod digits {
    include!(concat!(env!("OUT_DIR"), "/digits_subset.rs"));
}

const PIXELS: usize = 64;
const HIDDEN: usize = 64;
const CLASSES: usize = 10;
const BATCH: usize = 32;
const TRAIN: usize = digits::TRAIN_LABELS.len();
const TEST: usize = digits::TEST_LABELS.len();

/// Same settings as the host example: Dion lr 0.1 at ranks 8 and 4, AdamW lr 0.003 on biases.
const RANK_HIDDEN: usize = 8;
const RANK_OUTPUT: usize = 4;
const DION_LR: f32 = 0.1;
const ADAMW_LR: f32 = 0.003;
const EPOCHS: usize = 15;
const SEED: u64 = 20_250_407;

/// Test accuracy the run must reach; the measured value is in docs/EMBEDDED.md. The run is
/// deterministic (same bits on every run), so the margin only covers changes to the library.
const REQUIRED_TEST_ACCURACY: f32 = 0.90;

/// SplitMix64 (Steele, Lea and Flood, OOPSLA 2014), for the weights and the batch order.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[-bound, bound)`, from the top 24 bits.
    fn uniform_symmetric(&mut self, bound: f32) -> f32 {
        let unit = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        (2.0 * unit - 1.0) * bound
    }

    /// Uniform in `0..n`; the modulo bias is below 2⁻⁵⁰ for `n ≤ 800`, irrelevant for shuffling.
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

struct Model {
    /// Hidden weights, `HIDDEN × PIXELS` (PyTorch `nn.Linear` layout: outputs × inputs).
    w1: Matrix<f32, HIDDEN, PIXELS>,
    b1: [f32; HIDDEN],
    /// Output weights, `CLASSES × HIDDEN`.
    w2: Matrix<f32, CLASSES, HIDDEN>,
    b2: [f32; CLASSES],
}

impl Model {
    const fn zeros() -> Self {
        Self {
            w1: Matrix::zeros(),
            b1: [0.0; HIDDEN],
            w2: Matrix::zeros(),
            b2: [0.0; CLASSES],
        }
    }

    /// He-uniform `W₁` (bound √(6/64)), `W₂` with variance 1/HIDDEN (bound √(3/HIDDEN)), zero
    /// biases, as in the host example.
    fn init(&mut self, rng: &mut SplitMix64) {
        let bound1 = libm::sqrtf(6.0 / PIXELS as f32);
        let bound2 = libm::sqrtf(3.0 / HIDDEN as f32);
        for value in self.w1.as_mut_slice() {
            *value = rng.uniform_symmetric(bound1);
        }
        for value in self.w2.as_mut_slice() {
            *value = rng.uniform_symmetric(bound2);
        }
    }
}

/// Activations of one batch, kept from the forward pass for the backward pass.
struct Workspace {
    x: Matrix<f32, BATCH, PIXELS>,
    z1: Matrix<f32, BATCH, HIDDEN>,
    a1: Matrix<f32, BATCH, HIDDEN>,
    logits: Matrix<f32, BATCH, CLASSES>,
    dlogits: Matrix<f32, BATCH, CLASSES>,
    dhidden: Matrix<f32, BATCH, HIDDEN>,
    labels: [u8; BATCH],
}

struct Optimizers {
    w1: Dion<f32, HIDDEN, PIXELS, RANK_HIDDEN>,
    w2: Dion<f32, CLASSES, HIDDEN, RANK_OUTPUT>,
    b1: AdamW<f32, HIDDEN>,
    b2: AdamW<f32, CLASSES>,
}

/// Everything the training needs. `main` puts it in static RAM, so the linker counts it against
/// the 256 KiB of `memory.x`.
struct Trainer {
    model: Model,
    grads: Model,
    ws: Workspace,
    order: [u16; TRAIN],
}

impl Optimizers {
    fn new() -> Result<Self, Error> {
        let dion = DionConfig {
            lr: DION_LR,
            ..DionConfig::default()
        };
        let adamw = ScalarOptConfig {
            lr: ADAMW_LR,
            ..ScalarOptConfig::default()
        };
        Ok(Self {
            w1: Dion::new(dion, SEED ^ 1)?,
            w2: Dion::new(dion, SEED ^ 2)?,
            b1: AdamW::new(adamw)?,
            b2: AdamW::new(adamw)?,
        })
    }
}

impl Trainer {
    /// All zeros, as a constant, so that `main` can place it in `.bss` without building it on
    /// the stack first. (The optimizers are kept apart because `Dion::new` is not a `const fn`,
    /// and an `Option` of them would make the value non-zero and move 103 KiB into `.data`.)
    const ZERO: Self = Self {
        model: Model::zeros(),
        grads: Model::zeros(),
        ws: Workspace {
            x: Matrix::zeros(),
            z1: Matrix::zeros(),
            a1: Matrix::zeros(),
            logits: Matrix::zeros(),
            dlogits: Matrix::zeros(),
            dhidden: Matrix::zeros(),
            labels: [0; BATCH],
        },
        order: [0; TRAIN],
    };

    /// Copies the images `indices` into the batch, scaled to `[0, 1]`, and zeroes the rest.
    fn fill_batch(
        &mut self,
        pixels: &[[u8; PIXELS]],
        labels: &[u8],
        indices: impl Iterator<Item = usize>,
    ) -> usize {
        let mut n = 0;
        for (row, index) in self.ws.x.rows_mut().iter_mut().zip(indices) {
            for (value, &pixel) in row.iter_mut().zip(&pixels[index]) {
                *value = f32::from(pixel) / 16.0;
            }
            self.ws.labels[n] = labels[index];
            n += 1;
        }
        for row in &mut self.ws.x.rows_mut()[n..] {
            *row = [0.0; PIXELS];
        }
        n
    }

    /// `Z₁ = X·W₁ᵀ + b₁`, `A₁ = ReLU(Z₁)`, logits `Z₂ = A₁·W₂ᵀ + b₂`.
    fn forward(&mut self) {
        let (model, ws) = (&self.model, &mut self.ws);
        for row in ws.z1.rows_mut() {
            *row = model.b1;
        }
        ws.z1.rank_update(1.0, &ws.x, &model.w1);
        for (a, &z) in ws.a1.as_mut_slice().iter_mut().zip(ws.z1.as_slice()) {
            *a = if z > 0.0 { z } else { 0.0 };
        }
        for row in ws.logits.rows_mut() {
            *row = model.b2;
        }
        ws.logits.rank_update(1.0, &ws.a1, &model.w2);
    }

    /// Returns the summed cross-entropy of the first `n` rows and the number classified right;
    /// writes `(softmax − onehot)/n` into `dlogits` (zero for padding rows).
    fn softmax_cross_entropy(&mut self, n: usize) -> (f32, usize) {
        let ws = &mut self.ws;
        let mut total = 0.0f32;
        let mut correct = 0;
        for i in 0..BATCH {
            let grad = &mut ws.dlogits.rows_mut()[i];
            if i >= n {
                *grad = [0.0; CLASSES];
                continue;
            }
            let z = ws.logits.row(i);
            let label = usize::from(ws.labels[i]);
            let (mut best, mut max) = (0, z[0]);
            for (k, &value) in z.iter().enumerate() {
                if value > max {
                    (best, max) = (k, value);
                }
            }
            correct += usize::from(best == label);
            // Shifting by the maximum keeps every exp in (0, 1].
            let exps = z.map(|value| libm::expf(value - max));
            let sum: f32 = exps.iter().sum();
            total += libm::logf(sum) - (z[label] - max);
            for (k, g) in grad.iter_mut().enumerate() {
                let target = if k == label { 1.0 } else { 0.0 };
                *g = (exps[k] / sum - target) / n as f32;
            }
        }
        (total, correct)
    }

    /// Backward pass of the batch: gradients of the mean loss into `self.grads`.
    fn backward(&mut self) {
        let (model, ws, grads) = (&self.model, &mut self.ws, &mut self.grads);
        ws.dlogits.tr_mul_to(&ws.a1, &mut grads.w2);
        column_sums(&ws.dlogits, &mut grads.b2);
        ws.dlogits.mul_to(&model.w2, &mut ws.dhidden);
        for (d, &z) in ws.dhidden.as_mut_slice().iter_mut().zip(ws.z1.as_slice()) {
            if z <= 0.0 {
                *d = 0.0;
            }
        }
        ws.dhidden.tr_mul_to(&ws.x, &mut grads.w1);
        column_sums(&ws.dhidden, &mut grads.b1);
    }

    fn optimizer_step(&mut self, opt: &mut Optimizers) -> Result<(), Error> {
        let (model, grads) = (&mut self.model, &self.grads);
        opt.w1.step(&mut model.w1, &grads.w1)?;
        opt.w2.step(&mut model.w2, &grads.w2)?;
        opt.b1.step(&mut model.b1, &grads.b1)?;
        opt.b2.step(&mut model.b2, &grads.b2)?;
        Ok(())
    }

    /// One pass over the training set in a new random order; returns the mean training loss and
    /// the training accuracy seen during the pass.
    fn train_epoch(
        &mut self,
        opt: &mut Optimizers,
        rng: &mut SplitMix64,
    ) -> Result<(f32, f32), Error> {
        for i in (1..TRAIN).rev() {
            let j = rng.below(i + 1);
            self.order.swap(i, j);
        }
        let (mut loss, mut correct) = (0.0f32, 0usize);
        for start in (0..TRAIN).step_by(BATCH) {
            let end = (start + BATCH).min(TRAIN);
            let order = self.order;
            let n = self.fill_batch(
                &digits::TRAIN_PIXELS,
                &digits::TRAIN_LABELS,
                order[start..end].iter().map(|&i| usize::from(i)),
            );
            self.forward();
            let (batch_loss, batch_correct) = self.softmax_cross_entropy(n);
            self.backward();
            self.optimizer_step(opt)?;
            loss += batch_loss;
            correct += batch_correct;
        }
        Ok((loss / TRAIN as f32, correct as f32 / TRAIN as f32))
    }

    /// Mean loss and accuracy on the held-out test set.
    fn evaluate(&mut self) -> (f32, f32) {
        let (mut loss, mut correct) = (0.0f32, 0usize);
        for start in (0..TEST).step_by(BATCH) {
            let end = (start + BATCH).min(TEST);
            let n = self.fill_batch(&digits::TEST_PIXELS, &digits::TEST_LABELS, start..end);
            self.forward();
            let (batch_loss, batch_correct) = self.softmax_cross_entropy(n);
            loss += batch_loss;
            correct += batch_correct;
        }
        (loss / TEST as f32, correct as f32 / TEST as f32)
    }
}

/// `out[j] = Σᵢ m[i][j]`: the gradient of a bias added to every row.
fn column_sums<const R: usize, const C: usize>(m: &Matrix<f32, R, C>, out: &mut [f32; C]) {
    *out = [0.0; C];
    for row in m.rows() {
        for (sum, value) in out.iter_mut().zip(row) {
            *sum += *value;
        }
    }
}

fn run(trainer: &mut Trainer) -> Result<f32, Error> {
    // NOTE: built on the stack and then moved: `main`'s frame holds about 59 KiB of such
    // temporaries (measured), because `Dion::new` returns the whole state by value.
    let optimizers = Optimizers::new()?;
    let optimizers = cortex_m::singleton!(: Optimizers = optimizers).unwrap();
    for (i, slot) in trainer.order.iter_mut().enumerate() {
        *slot = i as u16;
    }
    let mut rng = SplitMix64(SEED);
    trainer.model.init(&mut rng);
    defmt::info!(
        "digits: 64 -> {=usize} ReLU -> 10, {=usize} training and {=usize} test images in flash, batch {=usize}",
        HIDDEN,
        TRAIN,
        TEST,
        BATCH
    );
    let (test_loss, test_accuracy) = trainer.evaluate();
    defmt::info!(
        "epoch  0  test loss {=f32}  test acc {=f32}",
        test_loss,
        test_accuracy
    );

    let mut accuracy = test_accuracy;
    for epoch in 1..=EPOCHS {
        let (train_loss, train_accuracy) = trainer.train_epoch(optimizers, &mut rng)?;
        let (test_loss, test_accuracy) = trainer.evaluate();
        defmt::info!(
            "epoch {=usize}  train loss {=f32}  train acc {=f32}  test loss {=f32}  test acc {=f32}",
            epoch,
            train_loss,
            train_accuracy,
            test_loss,
            test_accuracy
        );
        accuracy = test_accuracy;
    }
    Ok(accuracy)
}

/// Bytes of stack painted below `main`'s frame, to report the program's peak stack at the end.
/// `main`'s own frame is about 59 KiB (the temporaries of `Optimizers::new`), so the window must
/// stay small enough not to reach the 105,664 bytes of `.bss` at the bottom of RAM.
const STACK_WINDOW: usize = 32 * 1024;

#[entry]
fn main() -> ! {
    // cortex-m-rt turns this into a `&'static mut Trainer` in `.bss`, initialised before `main`.
    static mut TRAINER: Trainer = Trainer::ZERO;

    let sp = paint_stack(STACK_WINDOW);
    let result = run(TRAINER);
    let training = stack_used(sp, STACK_WINDOW);
    defmt::info!(
        "peak stack since reset: {=usize} bytes ({=usize} in main's frame, {=usize} below it)",
        stack_top() - sp + training,
        stack_top() - sp,
        training
    );
    match result {
        Ok(accuracy) if accuracy >= REQUIRED_TEST_ACCURACY => {
            defmt::info!(
                "PASS: final test accuracy {=f32} >= {=f32}",
                accuracy,
                REQUIRED_TEST_ACCURACY
            );
            exit(true)
        }
        Ok(accuracy) => {
            defmt::error!(
                "FAIL: final test accuracy {=f32} < {=f32}",
                accuracy,
                REQUIRED_TEST_ACCURACY
            );
            exit(false)
        }
        Err(error) => {
            defmt::error!("training failed: {}", error);
            exit(false)
        }
    }
}

//! Mini-batch training of one model with one optimizer, epoch by epoch.

use std::time::{Duration, Instant};

use dion_kernel::typed::Matrix;
use dion_kernel::Error;

use crate::data::{Dataset, PIXELS};
use crate::mlp::{fill_batch, Evaluation, Workspace};
use crate::optim::{Model, Optimizer};
use crate::rng::Rng;
use crate::HIDDEN;

/// Images per mini-batch. The last batch of an epoch contains the remainder and its gradient is
/// the mean over those images only.
pub const BATCH: usize = 32;

/// Stream ids for `Rng::for_stream`, so each use of the seed draws its own numbers.
pub const STREAM_SPLIT: u64 = 1;
/// Stream id of the initial weights.
pub const STREAM_INIT: u64 = 2;
/// Stream id of the batch order.
pub const STREAM_ORDER: u64 = 3;
/// Stream id of the validation split used by the sweep.
pub const STREAM_VALIDATION: u64 = 4;

/// The state of a run after an epoch.
#[derive(Clone, Copy, Debug)]
pub struct EpochStats {
    /// Epochs trained so far: 0 for the initial weights.
    pub epoch: usize,
    /// Mean cross-entropy on the whole training set after the epoch, in nats.
    pub train_loss: f64,
    /// Loss and accuracy on the held-out set after the epoch.
    pub test: Evaluation,
    /// Time spent by this run so far (training steps and evaluations), summed over its epochs.
    pub elapsed: Duration,
}

/// One model trained by one optimizer, with its own copy of the seeded state.
pub struct Run {
    optimizer: Box<dyn Optimizer>,
    model: Box<Model>,
    grads: Box<Model>,
    workspace: Box<Workspace<f32, BATCH, HIDDEN>>,
    batch: Box<Matrix<f32, BATCH, PIXELS>>,
    order_rng: Rng,
    order: Vec<usize>,
    elapsed: Duration,
    /// The initial weights' statistics, then one entry per finished epoch.
    pub history: Vec<EpochStats>,
}

impl Run {
    /// Initialises the model from `seed` and evaluates it as epoch 0 (not counted in the
    /// elapsed time). Every run with the same seed starts from the same weights and sees the
    /// batches in the same order.
    pub fn new(optimizer: Box<dyn Optimizer>, seed: u64, train: &Dataset, test: &Dataset) -> Self {
        let mut init_rng = Rng::for_stream(seed, STREAM_INIT);
        let mut run = Self {
            optimizer,
            model: Box::new(Model::init(&mut init_rng)),
            grads: Box::new(Model::zeros()),
            workspace: Box::default(),
            batch: Box::new(Matrix::zeros()),
            order_rng: Rng::for_stream(seed, STREAM_ORDER),
            order: (0..train.len()).collect(),
            elapsed: Duration::ZERO,
            history: Vec::new(),
        };
        let train_loss = run.model.evaluate(train, &mut run.workspace).loss;
        let test = run.model.evaluate(test, &mut run.workspace);
        run.history.push(EpochStats {
            epoch: 0,
            train_loss,
            test,
            elapsed: Duration::ZERO,
        });
        run
    }

    /// Name of the optimizer.
    pub fn name(&self) -> &'static str {
        self.optimizer.name()
    }

    /// Runs one pass over `train` in a freshly shuffled order, then evaluates on `train` and
    /// `test`.
    ///
    /// # Errors
    /// The optimizer's error, for example [`Error::NonFinite`] once the loss has diverged.
    ///
    /// # Panics
    /// If `train` does not have the size the run was created with.
    pub fn train_epoch(&mut self, train: &Dataset, test: &Dataset) -> Result<EpochStats, Error> {
        assert_eq!(
            train.len(),
            self.order.len(),
            "training set size changed between epochs"
        );
        let start = Instant::now();
        self.order_rng.shuffle(&mut self.order);
        for chunk in self.order.chunks(BATCH) {
            let labels = fill_batch(train, chunk, &mut self.batch);
            self.model.loss_and_gradient(
                &self.batch,
                &labels,
                &mut self.workspace,
                &mut self.grads,
            );
            self.optimizer.step(&mut self.model, &self.grads)?;
        }
        let train_loss = self.model.evaluate(train, &mut self.workspace).loss;
        let test = self.model.evaluate(test, &mut self.workspace);
        self.elapsed += start.elapsed();

        let stats = EpochStats {
            epoch: self.history.len(),
            train_loss,
            test,
            elapsed: self.elapsed,
        };
        self.history.push(stats);
        Ok(stats)
    }
}

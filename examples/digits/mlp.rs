//! The classifier: 64 inputs → `H` ReLU units → 10 logits, with softmax cross-entropy.
//!
//! Weights follow the PyTorch `nn.Linear` layout, `(outputs × inputs)`, so the Dion step gets the
//! same shapes as in its reference implementation. A batch is a `B × 64` matrix, one image per row, and
//! every product goes through the crate's row-major kernels:
//!
//! | step | formula | kernel |
//! |---|---|---|
//! | hidden pre-activation | `Z₁ = 1·b₁ᵀ + X·W₁ᵀ` | `Matrix::rank_update` (`C += α·A·Bᵀ`) |
//! | logits | `Z₂ = 1·b₂ᵀ + A₁·W₂ᵀ` | `Matrix::rank_update` |
//! | output weight gradient | `∂W₂ = ∂Z₂ᵀ·A₁` | `Matrix::tr_mul_to` (`C = Aᵀ·B`) |
//! | back to the hidden layer | `∂A₁ = ∂Z₂·W₂` | `Matrix::mul_to` (`C = A·B`) |
//! | hidden weight gradient | `∂W₁ = ∂Z₁ᵀ·X` | `Matrix::tr_mul_to` |

use dion_kernel::typed::Matrix;
use dion_kernel::Scalar;

use crate::data::{Dataset, CLASSES, MAX_PIXEL, PIXELS};
use crate::rng::Rng;

/// The parameters of the network. The same struct also stores their gradients.
#[derive(Clone, Debug, PartialEq)]
pub struct Mlp<T: Scalar, const H: usize> {
    /// Hidden-layer weights, `H × 64`.
    pub w1: Matrix<T, H, PIXELS>,
    /// Hidden-layer biases.
    pub b1: [T; H],
    /// Output-layer weights, `10 × H`.
    pub w2: Matrix<T, CLASSES, H>,
    /// Output-layer biases.
    pub b2: [T; CLASSES],
}

/// Activations of one batch, kept from the forward pass for the backward pass.
#[derive(Clone, Debug)]
pub struct Workspace<T: Scalar, const B: usize, const H: usize> {
    /// Hidden pre-activations `Z₁`.
    pub z1: Matrix<T, B, H>,
    /// Hidden activations `A₁ = max(Z₁, 0)`.
    pub a1: Matrix<T, B, H>,
    /// Logits `Z₂`.
    pub logits: Matrix<T, B, CLASSES>,
    /// `∂loss/∂Z₂`.
    pub dlogits: Matrix<T, B, CLASSES>,
    /// `∂loss/∂A₁`, overwritten in place by `∂loss/∂Z₁`.
    pub dhidden: Matrix<T, B, H>,
}

impl<T: Scalar, const B: usize, const H: usize> Default for Workspace<T, B, H> {
    fn default() -> Self {
        Self {
            z1: Matrix::zeros(),
            a1: Matrix::zeros(),
            logits: Matrix::zeros(),
            dlogits: Matrix::zeros(),
            dhidden: Matrix::zeros(),
        }
    }
}

/// Mean loss and accuracy of a model on a data set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    /// Mean softmax cross-entropy, in nats.
    pub loss: f64,
    /// Fraction of images whose largest logit is the true class, in `[0, 1]`.
    pub accuracy: f64,
}

impl<T: Scalar, const H: usize> Mlp<T, H> {
    /// Returns a model with every parameter zero, the starting value of a gradient buffer.
    pub fn zeros() -> Self {
        Self {
            w1: Matrix::zeros(),
            b1: [T::ZERO; H],
            w2: Matrix::zeros(),
            b2: [T::ZERO; CLASSES],
        }
    }

    /// Draws the weights uniformly and sets the biases to zero.
    ///
    /// `W₁` uses He's bound `√(6 / 64)`, which keeps the variance of the ReLU layer's output near
    /// that of its input (He et al. 2015, "Delving deep into rectifiers"); `W₂` uses `√(3 / H)`,
    /// variance `1 / H`, so the initial logits have unit scale.
    pub fn init(rng: &mut Rng) -> Self {
        let bound1 = (6.0 / PIXELS as f64).sqrt();
        let bound2 = (3.0 / H as f64).sqrt();
        Self {
            w1: Matrix::from_fn(|_, _| T::from_f64(rng.uniform_symmetric(bound1))),
            b1: [T::ZERO; H],
            w2: Matrix::from_fn(|_, _| T::from_f64(rng.uniform_symmetric(bound2))),
            b2: [T::ZERO; CLASSES],
        }
    }

    /// Returns the four parameter blocks as flat slices, in the order `W₁, b₁, W₂, b₂`.
    pub fn blocks(&self) -> [&[T]; 4] {
        [self.w1.as_slice(), &self.b1, self.w2.as_slice(), &self.b2]
    }

    /// Returns the four parameter blocks as flat mutable slices, in the order `W₁, b₁, W₂, b₂`.
    pub fn blocks_mut(&mut self) -> [&mut [T]; 4] {
        [
            self.w1.as_mut_slice(),
            &mut self.b1,
            self.w2.as_mut_slice(),
            &mut self.b2,
        ]
    }

    /// Computes `Z₁`, `A₁` and the logits of the batch `x` into `ws`.
    pub fn forward<const B: usize>(&self, x: &Matrix<T, B, PIXELS>, ws: &mut Workspace<T, B, H>) {
        for row in ws.z1.rows_mut() {
            *row = self.b1;
        }
        ws.z1.rank_update(T::ONE, x, &self.w1);

        for (a, z) in ws.a1.as_mut_slice().iter_mut().zip(ws.z1.as_slice()) {
            *a = if *z > T::ZERO { *z } else { T::ZERO };
        }

        for row in ws.logits.rows_mut() {
            *row = self.b2;
        }
        ws.logits.rank_update(T::ONE, &ws.a1, &self.w2);
    }

    /// Runs the forward and backward passes on the first `labels.len()` rows of `x`. Writes the
    /// gradient of the mean cross-entropy into `grads` and returns that mean loss.
    ///
    /// Rows of `x` past `labels.len()` (padding) still pass through the kernels but get a zero
    /// output gradient, so they change neither the loss nor the gradient.
    ///
    /// # Panics
    /// If `labels` is empty or longer than `B`, or a label is not a digit.
    pub fn loss_and_gradient<const B: usize>(
        &self,
        x: &Matrix<T, B, PIXELS>,
        labels: &[u8],
        ws: &mut Workspace<T, B, H>,
        grads: &mut Mlp<T, H>,
    ) -> f64 {
        assert!(
            !labels.is_empty() && labels.len() <= B,
            "{} labels for a batch of {B}",
            labels.len()
        );
        self.forward(x, ws);
        let loss = softmax_cross_entropy(&ws.logits, labels, &mut ws.dlogits);

        ws.dlogits.tr_mul_to(&ws.a1, &mut grads.w2);
        column_sums(&ws.dlogits, &mut grads.b2);

        ws.dlogits.mul_to(&self.w2, &mut ws.dhidden);
        // ReLU passes the gradient where the unit was active; at exactly zero it passes none,
        // the subgradient PyTorch also uses.
        for (d, z) in ws.dhidden.as_mut_slice().iter_mut().zip(ws.z1.as_slice()) {
            if *z <= T::ZERO {
                *d = T::ZERO;
            }
        }
        ws.dhidden.tr_mul_to(x, &mut grads.w1);
        column_sums(&ws.dhidden, &mut grads.b1);
        loss
    }

    /// Mean loss and accuracy over all of `data`, `B` images at a time (the last batch padded).
    pub fn evaluate<const B: usize>(
        &self,
        data: &Dataset,
        ws: &mut Workspace<T, B, H>,
    ) -> Evaluation {
        let mut x = Matrix::<T, B, PIXELS>::zeros();
        let mut scratch = Matrix::<T, B, CLASSES>::zeros();
        let mut total_loss = 0.0;
        let mut correct = 0usize;
        let indices: Vec<usize> = (0..data.len()).collect();
        for chunk in indices.chunks(B) {
            let labels = fill_batch(data, chunk, &mut x);
            self.forward(&x, ws);
            total_loss +=
                softmax_cross_entropy(&ws.logits, &labels, &mut scratch) * chunk.len() as f64;
            correct += (0..chunk.len())
                .filter(|&i| argmax(ws.logits.row(i)) == usize::from(labels[i]))
                .count();
        }
        let n = data.len().max(1) as f64;
        Evaluation {
            loss: total_loss / n,
            accuracy: correct as f64 / n,
        }
    }
}

/// Copies the images `indices` of `data` into the first rows of `x`, scaled to `[0, 1]` by
/// dividing by 16, zeroes the remaining rows, and returns their labels.
///
/// # Panics
/// If `indices.len() > B`.
pub fn fill_batch<T: Scalar, const B: usize>(
    data: &Dataset,
    indices: &[usize],
    x: &mut Matrix<T, B, PIXELS>,
) -> Vec<u8> {
    assert!(
        indices.len() <= B,
        "{} images for a batch of {B}",
        indices.len()
    );
    let scale = 1.0 / f64::from(MAX_PIXEL);
    for (row, &i) in x.rows_mut().iter_mut().zip(indices) {
        for (value, &pixel) in row.iter_mut().zip(data.image(i)) {
            *value = T::from_f64(f64::from(pixel) * scale);
        }
    }
    for row in &mut x.rows_mut()[indices.len()..] {
        *row = [T::ZERO; PIXELS];
    }
    indices.iter().map(|&i| data.labels[i]).collect()
}

/// Returns the mean cross-entropy of the first `labels.len()` rows of `logits` and writes its
/// gradient with respect to the logits, `(softmax(z) − onehot(y)) / n`, into `dlogits` (zero on
/// the remaining rows).
///
/// Each row is shifted by its maximum before `exp`, so no term overflows and the largest is 1;
/// the sums run in `f64` whatever `T` is.
fn softmax_cross_entropy<T: Scalar, const B: usize>(
    logits: &Matrix<T, B, CLASSES>,
    labels: &[u8],
    dlogits: &mut Matrix<T, B, CLASSES>,
) -> f64 {
    let n = labels.len() as f64;
    let mut total = 0.0;
    for (i, grad_row) in dlogits.rows_mut().iter_mut().enumerate() {
        let Some(&label) = labels.get(i) else {
            *grad_row = [T::ZERO; CLASSES];
            continue;
        };
        let z = logits.row(i).map(T::to_f64);
        let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let exps = z.map(|value| (value - max).exp());
        let sum: f64 = exps.iter().sum();
        let label = usize::from(label);
        total += sum.ln() - (z[label] - max);
        for (k, grad) in grad_row.iter_mut().enumerate() {
            let target = if k == label { 1.0 } else { 0.0 };
            *grad = T::from_f64((exps[k] / sum - target) / n);
        }
    }
    total / n
}

/// `out[j] = Σᵢ m[i][j]`: the gradient of a bias added to every row.
fn column_sums<T: Scalar, const R: usize, const C: usize>(m: &Matrix<T, R, C>, out: &mut [T; C]) {
    *out = [T::ZERO; C];
    for row in m.rows() {
        for (sum, value) in out.iter_mut().zip(row) {
            *sum += *value;
        }
    }
}

/// Index of the largest entry; the first one on ties.
fn argmax<T: Scalar>(values: &[T]) -> usize {
    let mut best = 0;
    for (i, value) in values.iter().enumerate() {
        if *value > values[best] {
            best = i;
        }
    }
    best
}

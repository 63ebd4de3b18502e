//! The inputs of the public golden cases in f32, and the run that both the MCU and the host make
//! of them.
//!
//! The data comes from `tests/golden/*.json` (microsoft/dion's reference `dion_update` in float64,
//! see `tests/golden/README.md`), rounded to f32 by `build.rs`. A program includes it with
//! `include!(concat!(env!("OUT_DIR"), "/golden_cases.rs"))`, which defines `CASES`.

/// One golden case: the starting state, the hyperparameters and one gradient per step.
pub struct GoldenCase {
    /// Case name, the JSON file name without `.json`.
    pub name: &'static str,
    /// Rows of `X`, `M` and every gradient.
    pub rows: usize,
    /// Columns of `X`, `M` and every gradient.
    pub cols: usize,
    /// Rank `r`, already at most `min(rows, cols)`.
    pub rank: usize,
    /// Number of steps, that is of gradients.
    pub steps: usize,
    /// Learning rate.
    pub lr: f32,
    /// Momentum `μ`.
    pub mu: f32,
    /// Decoupled weight decay.
    pub weight_decay: f32,
    /// `ε` added to the column norms of `R`.
    pub epsilon: f32,
    /// Initial `X`, row-major, `rows × cols`.
    pub x0: &'static [f32],
    /// Initial `M`, row-major, `rows × cols`.
    pub m0: &'static [f32],
    /// Initial `Q`, row-major: `cols × rank`, or `rows × rank` when `rows < cols`.
    pub q0: &'static [f32],
    /// The gradients of all steps, one `rows × cols` block after the other.
    pub grads: &'static [f32],
}

impl GoldenCase {
    /// Rows of `Q`: `min(rows, cols)`, since `Q` spans the shorter side.
    pub fn q_rows(&self) -> usize {
        self.rows.min(self.cols)
    }

    /// Returns the gradient of step `step` (counted from 0).
    pub fn grad(&self, step: usize) -> &'static [f32] {
        let len = self.rows * self.cols;
        &self.grads[step * len..(step + 1) * len]
    }
}

use dion_kernel::engine::{dion_step, DionConfig, StepScratch, StepShape, StepState};
use dion_kernel::Error;

use crate::{fnv1a64, FNV1A64_START};

/// Largest `rows · cols` of a golden case (`square_32x32_r8`).
pub const MAX_PARAM_LEN: usize = 32 * 32;
/// Largest `max(rows, cols) · rank` of a golden case.
pub const MAX_FACTOR_LEN: usize = 32 * 8;

/// Working memory for [`run_case`], sized for the largest golden case.
pub struct GoldenBuffers {
    x: [f32; MAX_PARAM_LEN],
    momentum: [f32; MAX_PARAM_LEN],
    q: [f32; MAX_FACTOR_LEN],
    p: [f32; MAX_FACTOR_LEN],
    r: [f32; MAX_FACTOR_LEN],
}

impl GoldenBuffers {
    /// Zeroed buffers.
    pub const fn new() -> Self {
        Self {
            x: [0.0; MAX_PARAM_LEN],
            momentum: [0.0; MAX_PARAM_LEN],
            q: [0.0; MAX_FACTOR_LEN],
            p: [0.0; MAX_FACTOR_LEN],
            r: [0.0; MAX_FACTOR_LEN],
        }
    }
}

impl Default for GoldenBuffers {
    fn default() -> Self {
        Self::new()
    }
}

/// FNV-1a 64 hashes of the bits of `X`, `M` and `Q` after one step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepHashes {
    /// Hash of `X`, row-major.
    pub x: u64,
    /// Hash of `M`, row-major.
    pub momentum: u64,
    /// Hash of `Q`, row-major.
    pub q: u64,
}

/// Runs every step of `case` from its initial state with `dion_step` and calls
/// `on_step(step, hashes)` after each (steps counted from 1).
///
/// The configuration is the reference's: one power iteration, QR with reorthogonalisation.
///
/// # Errors
/// The first error of `dion_step` (none is expected on the public cases), or
/// [`Error::BufferTooSmall`] if the case is larger than [`GoldenBuffers`].
pub fn run_case(
    case: &GoldenCase,
    buffers: &mut GoldenBuffers,
    mut on_step: impl FnMut(usize, StepHashes),
) -> Result<(), Error> {
    let shape = StepShape::new(case.rows, case.cols, case.rank)?;
    let (param_len, q_len, p_len) = (shape.param_len(), shape.q_len(), shape.p_len());
    if param_len > MAX_PARAM_LEN || p_len > MAX_FACTOR_LEN {
        return Err(Error::BufferTooSmall {
            operand: dion_kernel::Operand::Param,
            required: param_len,
            len: MAX_PARAM_LEN,
        });
    }
    let config = DionConfig {
        lr: case.lr,
        momentum: case.mu,
        weight_decay: case.weight_decay,
        epsilon: case.epsilon,
        ..DionConfig::default()
    };

    let x = &mut buffers.x[..param_len];
    let momentum = &mut buffers.momentum[..param_len];
    let q = &mut buffers.q[..q_len];
    x.copy_from_slice(case.x0);
    momentum.copy_from_slice(case.m0);
    q.copy_from_slice(case.q0);

    for step in 0..case.steps {
        dion_step(
            shape,
            &config,
            x,
            case.grad(step),
            StepState {
                momentum: &mut *momentum,
                q: &mut *q,
            },
            StepScratch {
                p: &mut buffers.p[..p_len],
                r: &mut buffers.r[..q_len],
            },
        )?;
        let hashes = StepHashes {
            x: fnv1a64(FNV1A64_START, x),
            momentum: fnv1a64(FNV1A64_START, momentum),
            q: fnv1a64(FNV1A64_START, q),
        };
        on_step(step + 1, hashes);
    }
    Ok(())
}

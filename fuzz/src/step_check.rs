//! Checks of one Dion or PowerSGD step against the documented update rules.
//!
//! After a successful step the scratch contains that step's factors `P` and `R`, so the update of
//! `M`, `X` and `Q` can be checked entry by entry against the documented formulas:
//!
//! ```text
//! B = M + G (rounded once),  W = B, or Bᵀ when rows < cols
//! P has orthonormal columns, except the zero columns of negligible directions
//! R = Wᵀ·P
//! Dion:     Q ← R / (‖R_col‖ + ε), a zero column of P keeps Q / (‖Q_col‖ + ε)
//!           M ← B − (1 − μ)·P Rᵀ,  X ← (1 − lr·wd)·X − lr·√(rows/cols)·P Qᵀ
//! PowerSGD: Q ← R, a zero column of P keeps Q
//!           M ← B − P Rᵀ,          X ← (1 − lr·wd)·X − lr·P Rᵀ
//! ```
//!
//! with `P Rᵀ` read as `R Pᵀ` (and `P Qᵀ` as `Q Pᵀ`) when `rows < cols`.

use dion_kernel::engine::{DionConfig, PowerSgdConfig, StepInfo, MAX_POWER_ITERS};
use dion_kernel::{Error, Operand};

use crate::input::Float;
use crate::qr_check::ORTHONORMALITY_UNITS;
use crate::reference::{gamma, norm_f64, unit};

/// The optimizer of a matrix step.
#[derive(Clone, Copy, Debug)]
pub enum Method<T> {
    /// Dion with this config.
    Dion(DionConfig<T>),
    /// PowerSGD with this config.
    PowerSgd(PowerSgdConfig<T>),
}

/// One step's inputs, as they were before the call.
#[derive(Clone, Debug)]
pub struct StepInputs<T> {
    /// Rows of `X`.
    pub rows: usize,
    /// Columns of `X`.
    pub cols: usize,
    /// Columns of `P`, `Q`, `R`.
    pub rank: usize,
    /// The optimizer and its hyperparameters.
    pub method: Method<T>,
    /// `X`, `rows × cols`.
    pub x: Vec<T>,
    /// `M` or `E`, `rows × cols`.
    pub momentum: Vec<T>,
    /// `G`, `rows × cols`.
    pub grad: Vec<T>,
    /// `Q`, `min(rows, cols) × rank`.
    pub q: Vec<T>,
    /// `true` when every buffer had the length the shape needs.
    pub lengths_ok: bool,
}

/// The state after the call.
pub struct StepOutputs<'a, T> {
    /// `X`.
    pub x: &'a [T],
    /// `M` or `E`.
    pub momentum: &'a [T],
    /// `Q`.
    pub q: &'a [T],
    /// The scratch `P`, `max(rows, cols) × rank`.
    pub p: &'a [T],
    /// The scratch `R`, `min(rows, cols) × rank`.
    pub r: &'a [T],
}

/// Largest errors seen by [`check_ok`], in units of their bounds, for the statistics.
#[derive(Clone, Copy, Debug, Default)]
pub struct StepMeasure {
    /// `max |PᵀP − I|` over non-zero columns, in units of `n·ε`.
    pub p_orthonormality: f64,
    /// Largest `|error| / bound` of the `R`, `Q`, `M` and `X` entries.
    pub update: f64,
}

impl<T: Float> StepInputs<T> {
    fn transposed(&self) -> bool {
        self.rows < self.cols
    }

    fn inner(&self) -> usize {
        self.rows.min(self.cols)
    }

    fn outer(&self) -> usize {
        self.rows.max(self.cols)
    }

    /// `B = M + G`, rounded once in `T`.
    fn b(&self) -> Vec<T> {
        self.momentum
            .iter()
            .zip(&self.grad)
            .map(|(&m, &g)| m + g)
            .collect()
    }

    /// `true` if the hyperparameters lie in the ranges the config docs state.
    pub fn config_valid(&self) -> bool {
        match self.method {
            Method::Dion(c) => {
                lr_wd_valid(c.lr, c.weight_decay)
                    && c.momentum >= T::ZERO
                    && c.momentum < T::ONE
                    && c.epsilon.is_finite()
                    && c.epsilon > T::ZERO
                    && (1..=MAX_POWER_ITERS).contains(&c.power_iters)
            }
            Method::PowerSgd(c) => {
                lr_wd_valid(c.lr, c.weight_decay) && (1..=MAX_POWER_ITERS).contains(&c.power_iters)
            }
        }
    }

    /// `true` if every input entry is finite.
    pub fn inputs_finite(&self) -> bool {
        [&self.x, &self.momentum, &self.grad, &self.q]
            .iter()
            .all(|v| v.iter().all(|x| x.is_finite()))
    }

    /// `true` when a step on these inputs cannot overflow, so it must succeed.
    ///
    /// Let `b = max|M + G|`, `q = max|Q|`, `n = max(rows, cols)` and `m = min(rows, cols)`.
    /// Then `|W·Q| ≤ m·b·q`, and `|R| ≤ n·b` because the entries of `P` are at most 1 in
    /// magnitude. The commit checks `b + c1·√k·max|R| ≤ MAX/2` and `max|X| + c2·√k·max|F| ≤ MAX/2`,
    /// with `F = Q` (entries at most 1, Dion) or `F = R` (PowerSGD). Each condition below keeps a
    /// factor 2 to spare for rounding.
    pub fn must_succeed(&self) -> bool {
        if !(self.lengths_ok && self.config_valid() && self.inputs_finite()) {
            return false;
        }
        let Some(max_b) = crate::reference::max_abs_finite(&self.b()) else {
            return false;
        };
        let max_q = crate::reference::max_abs_finite(&self.q).unwrap_or(f64::INFINITY);
        let max_x = crate::reference::max_abs_finite(&self.x).unwrap_or(f64::INFINITY);
        let max = T::MAX.to_f64();
        let (m, n) = (self.inner() as f64, self.outer() as f64);
        let sqrt_k = (self.rank as f64).sqrt();
        let max_r = n * max_b;
        let products = m * max_b * max_q.max(1.0) * 2.0 <= max && max_r * 2.0 <= max;
        let momentum = (max_b + sqrt_k * max_r) * 2.0 <= max / 2.0;
        let param = match self.method {
            Method::Dion(c) => {
                let lr = c.lr.to_f64() * (self.rows as f64 / self.cols as f64).sqrt();
                (max_x + lr * sqrt_k) * 2.0 <= max / 2.0
            }
            Method::PowerSgd(c) => (max_x + c.lr.to_f64() * sqrt_k * max_r) * 2.0 <= max / 2.0,
        };
        products && momentum && param
    }
}

fn lr_wd_valid<T: Float>(lr: T, weight_decay: T) -> bool {
    lr.is_finite()
        && lr >= T::ZERO
        && weight_decay.is_finite()
        && weight_decay >= T::ZERO
        && lr * weight_decay <= T::ONE
}

/// Checks a failed step: the state is bit-identical, and the error is truthful about its cause.
///
/// `factors_edited` is true when the caller overwrote `P` or `R` between the phases, which can
/// make finite inputs overflow.
pub fn check_err<T: Float>(
    inputs: &StepInputs<T>,
    after: &StepOutputs<'_, T>,
    error: Error,
    factors_edited: bool,
) {
    assert_same_bits("X", &inputs.x, after.x);
    assert_same_bits("M", &inputs.momentum, after.momentum);
    assert_same_bits("Q", &inputs.q, after.q);

    match error {
        Error::NonFinite { operand, row, col } => {
            let (values, ncols) = match operand {
                Operand::Param => (&inputs.x, inputs.cols),
                Operand::Grad => (&inputs.grad, inputs.cols),
                Operand::Momentum => (&inputs.momentum, inputs.cols),
                Operand::Q => (&inputs.q, inputs.rank),
                other => panic!("NonFinite names {other:?}, which is not an input of a step"),
            };
            let value = values.get(row * ncols + col);
            assert!(
                col < ncols && value.is_some_and(|v| !v.is_finite()),
                "NonFinite points at {operand:?}[{row}][{col}] = {value:?}, which is finite or out of range"
            );
        }
        Error::InvalidHyperparameter { .. } => {
            assert!(
                !inputs.config_valid(),
                "{error} for a config inside the documented ranges: {:?}",
                inputs.method
            );
        }
        Error::BufferTooSmall { .. } => {
            assert!(
                !inputs.lengths_ok,
                "{error} although every buffer length matches the shape"
            );
        }
        Error::Overflow { .. } => {
            assert!(
                inputs.inputs_finite(),
                "Overflow reported for inputs that hold a NaN or ±∞; expected NonFinite"
            );
            assert!(
                factors_edited || !inputs.must_succeed(),
                "Overflow ({error}) on inputs too small to overflow: {inputs:?}"
            );
        }
        other => panic!("unexpected error kind from a step: {other}"),
    }
}

/// Asserts that two slices hold the same bits.
pub fn assert_same_bits<T: Float>(what: &str, before: &[T], after: &[T]) {
    assert_eq!(before.len(), after.len(), "{what} changed length");
    for (index, (b, a)) in before.iter().zip(after).enumerate() {
        assert!(
            b.bits() == a.bits(),
            "{what}[{index}] changed from {b} to {a} on a failed or abandoned step"
        );
    }
}

/// Checks a successful step against the documented update (see the module docs).
///
/// `r_edited` is true when the caller overwrote `R` between the phases, so `R = Wᵀ·P` is not
/// checked.
pub fn check_ok<T: Float>(
    inputs: &StepInputs<T>,
    after: &StepOutputs<'_, T>,
    info: StepInfo,
    r_edited: bool,
) -> StepMeasure {
    let (rows, cols, k) = (inputs.rows, inputs.cols, inputs.rank);
    let (inner, outer) = (inputs.inner(), inputs.outer());
    let mut measure = StepMeasure::default();

    for (name, values) in [("X", after.x), ("M", after.momentum), ("Q", after.q)] {
        if let Some(index) = values.iter().position(|v| !v.is_finite()) {
            panic!(
                "step returned Ok but {name}[{index}] = {} is not finite",
                values[index]
            );
        }
    }
    assert!(
        info.qr_rank <= k,
        "qr_rank {} exceeds rank {k}",
        info.qr_rank
    );
    assert!(
        info.zero_columns <= k,
        "zero_columns {} exceeds rank {k}",
        info.zero_columns
    );

    let p: Vec<f64> = after.p.iter().map(|v| v.to_f64()).collect();
    let r: Vec<f64> = after.r.iter().map(|v| v.to_f64()).collect();
    let zero_column: Vec<bool> = (0..k)
        .map(|j| (0..outer).all(|o| p[o * k + j] == 0.0))
        .collect();
    let zero_count = zero_column.iter().filter(|&&z| z).count();

    // Negligible columns of R (norm at most n·ε times the largest, n = max(rows, cols)) are left
    // out: P's column is zeroed and Q keeps its column. Within a factor 2 of the threshold the
    // rounding of the norms decides, so either outcome is accepted there.
    let column_norms: Vec<(f64, f64)> = (0..k)
        .map(|j| {
            let largest = (0..inner).fold(0.0f64, |m, c| m.max(r[c * k + j].abs()));
            if largest == 0.0 {
                return (0.0, 0.0);
            }
            (
                largest,
                norm_f64((0..inner).map(|c| r[c * k + j] / largest)),
            )
        })
        .collect();
    // Norms relative to the largest entry of R, so that nothing overflows for f64 inputs.
    let largest_entry = column_norms
        .iter()
        .fold(0.0f64, |m, &(largest, _)| m.max(largest));
    let relative_norms: Vec<f64> = column_norms
        .iter()
        .map(|&(largest, unit)| {
            if largest > 0.0 {
                (largest / largest_entry) * unit
            } else {
                0.0
            }
        })
        .collect();
    let largest_norm = relative_norms.iter().fold(0.0f64, |m, &v| m.max(v));
    let class: Vec<Negligible> = relative_norms
        .iter()
        .map(|&norm| {
            let threshold = outer as f64 * T::EPSILON.to_f64() * largest_norm;
            if norm <= 0.5 * threshold {
                Negligible::Yes
            } else if norm >= 2.0 * threshold {
                Negligible::No
            } else {
                Negligible::Either
            }
        })
        .collect();
    let must = class.iter().filter(|&&c| c == Negligible::Yes).count();
    let may = class.iter().filter(|&&c| c == Negligible::Either).count();
    assert!(
        must <= info.zero_columns && info.zero_columns <= must + may,
        "StepInfo reports {} zero columns, R has {must} negligible columns and {may} at the threshold",
        info.zero_columns
    );
    for (j, (&class, &zero)) in class.iter().zip(&zero_column).enumerate() {
        if class == Negligible::Yes {
            assert!(
                zero,
                "column {j} of R is negligible, but P's column is not zero"
            );
        }
    }
    if !r_edited {
        // A zero column of P gives a zero column of R, which is negligible; the other columns of
        // P are unit vectors.
        assert_eq!(
            zero_count, info.zero_columns,
            "P has {zero_count} zero columns, StepInfo reports {}",
            info.zero_columns
        );
    }

    // P: orthonormal non-zero columns. One MGS sweep only keeps the norms.
    let reorthogonalize = match inputs.method {
        Method::Dion(c) => c.qr.reorthogonalize,
        Method::PowerSgd(c) => c.qr.reorthogonalize,
    };
    let n_eps = outer as f64 * T::EPSILON.to_f64();
    for l in 0..k {
        for j in l..k {
            if zero_column[l] || zero_column[j] || (!reorthogonalize && l != j) {
                continue;
            }
            let dot: f64 = (0..outer).map(|o| p[o * k + l] * p[o * k + j]).sum();
            let error = (dot - if l == j { 1.0 } else { 0.0 }).abs();
            measure.p_orthonormality = measure.p_orthonormality.max(error / n_eps);
            assert!(
                error <= ORTHONORMALITY_UNITS * n_eps,
                "P columns {l}, {j}: |pₗ·pⱼ − δ| = {error:e} exceeds {ORTHONORMALITY_UNITS}·n·ε"
            );
        }
    }

    let b = inputs.b();
    let bf: Vec<f64> = b.iter().map(|v| v.to_f64()).collect();
    // W[o][c] for o < outer, c < inner.
    let w = |o: usize, c: usize| {
        if inputs.transposed() {
            bf[c * cols + o]
        } else {
            bf[o * cols + c]
        }
    };
    let eta = T::SUBNORMAL_STEP;
    let mut track = |what: &str, index: (usize, usize), actual: f64, expected: f64, bound: f64| {
        let error = (actual - expected).abs();
        assert!(
            error <= bound,
            "{what}[{}][{}] = {actual:e}, expected {expected:e} ± {bound:e} ({rows}×{cols}, rank {k}, {:?})",
            index.0,
            index.1,
            inputs.method
        );
        if bound > 0.0 {
            measure.update = measure.update.max(error / bound);
        }
    };

    // R = Wᵀ·P for the non-zero columns of P.
    if !r_edited {
        for j in (0..k).filter(|&j| !zero_column[j]) {
            for c in 0..inner {
                let (sum, abs_sum) =
                    crate::reference::dot_f64((0..outer).map(|o| (w(o, c), p[o * k + j])));
                let bound = gamma::<T>(outer) * abs_sum + outer as f64 * eta;
                track("R", (c, j), r[c * k + j], sum, bound);
            }
        }
    }

    // Q: from R, or kept for a negligible column. At the threshold either source is accepted.
    let q0: Vec<f64> = inputs.q.iter().map(|v| v.to_f64()).collect();
    let q1: Vec<f64> = after.q.iter().map(|v| v.to_f64()).collect();
    let mut q_worst = 0.0f64;
    for (j, &class) in class.iter().enumerate() {
        let sources: &[bool] = match class {
            Negligible::Yes => &[true],
            Negligible::No => &[false],
            Negligible::Either => &[true, false],
        };
        let errors: Vec<String> = sources
            .iter()
            .filter_map(|&kept| check_q_column(inputs, after, &q0, &q1, &r, j, kept).err())
            .collect();
        assert!(
            errors.len() < sources.len(),
            "{} ({rows}×{cols}, rank {k}, {:?})",
            errors.join("; "),
            inputs.method
        );
        if let Ok(ratio) = check_q_column(inputs, after, &q0, &q1, &r, j, class == Negligible::Yes)
        {
            q_worst = q_worst.max(ratio);
        }
    }

    // M and X: (left · rightᵀ)[i][j] with the factors oriented as X.
    let (c1, c2, x_factor): (f64, f64, &[f64]) = match inputs.method {
        Method::Dion(c) => (
            1.0 - c.momentum.to_f64(),
            c.lr.to_f64() * (rows as f64 / cols as f64).sqrt(),
            &q1,
        ),
        Method::PowerSgd(c) => (1.0, c.lr.to_f64(), &r),
    };
    let decay = match inputs.method {
        Method::Dion(c) => 1.0 - c.lr.to_f64() * c.weight_decay.to_f64(),
        Method::PowerSgd(c) => 1.0 - c.lr.to_f64() * c.weight_decay.to_f64(),
    };
    let p = &p;
    let oriented = |factor: &[f64], i: usize, j: usize| {
        let terms = (0..k).map(|q| {
            if inputs.transposed() {
                (factor[i * k + q], p[j * k + q])
            } else {
                (p[i * k + q], factor[j * k + q])
            }
        });
        crate::reference::dot_f64(terms)
    };
    let x0: Vec<f64> = inputs.x.iter().map(|v| v.to_f64()).collect();
    let m1: Vec<f64> = after.momentum.iter().map(|v| v.to_f64()).collect();
    let x1: Vec<f64> = after.x.iter().map(|v| v.to_f64()).collect();
    for i in 0..rows {
        for j in 0..cols {
            let index = i * cols + j;
            let (dot, abs_dot) = oriented(&r, i, j);
            let expected = bf[index] - c1 * dot;
            // Each of the k products may underflow by η/2, and the sum is then scaled by c1.
            let underflow = (c1 * k as f64 + 4.0) * eta;
            let bound = gamma::<T>(k + 3) * (bf[index].abs() + c1 * abs_dot) + underflow;
            track("M", (i, j), m1[index], expected, bound);

            let (dot, abs_dot) = oriented(x_factor, i, j);
            let expected = decay * x0[index] - c2 * dot;
            let underflow = (c2 * k as f64 + 6.0) * eta;
            let bound = gamma::<T>(k + 6) * (x0[index].abs() + c2 * abs_dot) + underflow;
            track("X", (i, j), x1[index], expected, bound);
        }
    }
    measure.update = measure.update.max(q_worst);
    measure
}

/// Whether a column of `R` is negligible.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Negligible {
    Yes,
    No,
    Either,
}

/// Checks column `j` of the new `Q` against its source: the old `Q` (`kept`) or `R`. Returns
/// the largest `|error| / bound`, or a message naming the first entry out of bounds.
fn check_q_column<T: Float>(
    inputs: &StepInputs<T>,
    after: &StepOutputs<'_, T>,
    q0: &[f64],
    q1: &[f64],
    r: &[f64],
    j: usize,
    kept: bool,
) -> Result<f64, String> {
    let (inner, k) = (inputs.inner(), inputs.rank);
    let what = if kept { "kept Q" } else { "R" };
    let mut worst = 0.0f64;
    match inputs.method {
        Method::Dion(c) => {
            let epsilon = c.epsilon.to_f64();
            let source = if kept { q0 } else { r };
            // The norm is a scaled sum of `inner` squares and a square root, then one division:
            // relative error at most (inner / 2 + 4)·u.
            let relative = (inner as f64 / 2.0 + 4.0) * unit::<T>() * 2.0;
            // ‖x‖ = max|x|·‖x / max|x|‖; everything is divided by max(max|x|, ε) first, so
            // that neither the norm nor ‖x‖ + ε overflows in f64 for f64 inputs.
            let largest = (0..inner).fold(0.0f64, |m, c| m.max(source[c * k + j].abs()));
            let unit_norm = if largest > 0.0 {
                norm_f64((0..inner).map(|c| source[c * k + j] / largest))
            } else {
                0.0
            };
            let scale = largest.max(epsilon);
            for c in 0..inner {
                let denominator = unit_norm * (largest / scale) + epsilon / scale;
                let expected = (source[c * k + j] / scale) / denominator;
                // A subnormal result rounds to within η/2, and so does the f64 reference for f64
                // inputs: 2·η covers both.
                let bound = relative * expected.abs() + 2.0 * T::SUBNORMAL_STEP;
                let error = (q1[c * k + j] - expected).abs();
                // Written so that a NaN error fails too.
                if error.is_nan() || error > bound {
                    return Err(format!(
                        "Q[{c}][{j}] = {:e}, expected {expected:e} ± {bound:e} from {what}",
                        q1[c * k + j]
                    ));
                }
                worst = worst.max(error / bound);
            }
        }
        Method::PowerSgd(_) => {
            for c in 0..inner {
                let source = if kept {
                    inputs.q[c * k + j]
                } else {
                    after.r[c * k + j]
                };
                if after.q[c * k + j].bits() != source.bits() {
                    return Err(format!(
                        "PowerSGD Q[{c}][{j}] = {} is not the {what} value {source}",
                        after.q[c * k + j]
                    ));
                }
            }
        }
    }
    Ok(worst)
}

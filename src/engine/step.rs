//! The machinery Dion and PowerSGD share: shapes, input checks, PowerIter1 on `B = M + G`
//! without storing `B`, the overflow checks and the fused final pass.
//!
//! Every step runs in two halves. The first half reads `X`, `M`, `G` and `Q`, writes only the
//! scratch factors `P` and `R`, and returns an error at the first problem. The second half (the
//! commit) cannot fail, because its overflow bounds are checked before it starts. That split is
//! what makes a failed step leave `X`, `M` and `Q` bit-identical.
//!
//! Memory traffic per step: the input check reads `G`, `M` and `X` once; the two products read
//! `M` and `G` once each (forming `B = M + G` on the fly, so no `rows × cols` temporary exists);
//! the fused final pass reads `G`, `M` and `X` and writes `M` and `X`, each entry once.

use super::gemm::{gemm_nn, gemm_tn, nt_product, NtOperands, NtViews};
use super::norm::{scaled_norm_by, ScaledNorm};
use super::qr::{column_norm, first_non_finite, project_out_twice, Mgs, QrOptions};
use super::view::{MatMut, MatRef};
use crate::error::{Error, Operand};
use crate::scalar::Scalar;

/// The shape of one optimizer step: `X` is `rows × cols`, the factors have `rank` columns.
///
/// When `rows < cols` the step works on `Bᵀ` (the *transposed* rule of the Dion reference), so
/// `Q` and `R` always have `min(rows, cols)` rows and `P` has `max(rows, cols)` rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct StepShape {
    rows: usize,
    cols: usize,
    rank: usize,
}

impl StepShape {
    /// Checks `1 ≤ rank ≤ min(rows, cols)`.
    ///
    /// # Errors
    /// [`Error::InvalidRank`] otherwise (including when `rows` or `cols` is 0), and
    /// [`Error::ShapeTooLarge`] when `rows · cols` does not fit in `usize`.
    pub const fn new(rows: usize, cols: usize, rank: usize) -> Result<Self, Error> {
        let max = if rows < cols { rows } else { cols };
        if rank == 0 || rank > max {
            return Err(Error::InvalidRank { rank, max });
        }
        // Every buffer length below must be representable, so no later size computation wraps.
        let outer = if rows < cols { cols } else { rows };
        if rows.checked_mul(cols).is_none() || outer.checked_mul(rank).is_none() {
            return Err(Error::ShapeTooLarge { rows, cols });
        }
        Ok(Self { rows, cols, rank })
    }

    /// Rows of `X`.
    pub const fn rows(&self) -> usize {
        self.rows
    }

    /// Columns of `X`.
    pub const fn cols(&self) -> usize {
        self.cols
    }

    /// Columns of `P`, `Q` and `R`.
    pub const fn rank(&self) -> usize {
        self.rank
    }

    /// `true` when `rows < cols`, so the step iterates on `Bᵀ`.
    pub const fn transposed(&self) -> bool {
        self.rows < self.cols
    }

    /// Rows of `Q` and `R`: `min(rows, cols)`.
    pub const fn inner(&self) -> usize {
        if self.transposed() {
            self.rows
        } else {
            self.cols
        }
    }

    /// Rows of `P`: `max(rows, cols)`.
    pub const fn outer(&self) -> usize {
        if self.transposed() {
            self.cols
        } else {
            self.rows
        }
    }

    /// Length of `X`, `M` and `G`: `rows · cols`.
    pub const fn param_len(&self) -> usize {
        self.rows * self.cols
    }

    /// Length of `Q` and of the `R` scratch: `min(rows, cols) · rank`.
    pub const fn q_len(&self) -> usize {
        self.inner() * self.rank
    }

    /// Length of the `P` scratch: `max(rows, cols) · rank`.
    pub const fn p_len(&self) -> usize {
        self.outer() * self.rank
    }
}

/// The optimizer state kept between steps, in caller-provided slices (row-major).
#[derive(Debug)]
pub struct StepState<'a, T> {
    /// The error-feedback buffer `M` (Dion) or `E` (PowerSGD), `rows × cols`.
    pub momentum: &'a mut [T],
    /// The right factor `Q`, `min(rows, cols) × rank`.
    pub q: &'a mut [T],
}

/// Scratch for the factors `P` (`max(rows, cols) × rank`) and `R` (`min(rows, cols) × rank`).
///
/// Their contents on entry are never read; after a step they hold that step's factors.
#[derive(Debug)]
pub struct StepScratch<'a, T> {
    /// `P`, `max(rows, cols) × rank`.
    pub p: &'a mut [T],
    /// `R`, `min(rows, cols) × rank`.
    pub r: &'a mut [T],
}

/// Facts about a successful step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct StepInfo {
    /// Numerical rank of `B·Q` seen by the QR: columns of `P` that were not completed.
    pub qr_rank: usize,
    /// Columns of `R` that were zero (or rounding noise): the step ignored them and kept the
    /// matching columns of `Q` (normalised, for Dion). All of them when `B` is zero.
    pub zero_columns: usize,
}

/// The outcome of a step while its phases run: `Ok` until one fails, then that phase's error.
///
/// The phases write to it rather than return a `Result` each, and a step ends by writing its
/// [`StepInfo`] here, so the one `Result` a step keeps can be its caller's return slot (see
/// [`Core::start`]).
pub(crate) type Status = Result<StepInfo, Error>;

/// A [`Status`] before any phase has run.
pub(crate) const RUNNING: Status = Ok(StepInfo {
    qr_rank: 0,
    zero_columns: 0,
});

/// Records the error of `result`, if any, in `status`.
#[inline(always)]
pub(crate) fn record(status: &mut Status, result: Result<(), Error>) {
    if let Err(error) = result {
        *status = Err(error);
    }
}

fn check_len(operand: Operand, expected: usize, len: usize) -> Result<(), Error> {
    if len == expected {
        Ok(())
    } else {
        Err(Error::BufferTooSmall {
            operand,
            required: expected,
            len,
        })
    }
}

/// Checks every buffer length against the shape.
pub(crate) fn check_buffers<T>(
    shape: StepShape,
    x: &[T],
    grad: &[T],
    state: &StepState<'_, T>,
    scratch: &StepScratch<'_, T>,
) -> Result<(), Error> {
    check_len(Operand::Param, shape.param_len(), x.len())?;
    check_len(Operand::Grad, shape.param_len(), grad.len())?;
    check_len(Operand::Momentum, shape.param_len(), state.momentum.len())?;
    check_len(Operand::Q, shape.q_len(), state.q.len())?;
    check_len(Operand::P, shape.p_len(), scratch.p.len())?;
    check_len(Operand::R, shape.q_len(), scratch.r.len())?;
    Ok(())
}

/// Largest magnitudes of the inputs, found by [`scan`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scan<T> {
    /// `max |M + G|`.
    pub max_b: T,
    /// `max |X|`.
    pub max_x: T,
}

fn first_bad<T: Scalar>(operand: Operand, data: &[T], cols: usize) -> Result<(), Error> {
    match data.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(Error::NonFinite {
            operand,
            row: index / cols,
            col: index % cols,
        }),
        None => Ok(()),
    }
}

/// `max |value|` over `values`, or a NaN if any value is NaN ([`Scalar::max_magnitude`]).
///
/// The result is finite exactly when every value is, because a NaN or an infinity has a larger
/// magnitude pattern than every finite value and so survives to the end. The fold makes one
/// comparison per value, and the maximum is exact, so the order of the fold does not matter.
#[inline(always)]
fn largest_magnitude<T: Scalar>(values: impl Iterator<Item = T>) -> T {
    values.fold(T::ZERO, |max, value| max.max_magnitude(value))
}

/// Reads `G`, `M`, `X` and `Q` once: every entry finite, `M + G` does not overflow.
///
/// Errors come in a fixed order: the first non-finite entry of `G`, then of `M`, `X` and `Q`
/// (each by row-major position), then the overflow of `M + G`.
///
/// Not inlined, so that an instruction profile of a step shows the scan apart; the call costs a
/// few instructions per step.
#[inline(always)]
pub(crate) fn scan<T: Scalar>(
    shape: StepShape,
    x: &[T],
    grad: &[T],
    momentum: &[T],
    q: &[T],
) -> Result<Scan<T>, Error> {
    // `M + G` is not finite whenever `M` or `G` is not: NaN propagates, an infinity plus a
    // finite value or an infinity of the same sign is infinite, and plus one of the other sign
    // is NaN. So one pass over the sums checks both operands and the overflow.
    let max_b = largest_magnitude(momentum.iter().zip(grad).map(|(&m, &g)| m + g));
    let max_x = largest_magnitude(x.iter().copied());
    let max_q = largest_magnitude(q.iter().copied());

    let cols = shape.cols;
    if !max_b.is_finite() {
        first_bad(Operand::Grad, grad, cols)?;
        first_bad(Operand::Momentum, momentum, cols)?;
    }
    if !max_x.is_finite() {
        first_bad(Operand::Param, x, cols)?;
    }
    if !max_q.is_finite() {
        first_bad(Operand::Q, q, shape.rank)?;
    }
    // Every entry is finite now, so a non-finite `M + G` is an overflow.
    if !max_b.is_finite() {
        return Err(Error::Overflow {
            operand: Operand::Momentum,
        });
    }
    Ok(Scan { max_b, max_x })
}

/// `true` when `a > b`, for norms kept as `value · 2^exp`.
fn scaled_greater<T: Scalar>(a: ScaledNorm<T>, b: ScaledNorm<T>) -> bool {
    if a.value == T::ZERO {
        return false;
    }
    if b.value == T::ZERO {
        return true;
    }
    // Both values lie in [1, 2√n), so a gap of more than 64 binary orders decides alone.
    let gap = a.exp - b.exp;
    if gap > 64 {
        return true;
    }
    if gap < -64 {
        return false;
    }
    a.value * T::exp2i(gap) > b.value
}

/// Completion that prefers the range of `W`: column `j` of `P` becomes the normalised part of
/// the column `W eₖ` that is farthest from the span of columns `0..j`.
///
/// A completed column `p` with `Wᵀp = 0` would give a zero column of `R`, so that direction
/// would never enter the update and the warm start could stay stuck (for example `B·Q = 0` with
/// `B ≠ 0`). Choosing `p` from the range of `W` makes `Wᵀp ≠ 0` whenever `W` has rank above
/// `j`. Costs `O(n·m·j)`, like one product with `W`, and runs only on rank-deficient steps.
///
/// When the range of `W` is already spanned (every residual at rounding level), the column is
/// set to zero instead. Any unit vector would be a direction that `B` does not contain, and
/// following it would move `X` by a full `lr` along noise. A zero column gives a zero column of
/// `R`, which the commit leaves out of the update.
///
/// Returns `false` when it zeroed the column.
///
/// Out of line, and it builds its views itself: its frame sits beside the QR loop's
/// ([`Mgs::run`]) rather than on top of it, and the caller keeps no copy of the views. Loading
/// a column of `W` and projecting it are leaf calls of their own, so only one of them is on the
/// stack at a time.
#[inline(never)]
fn complete_from_range<T: Scalar>(core: &mut Core<'_, T>, j: usize) -> bool {
    let s = core.shape;
    let (n, k) = (s.outer(), s.rank());
    let mut best: Option<(usize, ScaledNorm<T>)> = None;
    let mut largest = ScaledNorm {
        value: T::ZERO,
        exp: 0,
    };

    // W has `inner` columns.
    for c in 0..s.inner() {
        let Some(original) = load_column(core, j, c) else {
            continue;
        };
        if scaled_greater(original, largest) {
            largest = original;
        }
        let p = &mut view_mut(core.scratch.p, n, k);
        project_out_twice(p, j);
        let residual = ScaledNorm {
            value: column_norm(p, j).to_scalar(),
            exp: original.exp,
        };
        let better = match best {
            None => true,
            Some((_, current)) => scaled_greater(residual, current),
        };
        if better {
            best = Some((c, residual));
        }
    }

    // Same rounding-noise threshold as the QR: n·ε relative to the largest column of W.
    let threshold = ScaledNorm {
        value: largest.value * T::from_usize(n) * T::EPSILON,
        exp: largest.exp,
    };
    match best {
        Some((c, residual)) if scaled_greater(residual, threshold) => {
            let _ = load_column(core, j, c);
            let p = &mut view_mut(core.scratch.p, n, k);
            project_out_twice(p, j);
            let norm = column_norm(p, j).to_scalar();
            for i in 0..n {
                p.data[i * k + j] /= norm;
            }
            true
        }
        _ => {
            zero_column(&mut view_mut(core.scratch.p, n, k), j);
            false
        }
    }
}

/// Completion that drops the column: the phased step, where `W` is only known per worker, uses
/// it so that every worker makes the same choice from the averaged `P` alone. Out of line, so
/// that its loop adds nothing to the frame of [`Core::orthonormalize`].
#[inline(never)]
pub(crate) fn zero_column<T: Scalar>(p: &mut MatMut<'_, T>, j: usize) {
    let stride = p.row_stride;
    for i in 0..p.nrows {
        p.data[i * stride + j] = T::ZERO;
    }
}

/// Writes `W e_c`, scaled to unit magnitude, into column `j` of `P`. Returns the norm of
/// `W e_c`, or `None` (writing nothing) if that column is zero.
#[inline(never)]
fn load_column<T: Scalar>(core: &mut Core<'_, T>, j: usize, c: usize) -> Option<ScaledNorm<T>> {
    let s = core.shape;
    // Entry `i` of `W e_c` is `B[c][i]` when `W = Bᵀ`, else `B[i][c]`, with `B = M + G` stored
    // row-major, `cols` entries per row.
    let (start, step) = if s.transposed() {
        (c * s.cols(), 1)
    } else {
        (c, s.cols())
    };
    let (m, g) = (&*core.state.momentum, core.grad);
    let entry = |i: usize| m[start + i * step] + g[start + i * step];
    let (n, k) = (s.outer(), s.rank());
    let original = scaled_norm_by(n, entry);
    if original.value == T::ZERO {
        return None;
    }
    let scale = original.scale();
    let p = &mut *core.scratch.p;
    for i in 0..n {
        p[i * k + j] = entry(i) * scale;
    }
    Some(original)
}

/// Replacement rule for a column of `P` that the QR finds dependent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Completion {
    /// From the range of `W` ([`complete_from_range`]); needs the local `W`.
    Range,
    /// By zero ([`zero_column`]); depends on `P` alone.
    Zero,
}

/// Returns [`Error::Overflow`] for `operand` if `a` contains a non-finite value. It is called on
/// products of finite inputs, so a non-finite entry means the product overflowed.
pub(crate) fn check_finite<T: Scalar>(operand: Operand, a: &MatMut<'_, T>) -> Result<(), Error> {
    match first_non_finite(a) {
        Some(_) => Err(Error::Overflow { operand }),
        None => Ok(()),
    }
}

/// Coefficients of the fused final pass:
/// `M ← (M + G) − c1·(L1 R1ᵀ)` and `X ← decay·X − c2·(L2 R2ᵀ)`.
#[derive(Clone, Copy)]
pub(crate) struct Update<T> {
    pub c1: T,
    pub decay: T,
    pub c2: T,
}

/// Rule by which the commit sets `Q` from `R`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum QUpdate {
    /// Dion: `Q ← R / (‖R_col‖ + ε)`, `ε` the one given to [`Core::project`]; a negligible
    /// column keeps `Q_col / (‖Q_col‖ + ε)`.
    Normalize,
    /// PowerSGD: `Q ← R`; a negligible column keeps `Q_col`.
    Copy,
}

/// The buffers of one step and what its checks found; shared by Dion and PowerSGD.
pub(crate) struct Core<'a, T: Scalar> {
    pub shape: StepShape,
    pub x: &'a mut [T],
    pub grad: &'a [T],
    pub state: StepState<'a, T>,
    pub scratch: StepScratch<'a, T>,
    pub scan: Scan<T>,
    /// Coefficients of the final pass, set once the bounds of the commit hold.
    pub update: Update<T>,
    /// The `ε` of the column normalisation between power iterations.
    epsilon: T,
    /// Rank found by the last QR of `P`.
    pub qr_rank: usize,
}

fn view<T>(data: &[T], nrows: usize, ncols: usize) -> MatRef<'_, T> {
    MatRef {
        data,
        nrows,
        ncols,
        row_stride: ncols,
    }
}

fn view_mut<T>(data: &mut [T], nrows: usize, ncols: usize) -> MatMut<'_, T> {
    MatMut {
        data,
        nrows,
        ncols,
        row_stride: ncols,
    }
}

impl<'a, T: Scalar> Core<'a, T> {
    /// Holds the buffers of a step; nothing is checked or computed until [`start`](Self::start).
    ///
    /// Built in place and then worked on by reference, so a step keeps one `Core` in its stack
    /// frame rather than a copy per `Result` it passes through.
    pub fn new(
        shape: StepShape,
        x: &'a mut [T],
        grad: &'a [T],
        state: StepState<'a, T>,
        scratch: StepScratch<'a, T>,
    ) -> Self {
        Self {
            shape,
            x,
            grad,
            state,
            scratch,
            scan: Scan {
                max_b: T::ZERO,
                max_x: T::ZERO,
            },
            update: Update {
                c1: T::ZERO,
                decay: T::ONE,
                c2: T::ZERO,
            },
            epsilon: T::ZERO,
            qr_rank: 0,
        }
    }

    /// Checks buffers and inputs, then computes `P = W·Q`.
    ///
    /// The phases that can fail record their error in `status` ([`Status`]) rather than return
    /// it, and do nothing once it contains one. With a `Result` returned by each phase and `?` after
    /// every call, LLVM kept two more 32-byte copies of the error in the step's frame on the
    /// Cortex-M4F, and that frame is on every stack path of a step.
    #[inline(always)]
    pub fn start(&mut self, status: &mut Status) {
        if status.is_ok() {
            self.check(status);
        }
        if status.is_ok() {
            self.product_p();
        }
    }

    /// Checks the buffer lengths and scans the inputs; the outcome goes to `status`.
    #[inline(never)]
    fn check(&mut self, status: &mut Status) {
        let s = self.shape;
        record(
            status,
            check_buffers(s, self.x, self.grad, &self.state, &self.scratch),
        );
        if status.is_ok() {
            match scan(s, self.x, self.grad, self.state.momentum, self.state.q) {
                Ok(scan) => self.scan = scan,
                Err(error) => *status = Err(error),
            }
        }
    }

    /// `P = W·Q`.
    #[inline(always)]
    fn product_p(&mut self) {
        if self.shape.transposed() {
            self.product::<true, true, true>();
        } else {
            self.product::<true, false, true>();
        }
    }

    /// One product of PowerIter1: `P = W·F` when `TO_P`, with `F = Q` when `FROM_Q` and the
    /// normalised `R` otherwise (later power iterations), else `R = Wᵀ·P`; `TRANSPOSED` is
    /// [`StepShape::transposed`].
    ///
    /// One function per variant, each building its own views. The stack of a step then has
    /// one kernel frame below the step's own, instead of a frame with views calling a kernel
    /// that handles every variant (about 600 bytes together on the Cortex-M4F).
    #[inline(never)]
    fn product<const TO_P: bool, const TRANSPOSED: bool, const FROM_Q: bool>(&mut self) {
        let s = self.shape;
        let m = view(self.state.momentum, s.rows(), s.cols());
        let g = view(self.grad, s.rows(), s.cols());
        if TO_P {
            let factor = if FROM_Q {
                &*self.state.q
            } else {
                &*self.scratch.r
            };
            let q = view(factor, s.inner(), s.rank());
            let mut p = view_mut(self.scratch.p, s.outer(), s.rank());
            if TRANSPOSED {
                gemm_tn::<T, true>(&mut p, m, g, q);
            } else {
                gemm_nn::<T, true>(&mut p, m, g, q);
            }
        } else {
            let p = view(self.scratch.p, s.outer(), s.rank());
            let mut r = view_mut(self.scratch.r, s.inner(), s.rank());
            if TRANSPOSED {
                gemm_nn::<T, true>(&mut r, m, g, p);
            } else {
                gemm_tn::<T, true>(&mut r, m, g, p);
            }
        }
    }

    /// PowerIter1 after `P = W·Q`: orthonormalises `P`, then `R = Wᵀ·P`; `extra_iters` more
    /// rounds with `Q` replaced by the normalised `R`. Does nothing if `status` contains an error,
    /// and sets one only if `P` or `R` is not finite (see [`start`](Self::start)).
    ///
    /// Each part runs in a function of its own that builds its views itself, so the stack of a
    /// step is this caller's frame plus the deepest part, not a chain of frames each holding
    /// views of the same buffers.
    #[inline(always)]
    pub fn project(
        &mut self,
        qr: QrOptions,
        completion: Completion,
        extra_iters: usize,
        epsilon: T,
        status: &mut Status,
    ) {
        self.epsilon = epsilon;
        if status.is_ok() {
            self.orthonormalize(qr, completion, status);
        }
        for _ in 0..extra_iters {
            if status.is_err() {
                return;
            }
            self.product_r();
            self.check_r(status);
            if status.is_err() {
                return;
            }
            self.normalize_r();
            self.product_p_from_r();
            self.orthonormalize(qr, completion, status);
        }
        if status.is_ok() {
            self.product_r();
            self.check_r(status);
        }
    }

    /// Orthonormalises `P` in place (QR with the given completion rule).
    ///
    /// The QR loop ([`Mgs::run`]) returns at each dependent column, and the completion runs
    /// from here, so the deepest stack is this frame plus the larger of the loop's and the
    /// completion's, not their sum.
    #[inline(never)]
    fn orthonormalize(&mut self, qr: QrOptions, completion: Completion, status: &mut Status) {
        let s = self.shape;
        record(
            status,
            check_finite(Operand::P, &view_mut(self.scratch.p, s.outer(), s.rank())),
        );
        if status.is_err() {
            return;
        }
        let mut mgs = Mgs::new();
        // Once the range of W is spanned, it stays spanned for every later column: skip the
        // search from then on.
        let mut spanned = completion == Completion::Zero;
        loop {
            let mut p = view_mut(self.scratch.p, s.outer(), s.rank());
            let Some(j) = mgs.run(&mut p, None, qr) else {
                break;
            };
            if spanned {
                zero_column(&mut p, j);
            } else {
                spanned = !complete_from_range(self, j);
            }
        }
        self.qr_rank = mgs.rank();
    }

    /// `R = Wᵀ·P`.
    #[inline(always)]
    fn product_r(&mut self) {
        if self.shape.transposed() {
            self.product::<false, true, true>();
        } else {
            self.product::<false, false, true>();
        }
    }

    /// `P = W·R` with the normalised `R`, for another power iteration. Inlined, so its products
    /// run one frame below the step's like the first ones.
    #[inline(always)]
    fn product_p_from_r(&mut self) {
        if self.shape.transposed() {
            self.product::<true, true, false>();
        } else {
            self.product::<true, false, false>();
        }
    }

    /// Divides every column of `R` by its norm plus `epsilon`.
    #[inline(never)]
    fn normalize_r(&mut self) {
        let s = self.shape;
        let r = view_mut(self.scratch.r, s.inner(), s.rank());
        super::power::normalize_columns(r, self.epsilon);
    }

    /// Records [`Error::Overflow`] in `status` if `R` is not finite.
    #[inline(never)]
    fn check_r(&mut self, status: &mut Status) {
        let s = self.shape;
        record(
            status,
            check_finite(Operand::R, &view_mut(self.scratch.r, s.inner(), s.rank())),
        );
    }

    /// `max |R|`, or [`Error::Overflow`] if `R` is not finite.
    #[inline(always)]
    pub fn max_r(&mut self) -> Result<T, Error> {
        let s = self.shape;
        // One pass: the largest magnitude is finite exactly when every entry is.
        let max = largest_magnitude(self.scratch.r[..s.q_len()].iter().copied());
        if max.is_finite() {
            Ok(max)
        } else {
            Err(Error::Overflow {
                operand: Operand::R,
            })
        }
    }

    /// Sets `Q` from `R` and zeroes the columns of `P` whose `R` column is negligible: at most
    /// `n·ε` times the largest column norm, `n` the rows of `P`. `Wᵀp` for a `p` orthogonal to
    /// the range of `W` is rounding noise of that size (each entry is a length-`n` dot product),
    /// so such a column has no direction worth following. With `B = 0` every column is
    /// negligible, which reproduces the reference's all-zero branch. Returns how many were.
    #[inline(never)]
    pub fn commit_factors(&mut self, rule: QUpdate) -> usize {
        let epsilon = self.epsilon;
        let s = self.shape;
        let (m, k) = (s.inner(), s.rank());
        let r = view(self.scratch.r, m, k);
        let column = |j: usize| scaled_norm_by(m, |i| r.data[i * k + j]);

        let mut largest = ScaledNorm {
            value: T::ZERO,
            exp: 0,
        };
        for j in 0..k {
            let norm = column(j);
            if scaled_greater(norm, largest) {
                largest = norm;
            }
        }
        let threshold = ScaledNorm {
            value: largest.value * T::from_usize(s.outer()) * T::EPSILON,
            exp: largest.exp,
        };

        let mut zero_columns = 0;
        for j in 0..k {
            let norm = column(j);
            let negligible = !scaled_greater(norm, threshold);
            let q = &mut *self.state.q;
            if negligible {
                zero_columns += 1;
                for i in 0..s.outer() {
                    self.scratch.p[i * k + j] = T::ZERO;
                }
                if let QUpdate::Normalize = rule {
                    let q_norm = scaled_norm_by(m, |i| q[i * k + j]);
                    let (factor, denominator) = q_norm.normalizer(epsilon);
                    for i in 0..m {
                        q[i * k + j] = q[i * k + j] * factor / denominator;
                    }
                }
            } else {
                match rule {
                    QUpdate::Normalize => {
                        let (factor, denominator) = norm.normalizer(epsilon);
                        for i in 0..m {
                            q[i * k + j] = r.data[i * k + j] * factor / denominator;
                        }
                    }
                    QUpdate::Copy => {
                        for i in 0..m {
                            q[i * k + j] = r.data[i * k + j];
                        }
                    }
                }
            }
        }
        zero_columns
    }

    /// Runs the fused final pass `M ← B − c1·(P Rᵀ)`, `X ← decay·X − c2·(P Fᵀ)` with the
    /// coefficients in `self.update`, where `F` is the new `Q` (Dion) or `R` (PowerSGD), both
    /// transposed back when `W = Bᵀ`.
    #[inline(always)]
    pub fn apply(&mut self, x_factor_is_q: bool) {
        // The passes read their coefficients from `self`: held here across the calls, they
        // would take callee-saved registers and so stack in this caller's frame.
        self.update_momentum();
        self.update_param(x_factor_is_q);
    }

    /// `M ← (M + G) − c1·(P Rᵀ)` (or its transpose), each entry read and written once.
    ///
    /// Each pass builds its own views in a frame of its own: the stack then has the views of
    /// one pass, not of both.
    #[inline(never)]
    fn update_momentum(&mut self) {
        let c1 = self.update.c1;
        // The closure captures its coefficient by value (`move`), so the kernel keeps it in a
        // register.
        nt_product::<T, true, _, _>(&mut MomentumPass(self), move |m_value, g_value, dot| {
            (m_value + g_value) - c1 * dot
        });
    }

    /// `X ← decay·X − c2·(P Fᵀ)` (or its transpose), `F` the new `Q` or `R`.
    #[inline(never)]
    fn update_param(&mut self, x_factor_is_q: bool) {
        let Update { decay, c2, .. } = self.update;
        let mut operands = ParamPass {
            core: self,
            x_factor_is_q,
        };
        nt_product::<T, false, _, _>(&mut operands, move |x_value, _, dot| {
            decay * x_value - c2 * dot
        });
    }
}

/// The operands of the momentum pass: `C = M`, `E = G` and `A·Bᵀ = P Rᵀ` (or its transpose).
struct MomentumPass<'c, 'a, T: Scalar>(&'c mut Core<'a, T>);

impl<T: Scalar> NtOperands<T> for MomentumPass<'_, '_, T> {
    #[inline(always)]
    fn views(&mut self) -> NtViews<'_, T> {
        let core = &mut *self.0;
        let s = core.shape;
        let (k, inner, outer) = (s.rank(), s.inner(), s.outer());
        let p = view(core.scratch.p, outer, k);
        let r = view(core.scratch.r, inner, k);
        let (a, b) = if s.transposed() { (r, p) } else { (p, r) };
        NtViews {
            c: view_mut(core.state.momentum, s.rows(), s.cols()),
            extra: view(core.grad, s.rows(), s.cols()),
            a,
            b,
        }
    }
}

/// The operands of the parameter pass: `C = X` and `A·Bᵀ = P Fᵀ` (or its transpose), `F` the
/// new `Q` when `x_factor_is_q`, else `R`. `E` is not read.
struct ParamPass<'c, 'a, T: Scalar> {
    core: &'c mut Core<'a, T>,
    x_factor_is_q: bool,
}

impl<T: Scalar> NtOperands<T> for ParamPass<'_, '_, T> {
    #[inline(always)]
    fn views(&mut self) -> NtViews<'_, T> {
        let core = &mut *self.core;
        let s = core.shape;
        let (k, inner, outer) = (s.rank(), s.inner(), s.outer());
        let p = view(core.scratch.p, outer, k);
        let f = if self.x_factor_is_q {
            view(core.state.q, inner, k)
        } else {
            view(core.scratch.r, inner, k)
        };
        let (a, b) = if s.transposed() { (f, p) } else { (p, f) };
        NtViews {
            c: view_mut(core.x, s.rows(), s.cols()),
            extra: view(core.grad, s.rows(), s.cols()),
            a,
            b,
        }
    }
}

#[cfg(test)]
mod scan_tests {
    use super::*;

    const ROWS: usize = 6;
    const COLS: usize = 11;
    const RANK: usize = 3;

    fn shape() -> StepShape {
        StepShape::new(ROWS, COLS, RANK).unwrap()
    }

    /// Inputs of moderate size, all finite; `X`, `G`, `M` are `ROWS × COLS`, `Q` is `ROWS × RANK`.
    fn inputs() -> (
        [f32; ROWS * COLS],
        [f32; ROWS * COLS],
        [f32; ROWS * COLS],
        [f32; ROWS * RANK],
    ) {
        // Values in [-scale, scale], not sorted, none repeated within 101 entries.
        let value = |index: usize, scale: f32| scale * ((index * 37 % 101) as f32 / 50.0 - 1.0);
        (
            core::array::from_fn(|index| value(index, 2.0)),
            core::array::from_fn(|index| value(index + 1, 1.0)),
            core::array::from_fn(|index| value(index + 2, 0.5)),
            core::array::from_fn(|index| value(index + 3, 1.0)),
        )
    }

    fn non_finite(operand: Operand, index: usize, cols: usize) -> Error {
        Error::NonFinite {
            operand,
            row: index / cols,
            col: index % cols,
        }
    }

    #[test]
    fn scan_finds_exact_maxima() {
        let (x, mut grad, mut momentum, q) = inputs();
        grad[29] = -7.5;
        momentum[29] = 1.25;
        let scan = scan(shape(), &x, &grad, &momentum, &q).unwrap();
        assert_eq!(scan.max_b, 6.25);
        let max_x = x.iter().fold(0.0f32, |max, v| max.max(v.abs()));
        assert_eq!(scan.max_x, max_x);
    }

    #[test]
    fn scan_accepts_finite_values_whose_sum_overflows() {
        // Every lane's sum of magnitudes overflows to infinity, although every entry and every
        // `M + G` is finite: the scan must look for a bad entry, find none and succeed.
        let (mut x, mut grad, momentum, q) = inputs();
        x.fill(3.0e38);
        grad.fill(-3.0e38);
        let scan = scan(shape(), &x, &grad, &momentum, &q).unwrap();
        assert_eq!(scan.max_x, 3.0e38);
        let max_b = grad
            .iter()
            .zip(&momentum)
            .fold(0.0f32, |max, (g, m)| max.max((m + g).abs()));
        assert_eq!(scan.max_b, max_b);
    }

    #[test]
    fn scan_reports_nan_after_large_values() {
        // A NaN never wins a comparison; it must still be found behind the largest entry.
        let (mut x, grad, momentum, q) = inputs();
        x[40] = 1.0e30;
        x[41] = f32::NAN;
        assert_eq!(
            scan(shape(), &x, &grad, &momentum, &q).unwrap_err(),
            non_finite(Operand::Param, 41, COLS)
        );
    }

    #[test]
    fn scan_reports_first_bad_entry() {
        let (mut x, mut grad, mut momentum, mut q) = inputs();
        q[7] = f32::INFINITY;
        assert_eq!(
            scan(shape(), &x, &grad, &momentum, &q).unwrap_err(),
            non_finite(Operand::Q, 7, RANK)
        );
        x[50] = f32::NEG_INFINITY;
        x[60] = f32::NAN;
        assert_eq!(
            scan(shape(), &x, &grad, &momentum, &q).unwrap_err(),
            non_finite(Operand::Param, 50, COLS)
        );
        momentum[13] = f32::NAN;
        assert_eq!(
            scan(shape(), &x, &grad, &momentum, &q).unwrap_err(),
            non_finite(Operand::Momentum, 13, COLS)
        );
        // `M + G` is NaN there, but the infinity is in `G`, which is reported first.
        grad[64] = f32::NEG_INFINITY;
        momentum[64] = f32::INFINITY;
        assert_eq!(
            scan(shape(), &x, &grad, &momentum, &q).unwrap_err(),
            non_finite(Operand::Grad, 64, COLS)
        );
    }

    #[test]
    fn scan_reports_overflow_of_sum_last() {
        let (x, mut grad, mut momentum, q) = inputs();
        grad[65] = 3.0e38;
        momentum[65] = 3.0e38;
        assert_eq!(
            scan(shape(), &x, &grad, &momentum, &q).unwrap_err(),
            Error::Overflow {
                operand: Operand::Momentum
            }
        );
    }
}

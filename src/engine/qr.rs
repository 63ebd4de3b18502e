//! Modified Gram-Schmidt QR with optional reorthogonalisation and a deterministic completion.
//!
//! For an `n × k` matrix `A` (`k ≤ n`) the columns are processed left to right. Column `j` is
//! first scaled by a power of two (exact) so that its largest entry lies in `[1, 2)`, then
//! projected against the finished columns `q₀ … q_{j−1}` one at a time, each projection using
//! the already updated column (the "modified" variant). With reorthogonalisation the same sweep
//! runs a second time. Giraud, Langou and Rozložník ("The loss of orthogonality in the
//! Gram-Schmidt process", 2005) show that two sweeps give `‖QᵀQ − I‖ = O(ε)` for any numerically
//! non-singular `A`, where one MGS sweep gives `O(ε·κ(A))`.
//!
//! For speed, the first sweep runs "right-looking" on panels of [`PANEL`] columns. A finished
//! column is projected out of the rest of its panel in two passes over whole rows (all dot
//! products, then all updates). At the start of a panel, every earlier column is projected out
//! of the whole panel the same way. The second sweep walks one column at a time, updating the
//! column with `q_l` and summing its dot product with `q_{l+1}` in the same pass. The pass that
//! last writes a column also sums its squares, which gives its norm without a pass of its own
//! (the column is at unit scale, so the plain sum is safe, see [`residual_norm`]). Each column
//! still gets the same projections in the same order, and every dot product is one sequential
//! sum over the rows, so the result is bit-identical to the column-by-column loop (tested in
//! `tests/qr.rs`).
//!
//! # Rank and completion
//!
//! A column whose remaining norm is at most `n·ε` times its original norm (or whose original
//! norm is zero) is declared dependent: its residual is at the level of the rounding error of the
//! projections themselves (`O(n·ε·‖aⱼ‖)` for a length-`n` column), so its direction is noise.
//! It is replaced by a unit vector orthogonal to the previous columns: the standard basis vector
//! `eᵢ` whose row `i` of `[q₀ … q_{j−1}]` has the smallest norm (lowest `i` on ties), projected
//! twice and normalised. That choice has a residual of at least `√((n − j)/n)`, so the
//! completion is never itself ill-conditioned. Its diagonal entry in `R` is 0, so `QR ≈ A` still
//! holds, and [`QrInfo::rank`] counts the columns that were not replaced. The output therefore
//! always has orthonormal, finite columns, as Householder QR's does.

use super::norm::{scaled_norm_by, scaled_norm_from_max, ScaledNorm};
use super::view::MatMut;
use crate::error::{Error, Operand};
use crate::scalar::Scalar;

/// Runs `$body` once per row of `$rows` (a pair from [`rows`] or [`rows_mut`]), in row order,
/// with `$row` bound to the row. The body is written out twice, for the full rows and for the
/// short last row. So each copy has one call site and is compiled inline at every opt-level,
/// where one closure called from two places would be outlined at opt-level "s".
macro_rules! for_each_row {
    ($rows:expr, |$row:ident| $body:expr) => {{
        let (full, last) = $rows;
        full.for_each(|$row| {
            $body;
        });
        if let Some($row) = last {
            $body;
        }
    }};
}

/// Options for [`qr_in_place`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct QrOptions {
    /// Run the Gram-Schmidt sweep twice per column ("twice is enough").
    ///
    /// Default `true`: on the ill-conditioned cases measured in `docs/QR.md` a single sweep left
    /// `‖QᵀQ − I‖` proportional to `ε·κ`, two sweeps left it at a few `ε`, for about twice the
    /// projection work (`2nk²` instead of `nk²` flops).
    pub reorthogonalize: bool,
}

impl Default for QrOptions {
    fn default() -> Self {
        Self {
            reorthogonalize: true,
        }
    }
}

/// Result of [`qr_in_place`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct QrInfo {
    /// Numerical rank: how many columns were orthonormalised rather than replaced by the
    /// completion.
    pub rank: usize,
}

/// Orthonormalises the columns of `a` in place, optionally writing the upper-triangular factor.
///
/// On success `a` contains `Q` with `QᵀQ = I` (to a few `ε` with reorthogonalisation) and, if `r`
/// is given, `r` contains the `k × k` upper-triangular `R` with a non-negative diagonal, so that
/// `Q·R ≈ A`. `R` can hold `+∞` only where the exact entry exceeds `T::MAX`; `Q` is finite for
/// every finite input.
///
/// # Errors
/// - [`Error::ShapeMismatch`] if `k > n` or `r` is not `k × k`.
/// - [`Error::NonFinite`] if `a` contains a NaN or ±∞.
///
/// On error neither `a` nor `r` has been written.
///
/// # Example
/// ```
/// use dion_kernel::engine::{qr_in_place, MatMut, QrOptions};
/// let mut a = [1.0f64, 1.0, 1.0, 1.0]; // [[1, 1], [1, 1]]: rank 1
/// let info = qr_in_place(MatMut::from_slice(&mut a, 2, 2)?, None, QrOptions::default())?;
/// assert_eq!(info.rank, 1);
/// let dot = a[0] * a[1] + a[2] * a[3];
/// assert!(dot.abs() < 1e-15);
/// # Ok::<(), dion_kernel::Error>(())
/// ```
pub fn qr_in_place<T: Scalar>(
    a: MatMut<'_, T>,
    r: Option<MatMut<'_, T>>,
    options: QrOptions,
) -> Result<QrInfo, Error> {
    let (n, k) = a.shape();
    if k > n {
        return Err(Error::ShapeMismatch {
            operand: Operand::A,
            expected: (n, n.min(k)),
            found: (n, k),
        });
    }
    if let Some(r) = &r {
        super::gemm::check_shape(Operand::R, (k, k), r.shape())?;
    }
    if let Some((row, col)) = first_non_finite(&a) {
        return Err(Error::NonFinite {
            operand: Operand::A,
            row,
            col,
        });
    }

    let mut a = a;
    let mut r = r;
    if let Some(r) = r.as_mut() {
        r.fill(T::ZERO);
    }
    Ok(mgs(&mut a, r.as_mut(), options, complete_column))
}

pub(crate) fn first_non_finite<T: Scalar>(a: &MatMut<'_, T>) -> Option<(usize, usize)> {
    // A dense matrix (every step's `P` and `R`) is one run over all entries. A strided view
    // takes the search below directly.
    let (n, ncols) = (a.nrows, a.ncols);
    if a.row_stride == ncols && a.data.get(..n * ncols).is_some_and(all_finite) {
        return None;
    }
    for i in 0..a.nrows() {
        if let Some(j) = a.row(i).iter().position(|x| !x.is_finite()) {
            return Some((i, j));
        }
    }
    None
}

/// `true` when no value is NaN or ±∞.
///
/// `x·0` is ±0 for a finite `x` and NaN for ±∞ or NaN, so the sum of these products is zero
/// exactly when every value is finite: one multiply-add per value and no branch. Four values
/// per iteration keep the loop overhead small at opt-level "s", which does not unroll.
#[inline(always)]
fn all_finite<T: Scalar>(values: &[T]) -> bool {
    let mut probe = T::ZERO;
    let chunks = values.chunks_exact(4);
    let rest = chunks.remainder();
    for chunk in chunks {
        probe += chunk[0] * T::ZERO;
        probe += chunk[1] * T::ZERO;
        probe += chunk[2] * T::ZERO;
        probe += chunk[3] * T::ZERO;
    }
    for &x in rest {
        probe += x * T::ZERO;
    }
    probe == T::ZERO
}

#[inline(always)]
fn at(stride: usize, i: usize, j: usize) -> usize {
    i * stride + j
}

/// Rows `0..nrows` of a row-major buffer, each as the slice from the row's first entry on: an
/// iterator over the full rows and the short last row, if any. Run a loop over them with
/// [`for_each_row!`].
///
/// Every row is exactly `stride` long, except the last when `data` ends before `nrows·stride`
/// (then it runs to the end of `data`). So after a caller has checked `j < stride`, the compiler
/// drops the bounds check of `row[j]` on the full rows.
#[inline(always)]
fn rows<T>(data: &[T], nrows: usize, stride: usize) -> (impl Iterator<Item = &[T]>, Option<&[T]>) {
    let full = full_rows(data.len(), nrows, stride);
    let (body, last) = data.split_at(full * stride);
    // Zipping with a range gives the loop a trip count known up front (a plain counter),
    // where `ChunksExact::next` would compare the remaining length on every row.
    let full_rows = body
        .chunks_exact(stride.max(1))
        .zip(0..full)
        .map(|(row, _)| row);
    (full_rows, (full < nrows).then_some(last))
}

/// [`rows`] with a loop that ends on the remaining length instead of a counter, for
/// [`project_block`].
///
/// LLVM does not know the trip count of such a loop before it starts, so at opt-level 3 it does
/// not unroll it. The unrolled passes of `project_block` kept a pointer per row and column and
/// spilled them: its frames took 128 to 192 bytes at opt-level 3 (56 to 88 with this loop), on
/// top of the QR loop's frame in every step. The remaining-length test costs one instruction per
/// row: 726 more per 32×64 rank-8 step at opt-level 3 and 1,216 at "s", measured with
/// `examples/mcu/profile.sh`.
#[inline(always)]
fn rows_by_length<T>(
    data: &[T],
    nrows: usize,
    stride: usize,
) -> (impl Iterator<Item = &[T]>, Option<&[T]>) {
    let full = full_rows(data.len(), nrows, stride);
    let (body, last) = data.split_at(full * stride);
    (
        body.chunks_exact(stride.max(1)),
        (full < nrows).then_some(last),
    )
}

/// [`rows_by_length`] for writing.
#[inline(always)]
fn rows_by_length_mut<T>(
    data: &mut [T],
    nrows: usize,
    stride: usize,
) -> (impl Iterator<Item = &mut [T]>, Option<&mut [T]>) {
    let full = full_rows(data.len(), nrows, stride);
    let (body, last) = data.split_at_mut(full * stride);
    (
        body.chunks_exact_mut(stride.max(1)),
        (full < nrows).then_some(last),
    )
}

/// [`rows`] for writing.
#[inline(always)]
fn rows_mut<T>(
    data: &mut [T],
    nrows: usize,
    stride: usize,
) -> (impl Iterator<Item = &mut [T]>, Option<&mut [T]>) {
    let full = full_rows(data.len(), nrows, stride);
    let (body, last) = data.split_at_mut(full * stride);
    let full_rows = body
        .chunks_exact_mut(stride.max(1))
        .zip(0..full)
        .map(|(row, _)| row);
    (full_rows, (full < nrows).then_some(last))
}

/// Counts the rows of `nrows` that have all `stride` entries inside a buffer of length `len`:
/// all of them for a dense matrix, `nrows − 1` for a view whose buffer ends with the last row's
/// `ncols` entries.
#[inline(always)]
fn full_rows(len: usize, nrows: usize, stride: usize) -> usize {
    match nrows.checked_mul(stride) {
        Some(total) if total <= len => nrows,
        _ => nrows.saturating_sub(1).min(len / stride.max(1)),
    }
}

/// `true` when `j` is a column of `a`. Testing `j < row_stride` as well (which a valid view
/// implies) states the fact the compiler needs to drop the bounds check of `row[j]` on the
/// full rows of [`rows`].
#[inline(always)]
fn valid_column<T>(a: &MatMut<'_, T>, j: usize) -> bool {
    j < a.ncols && j < a.row_stride
}

/// The scaled norm of column `j`. Used off the hot path (completions, and residuals too small
/// for [`residual_norm`]'s plain sum), so it stays a plain indexed loop, small in flash, and out
/// of line, so that its loops add nothing to its callers' frames.
#[inline(never)]
pub(crate) fn column_norm<T: Scalar>(a: &MatMut<'_, T>, j: usize) -> ScaledNorm<T> {
    let stride = a.row_stride;
    let data = &*a.data;
    scaled_norm_by(a.nrows, |i| data[at(stride, i, j)])
}

/// Scales column `j` by the power of two that brings its largest entry into `[1, 2)`, writes
/// the column's norm to `norm` and returns `Σᵢ aᵢⱼ²` of the scaled column. The scaled entries
/// are the ones [`column_norm`] squares, so they are written back in the same pass.
#[inline(never)]
fn scale_column<T: Scalar>(a: &mut MatMut<'_, T>, j: usize, norm: &mut ScaledNorm<T>) -> T {
    let (n, stride) = (a.nrows, a.row_stride);
    let mut sum = T::ZERO;
    if !valid_column(a, j) {
        *norm = ScaledNorm {
            value: T::ZERO,
            exp: 0,
        };
        return sum;
    }
    let data = &mut *a.data;
    let mut amax = T::ZERO;
    for_each_row!(rows(data, n, stride), |row| amax =
        amax.max_magnitude(row[j]));
    // A zero column is left as it is (its factor would be 1); the input is finite.
    *norm = scaled_norm_from_max(amax, |scale| {
        for_each_row!(rows_mut(data, n, stride), |row| {
            let x = row[j] * scale;
            row[j] = x;
            sum += x * x;
        });
        sum
    });
    sum
}

/// Computes the smallest plain sum of squares of a length-`n` column that [`residual_norm`]
/// takes as it is: `n·MIN_POSITIVE/ε` (2⁻⁹⁷ for f32 and `n = 64`).
///
/// A square below `MIN_POSITIVE` falls into the subnormal range, where its rounding error is up
/// to `u·MIN_POSITIVE` in absolute terms (half the subnormal spacing `ε·MIN_POSITIVE`) instead
/// of `u` relative. Sums of subnormal numbers are exact. So the underflow adds at most
/// `n·u·MIN_POSITIVE` to the sum, which for a sum above this minimum is below `u·ε` of it, far
/// inside the `γₙ` rounding error any sum of `n` squares has.
fn min_plain_sum<T: Scalar>(n: usize) -> T {
    T::from_usize(n) * T::MIN_POSITIVE / T::EPSILON
}

/// `‖aⱼ‖` from `sum = Σᵢ aᵢⱼ²`, summed in row order from `+0` without scaling.
///
/// The columns reaching this have been scaled so that their largest entry lies in `[1, 2)`
/// before the projections, which only shrink them (up to rounding), so `sum` stays below about
/// `4n` and cannot overflow. Where the projections left only tiny entries, their squares can
/// underflow, so a sum below [`min_plain_sum`] (or not finite) is replaced by the scaled
/// two-pass norm. Otherwise `√sum` has the bits of the scaled norm whenever no square is
/// subnormal, because scaling by a power of two does not change rounding in the normal range.
/// A column below the minimum is dependent in any case: its norm is under `√n·2⁻⁵¹` (f32) while
/// the rank threshold is `n·ε` times a norm of at least `2⁻²³`.
fn residual_norm<T: Scalar>(a: &MatMut<'_, T>, j: usize, sum: T) -> T {
    if sum >= min_plain_sum::<T>(a.nrows) && sum <= T::MAX {
        sum.sqrt()
    } else {
        column_norm(a, j).to_scalar()
    }
}

/// `aⱼ ← aⱼ − (q_l·aⱼ) q_l` for `l < j`, in order, twice: the projections of a completion.
///
/// Not on the path of a full-rank QR, so it stays plain indexed loops, two passes per column (a
/// dot product, then the update): they need few registers, and their bounds checks keep LLVM
/// from unrolling them, so the frame stays small. The bits are those of [`project_from`], which
/// runs the same operations in the same order.
#[inline(never)]
pub(crate) fn project_out_twice<T: Scalar>(a: &mut MatMut<'_, T>, j: usize) {
    let (n, stride) = (a.nrows, a.row_stride);
    let data = &mut *a.data;
    for _ in 0..2 {
        for l in 0..j {
            let mut dot = T::ZERO;
            for i in 0..n {
                dot += data[at(stride, i, l)] * data[at(stride, i, j)];
            }
            for i in 0..n {
                let q = data[at(stride, i, l)];
                data[at(stride, i, j)] -= dot * q;
            }
        }
    }
}

/// `aⱼ ← aⱼ − (q_l·aⱼ) q_l` for `l < j`, in order, passing each coefficient `q_l·aⱼ` to
/// `coefficients(l, ·)`, with the first one, `dot = q₀·aⱼ`, already computed (one sequential
/// sum over the rows). Returns `Σᵢ aᵢⱼ²` of the projected column, in row order from `+0`, or 0
/// when there was nothing to project (`j = 0`).
#[inline(never)]
fn project_from<T: Scalar>(
    a: &mut MatMut<'_, T>,
    j: usize,
    dot: T,
    coefficients: &mut dyn FnMut(usize, T),
) -> T {
    if j == 0 || !valid_column(a, j) {
        return T::ZERO;
    }
    let (n, stride) = (a.nrows, a.row_stride);
    let data = &mut *a.data;

    let mut dot = dot;
    let mut sum = T::ZERO;
    for l in 0..j {
        // The update with q_l and the dot product with q_{l+1} share one pass over the rows:
        // the dot product reads each entry right after its update, so the operations and their
        // order are those of two separate passes, and so are the bits. The last update also
        // sums the squares of the result, for the residual norm.
        let next = l + 1;
        let mut next_dot = T::ZERO;
        if next < j {
            for_each_row!(rows_mut(data, n, stride), |row| {
                let value = row[j] - dot * row[l];
                row[j] = value;
                next_dot += row[next] * value;
            });
        } else {
            for_each_row!(rows_mut(data, n, stride), |row| {
                let value = row[j] - dot * row[l];
                row[j] = value;
                sum += value * value;
            });
        }
        coefficients(l, dot);
        dot = next_dot;
    }
    sum
}

/// Sums over a column that the pass which last wrote it gathered for the next steps on it.
#[derive(Clone, Copy)]
struct ColumnSums<T> {
    /// `Σᵢ aᵢⱼ²`, in row order from `+0`: the residual norm after the first sweep.
    squares: T,
    /// `Σᵢ aᵢ₀·aᵢⱼ`, in row order from `+0`: the first coefficient of the second sweep.
    dot_first: T,
}

/// Columns orthonormalised together as one panel: the first-sweep projections run as passes
/// over whole rows (contiguous, across the panel), only the second sweep walks single columns.
///
/// On the Cortex-M4F profile of a 32×64 rank-8 step (`examples/mcu/profile.sh`), 8 columns took
/// 3,300 (opt-level "s") to 3,600 (opt-level 3) fewer instructions per step than 4, about 1 % of
/// the step. They took 48 more bytes of stack in the QR's frame, and 3.5 KB ("s") to 8.1 KB (3)
/// more flash in `examples/mcu/examples/dion_layer.rs` for the per-width kernels. The step has to
/// fit in a small stack, so the panel is 4.
const PANEL: usize = 4;

// `project_panel` has one arm per width up to `PANEL`, and `unrolled!` one slot per column.
const _: () = assert!(PANEL == 4);

/// Projects columns `first..first + dots.len()` against column `l < first`, once, in MGS order:
/// all dot products `q_l·a_c` (written to `dots`) in one pass over the rows, then all updates
/// `a_c −= (q_l·a_c) q_l` in a second. Each dot product is still one sequential sum over the
/// rows. The update pass also gathers the [`ColumnSums`] of column `first`, which it returns.
///
/// `dots` contains 1 to [`PANEL`] columns, the rest of one panel.
#[inline(always)]
fn project_panel<T: Scalar>(
    a: &mut MatMut<'_, T>,
    l: usize,
    first: usize,
    dots: &mut [T],
) -> ColumnSums<T> {
    // One instance per width keeps the running dot products in registers.
    match dots.len() {
        1 => project_block::<T, 1>(a, l, first, dots),
        2 => project_block::<T, 2>(a, l, first, dots),
        3 => project_block::<T, 3>(a, l, first, dots),
        _ => project_block::<T, PANEL>(a, l, first, dots),
    }
}

/// Runs `$body` for `$c = 0, 1, …, W − 1` (`W ≤ PANEL` a constant) as straight-line code, so
/// that the running sums stay in registers at every opt-level ("s" does not unroll loops).
macro_rules! unrolled {
    ($width:expr, |$c:ident| $body:expr) => {{
        {
            let $c = 0;
            if $c < $width {
                $body;
            }
        }
        {
            let $c = 1;
            if $c < $width {
                $body;
            }
        }
        {
            let $c = 2;
            if $c < $width {
                $body;
            }
        }
        {
            let $c = 3;
            if $c < $width {
                $body;
            }
        }
    }};
}

/// [`project_panel`] for exactly `W ≤ PANEL` columns.
#[inline(never)]
fn project_block<T: Scalar, const W: usize>(
    a: &mut MatMut<'_, T>,
    l: usize,
    first: usize,
    out: &mut [T],
) -> ColumnSums<T> {
    let (n, stride) = (a.nrows, a.row_stride);
    let mut sums = ColumnSums {
        squares: T::ZERO,
        dot_first: T::ZERO,
    };
    let Some(end) = first.checked_add(W) else {
        return sums;
    };
    let fits = end <= a.ncols && end <= stride;
    if W == 0 || W > PANEL || out.len() != W || l >= first || !fits || !valid_column(a, l) {
        return sums;
    }
    let data = &mut *a.data;

    // `PANEL` slots whatever `W` is, because `unrolled!` names them all; every access has a
    // constant index, so the array lives in registers.
    let mut dots = [T::ZERO; PANEL];
    for_each_row!(rows_by_length(data, n, stride), |row| {
        let q = row[l];
        let x = &row[first..end];
        unrolled!(W, |c| dots[c] += q * x[c]);
    });
    for_each_row!(rows_by_length_mut(data, n, stride), |row| {
        let q = row[l];
        let q_first = row[0];
        let x = &mut row[first..end];
        unrolled!(W, |c| x[c] -= dots[c] * q);
        sums.squares += x[0] * x[0];
        sums.dot_first += q_first * x[0];
    });
    unrolled!(W, |c| out[c] = dots[c]);
    sums
}

/// The MGS loop on a finite matrix with `k ≤ n`. `r`, if given, is `k × k` and zeroed.
///
/// `complete(a, j)` must overwrite column `j` with a unit vector orthogonal to columns `0..j`,
/// or with zeros; [`complete_column`] is the default. It must not read or write columns after
/// `j`. It runs between two calls of [`Mgs::run`], so its frame is not on top of the loop's.
pub(crate) fn mgs<T: Scalar>(
    a: &mut MatMut<'_, T>,
    mut r: Option<&mut MatMut<'_, T>>,
    options: QrOptions,
    mut complete: impl FnMut(&mut MatMut<'_, T>, usize),
) -> QrInfo {
    let mut state = Mgs::new();
    while let Some(j) = state.run(a, r.as_deref_mut(), options) {
        complete(a, j);
    }
    QrInfo { rank: state.rank() }
}

/// The MGS loop, stopped at each dependent column so that the caller can complete it.
///
/// Columns go in panels of [`PANEL`]. The first sweep runs "right-looking" as passes over whole
/// rows: each column, once finished, is projected out of every later column of its panel, and
/// at the start of a panel every earlier column is projected out of the whole panel. The second
/// sweep (with reorthogonalisation) runs column by column over all earlier columns, after which
/// the column is checked for dependence and normalised. Each column gets the projections of
/// column-by-column MGS with two sweeps, in the same order and with the same sums, so the
/// result is the same bits.
///
/// [`run`](Self::run) returns at a dependent column instead of calling a completion, and picks up
/// where it stopped on the next call. The caller keeps this state and runs the completion
/// between the calls, so the completion's frames sit beside the loop's rather than on top of
/// them: the deepest stack is the caller's frame plus the larger of the two chains, not their
/// sum.
pub(crate) struct Mgs<T> {
    /// The column to finish next. Panels start at the multiples of [`PANEL`].
    next: usize,
    /// Columns orthonormalised so far (not completed).
    rank: usize,
    /// Norms before scaling of the columns of the panel of `next`.
    originals: [ScaledNorm<T>; PANEL],
}

impl<T: Scalar> Mgs<T> {
    /// Creates the state of a loop that has not started.
    pub fn new() -> Self {
        Self {
            next: 0,
            rank: 0,
            originals: [ScaledNorm {
                value: T::ZERO,
                exp: 0,
            }; PANEL],
        }
    }

    /// Returns the number of columns orthonormalised so far, not counting completed ones.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Tests column `j` (column `c` of the panel) for dependence after a sweep that left
    /// `sum = Σᵢ aᵢⱼ²`. Returns its [`residual_norm`] if that is above `n·ε` times the column's
    /// norm before scaling (see the module docs), else `None`.
    ///
    /// Out of line, reading the norm and computing the threshold here: the loop of
    /// [`run`](Self::run) then keeps no floating-point value across its calls but the next
    /// sweep's first coefficient, which saves it registers to preserve on the stack.
    #[inline(never)]
    fn independent_residual(&self, a: &MatMut<'_, T>, j: usize, c: usize, sum: T) -> Option<T> {
        let original = self.originals[c].value;
        let residual = residual_norm(a, j, sum);
        let threshold = T::from_usize(a.nrows) * T::EPSILON;
        (original > T::ZERO && residual > threshold * original).then_some(residual)
    }

    /// Runs the loop on `a` until a column `j` turns out dependent, and returns `Some(j)`, or
    /// `None` once every column is done. `a` is finite with `k ≤ n`, and `r`, if given, is
    /// `k × k` and zeroed before the first call.
    ///
    /// After `Some(j)`, the caller must overwrite column `j` with a unit vector orthogonal to
    /// columns `0..j`, or with zeros, and touch no other column. Then it calls `run` again with
    /// the same `a`, `r` and `options`.
    #[inline(never)]
    pub fn run(
        &mut self,
        a: &mut MatMut<'_, T>,
        mut r: Option<&mut MatMut<'_, T>>,
        options: QrOptions,
    ) -> Option<usize> {
        let k = a.ncols;
        let mut dots = [T::ZERO; PANEL];

        while self.next < k {
            let j = self.next;
            let c = j % PANEL;
            let j0 = j - c;
            let width = (k - j0).min(PANEL);

            let next = if c == 0 {
                // Bring each column to unit scale: exact, and keeps every later sum finite. The
                // columns are independent here, and going right to left leaves no sum to keep
                // across a call, because the last one is `Σᵢ aᵢⱼ²` of the panel's first column.
                // For column 0, which has no projections, that is both of its sums, since
                // `dot_first` is `Σᵢ aᵢ₀·aᵢⱼ`. A later panel gets its sums from the sweeps below.
                let mut c = width - 1;
                let mut squares = scale_column(a, j0 + c, &mut self.originals[c]);
                while c > 0 {
                    c -= 1;
                    squares = scale_column(a, j0 + c, &mut self.originals[c]);
                }
                let mut next = ColumnSums {
                    squares,
                    dot_first: squares,
                };
                // First sweep against every earlier panel.
                for l in 0..j0 {
                    next = project_panel(a, l, j0, &mut dots[..width]);
                    let originals = &self.originals[..width];
                    add_coefficients(r.as_deref_mut(), l, j0, &dots[..width], originals);
                }
                next
            } else {
                // Right-looking first sweep: column j − 1, finished (or completed by the caller),
                // leaves the rest of the panel.
                let next = project_panel(a, j - 1, j, &mut dots[c..width]);
                let originals = &self.originals[c..width];
                add_coefficients(r.as_deref_mut(), j - 1, j, &dots[c..width], originals);
                next
            };
            self.next = j + 1;

            // The first sweep of column j is complete: every earlier column has been projected
            // out of it, the last pass gathered its sums. A column that is dependent after the
            // first sweep stays dependent, so the second sweep runs only on columns that
            // survive the first, and R keeps the first-sweep coefficients of a dependent column.
            let mut residual = self.independent_residual(a, j, c, next.squares);
            if j > 0 && residual.is_some() && options.reorthogonalize {
                // The second sweep runs over every earlier column again, so it also removes what
                // the in-panel projections put back along earlier panels.
                // Without R the hook is an empty closure, which needs no stack frame.
                let unscale = T::exp2i(self.originals[c].exp);
                let squares = match r.as_deref_mut() {
                    Some(r) => project_from(a, j, next.dot_first, &mut |l, dot| {
                        let entry = r.get(l, j) + dot * unscale;
                        r.set(l, j, entry);
                    }),
                    None => project_from(a, j, next.dot_first, &mut |_, _| {}),
                };
                residual = self.independent_residual(a, j, c, squares);
            }

            let Some(residual) = residual else {
                return Some(j);
            };
            if let Some(r) = r.as_deref_mut() {
                r.set(j, j, residual * T::exp2i(self.originals[c].exp));
            }
            divide_column(a, j, residual);
            self.rank += 1;
        }
        None
    }
}

/// `aᵢⱼ ← aᵢⱼ / divisor` for every row.
#[inline(never)]
fn divide_column<T: Scalar>(a: &mut MatMut<'_, T>, j: usize, divisor: T) {
    if valid_column(a, j) {
        for_each_row!(rows_mut(a.data, a.nrows, a.row_stride), |row| row[j] /=
            divisor);
    }
}

/// Adds the coefficients `dots` of the projections against column `l` to row `l` of `R`,
/// columns `first..`, each multiplied back by its column's scale.
fn add_coefficients<T: Scalar>(
    r: Option<&mut MatMut<'_, T>>,
    l: usize,
    first: usize,
    dots: &[T],
    originals: &[ScaledNorm<T>],
) {
    if let Some(r) = r {
        for (c, (&dot, original)) in dots.iter().zip(originals).enumerate() {
            let entry = r.get(l, first + c) + dot * T::exp2i(original.exp);
            r.set(l, first + c, entry);
        }
    }
}

/// Overwrites column `j` with a unit vector orthogonal to columns `0..j` (see the module docs).
pub(crate) fn complete_column<T: Scalar>(a: &mut MatMut<'_, T>, j: usize) {
    let n = a.nrows;
    let stride = a.row_stride;

    // The row of the finished columns with the smallest norm picks the basis vector.
    let mut best_row = 0;
    let mut best_norm = T::MAX;
    for i in 0..n {
        let mut sum = T::ZERO;
        for l in 0..j {
            let q = a.data[at(stride, i, l)];
            sum += q * q;
        }
        if sum < best_norm {
            best_norm = sum;
            best_row = i;
        }
    }

    for i in 0..n {
        a.data[at(stride, i, j)] = if i == best_row { T::ONE } else { T::ZERO };
    }
    project_out_twice(a, j);
    let norm = column_norm(a, j).to_scalar();
    for i in 0..n {
        a.data[at(stride, i, j)] /= norm;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qr_of_rank_one_two_by_two() {
        let mut a = [1.0f32, 1.0, 1.0, 1.0];
        let mut r = [f32::NAN; 4];
        let info = qr_in_place(
            MatMut::from_slice(&mut a, 2, 2).unwrap(),
            Some(MatMut::from_slice(&mut r, 2, 2).unwrap()),
            QrOptions::default(),
        )
        .unwrap();
        assert_eq!(info.rank, 1);
        assert_eq!(a[0], core::f32::consts::FRAC_1_SQRT_2);
        assert_eq!(a[2], core::f32::consts::FRAC_1_SQRT_2);
        assert!((a[0] * a[1] + a[2] * a[3]).abs() <= 1e-6);
        assert_eq!(r[2], 0.0);
        assert!(r[3] >= 0.0, "r22 = {}", r[3]);
        assert!(r[3] <= 1e-6, "r22 = {}", r[3]);
    }

    #[test]
    fn qr_rejects_nan_without_writing() {
        let mut a = [1.0f32, f32::NAN, 0.0, 1.0];
        let before = a;
        let err = qr_in_place(
            MatMut::from_slice(&mut a, 2, 2).unwrap(),
            None,
            QrOptions::default(),
        )
        .unwrap_err();
        assert_eq!(
            err,
            Error::NonFinite {
                operand: Operand::A,
                row: 0,
                col: 1
            }
        );
        assert_eq!(a.map(f32::to_bits), before.map(f32::to_bits));
    }

    #[test]
    fn qr_rejects_wide_matrix() {
        let mut a = [1.0f32; 6];
        let err = qr_in_place(
            MatMut::from_slice(&mut a, 2, 3).unwrap(),
            None,
            QrOptions::default(),
        );
        assert!(matches!(err, Err(Error::ShapeMismatch { .. })));
    }
}

//! Register-blocked matrix products on row-major views.
//!
//! Three operations, each without materialising a transpose:
//!
//! - [`matmul`]: `C = A·B`
//! - [`matmul_tn`]: `C = Aᵀ·B`
//! - [`rank_update`]: `C += α·A·Bᵀ` (a rank-`k` update of a large `C` from two thin factors, the
//!   shape of `P Rᵀ` in a Dion step)
//!
//! # Summation order and bit reproducibility
//!
//! Every entry of a product is `((a₀b₀ + a₁b₁) + a₂b₂) + …`: one accumulator, the inner index
//! in increasing order, a separate multiply and add (never `mul_add`, which rounds once instead
//! of twice and is a library call on targets without FMA). The tile sizes in
//! [`params`](super::params) only group independent entries, so the result is the same bits on
//! every target and at every vector width.
//!
//! # Error bound
//!
//! With this order each computed entry satisfies `|ĉᵢⱼ − cᵢⱼ| ≤ γₖ Σₚ |aᵢₚ||bₚⱼ|`, where
//! `γₖ = k·u / (1 − k·u)` and `u` is the unit roundoff, half of `Scalar::EPSILON` (Higham,
//! *Accuracy and Stability of Numerical Algorithms*, 2nd ed., §3.5). The tests use this bound.
//!
//! Outputs of `matmul` and `matmul_tn` are written, never read: a NaN left in `C` does not leak
//! into the result.

use super::params::{KC, MR, NR, NT_PACK_LEN};
use super::view::{MatMut, MatRef};
use crate::error::{Error, Operand};
use crate::scalar::Scalar;

/// `C = A·B` for `A` of shape `m × k`, `B` of shape `k × n` and `C` of shape `m × n`.
///
/// # Errors
/// [`Error::ShapeMismatch`] if the shapes do not fit together; `C` is then untouched.
///
/// # Example
/// ```
/// use dion_kernel::engine::{matmul, MatMut, MatRef};
/// let a = [1.0f32, 2.0, 3.0, 4.0]; // [[1, 2], [3, 4]]
/// let b = [5.0f32, 6.0]; // [[5], [6]]
/// let mut c = [0.0f32; 2];
/// matmul(
///     MatMut::from_slice(&mut c, 2, 1)?,
///     MatRef::from_slice(&a, 2, 2)?,
///     MatRef::from_slice(&b, 2, 1)?,
/// )?;
/// assert_eq!(c, [17.0, 39.0]);
/// # Ok::<(), dion_kernel::Error>(())
/// ```
pub fn matmul<T: Scalar>(
    c: MatMut<'_, T>,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
) -> Result<(), Error> {
    check_shape(Operand::B, (a.ncols(), b.ncols()), b.shape())?;
    check_shape(Operand::C, (a.nrows(), b.ncols()), c.shape())?;
    let mut c = c;
    gemm_nn::<T, false>(&mut c, a, a, b);
    Ok(())
}

/// `C = Aᵀ·B` for `A` of shape `k × m`, `B` of shape `k × n` and `C` of shape `m × n`, reading
/// `A` in place.
///
/// # Errors
/// [`Error::ShapeMismatch`] if the shapes do not fit together; `C` is then untouched.
pub fn matmul_tn<T: Scalar>(
    c: MatMut<'_, T>,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
) -> Result<(), Error> {
    check_shape(Operand::B, (a.nrows(), b.ncols()), b.shape())?;
    check_shape(Operand::C, (a.ncols(), b.ncols()), c.shape())?;
    let mut c = c;
    gemm_tn::<T, false>(&mut c, a, a, b);
    Ok(())
}

/// `C += α·A·Bᵀ` for `A` of shape `m × k`, `B` of shape `n × k` and `C` of shape `m × n`.
///
/// Each entry gets `cᵢⱼ + α·(Σₚ aᵢₚ bⱼₚ)`: the dot product is formed first, then scaled once.
///
/// # Errors
/// [`Error::ShapeMismatch`] if the shapes do not fit together; `C` is then untouched.
pub fn rank_update<T: Scalar>(
    c: MatMut<'_, T>,
    alpha: T,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
) -> Result<(), Error> {
    check_shape(Operand::B, (b.nrows(), a.ncols()), b.shape())?;
    check_shape(Operand::C, (a.nrows(), b.nrows()), c.shape())?;
    let mut c = c;
    gemm_nt_update(&mut c, alpha, a, b);
    Ok(())
}

pub(crate) fn check_shape(
    operand: Operand,
    expected: (usize, usize),
    found: (usize, usize),
) -> Result<(), Error> {
    if expected == found {
        Ok(())
    } else {
        Err(Error::ShapeMismatch {
            operand,
            expected,
            found,
        })
    }
}

/// `C = (A + A2)·B`, or `C = A·B` when `ADD` is false (then `a2` is not read).
///
/// The Dion step passes `A = M`, `A2 = G`, so `B = M + G` is formed entry by entry as it is read
/// and never stored. The sum is rounded once, exactly as a stored `M + G` would be.
///
/// Loop order: blocks of `MR` rows of `A`; inside, blocks of at most [`KC`] inner indices, whose
/// `MR × KC` part of `A` (or `A + A2`) is copied transposed into a stack buffer so the
/// micro-kernel reads it contiguously; inside, the columns of `B` tile by tile. Tiles of later
/// inner blocks start from the partial sums stored in `C`, which continues each entry's
/// sequential sum exactly: a stored and reloaded partial sum has the same bits.
pub(crate) fn gemm_nn<T: Scalar, const ADD: bool>(
    c: &mut MatMut<'_, T>,
    a: MatRef<'_, T>,
    a2: MatRef<'_, T>,
    b: MatRef<'_, T>,
) {
    let (m, k) = a.shape();
    let n = b.ncols();
    debug_assert!(!ADD || a2.shape() == a.shape());
    debug_assert_eq!(b.nrows(), k);
    debug_assert_eq!(c.shape(), (m, n));
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        // Every entry is an empty sum.
        c.fill(T::ZERO);
        return;
    }

    let mut a_pack = [T::ZERO; MR * KC];
    let mut i = 0;
    while i + MR <= m {
        nn_row_block::<T, MR, ADD>(c, a, a2, b, i, &mut a_pack);
        i += MR;
    }
    while i < m {
        nn_row_block::<T, 1, ADD>(c, a, a2, b, i, &mut a_pack);
        i += 1;
    }
}

/// Rows `i..i + R` of `C = (A + A2)·B`, one inner block at a time.
#[inline(always)]
fn nn_row_block<T: Scalar, const R: usize, const ADD: bool>(
    c: &mut MatMut<'_, T>,
    a: MatRef<'_, T>,
    a2: MatRef<'_, T>,
    b: MatRef<'_, T>,
    i: usize,
    a_pack: &mut [T],
) {
    let (k, n) = b.shape();
    let mut p0 = 0;
    while p0 < k {
        let depth = KC.min(k - p0);
        let packed = pack_row_block::<T, R, ADD>(a, a2, i, p0, depth, a_pack);
        let a_panel = Panel::<T, R>::new(packed, R, 0, depth, 0);
        let from_zero = p0 == 0;

        let mut j = 0;
        while j + NR <= n {
            nn_tile::<T, R, NR>(c, &a_panel, b, p0, depth, i, j, from_zero);
            j += NR;
        }
        while j + NR / 2 <= n {
            nn_tile::<T, R, { NR / 2 }>(c, &a_panel, b, p0, depth, i, j, from_zero);
            j += NR / 2;
        }
        while j + NR / 4 <= n {
            nn_tile::<T, R, { NR / 4 }>(c, &a_panel, b, p0, depth, i, j, from_zero);
            j += NR / 4;
        }
        while j < n {
            nn_tile::<T, R, 1>(c, &a_panel, b, p0, depth, i, j, from_zero);
            j += 1;
        }
        p0 += depth;
    }
}

/// One `R × W` tile of `C = A·B` over the inner indices `p0..p0 + depth`, starting from zero or
/// from the partial sums already in `C`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn nn_tile<T: Scalar, const R: usize, const W: usize>(
    c: &mut MatMut<'_, T>,
    a_panel: &Panel<'_, T, R>,
    b: MatRef<'_, T>,
    p0: usize,
    depth: usize,
    i: usize,
    j: usize,
    from_zero: bool,
) {
    let b_panel = Panel::<T, W>::new(b.data, b.row_stride, p0, depth, j);
    let mut acc = if from_zero { [[T::ZERO; W]; R] } else { load(c, i, j) };
    panel_product::<T, R, W, false>(&mut acc, a_panel, a_panel, &b_panel);
    store(c, i, j, &acc);
}

/// Copies `A[i..i+R, p0..p0+depth]` (plus `A2` when `ADD`) into `pack`, transposed:
/// `pack[p·R + ii] = A[i + ii, p0 + p]`. Returns the filled `depth·R` entries.
#[inline(always)]
fn pack_row_block<'p, T: Scalar, const R: usize, const ADD: bool>(
    a: MatRef<'_, T>,
    a2: MatRef<'_, T>,
    i: usize,
    p0: usize,
    depth: usize,
    pack: &'p mut [T],
) -> &'p [T] {
    let packed = &mut pack[..depth * R];
    for ii in 0..R {
        let row = &a.row(i + ii)[p0..p0 + depth];
        let column = packed[ii..].iter_mut().step_by(R);
        if ADD {
            let row2 = &a2.row(i + ii)[p0..p0 + depth];
            for ((value, &x), &y) in column.zip(row).zip(row2) {
                *value = x + y;
            }
        } else {
            for (value, &x) in column.zip(row) {
                *value = x;
            }
        }
    }
    packed
}

/// `C = (A + A2)ᵀ·B`, or `C = Aᵀ·B` when `ADD` is false (then `a2` is not read).
///
/// Row `p` of `A` holds the `p`-th term's left factors for a whole row block of `C`
/// (`A[p, i..i+R]`), so the micro-kernel reads `A` in place, one contiguous run per inner step.
pub(crate) fn gemm_tn<T: Scalar, const ADD: bool>(
    c: &mut MatMut<'_, T>,
    a: MatRef<'_, T>,
    a2: MatRef<'_, T>,
    b: MatRef<'_, T>,
) {
    let (k, m) = a.shape();
    let n = b.ncols();
    debug_assert!(!ADD || a2.shape() == a.shape());
    debug_assert_eq!(b.nrows(), k);
    debug_assert_eq!(c.shape(), (m, n));
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        // Every entry is an empty sum.
        c.fill(T::ZERO);
        return;
    }

    let mut i = 0;
    while i + MR <= m {
        tn_row_block::<T, MR, ADD>(c, a, a2, b, i);
        i += MR;
    }
    while i < m {
        tn_row_block::<T, 1, ADD>(c, a, a2, b, i);
        i += 1;
    }
}

/// Rows `i..i + R` of `C = (A + A2)ᵀ·B`, that is columns `i..i + R` of `A`.
#[inline(always)]
fn tn_row_block<T: Scalar, const R: usize, const ADD: bool>(
    c: &mut MatMut<'_, T>,
    a: MatRef<'_, T>,
    a2: MatRef<'_, T>,
    b: MatRef<'_, T>,
    i: usize,
) {
    let (k, n) = b.shape();
    let a_panel = Panel::<T, R>::new(a.data, a.row_stride, 0, k, i);
    let a2_panel =
        if ADD { Panel::<T, R>::new(a2.data, a2.row_stride, 0, k, i) } else { a_panel };

    let mut j = 0;
    while j + NR <= n {
        tn_tile::<T, R, NR, ADD>(c, &a_panel, &a2_panel, b, i, j);
        j += NR;
    }
    while j + NR / 2 <= n {
        tn_tile::<T, R, { NR / 2 }, ADD>(c, &a_panel, &a2_panel, b, i, j);
        j += NR / 2;
    }
    while j + NR / 4 <= n {
        tn_tile::<T, R, { NR / 4 }, ADD>(c, &a_panel, &a2_panel, b, i, j);
        j += NR / 4;
    }
    while j < n {
        tn_tile::<T, R, 1, ADD>(c, &a_panel, &a2_panel, b, i, j);
        j += 1;
    }
}

/// One `R × W` tile of `C = (A + A2)ᵀ·B` over all inner indices.
#[inline(always)]
fn tn_tile<T: Scalar, const R: usize, const W: usize, const ADD: bool>(
    c: &mut MatMut<'_, T>,
    a_panel: &Panel<'_, T, R>,
    a2_panel: &Panel<'_, T, R>,
    b: MatRef<'_, T>,
    i: usize,
    j: usize,
) {
    let b_panel = Panel::<T, W>::new(b.data, b.row_stride, 0, b.nrows(), j);
    let mut acc = [[T::ZERO; W]; R];
    panel_product::<T, R, W, ADD>(&mut acc, a_panel, a2_panel, &b_panel);
    store(c, i, j, &acc);
}

/// `depth` consecutive rows of a `W`-wide column strip of a row-major matrix.
///
/// The first `depth − 1` rows are one slice, `(depth − 1)·stride` long, that starts at the
/// strip's first entry, so `chunks_exact(stride)` yields exactly those rows, each a full stride
/// long. The compiler then knows that every row holds `W ≤ stride` entries and checks nothing in
/// the micro-kernel loop. The last row is kept apart because the matrix may end right after it.
#[derive(Clone, Copy)]
struct Panel<'a, T, const W: usize> {
    body: &'a [T],
    stride: usize,
    last: &'a [T; W],
}

impl<'a, T, const W: usize> Panel<'a, T, W> {
    /// The strip of columns `col..col + W`, rows `first..first + depth` (`depth ≥ 1`), of the
    /// matrix stored in `data` with row stride `stride ≥ col + W`.
    #[inline(always)]
    fn new(data: &'a [T], stride: usize, first: usize, depth: usize, col: usize) -> Self {
        assert!(depth >= 1 && col + W <= stride);
        let start = first * stride + col;
        let body_len = (depth - 1) * stride;
        let body = &data[start..start + body_len];
        let last = head::<T, W>(&data[start + body_len..]);
        Self { body, stride, last }
    }
}

/// The micro-kernel: `acc[ii][jj] += Σₚ a[p][ii]·b[p][jj]` over the rows of the panels, in row
/// order, with `a[p][ii]` replaced by `a[p][ii] + a2[p][ii]` when `ADD`.
#[inline(always)]
fn panel_product<T: Scalar, const R: usize, const W: usize, const ADD: bool>(
    acc: &mut [[T; W]; R],
    a: &Panel<'_, T, R>,
    a2: &Panel<'_, T, R>,
    b: &Panel<'_, T, W>,
) {
    let a_rows = a.body.chunks_exact(a.stride);
    let b_rows = b.body.chunks_exact(b.stride);
    if ADD {
        let a2_rows = a2.body.chunks_exact(a2.stride);
        for ((a_row, a2_row), b_row) in a_rows.zip(a2_rows).zip(b_rows) {
            let a_values = add(head::<T, R>(a_row), head::<T, R>(a2_row));
            accumulate(acc, &a_values, head::<T, W>(b_row));
        }
        accumulate(acc, &add(a.last, a2.last), b.last);
    } else {
        for (a_row, b_row) in a_rows.zip(b_rows) {
            accumulate(acc, head::<T, R>(a_row), head::<T, W>(b_row));
        }
        accumulate(acc, a.last, b.last);
    }
}

/// `C += α·A·Bᵀ`.
///
/// Rows of `B` are columns of `Bᵀ`, so a tile of `W` output columns needs `B[j..j+W, p]`, which
/// is strided. Each block of `W` rows of `B` is therefore copied once, transposed, into a stack
/// buffer of [`NT_PACK_LEN`] elements and then read contiguously by every row tile. The widest
/// tile whose `k × W` block fits is used; when even `k × NR / 4` does not fit, the 1-wide tile
/// reads the rows of `B` in place, which is correct but not vectorised across columns.
pub(crate) fn gemm_nt_update<T: Scalar>(
    c: &mut MatMut<'_, T>,
    alpha: T,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
) {
    let (m, k) = a.shape();
    let n = b.nrows();
    debug_assert_eq!(b.ncols(), k);
    debug_assert_eq!(c.shape(), (m, n));
    if m == 0 || n == 0 {
        return;
    }

    let mut pack = [T::ZERO; NT_PACK_LEN];
    let mut j = 0;
    if k * NR <= NT_PACK_LEN {
        while j + NR <= n {
            let bt = pack_transposed::<T, NR>(b, j, &mut pack);
            nt_column_block::<T, NR>(c, alpha, a, bt, j);
            j += NR;
        }
    }
    if k * (NR / 2) <= NT_PACK_LEN {
        while j + NR / 2 <= n {
            let bt = pack_transposed::<T, { NR / 2 }>(b, j, &mut pack);
            nt_column_block::<T, { NR / 2 }>(c, alpha, a, bt, j);
            j += NR / 2;
        }
    }
    if k * (NR / 4) <= NT_PACK_LEN {
        while j + NR / 4 <= n {
            let bt = pack_transposed::<T, { NR / 4 }>(b, j, &mut pack);
            nt_column_block::<T, { NR / 4 }>(c, alpha, a, bt, j);
            j += NR / 4;
        }
    }
    while j < n {
        // A single row of `B` is already the contiguous `k × 1` block.
        nt_column_block::<T, 1>(c, alpha, a, b.row(j), j);
        j += 1;
    }
}

/// Copies rows `j..j + W` of `b` into `pack`, transposed: `bt[p·W + jj] = B[j + jj, p]`.
/// Returns the filled `k·W` entries.
#[inline(always)]
fn pack_transposed<'p, T: Scalar, const W: usize>(
    b: MatRef<'_, T>,
    j: usize,
    pack: &'p mut [T],
) -> &'p [T] {
    let k = b.ncols();
    let b_rows: [&[T]; W] = core::array::from_fn(|jj| &b.row(j + jj)[..k]);
    let bt = &mut pack[..k * W];
    for (p, bt_row) in (0..k).zip(bt.chunks_exact_mut(W)) {
        for (value, b_row) in bt_row.iter_mut().zip(&b_rows) {
            *value = b_row[p];
        }
    }
    bt
}

/// Columns `j..j + W` of `C += α·A·Bᵀ`, given the transposed block `bt` (`k × W`, row-major).
#[inline(always)]
fn nt_column_block<T: Scalar, const W: usize>(
    c: &mut MatMut<'_, T>,
    alpha: T,
    a: MatRef<'_, T>,
    bt: &[T],
    j: usize,
) {
    let m = a.nrows();
    let mut i = 0;
    while i + MR <= m {
        let dots = nt_tile::<T, MR, W>(a, i, bt);
        add_scaled(c, i, j, alpha, &dots);
        i += MR;
    }
    while i < m {
        let dots = nt_tile::<T, 1, W>(a, i, bt);
        add_scaled(c, i, j, alpha, &dots);
        i += 1;
    }
}

/// The micro-kernel of `C += α·A·Bᵀ`: the `R × W` dot products of rows `i..i + R` of `A` with
/// the `W` columns of `bt`.
#[inline(always)]
fn nt_tile<T: Scalar, const R: usize, const W: usize>(
    a: MatRef<'_, T>,
    i: usize,
    bt: &[T],
) -> [[T; W]; R] {
    let k = a.ncols();
    let a_rows: [&[T]; R] = core::array::from_fn(|ii| &a.row(i + ii)[..k]);

    let mut acc = [[T::ZERO; W]; R];
    for (p, bt_row) in (0..k).zip(bt.chunks_exact(W)) {
        let a_values: [T; R] = core::array::from_fn(|ii| a_rows[ii][p]);
        accumulate(&mut acc, &a_values, head::<T, W>(bt_row));
    }
    acc
}

/// One inner step of every micro-kernel: `acc[ii][jj] += a[ii] · b[jj]`, a separate multiply and
/// add per entry, so each entry's sum keeps its sequential order.
///
/// The rows are written out one by one (up to [`MAX_TILE_ROWS`]) instead of looping over them:
/// LLVM then only has to unroll the `W`-long row loop to keep the whole tile in registers, which
/// it does reliably, while a loop nest of `R × W` steps may exceed its unrolling threshold and
/// leave the tile in memory.
#[inline(always)]
fn accumulate<T: Scalar, const R: usize, const W: usize>(
    acc: &mut [[T; W]; R],
    a_values: &[T; R],
    b_values: &[T; W],
) {
    const { assert!(R <= MAX_TILE_ROWS) };
    accumulate_row(acc.get_mut(0), a_values.first(), b_values);
    accumulate_row(acc.get_mut(1), a_values.get(1), b_values);
    accumulate_row(acc.get_mut(2), a_values.get(2), b_values);
    accumulate_row(acc.get_mut(3), a_values.get(3), b_values);
    accumulate_row(acc.get_mut(4), a_values.get(4), b_values);
    accumulate_row(acc.get_mut(5), a_values.get(5), b_values);
    accumulate_row(acc.get_mut(6), a_values.get(6), b_values);
    accumulate_row(acc.get_mut(7), a_values.get(7), b_values);
}

/// Rows a micro-kernel tile may have; [`accumulate`] is written out for this many.
const MAX_TILE_ROWS: usize = 8;

/// `acc[jj] += a · b[jj]` for one tile row; does nothing for a row index past the tile.
#[inline(always)]
fn accumulate_row<T: Scalar, const W: usize>(
    acc: Option<&mut [T; W]>,
    a_value: Option<&T>,
    b_values: &[T; W],
) {
    if let (Some(acc), Some(&a_value)) = (acc, a_value) {
        for (acc_value, &b_value) in acc.iter_mut().zip(b_values) {
            *acc_value += a_value * b_value;
        }
    }
}

/// Element-wise `x + y`.
#[inline(always)]
fn add<T: Scalar, const N: usize>(x: &[T; N], y: &[T; N]) -> [T; N] {
    core::array::from_fn(|index| x[index] + y[index])
}

/// The first `W` entries of `row`.
///
/// # Panics
/// If `row` is shorter than `W`; the callers cut rows so that this cannot happen.
#[inline(always)]
fn head<T, const W: usize>(row: &[T]) -> &[T; W] {
    match row.first_chunk::<W>() {
        Some(values) => values,
        None => panic!("row shorter than the tile width"),
    }
}

/// Writes the tile `acc` to `C[i.., j..]`.
#[inline(always)]
fn store<T: Scalar, const R: usize, const W: usize>(
    c: &mut MatMut<'_, T>,
    i: usize,
    j: usize,
    acc: &[[T; W]; R],
) {
    for (ii, acc_row) in acc.iter().enumerate() {
        c.row_mut(i + ii)[j..j + W].copy_from_slice(acc_row);
    }
}

/// Reads the tile `C[i..i+R, j..j+W]`.
#[inline(always)]
fn load<T: Scalar, const R: usize, const W: usize>(
    c: &MatMut<'_, T>,
    i: usize,
    j: usize,
) -> [[T; W]; R] {
    core::array::from_fn(|ii| *head::<T, W>(&c.row(i + ii)[j..]))
}

/// `C[i.., j..] += α·dots`, the scaling after the dot product, as documented for `rank_update`.
#[inline(always)]
fn add_scaled<T: Scalar, const R: usize, const W: usize>(
    c: &mut MatMut<'_, T>,
    i: usize,
    j: usize,
    alpha: T,
    dots: &[[T; W]; R],
) {
    for (ii, dot_row) in dots.iter().enumerate() {
        for (c_value, &dot) in c.row_mut(i + ii)[j..j + W].iter_mut().zip(dot_row) {
            *c_value += alpha * dot;
        }
    }
}

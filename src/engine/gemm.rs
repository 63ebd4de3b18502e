//! Register-blocked matrix products on row-major views.
//!
//! Three operations, each without materialising a transpose:
//!
//! - [`matmul`]: `C = A·B`
//! - [`matmul_tn`]: `C = Aᵀ·B`
//! - [`rank_update`]: `C += α·A·Bᵀ` (a rank-`k` update of a large `C` from two thin factors, the
//!   shape of `P Rᵀ` in a Dion step)
//!
//! The final pass of an optimizer step runs the `A·Bᵀ` tiles of `rank_update` with its own
//! update of each entry ([`nt_product`]).
//!
//! # Summation order and bit reproducibility
//!
//! Every entry of a product is `((a₀b₀ + a₁b₁) + a₂b₂) + …`: one accumulator, the inner index
//! in increasing order, a separate multiply and add (never `mul_add`, which rounds once instead
//! of twice and is a library call on targets without FMA). The tile sizes in
//! [`params`](super::params), and the choice between the packed and the direct kernels below,
//! only group independent entries, so the result is the same bits on every target and at every
//! vector width.
//!
//! # Error bound
//!
//! With this order each computed entry satisfies `|ĉᵢⱼ − cᵢⱼ| ≤ γₖ Σₚ |aᵢₚ||bₚⱼ|`, where
//! `γₖ = k·u / (1 − k·u)` and `u` is the unit roundoff, half of `Scalar::EPSILON` (Higham,
//! *Accuracy and Stability of Numerical Algorithms*, 2nd ed., §3.5). The tests use this bound.
//!
//! Outputs of `matmul` and `matmul_tn` are written, never read: a NaN left in `C` does not leak
//! into the result. (When the inner dimension exceeds one packed block they park partial sums
//! in `C`, but only after writing it.)
//!
//! # Packed and direct kernels, stack use
//!
//! With [`PACK`] (targets with an operating system), `matmul` and `matmul_tn` copy the `MR`-row
//! block of `A` (or of `Aᵀ`) they work on into a stack buffer of [`A_PACK_LEN`] elements, `MR`
//! values per inner index. The micro-kernel then reads one contiguous stream whatever the
//! stride of `A`. The `A·Bᵀ` products copy `W` rows of `B`, transposed, into a stack buffer of
//! [`NT_PACK_LEN`] elements, because a row of `Bᵀ` is a column of `B`. That is 4 KiB and 8 KiB
//! for f32.
//!
//! Without [`PACK`] (bare-metal targets) the direct kernels (module `direct`) read every
//! operand in place, `R` rows of `A` through `R` slices, and need no buffer. Their stack frames
//! hold only saved registers and spilled pointers, a few hundred bytes on a Cortex-M4F.
//!
//! # Bounds checks
//!
//! The micro-kernel loops walk the operands either with `chunks_exact(row_stride)` over slices
//! cut to exactly `depth − 1` rows, with the last row handled apart (see `Panel`), or with an
//! index `p < depth` into slices cut to exactly `depth` elements. The tile is indexed only with
//! compile-time constants. The compiler can then prove every access in range, so the release
//! build has no bounds check in those loops. `docs/BENCHMARKS.md` (x86-64) and
//! `docs/EMBEDDED.md` (thumbv7em) show how that was checked in the generated assembly.

mod direct;

pub(crate) use direct::{gemm_direct, nt_direct};

use super::params::{A_PACK_LEN, DIRECT_MR, DIRECT_NR, MR, NR, NT_MR, NT_NR, NT_PACK_LEN, PACK};
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

/// `C += α·A·Bᵀ` on views whose shapes the caller has checked.
pub(crate) fn gemm_nt_update<T: Scalar>(
    c: &mut MatMut<'_, T>,
    alpha: T,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
) {
    // `move`: a closure holding `alpha` by reference made LLVM reload it in the kernel and
    // vectorise the tile worse, 15 % slower on x86-64.
    let mut operands = HeldViews { c, extra: a, a, b };
    nt_product::<T, false, _, _>(&mut operands, move |c_value, _, dot| c_value + alpha * dot);
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
#[inline(always)]
pub(crate) fn gemm_nn<T: Scalar, const ADD: bool>(
    c: &mut MatMut<'_, T>,
    a: MatRef<'_, T>,
    a2: MatRef<'_, T>,
    b: MatRef<'_, T>,
) {
    debug_assert!(!ADD || a2.shape() == a.shape());
    debug_assert_eq!(a.shape(), (c.nrows(), b.nrows()));
    if PACK {
        gemm_packed::<T, ADD, false>(c, a, a2, b);
    } else {
        gemm_direct::<T, ADD, false>(c, a, a2, b);
    }
}

/// `C = (A + A2)ᵀ·B`, or `C = Aᵀ·B` when `ADD` is false (then `a2` is not read).
#[inline(always)]
pub(crate) fn gemm_tn<T: Scalar, const ADD: bool>(
    c: &mut MatMut<'_, T>,
    a: MatRef<'_, T>,
    a2: MatRef<'_, T>,
    b: MatRef<'_, T>,
) {
    debug_assert!(!ADD || a2.shape() == a.shape());
    debug_assert_eq!(a.shape(), (b.nrows(), c.nrows()));
    if PACK {
        gemm_packed::<T, ADD, true>(c, a, a2, b);
    } else {
        gemm_direct::<T, ADD, true>(c, a, a2, b);
    }
}

/// `C = op(A + A2)·B` with `op` the transpose when `TRANSPOSED`, the identity otherwise.
///
/// Loop order: blocks of `MR` rows of `C`, then blocks of at most `A_PACK_LEN / MR` inner
/// indices, then the columns of `B` tile by tile. Each block of `op(A)` (or `op(A + A2)`) is first
/// copied into a stack buffer of [`A_PACK_LEN`] elements, `MR` values per inner index, so the
/// micro-kernel reads it contiguously whatever the layout and stride of `A`.
/// Tiles of later inner blocks start from the partial sums stored in `C`. That continues each
/// entry's sequential sum exactly, because a stored and reloaded partial sum has the same bits.
fn gemm_packed<T: Scalar, const ADD: bool, const TRANSPOSED: bool>(
    c: &mut MatMut<'_, T>,
    a: MatRef<'_, T>,
    a2: MatRef<'_, T>,
    b: MatRef<'_, T>,
) {
    let (m, n) = c.shape();
    debug_assert_eq!(b.ncols(), n);
    if m == 0 || n == 0 {
        return;
    }
    if b.nrows() == 0 {
        // Every entry is an empty sum.
        c.fill(T::ZERO);
        return;
    }

    let mut a_pack = [T::ZERO; A_PACK_LEN];
    let mut i = 0;
    while i + MR <= m {
        packed_row_block::<T, MR, ADD, TRANSPOSED>(c, a, a2, b, i, &mut a_pack);
        i += MR;
    }
    while i < m {
        packed_row_block::<T, 1, ADD, TRANSPOSED>(c, a, a2, b, i, &mut a_pack);
        i += 1;
    }
}

/// Rows `i..i + R` of `C = op(A + A2)·B`, one inner block at a time.
#[inline(always)]
fn packed_row_block<T: Scalar, const R: usize, const ADD: bool, const TRANSPOSED: bool>(
    c: &mut MatMut<'_, T>,
    a: MatRef<'_, T>,
    a2: MatRef<'_, T>,
    b: MatRef<'_, T>,
    i: usize,
    a_pack: &mut [T; A_PACK_LEN],
) {
    let k = b.nrows();
    let max_depth = A_PACK_LEN / MR;
    let mut p0 = 0;
    while p0 < k {
        let depth = max_depth.min(k - p0);
        let pack = &mut a_pack[..R * depth];
        if TRANSPOSED {
            pack_columns::<T, R, ADD>(a, a2, i, p0, depth, pack);
        } else {
            pack_rows::<T, R, ADD>(a, a2, i, p0, depth, pack);
        }
        let a_panel = Panel::<T, R>::new(pack, R, 0, depth, 0);
        column_sweep::<T, R>(c, &a_panel, b, p0, depth, i, p0 == 0);
        p0 += depth;
    }
}

/// Rows `i..i + R` of `C` for the inner block `p0..p0 + depth`, swept left to right with the
/// widest tile that fits.
#[inline(always)]
fn column_sweep<T: Scalar, const R: usize>(
    c: &mut MatMut<'_, T>,
    a_panel: &Panel<'_, T, R>,
    b: MatRef<'_, T>,
    p0: usize,
    depth: usize,
    i: usize,
    from_zero: bool,
) {
    let n = b.ncols();
    let mut j = 0;
    while j + NR <= n {
        packed_tile::<T, R, NR>(c, a_panel, b, p0, depth, i, j, from_zero);
        j += NR;
    }
    while j + NR / 2 <= n {
        packed_tile::<T, R, { NR / 2 }>(c, a_panel, b, p0, depth, i, j, from_zero);
        j += NR / 2;
    }
    while j + NR / 4 <= n {
        packed_tile::<T, R, { NR / 4 }>(c, a_panel, b, p0, depth, i, j, from_zero);
        j += NR / 4;
    }
    while j < n {
        packed_tile::<T, R, 1>(c, a_panel, b, p0, depth, i, j, from_zero);
        j += 1;
    }
}

/// Computes one `R × W` tile of `C` over the inner indices `p0..p0 + depth`, starting from zero
/// or from the partial sums already in `C`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn packed_tile<T: Scalar, const R: usize, const W: usize>(
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
    let mut acc = if from_zero {
        [[T::ZERO; W]; R]
    } else {
        load(c, i, j)
    };
    panel_product(&mut acc, a_panel, &b_panel);
    store(c, i, j, &acc);
}

/// Copies `A[i..i+R, p0..p0+depth]` (plus `A2` when `ADD`) into `pack`, transposed:
/// `pack[p·R + ii] = A[i + ii, p0 + p]`. Returns the filled `depth·R` entries.
#[inline(always)]
fn pack_rows<T: Scalar, const R: usize, const ADD: bool>(
    a: MatRef<'_, T>,
    a2: MatRef<'_, T>,
    i: usize,
    p0: usize,
    depth: usize,
    pack: &mut [T],
) {
    let rows: [&[T]; R] = core::array::from_fn(|ii| &a.row(i + ii)[p0..p0 + depth]);
    let rows2: [&[T]; R] = if ADD {
        core::array::from_fn(|ii| &a2.row(i + ii)[p0..p0 + depth])
    } else {
        rows
    };
    let packed = &mut pack[..depth * R];
    for (p, values) in (0..depth).zip(packed.chunks_exact_mut(R)) {
        for ii in 0..R {
            values[ii] = if ADD {
                rows[ii][p] + rows2[ii][p]
            } else {
                rows[ii][p]
            };
        }
    }
}

/// Copies `A[p0..p0+depth, i..i+R]` (plus `A2` when `ADD`) into `pack`, row by row:
/// `pack[p·R + ii] = A[p0 + p, i + ii]`, the same layout [`pack_rows`] produces for `Aᵀ`.
#[inline(always)]
fn pack_columns<T: Scalar, const R: usize, const ADD: bool>(
    a: MatRef<'_, T>,
    a2: MatRef<'_, T>,
    i: usize,
    p0: usize,
    depth: usize,
    pack: &mut [T],
) {
    let source = Panel::<T, R>::new(a.data, a.row_stride, p0, depth, i);
    let packed = &mut pack[..depth * R];
    let (packed_body, packed_last) = packed.split_at_mut((depth - 1) * R);
    if ADD {
        let source2 = Panel::<T, R>::new(a2.data, a2.row_stride, p0, depth, i);
        let rows = source.rows().zip(source2.rows());
        for (values, (row, row2)) in packed_body.chunks_exact_mut(R).zip(rows) {
            values.copy_from_slice(&add(head::<T, R>(row), head::<T, R>(row2)));
        }
        packed_last.copy_from_slice(&add(source.last, source2.last));
    } else {
        for (values, row) in packed_body.chunks_exact_mut(R).zip(source.rows()) {
            values.copy_from_slice(head::<T, R>(row));
        }
        packed_last.copy_from_slice(source.last);
    }
}

/// `depth` consecutive rows of a `W`-wide column strip of a row-major matrix.
///
/// The first `depth − 1` rows are one slice, `(depth − 1)·stride` long, that starts at the
/// strip's first entry, so `chunks_exact(stride)` yields exactly those rows, each a full stride
/// long. The compiler can then prove that every row has at least `W ≤ stride` entries and checks
/// nothing in the micro-kernel loop. The last row is kept apart because the matrix may end right after it.
#[derive(Clone, Copy)]
struct Panel<'a, T, const W: usize> {
    body: &'a [T],
    stride: usize,
    last: &'a [T; W],
}

impl<'a, T, const W: usize> Panel<'a, T, W> {
    /// Borrows the strip of columns `col..col + W`, rows `first..first + depth` (`depth ≥ 1`),
    /// of the matrix stored in `data` with row stride `stride ≥ col + W`.
    #[inline(always)]
    fn new(data: &'a [T], stride: usize, first: usize, depth: usize, col: usize) -> Self {
        assert!(depth >= 1);
        assert!(col + W <= stride);
        let start = first * stride + col;
        let body_len = (depth - 1) * stride;
        let body = &data[start..start + body_len];
        let last = head::<T, W>(&data[start + body_len..]);
        Self { body, stride, last }
    }

    /// Iterates over the first `depth − 1` rows, each `stride` long (its first `W` entries are
    /// the strip's).
    #[inline(always)]
    fn rows(&self) -> core::slice::ChunksExact<'a, T> {
        self.body.chunks_exact(self.stride)
    }
}

/// Runs the micro-kernel: `acc[ii][jj] += Σₚ a[p][ii]·b[p][jj]` over the rows of the two
/// panels, in row order.
#[inline(always)]
fn panel_product<T: Scalar, const R: usize, const W: usize>(
    acc: &mut [[T; W]; R],
    a: &Panel<'_, T, R>,
    b: &Panel<'_, T, W>,
) {
    for (a_row, b_row) in a.rows().zip(b.rows()) {
        accumulate(acc, head::<T, R>(a_row), head::<T, W>(b_row));
    }
    accumulate(acc, a.last, b.last);
}

/// `C ← f(C, E, A·Bᵀ)` entry by entry, for `A` of shape `m × k`, `B` of shape `n × k` and `C`
/// (and `E`) of shape `m × n`.
///
/// Entry `(i, j)` of `C` becomes `f(cᵢⱼ, eᵢⱼ, dotᵢⱼ)` with `dotᵢⱼ = Σₚ A[i, p]·B[j, p]`, one
/// sequential sum from zero, and `eᵢⱼ` the matching entry of `E` when `EXTRA` (otherwise zero,
/// and `extra` is not read). Each entry of `C` and `E` is read once and `C` is written once.
/// `rank_update` passes `f(c, _, dot) = c + α·dot`, the final pass of a step its updates of `M`
/// and `X`.
///
/// With [`PACK`] and `1 ≤ k ≤ A_PACK_LEN / MR` the packed kernel runs; otherwise the direct one.
/// The packed kernel takes the views from `operands` ([`NtOperands`]) once, and the direct
/// kernel takes them again for every block of rows.
pub(crate) fn nt_product<T: Scalar, const EXTRA: bool, O: NtOperands<T>, F: Fn(T, T, T) -> T>(
    operands: &mut O,
    f: F,
) {
    let NtViews { mut c, extra, a, b } = operands.views();
    let (m, k) = a.shape();
    let n = b.nrows();
    debug_assert_eq!(b.ncols(), k);
    debug_assert_eq!(c.shape(), (m, n));
    debug_assert!(!EXTRA || extra.shape() == (m, n));
    if m == 0 || n == 0 {
        return;
    }
    if PACK && (1..=A_PACK_LEN / MR).contains(&k) {
        nt_packed::<T, EXTRA, F>(&mut c, extra, a, b, &f);
    } else {
        nt_direct::<T, EXTRA, O, F>(operands, m, &f);
    }
}

/// The views of one `C ← f(C, E, A·Bᵀ)`.
pub(crate) struct NtViews<'v, T> {
    pub c: MatMut<'v, T>,
    pub extra: MatRef<'v, T>,
    pub a: MatRef<'v, T>,
    pub b: MatRef<'v, T>,
}

/// Source of the views of [`nt_product`].
///
/// The direct kernel builds the views again for every block of rows, so they live only in the
/// kernel's frame. A step's final pass hands over its buffers
/// this way and keeps no views of its own. On the Cortex-M4F at opt-level 3 the momentum pass's
/// frame between the step and the kernel went from 136 to 28 bytes, and the kernel's grew by 40
/// (`examples/mcu/stack_chain.py`).
pub(crate) trait NtOperands<T> {
    /// Builds the views `C`, `E`, `A` and `B`, borrowed from the source.
    fn views(&mut self) -> NtViews<'_, T>;
}

/// Views held by the caller, as an [`NtOperands`] source.
pub(crate) struct HeldViews<'s, 'c, T> {
    pub c: &'s mut MatMut<'c, T>,
    pub extra: MatRef<'s, T>,
    pub a: MatRef<'s, T>,
    pub b: MatRef<'s, T>,
}

impl<T: Copy> NtOperands<T> for HeldViews<'_, '_, T> {
    #[inline(always)]
    fn views(&mut self) -> NtViews<'_, T> {
        NtViews {
            c: self.c.reborrow(),
            extra: self.extra,
            a: self.a,
            b: self.b,
        }
    }
}

/// Computes `C ← f(C, E, A·Bᵀ)` from packed copies of the operands.
///
/// Rows of `B` are columns of `Bᵀ`, so a tile of `W` output columns needs `B[j..j+W, p]`, which
/// is strided. Blocks of `W` rows of `B` are therefore copied once, transposed, into a stack
/// buffer of [`NT_PACK_LEN`] elements, as many blocks as fit. Then each `MR`-row block of `A` is
/// copied into a buffer of [`A_PACK_LEN`] elements, and the micro-kernel forms the full dot
/// products of every tile before `f` is applied. The widest tile whose `k × W` block fits is
/// used.
fn nt_packed<T: Scalar, const EXTRA: bool, F: Fn(T, T, T) -> T>(
    c: &mut MatMut<'_, T>,
    extra: MatRef<'_, T>,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    f: &F,
) {
    let mut a_pack = [T::ZERO; A_PACK_LEN];
    let mut b_pack = [T::ZERO; NT_PACK_LEN];
    let mut target = NtTarget { c, extra, f };
    let mut j = 0;
    j = nt_packed_columns::<T, EXTRA, F, NR>(&mut target, a, b, j, &mut a_pack, &mut b_pack);
    j = nt_packed_columns::<T, EXTRA, F, { NR / 2 }>(
        &mut target,
        a,
        b,
        j,
        &mut a_pack,
        &mut b_pack,
    );
    j = nt_packed_columns::<T, EXTRA, F, { NR / 4 }>(
        &mut target,
        a,
        b,
        j,
        &mut a_pack,
        &mut b_pack,
    );
    j = nt_packed_columns::<T, EXTRA, F, 1>(&mut target, a, b, j, &mut a_pack, &mut b_pack);
    debug_assert_eq!(j, b.nrows());
}

/// Destination of the packed `A·Bᵀ`: the `C`, `E` and `f` of `C ← f(C, E, dots)`.
struct NtTarget<'s, 'c, T, F> {
    c: &'s mut MatMut<'c, T>,
    extra: MatRef<'s, T>,
    f: &'s F,
}

impl<T: Scalar, F: Fn(T, T, T) -> T> NtTarget<'_, '_, T, F> {
    /// Applies the `R × W` tile of dot products at `(i, j)`.
    #[inline(always)]
    fn update<const EXTRA: bool, const R: usize, const W: usize>(
        &mut self,
        i: usize,
        j: usize,
        dots: &[[T; W]; R],
    ) {
        for (ii, dot_row) in dots.iter().enumerate() {
            let c_row = &mut self.c.row_mut(i + ii)[j..j + W];
            if EXTRA {
                let e_row = &self.extra.row(i + ii)[j..j + W];
                for ((c_value, &e_value), &dot) in c_row.iter_mut().zip(e_row).zip(dot_row) {
                    *c_value = (self.f)(*c_value, e_value, dot);
                }
            } else {
                for (c_value, &dot) in c_row.iter_mut().zip(dot_row) {
                    *c_value = (self.f)(*c_value, T::ZERO, dot);
                }
            }
        }
    }
}

/// Columns `j..` of the packed `C ← f(C, E, A·Bᵀ)`, as many whole `W`-wide tiles as there are;
/// returns the first column left. Does nothing when a `k × W` block of `Bᵀ` does not fit the
/// buffer.
#[inline(always)]
fn nt_packed_columns<T: Scalar, const EXTRA: bool, F: Fn(T, T, T) -> T, const W: usize>(
    target: &mut NtTarget<'_, '_, T, F>,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    mut j: usize,
    a_pack: &mut [T; A_PACK_LEN],
    b_pack: &mut [T; NT_PACK_LEN],
) -> usize {
    let (m, k) = a.shape();
    let n = b.nrows();
    if k * W > NT_PACK_LEN {
        return j;
    }
    let tiles_per_pack = NT_PACK_LEN / (k * W);
    let end = j + (n - j) / W * W;
    while j < end {
        let tiles = tiles_per_pack.min((end - j) / W);
        for (t, block) in b_pack.chunks_exact_mut(k * W).take(tiles).enumerate() {
            pack_transposed::<T, W>(b, j + t * W, block);
        }

        let mut i = 0;
        while i + MR <= m {
            nt_packed_row_block::<T, EXTRA, F, MR, W>(target, a, i, j, tiles, a_pack, b_pack);
            i += MR;
        }
        while i < m {
            nt_packed_row_block::<T, EXTRA, F, 1, W>(target, a, i, j, tiles, a_pack, b_pack);
            i += 1;
        }
        j += tiles * W;
    }
    j
}

/// Rows `i..i + R` of the packed `C ← f(C, E, A·Bᵀ)` against the first `tiles` packed blocks
/// of `Bᵀ`, which start at column `j`.
#[inline(always)]
fn nt_packed_row_block<
    T: Scalar,
    const EXTRA: bool,
    F: Fn(T, T, T) -> T,
    const R: usize,
    const W: usize,
>(
    target: &mut NtTarget<'_, '_, T, F>,
    a: MatRef<'_, T>,
    i: usize,
    j: usize,
    tiles: usize,
    a_pack: &mut [T; A_PACK_LEN],
    b_pack: &[T; NT_PACK_LEN],
) {
    let k = a.ncols();
    let a_block = &mut a_pack[..R * k];
    pack_rows::<T, R, false>(a, a, i, 0, k, a_block);
    let a_panel = Panel::<T, R>::new(a_block, R, 0, k, 0);
    for (t, block) in b_pack.chunks_exact(k * W).take(tiles).enumerate() {
        let b_panel = Panel::<T, W>::new(block, W, 0, k, 0);
        let mut dots = [[T::ZERO; W]; R];
        panel_product(&mut dots, &a_panel, &b_panel);
        target.update::<EXTRA, R, W>(i, j + t * W, &dots);
    }
}

/// Copies rows `j..j + W` of `b` into `block`, transposed: `block[p·W + jj] = B[j + jj, p]`.
#[inline(always)]
fn pack_transposed<T: Scalar, const W: usize>(b: MatRef<'_, T>, j: usize, block: &mut [T]) {
    let k = b.ncols();
    let b_rows: [&[T]; W] = core::array::from_fn(|jj| &b.row(j + jj)[..k]);
    for (p, values) in (0..k).zip(block.chunks_exact_mut(W)) {
        for (value, b_row) in values.iter_mut().zip(&b_rows) {
            *value = b_row[p];
        }
    }
}

/// One inner step of every micro-kernel: `acc[ii][jj] += a[ii] · b[jj]`, a separate multiply and
/// add per entry, so each entry's sum keeps its sequential order.
///
/// The rows are written out one by one (up to [`MAX_TILE_ROWS`]) instead of looping over them.
/// LLVM then only has to unroll the `W`-long row loop to keep the whole tile in registers. A loop
/// nest of `R × W` steps can exceed its unrolling threshold and leave the tile in memory, which
/// happened in builds with 16 codegen units.
#[inline(always)]
fn accumulate<T: Scalar, const R: usize, const W: usize>(
    acc: &mut [[T; W]; R],
    a_values: &[T; R],
    b_values: &[T; W],
) {
    const { assert!(R <= MAX_TILE_ROWS) };
    let b_values = *b_values;
    accumulate_row(acc.get_mut(0), a_values.first(), &b_values);
    accumulate_row(acc.get_mut(1), a_values.get(1), &b_values);
    accumulate_row(acc.get_mut(2), a_values.get(2), &b_values);
    accumulate_row(acc.get_mut(3), a_values.get(3), &b_values);
    accumulate_row(acc.get_mut(4), a_values.get(4), &b_values);
    accumulate_row(acc.get_mut(5), a_values.get(5), &b_values);
    accumulate_row(acc.get_mut(6), a_values.get(6), &b_values);
    accumulate_row(acc.get_mut(7), a_values.get(7), &b_values);
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
        let products: [T; W] = core::array::from_fn(|jj| a_value * b_values[jj]);
        for (acc_value, product) in acc.iter_mut().zip(products) {
            *acc_value += product;
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

/// The first `W` entries of `row`, mutably.
///
/// # Panics
/// If `row` is shorter than `W`; the callers cut rows so that this cannot happen.
#[inline(always)]
fn head_mut<T, const W: usize>(row: &mut [T]) -> &mut [T; W] {
    match row.first_chunk_mut::<W>() {
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

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use std::vec;
    use std::vec::Vec;

    /// Deterministic values in `[-1, 1)` from a 32-bit linear congruential generator.
    fn fill(values: &mut [f32], seed: u32) {
        let mut state = seed;
        for value in values {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            *value = (state >> 8) as f32 / (1u32 << 23) as f32 - 1.0;
        }
    }

    fn assert_same_bits(x: &[f32], y: &[f32]) {
        for (index, (a, b)) in x.iter().zip(y).enumerate() {
            assert_eq!(a.to_bits(), b.to_bits(), "entry {index}: {a} vs {b}");
        }
    }

    // Forming `A + A2` while packing rounds each sum once, exactly as storing it first does, and
    // then runs the same sequential sums, so the two agree bit for bit. K = 300 crosses a packed
    // block; the output starts as NaN to show that the first block overwrites it.
    const M: usize = 9;
    const K: usize = 300;
    const N: usize = 21;

    #[test]
    fn added_operand_matches_stored_sum_nn() {
        let (mut a, mut a2, mut b) = ([0.0f32; M * K], [0.0f32; M * K], [0.0f32; K * N]);
        fill(&mut a, 1);
        fill(&mut a2, 2);
        fill(&mut b, 3);
        let sum: [f32; M * K] = core::array::from_fn(|index| a[index] + a2[index]);

        let mut c_added = [f32::NAN; M * N];
        let mut c_stored = [0.0f32; M * N];
        gemm_nn::<f32, true>(
            &mut MatMut::from_slice(&mut c_added, M, N).unwrap(),
            MatRef::from_slice(&a, M, K).unwrap(),
            MatRef::from_slice(&a2, M, K).unwrap(),
            MatRef::from_slice(&b, K, N).unwrap(),
        );
        let sum_view = MatRef::from_slice(&sum, M, K).unwrap();
        gemm_nn::<f32, false>(
            &mut MatMut::from_slice(&mut c_stored, M, N).unwrap(),
            sum_view,
            sum_view,
            MatRef::from_slice(&b, K, N).unwrap(),
        );
        assert_same_bits(&c_added, &c_stored);
    }

    #[test]
    fn added_operand_matches_stored_sum_tn() {
        let (mut a, mut a2, mut b) = ([0.0f32; K * M], [0.0f32; K * M], [0.0f32; K * N]);
        fill(&mut a, 4);
        fill(&mut a2, 5);
        fill(&mut b, 6);
        let sum: [f32; K * M] = core::array::from_fn(|index| a[index] + a2[index]);

        let mut c_added = [f32::NAN; M * N];
        let mut c_stored = [0.0f32; M * N];
        gemm_tn::<f32, true>(
            &mut MatMut::from_slice(&mut c_added, M, N).unwrap(),
            MatRef::from_slice(&a, K, M).unwrap(),
            MatRef::from_slice(&a2, K, M).unwrap(),
            MatRef::from_slice(&b, K, N).unwrap(),
        );
        let sum_view = MatRef::from_slice(&sum, K, M).unwrap();
        gemm_tn::<f32, false>(
            &mut MatMut::from_slice(&mut c_stored, M, N).unwrap(),
            sum_view,
            sum_view,
            MatRef::from_slice(&b, K, N).unwrap(),
        );
        assert_same_bits(&c_added, &c_stored);
    }
    /// Dimensions around every tile edge of both kernel families: 1, 2 and 3 rows (`MR = 4`,
    /// `DIRECT_MR = 2`), columns around 1, 2, 4, 8 and 16, inner dimensions from 1 to 300 (more
    /// than one 256-deep packed block).
    const ROWS: [usize; 5] = [1, 2, 3, 5, 9];
    const COLS: [usize; 8] = [1, 2, 3, 7, 8, 9, 17, 21];
    const DEPTHS: [usize; 4] = [1, 2, 5, 300];

    /// `C = op(A + A2)·B` as one plain sequential sum per entry, the definition every kernel
    /// must reproduce bit for bit. `a` is `m × k` (`k × m` when `transposed`).
    fn sequential_product(
        a: &[f32],
        a2: Option<&[f32]>,
        b: &[f32],
        (m, k, n): (usize, usize, usize),
        transposed: bool,
    ) -> Vec<f32> {
        let mut c = vec![0.0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut sum = 0.0f32;
                for p in 0..k {
                    let index = if transposed { p * m + i } else { i * k + p };
                    let left = match a2 {
                        Some(a2) => a[index] + a2[index],
                        None => a[index],
                    };
                    sum += left * b[p * n + j];
                }
                c[i * n + j] = sum;
            }
        }
        c
    }

    /// Runs `kernel` on fresh random operands of every shape and compares with
    /// [`sequential_product`]; the output starts as NaN, which must not leak.
    fn check_products(
        transposed: bool,
        add: bool,
        kernel: impl Fn(&mut MatMut<'_, f32>, MatRef<'_, f32>, MatRef<'_, f32>, MatRef<'_, f32>),
    ) {
        for (seed, (&m, (&n, &k))) in ROWS
            .iter()
            .flat_map(|m| {
                COLS.iter()
                    .flat_map(move |n| DEPTHS.iter().map(move |k| (m, (n, k))))
            })
            .enumerate()
        {
            let seed = 3 * seed as u32;
            let (mut a, mut a2, mut b) = (vec![0.0; m * k], vec![0.0; m * k], vec![0.0; k * n]);
            fill(&mut a, seed);
            fill(&mut a2, seed + 1);
            fill(&mut b, seed + 2);
            let (a_rows, a_cols) = if transposed { (k, m) } else { (m, k) };
            let a_view = MatRef::from_slice(&a, a_rows, a_cols).unwrap();
            let a2_view = MatRef::from_slice(&a2, a_rows, a_cols).unwrap();
            let mut c = vec![f32::NAN; m * n];
            kernel(
                &mut MatMut::from_slice(&mut c, m, n).unwrap(),
                a_view,
                a2_view,
                MatRef::from_slice(&b, k, n).unwrap(),
            );
            let expected =
                sequential_product(&a, add.then_some(&a2[..]), &b, (m, k, n), transposed);
            assert_eq!(c.len(), expected.len());
            for (index, (got, want)) in c.iter().zip(&expected).enumerate() {
                assert_eq!(
                    got.to_bits(),
                    want.to_bits(),
                    "m {m}, k {k}, n {n}, entry {index}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn packed_nn_matches_sequential_sums() {
        check_products(false, false, gemm_packed::<f32, false, false>);
        check_products(false, true, gemm_packed::<f32, true, false>);
    }

    #[test]
    fn packed_tn_matches_sequential_sums() {
        check_products(true, false, gemm_packed::<f32, false, true>);
        check_products(true, true, gemm_packed::<f32, true, true>);
    }

    #[test]
    fn direct_nn_matches_sequential_sums() {
        check_products(false, false, gemm_direct::<f32, false, false>);
        check_products(false, true, gemm_direct::<f32, true, false>);
    }

    #[test]
    fn direct_tn_matches_sequential_sums() {
        check_products(true, false, gemm_direct::<f32, false, true>);
        check_products(true, true, gemm_direct::<f32, true, true>);
    }

    /// Inner dimensions of the `A·Bᵀ` tests: an empty one, around the 4-wide tiles, and 300,
    /// beyond what the packed buffers hold (`nt_product` then runs the direct kernel).
    const NT_DEPTHS: [usize; 5] = [0, 1, 3, 8, 300];

    /// The update of `M` in a Dion step's final pass, with coefficients that round.
    fn momentum_update(m: f32, g: f32, dot: f32) -> f32 {
        (m + g) - 0.05 * dot
    }

    /// Runs `kernel` (`C ← f(C, E, A·Bᵀ)` with `f` = [`momentum_update`]) on random operands of
    /// every shape and compares with one plain sequential dot product per entry.
    fn check_nt_products(
        kernel: impl Fn(&mut MatMut<'_, f32>, MatRef<'_, f32>, MatRef<'_, f32>, MatRef<'_, f32>),
    ) {
        for (seed, (&m, (&n, &k))) in ROWS
            .iter()
            .flat_map(|m| {
                COLS.iter()
                    .flat_map(move |n| NT_DEPTHS.iter().map(move |k| (m, (n, k))))
            })
            .enumerate()
        {
            let seed = 4 * seed as u32;
            let (mut a, mut b) = (vec![0.0; m * k], vec![0.0; n * k]);
            let (mut c, mut e) = (vec![0.0; m * n], vec![0.0; m * n]);
            fill(&mut a, seed);
            fill(&mut b, seed + 1);
            fill(&mut c, seed + 2);
            fill(&mut e, seed + 3);

            let mut expected = c.clone();
            for i in 0..m {
                for j in 0..n {
                    let mut dot = 0.0f32;
                    for p in 0..k {
                        dot += a[i * k + p] * b[j * k + p];
                    }
                    expected[i * n + j] = momentum_update(c[i * n + j], e[i * n + j], dot);
                }
            }

            kernel(
                &mut MatMut::from_slice(&mut c, m, n).unwrap(),
                MatRef::from_slice(&e, m, n).unwrap(),
                MatRef::from_slice(&a, m, k).unwrap(),
                MatRef::from_slice(&b, n, k).unwrap(),
            );
            for (index, (got, want)) in c.iter().zip(&expected).enumerate() {
                assert_eq!(
                    got.to_bits(),
                    want.to_bits(),
                    "m {m}, k {k}, n {n}, entry {index}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn nt_product_matches_sequential_dots() {
        check_nt_products(|c, extra, a, b| {
            nt_product::<f32, true, _, _>(&mut HeldViews { c, extra, a, b }, momentum_update)
        });
    }

    #[test]
    fn nt_direct_matches_sequential_dots() {
        check_nt_products(|c, extra, a, b| {
            let m = a.nrows();
            nt_direct::<f32, true, _, _>(&mut HeldViews { c, extra, a, b }, m, &momentum_update)
        });
    }

    #[test]
    fn nt_product_without_extra_ignores_it() {
        // `E` is passed as NaN: with `EXTRA = false` the update must see zero instead.
        let (m, k, n) = (6, 5, 7);
        let (mut a, mut b, mut c) = (
            vec![0.0f32; m * k],
            vec![0.0f32; n * k],
            vec![0.0f32; m * n],
        );
        fill(&mut a, 7);
        fill(&mut b, 8);
        fill(&mut c, 9);
        let nan = vec![f32::NAN; m * n];
        let mut direct = c.clone();
        let extra = MatRef::from_slice(&nan, m, n).unwrap();
        let a = MatRef::from_slice(&a, m, k).unwrap();
        let b = MatRef::from_slice(&b, n, k).unwrap();
        let mut c_view = MatMut::from_slice(&mut c, m, n).unwrap();
        let mut operands = HeldViews {
            c: &mut c_view,
            extra,
            a,
            b,
        };
        nt_product::<f32, false, _, _>(&mut operands, momentum_update);
        let mut direct_view = MatMut::from_slice(&mut direct, m, n).unwrap();
        let mut operands = HeldViews {
            c: &mut direct_view,
            extra,
            a,
            b,
        };
        nt_direct::<f32, false, _, _>(&mut operands, m, &momentum_update);
        assert!(c.iter().all(|value| value.is_finite()));
        assert_same_bits(&c, &direct);
    }
}

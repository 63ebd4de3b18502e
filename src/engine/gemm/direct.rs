//! The direct kernels: register tiles that read every operand in place and need no buffer.
//!
//! They run wherever [`PACK`](super::PACK) is `false` (bare-metal targets), and on every target for `A·Bᵀ`
//! with an inner dimension the packed buffers do not hold. Each tile forms every entry as one
//! sequential sum over the whole inner dimension, from zero, exactly like the packed kernels,
//! so the two give the same bits.
//!
//! # Straight-line tiles
//!
//! On Arm M-profile cores LLVM sets its unrolling thresholds for code optimised for size to zero
//! (`getUnrollingPreferences` in `llvm/lib/Target/ARM/ARMTargetTransformInfo.cpp`), so at
//! opt-level "s" it unrolls no loop, not even one of constant length. A tile written as loops
//! over its rows and columns then stays in memory: the packed 4 × 4 tile ran at 21 to 23
//! instructions per multiply-add there. The tile operations below are therefore written out for
//! every index below [`MAX_TILE`] ([`for_each_tile_index!`]). The indices are constants, so the
//! code for indices past the tile folds away and the tile lives in registers at every
//! opt-level. Only the loop over the inner dimension stays a loop.

use super::{head, head_mut, NtOperands, NtViews, Panel, DIRECT_MR, DIRECT_NR, NT_MR, NT_NR};
use crate::engine::view::{MatMut, MatRef};
use crate::scalar::Scalar;

/// Largest tile side of the direct kernels: [`for_each_tile_index!`] covers this many indices.
const MAX_TILE: usize = 8;

const _: () = {
    assert!(DIRECT_MR <= MAX_TILE);
    assert!(DIRECT_NR <= MAX_TILE);
    assert!(NT_MR <= MAX_TILE);
    assert!(NT_NR <= MAX_TILE);
};

/// Runs `$body` once for each `$index` in `0..MAX_TILE`, with `$index` a constant.
macro_rules! for_each_tile_index {
    ($index:ident => $body:block) => {
        for_each_tile_index!(@each $index $body 0 1 2 3 4 5 6 7)
    };
    (@each $index:ident $body:block $($value:literal)*) => {
        $({
            let $index: usize = $value;
            $body
        })*
    };
}

/// `C = op(A + A2)·B` without copying anything; `op` is the transpose when `TRANSPOSED`, `A2`
/// is read only when `ADD`.
///
/// `DIRECT_MR × W` tiles, `W` the widest of `DIRECT_NR`, `DIRECT_NR / 2`, `DIRECT_NR / 4` and 1
/// that fits. For `C = Aᵀ·B` a row of `A` contains the tile's values of one inner index. For
/// `C = A·B` they come from `DIRECT_MR` rows of `A`, one slice each. `A + A2` is formed as it
/// is read, once per tile: a tile of `DIRECT_NR = 8` columns spans a whole rank-8 factor, so
/// that is once per entry of `A`.
///
/// The column strips are the outer loop, so a strip's `B` panel is set up once for all its row
/// blocks, and the tile is returned by value and stored after the loop, so no row slice of `C`
/// stays live across it. Inlined: each product of a step is a function of its own with its
/// kernel inside, which on the Cortex-M4F gave a smaller stack than a kernel frame below a
/// caller's frame (304 to 336 bytes at opt-level 3, against 108 + 64 + 288 before).
#[inline(always)]
pub(crate) fn gemm_direct<T: Scalar, const ADD: bool, const TRANSPOSED: bool>(
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

    let mut j = 0;
    while j + DIRECT_NR <= n {
        gemm_strip::<T, DIRECT_NR, ADD, TRANSPOSED>(c, &a, &a2, &b, j);
        j += DIRECT_NR;
    }
    while j + DIRECT_NR / 2 <= n {
        gemm_strip::<T, { DIRECT_NR / 2 }, ADD, TRANSPOSED>(c, &a, &a2, &b, j);
        j += DIRECT_NR / 2;
    }
    while j + DIRECT_NR / 4 <= n {
        gemm_strip::<T, { DIRECT_NR / 4 }, ADD, TRANSPOSED>(c, &a, &a2, &b, j);
        j += DIRECT_NR / 4;
    }
    while j < n {
        gemm_strip::<T, 1, ADD, TRANSPOSED>(c, &a, &a2, &b, j);
        j += 1;
    }
}

/// Columns `j..j + W` of `C = op(A + A2)·B`, swept top to bottom in blocks of `DIRECT_MR` rows.
#[inline(always)]
fn gemm_strip<T: Scalar, const W: usize, const ADD: bool, const TRANSPOSED: bool>(
    c: &mut MatMut<'_, T>,
    a: &MatRef<'_, T>,
    a2: &MatRef<'_, T>,
    b: &MatRef<'_, T>,
    j: usize,
) {
    let m = c.nrows();
    let k = b.nrows();
    let b_panel = Panel::<T, W>::new(b.data, b.row_stride, 0, k, j);
    let a2 = if ADD { a2 } else { a };
    let mut i = 0;
    while i + DIRECT_MR <= m {
        let left = left::<T, DIRECT_MR, TRANSPOSED>(a, a2, i, k);
        let acc = gemm_tile::<T, DIRECT_MR, W, ADD>(&left, &b_panel);
        store_tile(c, i, j, &acc);
        i += DIRECT_MR;
    }
    while i < m {
        let left = left::<T, 1, TRANSPOSED>(a, a2, i, k);
        let acc = gemm_tile::<T, 1, W, ADD>(&left, &b_panel);
        store_tile(c, i, j, &acc);
        i += 1;
    }
}

/// The left operand of one row block of [`gemm_direct`], `op(A)` and `op(A2)` for rows
/// `i..i + R` of `C`.
enum Left<'a, T, const R: usize> {
    /// `C = Aᵀ·B`: the column strips `i..i + R` of `A` and `A2`.
    Columns(Panel<'a, T, R>, Panel<'a, T, R>),
    /// `C = A·B`: rows `i..i + R` of `A` and `A2`, each exactly `k` long.
    Rows([&'a [T]; R], [&'a [T]; R]),
}

/// `op(A)` and `op(A2)` for rows `i..i + R` of `C`, with `k` inner indices.
#[inline(always)]
fn left<'a, T: Scalar, const R: usize, const TRANSPOSED: bool>(
    a: &MatRef<'a, T>,
    a2: &MatRef<'a, T>,
    i: usize,
    k: usize,
) -> Left<'a, T, R> {
    if TRANSPOSED {
        Left::Columns(
            Panel::new(a.data, a.row_stride, 0, k, i),
            Panel::new(a2.data, a2.row_stride, 0, k, i),
        )
    } else {
        Left::Rows(rows::<T, R>(*a, i, k), rows::<T, R>(*a2, i, k))
    }
}

/// The `R × W` tile of one row block of [`gemm_direct`], summed over the whole inner dimension
/// (at least 1).
#[inline(always)]
fn gemm_tile<T: Scalar, const R: usize, const W: usize, const ADD: bool>(
    left: &Left<'_, T, R>,
    b_panel: &Panel<'_, T, W>,
) -> [[T; W]; R] {
    let mut acc = [[T::ZERO; W]; R];
    match left {
        Left::Columns(a_panel, a2_panel) => {
            if ADD {
                let rows = a_panel.rows().zip(a2_panel.rows()).zip(b_panel.rows());
                for ((a_row, a2_row), b_row) in rows {
                    let a_values = add(head::<T, R>(a_row), head::<T, R>(a2_row));
                    multiply_add(&mut acc, &a_values, head::<T, W>(b_row));
                }
                let a_values = add(a_panel.last, a2_panel.last);
                multiply_add(&mut acc, &a_values, b_panel.last);
            } else {
                for (a_row, b_row) in a_panel.rows().zip(b_panel.rows()) {
                    multiply_add(&mut acc, head::<T, R>(a_row), head::<T, W>(b_row));
                }
                multiply_add(&mut acc, a_panel.last, b_panel.last);
            }
        }
        Left::Rows(a_rows, a2_rows) => {
            // Every row is exactly `k` long and `p < k`, so the reads need no check.
            let k = a_rows[0].len();
            let a_values = |p: usize| {
                if ADD {
                    gather_sum(a_rows, a2_rows, p)
                } else {
                    gather(a_rows, p)
                }
            };
            for (p, b_row) in (0..k - 1).zip(b_panel.rows()) {
                multiply_add(&mut acc, &a_values(p), head::<T, W>(b_row));
            }
            multiply_add(&mut acc, &a_values(k - 1), b_panel.last);
        }
    }
    acc
}

/// Writes the tile `acc` to `C[i.., j..]`, entry by entry with constant indices.
///
/// The packed kernels' `store` copies row slices in a loop, which LLVM does not unroll at
/// opt-level "s" for M-profile cores: used here it cost 2,500 more instructions per 32 × 64
/// rank-8 step there (557 at opt-level 3, `examples/mcu/profile.sh`).
#[inline(always)]
fn store_tile<T: Scalar, const R: usize, const W: usize>(
    c: &mut MatMut<'_, T>,
    i: usize,
    j: usize,
    acc: &[[T; W]; R],
) {
    let stride = c.row_stride;
    for_each_tile_index!(ii => {
        if ii < R {
            let c_row = head_mut::<T, W>(&mut c.data[(i + ii) * stride + j..]);
            for_each_tile_index!(jj => {
                if jj < W {
                    c_row[jj] = acc[ii][jj];
                }
            });
        }
    });
}

/// `C ← f(C, E, A·Bᵀ)` without copying anything (see [`nt_product`](super::nt_product) for the
/// contract), for the `m` rows of `A`: `NT_MR × W` tiles reading `NT_MR` rows of `A` and `W`
/// rows of `B` in place, one slice each. `k = 0` gives dot products of zero.
pub(crate) fn nt_direct<T: Scalar, const EXTRA: bool, O: NtOperands<T>, F: Fn(T, T, T) -> T>(
    operands: &mut O,
    m: usize,
    f: &F,
) {
    let mut i = 0;
    while i + NT_MR <= m {
        nt_row_block::<T, EXTRA, O, F, NT_MR>(operands, f, i);
        i += NT_MR;
    }
    while i < m {
        nt_row_block::<T, EXTRA, O, F, 1>(operands, f, i);
        i += 1;
    }
}

/// Rows `i..i + R` of [`nt_direct`], swept left to right with the widest tile that fits.
///
/// Not inlined. It builds its views from `operands`, so its caller keeps none on the stack.
/// Inlined into the passes of a step's final update it saved no instructions (104,400 this way
/// and 105,000 inlined for a 32 × 64 rank-8 step at opt-level 3, `examples/mcu/profile.sh`).
/// With the tiles of both row heights in one function, the momentum pass took a 384-byte
/// frame, against 160 + 160 split (measured when the split was made).
#[inline(never)]
fn nt_row_block<
    T: Scalar,
    const EXTRA: bool,
    O: NtOperands<T>,
    F: Fn(T, T, T) -> T,
    const R: usize,
>(
    operands: &mut O,
    f: &F,
    i: usize,
) {
    let NtViews { mut c, extra, a, b } = operands.views();
    let k = a.ncols();
    let n = c.ncols;
    if n == 0 {
        return;
    }
    if k == 0 {
        for_each_tile_index!(ii => {
            if ii < R {
                let e_row = if EXTRA { extra.row(i + ii) } else { &[] };
                for (jj, c_value) in c.row_mut(i + ii).iter_mut().enumerate() {
                    let e_value = if EXTRA { e_row[jj] } else { T::ZERO };
                    *c_value = f(*c_value, e_value, T::ZERO);
                }
            }
        });
        return;
    }
    // From here on `k ≥ 1`, so the tiles need no empty-sum case.
    let mut tiles = NtTiles {
        c: rows_mut::<T, R>(&mut c, i),
        e: if EXTRA {
            rows::<T, R>(extra, i, n)
        } else {
            [&[]; R]
        },
        b: BRows::new(b, k),
    };
    let a_rows = rows::<T, R>(a, i, k);

    // Every row of `C` (and of `E`) has as many entries left as the first, so testing the
    // first tests them all, and the compiler drops the checks of the others.
    while tiles.c[0].len() >= NT_NR {
        nt_tile::<T, EXTRA, F, R, NT_NR>(&mut tiles, &a_rows, f);
    }
    while tiles.c[0].len() >= NT_NR / 2 {
        nt_tile::<T, EXTRA, F, R, { NT_NR / 2 }>(&mut tiles, &a_rows, f);
    }
    while tiles.c[0].len() >= NT_NR / 4 {
        nt_tile::<T, EXTRA, F, R, { NT_NR / 4 }>(&mut tiles, &a_rows, f);
    }
    while !tiles.c[0].is_empty() {
        nt_tile::<T, EXTRA, F, R, 1>(&mut tiles, &a_rows, f);
    }
}

/// The unprocessed part of the operands of one row block of [`nt_direct`]. The tiles go left to
/// right, and each takes its entries of `C` and `E` and its rows of `B` off the front.
struct NtTiles<'r, T, const R: usize> {
    /// The rows of `C`, all of the same length.
    c: [&'r mut [T]; R],
    /// The rows of `E`, as long as those of `C` (empty unless `EXTRA`).
    e: [&'r [T]; R],
    /// The rows of `B`.
    b: BRows<'r, T>,
}

/// The rows of `B` from some row on, each cut to the `k` entries of the inner dimension.
struct BRows<'a, T> {
    /// Every row but the last, each a full row stride long.
    body: &'a [T],
    /// The last row, which may end the buffer.
    last: &'a [T],
    /// Row stride of `B`, at least `k`.
    stride: usize,
    k: usize,
}

impl<'a, T> BRows<'a, T> {
    #[inline(always)]
    fn new(b: MatRef<'a, T>, k: usize) -> Self {
        let n = b.nrows;
        assert!(n >= 1);
        assert!(k <= b.ncols);
        let body_len = (n - 1) * b.row_stride;
        Self {
            body: &b.data[..body_len],
            last: &b.data[body_len..][..k],
            stride: b.row_stride,
            k,
        }
    }

    /// Takes the next row off the front. The tiles of a row block take exactly one call per
    /// row of `B`, so the call after the body runs out is the one for the last row.
    #[inline(always)]
    fn take(&mut self) -> &'a [T] {
        match self.body.split_at_checked(self.stride) {
            Some((row, rest)) => {
                self.body = rest;
                &row[..self.k]
            }
            None => self.last,
        }
    }
}

/// Computes the dot products of the next `R × W` tile of one row block of [`nt_direct`], then
/// applies `f` to each of its entries.
#[inline(always)]
fn nt_tile<T: Scalar, const EXTRA: bool, F: Fn(T, T, T) -> T, const R: usize, const W: usize>(
    tiles: &mut NtTiles<'_, T, R>,
    a_rows: &[&[T]; R],
    f: &F,
) {
    let mut b_rows: [&[T]; W] = [&[]; W];
    for_each_tile_index!(jj => {
        if jj < W {
            b_rows[jj] = tiles.b.take();
        }
    });
    let dots = nt_dots(a_rows, &b_rows, tiles.b.k);

    for_each_tile_index!(ii => {
        if ii < R {
            let Some((c_values, c_rest)) =
                core::mem::take(&mut tiles.c[ii]).split_first_chunk_mut::<W>()
            else {
                panic!("row of C shorter than the tile");
            };
            tiles.c[ii] = c_rest;
            let e_values = if EXTRA {
                let Some((e_values, e_rest)) = tiles.e[ii].split_first_chunk::<W>() else {
                    panic!("row of E shorter than the tile");
                };
                tiles.e[ii] = e_rest;
                *e_values
            } else {
                [T::ZERO; W]
            };
            for_each_tile_index!(jj => {
                if jj < W {
                    c_values[jj] = f(c_values[jj], e_values[jj], dots[ii][jj]);
                }
            });
        }
    });
}

/// `dots[ii][jj] = Σₚ a_rows[ii][p]·b_rows[jj][p]` over `p < k`, each one sequential sum from
/// zero.
#[inline(always)]
fn nt_dots<T: Scalar, const R: usize, const W: usize>(
    a_rows: &[&[T]; R],
    b_rows: &[&[T]; W],
    k: usize,
) -> [[T; W]; R] {
    let a_rows = cut(a_rows, k);
    let b_rows = cut(b_rows, k);
    let mut dots = zeros::<T, R, W>();
    for p in 0..k {
        multiply_add_by_rows(&mut dots, &gather(&a_rows, p), &gather(&b_rows, p));
    }
    dots
}

/// An `R × W` tile of zeros, written out entry by entry: at opt-level "s" LLVM keeps the
/// array expression `[[T::ZERO; W]; R]` a loop over its rows, and the tile then stays in memory.
#[inline(always)]
fn zeros<T: Scalar, const R: usize, const W: usize>() -> [[T; W]; R] {
    let zero = T::ZERO;
    let mut row = [zero; W];
    for_each_tile_index!(jj => {
        if jj < W {
            row[jj] = zero;
        }
    });
    let mut tile = [row; R];
    for_each_tile_index!(ii => {
        if ii < R {
            tile[ii] = row;
        }
    });
    tile
}

/// `rows` with each row cut to its first `len` entries.
#[inline(always)]
fn cut<'a, T: Scalar, const N: usize>(rows: &[&'a [T]; N], len: usize) -> [&'a [T]; N] {
    let mut cut: [&[T]; N] = [&[]; N];
    for_each_tile_index!(n => {
        if n < N {
            cut[n] = &rows[n][..len];
        }
    });
    cut
}

/// Rows `i..i + N` of `a`, each cut to its first `len` entries.
#[inline(always)]
fn rows<T: Scalar, const N: usize>(a: MatRef<'_, T>, i: usize, len: usize) -> [&[T]; N] {
    let mut rows: [&[T]; N] = [&[]; N];
    for_each_tile_index!(n => {
        if n < N {
            rows[n] = &a.row(i + n)[..len];
        }
    });
    rows
}

/// Rows `i..i + R` of `c` as `R` disjoint slices of `ncols` entries.
#[inline(always)]
fn rows_mut<'r, T, const R: usize>(c: &'r mut MatMut<'_, T>, i: usize) -> [&'r mut [T]; R] {
    assert!(i + R <= c.nrows);
    let (stride, n) = (c.row_stride, c.ncols);
    let mut rest: &'r mut [T] = &mut c.data[i * stride..];
    core::array::from_fn(|_| {
        let remaining = core::mem::take(&mut rest);
        let (row, tail) = remaining.split_at_mut(stride.min(remaining.len()));
        rest = tail;
        &mut row[..n]
    })
}

/// `[rows[0][p], …, rows[N − 1][p]]`.
#[inline(always)]
fn gather<T: Scalar, const N: usize>(rows: &[&[T]; N], p: usize) -> [T; N] {
    let mut values = [T::ZERO; N];
    for_each_tile_index!(n => {
        if n < N {
            values[n] = rows[n][p];
        }
    });
    values
}

/// `[rows[0][p] + rows2[0][p], …]`, each sum rounded once as a stored sum would be.
#[inline(always)]
fn gather_sum<T: Scalar, const N: usize>(rows: &[&[T]; N], rows2: &[&[T]; N], p: usize) -> [T; N] {
    let mut values = [T::ZERO; N];
    for_each_tile_index!(n => {
        if n < N {
            values[n] = rows[n][p] + rows2[n][p];
        }
    });
    values
}

/// Element-wise `x + y`.
#[inline(always)]
fn add<T: Scalar, const N: usize>(x: &[T; N], y: &[T; N]) -> [T; N] {
    let mut sum = [T::ZERO; N];
    for_each_tile_index!(n => {
        if n < N {
            sum[n] = x[n] + y[n];
        }
    });
    sum
}

/// One inner step of a tile, `acc[ii][jj] += a[ii]·b[jj]` (a separate multiply and add), one
/// column at a time.
///
/// Going by columns, only the `R` values of `a` and one value of `b` are live next to the
/// accumulators. [`gemm_direct`] runs fastest this way on the Cortex-M4F: its 2 × 8 tile took
/// 2.2 instructions per multiply-add by rows and 1.8 by columns (`step_cost`, opt-level 3).
#[inline(always)]
fn multiply_add<T: Scalar, const R: usize, const W: usize>(
    acc: &mut [[T; W]; R],
    a: &[T; R],
    b: &[T; W],
) {
    for_each_tile_index!(jj => {
        if jj < W {
            let b_value = b[jj];
            for_each_tile_index!(ii => {
                if ii < R {
                    acc[ii][jj] += a[ii] * b_value;
                }
            });
        }
    });
}

/// [`multiply_add`] one row at a time, which [`nt_direct`]'s 4 × 4 tile prefers: the final pass
/// of a 32 × 64 rank-8 step took 104,400 instructions this way and 105,900 by columns
/// (opt-level 3, `examples/mcu/profile.sh`).
#[inline(always)]
fn multiply_add_by_rows<T: Scalar, const R: usize, const W: usize>(
    acc: &mut [[T; W]; R],
    a: &[T; R],
    b: &[T; W],
) {
    for_each_tile_index!(ii => {
        if ii < R {
            let a_value = a[ii];
            for_each_tile_index!(jj => {
                if jj < W {
                    acc[ii][jj] += a_value * b[jj];
                }
            });
        }
    });
}

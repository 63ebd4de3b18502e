//! `matmul`, `matmul_tn` and `rank_update` on fuzzer-chosen shapes, strides and bit patterns.
//!
//! Shapes cover 0, 1, the tile edges (MR = 4 rows, NR = 16 or 8 columns and its halves), inner
//! dimensions on both sides of the packed-block lengths (256 and 1024 inner indices) and of the
//! `rank_update` pack limits (k·16, k·8, k·4 ≤ 2048). Checks:
//!
//! - no panic; a shape mismatch is an error and leaves C untouched;
//! - padding between rows of C is never written; padding of A and B (a NaN) never leaks in;
//! - every entry has the bits of the documented sequential sum `((0 + a₀b₀) + a₁b₁) + …`
//!   (for `rank_update`, `c + α·sum`), NaN compared as NaN;
//! - for finite inputs whose sums cannot overflow, every entry is within the rounding-error
//!   bound `γₖ·Σ|a||b|` (plus underflow) of the exact `f64` value.
#![no_main]

use dion_kernel::engine::{matmul, matmul_tn, rank_update, MatMut, MatRef};
use dion_kernel::Error;
use dion_kernel_fuzz::input::{
    from_strided, hyperparameter, is_padding, matrix, row_stride, to_strided, Float, Reader,
};
use dion_kernel_fuzz::reference::{dot_f64, gamma, same_value, sequential_dot, unit};
use libfuzzer_sys::fuzz_target;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    /// `C = A·B`, A `m × k`, B `k × n`.
    Matmul,
    /// `C = Aᵀ·B`, A `k × m`, B `k × n`.
    MatmulTn,
    /// `C += α·A·Bᵀ`, A `m × k`, B `n × k`.
    RankUpdate,
}

/// Decodes a dimension: mostly 0..=20, sometimes one of `large`.
fn dim(reader: &mut Reader<'_>, large: &[usize]) -> usize {
    let selector = reader.byte();
    if selector < 224 {
        usize::from(selector) % 21
    } else {
        large[usize::from(selector) % large.len()]
    }
}

/// A matrix stored with a fuzzer-chosen row stride.
struct Stored<T> {
    values: Vec<T>,
    buffer: Vec<T>,
    nrows: usize,
    ncols: usize,
    stride: usize,
}

impl<T: Float> Stored<T> {
    fn decode(reader: &mut Reader<'_>, nrows: usize, ncols: usize) -> Self {
        let stride = row_stride(reader, ncols);
        let values = matrix::<T>(reader, nrows, ncols);
        let buffer = to_strided(&values, nrows, ncols, stride);
        Self {
            values,
            buffer,
            nrows,
            ncols,
            stride,
        }
    }

    fn view(&self) -> MatRef<'_, T> {
        MatRef::from_slice_with_stride(&self.buffer, self.nrows, self.ncols, self.stride)
            .expect("the buffer was sized for this shape")
    }

    fn at(&self, i: usize, j: usize) -> T {
        self.values[i * self.ncols + j]
    }
}

fn run<T: Float>(reader: &mut Reader<'_>, op: Op) {
    let mut m = dim(reader, &[33, 35]);
    let mut n = dim(reader, &[31, 32, 33, 47, 48, 49, 64, 65]);
    let k = dim(
        reader,
        &[
            127, 128, 129, 255, 256, 257, 511, 512, 513, 1023, 1024, 1025,
        ],
    );
    if k > 64 {
        // A long inner dimension only needs a few rows and columns to cross its block edges;
        // this keeps every input below about 10 ms.
        m = m.min(9);
        n = n.min(20);
    }

    // A shape the operation does not accept, now and then: one extra row or column.
    let mismatch = reader.byte();
    let bump = |which: u8| usize::from(mismatch < 12 && mismatch % 4 == which);

    let (a_shape, b_shape) = match op {
        Op::Matmul => ((m, k), (k + bump(0), n)),
        Op::MatmulTn => ((k, m), (k + bump(0), n)),
        Op::RankUpdate => ((m, k), (n, k + bump(0))),
    };
    let c_shape = (m + bump(1), n + bump(2));
    let shapes_fit = mismatch >= 12 || mismatch % 4 == 3;

    let a = Stored::<T>::decode(reader, a_shape.0, a_shape.1);
    let b = Stored::<T>::decode(reader, b_shape.0, b_shape.1);
    let c_stride = row_stride(reader, c_shape.1);
    let c_values = if op == Op::RankUpdate {
        matrix::<T>(reader, c_shape.0, c_shape.1)
    } else {
        // Outputs of matmul and matmul_tn are never read: start from a NaN that must vanish.
        vec![T::sentinel(); c_shape.0 * c_shape.1]
    };
    let alpha: T = hyperparameter(reader, &[1.0, -1.0, 0.5, -0.01, 3.0, 0.0]);
    let mut c_buffer = to_strided(&c_values, c_shape.0, c_shape.1, c_stride);
    let c_before = c_buffer.clone();

    let c_view = MatMut::from_slice_with_stride(&mut c_buffer, c_shape.0, c_shape.1, c_stride)
        .expect("the buffer was sized for this shape");
    let result = match op {
        Op::Matmul => matmul(c_view, a.view(), b.view()),
        Op::MatmulTn => matmul_tn(c_view, a.view(), b.view()),
        Op::RankUpdate => rank_update(c_view, alpha, a.view(), b.view()),
    };

    if !shapes_fit {
        assert!(
            matches!(result, Err(Error::ShapeMismatch { .. })),
            "{op:?} with A {a_shape:?}, B {b_shape:?}, C {c_shape:?} returned {result:?}"
        );
        for (index, (before, after)) in c_before.iter().zip(&c_buffer).enumerate() {
            assert!(
                before.bits() == after.bits(),
                "C[{index}] written on a shape error"
            );
        }
        return;
    }
    assert!(result.is_ok(), "{op:?} rejected fitting shapes: {result:?}");

    for (index, (before, after)) in c_before.iter().zip(&c_buffer).enumerate() {
        if is_padding(index, n, c_stride) {
            assert!(
                before.bits() == after.bits(),
                "padding C[{index}] was written"
            );
        }
    }

    let c_after = from_strided(&c_buffer, m, n, c_stride);
    let exact_check = T::NAME == "f32";
    for i in 0..m {
        for j in 0..n {
            let terms = (0..k).map(|p| match op {
                Op::Matmul => (a.at(i, p), b.at(p, j)),
                Op::MatmulTn => (a.at(p, i), b.at(p, j)),
                Op::RankUpdate => (a.at(i, p), b.at(j, p)),
            });
            let sum = sequential_dot::<T>(terms.clone());
            let c0 = c_values[i * n + j];
            let expected = match op {
                Op::RankUpdate => c0 + alpha * sum,
                _ => sum,
            };
            let actual = c_after[i * n + j];
            assert!(
                same_value(actual, expected),
                "{op:?} {m}×{k}×{n}: C[{i}][{j}] = {actual:e}, the sequential sum gives {expected:e}"
            );

            if exact_check {
                check_bound(op, (i, j, k), terms, c0, alpha, actual);
            }
        }
    }
}

/// Checks the entry against the exact `f64` value, when every input is finite and no partial sum
/// can overflow.
///
/// A sum of `k` products satisfies `|ĉ − c| ≤ γₖ·S + k·η` with `S = Σ|aₚbₚ|` and `η` the subnormal
/// step. `rank_update` computes `c + α·ŝ`, which adds two roundings and scales the underflow of
/// the dot product by `|α|`, so its bound is `u·|c| + γₖ₊₂·|α|·S + (k·|α| + 1)·η`.
fn check_bound<T: Float>(
    op: Op,
    (i, j, k): (usize, usize, usize),
    terms: impl Iterator<Item = (T, T)> + Clone,
    c0: T,
    alpha: T,
    actual: T,
) {
    let finite = terms.clone().all(|(x, y)| x.is_finite() && y.is_finite());
    if !finite {
        return;
    }
    let (sum, abs_sum) = dot_f64(terms.map(|(x, y)| (x.to_f64(), y.to_f64())));
    let eta = T::SUBNORMAL_STEP;
    let max = T::MAX.to_f64();
    let (expected, bound, magnitude) = match op {
        Op::RankUpdate => {
            if !(c0.is_finite() && alpha.is_finite()) {
                return;
            }
            let (c, a) = (c0.to_f64(), alpha.to_f64());
            let underflow = (k as f64 * a.abs() + 1.0) * eta;
            let bound = unit::<T>() * c.abs() + gamma::<T>(k + 2) * a.abs() * abs_sum + underflow;
            (c + a * sum, bound, c.abs() + a.abs() * abs_sum)
        }
        _ => (sum, gamma::<T>(k) * abs_sum + k as f64 * eta, abs_sum),
    };
    // Partial sums of the dot product stay below S·(1 + γ), and the result below
    // magnitude·(1 + γ): neither may reach MAX, with room for rounding.
    if abs_sum.max(magnitude) * (1.0 + gamma::<T>(k + 2)) * 2.0 >= max {
        return;
    }
    let error = (actual.to_f64() - expected).abs();
    assert!(
        error <= bound,
        "{op:?}: C[{i}][{j}] = {actual:e}, exact {expected:e}, error {error:e} exceeds the bound {bound:e} (k = {k})"
    );
}

fuzz_target!(|data: &[u8]| {
    let mut reader = Reader::new(data);
    let selector = reader.byte();
    let op = match selector % 3 {
        0 => Op::Matmul,
        1 => Op::MatmulTn,
        _ => Op::RankUpdate,
    };
    // The f64 reference bounds only f32 results; f64 inputs get the bit-exact comparison.
    if selector & 0x80 == 0 {
        run::<f32>(&mut reader, op);
    } else {
        run::<f64>(&mut reader, op);
    }
});

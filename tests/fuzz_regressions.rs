//! Regression tests for the faults the fuzz targets in `fuzz/` found, one test per kind of fault.
//!
//! Each input was reduced by hand from a fuzzer crash, and each expected value is derived in the
//! comment next to it, not taken from the code under test. `fuzz/README.md` lists the findings.

use dion_kernel::engine::{
    dion_step, qr_in_place, rank_update, DionConfig, MatMut, MatRef, QrOptions, StepScratch,
    StepShape, StepState,
};

/// A view with zero columns accepts any row stride and any buffer, even an empty one, so its
/// rows must be empty slices whatever `i · row_stride` is.
#[test]
fn zero_column_view_rows_are_empty() {
    let empty: [f32; 0] = [];
    let view = MatRef::from_slice_with_stride(&empty, 3, 0, 4).unwrap();
    assert!(view.row(2).is_empty());

    // i · row_stride overflows usize here.
    let view = MatRef::from_slice_with_stride(&empty, 3, 0, usize::MAX).unwrap();
    assert!(view.row(2).is_empty());

    let mut empty_mut: [f32; 0] = [];
    let mut view = MatMut::from_slice_with_stride(&mut empty_mut, 3, 0, 4).unwrap();
    assert!(view.row(2).is_empty());
    assert!(view.row_mut(2).is_empty());
}

/// `C += α·A·Bᵀ` with inner dimension 0 adds `α·0 = 0` to every entry, also when the empty
/// operands have a row stride (the fuzzer's crash: a panic slicing the empty buffer of `B`).
#[test]
fn rank_update_with_empty_inner_dimension() {
    let empty: [f32; 0] = [];
    let a = MatRef::from_slice_with_stride(&empty, 3, 0, 2).unwrap();
    let b = MatRef::from_slice_with_stride(&empty, 5, 0, 3).unwrap();
    let mut c: [f32; 15] = core::array::from_fn(|index| index as f32 + 1.0);
    let before = c;

    rank_update(MatMut::from_slice(&mut c, 3, 5).unwrap(), 2.0, a, b).unwrap();

    // Every entry is c + 2·0 = c, exactly (no entry is −0).
    assert_eq!(c, before);
}

/// Dion's `Q ← R / (‖R_col‖ + ε)` with a column norm above `f32::MAX`: the direction is still a
/// unit vector, and `X` must move along it.
///
/// Derivation. `X = 0`, `M = 0`, `G` is 8 × 8 with its first row all `c = 1.5e38`, the rest 0, so
/// `B = G`. With `Q₀ = e₁` (8 × 1), `B·Q₀ = c·e₁`, so `P = e₁`. `R = Bᵀ·P` is the first row of
/// `B`, `c·(1, …, 1)`. Its norm `c·√8 ≈ 4.24e38` exceeds `f32::MAX ≈ 3.40e38`, although every
/// entry is finite. So the new `Q` is `(1, …, 1)/√8` (ε = 1e-8 is negligible), `M ← B − (1 − μ)·P Rᵀ` keeps
/// `μ·c = 0.95·c` in its first row, and `X ← X − lr·√(8/8)·P Qᵀ` has first row `−0.01/√8` in every
/// entry, the other rows 0. The commit's overflow checks pass:
/// `max|B| + (1 − μ)·max|R| = 1.05·c ≈ 1.58e38 ≤ f32::MAX / 2 ≈ 1.70e38`.
#[test]
fn dion_step_normalizes_column_with_norm_above_max() {
    let c = 1.5e38f32;
    let shape = StepShape::new(8, 8, 1).unwrap();
    let config = DionConfig {
        lr: 0.01f32,
        momentum: 0.95,
        weight_decay: 0.0,
        ..DionConfig::default()
    };
    let mut x = [0.0f32; 64];
    let mut grad = [0.0f32; 64];
    grad[..8].fill(c);
    let mut momentum = [0.0f32; 64];
    let mut q = [0.0f32; 8];
    q[0] = 1.0;
    let (mut p, mut r) = ([0.0f32; 8], [0.0f32; 8]);

    dion_step(
        shape,
        &config,
        &mut x,
        &grad,
        StepState {
            momentum: &mut momentum,
            q: &mut q,
        },
        StepScratch {
            p: &mut p,
            r: &mut r,
        },
    )
    .unwrap();

    let inv_sqrt8 = 1.0 / 8f64.sqrt();
    for (i, &value) in q.iter().enumerate() {
        let error = (value as f64 - inv_sqrt8).abs();
        assert!(
            error <= 1e-6,
            "Q[{i}] = {value}, expected 1/√8 = {inv_sqrt8}"
        );
    }
    for (index, &value) in x.iter().enumerate() {
        let expected = if index < 8 { -0.01 * inv_sqrt8 } else { 0.0 };
        let error = (value as f64 - expected).abs();
        assert!(
            error <= 1e-6 * 0.01,
            "X[{}][{}] = {value}, expected {expected}",
            index / 8,
            index % 8
        );
    }
    for (index, &value) in momentum.iter().enumerate() {
        let expected = if index < 8 { 0.95 * c as f64 } else { 0.0 };
        let error = (value as f64 - expected).abs();
        assert!(
            error <= 1e-6 * c as f64,
            "M[{}][{}] = {value:e}, expected {expected:e}",
            index / 8,
            index % 8
        );
    }
}

/// The same kind of fault through `ε`: with `ε = f32::MAX`, which is finite and positive as the
/// config requires, `‖R_col‖ + ε` rounds to `+∞` although `‖R_col‖` is finite. The column of `Q`
/// must still be `R / (‖R_col‖ + ε)`, not zero.
///
/// Derivation. A 2 × 1 parameter (`Q` and `R` are 1 × 1), `X = 0`, `M = 0`, `G = [[g], [0]]` with
/// `g = 1e37`, `Q₀ = [[1]]`: `B·Q₀ = (g, 0)`, so `P = e₁`, `R = Bᵀ·P = g`, and the new `Q` is
/// `g / (g + f32::MAX) ≈ 0.0286`. `X ← −lr·√(2/1)·P·Q` has first entry `−0.01·√2·Q` and second 0.
/// The commit's checks pass: `max|B| + (1 − μ)·max|R| = 1.05·g ≤ f32::MAX / 2`.
#[test]
fn dion_step_with_epsilon_near_max() {
    let g = 1e37f32;
    let shape = StepShape::new(2, 1, 1).unwrap();
    let config = DionConfig {
        lr: 0.01f32,
        momentum: 0.95,
        weight_decay: 0.0,
        epsilon: f32::MAX,
        ..DionConfig::default()
    };
    let mut x = [0.0f32; 2];
    let grad = [g, 0.0];
    let mut momentum = [0.0f32; 2];
    let mut q = [1.0f32];
    let (mut p, mut r) = ([0.0f32; 2], [0.0f32; 1]);

    dion_step(
        shape,
        &config,
        &mut x,
        &grad,
        StepState {
            momentum: &mut momentum,
            q: &mut q,
        },
        StepScratch {
            p: &mut p,
            r: &mut r,
        },
    )
    .unwrap();

    let expected_q = g as f64 / (g as f64 + f32::MAX as f64);
    assert!(
        (q[0] as f64 - expected_q).abs() <= 1e-6 * expected_q,
        "Q = {}, expected g / (g + f32::MAX) = {expected_q}",
        q[0]
    );
    let expected_x = -0.01 * 2f64.sqrt() * expected_q;
    assert!(
        (x[0] as f64 - expected_x).abs() <= 1e-6 * expected_x.abs(),
        "X[0] = {}, expected {expected_x}",
        x[0]
    );
    assert_eq!(x[1], 0.0);
}

/// The same division with a subnormal norm: `‖R_col‖` rounded to a subnormal number keeps only a
/// few significant bits, so `R / (‖R_col‖ + ε)` must not be formed from it.
///
/// Derivation. A 2 × 2 parameter at rank 1, `X = 0`, `M = 0`, `G = [[s, s], [0, 0]]` with
/// `s = 2⁻¹³⁹` (subnormal in f32), `Q₀ = e₁`, `ε = 2⁻¹⁴⁹` (the smallest positive f32).
/// `B·Q₀ = (s, 0)`, so `P = e₁` and `R = Bᵀ·P = (s, s)` with `‖R‖ = √2·s ≈ 1448.15·2⁻¹⁴⁹`, which
/// f32 can only store as `1448·2⁻¹⁴⁹`. The new `Q` is `(s, s) / (√2·s + ε)`, each entry
/// `1024 / (1024·√2 + 1) ≈ 0.706621`. Dividing by the rounded norm instead gives `1024 / 1449`,
/// off by 1e-4 relative. `X ← −lr·P Qᵀ` has first row `−0.01·Q` and second row 0.
#[test]
fn dion_step_with_subnormal_column_norm() {
    // 2⁻¹³⁹ = 1024·2⁻¹⁴⁹, built from its bits (2f32.powi(-139) underflows through 2¹³⁹ = ∞).
    let s = f32::from_bits(1 << 10);
    let shape = StepShape::new(2, 2, 1).unwrap();
    let config = DionConfig {
        lr: 0.01f32,
        momentum: 0.95,
        weight_decay: 0.0,
        epsilon: f32::from_bits(1),
        ..DionConfig::default()
    };
    let mut x = [0.0f32; 4];
    let grad = [s, s, 0.0, 0.0];
    let mut momentum = [0.0f32; 4];
    let mut q = [1.0f32, 0.0];
    let (mut p, mut r) = ([0.0f32; 2], [0.0f32; 2]);

    dion_step(
        shape,
        &config,
        &mut x,
        &grad,
        StepState {
            momentum: &mut momentum,
            q: &mut q,
        },
        StepScratch {
            p: &mut p,
            r: &mut r,
        },
    )
    .unwrap();

    let expected_q = 1024.0 / (1024.0 * 2f64.sqrt() + 1.0);
    for (i, &value) in q.iter().enumerate() {
        assert!(
            (value as f64 - expected_q).abs() <= 1e-6 * expected_q,
            "Q[{i}] = {value}, expected 1024 / (1024·√2 + 1) = {expected_q}"
        );
    }
    for (j, &value) in x[..2].iter().enumerate() {
        let expected_x = -0.01 * expected_q;
        assert!(
            (value as f64 - expected_x).abs() <= 1e-6 * expected_x.abs(),
            "X[0][{j}] = {value}, expected {expected_x}"
        );
    }
    assert_eq!(&x[2..], &[0.0, 0.0]);
}

/// MGS on a matrix whose last column loses most of its norm to a column of an earlier block of
/// columns: the QR must still return orthonormal columns. (A blocked variant that ran the second
/// sweep only inside a block of 8 columns left `|q₀·q₉| ≈ 13·n·ε` here.)
///
/// Bound. With reorthogonalisation, every inner product `qₗ·qⱼ` is the rounding of the last
/// sweep, at most about `(n + j)·u` with `u = ε/2`, so `max |QᵀQ − I| ≤ 2·n·ε` leaves room.
/// The matrix: column 0 is `−8e₀ + e₈`, column 8 is `−e₈`, column 9 is `e₀ − 2⁻¹⁴·e₆`, columns 1
/// and 7 are `e₇` and `−e₉`, columns 2 to 6 are zero (the QR completes them).
#[test]
fn qr_second_sweep_covers_earlier_blocks() {
    const N: usize = 10;
    let mut a = [0.0f32; N * N];
    let mut set = |i: usize, j: usize, value: f32| a[i * N + j] = value;
    set(0, 0, -8.0);
    set(8, 0, 1.0);
    set(7, 1, 1.0);
    set(9, 7, -1.0);
    set(8, 8, -1.0);
    set(0, 9, 1.0);
    set(6, 9, -(2f32.powi(-14)));
    let original = a;

    let mut r = [0.0f32; N * N];
    let info = qr_in_place(
        MatMut::from_slice(&mut a, N, N).unwrap(),
        Some(MatMut::from_slice(&mut r, N, N).unwrap()),
        QrOptions::default(),
    )
    .unwrap();

    // Columns 0, 1, 7, 8 and 9 are independent, 2 to 6 are zero.
    assert_eq!(info.rank, 5);
    let bound = 2.0 * N as f64 * f32::EPSILON as f64;
    for l in 0..N {
        for j in 0..N {
            let dot: f64 = (0..N)
                .map(|i| a[i * N + l] as f64 * a[i * N + j] as f64)
                .sum();
            let target = if l == j { 1.0 } else { 0.0 };
            assert!(
                (dot - target).abs() <= bound,
                "q{l}·q{j} = {dot:e}, expected {target} within {bound:e}"
            );
        }
    }

    // Q·R reproduces A to a few n·ε of each column's norm.
    for j in 0..N {
        let norm: f64 = (0..N)
            .map(|i| (original[i * N + j] as f64).powi(2))
            .sum::<f64>()
            .sqrt();
        for i in 0..N {
            let product: f64 = (0..N)
                .map(|l| a[i * N + l] as f64 * r[l * N + j] as f64)
                .sum();
            let error = (product - original[i * N + j] as f64).abs();
            assert!(
                error <= 4.0 * N as f64 * f32::EPSILON as f64 * norm,
                "(QR)[{i}][{j}] = {product:e}, A = {}",
                original[i * N + j]
            );
        }
    }
}

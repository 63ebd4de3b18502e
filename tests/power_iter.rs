//! PowerIter1 (`power_iter1`, `power_iter1_transposed`) and `normalize_columns`.
//!
//! PowerIter1(B; Q) computes `P = orth(B·Q)` and `R = Bᵀ·P`. In exact arithmetic
//! `P Rᵀ = P Pᵀ B` is then an identity, whatever `P` the QR returns. The only rounding between
//! the two sides is that of the product `R = Bᵀ·P`. With one accumulator per entry and `n`
//! terms, each entry of `R` is off by at most `γₙ Σₜ |Bₜⱼ||Pₜₗ|` (the bound the kernels
//! document), so `|P Rᵀ − P Pᵀ B|ᵢⱼ ≤ γₙ (|P| |P|ᵀ |B|)ᵢⱼ` entry by entry. The tests evaluate
//! both sides in f64 with a compensated dot product and allow `3u` more for that evaluation.
//!
//! Warm-started repetition, `Q ← colnorm(R)`, is subspace iteration on `B Bᵀ`: the column
//! normalisation is a positive diagonal scaling, which does not change the Q factor of the next
//! QR, so after `t` calls `P` spans the first columns of `(B Bᵀ)^{t−1} B Q₀`, nested column by
//! column. For the leading `l` columns, with `ρₗ = σₗ₊₁/σₗ` and `Tₗ = tan θ(Q₀[:, :l], V_l)`:
//! `tan θ(P[:, :l], U_l) ≤ ρₗ^{2t−1} Tₗ`. Write a block of columns as `X = U_l C₁ + U_⊥ C₂`:
//! then `tan θ(X, U_l) = ‖C₂ C₁⁻¹‖₂`, and multiplying by `B` (from `V`-coordinates) or by
//! `B Bᵀ` scales `C₁` by `Σ_l` or `Σ_l²` and `C₂` by at most `σₗ₊₁` or `σₗ₊₁²`. That gives one
//! factor `ρₗ` for `B Q₀` and two per later call. The convergence test derives the number of
//! calls for a tolerance from this.

use dion_kernel::engine::{
    matmul, matmul_tn, normalize_columns, power_iter1, power_iter1_transposed, qr_in_place, MatMut,
    MatRef, QrOptions,
};
use dion_kernel::{Error, Operand, Scalar, SplitMix64};
use nalgebra::DMatrix;
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn epsilon<T: Scalar>() -> f64 {
    T::EPSILON.to_f64()
}

/// `(a·b, e)` with `a·b = p + e` exactly (barring underflow), using one fused multiply-add.
fn two_product(a: f64, b: f64) -> (f64, f64) {
    let p = a * b;
    (p, a.mul_add(b, -p))
}

/// `(a + b, e)` with `a + b = s + e` exactly (Knuth's branch-free TwoSum).
fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let b_virtual = s - a;
    let a_virtual = s - b_virtual;
    (s, (a - a_virtual) + (b - b_virtual))
}

/// `Σ xᵢ·yᵢ`, accumulated with TwoSum and TwoProduct so the result is as accurate as if computed
/// in twice the f64 precision and then rounded.
fn compensated_dot(pairs: impl IntoIterator<Item = (f64, f64)>) -> f64 {
    let mut sum = 0.0;
    let mut error = 0.0;
    for (x, y) in pairs {
        let (product, product_error) = two_product(x, y);
        let (new_sum, sum_error) = two_sum(sum, product);
        sum = new_sum;
        error += product_error + sum_error;
    }
    sum + error
}

fn to_f64<T: Scalar>(values: &[T]) -> Vec<f64> {
    values.iter().map(|v| v.to_f64()).collect()
}

fn bits<T: Scalar>(values: &[T]) -> Vec<u64> {
    values.iter().map(|v| v.to_bits_u64()).collect()
}

fn round_to<T: Scalar>(values: &[f64]) -> Vec<T> {
    values.iter().map(|&v| T::from_f64(v)).collect()
}

fn gaussian<T: Scalar>(seed: u64, len: usize) -> Vec<T> {
    let mut rng = SplitMix64::new(seed);
    (0..len).map(|_| T::from_f64(rng.next_gaussian())).collect()
}

/// Copies the row-major `rows × cols` slice into an nalgebra matrix in f64.
fn dmatrix<T: Scalar>(values: &[T], rows: usize, cols: usize) -> DMatrix<f64> {
    DMatrix::from_row_slice(rows, cols, &to_f64(values))
}

fn largest_singular_value(m: &DMatrix<f64>) -> f64 {
    if m.is_empty() {
        return 0.0;
    }
    m.singular_values().iter().cloned().fold(0.0, f64::max)
}

/// `(P, R, rank)` from one call of `power_iter1` on row-major `B` (`n × m`) and `Q` (`m × k`).
fn run_power_iter1<T: Scalar>(
    b: &[T],
    q: &[T],
    n: usize,
    m: usize,
    k: usize,
    stale: T,
) -> (Vec<T>, Vec<T>, usize) {
    let mut p = vec![stale; n * k];
    let mut r = vec![stale; m * k];
    let info = power_iter1(
        MatRef::from_slice(b, n, m).unwrap(),
        MatRef::from_slice(q, m, k).unwrap(),
        MatMut::from_slice(&mut p, n, k).unwrap(),
        MatMut::from_slice(&mut r, m, k).unwrap(),
        QrOptions::default(),
    )
    .unwrap();
    (p, r, info.rank)
}

/// `(P, R, rank)` from one call of `power_iter1_transposed` on row-major `B` (`m × n`).
fn run_power_iter1_transposed<T: Scalar>(
    b: &[T],
    q: &[T],
    n: usize,
    m: usize,
    k: usize,
    stale: T,
) -> (Vec<T>, Vec<T>, usize) {
    let mut p = vec![stale; n * k];
    let mut r = vec![stale; m * k];
    let info = power_iter1_transposed(
        MatRef::from_slice(b, m, n).unwrap(),
        MatRef::from_slice(q, m, k).unwrap(),
        MatMut::from_slice(&mut p, n, k).unwrap(),
        MatMut::from_slice(&mut r, m, k).unwrap(),
        QrOptions::default(),
    )
    .unwrap();
    (p, r, info.rank)
}

fn transpose<T: Copy>(a: &[T], rows: usize, cols: usize) -> Vec<T> {
    (0..cols)
        .flat_map(|j| (0..rows).map(move |i| a[i * cols + j]))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// One call: P Rᵀ = P Pᵀ B, and the pieces are the documented ones
// ---------------------------------------------------------------------------------------------

/// `(n, m, k)`: `B` is `n × m`, `Q` is `m × k`, `k ≤ n`; sizes 1, 2, 3, 17, 33 and beyond one
/// tile (16).
fn shapes() -> impl Strategy<Value = (usize, usize, usize)> {
    let sizes = vec![1usize, 2, 3, 5, 17, 33, 40];
    (
        prop::sample::select(sizes.clone()),
        prop::sample::select(sizes),
    )
        .prop_flat_map(|(n, m)| {
            let listed: Vec<usize> = [1usize, 2, 3, 17, 33]
                .into_iter()
                .filter(|&k| k <= n)
                .collect();
            (
                Just(n),
                Just(m),
                prop_oneof![prop::sample::select(listed), 1..=n],
            )
        })
}

fn problems() -> impl Strategy<Value = (usize, usize, usize, Vec<f64>, Vec<f64>)> {
    shapes().prop_flat_map(|(n, m, k)| {
        (
            Just(n),
            Just(m),
            Just(k),
            prop::collection::vec(-1.0f64..1.0, n * m),
            prop::collection::vec(-1.0f64..1.0, m * k),
        )
    })
}

fn projection_identity<T: Scalar>(
    n: usize,
    m: usize,
    k: usize,
    b: &[f64],
    q: &[f64],
) -> Result<(), TestCaseError> {
    let (b, q): (Vec<T>, Vec<T>) = (round_to(b), round_to(q));
    let (p, r, rank) = run_power_iter1(&b, &q, n, m, k, T::from_f64(f64::NAN));

    // P is the QR of B·Q and R is Bᵀ·P, computed by the public kernels: bit for bit the same.
    let mut bq = vec![T::ZERO; n * k];
    matmul(
        MatMut::from_slice(&mut bq, n, k).unwrap(),
        MatRef::from_slice(&b, n, m).unwrap(),
        MatRef::from_slice(&q, m, k).unwrap(),
    )
    .unwrap();
    let info = qr_in_place(
        MatMut::from_slice(&mut bq, n, k).unwrap(),
        None,
        QrOptions::default(),
    )
    .unwrap();
    prop_assert_eq!(rank, info.rank);
    prop_assert_eq!(bits(&p), bits(&bq), "P differs from the QR of B·Q");
    let mut btp = vec![T::ZERO; m * k];
    matmul_tn(
        MatMut::from_slice(&mut btp, m, k).unwrap(),
        MatRef::from_slice(&b, n, m).unwrap(),
        MatRef::from_slice(&p, n, k).unwrap(),
    )
    .unwrap();
    prop_assert_eq!(bits(&r), bits(&btp), "R differs from Bᵀ·P");

    // P Rᵀ = P Pᵀ B, entry by entry, to γₙ (|P||P|ᵀ|B|) + 3u of the same (module docs).
    let (p, r, b) = (to_f64(&p), to_f64(&r), to_f64(&b));
    let u = epsilon::<T>() / 2.0;
    let gamma_n = n as f64 * u / (1.0 - n as f64 * u);
    let pt_b: Vec<f64> = (0..k * m)
        .map(|idx| compensated_dot((0..n).map(|t| (p[t * k + idx / m], b[t * m + idx % m]))))
        .collect();
    let abs_pt_abs_b: Vec<f64> = (0..k * m)
        .map(|idx| {
            (0..n)
                .map(|t| (p[t * k + idx / m] * b[t * m + idx % m]).abs())
                .sum()
        })
        .collect();
    for i in 0..n {
        for j in 0..m {
            let lhs = compensated_dot((0..k).map(|l| (p[i * k + l], r[j * k + l])));
            let rhs = compensated_dot((0..k).map(|l| (p[i * k + l], pt_b[l * m + j])));
            let scale: f64 = (0..k)
                .map(|l| p[i * k + l].abs() * abs_pt_abs_b[l * m + j])
                .sum();
            let bound = (gamma_n + 3.0 * u) * scale;
            prop_assert!(
                (lhs - rhs).abs() <= bound,
                "(P Rᵀ)[{}][{}] = {:e}, (P Pᵀ B) = {:e}, bound {:e}",
                i,
                j,
                lhs,
                rhs,
                bound
            );
        }
    }
    Ok(())
}

/// The transposed form reads `B` (`m × n`) in place. Its products `P = Bᵀ·Q` and `R = B·P` sum
/// in the same order as `P = (Bᵀ)·Q` and `R = (Bᵀ)ᵀ·P` on an explicit transposed copy. In both,
/// every entry is one sum over the inner index in increasing order, started from zero, with a
/// separate multiply and add, whichever operand is read transposed. The QR then sees the same
/// `P`, so the two must agree bit for bit, not just to rounding.
fn transposed_matches_copy<T: Scalar>(
    n: usize,
    m: usize,
    k: usize,
    bt: &[f64],
    q: &[f64],
) -> Result<(), TestCaseError> {
    // `bt` is the n × m matrix W the iteration runs on; B = Wᵀ is what the transposed form reads.
    let w: Vec<T> = round_to(bt);
    let b = transpose(&w, n, m);
    let q: Vec<T> = round_to(q);
    let (p, r, rank) = run_power_iter1(&w, &q, n, m, k, T::ZERO);
    let (p_t, r_t, rank_t) = run_power_iter1_transposed(&b, &q, n, m, k, T::ZERO);
    prop_assert_eq!(rank, rank_t);
    prop_assert_eq!(bits(&p), bits(&p_t), "P");
    prop_assert_eq!(bits(&r), bits(&r_t), "R");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn power_iter1_projection_identity_f32((n, m, k, b, q) in problems()) {
        projection_identity::<f32>(n, m, k, &b, &q)?;
    }

    #[test]
    fn power_iter1_projection_identity_f64((n, m, k, b, q) in problems()) {
        projection_identity::<f64>(n, m, k, &b, &q)?;
    }

    #[test]
    fn transposed_matches_explicit_transpose_f32((n, m, k, b, q) in problems()) {
        transposed_matches_copy::<f32>(n, m, k, &b, &q)?;
    }

    #[test]
    fn transposed_matches_explicit_transpose_f64((n, m, k, b, q) in problems()) {
        transposed_matches_copy::<f64>(n, m, k, &b, &q)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Warm-started repetition converges to the top singular vectors
// ---------------------------------------------------------------------------------------------

/// A test matrix `B = U diag(σ) Vᵀ` (`n × m`, `m ≤ n`) and its SVD as computed by nalgebra from
/// the stored entries (so rounding `B` to f32 does not count as an error of the iteration).
struct GapProblem<T> {
    n: usize,
    m: usize,
    rank: usize,
    b: Vec<T>,
    u: DMatrix<f64>,
    v: DMatrix<f64>,
    sigma: Vec<f64>,
}

/// `σ = [1, 0.5, 0.25 | 0.025, …]`: a gap `σ_r/σ_{r+1} = 10` after rank 3, and ratios of 2
/// between the leading three, so their individual directions converge too (each at `ρ² = 1/4`
/// per iteration). The tail decreases from 0.025 to 0.0125.
fn gap_problem<T: Scalar>(seed: u64) -> GapProblem<T> {
    let (n, m, rank) = (48, 32, 3);
    let sigma_exact: Vec<f64> = (0..m)
        .map(|i| match i {
            0 => 1.0,
            1 => 0.5,
            2 => 0.25,
            _ => 0.025 * (1.0 - 0.5 * (i - 3) as f64 / (m - 4) as f64),
        })
        .collect();
    let u_exact = DMatrix::from_row_slice(n, m, &gaussian::<f64>(seed, n * m))
        .qr()
        .q();
    let v_exact = DMatrix::from_row_slice(m, m, &gaussian::<f64>(seed + 1, m * m))
        .qr()
        .q();
    let b_exact = &u_exact
        * DMatrix::from_diagonal(&nalgebra::DVector::from_vec(sigma_exact))
        * v_exact.transpose();
    let b: Vec<T> = (0..n * m)
        .map(|idx| T::from_f64(b_exact[(idx / m, idx % m)]))
        .collect();

    let svd = dmatrix(&b, n, m).svd(true, true);
    GapProblem {
        n,
        m,
        rank,
        u: svd.u.unwrap(),
        v: svd.v_t.unwrap().transpose(),
        sigma: svd.singular_values.iter().cloned().collect(),
        b,
    }
}

/// `sin θ` between the spans of the first `l` columns of `P` and of `U`: `‖(I − U_l U_lᵀ) P_l‖₂`.
fn subspace_distance(p: &DMatrix<f64>, u: &DMatrix<f64>, l: usize) -> f64 {
    let p_l = p.columns(0, l);
    let u_l = u.columns(0, l);
    let outside = p_l - u_l * (u_l.transpose() * p_l);
    largest_singular_value(&outside)
}

/// `tan θ` between the spans of `Q₀[:, :l]` and `V_l`: `‖V_⊥ᵀ Q_l (V_lᵀ Q_l)⁻¹‖₂`.
fn initial_tangent(q0: &DMatrix<f64>, v: &DMatrix<f64>, l: usize) -> f64 {
    let q_l = q0.columns(0, l);
    let inside = (v.columns(0, l).transpose() * q_l)
        .try_inverse()
        .expect("Q₀ has no component along V_l");
    let outside = v.columns(l, v.ncols() - l).transpose() * q_l;
    largest_singular_value(&(outside * inside))
}

/// Bounds on the iterate after `t` calls, from the module docs plus a rounding floor.
struct ConvergenceBounds {
    /// Bound on `sin θ(P[:, :l], U_l)` for `l = 1 … r` (index `l − 1`).
    subspace: Vec<f64>,
    /// Bound on `‖P colnorm(R)ᵀ − U_r D V_rᵀ‖_F`, `D = diag(σ/(σ + ε))`.
    polar: f64,
}

/// Estimates the attainable accuracy of `sin θ(P[:, :l], U_l)` in precision `ε`, to first order.
///
/// Each call computes `B Bᵀ P` with an error of about `(n + m)·ε·σ₁²` in norm: the two
/// products' `γₘ` and `γₙ` times `‖B‖²`, with the QR's `O(n·ε)` included. A perturbation `E` of
/// `B Bᵀ` moves its leading `l`-dimensional invariant subspace by at most `‖E‖/(σₗ² − σₗ₊₁²)`
/// (Davis-Kahan sin θ theorem). Later calls contract earlier errors by `ρₗ² ≤ 1/4`, so the sum
/// over all calls is at most 4/3 of one error, and the factor 2 covers that. This is a
/// worst-case estimate: the measured distances level off far below it.
fn rounding_floor(eps: f64, n: usize, m: usize, sigma: &[f64], l: usize) -> f64 {
    2.0 * (n + m) as f64 * eps * sigma[0] * sigma[0] / (sigma[l - 1].powi(2) - sigma[l].powi(2))
}

fn convergence_bounds(
    t: usize,
    tangents: &[f64],
    sigma: &[f64],
    floors: &[f64],
    n: usize,
    eps: f64,
) -> ConvergenceBounds {
    let r = tangents.len();
    let subspace: Vec<f64> = (1..=r)
        .map(|l| {
            let rho = sigma[l] / sigma[l - 1];
            (rho.powi(2 * t as i32 - 1) * tangents[l - 1] + floors[l - 1]).min(1.0)
        })
        .collect();

    // Column l of P is within e = δ_{l−1} + δ_l (+ e²) of ±u_l: its part outside U_l is at most
    // δ_l, and its part in U_{l−1} at most δ_{l−1} because it is orthogonal to P[:, :l−1]. Then
    // R's column Bᵀp_l is within f = σ₁δ_{l−1} + σ_{l+1}δ_l + σ_l e² of ±σ_l v_l (plus the γₙ·σ₁
    // rounding of the product), and normalising a vector of norm σ_l moves it by at most 2f/σ_l.
    let mut polar = 0.0;
    for l in 1..=r {
        let previous = if l > 1 { subspace[l - 2] } else { 0.0 };
        let e = previous + subspace[l - 1];
        let f = sigma[0] * previous
            + sigma[l] * subspace[l - 1]
            + sigma[l - 1] * e * e
            + (n + 2) as f64 * eps * sigma[0];
        polar += e + e * e + 2.0 * f / sigma[l - 1];
    }
    ConvergenceBounds { subspace, polar }
}

/// Runs `Q ← colnorm(R)` after each PowerIter1 call on a problem with a spectral gap and checks,
/// after every call, the distance of `span P` from `U_l` (l = 1 … r) and of `P colnorm(R)ᵀ`
/// from `U_r D V_rᵀ` against the derived bounds. The number of calls is the smallest `t` whose
/// bound on the latter is below `tolerance`.
fn warm_started_convergence<T: Scalar>(tolerance: f64) {
    let problem = gap_problem::<T>(2024);
    let GapProblem { n, m, rank: r, .. } = problem;
    let eps = epsilon::<T>();
    let normalize_epsilon = 1e-8;

    let q0: Vec<T> = gaussian(7, m * r);
    let tangents: Vec<f64> = (1..=r)
        .map(|l| initial_tangent(&dmatrix(&q0, m, r), &problem.v, l))
        .collect();
    let floors: Vec<f64> = (1..=r)
        .map(|l| rounding_floor(eps, n, m, &problem.sigma, l))
        .collect();
    let iterations = (1..=30)
        .find(|&t| {
            convergence_bounds(t, &tangents, &problem.sigma, &floors, n, eps).polar <= tolerance
        })
        .unwrap_or_else(|| {
            panic!("no t ≤ 30 reaches {tolerance:e}: tan θ₀ = {tangents:?}, floors = {floors:?}")
        });

    // The span alone needs fewer calls: sin θ_r ≤ ρ_r^{2t−1}·T_r + floor ≤ tolerance gives
    // t ≥ (ln(T_r/(tolerance − floor))/ln(1/ρ_r) + 1)/2, with ρ_r = σ_{r+1}/σ_r = 1/10. Each call
    // applies B Bᵀ once, so the rate per call is ρ_r², not ρ_r.
    let rho_r = problem.sigma[r] / problem.sigma[r - 1];
    let span_iterations =
        (((tangents[r - 1] / (tolerance - floors[r - 1])).ln() / (1.0 / rho_r).ln() + 1.0) / 2.0)
            .ceil()
            .max(1.0) as usize;
    assert!(span_iterations <= iterations);

    // U_r D V_rᵀ with D = diag(σ_l/(σ_l + ε)), the limit of P colnorm(R)ᵀ (ε added to the norm).
    let mut target = DMatrix::zeros(n, m);
    for l in 0..r {
        let scale = problem.sigma[l] / (problem.sigma[l] + normalize_epsilon);
        target += problem.u.column(l) * problem.v.column(l).transpose() * scale;
    }

    let mut q = q0.clone();
    let mut p = vec![T::ZERO; n * r];
    let mut r_buf = vec![T::ZERO; m * r];
    for t in 1..=iterations {
        power_iter1(
            MatRef::from_slice(&problem.b, n, m).unwrap(),
            MatRef::from_slice(&q, m, r).unwrap(),
            MatMut::from_slice(&mut p, n, r).unwrap(),
            MatMut::from_slice(&mut r_buf, m, r).unwrap(),
            QrOptions::default(),
        )
        .unwrap();
        normalize_columns(
            MatMut::from_slice(&mut r_buf, m, r).unwrap(),
            T::from_f64(normalize_epsilon),
        );
        q.copy_from_slice(&r_buf);

        let bounds = convergence_bounds(t, &tangents, &problem.sigma, &floors, n, eps);
        let p64 = dmatrix(&p, n, r);
        for l in 1..=r {
            let distance = subspace_distance(&p64, &problem.u, l);
            assert!(
                distance <= bounds.subspace[l - 1],
                "after {t} calls sin θ(P[:, :{l}], U_{l}) = {distance:e} > {:e}",
                bounds.subspace[l - 1]
            );
        }
        if t == span_iterations {
            let distance = subspace_distance(&p64, &problem.u, r);
            assert!(
                distance <= tolerance,
                "after the derived {t} calls sin θ(P, U_r) = {distance:e}"
            );
        }
        let polar_error = (&p64 * dmatrix(&r_buf, m, r).transpose() - &target).norm();
        assert!(
            polar_error <= bounds.polar,
            "after {t} calls ‖P colnorm(R)ᵀ − U_r V_rᵀ‖_F = {polar_error:e} > {:e}",
            bounds.polar
        );
    }

    let p64 = dmatrix(&p, n, r);
    let u_r = problem.u.columns(0, r);
    let projector_gap = largest_singular_value(&(&p64 * p64.transpose() - u_r * u_r.transpose()));
    let polar_error = (&p64 * dmatrix(&r_buf, m, r).transpose() - &target).norm();
    assert!(
        projector_gap <= tolerance,
        "‖P Pᵀ − U_r U_rᵀ‖₂ = {projector_gap:e} after {iterations} calls"
    );
    assert!(
        polar_error <= tolerance,
        "‖P colnorm(R)ᵀ − U_r V_rᵀ‖_F = {polar_error:e} after {iterations} calls"
    );
}

/// f64: the estimated floors are below 1e-12, so 1e-10 is reached by the contraction alone. The
/// span of P converges at ρ_r² = 1/100 per call; the individual directions, which
/// `P colnorm(R)ᵀ` needs, at 1/4 per call, and the bound carries the factors tan θ₀ and σ₁/σ_l,
/// so the derived count is around 20 calls for this seed.
#[test]
fn warm_started_convergence_f64() {
    warm_started_convergence::<f64>(1e-10);
}

/// f32: the estimated floors are 2.5e-5, 1e-4 and 3.1e-4 for l = 1, 2, 3, which the σ₁/σ_l
/// factors of the polar bound turn into about 2e-3; 5e-3 leaves room above that. The floors are
/// worst-case estimates: the measured distances level off near 1e-7.
#[test]
fn warm_started_convergence_f32() {
    warm_started_convergence::<f32>(5e-3);
}

// ---------------------------------------------------------------------------------------------
// Column normalisation
// ---------------------------------------------------------------------------------------------

/// R = [[3, 0, 6], [4, 0, 8]], ε = 0.5, worked by hand: the column norms are exactly 5, 0 and 10
/// (the scaled sums are exact), so the columns become [3, 4]/5.5, [0, 0]/0.5 = 0 and [6, 8]/10.5,
/// each entry one correctly rounded division. Adding ε to the squared norm instead would give
/// 3/√25.5 = 0.594, and ignoring it 0.6.
fn normalize_case<T: Scalar>() {
    let mut r: Vec<T> = round_to(&[3.0, 0.0, 6.0, 4.0, 0.0, 8.0]);
    normalize_columns(MatMut::from_slice(&mut r, 2, 3).unwrap(), T::from_f64(0.5));

    let div = |x: f64, y: f64| T::from_f64(x) / T::from_f64(y);
    let expected = [
        div(3.0, 5.5),
        T::ZERO,
        div(6.0, 10.5),
        div(4.0, 5.5),
        T::ZERO,
        div(8.0, 10.5),
    ];
    assert_eq!(
        bits(&r),
        bits(&expected),
        "normalised R = {r:?}, expected {expected:?}"
    );
    assert!(
        (r[0].to_f64() - 0.545_454_545).abs() < 1e-6,
        "3/5.5 = {:?}",
        r[0]
    );
}

#[test]
fn normalize_columns_adds_epsilon_to_norm_f32() {
    normalize_case::<f32>();
    // The same divisions as literals (from an independent evaluation of 3/5.5 and 4/5.5).
    let mut r = [3.0f32, 4.0];
    normalize_columns(MatMut::from_slice(&mut r, 2, 1).unwrap(), 0.5);
    assert_eq!(r, [0.545_454_56, 0.727_272_75]);
}

#[test]
fn normalize_columns_adds_epsilon_to_norm_f64() {
    normalize_case::<f64>();
}

/// A column whose norm overflows is divided in scaled form and still comes out as a unit
/// vector, `[1, 1]/√2`; its neighbour is unaffected. The scaled quotient is
/// `(MAX·2⁻¹²⁶)/(√2·MAX·2⁻¹²⁶ + ε·2⁻¹²⁶)`: the scaling is exact, the norm and the division
/// round once each, and ε·2⁻¹²⁶ is far below one ulp, so 4ε covers it.
#[test]
fn normalize_columns_overflowing_norm() {
    let mut r = [f32::MAX, 3.0, f32::MAX, 4.0];
    normalize_columns(MatMut::from_slice(&mut r, 2, 2).unwrap(), 1e-8);
    let half_sqrt2 = core::f32::consts::FRAC_1_SQRT_2;
    assert!(
        (r[0] - half_sqrt2).abs() <= 4.0 * f32::EPSILON,
        "r[0] = {}",
        r[0]
    );
    assert!(
        (r[2] - half_sqrt2).abs() <= 4.0 * f32::EPSILON,
        "r[2] = {}",
        r[2]
    );
    assert_eq!([r[1], r[3]], [0.6, 0.8]);
}

/// Tiny columns: the norm is computed without underflow, so a column of subnormals normalises to
/// a unit vector when ε = 0 and is damped (not blown up) when ε dominates.
#[test]
fn normalize_columns_subnormal() {
    let tiny = f32::from_bits(3);
    let mut r = [3.0 * tiny, 4.0 * tiny];
    assert_eq!(r, [f32::from_bits(9), f32::from_bits(12)]);
    normalize_columns(MatMut::from_slice(&mut r, 2, 1).unwrap(), 0.0);
    assert_eq!(r, [0.6, 0.8]);

    let mut damped = [f32::from_bits(9), f32::from_bits(12)];
    normalize_columns(MatMut::from_slice(&mut damped, 2, 1).unwrap(), 1e-8);
    assert!(
        damped.iter().all(|v| v.is_finite() && v.abs() < 1e-30),
        "{damped:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Stale output buffers and errors
// ---------------------------------------------------------------------------------------------

/// `P` and `R` are outputs only: NaN, ±∞ or garbage left in them changes no bit of the result.
fn stale_buffers_case<T: Scalar>() {
    let (n, m, k) = (17, 9, 3);
    let b: Vec<T> = gaussian(91, n * m);
    let q: Vec<T> = gaussian(92, m * k);
    let bt = transpose(&b, n, m);
    let (p_clean, r_clean, _) = run_power_iter1(&b, &q, n, m, k, T::ZERO);
    let (pt_clean, rt_clean, _) = run_power_iter1_transposed(&bt, &q, n, m, k, T::ZERO);
    for stale in [f64::NAN, f64::INFINITY, -1e30] {
        let stale = T::from_f64(stale);
        let (p, r, _) = run_power_iter1(&b, &q, n, m, k, stale);
        assert_eq!(bits(&p), bits(&p_clean), "P with stale {stale:?}");
        assert_eq!(bits(&r), bits(&r_clean), "R with stale {stale:?}");
        let (p, r, _) = run_power_iter1_transposed(&bt, &q, n, m, k, stale);
        assert_eq!(
            bits(&p),
            bits(&pt_clean),
            "transposed P with stale {stale:?}"
        );
        assert_eq!(
            bits(&r),
            bits(&rt_clean),
            "transposed R with stale {stale:?}"
        );
    }
    assert!(p_clean.iter().chain(&r_clean).all(|v| v.is_finite()));
}

#[test]
fn stale_output_buffers_f32() {
    stale_buffers_case::<f32>();
}

#[test]
fn stale_output_buffers_f64() {
    stale_buffers_case::<f64>();
}

/// NaN in B: `Err(NonFinite)` about `P = B·Q`, and R untouched.
#[test]
fn power_iter1_rejects_nan_input() {
    let (n, m, k) = (4, 3, 2);
    let mut b: Vec<f32> = gaussian(93, n * m);
    b[5] = f32::NAN;
    let q: Vec<f32> = gaussian(94, m * k);
    let mut p = vec![0.0f32; n * k];
    let mut r = vec![7.0f32; m * k];
    let result = power_iter1(
        MatRef::from_slice(&b, n, m).unwrap(),
        MatRef::from_slice(&q, m, k).unwrap(),
        MatMut::from_slice(&mut p, n, k).unwrap(),
        MatMut::from_slice(&mut r, m, k).unwrap(),
        QrOptions::default(),
    );
    // B's row 1 contains the NaN, so row 1 of P = B·Q is NaN in every column; the first is column 0.
    assert_eq!(
        result,
        Err(Error::NonFinite {
            operand: Operand::P,
            row: 1,
            col: 0
        })
    );
    assert_eq!(r, vec![7.0; m * k]);
}

#[test]
fn power_iter1_rejects_rank_above_rows() {
    let (n, m, k) = (2, 3, 3);
    let b = vec![1.0f64; n * m];
    let q = vec![1.0f64; m * k];
    let mut p = vec![0.0; n * k];
    let mut r = vec![0.0; m * k];
    let result = power_iter1(
        MatRef::from_slice(&b, n, m).unwrap(),
        MatRef::from_slice(&q, m, k).unwrap(),
        MatMut::from_slice(&mut p, n, k).unwrap(),
        MatMut::from_slice(&mut r, m, k).unwrap(),
        QrOptions::default(),
    );
    assert_eq!(result, Err(Error::InvalidRank { rank: 3, max: 2 }));
}

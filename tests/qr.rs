//! Properties of the modified Gram-Schmidt QR (`qr_in_place`) in f32 and f64.
//!
//! # Tolerances
//!
//! All bounds come from the standard rounding model `fl(x ∘ y) = (x ∘ y)(1 + δ)`, `|δ| ≤ u`,
//! with `u = ε/2`. They are applied to modified Gram-Schmidt as `qr_in_place` documents it.
//! Column `j` is scaled by a power of two (exact), then goes through `s` sweeps (`s = 2` with
//! reorthogonalisation) of `v ← v − (q_l·v) q_l` for `l < j`, then `q_j = v/‖v‖`.
//! The orthogonality argument below needs every sweep to end with the projections against all
//! earlier columns, which the crate's panels of columns keep: it performs the projections of
//! this column-by-column loop in the same order, bit for bit ([`column_by_column_mgs`]).
//!
//! Orthogonality. A computed dot product of length `n` is off by at most `γₙ‖q_l‖‖v‖ ≈ n·u‖v‖`
//! (Cauchy-Schwarz on `Σ|q||v|`), and every later update of the sweep adds a rounding error of
//! about `u‖v‖`, so after the last sweep `|q_l·v| ≤ (n + j + 2)·u‖v‖` to first order. The first
//! sweep has already removed all but `O((n + j)·u·κ)` of `v`'s component along the earlier
//! columns, so the second sweep runs on a `v` whose norm is at least `‖a_j‖/κ` and leaves it
//! almost unchanged: `|q_l·q_j| ≤ (n + j + 2)·u`. The diagonal is set by the norm: a sum of `n`
//! squares is off by `γₙ`, the square root and the division by `u` each, so
//! `|q_j·q_j − 1| ≤ (n + 4)·u`. Both are below [`orthogonality_bound`] `= (n + 3k)·ε`, which
//! keeps a factor of two for the second-order terms. The first-order argument needs
//! `(n + 4)·u·κ ≪ 1`; the random tests check this precondition from nalgebra's SVD. Rozložník
//! ("Numerics of Gram-Schmidt orthogonalization") summarises the published results that this
//! argument agrees with: classical or modified Gram-Schmidt with one reorthogonalisation keeps
//! the loss of orthogonality at the level of `u` for numerically non-singular input (Giraud,
//! Langou, Rozložník and van den Eshof, Numer. Math. 2005, for the classical variant), while one
//! sweep of MGS loses `O(u·κ)` (Björck and Paige). So the single-sweep tests check the diagonal
//! alone, or a bound scaled by a known `κ`.
//!
//! Reconstruction. The coefficient stored in `R` is exactly the one that was subtracted, so the
//! dot-product error moves into the orthogonality and not into `A − QR`. One update
//! `v − d·q` is off by at most `u(|d| + ‖v_new‖) ≤ 2u‖a_j‖`, adding the two sweeps' coefficients
//! in `R` costs `u|r_lj|`, and `r_jj·q_j = ρ·fl(v/ρ)` is off by `u‖v‖`. Hence, column by column,
//! `‖a_j − Q r_j‖ ≤ (3·s·j + 2)·u·‖a_j‖` ([`reconstruction_bound`]), plus `n·ε·‖a_j‖` for a
//! column that was replaced by the completion (the residual dropped there is at most the rank
//! threshold), plus an absolute `√n·k·η` (`η` the smallest subnormal) for entries of `R` that
//! fall into the subnormal range. The classical analyses state this backward stability of MGS as
//! `‖ΔA‖ ≤ c(m, n)·u·‖A‖` without fixing `c`; the count above fixes it for this implementation.
//!
//! Every measured quantity (`QᵀQ − I`, `A − QR`) is evaluated in f64 with a compensated dot
//! product, so the measurement adds an error of order `u_f64²`, not `u_f64`.

use dion_kernel::engine::{qr_in_place, MatMut, QrInfo, QrOptions};
use dion_kernel::typed::Matrix;
use dion_kernel::{Error, Operand, Scalar, SplitMix64};
use nalgebra::DMatrix;
use proptest::prelude::*;

const TWO_SWEEPS: QrOptions = QrOptions {
    reorthogonalize: true,
};
const ONE_SWEEP: QrOptions = QrOptions {
    reorthogonalize: false,
};

// ---------------------------------------------------------------------------------------------
// Measurement helpers
// ---------------------------------------------------------------------------------------------

fn epsilon<T: Scalar>() -> f64 {
    T::EPSILON.to_f64()
}

/// Returns the smallest positive subnormal value of `T`, `MIN_POSITIVE · ε`.
fn smallest_subnormal<T: Scalar>() -> f64 {
    T::MIN_POSITIVE.to_f64() * T::EPSILON.to_f64()
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

/// `offset + Σ xᵢ·yᵢ`, accumulated with TwoSum and TwoProduct so the result is as accurate as
/// if computed in twice the f64 precision and then rounded.
fn compensated_dot(pairs: impl IntoIterator<Item = (f64, f64)>, offset: f64) -> f64 {
    let mut sum = offset;
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

/// Computes the `k × k` matrix `QᵀQ − I` (row-major) of the row-major `n × k` matrix `q`.
fn gram_error<T: Scalar>(q: &[T], n: usize, k: usize) -> Vec<f64> {
    let q = to_f64(q);
    let mut out = vec![0.0; k * k];
    for l in 0..k {
        for j in 0..k {
            let identity = if l == j { -1.0 } else { 0.0 };
            out[l * k + j] =
                compensated_dot((0..n).map(|i| (q[i * k + l], q[i * k + j])), identity);
        }
    }
    out
}

/// `(max |QᵀQ − I|, ‖QᵀQ − I‖_F)`.
fn orthogonality<T: Scalar>(q: &[T], n: usize, k: usize) -> (f64, f64) {
    let gram = gram_error(q, n, k);
    let max = gram.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let frobenius = gram.iter().map(|v| v * v).sum::<f64>().sqrt();
    (max, frobenius)
}

/// `‖a_j − Q r_j‖₂` for every column `j`.
fn reconstruction_residuals<T: Scalar>(a: &[T], q: &[T], r: &[T], n: usize, k: usize) -> Vec<f64> {
    let (a, q, r) = (to_f64(a), to_f64(q), to_f64(r));
    (0..k)
        .map(|j| {
            let mut sum_sq = 0.0;
            for i in 0..n {
                let residual =
                    compensated_dot((0..k).map(|l| (q[i * k + l], -r[l * k + j])), a[i * k + j]);
                sum_sq += residual * residual;
            }
            sum_sq.sqrt()
        })
        .collect()
}

fn column_norms(a: &[f64], n: usize, k: usize) -> Vec<f64> {
    (0..k)
        .map(|j| {
            (0..n)
                .map(|i| a[i * k + j] * a[i * k + j])
                .sum::<f64>()
                .sqrt()
        })
        .collect()
}

/// Computes the 2-norm condition number `σ_max/σ_min` of the stored matrix with nalgebra's SVD.
fn condition_number<T: Scalar>(a: &[T], n: usize, k: usize) -> f64 {
    singular_value_ratio(DMatrix::from_row_slice(n, k, &to_f64(a)))
}

/// Computes the condition number of `a` with every column scaled to unit norm.
///
/// This is the κ that matters for the QR. Each column is first scaled by a power of two
/// (exactly), so Q does not depend on the column scaling. And the distance of `a_j/‖a_j‖` from
/// the span of the other columns is at least `σ_min` of the equilibrated matrix.
fn equilibrated_condition_number<T: Scalar>(a: &[T], n: usize, k: usize) -> f64 {
    let mut m = DMatrix::from_row_slice(n, k, &to_f64(a));
    for mut column in m.column_iter_mut() {
        let norm = column.norm();
        if norm > 0.0 {
            column /= norm;
        }
    }
    singular_value_ratio(m)
}

fn singular_value_ratio(m: DMatrix<f64>) -> f64 {
    let sv = m.singular_values();
    let max = sv.iter().cloned().fold(0.0f64, f64::max);
    let min = sv.iter().cloned().fold(f64::INFINITY, f64::min);
    max / min
}

// ---------------------------------------------------------------------------------------------
// Bounds (derived in the module docs)
// ---------------------------------------------------------------------------------------------

/// Largest allowed `|QᵀQ − I|` entry with reorthogonalisation: `(n + 3k)·ε`.
fn orthogonality_bound<T: Scalar>(n: usize, k: usize) -> f64 {
    (n + 3 * k) as f64 * epsilon::<T>()
}

/// Largest allowed `|q_j·q_j − 1|` with one or two sweeps: `(n + 4)·u`, doubled like
/// [`orthogonality_bound`], so `(n + 4)·ε`.
fn diagonal_bound<T: Scalar>(n: usize) -> f64 {
    (n + 4) as f64 * epsilon::<T>()
}

/// Largest allowed `‖a_j − Q r_j‖` for column `j` (0-based).
fn reconstruction_bound<T: Scalar>(
    n: usize,
    k: usize,
    j: usize,
    sweeps: usize,
    replaced: bool,
    column_norm: f64,
) -> f64 {
    let u = epsilon::<T>() / 2.0;
    let mut relative = (3 * sweeps * j + 2) as f64 * u;
    if replaced {
        relative += n as f64 * epsilon::<T>();
    }
    relative * column_norm + (n as f64).sqrt() * k as f64 * smallest_subnormal::<T>()
}

// ---------------------------------------------------------------------------------------------
// The checks every finite input must pass
// ---------------------------------------------------------------------------------------------

struct QrOutput<T> {
    q: Vec<T>,
    r: Vec<T>,
    info: QrInfo,
}

/// Runs `qr_in_place` on a copy of `a`, with `R` pre-filled with NaN (it must be overwritten).
fn run_qr<T: Scalar>(a: &[T], n: usize, k: usize, options: QrOptions) -> QrOutput<T> {
    let mut q = a.to_vec();
    let mut r = vec![T::from_f64(f64::NAN); k * k];
    let info = qr_in_place(
        MatMut::from_slice(&mut q, n, k).unwrap(),
        Some(MatMut::from_slice(&mut r, k, k).unwrap()),
        options,
    )
    .unwrap();
    QrOutput { q, r, info }
}

/// Checks the structural properties and the bounds that hold for every finite input whose `R`
/// does not overflow, and returns the output for case-specific checks.
fn check_qr<T: Scalar>(a: &[T], n: usize, k: usize, options: QrOptions) -> QrOutput<T> {
    let out = run_qr(a, n, k, options);
    let (q, r) = (&out.q, &out.r);
    let sweeps = if options.reorthogonalize { 2 } else { 1 };

    assert!(
        q.iter().all(|v| v.is_finite()),
        "Q has a non-finite entry: {q:?}"
    );
    assert!(
        r.iter().all(|v| v.is_finite()),
        "R has a non-finite entry: {r:?}"
    );
    for l in 0..k {
        for j in 0..l {
            assert_eq!(
                r[l * k + j].to_f64(),
                0.0,
                "R[{l}][{j}] below the diagonal is not zero"
            );
        }
        assert!(
            r[l * k + l].to_f64() >= 0.0,
            "R[{l}][{l}] = {:?} is negative",
            r[l * k + l]
        );
    }
    assert!(out.info.rank <= k, "rank {} exceeds k = {k}", out.info.rank);

    let gram = gram_error(q, n, k);
    for j in 0..k {
        let diagonal = gram[j * k + j].abs();
        assert!(
            diagonal <= diagonal_bound::<T>(n),
            "|q_{j}·q_{j} − 1| = {diagonal:e} (n = {n}, k = {k})"
        );
    }
    if options.reorthogonalize {
        let bound = orthogonality_bound::<T>(n, k);
        for l in 0..k {
            for j in 0..k {
                let entry = gram[l * k + j].abs();
                assert!(
                    entry <= bound,
                    "|QᵀQ − I|[{l}][{j}] = {entry:e} > {bound:e} (n = {n}, k = {k})"
                );
            }
        }
    }

    let norms = column_norms(&to_f64(a), n, k);
    let residuals = reconstruction_residuals(a, q, r, n, k);
    for j in 0..k {
        let replaced = r[j * k + j].to_f64() == 0.0;
        let bound = reconstruction_bound::<T>(n, k, j, sweeps, replaced, norms[j]);
        assert!(
            residuals[j] <= bound,
            "‖a_{j} − Q r_{j}‖ = {:e} > {bound:e} (‖a_{j}‖ = {:e}, n = {n}, k = {k})",
            residuals[j],
            norms[j]
        );
    }
    out
}

/// Counts the non-zero diagonal entries of `R`, which are the columns that were not replaced.
fn nonzero_diagonal<T: Scalar>(r: &[T], k: usize) -> usize {
    (0..k).filter(|&j| r[j * k + j].to_f64() != 0.0).count()
}

/// Draws an `n × k` matrix of standard normal entries times `scale`, rounded to `T`.
fn gaussian<T: Scalar>(seed: u64, n: usize, k: usize, scale: f64) -> Vec<T> {
    let mut rng = SplitMix64::new(seed);
    (0..n * k)
        .map(|_| T::from_f64(rng.next_gaussian() * scale))
        .collect()
}

/// Builds a matrix with orthonormal columns from nalgebra's (Householder) QR of a Gaussian
/// matrix.
fn random_orthonormal(seed: u64, n: usize, k: usize) -> DMatrix<f64> {
    let g = DMatrix::from_row_slice(n, k, &gaussian::<f64>(seed, n, k, 1.0));
    g.qr().q()
}

/// `U diag(σ) Vᵀ` with `σ` geometric from 1 to `1/kappa`, in f64 and row-major.
fn with_condition_number(seed: u64, n: usize, k: usize, kappa: f64) -> Vec<f64> {
    let u = random_orthonormal(seed, n, k);
    let v = random_orthonormal(seed ^ 0x5555, k, k);
    let sigma = DMatrix::from_fn(k, k, |i, j| {
        if i == j && k > 1 {
            kappa.powf(-(i as f64) / (k - 1) as f64)
        } else if i == j {
            1.0
        } else {
            0.0
        }
    });
    let a = u * sigma * v.transpose();
    (0..n)
        .flat_map(|i| (0..k).map(move |j| (i, j)))
        .map(|(i, j)| a[(i, j)])
        .collect()
}

/// Checks the precondition of the first-order orthogonality bound. It assumes `(n + 4)·u·κ ≪ 1` (module docs). With
/// `(n + 4)·ε·κ < 0.1` the neglected second-order terms are at most 5 % of the first-order
/// ones, well inside the factor of two kept in [`orthogonality_bound`].
fn meets_first_order_precondition<T: Scalar>(n: usize, kappa: f64) -> bool {
    kappa.is_finite() && (n + 4) as f64 * epsilon::<T>() * kappa < 0.1
}

// ---------------------------------------------------------------------------------------------
// Random shapes and entries
// ---------------------------------------------------------------------------------------------

/// `(n, k)` with `k ≤ n`: row counts around one tile (16) and two, column counts 1, 2, 3, 17, 33
/// and anything in between.
fn shapes() -> impl Strategy<Value = (usize, usize)> {
    prop::sample::select(vec![1usize, 2, 3, 5, 17, 20, 33, 40]).prop_flat_map(|n| {
        let listed: Vec<usize> = [1usize, 2, 3, 17, 33, n]
            .into_iter()
            .filter(|&k| k <= n)
            .collect();
        (Just(n), prop_oneof![prop::sample::select(listed), 1..=n])
    })
}

/// Generates an `n × k` matrix with entries uniform in `[−1, 1)`, each column scaled by its own power of
/// two in `2^−30 … 2^30` (exact), so columns of very different size meet in one matrix.
fn matrices() -> impl Strategy<Value = (usize, usize, Vec<f64>)> {
    shapes().prop_flat_map(|(n, k)| {
        (
            Just(n),
            Just(k),
            prop::collection::vec(-1.0f64..1.0, n * k),
            prop::collection::vec(-30i32..=30, k),
        )
            .prop_map(|(n, k, mut a, exponents)| {
                for i in 0..n {
                    for j in 0..k {
                        a[i * k + j] *= 2f64.powi(exponents[j]);
                    }
                }
                (n, k, a)
            })
    })
}

fn round_to<T: Scalar>(a: &[f64]) -> Vec<T> {
    a.iter().map(|&v| T::from_f64(v)).collect()
}

/// Runs the full check on a random matrix, plus the rank when the matrix is well enough
/// conditioned for it to be certain.
fn random_matrix_properties<T: Scalar>(n: usize, k: usize, a: &[f64]) -> Result<(), TestCaseError> {
    let a: Vec<T> = round_to(a);
    let kappa = equilibrated_condition_number(&a, n, k);
    prop_assume!(meets_first_order_precondition::<T>(n, kappa));

    let out = check_qr(&a, n, k, TWO_SWEEPS);
    prop_assert_eq!(out.info.rank, nonzero_diagonal(&out.r, k));

    // Column j's exact distance from the span of the earlier columns is at least ‖a_j‖/κ. The
    // computed residual differs from it by the rounding of the sweeps and by the effect of the
    // earlier columns' non-orthogonality, at most k·(n + 3k)·ε·‖a_j‖ together, and the column
    // is kept when the residual exceeds n·ε·‖a_j‖. So below this κ every column is kept.
    let certain_full_rank = kappa * (n + k * (n + 3 * k)) as f64 * epsilon::<T>() <= 0.5;
    if certain_full_rank {
        prop_assert_eq!(out.info.rank, k, "κ = {:e}", kappa);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn qr_random_matrices_f32((n, k, a) in matrices()) {
        random_matrix_properties::<f32>(n, k, &a)?;
    }

    #[test]
    fn qr_random_matrices_f64((n, k, a) in matrices()) {
        random_matrix_properties::<f64>(n, k, &a)?;
    }

    /// One sweep: finite output and unit columns for any input; orthogonality is `O(u·κ)` and
    /// is checked against a known κ in `qr_single_sweep_loss_scales_with_kappa`.
    #[test]
    fn qr_single_sweep_random_f32((n, k, a) in matrices()) {
        let out = check_qr(&round_to::<f32>(&a), n, k, ONE_SWEEP);
        prop_assert_eq!(out.info.rank, nonzero_diagonal(&out.r, k));
    }

    #[test]
    fn qr_single_sweep_random_f64((n, k, a) in matrices()) {
        let out = check_qr(&round_to::<f64>(&a), n, k, ONE_SWEEP);
        prop_assert_eq!(out.info.rank, nonzero_diagonal(&out.r, k));
    }

    /// A column that repeats an earlier one exactly is dependent. After the first sweep its
    /// residual is rounding noise. If that noise happened to exceed the threshold, the second
    /// sweep removes it, leaving `O(u)` of the noise.
    #[test]
    fn qr_duplicated_column_f32(
        (n, k, a) in matrices().prop_filter("needs two columns", |(_, k, _)| *k >= 2),
        pick in any::<(prop::sample::Index, prop::sample::Index)>(),
    ) {
        duplicated_column_properties::<f32>(n, k, &a, pick)?;
    }

    #[test]
    fn qr_duplicated_column_f64(
        (n, k, a) in matrices().prop_filter("needs two columns", |(_, k, _)| *k >= 2),
        pick in any::<(prop::sample::Index, prop::sample::Index)>(),
    ) {
        duplicated_column_properties::<f64>(n, k, &a, pick)?;
    }
}

fn duplicated_column_properties<T: Scalar>(
    n: usize,
    k: usize,
    a: &[f64],
    (source, target): (prop::sample::Index, prop::sample::Index),
) -> Result<(), TestCaseError> {
    // Copy an earlier column over a later one.
    let target = 1 + target.index(k - 1);
    let source = source.index(target);
    let mut a: Vec<T> = round_to(a);
    for i in 0..n {
        a[i * k + target] = a[i * k + source];
    }
    // The other columns must satisfy the precondition of the orthogonality bound.
    let others: Vec<T> = (0..n)
        .flat_map(|i| (0..k).filter(|&j| j != target).map(move |j| (i, j)))
        .map(|(i, j)| a[i * k + j])
        .collect();
    prop_assume!(meets_first_order_precondition::<T>(
        n,
        equilibrated_condition_number(&others, n, k - 1)
    ));

    let out = check_qr(&a, n, k, TWO_SWEEPS);
    prop_assert!(
        out.info.rank < k,
        "rank {} with column {} = column {}",
        out.info.rank,
        target,
        source
    );
    prop_assert_eq!(out.r[target * k + target].to_f64(), 0.0);
    prop_assert_eq!(out.info.rank, nonzero_diagonal(&out.r, k));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Conditioning: two sweeps against one
// ---------------------------------------------------------------------------------------------

/// With κ = 10⁶ (f64) two sweeps keep the κ-free bound, and one sweep stays within the same
/// bound times κ (the first-order loss of one sweep is the two-sweep residual divided by
/// `‖v‖/‖a_j‖ ≥ 1/κ`).
#[test]
fn qr_single_sweep_loss_scales_with_kappa() {
    let (n, k, kappa) = (40, 20, 1e6);
    let a = with_condition_number(11, n, k, kappa);
    let measured_kappa = condition_number(&a, n, k);
    assert!(
        (measured_kappa / kappa - 1.0).abs() < 1e-6,
        "κ = {measured_kappa:e}"
    );

    let two = check_qr(&a, n, k, TWO_SWEEPS);
    let one = check_qr(&a, n, k, ONE_SWEEP);
    assert_eq!(two.info.rank, k);
    assert_eq!(one.info.rank, k);

    let bound = orthogonality_bound::<f64>(n, k);
    let (two_max, _) = orthogonality(&two.q, n, k);
    let (one_max, _) = orthogonality(&one.q, n, k);
    assert!(two_max <= bound, "two sweeps: {two_max:e} > {bound:e}");
    assert!(
        one_max <= bound * kappa,
        "one sweep: {one_max:e} > {:e}",
        bound * kappa
    );
}

/// The Vandermonde matrix `xᵢʲ` at 32 equispaced points in `[0, 1]`, 12 columns: κ ≈ 1.2e8, far
/// inside the f64 precondition ((n + 4)·ε·κ ≈ 1e-6), so two sweeps must reach the κ-free bound
/// (n + 3k)·ε = 1.5e-14 and keep every column.
#[test]
fn qr_vandermonde_f64_two_sweeps() {
    let (n, k) = (32, 12);
    let a: Vec<f64> = (0..n * k)
        .map(|idx| (((idx / k) as f64) / (n - 1) as f64).powi((idx % k) as i32))
        .collect();
    let kappa = condition_number(&a, n, k);
    assert!(kappa > 1e8, "κ = {kappa:e}");
    assert!(kappa < 1e9, "κ = {kappa:e}");
    assert!(meets_first_order_precondition::<f64>(
        n,
        equilibrated_condition_number(&a, n, k)
    ));

    let out = check_qr(&a, n, k, TWO_SWEEPS);
    assert_eq!(out.info.rank, k);
}

/// κ = 10¹² in f64 with 64 × 32 (eight panels of 4 columns): (n + 4)·ε·κ = 0.015 meets the
/// precondition, so two sweeps must stay within (n + 3k)·ε = 3.6e-14.
#[test]
fn qr_kappa_1e12_f64_two_sweeps() {
    let (n, k, kappa) = (64, 32, 1e12);
    let a = with_condition_number(205, n, k, kappa);
    assert!(meets_first_order_precondition::<f64>(
        n,
        equilibrated_condition_number(&a, n, k)
    ));
    check_qr(&a, n, k, TWO_SWEEPS);
}

/// A rank-`k` f32 matrix with κ = 1e3, inside the two-sweep precondition
/// ((n + 4)·ε·κ = 3e-3), gets rank `k` and the κ-free orthogonality.
#[test]
fn qr_ill_conditioned_f32_two_sweeps() {
    let (n, k) = (24, 8);
    let kappa = 1e3;
    let a: Vec<f32> = round_to(&with_condition_number(5, n, k, kappa));
    let out = check_qr(&a, n, k, TWO_SWEEPS);
    assert_eq!(out.info.rank, k);
}

// ---------------------------------------------------------------------------------------------
// Hand-derived cases
// ---------------------------------------------------------------------------------------------

/// A = [[1, 1], [1, 1]] in f32, worked by hand:
/// ‖a₀‖ = fl(√2) = 1.4142135, q₀ = fl(1/1.4142135) = 0.70710677 in both rows,
/// r₀₁ = q₀·a₁ = 2·0.70710677 = 1.4142135 (exact doubling), and the residual of a₁ is
/// 1 − fl(1.4142135·0.70710677) = 5.96e-8 per entry, 8.4e-8 in norm, below the rank threshold
/// n·ε·‖a₁‖ = 2·1.19e-7·1.414 = 3.4e-7. So a₁ is replaced by the completion: the basis vector of
/// the row with the smallest norm in q₀ (a tie, so row 0), e₀ projected out of q₀:
/// [0.5, −0.5] normalised to [0.70710677, −0.70710677], and r₁₁ = 0.
#[test]
fn qr_of_ones_two_by_two_f32() {
    let a = [1.0f32, 1.0, 1.0, 1.0];
    // `check_qr` also checks QR = A and QᵀQ = I to the derived bounds: for the replaced column
    // (3·2·1 + 2)·u + n·ε = 6·ε times ‖a₁‖ = √2, about 1.0e-6.
    let out = check_qr(&a, 2, 2, TWO_SWEEPS);
    let (q, r) = (&out.q, &out.r);

    assert!(
        q.iter().chain(r).all(|v| !v.is_nan()),
        "NaN in Q = {q:?} or R = {r:?}"
    );
    assert_eq!(out.info.rank, 1);
    // The correctly rounded constants are the hand-derived values 0.70710677 and 1.4142135.
    let (h, s) = (core::f32::consts::FRAC_1_SQRT_2, core::f32::consts::SQRT_2);
    assert_eq!((h.to_bits(), s.to_bits()), (0x3f35_04f3, 0x3fb5_04f3));
    assert_eq!([q[0], q[2]], [h, h], "first column of Q");
    assert_eq!(r[0], s, "R[0][0]");
    assert_eq!(r[1], s, "R[0][1]");
    assert_eq!(r[2], 0.0, "R[1][0]");
    assert!((0.0..=1e-6).contains(&r[3]), "R[1][1] = {}", r[3]);

    let dot = q[0] * q[1] + q[2] * q[3];
    assert!(dot.abs() <= 1e-6, "q₀·q₁ = {dot}");
    let second = [q[1], q[3]];
    assert!((second[0] - h).abs() <= 1e-7, "second column {second:?}");
    assert!((second[1] + h).abs() <= 1e-7, "second column {second:?}");
    assert_ne!(
        second,
        [q[0], q[2]],
        "the second column must not repeat the first"
    );
}

/// Checks that the zero matrix has rank 0. With every row of the earlier columns tied, the completion picks
/// the lowest free row each time, so Q = [e₀ … e_{k−1}] exactly, and R = 0.
fn zero_matrix_case<T: Scalar>() {
    let (n, k) = (5, 3);
    let a = vec![T::ZERO; n * k];
    for options in [TWO_SWEEPS, ONE_SWEEP] {
        let out = check_qr(&a, n, k, options);
        assert_eq!(out.info.rank, 0);
        for i in 0..n {
            for j in 0..k {
                let expected = if i == j { 1.0 } else { 0.0 };
                assert_eq!(out.q[i * k + j].to_f64(), expected, "Q[{i}][{j}]");
            }
        }
        assert!(out.r.iter().all(|v| v.to_f64() == 0.0), "R = {:?}", out.r);
    }
}

#[test]
fn qr_of_zero_matrix_f32() {
    zero_matrix_case::<f32>();
}

#[test]
fn qr_of_zero_matrix_f64() {
    zero_matrix_case::<f64>();
}

/// Checks a zero column between two independent ones: rank k − 1, its R column is zero, and its Q
/// column is a unit vector orthogonal to the others.
fn zero_column_case<T: Scalar>() {
    let (n, k) = (6, 3);
    let mut a: Vec<T> = gaussian(3, n, k, 1.0);
    for i in 0..n {
        a[i * k + 1] = T::ZERO;
    }
    for options in [TWO_SWEEPS, ONE_SWEEP] {
        let out = check_qr(&a, n, k, options);
        assert_eq!(out.info.rank, 2);
        for l in 0..k {
            assert_eq!(out.r[l * k + 1].to_f64(), 0.0, "R[{l}][1]");
        }
    }
}

#[test]
fn qr_zero_column_f32() {
    zero_column_case::<f32>();
}

#[test]
fn qr_zero_column_f64() {
    zero_column_case::<f64>();
}

/// a₀ = [1, 1, 1, 1], a₁ = a₀ + 1e-7·[1, −1, 1, −1].
///
/// f64: the difference is far above the rounding level, so rank 2 and q₁ = [1, −1, 1, −1]/2
/// (positive sign because r₁₁ ≥ 0). The entries 1 ± 1e-7 are stored with an error of u = 1.1e-16
/// each, which moves q₁ by at most about 2u/1e-7 ≈ 2e-9; the test allows 1e-8.
///
/// f32: 1 + 1e-7 rounds to 1 + 2⁻²³ and 1 − 1e-7 to 1 − 2⁻²³, so the stored difference is
/// 1.19e-7·[1, −1, 1, −1] with norm 2.4e-7, below the rank threshold n·ε·‖a₁‖ = 4·1.19e-7·2 =
/// 9.5e-7: rank 1, and q₁ is the completion, still orthonormal and finite.
#[test]
fn qr_columns_differing_by_1e_7() {
    let pattern = [1.0, -1.0, 1.0, -1.0];
    let a: Vec<f64> = (0..4)
        .flat_map(|i| [1.0, 1.0 + 1e-7 * pattern[i]])
        .collect();

    let out = check_qr(&a, 4, 2, TWO_SWEEPS);
    assert_eq!(out.info.rank, 2);
    for (i, &sign) in pattern.iter().enumerate() {
        let expected = sign / 2.0;
        assert!(
            (out.q[i * 2 + 1] - expected).abs() <= 1e-8,
            "q₁[{i}] = {}",
            out.q[i * 2 + 1]
        );
    }

    let a32: Vec<f32> = round_to(&a);
    assert_eq!(a32[1], 1.0 + f32::EPSILON);
    assert_eq!(a32[3], 1.0 - f32::EPSILON);
    for options in [TWO_SWEEPS, ONE_SWEEP] {
        let out = check_qr(&a32, 4, 2, options);
        assert_eq!(out.info.rank, 1);
    }
}

/// A = [I_k; small noise]: κ ≤ (1 + 0.1·√(nk))/(1 − 0.1·√(nk)) is tiny, so every column is kept.
#[test]
fn qr_well_conditioned_has_full_rank() {
    for (n, k) in [(1, 1), (3, 3), (17, 17), (40, 33)] {
        let noise: Vec<f64> = gaussian(9, n, k, 0.1 / ((n * k) as f64).sqrt());
        let a: Vec<f64> = (0..n * k)
            .map(|idx| noise[idx] + if idx / k == idx % k { 1.0 } else { 0.0 })
            .collect();
        assert!(condition_number(&a, n, k) < 1.5);
        assert_eq!(check_qr(&a, n, k, TWO_SWEEPS).info.rank, k, "{n}×{k} f64");
        assert_eq!(
            check_qr(&round_to::<f32>(&a), n, k, TWO_SWEEPS).info.rank,
            k,
            "{n}×{k} f32"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Extreme magnitudes
// ---------------------------------------------------------------------------------------------

/// Entries near `f32::MAX / 1e10` (about 3.4e28, whose square overflows f32): finite,
/// orthonormal, and `QR = A` to the usual bound.
#[test]
fn qr_entries_near_max_over_1e10() {
    let (n, k) = (17, 5);
    let a: Vec<f32> = gaussian::<f64>(21, n, k, 1.0)
        .iter()
        .map(|g| (f32::MAX / 1e10) * g.tanh() as f32)
        .collect();
    let largest = a.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert_eq!(
        largest * largest,
        f32::INFINITY,
        "the test needs entries whose squares overflow"
    );
    for options in [TWO_SWEEPS, ONE_SWEEP] {
        let out = check_qr(&a, n, k, options);
        assert_eq!(out.info.rank, k);
    }
}

/// Multiplying A by a power of two changes nothing but the scale. Every column is first scaled
/// to unit size by a power of two (exact), so Q has the same bits and R is multiplied by the
/// same power. This holds as long as no entry of R overflows or falls into the subnormal range.
fn power_of_two_scaling_case<T: Scalar>(exponents: &[i32]) {
    let (n, k) = (9, 4);
    let a: Vec<T> = gaussian(31, n, k, 1.0);
    let reference = run_qr(&a, n, k, TWO_SWEEPS);
    for &e in exponents {
        let factor = 2f64.powi(e);
        let scaled: Vec<T> = a.iter().map(|v| T::from_f64(v.to_f64() * factor)).collect();
        let out = check_qr(&scaled, n, k, TWO_SWEEPS);
        assert_eq!(bits(&out.q), bits(&reference.q), "Q after scaling by 2^{e}");
        let expected_r: Vec<T> = reference
            .r
            .iter()
            .map(|v| T::from_f64(v.to_f64() * factor))
            .collect();
        assert_eq!(bits(&out.r), bits(&expected_r), "R after scaling by 2^{e}");
    }
}

#[test]
fn qr_power_of_two_scaling_f32() {
    // The entries are standard normal values. 2^94 ≈ 2e28 puts them near f32::MAX/1e10, 2^124 ≈
    // 2e37 within two orders of magnitude of f32::MAX (3.4e38), and 2^-100 ≈ 8e-31 keeps them
    // and R normal.
    power_of_two_scaling_case::<f32>(&[-100, -60, 40, 94, 124]);
}

#[test]
fn qr_power_of_two_scaling_f64() {
    power_of_two_scaling_case::<f64>(&[-1000, -500, 500, 1000]);
}

/// Entries up to `f32::MAX / 8` with `n = 4`: every column norm is at most `MAX/4`, so the
/// exact R fits, and the computed R must be finite and reconstruct A.
#[test]
fn qr_entries_near_f32_max() {
    let (n, k) = (4, 3);
    let a: Vec<f32> = gaussian::<f64>(41, n, k, 1.0)
        .iter()
        .map(|g| (f32::MAX / 8.0) * g.tanh() as f32)
        .collect();
    for options in [TWO_SWEEPS, ONE_SWEEP] {
        let out = check_qr(&a, n, k, options);
        assert_eq!(out.info.rank, k);
    }
}

/// Columns [MAX, MAX] and [MAX, −MAX]: exact R = diag(√2·MAX, √2·MAX), which does not fit in
/// f32. Q must still be the exact orthonormal pair (q₀ = [1, 1]/√2, q₁ = [1, −1]/√2), R's
/// diagonal +∞ as documented, and R's off-diagonal entry exactly 0 (the scaled columns are
/// [x, x] and [x, −x], whose dot product with q₀ cancels exactly).
#[test]
fn qr_entries_at_f32_max_overflow_r_only() {
    let m = f32::MAX;
    let a = [m, m, m, -m];
    for options in [TWO_SWEEPS, ONE_SWEEP] {
        let out = run_qr(&a, 2, 2, options);
        assert_eq!(out.info.rank, 2);
        let h = core::f32::consts::FRAC_1_SQRT_2;
        for (i, (&q, expected)) in out.q.iter().zip([h, h, h, -h]).enumerate() {
            assert!(
                (q - expected).abs() <= f32::EPSILON,
                "Q[{i}] = {q}, expected {expected}"
            );
        }
        assert_eq!(out.r[0], f32::INFINITY, "R[0][0]");
        assert_eq!(out.r[1], 0.0, "R[0][1]");
        assert_eq!(out.r[2], 0.0, "R[1][0]");
        assert_eq!(out.r[3], f32::INFINITY, "R[1][1]");
        let (max, _) = orthogonality(&out.q, 2, 2);
        assert!(max <= orthogonality_bound::<f32>(2, 2));
    }
}

/// Subnormal entries (small integers times the smallest subnormal). Scaling by 2^s with the
/// column exponent clamped at the smallest normal exponent is still exact, so Q has the same
/// bits as for the integer matrix itself; R's entries are subnormal and carry the absolute
/// error that [`reconstruction_bound`] allows.
fn subnormal_case<T: Scalar>() {
    let (n, k) = (5, 3);
    let mut rng = SplitMix64::new(51);
    let integers: Vec<f64> = (0..n * k)
        .map(|_| (rng.next_u64() % 17) as f64 - 8.0)
        .collect();
    let tiny = smallest_subnormal::<T>();
    let a: Vec<T> = integers.iter().map(|&v| T::from_f64(v * tiny)).collect();
    assert!(a
        .iter()
        .all(|v| v.to_f64().abs() < T::MIN_POSITIVE.to_f64()));

    let reference = run_qr(&round_to::<T>(&integers), n, k, TWO_SWEEPS);
    for options in [TWO_SWEEPS, ONE_SWEEP] {
        let out = check_qr(&a, n, k, options);
        assert_eq!(out.info.rank, k);
        if options.reorthogonalize {
            assert_eq!(
                bits(&out.q),
                bits(&reference.q),
                "Q of the subnormal matrix"
            );
        }
    }
}

#[test]
fn qr_subnormal_entries_f32() {
    subnormal_case::<f32>();
}

#[test]
fn qr_subnormal_entries_f64() {
    subnormal_case::<f64>();
}

/// One sweep on the hard cases: the output is finite with unit columns (checked by
/// `check_qr`), and the completion keeps it orthonormal for exact duplicates.
#[test]
fn qr_single_sweep_hard_cases() {
    let (n, k) = (6, 4);
    let mut dup: Vec<f32> = gaussian(61, n, k, 1.0);
    for i in 0..n {
        dup[i * k + 3] = dup[i * k];
        dup[i * k + 2] = dup[i * k + 1];
    }
    let out = check_qr(&dup, n, k, ONE_SWEEP);
    assert!(out.info.rank <= 2, "rank {}", out.info.rank);
    let (max, _) = orthogonality(&out.q, n, k);
    assert!(max <= orthogonality_bound::<f32>(n, k), "{max:e}");

    let huge: Vec<f32> = dup.iter().map(|v| v * 2f32.powi(100)).collect();
    assert!(run_qr(&huge, n, k, ONE_SWEEP)
        .q
        .iter()
        .all(|v| v.is_finite()));
}

// ---------------------------------------------------------------------------------------------
// Same bits as the column-by-column loop
// ---------------------------------------------------------------------------------------------

/// `⌊log₂ max|aᵢⱼ|⌋` of column `j`, clamped as the crate clamps it, or 0 for a zero column.
fn column_exponent<T: Scalar>(a: &[T], n: usize, k: usize, j: usize) -> i32 {
    let amax = (0..n).fold(T::ZERO, |max, i| {
        let x = a[i * k + j].abs();
        if x > max {
            x
        } else {
            max
        }
    });
    if amax == T::ZERO {
        return 0;
    }
    amax.exponent().clamp(1 - T::MAX_EXP2, T::MAX_EXP2 - 1)
}

/// `√(Σᵢ aᵢⱼ²)`, summed in row order from `+0`.
fn plain_column_norm<T: Scalar>(a: &[T], n: usize, k: usize, j: usize) -> T {
    (0..n)
        .fold(T::ZERO, |sum, i| sum + a[i * k + j] * a[i * k + j])
        .sqrt()
}

/// `aⱼ ← aⱼ − (q_l·aⱼ) q_l` for `l < j`, in order; returns the coefficients.
fn project_column<T: Scalar>(a: &mut [T], n: usize, k: usize, j: usize) -> Vec<T> {
    let mut coefficients = Vec::with_capacity(j);
    for l in 0..j {
        let dot = (0..n).fold(T::ZERO, |sum, i| sum + a[i * k + l] * a[i * k + j]);
        for i in 0..n {
            let q = a[i * k + l];
            a[i * k + j] -= dot * q;
        }
        coefficients.push(dot);
    }
    coefficients
}

/// Modified Gram-Schmidt one column at a time, written as plainly as `qr_in_place` documents
/// it: scale column `j` by a power of two, run `sweeps` sweeps over the earlier columns (a
/// column that is dependent after a sweep gets no further one), normalise, or replace a
/// dependent column by the completion. Every dot product and norm is one sequential sum over
/// the rows. The completion's norm is the scaled one (largest entry scaled into `[1, 2)`
/// before squaring), like the crate's. Returns `(Q, R, rank)`.
fn column_by_column_mgs<T: Scalar>(
    a: &[T],
    n: usize,
    k: usize,
    sweeps: usize,
) -> (Vec<T>, Vec<T>, usize) {
    let mut q = a.to_vec();
    let mut r = vec![T::ZERO; k * k];
    let threshold = T::from_usize(n) * T::EPSILON;
    let mut rank = 0;
    for j in 0..k {
        let exp = column_exponent(&q, n, k, j);
        let (scale, unscale) = (T::exp2i(-exp), T::exp2i(exp));
        for i in 0..n {
            q[i * k + j] *= scale;
        }
        let original = plain_column_norm(&q, n, k, j);
        let mut residual = original;
        let mut independent = original > T::ZERO;
        for _ in 0..sweeps {
            if !independent {
                break;
            }
            for (l, dot) in project_column(&mut q, n, k, j).into_iter().enumerate() {
                r[l * k + j] += dot * unscale;
            }
            residual = plain_column_norm(&q, n, k, j);
            independent = residual > threshold * original;
        }
        if independent {
            for i in 0..n {
                q[i * k + j] /= residual;
            }
            r[j * k + j] = residual * unscale;
            rank += 1;
            continue;
        }

        // The completion: the basis vector of the row of [q₀ … q_{j−1}] with the smallest
        // norm, projected out twice and normalised.
        let row_norm =
            |q: &[T], i: usize| (0..j).fold(T::ZERO, |sum, l| sum + q[i * k + l] * q[i * k + l]);
        let mut best_row = 0;
        let mut best_norm = T::MAX;
        for i in 0..n {
            let norm = row_norm(&q, i);
            if norm < best_norm {
                best_norm = norm;
                best_row = i;
            }
        }
        for i in 0..n {
            q[i * k + j] = if i == best_row { T::ONE } else { T::ZERO };
        }
        project_column(&mut q, n, k, j);
        project_column(&mut q, n, k, j);
        let exp = column_exponent(&q, n, k, j);
        let sum = (0..n).fold(T::ZERO, |sum, i| {
            let x = q[i * k + j] * T::exp2i(-exp);
            sum + x * x
        });
        let norm = sum.sqrt() * T::exp2i(exp);
        for i in 0..n {
            q[i * k + j] /= norm;
        }
    }
    (q, r, rank)
}

/// Checks that the panelled first sweep and the plain-sum norms give the bits of the
/// column-by-column loop (the crate takes both shortcuts only where they are exact).
fn matches_column_by_column<T: Scalar>(n: usize, k: usize, a: &[T]) -> Result<(), TestCaseError> {
    for (options, sweeps) in [(TWO_SWEEPS, 2), (ONE_SWEEP, 1)] {
        let out = run_qr(a, n, k, options);
        let (q, r, rank) = column_by_column_mgs(a, n, k, sweeps);
        prop_assert_eq!(out.info.rank, rank, "rank, {} sweeps", sweeps);
        prop_assert_eq!(bits(&out.q), bits(&q), "Q, {} sweeps", sweeps);
        prop_assert_eq!(bits(&out.r), bits(&r), "R, {} sweeps", sweeps);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn qr_bits_match_column_loop_f32((n, k, a) in matrices()) {
        matches_column_by_column::<f32>(n, k, &round_to(&a))?;
    }

    #[test]
    fn qr_bits_match_column_loop_f64((n, k, a) in matrices()) {
        matches_column_by_column::<f64>(n, k, &round_to(&a))?;
    }

    /// Dependent columns take the completion, which has to match as well.
    #[test]
    fn qr_bits_match_column_loop_dependent(
        (n, k, a) in matrices().prop_filter("needs two columns", |(_, k, _)| *k >= 2),
        pick in any::<(prop::sample::Index, prop::sample::Index)>(),
    ) {
        let target = 1 + pick.1.index(k - 1);
        let source = pick.0.index(target);
        let mut a: Vec<f32> = round_to(&a);
        for i in 0..n {
            a[i * k + target] = a[i * k + source] * 0.5;
        }
        matches_column_by_column::<f32>(n, k, &a)?;
    }
}

/// Zero columns, exact duplicates and columns of subnormal values, with more columns than one
/// panel, in both precisions.
#[test]
fn qr_bits_match_column_loop_hard_cases() {
    let (n, k) = (12, 9);
    let base: Vec<f64> = gaussian(91, n, k, 1.0);
    let mut a = base.clone();
    for i in 0..n {
        a[i * k + 2] = 0.0;
        a[i * k + 5] = a[i * k + 1];
        a[i * k + 7] = base[i * k + 7] * 1e-320;
        a[i * k + 8] = a[i * k + 3] + a[i * k + 4];
    }
    matches_column_by_column::<f64>(n, k, &a).unwrap();
    let tiny = smallest_subnormal::<f32>();
    for i in 0..n {
        a[i * k + 7] = (base[i * k + 7] * 8.0).round() * tiny;
    }
    matches_column_by_column::<f32>(n, k, &round_to(&a)).unwrap();
}

/// Runs every set of dependent columns in a 10 × 9 matrix, whose panels are columns 0–3, 4–7
/// and 8. The QR stops at each dependent column for its completion and then resumes with the rest of
/// the panel. So every position in a panel, runs of dependent columns and a dependent column 0
/// must all give the bits of the column-by-column loop. A dependent column `j` is `aⱼ₋₁/2`
/// (exact), or zero for `j = 0`, and the rank must drop by one for each.
fn every_dependent_pattern_case<T: Scalar>() {
    let (n, k) = (10, 9);
    let base: Vec<T> = gaussian(97, n, k, 1.0);
    let half = T::from_f64(0.5);
    for pattern in 0u32..1 << k {
        let mut a = base.clone();
        for j in (0..k).filter(|j| pattern & (1 << j) != 0) {
            for i in 0..n {
                a[i * k + j] = if j == 0 {
                    T::ZERO
                } else {
                    a[i * k + j - 1] * half
                };
            }
        }
        let dependent = pattern.count_ones() as usize;
        for options in [TWO_SWEEPS, ONE_SWEEP] {
            let rank = run_qr(&a, n, k, options).info.rank;
            assert_eq!(rank, k - dependent, "pattern {pattern:#011b}, {options:?}");
        }
        if let Err(error) = matches_column_by_column(n, k, &a) {
            panic!("pattern {pattern:#011b}: {error}");
        }
    }
}

#[test]
fn qr_dependent_patterns_f32() {
    every_dependent_pattern_case::<f32>();
}

#[test]
fn qr_dependent_patterns_f64() {
    every_dependent_pattern_case::<f64>();
}

/// A view whose rows are `stride > k` apart, padded with NaN that the QR must neither read nor
/// write: once with a buffer of `n` full rows and once with one that ends after the last row's
/// `k` entries. Q and R have the bits of the dense matrix.
#[test]
fn qr_strided_views_match_dense() {
    let (n, k, stride) = (7, 5, 8);
    let dense: Vec<f32> = gaussian(93, n, k, 1.0);
    let reference = run_qr(&dense, n, k, TWO_SWEEPS);
    for len in [n * stride, (n - 1) * stride + k] {
        let mut buffer = vec![f32::NAN; len];
        for i in 0..n {
            buffer[i * stride..i * stride + k].copy_from_slice(&dense[i * k..(i + 1) * k]);
        }
        let mut r = vec![f32::NAN; k * k];
        let info = qr_in_place(
            MatMut::from_slice_with_stride(&mut buffer, n, k, stride).unwrap(),
            Some(MatMut::from_slice(&mut r, k, k).unwrap()),
            TWO_SWEEPS,
        )
        .unwrap();
        assert_eq!(info, reference.info, "buffer length {len}");
        let q: Vec<f32> = (0..n)
            .flat_map(|i| buffer[i * stride..i * stride + k].to_vec())
            .collect();
        assert_eq!(bits(&q), bits(&reference.q), "Q, buffer length {len}");
        assert_eq!(bits(&r), bits(&reference.r), "R, buffer length {len}");
        let padding_is_nan = (0..len)
            .filter(|&p| p % stride >= k)
            .all(|p| buffer[p].is_nan());
        assert!(padding_is_nan, "padding was written, buffer length {len}");
    }
}

/// In a strided view, NaN in the padding is not an error, NaN in the last (short) row is.
#[test]
fn qr_strided_view_rejects_only_its_own_entries() {
    let (n, k, stride) = (3, 2, 3);
    let mut buffer = [1.0f32, 0.0, f32::NAN, 0.0, 1.0, f32::NAN, 1.0, 1.0];
    let view = MatMut::from_slice_with_stride(&mut buffer, n, k, stride).unwrap();
    assert_eq!(
        qr_in_place(view, None, TWO_SWEEPS).map(|info| info.rank),
        Ok(2)
    );

    let mut buffer = [1.0f32, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, f32::INFINITY];
    let view = MatMut::from_slice_with_stride(&mut buffer, n, k, stride).unwrap();
    assert_eq!(
        qr_in_place(view, None, TWO_SWEEPS),
        Err(Error::NonFinite {
            operand: Operand::A,
            row: 2,
            col: 1
        })
    );
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// NaN or ±∞ anywhere: `Err(NonFinite)` naming the first one in row-major order, with neither
/// `A` nor `R` written.
fn non_finite_case<T: Scalar>() {
    let (n, k) = (4, 3);
    let clean: Vec<T> = gaussian(71, n, k, 1.0);
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        for (row, col) in [(0, 0), (1, 2), (3, 1), (3, 2)] {
            let mut a = clean.clone();
            a[row * k + col] = T::from_f64(bad);
            // A second bad value later in row-major order must not be the one reported.
            if row * k + col + 1 < n * k {
                a[n * k - 1] = T::from_f64(bad);
            }
            let a_before = bits(&a);
            let mut r: Vec<T> = (0..k * k).map(|i| T::from_f64(i as f64 + 0.25)).collect();
            let r_before = bits(&r);

            let result = qr_in_place(
                MatMut::from_slice(&mut a, n, k).unwrap(),
                Some(MatMut::from_slice(&mut r, k, k).unwrap()),
                TWO_SWEEPS,
            );
            assert_eq!(
                result,
                Err(Error::NonFinite {
                    operand: Operand::A,
                    row,
                    col
                }),
                "{bad} at ({row}, {col})"
            );
            assert_eq!(
                bits(&a),
                a_before,
                "A was written ({bad} at ({row}, {col}))"
            );
            assert_eq!(
                bits(&r),
                r_before,
                "R was written ({bad} at ({row}, {col}))"
            );
        }
    }
}

#[test]
fn qr_rejects_non_finite_f32() {
    non_finite_case::<f32>();
}

#[test]
fn qr_rejects_non_finite_f64() {
    non_finite_case::<f64>();
}

#[test]
fn qr_rejects_wrong_r_shape() {
    let mut a = [1.0f32; 6];
    let mut r = [0.0f32; 6];
    let result = qr_in_place(
        MatMut::from_slice(&mut a, 3, 2).unwrap(),
        Some(MatMut::from_slice(&mut r, 3, 2).unwrap()),
        TWO_SWEEPS,
    );
    assert!(
        matches!(
            result,
            Err(Error::ShapeMismatch {
                operand: Operand::R,
                ..
            })
        ),
        "{result:?}"
    );
    assert_eq!(a, [1.0; 6]);
}

// ---------------------------------------------------------------------------------------------
// Typed layer
// ---------------------------------------------------------------------------------------------

#[test]
fn typed_qr_matches_engine() {
    let data: Vec<f32> = gaussian(81, 6, 4, 1.0);
    let mut m = Matrix::<f32, 6, 4>::from_slice(&data).unwrap();
    let mut r = Matrix::<f32, 4, 4>::from_fn(|_, _| f32::NAN);
    let info = m.qr_in_place(Some(&mut r), QrOptions::default()).unwrap();

    let engine = check_qr(&data, 6, 4, QrOptions::default());
    assert_eq!(info, engine.info);
    assert_eq!(bits(m.as_slice()), bits(&engine.q));
    assert_eq!(bits(r.as_slice()), bits(&engine.r));

    let mut without_r = Matrix::<f32, 6, 4>::from_slice(&data).unwrap();
    assert_eq!(
        without_r.qr_in_place(None, QrOptions::default()).unwrap(),
        info
    );
    assert_eq!(
        bits(without_r.as_slice()),
        bits(&engine.q),
        "Q must not depend on whether R is requested"
    );
}

#[test]
fn typed_qr_rejects_nan_without_writing() {
    let mut m = Matrix::from_rows([[1.0f64, 2.0], [3.0, f64::NAN], [5.0, 6.0]]);
    let mut r = Matrix::<f64, 2, 2>::from_rows([[7.0, 8.0], [9.0, 10.0]]);
    let (m_before, r_before) = (bits(m.as_slice()), bits(r.as_slice()));
    let result = m.qr_in_place(Some(&mut r), QrOptions::default());
    assert_eq!(
        result,
        Err(Error::NonFinite {
            operand: Operand::A,
            row: 1,
            col: 1
        })
    );
    assert_eq!(bits(m.as_slice()), m_before);
    assert_eq!(bits(r.as_slice()), r_before);
}

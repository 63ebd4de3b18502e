//! Checks of an MGS QR result against the input, in `f64`.

use crate::input::Float;
use crate::reference::{norm_f64, symmetric_eigenvalues, unit};

/// Largest accepted `max |QᵀQ − I|`, in units of `n·ε` (`n` the rows, `ε = T::EPSILON`).
///
/// Derivation. After the second sweep the column `w` that gets normalised carries, along each
/// earlier `q_l`, only the rounding of that sweep's projection: the dot product `q_l·w` has error
/// at most `γₙ‖w‖` and the update `w − (q_l·w) q_l` adds at most `u‖w‖` per projection. A column
/// is kept only when its residual exceeds `n·ε` times its original norm, and the second sweep
/// removes at most the first sweep's own noise, so `‖w‖` stays within a small factor of the
/// residual it is divided by, and `|q_l·q_j| ≲ (n + j)·u·c` with `c` that small factor. The
/// completion vectors (`e_i` projected twice) have a residual of at least `√((n − j)/n)` and the
/// same bound. The diagonal: the norm and the division add a few `u`. Over long fuzzing runs the
/// measured maximum stayed below 1 in these units (see `fuzz/README.md`); 2 leaves headroom
/// without hiding an `ε·κ`-sized loss, which is orders of magnitude larger on the ill-conditioned
/// inputs the low-rank family produces.
pub const ORTHONORMALITY_UNITS: f64 = 2.0;

/// Largest accepted `‖aⱼ − Q rⱼ‖ / ‖aⱼ‖`, in units of `n·ε`.
///
/// Derivation. MGS is backward stable column by column: every projection changes the column by
/// at most `u·‖aⱼ‖` of rounding and the coefficient it stores in `R` is the one it subtracted,
/// so after `2j` projections (two sweeps) the reconstruction error is about `2j·u·‖aⱼ‖ ≤ n·ε‖aⱼ‖`;
/// a column replaced by the completion leaves its residual, at most `n·ε·‖aⱼ‖` by the rank
/// threshold, in the error as well. Hence `2·n·ε` plus the rounding of the norm; 4 leaves room
/// for the dot products' own error. Absolute underflow of tiny `R` entries is added separately.
pub const BACKWARD_UNITS: f64 = 4.0;

/// Measurements of one QR check, for the statistics printed with `DION_FUZZ_STATS=1`.
#[derive(Clone, Copy, Debug, Default)]
pub struct QrMeasure {
    /// `max |QᵀQ − I| / (n·ε)`.
    pub orthonormality: f64,
    /// `max_j ‖aⱼ − Q rⱼ‖ / (‖aⱼ‖·n·ε)`, over columns whose `R` is finite and `‖aⱼ‖` normal.
    pub backward: f64,
    /// `σ_min` of the input with unit columns, when every column is non-zero.
    pub sigma_min: Option<f64>,
    /// Largest computed relative residual `R_jj / ‖aⱼ‖ / (n·ε)` among columns that the `f64`
    /// reference finds exactly dependent (relative residual below 1e-12) on a well-separated
    /// prefix (every earlier kept column with relative residual at least 0.01), yet the QR kept.
    pub kept_dependent: f64,
    /// Columns the `f64` reference finds exactly dependent on a well-separated prefix.
    pub dependent_columns: usize,
}

/// Checks the output of `qr_in_place` on a finite `n × k` input.
///
/// `a` is the input, `q` the output (both dense row-major, `n × k`), `r` the `k × k` factor if
/// one was requested. Panics with a message naming the violated property.
pub fn check_qr<T: Float>(
    a: &[T],
    n: usize,
    k: usize,
    q: &[T],
    r: Option<&[T]>,
    rank: usize,
    reorthogonalize: bool,
) -> QrMeasure {
    let eps = T::EPSILON.to_f64();
    let n_eps = n as f64 * eps;
    let mut measure = QrMeasure::default();

    assert!(rank <= k, "rank {rank} exceeds the column count {k}");
    for (index, value) in q.iter().enumerate() {
        assert!(
            value.is_finite(),
            "Q[{}][{}] = {value} is not finite",
            index / k,
            index % k
        );
    }

    let qf: Vec<f64> = q.iter().map(|v| v.to_f64()).collect();
    let af: Vec<f64> = a.iter().map(|v| v.to_f64()).collect();

    // Orthonormality. One MGS sweep leaves an O(ε·κ) loss, so only the norms are checked then.
    let mut worst = 0.0f64;
    for l in 0..k {
        for j in 0..k {
            if !reorthogonalize && l != j {
                continue;
            }
            let dot: f64 = (0..n).map(|i| qf[i * k + l] * qf[i * k + j]).sum();
            let target = if l == j { 1.0 } else { 0.0 };
            worst = worst.max((dot - target).abs());
        }
    }
    if n > 0 {
        measure.orthonormality = worst / n_eps;
    }
    assert!(
        worst <= ORTHONORMALITY_UNITS * n_eps,
        "max |QᵀQ − I| = {worst:e} exceeds {ORTHONORMALITY_UNITS}·n·ε = {:e} (n = {n}, k = {k}, reorthogonalize = {reorthogonalize})",
        ORTHONORMALITY_UNITS * n_eps
    );

    // The factor R: upper triangular, non-negative diagonal, rank = number of positive diagonal
    // entries (up to underflow), Q·R ≈ A column by column.
    if let Some(r) = r {
        let mut positive = 0;
        for i in 0..k {
            for j in 0..i {
                assert!(
                    r[i * k + j].bits() == 0,
                    "R[{i}][{j}] = {} below the diagonal is not +0",
                    r[i * k + j]
                );
            }
            let diagonal = r[i * k + i];
            assert!(
                diagonal >= T::ZERO,
                "R[{i}][{i}] = {diagonal} is negative or NaN"
            );
            if diagonal > T::ZERO {
                positive += 1;
            }
        }
        // A kept column has R_jj above n·ε·‖aⱼ‖, which still rounds to zero when ‖aⱼ‖ is below
        // η/(n·ε), η the subnormal step. So the rank may exceed the positive count by the number
        // of such tiny columns, and never falls below it.
        let tiny_columns = (0..k)
            .filter(|&j| {
                let norm = norm_f64((0..n).map(|i| af[i * k + j]));
                norm > 0.0 && norm < T::SUBNORMAL_STEP / n_eps
            })
            .count();
        assert!(
            positive <= rank && rank <= positive + tiny_columns,
            "rank {rank} does not match the {positive} positive diagonal entries of R ({tiny_columns} columns tiny enough to underflow)"
        );

        for j in 0..k {
            let a_norm = norm_f64((0..n).map(|i| af[i * k + j]));
            let column_finite = (0..=j).all(|l| r[l * k + j].is_finite());
            if !column_finite {
                // |r_lj| ≤ ‖aⱼ‖ exactly; rounding can push a value within a few n·ε of T::MAX
                // over it.
                assert!(
                    a_norm * (1.0 + 4.0 * n_eps) > T::MAX.to_f64(),
                    "column {j} of R is not finite, but ‖a_{j}‖ = {a_norm:e} is far below T::MAX"
                );
                continue;
            }
            // Everything divided by max|aⱼ| first, so that inputs near T::MAX cannot overflow the
            // f64 reference (for f64 inputs, ‖aⱼ‖ itself may exceed f64::MAX).
            let max_entry = (0..n).fold(0.0f64, |m, i| m.max(af[i * k + j].abs()));
            let scale = if max_entry > 0.0 { max_entry } else { 1.0 };
            let scaled_norm = norm_f64((0..n).map(|i| af[i * k + j] / scale));
            let residual = norm_f64((0..n).map(|i| {
                let reconstructed: f64 = (0..=j)
                    .map(|l| qf[i * k + l] * (r[l * k + j].to_f64() / scale))
                    .sum();
                af[i * k + j] / scale - reconstructed
            }));
            let relative_residual = if scaled_norm > 0.0 {
                residual / scaled_norm
            } else {
                residual
            };
            // Each R entry may underflow by half a subnormal step. Because Q's columns are unit
            // vectors, the k of them move Q·r_j by at most k·η in norm.
            let underflow = (k as f64 + 1.0) * T::SUBNORMAL_STEP / (scale * scaled_norm.max(1.0));
            let bound = BACKWARD_UNITS * n_eps + underflow;
            assert!(
                relative_residual <= bound,
                "‖a_{j} − Q r_{j}‖ / ‖a_{j}‖ = {relative_residual:e} exceeds {bound:e} (‖a_{j}‖ = {a_norm:e}, n = {n}, k = {k})"
            );
            if a_norm > T::MIN_POSITIVE.to_f64() * 1e6 {
                measure.backward = measure.backward.max(relative_residual / n_eps);
            }
        }
    }

    check_rank(&af, n, k, r, rank, &mut measure);
    measure
}

/// The rank checks that follow from the input alone.
///
/// - A zero column is never counted.
/// - If the input with unit columns has `σ_min ≥ rank_guard(n, k)`, every column is counted:
///   MGS computes each column's residual relative to its norm to within about
///   `2·n·u·(1 + κ)` (backward error `n·u`, span perturbation `n·u·κ`, `κ ≤ √k/σ_min`), and the
///   exact relative residual is at least `σ_min`, so the computed one stays above the `n·ε`
///   threshold.
fn check_rank<T: Float>(
    a: &[f64],
    n: usize,
    k: usize,
    r: Option<&[T]>,
    rank: usize,
    measure: &mut QrMeasure,
) {
    if k == 0 {
        assert_eq!(rank, 0);
        return;
    }
    let norms: Vec<f64> = (0..k)
        .map(|j| norm_f64((0..n).map(|i| a[i * k + j])))
        .collect();
    let zero_columns = norms.iter().filter(|&&v| v == 0.0).count();
    assert!(
        rank <= k - zero_columns,
        "rank {rank} counts some of the {zero_columns} zero columns"
    );
    if zero_columns > 0 || norms.iter().any(|v| !v.is_finite()) {
        return;
    }

    // Gram matrix of the input with unit columns.
    let mut gram = vec![0.0; k * k];
    for l in 0..k {
        for j in 0..k {
            gram[l * k + j] = (0..n)
                .map(|i| (a[i * k + l] / norms[l]) * (a[i * k + j] / norms[j]))
                .sum();
        }
    }
    let smallest = symmetric_eigenvalues(gram, k)
        .into_iter()
        .fold(f64::INFINITY, f64::min)
        .max(0.0);
    let sigma_min = smallest.sqrt();
    measure.sigma_min = Some(sigma_min);
    let guard = rank_guard(n, k, unit::<T>());
    if sigma_min >= guard {
        assert_eq!(
            rank, k,
            "well-conditioned input (σ_min = {sigma_min:e} ≥ {guard:e}, n = {n}, k = {k}) reported rank {rank}"
        );
    }

    // Exactly dependent columns (f64 relative residual ≈ 0) after a well-separated prefix: only
    // measured (see the README). A column whose direction the f32 threshold dropped earlier can
    // make a later column independent in f32 that is dependent in f64, so the measurement stops
    // at the first column whose relative residual lies between 1e-12 and 0.01.
    let mut basis: Vec<Vec<f64>> = Vec::new();
    for j in 0..k {
        let mut w: Vec<f64> = (0..n).map(|i| a[i * k + j] / norms[j]).collect();
        for _ in 0..2 {
            for b in &basis {
                let dot: f64 = w.iter().zip(b).map(|(x, y)| x * y).sum();
                for (x, y) in w.iter_mut().zip(b) {
                    *x -= dot * y;
                }
            }
        }
        let residual = norm_f64(w.iter().copied());
        if residual <= 1e-12 {
            measure.dependent_columns += 1;
            if let Some(r) = r {
                let kept = r[j * k + j].to_f64() / norms[j];
                if kept > 0.0 {
                    let n_eps = n as f64 * T::EPSILON.to_f64();
                    measure.kept_dependent = measure.kept_dependent.max(kept / n_eps);
                }
            }
        } else if residual >= 0.01 {
            basis.push(w.iter().map(|x| x / residual).collect());
        } else {
            break;
        }
    }
}

/// `σ_min` above which every column must be counted: `max(4·n·k·ε, √(8·n·√k·ε))`, the two
/// conditions of [`check_rank`] with a factor 2 to spare.
pub fn rank_guard(n: usize, k: usize, u: f64) -> f64 {
    let eps = 2.0 * u;
    let (n, k) = (n as f64, k as f64);
    (4.0 * n * k * eps).max((8.0 * n * k.sqrt() * eps).sqrt())
}

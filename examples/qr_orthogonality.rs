//! Measures the loss of orthogonality `QᵀQ − I` of the crate's modified Gram-Schmidt QR with
//! one sweep and with two ("twice is enough"), on ill-conditioned inputs, and what routing the
//! QR's norms through micromath's approximate square root would cost.
//!
//! Run with `cargo run --release --example qr_orthogonality --features micromath` for all
//! tables; without the feature the micromath table is skipped. The crate never uses micromath in
//! its QR. So for that table this example runs its own column-by-column MGS twice, once with
//! libm's square root and once with micromath's, and nothing else differs between the two runs.
//! The same column-by-column MGS is also the reference column of the other tables.
//!
//! Inputs:
//! - `A = U diag(σ) Vᵀ` with random orthonormal `U` (`n × k`) and `V` (`k × k`) from nalgebra's
//!   Householder QR, and `σ` geometric from 1 to `1/κ`;
//! - the Hilbert-like matrix `hᵢⱼ = 1/(i + j + 1)`;
//! - the Vandermonde matrix `vᵢⱼ = xᵢʲ` at `n` equispaced `x` in `[0, 1]`.
//!
//! Each input is rounded to the scalar type first, and `κ₂` is measured on the rounded matrix
//! (nalgebra's SVD in f64), so it can differ from the requested value.

use std::time::Instant;

use dion_kernel::engine::{qr_in_place, MatMut, QrOptions};
use dion_kernel::{Scalar, SplitMix64};
use nalgebra::DMatrix;

const TWO_SWEEPS: QrOptions = QrOptions {
    reorthogonalize: true,
};
const ONE_SWEEP: QrOptions = QrOptions {
    reorthogonalize: false,
};

/// A test input in f64, row-major `n × k`, with a label for the table.
struct Case {
    name: String,
    n: usize,
    k: usize,
    a: Vec<f64>,
}

fn main() {
    let mut cases_f32 = Vec::new();
    let mut cases_f64 = Vec::new();
    for (i, kappa) in [1e2, 1e4, 1e6].into_iter().enumerate() {
        cases_f32.push(with_condition_number(100 + i as u64, 64, 32, kappa));
    }
    for (i, kappa) in [1e2, 1e4, 1e6, 1e8, 1e10, 1e12].into_iter().enumerate() {
        cases_f64.push(with_condition_number(200 + i as u64, 64, 32, kappa));
    }
    for cases in [&mut cases_f32, &mut cases_f64] {
        cases.push(hilbert(16, 8));
        cases.push(vandermonde(32, 12));
    }

    println!(
        "Loss of orthogonality of qr_in_place (measured in f64 with a compensated dot product)"
    );
    println!();
    print_crate_table::<f32>("f32", &cases_f32);
    print_crate_table::<f64>("f64", &cases_f64);
    print_micromath_table(&cases_f32);
    print_timing();
}

// ---------------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------------

fn gaussian_matrix(seed: u64, n: usize, k: usize) -> DMatrix<f64> {
    let mut rng = SplitMix64::new(seed);
    DMatrix::from_fn(n, k, |_, _| rng.next_gaussian())
}

fn with_condition_number(seed: u64, n: usize, k: usize, kappa: f64) -> Case {
    let u = gaussian_matrix(seed, n, k).qr().q();
    let v = gaussian_matrix(seed + 1000, k, k).qr().q();
    let sigma = nalgebra::DVector::from_fn(k, |i, _| kappa.powf(-(i as f64) / (k - 1) as f64));
    let a = u * DMatrix::from_diagonal(&sigma) * v.transpose();
    Case {
        name: format!("U diag(σ) Vᵀ, κ = {kappa:.0e}"),
        n,
        k,
        a: row_major(&a),
    }
}

fn hilbert(n: usize, k: usize) -> Case {
    let a = DMatrix::from_fn(n, k, |i, j| 1.0 / (i + j + 1) as f64);
    Case {
        name: "Hilbert-like 1/(i+j+1)".into(),
        n,
        k,
        a: row_major(&a),
    }
}

fn vandermonde(n: usize, k: usize) -> Case {
    let a = DMatrix::from_fn(n, k, |i, j| (i as f64 / (n - 1) as f64).powi(j as i32));
    Case {
        name: "Vandermonde, x in [0, 1]".into(),
        n,
        k,
        a: row_major(&a),
    }
}

fn row_major(a: &DMatrix<f64>) -> Vec<f64> {
    (0..a.nrows())
        .flat_map(|i| (0..a.ncols()).map(move |j| a[(i, j)]))
        .collect()
}

fn round_to<T: Scalar>(a: &[f64]) -> Vec<T> {
    a.iter().map(|&v| T::from_f64(v)).collect()
}

fn condition_number<T: Scalar>(a: &[T], n: usize, k: usize) -> f64 {
    let values: Vec<f64> = a.iter().map(|v| v.to_f64()).collect();
    let sv = DMatrix::from_row_slice(n, k, &values).singular_values();
    sv.max() / sv.min()
}

// ---------------------------------------------------------------------------------------------
// Measurement
// ---------------------------------------------------------------------------------------------

/// `offset + Σ xᵢ·yᵢ` with TwoSum and an FMA-based TwoProduct: as accurate as twice the f64
/// precision, so the measurement does not add its own rounding at the level being measured.
fn compensated_dot(pairs: impl Iterator<Item = (f64, f64)>, offset: f64) -> f64 {
    let (mut sum, mut error) = (offset, 0.0);
    for (x, y) in pairs {
        let product = x * y;
        let product_error = x.mul_add(y, -product);
        let new_sum = sum + product;
        let b_virtual = new_sum - sum;
        let sum_error = (sum - (new_sum - b_virtual)) + (product - b_virtual);
        sum = new_sum;
        error += product_error + sum_error;
    }
    sum + error
}

/// `(max |QᵀQ − I|, ‖QᵀQ − I‖_F)`.
fn orthogonality<T: Scalar>(q: &[T], n: usize, k: usize) -> (f64, f64) {
    let q: Vec<f64> = q.iter().map(|v| v.to_f64()).collect();
    let (mut max, mut sum_sq) = (0.0f64, 0.0);
    for l in 0..k {
        for j in 0..k {
            let identity = if l == j { -1.0 } else { 0.0 };
            let entry = compensated_dot((0..n).map(|i| (q[i * k + l], q[i * k + j])), identity);
            max = max.max(entry.abs());
            sum_sq += entry * entry;
        }
    }
    (max, sum_sq.sqrt())
}

/// Runs the crate's QR on a copy of `a` and returns `(Q, rank)`.
fn crate_qr<T: Scalar>(a: &[T], n: usize, k: usize, options: QrOptions) -> (Vec<T>, usize) {
    let mut q = a.to_vec();
    let info = qr_in_place(
        MatMut::from_slice(&mut q, n, k).expect("buffer fits the shape"),
        None,
        options,
    )
    .expect("finite input");
    (q, info.rank)
}

fn print_crate_table<T: Scalar>(type_name: &str, cases: &[Case]) {
    println!("## {type_name}: crate QR (libm square root), two sweeps (default) and one sweep");
    println!();
    println!("The last column is the column-by-column MGS with two sweeps of this example, without panels.");
    println!();
    println!("| input | n×k | κ₂(A) measured | rank, 2 sweeps | max, 2 sweeps | Frobenius, 2 sweeps | rank, 1 sweep | max, 1 sweep | Frobenius, 1 sweep | max, column MGS, 2 sweeps |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for case in cases {
        let a: Vec<T> = round_to(&case.a);
        let (n, k) = (case.n, case.k);
        let (q2, rank2) = crate_qr(&a, n, k, TWO_SWEEPS);
        let (q1, rank1) = crate_qr(&a, n, k, ONE_SWEEP);
        let (max2, fro2) = orthogonality(&q2, n, k);
        let (max1, fro1) = orthogonality(&q1, n, k);
        let mut column_q = a.clone();
        column_mgs(&mut column_q, n, k, 2, exact_sqrt::<T>);
        let (column_max, _) = orthogonality(&column_q, n, k);
        println!(
            "| {} | {n}×{k} | {:.1e} | {rank2} | {max2:.1e} | {fro2:.1e} | {rank1} | {max1:.1e} | {fro1:.1e} | {column_max:.1e} |",
            case.name,
            condition_number(&a, n, k)
        );
    }
    println!();
}

// ---------------------------------------------------------------------------------------------
// Column-by-column MGS with a pluggable square root
// ---------------------------------------------------------------------------------------------

/// Orthonormalises the columns of `a` by column-by-column MGS, with the square root as a
/// parameter, and returns the rank.
///
/// Each column is scaled by a power of two to unit size and projected against all earlier
/// columns `sweeps` times. A column whose residual is then larger than `n·ε` of its norm is
/// normalised. Any other column is replaced by the basis vector of the row with the smallest
/// norm in the earlier columns, projected out twice.
///
/// This is the crate's algorithm without its panels: the crate projects a panel of columns
/// against all earlier panels (twice) before the columns inside the panel are projected against
/// each other, while here every column gets its full sweep, earlier panels included, each time.
fn column_mgs<T: Scalar>(
    a: &mut [T],
    n: usize,
    k: usize,
    sweeps: usize,
    sqrt: fn(T) -> T,
) -> usize {
    let threshold = T::from_usize(n) * T::EPSILON;
    let mut rank = 0;
    for j in 0..k {
        let amax = (0..n).fold(T::ZERO, |m, i| {
            if a[i * k + j].abs() > m {
                a[i * k + j].abs()
            } else {
                m
            }
        });
        if amax > T::ZERO {
            let scale = T::exp2i(-amax.exponent());
            for i in 0..n {
                a[i * k + j] *= scale;
            }
        }
        let original = column_norm(a, n, k, j, sqrt);
        let mut residual = original;
        for _ in 0..sweeps {
            project_out(a, n, k, j);
            residual = column_norm(a, n, k, j, sqrt);
            if !(original > T::ZERO && residual > threshold * original) {
                break;
            }
        }
        if original > T::ZERO && residual > threshold * original {
            for i in 0..n {
                a[i * k + j] /= residual;
            }
            rank += 1;
        } else {
            complete_column(a, n, k, j, sqrt);
        }
    }
    rank
}

fn column_norm<T: Scalar>(a: &[T], n: usize, k: usize, j: usize, sqrt: fn(T) -> T) -> T {
    sqrt((0..n).fold(T::ZERO, |sum, i| sum + a[i * k + j] * a[i * k + j]))
}

/// `a_j ← a_j − (q_l·a_j) q_l` for `l < j`, in order.
fn project_out<T: Scalar>(a: &mut [T], n: usize, k: usize, j: usize) {
    for l in 0..j {
        let dot = (0..n).fold(T::ZERO, |sum, i| sum + a[i * k + l] * a[i * k + j]);
        for i in 0..n {
            let q = a[i * k + l];
            a[i * k + j] -= dot * q;
        }
    }
}

fn complete_column<T: Scalar>(a: &mut [T], n: usize, k: usize, j: usize, sqrt: fn(T) -> T) {
    let row_norm = |i: usize| (0..j).fold(T::ZERO, |sum, l| sum + a[i * k + l] * a[i * k + l]);
    let best_row = (0..n).fold(0, |best, i| {
        if row_norm(i) < row_norm(best) {
            i
        } else {
            best
        }
    });
    for i in 0..n {
        a[i * k + j] = if i == best_row { T::ONE } else { T::ZERO };
    }
    project_out(a, n, k, j);
    project_out(a, n, k, j);
    let norm = column_norm(a, n, k, j, sqrt);
    for i in 0..n {
        a[i * k + j] /= norm;
    }
}

fn exact_sqrt<T: Scalar>(x: T) -> T {
    x.sqrt()
}

#[cfg(feature = "micromath")]
fn micromath_sqrt(x: f32) -> f32 {
    micromath::F32Ext::sqrt(x)
}

#[cfg(feature = "micromath")]
fn print_micromath_table(cases: &[Case]) {
    println!(
        "## f32: column-by-column MGS with libm's and with micromath's square root in every norm"
    );
    println!();
    println!("| input | n×k | max, libm, 2 sweeps | max, micromath, 2 sweeps | Frobenius, micromath, 2 sweeps | max, micromath, 1 sweep | Frobenius, micromath, 1 sweep |");
    println!("|---|---|---|---|---|---|---|");
    for case in cases {
        let (n, k) = (case.n, case.k);
        let a: Vec<f32> = round_to(&case.a);
        let run = |sweeps: usize, sqrt: fn(f32) -> f32| {
            let mut q = a.clone();
            column_mgs(&mut q, n, k, sweeps, sqrt);
            orthogonality(&q, n, k)
        };
        let (libm_max, _) = run(2, exact_sqrt::<f32>);
        let (mm2_max, mm2_fro) = run(2, micromath_sqrt);
        let (mm1_max, mm1_fro) = run(1, micromath_sqrt);
        println!(
            "| {} | {n}×{k} | {libm_max:.1e} | {mm2_max:.1e} | {mm2_fro:.1e} | {mm1_max:.1e} | {mm1_fro:.1e} |",
            case.name
        );
    }
    println!();
}

#[cfg(not(feature = "micromath"))]
fn print_micromath_table(_cases: &[Case]) {
    println!("(micromath table skipped: run with `--features micromath`)");
    println!();
}

// ---------------------------------------------------------------------------------------------
// Cost
// ---------------------------------------------------------------------------------------------

/// Prints the median wall time on a 256×32 f32 matrix (the Q factor of a rank-32 step on a 256-row layer):
/// the crate's QR with one and two sweeps, and this example's column-by-column MGS with two.
fn print_timing() {
    let (n, k) = (256, 32);
    let case = with_condition_number(300, n, k, 1e3);
    let a: Vec<f32> = round_to(&case.a);

    let median_micros = |run: &dyn Fn(&mut [f32])| {
        let mut samples: Vec<f64> = (0..201)
            .map(|_| {
                let mut q = a.clone();
                let start = Instant::now();
                run(&mut q);
                std::hint::black_box(&q);
                start.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        samples.sort_by(f64::total_cmp);
        samples[samples.len() / 2]
    };

    let crate_run = |options: QrOptions| {
        move |q: &mut [f32]| {
            let view = MatMut::from_slice(q, n, k).expect("buffer fits the shape");
            qr_in_place(view, None, options).expect("finite input");
        }
    };
    let one = median_micros(&crate_run(ONE_SWEEP));
    let two = median_micros(&crate_run(TWO_SWEEPS));
    let column = median_micros(&|q: &mut [f32]| {
        column_mgs(q, n, k, 2, exact_sqrt::<f32>);
    });

    println!("Median time of 201 runs on {n}×{k} f32:");
    println!("- qr_in_place, one sweep: {one:.1} µs");
    println!(
        "- qr_in_place, two sweeps: {two:.1} µs ({:.2}× one sweep)",
        two / one
    );
    println!("- column-by-column MGS of this example, two sweeps: {column:.1} µs");
}

//! Property tests of the three matrix kernels against nalgebra and against a plain sequential
//! loop, in f32 and f64.
//!
//! # Tolerance
//!
//! The kernels form every entry as one sequential sum `((a₀b₀ + a₁b₁) + a₂b₂) + …`, each product
//! and each addition rounded once. For such a sum of `k` products Higham (*Accuracy and Stability
//! of Numerical Algorithms*, 2nd ed., §3.1 and §3.5) gives
//!
//! ```text
//! |ĉᵢⱼ − cᵢⱼ| ≤ γₖ · Σₚ |aᵢₚ||bₚⱼ|,   γₖ = k·u / (1 − k·u),
//! ```
//!
//! with `u` the unit roundoff (2⁻²⁴ for f32, 2⁻⁵³ for f64). The reference is nalgebra's product
//! of the same values in f64, which obeys the same bound with `u = 2⁻⁵³` whatever order it sums
//! in, so each entry may differ from it by at most `(γₖ(T) + γₖ(f64))·Σₚ |aᵢₚ||bₚⱼ|`. The sum of
//! absolute products is itself computed in f64; its relative error, at most `γₖ(f64)`, is
//! covered by one more `γₖ(f64)` term.
//!
//! `rank_update` rounds two more times: `α·dot` and `c + α·dot`. Scaling a sum that carries the
//! bound above by `α` gives `γₖ₊₁·|α|·Σ|a||b|`, and the final addition adds at most
//! `u·|c + α·dot|` (plus `u` times the error so far, covered by using `γₖ₊₂`).
//!
//! The same kernels must also match a sequential loop written here bit for bit, which is the
//! property that makes f32 results identical on every target.

use dion_kernel::engine::{matmul, matmul_tn, rank_update, MatMut, MatRef};
use dion_kernel::{Error, Operand, Scalar};
use nalgebra::DMatrix;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

/// Largest matrix dimension the random strategies draw. It is more than two 16-wide tiles (the
/// widest `NR`) and eight `MR = 4` tiles tall, and keeps a debug-build test run short.
const MAX_DIM: usize = 40;

/// Random cases per property.
const CASES: u32 = 48;

/// Inner dimension of the deep tests: longer than one 256-deep packed block of `matmul`.
const DEEP_K: usize = 300;

/// Inner dimensions of the deep `rank_update` tests: 200 needs the 8-wide tile (a 16-wide
/// transposed block of 200 rows exceeds `NT_PACK_LEN = 2048`), 600 exceeds `A_PACK_LEN / MR =
/// 256` and takes the path that forms one dot product at a time.
const DEEP_K_UPDATE: [usize; 2] = [200, 600];

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

/// Draws a dimension: the sizes around the tile edges named explicitly, or any size up to
/// `MAX_DIM`.
fn dim() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(1usize),
        Just(2),
        Just(3),
        Just(17),
        Just(33),
        1..=MAX_DIM
    ]
}

/// `len` values `x·2^e` with `x` in `[-1, 1)` and `e` in `-8..=8`, so entries differ in
/// magnitude and the sums cancel.
fn values(len: usize) -> impl Strategy<Value = Vec<f64>> {
    proptest::collection::vec(
        (-1.0f64..1.0, -8i32..=8).prop_map(|(x, e)| x * 2f64.powi(e)),
        len,
    )
}

/// `(m, k, n)` with values for an `m × k` and a `k × n` operand (row-major).
fn product_case() -> impl Strategy<Value = ((usize, usize, usize), Vec<f64>, Vec<f64>)> {
    (dim(), dim(), dim()).prop_flat_map(|(m, k, n)| (Just((m, k, n)), values(m * k), values(k * n)))
}

fn to_scalar<T: Scalar>(values: &[f64]) -> Vec<T> {
    values.iter().map(|&x| T::from_f64(x)).collect()
}

fn to_f64<T: Scalar>(values: &[T]) -> Vec<f64> {
    values.iter().map(|x| x.to_f64()).collect()
}

/// `γₖ = k·u / (1 − k·u)` for the unit roundoff `u = EPSILON / 2` of `T`.
fn gamma<T: Scalar>(k: usize) -> f64 {
    let u = T::EPSILON.to_f64() / 2.0;
    let ku = k as f64 * u;
    assert!(ku < 0.5, "k = {k} is too large for the error bound");
    ku / (1.0 - ku)
}

/// Checks every entry of `computed` against `reference` with the per-entry bound `bound(i)`.
fn assert_within(computed: &[f64], reference: &[f64], bound: impl Fn(usize) -> f64, what: &str) {
    assert_eq!(computed.len(), reference.len());
    for (index, (&x, &y)) in computed.iter().zip(reference).enumerate() {
        let tolerance = bound(index);
        assert!(
            (x - y).abs() <= tolerance,
            "{what}: entry {index} is {x:e}, nalgebra gives {y:e}, difference {:e} exceeds the bound {tolerance:e}",
            (x - y).abs()
        );
    }
}

/// Compares bit patterns entry by entry, so NaN and the sign of zero count.
fn assert_same_bits<T: Scalar>(computed: &[T], expected: &[T], what: &str) {
    assert_eq!(computed.len(), expected.len());
    for (index, (x, y)) in computed.iter().zip(expected).enumerate() {
        assert!(
            x.to_bits_u64() == y.to_bits_u64(),
            "{what}: entry {index} is {x:?}, expected {y:?} bit for bit"
        );
    }
}

fn dmatrix(values: &[f64], nrows: usize, ncols: usize) -> DMatrix<f64> {
    DMatrix::from_row_slice(nrows, ncols, values)
}

/// Row-major entries of a nalgebra matrix.
fn row_major(matrix: &DMatrix<f64>) -> Vec<f64> {
    matrix.transpose().iter().copied().collect()
}

/// Rounds through `T` and back, so the reference gets exactly the kernel's inputs.
fn rounded<T: Scalar>(values: &[f64]) -> Vec<f64> {
    to_f64(&to_scalar::<T>(values))
}

/// `C = A·B` as one sequential sum per entry, the order the kernels promise.
fn sequential_matmul<T: Scalar>(a: &[T], b: &[T], m: usize, k: usize, n: usize) -> Vec<T> {
    let mut c = vec![T::ZERO; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut sum = T::ZERO;
            for p in 0..k {
                sum += a[i * k + p] * b[p * n + j];
            }
            c[i * n + j] = sum;
        }
    }
    c
}

/// Transposes a row-major `nrows × ncols` matrix.
fn transpose<T: Scalar>(a: &[T], nrows: usize, ncols: usize) -> Vec<T> {
    let mut t = vec![T::ZERO; a.len()];
    for i in 0..nrows {
        for j in 0..ncols {
            t[j * nrows + i] = a[i * ncols + j];
        }
    }
    t
}

fn run_matmul<T: Scalar>(a: &[T], b: &[T], m: usize, k: usize, n: usize) -> Vec<T> {
    let mut c = vec![T::ZERO; m * n];
    matmul(
        MatMut::from_slice(&mut c, m, n).unwrap(),
        MatRef::from_slice(a, m, k).unwrap(),
        MatRef::from_slice(b, k, n).unwrap(),
    )
    .unwrap();
    c
}

/// `C = Aᵀ·B` with `a_t` the `k × m` storage of `Aᵀ`.
fn run_matmul_tn<T: Scalar>(a_t: &[T], b: &[T], m: usize, k: usize, n: usize) -> Vec<T> {
    let mut c = vec![T::ZERO; m * n];
    matmul_tn(
        MatMut::from_slice(&mut c, m, n).unwrap(),
        MatRef::from_slice(a_t, k, m).unwrap(),
        MatRef::from_slice(b, k, n).unwrap(),
    )
    .unwrap();
    c
}

/// `C += α·A·Bᵀ` with `b_t` the `n × k` storage of `Bᵀ`.
fn run_rank_update<T: Scalar>(
    c: &[T],
    alpha: T,
    a: &[T],
    b_t: &[T],
    m: usize,
    k: usize,
    n: usize,
) -> Vec<T> {
    let mut c = c.to_vec();
    rank_update(
        MatMut::from_slice(&mut c, m, n).unwrap(),
        alpha,
        MatRef::from_slice(a, m, k).unwrap(),
        MatRef::from_slice(b_t, n, k).unwrap(),
    )
    .unwrap();
    c
}

/// `matmul` and `matmul_tn` against nalgebra within the bound, and against the sequential loop
/// bit for bit.
fn check_products<T: Scalar>(a64: &[f64], b64: &[f64], m: usize, k: usize, n: usize) {
    let a = to_scalar::<T>(a64);
    let b = to_scalar::<T>(b64);
    let (a_ref, b_ref) = (
        dmatrix(&rounded::<T>(a64), m, k),
        dmatrix(&rounded::<T>(b64), k, n),
    );
    let reference = row_major(&(&a_ref * &b_ref));
    let abs_sum = row_major(&(a_ref.abs() * b_ref.abs()));
    let factor = gamma::<T>(k) + 2.0 * gamma::<f64>(k);
    let bound = |index: usize| factor * abs_sum[index];

    let c = run_matmul(&a, &b, m, k, n);
    assert_within(&to_f64(&c), &reference, bound, "matmul");
    assert_same_bits(
        &c,
        &sequential_matmul(&a, &b, m, k, n),
        "matmul vs sequential loop",
    );

    let a_t = transpose(&a, m, k);
    let c_tn = run_matmul_tn(&a_t, &b, m, k, n);
    assert_within(&to_f64(&c_tn), &reference, bound, "matmul_tn");
    assert_same_bits(&c_tn, &c, "matmul_tn vs matmul");
}

/// `rank_update` against nalgebra within the bound, and against the sequential loop bit for bit.
fn check_rank_update<T: Scalar>(
    c64: &[f64],
    alpha: f64,
    a64: &[f64],
    b64: &[f64],
    m: usize,
    k: usize,
    n: usize,
) {
    let (c, a, b) = (
        to_scalar::<T>(c64),
        to_scalar::<T>(a64),
        to_scalar::<T>(b64),
    );
    let alpha_t = T::from_f64(alpha);
    let b_t = transpose(&b, k, n);
    let (a_ref, b_ref) = (
        dmatrix(&rounded::<T>(a64), m, k),
        dmatrix(&rounded::<T>(b64), k, n),
    );
    let c_ref = dmatrix(&rounded::<T>(c64), m, n);
    let alpha_ref = alpha_t.to_f64();
    let reference = row_major(&(&c_ref + (&a_ref * &b_ref) * alpha_ref));
    let abs_sum = row_major(&(a_ref.abs() * b_ref.abs()));
    let u = T::EPSILON.to_f64() / 2.0;
    let reference_factor = 2.0 * gamma::<f64>(k + 2);
    let bound = |index: usize| {
        (gamma::<T>(k + 2) + reference_factor) * alpha_ref.abs() * abs_sum[index]
            + (u + reference_factor) * reference[index].abs()
    };

    let updated = run_rank_update(&c, alpha_t, &a, &b_t, m, k, n);
    assert_within(&to_f64(&updated), &reference, bound, "rank_update");

    let dots = sequential_matmul(&a, &b, m, k, n);
    let expected: Vec<T> = c
        .iter()
        .zip(&dots)
        .map(|(&c_value, &dot)| c_value + alpha_t * dot)
        .collect();
    assert_same_bits(&updated, &expected, "rank_update vs sequential loop");
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn products_f32_match_nalgebra(((m, k, n), a, b) in product_case()) {
        check_products::<f32>(&a, &b, m, k, n);
    }

    #[test]
    fn products_f64_match_nalgebra(((m, k, n), a, b) in product_case()) {
        check_products::<f64>(&a, &b, m, k, n);
    }

    #[test]
    fn rank_update_f32_matches_nalgebra(
        ((m, k, n), a, b) in product_case(),
        c_seed in values(MAX_DIM * MAX_DIM),
        alpha in -4.0f64..4.0,
    ) {
        check_rank_update::<f32>(&c_seed[..m * n], alpha, &a, &b, m, k, n);
    }

    #[test]
    fn rank_update_f64_matches_nalgebra(
        ((m, k, n), a, b) in product_case(),
        c_seed in values(MAX_DIM * MAX_DIM),
        alpha in -4.0f64..4.0,
    ) {
        check_rank_update::<f64>(&c_seed[..m * n], alpha, &a, &b, m, k, n);
    }

    #[test]
    fn small_integers_are_exact(
        (m, k, n) in (dim(), dim(), dim()),
        seed in any::<u64>(),
    ) {
        // Entries in -8..=8 and k ≤ 40 keep every partial sum below 8·8·40 < 2²⁴, so every
        // operation is exact in f32 and any summation order gives the same result.
        let a = small_integers(m * k, seed);
        let b = small_integers(k * n, seed ^ 0x5555);
        let expected = row_major(&(dmatrix(&a, m, k) * dmatrix(&b, k, n)));
        let (a32, b32) = (to_scalar::<f32>(&a), to_scalar::<f32>(&b));

        prop_assert_eq!(to_f64(&run_matmul(&a32, &b32, m, k, n)), expected.clone());
        let a_t = transpose(&a32, m, k);
        prop_assert_eq!(to_f64(&run_matmul_tn(&a_t, &b32, m, k, n)), expected.clone());
        let zeros = vec![0.0f32; m * n];
        let b_t = transpose(&b32, k, n);
        prop_assert_eq!(to_f64(&run_rank_update(&zeros, 1.0, &a32, &b_t, m, k, n)), expected);
    }
}

/// Deterministic integers in `-8..=8` from a 64-bit linear congruential generator.
fn small_integers(len: usize, seed: u64) -> Vec<f64> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 33) % 17) as f64 - 8.0
        })
        .collect()
}

/// Deterministic values in `[-1, 1)` for the fixed-shape tests.
fn fixed_values(len: usize, seed: u64) -> Vec<f64> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect()
}

fn identity(size: usize) -> Vec<f32> {
    let mut eye = vec![0.0f32; size * size];
    for i in 0..size {
        eye[i * size + i] = 1.0;
    }
    eye
}

#[test]
fn square_tall_and_wide_shapes_match() {
    // Every combination of sizes below, above and across the 4 × 16 tile.
    let sizes = [1, 2, 3, 4, 5, 15, 16, 17, 33, 40];
    for &m in &sizes {
        for &k in &[1, 3, 17, 33] {
            for &n in &sizes {
                let seed = (m * 10_000 + k * 100 + n) as u64;
                let a = fixed_values(m * k, seed);
                let b = fixed_values(k * n, seed + 1);
                check_products::<f32>(&a, &b, m, k, n);
                let c = fixed_values(m * n, seed + 2);
                check_rank_update::<f32>(&c, -0.75, &a, &b, m, k, n);
            }
        }
    }
}

#[test]
fn deep_inner_dimension_matches() {
    // k > 256 crosses a packed block of `matmul`/`matmul_tn`, which store partial sums in C.
    for &(m, n) in &[(5, 17), (9, 33)] {
        let a = fixed_values(m * DEEP_K, 11);
        let b = fixed_values(DEEP_K * n, 12);
        check_products::<f32>(&a, &b, m, DEEP_K, n);
        check_products::<f64>(&a, &b, m, DEEP_K, n);
    }
}

#[test]
fn deep_rank_update_matches() {
    let (m, n) = (6, 37);
    for k in DEEP_K_UPDATE {
        let a = fixed_values(m * k, 21);
        let b = fixed_values(k * n, 22);
        let c = fixed_values(m * n, 23);
        check_rank_update::<f32>(&c, 0.5, &a, &b, m, k, n);
        check_rank_update::<f64>(&c, 0.5, &a, &b, m, k, n);
    }
}

#[test]
fn deep_rank_update_tile_remainders() {
    // k = 600 takes the direct kernel on every target. Every m and n from 1 to 9 leaves each
    // remainder of its 4 × 4 tiles, in rows and in columns.
    let k = DEEP_K_UPDATE[1];
    for m in 1..=9 {
        for n in 1..=9 {
            let seed = (m * 10 + n) as u64;
            let a = fixed_values(m * k, seed);
            let b = fixed_values(k * n, seed + 100);
            let c = fixed_values(m * n, seed + 200);
            check_rank_update::<f32>(&c, -0.75, &a, &b, m, k, n);
        }
    }
}

#[test]
fn rank_update_reads_short_last_row() {
    // `Bᵀ` has row stride k + 5, and its buffer ends right after the k entries of its last row.
    // The gaps hold NaN, which would show up in the result if a kernel read past a row.
    for k in [7, DEEP_K_UPDATE[1]] {
        let (m, n) = (6, 9);
        let stride = k + 5;
        let a = to_scalar::<f32>(&fixed_values(m * k, 51));
        let b_t = to_scalar::<f32>(&fixed_values(n * k, 52));
        let c0 = to_scalar::<f32>(&fixed_values(m * n, 53));
        let mut b_t_strided = with_stride(&b_t, n, k, stride, f32::NAN);
        b_t_strided.truncate((n - 1) * stride + k);

        let mut c = c0.clone();
        rank_update(
            MatMut::from_slice(&mut c, m, n).unwrap(),
            2.0,
            MatRef::from_slice(&a, m, k).unwrap(),
            MatRef::from_slice_with_stride(&b_t_strided, n, k, stride).unwrap(),
        )
        .unwrap();
        let dense = run_rank_update(&c0, 2.0, &a, &b_t, m, k, n);
        assert_same_bits(&c, &dense, "rank_update with a short last row of Bᵀ");
    }
}

#[test]
fn rank_update_sums_from_positive_zero() {
    // Every product is (−1)·0 = −0. A sum from +0 stays +0, so c = −0 becomes −0 + 1·(+0) = +0;
    // a sum started at the first product would stay −0 and leave c = −0. k = 5 takes the packed
    // kernel on the host, k = 600 the direct one.
    for k in [5, DEEP_K_UPDATE[1]] {
        let (m, n) = (5, 7);
        let a = vec![-1.0f32; m * k];
        let b_t = vec![0.0f32; n * k];
        let c = vec![-0.0f32; m * n];
        let updated = run_rank_update(&c, 1.0, &a, &b_t, m, k, n);
        assert_same_bits(&updated, &vec![0.0f32; m * n], "−0 + 1·(sum of −0 from +0)");
    }
}

#[test]
fn identity_products_are_exact() {
    // Every product but one in each sum is ±0, so A·I = A for any finite A, not only integers.
    for &(m, k) in &[(1, 1), (3, 17), (17, 3), (33, 20), (8, 64)] {
        let a = to_scalar::<f32>(&fixed_values(m * k, (m * 100 + k) as u64));
        let eye_k = identity(k);
        let eye_m = identity(m);
        assert_same_bits(&run_matmul(&a, &eye_k, m, k, k), &a, "A·I");
        assert_same_bits(&run_matmul(&eye_m, &a, m, m, k), &a, "I·A");
        assert_same_bits(&run_matmul_tn(&eye_m, &a, m, m, k), &a, "Iᵀ·A");
        let a_t = transpose(&a, m, k);
        assert_same_bits(&run_matmul_tn(&a_t, &eye_k, m, k, k), &a, "(Aᵀ)ᵀ·I");
        // C = 0 + 1·(A·Iᵀ) = A, each dot product exact as above.
        let zeros = vec![0.0f32; m * k];
        assert_same_bits(
            &run_rank_update(&zeros, 1.0, &a, &eye_k, m, k, k),
            &a,
            "0 + A·Iᵀ",
        );
    }
}

/// Copies a dense row-major matrix into a buffer with row stride `stride`, `fill` in the gaps.
fn with_stride(dense: &[f32], nrows: usize, ncols: usize, stride: usize, fill: f32) -> Vec<f32> {
    let mut strided = vec![fill; nrows * stride];
    for i in 0..nrows {
        strided[i * stride..i * stride + ncols].copy_from_slice(&dense[i * ncols..(i + 1) * ncols]);
    }
    strided
}

#[test]
fn strided_views_match_dense() {
    // The padding contains NaN, which would show up in the result if a kernel read past a row.
    let (m, k, n) = (9, 18, 21);
    let (sa, sb, sc) = (k + 3, n + 5, n + 2);
    let a = to_scalar::<f32>(&fixed_values(m * k, 31));
    let b = to_scalar::<f32>(&fixed_values(k * n, 32));
    let b_t = transpose(&b, k, n);
    let a_t = transpose(&a, m, k);
    let sentinel = 12345.0f32;

    let a_strided = with_stride(&a, m, k, sa, f32::NAN);
    let b_strided = with_stride(&b, k, n, sb, f32::NAN);
    let mut c_strided = vec![sentinel; m * sc];
    matmul(
        MatMut::from_slice_with_stride(&mut c_strided, m, n, sc).unwrap(),
        MatRef::from_slice_with_stride(&a_strided, m, k, sa).unwrap(),
        MatRef::from_slice_with_stride(&b_strided, k, n, sb).unwrap(),
    )
    .unwrap();
    let dense = run_matmul(&a, &b, m, k, n);
    assert_same_bits(
        &with_stride(&dense, m, n, sc, sentinel),
        &c_strided,
        "strided matmul",
    );

    let a_t_strided = with_stride(&a_t, k, m, m + 7, f32::NAN);
    let mut c_strided = vec![sentinel; m * sc];
    matmul_tn(
        MatMut::from_slice_with_stride(&mut c_strided, m, n, sc).unwrap(),
        MatRef::from_slice_with_stride(&a_t_strided, k, m, m + 7).unwrap(),
        MatRef::from_slice_with_stride(&b_strided, k, n, sb).unwrap(),
    )
    .unwrap();
    assert_same_bits(
        &with_stride(&dense, m, n, sc, sentinel),
        &c_strided,
        "strided matmul_tn",
    );

    let c0 = to_scalar::<f32>(&fixed_values(m * n, 33));
    let b_t_strided = with_stride(&b_t, n, k, k + 1, f32::NAN);
    let mut c_strided = with_stride(&c0, m, n, sc, sentinel);
    rank_update(
        MatMut::from_slice_with_stride(&mut c_strided, m, n, sc).unwrap(),
        -1.5,
        MatRef::from_slice_with_stride(&a_strided, m, k, sa).unwrap(),
        MatRef::from_slice_with_stride(&b_t_strided, n, k, k + 1).unwrap(),
    )
    .unwrap();
    let dense = run_rank_update(&c0, -1.5, &a, &b_t, m, k, n);
    assert_same_bits(
        &with_stride(&dense, m, n, sc, sentinel),
        &c_strided,
        "strided rank_update",
    );
}

#[test]
fn stale_nan_in_output_is_overwritten() {
    for &(m, k, n) in &[(1, 1, 1), (5, 3, 17), (17, 33, 2), (8, DEEP_K, 20)] {
        let a = to_scalar::<f32>(&fixed_values(m * k, 41));
        let b = to_scalar::<f32>(&fixed_values(k * n, 42));
        let clean = run_matmul(&a, &b, m, k, n);

        let mut c = vec![f32::NAN; m * n];
        matmul(
            MatMut::from_slice(&mut c, m, n).unwrap(),
            MatRef::from_slice(&a, m, k).unwrap(),
            MatRef::from_slice(&b, k, n).unwrap(),
        )
        .unwrap();
        assert_same_bits(&c, &clean, "matmul over NaN");

        let a_t = transpose(&a, m, k);
        let mut c = vec![f32::NAN; m * n];
        matmul_tn(
            MatMut::from_slice(&mut c, m, n).unwrap(),
            MatRef::from_slice(&a_t, k, m).unwrap(),
            MatRef::from_slice(&b, k, n).unwrap(),
        )
        .unwrap();
        assert_same_bits(&c, &clean, "matmul_tn over NaN");
    }
}

#[test]
fn zero_sized_dimensions() {
    let empty: [f32; 0] = [];
    let data = [1.5f32; 12];

    // k = 0: every entry is an empty sum, so C becomes +0, even over a stale NaN.
    let mut c = [f32::NAN; 6];
    matmul(
        MatMut::from_slice(&mut c, 2, 3).unwrap(),
        MatRef::from_slice(&empty, 2, 0).unwrap(),
        MatRef::from_slice(&empty, 0, 3).unwrap(),
    )
    .unwrap();
    assert_same_bits(&c, &[0.0; 6], "matmul with k = 0");

    let mut c = [f32::NAN; 6];
    matmul_tn(
        MatMut::from_slice(&mut c, 2, 3).unwrap(),
        MatRef::from_slice(&empty, 0, 2).unwrap(),
        MatRef::from_slice(&empty, 0, 3).unwrap(),
    )
    .unwrap();
    assert_same_bits(&c, &[0.0; 6], "matmul_tn with k = 0");

    // k = 0 for rank_update adds α·0 to every entry, which leaves non-zero entries unchanged.
    let mut c = [2.5f32; 6];
    rank_update(
        MatMut::from_slice(&mut c, 2, 3).unwrap(),
        3.0,
        MatRef::from_slice(&empty, 2, 0).unwrap(),
        MatRef::from_slice(&empty, 3, 0).unwrap(),
    )
    .unwrap();
    assert_same_bits(&c, &[2.5; 6], "rank_update with k = 0");

    // m = 0 or n = 0: nothing to write, and the call still succeeds.
    let mut c: [f32; 0] = [];
    matmul(
        MatMut::from_slice(&mut c, 0, 3).unwrap(),
        MatRef::from_slice(&empty, 0, 4).unwrap(),
        MatRef::from_slice(&data, 4, 3).unwrap(),
    )
    .unwrap();
    matmul(
        MatMut::from_slice(&mut c, 3, 0).unwrap(),
        MatRef::from_slice(&data, 3, 4).unwrap(),
        MatRef::from_slice(&empty, 4, 0).unwrap(),
    )
    .unwrap();
    matmul_tn(
        MatMut::from_slice(&mut c, 0, 3).unwrap(),
        MatRef::from_slice(&empty, 4, 0).unwrap(),
        MatRef::from_slice(&data, 4, 3).unwrap(),
    )
    .unwrap();
    rank_update(
        MatMut::from_slice(&mut c, 3, 0).unwrap(),
        1.0,
        MatRef::from_slice(&data, 3, 4).unwrap(),
        MatRef::from_slice(&empty, 0, 4).unwrap(),
    )
    .unwrap();
}

#[test]
fn shape_mismatch_leaves_output_untouched() {
    let a = [1.0f32; 12];
    let b = [2.0f32; 12];
    let original = [7.0f32; 12];

    // A is 3 × 4 but B is 3 × 4: the inner dimensions differ.
    let mut c = original;
    let error = matmul(
        MatMut::from_slice(&mut c, 3, 4).unwrap(),
        MatRef::from_slice(&a, 3, 4).unwrap(),
        MatRef::from_slice(&b, 3, 4).unwrap(),
    )
    .unwrap_err();
    assert_eq!(
        error,
        Error::ShapeMismatch {
            operand: Operand::B,
            expected: (4, 4),
            found: (3, 4)
        }
    );
    assert_same_bits(&c, &original, "matmul after an error");

    // A·B is 3 × 2 but C is 2 × 3.
    let mut c = original;
    let error = matmul(
        MatMut::from_slice(&mut c, 2, 3).unwrap(),
        MatRef::from_slice(&a, 3, 4).unwrap(),
        MatRef::from_slice(&b, 4, 2).unwrap(),
    )
    .unwrap_err();
    assert_eq!(
        error,
        Error::ShapeMismatch {
            operand: Operand::C,
            expected: (3, 2),
            found: (2, 3)
        }
    );
    assert_same_bits(&c, &original, "matmul after an error");

    // Aᵀ·B needs A and B with the same number of rows.
    let mut c = original;
    let error = matmul_tn(
        MatMut::from_slice(&mut c, 4, 3).unwrap(),
        MatRef::from_slice(&a, 3, 4).unwrap(),
        MatRef::from_slice(&b, 4, 3).unwrap(),
    )
    .unwrap_err();
    assert_eq!(
        error,
        Error::ShapeMismatch {
            operand: Operand::B,
            expected: (3, 3),
            found: (4, 3)
        }
    );
    assert_same_bits(&c, &original, "matmul_tn after an error");

    let mut c = original;
    let error = matmul_tn(
        MatMut::from_slice(&mut c, 3, 3).unwrap(),
        MatRef::from_slice(&a, 3, 4).unwrap(),
        MatRef::from_slice(&b, 3, 3).unwrap(),
    )
    .unwrap_err();
    assert_eq!(
        error,
        Error::ShapeMismatch {
            operand: Operand::C,
            expected: (4, 3),
            found: (3, 3)
        }
    );
    assert_same_bits(&c, &original, "matmul_tn after an error");

    // A·Bᵀ needs A and B with the same number of columns.
    let mut c = original;
    let error = rank_update(
        MatMut::from_slice(&mut c, 3, 4).unwrap(),
        1.0,
        MatRef::from_slice(&a, 3, 4).unwrap(),
        MatRef::from_slice(&b, 4, 3).unwrap(),
    )
    .unwrap_err();
    assert_eq!(
        error,
        Error::ShapeMismatch {
            operand: Operand::B,
            expected: (4, 4),
            found: (4, 3)
        }
    );
    assert_same_bits(&c, &original, "rank_update after an error");

    let mut c = original;
    let error = rank_update(
        MatMut::from_slice(&mut c, 4, 3).unwrap(),
        1.0,
        MatRef::from_slice(&a, 3, 4).unwrap(),
        MatRef::from_slice(&b, 2, 4).unwrap(),
    )
    .unwrap_err();
    assert_eq!(
        error,
        Error::ShapeMismatch {
            operand: Operand::C,
            expected: (3, 2),
            found: (4, 3)
        }
    );
    assert_same_bits(&c, &original, "rank_update after an error");
}

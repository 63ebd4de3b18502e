//! Tests that run on the emulated Cortex-M4F (QEMU `mps2-an386`) under defmt-test.
//!
//! Run: `cargo test -p dion-kernel-mcu --target thumbv7em-none-eabihf --test on_target`.
//! A failed assertion panics, the panic handler exits QEMU with status 1, and `cargo test` fails.
#![no_std]
#![no_main]

use dion_kernel::engine::{
    dion_step, matmul, matmul_tn, qr_in_place, rank_update, DionConfig, MatMut, MatRef, QrOptions,
    StepInfo, StepScratch, StepShape, StepState,
};
use dion_kernel::Error;
use dion_kernel_mcu as _;

/// Unit roundoff of f32, `2⁻²⁴`.
const UNIT_ROUNDOFF: f64 = f32::EPSILON as f64 / 2.0;

/// A 32-bit linear congruential generator (Numerical Recipes constants): reproducible inputs
/// without a dependency.
struct Lcg(u32);

impl Lcg {
    /// Returns a value uniform in `[-1, 1)` with 24 random bits, so it is exact in f32.
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        ((self.0 >> 8) as f32 / (1u32 << 23) as f32) - 1.0
    }

    fn fill(&mut self, values: &mut [f32]) {
        for value in values {
            *value = self.next();
        }
    }
}

/// Row-major integer matrix product in `i64`, an exact reference for small integer inputs.
fn integer_product<const M: usize, const K: usize, const N: usize>(
    a: &[[i64; K]; M],
    b: &[[i64; N]; K],
) -> [[i64; N]; M] {
    let mut c = [[0; N]; M];
    for i in 0..M {
        for j in 0..N {
            for p in 0..K {
                c[i][j] += a[i][p] * b[p][j];
            }
        }
    }
    c
}

/// Small integers in `-4..=4`, deterministic.
fn integer_matrix<const R: usize, const C: usize>(seed: i64) -> [[i64; C]; R] {
    core::array::from_fn(|i| {
        core::array::from_fn(|j| ((i as i64 * 7 + j as i64 * 3 + seed) % 9) - 4)
    })
}

/// Largest `rows · cols` of the integer test matrices.
const MAX_ELEMENTS: usize = 1200;

/// Copies `m` into the first `R · C` entries of a row-major f32 buffer (exact for small integers).
fn to_f32<const R: usize, const C: usize>(m: &[[i64; C]; R]) -> [f32; MAX_ELEMENTS] {
    let mut out = [0.0f32; MAX_ELEMENTS];
    for i in 0..R {
        for j in 0..C {
            out[i * C + j] = m[i][j] as f32;
        }
    }
    out
}

fn transpose<const R: usize, const C: usize>(m: &[[i64; C]; R]) -> [[i64; R]; C] {
    core::array::from_fn(|j| core::array::from_fn(|i| m[i][j]))
}

/// Largest `|(QᵀQ − I)ᵢⱼ|` of the `n × k` row-major `q`, computed in f64 so that the check adds
/// no f32 rounding of its own.
fn orthonormality_error(q: &[f32], n: usize, k: usize) -> f64 {
    let mut worst = 0.0f64;
    for a in 0..k {
        for b in 0..k {
            let mut dot = 0.0f64;
            for i in 0..n {
                dot += f64::from(q[i * k + a]) * f64::from(q[i * k + b]);
            }
            let expected = if a == b { 1.0 } else { 0.0 };
            worst = worst.max((dot - expected).abs());
        }
    }
    worst
}

/// Largest `|(QR − A)ᵢⱼ| / ‖aⱼ‖` over all entries, in f64.
fn reconstruction_error(q: &[f32], r: &[f32], a: &[f32], n: usize, k: usize) -> f64 {
    let mut worst = 0.0f64;
    for j in 0..k {
        let mut column_norm = 0.0f64;
        for i in 0..n {
            let value = f64::from(a[i * k + j]);
            column_norm += value * value;
        }
        let column_norm = libm::sqrt(column_norm);
        for i in 0..n {
            let mut entry = 0.0f64;
            for l in 0..k {
                entry += f64::from(q[i * k + l]) * f64::from(r[l * k + j]);
            }
            worst = worst.max((entry - f64::from(a[i * k + j])).abs() / column_norm);
        }
    }
    worst
}

fn bits(values: &[f32]) -> impl Iterator<Item = u32> + '_ {
    values.iter().map(|v| v.to_bits())
}

/// Largest `|computed − expected| / scale` over the entries.
fn max_relative_error(computed: &[f32], expected: &[f64], scale: f64) -> f64 {
    computed
        .iter()
        .zip(expected)
        .map(|(&c, &e)| (f64::from(c) - e).abs() / scale)
        .fold(0.0, f64::max)
}

/// Dion state and scratch for a `ROWS × COLS` matrix of rank `RANK` with `ROWS ≤ COLS`
/// (transposed: `Q` and `R` are `ROWS × RANK`, `P` is `COLS × RANK`), in one place for the
/// transactional test.
struct WideDion<const ROWS: usize, const COLS: usize, const RANK: usize> {
    x: [[f32; COLS]; ROWS],
    momentum: [[f32; COLS]; ROWS],
    q: [[f32; RANK]; ROWS],
    p: [[f32; RANK]; COLS],
    r: [[f32; RANK]; ROWS],
}

impl<const ROWS: usize, const COLS: usize, const RANK: usize> WideDion<ROWS, COLS, RANK> {
    fn new(seed: u32) -> Self {
        let mut lcg = Lcg(seed);
        let mut state = Self {
            x: [[0.0; COLS]; ROWS],
            momentum: [[0.0; COLS]; ROWS],
            q: [[0.0; RANK]; ROWS],
            p: [[0.0; RANK]; COLS],
            r: [[0.0; RANK]; ROWS],
        };
        lcg.fill(state.x.as_flattened_mut());
        lcg.fill(state.q.as_flattened_mut());
        state
    }

    fn step(&mut self, grad: &[[f32; COLS]; ROWS]) -> Result<StepInfo, Error> {
        dion_step(
            StepShape::new(ROWS, COLS, RANK)?,
            &DionConfig::default(),
            self.x.as_flattened_mut(),
            grad.as_flattened(),
            StepState {
                momentum: self.momentum.as_flattened_mut(),
                q: self.q.as_flattened_mut(),
            },
            StepScratch {
                p: self.p.as_flattened_mut(),
                r: self.r.as_flattened_mut(),
            },
        )
    }

    /// Hashes the bits of `X`, `M` and `Q`, chained into one FNV-1a hash.
    fn state_hash(&self) -> u64 {
        use dion_kernel_mcu::{fnv1a64, FNV1A64_START};
        let hash = fnv1a64(FNV1A64_START, self.x.as_flattened());
        let hash = fnv1a64(hash, self.momentum.as_flattened());
        fnv1a64(hash, self.q.as_flattened())
    }

    fn same_bits(&self, other: &Self) -> bool {
        bits(self.x.as_flattened()).eq(bits(other.x.as_flattened()))
            && bits(self.momentum.as_flattened()).eq(bits(other.momentum.as_flattened()))
            && bits(self.q.as_flattened()).eq(bits(other.q.as_flattened()))
    }
}

fn gradient<const ROWS: usize, const COLS: usize>(seed: u32) -> [[f32; COLS]; ROWS] {
    let mut g = [[0.0; COLS]; ROWS];
    Lcg(seed).fill(g.as_flattened_mut());
    g
}

#[defmt_test::tests]
mod tests {
    use super::*;

    // Integer inputs of magnitude ≤ 4 and inner dimension ≤ 64 give partial sums below 2¹⁰,
    // exact in f32: the kernels must then match the integer product exactly. The shapes leave
    // remainders after every tile width (4-row blocks, 16/8/4/1-column tiles).
    #[test]
    fn matmul_matches_integer_product() {
        const M: usize = 13;
        const K: usize = 37;
        const N: usize = 29;
        let a = integer_matrix::<M, K>(1);
        let b = integer_matrix::<K, N>(5);
        let expected = to_f32(&integer_product(&a, &b));
        let (a, b) = (to_f32(&a), to_f32(&b));
        let mut c = [f32::NAN; M * N];
        matmul(
            MatMut::from_slice(&mut c, M, N).unwrap(),
            MatRef::from_slice(&a, M, K).unwrap(),
            MatRef::from_slice(&b, K, N).unwrap(),
        )
        .unwrap();
        defmt::assert!(
            bits(&c).eq(bits(&expected[..M * N])),
            "matmul differs from the exact product"
        );
    }

    #[test]
    fn matmul_tn_matches_integer_product() {
        const M: usize = 11;
        const K: usize = 40;
        const N: usize = 21;
        // C = Aᵀ·B with A stored as K × M.
        let a_t = integer_matrix::<K, M>(2);
        let b = integer_matrix::<K, N>(3);
        let expected = to_f32(&integer_product(&transpose(&a_t), &b));
        let (a_t, b) = (to_f32(&a_t), to_f32(&b));
        let mut c = [f32::NAN; M * N];
        matmul_tn(
            MatMut::from_slice(&mut c, M, N).unwrap(),
            MatRef::from_slice(&a_t, K, M).unwrap(),
            MatRef::from_slice(&b, K, N).unwrap(),
        )
        .unwrap();
        defmt::assert!(
            bits(&c).eq(bits(&expected[..M * N])),
            "matmul_tn differs from the exact product"
        );
    }

    #[test]
    fn rank_update_matches_integer_product() {
        const M: usize = 18;
        const K: usize = 8;
        const N: usize = 33;
        // C += α·A·Bᵀ with B stored as N × K, α = -2 and C starting at integer values.
        let a = integer_matrix::<M, K>(4);
        let b = integer_matrix::<N, K>(6);
        let c0 = integer_matrix::<M, N>(7);
        let product = integer_product(&a, &transpose(&b));
        let expected: [[i64; N]; M] =
            core::array::from_fn(|i| core::array::from_fn(|j| c0[i][j] - 2 * product[i][j]));
        let expected = to_f32(&expected);
        let (a, b) = (to_f32(&a), to_f32(&b));
        let mut c = to_f32(&c0);
        rank_update(
            MatMut::from_slice(&mut c[..M * N], M, N).unwrap(),
            -2.0,
            MatRef::from_slice(&a, M, K).unwrap(),
            MatRef::from_slice(&b, N, K).unwrap(),
        )
        .unwrap();
        defmt::assert!(
            bits(&c[..M * N]).eq(bits(&expected[..M * N])),
            "rank_update differs from the exact result"
        );
    }

    #[test]
    fn matmul_rejects_shape_mismatch() {
        let a = [1.0f32; 6];
        let b = [1.0f32; 6];
        let mut c = [7.0f32; 4];
        // A is 2 × 3, B is 2 × 3: the inner dimensions 3 and 2 differ.
        let result = matmul(
            MatMut::from_slice(&mut c, 2, 2).unwrap(),
            MatRef::from_slice(&a, 2, 3).unwrap(),
            MatRef::from_slice(&b, 2, 3).unwrap(),
        );
        defmt::assert!(matches!(result, Err(Error::ShapeMismatch { .. })));
        defmt::assert!(c == [7.0; 4], "C was written although the call failed");
    }

    // Bound for two-sweep MGS: Giraud, Langou and Rozložník (2005) show ‖QᵀQ − I‖ = O(u) for
    // numerically non-singular A, with a constant that grows at most like n·k. n·k·u is that
    // bound with constant 1: 64·8·2⁻²⁴ ≈ 3.1e-5; random 64 × 8 matrices are well conditioned.
    #[test]
    fn qr_64x8_is_orthonormal() {
        const N: usize = 64;
        const K: usize = 8;
        let mut a = [0.0f32; N * K];
        Lcg(12345).fill(&mut a);
        let original = a;
        let mut r = [f32::NAN; K * K];
        let info = qr_in_place(
            MatMut::from_slice(&mut a, N, K).unwrap(),
            Some(MatMut::from_slice(&mut r, K, K).unwrap()),
            QrOptions::default(),
        )
        .unwrap();
        defmt::assert_eq!(info.rank, K);

        let bound = (N * K) as f64 * UNIT_ROUNDOFF;
        let orthonormality = orthonormality_error(&a, N, K);
        defmt::info!(
            "64x8 QR: max |QtQ - I| = {=f64}, bound {=f64}",
            orthonormality,
            bound
        );
        defmt::assert!(orthonormality <= bound);

        // QR = A column by column to the rounding of the projections: n·k·u relative to ‖aⱼ‖.
        let reconstruction = reconstruction_error(&a, &r, &original, N, K);
        defmt::info!(
            "64x8 QR: max |QR - A| / |a_j| = {=f64}, bound {=f64}",
            reconstruction,
            bound
        );
        defmt::assert!(reconstruction <= bound);
        for i in 0..K {
            defmt::assert!(r[i * K + i] > 0.0, "diagonal of R must be positive");
            for j in 0..i {
                defmt::assert_eq!(r[i * K + j], 0.0, "R must be upper triangular");
            }
        }
    }

    // Column 3 repeats column 1: the QR must report rank K − 1 and still return orthonormal
    // columns (the dependent one replaced by a completion).
    #[test]
    fn qr_rank_deficient_stays_orthonormal() {
        const N: usize = 32;
        const K: usize = 6;
        let mut a = [0.0f32; N * K];
        Lcg(777).fill(&mut a);
        for i in 0..N {
            a[i * K + 3] = a[i * K + 1];
        }
        let info = qr_in_place(
            MatMut::from_slice(&mut a, N, K).unwrap(),
            None,
            QrOptions::default(),
        )
        .unwrap();
        defmt::assert_eq!(info.rank, K - 1);
        let orthonormality = orthonormality_error(&a, N, K);
        defmt::assert!(orthonormality <= (N * K) as f64 * UNIT_ROUNDOFF);
    }

    #[test]
    fn qr_rejects_nan_without_writing() {
        const N: usize = 16;
        const K: usize = 4;
        let mut a = [0.0f32; N * K];
        Lcg(99).fill(&mut a);
        a[5 * K + 2] = f32::NAN;
        let before = a;
        let result = qr_in_place(
            MatMut::from_slice(&mut a, N, K).unwrap(),
            None,
            QrOptions::default(),
        );
        defmt::assert!(matches!(
            result,
            Err(Error::NonFinite { row: 5, col: 2, .. })
        ));
        defmt::assert!(
            bits(&a).eq(bits(&before)),
            "A was written although the QR failed"
        );
    }

    // One step on the rank-1 gradient G = s·u vᵀ, u = [1, 2, 2, 4] (‖u‖ = 5), v = [2, 1, 2]
    // (‖v‖ = 3), from M = 0 and Q = e₁ (vᵀQ = 2 ≠ 0). By hand, with σ = ±1 the sign the QR picks:
    //   P = σ·u/5,  R = Bᵀ·P = 5sσ·v,  Q' = R / (‖R‖ + ε) = σ·5s·v / (15s + ε) ≈ σ·v/3,
    //   M' = B − (1 − μ)·P Rᵀ = μ·B,
    //   X' = (1 − lr·wd)·X − lr·√(4/3)·P Q'ᵀ = (1 − lr·wd)·X − lr·√(4/3)·u vᵀ·(5s / (15s + ε))/5.
    // Each computed quantity is a chain of at most about 20 roundings (dot products of length
    // ≤ 4, one square root, two divisions per normalisation). Its error is therefore at most
    // about 20·u relative to the largest entry of the matrix. The bound 32·u ≈ 1.9·10⁻⁶ leaves
    // margin and is still far below the smallest entry, so a wrong formula cannot pass.
    #[test]
    fn dion_rank_one_exact_answer() {
        const ROWS: usize = 4;
        const COLS: usize = 3;
        let u = [1.0f64, 2.0, 2.0, 4.0];
        let v = [2.0f64, 1.0, 2.0];
        let s = 0.5f64;
        let config = DionConfig {
            lr: 0.01f32,
            momentum: 0.95,
            weight_decay: 0.01,
            ..DionConfig::default()
        };
        let (lr, mu, wd, eps) = (
            0.01f64,
            f64::from(config.momentum),
            0.01f64,
            f64::from(config.epsilon),
        );

        let mut grad = [0.0f32; ROWS * COLS];
        let mut x = [0.0f32; ROWS * COLS];
        let x0: [f32; ROWS * COLS] = core::array::from_fn(|k| (k as f32 - 5.0) / 8.0);
        for i in 0..ROWS {
            for j in 0..COLS {
                grad[i * COLS + j] = (s * u[i] * v[j]) as f32;
            }
        }
        x.copy_from_slice(&x0);
        let mut momentum = [0.0f32; ROWS * COLS];
        let mut q = [1.0f32, 0.0, 0.0];
        let (mut p, mut r) = ([f32::NAN; ROWS], [f32::NAN; COLS]);
        let info = dion_step(
            StepShape::new(ROWS, COLS, 1).unwrap(),
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
        defmt::info!("rank-1 step: {}, P = {}, Q = {}", info, p, q);
        defmt::assert_eq!(info.qr_rank, 1);

        let tolerance = 32.0 * UNIT_ROUNDOFF;
        let sigma = if p[0] > 0.0 { 1.0 } else { -1.0 };
        let p_expected: [f64; ROWS] = core::array::from_fn(|i| sigma * u[i] / 5.0);
        defmt::assert!(
            max_relative_error(&p, &p_expected, 0.8) <= tolerance,
            "P != sign * u / 5"
        );

        let shrink = 5.0 * s / (15.0 * s + eps);
        let q_expected: [f64; COLS] = core::array::from_fn(|j| sigma * v[j] * shrink);
        defmt::assert!(
            max_relative_error(&q, &q_expected, 2.0 / 3.0) <= tolerance,
            "Q != sign * v / 3"
        );

        let m_expected: [f64; ROWS * COLS] = core::array::from_fn(|k| mu * f64::from(grad[k]));
        defmt::assert!(
            max_relative_error(&momentum, &m_expected, mu * 4.0) <= tolerance,
            "M != mu * B"
        );

        let step = lr * libm::sqrt(ROWS as f64 / COLS as f64);
        let x_expected: [f64; ROWS * COLS] = core::array::from_fn(|k| {
            let (i, j) = (k / COLS, k % COLS);
            f64::from(x0[k]) * (1.0 - lr * wd) - step * u[i] * v[j] * shrink / 5.0
        });
        let x_scale = x_expected.iter().fold(0.0f64, |m, e| m.max(e.abs()));
        defmt::assert!(
            max_relative_error(&x, &x_expected, x_scale) <= tolerance,
            "X differs from the exact update"
        );
    }

    // A NaN gradient must return NonFinite and leave X, M and Q bit-identical. The run must then
    // continue exactly as if the bad step had never happened.
    #[test]
    fn dion_nan_gradient_leaves_state_untouched() {
        let mut clean = WideDion::<32, 64, 8>::new(2024);
        let mut faulty = WideDion::<32, 64, 8>::new(2024);
        for seed in 1..=3 {
            let g = gradient::<32, 64>(seed);
            clean.step(&g).unwrap();
            faulty.step(&g).unwrap();
        }
        defmt::assert!(faulty.same_bits(&clean));
        let before = faulty.state_hash();

        let mut bad = gradient::<32, 64>(4);
        bad[17][40] = f32::NAN;
        let result = faulty.step(&bad);
        defmt::info!("step with a NaN gradient: {}", result);
        defmt::assert!(matches!(
            result,
            Err(Error::NonFinite {
                row: 17,
                col: 40,
                ..
            })
        ));
        defmt::assert_eq!(
            faulty.state_hash(),
            before,
            "a failed step changed X, M or Q"
        );
        defmt::assert!(faulty.same_bits(&clean));

        for seed in 5..=6 {
            let g = gradient::<32, 64>(seed);
            clean.step(&g).unwrap();
            faulty.step(&g).unwrap();
        }
        defmt::assert!(
            faulty.same_bits(&clean),
            "the run diverged after the rejected step"
        );
    }

    // A NaN in X is an input error too: the step must not run on it.
    #[test]
    fn dion_nan_parameter_leaves_state_untouched() {
        let mut state = WideDion::<8, 16, 2>::new(41);
        state.step(&gradient::<8, 16>(42)).unwrap();
        state.x[0][0] = f32::NAN;
        let before = state.state_hash();
        let result = state.step(&gradient::<8, 16>(43));
        defmt::info!("step with a NaN in X: {}", result);
        defmt::assert!(matches!(
            result,
            Err(Error::NonFinite { row: 0, col: 0, .. })
        ));
        defmt::assert_eq!(
            state.state_hash(),
            before,
            "a failed step changed X, M or Q"
        );
    }

    // Finite inputs whose sum M + G overflows f32 must be rejected the same way.
    #[test]
    fn dion_overflow_leaves_state_untouched() {
        let mut state = WideDion::<8, 16, 2>::new(31);
        let g = gradient::<8, 16>(32);
        state.step(&g).unwrap();
        for row in state.momentum.iter_mut() {
            row.fill(3.0e38);
        }
        let before = state.state_hash();
        let huge = [[3.0e38f32; 16]; 8];
        let result = state.step(&huge);
        defmt::info!("step with M + G beyond f32::MAX: {}", result);
        defmt::assert!(result.is_err());
        defmt::assert_eq!(
            state.state_hash(),
            before,
            "a failed step changed X, M or Q"
        );
    }

    // Negative control for CI: this test must fail, and the run must then exit with status 1.
    #[cfg(feature = "fail-demo")]
    #[test]
    fn deliberately_failing() {
        let product = core::hint::black_box(2.0f32) * 2.0;
        defmt::assert_eq!(
            product,
            5.0f32,
            "expected failure: the fail-demo feature is on"
        );
    }
}

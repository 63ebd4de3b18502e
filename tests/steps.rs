//! Exact-maths cases of the Dion and PowerSGD steps, the phased data-parallel step, the scalar
//! optimizers and hyperparameter validation.
// Index loops mirror the subscripts of the formulas they check.
#![allow(clippy::needless_range_loop)]

use dion_kernel::engine::{
    adamw_step, dion_step, lion_step, DionConfig, PowerSgdConfig, ScalarOptConfig, StepScratch,
    StepShape, StepState,
};
use dion_kernel::typed::{AdamW, Dion, Lion, Matrix, PowerSgd};
use dion_kernel::{Error, Operand, SplitMix64};

fn no_decay(lr: f64, momentum: f64) -> DionConfig<f64> {
    DionConfig {
        lr,
        momentum,
        weight_decay: 0.0,
        ..DionConfig::default()
    }
}

/// u vᵀ for u = [3, 2, 0, 6, 0, 0] (‖u‖ = 7) and v = [2, 1, 2] (‖v‖ = 3).
const U6: [f64; 6] = [3.0, 2.0, 0.0, 6.0, 0.0, 0.0];
const V3: [f64; 3] = [2.0, 1.0, 2.0];

#[test]
fn rank_one_gradient_any_scale() {
    // One step on B = s·u vᵀ from a Q with vᵀQ ≠ 0 gives P = u/7 and R = Bᵀ P = 7s·v, so
    // Q = R/(‖R‖ + ε) = f·v/3 with f = 21s/(21s + ε): exactly v/3 in direction for any s, and
    // shorter by f once ‖R‖ nears ε (the reference's choice). In f64 each quantity passes through
    // a handful of roundings: 1e-14 relative is about 50 ulps.
    for s in [1e-30, 1e-3, 1.0, 7.5, 1e3, 1e30, 1e150] {
        let f = 21.0 * s / (21.0 * s + 1e-8);
        let grad = Matrix::<f64, 6, 3>::from_fn(|i, j| s * U6[i] * V3[j]);
        let mut x = Matrix::<f64, 6, 3>::zeros();
        let mut dion =
            Dion::<f64, 6, 3, 1>::with_q(no_decay(0.01, 0.9), &[0.3, -0.2, 0.5]).unwrap();
        dion.step(&mut x, &grad).unwrap();

        let q = dion.q();
        let sign = q[0].signum();
        for (j, &v) in V3.iter().enumerate() {
            let expected = f * v / 3.0;
            assert!(
                (sign * q[j] - expected).abs() <= 1e-14 * expected,
                "s = {s:e}: q[{j}] = {}",
                q[j]
            );
        }
        let lr_scaled = 0.01 * 2f64.sqrt(); // √(6/3)
        for i in 0..6 {
            for j in 0..3 {
                let expected = -lr_scaled * U6[i] / 7.0 * f * V3[j] / 3.0;
                let got = x.get(i, j);
                assert!(
                    (got - expected).abs() <= 1e-14 * lr_scaled,
                    "s = {s:e}: X[{i}][{j}] = {got}"
                );
                let m_expected = 0.9 * grad.get(i, j);
                let m = dion.momentum().get(i, j);
                assert!(
                    (m - m_expected).abs() <= 1e-14 * s * 8.0,
                    "s = {s:e}: M[{i}][{j}] = {m}"
                );
            }
        }
    }
}

#[test]
fn full_rank_keeps_mu_times_b() {
    // With rank = min(rows, cols), span(P) contains the column space of B, so P Rᵀ = P Pᵀ B = B
    // and M = B − (1 − μ)·B = μ·B. Error: the projection is formed from an orthonormal P with
    // O(n·ε) loss, so |M − μB| ≤ c·n·ε·max|B|; 1e-12 covers c·n = 4500 at ε = 2.2e-16.
    let mut rng = SplitMix64::new(3);
    let grad = Matrix::<f64, 7, 4>::from_fn(|_, _| rng.next_gaussian());
    let mut x = Matrix::<f64, 7, 4>::zeros();
    let mut dion = Dion::<f64, 7, 4, 4>::new(no_decay(0.01, 0.8), 11).unwrap();
    dion.step(&mut x, &grad).unwrap();
    for (m, g) in dion.momentum().as_slice().iter().zip(grad.as_slice()) {
        assert!((m - 0.8 * g).abs() <= 1e-12, "M = {m}, μB = {}", 0.8 * g);
    }

    // The same for a wide matrix (transposed path).
    let grad = Matrix::<f64, 3, 5>::from_fn(|_, _| rng.next_gaussian());
    let mut x = Matrix::<f64, 3, 5>::zeros();
    let mut dion = Dion::<f64, 3, 5, 3>::new(no_decay(0.01, 0.8), 12).unwrap();
    dion.step(&mut x, &grad).unwrap();
    for (m, g) in dion.momentum().as_slice().iter().zip(grad.as_slice()) {
        assert!((m - 0.8 * g).abs() <= 1e-12, "M = {m}, μB = {}", 0.8 * g);
    }
}

#[test]
fn row_and_column_parameters() {
    // A 1×n parameter: W = Bᵀ is n×1, P = g/‖g‖, R = ‖g‖, Q' = ‖g‖/(‖g‖ + ε) ≈ 1,
    // ΔX = −lr·√(1/n)·g/‖g‖, M = μ·g.
    let g = [3.0, 0.0, -4.0, 0.0];
    let mut x = Matrix::<f64, 1, 4>::zeros();
    let mut dion = Dion::<f64, 1, 4, 1>::with_q(no_decay(0.1, 0.5), &[2.0]).unwrap();
    dion.step(&mut x, &Matrix::from_rows([g])).unwrap();
    for j in 0..4 {
        let expected = -0.1 * 0.5 * g[j] / 5.0 * (5.0 / (5.0 + 1e-8));
        assert!(
            (x.get(0, j) - expected).abs() <= 1e-15,
            "X[0][{j}] = {}",
            x.get(0, j)
        );
        assert!((dion.momentum().get(0, j) - 0.5 * g[j]).abs() <= 1e-15);
    }

    // An n×1 parameter: W = B is n×1, Q is 1×1, the scale is √(n/1).
    let mut x = Matrix::<f64, 4, 1>::zeros();
    let mut dion = Dion::<f64, 4, 1, 1>::with_q(no_decay(0.1, 0.5), &[-1.0]).unwrap();
    dion.step(&mut x, &Matrix::from_rows([[3.0], [0.0], [-4.0], [0.0]]))
        .unwrap();
    for i in 0..4 {
        let expected = -0.1 * 2.0 * g[i] / 5.0 * (5.0 / (5.0 + 1e-8));
        assert!(
            (x.get(i, 0) - expected).abs() <= 1e-15,
            "X[{i}][0] = {}",
            x.get(i, 0)
        );
    }
}

#[test]
fn weight_decay_scales_x() {
    // A zero gradient with M = 0 only decays X: X ← (1 − lr·wd)·X, one rounding per entry.
    let x0 = Matrix::<f32, 3, 2>::from_fn(|i, j| (i * 2 + j) as f32 - 2.5);
    let mut x = x0;
    let config = DionConfig {
        lr: 0.5f32,
        weight_decay: 0.1,
        ..DionConfig::default()
    };
    let mut dion = Dion::<f32, 3, 2, 1>::new(config, 1).unwrap();
    dion.step(&mut x, &Matrix::zeros()).unwrap();
    for (a, b) in x.as_slice().iter().zip(x0.as_slice()) {
        assert_eq!(*a, 0.95f32 * b);
    }
}

#[test]
fn invalid_hyperparameters_are_named() {
    let cases: [(DionConfig<f32>, &str); 8] = [
        (
            DionConfig {
                lr: -1.0,
                ..DionConfig::default()
            },
            "lr",
        ),
        (
            DionConfig {
                lr: f32::NAN,
                ..DionConfig::default()
            },
            "lr",
        ),
        (
            DionConfig {
                lr: f32::INFINITY,
                ..DionConfig::default()
            },
            "lr",
        ),
        (
            DionConfig {
                momentum: 1.0,
                ..DionConfig::default()
            },
            "momentum",
        ),
        (
            DionConfig {
                momentum: -0.1,
                ..DionConfig::default()
            },
            "momentum",
        ),
        (
            DionConfig {
                weight_decay: -0.5,
                ..DionConfig::default()
            },
            "weight_decay",
        ),
        (
            DionConfig {
                epsilon: 0.0,
                ..DionConfig::default()
            },
            "epsilon",
        ),
        (
            DionConfig {
                power_iters: 0,
                ..DionConfig::default()
            },
            "power_iters",
        ),
    ];
    for (config, expected) in cases {
        match Dion::<f32, 4, 3, 2>::new(config, 0) {
            Err(Error::InvalidHyperparameter { name, .. }) => assert_eq!(name, expected),
            other => panic!("{expected}: expected InvalidHyperparameter, got {other:?}"),
        }
    }
    let decay_flips_sign = DionConfig {
        lr: 2.0f32,
        weight_decay: 1.0,
        ..DionConfig::default()
    };
    assert!(matches!(
        decay_flips_sign.validate(),
        Err(Error::InvalidHyperparameter {
            name: "weight_decay",
            ..
        })
    ));
    let message = DionConfig {
        lr: -1.0f32,
        ..DionConfig::default()
    }
    .validate()
    .unwrap_err()
    .to_string();
    assert!(
        message.contains("lr = -1") && message.contains(">= 0"),
        "{message}"
    );
}

#[test]
fn engine_rejects_wrong_lengths_and_rank() {
    assert_eq!(
        StepShape::new(4, 3, 4),
        Err(Error::InvalidRank { rank: 4, max: 3 })
    );
    assert_eq!(
        StepShape::new(4, 3, 0),
        Err(Error::InvalidRank { rank: 0, max: 3 })
    );
    assert_eq!(
        StepShape::new(0, 3, 1),
        Err(Error::InvalidRank { rank: 1, max: 0 })
    );
    let huge = usize::MAX / 2;
    assert_eq!(
        StepShape::new(huge, huge, 1),
        Err(Error::ShapeTooLarge {
            rows: huge,
            cols: huge
        })
    );

    let shape = StepShape::new(4, 3, 2).unwrap();
    let (mut x, grad, mut m) = ([0.0f32; 12], [0.0f32; 11], [0.0f32; 12]);
    let (mut q, mut p, mut r) = ([1.0f32; 6], [0.0f32; 8], [0.0f32; 6]);
    let err = dion_step(
        shape,
        &DionConfig::default(),
        &mut x,
        &grad,
        StepState {
            momentum: &mut m,
            q: &mut q,
        },
        StepScratch {
            p: &mut p,
            r: &mut r,
        },
    );
    assert_eq!(
        err,
        Err(Error::BufferTooSmall {
            operand: Operand::Grad,
            required: 12,
            len: 11
        })
    );
}

#[test]
fn overflowing_update_is_rejected_untouched() {
    // M + G overflows f32 although both are finite.
    let mut x = Matrix::<f32, 2, 2>::zeros();
    let mut dion = Dion::<f32, 2, 2, 1>::new(DionConfig::default(), 5).unwrap();
    let big = Matrix::from_rows([[f32::MAX, 0.0], [0.0, 1.0]]);
    dion.step(&mut x, &big).unwrap_err();
    let (x0, m0, q0) = (x, *dion.momentum(), dion.q().to_vec());
    let err = dion.step(&mut x, &big).unwrap_err();
    assert!(matches!(err, Error::Overflow { .. }), "{err:?}");
    assert_eq!(x, x0);
    assert_eq!(*dion.momentum(), m0);
    assert_eq!(dion.q(), &q0[..]);

    // An X entry near f32::MAX with a large step would overflow X.
    let mut x = Matrix::from_rows([[f32::MAX, 0.0], [0.0, 0.0]]);
    let config = DionConfig {
        lr: 1e38f32,
        weight_decay: 0.0,
        ..DionConfig::default()
    };
    let mut dion = Dion::<f32, 2, 2, 1>::new(config, 5).unwrap();
    let err = dion
        .step(&mut x, &Matrix::from_rows([[-1.0, 0.0], [0.0, 0.0]]))
        .unwrap_err();
    assert_eq!(
        err,
        Error::Overflow {
            operand: Operand::Param
        }
    );
    assert_eq!(x.get(0, 0), f32::MAX);
    assert!(dion.momentum().as_slice().iter().all(|&m| m == 0.0));
}

#[test]
fn overflowing_r_is_rejected_untouched() {
    // B = 3e38·𝟙𝟙ᵀ is finite. Every partial sum of P = B q stays within 3e38, so P = 1.5e38·𝟙
    // is finite too, but after the QR R = Bᵀ P = 3e38·√8·𝟙 exceeds f32::MAX (3.4e38). With one
    // power iteration the last check of R rejects it, and with more the check between
    // iterations does.
    let q = [1.0f32, -1.0, 1.0, -1.0, 1.0, -1.0, 0.5, 0.0];
    let grad = Matrix::<f32, 8, 8>::from_fn(|_, _| 3e38);
    for power_iters in 1..=3 {
        let config = DionConfig {
            power_iters,
            ..DionConfig::default()
        };
        let mut dion = Dion::<f32, 8, 8, 1>::with_q(config, &q).unwrap();
        let q0 = dion.q().to_vec();
        let mut x = Matrix::<f32, 8, 8>::from_fn(|i, j| (i + j) as f32);
        let x0 = x;

        let err = dion.step(&mut x, &grad).unwrap_err();

        assert_eq!(
            err,
            Error::Overflow {
                operand: Operand::R
            },
            "power_iters {power_iters}"
        );
        assert_eq!(x, x0, "power_iters {power_iters}");
        assert!(dion.momentum().as_slice().iter().all(|&m| m == 0.0));
        assert_eq!(dion.q(), &q0[..], "power_iters {power_iters}");
    }
}

#[test]
fn non_finite_state_is_rejected() {
    let mut x = Matrix::from_rows([[1.0f32, f32::NAN], [0.0, 0.0]]);
    let mut dion = Dion::<f32, 2, 2, 1>::new(DionConfig::default(), 5).unwrap();
    let err = dion
        .step(&mut x, &Matrix::from_rows([[1.0, 0.0], [0.0, 1.0]]))
        .unwrap_err();
    assert_eq!(
        err,
        Error::NonFinite {
            operand: Operand::Param,
            row: 0,
            col: 1
        }
    );
    assert!(Dion::<f32, 2, 2, 1>::with_q(DionConfig::default(), &[1.0, f32::INFINITY]).is_err());
}

/// Two workers averaging P and R between phases end where one worker stepping on the mean B
/// ends: identical X and Q, and the mean of their M equals its M.
#[test]
fn phased_workers_match_single_worker() {
    type D = Dion<f64, 6, 9, 3>;
    let mut rng = SplitMix64::new(99);
    let x0 = Matrix::<f64, 6, 9>::from_fn(|_, _| 0.1 * rng.next_gaussian());
    let config = DionConfig {
        lr: 0.02,
        ..DionConfig::default()
    };
    let mut workers = [D::new(config, 7).unwrap(), D::new(config, 7).unwrap()];
    let mut single = D::new(config, 7).unwrap();
    let mut xs = [x0, x0];
    let mut x_single = x0;

    for step in 0..4 {
        let grads: [Matrix<f64, 6, 9>; 2] =
            core::array::from_fn(|_| Matrix::from_fn(|_, _| rng.next_gaussian()));
        let mean = Matrix::from_fn(|i, j| 0.5 * (grads[0].get(i, j) + grads[1].get(i, j)));
        single.step(&mut x_single, &mean).unwrap();

        let [w0, w1] = &mut workers;
        let [x0_ref, x1_ref] = &mut xs;
        let mut a = w0.begin(x0_ref, &grads[0]).unwrap();
        let mut b = w1.begin(x1_ref, &grads[1]).unwrap();
        average(a.p_mut(), b.p_mut());
        let mut a = a.project().unwrap();
        let mut b = b.project().unwrap();
        average(a.r_mut(), b.r_mut());
        a.finish().unwrap();
        b.finish().unwrap();

        // Both workers ran the same arithmetic on the same averaged factors: bit-identical.
        assert_eq!(xs[0], xs[1], "step {step}: workers' X differ");
        assert_eq!(
            workers[0].q(),
            workers[1].q(),
            "step {step}: workers' Q differ"
        );
        // Against the single worker: P = (B₀ + B₁)/2·Q rounds differently from (M + mean G)·Q,
        // so agreement is to rounding of a few step-sized quantities: 1e-12 relative to lr.
        for (a, b) in xs[0].as_slice().iter().zip(x_single.as_slice()) {
            assert!((a - b).abs() <= 1e-12, "step {step}: X {a} vs single {b}");
        }
        for (a, b) in workers[0].q().iter().zip(single.q()) {
            assert!((a - b).abs() <= 1e-10, "step {step}: Q {a} vs single {b}");
        }
        let mean_m = Matrix::<f64, 6, 9>::from_fn(|i, j| {
            0.5 * (workers[0].momentum().get(i, j) + workers[1].momentum().get(i, j))
        });
        for (a, b) in mean_m.as_slice().iter().zip(single.momentum().as_slice()) {
            assert!(
                (a - b).abs() <= 1e-10,
                "step {step}: mean M {a} vs single {b}"
            );
        }
    }
}

fn average(a: &mut [f64], b: &mut [f64]) {
    for (x, y) in a.iter_mut().zip(b.iter_mut()) {
        let mean = 0.5 * (*x + *y);
        *x = mean;
        *y = mean;
    }
}

#[test]
fn phased_step_abandoned_or_poisoned_leaves_state() {
    let mut rng = SplitMix64::new(5);
    let mut x = Matrix::<f32, 5, 4>::from_fn(|_, _| rng.next_gaussian() as f32);
    let grad = Matrix::<f32, 5, 4>::from_fn(|_, _| rng.next_gaussian() as f32);
    let mut dion = Dion::<f32, 5, 4, 2>::new(DionConfig::default(), 3).unwrap();
    let (x0, m0, q0) = (x, *dion.momentum(), dion.q().to_vec());

    {
        // Abandoned right after P = W·Q.
        let _phase = dion.begin(&mut x, &grad).unwrap();
    }
    let mut phase = dion.begin(&mut x, &grad).unwrap();
    phase.p_mut()[3] = f32::NAN;
    assert!(phase.project().is_err());
    let phase = dion.begin(&mut x, &grad).unwrap();
    let mut phase = phase.project().unwrap();
    phase.r_mut()[0] = f32::INFINITY;
    assert!(phase.finish().is_err());

    assert_eq!(x, x0);
    assert_eq!(*dion.momentum(), m0);
    assert_eq!(dion.q(), &q0[..]);
    let config = DionConfig {
        power_iters: 2,
        ..DionConfig::default()
    };
    let mut two = Dion::<f32, 5, 4, 2>::new(config, 3).unwrap();
    assert!(matches!(
        two.begin(&mut x, &grad),
        Err(Error::InvalidHyperparameter {
            name: "power_iters",
            ..
        })
    ));
}

#[test]
fn more_power_iterations_converge() {
    // On a fixed B with a spectral gap, power_iters = 8 from a random Q captures the top
    // singular direction: Q aligns with the leading right singular vector v₁ = e₁ of
    // diag(10, 1, 0.5) (padded), with error ~ (σ₂/σ₁)^(2·8) = 1e-16; its length is
    // ‖R‖/(‖R‖ + ε) = 10/(10 + 1e-8).
    let b = Matrix::<f64, 4, 3>::from_rows([
        [10.0, 0.0, 0.0],
        [0.0, 1.0, 0.0],
        [0.0, 0.0, 0.5],
        [0.0, 0.0, 0.0],
    ]);
    let config = DionConfig {
        power_iters: 8,
        momentum: 0.0,
        ..DionConfig::default()
    };
    let mut dion = Dion::<f64, 4, 3, 1>::with_q(config, &[0.3, 0.9, -0.4]).unwrap();
    let mut x = Matrix::zeros();
    dion.step(&mut x, &b).unwrap();
    let q = dion.q();
    assert!(
        (q[0].abs() - 10.0 / (10.0 + 1e-8)).abs() <= 1e-15,
        "q = {q:?}"
    );
    assert!(q[1].abs() <= 1e-7 && q[2].abs() <= 1e-7, "q = {q:?}");
}

#[test]
fn powersgd_rank_one_is_exact() {
    // PowerSGD on a rank-1 gradient at rank 1: P Rᵀ = P Pᵀ G = G, so E = 0 and X = −lr·G
    // (up to a few roundings: 1e-14 relative in f64).
    let grad = Matrix::<f64, 6, 3>::from_fn(|i, j| 3.0 * U6[i] * V3[j]);
    let mut x = Matrix::<f64, 6, 3>::zeros();
    let config = PowerSgdConfig {
        lr: 0.1,
        ..PowerSgdConfig::default()
    };
    let mut opt = PowerSgd::<f64, 6, 3, 1>::with_q(config, &[1.0, 1.0, 1.0]).unwrap();
    opt.step(&mut x, &grad).unwrap();
    for (xv, g) in x.as_slice().iter().zip(grad.as_slice()) {
        assert!(
            (xv + 0.1 * g).abs() <= 1e-14 * 24.0 * 3.0,
            "X = {xv}, expected {}",
            -0.1 * g
        );
    }
    assert!(opt
        .error_feedback()
        .as_slice()
        .iter()
        .all(|e| e.abs() <= 1e-13));
    // The warm start is R = Gᵀ P, not normalised: ‖R‖ = ‖G‖ = 3·‖u‖·‖v‖ = 3·7·3 = 63.
    let norm: f64 = opt.q().iter().map(|v| v * v).sum::<f64>().sqrt();
    assert!((norm - 63.0).abs() <= 1e-12, "‖Q‖ = {norm}");
}

#[test]
fn powersgd_zero_gradient_keeps_warm_start() {
    let mut x = Matrix::<f32, 3, 3>::from_fn(|i, j| (i + j) as f32);
    let x0 = x;
    let mut opt = PowerSgd::<f32, 3, 3, 2>::new(PowerSgdConfig::default(), 4).unwrap();
    let q0 = opt.q().to_vec();
    let info = opt.step(&mut x, &Matrix::zeros()).unwrap();
    assert_eq!(info.zero_columns, 2);
    assert_eq!(x, x0);
    assert_eq!(opt.q(), &q0[..]);
}

#[test]
fn adamw_first_step_is_signed_lr() {
    // At t = 1 the bias corrections give m̂ = g and v̂ = g², so the step is lr·g/(|g| + ε):
    // lr·sign(g) to a relative 1e-8/|g|.
    let config = ScalarOptConfig {
        lr: 0.1f64,
        weight_decay: 0.0,
        ..ScalarOptConfig::default()
    };
    let mut opt = AdamW::<f64, 3>::new(config).unwrap();
    let mut x = [1.0, 1.0, 1.0];
    opt.step(&mut x, &[2.0, -0.5, 0.0]).unwrap();
    assert!((x[0] - 0.9).abs() <= 1e-8);
    assert!((x[1] - 1.1).abs() <= 1e-8);
    assert_eq!(x[2], 1.0);
    assert_eq!(opt.steps(), 1);
}

#[test]
fn adamw_matches_formula_over_steps() {
    // Reference values from the formula evaluated in f64 by hand-written code here.
    let (lr, b1, b2, eps, wd) = (0.05, 0.9, 0.95, 1e-8, 0.01);
    let config = ScalarOptConfig {
        lr,
        beta1: b1,
        beta2: b2,
        epsilon: eps,
        weight_decay: wd,
    };
    let mut opt = AdamW::<f64, 2>::new(config).unwrap();
    let mut x = [0.3, -0.7];
    let (mut xr, mut m, mut v) = ([0.3f64, -0.7], [0.0f64; 2], [0.0f64; 2]);
    let grads = [[0.5, -1.0], [0.25, 0.5], [-2.0, 0.125]];
    for (t, g) in grads.iter().enumerate() {
        opt.step(&mut x, g).unwrap();
        let t = (t + 1) as i32;
        for i in 0..2 {
            m[i] = b1 * m[i] + (1.0 - b1) * g[i];
            v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
            let denominator = v[i].sqrt() / (1.0 - b2.powi(t)).sqrt() + eps;
            xr[i] = (1.0 - lr * wd) * xr[i] - lr / (1.0 - b1.powi(t)) * m[i] / denominator;
        }
        for i in 0..2 {
            assert!(
                (x[i] - xr[i]).abs() <= 1e-14,
                "t = {t}: x[{i}] = {}, expected {}",
                x[i],
                xr[i]
            );
        }
    }
}

#[test]
fn lion_moves_by_sign() {
    let config = ScalarOptConfig {
        lr: 0.1f32,
        weight_decay: 0.0,
        ..ScalarOptConfig::default()
    };
    let mut opt = Lion::<f32, 3>::new(config).unwrap();
    let mut x = [0.0f32; 3];
    opt.step(&mut x, &[3.0, -0.001, 0.0]).unwrap();
    assert_eq!(x, [-0.1, 0.1, 0.0]);
}

#[test]
fn scalar_optimizers_are_transactional() {
    let config = ScalarOptConfig::<f32>::default();
    let (mut x, mut m, mut v) = ([1.0f32; 2], [0.0f32; 2], [0.0f32; 2]);
    // g² overflows f32.
    let err = adamw_step(&config, 1, &mut x, &[1e20, 1.0], &mut m, &mut v).unwrap_err();
    assert_eq!(
        err,
        Error::Overflow {
            operand: Operand::Vector
        }
    );
    assert_eq!((x, m, v), ([1.0; 2], [0.0; 2], [0.0; 2]));
    let err = lion_step(&config, &mut x, &[f32::NAN, 1.0], &mut m).unwrap_err();
    assert_eq!(
        err,
        Error::NonFinite {
            operand: Operand::Vector,
            row: 0,
            col: 0
        }
    );
    assert_eq!((x, m), ([1.0; 2], [0.0; 2]));
    assert!(adamw_step(&config, 0, &mut x, &[1.0, 1.0], &mut m, &mut v).is_err());
}

#[test]
fn zeroed_then_reset_matches_new() {
    let config = DionConfig::<f32>::default();
    let mut built = Dion::<f32, 6, 4, 2>::zeroed(config);
    assert!(built.q().iter().all(|&q| q == 0.0));
    built.reset(17).unwrap();
    let fresh = Dion::<f32, 6, 4, 2>::new(config, 17).unwrap();
    assert_eq!(built.q(), fresh.q());

    let mut x = Matrix::<f32, 6, 4>::from_fn(|i, j| (i + j) as f32);
    let grad = Matrix::<f32, 6, 4>::from_fn(|i, j| (i * j) as f32 - 3.0);
    built.step(&mut x, &grad).unwrap();
    built
        .set_q(&[1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0])
        .unwrap();
    assert!(built.momentum().as_slice().iter().all(|&m| m == 0.0));
    assert_eq!(
        built.set_q(&[1.0; 3]),
        Err(Error::BufferTooSmall {
            operand: Operand::Q,
            required: 8,
            len: 3
        })
    );
}

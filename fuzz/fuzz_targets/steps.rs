//! Dion and PowerSGD steps (f32 and f64) with fuzzer-chosen shapes, hyperparameters, state and
//! gradients, several steps in a row on the same state; AdamW and Lion on vectors.
//!
//! Checks of every step: no panic. `Ok` ⇒ every entry of X, M, Q is finite, and the update
//! matches the documented formulas for the factors left in the scratch (`step_check`). `Err` ⇒
//! X, M, Q are bit-identical to before, and the error names a true cause. A step whose inputs
//! cannot overflow must succeed. Scratch buffers start as NaN, since their contents are never
//! read.
#![no_main]

use dion_kernel::engine::{
    adamw_step, dion_step, lion_step, powersgd_step, DionConfig, PowerSgdConfig, QrOptions,
    ScalarOptConfig, StepScratch, StepShape, StepState,
};
use dion_kernel::Error;
use dion_kernel_fuzz::input::{hyperparameter, matrix, Float, Reader};
use dion_kernel_fuzz::stats_enabled;
use dion_kernel_fuzz::step_check::{
    assert_same_bits, check_err, check_ok, Method, StepInputs, StepOutputs,
};
use libfuzzer_sys::fuzz_target;

const LR: &[f64] = &[0.01, 0.1, 0.001, 0.0, 1.0, 0.02, 10.0, 1e6];
const MOMENTUM: &[f64] = &[0.95, 0.9, 0.0, 0.5, 0.99, 0.999_999];
const WEIGHT_DECAY: &[f64] = &[0.0, 0.01, 0.1, 1.0];
const EPSILON: &[f64] = &[1e-8, 1e-30, 1e-3, 1.0];
const BETA: &[f64] = &[0.9, 0.95, 0.0, 0.5, 0.999];

fn dion_config<T: Float>(reader: &mut Reader<'_>) -> DionConfig<T> {
    DionConfig {
        lr: hyperparameter(reader, LR),
        momentum: hyperparameter(reader, MOMENTUM),
        weight_decay: hyperparameter(reader, WEIGHT_DECAY),
        epsilon: hyperparameter(reader, EPSILON),
        power_iters: power_iters(reader),
        qr: QrOptions {
            reorthogonalize: reader.byte() < 224,
        },
    }
}

fn powersgd_config<T: Float>(reader: &mut Reader<'_>) -> PowerSgdConfig<T> {
    PowerSgdConfig {
        lr: hyperparameter(reader, LR),
        weight_decay: hyperparameter(reader, WEIGHT_DECAY),
        power_iters: power_iters(reader),
        qr: QrOptions {
            reorthogonalize: reader.byte() < 224,
        },
    }
}

/// Mostly 1, sometimes 2 to 4, now and then out of range (0 or 17).
fn power_iters(reader: &mut Reader<'_>) -> usize {
    match reader.byte() {
        0..=191 => 1,
        192..=247 => 2 + usize::from(reader.byte() % 3),
        248..=251 => 0,
        _ => 17,
    }
}

/// Buffer lengths for a shape: exact, or one of them off by one.
fn lengths(reader: &mut Reader<'_>, exact: [usize; 6]) -> [usize; 6] {
    let mut lengths = exact;
    let selector = reader.byte();
    if selector < 12 {
        let which = usize::from(selector % 6);
        lengths[which] = if selector & 1 == 0 {
            lengths[which] + 1
        } else {
            lengths[which].saturating_sub(1)
        };
    }
    lengths
}

fn matrix_steps<T: Float>(reader: &mut Reader<'_>, dion: bool) {
    let shape_selector = reader.byte();
    if shape_selector >= 0xfc {
        return huge_shape::<T>(reader, dion);
    }
    let rows = reader.below(21);
    let cols = reader.below(21);
    let rank = reader.below(rows.min(cols) + 2);
    let shape = match StepShape::new(rows, cols, rank) {
        Ok(shape) => shape,
        Err(error) => {
            assert!(
                rank == 0 || rank > rows.min(cols),
                "StepShape::new({rows}, {cols}, {rank}) failed: {error}"
            );
            assert!(matches!(error, Error::InvalidRank { .. }), "{error}");
            return;
        }
    };
    let method = if dion {
        Method::Dion(dion_config::<T>(reader))
    } else {
        Method::PowerSgd(powersgd_config::<T>(reader))
    };
    let (inner, outer) = (rows.min(cols), rows.max(cols));
    let exact = [
        rows * cols,
        rows * cols,
        rows * cols,
        inner * rank,
        outer * rank,
        inner * rank,
    ];
    let [x_len, g_len, m_len, q_len, p_len, r_len] = lengths(reader, exact);
    let lengths_ok = [x_len, g_len, m_len, q_len, p_len, r_len] == exact;

    let fit = |mut values: Vec<T>, len: usize| {
        values.resize(len, T::ZERO);
        values
    };
    let mut x = fit(matrix::<T>(reader, rows, cols), x_len);
    let mut momentum = fit(matrix::<T>(reader, rows, cols), m_len);
    let mut q = fit(matrix::<T>(reader, inner, rank), q_len);
    let mut p = vec![T::sentinel(); p_len];
    let mut r = vec![T::sentinel(); r_len];

    let steps = 1 + reader.below(3);
    for _ in 0..steps {
        let grad = fit(matrix::<T>(reader, rows, cols), g_len);
        let inputs = StepInputs {
            rows,
            cols,
            rank,
            method,
            x: x.clone(),
            momentum: momentum.clone(),
            grad: grad.clone(),
            q: q.clone(),
            lengths_ok,
        };
        p.fill(T::sentinel());
        r.fill(T::sentinel());
        let state = StepState {
            momentum: &mut momentum,
            q: &mut q,
        };
        let scratch = StepScratch {
            p: &mut p,
            r: &mut r,
        };
        let result = match method {
            Method::Dion(config) => {
                assert_eq!(
                    config.validate().is_ok(),
                    inputs.config_valid(),
                    "{config:?}"
                );
                dion_step(shape, &config, &mut x, &grad, state, scratch)
            }
            Method::PowerSgd(config) => {
                assert_eq!(
                    config.validate().is_ok(),
                    inputs.config_valid(),
                    "{config:?}"
                );
                powersgd_step(shape, &config, &mut x, &grad, state, scratch)
            }
        };
        let after = StepOutputs {
            x: &x,
            momentum: &momentum,
            q: &q,
            p: &p,
            r: &r,
        };
        match result {
            Ok(info) => {
                assert!(
                    lengths_ok && inputs.config_valid(),
                    "a step with bad arguments succeeded"
                );
                let measure = check_ok(&inputs, &after, info, false);
                if stats_enabled() {
                    eprintln!(
                        "step-stats {} {} {rows}x{cols} r={rank} p_ortho={:.4} update={:.4}",
                        T::NAME,
                        if dion { "dion" } else { "powersgd" },
                        measure.p_orthonormality,
                        measure.update
                    );
                }
            }
            Err(error) => {
                assert!(
                    !inputs.must_succeed(),
                    "step failed with {error} on inputs that cannot overflow: {inputs:?}"
                );
                check_err(&inputs, &after, error, false);
            }
        }
    }
}

/// Dimensions anywhere in `usize`: the shape must be rejected or the step must fail cleanly
/// on the (necessarily short) buffers, never panic.
fn huge_shape<T: Float>(reader: &mut Reader<'_>, dion: bool) {
    let dimension = |reader: &mut Reader<'_>| match reader.byte() % 4 {
        0 => reader.u64() as usize,
        1 => usize::MAX - usize::from(reader.byte()),
        2 => 1usize << (reader.byte() % 64),
        _ => usize::from(reader.byte()),
    };
    let (rows, cols, rank) = (dimension(reader), dimension(reader), dimension(reader));
    let Ok(shape) = StepShape::new(rows, cols, rank) else {
        return;
    };
    let mut buffers: Vec<Vec<T>> = (0..6)
        .map(|_| vec![T::ONE; usize::from(reader.byte())])
        .collect();
    let [x, g, m, q, p, r] = &mut buffers[..] else {
        unreachable!()
    };
    let (x0, m0, q0) = (x.clone(), m.clone(), q.clone());
    let state = StepState { momentum: m, q };
    let scratch = StepScratch { p, r };
    let result = if dion {
        dion_step(shape, &DionConfig::default(), x, g, state, scratch)
    } else {
        powersgd_step(shape, &PowerSgdConfig::default(), x, g, state, scratch)
    };
    if result.is_err() {
        assert_same_bits("X", &x0, &buffers[0]);
        assert_same_bits("M", &m0, &buffers[2]);
        assert_same_bits("Q", &q0, &buffers[3]);
    }
}

/// AdamW (`adam`) or Lion on vectors: `Ok` ⇒ finite; `Err` ⇒ untouched; Lion moves each entry
/// by at most `lr` beyond the decay.
fn vector_step<T: Float>(reader: &mut Reader<'_>, adam: bool) {
    let config = ScalarOptConfig::<T> {
        lr: hyperparameter(reader, LR),
        beta1: hyperparameter(reader, BETA),
        beta2: hyperparameter(reader, BETA),
        epsilon: hyperparameter(reader, EPSILON),
        weight_decay: hyperparameter(reader, WEIGHT_DECAY),
    };
    let len = reader.below(20);
    let steps = 1 + reader.below(3);
    let mut t = match reader.byte() {
        0 => 0,
        1..=250 => 1,
        _ => reader.u32(),
    };
    let length_selector = reader.byte();
    let length = |which: u8| {
        if length_selector < 8 && length_selector % 4 == which {
            len + 1
        } else {
            len
        }
    };
    let mut x = matrix::<T>(reader, 1, length(0));
    let mut m = matrix::<T>(reader, 1, length(1));
    let mut v: Vec<T> = matrix::<T>(reader, 1, length(2))
        .into_iter()
        .map(|value| value.abs())
        .collect();
    for _ in 0..steps {
        let grad = matrix::<T>(reader, 1, length(3));
        let (x0, m0, v0) = (x.clone(), m.clone(), v.clone());
        let result = if adam {
            adamw_step(&config, t, &mut x, &grad, &mut m, &mut v)
        } else {
            lion_step(&config, &mut x, &grad, &mut m)
        };
        match result {
            Ok(()) => {
                // Lion has no second moment: v is not an input then.
                let checked: &[(&str, &Vec<T>)] = if adam {
                    &[("x", &x), ("m", &m), ("v", &v)]
                } else {
                    &[("x", &x), ("m", &m)]
                };
                for (name, values) in checked {
                    assert!(
                        values.iter().all(|value| value.is_finite()),
                        "{name} not finite after Ok: {values:?}"
                    );
                }
                if !adam {
                    let lr = config.lr.to_f64();
                    let decay = 1.0 - lr * config.weight_decay.to_f64();
                    let eps = T::EPSILON.to_f64();
                    for (before, after) in x0.iter().zip(&x) {
                        let change = after.to_f64() - decay * before.to_f64();
                        // Roundings of lr·wd, 1 − lr·wd, the decay product and the subtraction
                        // in T, and of decay·x in the f64 reference: at most 5·(ε/2)·|x| plus
                        // (ε/2)·lr, so 3·ε·|x| and ε·lr cover them.
                        let bound = lr * (1.0 + eps)
                            + 3.0 * eps * before.to_f64().abs()
                            + T::SUBNORMAL_STEP;
                        assert!(
                            change.abs() <= bound,
                            "Lion moved x from {before} to {after}, more than lr = {lr}"
                        );
                    }
                }
            }
            Err(_) => {
                assert_same_bits("x", &x0, &x);
                assert_same_bits("m", &m0, &m);
                assert_same_bits("v", &v0, &v);
            }
        }
        t = t.wrapping_add(1);
    }
}

fuzz_target!(|data: &[u8]| {
    let mut reader = Reader::new(data);
    match reader.byte() % 8 {
        0 => matrix_steps::<f32>(&mut reader, true),
        1 => matrix_steps::<f64>(&mut reader, true),
        2 => matrix_steps::<f32>(&mut reader, false),
        3 => matrix_steps::<f64>(&mut reader, false),
        4 => vector_step::<f32>(&mut reader, true),
        5 => vector_step::<f64>(&mut reader, true),
        6 => vector_step::<f32>(&mut reader, false),
        _ => vector_step::<f64>(&mut reader, false),
    }
});

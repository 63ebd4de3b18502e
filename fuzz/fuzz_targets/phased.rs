//! The phased (data-parallel) Dion step driven by a fuzzer-chosen sequence of valid calls.
//!
//! Each round picks one path through `DionPhaseP::begin → p_mut → project → DionPhaseR →
//! r_mut → finish` and may stop after any of them by dropping the phase value, which abandons the
//! step. Between the phases it may edit `P` and `R`: single entries set to edge values (NaN and
//! ±∞ included), a scale by a power of two (what averaging over workers does to a consistent
//! `P`), or all zeros. Checks:
//!
//! - abandoned or failed: X, M, Q bit-identical to before `begin`;
//! - finished: X, M, Q finite and the update matching the documented formulas for the `P` and
//!   `R` left in the scratch;
//! - without edits, `begin` fails exactly when `dion_step` does, a step whose inputs cannot
//!   overflow succeeds, and when the QR kept every column the result has the same bits as
//!   `dion_step` (the two differ only in how they complete a dependent column).
#![no_main]

use dion_kernel::engine::{
    dion_step, DionConfig, DionPhaseP, QrOptions, StepInfo, StepScratch, StepShape, StepState,
};
use dion_kernel::Error;
use dion_kernel_fuzz::input::{hyperparameter, matrix, special, Float, Reader, SPECIAL_COUNT};
use dion_kernel_fuzz::step_check::{
    assert_same_bits, check_err, check_ok, Method, StepInputs, StepOutputs,
};
use libfuzzer_sys::fuzz_target;

/// The point at which a round stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Stop {
    AfterBegin,
    AfterProject,
    Finish,
}

/// Applies 0 to 3 fuzzer-chosen edits to a factor; returns whether any was made.
fn edit<T: Float>(reader: &mut Reader<'_>, values: &mut [T]) -> bool {
    let count = match reader.byte() {
        0..=159 => 0,
        160..=223 => 1,
        224..=247 => 2,
        _ => 3,
    };
    for _ in 0..count {
        match reader.byte() % 4 {
            0 | 1 if !values.is_empty() => {
                let index = reader.below(values.len());
                values[index] = special(reader.below(SPECIAL_COUNT));
            }
            2 => {
                let exponent = i32::from(reader.byte() % 9) - 4;
                let scale = T::from_f64(2f64.powi(exponent));
                values.iter_mut().for_each(|v| *v *= scale);
            }
            _ => values.fill(T::ZERO),
        }
    }
    count > 0
}

struct State<T> {
    x: Vec<T>,
    momentum: Vec<T>,
    q: Vec<T>,
    p: Vec<T>,
    r: Vec<T>,
}

fn run<T: Float>(reader: &mut Reader<'_>) {
    let rows = 1 + reader.below(16);
    let cols = 1 + reader.below(16);
    let rank = 1 + reader.below(rows.min(cols));
    let shape = StepShape::new(rows, cols, rank).expect("1 <= rank <= min(rows, cols)");
    let config = DionConfig::<T> {
        lr: hyperparameter(reader, &[0.01, 0.1, 0.0, 1.0, 1e6]),
        momentum: hyperparameter(reader, &[0.95, 0.9, 0.0, 0.999_999]),
        weight_decay: hyperparameter(reader, &[0.0, 0.01, 1.0]),
        epsilon: hyperparameter(reader, &[1e-8, 1e-30, 1.0]),
        power_iters: if reader.byte() < 248 { 1 } else { 2 },
        qr: QrOptions {
            reorthogonalize: reader.byte() < 224,
        },
    };
    let (inner, outer) = (rows.min(cols), rows.max(cols));
    let mut state = State {
        x: matrix::<T>(reader, rows, cols),
        momentum: matrix::<T>(reader, rows, cols),
        q: matrix::<T>(reader, inner, rank),
        p: vec![T::sentinel(); outer * rank],
        r: vec![T::sentinel(); inner * rank],
    };

    let rounds = 1 + reader.below(4);
    for _ in 0..rounds {
        let grad = matrix::<T>(reader, rows, cols);
        let stop = match reader.byte() % 4 {
            0 => Stop::AfterBegin,
            1 => Stop::AfterProject,
            _ => Stop::Finish,
        };
        round(reader, shape, &config, &mut state, &grad, stop);
    }
}

fn round<T: Float>(
    reader: &mut Reader<'_>,
    shape: StepShape,
    config: &DionConfig<T>,
    state: &mut State<T>,
    grad: &[T],
    stop: Stop,
) {
    let inputs = StepInputs {
        rows: shape.rows(),
        cols: shape.cols(),
        rank: shape.rank(),
        method: Method::Dion(*config),
        x: state.x.clone(),
        momentum: state.momentum.clone(),
        grad: grad.to_vec(),
        q: state.q.clone(),
        lengths_ok: true,
    };

    // The single-call step on a copy, for comparison.
    let mut reference = State {
        x: state.x.clone(),
        momentum: state.momentum.clone(),
        q: state.q.clone(),
        p: vec![T::sentinel(); state.p.len()],
        r: vec![T::sentinel(); state.r.len()],
    };
    let reference_result = dion_step(
        shape,
        config,
        &mut reference.x,
        grad,
        StepState {
            momentum: &mut reference.momentum,
            q: &mut reference.q,
        },
        StepScratch {
            p: &mut reference.p,
            r: &mut reference.r,
        },
    );

    state.p.fill(T::sentinel());
    state.r.fill(T::sentinel());
    let mut edited_p = false;
    let mut edited_r = false;
    let outcome: Result<Option<StepInfo>, Error> = (|| {
        let mut phase_p = DionPhaseP::begin(
            shape,
            config,
            &mut state.x,
            grad,
            StepState {
                momentum: &mut state.momentum,
                q: &mut state.q,
            },
            StepScratch {
                p: &mut state.p,
                r: &mut state.r,
            },
        )?;
        edited_p = edit(reader, phase_p.p_mut());
        if stop == Stop::AfterBegin {
            return Ok(None);
        }
        let mut phase_r = phase_p.project()?;
        edited_r = edit(reader, phase_r.r_mut());
        if stop == Stop::AfterProject {
            return Ok(None);
        }
        phase_r.finish().map(Some)
    })();

    let after = StepOutputs {
        x: &state.x,
        momentum: &state.momentum,
        q: &state.q,
        p: &state.p,
        r: &state.r,
    };
    let unedited = !edited_p && !edited_r;
    match outcome {
        Err(Error::InvalidHyperparameter {
            name: "power_iters",
            ..
        }) if config.power_iters != 1 => {
            assert_same_bits("X", &inputs.x, after.x);
            assert_same_bits("M", &inputs.momentum, after.momentum);
            assert_same_bits("Q", &inputs.q, after.q);
        }
        Err(error) => {
            if unedited {
                assert!(
                    !inputs.must_succeed(),
                    "phased step failed with {error} on inputs that cannot overflow: {inputs:?}"
                );
            }
            check_err(&inputs, &after, error, !unedited);
        }
        Ok(None) => {
            assert_same_bits("X", &inputs.x, after.x);
            assert_same_bits("M", &inputs.momentum, after.momentum);
            assert_same_bits("Q", &inputs.q, after.q);
        }
        Ok(Some(info)) => {
            check_ok(&inputs, &after, info, edited_r);
            // With every column of P kept, both compute the same P and R, hence the same bits.
            if unedited && info.qr_rank == shape.rank() {
                let reference_info = reference_result
                    .expect("the phased step kept every column and succeeded, dion_step failed");
                {
                    assert_eq!(info, reference_info);
                    assert_same_bits("X (phased vs dion_step)", &reference.x, after.x);
                    assert_same_bits(
                        "M (phased vs dion_step)",
                        &reference.momentum,
                        after.momentum,
                    );
                    assert_same_bits("Q (phased vs dion_step)", &reference.q, after.q);
                }
            }
        }
    }
    if config.power_iters == 1 && !edited_p {
        // begin fails exactly when dion_step fails before its first product.
        let begin_failed = matches!(
            outcome,
            Err(Error::InvalidHyperparameter { .. }
                | Error::NonFinite { .. }
                | Error::BufferTooSmall { .. })
        );
        let reference_begin_failed = matches!(
            reference_result,
            Err(Error::InvalidHyperparameter { .. }
                | Error::NonFinite { .. }
                | Error::BufferTooSmall { .. })
        );
        assert_eq!(
            begin_failed, reference_begin_failed,
            "{outcome:?} vs {reference_result:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let mut reader = Reader::new(data);
    if reader.byte() & 1 == 0 {
        run::<f32>(&mut reader);
    } else {
        run::<f64>(&mut reader);
    }
});

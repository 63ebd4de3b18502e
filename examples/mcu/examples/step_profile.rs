//! One 32 × 64 rank-8 Dion step between two marker functions, for an exact per-function
//! instruction profile from QEMU's execution trace (`profile.sh` runs it and sums the trace).
//!
//! ```text
//! examples/mcu/profile.sh release-mcu-o3
//! ```
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use dion_kernel::engine::DionConfig;
use dion_kernel::typed::{Dion, Matrix};
use dion_kernel_mcu::{exit, InstructionCounter};

/// Start of the profiled window; `profile.sh` looks for this symbol in the trace.
#[inline(never)]
#[no_mangle]
fn profile_window_start() {
    // Distinct bodies, so the linker cannot fold the two markers into one address.
    core::hint::black_box(1u32);
}

/// End of the profiled window.
#[inline(never)]
#[no_mangle]
fn profile_window_end() {
    core::hint::black_box(2u32);
}

#[entry]
fn main() -> ! {
    let mut seed = 0x1234_5678u32;
    let mut next = move || {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        ((seed >> 8) as f32 / (1u32 << 23) as f32) - 1.0
    };
    let state =
        cortex_m::singleton!(: (Dion<f32, 32, 64, 8>, Matrix<f32, 32, 64>, Matrix<f32, 32, 64>) =
        (Dion::new(DionConfig::default(), 5).unwrap(), Matrix::zeros(), Matrix::zeros()))
        .unwrap();
    let (dion, weight, grad) = (&mut state.0, &mut state.1, &mut state.2);
    for value in weight.as_mut_slice().iter_mut().chain(grad.as_mut_slice()) {
        *value = next();
    }
    // Warm-up step, so the profiled one starts from a Q produced by the step itself.
    let warm_up = dion.step(weight, grad).is_ok();
    for value in grad.as_mut_slice() {
        *value = next();
    }

    // SysTick counts the same window, to compare with the trace (exact only under
    // `-icount shift=0`, which `profile.sh` also runs).
    let counter = InstructionCounter::new(cortex_m::Peripherals::take().unwrap().SYST);
    let (result, instructions) = counter.measure(|| {
        profile_window_start();
        let result = dion.step(weight, grad);
        profile_window_end();
        result
    });
    defmt::info!(
        "SysTick: {=u64} instructions in the window, markers included",
        instructions
    );

    exit(warm_up && result.is_ok())
}

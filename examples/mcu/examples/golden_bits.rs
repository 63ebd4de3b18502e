//! Runs the public golden cases in f32 on the MCU and logs an FNV-1a 64 hash of the bits of `X`,
//! `M` and `Q` after every step, one `golden-hash` line per step.
//!
//! The host test `tests/bit_identity.rs` runs the same steps on the host and compares the lines:
//!
//! ```text
//! cargo run -p dion-kernel-mcu --target thumbv7em-none-eabihf --profile release-mcu --example golden_bits > mcu.log
//! DION_MCU_GOLDEN_LOGS=mcu.log cargo test -p dion-kernel-mcu --test bit_identity
//! ```
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use dion_kernel_mcu::exit;
use dion_kernel_mcu::golden::{run_case, GoldenBuffers, GoldenCase};

include!(concat!(env!("OUT_DIR"), "/golden_cases.rs"));

#[entry]
fn main() -> ! {
    // 9 KiB of buffers: static rather than on the stack, through a singleton so no `unsafe` is
    // needed.
    let buffers = cortex_m::singleton!(: GoldenBuffers = GoldenBuffers::new()).unwrap();
    let mut steps = 0usize;
    for case in CASES.iter() {
        let result = run_case(case, buffers, |step, hashes| {
            defmt::info!(
                "golden-hash {=str} {=usize} {=u64:016x} {=u64:016x} {=u64:016x}",
                case.name,
                step,
                hashes.x,
                hashes.momentum,
                hashes.q
            );
            steps += 1;
        });
        if let Err(error) = result {
            defmt::error!("golden case {=str} failed: {}", case.name, error);
            exit(false);
        }
    }
    defmt::info!(
        "golden-done {=usize} cases {=usize} steps",
        CASES.len(),
        steps
    );
    exit(true)
}

//! Host side of the bit-identity check: the host and the emulated Cortex-M4F must produce the
//! same bits of `X`, `M` and `Q` after every step of every public golden case in f32.
//!
//! The MCU side is the `golden_bits` example, which logs one `golden-hash` line per step. Run it,
//! save its decoded output, and pass the file (or several, separated by `:`) to this test:
//!
//! ```text
//! cargo run -p dion-kernel-mcu --target thumbv7em-none-eabihf --profile release-mcu --example golden_bits > mcu.log
//! DION_MCU_GOLDEN_LOGS=mcu.log cargo test -p dion-kernel-mcu --test bit_identity
//! ```
//!
//! `.ci/embedded.sh` does this for the MCU programs built at opt-level "s", 3 and 0.
#![cfg(not(target_os = "none"))]

use std::env;
use std::fs;

use dion_kernel_mcu::golden::{run_case, GoldenBuffers, GoldenCase};

include!(concat!(env!("OUT_DIR"), "/golden_cases.rs"));

const LOGS_VARIABLE: &str = "DION_MCU_GOLDEN_LOGS";

/// Computes on the host the lines the MCU prints: `golden-hash CASE STEP X M Q`.
fn host_lines() -> Vec<String> {
    let mut buffers = Box::new(GoldenBuffers::new());
    let mut lines = Vec::new();
    for case in CASES.iter() {
        let case: &GoldenCase = case;
        run_case(case, &mut buffers, |step, hashes| {
            lines.push(format!(
                "golden-hash {} {} {:016x} {:016x} {:016x}",
                case.name, step, hashes.x, hashes.momentum, hashes.q
            ));
        })
        .unwrap_or_else(|error| panic!("host run of golden case {} failed: {error}", case.name));
    }
    lines
}

/// Extracts the `golden-hash` lines of a decoded defmt log, without the log level in front.
fn mcu_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|line| {
            line.find("golden-hash ")
                .map(|start| line[start..].trim_end().to_owned())
        })
        .collect()
}

#[test]
fn host_run_covers_every_step() {
    let lines = host_lines();
    let total_steps: usize = CASES.iter().map(|case| case.steps).sum();
    assert_eq!(lines.len(), total_steps);
    // Different states must hash differently, or equal hashes would prove nothing.
    let mut x_hashes: Vec<&str> = lines
        .iter()
        .map(|line| line.split(' ').nth(3).unwrap())
        .collect();
    x_hashes.sort_unstable();
    x_hashes.dedup();
    assert_eq!(
        x_hashes.len(),
        total_steps,
        "two steps produced the same X hash"
    );
}

#[test]
fn mcu_bits_match_host() {
    let paths = env::var(LOGS_VARIABLE).unwrap_or_else(|_| {
        panic!(
            "{LOGS_VARIABLE} is not set: set it to the saved output of \
             `cargo run -p dion-kernel-mcu --target thumbv7em-none-eabihf --profile release-mcu --example golden_bits` \
             (several files separated by ':')"
        )
    });
    let expected = host_lines();
    for path in paths.split(':').filter(|path| !path.is_empty()) {
        let log = fs::read_to_string(path)
            .unwrap_or_else(|error| panic!("failed to read {path}: {error}"));
        assert!(
            log.contains("golden-done"),
            "{path} has no `golden-done` line: the MCU run did not finish"
        );
        let found = mcu_lines(&log);
        assert_eq!(
            found.len(),
            expected.len(),
            "{path}: number of golden-hash lines"
        );
        for (host, mcu) in expected.iter().zip(&found) {
            assert_eq!(
                mcu, host,
                "{path}: MCU and host bits differ (line format: case step X M Q)"
            );
        }
        println!("{path}: {} steps bit-identical to the host", found.len());
    }
}

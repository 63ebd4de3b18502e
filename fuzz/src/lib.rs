//! Helpers shared by the fuzz targets of `dion-kernel`: input decoding, `f64` references with
//! their rounding-error bounds, and the invariant checks of the QR and of the steps.

pub mod input;
pub mod qr_check;
pub mod reference;
pub mod step_check;

use std::sync::OnceLock;

/// `true` when `DION_FUZZ_STATS` is set: the targets then print one line of measurements per
/// input to stderr, for `fuzz/stats.sh` to aggregate over a corpus.
pub fn stats_enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var_os("DION_FUZZ_STATS").is_some())
}

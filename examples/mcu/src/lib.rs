//! Support code for running dion-kernel on an emulated Cortex-M4F (QEMU `mps2-an386`).
//!
//! The target-independent parts ([`fnv1a64`], [`golden`]) also build on the host, where the
//! `bit_identity` test runs the same golden steps as the MCU. Everything under `target_os =
//! "none"` is the bare-metal runtime: semihosting exit, the panic and HardFault handlers, the defmt
//! logger, stack painting and the SysTick instruction counter.
#![no_std]

pub mod golden;

#[cfg(target_os = "none")]
mod rt;
#[cfg(target_os = "none")]
pub use rt::*;

/// FNV-1a, 64-bit: offset basis and prime from the FNV reference (Fowler, Noll, Vo; IETF draft
/// `draft-eastlake-fnv`).
const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Continues an FNV-1a 64 hash over the bit patterns of `values`, each as 4 little-endian bytes.
///
/// Start from [`FNV1A64_START`]. Equal hashes of two runs mean equal bits with overwhelming
/// probability (FNV is not collision resistant against an adversary, which does not matter here).
pub fn fnv1a64(mut hash: u64, values: &[f32]) -> u64 {
    for value in values {
        for byte in value.to_bits().to_le_bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(FNV_PRIME);
        }
    }
    hash
}

/// Initial state of [`fnv1a64`].
pub const FNV1A64_START: u64 = FNV_OFFSET_BASIS;

//! Allocation-free Dion and PowerSGD optimizer steps on fixed-size matrices.
#![no_std]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod engine;
mod error;
mod math;
mod rng;
mod scalar;
pub mod typed;

pub use error::{Error, Operand};
pub use rng::SplitMix64;
pub use scalar::Scalar;

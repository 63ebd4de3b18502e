//! Allocation-free Dion and PowerSGD optimizer steps on fixed-size matrices.
#![no_std]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod engine;
pub mod typed;
mod error;
mod math;
mod scalar;

pub use error::{Error, Operand};
pub use scalar::Scalar;

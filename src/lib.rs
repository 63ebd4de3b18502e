//! Allocation-free Dion and PowerSGD optimizer steps on fixed-size matrices.
//!
//! Dion (Ahn & Xu, "Dion: Distributed Orthonormalized Updates", 2025, arXiv 2504.05295) keeps an
//! error-feedback buffer `M`, forms `B = M + G`, and takes a rank-`r` approximation of `B` with
//! one warm-started power iteration: `P = orth(B·Q)`, `R = Bᵀ·P`. It then steps along
//! `P·colnorm(R)ᵀ`, the approximation with every singular value set to 1, while `M` keeps what the
//! step did not capture. PowerSGD (Vogels et al., 2019) is the same iteration stepping along
//! `P Rᵀ`. The semantics follow the official PyTorch code (microsoft/dion,
//! `dion/dion_reference.py`) and are tested against vectors it produced.
//!
//! # Principles
//!
//! - `#![no_std]`, no `alloc`, no `unsafe`: runs in firmware, kernels, WebAssembly and servers.
//! - Two layers. The [`engine`] works on caller-provided row-major slices with runtime
//!   dimensions and never allocates; the [`typed`] layer owns its storage inline and fixes the
//!   shapes in the type, so a wrong shape or a rank above `min(rows, cols)` does not compile.
//! - Bad values are errors, not panics: every step validates its hyperparameters and inputs and
//!   returns an [`Error`] naming the value, and a failed step leaves the parameter and the state
//!   bit-identical to before.
//! - The same bits everywhere: each product entry is one sequential sum in a fixed order, with
//!   separate multiply and add and correctly rounded square roots, so f32 results are
//!   bit-identical on x86_64 and on a Cortex-M4F.
//!
//! # Example
//!
//! ```
//! use dion_kernel::engine::DionConfig;
//! use dion_kernel::typed::{Dion, Matrix};
//! use dion_kernel::SplitMix64;
//!
//! // A 32×64 weight trained at rank 8.
//! let mut weight = Matrix::<f32, 32, 64>::zeros();
//! let mut dion = Dion::<f32, 32, 64, 8>::new(DionConfig { lr: 0.02, ..DionConfig::default() }, 1)?;
//!
//! let mut rng = SplitMix64::new(2);
//! let grad = Matrix::from_fn(|_, _| rng.next_gaussian() as f32);
//! let info = dion.step(&mut weight, &grad)?;
//! assert_eq!(info.qr_rank, 8);
//! assert!(weight.as_slice().iter().all(|w| w.is_finite()));
//! # Ok::<(), dion_kernel::Error>(())
//! ```
//!
//! A rank above the smaller dimension is rejected by the compiler:
//!
//! ```compile_fail
//! use dion_kernel::typed::Dion;
//! let dion = Dion::<f32, 4, 3, 4>::new(Default::default(), 0);
//! ```
//!
//! and so is a product of mismatched shapes:
//!
//! ```compile_fail
//! use dion_kernel::typed::Matrix;
//! let a = Matrix::<f32, 2, 3>::zeros();
//! let b = Matrix::<f32, 2, 2>::zeros();
//! let mut c = Matrix::<f32, 2, 2>::zeros();
//! a.mul_to(&b, &mut c);
//! ```
//!
//! # Features
//!
//! - `defmt`: derives `defmt::Format` for the public types, for logging on microcontrollers.
//! - `micromath`: AdamW's `√v` uses micromath's approximate `f32` square root (about 5 %
//!   relative error, no libm routine). The QR and the column normalisation keep libm's correctly
//!   rounded square root in every feature set, because their orthonormality depends on it.
#![no_std]
#![deny(missing_docs)]
#![forbid(unsafe_code)]
// Checks such as `!(value <= limit)` are written negated on purpose: they are also true for NaN,
// so a NaN can never pass a range check.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

pub mod engine;
mod error;
mod math;
mod rng;
mod scalar;
pub mod typed;

pub use error::{Error, Operand};
pub use rng::SplitMix64;
pub use scalar::Scalar;

//! The allocation-free engine: kernels on caller-provided slices with runtime dimensions.
//!
//! Everything here works on [`MatRef`] / [`MatMut`] views of row-major slices and writes only
//! into buffers the caller passes in. Shapes are checked at run time and reported as
//! [`Error`](crate::Error) values. The const-generic types in [`crate::typed`] call these same
//! functions with shapes that the compiler has already checked.

mod dion;
mod gemm;
mod norm;
pub mod params;
mod power;
mod powersgd;
mod qr;
mod scalar_opt;
mod step;
mod view;

pub use dion::{dion_step, DionConfig, DionPhaseP, DionPhaseR, MAX_POWER_ITERS};
pub use gemm::{matmul, matmul_tn, rank_update};
pub use norm::norm2;
pub use power::{normalize_columns, power_iter1, power_iter1_transposed};
pub use powersgd::{powersgd_step, PowerSgdConfig};
pub use qr::{qr_in_place, QrInfo, QrOptions};
pub use scalar_opt::{adamw_step, lion_step, ScalarOptConfig};
pub use step::{StepInfo, StepScratch, StepShape, StepState};
pub use view::{MatMut, MatRef};

#[allow(unused_imports)]
pub(crate) use gemm::{check_shape, gemm_nn, gemm_nt_update, gemm_tn};
#[allow(unused_imports)]
pub(crate) use norm::{scaled_norm, scaled_norm_by, ScaledNorm};
#[allow(unused_imports)]
pub(crate) use power::power_iter1_impl;
#[allow(unused_imports)]
pub(crate) use qr::{complete_column, first_non_finite, mgs};

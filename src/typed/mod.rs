//! Const-generic types: shapes are checked by the compiler.
//!
//! Each type owns its storage inline and calls the [`engine`](crate::engine) with the shapes the
//! type parameters fix, so a wrong shape or a rank above `min(rows, cols)` is a compile error
//! rather than a run-time one.

mod dion;
mod factors;
mod matrix;
mod powersgd;
mod scalar_opt;

pub use dion::Dion;
pub use matrix::Matrix;
pub use powersgd::PowerSgd;
pub use scalar_opt::{AdamW, Lion};

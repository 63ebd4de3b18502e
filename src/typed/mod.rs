//! Const-generic types: shapes are checked by the compiler.
//!
//! Each type owns its storage inline and calls the [`engine`](crate::engine) with the shapes the
//! type parameters fix, so a wrong shape or a rank above `min(rows, cols)` is a compile error
//! rather than a run-time one.

mod matrix;

pub use matrix::Matrix;

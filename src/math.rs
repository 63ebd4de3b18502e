//! Square roots, in one place so the backend is a single decision.
//!
//! Every norm in the crate (QR, column normalisation, the overflow checks) goes through
//! [`sqrt_f32`] / `libm::sqrt`, which are correctly rounded. Correct rounding is what makes the
//! results bit-identical on every target: `libm` is plain Rust, so x86_64 and thumbv7em compute
//! the same bits.
//!
//! The `micromath` feature only changes [`sqrt_approx_f32`], which the scalar optimizers use for
//! AdamW's `√v`. micromath's `sqrt` has a relative error of up to about 5 % (its documentation),
//! which is harmless in a denominator that is itself a running estimate, but would leave
//! `QᵀQ − I` at the percent level if it normalised the QR's columns: the QR never uses it.

/// Correctly rounded `√x` for `f32` (libm).
#[inline(always)]
pub(crate) fn sqrt_f32(x: f32) -> f32 {
    libm::sqrtf(x)
}

/// `√x` for `f32` where an approximation is acceptable: micromath's with the `micromath` feature,
/// otherwise the correctly rounded one.
#[inline(always)]
pub(crate) fn sqrt_approx_f32(x: f32) -> f32 {
    #[cfg(feature = "micromath")]
    {
        micromath::F32Ext::sqrt(x)
    }
    #[cfg(not(feature = "micromath"))]
    {
        libm::sqrtf(x)
    }
}

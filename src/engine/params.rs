//! Tuning constants of the matrix kernels, all in one place.
//!
//! The kernels compute every output entry as one sequential sum over the inner dimension, in
//! index order, starting from zero. The tile sizes below only decide which entries are computed
//! together, never the order of the additions inside one entry, so changing them (per target, or
//! by hand) changes speed but not a single bit of the results. That is what keeps f32 results
//! bit-identical between x86_64 and thumbv7em.

/// Rows of the output computed together by one micro-kernel call (the "MR" of a BLIS kernel).
///
/// Each row of the tile broadcasts one value of the left operand per inner step.
pub const MR: usize = 4;

/// Widest column block of the output computed by one micro-kernel call (the "NR").
///
/// The kernels also have `NR / 2`-, `NR / 4`- and 1-wide tiles for the columns left over, so a
/// thin right operand such as `Q` with rank 8 still runs a vectorised tile.
pub const NR: usize = 16;

/// Length in elements of the stack buffer into which `matmul` and `matmul_tn` copy blocks of
/// the left operand.
pub const A_PACK_LEN: usize = 4096;

/// Columns of `A` that `matmul_tn` copies together.
pub const TN_BLOCK: usize = 4;

/// Length in elements of the stack buffer of [`rank_update`](super::rank_update).
pub const NT_PACK_LEN: usize = 2048;

/// Compile-time check of the relations the kernels rely on; it produces no code.
const _: () = {
    assert!(MR >= 1);
    assert!(NR >= 4 && NR % 4 == 0);
    assert!(NT_PACK_LEN >= NR);
};

//! Tuning constants of the matrix kernels, all in one place.
//!
//! The kernels compute every output entry as one sequential sum over the inner dimension, in
//! index order, starting from zero. The constants below only decide which entries are computed
//! together and where a partial sum is parked in the output between two blocks of inner indices.
//! They never change the order of the additions inside one entry, so changing them (per target,
//! or by hand) changes speed but not a single bit of the results. That is what keeps f32 results
//! bit-identical between x86_64 and thumbv7em.
//!
//! `NR` already depends on the target's vector registers; `MR` could too, with the same
//! `#[cfg(target_feature = ...)]` pattern, again without changing any result.

/// Rows of the output computed together by one micro-kernel call (the "MR" of a BLIS kernel).
///
/// Each row of the tile broadcasts one value of the left operand per inner step. The
/// micro-kernel is written out for at most 8 rows.
pub const MR: usize = 4;

/// Widest column block of the output computed by one micro-kernel call (the "NR").
///
/// An `MR × NR` tile should fill about half the vector registers, leaving room for the row of
/// `B` and the broadcast value:
/// - with AVX (16 or 32 registers of 256 or 512 bits): 16, so an f32 tile is eight 256-bit or
///   four 512-bit accumulators;
/// - on the x86 SSE2 baseline (16 registers of 128 bits): 8, so eight accumulators. A 4 × 16
///   tile spills there and ran at half the speed;
/// - elsewhere 4: a Cortex-M4F has 32 single-precision registers and no SIMD, so a 4 × 4 tile
///   keeps 16 accumulators, 4 values of `B` and 1 of `A` in registers.
///
/// The kernels also have `NR / 2`-, `NR / 4`- and 1-wide tiles for the columns left over, so a
/// thin right operand such as `Q` with rank 8 still runs a vectorised tile.
#[cfg(target_feature = "avx")]
pub const NR: usize = 16;
/// See the AVX variant.
#[cfg(all(
    not(target_feature = "avx"),
    any(target_arch = "x86", target_arch = "x86_64")
))]
pub const NR: usize = 8;
/// See the AVX variant.
///
/// NOTE: chosen from the register count only; not yet timed on a Cortex-M4F.
#[cfg(not(any(target_feature = "avx", target_arch = "x86", target_arch = "x86_64")))]
pub const NR: usize = 4;

/// Length in elements of the stack buffer into which `matmul` and `matmul_tn` copy the
/// `MR`-row block of the left operand they are working on: 4 KiB for f32, 8 KiB for f64.
///
/// One block covers `A_PACK_LEN / MR = 256` inner indices; longer inner dimensions run in
/// blocks, with the partial sums parked in `C` in between.
pub const A_PACK_LEN: usize = 1024;

/// Length in elements of the stack buffer of `rank_update`: 8 KiB for f32, 16 KiB for f64.
///
/// `rank_update` copies `W` rows of its right operand, transposed, into this buffer, so a
/// `W`-wide tile needs `k·W ≤ NT_PACK_LEN` for an inner dimension `k`. With `NR = 16` the 16-wide
/// tile runs up to `k = 128` and the 8-wide one up to 256. Beyond `A_PACK_LEN / MR = 256`
/// `rank_update` forms one dot product at a time.
pub const NT_PACK_LEN: usize = 2048;

/// Compile-time check of the relations the kernels rely on; it produces no code.
const _: () = {
    assert!(MR >= 1);
    assert!(MR <= 8);
    assert!(NR >= 4);
    assert!(NR % 4 == 0);
    assert!(A_PACK_LEN >= MR);
    assert!(NT_PACK_LEN >= NR);
};

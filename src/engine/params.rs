//! Tuning constants of the matrix kernels, all in one place.
//!
//! The kernels compute every output entry as one sequential sum over the inner dimension, in
//! index order, starting from zero. The constants below only decide which entries are computed
//! together, whether operands are copied into buffers first, and where a partial sum is parked in
//! the output between two blocks of inner indices. They never change the order of the additions
//! inside one entry, so changing them (per target, or by hand) changes speed and stack use but
//! not a single bit of the results. That is what keeps f32 results bit-identical between x86_64
//! and thumbv7em, although the two run different code paths.
//!
//! Two families of kernels exist:
//! - **packed** (when [`PACK`] is `true`): blocks of the operands are first copied into stack
//!   buffers of [`A_PACK_LEN`] and [`NT_PACK_LEN`] elements, so the micro-kernels read contiguous
//!   streams and vectorise. Tiles are [`MR`] × [`NR`].
//! - **direct** (when [`PACK`] is `false`): the micro-kernels read the operands in place and use
//!   no buffer. Tiles are [`DIRECT_MR`] × [`DIRECT_NR`] for `C = A·B` and `C = Aᵀ·B`, and
//!   [`NT_MR`] × [`NT_NR`] for the products with a transposed right operand.

/// Whether the kernels copy blocks of their operands into stack buffers.
///
/// `true` on targets with an operating system: there the copies keep the vector units fed from
/// cache, and 12 KiB of stack (f32) is affordable. `false` on bare-metal targets
/// (`target_os = "none"`): a Cortex-M4F has no data cache and no floating-point SIMD, so a copy
/// saves nothing, and the stack of a whole optimizer step should stay within a few hundred
/// bytes.
#[cfg(not(target_os = "none"))]
pub const PACK: bool = true;
/// See the variant for targets with an operating system.
#[cfg(target_os = "none")]
pub const PACK: bool = false;

/// Rows of the output computed together by one packed micro-kernel call (the "MR" of a BLIS
/// kernel).
///
/// Each row of the tile broadcasts one value of the left operand per inner step. The
/// micro-kernel is written out for at most 8 rows.
pub const MR: usize = 4;

/// Widest column block of the output computed by one packed micro-kernel call (the "NR").
///
/// An `MR × NR` tile should fill about half the vector registers, leaving room for the row of
/// `B` and the broadcast value:
/// - with AVX (16 or 32 registers of 256 or 512 bits): 16, so an f32 tile is eight 256-bit or
///   four 512-bit accumulators;
/// - on the x86 SSE2 baseline (16 registers of 128 bits): 8, so eight accumulators. A 4 × 16
///   tile spills there and ran at half the speed;
/// - elsewhere 4.
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
#[cfg(not(any(target_feature = "avx", target_arch = "x86", target_arch = "x86_64")))]
pub const NR: usize = 4;

/// Length in elements of the stack buffer into which the packed `matmul` and `matmul_tn` copy
/// the `MR`-row block of the left operand they are working on: 4 KiB for f32, 8 KiB for f64.
/// Zero when [`PACK`] is `false`.
///
/// One block covers `A_PACK_LEN / MR = 256` inner indices; longer inner dimensions run in
/// blocks, with the partial sums parked in `C` in between.
pub const A_PACK_LEN: usize = if PACK { 1024 } else { 0 };

/// Length in elements of the stack buffer of the packed `rank_update` and of the final pass of
/// a step: 8 KiB for f32, 16 KiB for f64. Zero when [`PACK`] is `false`.
///
/// These kernels copy `W` rows of their right operand, transposed, into this buffer, so a
/// `W`-wide tile needs `k·W ≤ NT_PACK_LEN` for an inner dimension `k`. With `NR = 16` the 16-wide
/// tile runs up to `k = 128` and the 8-wide one up to 256. Beyond `A_PACK_LEN / MR = 256` they
/// use the direct kernel.
pub const NT_PACK_LEN: usize = if PACK { 2048 } else { 0 };

/// Rows of the output tile of the direct `matmul` and `matmul_tn`.
///
/// Chosen on the Cortex-M4F, which has 32 single-precision registers and no SIMD. A 2 × 8 tile
/// keeps 16 accumulators, 2 values of the left operand and one of the right operand in
/// registers. On the shapes of a rank-8 Dion step (`n = 8` columns) it reads each entry of the
/// left operand once, and so forms `M + G` once per entry. The two products of a 32 × 64 rank-8 step took
/// 83,000 instructions with 2 × 8 tiles at opt-level 3, 97,000 with 3 × 8 (24 accumulators
/// leave too few registers once LLVM unrolls the inner loop twice) and 111,000 with 4 × 4
/// (`examples/mcu/profile.sh`).
pub const DIRECT_MR: usize = 2;

/// Widest column block of the direct `matmul` and `matmul_tn`; `DIRECT_NR / 2`-, `DIRECT_NR / 4`-
/// and 1-wide tiles take the columns left over.
pub const DIRECT_NR: usize = 8;

/// Rows of the output tile of the direct `C += α·A·Bᵀ` and of the final pass of a step.
///
/// Both operands are read as `NT_MR + NT_NR` separate rows, one pointer each. A 4 × 4 tile
/// needs 16 accumulators, the 4 values of `B` of one inner step, one value of `A` and 8
/// pointers. That fits the Cortex-M4's 32 floating-point and 13 general registers even when
/// LLVM unrolls the loop over the inner dimension twice (opt-level 3). The final pass of a
/// 32 × 64 rank-8 step took 104,400 instructions with 4 × 4 tiles and 129,800 with 2 × 8 at
/// opt-level 3, and 115,200 and 136,900 at opt-level "s" (`examples/mcu/profile.sh`).
pub const NT_MR: usize = 4;

/// Widest column block of the direct `C += α·A·Bᵀ` (see [`NT_MR`]).
pub const NT_NR: usize = 4;

/// Compile-time check of the relations the kernels rely on; it produces no code.
const _: () = {
    assert!(MR >= 1);
    assert!(MR <= 8);
    assert!(NR >= 4);
    assert!(NR % 4 == 0);
    assert!(!PACK || A_PACK_LEN >= MR);
    assert!(!PACK || NT_PACK_LEN >= NR);
    assert!(DIRECT_MR >= 1);
    assert!(DIRECT_MR <= 8);
    assert!(DIRECT_NR >= 4);
    assert!(DIRECT_NR % 4 == 0);
    assert!(DIRECT_NR <= 8);
    assert!(NT_MR >= 1);
    assert!(NT_MR <= 8);
    assert!(NT_NR >= 4);
    assert!(NT_NR % 4 == 0);
    assert!(NT_NR <= 8);
};

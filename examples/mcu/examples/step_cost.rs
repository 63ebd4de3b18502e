//! Measures what one Dion step costs on the Cortex-M4F, for 32 × 64, 64 × 64 and 64 × 32 at
//! rank 8: peak stack (by stack painting), size of the state, and executed instructions (SysTick
//! under QEMU `-icount shift=0`). Also measures the instructions per multiply-add of the three
//! matrix kernels, and the cost of `libm::sqrtf` against the FPU's `vsqrt.f32`.
//!
//! ```text
//! QEMU_ICOUNT=0 cargo run -p dion-kernel-mcu --target thumbv7em-none-eabihf --profile release-mcu --example step_cost
//! QEMU_ICOUNT=0 cargo run -p dion-kernel-mcu --target thumbv7em-none-eabihf --profile release-mcu-o3 --example step_cost
//! ```
//!
//! Without `QEMU_ICOUNT=0` the instruction counts follow the host's clock and are meaningless;
//! the stack and size figures do not depend on it.
#![no_std]
#![no_main]

use core::hint::black_box;

use cortex_m_rt::entry;
use dion_kernel::engine::{matmul, matmul_tn, rank_update, DionConfig, MatMut, MatRef, StepInfo};
use dion_kernel::typed::{Dion, Matrix};
use dion_kernel::Error;
use dion_kernel_mcu::{exit, paint_stack, stack_used, InstructionCounter};

/// Bytes of stack painted below the caller before a measured call.
const PAINT_BYTES: usize = 8 * 1024;
/// Steps measured per shape (after one warm-up step).
const MEASURED_STEPS: usize = 8;
/// Calls per square-root measurement.
const SQRT_CALLS: u32 = 256;

/// A 32-bit LCG (Numerical Recipes constants) giving values uniform in `[-1, 1)`.
struct Lcg(u32);

impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        ((self.0 >> 8) as f32 / (1u32 << 23) as f32) - 1.0
    }

    fn fill(&mut self, values: &mut [f32]) {
        for value in values {
            *value = self.next();
        }
    }
}

#[inline(never)]
fn dion_step_once<const R: usize, const C: usize, const K: usize>(
    dion: &mut Dion<f32, R, C, K>,
    weight: &mut Matrix<f32, R, C>,
    grad: &Matrix<f32, R, C>,
) -> Result<StepInfo, Error> {
    dion.step(weight, grad)
}

/// Stack, state size and instructions of the Dion step on an `R × C` weight at rank `K`.
#[inline(never)]
fn measure_dion<const R: usize, const C: usize, const K: usize>(
    counter: &InstructionCounter,
) -> Result<(), Error> {
    let mut rng = Lcg(0xD10_u32 + (R * C) as u32);
    let mut dion = Dion::<f32, R, C, K>::new(DionConfig::default(), 11)?;
    let mut weight = Matrix::<f32, R, C>::zeros();
    let mut grad = Matrix::<f32, R, C>::zeros();
    rng.fill(weight.as_mut_slice());
    rng.fill(grad.as_mut_slice());
    dion_step_once(&mut dion, &mut weight, &grad)?;

    rng.fill(grad.as_mut_slice());
    let sp = paint_stack(PAINT_BYTES);
    let result = dion_step_once(&mut dion, &mut weight, &grad);
    let stack = stack_used(sp, PAINT_BYTES);
    result?;

    // A rank-deficient step takes the deepest path: a rank-1 gradient on a fresh state makes
    // `B·Q` rank 1, so the QR completes the other columns from the range of `B`.
    let mut fresh = Dion::<f32, R, C, K>::new(DionConfig::default(), 5)?;
    let mut rank_one = Matrix::<f32, R, C>::zeros();
    let (mut u, mut v) = ([0.0f32; R], [0.0f32; C]);
    rng.fill(&mut u);
    rng.fill(&mut v);
    for (row, &u_i) in rank_one.as_mut_slice().chunks_exact_mut(C).zip(&u) {
        for (entry, &v_j) in row.iter_mut().zip(&v) {
            *entry = u_i * v_j;
        }
    }
    let mut other_weight = weight.clone();
    let sp = paint_stack(PAINT_BYTES);
    let result = dion_step_once(&mut fresh, &mut other_weight, &rank_one);
    let stack_deficient = stack_used(sp, PAINT_BYTES);
    let info = result?;

    let multiply_adds = 4 * R * C * K;
    let (mut min, mut max, mut total) = (u64::MAX, 0u64, 0u64);
    for _ in 0..MEASURED_STEPS {
        rng.fill(grad.as_mut_slice());
        let (result, instructions) =
            counter.measure(|| dion_step_once(&mut dion, &mut weight, &grad));
        result?;
        min = min.min(instructions);
        max = max.max(instructions);
        total += instructions;
    }
    let mean = total / MEASURED_STEPS as u64;
    defmt::info!(
        "dion {=usize}x{=usize} r{=usize}: stack {=usize} B (rank-deficient step, QR rank {=usize}: {=usize} B), state {=usize} B, instructions/step min {=u64} mean {=u64} max {=u64}, multiply-adds {=usize}, instructions per multiply-add {=f32}",
        R,
        C,
        K,
        stack,
        info.qr_rank,
        stack_deficient,
        core::mem::size_of::<Dion<f32, R, C, K>>(),
        min,
        mean,
        max,
        multiply_adds,
        mean as f32 / multiply_adds as f32
    );
    Ok(())
}

/// Instructions per multiply-add of the three kernels on the shapes of a 64 × 32 rank-8 step.
#[inline(never)]
fn measure_kernels(counter: &InstructionCounter) -> Result<(), Error> {
    const N: usize = 64;
    const M: usize = 32;
    const K: usize = 8;
    let mut rng = Lcg(42);
    let mut w = [0.0f32; N * M];
    let mut q = [0.0f32; M * K];
    let mut p = [0.0f32; N * K];
    let mut r = [0.0f32; M * K];
    rng.fill(&mut w);
    rng.fill(&mut q);
    rng.fill(&mut p);
    let multiply_adds = (N * M * K) as f32;

    let (result, nn) = counter.measure(|| {
        matmul(
            MatMut::from_slice(&mut p, N, K)?,
            MatRef::from_slice(&w, N, M)?,
            MatRef::from_slice(&q, M, K)?,
        )
    });
    result?;
    let (result, tn) = counter.measure(|| {
        matmul_tn(
            MatMut::from_slice(&mut r, M, K)?,
            MatRef::from_slice(&w, N, M)?,
            MatRef::from_slice(&p, N, K)?,
        )
    });
    result?;
    let (result, nt) = counter.measure(|| {
        rank_update(
            MatMut::from_slice(&mut w, N, M)?,
            -0.05,
            MatRef::from_slice(&p, N, K)?,
            MatRef::from_slice(&r, M, K)?,
        )
    });
    result?;
    defmt::info!(
        "kernels {=usize}x{=usize}x{=usize}: instructions per multiply-add: matmul {=f32}, matmul_tn {=f32}, rank_update {=f32}",
        N,
        M,
        K,
        nn as f32 / multiply_adds,
        tn as f32 / multiply_adds,
        nt as f32 / multiply_adds
    );
    Ok(())
}

#[inline(never)]
fn sqrt_libm(x: f32) -> f32 {
    libm::sqrtf(x)
}

#[inline(never)]
fn sqrt_vsqrt(x: f32) -> f32 {
    let bits: u32;
    // SAFETY: the instructions touch only the two core registers named here and s14, which is
    // declared clobbered; the FPU is enabled by cortex-m-rt on thumbv7em-none-eabihf. (Rust only
    // offers the `sreg` operand class with the `vfp2` feature, which implies double precision the
    // Cortex-M4F lacks, hence the core registers and a fixed FPU register.)
    unsafe {
        core::arch::asm!(
            "vmov s14, {x}",
            "vsqrt.f32 s14, s14",
            "vmov {root}, s14",
            x = in(reg) x.to_bits(),
            root = out(reg) bits,
            out("s14") _,
            options(pure, nomem, nostack),
        )
    };
    // IEEE 754 requires a correctly rounded square root, so this has the bits of `libm::sqrtf`.
    f32::from_bits(bits)
}

/// Instructions per call of `libm::sqrtf` and of `vsqrt.f32`, each in a non-inlined function,
/// and a check that both return the same bits.
#[inline(never)]
fn measure_sqrt(counter: &InstructionCounter) {
    let mut rng = Lcg(3);
    let mut inputs = [0.0f32; SQRT_CALLS as usize];
    for x in inputs.iter_mut() {
        *x = (rng.next() + 1.0) * 1000.0;
    }
    let (sum_libm, libm_instructions) =
        counter.measure(|| inputs.iter().map(|&x| sqrt_libm(black_box(x))).sum::<f32>());
    let (sum_vsqrt, vsqrt_instructions) = counter.measure(|| {
        inputs
            .iter()
            .map(|&x| sqrt_vsqrt(black_box(x)))
            .sum::<f32>()
    });
    let same_bits = inputs
        .iter()
        .all(|&x| sqrt_libm(x).to_bits() == sqrt_vsqrt(x).to_bits());
    defmt::info!(
        "sqrt: libm::sqrtf {=f32} instructions per call (loop included), vsqrt.f32 {=f32}; same bits on {=u32} inputs: {=bool} (sums {=f32} {=f32})",
        libm_instructions as f32 / SQRT_CALLS as f32,
        vsqrt_instructions as f32 / SQRT_CALLS as f32,
        SQRT_CALLS,
        same_bits,
        sum_libm,
        sum_vsqrt
    );
    if !same_bits {
        exit(false);
    }
}

#[entry]
fn main() -> ! {
    let peripherals = cortex_m::Peripherals::take().unwrap();
    let counter = InstructionCounter::new(peripherals.SYST);
    let (_, empty) = counter.measure(|| ());
    defmt::info!("empty measured window: {=u64} instructions", empty);

    let result = measure_dion::<32, 64, 8>(&counter)
        .and_then(|()| measure_dion::<64, 64, 8>(&counter))
        .and_then(|()| measure_dion::<64, 32, 8>(&counter))
        .and_then(|()| measure_kernels(&counter));
    if let Err(error) = result {
        defmt::error!("measurement failed: {}", error);
        exit(false);
    }
    measure_sqrt(&counter);
    exit(true)
}

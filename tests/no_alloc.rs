//! Proves that a Dion step performs no heap allocation.
//!
//! This test binary installs a global allocator that forwards to the system allocator and counts
//! the calls of `alloc`, `alloc_zeroed` and `realloc` made by the current thread. The count before
//! and after a step must be equal. The library is `#![no_std]` without `alloc`, so this mainly
//! guards against a future dependency or feature that allocates behind the API.
//!
//! The counter is a thread-local, so allocations of the test harness on other threads do not
//! count. `try_with` keeps the allocator usable while thread-local storage is being torn down.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;

use dion_kernel::engine::{dion_step, DionConfig, StepScratch, StepShape, StepState};
use dion_kernel::typed::{Dion, Matrix};

struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count_allocation() {
    let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so `System`'s
// guarantees hold; counting touches only a thread-local `Cell` and never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_allocation();
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Runs `f` and returns the number of allocations this thread made during it.
fn allocations_during<R>(f: impl FnOnce() -> R) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    black_box(f());
    ALLOCATIONS.with(Cell::get) - before
}

/// Deterministic values in `[-1, 1)` from a 32-bit LCG (Numerical Recipes constants).
fn fill(values: &mut [f32], mut seed: u32) {
    for value in values {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        *value = (seed >> 8) as f32 / (1u32 << 23) as f32 - 1.0;
    }
}

#[test]
fn counter_sees_a_vec_allocation() {
    let count = allocations_during(|| Vec::<f32>::with_capacity(16));
    assert_eq!(
        count, 1,
        "the counting allocator must see exactly one allocation"
    );
}

#[test]
fn typed_dion_step_does_not_allocate() {
    // Boxed so the test's own stack stays small; the box is allocated before the measured part.
    let mut dion = Box::new(Dion::<f32, 32, 64, 8>::new(DionConfig::default(), 3).unwrap());
    let mut weight = Box::new(Matrix::<f32, 32, 64>::zeros());
    let mut grad = Box::new(Matrix::<f32, 32, 64>::zeros());
    fill(weight.as_mut_slice(), 1);

    for step in 0..5u32 {
        fill(grad.as_mut_slice(), 100 + step);
        let count = allocations_during(|| dion.step(&mut weight, &grad).unwrap());
        assert_eq!(count, 0, "Dion::step allocated in step {step}");
    }

    // The error path must not allocate either (a formatted error message would).
    grad.as_mut_slice()[7] = f32::NAN;
    let count = allocations_during(|| dion.step(&mut weight, &grad).unwrap_err());
    assert_eq!(count, 0, "Dion::step allocated on the error path");
}

#[test]
fn typed_dion_new_does_not_allocate() {
    let count =
        allocations_during(|| Dion::<f32, 16, 8, 4>::new(DionConfig::default(), 9).unwrap());
    assert_eq!(count, 0, "Dion::new allocated");
}

#[test]
fn engine_dion_step_does_not_allocate() {
    // Tall (not transposed) shape in f64, so both the other branch and the other scalar type run.
    const ROWS: usize = 48;
    const COLS: usize = 24;
    const RANK: usize = 6;
    let shape = StepShape::new(ROWS, COLS, RANK).unwrap();
    let mut x = vec![0.25f64; ROWS * COLS];
    let mut grad32 = vec![0.0f32; ROWS * COLS];
    let mut momentum = vec![0.0f64; ROWS * COLS];
    let mut q = vec![0.0f64; shape.q_len()];
    let mut p = vec![0.0f64; shape.p_len()];
    let mut r = vec![0.0f64; shape.q_len()];
    fill(&mut grad32, 5);
    let grad: Vec<f64> = grad32.iter().map(|&g| f64::from(g)).collect();
    for (i, value) in q.iter_mut().enumerate() {
        *value = if i % (RANK + 1) == 0 { 1.0 } else { 0.0 };
    }
    let config = DionConfig::default();

    for step in 0..3 {
        let count = allocations_during(|| {
            dion_step(
                shape,
                &config,
                &mut x,
                &grad,
                StepState {
                    momentum: &mut momentum,
                    q: &mut q,
                },
                StepScratch {
                    p: &mut p,
                    r: &mut r,
                },
            )
            .unwrap()
        });
        assert_eq!(count, 0, "engine::dion_step allocated in step {step}");
    }
}

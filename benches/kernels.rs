//! Criterion benchmarks of the three matrix kernels in f32, next to nalgebra on the same inputs.
//!
//! Run with `cargo bench --bench kernels` (add `RUSTFLAGS="-C target-cpu=native"` for the
//! native build). Throughput is reported in GFLOP/s, counting `2·m·n·k` flops per product (the
//! `m·n` scalings and additions of `rank_update` are not counted). After criterion finishes, the
//! run prints a markdown table of the medians with the ratio to the fastest nalgebra variant. It
//! reads the `estimates.json` files that criterion wrote in this same run.
//!
//! Baselines:
//! - `matmul`: `DMatrix::gemm` with β = 0 (it calls `matrixmultiply`, which picks AVX2/FMA at
//!   run time) and `SMatrix::mul_to`.
//! - `matmul_tn`: `tr_mul_to`, nalgebra's API for `Aᵀ·B`, on `DMatrix` and `SMatrix`; and
//!   `DMatrix::gemm` handed `Aᵀ` as a matrix. nalgebra stores column-major, so the row-major
//!   buffer of `A` read column-major *is* `Aᵀ`; building it copies nothing that the timed call
//!   could have avoided.
//! - `rank_update`: `DMatrix::gemm` / `SMatrix::gemm` with β = 1, handed `Bᵀ` the same way.
//!
//! `SMatrix` runs only where all three operands are at most 256 × 256: the 1024 shapes would
//! put 4 MiB values on the stack.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput};
use dion_kernel::engine::{matmul, matmul_tn, rank_update, MatMut, MatRef};
use nalgebra::{DMatrix, SMatrix};

/// The Dion step shapes `(rows, cols, rank)`: `B` is `rows × cols`, `Q`, `P` and `R` have
/// `rank` columns.
const STEP_SHAPES: [(usize, usize, usize); 2] = [(256, 256, 32), (1024, 1024, 128)];

/// `α` of `rank_update`, a value whose products are not exact.
const ALPHA: f32 = -0.3;

/// Lanes of the peak-rate loop: 8 vectors of 8 f32 per stream with AVX, 6 of 4 with SSE2, so
/// both streams and the two constants fit in the 16 vector registers.
#[cfg(target_feature = "avx")]
const PEAK_LANES: usize = 64;
#[cfg(not(target_feature = "avx"))]
const PEAK_LANES: usize = 24;

/// Inner repetitions of the peak-rate loop per measured call.
const PEAK_REPEATS: usize = 4096;

/// Deterministic values in `[-1, 1)` from a 64-bit linear congruential generator (Knuth's MMIX
/// constants), so every run and every library gets the same inputs.
fn random_matrix(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 40) as f32) / ((1u64 << 23) as f32) - 1.0
        })
        .collect()
}

/// One benchmark whose median goes into the summary table.
struct Entry {
    group: &'static str,
    shape: String,
    variant: &'static str,
    flops: f64,
}

/// Registers benchmarks and remembers them for the summary.
struct Runner<'c> {
    criterion: &'c mut Criterion,
    entries: Vec<Entry>,
}

impl Runner<'_> {
    fn group(&mut self, name: &'static str) -> BenchmarkGroup<'_, WallTime> {
        self.criterion.benchmark_group(name)
    }
}

fn bench_one(
    group: &mut BenchmarkGroup<'_, WallTime>,
    entries: &mut Vec<Entry>,
    group_name: &'static str,
    variant: &'static str,
    shape: &str,
    flops: f64,
    mut routine: impl FnMut(),
) {
    group.throughput(Throughput::Elements(flops as u64));
    group.bench_function(BenchmarkId::new(variant, shape), |bencher| {
        bencher.iter(&mut routine)
    });
    entries.push(Entry {
        group: group_name,
        shape: shape.to_string(),
        variant,
        flops,
    });
}

/// `C = A·B` with `A` `m × k`, `B` `k × n`.
fn bench_matmul<const M: usize, const K: usize, const N: usize>(
    runner: &mut Runner<'_>,
    m: usize,
    k: usize,
    n: usize,
    with_smatrix: bool,
) {
    let a = random_matrix(m * k, 1);
    let b = random_matrix(k * n, 2);
    let mut c = vec![0.0f32; m * n];
    let shape = format!("{m}x{k}_{k}x{n}");
    let flops = 2.0 * (m * n * k) as f64;
    let mut entries = Vec::new();
    let mut group = runner.group("matmul");

    bench_one(
        &mut group,
        &mut entries,
        "matmul",
        "ours",
        &shape,
        flops,
        || {
            let c_view = MatMut::from_slice(&mut c, m, n).unwrap();
            let a_view = MatRef::from_slice(black_box(&a), m, k).unwrap();
            let b_view = MatRef::from_slice(black_box(&b), k, n).unwrap();
            matmul(c_view, a_view, b_view).unwrap();
            black_box(&c);
        },
    );

    let a_dyn = DMatrix::from_row_slice(m, k, &a);
    let b_dyn = DMatrix::from_row_slice(k, n, &b);
    let mut c_dyn = DMatrix::<f32>::zeros(m, n);
    bench_one(
        &mut group,
        &mut entries,
        "matmul",
        "nalgebra_dmatrix",
        &shape,
        flops,
        || {
            c_dyn.gemm(1.0, black_box(&a_dyn), black_box(&b_dyn), 0.0);
            black_box(&c_dyn);
        },
    );

    if with_smatrix {
        let a_static = Box::new(SMatrix::<f32, M, K>::from_row_slice(&a));
        let b_static = Box::new(SMatrix::<f32, K, N>::from_row_slice(&b));
        let mut c_static = Box::new(SMatrix::<f32, M, N>::zeros());
        bench_one(
            &mut group,
            &mut entries,
            "matmul",
            "nalgebra_smatrix",
            &shape,
            flops,
            || {
                black_box(&*a_static).mul_to(black_box(&*b_static), &mut *c_static);
                black_box(&c_static);
            },
        );
    }
    group.finish();
    runner.entries.append(&mut entries);
}

/// `C = Aᵀ·B` with `A` `k × m`, `B` `k × n`.
fn bench_matmul_tn<const M: usize, const K: usize, const N: usize>(
    runner: &mut Runner<'_>,
    m: usize,
    k: usize,
    n: usize,
    with_smatrix: bool,
) {
    let a = random_matrix(k * m, 3);
    let b = random_matrix(k * n, 4);
    let mut c = vec![0.0f32; m * n];
    let shape = format!("({k}x{m})T_{k}x{n}");
    let flops = 2.0 * (m * n * k) as f64;
    let mut entries = Vec::new();
    let mut group = runner.group("matmul_tn");

    bench_one(
        &mut group,
        &mut entries,
        "matmul_tn",
        "ours",
        &shape,
        flops,
        || {
            let c_view = MatMut::from_slice(&mut c, m, n).unwrap();
            let a_view = MatRef::from_slice(black_box(&a), k, m).unwrap();
            let b_view = MatRef::from_slice(black_box(&b), k, n).unwrap();
            matmul_tn(c_view, a_view, b_view).unwrap();
            black_box(&c);
        },
    );

    let a_dyn = DMatrix::from_row_slice(k, m, &a);
    let b_dyn = DMatrix::from_row_slice(k, n, &b);
    let mut c_dyn = DMatrix::<f32>::zeros(m, n);
    bench_one(
        &mut group,
        &mut entries,
        "matmul_tn",
        "nalgebra_dmatrix_tr_mul",
        &shape,
        flops,
        || {
            black_box(&a_dyn).tr_mul_to(black_box(&b_dyn), &mut c_dyn);
            black_box(&c_dyn);
        },
    );

    // The row-major buffer of `A` (k × m) read column-major is `Aᵀ` (m × k).
    let a_transposed_dyn = DMatrix::from_column_slice(m, k, &a);
    bench_one(
        &mut group,
        &mut entries,
        "matmul_tn",
        "nalgebra_dmatrix_gemm",
        &shape,
        flops,
        || {
            c_dyn.gemm(1.0, black_box(&a_transposed_dyn), black_box(&b_dyn), 0.0);
            black_box(&c_dyn);
        },
    );

    if with_smatrix {
        let a_static = Box::new(SMatrix::<f32, K, M>::from_row_slice(&a));
        let b_static = Box::new(SMatrix::<f32, K, N>::from_row_slice(&b));
        let mut c_static = Box::new(SMatrix::<f32, M, N>::zeros());
        bench_one(
            &mut group,
            &mut entries,
            "matmul_tn",
            "nalgebra_smatrix_tr_mul",
            &shape,
            flops,
            || {
                black_box(&*a_static).tr_mul_to(black_box(&*b_static), &mut *c_static);
                black_box(&c_static);
            },
        );
    }
    group.finish();
    runner.entries.append(&mut entries);
}

/// `C += α·A·Bᵀ` with `A` `m × k`, `B` `n × k`.
fn bench_rank_update<const M: usize, const K: usize, const N: usize>(
    runner: &mut Runner<'_>,
    m: usize,
    k: usize,
    n: usize,
    with_smatrix: bool,
) {
    let a = random_matrix(m * k, 5);
    let b = random_matrix(n * k, 6);
    let mut c = random_matrix(m * n, 7);
    let shape = format!("{m}x{k}_({n}x{k})T");
    let flops = 2.0 * (m * n * k) as f64;
    let mut entries = Vec::new();
    let mut group = runner.group("rank_update");

    bench_one(
        &mut group,
        &mut entries,
        "rank_update",
        "ours",
        &shape,
        flops,
        || {
            let c_view = MatMut::from_slice(&mut c, m, n).unwrap();
            let a_view = MatRef::from_slice(black_box(&a), m, k).unwrap();
            let b_view = MatRef::from_slice(black_box(&b), n, k).unwrap();
            rank_update(c_view, black_box(ALPHA), a_view, b_view).unwrap();
            black_box(&c);
        },
    );

    let a_dyn = DMatrix::from_row_slice(m, k, &a);
    // The row-major buffer of `B` (n × k) read column-major is `Bᵀ` (k × n).
    let b_transposed_dyn = DMatrix::from_column_slice(k, n, &b);
    let mut c_dyn = DMatrix::from_row_slice(m, n, &c);
    bench_one(
        &mut group,
        &mut entries,
        "rank_update",
        "nalgebra_dmatrix_gemm",
        &shape,
        flops,
        || {
            c_dyn.gemm(
                black_box(ALPHA),
                black_box(&a_dyn),
                black_box(&b_transposed_dyn),
                1.0,
            );
            black_box(&c_dyn);
        },
    );

    if with_smatrix {
        let a_static = Box::new(SMatrix::<f32, M, K>::from_row_slice(&a));
        let b_transposed_static = Box::new(SMatrix::<f32, K, N>::from_column_slice(&b));
        let mut c_static = Box::new(SMatrix::<f32, M, N>::from_row_slice(&c));
        bench_one(
            &mut group,
            &mut entries,
            "rank_update",
            "nalgebra_smatrix_gemm",
            &shape,
            flops,
            || {
                c_static.gemm(
                    black_box(ALPHA),
                    black_box(&*a_static),
                    black_box(&*b_transposed_static),
                    1.0,
                );
                black_box(&c_static);
            },
        );
    }
    group.finish();
    runner.entries.append(&mut entries);
}

/// `x = x·s` and `y = y + d` on `PEAK_LANES` independent lanes each, repeated: the machine's
/// rate for separate multiplies and adds, the instruction mix of the kernels.
#[inline(never)]
fn peak_mul_add(x: &mut [f32; PEAK_LANES], y: &mut [f32; PEAK_LANES], s: f32, d: f32) {
    for _ in 0..PEAK_REPEATS {
        for (x_value, y_value) in x.iter_mut().zip(y.iter_mut()) {
            *x_value *= s;
            *y_value += d;
        }
    }
}

/// `x = x·s + d` fused, on `PEAK_LANES` lanes, repeated: the FMA peak. Only meaningful when the
/// build enables FMA; otherwise `mul_add` is a library call.
#[inline(never)]
fn peak_fma(x: &mut [f32; PEAK_LANES], s: f32, d: f32) {
    for _ in 0..PEAK_REPEATS {
        for x_value in x.iter_mut() {
            *x_value = x_value.mul_add(s, d);
        }
    }
}

fn bench_peak(runner: &mut Runner<'_>) {
    let mut entries = Vec::new();
    let mut group = runner.group("peak");
    let mut x = [1.0f32; PEAK_LANES];
    let mut y = [0.0f32; PEAK_LANES];
    // s = 1 and d = 0 keep the values fixed; black_box hides them so nothing folds.
    let flops = (2 * PEAK_LANES * PEAK_REPEATS) as f64;
    bench_one(
        &mut group,
        &mut entries,
        "peak",
        "mul_add_separate",
        "f32",
        flops,
        || {
            peak_mul_add(&mut x, &mut y, black_box(1.0), black_box(0.0));
            black_box((&x, &y));
        },
    );
    if cfg!(target_feature = "fma") {
        let flops = (2 * PEAK_LANES * PEAK_REPEATS) as f64;
        bench_one(
            &mut group,
            &mut entries,
            "peak",
            "fma",
            "f32",
            flops,
            || {
                peak_fma(&mut x, black_box(1.0), black_box(0.0));
                black_box(&x);
            },
        );
    }
    group.finish();
    runner.entries.append(&mut entries);
}

/// Criterion's output directory, found the way criterion finds it (without calling `cargo
/// metadata`).
fn criterion_home() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent()
        .map_or_else(|| PathBuf::from("target"), PathBuf::from)
        .join("criterion")
}

/// Median time in nanoseconds of one benchmark, if this run wrote it.
fn median_ns(entry: &Entry, since: SystemTime) -> Option<f64> {
    let path = criterion_home()
        .join(entry.group)
        .join(entry.variant)
        .join(entry.shape.replace(['(', ')'], "_").as_str())
        .join("new")
        .join("estimates.json");
    let path = if path.exists() {
        path
    } else {
        // Criterion keeps parentheses in directory names on Linux.
        criterion_home()
            .join(entry.group)
            .join(entry.variant)
            .join(&entry.shape)
            .join("new")
            .join("estimates.json")
    };
    let modified = std::fs::metadata(&path).ok()?.modified().ok()?;
    if modified < since {
        return None;
    }
    let text = std::fs::read_to_string(&path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["median"]["point_estimate"].as_f64()
}

/// One line of the summary table: the GFLOP/s of every variant of one kernel and shape.
struct SummaryRow<'e> {
    group: &'e str,
    shape: &'e str,
    variants: Vec<(&'e str, f64)>,
}

/// Prints the summary table: GFLOP/s of every variant, and ours over the best nalgebra variant,
/// in the order the benchmarks ran.
fn print_summary(entries: &[Entry], since: SystemTime) {
    let mut rows: Vec<SummaryRow<'_>> = Vec::new();
    for entry in entries {
        let Some(ns) = median_ns(entry, since) else {
            continue;
        };
        let gflops = entry.flops / ns;
        match rows
            .iter_mut()
            .find(|row| row.group == entry.group && row.shape == entry.shape)
        {
            Some(row) => row.variants.push((entry.variant, gflops)),
            None => rows.push(SummaryRow {
                group: entry.group,
                shape: &entry.shape,
                variants: vec![(entry.variant, gflops)],
            }),
        }
    }
    if rows.is_empty() {
        return;
    }
    println!();
    println!("| kernel | shape | GFLOP/s (median) per variant | ours / best nalgebra |");
    println!("|---|---|---|---|");
    for row in &rows {
        let ours = row
            .variants
            .iter()
            .find(|(name, _)| *name == "ours")
            .map(|&(_, g)| g);
        let best_nalgebra = row
            .variants
            .iter()
            .filter(|(name, _)| name.starts_with("nalgebra"))
            .map(|&(_, g)| g)
            .reduce(f64::max);
        let listed: Vec<String> = row
            .variants
            .iter()
            .map(|(name, g)| format!("{name} {g:.1}"))
            .collect();
        let ratio = match (ours, best_nalgebra) {
            (Some(ours), Some(best)) => format!("{:.2}", ours / best),
            _ => "-".to_string(),
        };
        println!(
            "| {} | {} | {} | {ratio} |",
            row.group,
            row.shape,
            listed.join(", ")
        );
    }
}

fn main() {
    let since = SystemTime::now();
    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(700))
        .configure_from_args();
    let mut runner = Runner {
        criterion: &mut criterion,
        entries: Vec::new(),
    };
    let [(rows, cols, rank), (big_rows, big_cols, big_rank)] = STEP_SHAPES;

    bench_peak(&mut runner);

    bench_matmul::<16, 16, 16>(&mut runner, 16, 16, 16, true);
    bench_matmul::<32, 32, 32>(&mut runner, 32, 32, 32, true);
    bench_matmul::<64, 64, 64>(&mut runner, 64, 64, 64, true);
    bench_matmul::<128, 128, 128>(&mut runner, 128, 128, 128, true);
    bench_matmul::<256, 256, 256>(&mut runner, 256, 256, 256, true);
    // B·Q: B is rows × cols, Q is cols × rank.
    bench_matmul::<256, 256, 32>(&mut runner, rows, cols, rank, true);
    bench_matmul::<0, 0, 0>(&mut runner, big_rows, big_cols, big_rank, false);

    bench_matmul_tn::<16, 16, 16>(&mut runner, 16, 16, 16, true);
    bench_matmul_tn::<32, 32, 32>(&mut runner, 32, 32, 32, true);
    bench_matmul_tn::<64, 64, 64>(&mut runner, 64, 64, 64, true);
    bench_matmul_tn::<128, 128, 128>(&mut runner, 128, 128, 128, true);
    bench_matmul_tn::<256, 256, 256>(&mut runner, 256, 256, 256, true);
    // Bᵀ·P: B is rows × cols, so Bᵀ·P is cols × rank with inner dimension rows.
    bench_matmul_tn::<256, 256, 32>(&mut runner, cols, rows, rank, true);
    bench_matmul_tn::<0, 0, 0>(&mut runner, big_cols, big_rows, big_rank, false);

    bench_rank_update::<16, 16, 16>(&mut runner, 16, 16, 16, true);
    bench_rank_update::<32, 32, 32>(&mut runner, 32, 32, 32, true);
    bench_rank_update::<64, 64, 64>(&mut runner, 64, 64, 64, true);
    bench_rank_update::<128, 128, 128>(&mut runner, 128, 128, 128, true);
    bench_rank_update::<256, 256, 256>(&mut runner, 256, 256, 256, true);
    // C += P·Rᵀ: C is rows × cols, P is rows × rank, R is cols × rank.
    bench_rank_update::<256, 32, 256>(&mut runner, rows, rank, cols, true);
    bench_rank_update::<0, 0, 0>(&mut runner, big_rows, big_rank, big_cols, false);

    let entries = std::mem::take(&mut runner.entries);
    criterion.final_summary();
    print_summary(&entries, since);
}

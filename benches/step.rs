//! Criterion benchmark of one whole Dion step in f32, next to the same step written with
//! nalgebra `DMatrix` operations in the same run.
//!
//! Run with `cargo bench --bench step`. Shapes `n × n` at rank `r`: 32²·4, 64²·8, 128²·16,
//! 256²·32, 512²·64 and 1024²·128. The step costs about `8·n²·r` flops (two products with `B`,
//! two rank-`r` updates), which gives the GFLOP/s that criterion reports.
//!
//! The nalgebra step is the reference's algorithm written the natural way with `DMatrix`:
//! `B = M + G`, `P = B·Q`, Householder QR (`qr().q()`), `R = Bᵀ·P`, `M = B − (1 − μ)·P Rᵀ`,
//! `Q = colnorm(R)`, `X = (1 − lr·wd)·X − lr·P Qᵀ`, reusing buffers where nalgebra offers an
//! in-place call (`gemm`, `tr_mul_to`). nalgebra's products go through matrixmultiply, which
//! picks AVX2/FMA at run time, while this crate's build is the default x86-64 target unless
//! `RUSTFLAGS="-C target-cpu=native"` is set.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use dion_kernel::engine::{dion_step, DionConfig, StepScratch, StepShape, StepState};
use dion_kernel::SplitMix64;
use nalgebra::DMatrix;

const SHAPES: [(usize, usize); 6] = [
    (32, 4),
    (64, 8),
    (128, 16),
    (256, 32),
    (512, 64),
    (1024, 128),
];

fn gaussian(len: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    (0..len)
        .map(|_| scale * rng.next_gaussian() as f32)
        .collect()
}

/// The dion-kernel step on runtime-shape buffers.
struct Ours {
    shape: StepShape,
    x: Vec<f32>,
    m: Vec<f32>,
    q: Vec<f32>,
    p: Vec<f32>,
    r: Vec<f32>,
    g: Vec<f32>,
}

impl Ours {
    fn new(n: usize, rank: usize) -> Self {
        let shape = StepShape::new(n, n, rank).unwrap();
        Self {
            shape,
            x: gaussian(n * n, 1, 0.1),
            m: vec![0.0; n * n],
            q: gaussian(n * rank, 2, 1.0),
            p: vec![0.0; shape.p_len()],
            r: vec![0.0; shape.q_len()],
            g: gaussian(n * n, 3, 1.0),
        }
    }

    fn step(&mut self, config: &DionConfig<f32>) {
        dion_step(
            self.shape,
            config,
            &mut self.x,
            &self.g,
            StepState {
                momentum: &mut self.m,
                q: &mut self.q,
            },
            StepScratch {
                p: &mut self.p,
                r: &mut self.r,
            },
        )
        .unwrap();
    }
}

/// The same step with nalgebra.
struct Nalgebra {
    x: DMatrix<f32>,
    m: DMatrix<f32>,
    q: DMatrix<f32>,
    g: DMatrix<f32>,
    b: DMatrix<f32>,
    p: DMatrix<f32>,
    r: DMatrix<f32>,
}

impl Nalgebra {
    fn new(n: usize, rank: usize) -> Self {
        Self {
            x: DMatrix::from_vec(n, n, gaussian(n * n, 1, 0.1)),
            m: DMatrix::zeros(n, n),
            q: DMatrix::from_vec(n, rank, gaussian(n * rank, 2, 1.0)),
            g: DMatrix::from_vec(n, n, gaussian(n * n, 3, 1.0)),
            b: DMatrix::zeros(n, n),
            p: DMatrix::zeros(n, rank),
            r: DMatrix::zeros(n, rank),
        }
    }

    fn step(&mut self, config: &DionConfig<f32>) {
        self.b.copy_from(&self.m);
        self.b += &self.g;
        self.p.gemm(1.0, &self.b, &self.q, 0.0);
        let p = self.p.clone().qr().q();
        self.b.tr_mul_to(&p, &mut self.r);
        self.m.copy_from(&self.b);
        self.m
            .gemm(-(1.0 - config.momentum), &p, &self.r.transpose(), 1.0);
        for mut column in self.r.column_iter_mut() {
            let norm = column.norm();
            column /= norm + config.epsilon;
        }
        self.q.copy_from(&self.r);
        self.x *= 1.0 - config.lr * config.weight_decay;
        self.x.gemm(-config.lr, &p, &self.q.transpose(), 1.0);
    }
}

fn main() {
    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let config = DionConfig::<f32>::default();
    let mut group = criterion.benchmark_group("dion_step_f32");
    for (n, rank) in SHAPES {
        group.throughput(Throughput::Elements((8 * n * n * rank) as u64));
        let label = format!("{n}x{n}_r{rank}");
        let mut ours = Ours::new(n, rank);
        group.bench_function(BenchmarkId::new("dion-kernel", &label), |b| {
            b.iter(|| ours.step(black_box(&config)))
        });
        let mut theirs = Nalgebra::new(n, rank);
        group.bench_function(BenchmarkId::new("nalgebra", &label), |b| {
            b.iter(|| theirs.step(black_box(&config)))
        });
    }
    group.finish();
    criterion.final_summary();
}

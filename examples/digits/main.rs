//! Trains a small classifier on the UCI 8×8 handwritten digits with the Dion step, next to SGD
//! with momentum and AdamW.
//!
//! ```text
//! cargo run --release --example digits            # train, print per-epoch lines, write the plot
//! cargo run --release --example digits -- --sweep # rerun the learning-rate sweep and rank study
//! ```
//!
//! The network is 64 → 64 ReLU → 10 with softmax cross-entropy (see `mlp.rs`); its forward and
//! backward passes are products of `dion_kernel::typed::Matrix` values. Each of the three
//! optimizers trains the same initial weights on the same batches:
//!
//! - `sgd`: SGD with momentum 0.9 on every parameter.
//! - `adamw`: AdamW on every parameter.
//! - `dion`: the crate's Dion step on the two weight matrices (rank 8 for the 64 × 64 hidden
//!   layer, rank 4 for the 10 × 64 output layer) and the crate's AdamW on the two bias vectors.
//!
//! The data are 1797 images split 80/20 per class with seed [`SEED`]; pixel values 0–16 are
//! divided by 16.
//!
//! The learning rates below come from the sweep in `sweep.rs` (`--sweep`). It fits on 80 % of
//! the training set from three seeds and chooses the rate with the best mean accuracy on the
//! other 20 %, breaking ties by the lower loss. Mean validation accuracy (%) per rate, chosen
//! rate in brackets (AMD EPYC, 2 vCPUs; full table with losses in `docs/DIGITS.md`):
//!
//! ```text
//! sgd    0.01: 97.33   0.03: 97.33   [0.1]: 98.14   0.3: 98.14    1: 9.99
//! adamw  0.0003: 93.50   0.001: 96.98   [0.003]: 97.44   0.01: 97.33   0.03: 96.28
//! dion   0.001: 86.06   0.003: 93.61   0.01: 98.14   [0.03]: 98.14   0.1: 97.33   0.3: 93.15
//! ```
//!
//! Data: Alpaydin, E. & Kaynak, C. (1998). Optical Recognition of Handwritten Digits. UCI Machine
//! Learning Repository. CC BY 4.0; see `examples/data/README.md`.

mod data;
mod mlp;
mod optim;
mod plot;
mod rng;
mod sweep;
mod train;

use std::error::Error;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use dion_kernel::engine::{DionConfig, ScalarOptConfig};

use crate::data::{load_gz, stratified_split, Dataset};
use crate::optim::{AdamW, Dion, Optimizer, SgdMomentum, RANK_HIDDEN, RANK_OUTPUT};
use crate::rng::Rng;
use crate::train::{Run, BATCH, STREAM_SPLIT};

/// Seed of the split, the initial weights and the batch order.
pub const SEED: u64 = 20_250_407;
/// Hidden units.
pub const HIDDEN: usize = 64;
/// Passes over the training set per optimizer.
pub const EPOCHS: usize = 30;
/// Share of each class held out as the test set.
pub const TEST_FRACTION: f64 = 0.2;

/// SGD learning rate, chosen by the sweep.
const SGD_LR: f32 = 0.1;
/// SGD momentum, fixed at 0.9 rather than swept.
const SGD_MOMENTUM: f32 = 0.9;
/// AdamW learning rate, chosen by the sweep; the Dion run's biases use it too.
pub const ADAMW_LR: f32 = 0.003;
/// Decoupled weight decay of AdamW, the crate's default.
const ADAMW_WEIGHT_DECAY: f32 = 0.01;
/// Dion learning rate for the weight matrices, chosen by the sweep.
pub const DION_LR: f32 = 0.03;

/// The optimizers the example compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Sgd,
    AdamW,
    Dion,
}

impl Method {
    /// All three, in the order they are printed and plotted.
    pub const ALL: [Method; 3] = [Method::Sgd, Method::AdamW, Method::Dion];

    /// Name in the output and in the plot legend.
    pub fn label(self) -> &'static str {
        match self {
            Method::Sgd => "sgd",
            Method::AdamW => "adamw",
            Method::Dion => "dion",
        }
    }

    /// Returns the learning rate the sweep chose.
    pub fn chosen_lr(self) -> f32 {
        match self {
            Method::Sgd => SGD_LR,
            Method::AdamW => ADAMW_LR,
            Method::Dion => DION_LR,
        }
    }

    /// Describes in one line what the optimizer updates and with which settings.
    pub fn describe(self, lr: f32) -> String {
        match self {
            Method::Sgd => format!("SGD with momentum {SGD_MOMENTUM}, lr {lr}, on every parameter"),
            Method::AdamW => {
                let adamw = ScalarOptConfig::<f32>::default();
                format!(
                    "AdamW (beta1 {}, beta2 {}, weight decay {ADAMW_WEIGHT_DECAY}), lr {lr}, on every parameter",
                    adamw.beta1, adamw.beta2
                )
            }
            Method::Dion => {
                let dion = DionConfig::<f32>::default();
                format!(
                    "Dion (momentum {}, weight decay {}), lr {lr}, on W1 ({HIDDEN}x64, rank {RANK_HIDDEN}) \
                     and W2 (10x{HIDDEN}, rank {RANK_OUTPUT}); AdamW with lr {ADAMW_LR} on the biases",
                    dion.momentum, dion.weight_decay
                )
            }
        }
    }

    /// Builds a fresh optimizer with learning rate `lr` and the other settings fixed above.
    /// `seed` draws Dion's initial factors.
    pub fn build(self, lr: f32, seed: u64) -> Result<Box<dyn Optimizer>, dion_kernel::Error> {
        Ok(match self {
            Method::Sgd => Box::new(SgdMomentum::new(lr, SGD_MOMENTUM)),
            Method::AdamW => Box::new(AdamW::new(adamw_config(lr))?),
            Method::Dion => Box::new(Dion::<RANK_HIDDEN, RANK_OUTPUT>::new(
                dion_config(lr),
                adamw_config(ADAMW_LR),
                seed,
            )?),
        })
    }
}

/// Returns the AdamW settings of the comparison at learning rate `lr`, the crate's defaults
/// otherwise.
pub fn adamw_config(lr: f32) -> ScalarOptConfig<f32> {
    ScalarOptConfig {
        lr,
        weight_decay: ADAMW_WEIGHT_DECAY,
        ..ScalarOptConfig::default()
    }
}

/// Returns the Dion settings of the comparison at learning rate `lr`, the crate's defaults
/// otherwise.
pub fn dion_config(lr: f32) -> DionConfig<f32> {
    DionConfig {
        lr,
        ..DionConfig::default()
    }
}

/// Command-line options.
struct Options {
    sweep: bool,
    plot: PathBuf,
    data: PathBuf,
}

const USAGE: &str = "\
usage: cargo run --release --example digits -- [--sweep] [--plot PATH] [--data PATH]

  --sweep      rerun the learning-rate sweep and the Dion rank study on a validation split of
               the training set (about 20 s in release mode) and print their tables instead of
               the comparison
  --plot PATH  where to write the SVG plot (default: target/digits.svg in the crate directory)
  --data PATH  the gzip-compressed CSV to read (default: examples/data/digits.csv.gz)
  --help       print this text";

fn parse_options() -> Result<Options, String> {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut options = Options {
        sweep: false,
        plot: manifest_dir.join("target").join("digits.svg"),
        data: manifest_dir
            .join("examples")
            .join("data")
            .join("digits.csv.gz"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--sweep" => options.sweep = true,
            "--plot" => options.plot = args.next().ok_or("--plot needs a path")?.into(),
            "--data" => options.data = args.next().ok_or("--data needs a path")?.into(),
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}\n\n{USAGE}")),
        }
    }
    Ok(options)
}

fn main() -> ExitCode {
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(options: &Options) -> Result<(), Box<dyn Error>> {
    let all = load_gz(&options.data)?;
    let split_seed = Rng::for_stream(SEED, STREAM_SPLIT).next_u64();
    let (train, test) = stratified_split(&all, TEST_FRACTION, split_seed);
    println!(
        "digits: {} images from {}, split {} train / {} test (stratified, seed {SEED})",
        all.len(),
        options.data.display(),
        train.len(),
        test.len()
    );
    println!(
        "model: 64 -> {HIDDEN} ReLU -> 10, softmax cross-entropy; {EPOCHS} epochs of batch {BATCH} \
         ({} steps per optimizer)",
        EPOCHS * train.len().div_ceil(BATCH)
    );

    if options.sweep {
        sweep::run(&train);
        return Ok(());
    }

    compare(options, &train, &test)
}

/// Trains the three optimizers epoch by epoch, prints their progress, writes the plot and ends
/// with the Dion run's test accuracy.
fn compare(options: &Options, train: &Dataset, test: &Dataset) -> Result<(), Box<dyn Error>> {
    let start = Instant::now();
    let mut runs: Vec<Run> = Method::ALL
        .iter()
        .map(|&method| {
            println!(
                "{:<6} {}",
                method.label(),
                method.describe(method.chosen_lr())
            );
            Ok(Run::new(
                method.build(method.chosen_lr(), SEED)?,
                SEED,
                train,
                test,
            ))
        })
        .collect::<Result<_, dion_kernel::Error>>()?;

    for epoch in 1..=EPOCHS {
        for run in &mut runs {
            let stats = run
                .train_epoch(train, test)
                .map_err(|e| format!("{} failed in epoch {epoch}: {e}", run.name()))?;
            println!(
                "epoch {epoch:>2}/{EPOCHS}  {:<6} train loss {:.4}  test acc {:6.2}%  elapsed {:6.3} s",
                run.name(),
                stats.train_loss,
                100.0 * stats.test.accuracy,
                stats.elapsed.as_secs_f64()
            );
        }
        let _ = std::io::stdout().flush();
    }

    println!();
    println!("optimizer  lr       final train loss  final test acc  time");
    for (run, method) in runs.iter().zip(Method::ALL) {
        let last = run.history.last().expect("at least one epoch ran");
        println!(
            "{:<10} {:<8} {:<17.4} {:>13.2}%  {:.3} s",
            run.name(),
            method.chosen_lr(),
            last.train_loss,
            100.0 * last.test.accuracy,
            last.elapsed.as_secs_f64()
        );
    }

    let histories: Vec<(&str, &[train::EpochStats])> = runs
        .iter()
        .map(|r| (r.name(), r.history.as_slice()))
        .collect();
    if let Some(parent) = options.plot.parent() {
        std::fs::create_dir_all(parent)?;
    }
    plot::write_svg(&options.plot, &histories)?;
    println!(
        "total time {:.2} s; plot written to {}",
        start.elapsed().as_secs_f64(),
        options.plot.display()
    );

    let dion = runs.iter().find(|r| r.name() == Method::Dion.label());
    let last = dion.and_then(|r| r.history.last()).ok_or("no Dion run")?;
    println!("final test accuracy: {:.2}%", 100.0 * last.test.accuracy);
    Ok(())
}

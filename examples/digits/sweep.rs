//! The learning-rate sweep behind the rates in `main.rs`, and a rank study of Dion.
//!
//! Each optimizer is trained on 80 % of the training set for the full number of epochs at each
//! rate of its grid, from each of the [`SEEDS`]. A rate's score is the mean accuracy on the other
//! 20 % of the training set (the validation set). The test set is never looked at, so the
//! test accuracies the example reports are not tuned on it.

use std::io::Write;
use std::time::Instant;

use dion_kernel::Error;

use crate::data::{stratified_split, Dataset};
use crate::optim::{Dion, Optimizer};
use crate::rng::Rng;
use crate::train::{Run, STREAM_VALIDATION};
use crate::{adamw_config, dion_config, Method, ADAMW_LR, DION_LR, EPOCHS, SEED};

/// Share of the training set held out for validation during the sweep.
pub const VALIDATION_FRACTION: f64 = 0.2;

/// Seeds of the initial weights, batch order and Dion factors; the validation split is fixed.
/// With about 290 validation images one image is 0.35 points, so a single seed cannot tell
/// neighbouring rates apart.
pub const SEEDS: [u64; 3] = [SEED, SEED + 1, SEED + 2];

/// Returns the rates tried for each optimizer: half-decade steps around the usual defaults, extended
/// until the best rate is inside the grid.
pub fn grid(method: Method) -> &'static [f32] {
    match method {
        Method::Sgd => &[0.01, 0.03, 0.1, 0.3, 1.0],
        Method::AdamW => &[0.0003, 0.001, 0.003, 0.01, 0.03],
        Method::Dion => &[0.001, 0.003, 0.01, 0.03, 0.1, 0.3],
    }
}

/// Builds an optimizer for one seed.
type Builder = fn(f32, u64) -> Result<Box<dyn Optimizer>, Error>;

fn dion_at_ranks<const R1: usize, const R2: usize>(
    lr: f32,
    seed: u64,
) -> Result<Box<dyn Optimizer>, Error> {
    Ok(Box::new(Dion::<R1, R2>::new(
        dion_config(lr),
        adamw_config(ADAMW_LR),
        seed,
    )?))
}

/// Ranks of `W₁` (64 × 64) and `W₂` (10 × 64) in the rank study, up to full rank.
const RANKS: [(usize, usize, Builder); 7] = [
    (1, 1, dion_at_ranks::<1, 1>),
    (2, 2, dion_at_ranks::<2, 2>),
    (4, 4, dion_at_ranks::<4, 4>),
    (8, 4, dion_at_ranks::<8, 4>),
    (16, 8, dion_at_ranks::<16, 8>),
    (32, 10, dion_at_ranks::<32, 10>),
    (64, 10, dion_at_ranks::<64, 10>),
];

/// A setting averaged over [`SEEDS`].
#[derive(Clone, Copy, Debug)]
pub struct Score {
    /// Mean validation accuracy after the last epoch, or `None` if a seed diverged (a
    /// non-finite loss or a step error).
    pub accuracy: Option<f64>,
    /// Mean validation loss after the last epoch.
    pub loss: f64,
    /// Wall-clock seconds for all seeds.
    pub seconds: f64,
}

/// One learning rate of one optimizer.
#[derive(Clone, Copy, Debug)]
pub struct Trial {
    pub method: Method,
    pub lr: f32,
    pub score: Score,
}

/// Trains one setting from each of [`SEEDS`] and averages the final validation numbers.
fn score(
    build: impl Fn(u64) -> Result<Box<dyn Optimizer>, Error>,
    fit: &Dataset,
    validation: &Dataset,
) -> Score {
    let start = Instant::now();
    let train_one = |seed: u64| -> Option<(f64, f64)> {
        let mut run = Run::new(build(seed).ok()?, seed, fit, validation);
        let mut last = None;
        for _ in 0..EPOCHS {
            let stats = run.train_epoch(fit, validation).ok()?;
            if !stats.train_loss.is_finite() {
                return None;
            }
            last = Some((stats.test.accuracy, stats.test.loss));
        }
        last
    };
    let results: Option<Vec<(f64, f64)>> = SEEDS.iter().map(|&seed| train_one(seed)).collect();
    let n = SEEDS.len() as f64;
    Score {
        accuracy: results
            .as_ref()
            .map(|r| r.iter().map(|x| x.0).sum::<f64>() / n),
        loss: results
            .as_ref()
            .map_or(f64::NAN, |r| r.iter().map(|x| x.1).sum::<f64>() / n),
        seconds: start.elapsed().as_secs_f64(),
    }
}

/// Runs the learning-rate grids and the rank study, printing one progress line per setting
/// and then both tables.
pub fn run(train: &Dataset) {
    let validation_seed = Rng::for_stream(SEED, STREAM_VALIDATION).next_u64();
    let (fit, validation) = stratified_split(train, VALIDATION_FRACTION, validation_seed);
    println!(
        "sweep: fit on {} images, validate on {}, {EPOCHS} epochs, {} seeds per setting",
        fit.len(),
        validation.len(),
        SEEDS.len()
    );

    let total: usize = Method::ALL.iter().map(|&m| grid(m).len()).sum::<usize>() + RANKS.len();
    let mut done = 0;
    let mut progress = |label: String, score: &Score| {
        done += 1;
        println!("[{done:>2}/{total}] {label:<28} {}", format_score(score));
        let _ = std::io::stdout().flush();
    };

    let mut trials = Vec::new();
    for method in Method::ALL {
        for &lr in grid(method) {
            let score = score(|seed| method.build(lr, seed), &fit, &validation);
            progress(format!("{} lr {lr}", method.label()), &score);
            trials.push(Trial { method, lr, score });
        }
    }

    let mut ranks = Vec::new();
    for (rank_hidden, rank_output, build) in RANKS {
        let score = score(|seed| build(DION_LR, seed), &fit, &validation);
        progress(
            format!("dion lr {DION_LR} ranks {rank_hidden}/{rank_output}"),
            &score,
        );
        ranks.push((rank_hidden, rank_output, score));
    }

    print_lr_table(&trials);
    print_rank_table(&ranks);
    for method in Method::ALL {
        if let Some(best) = best(&trials, method) {
            println!(
                "{}: best lr {} (the example uses {})",
                method.label(),
                best.lr,
                method.chosen_lr()
            );
        }
    }
}

/// Returns the best trial of `method`: highest mean validation accuracy, then lowest mean loss.
///
/// Accuracies closer than 10⁻⁹ count as equal: the same number of correct images over the
/// seeds can round to different last bits when the per-seed fractions are summed.
pub fn best(trials: &[Trial], method: Method) -> Option<Trial> {
    let mut best: Option<Trial> = None;
    for trial in trials.iter().filter(|t| t.method == method) {
        let Some(accuracy) = trial.score.accuracy else {
            continue;
        };
        let better = match best {
            None => true,
            Some(b) => {
                let best_accuracy = b.score.accuracy.unwrap_or(0.0);
                accuracy > best_accuracy + 1e-9
                    || ((accuracy - best_accuracy).abs() <= 1e-9 && trial.score.loss < b.score.loss)
            }
        };
        if better {
            best = Some(*trial);
        }
    }
    best
}

/// Prints the learning-rate trials as a Markdown table, with the best rate of each optimizer in
/// bold.
fn print_lr_table(trials: &[Trial]) {
    println!();
    println!(
        "| optimizer | lr | validation accuracy (mean of {}) | validation loss | time (s) |",
        SEEDS.len()
    );
    println!("|---|---|---|---|---|");
    for trial in trials {
        let is_best = best(trials, trial.method).is_some_and(|b| b.lr == trial.lr);
        let lr = if is_best {
            format!("**{}**", trial.lr)
        } else {
            trial.lr.to_string()
        };
        println!(
            "| {} | {lr} | {} |",
            trial.method.label(),
            table_cells(&trial.score)
        );
    }
}

/// Prints the rank study as a Markdown table.
fn print_rank_table(ranks: &[(usize, usize, Score)]) {
    println!();
    println!(
        "| rank of W1 (64x64) | rank of W2 (10x64) | validation accuracy (mean of {}) | validation loss | time (s) |",
        SEEDS.len()
    );
    println!("|---|---|---|---|---|");
    for (rank_hidden, rank_output, score) in ranks {
        println!("| {rank_hidden} | {rank_output} | {} |", table_cells(score));
    }
    println!();
}

fn table_cells(score: &Score) -> String {
    let accuracy = score
        .accuracy
        .map_or("diverged".to_string(), |a| format!("{:.2}%", 100.0 * a));
    format!("{accuracy} | {:.4} | {:.2}", score.loss, score.seconds)
}

fn format_score(score: &Score) -> String {
    let accuracy = score
        .accuracy
        .map_or("diverged".to_string(), |a| format!("{:6.2}%", 100.0 * a));
    format!(
        "validation acc {accuracy}  validation loss {:.4}  {:.2} s",
        score.loss, score.seconds
    )
}

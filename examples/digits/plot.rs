//! The SVG figure: training loss and test accuracy against epochs, one line per optimizer.

use std::error::Error;
use std::path::Path;

use plotters::prelude::*;

use crate::train::EpochStats;

/// Width and height of the figure, in SVG pixels.
const SIZE: (u32, u32) = (960, 400);

/// One color per optimizer, in the order the runs are passed (Tableau 10 blue, orange, green).
const COLORS: [RGBColor; 3] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
];

/// Writes the figure for `runs` (name and per-epoch statistics) to `path` as SVG.
///
/// The loss panel starts at epoch 0 (the initial weights) on a logarithmic axis, because the
/// losses fall over three orders of magnitude. The accuracy panel starts at epoch 1: the initial
/// accuracy, near 10 %, would squeeze the later epochs into a flat line at the top.
pub fn write_svg(path: &Path, runs: &[(&str, &[EpochStats])]) -> Result<(), Box<dyn Error>> {
    let epochs = runs
        .iter()
        .filter_map(|(_, history)| history.last())
        .map(|s| s.epoch)
        .max()
        .unwrap_or(0)
        .max(1);
    let losses = runs
        .iter()
        .flat_map(|(_, history)| history.iter().map(|s| s.train_loss));
    let (loss_min, loss_max) = finite_range(losses).unwrap_or((1e-3, 1.0));
    let accuracies = runs
        .iter()
        .flat_map(|(_, history)| history.iter().skip(1).map(|s| 100.0 * s.test.accuracy));
    let accuracy_min = finite_range(accuracies).map_or(0.0, |(min, _)| min);
    // Round the lower accuracy bound down to a multiple of 5 so the axis starts on a tick.
    let accuracy_floor = ((accuracy_min / 5.0).floor() * 5.0).clamp(0.0, 95.0);

    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(SIZE.0 / 2);

    let mut loss_chart = ChartBuilder::on(&left)
        .caption(
            "training loss (cross-entropy, log scale)",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(
            0usize..epochs,
            (loss_min * 0.8..loss_max * 1.25).log_scale(),
        )?;
    loss_chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc("loss (nats)")
        .draw()?;

    let mut accuracy_chart = ChartBuilder::on(&right)
        .caption("test accuracy (from epoch 1)", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(1usize..epochs, accuracy_floor..100.0)?;
    accuracy_chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc("accuracy (%)")
        .draw()?;

    for (&(name, history), color) in runs.iter().zip(COLORS.iter().cycle()) {
        let style = color.stroke_width(2);
        loss_chart
            .draw_series(LineSeries::new(
                history.iter().map(|s| (s.epoch, s.train_loss)),
                style,
            ))?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
        accuracy_chart
            .draw_series(LineSeries::new(
                history
                    .iter()
                    .skip(1)
                    .map(|s| (s.epoch, 100.0 * s.test.accuracy)),
                style,
            ))?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
    }
    loss_chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    accuracy_chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Smallest and largest finite positive value, or `None` if there is none.
fn finite_range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold(None, |range, v| match range {
            None => Some((v, v)),
            Some((min, max)) => Some((min.min(v), max.max(v))),
        })
}

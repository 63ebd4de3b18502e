//! Tests of the `digits` example's data loader, split and network, which the example itself only
//! runs. The example's modules are compiled in here from their files.

#[allow(dead_code)]
#[path = "../examples/digits/data.rs"]
mod data;
#[allow(dead_code)]
#[path = "../examples/digits/mlp.rs"]
mod mlp;
#[allow(dead_code)]
#[path = "../examples/digits/rng.rs"]
mod rng;

use std::path::Path;

use dion_kernel::typed::Matrix;

use data::{load_gz, parse_csv, stratified_split, Dataset, CLASSES, PIXELS};
use mlp::{fill_batch, Mlp, Workspace};
use rng::Rng;

fn digits_path() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/data/digits.csv.gz"
    ))
}

#[test]
fn loader_reads_every_image() {
    let data = load_gz(digits_path()).expect("examples/data/digits.csv.gz is readable");
    assert_eq!(data.len(), 1797);
    assert_eq!(data.pixels.len(), 1797 * PIXELS);
    // Class sizes as stated in examples/data/README.md.
    for (class, &count) in data.class_counts().iter().enumerate() {
        assert!(
            (174..=183).contains(&count),
            "class {class} has {count} images"
        );
    }
    // The first line of the file, read with `zcat examples/data/digits.csv.gz | head -1`.
    assert_eq!(
        &data.image(0)[..16],
        &[0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0]
    );
    assert_eq!(data.labels[0], 0);
    assert_eq!(data.labels[1], 1);
}

#[test]
fn parser_rejects_bad_lines() {
    let good_pixels = vec!["0"; PIXELS].join(",");
    let cases = [
        (
            format!("{good_pixels},3\n{}", vec!["0"; PIXELS].join(",")),
            2,
            "fields",
        ),
        (format!("{good_pixels},10"), 1, "label is 10"),
        (
            format!("17,{},1", vec!["0"; PIXELS - 1].join(",")),
            1,
            "pixel 1 is 17",
        ),
        (format!("{good_pixels},1,2"), 1, "66 fields"),
        (
            format!("x,{},1", vec!["0"; PIXELS - 1].join(",")),
            1,
            "not an integer",
        ),
    ];
    for (text, line, fragment) in cases {
        let error = parse_csv(text.as_bytes()).expect_err(&text).to_string();
        assert!(
            error.contains(&format!("line {line}")),
            "{error:?} should name line {line}"
        );
        assert!(
            error.contains(fragment),
            "{error:?} should contain {fragment:?}"
        );
    }

    let ok = parse_csv(format!("{good_pixels},7\n\n{good_pixels},2\n").as_bytes()).unwrap();
    assert_eq!(ok.labels, [7, 2]);
}

/// 300 distinct images (pixel 0 and 1 encode the index), labels cycling 0..9.
fn distinct_images() -> Dataset {
    let mut data = Dataset::default();
    for i in 0..300u16 {
        let mut image = [0u8; PIXELS];
        image[0] = (i % 17) as u8;
        image[1] = (i / 17) as u8;
        data.pixels.extend_from_slice(&image);
        data.labels.push((i % 10) as u8);
    }
    data
}

fn image_ids(data: &Dataset) -> Vec<u16> {
    (0..data.len())
        .map(|i| u16::from(data.image(i)[0]) + 17 * u16::from(data.image(i)[1]))
        .collect()
}

#[test]
fn split_is_stratified_and_disjoint() {
    let data = distinct_images();
    let (train, test) = stratified_split(&data, 0.2, 7);

    // Each class has 30 images, so round(0.2 · 30) = 6 go to the test side.
    assert_eq!(test.class_counts(), [6; CLASSES]);
    assert_eq!(train.class_counts(), [24; CLASSES]);

    let mut ids: Vec<u16> = image_ids(&train)
        .into_iter()
        .chain(image_ids(&test))
        .collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        (0..300).collect::<Vec<u16>>(),
        "every image lands on exactly one side"
    );
}

#[test]
fn split_depends_only_on_seed() {
    let data = distinct_images();
    let first = stratified_split(&data, 0.2, 7);
    let again = stratified_split(&data, 0.2, 7);
    let other = stratified_split(&data, 0.2, 8);
    assert_eq!(first, again);
    assert_ne!(image_ids(&first.1), image_ids(&other.1));
}

#[test]
fn batch_scales_pixels_to_unit_interval() {
    let data = parse_csv(format!("16,8,{},4", vec!["0"; PIXELS - 2].join(",")).as_bytes()).unwrap();
    let mut x = Matrix::<f64, 2, PIXELS>::from_fn(|_, _| f64::NAN);
    let labels = fill_batch(&data, &[0], &mut x);
    assert_eq!(labels, [4]);
    assert_eq!(&x.row(0)[..3], &[1.0, 0.5, 0.0]);
    assert!(
        x.row(1).iter().all(|&v| v == 0.0),
        "the padding row is zeroed"
    );
}

#[test]
fn zero_model_loss_is_ln_10() {
    // All logits are equal, so the softmax is uniform: loss ln 10 for every image, and the
    // first class wins every tie, so only the images of digit 0 count as correct.
    let data = load_gz(digits_path()).unwrap();
    let model = Mlp::<f64, 8>::zeros();
    let evaluation = model.evaluate(&data, &mut Workspace::<f64, 32, 8>::default());
    assert!(
        (evaluation.loss - 10f64.ln()).abs() < 1e-12,
        "loss {}",
        evaluation.loss
    );
    let zeros = data.class_counts()[0] as f64 / data.len() as f64;
    assert_eq!(evaluation.accuracy, zeros);
}

/// Small model, batch of 4 with 3 real images and one padding row, all parameters random.
const H: usize = 5;
const B: usize = 4;

fn random_problem(seed: u64) -> (Mlp<f64, H>, Matrix<f64, B, PIXELS>, [u8; 3]) {
    let mut rng = Rng::new(seed);
    let mut model = Mlp::<f64, H>::init(&mut rng);
    for b in model.b1.iter_mut().chain(model.b2.iter_mut()) {
        *b = rng.uniform_symmetric(0.5);
    }
    let mut x = Matrix::<f64, B, PIXELS>::from_fn(|_, _| rng.next_f64());
    x.rows_mut()[B - 1] = [0.0; PIXELS];
    (model, x, [3, 0, 9])
}

#[test]
fn gradient_matches_finite_differences() {
    let (model, x, labels) = random_problem(11);
    let mut ws = Workspace::<f64, B, H>::default();
    let mut grads = Mlp::<f64, H>::zeros();
    model.loss_and_gradient(&x, &labels, &mut ws, &mut grads);

    // Central differences with step h. A step of h in one entry of W1 or b1 moves a hidden
    // pre-activation by at most h, because inputs are in [0, 1]. W2 and b2 do not move them.
    // So if no real row has a pre-activation within `margin` of the ReLU kink, none crosses it.
    let h = 1e-6;
    let margin = (0..labels.len())
        .flat_map(|i| ws.z1.row(i).iter().map(|z| z.abs()))
        .fold(f64::INFINITY, f64::min);
    assert!(
        margin > 100.0 * h,
        "seed puts a pre-activation {margin} next to the kink"
    );

    // Error of the difference quotient: rounding of the two losses (each about 2.3, computed
    // with 64-term sums, so about 64 · 2.3 · 2⁻⁵³ ≈ 2e-14) divided by 2h gives ≈ 1e-8, and the
    // truncation term h²/6 · |L'''| is below 1e-12; 1e-7 leaves a factor 10 of headroom.
    let tolerance = |analytic: f64| 1e-7 + 1e-6 * analytic.abs();
    let loss_at = |model: &Mlp<f64, H>| {
        let mut scratch_ws = Workspace::<f64, B, H>::default();
        let mut scratch_grads = Mlp::<f64, H>::zeros();
        model.loss_and_gradient(&x, &labels, &mut scratch_ws, &mut scratch_grads)
    };

    let names = ["W1", "b1", "W2", "b2"];
    for (block, name) in names.iter().enumerate() {
        let len = model.blocks()[block].len();
        for k in 0..len {
            let mut plus = model.clone();
            plus.blocks_mut()[block][k] += h;
            let mut minus = model.clone();
            minus.blocks_mut()[block][k] -= h;
            let numeric = (loss_at(&plus) - loss_at(&minus)) / (2.0 * h);
            let analytic = grads.blocks()[block][k];
            assert!(
                (numeric - analytic).abs() <= tolerance(analytic),
                "{name}[{k}]: backward {analytic:e}, finite difference {numeric:e}"
            );
        }
    }
}

#[test]
fn padding_row_changes_nothing() {
    // Padding rows get a zero output gradient, so the products only add exact zeros: the padded
    // batch must give the same bits as the batch of the 3 real rows alone.
    let (model, x, labels) = random_problem(12);
    let mut padded = Mlp::<f64, H>::zeros();
    let padded_loss = model.loss_and_gradient(
        &x,
        &labels,
        &mut Workspace::<f64, B, H>::default(),
        &mut padded,
    );

    let x3 = Matrix::<f64, 3, PIXELS>::from_fn(|i, j| x.get(i, j));
    let mut exact = Mlp::<f64, H>::zeros();
    let exact_loss = model.loss_and_gradient(
        &x3,
        &labels,
        &mut Workspace::<f64, 3, H>::default(),
        &mut exact,
    );

    assert_eq!(padded_loss, exact_loss);
    assert_eq!(padded, exact);
}

#[test]
fn plain_sgd_learns_the_digits() {
    // The network and loss without any of the crate's optimizers: 5 epochs of plain SGD
    // (lr 0.5, batch 32) on the example's data. An untrained model scores about 10 %, and so
    // does one trained with the sign of the output gradient flipped.
    let data = load_gz(digits_path()).unwrap();
    let (train, test) = stratified_split(&data, 0.2, 1);
    let mut rng = Rng::new(2);
    let mut model = Mlp::<f32, 32>::init(&mut rng);
    let mut grads = Mlp::<f32, 32>::zeros();
    let mut ws = Workspace::<f32, 32, 32>::default();
    let mut x = Matrix::<f32, 32, PIXELS>::zeros();
    let mut order: Vec<usize> = (0..train.len()).collect();
    for _ in 0..5 {
        rng.shuffle(&mut order);
        for chunk in order.chunks(32) {
            let labels = fill_batch(&train, chunk, &mut x);
            model.loss_and_gradient(&x, &labels, &mut ws, &mut grads);
            for (params, grad) in model.blocks_mut().into_iter().zip(grads.blocks()) {
                for (p, g) in params.iter_mut().zip(grad) {
                    *p -= 0.5 * g;
                }
            }
        }
    }
    let accuracy = model.evaluate(&test, &mut ws).accuracy;
    assert!(accuracy > 0.9, "test accuracy {accuracy}");
}

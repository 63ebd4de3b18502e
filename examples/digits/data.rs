//! Reading the 8×8 digits CSV and splitting it into seeded, stratified train and test sets.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

use crate::rng::Rng;

/// Pixels per image (8 × 8).
pub const PIXELS: usize = 64;
/// Number of classes (digits 0–9).
pub const CLASSES: usize = 10;
/// Largest pixel value: each pixel counts the set bits of a 4×4 block.
pub const MAX_PIXEL: u8 = 16;

/// Labelled images: `pixels[PIXELS·i .. PIXELS·(i+1)]` is image `i` row by row, `labels[i]` its digit.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dataset {
    pub pixels: Vec<u8>,
    pub labels: Vec<u8>,
}

impl Dataset {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// `true` if there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Returns the 64 raw pixel values (0..=16) of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        &self.pixels[PIXELS * i..PIXELS * (i + 1)]
    }

    /// Number of images of each class.
    pub fn class_counts(&self) -> [usize; CLASSES] {
        let mut counts = [0; CLASSES];
        for &label in &self.labels {
            counts[usize::from(label)] += 1;
        }
        counts
    }

    /// Copies the images at `indices`, in that order, into a new data set.
    pub fn select(&self, indices: &[usize]) -> Dataset {
        let mut out = Dataset {
            pixels: Vec::with_capacity(indices.len() * PIXELS),
            labels: Vec::with_capacity(indices.len()),
        };
        for &i in indices {
            out.pixels.extend_from_slice(self.image(i));
            out.labels.push(self.labels[i]);
        }
        out
    }
}

/// An error from reading or parsing the data file.
#[derive(Debug)]
pub enum LoadError {
    /// The file could not be opened or decompressed.
    Io { path: PathBuf, source: io::Error },
    /// A line is not 64 pixels in 0..=16 followed by a label in 0..=9.
    Parse { line: usize, message: String },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Io { path, source } => {
                write!(f, "failed to read {}: {source}", path.display())
            }
            LoadError::Parse { line, message } => {
                write!(f, "invalid data on line {line}: {message}")
            }
        }
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LoadError::Io { source, .. } => Some(source),
            LoadError::Parse { .. } => None,
        }
    }
}

/// Reads the gzip-compressed CSV at `path` (see `examples/data/README.md` for the format).
pub fn load_gz(path: &Path) -> Result<Dataset, LoadError> {
    let io_error = |source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_error)?;
    parse_csv(BufReader::new(GzDecoder::new(file))).map_err(|error| match error {
        LoadError::Io { source, .. } => io_error(source),
        parse => parse,
    })
}

/// Parses CSV lines of 64 pixel values in 0..=16 and a label in 0..=9; blank lines are skipped.
pub fn parse_csv(reader: impl Read) -> Result<Dataset, LoadError> {
    let mut data = Dataset::default();
    for (index, line) in BufReader::new(reader).lines().enumerate() {
        let line_number = index + 1;
        let line = line.map_err(|source| LoadError::Io {
            path: PathBuf::new(),
            source,
        })?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let parse_error = |message: String| LoadError::Parse {
            line: line_number,
            message,
        };

        let mut fields = 0;
        for (column, field) in line.split(',').enumerate() {
            fields += 1;
            if column > PIXELS {
                continue;
            }
            let value: u8 = field.trim().parse().map_err(|_| {
                parse_error(format!(
                    "field {} is {field:?}, not an integer in 0..=255",
                    column + 1
                ))
            })?;
            if column < PIXELS {
                if value > MAX_PIXEL {
                    return Err(parse_error(format!(
                        "pixel {} is {value}, expected 0..={MAX_PIXEL}",
                        column + 1
                    )));
                }
                data.pixels.push(value);
            } else if usize::from(value) >= CLASSES {
                return Err(parse_error(format!(
                    "label is {value}, expected 0..={}",
                    CLASSES - 1
                )));
            } else {
                data.labels.push(value);
            }
        }
        if fields != PIXELS + 1 {
            return Err(parse_error(format!(
                "{fields} fields, expected {}",
                PIXELS + 1
            )));
        }
    }
    Ok(data)
}

/// Splits `data` into `(train, held_out)` with `round(fraction · n_c)` images of each class `c`
/// held out, chosen by a seeded shuffle. Both parts come back in a seeded random order.
///
/// # Panics
/// If `fraction` is not in `[0, 1]`.
pub fn stratified_split(data: &Dataset, fraction: f64, seed: u64) -> (Dataset, Dataset) {
    assert!(
        (0.0..=1.0).contains(&fraction),
        "held-out fraction {fraction} is not in [0, 1]"
    );
    let mut rng = Rng::new(seed);
    let mut train = Vec::new();
    let mut held_out = Vec::new();
    for class in 0..CLASSES as u8 {
        let mut members: Vec<usize> = (0..data.len())
            .filter(|&i| data.labels[i] == class)
            .collect();
        rng.shuffle(&mut members);
        let n_held_out = (fraction * members.len() as f64).round() as usize;
        held_out.extend_from_slice(&members[..n_held_out]);
        train.extend_from_slice(&members[n_held_out..]);
    }
    rng.shuffle(&mut train);
    rng.shuffle(&mut held_out);
    (data.select(&train), data.select(&held_out))
}

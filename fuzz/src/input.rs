//! Decoding fuzzer bytes into shapes, hyperparameters and matrices.
//!
//! The format is plain bytes read front to back (see `fuzz/README.md`), so seed files can be
//! written by hand or by `make_seeds.py`. Past the end of the input, [`Reader`] continues with a
//! SplitMix64 stream seeded by a hash of the whole input. Every byte sequence therefore decodes,
//! and a short input can still describe a large matrix with non-trivial values.

use dion_kernel::Scalar;

/// A cursor over the fuzzer's bytes.
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    tail_state: u64,
}

impl<'a> Reader<'a> {
    /// Starts at the first byte of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        // FNV-1a of the input seeds the tail stream.
        let mut hash = 0xcbf2_9ce4_8422_2325u64;
        for &byte in data {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Self {
            data,
            pos: 0,
            tail_state: hash,
        }
    }

    /// Returns the next byte, or past the end of the input the next byte of the tail stream.
    pub fn byte(&mut self) -> u8 {
        if let Some(&byte) = self.data.get(self.pos) {
            self.pos += 1;
            return byte;
        }
        // SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number generators",
        // OOPSLA 2014).
        self.tail_state = self.tail_state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.tail_state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) as u8
    }

    /// Reads the next two bytes as a little-endian integer.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    /// Reads the next four bytes as a little-endian integer.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    /// Reads the next eight bytes as a little-endian integer.
    pub fn u64(&mut self) -> u64 {
        let low = u64::from(self.u32());
        let high = u64::from(self.u32());
        low | (high << 32)
    }

    /// Returns a value in `0..n` (`n ≥ 1`) read from one byte when `n ≤ 256`, two otherwise.
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n >= 1, "below(0) has no valid value");
        if n <= 256 {
            usize::from(self.byte()) % n
        } else {
            usize::from(self.u16()) % n
        }
    }
}

/// `f32` or `f64`, with what the decoders and the tolerances need beyond [`Scalar`].
pub trait Float: Scalar + core::fmt::LowerExp {
    /// Name used in messages.
    const NAME: &'static str;
    /// Spacing of the subnormal numbers, `2^-149` or `2^-1074`: the largest absolute error of
    /// one rounding that underflows is half of it.
    const SUBNORMAL_STEP: f64;

    /// Reads a value as raw bits, so every pattern occurs, NaN and subnormals included.
    fn from_raw(reader: &mut Reader<'_>) -> Self;

    /// Returns the raw bits, for bit-exact comparisons.
    fn bits(self) -> u64 {
        self.to_bits_u64()
    }

    /// Smallest positive subnormal value.
    fn smallest_subnormal() -> Self;

    /// Largest subnormal value.
    fn largest_subnormal() -> Self;

    /// A quiet NaN whose payload marks memory the kernels must not write or read.
    fn sentinel() -> Self;
}

impl Float for f32 {
    const NAME: &'static str = "f32";
    const SUBNORMAL_STEP: f64 = f64::from_bits((1023 - 149) << 52); // 2^-149

    fn from_raw(reader: &mut Reader<'_>) -> Self {
        f32::from_bits(reader.u32())
    }

    fn smallest_subnormal() -> Self {
        f32::from_bits(1)
    }

    fn largest_subnormal() -> Self {
        f32::from_bits(0x007f_ffff)
    }

    fn sentinel() -> Self {
        f32::from_bits(0x7fc0_dead)
    }
}

impl Float for f64 {
    const NAME: &'static str = "f64";
    const SUBNORMAL_STEP: f64 = f64::from_bits(1); // 2^-1074

    fn from_raw(reader: &mut Reader<'_>) -> Self {
        f64::from_bits(reader.u64())
    }

    fn smallest_subnormal() -> Self {
        f64::from_bits(1)
    }

    fn largest_subnormal() -> Self {
        f64::from_bits(0x000f_ffff_ffff_ffff)
    }

    fn sentinel() -> Self {
        f64::from_bits(0x7ff8_0000_0000_dead)
    }
}

/// Number of entries of [`special`].
pub const SPECIAL_COUNT: usize = 24;

/// Edge values: zeros of both signs, the extremes of the format, subnormals, NaN, infinities.
pub fn special<T: Float>(index: usize) -> T {
    let max = T::MAX;
    match index % SPECIAL_COUNT {
        0 => T::ZERO,
        1 => -T::ZERO,
        2 => T::ONE,
        3 => -T::ONE,
        4 => T::from_f64(0.5),
        5 => T::from_f64(3.0),
        6 => max,
        7 => -max,
        8 => T::MIN_POSITIVE,
        9 => T::smallest_subnormal(),
        10 => -T::smallest_subnormal(),
        11 => T::largest_subnormal(),
        12 => T::from_f64(f64::NAN),
        13 => T::from_f64(-f64::NAN),
        14 => T::from_f64(f64::INFINITY),
        15 => T::from_f64(f64::NEG_INFINITY),
        16 => T::from_f64(1e20),
        17 => T::from_f64(-1e20),
        18 => T::from_f64(1e-20),
        19 => max.sqrt(),
        20 => max / T::from_f64(4.0),
        21 => T::EPSILON,
        22 => T::ONE + T::EPSILON,
        _ => T::from_f64(-7.0),
    }
}

/// `m · 2^e` for an integer mantissa, rounded once to `T` (overflow gives ±∞, underflow a
/// subnormal or zero).
fn scaled_integer<T: Float>(mantissa: i64, exponent: i32) -> T {
    T::from_f64(mantissa as f64 * 2f64.powi(exponent))
}

/// Decodes a dense row-major `rows × cols` matrix in one of several value families, chosen by
/// the first byte:
///
/// - raw bit patterns (NaN, ±∞, subnormals and all);
/// - 16-bit integers times one power of two in `[-35, 5]`: finite, moderate;
/// - 16-bit integers times a power of two anywhere in the exponent range: huge or tiny;
/// - edge values from [`special`];
/// - zeros;
/// - an exact low-rank matrix `U·V` of small integers (`|uᵢ|, |vᵢ| ≤ 4`, inner rank 1 to 3),
///   each column scaled by its own power of two, so its rank is known exactly;
///
/// then up to two entries replaced by edge values.
pub fn matrix<T: Float>(reader: &mut Reader<'_>, rows: usize, cols: usize) -> Vec<T> {
    let len = rows * cols;
    let mode = reader.byte();
    let mut values: Vec<T> = match mode % 8 {
        0 | 1 => (0..len).map(|_| T::from_raw(reader)).collect(),
        2 => {
            let exponent = i32::from(reader.byte() % 41) - 35;
            (0..len)
                .map(|_| scaled_integer(i64::from(reader.u16() as i16), exponent - 15))
                .collect()
        }
        3 => {
            let range = 2 * T::MAX_EXP2 as u16 + 40;
            let exponent = i32::from(reader.u16() % range) - T::MAX_EXP2 - 40;
            (0..len)
                .map(|_| scaled_integer(i64::from(reader.u16() as i16), exponent - 15))
                .collect()
        }
        4 => (0..len)
            .map(|_| special(reader.below(SPECIAL_COUNT)))
            .collect(),
        5 => vec![T::ZERO; len],
        _ => low_rank(reader, rows, cols),
    };

    let injections = match reader.byte() {
        0..=31 => 1,
        32..=39 => 2,
        _ => 0,
    };
    if len > 0 {
        for _ in 0..injections {
            let index = reader.below(len);
            values[index] = special(reader.below(SPECIAL_COUNT));
        }
    }
    values
}

/// `U·V` with small integer factors and a power-of-two scale per column; every entry is exact.
fn low_rank<T: Float>(reader: &mut Reader<'_>, rows: usize, cols: usize) -> Vec<T> {
    let inner = 1 + reader.below(3);
    let small = |reader: &mut Reader<'_>| i64::from(reader.byte() % 9) - 4;
    let u: Vec<i64> = (0..rows * inner).map(|_| small(reader)).collect();
    let v: Vec<i64> = (0..inner * cols).map(|_| small(reader)).collect();
    let column_exponents: Vec<i32> = (0..cols)
        .map(|_| i32::from(reader.byte() % 41) - 20)
        .collect();
    let mut values = Vec::with_capacity(rows * cols);
    for i in 0..rows {
        for (j, &exponent) in column_exponents.iter().enumerate() {
            let entry: i64 = (0..inner).map(|q| u[i * inner + q] * v[q * cols + j]).sum();
            values.push(scaled_integer(entry, exponent));
        }
    }
    values
}

/// Decodes a hyperparameter: mostly a value from `table`, sometimes an edge value or raw bits.
pub fn hyperparameter<T: Float>(reader: &mut Reader<'_>, table: &[f64]) -> T {
    let selector = reader.byte();
    match selector {
        0..=0xbf => T::from_f64(table[usize::from(selector) % table.len()]),
        0xc0..=0xef => special(usize::from(selector)),
        _ => T::from_raw(reader),
    }
}

/// Decodes a row stride for a matrix with `ncols` columns: mostly dense, sometimes padded by 1
/// to 4.
pub fn row_stride(reader: &mut Reader<'_>, ncols: usize) -> usize {
    let selector = reader.byte();
    if selector < 160 {
        ncols
    } else {
        ncols + 1 + usize::from(selector % 4)
    }
}

/// Elements a strided `nrows × ncols` matrix needs: `(nrows − 1)·stride + ncols`, 0 if empty.
pub fn strided_len(nrows: usize, ncols: usize, stride: usize) -> usize {
    if nrows == 0 || ncols == 0 {
        0
    } else {
        (nrows - 1) * stride + ncols
    }
}

/// Copies the dense `values` into a strided buffer whose padding contains [`Float::sentinel`].
pub fn to_strided<T: Float>(values: &[T], nrows: usize, ncols: usize, stride: usize) -> Vec<T> {
    let mut buffer = vec![T::sentinel(); strided_len(nrows, ncols, stride)];
    if buffer.is_empty() {
        return buffer;
    }
    for i in 0..nrows {
        buffer[i * stride..i * stride + ncols].copy_from_slice(&values[i * ncols..(i + 1) * ncols]);
    }
    buffer
}

/// Copies the dense `nrows × ncols` matrix out of a strided buffer.
pub fn from_strided<T: Float>(buffer: &[T], nrows: usize, ncols: usize, stride: usize) -> Vec<T> {
    let mut values = Vec::with_capacity(nrows * ncols);
    if ncols == 0 {
        return values;
    }
    for i in 0..nrows {
        values.extend_from_slice(&buffer[i * stride..i * stride + ncols]);
    }
    values
}

/// `true` if `index` of a strided buffer is padding (not part of any row).
pub fn is_padding(index: usize, ncols: usize, stride: usize) -> bool {
    index % stride >= ncols
}

//! `qr_in_place` (modified Gram-Schmidt) on fuzzer-chosen `n × k` inputs, f32 and f64.
//!
//! - Non-finite input: `NonFinite` naming the first bad entry in row-major order; `A` and `R`
//!   untouched. Wrong shapes: `ShapeMismatch`, nothing written.
//! - Finite input: `Q` finite with orthonormal columns, `R` upper triangular with a
//!   non-negative diagonal, and `Q·R ≈ A` column by column. The rank agrees with `R` and with
//!   the input's conditioning (see `qr_check`). Padding is never written, and `Q` and the rank
//!   are the same whether or not `R` is requested.
#![no_main]

use dion_kernel::engine::{qr_in_place, MatMut, QrOptions};
use dion_kernel::{Error, Operand};
use dion_kernel_fuzz::input::{
    from_strided, is_padding, matrix, row_stride, to_strided, Float, Reader,
};
use dion_kernel_fuzz::qr_check::check_qr;
use dion_kernel_fuzz::stats_enabled;
use dion_kernel_fuzz::step_check::assert_same_bits;
use libfuzzer_sys::fuzz_target;

fn run<T: Float>(reader: &mut Reader<'_>) {
    let n = reader.below(33);
    // k = n + 1 is a wide matrix, which the QR rejects.
    let k = reader.below(n + 2);
    let stride = row_stride(reader, k);
    let reorthogonalize = reader.byte() < 224;
    let r_selector = reader.byte();
    // (rows, cols) of the R buffer, if one is passed: mostly k × k, sometimes a wrong shape.
    let r_shape = match r_selector {
        0..=191 => Some((k, k)),
        192..=223 => None,
        _ => Some((k + 1, k)),
    };

    let values = matrix::<T>(reader, n, k);
    let mut a_buffer = to_strided(&values, n, k, stride);
    let a_before = a_buffer.clone();
    let mut r_buffer = r_shape.map(|(rows, cols)| vec![T::sentinel(); rows * cols]);
    let r_before = r_buffer.clone();
    let options = QrOptions { reorthogonalize };

    let a_view =
        MatMut::from_slice_with_stride(&mut a_buffer, n, k, stride).expect("sized for the shape");
    let r_view = match (&mut r_buffer, r_shape) {
        (Some(buffer), Some((rows, cols))) => {
            Some(MatMut::from_slice(buffer, rows, cols).expect("sized"))
        }
        _ => None,
    };
    let result = qr_in_place(a_view, r_view, options);

    let first_bad = values.iter().position(|v| !v.is_finite());
    let shape_ok = k <= n && r_shape.is_none_or(|shape| shape == (k, k));
    let info = match result {
        Err(error) => {
            assert_same_bits("A", &a_before, &a_buffer);
            if let (Some(before), Some(after)) = (&r_before, &r_buffer) {
                assert_same_bits("R", before, after);
            }
            if !shape_ok {
                assert!(
                    matches!(error, Error::ShapeMismatch { .. }),
                    "{n}×{k}, R {r_shape:?}: {error}"
                );
                return;
            }
            let index =
                first_bad.unwrap_or_else(|| panic!("{n}×{k} finite input rejected: {error}"));
            assert_eq!(
                error,
                Error::NonFinite {
                    operand: Operand::A,
                    row: index / k,
                    col: index % k
                }
            );
            return;
        }
        Ok(info) => info,
    };
    assert!(shape_ok, "{n}×{k} with R {r_shape:?} was accepted");
    assert!(first_bad.is_none(), "a non-finite input was accepted");

    for (index, (before, after)) in a_before.iter().zip(&a_buffer).enumerate() {
        if is_padding(index, k, stride) {
            assert!(
                before.bits() == after.bits(),
                "padding A[{index}] was written"
            );
        }
    }

    let q = from_strided(&a_buffer, n, k, stride);
    let measure = check_qr(
        &values,
        n,
        k,
        &q,
        r_buffer.as_deref(),
        info.rank,
        reorthogonalize,
    );

    // The same Q and rank without R.
    if r_buffer.is_some() {
        let mut again = values.clone();
        let view = MatMut::from_slice(&mut again, n, k).expect("dense");
        let info_again = qr_in_place(view, None, options).expect("the same input succeeded with R");
        assert_eq!(
            info_again.rank, info.rank,
            "the rank depends on whether R is requested"
        );
        assert_same_bits("Q without R", &q, &again);
    }

    if stats_enabled() {
        eprintln!(
            "qr-stats {} n={n} k={k} reorth={} rank={} ortho={:.4} backward={:.4} sigma_min={:e} dependent={} kept_dependent={:.4}",
            T::NAME,
            reorthogonalize as u8,
            info.rank,
            measure.orthonormality,
            measure.backward,
            measure.sigma_min.unwrap_or(f64::NAN),
            measure.dependent_columns,
            measure.kept_dependent,
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let mut reader = Reader::new(data);
    if reader.byte() & 1 == 0 {
        run::<f32>(&mut reader);
    } else {
        run::<f64>(&mut reader);
    }
});

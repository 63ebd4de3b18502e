#!/usr/bin/env python3
"""Write the committed seed corpora, fuzz/corpus/<target>/seed-*, in the byte format that
fuzz/src/input.rs decodes (see fuzz/README.md).

Usage: python3 fuzz/make_seeds.py   (from any directory; overwrites the seed-* files)

The steps and phased seeds encode the bad-input catalogue of the crate's tests (tests/bad_inputs.rs):
u = [1, 2, 2, 4], v = [2, 1, 2], u vᵀ = [[2, 1, 2], [4, 2, 4], [4, 2, 4], [8, 4, 8]].
"""

import math
import pathlib
import random
import struct

CORPUS = pathlib.Path(__file__).resolve().parent / "corpus"

# Matrix families: the first byte of a matrix, see input::matrix.
RAW, BOUNDED, WIDE, SPECIAL, ZERO, LOW_RANK = 0, 2, 3, 4, 5, 6
NO_INJECTION = 0xFF
EXACT_LENGTHS = 0xFF
FITS = 0xFF
DENSE = 0

# The large inner dimensions of the kernels target, picked by a byte from 224 on.
LARGE_K = [127, 128, 129, 255, 256, 257, 511, 512, 513, 1023, 1024, 1025]

U = [1.0, 2.0, 2.0, 4.0]
V = [2.0, 1.0, 2.0]
U_VT = [u * v for u in U for v in V]


def raw_f32(values):
    """Encode f32 values as a RAW matrix without injections."""
    out = bytes([RAW])
    for value in values:
        out += struct.pack("<f", value)
    return out + bytes([NO_INJECTION])


def raw_f64(values):
    out = bytes([RAW])
    for value in values:
        out += struct.pack("<d", value)
    return out + bytes([NO_INJECTION])


def zero():
    return bytes([ZERO, NO_INJECTION])


def bounded(count, exponent, rng):
    """BOUNDED family: 16-bit integers times 2^(exponent − 15), exponent in [-35, 5]."""
    out = bytes([BOUNDED, exponent + 35])
    for _ in range(count):
        out += struct.pack("<h", rng.randint(-32768, 32767))
    return out + bytes([NO_INJECTION])


def write(target, name, data):
    directory = CORPUS / target
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"seed-{name}").write_bytes(data)


def kernels(rng):
    # selector: op = byte % 3 (0 matmul, 1 matmul_tn, 2 rank_update), bit 7 selects f64.
    # Dimensions: a byte below 224 is byte % 21; bytes from 224 pick the large sizes.
    def matmul(op, m, n, k_byte, alpha_index=0, stride=DENSE, f64=False):
        selector = op | (0x80 if f64 else 0)
        k = k_byte if k_byte < 224 else LARGE_K[k_byte % len(LARGE_K)]
        a_rows, a_cols = ((k, m) if op == 1 else (m, k))
        b_rows, b_cols = ((n, k) if op == 2 else (k, n))
        out = bytes([selector, m, n, k_byte, FITS])
        out += bytes([stride]) + bounded(a_rows * a_cols, 0, rng)
        out += bytes([stride]) + bounded(b_rows * b_cols, 0, rng)
        out += bytes([stride])
        if op == 2:
            out += bounded(m * n, 0, rng)
        return out + bytes([alpha_index])

    write("kernels", "matmul-4x5x17", matmul(0, 4, 17, 5))
    write("kernels", "matmul-tn-5x3x9-strided", matmul(1, 5, 9, 3, stride=161))
    write("kernels", "rank-update-9x6x4", matmul(2, 9, 6, 4, alpha_index=3))
    # k = 0 with padded rows: the empty operands still have a row stride.
    write("kernels", "rank-update-k0-strided", matmul(2, 3, 5, 0, stride=161))
    # 233 % 12 = 5 picks k = 257 from the large list: one packed block of 256 plus one index.
    write("kernels", "matmul-1x2-k257", matmul(0, 1, 2, 233))
    write("kernels", "matmul-f64-specials", bytes([0x80, 2, 2, 2, FITS, 0, SPECIAL]) + bytes(range(12, 16)) + bytes([NO_INJECTION, 0, SPECIAL]) + bytes([2, 6, 9, 14, NO_INJECTION, 0, 0]))


def qr(rng):
    # byte 0: even for f32, odd for f64; then n = byte % 33, k = byte % (n + 2), stride,
    # reorthogonalize (byte < 224), R selector (byte < 192: R of shape k × k).
    def header(f64, n, k, reorthogonalize=True, r=0):
        return bytes([1 if f64 else 0, n, k, DENSE, 0 if reorthogonalize else 0xFF, r])

    # The catalogue's QR case: [[1, 1], [1, 1]].
    write("qr", "equal-columns-2x2", header(False, 2, 2) + raw_f32([1.0, 1.0, 1.0, 1.0]))
    # The 10 × 10 matrix of the regression test for the blocked second sweep.
    a = [0.0] * 100
    for (i, j, value) in [(0, 0, -8.0), (8, 0, 1.0), (7, 1, 1.0), (9, 7, -1.0), (8, 8, -1.0), (0, 9, 1.0), (6, 9, -(2.0**-14))]:
        a[i * 10 + j] = value
    write("qr", "block-sweep-10x10", header(False, 10, 10) + raw_f32(a))
    write("qr", "low-rank-8x6", header(False, 8, 6) + bytes([LOW_RANK]))
    write("qr", "bounded-f64-32x32", header(True, 32, 32) + bounded(32 * 32, 0, rng))
    write("qr", "one-sweep-12x7", header(False, 12, 7, reorthogonalize=False) + bounded(84, -20, rng))
    write("qr", "wide-rejected-3x4", header(False, 3, 4) + bounded(12, 0, rng))
    write("qr", "nan-rejected-3x2", header(False, 3, 2) + raw_f32([1.0, 2.0, 3.0, float("nan"), 5.0, 6.0]))


def dion_header(kind, rows, cols, rank, lr=0, momentum=0, weight_decay=0, epsilon=0):
    """Method byte (0 Dion f32, 2 PowerSGD f32), shape and config for the steps target.

    Table indices: lr [0.01, 0.1, 0.001, 0, 1, 0.02, 10, 1e6]; momentum [0.95, 0.9, 0, 0.5, 0.99,
    0.999999]; weight_decay [0, 0.01, 0.1, 1]; epsilon [1e-8, 1e-30, 1e-3, 1].
    """
    out = bytes([kind, 0, rows, cols, rank, lr])
    if kind in (0, 1):
        out += bytes([momentum, weight_decay, epsilon])
    else:
        out += bytes([weight_decay])
    # power_iters = 1, reorthogonalize, exact buffer lengths.
    return out + bytes([0, 0, EXACT_LENGTHS])


def steps(rng):
    x1 = [float(v) for v in range(1, 13)]
    q_two = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0]

    # Case 1: a zero gradient, then u vᵀ (two steps).
    case1 = dion_header(0, 4, 3, 2) + raw_f32(x1) + zero() + raw_f32(q_two) + bytes([1]) + zero() + raw_f32(U_VT)
    write("steps", "dion-zero-then-rank-one", case1)
    write("steps", "powersgd-zero-then-rank-one", bytes([2]) + case1[1:5] + bytes([0, 0, 0, 0, EXACT_LENGTHS]) + case1[12:])

    # Case 2: G = 1e20·u vᵀ, rank 1.
    case2 = dion_header(0, 4, 3, 1) + zero() + zero() + raw_f32([1.0, 0.0, 0.0]) + bytes([0]) + raw_f32([1e20 * v for v in U_VT])
    write("steps", "dion-huge-rank-one", case2)

    # Case 4: a NaN, then an infinity, in the gradient (default weight decay 0.01).
    identity = [1.0 if i == j else 0.0 for i in range(3) for j in range(3)]
    for name, bad in [("nan", float("nan")), ("inf", float("inf"))]:
        grad = [1.0, bad, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        data = dion_header(0, 3, 3, 1, weight_decay=1) + raw_f32(identity) + raw_f32([0.1 * v for v in identity])
        data += raw_f32([1.0, 0.0, 0.0]) + bytes([0]) + raw_f32(grad)
        write("steps", f"dion-{name}-gradient", data)

    # Case 5: a gradient orthogonal to the warm start, three steps.
    case5 = dion_header(0, 2, 2, 1, lr=1) + zero() + zero() + raw_f32([1.0, 0.0]) + bytes([2])
    case5 += raw_f32([0.0, 1.0, 0.0, 0.0]) * 3
    write("steps", "dion-orthogonal-warm-start", case5)

    # Case 6: a 1 × 4 parameter (transposed rule), lr = 0.1, momentum = 0.9.
    case6 = dion_header(0, 1, 4, 1, lr=1, momentum=1) + zero() + zero() + raw_f32([1.0]) + bytes([0]) + raw_f32([1.0, 2.0, 2.0, 4.0])
    write("steps", "dion-one-by-four", case6)

    # f64 Dion on bounded values, 9 × 13 at rank 4, two steps.
    f64_case = bytes([1, 0, 9, 13, 4, 0, 0, 0, 0, 0, 0, EXACT_LENGTHS])
    f64_case += bounded(117, 0, rng) + bounded(117, -4, rng) + bounded(36, 0, rng) + bytes([1])
    f64_case += bounded(117, 0, rng) + bounded(117, 0, rng)
    write("steps", "dion-f64-bounded-9x13", f64_case)

    # Dimensions that overflow usize: 2^32 × 2^32 (the shape must be rejected).
    write("steps", "huge-shape", bytes([0, 0xFC, 2, 32, 2, 32, 3, 1, 4, 4, 4, 4, 4, 4]))

    # AdamW and Lion: lr 0.01, beta1 0.9, beta2 0.95, epsilon 1e-8, weight decay 0.01; length 5,
    # two steps, t = 1, exact lengths.
    vector = bytes([0, 0, 1, 0, 1, 5, 1, 1, EXACT_LENGTHS])
    vector += bounded(5, 0, rng) + zero() + zero() + bounded(5, 0, rng) + bounded(5, 0, rng)
    write("steps", "adamw-f32", bytes([4]) + vector)
    write("steps", "lion-f32", bytes([6]) + vector)


def phased(rng):
    # byte 0 even: f32. rows = 1 + byte % 16, cols = 1 + byte % 16, rank = 1 + byte % min.
    # Config tables: lr [0.01, 0.1, 0, 1, 1e6], momentum [0.95, 0.9, 0, 0.999999],
    # weight_decay [0, 0.01, 1], epsilon [1e-8, 1e-30, 1]; power_iters 1; reorthogonalize.
    def header(rows, cols, rank, lr=0, momentum=0):
        return bytes([0, rows - 1, cols - 1, rank - 1, lr, momentum, 0, 0, 0, 0])

    FINISH, AFTER_BEGIN, AFTER_PROJECT = 2, 0, 1
    NO_EDIT = 0

    x1 = [float(v) for v in range(1, 13)]
    # Case 1 in phases: finish both rounds without edits.
    data = header(4, 3, 2) + raw_f32(x1) + zero() + raw_f32([1.0, 0.0, 0.0, 1.0, 0.0, 0.0]) + bytes([1])
    data += zero() + bytes([FINISH, NO_EDIT, NO_EDIT])
    data += raw_f32(U_VT) + bytes([FINISH, NO_EDIT, NO_EDIT])
    write("phased", "zero-then-rank-one", data)

    # Case 5 in phases: B·Q = 0 at the first round, so the averaged P has a dependent column.
    data = header(2, 2, 1, lr=1) + zero() + zero() + raw_f32([1.0, 0.0]) + bytes([2])
    for _ in range(3):
        data += raw_f32([0.0, 1.0, 0.0, 0.0]) + bytes([FINISH, NO_EDIT, NO_EDIT])
    write("phased", "orthogonal-warm-start", data)

    # A NaN written into P (one edit: entry 0 set to special value 12, NaN), then finish: the
    # step must fail and leave the state untouched. Then abandon after begin, then after project.
    data = header(5, 4, 2) + bounded(20, 0, rng) + zero() + bounded(8, 0, rng) + bytes([2])
    # project() fails on the NaN, so no edit byte for R follows.
    data += bounded(20, 0, rng) + bytes([FINISH, 160, 0, 0, 12])
    data += bounded(20, 0, rng) + bytes([AFTER_BEGIN, NO_EDIT])
    data += bounded(20, 0, rng) + bytes([AFTER_PROJECT, NO_EDIT, NO_EDIT])
    write("phased", "nan-in-p-then-abandon", data)

    # P scaled by 2^-1 (what averaging two equal workers does), R left as is.
    data = header(6, 9, 3) + bounded(54, 0, rng) + bounded(54, -3, rng) + bounded(18, 0, rng) + bytes([0])
    data += bounded(54, 0, rng) + bytes([FINISH, 160, 2, 3, NO_EDIT])
    write("phased", "scaled-p-transposed", data)


def main():
    rng = random.Random(20240611)
    kernels(rng)
    qr(rng)
    steps(rng)
    phased(rng)
    for path in sorted(CORPUS.glob("*/seed-*")):
        print(f"{path.relative_to(CORPUS.parent)}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# Fuzz smoke run: builds the cargo-fuzz targets in fuzz/ and runs each one for a short time,
# starting from its committed seeds. Exits non-zero on the first crash, failed assertion, timeout
# or build failure, after printing the end of that target's log (panic message, artifact path).
#
# Usage: bash .ci/fuzz.sh                       (from any directory)
#        FUZZ_SECONDS=600 bash .ci/fuzz.sh      (longer runs; default 60 s per target)
#
# Needs cargo-fuzz (installed here from crates.io if missing) and, for AddressSanitizer, the
# nightly toolchain. When nightly is missing and cannot be installed, the targets run on stable
# without a sanitizer (`-s none`). The library has no unsafe code, so every check still runs.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-60}"
targets=(kernels qr steps phased)
logs="$(mktemp -d)"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz not found: installing it with cargo install --locked"
    cargo install cargo-fuzz --locked
fi
cargo fuzz --version

toolchain=nightly
sanitizer=()
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "nightly toolchain not found: installing it (minimal profile)"
    if ! timeout 600 rustup toolchain install nightly --profile minimal; then
        echo "WARNING: nightly could not be installed; running on stable without AddressSanitizer"
        toolchain=stable
        sanitizer=(-s none)
    fi
fi
rustup run "$toolchain" rustc --version

cd fuzz
start=$(date +%s)
cargo "+$toolchain" fuzz build "${sanitizer[@]}"
echo "fuzz build took $(( $(date +%s) - start )) s"

for target in "${targets[@]}"; do
    log="$logs/$target.log"
    target_start=$(date +%s)
    # -timeout: an input that runs longer than 10 s is a hang (the slowest takes about 10 ms).
    if ! cargo "+$toolchain" fuzz run "${sanitizer[@]}" "$target" -- \
        -max_total_time="$seconds" -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
        echo "FAILED: fuzz target $target (log tail below; the crashing input is in fuzz/artifacts/$target/)"
        tail -n 60 "$log"
        exit 1
    fi
    runs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
    echo "fuzz target $target: ${runs:-?} runs in $(( $(date +%s) - target_start )) s, no crash"
done
echo "fuzz smoke runs took $(( $(date +%s) - start )) s in total"

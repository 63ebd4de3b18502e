#!/usr/bin/env bash
# Embedded checks of dion-kernel, for CI and by hand (`bash .ci/embedded.sh` from anywhere):
#
# 1. installs what it needs on a fresh Debian machine: qemu-system-arm and binutils-arm-none-eabi
#    (apt), the three bare-metal Rust targets (rustup) and defmt-print (cargo install);
# 2. cross-builds the library for thumbv7em-none-eabihf, thumbv6m-none-eabi and
#    riscv32imac-unknown-none-elf, with and without the `defmt` feature;
# 3. runs the MCU programs of examples/mcu on QEMU's mps2-an386 (Cortex-M4F): the Dion layer
#    example, on-device training, the on-target tests (and a test that must fail);
# 4. checks that the MCU and the host produce bit-identical X, M and Q on the golden cases;
# 5. prints flash/RAM sizes and the step costs (stack, instructions) for the log.
#
# Exits non-zero on any failure. A target that `rustup target add` cannot install (no network)
# is reported on a `SKIPPED:` line and the checks that need it are skipped.
set -euo pipefail

cd "$(dirname "$0")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

mcu_target=thumbv7em-none-eabihf
cross_targets=(thumbv7em-none-eabihf thumbv6m-none-eabi riscv32imac-unknown-none-elf)
mcu=(-p dion-kernel-mcu --target "$mcu_target")
passed=0
skipped=0
SECONDS=0

section() {
    printf '\n=== %s (at %d s)\n' "$1" "$SECONDS"
}

pass() {
    passed=$((passed + 1))
    echo "ok: $1"
}

skip() {
    skipped=$((skipped + 1))
    echo "SKIPPED: $1"
}

fail() {
    echo "FAILED: $1" >&2
    exit 1
}

as_root() {
    if [[ "$(id -u)" -eq 0 ]]; then
        "$@"
    else
        sudo "$@"
    fi
}

section "tools"
packages=()
command -v qemu-system-arm >/dev/null || packages+=(qemu-system-arm)
command -v arm-none-eabi-size >/dev/null || packages+=(binutils-arm-none-eabi)
if ((${#packages[@]})); then
    echo "installing ${packages[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}"
fi
qemu-system-arm --version | head -n 1

installed_targets="$(rustup target list --installed)"
available=()
for target in "${cross_targets[@]}"; do
    if grep -qx "$target" <<<"$installed_targets" || rustup target add "$target"; then
        available+=("$target")
    else
        skip "rustup target add $target failed (no network?): its cross-builds and QEMU runs are skipped"
    fi
done
have_mcu=false
[[ " ${available[*]} " == *" $mcu_target "* ]] && have_mcu=true

if $have_mcu && ! command -v defmt-print >/dev/null; then
    echo "installing defmt-print"
    cargo install defmt-print --version '^1.2' --locked
fi

section "cross-builds of the library"
for target in "${available[@]}"; do
    cargo build --release --lib --target "$target"
    cargo build --release --lib --target "$target" --features defmt
    pass "library builds for $target, with and without defmt"
done

if ! $have_mcu; then
    skip "QEMU programs, on-target tests and the bit-identity check need $mcu_target"
    echo "embedded: $passed passed, 0 failed, $skipped skipped ($SECONDS s)"
    exit 0
fi

section "QEMU: Dion on a 32x64 layer, rank 8"
cargo run "${mcu[@]}" --profile release-mcu --example dion_layer
pass "dion_layer"

section "QEMU: on-device training on the digits"
cargo run "${mcu[@]}" --profile release-mcu --example digits_train
pass "digits_train"

section "QEMU: on-target tests"
cargo test "${mcu[@]}" --test on_target
pass "on_target tests at opt-level 0 (debug assertions on)"
cargo test "${mcu[@]}" --profile release-mcu --test on_target
pass "on_target tests at opt-level s"
echo "negative control: the next run contains a test that must fail"
if cargo test "${mcu[@]}" --test on_target --features fail-demo; then
    fail "an on-target test that fails did not fail the run"
fi
pass "a failing on-target test fails the run"

section "no allocator in the MCU programs"
target_dir="${CARGO_TARGET_DIR:-target}"
for program in dion_layer digits_train; do
    elf="$target_dir/$mcu_target/release-mcu/examples/$program"
    # The programs define no #[global_allocator]; any use of `alloc` would not link. Check the
    # symbols anyway.
    if arm-none-eabi-nm "$elf" | grep -E '__rust_alloc|__rg_alloc|__rdl_alloc'; then
        fail "$program links allocator symbols"
    fi
done
pass "no allocator symbols in the MCU programs"

section "bit identity: MCU against host on the golden cases"
logs=()
log_dir="$(mktemp -d)"
trap 'rm -rf "$log_dir"' EXIT
for profile in dev release-mcu release-mcu-o3; do
    log="$log_dir/golden-$profile.log"
    cargo run -q "${mcu[@]}" --profile "$profile" --example golden_bits >"$log"
    echo "$profile: $(grep -c golden-hash "$log") golden-hash lines"
    logs+=("$log")
done
DION_MCU_GOLDEN_LOGS="$(IFS=:; echo "${logs[*]}")" \
    cargo test -p dion-kernel-mcu --test bit_identity -- --nocapture
pass "MCU (opt-level 0, s, 3) and host produce the same bits"

section "costs (for the log; docs/EMBEDDED.md has the table)"
for profile in release-mcu release-mcu-o3; do
    cargo build -q "${mcu[@]}" --profile "$profile" --examples
    echo "$profile:"
    for program in dion_layer digits_train golden_bits step_cost; do
        arm-none-eabi-size "$target_dir/$mcu_target/$profile/examples/$program" | tail -n 1
    done
    QEMU_ICOUNT=0 cargo run -q "${mcu[@]}" --profile "$profile" --example step_cost
done
pass "step_cost"

echo
echo "embedded: $passed passed, 0 failed, $skipped skipped ($SECONDS s)"

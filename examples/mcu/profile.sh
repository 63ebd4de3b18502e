#!/usr/bin/env bash
# Exact per-function instruction profile of one Dion step on the emulated Cortex-M4F.
#
# Usage: examples/mcu/profile.sh [PROFILE]   (PROFILE: release-mcu (default) or release-mcu-o3)
#
# Builds the `step_profile` example, runs it in QEMU with one instruction per translation block
# (`-singlestep -d exec,nochain`), so that every executed instruction is one trace line naming its
# function, and counts the lines between the calls of `profile_window_start` and
# `profile_window_end`.
set -euo pipefail

profile="${1:-release-mcu}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
cargo build -q -p dion-kernel-mcu --target thumbv7em-none-eabihf --profile "$profile" --example step_profile
elf="${CARGO_TARGET_DIR:-$root/target}/thumbv7em-none-eabihf/$profile/examples/step_profile"

trace="$(mktemp)"
trap 'rm -f "$trace"' EXIT
timeout 300 qemu-system-arm -machine mps2-an386 -nographic -monitor none -serial none \
    -semihosting-config enable=on,target=native -singlestep -d exec,nochain -D "$trace" \
    -kernel "$elf" >/dev/null

echo "SysTick count under -icount shift=0:"
QEMU_ICOUNT=0 "$root/examples/mcu/qemu-run.sh" "$elf"
echo "QEMU execution trace:"

# Trace lines end in the symbol of the executed instruction ("Trace 0: 0x... [...] symbol").
# QEMU names the function by the ELF symbol table, so inlined code counts for its caller.
awk '
    /^Trace / {
        symbol = $NF
        if (symbol == "profile_window_start") { inside = 1; next }
        if (symbol == "profile_window_end") { inside = 0; next }
        if (inside) { count[symbol]++; total++ }
    }
    END {
        printf "%12d  total instructions in the window\n", total
        for (s in count) printf "%12d  %5.1f%%  %s\n", count[s], 100 * count[s] / total, s | "sort -rn"
    }
' "$trace" | arm-none-eabi-c++filt

#!/usr/bin/env bash
# Measures the costs reported in docs/EMBEDDED.md on the emulated Cortex-M4F and prints them as
# Markdown: flash and static RAM of every MCU program at opt-level "s" (profile release-mcu) and 3
# (release-mcu-o3), then the output of the `step_cost` example (stack, state size, instructions
# per step and per multiply-add, square root) for both profiles under `-icount shift=0`.
#
# Usage: examples/mcu/measure.sh        (from anywhere; needs qemu-system-arm, defmt-print and
#                                        arm-none-eabi-size)
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
target=thumbv7em-none-eabihf
profiles=(release-mcu release-mcu-o3)
target_dir="${CARGO_TARGET_DIR:-$root/target}"

# Prints "name path" for every executable of the MCU package in one profile.
executables() {
    local profile="$1"
    {
        cargo build -q -p dion-kernel-mcu --target "$target" --profile "$profile" --examples --message-format=json
        cargo test -q -p dion-kernel-mcu --target "$target" --profile "$profile" --test on_target --no-run --message-format=json
    } | python3 -c '
import json, sys
for line in sys.stdin:
    message = json.loads(line)
    if message.get("reason") == "compiler-artifact" and message.get("executable"):
        print(message["target"]["name"], message["executable"])
'
}

echo "## Flash and static RAM (bytes; arm-none-eabi-size, Berkeley format)"
echo
echo "flash = text + data (text = vector table + .text + .rodata; .data is stored in flash and copied to RAM), static RAM = data + bss."
echo
echo "| program | profile | text | data | bss | flash | static RAM |"
echo "|---|---|---:|---:|---:|---:|---:|"
for profile in "${profiles[@]}"; do
    while read -r name path; do
        read -r text data bss _ < <(arm-none-eabi-size "$path" | tail -n 1)
        echo "| $name | $profile | $text | $data | $bss | $((text + data)) | $((data + bss)) |"
    done < <(executables "$profile" | sort)
done

for profile in "${profiles[@]}"; do
    echo
    echo "## step_cost, profile $profile (QEMU_ICOUNT=0)"
    echo
    echo '```'
    QEMU_ICOUNT=0 cargo run -q -p dion-kernel-mcu --target "$target" --profile "$profile" --example step_cost 2>/dev/null
    echo '```'
done

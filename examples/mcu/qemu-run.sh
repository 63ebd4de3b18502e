#!/usr/bin/env bash
# Cargo runner for thumbv7em-none-eabihf: runs an ELF on QEMU's mps2-an386 (Cortex-M4F) and exits
# with the program's semihosting exit status (0 success, 1 failure, 124 timeout).
#
# Environment:
#   QEMU_TIMEOUT  seconds before the run is killed (default 120).
#   QEMU_MACHINE  QEMU board (default mps2-an386). mps2-an500, a Cortex-M7, runs the same ELF.
#   QEMU_ICOUNT   if set, passed as `-icount shift=$QEMU_ICOUNT`. With 0, QEMU runs one
#                 instruction per ns of virtual time, so SysTick counts executed instructions.
set -uo pipefail

elf="$1"
shift

qemu=(timeout -k 5 "${QEMU_TIMEOUT:-120}" qemu-system-arm
      -machine "${QEMU_MACHINE:-mps2-an386}" -nographic -monitor none -serial none
      -semihosting-config enable=on,target=native)
if [[ -n "${QEMU_ICOUNT:-}" ]]; then
    qemu+=(-icount "shift=${QEMU_ICOUNT}")
fi
qemu+=(-kernel "$elf")

# `readelf | grep -q` would fail under pipefail when grep closes the pipe early, so the symbol
# table goes through a variable.
symbols="$(readelf -Ws "$elf")"
if grep -q ' _defmt_write$' <<<"$symbols"; then
    # The ELF has a defmt logger: its semihosting stdout carries defmt frames, decoded here.
    "${qemu[@]}" | defmt-print -e "$elf"
    status=("${PIPESTATUS[@]}")
    if [[ "${status[1]}" -ne 0 ]]; then
        echo "qemu-run.sh: defmt-print failed with status ${status[1]}" >&2
        exit "${status[1]}"
    fi
    exit "${status[0]}"
else
    exec "${qemu[@]}"
fi

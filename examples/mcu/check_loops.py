#!/usr/bin/env python3
"""Lists the innermost multiply-add loops of Thumb-2 functions and their early exits.

Usage: examples/mcu/check_loops.py ELF PATTERN

For every function of ELF whose demangled name contains PATTERN, finds each innermost loop (a
backward branch whose range contains no other backward branch) that contains a floating-point
multiply-add (vmla or vmls), and prints its size and the conditional branches that leave it
early. A bounds check inside a loop is such a branch (to a panic), so "early exits: none" means
the loop checks nothing. Needs arm-none-eabi-nm and arm-none-eabi-objdump.
"""

import re
import subprocess
import sys

BRANCH = re.compile(r"^(b(eq|ne|cs|cc|hs|lo|hi|ls|ge|lt|gt|le|mi|pl|vs|vc)?(\.[nw])?|cbz|cbnz)$")
TARGET = re.compile(r"([0-9a-f]+) <")


def functions(elf, pattern):
    """Yields (name, start, size) of the matching functions."""
    symbols = subprocess.run(
        ["arm-none-eabi-nm", "-S", "-C", elf], capture_output=True, text=True, check=True
    ).stdout
    for line in symbols.splitlines():
        fields = line.split(None, 3)
        if len(fields) == 4 and pattern in fields[3]:
            yield fields[3], int(fields[0], 16), int(fields[1], 16)


def instructions(elf, start, size):
    """Returns (address, mnemonic, operands) for every instruction in the range."""
    listing = subprocess.run(
        ["arm-none-eabi-objdump", "-d", "--no-show-raw-insn", "-C", elf,
         f"--start-address={start}", f"--stop-address={start + size}"],
        capture_output=True, text=True, check=True,
    ).stdout
    result = []
    for line in listing.splitlines():
        match = re.match(r"\s+([0-9a-f]+):\s+(\S+)\s*(.*)$", line)
        if match:
            result.append((int(match.group(1), 16), match.group(2), match.group(3)))
    return result


def branch_target(mnemonic, operands):
    """Returns the target address of a branch instruction, or None for any other instruction."""
    if not BRANCH.match(mnemonic):
        return None
    match = TARGET.search(operands)
    return int(match.group(1), 16) if match else None


def main():
    elf, pattern = sys.argv[1], sys.argv[2]
    for name, start, size in functions(elf, pattern):
        code = instructions(elf, start, size)
        backward = []
        for address, mnemonic, operands in code:
            target = branch_target(mnemonic, operands)
            if target is not None and target <= address:
                backward.append((target, address))
        innermost = [loop for loop in backward
                     if not any(other != loop and loop[0] <= other[0] and other[1] <= loop[1]
                                for other in backward)]
        print(f"{name} at {start:x}")
        for first, last in innermost:
            body = [entry for entry in code if first <= entry[0] <= last]
            multiply_adds = sum(1 for _, mnemonic, _ in body if mnemonic.startswith(("vmla", "vmls")))
            if not multiply_adds:
                continue
            exits = []
            for address, mnemonic, operands in body:
                target = branch_target(mnemonic, operands)
                if address != last and target is not None and not first <= target <= last:
                    exits.append(f"{address:x}")
            print(f"  loop {first:x}-{last:x}: {len(body)} instructions, {multiply_adds} vmla/vmls,"
                  f" early exits: {', '.join(exits) or 'none'}")


if __name__ == "__main__":
    main()

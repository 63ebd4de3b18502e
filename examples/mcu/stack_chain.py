#!/usr/bin/env python3
"""Deepest static call chain below a function, with the stack frame of every function on it.

Usage: examples/mcu/stack_chain.py ELF FUNCTION

Reads the disassembly (`arm-none-eabi-objdump -d -C`) and takes each function's frame from its
prologue: the registers saved by `push`, `stmdb sp!` and `vpush`, plus `sub sp, #n`. Calls are the
direct `bl` and tail-call `b` instructions; functions are distinguished by address, since generic
code gives many functions the same name. Paths into panic handlers are left out (no valid call
reaches them), and an indirect call (`blx`) is marked, because this script cannot follow it.
Prints, for every callee of FUNCTION, the deepest chain through it.
"""
import re
import subprocess
import sys


def read_functions(elf):
    text = subprocess.run(
        ["arm-none-eabi-objdump", "-d", "-C", "--no-show-raw-insn", elf],
        check=True, capture_output=True, text=True,
    ).stdout
    functions, names, current = {}, {}, None
    for line in text.splitlines():
        header = re.match(r"^([0-9a-f]+) <(.*)>:$", line)
        if header:
            current = int(header.group(1), 16)
            names[current] = header.group(2)
            functions[current] = {"frame": 0, "calls": set(), "lines": 0, "indirect": False}
            continue
        if current is None:
            continue
        function = functions[current]
        function["lines"] += 1
        # The prologue is in the first few instructions.
        if function["lines"] <= 14:
            saved = re.search(r"\t(?:push(?:\.w)?\t|stmdb(?:\.w)?\tsp!, )\{(.*)\}", line)
            if saved:
                function["frame"] += 4 * len(saved.group(1).split(","))
            vsaved = re.search(r"\tvpush\t\{(.*)\}", line)
            if vsaved:
                for group in vsaved.group(1).split(","):
                    group = group.strip()
                    size = 8 if group.startswith("d") else 4
                    if "-" in group:
                        first, last = group.split("-")
                        function["frame"] += size * (int(last[1:]) - int(first[1:]) + 1)
                    else:
                        function["frame"] += size
            local = re.search(r"\tsub(?:\.w)?\tsp, #(\d+)", line)
            if local:
                function["frame"] += int(local.group(1))
        call = re.search(r"\t(?:bl|b|b\.w|b\.n)\t([0-9a-f]+) <(.*)>$", line)
        if call and "+0x" not in call.group(2):
            target = int(call.group(1), 16)
            if target != current:
                function["calls"].add(target)
        if "\tblx\t" in line:
            function["indirect"] = True
    return functions, names


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    functions, names = read_functions(sys.argv[1])
    memo = {}

    def skipped(address):
        name = names.get(address, "")
        return "panic" in name or "index_fail" in name or "fmt" in name

    def deepest(address, path=()):
        if address in path or address not in functions:
            return 0, []
        if address in memo:
            return memo[address]
        best = (0, [])
        for callee in functions[address]["calls"]:
            if not skipped(callee):
                below = deepest(callee, path + (address,))
                if below[0] > best[0]:
                    best = below
        function = functions[address]
        mark = " (indirect call not followed)" if function["indirect"] else ""
        entry = f"{names[address]} {function['frame']}{mark}"
        memo[address] = (function["frame"] + best[0], [entry] + best[1])
        return memo[address]

    roots = [a for a in functions if sys.argv[2] in names[a]]
    if not roots:
        sys.exit(f"no function named like {sys.argv[2]!r}")
    for root in roots:
        frame = functions[root]["frame"]
        print(f"{names[root]}: frame {frame} bytes")
        chains = []
        for callee in functions[root]["calls"]:
            if not skipped(callee):
                total, chain = deepest(callee)
                chains.append((frame + total, chain))
        for total, chain in sorted(chains, reverse=True):
            print(f"  {total:5d}  " + " / ".join(chain))


if __name__ == "__main__":
    main()

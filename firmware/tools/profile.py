#!/usr/bin/env python3
"""Instructions per function of a firmware run, from the insncount plugin's profile.

    gcc -O2 -shared -fPIC -o /tmp/libinsncount.so firmware/tools/insncount.c
    python3 firmware/tools/profile.py firmware/target/thumbv7em-none-eabihf/release/mps2-an386-demo-s

runs the binary through run.sh with the plugin (mark = `tinymla_mark`, so counting starts at
the first forward step and covers the greedy and sampled runs), then prints each function's
share of the instructions, its instructions per forward step and its code bytes. Needs
`llvm-nm` (for symbol sizes and demangled names). Standard library only.
"""

import argparse
import bisect
import os
import re
import subprocess
import sys
import tempfile

FW = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS_PER_RUN = 39  # forward steps per mode (8 prompt + 31 generated); two modes per run


def symbols(elf):
    """Sorted [(start, size, name)] of the ELF's code symbols (Thumb bit cleared)."""
    out = subprocess.run(["llvm-nm", "-S", "-C", "--defined-only", elf], check=True,
                         text=True, capture_output=True).stdout
    syms = []
    for line in out.splitlines():
        m = re.match(r"([0-9a-f]+) ([0-9a-f]+) [tTwW] (.*)", line)
        # Sized symbols only: local labels (`.L…`, RISC-V) and mapping symbols (`$t`, Arm)
        # would split the functions they sit in.
        if m and int(m.group(2), 16) > 0:
            syms.append((int(m.group(1), 16) & ~1, int(m.group(2), 16), m.group(3)))
    syms.sort()
    return syms


def short(name):
    """A demangled name without its hash suffix."""
    return re.sub(r"::h[0-9a-f]{16}$", "", name)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("elf")
    ap.add_argument("--plugin", default="/tmp/libinsncount.so")
    ap.add_argument("--top", type=int, default=40)
    args = ap.parse_args()
    syms = symbols(args.elf)
    starts = [s[0] for s in syms]
    mark = next(s[0] for s in syms if s[2] == "tinymla_mark")
    with tempfile.TemporaryDirectory() as tmp:
        prof = os.path.join(tmp, "profile.txt")
        env = dict(os.environ, QEMU_EXTRA=f"-plugin {args.plugin},mark={mark:#x},profile={prof}")
        subprocess.run(["bash", os.path.join(FW, "run.sh"), args.elf], check=True, env=env,
                       capture_output=True)
        counts = {}
        for line in open(prof):
            addr, n = line.split()
            i = bisect.bisect_right(starts, int(addr, 16)) - 1
            name = short(syms[i][2]) if i >= 0 and int(addr, 16) < starts[i] + max(syms[i][1], 2) else "?"
            counts[name] = counts.get(name, 0) + int(n)
    sizes = {}
    for _start, size, name in syms:
        sizes[short(name)] = sizes.get(short(name), 0) + size
    total = sum(counts.values())
    steps = 2 * STEPS_PER_RUN
    print(f"{total:,} instructions over {steps} forward steps + sampling: "
          f"{total / steps:,.0f} per step")
    print(f"{'share':>6} {'per step':>10} {'bytes':>6}  function")
    for name, n in sorted(counts.items(), key=lambda kv: -kv[1])[:args.top]:
        print(f"{100 * n / total:5.1f}% {n / steps:10,.0f} {sizes.get(name, 0):6}  {name}")


if __name__ == "__main__":
    sys.exit(main())

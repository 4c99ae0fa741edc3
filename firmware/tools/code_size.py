#!/usr/bin/env python3
"""Where a firmware ELF's code flash goes: bytes per crate (and per module of tinymla-core),
then the largest functions.

    python3 firmware/tools/code_size.py firmware/target/thumbv7em-none-eabihf/release/mps2-an386-demo-s

Sizes are `llvm-nm -S` symbol sizes of code and read-only data (the model blob excluded).
With fat LTO, a function inlined into another counts where it landed: most of the forward
pass sits in `tinymla_fw::run::step`, and loading in `tinymla_fw::run::load_model`. Needs
`llvm-nm`. Standard library only.
"""

import argparse
import collections
import re
import subprocess


def group(name):
    """The crate of a demangled symbol, with tinymla-core split by module."""
    m = re.match(r"(?:<|_\$LT\$)?(tinymla_core)(?:::|\.\.)(\w+)", name)
    if m:
        return f"tinymla_core::{m.group(2)}"
    m = re.match(r"(?:<|_\$LT\$)?([a-z_][a-z0-9_]*)(?:::|\.\.)", name)
    if m:
        return m.group(1)
    if name.startswith("__aeabi") or name.startswith("__") or name in ("memcmp", "memcpy"):
        return "compiler_builtins"
    return "(other: vector table, literals, linker symbols)"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("elf")
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    out = subprocess.run(["llvm-nm", "-S", "-C", "--defined-only", args.elf], check=True,
                         text=True, capture_output=True).stdout
    sizes = collections.Counter()
    functions = collections.Counter()
    for line in out.splitlines():
        m = re.match(r"[0-9a-f]+ ([0-9a-f]+) [tTrR] (.*)", line)
        if not m or "::MODEL::" in m.group(2):
            continue
        size, name = int(m.group(1), 16), re.sub(r"::h[0-9a-f]{16}$", "", m.group(2))
        sizes[group(name)] += size
        functions[name] += size
    total = sum(sizes.values())
    print(f"{total:,} bytes of code and read-only data in symbols")
    for g, n in sizes.most_common():
        print(f"{n:8,} {100 * n / total:5.1f}%  {g}")
    print(f"\nlargest {args.top}:")
    for name, n in functions.most_common(args.top):
        print(f"{n:8,}  {name}")


if __name__ == "__main__":
    main()

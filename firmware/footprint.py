#!/usr/bin/env python3
"""Regenerates the firmware footprint table (issue #9) from real builds and QEMU runs.

For every QEMU board and model: builds the release ELF, runs it under QEMU (-icount shift=0,
through run.sh), and reads
  - flash bytes: code (.vector_table/.init/.text/.rodata/.data image) and model (.model),
    from the ELF's section headers;
  - RAM bytes: static (.data + .bss + .uninit, less the heap array, which is a static too),
    heap at context 128 / 256 / 512 as the firmware computes it on target from the core's
    LatentCache::bytes_needed + scratch_elems + the sampler's index buffer, the heap
    high-water mark actually reached at context 256, and the painted stack's peak from the
    top of the stack (over loading and generating; generating alone in brackets);
  - instructions per token: the mean over the greedy run's 39 forward steps, from SysTick
    under -icount (Arm; checked against the insncount plugin) or minstret (RISC-V);
  - implied tokens/s at a typical clock for the core, assuming 1 instruction per cycle:
    an ESTIMATE, not a measurement (real cores stall on flash wait states, and some
    instructions take several cycles).

Usage, from the repository root:

    python3 firmware/footprint.py                                # prints the markdown table
    python3 firmware/footprint.py --readme firmware/README.md    # and rewrites it there

With --readme, the block between `<!-- footprint:begin -->` and `<!-- footprint:end -->` in
that file is replaced (the table lives in firmware/README.md, section "Footprint").
Python 3 standard library only.
"""

import argparse
import os
import re
import struct
import subprocess
import sys

FW = os.path.dirname(os.path.abspath(__file__))

# (package, target, board label, core, typical clock in Hz for the implied tok/s, extra cargo
# arguments: the M55 gets cortex-m55.toml layered on, as tests/firmware.rs and `fw-an547` do)
BOARDS = [
    ("board-mps2-an386", "thumbv7em-none-eabihf", "mps2-an386", "Cortex-M4F", 168e6, []),
    ("board-mps2-an505", "thumbv8m.main-none-eabihf", "mps2-an505", "Cortex-M33", 150e6, []),
    ("board-mps3-an547", "thumbv8m.main-none-eabihf", "mps3-an547", "Cortex-M55", 400e6,
     ["--config", "cortex-m55.toml"]),
    ("board-riscv-virt", "riscv32imac-unknown-none-elf", "riscv-virt", "RV32IMAC", 150e6, []),
    ("board-riscv-virt", "riscv32imafc-unknown-none-elf", "riscv-virt", "RV32IMAFC", 150e6, []),
]
MODELS = ["demo-s", "demo-m"]
CODE_SECTIONS = {".vector_table", ".init", ".text", ".rodata", ".data", ".trap", ".text.dummy"}
RAM_SECTIONS = {".data", ".bss", ".uninit"}


def sections(path):
    """{name: size} of an ELF32 little-endian file's allocated sections."""
    with open(path, "rb") as f:
        elf = f.read()
    assert elf[:4] == b"\x7fELF" and elf[4] == 1, f"{path}: not ELF32"
    shoff, = struct.unpack_from("<I", elf, 0x20)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x2E)
    hdrs = [struct.unpack_from("<IIIIIIIIII", elf, shoff + i * shentsize) for i in range(shnum)]
    strtab = hdrs[shstrndx]
    out = {}
    for name, _typ, flags, _addr, _off, size, *_ in hdrs:
        end = elf.index(b"\0", strtab[4] + name)
        n = elf[strtab[4] + name:end].decode()
        if flags & 2:  # SHF_ALLOC
            out[n] = out.get(n, 0) + size
    return out


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw).stdout


def measure(target, board, model):
    elf = os.path.join(FW, "target", target, "release", f"{board}-{model}")
    log = run(["bash", os.path.join(FW, "run.sh"), elf])
    get = lambda pat: re.search(pat, log).group(1)
    secs = sections(elf)
    heap_size = int(get(r"heap_size=(\d+)"))
    return {
        "code": sum(v for k, v in secs.items() if k in CODE_SECTIONS),
        "model": secs.get(".model", 0),
        "static": sum(v for k, v in secs.items() if k in RAM_SECTIONS) - heap_size,
        "heap128": int(get(r"ctx128=(\d+)")),
        "heap256": int(get(r"ctx256=(\d+)")),
        "heap512": int(get(r"ctx512=(\d+)")),
        "heap_peak": int(get(r"heap_peak=(\d+)")),
        "stack": int(get(r"stack_peak=(\d+)")),
        "stack_gen": int(get(r"generating (\d+)")),
        "insns": int(get(r"greedy instructions/token mean=(\d+)")),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--readme", metavar="firmware/README.md",
                    help="README whose table between the footprint markers is rewritten "
                         "(the table lives in firmware/README.md)")
    args = ap.parse_args()
    # One build per board: boards sharing a target may differ in rustflags (the M55).
    for pkg, target, *_, cargo_args in BOARDS:
        subprocess.run(["cargo", *cargo_args, "build", "--release", "--locked", "--target", target,
                        "-p", pkg], cwd=FW, check=True)
    rows = [
        "| board (core) | model | flash: code / model | RAM static | heap ctx 128 / 256 / 512 (peak at 256) | stack peak (while generating) | RAM total at ctx 256 | instructions/token | est. tok/s at 1 IPC |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for _pkg, target, board, core, clock, _args in BOARDS:
        for model in MODELS:
            m = measure(target, board, model)
            total = m["static"] + m["heap_peak"] + m["stack"]
            note = " ¹" if model == "demo-s" else ""
            rows.append(
                f"| {board} ({core}) | {model} | {m['code']:,} / {m['model']:,} | {m['static']:,} "
                f"| {m['heap128']:,} / {m['heap256']:,} / {m['heap512']:,}{note} ({m['heap_peak']:,}) "
                f"| {m['stack']:,} ({m['stack_gen']:,}) | {total:,} | {m['insns']:,} "
                f"| {clock / m['insns']:.0f} at {clock / 1e6:.0f} MHz |"
            )
            print(rows[-1], file=sys.stderr)
    table = "\n".join(rows) + "\n"
    print(table)
    if args.readme:
        text = open(args.readme).read()
        begin, end = "<!-- footprint:begin -->\n", "<!-- footprint:end -->"
        if begin not in text or end not in text:
            sys.exit(f"{args.readme}: no footprint markers (they are in firmware/README.md)")
        i, j = text.index(begin) + len(begin), text.index(end)
        open(args.readme, "w").write(text[:i] + table + text[j:])


if __name__ == "__main__":
    main()

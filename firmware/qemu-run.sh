#!/usr/bin/env bash
# Runs a board binary under QEMU and decodes its defmt output (the cargo runner; also usable
# by hand): qemu-run.sh <elf>. The QEMU machine comes from the binary's name, `<board>-<model>`.
# Exit status: QEMU's, i.e. the firmware's semihosting exit code (0 ok, 2 engine error,
# 3 heap too small, 101 panic).
# -icount shift=0: one instruction per virtual nanosecond, so the SysTick / minstret counts
# the firmware prints are instruction counts and repeat exactly from run to run.
set -euo pipefail
elf=$1
shift
name=$(basename "$elf")
case "$name" in
    mps2-an386-*) qemu=(qemu-system-arm -M mps2-an386 -cpu cortex-m4) ;;
    mps2-an505-*) qemu=(qemu-system-arm -M mps2-an505 -cpu cortex-m33) ;;
    mps3-an547-*) qemu=(qemu-system-arm -M mps3-an547 -cpu cortex-m55) ;;
    riscv-virt-*) qemu=(qemu-system-riscv32 -M virt -bios none -m 128M) ;;
    *) echo "qemu-run.sh: no QEMU machine for '$name' (real boards run with probe-rs)" >&2; exit 64 ;;
esac
for tool in "${qemu[0]}" defmt-print; do
    if ! command -v "$tool" >/dev/null; then
        echo "qemu-run.sh: $tool not found; run firmware/install-tools.sh (QEMU 10 from bookworm-backports, defmt-print)" >&2
        exit 127
    fi
done
set +e
"${qemu[@]}" -nographic -monitor none -serial none -semihosting-config enable=on,target=native \
    -icount shift=0,align=off,sleep=off ${QEMU_EXTRA:-} -kernel "$elf" "$@" \
    | defmt-print -e "$elf"
status=("${PIPESTATUS[@]}")
exit "${status[0]}"

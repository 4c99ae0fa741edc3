#!/usr/bin/env bash
# Runs a board binary (the cargo runner of every firmware target; also usable by hand):
#   run.sh <elf>
# The board comes from the binary's name, `<board>-<model>`:
#   - QEMU boards: QEMU with semihosting, its stdout decoded by defmt-print. Exit status is
#     QEMU's, i.e. the firmware's semihosting exit code (0 ok, 2 engine error, 3 heap too
#     small, 4 kernel self-test failed, 101 panic). -icount shift=0: one instruction per
#     virtual nanosecond, so the SysTick / minstret counts the firmware prints are instruction counts and repeat exactly.
#   - real boards: `probe-rs run --chip <chip>` (flashes, then decodes defmt over RTT);
#     RP2350's RISC-V build is loaded with picotool.
set -euo pipefail
elf=$1
shift
name=$(basename "$elf")
case "$name" in
    mps2-an386-*) qemu=(qemu-system-arm -M mps2-an386 -cpu cortex-m4) ;;
    mps2-an505-*) qemu=(qemu-system-arm -M mps2-an505 -cpu cortex-m33) ;;
    mps3-an547-*) qemu=(qemu-system-arm -M mps3-an547 -cpu cortex-m55) ;;
    riscv-virt-*) qemu=(qemu-system-riscv32 -M virt -bios none -m 128M) ;;
    stm32h743-*) exec probe-rs run --chip STM32H743ZITx "$elf" "$@" ;;
    rp2350-arm-*) exec probe-rs run --chip RP235x "$elf" "$@" ;;
    # Hazard3 cores: picotool over USB (BOOTSEL); see README.md for reading the RTT log.
    rp2350-riscv-*) exec picotool load -v -x -t elf "$elf" "$@" ;;
    *) echo "run.sh: no QEMU machine or chip for '$name'" >&2; exit 64 ;;
esac
for tool in "${qemu[0]}" defmt-print; do
    if ! command -v "$tool" >/dev/null; then
        echo "run.sh: $tool not found; run firmware/install-tools.sh (QEMU 10 from bookworm-backports, defmt-print)" >&2
        exit 127
    fi
done
set +e
"${qemu[@]}" -nographic -monitor none -serial none -semihosting-config enable=on,target=native \
    -icount shift=0,align=off,sleep=off ${QEMU_EXTRA:-} -kernel "$elf" "$@" \
    | defmt-print -e "$elf"
status=("${PIPESTATUS[@]}")
exit "${status[0]}"

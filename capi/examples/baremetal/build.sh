#!/usr/bin/env bash
# Builds the bare-metal C example against the no_std staticlib and runs it under QEMU:
#   bash capi/examples/baremetal/build.sh [OUT_DIR]   (prints the example's output)
# Needs arm-none-eabi-gcc with newlib (Debian: gcc-arm-none-eabi libnewlib-arm-none-eabi) and
# qemu-system-arm (firmware/install-tools.sh). tests/capi.rs runs it.
set -euo pipefail
root="$(cd "$(dirname "$0")/../../.." && pwd)"
out="${1:-$root/target/capi-baremetal}"
mkdir -p "$out"
cd "$root"
CARGO_TARGET_DIR="$out/cargo" cargo rustc -p tinymla-capi --release --locked \
    --target thumbv7em-none-eabihf --no-default-features --crate-type staticlib
src=capi/examples/baremetal
arm-none-eabi-gcc -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 -std=c11 -O2 \
    -Wall -Wextra -Werror -ffunction-sections -fdata-sections -Icapi/include \
    -DMODEL_PATH="\"$root/models/demo-s.q8_0.gguf\"" \
    -nostartfiles --specs=rdimon.specs -T "$src/link.ld" -Wl,--gc-sections,--no-warn-execstack \
    "$src/startup.c" "$src/main.c" "$src/model.S" \
    "$out/cargo/thumbv7em-none-eabihf/release/libtinymla_capi.a" -lm \
    -o "$out/generate.elf"
timeout 300 qemu-system-arm -M mps2-an386 -cpu cortex-m4 -nographic -monitor none -serial none \
    -semihosting-config enable=on,target=native -kernel "$out/generate.elf"

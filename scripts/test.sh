#!/usr/bin/env bash
# The README's test command: everything CI checks, in order of speed.
#   format, lints (core denies unwrap/expect/panic/indexing/truncating casts),
#   all workspace tests (unit, golden, hostile, CLI), the no_std core for both boards, the
#   firmware on every QEMU board against the host (tests/firmware.rs), then Miri over core's
#   unit tests and 60 s of each fuzz target (nightly + cargo-fuzz; .ci/run installs them).
#   TINYMLA_QUICK=1 skips the firmware step, Miri and fuzzing, for quick local loops.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
test_log="$(mktemp)"
trap 'rm -f "$test_log"' EXIT
cargo test --workspace --locked 2>&1 | tee "$test_log"
for target in thumbv7em-none-eabihf riscv32imac-unknown-none-elf; do
    echo "building tinymla-core for $target"
    cargo build -p tinymla-core --release --locked --target "$target"
done
# The C API's no_std staticlib for bare-metal C firmware (issue #11); staticlib only, as
# cdylibs do not exist for this target.
echo "building tinymla-capi (no_std staticlib) for thumbv7em-none-eabihf"
cargo rustc -p tinymla-capi --release --locked --target thumbv7em-none-eabihf \
    --no-default-features --crate-type staticlib

# Firmware (issue #9): fmt and clippy of firmware/, then every QEMU board built and run, its
# tokens and first-step logits checked against the host engine (tests/firmware.rs). Needs QEMU
# and defmt-print (`bash firmware/install-tools.sh`; .ci/run installs them) and fails without.
# Skipped by TINYMLA_QUICK=1 unless TINYMLA_FIRMWARE=1.
if [ "${TINYMLA_QUICK:-0}" != 1 ] || [ "${TINYMLA_FIRMWARE:-0}" = 1 ]; then
    fw_start=$SECONDS
    (cd firmware && cargo fmt --all --check)
    (cd firmware && cargo clippy --release --locked --target thumbv7em-none-eabihf \
        -p tinymla-fw -p board-mps2-an386 -- -D warnings)
    cargo test -p tinymla-tests --locked firmware_agrees -- --ignored --nocapture 2>&1 | tee -a "$test_log"
    # The C API's bare-metal C example on mps2-an386 (issue #11): also needs arm-none-eabi-gcc
    # with newlib (.ci/run installs gcc-arm-none-eabi and libnewlib-arm-none-eabi).
    cargo test -p tinymla-tests --locked capi_baremetal -- --ignored --nocapture 2>&1 | tee -a "$test_log"
    # Real boards: built (not run). Their own cargo calls: they log over RTT, not semihosting.
    (cd firmware && cargo build --release --locked --target thumbv7em-none-eabihf -p board-stm32h743 \
        && cargo build --release --locked --target thumbv8m.main-none-eabihf -p board-rp2350-arm \
        && cargo build --release --locked --target riscv32imac-unknown-none-elf -p board-rp2350-riscv)
    echo "firmware step: $((SECONDS - fw_start)) s"
fi

if [ "${TINYMLA_QUICK:-0}" != 1 ]; then
    # Miri: undefined behaviour in core (scalar paths; SIMD is tested natively).
    cargo +nightly miri test -p tinymla-core --lib 2>&1 | tee -a "$test_log"
    bash scripts/fuzz.sh "${TINYMLA_FUZZ_SECONDS:-60}"
fi

# One closing line over every test binary (cargo prints one "test result" line per binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "summary: %d passed, %d failed\n", p, f }' "$test_log"

#!/usr/bin/env bash
# The README's test command: everything CI checks, in order of speed.
#   format, lints (core denies unwrap/expect/panic/indexing/truncating casts), doc links,
#   all workspace tests (unit, golden, hostile, CLI), the no_std core for both boards, the
#   aarch64 and Arm DSP kernels under qemu-aarch64 / qemu-arm, the firmware on every QEMU board
#   against the host (tests/firmware.rs), then Miri over core's unit tests, the C API's tests
#   under AddressSanitizer, and each fuzz target briefly with its committed corpus and
#   regression inputs (nightly + cargo-fuzz; .ci/run installs them). TINYMLA_QUICK=1 skips the
#   firmware step, Miri, the ASan build and fuzzing, for quick local loops.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# Every intra-doc link resolves (private items included: the docs are how modules explain
# their invariants to each other).
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --document-private-items --locked
test_log="$(mktemp)"
trap 'rm -f "$test_log"' EXIT
cargo test --workspace --locked 2>&1 | tee "$test_log"
# The C API under clang's ASan + UBSan (issue #25): the hosted example and capi/examples/misuse.c
# built with -fsanitize=address,undefined against the staticlib (tests/capi.rs).
command -v clang >/dev/null || { echo "clang missing: .ci/run installs clang and libclang-rt-14-dev" >&2; exit 1; }
cargo test -p tinymla-tests --locked capi_under -- --ignored 2>&1 | tee -a "$test_log"
# The core without its `block-formats` feature (the firmware's build): K-quant files refused.
cargo test -p tinymla-core --locked --no-default-features --lib 2>&1 | tee -a "$test_log"
for target in thumbv7em-none-eabihf riscv32imac-unknown-none-elf; do
    echo "building tinymla-core for $target"
    cargo build -p tinymla-core --release --locked --target "$target"
done
# Cortex-M55 (Helium): its kernel module only exists with `-C target-cpu=cortex-m55`, so it gets
# its own clippy run (own target dir: other rustflags). The firmware step runs it under QEMU.
echo "clippy of tinymla-core for thumbv8m.main-none-eabihf with target-cpu=cortex-m55 (Helium)"
RUSTFLAGS="-C target-cpu=cortex-m55" cargo clippy -p tinymla-core --release --locked \
    --target thumbv8m.main-none-eabihf --target-dir target/cortex-m55 -- -D warnings
# The C API's no_std staticlib for bare-metal C firmware (issue #11); staticlib only, as
# cdylibs do not exist for this target.
echo "building tinymla-capi (no_std staticlib) for thumbv7em-none-eabihf"
cargo rustc -p tinymla-capi --release --locked --target thumbv7em-none-eabihf \
    --no-default-features --crate-type staticlib

# The Cortex-M4 build must carry the DSP kernels (build.rs derives `cfg(tinymla_arm_dsp)`).
n_smlad="$(arm-none-eabi-objdump -d target/thumbv7em-none-eabihf/release/libtinymla_core.rlib | grep -c smlad)"
echo "SMLAD instructions in the thumbv7em build: $n_smlad"
[ "$n_smlad" -gt 0 ] || { echo "no SMLAD in the thumbv7em build of tinymla-core" >&2; exit 1; }

# The other arches' kernels, run under QEMU user mode against the scalar references
# (kernels::tests), and the batched product with each table against matrix-vector products
# (weights::tests: the packed-group path with NEON + dotprod). aarch64: once on a CPU with the optional `dotprod` extension (QEMU's `max`)
# and once without (Cortex-A72), then with dotprod compiled in (own target dir, so the flags
# don't rebuild the others). Arm DSP: the real SXTB16/SMLAD on Thumb-2 v7-A Linux, which has
# Cortex-M4's DSP instructions. Each run states which table detection must pick.
for tool in qemu-aarch64 qemu-arm aarch64-linux-gnu-gcc arm-linux-gnueabihf-gcc; do
    command -v "$tool" >/dev/null || { echo "$tool missing: .ci/run installs it" >&2; exit 1; }
done
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
export CARGO_TARGET_THUMBV7NEON_UNKNOWN_LINUX_GNUEABIHF_LINKER=arm-linux-gnueabihf-gcc
export CARGO_TARGET_THUMBV7NEON_UNKNOWN_LINUX_GNUEABIHF_RUNNER="qemu-arm -L /usr/arm-linux-gnueabihf"
kernel_tests() {
    echo "kernel tests for $1 (QEMU_CPU=${QEMU_CPU:-default})"
    cargo test -p tinymla-core --locked --lib --target "$1" -- kernels:: weights:: 2>&1 | tee -a "$test_log"
}
QEMU_CPU=max TINYMLA_EXPECT_DETECT=neon+dotprod TINYMLA_EXPECT_COMPILE_TIME=neon \
    kernel_tests aarch64-unknown-linux-gnu
QEMU_CPU=cortex-a72 TINYMLA_EXPECT_DETECT=neon TINYMLA_EXPECT_COMPILE_TIME=neon \
    kernel_tests aarch64-unknown-linux-gnu
QEMU_CPU=max TINYMLA_EXPECT_COMPILE_TIME=neon+dotprod CARGO_TARGET_DIR=target/dotprod \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C target-feature=+dotprod" \
    kernel_tests aarch64-unknown-linux-gnu
TINYMLA_EXPECT_DETECT=arm-dsp TINYMLA_EXPECT_COMPILE_TIME=arm-dsp \
    kernel_tests thumbv7neon-unknown-linux-gnueabihf

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
    # The C API's Rust-side tests (NULL, foreign, moved, released handles) under Rust's
    # AddressSanitizer. The tests leak their handle memory on purpose (handles must never
    # move), so the leak checker is off here; the C programs above run with it on.
    ASAN_OPTIONS=detect_leaks=0 RUSTFLAGS="-Zsanitizer=address" RUSTDOCFLAGS="-Zsanitizer=address" \
        cargo +nightly test -p tinymla-capi --lib --target x86_64-unknown-linux-gnu \
        --target-dir target/asan 2>&1 | tee -a "$test_log"
    bash scripts/fuzz.sh "${TINYMLA_FUZZ_SECONDS:-30}"
fi

# One closing line over every test binary (cargo prints one "test result" line per binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "summary: %d passed, %d failed\n", p, f }' "$test_log"

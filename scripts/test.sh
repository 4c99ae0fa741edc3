#!/usr/bin/env bash
# The README's test command: everything CI checks, in order of speed.
#   format, lints (core denies unwrap/expect/panic/indexing/truncating casts),
#   all workspace tests (unit, golden, hostile, CLI), and the no_std core for both boards.
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

# One closing line over every test binary (cargo prints one "test result" line per binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "summary: %d passed, %d failed\n", p, f }' "$test_log"
